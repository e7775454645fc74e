//! Fault injection: `kill -9` of the reconciler, of `rkt run` and stage1, and of CNI
//! plugins at points chosen by a seeded random schedule; a full disk under `--dir`; a
//! read-only pods dir; a pods dir of 10,000 files. After each fault one more
//! reconcile must converge (exactly one running pod per manifest) and the leak
//! checker (`e2e::leaks`) must find nothing: no stray pod dirs, mounts, cgroups,
//! processes, veths, IP leases or NAT rules.
//!
//! The seed is printed (`fault seed: N (replay with RKT_FAULT_SEED=N)`); each test
//! derives its own schedule from it and its name, so one test replays alone.
//! `RKT_FAULT_ROUNDS` sets the number of faults per randomised test (CI default:
//! [`DEFAULT_ROUNDS`]); `scripts/soak.sh` runs many more. See `docs/testing.md`.
//!
//! Tests with pods on rkt's default network run in a test host
//! (`e2e::netns::in_test_host`); the others use `hostNetwork: true`. Needs root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::leaks::{cpu_and_peak_rss, Expect, LeakCheck};
use e2e::netns::in_test_host;
use e2e::podenv::{poll, report, PodEnv, Wanted};
use e2e::rkt::{busybox_aci, is_root, rkt_bin};

macro_rules! need_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!("SKIPPED {}: needs root", $name);
            return;
        }
    };
}

/// Faults per randomised test unless `RKT_FAULT_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: usize = 4;

/// How long one convergence after a fault may take.
const CONVERGE: Duration = Duration::from_secs(90);

/// A small, seedable generator (SplitMix64): the schedule must replay exactly.
struct Rng(u64);

impl Rng {
    /// The schedule of test `name`: from `RKT_FAULT_SEED`, or the clock (printed).
    fn for_test(name: &str) -> Rng {
        let seed = std::env::var("RKT_FAULT_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    % 1_000_000_007
            });
        report(&format!(
            "{name}: fault seed: {seed} (replay with RKT_FAULT_SEED={seed})"
        ));
        let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        Rng(seed ^ salt)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn rounds() -> usize {
    std::env::var("RKT_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
}

/// Running totals, printed at the end of each test.
#[derive(Default)]
struct Figures {
    faults: usize,
    converged: usize,
    leaks: usize,
}

impl Figures {
    fn print(&self, test: &str, seen: usize, took: Duration) {
        report(&format!(
            "{test}: faults injected: {}, pods converged: {} ({seen} pods created), leaks found: {} ({:.1}s)",
            self.faults,
            self.converged,
            self.leaks,
            took.as_secs_f64()
        ));
    }
}

/// Converge on `wanted` and check for leaks; panics with the leaks and the state.
fn settle(env: &PodEnv, leaks: &LeakCheck, wanted: &Wanted, pid: i32, fig: &mut Figures) {
    let took = env.wait_converged(wanted, Duration::from_millis(50), CONVERGE);
    let mut expect = Expect::keys(wanted.keys());
    expect.pids.insert(pid);
    let found = leaks.check(&expect);
    for l in &found {
        eprintln!("  leak: {l}");
    }
    fig.leaks += found.len();
    assert!(found.is_empty(), "leaks after a fault: {found:#?}");
    fig.converged += wanted.len();
    eprintln!(
        "  converged on {} pods in {:.2}s, leaks found: 0",
        wanted.len(),
        took.as_secs_f64()
    );
}

/// The same pods, each sleeping `arg`.
fn all(names: &[&str], arg: &str) -> Wanted {
    names
        .iter()
        .map(|n| (n.to_string(), arg.to_string()))
        .collect()
}

/// The next spec of a pod: one second more of sleep.
fn bump(arg: &mut String) {
    *arg = (arg.parse::<u64>().unwrap() + 1).to_string();
}

/// Change the wanted set at random: create, replace or delete some pods. Returns
/// what was done.
fn mutate(rng: &mut Rng, env: &PodEnv, wanted: &mut Wanted, pool: usize, host_net: bool) -> String {
    let absent: Vec<String> = (0..pool)
        .map(|i| format!("f{i}"))
        .filter(|n| !wanted.contains_key(n))
        .collect();
    let op = match rng.below(3) {
        0 if !absent.is_empty() => "create",
        2 if wanted.len() > 1 => "delete",
        _ if wanted.is_empty() => "create",
        _ => "replace",
    };
    let mut touched = Vec::new();
    match op {
        "create" => {
            let n = 1 + rng.below(absent.len() as u64) as usize;
            for name in absent.into_iter().take(n) {
                wanted.insert(name.clone(), "3600".to_string());
                touched.push(name);
            }
        }
        "delete" => {
            let n = 1 + rng.below(wanted.len() as u64 - 1) as usize;
            let victims: Vec<String> = wanted.keys().take(n).cloned().collect();
            for name in victims {
                wanted.remove(&name);
                env.remove(&format!("{name}.yaml"));
                touched.push(name);
            }
        }
        _ => {
            for (name, arg) in wanted.iter_mut() {
                bump(arg);
                touched.push(name.clone());
            }
        }
    }
    for name in &touched {
        if let Some(arg) = wanted.get(name) {
            env.write(&format!("{name}.yaml"), &env.pod(name, arg, host_net));
        }
    }
    format!("{op} {touched:?}")
}

/// kill -9 of the reconciler at a random moment while it creates, replaces or
/// deletes pods on the default network; a new reconciler converges without leaks.
#[test]
fn reconciler_killed_at_random_points_converges_without_leaks() {
    need_root!("reconciler_killed_at_random_points_converges_without_leaks");
    in_test_host(|| {
        let test = "reconciler_killed_at_random_points";
        let started = Instant::now();
        let mut rng = Rng::for_test(test);
        let env = PodEnv::new();
        env.fetch();
        let leaks = LeakCheck::new(&env.rkt.data_dir(), true);
        let mut fig = Figures::default();
        let mut wanted = Wanted::new();
        let mut daemon = env.start(&["--parallel=4"]);
        for round in 0..rounds() {
            let what = mutate(&mut rng, &env, &mut wanted, 5, false);
            // Mostly within the first work (debounce, prepare, CNI, stage1 start).
            let span = if rng.below(4) == 0 { 1500 } else { 500 };
            let delay = rng.below(span);
            std::thread::sleep(Duration::from_millis(delay));
            assert!(daemon.alive(), "the reconciler died on its own");
            daemon.kill9();
            fig.faults += 1;
            eprintln!("round {round}: {what}; kill -9 of the reconciler after {delay} ms");
            daemon = env.start(&["--parallel=4"]);
            settle(&env, &leaks, &wanted, daemon.pid(), &mut fig);
        }
        // Everything deleted, then one last kill in the middle of the removals.
        for name in wanted.keys() {
            env.remove(&format!("{name}.yaml"));
        }
        wanted.clear();
        let delay = rng.below(800);
        std::thread::sleep(Duration::from_millis(delay));
        daemon.kill9();
        fig.faults += 1;
        eprintln!("final: delete all; kill -9 of the reconciler after {delay} ms");
        let daemon = env.start(&[]);
        settle(&env, &leaks, &Wanted::new(), daemon.pid(), &mut fig);
        drop(daemon);
        fig.print(test, leaks.pods_seen(), started.elapsed());
    });
}

/// The checker itself: what a pod killed without cleanup leaves (its directory,
/// netns mount, cgroups, veth, lease, NAT rule) and a stray process naming the data
/// dir are all found; after `rkt gc` nothing is.
#[test]
fn the_leak_checker_finds_what_a_killed_pod_leaves() {
    need_root!("the_leak_checker_finds_what_a_killed_pod_leaves");
    in_test_host(|| {
        let env = PodEnv::new();
        env.fetch();
        let data = env.rkt.data_dir();
        let leaks = LeakCheck::new(&data, true);
        let uuid_file = env.rkt.scratch().join("uuid");
        let mut child = env
            .rkt
            .command([
                "--insecure-options=image",
                "run",
                "--net=default",
                &format!("--uuid-file-save={}", uuid_file.display()),
                "example.com/busybox",
                "--exec=/bin/sleep",
                "--",
                "3600",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut uuid = String::new();
        poll("the pod to run", Duration::from_secs(30), || {
            uuid = fs::read_to_string(&uuid_file)
                .unwrap_or_default()
                .trim()
                .to_string();
            !uuid.is_empty() && data.join("pods/run").join(&uuid).join("ready").exists()
        });
        // rkt run became stage1: kill -9 leaves everything but the processes.
        child.kill().unwrap();
        child.wait().unwrap();
        let mut stray = Command::new("sleep")
            .arg("600")
            .env("SOME_DIR", &data)
            .spawn()
            .unwrap();
        poll(
            "the pod to count as exited",
            Duration::from_secs(30),
            || env.pods().iter().any(|p| p["state"] == "exited"),
        );
        let found = leaks.check(&Expect::default());
        let kinds: std::collections::BTreeSet<&str> = found.iter().map(|l| l.kind).collect();
        for kind in [
            "pod dir", "mount", "cgroup", "veth", "lease", "nat rule", "process",
        ] {
            assert!(kinds.contains(kind), "no {kind} found among {found:#?}");
        }
        assert!(
            found
                .iter()
                .any(|l| l.kind == "process" && l.detail.starts_with(&format!("{}:", stray.id()))),
            "{found:#?}"
        );
        stray.kill().unwrap();
        stray.wait().unwrap();
        env.run(&["gc", "--grace-period=0s"]).success();
        let found = leaks.check(&Expect::default());
        assert!(found.is_empty(), "after gc: {found:#?}");
    });
}

/// The `stage1 run` process of a pod, found by its command line.
fn stage1_pid(data_dir: &Path, uuid: &str) -> Option<i32> {
    let needle = format!("pods/run/{uuid}");
    let data = fs::canonicalize(data_dir).ok()?;
    let data = data.to_string_lossy().into_owned();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(" run --pod-dir ") && cmd.contains(&data) && cmd.contains(&needle) {
            return Some(pid);
        }
    }
    None
}

fn sigkill(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// kill -9 of a pod's stage1 (or its pid 1) as it starts, the reconciler recreates
/// it; kill -9 of `rkt run` at a random moment, `rkt gc` collects everything.
#[test]
fn stage1_and_rkt_run_killed_mid_start_leave_nothing() {
    need_root!("stage1_and_rkt_run_killed_mid_start_leave_nothing");
    in_test_host(|| {
        let test = "stage1_and_rkt_run_killed_mid_start";
        let started = Instant::now();
        let mut rng = Rng::for_test(test);
        let env = PodEnv::new();
        env.fetch();
        let leaks = LeakCheck::new(&env.rkt.data_dir(), true);
        let mut fig = Figures::default();
        let daemon = env.start(&[]);
        let mut wanted = Wanted::new();
        let data = env.rkt.data_dir();

        // Pods of the reconciler.
        for round in 0..rounds() {
            let name = format!("s{}", round % 2);
            let before: Vec<String> = e2e::leaks::pod_dirs(&data)
                .into_iter()
                .map(|(_, u, _)| u)
                .collect();
            let mut arg = wanted.get(&name).cloned().unwrap_or("3599".into());
            bump(&mut arg);
            wanted.insert(name.clone(), arg.clone());
            env.write(&format!("{name}.yaml"), &env.pod(&name, &arg, false));
            // The new pod's stage1, as soon as it exists.
            let mut target = None;
            poll("the new pod's stage1", Duration::from_secs(30), || {
                target = e2e::leaks::pod_dirs(&data)
                    .into_iter()
                    .filter(|(st, u, _)| st == "run" && !before.contains(u))
                    .find_map(|(_, u, _)| stage1_pid(&data, &u).map(|p| (u, p)));
                target.is_some()
            });
            let (uuid, stage1) = target.unwrap();
            let delay = rng.below(300);
            std::thread::sleep(Duration::from_millis(delay));
            let pid1 = fs::read_to_string(data.join("pods/run").join(&uuid).join("pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            let (victim, pid) = match pid1 {
                Some(p) if rng.below(2) == 0 => ("the pod's pid 1", p),
                _ => ("stage1", stage1),
            };
            sigkill(pid);
            fig.faults += 1;
            // Settle only after the fault took effect: the pod stopped running.
            poll(
                "the killed pod to stop running",
                Duration::from_secs(30),
                || {
                    env.pods()
                        .iter()
                        .all(|p| p["uuid"] != uuid.as_str() || p["state"] != "running")
                },
            );
            eprintln!("round {round}: {name} (spec {arg}); kill -9 of {victim} ({pid}) {delay} ms after stage1 appeared");
            settle(&env, &leaks, &wanted, daemon.pid(), &mut fig);
        }

        // `rkt run` on the default network, killed at a random moment.
        for round in 0..rounds() {
            let delay = rng.below(1200);
            let mut child = env
                .rkt
                .command([
                    "--insecure-options=image",
                    "run",
                    "--net=default",
                    "example.com/busybox",
                    "--exec=/bin/sleep",
                    "--",
                    "3600",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay));
            let _ = child.kill();
            let _ = child.wait();
            fig.faults += 1;
            // Its pod (if it got that far) dies with stage1 (PR_SET_PDEATHSIG).
            poll(
                "rkt run's pod to stop running",
                Duration::from_secs(30),
                || {
                    env.pods()
                        .iter()
                        .all(|p| !p["manifest"]["key"].is_null() || p["state"] != "running")
                },
            );
            eprintln!("rkt run round {round}: kill -9 of rkt run after {delay} ms");
            let gc = env.run(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
            assert_eq!(gc.code(), Some(0), "{}", gc.stderr());
            settle(&env, &leaks, &wanted, daemon.pid(), &mut fig);
        }
        drop(daemon);
        fig.print(test, leaks.pods_seen(), started.elapsed());
    });
}

/// A wrapper plugin: runs the real one, or is killed before, during or after it, as
/// the fault file of its directory says (`<plugin> <CMD> <n> before|during|after <d>`:
/// the n-th call of CMD to this plugin; "during" kills the real plugin after d/100 s). Each call counts in `calls-<plugin>-<CMD>`.
fn wrapper(dir: &Path, plugin: &str, real: &Path) -> String {
    format!(
        r#"#!/bin/sh
# Fault-injecting wrapper around {real} (e2e/tests/faults.rs).
state={dir}
echo x >> "$state/calls-{plugin}-$CNI_COMMAND"
n=$(wc -l < "$state/calls-{plugin}-$CNI_COMMAND")
fault=$(cat "$state/fault" 2>/dev/null)
hit() {{
  case "$fault" in
    "{plugin} $CNI_COMMAND $n $1"*) echo "$fault" >> "$state/injected" ;;
    *) return 1 ;;
  esac
}}
if hit before; then kill -9 $$; fi
if hit during; then
  exec 3<&0
  {real} <&3 >/dev/null &
  sleep "0.0${{fault##* }}"
  kill -9 $! $$
fi
out=$({real})
rc=$?
if hit after; then kill -9 $$; fi
printf '%s' "$out"
exit $rc
"#,
        dir = dir.display(),
        real = real.display(),
    )
}

/// kill -9 of the bridge, host-local or portmap plugin before, during or after a
/// seeded ADD or DEL; the reconciler converges and nothing is left.
#[test]
fn cni_plugins_killed_at_random_points_leave_nothing() {
    need_root!("cni_plugins_killed_at_random_points_leave_nothing");
    in_test_host(|| {
        let test = "cni_plugins_killed_at_random_points";
        let started = Instant::now();
        let mut rng = Rng::for_test(test);
        let mut env = PodEnv::new();
        env.fetch();
        let wrap = env.rkt.scratch().join("cni-wrap");
        fs::create_dir_all(&wrap).unwrap();
        let real_dir = rkt_bin().parent().unwrap().to_path_buf();
        let plugins = ["bridge", "host-local", "portmap"];
        for p in plugins {
            let real = if real_dir.join(p).is_file() {
                real_dir.join(p)
            } else {
                PathBuf::from("/usr/lib/cni").join(p)
            };
            let path = wrap.join(p);
            fs::write(&path, wrapper(&wrap, p, &real)).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        env.flags = vec![
            "--cni-path".into(),
            format!("{}:{}:/usr/lib/cni", wrap.display(), real_dir.display()),
        ];
        let leaks = LeakCheck::new(&env.rkt.data_dir(), true);
        let mut fig = Figures::default();
        let daemon = env.start(&[]);
        let mut wanted = Wanted::new();
        let calls = |plugin: &str, cmd: &str| {
            fs::read_to_string(wrap.join(format!("calls-{plugin}-{cmd}")))
                .map(|s| s.lines().count())
                .unwrap_or(0)
        };
        for round in 0..rounds() {
            let plugin = plugins[rng.below(3) as usize];
            let when = ["before", "during", "after"][rng.below(3) as usize];
            // ADD: a new pod; DEL: a pod removed (or ADD and DEL: replaced).
            let change = if wanted.is_empty() { 0 } else { rng.below(3) };
            let cmd = if change == 1 { "DEL" } else { "ADD" };
            let n = calls(plugin, cmd) + 1;
            // "during": the real plugin is killed after 10 to 90 ms.
            let fault = format!("{plugin} {cmd} {n} {when} {}", 1 + rng.below(9));
            fs::write(wrap.join("fault"), &fault).unwrap();
            let injected_before = fs::read_to_string(wrap.join("injected")).unwrap_or_default();
            let what = match change {
                0 => {
                    let name = format!("c{round}");
                    wanted.insert(name.clone(), "3600".into());
                    env.write(&format!("{name}.yaml"), &env.pod(&name, "3600", false));
                    format!("create {name}")
                }
                1 => {
                    let name = wanted.keys().next().unwrap().clone();
                    wanted.remove(&name);
                    env.remove(&format!("{name}.yaml"));
                    format!("delete {name}")
                }
                _ => {
                    let (name, arg) = wanted.iter_mut().next().unwrap();
                    bump(arg);
                    let (name, arg) = (name.clone(), arg.clone());
                    env.write(&format!("{name}.yaml"), &env.pod(&name, &arg, false));
                    format!("replace {name}")
                }
            };
            eprintln!("round {round}: {what}; armed: kill -9 of {plugin} {when} {cmd} #{n}");
            // The fault lands when the plugin is called; wait for it to have been.
            poll(
                &format!("the fault {fault:?}"),
                Duration::from_secs(30),
                || fs::read_to_string(wrap.join("injected")).unwrap_or_default() != injected_before,
            );
            fs::remove_file(wrap.join("fault")).unwrap();
            fig.faults += 1;
            settle(&env, &leaks, &wanted, daemon.pid(), &mut fig);
        }
        drop(daemon);
        fig.print(test, leaks.pods_seen(), started.elapsed());
    });
}

/// Fill a filesystem: write until ENOSPC. Returns the file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let big = vec![0u8; 1 << 20];
    while f.write_all(&big).is_ok() {}
    let small = vec![0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.flush();
    path
}

/// A full disk under `--dir` (a 48 MiB tmpfs) during fetch and pod creation: clear
/// errors, nothing half-stored, the reconciler survives; space freed, it converges.
#[test]
fn a_full_disk_fails_cleanly_and_converges_once_freed() {
    need_root!("a_full_disk_fails_cleanly_and_converges_once_freed");
    in_test_host(|| {
        let test = "a_full_disk";
        let started = Instant::now();
        let env = PodEnv::new();
        let data = env.rkt.data_dir();
        fs::create_dir_all(&data).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=48m", "rkt-e2e-full"])
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs on the data dir");
        let mut fig = Figures::default();
        env.fetch();
        let leaks = LeakCheck::new(&data, true);
        let other = busybox_aci(&env.rkt.scratch(), "example.com/other");
        let daemon = env.start(&[]);
        poll("the first pass", Duration::from_secs(30), || {
            !env.status().is_null()
        });
        let images = env.rkt.images();
        let blobs = env.rkt.blob_files();

        let filler = fill(&data);
        eprintln!(
            "filled the data dir with {} MiB",
            fs::metadata(&filler).unwrap().len() >> 20
        );
        // Fetch: a clear error, nothing stored.
        let r = env.run(&["fetch", other.to_str().unwrap()]);
        fig.faults += 1;
        assert_ne!(r.code(), Some(0), "fetch on a full disk succeeded");
        assert!(
            r.stderr().contains("No space left on device"),
            "the error names the cause: {}",
            r.stderr()
        );
        assert_eq!(env.rkt.images(), images, "image list changed");
        assert_eq!(env.rkt.blob_files(), blobs, "blobs changed");
        assert!(env.rkt.tmp_files().is_empty(), "{:?}", env.rkt.tmp_files());

        // Pod creation: fails, named in the log; no pod is left behind.
        env.write("full.yaml", &env.pod("full", "3600", true));
        poll("the failure in the log", Duration::from_secs(30), || {
            fs::read_to_string(&daemon.log)
                .unwrap_or_default()
                .contains("No space left on device")
        });
        fig.faults += 1;
        let r = env.run(&["fetch", other.to_str().unwrap()]);
        assert_ne!(r.code(), Some(0));
        assert_eq!(env.rkt.images(), images, "image list changed");
        let running = env
            .pods()
            .iter()
            .filter(|p| p["state"] == "running")
            .count();
        eprintln!("pods running on the full disk: {running}");

        // Space freed: converges, nothing leaked, and fetching works again.
        fs::remove_file(&filler).unwrap();
        settle(
            &env,
            &leaks,
            &all(&["full"], "3600"),
            daemon.pid(),
            &mut fig,
        );
        env.run(&["fetch", other.to_str().unwrap()]).success();
        assert_eq!(env.rkt.images().len(), images.len() + 1);
        drop(daemon);
        fig.print(test, leaks.pods_seen(), started.elapsed());
        drop(leaks);
        // Collected while the tmpfs is there, then unmounted so that the temporary
        // root can be removed.
        env.cleanup();
        let status = Command::new("umount")
            .arg("-l")
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success(), "unmount the tmpfs");
    });
}

/// A read-only pods dir: the reconciler still reconciles what is there (a pod killed
/// by hand comes back); `rkt apply` and `rkt delete` fail naming the directory.
#[test]
fn a_read_only_pods_dir_is_reconciled_and_apply_fails_cleanly() {
    need_root!("a_read_only_pods_dir_is_reconciled_and_apply_fails_cleanly");
    in_test_host(|| {
        let test = "a_read_only_pods_dir";
        let started = Instant::now();
        let env = PodEnv::new();
        env.fetch();
        let leaks = LeakCheck::new(&env.rkt.data_dir(), true);
        let mut fig = Figures::default();
        env.write("a.yaml", &env.pod("a", "3600", true));
        env.write("b.yaml", &env.pod("b", "3600", true));
        let daemon = env.start(&[]);
        let both = all(&["a", "b"], "3600");
        settle(&env, &leaks, &both, daemon.pid(), &mut fig);

        let dir = env.pods_dir.to_str().unwrap().to_string();
        let sh = |cmd: &str| {
            let ok = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
            assert!(ok.success(), "{cmd}");
        };
        sh(&format!(
            "mount --bind '{dir}' '{dir}' && mount -o remount,bind,ro '{dir}'"
        ));
        fig.faults += 1;

        let input = env.rkt.scratch().join("c.yaml");
        fs::write(&input, env.pod("c", "3600", true)).unwrap();
        let r = env.run(&["apply", "-f", input.to_str().unwrap()]);
        assert_ne!(r.code(), Some(0), "apply into a read-only dir succeeded");
        assert!(
            r.stderr().contains(&dir) && r.stderr().contains("Read-only file system"),
            "the error names the directory and the cause: {}",
            r.stderr()
        );
        let r = env.run(&[
            "delete",
            "-f",
            env.pods_dir.join("a.yaml").to_str().unwrap(),
        ]);
        assert_ne!(r.code(), Some(0), "delete from a read-only dir succeeded");
        assert!(r.stderr().contains(&dir), "{}", r.stderr());
        let files: Vec<_> = fs::read_dir(&env.pods_dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 2, "nothing was written: {files:?}");

        // Still reconciled: a pod stopped by hand is recreated.
        let a = env
            .pods()
            .into_iter()
            .find(|p| p["manifest"]["key"] == "default/a")
            .and_then(|p| p["uuid"].as_str().map(str::to_string))
            .unwrap();
        env.rkt.ok(["stop", "--force", &a]);
        fig.faults += 1;
        poll("a new pod for a", CONVERGE, || {
            env.pods().iter().any(|p| {
                p["manifest"]["key"] == "default/a"
                    && p["state"] == "running"
                    && p["uuid"] != a.as_str()
            })
        });
        settle(&env, &leaks, &both, daemon.pid(), &mut fig);
        drop(daemon);
        sh(&format!("umount -l '{dir}'"));
        fig.print(test, leaks.pods_seen(), started.elapsed());
    });
}

/// A pods dir of 10,000 files: 10 valid manifests, 1,000 invalid ones (a YAML syntax
/// error each) and 8,990 files that are not manifests (`*.txt`, dotfiles, editor
/// leftovers). Converges; the pass time, CPU and peak RSS are printed.
#[test]
fn a_pods_dir_of_10000_files_converges() {
    need_root!("a_pods_dir_of_10000_files_converges");
    let test = "a_pods_dir_of_10000_files";
    let started = Instant::now();
    let env = PodEnv::new();
    env.fetch();
    let leaks = LeakCheck::new(&env.rkt.data_dir(), false);
    let mut fig = Figures::default();
    let valid: Wanted = (0..10)
        .map(|i| (format!("v{i}"), "3600".to_string()))
        .collect();
    for n in valid.keys() {
        env.write(&format!("{n}.yaml"), &env.pod(n, "3600", true));
    }
    for i in 0..1000 {
        fs::write(
            env.pods_dir.join(format!("bad-{i:04}.yaml")),
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: bad-{i}\nspec: [\n"),
        )
        .unwrap();
    }
    let junk = [
        "note-{}.txt",
        ".hidden-{}.yaml",
        "edit-{}.yaml~",
        ".x-{}.yaml.swp",
    ];
    for i in 0..8990 {
        let name = junk[i % junk.len()].replace("{}", &i.to_string());
        fs::write(env.pods_dir.join(name), "not a manifest\n").unwrap();
    }
    assert_eq!(fs::read_dir(&env.pods_dir).unwrap().count(), 10_000);
    fig.faults += 1;

    let t = Instant::now();
    let first = env.run(&["reconcile", "--once", "--parallel=4"]);
    let create = t.elapsed();
    assert_eq!(
        first.code(),
        Some(1),
        "--once reports the invalid files: {}",
        first.stderr()
    );
    let t = Instant::now();
    let again = env.run(&["reconcile", "--once"]);
    let noop = t.elapsed();
    assert_eq!(again.code(), Some(1));

    let daemon = env.start(&[]);
    let updated = env.status()["updatedAt"].clone();
    poll("two passes of the daemon", Duration::from_secs(60), || {
        env.status()["updatedAt"] != updated
    });
    let updated = env.status()["updatedAt"].clone();
    poll("another pass", Duration::from_secs(60), || {
        env.status()["updatedAt"] != updated
    });
    settle(&env, &leaks, &valid, daemon.pid(), &mut fig);
    let st = env.status();
    assert_eq!(
        st["files"].as_array().map(Vec::len),
        Some(1000),
        "each invalid file is reported"
    );
    let (cpu, rss) = cpu_and_peak_rss(daemon.pid()).unwrap();
    report(&format!(
        "10,000 files: first pass (10 pods created) {:.2}s, a pass with nothing to do {:.2}s; \
         daemon after 3 passes: cpu {cpu:.2}s, peak RSS {} MiB",
        create.as_secs_f64(),
        noop.as_secs_f64(),
        rss / 1024
    ));
    drop(daemon);
    fig.print(test, leaks.pods_seen(), started.elapsed());
}
