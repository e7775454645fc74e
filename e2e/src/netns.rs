//! Private network namespaces for tests.
//!
//! A test that needs well-known ports on loopback (say `127.0.0.1:80`, so that
//! discovery of `localhost/app` reaches a test server over plain http) moves its
//! thread into a fresh network namespace first. Each namespace has its own `lo`, so
//! tests running in parallel do not collide and the host's network is not touched.
//! Needs root (`CAP_SYS_ADMIN`).

use std::io;
use std::process::Command;
use std::thread;

use rustix::thread::UnshareFlags;

/// Move the **calling thread** into a new network namespace and bring its `lo` up.
///
/// Network namespaces belong to threads: afterwards this thread, and every thread
/// and child process it starts, use the new namespace; the rest of the process stays
/// where it was. There is no way back, so call it only on a thread that is thrown
/// away afterwards — a libtest test function runs on a thread of its own, which is
/// fine; [`in_new_netns`] makes such a thread for you.
pub fn with_new_netns() -> io::Result<()> {
    unshare_net()?;
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "`ip link set lo up` failed in the new network namespace: {status}"
        )));
    }
    Ok(())
}

/// Run `f` on a new thread inside a new network namespace (with `lo` up) and return
/// its result; a panic in `f` is passed on to the caller.
pub fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = thread::Builder::new()
        .name("netns".to_string())
        .spawn(move || {
            with_new_netns().expect("create a network namespace (are we root?)");
            f()
        })
        .expect("spawn a thread");
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[allow(unsafe_code)]
fn unshare_net() -> io::Result<()> {
    // SAFETY: the unsafety of unshare(2) is about CLONE_FILES (a thread losing sight
    // of file descriptors other threads create). CLONE_NEWNET only changes which
    // network namespace new sockets of this thread belong to.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Barrier};

    #[test]
    fn port_80_is_private_to_each_namespace() {
        // Both namespaces hold 127.0.0.1:80 at the same time (the barrier is passed
        // while both listeners are open).
        let barrier = Arc::new(Barrier::new(2));
        let spawn = |barrier: Arc<Barrier>| {
            thread::spawn(move || {
                in_new_netns(move || {
                    let bound = TcpListener::bind("127.0.0.1:80");
                    let connected = bound
                        .as_ref()
                        .ok()
                        .map(|_| TcpStream::connect("127.0.0.1:80").is_ok());
                    barrier.wait();
                    (bound.map(|_| ()).map_err(|e| e.to_string()), connected)
                })
            })
        };
        let a = spawn(Arc::clone(&barrier));
        let b = spawn(barrier);
        for t in [a, b] {
            let (bound, connected) = t.join().unwrap();
            assert_eq!(bound, Ok(()));
            assert_eq!(connected, Some(true));
        }
    }
}
