#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into fuzz/seeds/<target>/.

Run from anywhere: `python3 fuzz/seeds/make_seeds.py`. The output is deterministic
(fixed mtimes, owners and compression settings where the tool allows) and small; it
is checked in, so this only needs running after a change here or in fuzz/fixtures.
The example Pods (examples/pods) are not copied: scripts/fuzz.sh passes that directory
to the pod_yaml target as a further seed directory.
"""

import base64
import bz2
import gzip
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.dirname(HERE)
FIXTURES = os.path.join(FUZZ, "fixtures")
REPO = os.path.dirname(FUZZ)


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# ------------------------------------------------------------------ pod_yaml

POD_YAML = {
    "probes.yaml": """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations:
    rkt.io/networks: default,backend
    rkt.io/replace: start-first
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  initContainers:
  - name: init
    image: example.com/busybox:1.36
    command: ["sh", "-c", "echo $(GREETING) > /data/index.html"]
    env:
    - {name: GREETING, value: hello}
    volumeMounts:
    - {name: data, mountPath: /data}
  containers:
  - name: httpd
    image: docker://busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    imagePullPolicy: IfNotPresent
    args: ["httpd", "-f", "-p", "$(PORT)", "-h", "/data"]
    workingDir: /data
    env:
    - {name: PORT, value: "8080"}
    - {name: ECHO, value: "$(PORT) and $$(PORT)"}
    ports:
    - {name: http, containerPort: 8080, hostPort: 18080, protocol: TCP}
    resources:
      limits: {memory: 64Mi, cpu: 250m}
    securityContext:
      readOnlyRootFilesystem: true
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
    livenessProbe:
      httpGet: {path: /, port: http}
      initialDelaySeconds: 1
      periodSeconds: 2
    readinessProbe:
      tcpSocket: {port: 8080}
      failureThreshold: 5
    volumeMounts:
    - {name: data, mountPath: /data, readOnly: true}
    - {name: host, mountPath: /host}
  volumes:
  - name: data
    emptyDir: {}
  - name: host
    hostPath: {path: /tmp, type: Directory}
""",
    "list.yaml": """\
# A List of two pods, then a second document.
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec:
    hostNetwork: true
    hostname: host-a
    containers:
    - {name: main, image: example.com/app, command: [/bin/true]}
- apiVersion: v1
  kind: Pod
  metadata: {name: b, annotations: {rkt.io/stage1: fly}}
  spec:
    hostNetwork: true
    restartPolicy: Never
    containers:
    - name: main
      image: /images/app.aci
      livenessProbe:
        exec: {command: [cat, /tmp/healthy]}
---
apiVersion: v1
kind: Pod
metadata: {name: c}
spec:
  containers:
  - name: main
    image: example.com/app
    securityContext: {privileged: true, runAsUser: 0}
""",
    "pod.json": compact({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "json-pod", "labels": {"tier": "db"}},
        "spec": {
            "containers": [{
                "name": "db",
                "image": "docker://postgres:16",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)2"}],
                "ports": [{"containerPort": 5432, "protocol": "UDP"}],
                "resources": {"limits": {"memory": "1Gi", "cpu": "1.5"}},
            }],
        },
    }),
    "anchors.yaml": """\
apiVersion: v1
kind: Pod
metadata: &meta
  name: anchors
spec:
  containers:
  - &c
    name: one
    image: "example.com/app:v1"
    command: [ 'sh', "-c", |
      echo multi
      line ]
  - <<: *c
    name: two
""",
    "errors.yaml": """\
apiVersion: v1
kind: Pod
metadata: {name: Bad_Name}
spec:
  containers:
  - name: x
    image: ""
    env:
    - name: A
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    unknownField: 1
  volumes:
  - name: v
    nfs: {server: nfs.example, path: /}
""",
}

# ------------------------------------------------------------------ appc_manifests

IMAGE_MANIFEST = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    "name": "example.com/busybox",
    "labels": [
        {"name": "version", "value": "1.36.1"},
        {"name": "os", "value": "linux"},
        {"name": "arch", "value": "amd64"},
    ],
    "app": {
        "exec": ["/bin/httpd", "-f", "-p", "80"],
        "user": "1000",
        "group": "1000",
        "supplementaryGIDs": [10, 20],
        "workingDirectory": "/srv",
        "environment": [{"name": "PATH", "value": "/bin:/usr/bin"}],
        "isolators": [
            {"name": "resource/memory", "value": {"limit": "64M"}},
            {"name": "resource/cpu", "value": {"limit": "500m"}},
            {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_NET_BIND_SERVICE"]}},
            {"name": "os/linux/capabilities-remove-set", "value": {"set": ["CAP_KILL"]}},
            {"name": "os/linux/no-new-privileges", "value": True},
        ],
        "mountPoints": [{"name": "data", "path": "/srv/data", "readOnly": True}],
        "ports": [
            {"name": "http", "protocol": "tcp", "port": 80},
            {"name": "dns", "protocol": "udp", "port": 53, "count": 2, "socketActivated": True},
        ],
    },
    "dependencies": [{"imageName": "example.com/base", "labels": [{"name": "version", "value": "1"}], "size": 1024}],
    "pathWhitelist": ["/bin/httpd", "/etc/passwd"],
    "annotations": [{"name": "authors", "value": "fuzz"}],
    "x-unknown": {"kept": [1, 2.5, None]},
}

IMAGE_ID = "sha512-" + "5f" * 64

POD_MANIFEST = {
    "acKind": "PodManifest",
    "acVersion": "0.8.11",
    "apps": [{
        "name": "web",
        "image": {"name": "example.com/busybox", "id": IMAGE_ID,
                  "labels": [{"name": "version", "value": "1.36.1"}]},
        "app": {"exec": ["/bin/sh"], "user": "0", "group": "0"},
        "readOnlyRootFS": True,
        "mounts": [
            {"volume": "data", "path": "/srv/data"},
            {"volume": "scratch", "path": "/tmp", "appVolume": {"name": "scratch", "kind": "empty", "mode": "1777"}},
        ],
        "annotations": [{"name": "a", "value": "b"}],
    }],
    "volumes": [
        {"name": "data", "kind": "host", "source": "/srv", "readOnly": True, "recursive": False},
        {"name": "cache", "kind": "empty", "mode": "0755", "uid": 1000, "gid": 1000},
    ],
    "isolators": [],
    "annotations": [{"name": "rkt.io/k8s-pod", "value": "default/web"}],
    "ports": [{"name": "http", "hostPort": 8080, "hostIP": "127.0.0.1",
               "podPort": {"name": "http", "protocol": "tcp", "port": 80}}],
    "userAnnotations": {"note": "x"},
    "userLabels": {"app": "web"},
}

RUNTIME_APP = {
    "name": "busybox",
    "imageId": IMAGE_ID,
    "image": "/var/lib/rkt/cas/tree/" + IMAGE_ID + "/rootfs",
    "exec": ["/bin/sh", "-c", "id; pwd; ls /"],
    "env": [["PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], ["AC_APP_NAME", "busybox"]],
    "user": "0", "group": "0", "supplementaryGids": [], "workingDir": "/", "readOnlyRootfs": False,
    "mounts": [], "memoryLimitBytes": None, "cpuMillis": None,
    "capabilities": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL"],
    "noNewPrivileges": True,
    "maskedPaths": ["/proc/kcore", "/sys/firmware"],
    "readonlyPaths": ["/proc/sys"],
    "init": False, "restartPolicy": "Never", "livenessProbe": None, "readinessProbe": None,
}

RUNTIME = {
    "version": 1,
    "uuid": "d5331ea2-bca3-449e-b191-f8543394da0c",
    "flavor": "default",
    "hostname": "rkt-d5331ea2",
    "interactive": False,
    "stopGracePeriodSecs": 10,
    "logMaxBytes": 10485760,
    "dns": {"nameservers": ["10.7.0.53"], "search": ["pods.test"], "options": ["ndots:2"]},
    "hostsEntries": [{"ip": "10.7.0.9", "hostnames": ["rkt-u.pods.test", "rkt-u"]}],
    "netns": None,
    "privateNetwork": False,
    "cgroupRoot": "/sys/fs/cgroup",
    "volumes": [
        {"kind": "host", "name": "data", "source": "/srv", "readOnly": True},
        {"kind": "empty", "name": "scratch", "mode": "0777", "uid": 0, "gid": 0},
    ],
    "backoff": {"initialSecs": 10, "maxSecs": 300, "resetSecs": 600},
    "apps": [
        dict(RUNTIME_APP, name="init", init=True, restartPolicy="OnFailure"),
        dict(RUNTIME_APP,
             mounts=[{"volume": "data", "path": "/data", "readOnly": True}],
             memoryLimitBytes=67108864, cpuMillis=250, restartPolicy="Always",
             livenessProbe={"action": {"type": "httpGet", "path": "/", "port": 80},
                            "initialDelaySecs": 1, "periodSecs": 2},
             readinessProbe={"action": {"type": "exec", "command": ["true"]}, "failureThreshold": 5}),
    ],
}

# ------------------------------------------------------------------ aci_extract

MTIME = 1_600_000_000


def tar_bytes(entries, fmt=tarfile.PAX_FORMAT):
    """entries: (name, kind, extra) with kind file|dir|symlink|hardlink|fifo|chr."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, extra in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            data = None
            if kind == "file":
                data = extra.get("data", b"")
                ti.size = len(data)
                ti.mode = extra.get("mode", 0o644)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = extra.get("mode", 0o755)
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = extra["target"]
                ti.mode = 0o777
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = extra["target"]
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
                ti.mode = 0o600
            elif kind == "chr":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = 1, 3
                ti.mode = 0o666
            ti.uid = extra.get("uid", 0)
            ti.gid = extra.get("gid", 0)
            if "pax" in extra:
                ti.pax_headers = extra["pax"]
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def manifest_bytes(**over):
    m = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/fuzz",
         "labels": [{"name": "os", "value": "linux"}],
         "app": {"exec": ["/bin/sh"], "user": "0", "group": "0"}}
    m.update(over)
    return compact(m).encode()


ACI_BASIC = [
    ("manifest", "file", {"data": manifest_bytes()}),
    ("rootfs", "dir", {}),
    ("rootfs/bin", "dir", {}),
    ("rootfs/bin/busybox", "file", {"data": b"\x7fELF fake", "mode": 0o755}),
    ("rootfs/bin/sh", "symlink", {"target": "busybox"}),
    ("rootfs/bin/ls", "hardlink", {"target": "rootfs/bin/busybox"}),
    ("rootfs/etc", "dir", {"mode": 0o700}),
    ("rootfs/etc/passwd", "file", {"data": b"root:x:0:0::/root:/bin/sh\n", "uid": 1, "gid": 2}),
    ("rootfs/etc/setuid", "file", {"data": b"s", "mode": 0o4755}),
    ("rootfs/dev", "dir", {}),
    ("rootfs/dev/null", "chr", {}),
    ("rootfs/run", "dir", {}),
    ("rootfs/run/fifo", "fifo", {}),
    ("rootfs/xattr", "file", {"data": b"x", "pax": {"SCHILY.xattr.user.fuzz": "value",
                                                    "mtime": "1600000000.5"}}),
]

ACI_WHITELIST = [
    ("manifest", "file", {"data": manifest_bytes(pathWhitelist=["/keep", "/dir/keep"])}),
    ("rootfs/", "dir", {}),
    ("rootfs/keep", "file", {"data": b"k"}),
    ("rootfs/drop", "file", {"data": b"d"}),
    ("rootfs/dir/keep", "file", {"data": b"k"}),
    ("rootfs/dir/drop", "symlink", {"target": "/etc/passwd"}),
]

ESCAPES = {
    # Through the symlink the extraction root already holds.
    "through-existing-link.tar": [
        ("manifest", "file", {"data": manifest_bytes()}),
        ("rootfs", "dir", {}),
        ("rootfs/escape/pwned", "file", {"data": b"x"}),
    ],
    # A link made by the archive, then a write through it.
    "through-own-link.tar": [
        ("rootfs/", "dir", {}),
        ("rootfs/up", "symlink", {"target": "../.."}),
        ("rootfs/up/pwned", "file", {"data": b"x"}),
        ("manifest", "file", {"data": manifest_bytes()}),
    ],
    "dotdot.tar": [
        ("manifest", "file", {"data": manifest_bytes()}),
        ("rootfs", "dir", {}),
        ("rootfs/../../outside/pwned", "file", {"data": b"x"}),
    ],
    "absolute.tar": [
        ("/outside/pwned", "file", {"data": b"x"}),
        ("./a/./b", "file", {"data": b"x"}),
    ],
    "hardlink-out.tar": [
        ("manifest", "file", {"data": manifest_bytes()}),
        ("rootfs", "dir", {}),
        ("rootfs/h", "hardlink", {"target": "rootfs/escape/sentinel"}),
        ("rootfs/h2", "hardlink", {"target": "escape/sentinel"}),
    ],
    "hardlink-out-layer.tar": [
        ("h", "hardlink", {"target": "escape/sentinel"}),
        ("h2", "hardlink", {"target": "abs/sentinel"}),
        ("escape", "dir", {"mode": 0o700, "uid": 7}),
    ],
    "replace-link-dir.tar": [
        ("abs", "dir", {"mode": 0o700}),
        ("abs/x", "file", {"data": b"x"}),
        ("escape", "file", {"data": b"replaces the link itself"}),
        ("bin/sh", "file", {"data": b"replaces bin/sh"}),
        (".", "file", {"data": b"replaces the root"}),
    ],
}

OCI_LAYER = [
    ("etc/", "dir", {}),
    ("etc/.wh.passwd", "file", {}),
    ("dir/.wh..wh..opq", "file", {}),
    ("dir/new", "file", {"data": b"new"}),
    ("bin/.wh.sh", "file", {}),
    ("bin/sh", "symlink", {"target": "/bin/busybox"}),
    (".wh.escape", "file", {}),
    ("long/" + "n" * 120 + "/" + "m" * 120, "file", {"data": b"long name"}),
]


def compressed_variants(name, raw):
    write("aci_extract", name + ".gz", gzip.compress(raw, mtime=0))
    write("aci_extract", name + ".bz2", bz2.compress(raw))
    write("aci_extract", name + ".xz", lzma.compress(raw))
    if shutil.which("zstd"):
        zst = subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, stdout=subprocess.PIPE,
                             check=True).stdout
        write("aci_extract", name + ".zst", zst)


# ------------------------------------------------------------------ cni_config

CNI = {
    "bridge.conflist": {
        "cniVersion": "1.0.0", "name": "default",
        "plugins": [
            {"type": "bridge", "bridge": "rkt0", "isGateway": True, "isDefaultGateway": True,
             "ipMasq": True, "ipMasqBackend": "nftables", "hairpinMode": True, "mtu": 1500,
             "ipam": {"type": "host-local",
                      "ranges": [[{"subnet": "172.16.28.0/24", "rangeStart": "172.16.28.10",
                                   "rangeEnd": "172.16.28.200", "gateway": "172.16.28.1"}],
                                 [{"subnet": "fd00:28::/64"}]],
                      "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:28::1"}],
                      "dataDir": "/var/lib/cni/networks"},
             "dns": {"nameservers": ["172.16.28.1"], "domain": "pods.test", "search": ["a"],
                     "options": ["ndots:1"]}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True,
             "markMasqBit": 13, "backend": "nftables"},
        ],
    },
    "single.conf": {"cniVersion": "0.4.0", "name": "mynet", "type": "bridge", "bridge": "br9",
                    "ipam": {"type": "host-local", "subnet": "10.22.0.0/16",
                             "rangeStart": "10.22.0.10", "gateway": "10.22.0.1",
                             "resolvConf": "/etc/resolv.conf"}},
    "versions.conflist": {"cniVersion": "1.1.0", "cniVersions": ["0.3.1", "1.0.0", "9.9.9"],
                          "name": "n", "disableCheck": True, "disableGC": False,
                          "plugins": [{"type": "loopback"},
                                      {"type": "bridge", "vlan": 0, "ipam": {}}]},
    "legacy.conf": {"name": "old", "type": "bridge", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}},
    "result-1.0.json": {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "02:42:ac:10:1c:02", "mtu": 1500,
                        "sandbox": "/var/run/netns/x"},
                       {"name": "veth1", "mac": "02:42:ac:10:1c:03"}],
        "ips": [{"address": "172.16.28.2/24", "gateway": "172.16.28.1", "interface": 0},
                {"address": "fd00:28::2/64", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "172.16.28.1", "mtu": 1400, "priority": 5,
                    "table": 100, "scope": 0}],
        "dns": {"nameservers": ["172.16.28.1"], "search": ["pods.test"]},
    },
    "result-0.4.json": {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
        "ips": [{"version": "4", "address": "10.22.0.5/16", "gateway": "10.22.0.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    },
    "result-0.2.json": {"cniVersion": "0.2.0",
                        "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1",
                                "routes": [{"dst": "0.0.0.0/0"}]},
                        "ip6": {"ip": "fd00::5/64"}, "dns": {"nameservers": ["10.1.0.1"]}},
    "error.json": {"cniVersion": "1.0.0", "code": 7, "msg": "invalid network config",
                   "details": "bridge: vlan is not supported"},
    "request.json": {"cniVersion": "1.0.0", "name": "default", "type": "bridge",
                     "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80,
                                                         "protocol": "tcp"}]},
                     "prevResult": {"cniVersion": "1.0.0",
                                    "ips": [{"address": "172.16.28.2/24"}]},
                     "args": {"cni": {"ips": ["172.16.28.9"]}},
                     "ipam": {"type": "host-local", "subnet": "172.16.28.0/24"}},
}

RESOLV_CONF = "nameserver 10.0.0.1\nnameserver fd00::1\nsearch a.example b.example\noptions ndots:2 edns0\ndomain x.example\n# comment\n"


# ------------------------------------------------------------------ pgp_signature


def dearmor(text):
    lines = text.decode().strip().splitlines()
    body = []
    started = False
    for line in lines[1:-1]:
        if not started:
            if line.strip() == "":
                started = True
            continue
        if line.startswith("="):
            continue
        body.append(line)
    return base64.b64decode("".join(body))


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


# ------------------------------------------------------------------ dictionaries
#
# Built without a sanitizer, the targets get no help from libFuzzer's memcmp hooks;
# a dictionary of the words the parsers compare against makes up for it.


def json_keys(obj, out):
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(k)
            json_keys(v, out)
    elif isinstance(obj, list):
        for v in obj:
            json_keys(v, out)
    elif isinstance(obj, str) and len(obj) < 40:
        out.add(obj)


def source_words(*paths):
    import re
    words = set()
    for rel in paths:
        with open(os.path.join(REPO, rel)) as f:
            words.update(re.findall(r'"([A-Za-z][A-Za-z0-9./_-]{1,39})"', f.read()))
    return words


def dict_entry(word):
    if isinstance(word, str):
        word = word.encode()
    out = ""
    for b in word:
        c = chr(b)
        if c in '"\\':
            out += "\\" + c
        elif 32 <= b < 127:
            out += c
        else:
            out += "\\x%02x" % b
    return '"' + out + '"'


def write_dict(target, words):
    os.makedirs(os.path.join(FUZZ, "dicts"), exist_ok=True)
    with open(os.path.join(FUZZ, "dicts", target + ".dict"), "w") as f:
        f.write("# Written by fuzz/seeds/make_seeds.py.\n")
        for w in sorted(set(words), key=lambda w: w if isinstance(w, bytes) else w.encode()):
            f.write(dict_entry(w) + "\n")


def dictionaries():
    write_dict("pod_yaml", source_words(
        "manifests/src/k8s/schema.rs", "manifests/src/k8s/convert.rs",
        "manifests/src/k8s/mod.rs") | {
        "---", "...", ": ", "- ", "&a ", "*a", "<<: ", "!!str ", "!!int ", "|-", ">+", "{}",
        "[]", "'", '"', "#", "\n  ", "rkt.io/stage1", "rkt.io/networks", "rkt.io/replace",
        "start-first", "stop-first", "fly", "docker://", "sha512-", "@sha256:", "$(", "$$",
        "Mi", "Gi", "Ki", "m", "e3", "0x", "0o", ".inf", ".nan", "~", "null", "true", "yes"})
    appc = set()
    for obj in (IMAGE_MANIFEST, POD_MANIFEST, RUNTIME):
        json_keys(obj, appc)
    appc |= source_words("manifests/src/appc.rs", "manifests/src/pod.rs",
                         "manifests/src/runtime.rs", "stage0/src/pod/spec.rs")
    write_dict("appc_manifests", appc | {"sha512-", "0.8.11", "1e99", "-0", "\\u0000"})
    cni = set()
    for obj in CNI.values():
        json_keys(obj, cni)
    cni |= source_words("stage0/src/pod/net/config.rs", "stage0/src/pod/net/result.rs",
                        "cni-plugins/src/types.rs", "cni-plugins/src/bridge.rs",
                        "cni-plugins/src/host_local.rs", "cni-plugins/src/portmap.rs",
                        "cni-plugins/src/skel.rs")
    write_dict("cni_config", cni | {"nameserver ", "search ", "options ", "domain ", "::",
                                    "/32", "/128", "/0", "::ffff:"})
    write_dict("aci_extract", [
        b"ustar\x0000", b"ustar  \x00", b"rootfs", b"rootfs/", b"manifest", b"./", b"../",
        b".wh.", b".wh..wh..opq", b"././@LongLink", b"././@PaxHeader",
        b"SCHILY.xattr.", b"SCHILY.xattr.user.", b"SCHILY.xattr.security.capability",
        b"path=", b"linkpath=", b"mtime=", b"uid=", b"gid=", b"size=", b"uname=",
        b"GNU.sparse.", b"escape/", b"abs/", b"bin/sh", b"etc/passwd", b"dir/sub/file",
        b"0000755\x00", b"0000644\x00", b"0004755\x00",
        b"\x1f\x8b\x08", b"BZh9", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd",
        b'"pathWhitelist"', b'"acKind":"ImageManifest"'])
    write_dict("pgp_signature", [
        "-----BEGIN PGP SIGNATURE-----", "-----END PGP SIGNATURE-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----END PGP PUBLIC KEY BLOCK-----",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----", "-----BEGIN PGP MESSAGE-----",
        "Version: ", "Comment: ", "Hash: SHA256", "\n\n", "\r\n", "="])


def main():
    for target in ["pod_yaml", "appc_manifests", "aci_extract", "cni_config", "pgp_signature"]:
        d = os.path.join(HERE, target)
        if os.path.isdir(d):
            shutil.rmtree(d)

    dictionaries()

    for name, text in POD_YAML.items():
        write("pod_yaml", name, text)

    write("appc_manifests", "image-manifest.json", compact(IMAGE_MANIFEST))
    write("appc_manifests", "image-manifest-min.json", manifest_bytes())
    write("appc_manifests", "pod-manifest.json", compact(POD_MANIFEST))
    write("appc_manifests", "runtime.json", compact(RUNTIME))
    write("appc_manifests", "ac-name", "example.com/app-v1.2")

    basic = tar_bytes(ACI_BASIC)
    write("aci_extract", "basic.aci", basic)
    compressed_variants("basic.aci", basic)
    write("aci_extract", "gnu.aci", tar_bytes(ACI_BASIC[:6], fmt=tarfile.GNU_FORMAT))
    write("aci_extract", "whitelist.aci", tar_bytes(ACI_WHITELIST))
    write("aci_extract", "oci-layer.tar", tar_bytes(OCI_LAYER))
    for name, entries in ESCAPES.items():
        write("aci_extract", name, tar_bytes(entries))

    for name, obj in CNI.items():
        write("cni_config", name, json.dumps(obj, indent=1))
    write("cni_config", "resolv.conf", RESOLV_CONF)

    for key in ["ed", "rsa", "sub"]:
        armored = fixture(key + ".pub.asc")
        write("pgp_signature", key + ".pub.asc", b"\x02" + armored)
        write("pgp_signature", key + ".pub.bin", b"\x03" + dearmor(armored))
    for sig in ["ed", "ed-text", "rsa", "sub"]:
        armored = fixture(sig + ".sig.asc")
        write("pgp_signature", sig + ".sig.asc", b"\x00" + armored)
        write("pgp_signature", sig + ".sig.bin", b"\x01" + dearmor(armored))


if __name__ == "__main__":
    main()
