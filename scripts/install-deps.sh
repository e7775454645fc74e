#!/usr/bin/env bash
# Install the Debian packages rkt's demo and tests use. Idempotent and quiet: it only
# calls apt-get when something is missing.
set -euo pipefail

packages=(
    busybox-static   # the example image's only binary
    gnupg            # real keys and signatures in tests and the demo
    tar gzip bzip2 xz-utils zstd   # every compression the store accepts
    iproute2         # network namespaces for tests that serve HTTP
    attr             # xattr checks in extraction tests
    sqlite3          # inspecting the store index by hand
    hyperfine        # benchmarks
    docker-registry skopeo umoci apache2-utils openssl   # OCI tests: registry, push, build, htpasswd, certs
    runc             # baseline of the pod start benchmark
    util-linux       # unshare, nsenter in tests
    containernetworking-plugins   # reference CNI plugins (tests run pods against them too)
    iptables nftables             # NAT rules of the bridge and portmap plugins
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "install-deps: cargo not found; install a stable Rust toolchain" >&2; exit 1; }
