//! Storing a resolved image ([`Plan`]) from its source, in named steps: the config is
//! read whole and verified ([`read_config`], [`verify_small_blob`]), checked against
//! the host and the layer list ([`check_platform`], [`check_layers`]); the config and
//! manifests are stored as small blobs; the layers are scheduled ([`schedule_layers`]:
//! reused from the store, transferred, or transferred once for a duplicate), transferred
//! and leased; and the image is recorded with its generated appc manifest.

use std::io::{Read, Write};
use std::path::PathBuf;

use super::convert::{self, LayerIndex, Provenance};
use super::pull::{self, LayerJob};
use super::spec::{self, Digest, ImageConfig, Platform};
use super::{BlobSpec, ContentSource, Identity, OciError, OciFetcher, Plan, CONFIG_LIMIT};
use crate::image::store::{BlobLease, ImageInfo, NewOciImage, StoreError};

/// What becomes of one layer of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LayerSlot {
    /// The store has it (its lease is held).
    Stored,
    /// Transferred by this job (an index into the jobs).
    Transfer(usize),
    /// The same layer as an earlier one being transferred: leased once that is stored.
    Duplicate,
}

/// Which layers to transfer: `stored[i]` says whether the store has layer `i`. Each
/// layer the store lacks is transferred once, however often the image lists it.
pub(super) fn schedule_layers(
    layers: &[BlobSpec],
    diff_ids: &[Digest],
    stored: &[bool],
) -> (Vec<LayerJob>, Vec<LayerSlot>) {
    let mut jobs: Vec<LayerJob> = Vec::new();
    let mut slots = Vec::with_capacity(layers.len());
    for ((spec, diff_id), &have) in layers.iter().zip(diff_ids).zip(stored) {
        if have {
            slots.push(LayerSlot::Stored);
        } else if jobs.iter().any(|j| &j.diff_id == diff_id) {
            slots.push(LayerSlot::Duplicate);
        } else {
            slots.push(LayerSlot::Transfer(jobs.len()));
            jobs.push(LayerJob {
                spec: spec.clone(),
                diff_id: diff_id.clone(),
            });
        }
    }
    (jobs, slots)
}

/// Read the config blob whole (no more than [`CONFIG_LIMIT`]) and verify it.
pub(super) fn read_config(
    source: &dyn ContentSource,
    blob: &BlobSpec,
    image: &str,
) -> Result<Vec<u8>, OciError> {
    let what = "the image config";
    let raw = source.open(blob, what)?;
    if raw.length.is_some_and(|l| l > CONFIG_LIMIT) {
        return Err(OciError::TooLarge {
            what: format!("{what} of {image}"),
            limit: CONFIG_LIMIT,
        });
    }
    let mut bytes = Vec::new();
    raw.reader
        .take(CONFIG_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| OciError::ReadBlob {
            what: what.to_string(),
            image: image.to_string(),
            source,
        })?;
    verify_small_blob(what, image, &bytes, blob, CONFIG_LIMIT)?;
    Ok(bytes)
}

/// A blob read whole: no larger than `limit`, of the size and digest `blob` expects.
pub(super) fn verify_small_blob(
    what: &str,
    image: &str,
    bytes: &[u8],
    blob: &BlobSpec,
    limit: u64,
) -> Result<(), OciError> {
    let len = bytes.len() as u64;
    if len > limit {
        return Err(OciError::TooLarge {
            what: format!("{what} of {image}"),
            limit,
        });
    }
    if let Some(size) = blob.size {
        if size != len {
            return Err(OciError::SizeMismatch {
                what: what.to_string(),
                image: image.to_string(),
                expected: size,
                actual: len,
            });
        }
    }
    if let Some(want) = &blob.digest {
        let actual = want.same_algorithm_of(bytes);
        if &actual != want {
            return Err(OciError::DigestMismatch {
                what: what.to_string(),
                image: image.to_string(),
                expected: want.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    Ok(())
}

pub(super) fn parse_config(bytes: &[u8], image: &str) -> Result<ImageConfig, OciError> {
    serde_json::from_slice(bytes).map_err(|source| OciError::Json {
        what: "the image config",
        image: image.to_string(),
        source,
    })
}

/// An image for another OS is refused; one for another architecture gets a warning
/// (returned, for the user).
pub(super) fn check_platform(
    config: &ImageConfig,
    platform: &Platform,
    image: &str,
) -> Result<Option<String>, OciError> {
    if !config.os.is_empty() && config.os != platform.os {
        return Err(OciError::WrongOs {
            image: image.to_string(),
            found: format!("{}/{}", config.os, config.architecture),
            want: platform.to_string(),
        });
    }
    Ok(
        (!config.architecture.is_empty() && config.architecture != platform.architecture).then(
            || {
                format!(
                    "warning: {image} is built for {}/{}, this host is {platform}",
                    config.os, config.architecture
                )
            },
        ),
    )
}

/// One sha256 diff ID per layer of the manifest.
pub(super) fn check_layers(
    config: &ImageConfig,
    layers: usize,
    image: &str,
) -> Result<(), OciError> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != layers {
        return Err(OciError::LayerCount {
            image: image.to_string(),
            layers,
            diff_ids: diff_ids.len(),
        });
    }
    if let Some(bad) = diff_ids
        .iter()
        .find(|d| d.algorithm() != spec::Algorithm::Sha256)
    {
        return Err(OciError::UnsupportedDiffId {
            image: image.to_string(),
            digest: bad.to_string(),
        });
    }
    Ok(())
}

/// The annotations an image is recorded with: its identity's, and the index it was
/// chosen from.
pub(super) fn annotations(id: &Identity, index: Option<&Digest>) -> Vec<(String, String)> {
    let mut annotations = id.annotations.clone();
    if let Some(d) = index {
        annotations.push(("appc.io/oci/index".into(), d.to_string()));
    }
    annotations
}

impl OciFetcher<'_> {
    /// Store the config, manifest and missing layers of `plan`, then record the image.
    /// On failure, blobs this call stored and no image uses are freed again.
    pub(super) fn import(
        &self,
        source: &dyn ContentSource,
        plan: Plan,
        index: Option<(Vec<u8>, Digest)>,
        id: Identity,
    ) -> Result<ImageInfo, OciError> {
        let mut created: Vec<String> = Vec::new();
        let result = self.import_inner(source, plan, index, &id, &mut created);
        if result.is_err() && !created.is_empty() {
            self.free_created(&created);
        }
        result
    }

    /// Free the blobs a failed import stored, if no image uses them.
    fn free_created(&self, created: &[String]) {
        // A blob's lock can stay held for a moment after its lease is gone (a
        // process forked by another thread keeps a copy of the descriptor until
        // it execs): try again for a short while before leaving it to gc.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match self.store.free_unused_blobs(created) {
                Ok(n) => tracing::debug!(freed = n, "freed the blobs of a failed fetch"),
                Err(e) => {
                    tracing::warn!(error = %manifests::error::chain(&e), "cannot free the blobs of a failed fetch");
                    break;
                }
            }
            let left = created.iter().any(|d| {
                self.store.oci_blob_path(d).exists()
                    && self.store.blob_refcount(d).is_ok_and(|n| n == 0)
            });
            if !left || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn import_inner(
        &self,
        source: &dyn ContentSource,
        plan: Plan,
        index: Option<(Vec<u8>, Digest)>,
        id: &Identity,
        created: &mut Vec<String>,
    ) -> Result<ImageInfo, OciError> {
        let image = id.described.as_str();

        let config_bytes = read_config(source, &plan.config, image)?;
        let config = parse_config(&config_bytes, image)?;
        if let Some(warning) = check_platform(&config, &self.platform, image)? {
            self.progress.message(&warning);
        }
        check_layers(&config, plan.layers.len(), image)?;
        let diff_ids = &config.rootfs.diff_ids;

        let config_lease = self.put_small(&config_bytes, image, created)?;
        let manifest_lease = match &plan.manifest {
            Some((bytes, _)) => Some(self.put_small(bytes, image, created)?),
            None => None,
        };
        let index_lease = match &index {
            Some((bytes, _)) => Some(self.put_small(bytes, image, created)?),
            None => None,
        };

        let layers = self.layers(source, &plan.layers, diff_ids, image, created)?;

        let paths: Vec<PathBuf> = layers.iter().map(|l| l.path().to_path_buf()).collect();
        let layer_index = LayerIndex::build(&paths)?;
        let config_digest = plan
            .config
            .digest
            .clone()
            .unwrap_or_else(|| Digest::sha256_of(&config_bytes));
        let prov = Provenance {
            name: &id.name,
            tag: id.tag.as_deref(),
            manifest_digest: plan.manifest.as_ref().map(|(_, d)| d),
            config_digest: &config_digest,
            annotations: annotations(id, index.as_ref().map(|(_, d)| d)),
        };
        let (_, manifest_json) = convert::image_manifest(&prov, &config, &layer_index)?;
        let info = self
            .store
            .put_oci_image(&NewOciImage {
                name: id.name.clone(),
                manifest_json,
                latest: id.latest,
                source: id.source.to_string(),
                location: id.location.clone(),
                repository: id.repository.clone(),
                tag: id.tag.clone(),
                index_blob: index_lease.as_ref(),
                manifest_blob: manifest_lease.as_ref(),
                config_blob: &config_lease,
                layers: &layers,
            })
            .map_err(Self::store_err("record", image))?;
        tracing::debug!(image = %info.id, name = %info.name, "stored OCI image");
        Ok(info)
    }

    /// Store a config or manifest (unless the store has it); a blob this stored is
    /// added to `created`.
    fn put_small(
        &self,
        bytes: &[u8],
        image: &str,
        created: &mut Vec<String>,
    ) -> Result<BlobLease, OciError> {
        let digest = Digest::sha256_of(bytes).to_string();
        if let Some(lease) = self
            .store
            .lease_blob(&digest)
            .map_err(Self::store_err("look up a blob of", image))?
        {
            return Ok(lease);
        }
        let mut w = self
            .store
            .blob_writer()
            .map_err(Self::store_err("store", image))?;
        w.write_all(bytes).map_err(|source| OciError::WriteBlob {
            what: "a manifest".to_string(),
            image: image.to_string(),
            source,
        })?;
        let lease = self
            .store
            .commit_blob(w, Some(&digest))
            .map_err(Self::store_err("store", image))?;
        created.push(digest);
        Ok(lease)
    }

    /// A lease on every layer, in order: reused from the store, or transferred (the
    /// ones transferred are added to `created`).
    fn layers(
        &self,
        source: &dyn ContentSource,
        specs: &[BlobSpec],
        diff_ids: &[Digest],
        image: &str,
        created: &mut Vec<String>,
    ) -> Result<Vec<BlobLease>, OciError> {
        let mut stored: Vec<Option<BlobLease>> = Vec::with_capacity(specs.len());
        for diff_id in diff_ids.iter().take(specs.len()) {
            stored.push(self.lease_layer(diff_id, image)?);
        }
        let have: Vec<bool> = stored.iter().map(Option::is_some).collect();
        let (jobs, slots) = schedule_layers(specs, diff_ids, &have);
        let reused = have.iter().filter(|&&h| h).count();
        if reused > 0 {
            self.progress.message(&format!(
                "{image}: {reused} of {} layers already in the store",
                specs.len()
            ));
        }
        created.extend(jobs.iter().map(|j| j.diff_id.to_string()));
        let fetched = pull::fetch_layers(self.store, source, &jobs, image, self.progress)?;
        let mut fetched: Vec<Option<BlobLease>> = fetched.into_iter().map(Some).collect();
        let mut layers = Vec::with_capacity(slots.len());
        for ((slot, lease), diff_id) in slots.into_iter().zip(stored).zip(diff_ids) {
            let lease = match (slot, lease) {
                (LayerSlot::Stored, Some(lease)) => Some(lease),
                (LayerSlot::Transfer(j), _) => fetched[j].take(),
                _ => None,
            };
            // Duplicates (and any slot not filled above) lease the now-stored blob.
            let lease = match lease {
                Some(l) => l,
                None => self
                    .lease_layer(diff_id, image)?
                    .ok_or_else(|| OciError::Store {
                        op: "find a layer of",
                        image: image.to_string(),
                        source: Box::new(StoreError::NotFound {
                            id: diff_id.to_string(),
                        }),
                    })?,
            };
            layers.push(lease);
        }
        Ok(layers)
    }

    fn lease_layer(&self, diff_id: &Digest, image: &str) -> Result<Option<BlobLease>, OciError> {
        self.store
            .lease_blob(&diff_id.to_string())
            .map_err(Self::store_err("look up a layer of", image))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Locator;
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    fn blob(n: u8) -> BlobSpec {
        BlobSpec {
            digest: Some(digest(n)),
            size: Some(1),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
            locator: Locator::Digest(digest(n)),
        }
    }

    #[test]
    fn layers_missing_from_the_store_are_transferred_once() {
        use LayerSlot::*;
        // (layers by diff ID, which the store has, the jobs' layers, the slots)
        type Case = (
            &'static [u8],
            &'static [bool],
            &'static [u8],
            &'static [LayerSlot],
        );
        let table: &[Case] = &[
            (&[], &[], &[], &[]),
            (&[1, 2], &[true, true], &[], &[Stored, Stored]),
            (
                &[1, 2, 3],
                &[false, true, false],
                &[1, 3],
                &[Transfer(0), Stored, Transfer(1)],
            ),
            (
                &[1, 2, 1],
                &[false, false, false],
                &[1, 2],
                &[Transfer(0), Transfer(1), Duplicate],
            ),
            // A stored layer listed again is leased again, not transferred.
            (&[1, 1], &[true, true], &[], &[Stored, Stored]),
            (
                &[4, 4, 4],
                &[false, false, false],
                &[4],
                &[Transfer(0), Duplicate, Duplicate],
            ),
        ];
        for (ids, stored, want_jobs, want_slots) in table {
            let specs: Vec<BlobSpec> = ids.iter().map(|&n| blob(n)).collect();
            let diff_ids: Vec<Digest> = ids.iter().map(|&n| digest(n)).collect();
            let (jobs, slots) = schedule_layers(&specs, &diff_ids, stored);
            let job_ids: Vec<Digest> = jobs.iter().map(|j| j.diff_id.clone()).collect();
            let want_ids: Vec<Digest> = want_jobs.iter().map(|&n| digest(n)).collect();
            assert_eq!(job_ids, want_ids, "{ids:?} {stored:?}");
            for j in &jobs {
                assert_eq!(
                    j.spec.digest.as_ref(),
                    Some(&j.diff_id),
                    "a job keeps its layer's spec"
                );
            }
            assert_eq!(slots, *want_slots, "{ids:?} {stored:?}");
        }
    }

    #[test]
    fn small_blobs_are_checked_for_size_length_and_digest() {
        let bytes = b"{}";
        let good = BlobSpec {
            digest: Some(Digest::sha256_of(bytes)),
            size: Some(2),
            media_type: String::new(),
            locator: Locator::Path("config.json".into()),
        };
        assert!(verify_small_blob("the image config", "img", bytes, &good, 2).is_ok());
        let unknown = BlobSpec {
            digest: None,
            size: None,
            ..good.clone()
        };
        assert!(verify_small_blob("the image config", "img", bytes, &unknown, 2).is_ok());

        let err = verify_small_blob("the image config", "img", bytes, &good, 1).unwrap_err();
        assert!(
            matches!(&err, OciError::TooLarge { what, limit: 1 } if what == "the image config of img"),
            "{err}"
        );
        let wrong_size = BlobSpec {
            size: Some(3),
            ..good.clone()
        };
        let err = verify_small_blob("the image config", "img", bytes, &wrong_size, 9).unwrap_err();
        assert!(
            matches!(
                err,
                OciError::SizeMismatch {
                    expected: 3,
                    actual: 2,
                    ..
                }
            ),
            "{err}"
        );
        let wrong_digest = BlobSpec {
            digest: Some(Digest::sha256_of(b"[]")),
            ..good
        };
        let err =
            verify_small_blob("the image config", "img", bytes, &wrong_digest, 9).unwrap_err();
        match err {
            OciError::DigestMismatch {
                expected, actual, ..
            } => {
                assert_eq!(expected, Digest::sha256_of(b"[]").to_string());
                assert_eq!(actual, Digest::sha256_of(bytes).to_string());
            }
            other => panic!("unexpected {other}"),
        }
    }

    fn config(os: &str, arch: &str, diff_ids: Vec<Digest>) -> ImageConfig {
        let mut c = ImageConfig {
            os: os.into(),
            architecture: arch.into(),
            ..ImageConfig::default()
        };
        c.rootfs.diff_ids = diff_ids;
        c
    }

    #[test]
    fn the_config_must_fit_the_host_and_the_layers() {
        let host = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        };
        // (os, architecture, refused, warned)
        let table = [
            ("linux", "amd64", false, false),
            ("", "", false, false),
            ("linux", "", false, false),
            ("linux", "arm64", false, true),
            ("", "arm64", false, true),
            ("windows", "amd64", true, false),
        ];
        for (os, arch, refused, warned) in table {
            match check_platform(&config(os, arch, vec![]), &host, "img") {
                Err(OciError::WrongOs { found, want, .. }) => {
                    assert!(refused, "{os}/{arch}");
                    assert_eq!(found, format!("{os}/{arch}"));
                    assert_eq!(want, "linux/amd64");
                }
                Err(other) => panic!("{os}/{arch}: {other}"),
                Ok(warning) => {
                    assert!(!refused, "{os}/{arch}");
                    assert_eq!(warning.is_some(), warned, "{os}/{arch}: {warning:?}");
                    if let Some(w) = warning {
                        assert_eq!(
                            w,
                            format!(
                                "warning: img is built for {os}/{arch}, this host is linux/amd64"
                            )
                        );
                    }
                }
            }
        }

        let two = config("linux", "amd64", vec![digest(1), digest(2)]);
        assert!(check_layers(&two, 2, "img").is_ok());
        assert!(matches!(
            check_layers(&two, 3, "img"),
            Err(OciError::LayerCount {
                layers: 3,
                diff_ids: 2,
                ..
            })
        ));
        let sha512 = Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap();
        let odd = config("linux", "amd64", vec![digest(1), sha512]);
        assert!(matches!(
            check_layers(&odd, 2, "img"),
            Err(OciError::UnsupportedDiffId { .. })
        ));
    }

    #[test]
    fn recorded_annotations_name_the_index() {
        let id = Identity {
            source: "docker",
            location: "reg".into(),
            repository: "r".into(),
            name: "reg/r".into(),
            tag: None,
            latest: true,
            annotations: vec![("appc.io/docker/registryurl".into(), "reg".into())],
            described: "docker://reg/r".into(),
        };
        assert_eq!(annotations(&id, None), id.annotations);
        let index = digest(9);
        assert_eq!(
            annotations(&id, Some(&index)),
            vec![
                ("appc.io/docker/registryurl".to_string(), "reg".to_string()),
                ("appc.io/oci/index".to_string(), index.to_string()),
            ]
        );
    }
}
