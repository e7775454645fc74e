//! App output: passed through to the supervisor's own stdout/stderr and appended to
//! `apps/<app>/log`, which is capped at `logMaxBytes` with one rotation (`log.1`).
//!
//! stdout and stderr go to the same file, each chunk as it was read from its pipe (a
//! write of up to a page by the app arrives as one chunk), with no marker.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log {path}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write log {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot rotate log {path}")]
    Rotate { path: PathBuf, source: io::Error },
}

/// An append-only log file with one rotation.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    /// 0: no cap.
    max: u64,
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })
}

impl LogFile {
    /// Open (or create) `path` for appending; at most `max` bytes are kept in it before
    /// it is moved to `<path>.1` (0: never).
    pub fn open(path: &Path, max: u64) -> Result<Self, LogError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max,
        })
    }

    /// The rotated file's path: `log` -> `log.1`.
    pub fn rotated_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let rotated = self.rotated_path();
        fs::rename(&self.path, &rotated).map_err(|source| LogError::Rotate {
            path: self.path.clone(),
            source,
        })?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Append `data`, rotating whenever the file would grow past the cap, so neither file
    /// ever exceeds it.
    pub fn append(&mut self, mut data: &[u8]) -> Result<(), LogError> {
        while !data.is_empty() {
            let n = if self.max == 0 {
                data.len()
            } else {
                if self.size >= self.max {
                    self.rotate()?;
                }
                data.len().min((self.max - self.size) as usize)
            };
            self.file
                .write_all(&data[..n])
                .map_err(|source| LogError::Write {
                    path: self.path.clone(),
                    source,
                })?;
            self.size += n as u64;
            data = &data[n..];
        }
        Ok(())
    }
}

/// A log shared by the readers of an app's stdout and stderr.
pub type SharedLog = Arc<Mutex<LogFile>>;

/// Where a pump copies what it reads, besides the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passthrough {
    Stdout,
    Stderr,
}

impl Passthrough {
    fn write(self, data: &[u8]) {
        // The user's terminal may be gone; the log still gets everything.
        let _ = match self {
            Passthrough::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(data).and_then(|()| out.flush())
            }
            Passthrough::Stderr => {
                let mut err = io::stderr().lock();
                err.write_all(data).and_then(|()| err.flush())
            }
        };
    }
}

/// A thread copying one stream until its end.
#[derive(Debug)]
pub struct Pump {
    done: mpsc::Receiver<()>,
    handle: JoinHandle<()>,
}

impl Pump {
    /// Wait for the stream's end until `deadline`; false if it is still open (a
    /// process outside our control holds it), in which case the thread is left behind.
    pub fn join_until(self, deadline: Instant) -> bool {
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(timeout) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = self.handle.join();
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
        }
    }

    /// Whether the stream has ended (the thread is done).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Copy `source` to `pass` (if any) and `log` on a new thread until end of file (or EIO, which a
/// pty master returns once the last slave is closed).
pub fn pump<R: Read + Send + 'static>(
    name: &str,
    mut source: R,
    pass: Option<Passthrough>,
    log: Option<SharedLog>,
) -> io::Result<Pump> {
    let (tx, done) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            let mut log_failed = false;
            loop {
                let n = match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                if let Some(pass) = pass {
                    pass.write(&buf[..n]);
                }
                if let Some(log) = &log {
                    let res = match log.lock() {
                        Ok(mut l) => l.append(&buf[..n]),
                        Err(poisoned) => poisoned.into_inner().append(&buf[..n]),
                    };
                    if let Err(e) = res {
                        if !log_failed {
                            eprintln!("stage1: {}", manifests::error::chain(&e));
                            log_failed = true;
                        }
                    }
                }
            }
            let _ = tx.send(());
        })?;
    Ok(Pump { done, handle })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pipe() -> (File, File) {
        let (r, w) = rustix::pipe::pipe().unwrap();
        (File::from(r), File::from(w))
    }

    #[test]
    fn appends_and_rotates_within_the_cap() {
        // An app's log rotates into the name the pod directory's contract gives.
        use manifests::poddir::{APP_LOG_FILE, APP_LOG_ROTATED_FILE};
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join(APP_LOG_FILE);
        let rotated = t.path().join(APP_LOG_ROTATED_FILE);
        let mut log = LogFile::open(&path, 10).unwrap();
        assert_eq!(log.rotated_path(), rotated);
        log.append(b"0123456").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"0123456");
        log.append(b"789abcdefghij").unwrap();
        assert_eq!(fs::read(&rotated).unwrap(), b"0123456789");
        assert_eq!(fs::read(&path).unwrap(), b"abcdefghij");
        log.append(b"k").unwrap();
        assert_eq!(fs::read(&rotated).unwrap(), b"abcdefghij");
        assert_eq!(fs::read(&path).unwrap(), b"k");
    }

    #[test]
    fn reopen_continues_counting() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("log");
        LogFile::open(&path, 8).unwrap().append(b"abcdef").unwrap();
        LogFile::open(&path, 8).unwrap().append(b"ghij").unwrap();
        assert_eq!(fs::read(t.path().join("log.1")).unwrap(), b"abcdefgh");
        assert_eq!(fs::read(&path).unwrap(), b"ij");
    }

    #[test]
    fn zero_means_no_cap() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("log");
        let mut log = LogFile::open(&path, 0).unwrap();
        log.append(&[b'x'; 100_000]).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 100_000);
        assert!(!t.path().join("log.1").exists());
    }

    #[test]
    fn pump_copies_to_the_log_until_eof() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("log");
        let log = Arc::new(Mutex::new(LogFile::open(&path, 1 << 20).unwrap()));
        let (reader, mut writer) = pipe();
        let p = pump("test", reader, None, Some(log)).unwrap();
        writer.write_all(b"one\n").unwrap();
        writer.write_all(b"two\n").unwrap();
        drop(writer);
        assert!(p.join_until(Instant::now() + Duration::from_secs(10)));
        assert_eq!(fs::read_to_string(&path).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn pump_join_times_out_while_the_stream_is_open() {
        let (reader, writer) = pipe();
        let p = pump("test", reader, None, None).unwrap();
        assert!(!p.join_until(Instant::now() + Duration::from_millis(50)));
        drop(writer);
    }
}
