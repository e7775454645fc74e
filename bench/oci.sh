#!/usr/bin/env bash
# Benchmark: pull and render a multi-layer OCI image from a registry on loopback.
#
#   bench/oci.sh [--quick] [RESULTS_DIR]
#
# The image (busybox plus SIZE_MB of data in 4 layers, half incompressible) is built
# with umoci and pushed with skopeo to Docker Distribution on 127.0.0.1. Each run
# starts from an empty store:
#   baseline: skopeo copy docker://... oci:DIR  &&  umoci unpack (the rootfs)
#   rkt:      rkt fetch docker://...            &&  rkt image render (the rootfs)
# hyperfine writes oci-pull-render.json (commands named baseline and rkt) into
# RESULTS_DIR (default: a temp dir) and the table is printed as bench/run.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
size_mb=200
runs=5
if [ $quick = 1 ]; then size_mb=20; runs=2; fi

cargo build --release --quiet -p reconciler
rkt=$PWD/target/release/rkt
work=$(mktemp -d)
results=${1:-$work/results}
mkdir -p "$results"
registry_pid=
cleanup() {
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- the registry, on a free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $host
YAML
docker-registry serve "$work/registry.yml" 2>"$work/registry.log" &
registry_pid=$!
for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://$host/v2/')" 2>/dev/null && break
    sleep 0.1
done

# --- the image: busybox, then 4 layers of data.
examples/build-busybox-aci.sh "$work/bb.aci" example.com/busybox >/dev/null
mkdir "$work/aci" && tar -xzf "$work/bb.aci" -C "$work/aci"
layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:big"
umoci unpack --image "$layout:big" "$work/bundle" >/dev/null
cp -a "$work/aci/rootfs/." "$work/bundle/rootfs/"
umoci repack --image "$layout:big" "$work/bundle" >/dev/null
per_layer=$((size_mb / 4))
for layer in 1 2 3 4; do
    rm -rf "$work/bundle"
    umoci unpack --image "$layout:big" "$work/bundle" >/dev/null
    d=$work/bundle/rootfs/data$layer
    mkdir -p "$d"
    written=0 i=0
    while [ $written -lt $per_layer ]; do
        n=$(( (i % 4) + 1 ))
        if [ $((i % 2)) = 0 ]; then
            head -c $((n * 1024 * 1024)) /dev/urandom >"$d/blob$i"
        else
            { yes "layer $layer line $i of compressible text in the rkt OCI benchmark" || true; } |
                head -c $((n * 1024 * 1024)) >"$d/text$i"
        fi
        written=$((written + n)); i=$((i + 1))
    done
    umoci repack --image "$layout:big" "$work/bundle" >/dev/null
done
rm -rf "$work/bundle"
umoci config --image "$layout:big" --config.cmd=/bin/sh >/dev/null
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$layout:big" "docker://$host/big:latest"
echo "bench: $(du -sm "$work/registry" | cut -f1) MB in the registry ($size_mb MB of data in 5 layers)" >&2

store=$work/store
flags=(--dir "$store/data" --local-config "$store/etc" --system-config "$store/usr-lib")
hyperfine --style none --runs "$runs" --warmup 1 \
    --prepare "rm -rf $work/sk $work/out $store" \
    --export-json "$results/oci-pull-render.json" \
    -n baseline "skopeo --insecure-policy copy -q --src-tls-verify=false docker://$host/big:latest oci:$work/sk:big && umoci unpack --image $work/sk:big $work/out >/dev/null" \
    -n rkt "$rkt ${flags[*]} --insecure-options=image,http fetch docker://$host/big:latest >/dev/null 2>&1 && $rkt ${flags[*]} image render --rootfs-only docker://$host/big:latest $work/out" \
    >/dev/null

python3 bench/table.py "$results"/oci-pull-render.json
