#!/usr/bin/env bash
# Time one CNI ADD followed by DEL: our bridge + host-local ("rkt") against the
# reference plugins from Debian's containernetworking-plugins ("baseline").
#
#   bench/cni.sh RESULTS_DIR [RUNS]
#
# Writes hyperfine exports RESULTS_DIR/cni-bridge-add-del.json (gateway only) and
# RESULTS_DIR/cni-bridge-masq-add-del.json (with ipMasq; the reference uses
# iptables, ours nftables), each with commands named `baseline` and `rkt`, for
# bench/table.py. Everything runs inside a throwaway network namespace
# (`unshare -n`): the host's links, routes, sysctls and firewall are not touched.
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

results=${1:?usage: bench/cni.sh RESULTS_DIR [RUNS]}
runs=${2:-20}
ref=/usr/lib/cni

if [ -z "${CNI_BENCH_IN_NETNS:-}" ]; then
    for tool in hyperfine unshare nft; do
        command -v "$tool" >/dev/null || { echo "bench/cni.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
    done
    [ -x "$ref/bridge" ] && [ -x "$ref/host-local" ] \
        || { echo "bench/cni.sh: reference plugins missing in $ref (package containernetworking-plugins)" >&2; exit 1; }
    cargo build --release --quiet -p cni-plugins
    mkdir -p "$results"
    results=$(cd "$results" && pwd)
    # Re-run this script in a new network namespace; nothing below runs on the host.
    exec unshare -n env CNI_BENCH_IN_NETNS=1 "$0" "$results" "$runs"
fi

ours=$PWD/target/release
work=$(mktemp -d)
pod=$work/pod
cleanup() { umount "$pod" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip link set lo up
touch "$pod"
unshare --net="$pod" true

conf() { # name bridge ipMasq
    cat >"$work/$1.json" <<EOF
{"cniVersion": "1.0.0", "name": "$1", "type": "bridge", "bridge": "$2",
 "isGateway": true, "ipMasq": $3,
 "ipam": {"type": "host-local", "dataDir": "$work/leases",
          "ranges": [[{"subnet": "10.123.$4.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}
EOF
    echo "$work/$1.json"
}

add_del() { # bridge-binary cni-path conf-file
    local env="CNI_CONTAINERID=bench CNI_NETNS=$pod CNI_IFNAME=eth0 CNI_PATH=$2"
    echo "env CNI_COMMAND=ADD $env $1 <$3 >/dev/null && env CNI_COMMAND=DEL $env $1 <$3 >/dev/null"
}

hf() { # name, baseline-command, rkt-command
    hyperfine --style none --runs "$runs" --warmup 2 \
        --export-json "$results/$1.json" -n baseline "$2" -n rkt "$3" >/dev/null
}

echo "bench: CNI bridge ADD+DEL, ours vs reference ($runs runs)" >&2
hf cni-bridge-add-del \
    "$(add_del "$ref/bridge" "$ref" "$(conf base bb0 false 1)")" \
    "$(add_del "$ours/bridge" "$ours" "$(conf ours br0 false 2)")"
hf cni-bridge-masq-add-del \
    "$(add_del "$ref/bridge" "$ref" "$(conf basemasq bb1 true 3)")" \
    "$(add_del "$ours/bridge" "$ours" "$(conf oursmasq br1 true 4)")"
