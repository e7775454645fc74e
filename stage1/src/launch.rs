//! Starting one app: `stage1 app-exec` runs [`exec_app`], which isolates the calling
//! process as the app and replaces it with the app's program.
//!
//! The pod's pid 1 spawns `app-exec` already inside the pod's PID, UTS and IPC
//! namespaces and its mount namespace, with the app's stdio in place. `exec_app` then:
//! joins the app's cgroups; takes a mount namespace of its own; builds the app's root
//! (overlay, kernel filesystems, volumes, `/etc` files, masked and read-only paths —
//! see `rootfs`); `pivot_root`s into it (the fly flavor: `chroot`); resolves the user
//! and group in the app's own `/etc/passwd` and `/etc/group`; creates and enters the
//! working directory (created like Docker does: 0755, owned by the app's user); makes
//! the root read-only if asked; installs the app's seccomp filter (see `seccomp`);
//! drops to the app's identity, capabilities and `no_new_privs` (see `security`);
//! and `execve`s `exec[0]`, searched in the app's
//! `PATH` inside its root when it has no `/`.
//!
//! The fly flavor runs in the host's namespaces with the host's `/proc`, `/dev` and
//! (read-only) `/sys`, `chroot`s instead of `pivot_root`, applies no masked or
//! read-only paths and leaves capabilities alone (as rkt's fly); it still switches
//! to the app's user and groups and honours `noNewPrivileges`.
//!
//! The caller must be single-threaded (credentials and `unshare` act on the calling
//! thread only) and must not rely on signal dispositions: ignored signals stay ignored
//! across `execve`.

use std::convert::Infallible;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use manifests::runtime::{Flavor, RuntimeApp, RuntimeConfig};

use crate::cgroups::{self, CgroupError};
use crate::rootfs::{self, RootfsError};
use crate::seccomp::{Filter, SeccompError};
use crate::security::{self, LookupFailure, Privileges, SecurityError};
use crate::userns::{self, UsernsError};

/// Exit status when the program does not exist (as shells report it).
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status when the program exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status when stage1 could not set the app up.
pub const EXIT_SETUP_FAILED: i32 = 254;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("app {app}")]
    JoinCgroup { app: String, source: CgroupError },
    #[error("app {app}")]
    Rootfs {
        app: String,
        source: Box<RootfsError>,
    },
    #[error("app {app}")]
    Security { app: String, source: SecurityError },
    #[error("app {app}")]
    UserNamespace { app: String, source: UsernsError },
    #[error("app {app}")]
    Seccomp { app: String, source: SeccompError },
    #[error("app {app} has an empty exec list")]
    NoExec { app: String },
    #[error("app {app}: cannot run {program}: not found in the app's PATH {path}")]
    NotFound {
        app: String,
        program: String,
        path: String,
    },
    #[error("app {app}: cannot run {program}: {path} is not an executable file", path = path.display())]
    NotExecutable {
        app: String,
        program: String,
        path: PathBuf,
    },
    #[error("app {app}: cannot run {path}{hint}", path = path.display(),
        hint = if source.kind() == io::ErrorKind::NotFound {
            " (the file or its interpreter is missing in the app's image)"
        } else { "" })]
    Exec {
        app: String,
        path: PathBuf,
        source: io::Error,
    },
}

impl LaunchError {
    /// The exit status `app-exec` ends with: 127 when the program does not exist, 126
    /// when it cannot be executed, 254 when setting the app up failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::NotFound { .. } => EXIT_NOT_FOUND,
            LaunchError::NotExecutable { .. } => EXIT_NOT_EXECUTABLE,
            LaunchError::Exec { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                EXIT_NOT_FOUND
            }
            LaunchError::Exec { .. } => EXIT_NOT_EXECUTABLE,
            _ => EXIT_SETUP_FAILED,
        }
    }
}

/// Becomes `app` of the pod in `pod_dir`; returns only on failure. See the module
/// documentation for the steps.
pub fn exec_app(
    pod_dir: &Path,
    cfg: &RuntimeConfig,
    app: &RuntimeApp,
    cgroups: &[PathBuf],
    userns: Option<OwnedFd>,
) -> Result<Infallible, LaunchError> {
    let name = || app.name.clone();
    let on_rootfs = |source| LaunchError::Rootfs {
        app: name(),
        source: Box::new(source),
    };
    let on_security = |source| LaunchError::Security {
        app: name(),
        source,
    };
    if app.exec.is_empty() {
        return Err(LaunchError::NoExec { app: name() });
    }
    let on_userns = |source| LaunchError::UserNamespace {
        app: name(),
        source,
    };
    // Never run an app as host root that was meant to run in a user namespace.
    if cfg.user_namespace.is_some() && userns.is_none() {
        return Err(on_userns(UsernsError::NoHandle));
    }
    // Catch a bad capability name before doing any work.
    let restrict = cfg.flavor == Flavor::Default;
    if restrict {
        security::parse_capabilities(&app.capabilities).map_err(on_security)?;
    }

    cgroups::join(cgroups).map_err(|source| LaunchError::JoinCgroup {
        app: name(),
        source,
    })?;
    rootfs::private_mount_namespace().map_err(on_rootfs)?;
    let host_resolv = Path::new("/etc/resolv.conf");
    match cfg.flavor {
        Flavor::Default => {
            let ns = userns.as_ref().map(|fd| fd.as_fd());
            let root =
                rootfs::setup_default(pod_dir, cfg, app, host_resolv, ns).map_err(on_rootfs)?;
            rootfs::pivot_into(&root).map_err(on_rootfs)?;
        }
        Flavor::Fly => {
            let root = rootfs::setup_fly(pod_dir, cfg, app, host_resolv).map_err(on_rootfs)?;
            rootfs::chroot_into(&root).map_err(on_rootfs)?;
        }
    }

    // From here on, "/" is the app's root.
    let identity = security::resolve_identity(Path::new("/"), app).map_err(on_security)?;
    // Created by host root: owned by the ids the app has on the host.
    let (wd_uid, wd_gid) =
        userns::host_ids(cfg.user_namespace.as_ref(), identity.uid, identity.gid);
    rootfs::enter_working_dir(&app.working_dir, wd_uid, wd_gid).map_err(on_rootfs)?;
    if app.read_only_rootfs {
        rootfs::remount_root_readonly().map_err(on_rootfs)?;
    }
    let env = security::app_env(app, &identity);
    let privileges = Privileges::for_app(app, identity, restrict).map_err(on_security)?;
    let on_seccomp = |source| LaunchError::Seccomp {
        app: name(),
        source,
    };
    let filter = Filter::for_app(app, cfg.flavor).map_err(on_seccomp)?;
    security::cloexec_fds_above_stdio(Path::new("/proc/self/fd")).map_err(on_security)?;
    // Last thing done with host privileges: from here on the capabilities are the
    // user namespace's (the identity below is taken in it).
    if let Some(ns) = &userns {
        userns::join(ns.as_fd()).map_err(on_userns)?;
    }
    drop(userns);
    // The filter goes on while stage1 still holds CAP_SYS_ADMIN (so it does not
    // depend on no_new_privs); the privilege drop and execve make no blocked call.
    if let Some(filter) = &filter {
        filter.install().map_err(on_seccomp)?;
    }
    security::apply(&privileges).map_err(on_security)?;

    let mut cmd = command_for(&app.name, &app.exec, &env, Path::new("/"))?;
    let path = PathBuf::from(cmd.get_program());
    let source = cmd.exec();
    Err(LaunchError::Exec {
        app: name(),
        path,
        source,
    })
}

/// The command that runs `argv` for `app` with exactly `env`: `argv[0]` is searched
/// in the `PATH` of `env` under `root` (the app's root as the caller sees it) unless
/// it has a `/`, and is kept as the program's `argv[0]`. Also used by `enter`.
pub fn command_for(
    app: &str,
    argv: &[String],
    env: &[(String, String)],
    root: &Path,
) -> Result<Command, LaunchError> {
    let (first, rest) = argv.split_first().ok_or_else(|| LaunchError::NoExec {
        app: app.to_string(),
    })?;
    let path_var = security::env_value(env, "PATH").unwrap_or(manifests::runtime::DEFAULT_PATH);
    let program = security::lookup_executable(root, first, path_var).map_err(|f| match f {
        LookupFailure::NotFound => LaunchError::NotFound {
            app: app.to_string(),
            program: first.clone(),
            path: path_var.to_string(),
        },
        LookupFailure::NotExecutable(path) => LaunchError::NotExecutable {
            app: app.to_string(),
            program: first.clone(),
            path,
        },
    })?;
    let mut cmd = Command::new(program);
    cmd.arg0(first)
        .args(rest)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(exec: &[&str]) -> Vec<String> {
        exec.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        let a = argv(&["nope"]);
        let env = vec![("PATH".to_string(), "/bin".to_string())];
        let root = tempfile::tempdir().unwrap();
        let err = command_for("web", &a, &env, root.path()).unwrap_err();
        assert_eq!(err.exit_code(), 127);
        assert_eq!(
            err.to_string(),
            "app web: cannot run nope: not found in the app's PATH /bin"
        );

        std::fs::create_dir(root.path().join("bin")).unwrap();
        std::fs::write(root.path().join("bin/nope"), "data").unwrap();
        let err = command_for("web", &a, &env, root.path()).unwrap_err();
        assert_eq!(err.exit_code(), 126);
        assert!(
            err.to_string()
                .contains("/bin/nope is not an executable file"),
            "{err}"
        );

        let exec_err = |kind: io::ErrorKind| LaunchError::Exec {
            app: "web".into(),
            path: "/bin/x".into(),
            source: io::Error::from(kind),
        };
        assert_eq!(exec_err(io::ErrorKind::NotFound).exit_code(), 127);
        assert!(exec_err(io::ErrorKind::NotFound)
            .to_string()
            .contains("or its interpreter"));
        assert_eq!(exec_err(io::ErrorKind::PermissionDenied).exit_code(), 126);
        assert_eq!(LaunchError::NoExec { app: "web".into() }.exit_code(), 254);
    }

    #[test]
    fn command_keeps_argv0_and_exact_env() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("bin")).unwrap();
        let prog = root.path().join("bin/tool");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let a = argv(&["tool", "-x", "y"]);
        let env = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("A".to_string(), "1".to_string()),
        ];
        let cmd = command_for("web", &a, &env, root.path()).unwrap();
        assert_eq!(cmd.get_program(), "/bin/tool");
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, vec!["-x", "y"]);
        let envs: Vec<_> = cmd.get_envs().collect();
        assert_eq!(envs.len(), 2);
        assert!(matches!(
            command_for("web", &[], &env, root.path()),
            Err(LaunchError::NoExec { .. })
        ));
    }
}
