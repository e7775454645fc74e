//! rkt's `run`/`prepare` argument syntax, parsed without clap's help:
//!
//! ```text
//! rkt run [POD FLAGS] IMAGE [APP FLAGS] [-- ARG...] [--- IMAGE [APP FLAGS] [-- ARG...]]...
//! ```
//!
//! Flags before the first image belong to the pod (clap parses those); everything from
//! the first image on is handed here. `--` starts the app's arguments, `---` the next
//! app, as in rkt 1.x.

use std::path::PathBuf;

use manifests::quantity::{parse_bytes, parse_cpu_millis, QuantityError};
use manifests::runtime::Volume;
use stage0::pod::request::{AppRequest, MountArg, KNOWN_CAPS};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RunArgsError {
    #[error("no image given")]
    NoImage,
    #[error("app {app}: unknown flag {flag} (per-app flags: --exec, --name, --user, --group, --supplementary-gids, --working-dir, --set-env, --environment, --memory, --cpu, --caps-retain, --caps-remove, --readonly-rootfs, --mount, --signature)")]
    UnknownFlag { app: usize, flag: String },
    #[error("app {app}: flag {flag} needs a value")]
    MissingValue { app: usize, flag: String },
    #[error("app {app}: {flag}={value}: {reason}")]
    BadValue {
        app: usize,
        flag: String,
        value: String,
        reason: String,
    },
    #[error("app {app}: expected an image after ---")]
    EmptyApp { app: usize },
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    #[error("invalid {what} {value:?}: {reason}")]
    Spec {
        what: &'static str,
        value: String,
        reason: String,
    },
}

/// Split `IMAGE [flags] [-- args] [--- IMAGE ...]` into apps.
pub fn parse_apps(rest: &[String]) -> Result<Vec<AppRequest>, RunArgsError> {
    if rest.is_empty() {
        return Err(RunArgsError::NoImage);
    }
    let mut apps = Vec::new();
    for (index, segment) in rest.split(|a| a == "---").enumerate() {
        let n = index + 1;
        let Some((image, tail)) = segment.split_first() else {
            return Err(RunArgsError::EmptyApp { app: n });
        };
        if image.starts_with('-') {
            return Err(RunArgsError::EmptyApp { app: n });
        }
        let mut app = AppRequest {
            image: image.clone(),
            ..AppRequest::default()
        };
        let mut i = 0;
        while i < tail.len() {
            let arg = &tail[i];
            if arg == "--" {
                app.args = tail[i + 1..].to_vec();
                app.args_given = true;
                break;
            }
            let Some(flag_body) = arg.strip_prefix("--") else {
                return Err(RunArgsError::UnknownFlag {
                    app: n,
                    flag: arg.clone(),
                });
            };
            let (flag, inline) = match flag_body.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (flag_body, None),
            };
            let flag_name = format!("--{flag}");
            // Boolean flags.
            if flag == "readonly-rootfs" {
                app.readonly_rootfs = match inline.as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(v) => {
                        return Err(RunArgsError::BadValue {
                            app: n,
                            flag: flag_name,
                            value: v.to_string(),
                            reason: "expected true or false".into(),
                        })
                    }
                };
                i += 1;
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    tail.get(i).cloned().ok_or(RunArgsError::MissingValue {
                        app: n,
                        flag: flag_name.clone(),
                    })?
                }
            };
            let bad = |reason: String| RunArgsError::BadValue {
                app: n,
                flag: flag_name.clone(),
                value: value.clone(),
                reason,
            };
            match flag {
                "exec" => app.exec = Some(value.clone()),
                "name" => app.name = Some(value.clone()),
                "user" => app.user = Some(value.clone()),
                "group" => app.group = Some(value.clone()),
                "working-dir" => app.working_dir = Some(value.clone()),
                "signature" => app.signature = Some(PathBuf::from(&value)),
                "set-env" | "environment" => app.env.push(parse_env(&value).map_err(bad)?),
                "supplementary-gids" => {
                    for g in value.split(',').filter(|g| !g.is_empty()) {
                        app.supplementary_gids
                            .push(g.parse().map_err(|_| bad(format!("{g:?} is not a gid")))?);
                    }
                }
                "memory" => app.memory = Some(parse_bytes(&value)?),
                "cpu" => app.cpu_millis = Some(parse_cpu_millis(&value)?),
                "caps-retain" => app.caps_retain = Some(parse_caps(&value).map_err(bad)?),
                "caps-remove" => app.caps_remove = Some(parse_caps(&value).map_err(bad)?),
                "mount" => app.mounts.push(parse_mount(&value).map_err(bad)?),
                _ => {
                    return Err(RunArgsError::UnknownFlag {
                        app: n,
                        flag: flag_name,
                    })
                }
            }
            i += 1;
        }
        if app.caps_retain.is_some() && app.caps_remove.is_some() {
            return Err(RunArgsError::BadValue {
                app: n,
                flag: "--caps-retain".into(),
                value: String::new(),
                reason: "--caps-retain and --caps-remove exclude each other".into(),
            });
        }
        apps.push(app);
    }
    Ok(apps)
}

/// `KEY=VALUE`.
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE".to_string())?;
    if k.is_empty() || k.contains(char::is_whitespace) {
        return Err("the variable name must be non-empty, without spaces".into());
    }
    Ok((k.to_string(), v.to_string()))
}

/// `CAP_NET_ADMIN,cap_sys_time,NET_RAW` -> canonical `CAP_*` names.
pub fn parse_caps(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let upper = raw.to_ascii_uppercase();
        let name = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        if !KNOWN_CAPS.contains(&name.as_str()) {
            return Err(format!("unknown capability {raw}"));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// `volume=NAME,target=PATH`
pub fn parse_mount(s: &str) -> Result<MountArg, String> {
    let mut volume = None;
    let mut target = None;
    for kv in s.split(',') {
        match kv.split_once('=') {
            Some(("volume", v)) => volume = Some(v.to_string()),
            Some(("target", v)) => target = Some(v.to_string()),
            _ => {
                return Err(format!(
                    "unexpected {kv:?}; expected volume=NAME,target=PATH"
                ))
            }
        }
    }
    let volume = volume.ok_or("missing volume=NAME")?;
    let target = target.ok_or("missing target=PATH")?;
    if !target.starts_with('/') {
        return Err(format!("target {target:?} must be an absolute path"));
    }
    Ok(MountArg {
        volume,
        target,
        read_only: false,
    })
}

/// `NAME,kind=host,source=PATH[,readOnly=true]` or `NAME,kind=empty[,mode=0755,uid=0,gid=0]`.
pub fn parse_volume(s: &str) -> Result<Volume, RunArgsError> {
    let bad = |reason: &str| RunArgsError::Spec {
        what: "--volume",
        value: s.to_string(),
        reason: reason.to_string(),
    };
    let mut parts = s.split(',');
    let name = parts.next().unwrap_or_default().to_string();
    if name.is_empty() || name.contains('=') {
        return Err(bad("start with the volume's name"));
    }
    let (mut kind, mut source, mut read_only) = (None, None, false);
    let (mut mode, mut uid, mut gid) = ("0755".to_string(), 0u32, 0u32);
    for kv in parts {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad("options are key=value"))?;
        match k {
            "kind" => kind = Some(v.to_string()),
            "source" => source = Some(PathBuf::from(v)),
            "readOnly" => {
                read_only = v.parse().map_err(|_| bad("readOnly is true or false"))?;
            }
            "mode" => {
                u32::from_str_radix(v, 8).map_err(|_| bad("mode is octal, like 0755"))?;
                mode = v.to_string();
            }
            "uid" => uid = v.parse().map_err(|_| bad("uid is a number"))?,
            "gid" => gid = v.parse().map_err(|_| bad("gid is a number"))?,
            "recursive" => {}
            _ => return Err(bad(&format!("unknown option {k}"))),
        }
    }
    match kind.as_deref() {
        Some("host") => {
            let source = source.ok_or_else(|| bad("kind=host needs source=PATH"))?;
            if !source.is_absolute() {
                return Err(bad("source must be an absolute path"));
            }
            Ok(Volume::Host {
                name,
                source,
                read_only,
            })
        }
        Some("empty") => Ok(Volume::Empty {
            name,
            mode,
            uid,
            gid,
        }),
        _ => Err(bad("kind is host or empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn single_app_with_flags_and_args() {
        let apps = parse_apps(&v(&[
            "example.com/busybox",
            "--exec=/bin/echo",
            "--set-env",
            "A=1",
            "--memory=64Mi",
            "--cpu",
            "500m",
            "--readonly-rootfs",
            "--",
            "hello",
            "--not-a-flag",
        ]))
        .unwrap();
        assert_eq!(apps.len(), 1);
        let a = &apps[0];
        assert_eq!(a.image, "example.com/busybox");
        assert_eq!(a.exec.as_deref(), Some("/bin/echo"));
        assert_eq!(a.args, v(&["hello", "--not-a-flag"]));
        assert!(a.args_given && a.readonly_rootfs);
        assert_eq!(a.env, vec![("A".into(), "1".into())]);
        assert_eq!(a.memory, Some(64 << 20));
        assert_eq!(a.cpu_millis, Some(500));
    }

    #[test]
    fn several_apps() {
        let apps = parse_apps(&v(&[
            "a.aci",
            "--name=one",
            "---",
            "b.aci",
            "--",
            "x",
            "---",
            "c.aci",
        ]))
        .unwrap();
        assert_eq!(apps.len(), 3);
        assert_eq!(apps[0].name.as_deref(), Some("one"));
        assert_eq!(apps[1].args, v(&["x"]));
        assert!(!apps[2].args_given);
    }

    #[test]
    fn errors_name_the_app_and_flag() {
        let e = parse_apps(&v(&["a.aci", "---", "b.aci", "--bogus=1"])).unwrap_err();
        assert_eq!(
            e,
            RunArgsError::UnknownFlag {
                app: 2,
                flag: "--bogus".into()
            }
        );
        assert!(matches!(
            parse_apps(&v(&["a.aci", "--exec"])),
            Err(RunArgsError::MissingValue { .. })
        ));
        assert!(matches!(
            parse_apps(&v(&["a.aci", "---"])),
            Err(RunArgsError::EmptyApp { app: 2 })
        ));
        assert!(parse_apps(&v(&["a.aci", "--memory=lots"])).is_err());
        assert!(parse_apps(&v(&["a.aci", "--caps-retain=CAP_NOPE"])).is_err());
        assert!(parse_apps(&v(&["a.aci", "--caps-retain=chown", "--caps-remove=kill"])).is_err());
        assert!(parse_apps(&[]).is_err());
    }

    #[test]
    fn volumes_mounts_caps() {
        assert_eq!(
            parse_volume("data,kind=host,source=/srv,readOnly=true").unwrap(),
            Volume::Host {
                name: "data".into(),
                source: "/srv".into(),
                read_only: true
            }
        );
        assert!(matches!(
            parse_volume("s,kind=empty,mode=0700,uid=5").unwrap(),
            Volume::Empty { uid: 5, .. }
        ));
        assert!(parse_volume("x,kind=host").is_err());
        assert!(parse_volume("x,kind=host,source=rel").is_err());
        assert!(parse_volume("x,kind=weird").is_err());
        assert!(parse_volume("x,kind=empty,mode=999").is_err());
        assert_eq!(
            parse_mount("volume=data,target=/data").unwrap(),
            MountArg {
                volume: "data".into(),
                target: "/data".into(),
                read_only: false,
            }
        );
        assert!(parse_mount("volume=data,target=rel").is_err());
        assert_eq!(
            parse_caps("net_admin,CAP_SYS_TIME,net_admin").unwrap(),
            v(&["CAP_NET_ADMIN", "CAP_SYS_TIME"])
        );
    }
}
