//! Reporting download progress and notices to the user.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where fetch reports what it is doing. `message` carries notices for people
/// (signature verified, verification skipped); implementations must show them.
pub trait Progress {
    /// A transfer of `total` bytes (when known) starts.
    fn start(&self, what: &str, total: Option<u64>);
    /// `bytes` more were transferred.
    fn advance(&self, bytes: u64);
    /// The current transfer ended (successfully or not).
    fn finish(&self);
    /// A line for the user.
    fn message(&self, msg: &str);
}

/// Progress on stderr: a bar with bytes and rate on a terminal, plain lines
/// otherwise (logs, CI).
#[derive(Debug)]
pub struct StderrProgress {
    terminal: bool,
    state: Mutex<Option<Transfer>>,
}

#[derive(Debug)]
struct Transfer {
    what: String,
    bar: Option<ProgressBar>,
    done: u64,
}

impl StderrProgress {
    /// Draw a bar when stderr is a terminal.
    pub fn new() -> Self {
        Self::with_terminal(std::io::stderr().is_terminal())
    }

    /// Force bar (`true`) or plain-line (`false`) output.
    pub fn with_terminal(terminal: bool) -> Self {
        StderrProgress {
            terminal,
            state: Mutex::new(None),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Transfer>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for StderrProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for StderrProgress {
    fn start(&self, what: &str, total: Option<u64>) {
        let mut state = self.state();
        if let Some(old) = state.take() {
            if let Some(bar) = old.bar {
                bar.finish_and_clear();
            }
        }
        let bar = if self.terminal {
            let (bar, template) = match total {
                Some(len) => (
                    ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()),
                    "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec}",
                ),
                None => (
                    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                    "{spinner} {msg} {bytes} {binary_bytes_per_sec}",
                ),
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_message(what.to_string());
            Some(bar)
        } else {
            match total {
                Some(len) => eprintln!("{what} ({})", human_bytes(len)),
                None => eprintln!("{what}"),
            }
            None
        };
        *state = Some(Transfer {
            what: what.to_string(),
            bar,
            done: 0,
        });
    }

    fn advance(&self, bytes: u64) {
        if let Some(t) = self.state().as_mut() {
            t.done += bytes;
            if let Some(bar) = &t.bar {
                bar.inc(bytes);
            }
        }
    }

    fn finish(&self) {
        if let Some(t) = self.state().take() {
            match t.bar {
                Some(bar) => bar.finish_and_clear(),
                None => eprintln!("{}: done, {}", t.what, human_bytes(t.done)),
            }
        }
    }

    fn message(&self, msg: &str) {
        let state = self.state();
        match state.as_ref().and_then(|t| t.bar.as_ref()) {
            Some(bar) => bar.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }
}

/// A [`Progress`] that shows nothing but notices (for `--quiet` style callers and
/// tests). Messages still go to stderr: they may be security warnings.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuietProgress;

impl Progress for QuietProgress {
    fn start(&self, _what: &str, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
    fn message(&self, msg: &str) {
        eprintln!("{msg}");
    }
}

/// `1.5 MiB` style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn plain_progress_counts_bytes() {
        let p = StderrProgress::with_terminal(false);
        p.start("downloading x", Some(10));
        p.advance(4);
        p.advance(6);
        assert_eq!(p.state().as_ref().map(|t| t.done), Some(10));
        p.finish();
        assert!(p.state().is_none());
        // A bar on a (hidden in tests) terminal target also tracks its position.
        let bar = StderrProgress::with_terminal(true);
        bar.start("downloading y", None);
        bar.advance(7);
        assert_eq!(
            bar.state()
                .as_ref()
                .and_then(|t| t.bar.as_ref())
                .map(|b| b.position()),
            Some(7)
        );
        bar.finish();
    }
}
