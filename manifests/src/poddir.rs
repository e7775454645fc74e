//! The pod directory's contract between stage0 and stage1 (`docs/stage1.md`), in one
//! place: the names of the files and directories both sides write or read, the
//! environment variable that passes the pod's lock, the time format of the files, and
//! the JSON of the files stage1 writes for stage0 (and the reconciler) to read.
//!
//! Both stages use these definitions instead of spelling the names themselves, so the
//! compiler checks that they agree. Everything here is pure except [`fs`], which holds
//! the one way both stages write these files.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub mod fs;

// Written by stage0 before stage1 runs.

/// The appc PodManifest (JSON).
pub const MANIFEST_FILE: &str = "pod";
/// The resolved runtime configuration ([`crate::runtime::RuntimeConfig`]); all stage1
/// reads of stage0's files.
pub const RUNTIME_FILE: &str = "runtime.json";
/// One directory per app (`apps/<app>/`), made by stage0; see [`app_dir`].
pub const APPS_DIR: &str = "apps";
/// CNI networks: the pod's network namespace, bind-mounted here.
pub const NETNS_FILE: &str = "netns";
/// CNI networks: what each network was attached with, for its release.
pub const NET_DIR: &str = "net";

// Written by stage1, at the pod directory's top.

/// Host PID of the pod's pid 1 (decimal, newline).
pub const PID_FILE: &str = "pid";
/// Empty; exists once every regular app was started.
pub const READY_FILE: &str = "ready";
/// JSON list of the pod's cgroup directories (absolute, leaf first), for `gc`.
pub const CGROUPS_FILE: &str = "cgroups";
/// Backing directories of `kind: empty` volumes (`volumes/<name>/`).
pub const VOLUMES_DIR: &str = "volumes";
/// Bound read-only over each app's `/etc/hosts`.
pub const HOSTS_FILE: &str = "hosts";
/// Bound read-only over each app's `/etc/resolv.conf`.
pub const RESOLV_CONF_FILE: &str = "resolv.conf";

// Written by stage1 in `apps/<app>/`.

/// Mount point of the app's root.
pub const APP_ROOTFS_DIR: &str = "rootfs";
/// The overlay's upper directory: the app's writes.
pub const APP_UPPER_DIR: &str = "upper";
/// The overlay's work directory.
pub const APP_WORK_DIR: &str = "work";
/// The app's PID in the pod's PID namespace, each time it starts.
pub const APP_PID_FILE: &str = "pid";
/// [`AppStatus`] (JSON), each time the app exits.
pub const APP_STATUS_FILE: &str = "status";
/// [`Waiting`] (JSON), while the app waits to be restarted.
pub const APP_WAITING_FILE: &str = "waiting";
/// Empty; exists while the app is ready.
pub const APP_READY_FILE: &str = "ready";
/// [`ProbeReport`] (JSON), after each probe run.
pub const APP_PROBE_FILE: &str = "probe";
/// The app's stdout and stderr.
pub const APP_LOG_FILE: &str = "log";
/// The app's log before its last rotation.
pub const APP_LOG_ROTATED_FILE: &str = "log.1";

/// The environment variable naming the descriptor on which stage0 hands stage1 the pod
/// directory's exclusive `flock`.
pub const LOCK_FD_ENV: &str = "RKT_LOCK_FD";

/// `<pod_dir>/apps/<app>`.
pub fn app_dir(pod_dir: &Path, app: &str) -> PathBuf {
    pod_dir.join(APPS_DIR).join(app)
}

/// A time as the pod's files show it: RFC 3339, UTC, with milliseconds
/// (`2024-05-01T10:00:00.123Z`).
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A time written by [`format_time`] (any RFC 3339 UTC time).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// What stage1 writes to `apps/<app>/status` each time an app exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub exit_code: i32,
    #[serde(default)]
    pub signal: Option<i32>,
    #[serde(default)]
    pub oom_killed: bool,
    /// [`format_time`].
    pub started_at: String,
    /// [`format_time`].
    pub finished_at: String,
    #[serde(default)]
    pub restarts: u32,
}

/// [`Waiting::reason`]: the only one there is.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// What `apps/<app>/waiting` holds while an app waits to be restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// Always [`CRASH_LOOP_BACK_OFF`].
    pub reason: String,
    /// When it is started again ([`format_time`]).
    pub until: String,
}

/// The last result of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub ok: bool,
    pub message: String,
    /// [`format_time`].
    pub at: String,
}

/// What `apps/<app>/probe` holds: the last result of each probe the app has (a key
/// appears after the probe's first run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<ProbeResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<ProbeResult>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_round_trip_with_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_714_557_600_123);
        let s = format_time(t);
        assert_eq!(s, "2024-05-01T10:00:00.123Z");
        assert_eq!(parse_time(&s), Some(t));
        // Seconds only (what older files or other writers may have) parse too.
        assert_eq!(
            parse_time("2024-05-01T10:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_714_557_600))
        );
        for bad in ["", "yesterday", "2024-05-01", "2024-13-01T10:00:00Z"] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn app_dir_is_under_apps() {
        assert_eq!(
            app_dir(Path::new("/pods/run/u"), "web"),
            PathBuf::from("/pods/run/u/apps/web")
        );
    }

    #[test]
    fn status_files_have_the_documented_json() {
        let status = AppStatus {
            exit_code: 137,
            signal: Some(9),
            oom_killed: true,
            started_at: "2024-05-01T10:00:00.000Z".into(),
            finished_at: "2024-05-01T10:00:01.000Z".into(),
            restarts: 2,
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "exitCode": 137, "signal": 9, "oomKilled": true,
                "startedAt": "2024-05-01T10:00:00.000Z",
                "finishedAt": "2024-05-01T10:00:01.000Z", "restarts": 2
            })
        );
        assert_eq!(serde_json::from_value::<AppStatus>(json).unwrap(), status);
        // Older writers left out the optional fields.
        let old: AppStatus =
            serde_json::from_str(r#"{"exitCode": 0, "startedAt": "a", "finishedAt": "b"}"#)
                .unwrap();
        assert_eq!((old.signal, old.oom_killed, old.restarts), (None, false, 0));

        let waiting = Waiting {
            reason: CRASH_LOOP_BACK_OFF.into(),
            until: "2024-05-01T10:00:10.000Z".into(),
        };
        assert_eq!(
            serde_json::to_value(&waiting).unwrap(),
            serde_json::json!({"reason": "CrashLoopBackOff", "until": "2024-05-01T10:00:10.000Z"})
        );

        let mut report = ProbeReport::default();
        assert_eq!(serde_json::to_string(&report).unwrap(), "{}");
        report.readiness = Some(ProbeResult {
            ok: false,
            message: "connection refused".into(),
            at: "t".into(),
        });
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"readiness": {"ok": false, "message": "connection refused", "at": "t"}})
        );
        assert_eq!(serde_json::from_value::<ProbeReport>(json).unwrap(), report);
    }
}
