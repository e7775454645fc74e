#!/usr/bin/env bash
# The main job, end to end on a fresh machine (as root): build rkt, build the example
# busybox image, sign it with a freshly made key, trust that key for the image's name,
# fetch (verifying the signature) and list the store; then run the reconciler with the
# example Pod manifests (examples/pods/*.yaml): apply them, wait until they run, show
# `rkt reconcile status` and `rkt list`, delete them and stop the reconciler.
#
# It uses rkt's defaults (/var/lib/rkt, /etc/rkt). To keep it away from those, set
# RKT_DEMO_ROOT=/some/dir and everything goes under that directory instead.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --quiet -p rkt -p stage1 -p cni-plugins
rkt=$PWD/target/release/rkt

flags=()
if [ -n "${RKT_DEMO_ROOT:-}" ]; then
    flags=(--dir "$RKT_DEMO_ROOT/data" --local-config "$RKT_DEMO_ROOT/etc" --system-config "$RKT_DEMO_ROOT/usr-lib")
fi

work=$(mktemp -d)
export GNUPGHOME=$work/gnupg
reconciler=
cleanup() {
    if [ -n "$reconciler" ]; then kill -TERM "$reconciler" 2>/dev/null || true; wait "$reconciler" 2>/dev/null || true; fi
    gpgconf --kill gpg-agent 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -m 700 "$GNUPGHOME"

echo "== building the example image"
examples/build-busybox-aci.sh "$work/busybox.aci" >/dev/null
echo "== signing it with a new key"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key 'rkt demo <demo@example.com>' ed25519 sign never 2>/dev/null
gpg --batch --quiet --armor --export >"$work/demo.pub"
gpg --batch --quiet --armor --detach-sign -o "$work/busybox.aci.asc" "$work/busybox.aci"

echo "== rkt trust"
"$rkt" "${flags[@]}" trust --prefix example.com/busybox --skip-fingerprint-review "$work/demo.pub"
echo "== rkt fetch (verifies the signature)"
"$rkt" "${flags[@]}" fetch "$work/busybox.aci"
echo "== rkt image list"
"$rkt" "${flags[@]}" image list
echo "== rkt image verify"
"$rkt" "${flags[@]}" image verify

echo "== rkt reconcile (in the background; its log: the pods it starts and stops)"
"$rkt" "${flags[@]}" reconcile --resync=2s --stop-pods-on-exit &
reconciler=$!
echo "== rkt apply -f examples/pods --wait (writes them into the pods dir)"
rc=0
"$rkt" "${flags[@]}" apply -f examples/pods --wait=120s || rc=$?
echo "== rkt reconcile status"
"$rkt" "${flags[@]}" reconcile status
echo "== rkt list"
"$rkt" "${flags[@]}" list
echo "== rkt delete -f examples/pods --wait (the reconciler stops and removes the pods)"
"$rkt" "${flags[@]}" delete -f examples/pods --wait=60s || rc=$?
kill -TERM "$reconciler"
wait "$reconciler" || rc=$?
reconciler=
exit "$rc"
