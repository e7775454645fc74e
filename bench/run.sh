#!/usr/bin/env bash
# Run every benchmark and print one table.
#
#   bench/run.sh [--quick]
#   BENCH_BASE_REV=<git rev> bench/run.sh   # also: pod start with REV's stage1, interleaved
#
# Each benchmark times rkt next to a baseline doing the same essential work with
# standard tools, side by side under hyperfine, and reports mean, stddev and the
# ratio rkt/baseline. --quick uses a smaller image and fewer runs (a smoke test of the
# harness, not a measurement).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

quick=0
[ "${1:-}" = "--quick" ] && quick=1
size_mb=200
runs=5
if [ $quick = 1 ]; then size_mb=20; runs=2; fi

cargo build --release --quiet -p reconciler -p stage1 -p cni-plugins
rkt=$PWD/target/release/rkt
work=$(mktemp -d)
export GNUPGHOME=$work/gnupg
cleanup() { gpgconf --kill gpg-agent 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -m 700 "$GNUPGHOME"
results=$work/results
mkdir -p "$results"

# --- fixture: a ~size_mb image (busybox + incompressible and compressible data), signed.
bench/make-big-aci.sh "$work/big.aci" "$size_mb" >/dev/null
gzip -dc "$work/big.aci" >"$work/big.tar"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key 'rkt bench <bench@example.com>' ed25519 sign never 2>/dev/null
gpg --batch --quiet --armor --export >"$work/key.pub"
gpg --batch --quiet --armor --detach-sign -o "$work/big.aci.asc" "$work/big.aci"
store=$work/store
flags=(--dir "$store/data" --local-config "$store/etc" --system-config "$store/usr-lib")
"$rkt" "${flags[@]}" trust --prefix example.com --skip-fingerprint-review "$work/key.pub" 2>/dev/null
mkdir -p "$work/x"

hf() { # name, baseline-command, rkt-command [prepare]
    local name=$1 base=$2 cmd=$3 prep=${4:-true}
    hyperfine --style none --runs "$runs" --warmup 1 --prepare "$prep" \
        --export-json "$results/$name.json" -n baseline "$base" -n rkt "$cmd" >/dev/null
}

echo "bench: fetch+verify+store of a $(du -m "$work/big.tar" | cut -f1) MB image (gzip $(du -m "$work/big.aci" | cut -f1) MB)" >&2
hf fetch-verify-store \
    "gzip -dc $work/big.aci | sha512sum >/dev/null" \
    "$rkt ${flags[*]} fetch $work/big.aci" \
    "rm -rf $store/data"
hf fetch-insecure-store \
    "gzip -dc $work/big.aci | sha512sum >/dev/null" \
    "$rkt ${flags[*]} --insecure-options=image fetch $work/big.aci" \
    "rm -rf $store/data"
hf hash-only-vs-sha512sum \
    "sha512sum $work/big.tar >/dev/null" \
    "$rkt ${flags[*]} --insecure-options=image fetch $work/big.tar" \
    "rm -rf $store/data"
"$rkt" "${flags[@]}" fetch "$work/big.aci" >/dev/null
hf extract-vs-tar \
    "tar -xzf $work/big.aci -C $work/x" \
    "$rkt ${flags[*]} image extract --overwrite example.com/big $work/x" \
    "rm -rf $work/x && mkdir $work/x"

# The other benchmarks, each writing its own hyperfine exports.
pod_runs=100
[ $quick = 1 ] && pod_runs=5
echo "bench: pod start, $pod_runs runs each" >&2
bench/pods.sh "$results" "$pod_runs"
# BENCH_BASE_REV=REV: the same pod start with this tree's stage1 vs REV's, interleaved.
if [ -n "${BENCH_BASE_REV:-}" ]; then
    echo "bench: pod start, stage1 vs ${BENCH_BASE_REV}'s, $pod_runs interleaved rounds" >&2
    bench/stage1-ab.sh "$results" "$pod_runs" "$BENCH_BASE_REV" || echo "bench: bench/stage1-ab.sh failed" >&2
fi
# The other benchmarks, each writing hyperfine exports into $results.
cni_runs=20
[ $quick = 1 ] && cni_runs=2
oci_quick=()
[ $quick = 1 ] && oci_quick=(--quick)
echo "bench: networking (pod start with and without CNI, at 1 and 100 pods)" >&2
bench/net.sh "$results" "$quick" || echo "bench: bench/net.sh failed" >&2
echo "bench: CNI bridge ADD+DEL, ours vs the reference plugin" >&2
bench/cni.sh "$results" "$cni_runs" || echo "bench: bench/cni.sh failed" >&2
echo "bench: Docker/OCI pull + render vs skopeo + umoci" >&2
bench/oci.sh "${oci_quick[@]}" "$results" || echo "bench: bench/oci.sh failed" >&2
if [ -x bench/reconcile.sh ]; then
    echo "bench: reconciler latency and scale" >&2
    bench/reconcile.sh "$results" "$quick" || echo "bench: bench/reconcile.sh failed" >&2
    [ -f "$results/reconcile-scale.txt" ] && cat "$results/reconcile-scale.txt"
fi

python3 bench/table.py "$results"/*.json
