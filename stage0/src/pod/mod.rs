//! Pods: from a request to a pod directory stage1 runs, and back to nothing.
//!
//! - [`request`]: what a pod is made from, typed and complete (pod options, apps with
//!   their images, init flags, restart policies, probes, privileges); `rkt run`'s flags
//!   and the reconciler's Pod YAML mapping both produce one;
//! - [`spec`]: resolving a request against its images into the runtime configuration
//!   stage1 reads (one pure function per part of an app);
//! - [`dir`]: the pod directories under `<dir>/pods`, their states, locks and removal;
//! - [`launch`]: preparing a pod end to end (fetch, verify, render, write);
//! - [`net`]: CNI networking: configurations, plugin invocation, results, leases.

pub mod dir;
pub mod launch;
pub mod net;
pub mod request;
pub mod spec;
