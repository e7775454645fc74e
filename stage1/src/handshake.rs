//! What the pod's init tells `stage1 run` over the socket pair between them
//! (`init --sync-fd`), and what `run` makes of it.
//!
//! A PID namespace's init only gets the signals it has a handler for, so `run` must not
//! forward a stop signal before init installed its handlers: those would be lost. Init
//! says [`InitMessage::Ready`] once they are in place; until then `run` keeps the stop
//! signals it receives and forwards them afterwards ([`Forwarder`]). End of file (init
//! is gone) ends the wait too.

use rustix::process::Signal;

/// A message from the pod's init to `stage1 run`. Each is one byte on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMessage {
    /// Init handles the stop signals now: `run` may forward them.
    Ready,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the pod's init sent an empty message")]
    Empty,
    #[error("the pod's init sent an unknown message {0:?}")]
    Unknown(Vec<u8>),
}

impl InitMessage {
    /// The bytes this message is sent as.
    pub fn encode(self) -> &'static [u8] {
        match self {
            InitMessage::Ready => b"r",
        }
    }

    /// The message `bytes` (one read, of at most one byte) holds.
    pub fn decode(bytes: &[u8]) -> Result<Self, HandshakeError> {
        match bytes {
            [] => Err(HandshakeError::Empty),
            b"r" => Ok(InitMessage::Ready),
            other => Err(HandshakeError::Unknown(other.to_vec())),
        }
    }
}

/// `stage1 run`'s half of the handshake: which of the signals it received to send on
/// to the pod's init, and when.
#[derive(Debug, Default)]
pub struct Forwarder {
    ready: bool,
    pending: Vec<Signal>,
}

impl Forwarder {
    /// Whether init said it is ready (or can no longer say anything).
    pub fn init_ready(&self) -> bool {
        self.ready
    }

    /// What one read of the socket returned: a message, or `None` at end of file.
    /// Anything but [`InitMessage::Ready`] ends the wait as well (there is nothing
    /// better to wait for); the error says what arrived.
    pub fn received(&mut self, message: Option<&[u8]>) -> Result<(), HandshakeError> {
        self.ready = true;
        match message.map(InitMessage::decode) {
            None | Some(Ok(InitMessage::Ready)) => Ok(()),
            Some(Err(e)) => Err(e),
        }
    }

    /// Takes the raw signals `run` received; returns the stop signals to forward to
    /// init now (every one held back so far, once init is ready; none before).
    pub fn signals(&mut self, raw: impl IntoIterator<Item = i32>) -> Vec<Signal> {
        self.pending.extend(raw.into_iter().filter_map(stop_signal));
        if self.ready {
            std::mem::take(&mut self.pending)
        } else {
            Vec::new()
        }
    }
}

/// The stop signals `run` forwards to init, as received.
fn stop_signal(raw: i32) -> Option<Signal> {
    match raw {
        signal_hook::consts::SIGTERM => Some(Signal::TERM),
        signal_hook::consts::SIGINT => Some(Signal::INT),
        signal_hook::consts::SIGHUP => Some(Signal::HUP),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGWINCH};

    #[test]
    fn messages_round_trip() {
        let m = InitMessage::Ready;
        assert_eq!(InitMessage::decode(m.encode()), Ok(m));
        assert_eq!(m.encode().len(), 1, "one byte on the wire");
    }

    #[test]
    fn malformed_messages_are_rejected() {
        assert_eq!(InitMessage::decode(b""), Err(HandshakeError::Empty));
        for bad in [&b"R"[..], b"x", b"\0", b"rr", b"ready"] {
            assert_eq!(
                InitMessage::decode(bad),
                Err(HandshakeError::Unknown(bad.to_vec())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stop_signals_wait_for_init() {
        let mut f = Forwarder::default();
        assert!(!f.init_ready());
        // Held back until init is ready; other signals are not forwarded at all.
        assert_eq!(f.signals([SIGTERM, SIGCHLD, SIGWINCH]), []);
        assert_eq!(f.signals([SIGINT]), []);
        f.received(Some(InitMessage::Ready.encode())).unwrap();
        assert!(f.init_ready());
        assert_eq!(
            f.signals([SIGHUP]),
            [Signal::TERM, Signal::INT, Signal::HUP]
        );
        assert_eq!(f.signals([]), []);
        assert_eq!(f.signals([SIGTERM]), [Signal::TERM]);
    }

    #[test]
    fn end_of_file_or_garbage_ends_the_wait() {
        let mut f = Forwarder::default();
        f.signals([SIGTERM]);
        f.received(None).unwrap();
        assert_eq!(f.signals([]), [Signal::TERM]);
        let mut f = Forwarder::default();
        assert_eq!(
            f.received(Some(b"?")),
            Err(HandshakeError::Unknown(b"?".to_vec()))
        );
        assert!(f.init_ready());
    }
}
