//! rkt-probe: a tiny program e2e tests put into images to report, from inside a pod,
//! what isolation it sees. Prints one JSON object on stdout.
//!
//!   rkt-probe [report]      -> the JSON report
//!   rkt-probe exit CODE     -> exit with CODE
//!   rkt-probe sleep SECS    -> sleep (for stop/kill tests)
//!   rkt-probe alloc MIB     -> touch MIB MiB of memory (for OOM tests)
//!   rkt-probe write PATH    -> try to create PATH; exit 0 if it worked, 1 if not
//!
//! Built statically (`-C target-feature=+crt-static`) so it runs in any rootfs.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;

use serde_json::{json, Value};

fn status_field(status: &str, key: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

fn report() -> Value {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let pid1_comm = fs::read_to_string("/proc/1/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mounts: Vec<Value> = fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4)
                .then(|| json!({"source": f[0], "target": f[1], "fstype": f[2], "options": f[3]}))
        })
        .collect();
    let kcore = match fs::File::open("/proc/kcore") {
        Ok(mut f) => {
            let mut buf = [0u8; 16];
            match f.read(&mut buf) {
                Ok(0) => "empty",
                Ok(_) => "readable",
                Err(_) => "unreadable",
            }
        }
        Err(_) => "absent",
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let pids: Vec<u32> = fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    // Interfaces of this network namespace (/proc/net/dev is per namespace).
    let net_devs: Vec<String> = fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
        .collect();
    json!({
        "pid": std::process::id(),
        "netDevs": net_devs,
        "pid1Comm": pid1_comm,
        "visiblePids": pids.len(),
        "hostname": hostname,
        "uid": status_field(&status, "Uid:"),
        "gid": status_field(&status, "Gid:"),
        "groups": status_field(&status, "Groups:"),
        "capEff": status_field(&status, "CapEff:"),
        "capPrm": status_field(&status, "CapPrm:"),
        "capBnd": status_field(&status, "CapBnd:"),
        "noNewPrivs": status_field(&status, "NoNewPrivs:"),
        "cgroup": fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        "kcore": kcore,
        "sysWritable": fs::write("/sys/kernel/rkt-probe", b"x").is_ok(),
        "procSysWritable": fs::OpenOptions::new().write(true).open("/proc/sys/kernel/hostname").is_ok(),
        "cwd": cwd,
        "env": env,
        "mounts": mounts,
        "hosts": fs::read_to_string("/etc/hosts").unwrap_or_default(),
        "resolvConf": fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        "dev": fs::read_dir("/dev").map(|d| {
            let mut v: Vec<String> = d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        }).unwrap_or_default(),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("report") => println!("{}", report()),
        Some("exit") => {
            let code = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(1);
            std::process::exit(code);
        }
        Some("sleep") => {
            let secs = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(3600);
            std::thread::sleep(std::time::Duration::from_secs(secs));
        }
        Some("alloc") => {
            let mib: usize = args.get(1).and_then(|c| c.parse().ok()).unwrap_or(64);
            let mut blocks = Vec::new();
            for _ in 0..mib {
                let mut v = vec![0u8; 1 << 20];
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                blocks.push(v);
            }
            println!("allocated {} MiB", blocks.len());
        }
        Some("write") => {
            let ok = args.get(1).is_some_and(|p| fs::write(p, b"probe").is_ok());
            std::process::exit(if ok { 0 } else { 1 });
        }
        Some(other) => {
            eprintln!("rkt-probe: unknown command {other}");
            std::process::exit(2);
        }
    }
}
