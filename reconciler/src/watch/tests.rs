use std::fs;
use std::os::unix::fs::symlink;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;

const WAIT: Duration = Duration::from_secs(5);

fn watcher(dir: &Path) -> (Watcher, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let w = Watcher::spawn(dir, move || {
        let _ = tx.send(());
    })
    .unwrap();
    // Let the thread place its watches.
    std::thread::sleep(Duration::from_millis(50));
    (w, rx)
}

/// Wait for a notification; then drain the ones that follow within a short while.
fn expect_event(rx: &mpsc::Receiver<()>, what: &str) {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("no event for {what}"));
    let quiet = Instant::now() + Duration::from_millis(300);
    while let Some(left) = quiet.checked_duration_since(Instant::now()) {
        if rx.recv_timeout(left).is_err() {
            break;
        }
    }
}

#[test]
fn file_changes_in_the_dir_are_reported() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pods.d");
    fs::create_dir(&dir).unwrap();
    let (_w, rx) = watcher(&dir);
    fs::write(dir.join("web.yaml"), "a").unwrap();
    expect_event(&rx, "create");
    fs::write(dir.join(".web.yaml.tmp"), "b").unwrap();
    fs::rename(dir.join(".web.yaml.tmp"), dir.join("web.yaml")).unwrap();
    expect_event(&rx, "atomic replace");
    fs::remove_file(dir.join("web.yaml")).unwrap();
    expect_event(&rx, "remove");
}

#[test]
fn a_missing_dir_is_noticed_when_it_appears() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pods.d");
    let (_w, rx) = watcher(&dir);
    fs::create_dir(&dir).unwrap();
    expect_event(&rx, "mkdir");
    // Now watched: a file inside is seen.
    fs::write(dir.join("a.yaml"), "a").unwrap();
    expect_event(&rx, "file in the new dir");
}

#[test]
fn a_symlink_swap_is_noticed_and_the_new_target_watched() {
    let d = tempfile::tempdir().unwrap();
    let rev1 = d.path().join(".worktrees/rev1");
    let rev2 = d.path().join(".worktrees/rev2");
    fs::create_dir_all(&rev1).unwrap();
    fs::create_dir_all(&rev2).unwrap();
    let link = d.path().join("pods.d");
    symlink(".worktrees/rev1", &link).unwrap();
    let (_w, rx) = watcher(&link);

    symlink(".worktrees/rev2", d.path().join(".pods.d.new")).unwrap();
    fs::rename(d.path().join(".pods.d.new"), &link).unwrap();
    expect_event(&rx, "swap");

    // Writes to the new revision are seen; the old one is no longer of interest.
    fs::write(rev2.join("b.yaml"), "b").unwrap();
    expect_event(&rx, "file in the new target");
    fs::write(rev1.join("old.yaml"), "x").unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(600)).is_err(),
        "a write to the old revision was reported"
    );
}

#[test]
fn ignored_names_do_not_trigger() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("pods.d");
    fs::create_dir(&dir).unwrap();
    let (_w, rx) = watcher(&dir);
    for name in [".hidden.yaml", "web.yaml~", "web.yaml.swp", "notes.txt"] {
        fs::write(dir.join(name), "x").unwrap();
    }
    fs::create_dir(dir.join("sub.yaml")).unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(600)).is_err(),
        "an ignored file triggered a pass"
    );
}
