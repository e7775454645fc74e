//! Pure types, parsing and validation: no I/O beyond the bytes handed in, with one
//! deliberate exception: [`poddir::fs`], how stage0 and stage1 write the pod
//! directory's files (see [`poddir`]).

pub mod appc;
pub mod error;
pub mod k8s;
pub mod pod;
pub mod poddir;
pub mod quantity;
pub mod runtime;
