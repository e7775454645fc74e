//! stage0 of rkt: everything that happens on the host before and after a pod runs.
//!
//! Two halves, each a folder:
//! - [`image`]: getting images and keeping them: the content-addressed blob store and
//!   its tree store of rendered images, fetching (appc discovery, https, files, Docker
//!   and OCI registries), signature verification against trusted keys, extraction.
//! - [`pod`]: making and running pods: the pod directories and their life cycle, the
//!   request a pod is built from, the runtime configuration handed to stage1, preparing
//!   a pod end to end, and its CNI networking.
//!
//! Plus three small leaves both halves use: [`insecure`] (the `--insecure-options`
//! switches), [`paths`] (the data and configuration directories) and [`perms`]
//! (ownership and mode checks on what root reads and writes).
//!
//! This crate knows nothing of the reconcile loop or the command line: the `rkt` binary
//! (`reconciler/`) drives it. stage1 and the CNI plugins never depend on it; what they
//! share with stage0 is in `manifests` (`docs/architecture.md`).

pub mod image;
pub mod insecure;
pub mod paths;
pub mod perms;
pub mod pod;
