#!/usr/bin/env bash
# Run every check and test: formatting, clippy, unit tests and end-to-end tests (as root:
# the tests use real namespaces, mounts and device nodes).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: WARNING: not root; tests that need root will report that they skipped" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
set +e
# One test at a time per binary: many tests start real pods, registries and network
# namespaces, and on a 2-core machine running two at once made timing-sensitive ones
# (kill -9 recovery, forks racing other tests' descriptors) fail now and then.
cargo test --workspace --no-fail-fast -- --test-threads=1 2>&1 | tee /tmp/rkt-test-$$.log | grep -vE '^test .* \.\.\. ok$'
status=${PIPESTATUS[0]}
set -e
# A short, bounded fuzzing run of every target (docs/fuzzing.md); longer runs:
# scripts/fuzz.sh SECONDS. A crash counts as a failed test.
echo "== fuzz (10 s per target)"
if scripts/fuzz.sh 10; then
    echo "test fuzz ... ok" >>/tmp/rkt-test-$$.log
    echo "test result: ok. 1 passed; 0 failed" >>/tmp/rkt-test-$$.log
else
    echo "test result: FAILED. 0 passed; 1 failed" >>/tmp/rkt-test-$$.log
    status=1
fi
# The escape suites' figures, summed (each test prints its own line too).
for suite in security hostile; do
    grep -Eo "^(test [^ ]+ \.\.\. )?${suite} [^:]+: escapes attempted: [0-9]+, blocked: [0-9]+" /tmp/rkt-test-$$.log |
        awk -v s="$suite" -F'attempted: |, blocked: ' '{a+=$2; b+=$3} END {if (a) printf "%s suite: escapes attempted: %d, blocked: %d\n", s, a, b}'
done
passed=$(grep -Eo '[0-9]+ passed' /tmp/rkt-test-$$.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' /tmp/rkt-test-$$.log | awk '{s+=$1} END {print s+0}')
ignored=$(grep -Eo '[0-9]+ ignored' /tmp/rkt-test-$$.log | awk '{s+=$1} END {print s+0}')
rm -f /tmp/rkt-test-$$.log
echo
echo "${passed} passed, ${failed} failed, ${ignored} skipped"
exit "$status"
