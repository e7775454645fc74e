//! Safe tar extraction (owner: the extraction/tree work).
//!
//! CONTRACT (to be implemented): `unpack(reader, dest, &UnpackOptions) -> Result<UnpackStats, ExtractError>`
//! extracts an uncompressed tar stream under `dest`, never writing outside it.
