#!/usr/bin/env bash
# Benchmark (not a test): the reconciler, `rkt reconcile`.
#
#   bench/reconcile.sh RESULTS_DIR [QUICK]      (QUICK=1: small counts, a smoke test)
#
# 1. Latency -> RESULTS_DIR/reconcile-latency.json (hyperfine-shaped, for bench/table.py)
#    `rkt`: a long-running `rkt reconcile --pods-dir DIR --resync=10s` (default
#    --debounce=200ms, which is part of what is measured) watches DIR. Per run a Pod YAML
#    (hostNetwork, restartPolicy Never, example.com/busybox, a hostPath volume at /out,
#    command `nsdate > /out/t; sleep 3600`) is written to a temp file and `mv`d into
#    DIR; the latency is the timestamp the app writes minus the wall-clock time taken just
#    before the rename (both CLOCK_REALTIME, ns). Then the manifest is deleted and the
#    run waits until its pod is gone from `rkt list` (not timed).
#    `baseline-rkt-run`: time from just before invoking `rkt run --net=host ... --exec=/bin/sh
#    -- -c 'nsdate > /out/t'` (same image, same host volume) to that timestamp. (Busybox's
#    date has no %N, so the image gets a static /bin/nsdate = `date +%s%N`.)
#    `baseline-runc`: the same for `runc run` of an OCI bundle of the busybox rootfs with
#    /out bind-mounted. crun is skipped (it fails on this host's cgroup layout).
#    Runs: 20 each (QUICK: 3).
#
# 2. Scale -> RESULTS_DIR/reconcile-scale.txt (also printed on stderr)
#    For M = 1, 100, 1000 (QUICK: 1, 10, 20) manifests in the pods dir, each a real
#    busybox `sleep 3600` pod (hostNetwork, restartPolicy Always). The counts are
#    cumulative: the same pods dir gets the manifests up to M, so the pods of the previous
#    step keep running and are adopted. Per M:
#      converge  time from starting `rkt reconcile` (daemon) until its status shows all M
#                pods Running (creating the new ones with --parallel=4); if they are not
#                all Running by the deadline (SCALE_DEADLINE seconds, default 1800; QUICK
#                300), the line says how many were, and the rest is measured anyway.
#      rss       VmHWM and VmRSS (from /proc/PID/status) of that daemon after
#                convergence and two further passes (SIGHUP, each waited for in status.json).
#      pass      median/min/max wall time of `rkt reconcile --once` (a separate process,
#                after the daemon is stopped with SIGTERM, which leaves the pods running)
#                with nothing to do: observe M manifests + M pods, plan, write the status.
#                Runs: 10 (QUICK: 3), hyperfine, 1 warmup.
#
# Everything runs inside new network and mount namespaces (`unshare -n -m`, like
# bench/net.sh), and the pods use the host (= that namespace's) network, so the host's
# network is never touched. Temp --dir/--local-config/--system-config roots. At the end,
# and on failure, the reconciler is stopped (by PID), every pod is stopped (`rkt stop
# --force`) and collected (`rkt gc --grace-period=0s`). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

results=${1:?usage: bench/reconcile.sh RESULTS_DIR [QUICK]}
quick=${2:-0}

if [ -z "${RECONCILE_BENCH_IN_NS:-}" ]; then
    for tool in hyperfine unshare python3; do
        command -v "$tool" >/dev/null || { echo "bench/reconcile.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
    done
    cargo build --release --quiet -p reconciler -p stage1 -p cni-plugins
    mkdir -p "$results"
    results=$(cd "$results" && pwd)
    exec unshare -n -m env RECONCILE_BENCH_IN_NS=1 "$0" "$results" "$quick"
fi

mount --make-rprivate /
ip link set lo up

runs=20
counts="1 100 1000"
once_runs=10
deadline_s=${SCALE_DEADLINE:-1800}
if [ "$quick" = 1 ]; then
    runs=3
    counts="1 10 20"
    once_runs=3
    deadline_s=${SCALE_DEADLINE:-300}
fi

rkt=$PWD/target/release/rkt
work=$(mktemp -d)
flags=(--dir "$work/data" --local-config "$work/etc" --system-config "$work/usr-lib" --insecure-options=image)
daemon_pid=

running_pods() {
    "$rkt" "${flags[@]}" list --format=json 2>/dev/null |
        python3 -c 'import json,sys; print("\n".join(p["uuid"] for p in json.load(sys.stdin) if p["state"] == "running"))' || true
}
stop_daemon() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        local i
        for i in $(seq 1 300); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    daemon_pid=
}
cleanup() {
    local rc=$?
    set +e
    stop_daemon
    running_pods | xargs -r -P 4 -n 1 "$rkt" "${flags[@]}" stop --force >/dev/null 2>&1
    "$rkt" "${flags[@]}" gc --grace-period=0s >/dev/null 2>&1
    left=$(running_pods | grep -c .)
    [ "$left" -gt 0 ] && echo "bench/reconcile.sh: $left pods still running after cleanup" >&2
    rm -rf "$work" 2>/dev/null
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_daemon() { # pods-dir
    setsid "$rkt" "${flags[@]}" reconcile --pods-dir "$1" --resync=10s \
        </dev/null >>"$work/reconcile.log" 2>&1 &
    daemon_pid=$!
}

# Busybox's `date` has no %N: when a C compiler is here, the image gets a static
# /bin/nsdate printing CLOCK_REALTIME in ns (what `date +%s%N` prints); without one the
# apps run `date +%s%N` and the stamp is the file's mtime (jiffy-coarse, a few ms).
stamp='date +%s%N'
if command -v gcc >/dev/null; then
    printf '%s\n' '#include <stdio.h>' '#include <time.h>' \
        'int main(void){struct timespec t;clock_gettime(CLOCK_REALTIME,&t);printf("%lld%09ld\n",(long long)t.tv_sec,t.tv_nsec);return 0;}' \
        >"$work/nsdate.c"
    if gcc -static -O2 -o "$work/nsdate" "$work/nsdate.c" 2>/dev/null; then
        stamp=/bin/nsdate
        export ACI_EXTRA="$work/nsdate:/bin/nsdate"
    fi
fi
[ "$stamp" = /bin/nsdate ] || echo "bench/reconcile.sh: no static gcc; timestamps are file mtimes (coarse)" >&2
examples/build-busybox-aci.sh "$work/bb.aci" >/dev/null
"$rkt" "${flags[@]}" fetch "$work/bb.aci" >/dev/null 2>&1
# Render the image once, so every measured run starts from the cached tree.
"$rkt" "${flags[@]}" run --net=host example.com/busybox --exec=/bin/true >/dev/null 2>&1
"$rkt" "${flags[@]}" gc --grace-period=0s >/dev/null 2>&1

# ---------------------------------------------------------------- 1. latency
lat_pods=$work/lat-pods
out=$work/out
mkdir -p "$lat_pods" "$out"
start_daemon "$lat_pods"

# The OCI bundle for runc (as bench/pods.sh), with /out bind-mounted.
have_runc=0
if command -v runc >/dev/null; then
    mkdir -p "$work/bundle/rootfs"
    tar -xzf "$work/bb.aci" -C "$work/bundle/rootfs" --strip-components=1 rootfs
    (cd "$work/bundle" && runc spec)
    python3 - "$work/bundle/config.json" "$out" "$stamp" <<'PY'
import json, sys
p, out = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["process"]["args"] = ["/bin/sh", "-c", sys.argv[3] + " > /out/t"]
c["process"]["terminal"] = False
c["root"]["readonly"] = False
c["mounts"].append({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]})
json.dump(c, open(p, "w"))
PY
    if runc run -b "$work/bundle" "rktbench-probe-$$" >/dev/null 2>&1 && [ -s "$out/t" ]; then
        have_runc=1
    else
        echo "bench/reconcile.sh: runc cannot run the bundle here; baseline-runc skipped" >&2
    fi
    rm -f "$out/t"
fi
echo "bench/reconcile.sh: crun fails on this host's cgroup layout; baseline-crun skipped" >&2

echo "bench/reconcile.sh: latency, $runs runs each (manifest rename -> app's first instruction)" >&2
RKT="$rkt" RUNS="$runs" OUT="$out" PODS="$lat_pods" WORK="$work" HAVE_RUNC="$have_runc" \
    STAMP="$stamp" DAEMON_PID="$daemon_pid" RESULT="$results/reconcile-latency.json" \
    python3 - "${flags[@]}" <<'PY'
import json, os, statistics, subprocess, sys, time

flags = sys.argv[1:]
rkt, out, pods, work = os.environ["RKT"], os.environ["OUT"], os.environ["PODS"], os.environ["WORK"]
runs = int(os.environ["RUNS"])
daemon = int(os.environ["DAEMON_PID"])
t_file = os.path.join(out, "t")

def wait_stamp(deadline_s, proc=None):
    """Poll every 5 ms until /out/t holds a full timestamp; return it (ns)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with open(t_file) as f:
                s = f.read()
            if s.endswith("\n"):
                s = s.strip()
                return os.stat(t_file).st_mtime_ns if s.endswith("%N") else int(s)
        except FileNotFoundError:
            pass
        if proc is not None and proc.poll() is not None and proc.returncode != 0:
            raise SystemExit(f"bench/reconcile.sh: {proc.args[0]} failed ({proc.returncode})")
        if os.path.exists(f"/proc/{daemon}") is False and proc is None:
            raise SystemExit("bench/reconcile.sh: the reconciler exited; see its log")
        time.sleep(0.005)
    raise SystemExit("bench/reconcile.sh: no timestamp within the deadline")

def pods_of(key):
    r = subprocess.run([rkt, *flags, "list", "--format=json"], capture_output=True, text=True)
    return [p for p in json.loads(r.stdout or "[]") if (p.get("manifest") or {}).get("key") == key]

def gc():
    subprocess.run([rkt, *flags, "gc", "--grace-period=0s"], capture_output=True)

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  hostNetwork: true
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes:
    - name: out
      hostPath:
        path: {out}
        type: Directory
  containers:
    - name: main
      image: example.com/busybox
      imagePullPolicy: IfNotPresent
      command: ["/bin/sh", "-c", "{stamp} > /out/t; sleep 3600"]
      volumeMounts:
        - name: out
          mountPath: /out
"""

def via_reconciler(i):
    name = f"lat-{i}"
    tmp = os.path.join(work, f"{name}.yaml")
    with open(tmp, "w") as f:
        f.write(POD.format(name=name, out=out, stamp=os.environ["STAMP"]))
        f.flush(); os.fsync(f.fileno())
    dst = os.path.join(pods, f"{name}.yaml")
    t0 = time.time_ns()
    os.rename(tmp, dst)           # what `mv` does within one filesystem
    t1 = wait_stamp(120)
    os.unlink(dst)
    end = time.monotonic() + 120
    while pods_of(f"default/{name}"):
        if time.monotonic() > end:
            raise SystemExit(f"bench/reconcile.sh: pod {name} was not removed")
        time.sleep(0.05)
    return (t1 - t0) / 1e9

def via_rkt_run(_i):
    cmd = [rkt, *flags, "run", "--net=host", "--volume", f"out,kind=host,source={out}",
           "--mount", "volume=out,target=/out", "example.com/busybox",
           "--exec=/bin/sh", "--", "-c", os.environ["STAMP"] + " > /out/t"]
    t0 = time.time_ns()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t1 = wait_stamp(120, p)
    p.wait()
    gc()
    return (t1 - t0) / 1e9

def via_runc(i):
    cmd = ["runc", "run", "-b", os.path.join(work, "bundle"), f"rktbench-lat-{os.getpid()}-{i}"]
    t0 = time.time_ns()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t1 = wait_stamp(120, p)
    p.wait()
    return (t1 - t0) / 1e9

def measure(name, fn):
    times = []
    fn("warmup")
    for i in range(runs):
        if os.path.exists(t_file):
            os.unlink(t_file)
        times.append(fn(i))
        if os.path.exists(t_file):
            os.unlink(t_file)
    s = sorted(times)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    print(f"  {name:<18} median {statistics.median(times)*1e3:8.1f} ms  p99 {p99*1e3:8.1f} ms"
          f"  min {s[0]*1e3:8.1f} ms  max {s[-1]*1e3:8.1f} ms", file=sys.stderr)
    return {"command": name, "times": times, "mean": statistics.mean(times),
            "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
            "median": statistics.median(times), "min": s[0], "max": s[-1]}

def warm(fn):
    def f(i):
        if os.path.exists(t_file):
            os.unlink(t_file)
        return fn(i)
    return f

results = [measure("rkt", warm(via_reconciler)), measure("baseline-rkt-run", warm(via_rkt_run))]
if os.environ["HAVE_RUNC"] == "1":
    results.append(measure("baseline-runc", warm(via_runc)))
with open(os.environ["RESULT"], "w") as f:
    json.dump({"results": results}, f, indent=1)
print(f"bench/reconcile.sh: wrote {os.environ['RESULT']}", file=sys.stderr)
PY
stop_daemon
"$rkt" "${flags[@]}" gc --grace-period=0s >/dev/null 2>&1

# ---------------------------------------------------------------- 2. scale
scale=$results/reconcile-scale.txt
: >"$scale"
note() { echo "$*" >>"$scale"; echo "$*" >&2; }
note "# rkt reconcile at scale ($(nproc) CPUs; see bench/reconcile.sh's header for what each number is)"
sc_pods=$work/scale-pods
mkdir -p "$sc_pods"
have=0
for m in $counts; do
    # Add manifests up to m (the daemon is not running; the pods of the previous step run).
    while [ "$have" -lt "$m" ]; do
        n=$(printf 's%04d' "$have")
        cat >"$sc_pods/$n.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $n
spec:
  hostNetwork: true
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: example.com/busybox
      imagePullPolicy: IfNotPresent
      command: ["/bin/sleep", "3600"]
EOF
        have=$((have + 1))
    done
    t0=$(date +%s.%N)
    start_daemon "$sc_pods"
    # Wait until the status shows all m pods Running, then for two more full passes.
    conv=$(STATUS="$work/data/reconcile/status.json" M="$m" DEADLINE="$deadline_s" PID="$daemon_pid" T0="$t0" python3 - <<'PY'
import json, os, signal, sys, time
st, m, pid = os.environ["STATUS"], int(os.environ["M"]), int(os.environ["PID"])
t0 = float(os.environ["T0"])
end = time.time() + int(os.environ["DEADLINE"])
def status():
    try:
        with open(st) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
running, conv = 0, None
while time.time() < end:
    if not os.path.exists(f"/proc/{pid}"):
        sys.exit("bench/reconcile.sh: the reconciler exited")
    s = status()
    if s and s.get("pid") == pid:
        running = sum(1 for p in s["pods"] if p.get("phase") == "Running")
        if running >= m:
            conv = time.time() - t0
            break
    time.sleep(0.05)
# Two more passes (SIGHUP: a full pass now), each seen as a new updatedAt.
for _ in range(2):
    before = (status() or {}).get("updatedAt")
    os.kill(pid, signal.SIGHUP)
    e2 = time.time() + 120
    while time.time() < e2 and (status() or {}).get("updatedAt") == before:
        time.sleep(0.02)
print(f"{running} {conv:.2f}" if conv is not None else f"{running} none")
PY
)
    read -r nrun tconv <<<"$conv"
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$daemon_pid/status")
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon_pid/status")
    stop_daemon
    once_rc=0
    "$rkt" "${flags[@]}" reconcile --once --pods-dir "$sc_pods" >/dev/null 2>&1 || once_rc=$?
    hyperfine -N --style none --runs "$once_runs" --warmup 1 -i --export-json "$work/once-$m.json" \
        -n once "$rkt ${flags[*]} reconcile --once --pods-dir $sc_pods" >/dev/null
    pass=$(python3 -c '
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"][0]
t = r["times"]
print(f"median {statistics.median(t)*1e3:.1f} ms (min {min(t)*1e3:.1f}, max {max(t)*1e3:.1f}, {len(t)} runs)")
' "$work/once-$m.json")
    if [ "$tconv" = none ]; then
        cstr="NOT converged within ${deadline_s}s ($nrun/$m Running)"
    else
        cstr="converge ${tconv}s ($nrun/$m Running)"
    fi
    note "M=$m manifests: $cstr; daemon VmHWM $(awk -v k="$hwm" 'BEGIN{printf "%.1f", k/1024}') MiB, VmRSS $(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}') MiB; reconcile --once pass $pass, exit $once_rc"
done
echo "bench/reconcile.sh: wrote $scale" >&2
