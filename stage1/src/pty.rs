//! Interactive pods: a pty whose slave is the app's stdin/stdout/stderr and whose master
//! `stage1 run` relays to its own stdin/stdout (and to the app's log). Pressing `^]` three times within a
//! second kills the pod.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{self, OptionalActions, Termios};

use crate::logs::LogFile;

/// The escape key: `^]`.
pub const ESCAPE: u8 = 0x1d;
/// Presses of [`ESCAPE`] that kill the pod...
pub const ESCAPE_PRESSES: usize = 3;
/// ...when they fall within this window.
pub const ESCAPE_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("cannot allocate a pty")]
    Open(#[source] io::Error),
    #[error("cannot open the pty slave {path}")]
    OpenSlave { path: PathBuf, source: io::Error },
    #[error("cannot set the terminal to raw mode")]
    Raw(#[source] io::Error),
}

/// A freshly allocated pty pair. Both ends are close-on-exec.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Allocate a pty from `/dev/ptmx`.
pub fn open() -> Result<Pty, PtyError> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(|e| PtyError::Open(e.into()))?;
    rustix::pty::grantpt(&master).map_err(|e| PtyError::Open(e.into()))?;
    rustix::pty::unlockpt(&master).map_err(|e| PtyError::Open(e.into()))?;
    let name = rustix::pty::ptsname(&master, Vec::new()).map_err(|e| PtyError::Open(e.into()))?;
    let path = PathBuf::from(std::ffi::OsString::from_vec(name.into_bytes()));
    let slave = rustix::fs::open(
        &path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| PtyError::OpenSlave {
        path: path.clone(),
        source: e.into(),
    })?;
    Ok(Pty { master, slave })
}

/// Copy the window size of terminal `from` to `to`; nothing if `from` is no terminal.
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(ws) = termios::tcgetwinsize(from) {
        let _ = termios::tcsetwinsize(to, ws);
    }
}

/// The user's terminal in raw mode; restored when dropped.
#[derive(Debug)]
pub struct RawTerminal {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawTerminal {
    /// Put `fd` in raw mode if it is a terminal.
    pub fn enable(fd: BorrowedFd<'static>) -> Result<Option<Self>, PtyError> {
        if !termios::isatty(fd) {
            return Ok(None);
        }
        let saved = termios::tcgetattr(fd).map_err(|e| PtyError::Raw(e.into()))?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(fd, OptionalActions::Now, &raw).map_err(|e| PtyError::Raw(e.into()))?;
        Ok(Some(Self { fd, saved }))
    }

    /// Put the terminal back as it was.
    pub fn restore(&self) {
        let _ = termios::tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Counts `^]` presses; reports when [`ESCAPE_PRESSES`] fell within [`ESCAPE_WINDOW`].
#[derive(Debug, Default)]
pub struct EscapeDetector {
    presses: VecDeque<Instant>,
}

impl EscapeDetector {
    /// Feed input read at `now`; true when the pod is to be killed.
    pub fn feed(&mut self, input: &[u8], now: Instant) -> bool {
        for &b in input {
            if b != ESCAPE {
                continue;
            }
            self.presses.push_back(now);
            while self
                .presses
                .front()
                .is_some_and(|t| now.duration_since(*t) > ESCAPE_WINDOW)
            {
                self.presses.pop_front();
            }
            if self.presses.len() >= ESCAPE_PRESSES {
                self.presses.clear();
                return true;
            }
        }
        false
    }
}

/// Tell the user why the pod goes away (the terminal is in raw mode: `\r\n`).
pub fn escape_notice() {
    let _ = io::stderr().write_all(b"\r\nstage1: ^] pressed three times: killing the pod\r\n");
}

/// What the relay asks of its caller after handling input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEvent {
    Nothing,
    /// `^]` was pressed three times: kill the pod.
    Escape,
}

/// Copies our stdin to the pty master and the master's output to our stdout and the
/// app's log. Single-threaded: the caller polls [`Relay::fds`] (in its own loop, which
/// also waits for signals and children) and calls [`Relay::service`]. `stage1 run`
/// cannot start threads once it has unshared its PID namespace, hence no threads here.
#[derive(Debug)]
pub struct Relay {
    master: File,
    log: Option<LogFile>,
    stdin_open: bool,
    master_open: bool,
    detector: EscapeDetector,
    log_failed: bool,
}

impl Relay {
    pub fn new(master: OwnedFd, log: Option<LogFile>) -> Self {
        Self {
            master: File::from(master),
            log,
            stdin_open: true,
            master_open: true,
            detector: EscapeDetector::default(),
            log_failed: false,
        }
    }

    /// The descriptors to poll for reading, in the order [`Relay::service`] expects.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = Vec::with_capacity(2);
        if self.stdin_open {
            fds.push(rustix::stdio::stdin());
        }
        if self.master_open {
            fds.push(self.master.as_fd());
        }
        fds
    }

    /// Handle the descriptors `ready` says are readable (one flag per [`Relay::fds`]).
    pub fn service(&mut self, ready: &[bool]) -> RelayEvent {
        let mut flags = ready.iter().copied();
        let stdin_ready = self.stdin_open && flags.next().unwrap_or(false);
        let master_ready = self.master_open && flags.next().unwrap_or(false);
        if master_ready {
            self.copy_output();
        }
        if stdin_ready {
            return self.copy_input();
        }
        RelayEvent::Nothing
    }

    fn copy_input(&mut self) -> RelayEvent {
        let mut buf = [0u8; 4096];
        match rustix::io::read(rustix::stdio::stdin(), &mut buf) {
            Ok(0) | Err(_) => {
                self.stdin_open = false;
                // VEOF at the start of a line: the app reads end of file.
                let _ = self.master.write_all(&[0x04]);
                RelayEvent::Nothing
            }
            Ok(n) => {
                if self.detector.feed(&buf[..n], Instant::now()) {
                    return RelayEvent::Escape;
                }
                let _ = self.master.write_all(&buf[..n]);
                RelayEvent::Nothing
            }
        }
    }

    fn copy_output(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        match self.master.read(&mut buf) {
            // EIO: the last process holding the app side closed it.
            Ok(0) | Err(_) => self.master_open = false,
            Ok(n) => {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
                if let Some(log) = &mut self.log {
                    if let Err(e) = log.append(&buf[..n]) {
                        if !self.log_failed {
                            eprintln!("stage1: {}", manifests::error::chain(&e));
                            self.log_failed = true;
                        }
                    }
                }
            }
        }
    }

    /// Copy what the app wrote before it ended, until the app side is closed or
    /// `deadline` passes.
    pub fn drain(&mut self, deadline: Instant) {
        while self.master_open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let timeout = rustix::event::Timespec::try_from(left).ok();
            let mut fds = [rustix::event::PollFd::new(
                &self.master,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(0) => return,
                Ok(_) => self.copy_output(),
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
        }
    }

    /// Give the app our terminal's window size (at start and on SIGWINCH).
    pub fn resize(&self) {
        copy_window_size(rustix::stdio::stdin(), self.master.as_fd());
    }
}

/// Make the calling process a session leader whose controlling terminal is `tty`
/// (the app side of the pty, already its stdin).
pub fn become_session_leader(tty: impl AsFd) -> io::Result<()> {
    rustix::process::setsid()?;
    rustix::process::ioctl_tiocsctty(tty)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_escapes_within_a_second() {
        let t0 = Instant::now();
        let mut d = EscapeDetector::default();
        assert!(!d.feed(b"ls\x1d", t0));
        assert!(!d.feed(b"\x1d", t0 + Duration::from_millis(300)));
        assert!(d.feed(b"x\x1d", t0 + Duration::from_millis(900)));
        // The count starts over.
        assert!(!d.feed(b"\x1d\x1d", t0 + Duration::from_millis(950)));
    }

    #[test]
    fn slow_escapes_do_not_kill() {
        let t0 = Instant::now();
        let mut d = EscapeDetector::default();
        assert!(!d.feed(b"\x1d", t0));
        assert!(!d.feed(b"\x1d", t0 + Duration::from_millis(800)));
        assert!(!d.feed(b"\x1d", t0 + Duration::from_millis(1600)));
        assert!(d.feed(b"\x1d", t0 + Duration::from_millis(1700)));
        assert!(EscapeDetector::default().feed(b"\x1d\x1d\x1d", t0));
    }

    #[test]
    fn pty_pair_carries_data_and_window_size() {
        let pty = open().unwrap();
        let ws = rustix::termios::Winsize {
            ws_row: 42,
            ws_col: 117,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&pty.slave, ws).unwrap();
        let other = open().unwrap();
        copy_window_size(pty.slave.as_fd(), other.master.as_fd());
        let got = rustix::termios::tcgetwinsize(&other.slave).unwrap();
        assert_eq!((got.ws_row, got.ws_col), (42, 117));

        let mut slave = File::from(pty.slave);
        slave.write_all(b"hello\n").unwrap();
        let mut master = File::from(pty.master);
        let mut buf = [0u8; 64];
        let n = master.read(&mut buf).unwrap();
        // The line discipline turns "\n" into "\r\n".
        assert_eq!(&buf[..n], b"hello\r\n");
    }
}
