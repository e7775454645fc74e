#!/usr/bin/env bash
# Build a large test ACI: the busybox example plus SIZE_MB of data, half incompressible
# (random) and half text-like, in files of 1-8 MiB.  Usage: make-big-aci.sh OUT.aci SIZE_MB
set -eu  # no pipefail: `yes | head` ends yes with SIGPIPE by design
out=${1:?usage: make-big-aci.sh OUT.aci SIZE_MB}
size_mb=${2:-200}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/../examples/build-busybox-aci.sh" "$work/bb.aci" example.com/big 1.0 >/dev/null
mkdir "$work/img"
tar -xzf "$work/bb.aci" -C "$work/img"
mkdir -p "$work/img/rootfs/data"
written=0 i=0
while [ $written -lt "$size_mb" ]; do
    n=$(( (i % 8) + 1 ))
    if [ $((i % 2)) = 0 ]; then
        head -c $((n * 1024 * 1024)) /dev/urandom >"$work/img/rootfs/data/blob$i"
    else
        yes "line $i of some compressible text in the rkt benchmark image" | head -c $((n * 1024 * 1024)) >"$work/img/rootfs/data/text$i"
    fi
    written=$((written + n)); i=$((i + 1))
done
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/img" -cf - manifest rootfs | gzip -1 >"$out"
echo "$out"
