//! Images: from a name or a file to a verified, rendered tree.
//!
//! Bottom to top:
//! - [`archive`]: compressed and plain tar streams (gzip, bzip2, xz, zstd);
//! - [`extract`]: unpacking a layer safely (no path, link or device escapes);
//! - [`store`]: the blob store (sha512 of the uncompressed tar), its SQLite index and locks;
//! - [`treestore`]: rendered image trees, one per image, shared read-only by pods;
//! - [`render`]: an image's layers (appc dependencies, OCI layers) into the tree store;
//! - [`reference`]: what a user may name an image by (ID, name, file, URL, `docker://`);
//! - [`trust`]: trusted keys per name prefix and signature verification;
//! - [`transfer`]: what both fetchers share: pull policy, progress, the skipped-verification notice;
//! - [`fetch`]: appc discovery, https and file fetches;
//! - [`oci`]: Docker/OCI registries and layouts, converted to what a pod runs.

pub mod archive;
pub mod extract;
pub mod fetch;
pub mod oci;
pub mod reference;
pub mod render;
pub mod store;
pub mod transfer;
pub mod treestore;
pub mod trust;
