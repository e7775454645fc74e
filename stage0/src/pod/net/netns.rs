//! The pod's network namespace: made by stage0 on a thread of its own, kept alive by
//! a bind mount on a file in the pod directory, removed by unmounting that file.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::thread;

use rustix::mount::{mount_bind, unmount, UnmountFlags};

/// `NSFS_MAGIC`: the file system type of namespace files.
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// Create a new network namespace, bind-mounted on `target` (a file that must not
/// exist yet), with `lo` up. This process's own namespaces do not change: the work
/// happens on a thread that is thrown away afterwards (namespaces belong to threads).
pub fn create(target: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(target)?;
    let path = target.to_path_buf();
    let made = thread::Builder::new()
        .name("netns".into())
        .spawn(move || -> io::Result<()> {
            unshare_net()?;
            mount_bind("/proc/thread-self/ns/net", &path)?;
            if let Err(e) = loopback_up() {
                let _ = unmount(&path, UnmountFlags::DETACH);
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot bring up lo in the new network namespace: {e}"),
                ));
            }
            Ok(())
        })?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the network namespace thread panicked")));
    if made.is_err() {
        let _ = fs::remove_file(target);
    }
    made
}

#[allow(unsafe_code)]
fn unshare_net() -> io::Result<()> {
    // SAFETY: unshare(2) is unsafe in rustix because of CLONE_FILES (another thread
    // could lose sight of descriptors it relies on). Only CLONE_NEWNET is passed: it
    // changes the network namespace of this thread alone, which is thrown away after.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .map_err(io::Error::from)
}

/// Whether `path` is a mounted namespace file.
pub fn is_mounted(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as u64 == NSFS_MAGIC)
}

/// Unmount the namespace file `path` (releasing the namespace once nothing else
/// uses it) and delete the file. Idempotent: a missing or unmounted file is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    // A file can be mounted over more than once; undo every layer.
    while is_mounted(path) {
        unmount(path, UnmountFlags::DETACH)?;
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `ip link set lo up` in this thread's network namespace, over rtnetlink:
/// RTM_NEWLINK for interface index 1 (the loopback device of every namespace) with
/// IFF_UP, and the kernel's acknowledgement.
pub(crate) fn loopback_up() -> io::Result<()> {
    use rustix::net::netlink::SocketAddrNetlink;
    use rustix::net::{recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags};
    use rustix::net::{SocketFlags, SocketType};

    const RTM_NEWLINK: u16 = 16;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const IFF_UP: u32 = 1;
    const LOOPBACK_IFINDEX: i32 = 1;

    // NETLINK_ROUTE is protocol 0.
    let sock = socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes()); // nlmsg_flags
    msg.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    msg.push(0); // ifi_family: AF_UNSPEC
    msg.push(0); // padding
    msg.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    msg.extend_from_slice(&LOOPBACK_IFINDEX.to_ne_bytes()); // ifi_index
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    sendto(
        &sock,
        &msg,
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    let mut buf = [0u8; 256];
    let (len, _) = recv(&sock, &mut buf[..], RecvFlags::empty())?;
    let reply = &buf[..len.min(buf.len())];
    if reply.len() < 20 || u16::from_ne_bytes([reply[4], reply[5]]) != NLMSG_ERROR {
        return Err(io::Error::other("unexpected rtnetlink reply"));
    }
    let errno = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    if errno == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(-errno))
    }
}
