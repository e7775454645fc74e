#!/usr/bin/env bash
# Run the libFuzzer targets in fuzz/ (cargo fuzz), each for a fixed time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   fuzz (default: 60 s, every target)
#   scripts/fuzz.sh replay TARGET FILE...              run inputs once (a crash, say)
#   scripts/fuzz.sh list                               the targets
#
# Installs cargo-fuzz if it is missing, builds every target it runs (release, debug
# assertions and overflow checks on, no sanitizer: stable Rust is enough), then runs
# them one after another. Each run starts from the checked-in seeds (fuzz/seeds/TARGET)
# plus what earlier runs found (fuzz/corpus/TARGET, not checked in). A crash, panic,
# timeout or out-of-memory input is saved under fuzz/artifacts/TARGET/ and named at the
# end; the exit status is then 1.
#
# Environment: FUZZ_SANITIZER=address builds with AddressSanitizer (nightly flags,
# allowed on stable through RUSTC_BOOTSTRAP); FUZZ_TARGET_DIR overrides the build
# directory (default fuzz/target); FUZZ_ARGS adds libFuzzer flags.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz="$root/fuzz"
all_targets=(pod_yaml appc_manifests aci_extract cni_config pgp_signature)
triple=x86_64-unknown-linux-gnu
sanitizer=${FUZZ_SANITIZER:-none}
target_dir=${FUZZ_TARGET_DIR:-$fuzz/target}
bin_dir="$target_dir/$triple/release"

die() {
    echo "fuzz: $*" >&2
    exit 2
}

is_target() {
    local t
    for t in "${all_targets[@]}"; do
        [[ $t == "$1" ]] && return 0
    done
    return 1
}

ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz: installing cargo-fuzz"
        cargo install --locked --quiet cargo-fuzz
    fi
}

# build TARGET...: build the targets (all of them in one cargo run when all are asked).
build() {
    local log
    log=$(mktemp)
    local env=()
    [[ $sanitizer != none ]] && env=(RUSTC_BOOTSTRAP=1)
    local names=("$@")
    [[ ${#names[@]} -eq ${#all_targets[@]} ]] && names=("")
    local start=$SECONDS name
    for name in "${names[@]}"; do
        # shellcheck disable=SC2086
        if ! (cd "$fuzz" && env "${env[@]}" cargo fuzz build --sanitizer "$sanitizer" \
            --target-dir "$target_dir" ${FUZZ_BUILD_ARGS:-} $name >"$log" 2>&1); then
            tail -n 40 "$log" >&2
            rm -f "$log"
            die "build failed"
        fi
    done
    rm -f "$log"
    echo "fuzz: built ${*} in $((SECONDS - start)) s"
}

case "${1:-}" in
list)
    printf '%s\n' "${all_targets[@]}"
    exit 0
    ;;
replay)
    [[ $# -ge 3 ]] || die "usage: scripts/fuzz.sh replay TARGET FILE..."
    is_target "$2" || die "unknown target $2 (scripts/fuzz.sh list)"
    target=$2
    shift 2
    ensure_cargo_fuzz
    build "$target"
    # With files as arguments libFuzzer runs each once and stops at the first crash.
    exec "$bin_dir/$target" "$@"
    ;;
esac

secs=60
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    is_target "$t" || die "unknown target $t (scripts/fuzz.sh list)"
done

ensure_cargo_fuzz
build "${targets[@]}"

# A corpus that grew past this many files is merged down after the run.
max_corpus=${FUZZ_MAX_CORPUS:-10000}
total_runs=0
crashes=()
for t in "${targets[@]}"; do
    corpus="$fuzz/corpus/$t"
    artifacts="$fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    seeds=("$fuzz/seeds/$t")
    [[ $t == pod_yaml ]] && seeds+=("$root/examples/pods")
    flags=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts/")
    [[ -f $fuzz/dicts/$t.dict ]] && flags+=(-dict="$fuzz/dicts/$t.dict")
    log="$fuzz/artifacts/$t.log"
    status=0
    # shellcheck disable=SC2086
    "$bin_dir/$t" "$corpus" "${seeds[@]}" "${flags[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
    size=$(find "$corpus" -type f | wc -l)
    if [[ $status -eq 0 && $size -gt $max_corpus ]]; then
        # Keep the corpus to the inputs that matter, or loading it eats the next run.
        rm -rf "$corpus.merged"
        mkdir "$corpus.merged"
        if "$bin_dir/$t" -merge=1 "$corpus.merged" "$corpus" >"$log.merge" 2>&1; then
            rm -rf "$corpus"
            mv "$corpus.merged" "$corpus"
            size=$(find "$corpus" -type f | wc -l)
        else
            rm -rf "$corpus.merged"
        fi
    fi
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    total_runs=$((total_runs + ${runs:-0}))
    if [[ $status -ne 0 || -n $crash ]]; then
        crashes+=("$t: ${crash:-no input saved, see $log}")
        printf '%-15s CRASH after %s runs: %s\n' "$t" "${runs:-?}" "${crash:-see $log}"
        grep -m 1 -E "panicked at|ERROR: libFuzzer|==[0-9]+==ERROR" "$log" | sed 's/^/                /' || true
    else
        printf '%-15s %9s runs %6s/s  corpus %5s (+%s new)  0 crashes\n' \
            "$t" "${runs:-0}" "${speed:-0}" "$size" "${new:-0}"
    fi
done

echo "fuzz: ${#targets[@]} targets, ${secs} s each, $total_runs runs, ${#crashes[@]} crashes"
if [[ ${#crashes[@]} -gt 0 ]]; then
    printf 'fuzz: crash input %s\n' "${crashes[@]}"
    echo "fuzz: replay with scripts/fuzz.sh replay TARGET FILE (docs/fuzzing.md)"
    exit 1
fi
