#!/usr/bin/env bash
# The main job, end to end on a fresh machine (as root): build rkt, build the example
# busybox image, sign it with a freshly made key, trust that key for the image's name,
# fetch (verifying the signature) and list the store.
#
# It uses rkt's defaults (/var/lib/rkt, /etc/rkt). To keep it away from those, set
# RKT_DEMO_ROOT=/some/dir and everything goes under that directory instead.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --quiet -p rkt -p stage1
rkt=$PWD/target/release/rkt

flags=()
if [ -n "${RKT_DEMO_ROOT:-}" ]; then
    flags=(--dir "$RKT_DEMO_ROOT/data" --local-config "$RKT_DEMO_ROOT/etc" --system-config "$RKT_DEMO_ROOT/usr-lib")
fi

work=$(mktemp -d)
export GNUPGHOME=$work/gnupg
cleanup() { gpgconf --kill gpg-agent 2>/dev/null || true; rm -rf "$work"; }
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
