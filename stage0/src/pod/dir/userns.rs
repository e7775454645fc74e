//! Host id ranges for pods with a user namespace (`rkt run --private-users`,
//! Kubernetes `hostUsers: false`).
//!
//! Each such pod maps container uids and gids `0..65536` onto a range of its own. The
//! ranges are slots of 65536 ids starting at a multiple of 65536 between 2^28 and
//! `0x6fff0000`: far above the ids of the host's users and the usual `/etc/subuid`
//! ranges, and below 2^31 (tools that treat ids as signed stay correct). A pod's
//! preferred slot is derived from its UUID, so the choice is deterministic; a slot held
//! by another pod directory (any state: its files on disk are owned by that range
//! until it is deleted) is skipped for the next free one. The choice and the write of
//! the pod's `runtime.json` happen under one lock (`<dir>/pods/.userns.lock`), so two
//! pods prepared at the same time never get the same range.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use manifests::runtime::UserNamespace;

/// Ids per pod: container ids 0..65535.
pub const RANGE_SIZE: u32 = 65536;
/// The lowest host id a pod's range starts at (2^28).
pub const FIRST_BASE: u32 = 0x1000_0000;
/// The highest host id a pod's range starts at.
pub const LAST_BASE: u32 = 0x6fff_0000;
/// How many ranges there are.
pub const SLOTS: u32 = (LAST_BASE - FIRST_BASE) / RANGE_SIZE + 1;

const LOCK_FILE: &str = ".userns.lock";

/// The range of slot `slot` (`0..SLOTS`).
pub fn range_of_slot(slot: u32) -> UserNamespace {
    let base = FIRST_BASE + (slot % SLOTS) * RANGE_SIZE;
    UserNamespace {
        host_uid: base,
        host_gid: base,
        size: RANGE_SIZE,
    }
}

/// The slot a pod prefers: FNV-1a of its UUID, modulo the number of slots.
pub fn preferred_slot(uuid: &str) -> u32 {
    let hash = uuid.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % SLOTS
}

/// The range for pod `uuid`: its preferred slot, else the next one (wrapping around)
/// that overlaps none of `taken`. `None` when every slot is taken.
pub fn choose(uuid: &str, taken: &[UserNamespace]) -> Option<UserNamespace> {
    let first = preferred_slot(uuid);
    (0..SLOTS)
        .map(|i| range_of_slot((first + i) % SLOTS))
        .find(|r| !taken.iter().any(|t| t.overlaps(r)))
}

/// The user namespaces of every pod directory under `pods_root` (`<dir>/pods`), in
/// any state. Unreadable or malformed `runtime.json` files are skipped.
pub fn ranges_in_use(pods_root: &Path) -> Vec<UserNamespace> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Partial {
        #[serde(default)]
        user_namespace: Option<UserNamespace>,
    }
    let mut out = Vec::new();
    let Ok(buckets) = fs::read_dir(pods_root) else {
        return out;
    };
    for bucket in buckets.flatten() {
        let Ok(pods) = fs::read_dir(bucket.path()) else {
            continue;
        };
        for pod in pods.flatten() {
            let Ok(bytes) = fs::read(pod.path().join(super::RUNTIME_FILE)) else {
                continue;
            };
            if let Ok(Partial {
                user_namespace: Some(u),
            }) = serde_json::from_slice(&bytes)
            {
                out.push(u);
            }
        }
    }
    out
}

/// Held while a range is chosen and the pod's `runtime.json` is written.
#[derive(Debug)]
pub struct AllocationLock {
    _file: File,
}

/// Take the exclusive allocation lock of `pods_root` (waiting for other preparers).
pub fn lock(pods_root: &Path) -> io::Result<AllocationLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::CLOEXEC.bits() as i32)
        .open(pods_root.join(LOCK_FILE))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    Ok(AllocationLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_high_and_below_2_31() {
        assert_eq!(SLOTS, 24576);
        for slot in [0, 1, SLOTS / 2, SLOTS - 1] {
            let r = range_of_slot(slot);
            assert_eq!(r.host_uid % RANGE_SIZE, 0, "{r:?}");
            assert_eq!(r.host_uid, r.host_gid);
            assert!(r.host_uid >= 1 << 28, "{r:?}");
            assert!(
                u64::from(r.host_uid) + u64::from(r.size) <= 1 << 31,
                "{r:?}"
            );
        }
        assert_eq!(range_of_slot(SLOTS - 1).host_uid, LAST_BASE);
    }

    #[test]
    fn the_choice_is_deterministic_and_skips_taken_ranges() {
        let uuid = "6f1c3e2a-9b7d-4c1e-8a2b-3c4d5e6f7a8b";
        let first = choose(uuid, &[]).unwrap();
        assert_eq!(first, choose(uuid, &[]).unwrap());
        assert_eq!(first, range_of_slot(preferred_slot(uuid)));
        // Another pod holds it: the next slot.
        let second = choose(uuid, &[first]).unwrap();
        assert_eq!(second, range_of_slot((preferred_slot(uuid) + 1) % SLOTS));
        assert!(!second.overlaps(&first));
        // A foreign range overlapping only partly still counts.
        let partial = UserNamespace {
            host_uid: first.host_uid + 100,
            host_gid: 5,
            size: 1,
        };
        assert_ne!(choose(uuid, &[partial]).unwrap(), first);
        // Different UUIDs spread over the slots.
        let slots: std::collections::BTreeSet<u32> = (0..50)
            .map(|i| preferred_slot(&format!("00000000-0000-4000-8000-{i:012x}")))
            .collect();
        assert!(slots.len() > 45, "{slots:?}");
    }

    #[test]
    fn the_last_slot_wraps_to_the_first() {
        // About SLOTS tries on average; the bound is generous.
        let uuid = (0..100 * SLOTS)
            .map(|i| format!("00000000-0000-4000-8000-{i:012x}"))
            .find(|u| preferred_slot(u) == SLOTS - 1)
            .expect("a UUID preferring the last slot");
        let taken = [range_of_slot(SLOTS - 1)];
        assert_eq!(choose(&uuid, &taken).unwrap(), range_of_slot(0));
    }

    #[test]
    fn ranges_in_use_reads_every_state_directory() {
        let root = tempfile::tempdir().unwrap();
        let write = |bucket: &str, uuid: &str, json: &str| {
            let dir = root.path().join(bucket).join(uuid);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("runtime.json"), json).unwrap();
        };
        write(
            "run",
            "a",
            r#"{"userNamespace": {"hostUid": 268435456, "hostGid": 268435456, "size": 65536}}"#,
        );
        write(
            "exited-garbage",
            "b",
            r#"{"userNamespace": {"hostUid": 268500992, "hostGid": 268500992, "size": 65536}}"#,
        );
        write("prepared", "c", r#"{"userNamespace": null}"#);
        write("prepared", "d", "not json");
        fs::create_dir_all(root.path().join("garbage/e")).unwrap();
        let mut got: Vec<u32> = ranges_in_use(root.path())
            .iter()
            .map(|u| u.host_uid)
            .collect();
        got.sort();
        assert_eq!(got, vec![268435456, 268500992]);
        assert!(ranges_in_use(&root.path().join("missing")).is_empty());

        // The lock can be taken again once released.
        drop(lock(root.path()).unwrap());
        drop(lock(root.path()).unwrap());
    }
}
