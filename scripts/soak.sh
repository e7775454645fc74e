#!/usr/bin/env bash
# The long run of the fault-injection and load suites (docs/testing.md):
# the fault suite with many rounds per randomised test, then the load run at full
# size, repeated RKT_SOAK_LOOPS times with a new seed each time. Prints the figures
# of every test and a total at the end; exits non-zero at the first failure, naming
# the seed to replay it with.
#
#   scripts/soak.sh                      # 40 rounds, 200 pods, 1 loop
#   RKT_FAULT_ROUNDS=200 RKT_SOAK_LOOPS=5 scripts/soak.sh
#   RKT_FAULT_SEED=12345 scripts/soak.sh # replay one schedule
#
# Needs root, like scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${RKT_FAULT_ROUNDS:-40}
pods=${RKT_LOAD_PODS:-200}
loops=${RKT_SOAK_LOOPS:-1}
log=$(mktemp /tmp/rkt-soak.XXXXXX)
trap 'rm -f "$log"' EXIT

cargo build --quiet -p e2e --tests
start=$(date +%s)
for loop in $(seq 1 "$loops"); do
    seed=${RKT_FAULT_SEED:-$(( $(date +%s%N) % 1000000007 ))}
    echo "== soak loop $loop/$loops: seed $seed, $rounds rounds per fault test, $pods pods"
    for suite in faults load; do
        if ! RKT_FAULT_SEED=$seed RKT_FAULT_ROUNDS=$rounds RKT_LOAD_PODS=$pods \
            cargo test --quiet -p e2e --test "$suite" -- --test-threads=1 --nocapture \
            >"$log" 2>&1; then
            kept=/tmp/rkt-soak-failed-$seed-$suite.log
            cp "$log" "$kept"
            grep -E 'fault seed|^round|^final|panicked|leak:|timed out|did not converge|no convergence|FAILED' "$log" | tail -60
            echo "soak: the $suite suite FAILED (replay with RKT_FAULT_SEED=$seed); full log: $kept" >&2
            exit 1
        fi
        grep -E 'fault seed|faults injected|leaks found: [1-9]|^load' "$log" || true
    done
done
echo "soak: $loops loop(s) passed in $(( $(date +%s) - start ))s"
