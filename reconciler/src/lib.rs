//! `rkt reconcile`: keep the pods of this host equal to a directory of Kubernetes Pod
//! YAML (`docs/reconciler.md`).
//!
//! Three parts, kept apart so the logic is testable without root:
//! - [`observe`]: read the desired state (every manifest file in the pods dir) and the
//!   actual state (pod directories with their identity annotations, locks, exits);
//! - [`plan`]: a pure function from both to a [`plan::Plan`]: work for the workers
//!   ([`plan::Work`]) and bookkeeping to record ([`plan::Record`]);
//! - [`act`]: execute actions through the same code paths as `rkt run`, `stop`, `rm`.
//!
//! [`daemon`] drives them: [`watch`] (inotify, debounced) and a periodic full resync
//! trigger passes; [`status`] writes what happened where `rkt reconcile status` and
//! `rkt apply --wait` read it; [`mapping`] turns a Pod into a `rkt run` request;
//! [`apply`] backs `rkt apply` and `rkt delete`; [`notify`] speaks sd_notify.

pub use manifests::k8s;
pub mod act;
pub mod apply;
pub mod daemon;
pub mod mapping;
pub mod notify;
pub mod observe;
pub mod plan;
pub mod status;
pub mod time;
pub mod watch;

/// Pod manifest annotation: the `namespace/name` a pod was created for.
pub const ANNOTATION_KEY: &str = "rkt.io/pod-key";
/// Pod manifest annotation: the manifest file it was created from.
pub const ANNOTATION_SOURCE: &str = "rkt.io/source";
/// Pod manifest annotation: the spec hash of the manifest it was created from.
pub const ANNOTATION_SPEC_HASH: &str = "rkt.io/spec-hash";

#[cfg(test)]
mod testutil;
