#!/usr/bin/env bash
# Benchmark: the cost of pod networking. `rkt run` of /bin/true from the cached
# busybox image with --net=default (network namespace, CNI bridge + host-local +
# portmap ADD, and DEL at the next gc) as `rkt`, against the same with --net=none
# as `baseline`.
#
#   bench/net.sh RESULTS_DIR [QUICK]      (QUICK=1: a few runs, a smoke test)
#
# Measures with 1 and with 100 other pods running (QUICK: 1 and 5) and writes the
# hyperfine exports RESULTS_DIR/net-start-with-N-pods.json for bench/table.py.
# Everything runs inside new network and mount namespaces (`unshare -n -m`, mounts
# private, a tmpfs over /var/lib/cni for the leases): the host's links, routes,
# sysctls, firewall and /var/lib/cni are not touched. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

results=${1:?usage: bench/net.sh RESULTS_DIR [QUICK]}
quick=${2:-0}
runs=30
[ "$quick" = 1 ] && runs=3

if [ -z "${NET_BENCH_IN_NS:-}" ]; then
    for tool in hyperfine unshare; do
        command -v "$tool" >/dev/null || { echo "bench/net.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
    done
    cargo build --release --quiet -p reconciler -p stage1 -p cni-plugins
    mkdir -p "$results"
    results=$(cd "$results" && pwd)
    # Re-run this script in new network and mount namespaces; nothing below runs on
    # the host's network.
    exec unshare -n -m env NET_BENCH_IN_NS=1 "$0" "$results" "$quick"
fi

mount --make-rprivate /
if [ -d /var/lib/cni ]; then
    mount -t tmpfs rkt-bench-cni /var/lib/cni
else
    mount -t tmpfs rkt-bench-cni /var/lib && mkdir -p /var/lib/cni
fi
ip link set lo up

rkt=$PWD/target/release/rkt
work=$(mktemp -d)
# Collect every pod (cgroups, networks) before the directory goes.
trap '"$rkt" --dir "$work/data" gc --grace-period=0s >/dev/null 2>&1; rm -rf "$work"' EXIT
examples/build-busybox-aci.sh "$work/bb.aci" >/dev/null
flags=(--dir "$work/data" --local-config "$work/etc" --system-config "$work/usr-lib" --insecure-options=image)
"$rkt" "${flags[@]}" fetch "$work/bb.aci" >/dev/null 2>&1
# Render the image, write the default network and make its bridge once, so every
# measured run starts from the same state.
"$rkt" "${flags[@]}" run --net=default example.com/busybox --exec=/bin/true >/dev/null 2>&1
"$rkt" "${flags[@]}" gc --grace-period=0s >/dev/null 2>&1

base="$rkt ${flags[*]} run --net=none example.com/busybox --exec=/bin/true"
with_net="$rkt ${flags[*]} run --net=default example.com/busybox --exec=/bin/true"
# gc between runs (not timed) releases the previous pod's network.
prep="$rkt ${flags[*]} gc --grace-period=0s"

running() {
    "$rkt" "${flags[@]}" list --format=json 2>/dev/null |
        python3 -c 'import json,sys; print("\n".join(p["uuid"] for p in json.load(sys.stdin) if p["state"] == "running"))'
}

# Measure with 1 and with 100 other pods running on the same bridge (5 when QUICK).
counts="1 100"
[ "$quick" = 1 ] && counts="1 5"
for n in $counts; do
    have=$(running | grep -c . || true)
    while [ "$have" -lt "$n" ]; do
        setsid "$rkt" "${flags[@]}" run --net=default example.com/busybox --exec=/bin/sleep -- 3600 \
            </dev/null >/dev/null 2>&1 &
        have=$((have + 1))
    done
    deadline=$((SECONDS + 600))
    until [ "$(running | grep -c . || true)" -ge "$n" ]; do
        if [ $SECONDS -gt $deadline ]; then echo "bench/net.sh: $n pods did not start" >&2; exit 1; fi
        sleep 0.2
    done
    hyperfine --style none --runs "$runs" --warmup 2 --prepare "$prep" \
        --export-json "$results/net-start-with-$n-pods.json" \
        -n baseline "$base" -n rkt "$with_net" >/dev/null
    echo "bench/net.sh: wrote $results/net-start-with-$n-pods.json" >&2
done

for uuid in $(running); do
    "$rkt" "${flags[@]}" stop --force "$uuid" >/dev/null 2>&1 || true
done
wait
"$rkt" "${flags[@]}" gc --grace-period=0s >/dev/null 2>&1
