//! Reading mount points out of `/proc/<pid>/mountinfo` text.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The mount points at or below `dir`, deepest first (the order to unmount them in).
/// A path mounted over several times appears as often. `dir` must be canonical (no
/// symlinks), as the kernel prints real paths.
pub(super) fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .filter(|mp| mp.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Undo the kernel's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && is_octal(&bytes[i + 1..i + 4]) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

fn is_octal(digits: &[u8]) -> bool {
    digits.len() == 3 && digits[0] <= b'3' && digits.iter().all(|d| (b'0'..=b'7').contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mounts_under_a_dir_deepest_first_with_escapes() {
        let text = "\
22 1 0:21 / / rw - ext4 /dev/sda1 rw
40 22 0:40 / /var/lib/rkt/pods/run/abc rw - tmpfs tmpfs rw
41 40 0:41 / /var/lib/rkt/pods/run/abc/apps/a\\040b/rootfs rw - overlay overlay rw
42 22 0:42 / /var/lib/rkt/pods/run/abcd rw - tmpfs tmpfs rw
43 22 0:43 / /var/lib/rkt/pods/run/abc/x\\134y rw - tmpfs tmpfs rw
";
        let got = mounts_under(text, Path::new("/var/lib/rkt/pods/run/abc"));
        assert_eq!(
            got,
            vec![
                PathBuf::from("/var/lib/rkt/pods/run/abc/apps/a b/rootfs"),
                PathBuf::from("/var/lib/rkt/pods/run/abc/x\\y"),
                PathBuf::from("/var/lib/rkt/pods/run/abc"),
            ]
        );
        assert!(mounts_under(text, Path::new("/srv")).is_empty());
    }
}
