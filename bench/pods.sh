#!/usr/bin/env bash
# Benchmark: `rkt run` of /bin/true from the cached busybox image with --net=none,
# next to runc (and crun, and systemd-nspawn, where they work on this host) running
# the same rootfs. Writes hyperfine JSON (commands named baseline-* and rkt) into
# RESULTS_DIR.   Usage: bench/pods.sh RESULTS_DIR RUNS
set -euo pipefail
results=${1:?usage: pods.sh RESULTS_DIR RUNS}
runs=${2:-100}
here=$(cd "$(dirname "$0")/.." && pwd)
rkt=$here/target/release/rkt
work=$(mktemp -d)
# Collect the last pod (its cgroups) before the directory goes.
trap '"$rkt" --dir "$work/data" gc --grace-period=0s >/dev/null 2>&1; rm -rf "$work"' EXIT

"$here/examples/build-busybox-aci.sh" "$work/bb.aci" >/dev/null
flags=(--dir "$work/data" --local-config "$work/etc" --system-config "$work/usr-lib" --insecure-options=image)
"$rkt" "${flags[@]}" fetch "$work/bb.aci" >/dev/null 2>&1
# Render once, so every measured run starts from the cached tree.
"$rkt" "${flags[@]}" run --net=none example.com/busybox --exec=/bin/true >/dev/null 2>&1
"$rkt" "${flags[@]}" gc --grace-period=0s >/dev/null 2>&1

# An OCI bundle of the same rootfs.
mkdir -p "$work/bundle/rootfs"
tar -xzf "$work/bb.aci" -C "$work/bundle/rootfs" --strip-components=1 rootfs
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["root"]["readonly"] = False
json.dump(c, open(p, "w"))
PY

rkt_cmd="$rkt ${flags[*]} run --net=none example.com/busybox --exec=/bin/true"
prep="$rkt ${flags[*]} gc --grace-period=0s"
args=(--style none --runs "$runs" --warmup 3 --prepare "$prep" --export-json "$results/pod-start.json")
args+=(-n rkt "$rkt_cmd" -n baseline-runc "runc run -b $work/bundle rktbench-\$\$")
if crun run -b "$work/bundle" rktbench-probe >/dev/null 2>&1; then
    args+=(-n baseline-crun "crun run -b $work/bundle rktbench-crun")
else
    echo "bench: crun cannot run containers on this host's cgroup layout; skipped" >&2
fi
if command -v systemd-nspawn >/dev/null && systemd-nspawn --register=no --keep-unit -q -D "$work/bundle/rootfs" /bin/true >/dev/null 2>&1; then
    args+=(-n baseline-nspawn "systemd-nspawn --register=no --keep-unit -q -D $work/bundle/rootfs /bin/true")
else
    echo "bench: systemd-nspawn unavailable here; skipped" >&2
fi
hyperfine "${args[@]}" >/dev/null

# What the hardening costs at start: the default seccomp profile against none, and a
# user namespace (--private-users: id-mapped image layer) against none.
hyperfine --style none --runs "$runs" --warmup 3 --prepare "$prep" \
    --export-json "$results/pod-start-seccomp.json" \
    -n rkt "$rkt_cmd" \
    -n baseline-unconfined "$rkt ${flags[*]} run --net=none --seccomp=unconfined example.com/busybox --exec=/bin/true" >/dev/null
hyperfine --style none --runs "$runs" --warmup 3 --prepare "$prep" \
    --export-json "$results/pod-start-userns.json" \
    -n rkt "$rkt ${flags[*]} run --net=none --private-users example.com/busybox --exec=/bin/true" \
    -n baseline-host-users "$rkt_cmd" >/dev/null
