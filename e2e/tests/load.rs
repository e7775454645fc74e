//! Load: `RKT_LOAD_PODS` pods (default [`DEFAULT_PODS`]) from as many Pod YAML files,
//! on rkt's default network in a test host: all created and running, then all
//! replaced (a spec change), then all deleted. Prints the time each phase took to
//! converge, the reconciler's CPU time (user + system) and peak RSS (`VmHWM`), and the
//! leak check after each phase (must be 0). `RKT_LOAD_PARALLEL` sets the reconciler's
//! `--parallel` (default 4, its own default). See `docs/testing.md`.

use std::time::Duration;

use e2e::leaks::{cpu_and_peak_rss, Expect, LeakCheck};
use e2e::netns::in_test_host;
use e2e::podenv::{report, PodEnv, Wanted};
use e2e::rkt::is_root;

/// Pods in CI; `scripts/soak.sh` runs the same number (it fits the CI budget).
const DEFAULT_PODS: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

#[test]
fn load_create_replace_delete_many_pods() {
    if !is_root() {
        eprintln!("SKIPPED load_create_replace_delete_many_pods: needs root");
        return;
    }
    in_test_host(|| {
        let n = env_usize("RKT_LOAD_PODS", DEFAULT_PODS);
        let parallel = env_usize("RKT_LOAD_PARALLEL", 4);
        // Up to 5 s per pod and phase: far above what it takes, below forever.
        let timeout = Duration::from_secs(60 + 5 * n as u64);
        let env = PodEnv::new();
        let id = env.fetch();
        let leaks = LeakCheck::new(&env.rkt.data_dir(), true);
        let names: Vec<String> = (0..n).map(|i| format!("load{i:03}")).collect();
        // By ID, from the store (fetched once above), as a host would run them; a path
        // would be read and verified again for every pod.
        let aci = env.aci.to_str().unwrap().to_string();
        let yaml = |name: &str, arg: &str| env.pod(name, arg, false).replace(&aci, &id);
        let spec =
            |arg: &str| -> Wanted { names.iter().map(|n| (n.clone(), arg.to_string())).collect() };
        // The loop's own defaults for resync and debounce (not the tests' fast ones):
        // with hundreds of pods a pass is not free.
        let daemon = env.start(&[
            &format!("--parallel={parallel}"),
            "--resync=10s",
            "--debounce=200ms",
        ]);
        let pid = daemon.pid();
        let mut leaks_found = 0;
        let mut check = |phase: &str, want: &Wanted| {
            let found = leaks.check(&Expect::keys(want.keys()).with_pid(pid));
            for l in &found {
                eprintln!("  leak: {l}");
            }
            leaks_found += found.len();
            assert!(found.is_empty(), "leaks after {phase}: {found:#?}");
        };
        let mut figures = Vec::new();
        let mut phase = |what: &str, write: &dyn Fn(), want: &Wanted| {
            let (cpu0, _) = cpu_and_peak_rss(pid).unwrap();
            write();
            // Polled every second: `rkt list` of hundreds of pods is not free either.
            let took = env.wait_converged(want, Duration::from_secs(1), timeout);
            let (cpu1, rss) = cpu_and_peak_rss(pid).unwrap();
            report(&format!(
                "load: {what} {n} pods: converged in {:.1}s, reconciler cpu {:.1}s, peak RSS {} MiB",
                took.as_secs_f64(),
                cpu1 - cpu0,
                rss / 1024
            ));
            figures.push((what.to_string(), took, cpu1 - cpu0));
        };

        phase(
            "create",
            &|| {
                for name in &names {
                    env.write(&format!("{name}.yaml"), &yaml(name, "3600"));
                }
            },
            &spec("3600"),
        );
        check("create", &spec("3600"));
        phase(
            "replace",
            &|| {
                for name in &names {
                    env.write(&format!("{name}.yaml"), &yaml(name, "3601"));
                }
            },
            &spec("3601"),
        );
        check("replace", &spec("3601"));
        phase(
            "delete",
            &|| {
                for name in &names {
                    env.remove(&format!("{name}.yaml"));
                }
            },
            &Wanted::new(),
        );
        check("delete", &Wanted::new());
        let (cpu, rss) = cpu_and_peak_rss(pid).unwrap();
        drop(daemon);
        let total: Duration = figures.iter().map(|f| f.1).sum();
        report(&format!(
            "load summary: {n} pods (--parallel={parallel}): {}; total {:.1}s; reconciler cpu {cpu:.1}s, peak RSS {} MiB; pods converged: {}, leaks found: {leaks_found}",
            figures
                .iter()
                .map(|(w, t, c)| format!("{w} {:.1}s (cpu {c:.1}s)", t.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            total.as_secs_f64(),
            rss / 1024,
            2 * n
        ));
    });
}
