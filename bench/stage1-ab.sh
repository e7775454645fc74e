#!/usr/bin/env bash
# Benchmark: pod start (`rkt run --net=none /bin/true` from the cached busybox image)
# with this tree's stage1 against the stage1 of an earlier revision, same `rkt`, runs
# interleaved one by one (A, B, A, B, ...) so that the machine's drift hits both
# alike. Writes a hyperfine-style JSON (commands `rkt` and `baseline-stage1@REV`) into
# RESULTS_DIR, so bench/table.py prints it as a row.
#
#   bench/stage1-ab.sh RESULTS_DIR ROUNDS REV
#
# REV's stage1 is built (release) in a temporary git worktree with its own target
# directory under target/ab (cached between runs).
set -euo pipefail
results=${1:?usage: stage1-ab.sh RESULTS_DIR ROUNDS REV}
rounds=${2:?usage: stage1-ab.sh RESULTS_DIR ROUNDS REV}
rev=${3:?usage: stage1-ab.sh RESULTS_DIR ROUNDS REV}
here=$(cd "$(dirname "$0")/.." && pwd)
rkt=$here/target/release/rkt
new=$here/target/release/stage1
short=$(git -C "$here" rev-parse --short "$rev")
work=$(mktemp -d)
tree=$work/tree
cleanup() {
    "$rkt" --dir "$work/data" gc --grace-period=0s >/dev/null 2>&1 || true
    git -C "$here" worktree remove --force "$tree" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

git -C "$here" worktree add --detach --quiet "$tree" "$short"
(cd "$tree" && CARGO_TARGET_DIR=$here/target/ab cargo build --release --quiet -p stage1)
old=$work/stage1-$short
cp "$here/target/ab/release/stage1" "$old"

"$here/examples/build-busybox-aci.sh" "$work/bb.aci" >/dev/null
flags=(--dir "$work/data" --local-config "$work/etc" --system-config "$work/usr-lib" --insecure-options=image)
"$rkt" "${flags[@]}" fetch "$work/bb.aci" >/dev/null 2>&1
"$rkt" "${flags[@]}" run --net=none example.com/busybox --exec=/bin/true >/dev/null 2>&1

python3 - "$results/pod-start-vs-$short.json" "$rounds" "$rkt" "$new" "$old" "$short" "${flags[@]}" <<'PY'
import json, statistics, subprocess, sys, time
out, rounds, rkt, new, old, short, *flags = sys.argv[1:]
variants = {"rkt": new, f"baseline-stage1@{short}": old}
times = {k: [] for k in variants}
for _ in range(int(rounds)):
    for name, stage1 in variants.items():
        subprocess.run([rkt, *flags, "gc", "--grace-period=0s"], capture_output=True)
        t = time.perf_counter()
        subprocess.run([rkt, *flags, "run", "--net=none", f"--stage1-path={stage1}",
                        "example.com/busybox", "--exec=/bin/true"], capture_output=True, check=True)
        times[name].append(time.perf_counter() - t)
results = [{"command": k, "times": v, "mean": statistics.mean(v),
            "stddev": statistics.pstdev(v), "median": statistics.median(v)}
           for k, v in times.items()]
json.dump({"results": results}, open(out, "w"))
PY
