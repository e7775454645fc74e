//! Rendered rootfs trees under `cas/tree/` (owner: the extraction/tree work).
