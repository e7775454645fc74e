#!/usr/bin/env bash
# Build a small, reproducible ACI from Debian's busybox-static, so that tests and users
# have an image without internet access.
#
#   examples/build-busybox-aci.sh OUT.aci [NAME] [VERSION]
#
# NAME defaults to example.com/busybox, VERSION to the busybox version. The archive is
# gzip-compressed and byte-for-byte reproducible (sorted entries, fixed mtimes, numeric
# root ownership), so its image ID (`gzip -dc OUT.aci | sha512sum`) is stable.
# Sign it with: gpg --armor --detach-sign -o OUT.aci.asc OUT.aci
#
# ACI_EXTRA="SRC:DEST ..." copies more files into the rootfs (e.g. a test binary).
set -euo pipefail

out=${1:?usage: build-busybox-aci.sh OUT.aci [NAME] [VERSION]}
name=${2:-example.com/busybox}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "build-busybox-aci: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }
if ! "$busybox" --list >/dev/null 2>&1; then
    echo "build-busybox-aci: $busybox does not list its applets" >&2; exit 1
fi
default_version=$("$busybox" 2>&1 | sed -n 's/^BusyBox v\([^ ]*\).*/\1/p' | head -n1)
version=${3:-${default_version:-0.0.0}}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/tmp,run,www}
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
# One symlink per applet, at the path busybox itself reports.
"$busybox" --list-full | while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sf /bin/busybox "$root/$applet"
done
chmod 1777 "$root/tmp" "$root/var/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hello from the busybox example image\n' >"$root/www/index.html"
for pair in ${ACI_EXTRA:-}; do
    src=${pair%%:*} dest=${pair#*:}
    mkdir -p "$root/$(dirname "$dest")"
    cp "$src" "$root/$dest"
done

cat >"$work/manifest" <<JSON
{
  "acKind": "ImageManifest",
  "acVersion": "0.8.11",
  "name": "$name",
  "labels": [
    {"name": "version", "value": "$version"},
    {"name": "os", "value": "linux"},
    {"name": "arch", "value": "amd64"}
  ],
  "app": {
    "exec": ["/bin/sh", "-c", "echo hello from \$AC_APP_NAME; sleep 3600"],
    "user": "0",
    "group": "0",
    "workingDirectory": "/",
    "ports": [{"name": "http", "protocol": "tcp", "port": 80}]
  },
  "annotations": [
    {"name": "authors", "value": "the rkt project"},
    {"name": "homepage", "value": "https://busybox.net"}
  ]
}
JSON

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
    -C "$work" -cf - manifest rootfs | gzip -n -9 >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
