//! Glue between the blob store and the tree store: an image's layers (its appc
//! dependencies, depth-first, then itself; for an OCI image, its layer blobs with
//! whiteouts) and rendering them.

use std::path::{Path, PathBuf};

use crate::image::extract::UnpackOptions;
use crate::image::oci::{self, OciError};
use crate::image::reference::ImageRef;
use crate::image::store::{ImageInfo, Store, StoreError};
use crate::image::treestore::{self, Layer, TreeError, TreeStore};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("image {image} depends on {dependency}, which is not in the store (fetch it first)")]
    MissingDependency { image: String, dependency: String },
    #[error("image {image} has a dependency cycle through {dependency}")]
    DependencyCycle { image: String, dependency: String },
    #[error("no image {0} in the store")]
    NotFound(String),
    #[error(transparent)]
    Reference(#[from] crate::image::reference::ImageRefError),
    #[error(transparent)]
    Oci(#[from] Box<OciError>),
}

/// Find an image already in the store by ID prefix, by name (`name[:version][,k=v]`)
/// or by `docker://` reference.
pub fn lookup(store: &Store, input: &str) -> Result<ImageInfo, ImageError> {
    match ImageRef::parse(input)? {
        ImageRef::Docker(reference) => oci::lookup(store, &reference)
            .map_err(Box::new)?
            .ok_or_else(|| ImageError::NotFound(input.to_string())),
        ImageRef::Hash(prefix) => Ok(store.resolve(&prefix)?),
        ImageRef::Name { name, labels } => store
            .find_by_name(name.as_str(), &labels)?
            .ok_or_else(|| ImageError::NotFound(input.to_string())),
        _ => Err(ImageError::NotFound(input.to_string())),
    }
}

/// The image's layers in application order: dependencies depth-first, the image last.
pub fn layers(store: &Store, image: &ImageInfo) -> Result<Vec<ImageInfo>, ImageError> {
    let mut out = Vec::new();
    let mut stack = Vec::new();
    collect(store, image, &mut stack, &mut out)?;
    Ok(out)
}

fn collect(
    store: &Store,
    image: &ImageInfo,
    stack: &mut Vec<String>,
    out: &mut Vec<ImageInfo>,
) -> Result<(), ImageError> {
    stack.push(image.id.clone());
    for dep in &image.manifest.dependencies {
        let labels: Vec<(String, String)> = dep
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let found = match &dep.image_id {
            Some(id) => store.get(id)?,
            None => store.find_by_name(dep.image_name.as_str(), &labels)?,
        };
        let dep_info = found.ok_or_else(|| ImageError::MissingDependency {
            image: image.name.clone(),
            dependency: dep.image_name.to_string(),
        })?;
        if stack.contains(&dep_info.id) {
            return Err(ImageError::DependencyCycle {
                image: image.name.clone(),
                dependency: dep_info.name.clone(),
            });
        }
        if !out.iter().any(|i: &ImageInfo| i.id == dep_info.id) {
            collect(store, &dep_info, stack, out)?;
        }
    }
    stack.pop();
    out.push(image.clone());
    Ok(())
}

/// The tar files to apply, in order, to render `image`: for an ACI, the `rootfs/` of
/// each layer of [`layers`]; for an OCI image, its uncompressed layer blobs, with
/// whiteouts.
pub fn render_layers(store: &Store, image: &ImageInfo) -> Result<Vec<Layer>, ImageError> {
    let oci_layers = store.oci_layers(&image.id)?;
    if !oci_layers.is_empty() {
        return Ok(oci_layers
            .into_iter()
            .map(|path| Layer {
                path,
                options: UnpackOptions {
                    whiteouts: true,
                    ..UnpackOptions::default()
                },
            })
            .collect());
    }
    Ok(layers(store, image)?
        .iter()
        .map(|l| Layer::aci(store.blob_path(&l.id)))
        .collect())
}

/// Render an image into the tree store (cached) and return its rootfs path.
pub fn render(store: &Store, image: &ImageInfo) -> Result<PathBuf, ImageError> {
    let trees = TreeStore::new(store.tree_dir());
    let layers = render_layers(store, image)?;
    Ok(trees.render_layers(
        &image.id,
        &layers,
        &image.manifest_json,
        &image.manifest.path_whitelist,
    )?)
}

/// Render an image's layers straight into `dest` (`rkt image render`), writing
/// `dest/manifest` and `dest/rootfs`, or only the rootfs into `dest`.
pub fn render_to(
    store: &Store,
    image: &ImageInfo,
    dest: &Path,
    rootfs_only: bool,
) -> Result<(), ImageError> {
    let layers = render_layers(store, image)?;
    let rootfs = if rootfs_only {
        dest.to_path_buf()
    } else {
        dest.join("rootfs")
    };
    treestore::render_layers_into(&rootfs, &layers, &image.manifest.path_whitelist)?;
    if !rootfs_only {
        std::fs::write(dest.join("manifest"), &image.manifest_json).map_err(|source| {
            ImageError::Tree(TreeError::WriteFile {
                path: dest.join("manifest"),
                source,
            })
        })?;
    }
    Ok(())
}
