//! Private network namespaces for tests.
//!
//! A test that needs well-known ports on loopback (say `127.0.0.1:80`, so that
//! discovery of `localhost/app` reaches a test server over plain http) moves its
//! thread into a fresh network namespace first. Each namespace has its own `lo`, so
//! tests running in parallel do not collide and the host's network is not touched.
//! Needs root (`CAP_SYS_ADMIN`).

use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::thread;

use rustix::thread::UnshareFlags;

use crate::rkt::rkt_bin;

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

/// Build this workspace's CNI plugins (next to `rkt`, where its default CNI path
/// finds them first) once per test process.
pub fn build_plugins() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "cni-plugins", "--bins"])
            .current_dir(&workspace)
            .status()
            .expect("run cargo build for the CNI plugins");
        assert!(status.success(), "cargo build -p cni-plugins failed");
        let dir = rkt_bin().parent().unwrap().to_path_buf();
        let ours: Vec<&str> = ["bridge", "host-local", "portmap"]
            .into_iter()
            .filter(|p| dir.join(p).is_file())
            .collect();
        eprintln!(
            "network tests: plugins beside rkt: {ours:?} (the rest from /usr/lib/cni, /opt/cni/bin)"
        );
    });
}

/// Run `f` on a thread in a new network and mount namespace: the test's "host".
///
/// Everything pod networking makes (bridges, veths, NAT rules, `ip_forward`) exists
/// only there and vanishes with it; mounts are private, and a tmpfs covers
/// `/var/lib/cni` so IP leases stay private too. `rkt` and the CNI plugins are built
/// first (cargo needs nothing of the test host). A panic in `f` is passed on.
pub fn in_test_host<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    rkt_bin();
    build_plugins();
    thread::Builder::new()
        .name("test-host".into())
        .spawn(move || {
            #[allow(unsafe_code)]
            // SAFETY: CLONE_FILES is not among the flags (the reason unshare is unsafe
            // in rustix); NEWNET and NEWNS only change the namespaces of this thread,
            // which is thrown away afterwards.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET | UnshareFlags::NEWNS) }
                .expect("create the test host's namespaces (are we root?)");
            use rustix::mount::MountPropagationFlags as P;
            rustix::mount::mount_change("/", P::PRIVATE | P::REC).expect("make mounts private");
            sh("ip link set lo up");
            // Leases of host-local (default /var/lib/cni/networks) stay in this
            // namespace. Where /var/lib/cni does not exist, cover /var/lib instead
            // (nothing the tests run needs it) rather than create it on the host.
            if Path::new("/var/lib/cni").is_dir() {
                sh("mount -t tmpfs rkt-e2e-cni /var/lib/cni");
            } else {
                sh("mount -t tmpfs rkt-e2e-cni /var/lib && mkdir -p /var/lib/cni");
            }
            f()
        })
        .expect("spawn the test host thread")
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Run a shell command (in a test host: there); it must succeed. Returns stdout.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
