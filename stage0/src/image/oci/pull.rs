//! Transferring layers into the store: up to [`PARALLEL`] at once, each verified
//! against its digest (compressed, as transferred) and its diff ID (uncompressed, as
//! stored), with one progress display for all of them.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use super::spec::{Algorithm, Digest, HashingReader};
use super::{BlobSpec, ContentSource, OciError};
use crate::image::archive;
use crate::image::store::{BlobLease, Store, StoreError};
use crate::image::transfer::Progress;

/// Layers transferred at the same time.
pub const PARALLEL: usize = 3;

/// One layer to transfer.
#[derive(Debug, Clone)]
pub struct LayerJob {
    pub spec: BlobSpec,
    /// The sha256 of the uncompressed layer, from the image config.
    pub diff_id: Digest,
}

impl LayerJob {
    fn what(&self) -> String {
        format!(
            "layer {}",
            self.spec.digest.as_ref().unwrap_or(&self.diff_id).short()
        )
    }
}

/// Counts bytes as they are read and reports them; fails the read once `report`
/// says to stop (another layer failed).
struct Counting<'r, R> {
    inner: R,
    report: &'r (dyn Fn(u64) -> bool + Sync),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && !(self.report)(n as u64) {
            return Err(io::Error::other(Stopped));
        }
        Ok(n)
    }
}

/// The read error of a transfer stopped because another one failed.
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped: another layer failed")
    }
}

impl std::error::Error for Stopped {}

enum Event {
    Bytes(u64),
    /// Job index, whether it is the failure that stopped the others, the result.
    Done(usize, bool, Box<Result<BlobLease, OciError>>),
}

/// Transfer `jobs` (none of which is in the store) and return their leases in the
/// same order. On failure, the first error in job order is returned; blobs already
/// committed by this call are left for the caller to free.
pub fn fetch_layers(
    store: &Store,
    source: &dyn ContentSource,
    jobs: &[LayerJob],
    image: &str,
    progress: &dyn Progress,
) -> Result<Vec<BlobLease>, OciError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let total: Option<u64> = jobs.iter().map(|j| j.spec.size).sum();
    let plural = if jobs.len() == 1 { "" } else { "s" };
    progress.start(
        &format!("downloading {} layer{plural} of {image}", jobs.len()),
        total,
    );
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut results: Vec<Option<Result<BlobLease, OciError>>> =
        (0..jobs.len()).map(|_| None).collect();
    let mut primary = None;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Event>();
        for _ in 0..PARALLEL.min(jobs.len()) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else {
                    break;
                };
                let report = |n: u64| {
                    let _ = tx.send(Event::Bytes(n));
                    !stop.load(Ordering::SeqCst)
                };
                let result = fetch_layer(store, source, job, image, &report);
                // The first failure stops the others; theirs are consequences.
                let primary = result.is_err()
                    && stop
                        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                let _ = tx.send(Event::Done(i, primary, Box::new(result)));
            });
        }
        drop(tx);
        for event in rx {
            match event {
                Event::Bytes(n) => progress.advance(n),
                Event::Done(i, is_primary, result) => {
                    if is_primary {
                        primary = Some(i);
                    }
                    results[i] = Some(*result);
                }
            }
        }
    });
    progress.finish();
    if let Some(Some(Err(e))) = primary.map(|i| results[i].take()) {
        return Err(e);
    }
    let mut leases = Vec::with_capacity(jobs.len());
    for result in results {
        match result {
            Some(Ok(lease)) => leases.push(lease),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(leases)
}

/// Transfer one layer: decompress while hashing both sides, then commit it under its
/// diff ID. Nothing is stored unless both digests (and the size) match.
pub fn fetch_layer(
    store: &Store,
    source: &dyn ContentSource,
    job: &LayerJob,
    image: &str,
    report: &(dyn Fn(u64) -> bool + Sync),
) -> Result<BlobLease, OciError> {
    let what = job.what();
    let raw = source.open(&job.spec, &what)?;
    let algorithm = job
        .spec
        .digest
        .as_ref()
        .map_or(Algorithm::Sha256, Digest::algorithm);
    let counting = Counting {
        inner: raw.reader,
        report,
    };
    let mut hashing = HashingReader::new(counting, algorithm);
    let store_err = |source: StoreError| OciError::Store {
        op: "store",
        image: format!("{what} of {image}"),
        source: Box::new(source),
    };
    let mut writer = store.blob_writer().map_err(store_err)?;
    let read_err = |source: io::Error| OciError::ReadBlob {
        what: what.clone(),
        image: image.to_string(),
        source,
    };
    {
        let (compression, mut plain) = archive::decompress(&mut hashing).map_err(|e| match e {
            archive::ArchiveError::ReadHeader { source } => read_err(source),
        })?;
        tracing::debug!(layer = %what, %compression, "transferring layer");
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match plain.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            writer
                .write_all(&buf[..n])
                .map_err(|source| OciError::WriteBlob {
                    what: what.clone(),
                    image: image.to_string(),
                    source,
                })?;
        }
    }
    let (digest, count) = hashing.finish().map_err(read_err)?;
    if let Some(size) = job.spec.size {
        if count != size {
            return Err(OciError::SizeMismatch {
                what,
                image: image.to_string(),
                expected: size,
                actual: count,
            });
        }
    }
    if let Some(expected) = &job.spec.digest {
        if &digest != expected {
            return Err(OciError::DigestMismatch {
                what,
                image: image.to_string(),
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    store
        .commit_blob(writer, Some(&job.diff_id.to_string()))
        .map_err(|e| match e {
            StoreError::BlobDigest { expected, actual } => OciError::DiffIdMismatch {
                what: what.clone(),
                image: image.to_string(),
                expected,
                actual,
            },
            e => store_err(e),
        })
}
