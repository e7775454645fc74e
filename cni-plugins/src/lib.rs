//! CNI plugins (spec 1.0.0, also answering 0.3.0, 0.3.1 and 0.4.0): `bridge`,
//! `host-local`, `loopback` and `portmap`, plus the types a runtime needs to run
//! plugins (configurations and results of every supported version).
//!
//! Each binary in `src/bin` is a thin `main` calling [`skel::run_plugin`] with the
//! plugin's handlers from this library. Handlers take the parsed environment
//! ([`skel::CmdArgs`]) and configuration and return a result or a [`CniError`];
//! they never read the environment or write to stdout.

pub mod bridge;
pub mod cidr;
pub mod error;
pub mod firewall;
pub mod host_local;
pub mod invoke;
pub mod loopback;
pub mod netlink;
pub mod netns;
pub mod portmap;
pub mod skel;
pub mod sysctl;
pub mod types;

pub use error::CniError;
