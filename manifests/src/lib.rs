//! Pure types, parsing and validation: no I/O beyond the bytes handed in.

pub mod appc;
pub mod error;
pub mod k8s;
pub mod pod;
pub mod quantity;
pub mod runtime;
