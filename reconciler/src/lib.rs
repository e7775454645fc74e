//! stage0 of rkt: image store, fetch, trust, pods and the reconcile loop.
//!
//! The `rkt` binary (`main.rs`) is a thin layer over these modules; every command goes
//! through the same library functions, so the reconciler and the CLI share code paths.

pub mod archive;
pub mod extract;
pub mod fetch;
pub mod image;
pub mod image_ref;
pub mod insecure;
pub mod launch;
pub mod net;
pub mod oci;
pub mod paths;
pub mod perms;
pub mod pod_spec;
pub mod pods;
pub mod reconcile;
pub mod run_args;
pub mod store;
pub mod treestore;
pub mod trust;
