//! Watching the pods dir with inotify. Events only say "look again": every pass reads
//! the whole directory, so a lost or coalesced event at worst waits for the periodic
//! resync.
//!
//! Two watches: the directory the pods dir resolves to (file created, written,
//! renamed, removed), and its parent as given (the pods dir itself created, removed or
//! swapped: GitOps tools rename a new symlink over it). When the name resolves to a new
//! directory the first watch moves there.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use super::observe::{is_manifest_name, resolve_dir};

/// How often the watch thread wakes without events (to notice a stop request, and a
/// pods dir that appeared or moved without an event it could see).
const TICK: Duration = Duration::from_millis(250);

/// A running watch; stops (and joins its thread) when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Watch `pods_dir` and call `changed` (from the watch thread) whenever something
    /// in it, or the directory itself, may have changed.
    pub fn spawn(pods_dir: &Path, changed: impl Fn() + Send + 'static) -> io::Result<Watcher> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let pods_dir = std::path::absolute(pods_dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("pods-dir-watch".into())
            .spawn(move || {
                let mut state = WatchState::new(fd, pods_dir);
                state.run(&flag, &changed);
            })?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct WatchState {
    fd: OwnedFd,
    pods_dir: PathBuf,
    name: Option<OsString>,
    parent: Option<(i32, PathBuf)>,
    dir: Option<(i32, PathBuf)>,
}

const DIR_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

const PARENT_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

impl WatchState {
    fn new(fd: OwnedFd, pods_dir: PathBuf) -> WatchState {
        WatchState {
            fd,
            name: pods_dir.file_name().map(|n| n.to_os_string()),
            pods_dir,
            parent: None,
            dir: None,
        }
    }

    /// Make the watches match what the path resolves to now; true if anything moved.
    fn rewatch(&mut self) -> bool {
        let mut moved = false;
        if self.parent.is_none() {
            if let Some(parent) = self.pods_dir.parent() {
                if let Ok(wd) = inotify::add_watch(&self.fd, parent, PARENT_EVENTS) {
                    self.parent = Some((wd, parent.to_path_buf()));
                }
            }
        }
        let target = resolve_dir(&self.pods_dir).ok().flatten();
        let current = self.dir.as_ref().map(|(_, p)| p.clone());
        if target != current {
            moved = true;
            if let Some((wd, _)) = self.dir.take() {
                let _ = inotify::remove_watch(&self.fd, wd);
            }
            if let Some(t) = target {
                if let Ok(wd) = inotify::add_watch(&self.fd, &t, DIR_EVENTS) {
                    self.dir = Some((wd, t));
                }
            }
        }
        moved
    }

    fn run(&mut self, stop: &AtomicBool, changed: &dyn Fn()) {
        self.rewatch();
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: TICK.as_nanos() as _,
        };
        while !stop.load(Ordering::Relaxed) {
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&tick)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "inotify poll failed; relying on the resync");
                    thread::sleep(TICK);
                }
            }
            let mut relevant = false;
            let mut relink = false;
            let mut reader = inotify::Reader::new(self.fd.as_fd(), &mut buf);
            loop {
                let ev = match reader.next() {
                    Ok(ev) => ev,
                    Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading inotify events failed");
                        break;
                    }
                };
                let flags = ev.events();
                if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                    relevant = true;
                    relink = true;
                    continue;
                }
                let name = ev
                    .file_name()
                    .map(|n| OsString::from(n.to_string_lossy().into_owned()));
                let wd = ev.wd();
                if self.parent.as_ref().is_some_and(|(p, _)| *p == wd) {
                    if flags.intersects(
                        ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::IGNORED,
                    ) {
                        self.parent = None;
                        relink = true;
                        relevant = true;
                    } else if name.is_some() && name == self.name {
                        relink = true;
                        relevant = true;
                    }
                } else if self.dir.as_ref().is_some_and(|(d, _)| *d == wd) {
                    if flags.intersects(
                        ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::IGNORED,
                    ) {
                        relink = true;
                        relevant = true;
                    } else if flags.contains(ReadFlags::ISDIR) {
                        // Subdirectories are not read.
                    } else if name
                        .as_ref()
                        .and_then(|n| n.to_str())
                        .is_some_and(is_manifest_name)
                    {
                        relevant = true;
                    }
                }
            }
            // A link further up may have moved without an event here: check each tick.
            if self.rewatch() || relink {
                relevant = true;
            }
            if relevant {
                changed();
            }
        }
    }
}

#[cfg(test)]
mod tests;
