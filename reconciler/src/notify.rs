//! systemd's readiness protocol without libsystemd: one datagram per message to the
//! unix socket named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where `READY=1`, `STATUS=...`, `WATCHDOG=1` and `STOPPING=1` go; a no-op when the
/// service manager did not ask.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (and `WATCHDOG_USEC` / `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        Self::new(
            std::env::var_os("NOTIFY_SOCKET").and_then(|s| s.into_string().ok()),
            std::env::var("WATCHDOG_USEC").ok(),
            std::env::var("WATCHDOG_PID").ok(),
        )
    }

    /// Send nothing.
    pub fn disabled() -> Notifier {
        Self::new(None, None, None)
    }

    fn new(socket: Option<String>, usec: Option<String>, pid: Option<String>) -> Notifier {
        let target = socket.and_then(|s| {
            let addr = match s.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
                None => SocketAddr::from_pathname(&s),
            };
            match (UnixDatagram::unbound(), addr) {
                (Ok(sock), Ok(addr)) => Some((sock, addr)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(socket = %s, error = %e, "cannot use NOTIFY_SOCKET");
                    None
                }
            }
        });
        let for_us = pid
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = usec
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// Send one message (`KEY=VALUE` lines); errors are logged, not returned.
    pub fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.target {
            if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
                tracing::debug!(error = %e, "sd_notify failed");
            }
        }
    }

    /// How often `WATCHDOG=1` should be sent (half the service's `WatchdogSec`).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket_and_an_abstract_one() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(
            Some(path.display().to_string()),
            Some("2000000".into()),
            None,
        );
        n.send("READY=1\nSTATUS=3 pods running");
        let mut buf = [0u8; 128];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=3 pods running");
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(1)));

        let name = format!("rkt-test-{}", std::process::id());
        let abs = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&abs).unwrap();
        let n = Notifier::new(Some(format!("@{name}")), None, None);
        n.send("WATCHDOG=1");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        assert_eq!(n.watchdog_interval(), None);

        // The watchdog is for another process: ignore it. No socket: nothing happens.
        let n = Notifier::new(None, Some("1000".into()), Some("1".into()));
        assert_eq!(n.watchdog_interval(), None);
        n.send("READY=1");
    }
}
