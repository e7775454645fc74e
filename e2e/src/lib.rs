//! Shared helpers for end-to-end tests.
pub mod aci;
pub mod gpg;
pub mod http;
pub mod leaks;
pub mod netns;
pub mod podenv;
pub mod rkt;
