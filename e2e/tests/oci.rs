//! End-to-end: Docker and OCI images. Images are built with umoci from the example
//! busybox rootfs, pushed with skopeo to Docker Distribution (`docker-registry`)
//! running on loopback, then fetched and run with the real `rkt`. Pods need root.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use e2e::rkt::{busybox_aci, files_under, is_root, Rkt};

const RKT_ERROR: i32 = 254;

macro_rules! need_root {
    ($name:expr) => {
        if !is_root() {
            eprintln!("SKIPPED {}: needs root", $name);
            return;
        }
    };
}

fn run_tool(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run {shown}: {e} (scripts/install-deps.sh installs it)")
    });
    assert!(
        out.status.success(),
        "{shown} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ------------------------------------------------------------ the registry

/// Docker Distribution on 127.0.0.1 and a free port, with its storage in a temp dir;
/// killed (by PID) when dropped.
struct Registry {
    child: Child,
    host: String,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        Self::start_with(htpasswd, false)
    }

    /// With `tls`, the registry serves https with a self-signed certificate for
    /// 127.0.0.1 (made with openssl).
    fn start_with(htpasswd: Option<(&str, &str)>, tls: bool) -> Registry {
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("registry-")
                .tempdir()
                .unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut auth = String::new();
            if let Some((user, password)) = htpasswd {
                let line = run_tool(Command::new("htpasswd").args(["-Bbn", user, password]));
                fs::write(dir.path().join("htpasswd"), line.trim()).unwrap();
                auth = format!(
                    "auth:\n  htpasswd:\n    realm: rkt-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                );
            }
            let mut tls_config = String::new();
            if tls {
                let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
                run_tool(
                    Command::new("openssl")
                        .args([
                            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        ])
                        .args([
                            "-subj",
                            "/CN=127.0.0.1",
                            "-addext",
                            "subjectAltName=IP:127.0.0.1",
                        ])
                        .arg("-keyout")
                        .arg(&key)
                        .arg("-out")
                        .arg(&cert)
                        .stderr(Stdio::null()),
                );
                tls_config = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                );
            }
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n{auth}http:\n  addr: 127.0.0.1:{port}\n{tls_config}",
                dir.path().join("storage").display()
            );
            fs::write(dir.path().join("config.yml"), config).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.path().join("registry.log")).unwrap())
                .spawn()
                .expect("run docker-registry (scripts/install-deps.sh installs it)");
            let host = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                if http_status(&host, "/v2/").is_some() {
                    return Registry { child, host, dir };
                }
                assert!(Instant::now() < deadline, "the registry did not start");
                thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start docker-registry");
    }

    /// `storage/.../blobs/sha256/<2>/<hex>/data` of a blob.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of `GET path`, or None if nothing answers.
fn http_status(host: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ------------------------------------------------------------ building images

/// An OCI image layout built with umoci from the example busybox rootfs.
struct Layout {
    dir: PathBuf,
    work: PathBuf,
}

impl Layout {
    /// A one-layer busybox image tagged `tag`, whose command prints `greeting`.
    fn busybox(scratch: &Path, name: &str, tag: &str, arch: &str, greeting: &str) -> Layout {
        let work = scratch.join(format!("build-{name}"));
        fs::create_dir_all(&work).unwrap();
        let aci = busybox_aci(&work, "example.com/busybox");
        let src = work.join("aci");
        fs::create_dir_all(&src).unwrap();
        run_tool(
            Command::new("tar")
                .arg("-xzf")
                .arg(&aci)
                .arg("-C")
                .arg(&src),
        );
        let dir = work.join("layout");
        let image = format!("{}:{tag}", dir.display());
        run_tool(Command::new("umoci").args(["init", "--layout"]).arg(&dir));
        run_tool(Command::new("umoci").args(["new", "--image", &image]));
        let bundle = work.join("bundle");
        run_tool(
            Command::new("umoci")
                .args(["unpack", "--image", &image])
                .arg(&bundle),
        );
        run_tool(
            Command::new("cp")
                .arg("-a")
                .arg(src.join("rootfs/."))
                .arg(bundle.join("rootfs")),
        );
        run_tool(
            Command::new("umoci")
                .args(["repack", "--image", &image])
                .arg(&bundle),
        );
        fs::remove_dir_all(&bundle).unwrap();
        run_tool(Command::new("umoci").args([
            "config",
            "--image",
            &image,
            "--architecture",
            arch,
            "--config.entrypoint=/bin/sh",
            "--config.entrypoint=-c",
            &format!("--config.cmd=echo {greeting}"),
            "--config.env=GREETING=from-config",
            "--config.workingdir=/www",
        ]));
        Layout { dir, work }
    }

    fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.dir.display())
    }

    /// Change the tree: `edit` gets the unpacked rootfs; umoci writes the diff
    /// (with whiteouts for removed files) as a new layer.
    fn change(&self, tag: &str, edit: impl FnOnce(&Path)) {
        let bundle = self.work.join("bundle");
        let _ = fs::remove_dir_all(&bundle);
        run_tool(
            Command::new("umoci")
                .args(["unpack", "--image", &self.image(tag)])
                .arg(&bundle),
        );
        edit(&bundle.join("rootfs"));
        run_tool(
            Command::new("umoci")
                .args(["repack", "--image", &self.image(tag)])
                .arg(&bundle),
        );
        fs::remove_dir_all(&bundle).unwrap();
    }

    /// Append a layer made by GNU tar from `dir` verbatim (for opaque whiteouts,
    /// which umoci does not write itself).
    fn add_raw_layer(&self, tag: &str, dir: &Path) {
        let tar = self.work.join("raw-layer.tar");
        run_tool(
            Command::new("tar")
                .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
                .arg(&tar)
                .arg("-C")
                .arg(dir)
                .arg("."),
        );
        run_tool(
            Command::new("umoci")
                .args(["raw", "add-layer", "--image", &self.image(tag)])
                .arg(&tar),
        );
    }
}

fn push(layout_image: &str, dest: &str, creds: Option<&str>, all: bool) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["--insecure-policy", "copy", "--dest-tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--dest-creds", c]);
    }
    if all {
        cmd.arg("--all");
    }
    cmd.arg(format!("oci:{layout_image}"))
        .arg(format!("docker://{dest}"));
    run_tool(&mut cmd);
}

/// The manifest digest the registry has for `reference`.
fn remote_digest(reference: &str) -> String {
    let out = run_tool(Command::new("skopeo").args([
        "--insecure-policy",
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{reference}"),
    ]));
    out.trim().to_string()
}

fn sha256_blobs(rkt: &Rkt) -> Vec<PathBuf> {
    files_under(&rkt.data_dir().join("cas/blob/sha256"))
}

fn pushed_busybox(reg: &Registry, rkt: &Rkt, greeting: &str) -> Layout {
    let layout = Layout::busybox(&rkt.scratch(), "busybox", "latest", "amd64", greeting);
    push(
        &layout.image("latest"),
        &format!("{}/busybox:latest", reg.host),
        None,
        false,
    );
    layout
}

// ------------------------------------------------------------ tests

#[test]
fn fetch_by_tag_and_digest_list_and_remove() {
    let reg = Registry::start(None);
    let rkt = Rkt::new();
    pushed_busybox(&reg, &rkt, "hello-from-oci");
    let by_tag = format!("docker://{}/busybox:latest", reg.host);

    // Unsigned: refused without --insecure-options=image, nothing stored.
    rkt.run(["--insecure-options=http", "fetch", &by_tag])
        .fails_with(
            RKT_ERROR,
            &["is not signed", "@sha256:", "--insecure-options=image"],
        );
    assert!(rkt.images().is_empty());
    assert!(sha256_blobs(&rkt).is_empty());

    let id = rkt.ok(["--insecure-options=image,http", "fetch", &by_tag]);
    let id = id.trim();
    assert!(id.starts_with("sha512-"), "{id}");
    let images = rkt.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["name"], format!("{}/busybox", reg.host));
    let list = rkt.ok(["image", "list"]);
    assert!(
        list.contains(&format!("{}/busybox:latest", reg.host)),
        "{list}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&rkt.ok(["image", "cat-manifest", &by_tag])).unwrap();
    assert_eq!(
        manifest["app"]["exec"],
        serde_json::json!(["/bin/sh", "-c", "echo hello-from-oci"])
    );
    assert_eq!(manifest["app"]["workingDirectory"], "/www");
    rkt.ok(["image", "verify", id]);
    let rendered = rkt.scratch().join("rendered");
    rkt.ok([
        "image",
        "render",
        "--rootfs-only",
        id,
        rendered.to_str().unwrap(),
    ]);
    assert!(rendered.join("bin/busybox").is_file());

    // By digest: verified by content, so no image option is needed.
    let digest = remote_digest(&format!("{}/busybox:latest", reg.host));
    let by_digest = format!("docker://{}/busybox@{digest}", reg.host);
    let fresh = Rkt::new();
    let id2 = fresh.ok(["--insecure-options=http", "fetch", &by_digest]);
    assert!(id2.starts_with("sha512-"));
    assert_eq!(fresh.images()[0]["name"], format!("{}/busybox", reg.host));
    // Stored layer blobs are named by the sha256 of their content.
    for blob in sha256_blobs(&fresh) {
        let name = blob.file_name().unwrap().to_string_lossy().into_owned();
        let out = run_tool(Command::new("sha256sum").arg(&blob));
        assert_eq!(format!("sha256-{}", &out[..64]), name);
    }

    // Removal frees the blobs.
    rkt.ok(["image", "rm", &by_tag]);
    assert!(rkt.images().is_empty());
    assert!(sha256_blobs(&rkt).is_empty(), "{:?}", sha256_blobs(&rkt));
}

#[test]
fn run_a_pod_from_a_registry() {
    need_root!("run_a_pod_from_a_registry");
    let reg = Registry::start(None);
    let rkt = Rkt::new();
    pushed_busybox(&reg, &rkt, "hello-from-oci");
    let image = format!("docker://{}/busybox:latest", reg.host);
    let out = rkt.ok(["--insecure-options=image,http", "run", "--net=host", &image]);
    assert!(out.contains("hello-from-oci"), "{out}");
    // Stored now: pull policy new runs it without asking the registry again.
    drop(reg);
    let out = rkt.ok([
        "run",
        "--net=host",
        &image,
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo $GREETING; pwd",
    ]);
    assert!(out.contains("from-config"), "{out}");
    assert!(out.contains("/www"), "{out}");
}

#[test]
fn layers_with_whiteouts_and_opaque_directories_in_a_pod() {
    let reg = Registry::start(None);
    let rkt = Rkt::new();
    let layout = Layout::busybox(&rkt.scratch(), "layered", "v1", "amd64", "layered");
    layout.change("v1", |root| {
        fs::create_dir_all(root.join("data")).unwrap();
        fs::write(root.join("data/a"), "a").unwrap();
        fs::write(root.join("data/b"), "b").unwrap();
        fs::write(root.join("etc/gone"), "soon deleted").unwrap();
    });
    layout.change("v1", |root| fs::remove_file(root.join("etc/gone")).unwrap());
    let raw = rkt.scratch().join("raw");
    fs::create_dir_all(raw.join("data")).unwrap();
    fs::write(raw.join("data/.wh..wh..opq"), "").unwrap();
    fs::write(raw.join("data/c"), "c").unwrap();
    layout.add_raw_layer("v1", &raw);
    push(
        &layout.image("v1"),
        &format!("{}/layered:v1", reg.host),
        None,
        false,
    );
    let image = format!("docker://{}/layered:v1", reg.host);
    let id = rkt.ok(["--insecure-options=image,http", "fetch", &image]);

    let rendered = rkt.scratch().join("r");
    rkt.ok([
        "image",
        "render",
        "--rootfs-only",
        id.trim(),
        rendered.to_str().unwrap(),
    ]);
    assert!(!rendered.join("etc/gone").exists(), "whiteout");
    let mut data: Vec<String> = fs::read_dir(rendered.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    data.sort();
    assert_eq!(data, vec!["c"], "opaque directory");

    if !is_root() {
        eprintln!("SKIPPED the pod part of layers_with_whiteouts: needs root");
        return;
    }
    let out = rkt.ok([
        "run",
        "--net=host",
        &image,
        "--exec=/bin/sh",
        "--",
        "-c",
        "ls /data; test -e /etc/gone && echo GONE-PRESENT || echo GONE-ABSENT",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines.contains(&"GONE-ABSENT"), "{out}");
    assert!(lines.contains(&"c"), "{out}");
    assert!(!lines.contains(&"a") && !lines.contains(&"b"), "{out}");
}

#[test]
fn htpasswd_auth_from_auth_d() {
    let reg = Registry::start(Some(("alice", "pa55-word")));
    let rkt = Rkt::new();
    let layout = Layout::busybox(&rkt.scratch(), "private", "latest", "amd64", "private");
    push(
        &layout.image("latest"),
        &format!("{}/private:latest", reg.host),
        Some("alice:pa55-word"),
        false,
    );
    let image = format!("docker://{}/private:latest", reg.host);
    rkt.run(["--insecure-options=image,http", "fetch", &image])
        .fails_with(RKT_ERROR, &["requires authentication", "auth.d"]);
    let auth_d = rkt.local_config().join("auth.d");
    fs::create_dir_all(&auth_d).unwrap();
    let write = |password: &str| {
        fs::write(
            auth_d.join("registry.json"),
            serde_json::json!({
                "rktKind": "dockerAuth", "rktVersion": "v1",
                "registries": [reg.host],
                "credentials": {"user": "alice", "password": password}
            })
            .to_string(),
        )
        .unwrap();
    };
    write("wrong-secret");
    let res = rkt.run(["--debug", "--insecure-options=image,http", "fetch", &image]);
    let res = res.fails_with(RKT_ERROR, &["refused the credentials of user alice"]);
    assert!(!res.stderr().contains("wrong-secret"), "{}", res.stderr());
    write("pa55-word");
    let res = rkt
        .run(["--debug", "--insecure-options=image,http", "fetch", &image])
        .success();
    assert!(
        !res.stderr().contains("pa55-word"),
        "the password is never logged"
    );
    assert_eq!(rkt.images().len(), 1);
}

#[test]
fn a_multi_arch_index_gives_the_host_platform() {
    let reg = Registry::start(None);
    let rkt = Rkt::new();
    let scratch = rkt.scratch();
    let amd = Layout::busybox(&scratch, "amd", "latest", "amd64", "I-am-amd64");
    let arm = Layout::busybox(&scratch, "arm", "latest", "arm64", "I-am-arm64");
    // Assemble an index in the amd64 layout that points at both manifests.
    let mut entries = Vec::new();
    for (layout, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.dir.join("index.json")).unwrap()).unwrap();
        let mut desc = index["manifests"][0].clone();
        desc.as_object_mut().unwrap().remove("annotations");
        desc["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        entries.push(desc);
        if arch == "arm64" {
            for blob in fs::read_dir(layout.dir.join("blobs/sha256")).unwrap() {
                let blob = blob.unwrap();
                let dest = amd.dir.join("blobs/sha256").join(blob.file_name());
                if !dest.exists() {
                    fs::copy(blob.path(), dest).unwrap();
                }
            }
        }
    }
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let digest = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(&nested))
    };
    fs::write(amd.dir.join("blobs/sha256").join(&digest), &nested).unwrap();
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(amd.dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{digest}"),
            "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }));
    fs::write(amd.dir.join("index.json"), index.to_string()).unwrap();
    push(
        &amd.image("multi"),
        &format!("{}/multi:latest", reg.host),
        None,
        true,
    );

    let image = format!("docker://{}/multi:latest", reg.host);
    rkt.ok(["--insecure-options=image,http", "fetch", &image]);
    let manifest: serde_json::Value =
        serde_json::from_str(&rkt.ok(["image", "cat-manifest", &image])).unwrap();
    let host_arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let greeting = format!("echo I-am-{host_arch}");
    assert_eq!(manifest["app"]["exec"][2], greeting.as_str(), "{manifest}");
    // Also the local layout itself: oci:DIR:REF through the same index.
    let local = Rkt::new();
    local.ok([
        "--insecure-options=image",
        "fetch",
        &format!("oci:{}", amd.image("multi")),
    ]);
    let images = local.images();
    assert_eq!(images[0]["name"], "layout");
}

#[test]
fn a_tampered_blob_in_registry_storage_is_refused() {
    let reg = Registry::start(None);
    let rkt = Rkt::new();
    pushed_busybox(&reg, &rkt, "tamper");
    let raw = run_tool(Command::new("skopeo").args([
        "--insecure-policy",
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/busybox:latest", reg.host),
    ]));
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let file = reg.blob_file(&layer);
    let mut bytes = fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&file, bytes).unwrap();
    rkt.run([
        "--insecure-options=image,http",
        "fetch",
        &format!("docker://{}/busybox:latest", reg.host),
    ])
    .fails_with(RKT_ERROR, &["nothing was stored"]);
    assert!(rkt.images().is_empty());
    assert!(sha256_blobs(&rkt).is_empty(), "{:?}", sha256_blobs(&rkt));
    assert!(rkt.tmp_files().is_empty(), "{:?}", rkt.tmp_files());
}

/// A proxy in front of the registry that cuts blob responses after `cut` bytes.
struct CuttingProxy {
    host: String,
    stop: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(upstream: String, cut: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let upstream = upstream.clone();
                        thread::spawn(move || {
                            let _ = proxy_one(client, &upstream, cut);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        CuttingProxy { host, stop }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn proxy_one(client: TcpStream, upstream: &str, cut: usize) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        if !line.to_ascii_lowercase().starts_with("connection:") {
            head.push_str(&line);
        }
    }
    let is_blob = head.lines().next().is_some_and(|l| l.contains("/blobs/"));
    head.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(head.as_bytes())?;
    let mut client = client;
    let mut buf = [0u8; 16 * 1024];
    let mut sent = 0usize;
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let n = if is_blob && sent + n > cut {
            cut - sent
        } else {
            n
        };
        client.write_all(&buf[..n])?;
        sent += n;
        if is_blob && sent >= cut {
            // Drop the connection mid-body.
            return client.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn registry_errors_are_clear_and_leave_nothing() {
    let reg = Registry::start(None);
    let rkt = Rkt::new();
    pushed_busybox(&reg, &rkt, "errors");
    let f = |image: &str| rkt.run(["--insecure-options=image,http", "fetch", image]);
    f("docker://Bad/Name").fails_with(RKT_ERROR, &["invalid image reference", "lower-case"]);
    f(&format!("docker://{}/busybox:nope", reg.host))
        .fails_with(RKT_ERROR, &["was not found", "busybox:nope"]);
    f(&format!("docker://{}/nothere:latest", reg.host)).fails_with(RKT_ERROR, &["was not found"]);

    // A registry that answers 5xx.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let broken = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut line = String::new();
            let _ = BufReader::new(conn.try_clone().unwrap()).read_line(&mut line);
            let (status, body) = if line.starts_with("GET /v2/ ") {
                ("200 OK", "{}")
            } else {
                (
                    "503 Service Unavailable",
                    r#"{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}"#,
                )
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    f(&format!("docker://{broken}/busybox:latest"))
        .fails_with(RKT_ERROR, &["HTTP 503", "maintenance"]);

    // A connection dropped in the middle of the layer.
    let proxy = CuttingProxy::start(reg.host.clone(), 200_000);
    f(&format!("docker://{}/busybox:latest", proxy.host)).fails_with(RKT_ERROR, &["layer"]);
    assert!(rkt.images().is_empty());
    assert!(sha256_blobs(&rkt).is_empty(), "{:?}", sha256_blobs(&rkt));
    assert!(rkt.tmp_files().is_empty(), "{:?}", rkt.tmp_files());
}

#[test]
fn http_and_tls_are_separate_insecure_options() {
    let reg = Registry::start_with(None, true);
    let rkt = Rkt::new();
    pushed_busybox(&reg, &rkt, "over-tls");
    let image = format!("docker://{}/busybox:latest", reg.host);
    // A self-signed certificate is refused, also when plain http is allowed (the
    // registry does not speak it).
    rkt.run(["--insecure-options=image", "fetch", &image])
        .fails_with(
            RKT_ERROR,
            &["cannot reach registry", "--insecure-options=http"],
        );
    rkt.run(["--insecure-options=image,http", "fetch", &image])
        .fails_with(RKT_ERROR, &["cannot reach registry", "over plain http"]);
    assert!(rkt.images().is_empty());
    // tls skips the certificate check; http is not needed for that.
    rkt.ok(["--insecure-options=image,tls", "fetch", &image]);
    assert_eq!(rkt.images().len(), 1);

    // And a plain-http registry needs http, not tls.
    let plain = Registry::start(None);
    let other = Rkt::new();
    pushed_busybox(&plain, &other, "plain");
    let image = format!("docker://{}/busybox:latest", plain.host);
    other
        .run(["--insecure-options=image,tls", "fetch", &image])
        .fails_with(RKT_ERROR, &["cannot reach registry"]);
    other.ok(["--insecure-options=image,http", "fetch", &image]);
}

/// Write `<local-config>/registries.d/<host>/hosts.toml`.
fn hosts_toml(rkt: &Rkt, host: &str, text: &str) {
    let dir = rkt.local_config().join("registries.d").join(host);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("hosts.toml"), text).unwrap();
}

#[test]
fn registry_k8s_io_names_come_from_a_configured_mirror() {
    let reg = Registry::start(None);
    let rkt = Rkt::new();
    let layout = Layout::busybox(&rkt.scratch(), "pause", "3.9", "amd64", "from-mirror");
    push(
        &layout.image("3.9"),
        &format!("{}/pause:3.9", reg.host),
        None,
        false,
    );
    let digest = remote_digest(&format!("{}/pause:3.9", reg.host));
    // An http:// mirror declared in hosts.toml needs no --insecure-options=http.
    hosts_toml(
        &rkt,
        "registry.k8s.io",
        &format!(
            "server = \"https://registry.k8s.io\"\n\n[host.\"http://{}\"]\n  \
             capabilities = [\"pull\", \"resolve\"]\n",
            reg.host
        ),
    );
    let res = rkt
        .run([
            "--insecure-options=image",
            "fetch",
            "docker://registry.k8s.io/pause:3.9",
        ])
        .success();
    assert!(
        res.stderr()
            .contains(&format!("from mirror http://{}", reg.host)),
        "{}",
        res.stderr()
    );
    // The image keeps its name.
    let images = rkt.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["name"], "registry.k8s.io/pause");
    let list = rkt.ok(["image", "list"]);
    assert!(list.contains("registry.k8s.io/pause:3.9"), "{list}");
    // A pod run by that name on a host that has never fetched it pulls it from
    // the mirror too.
    if is_root() {
        let runner = Rkt::new();
        hosts_toml(
            &runner,
            "registry.k8s.io",
            &format!("[host.\"http://{}\"]\n", reg.host),
        );
        let out = runner.ok([
            "--insecure-options=image",
            "run",
            "--net=host",
            "docker://registry.k8s.io/pause:3.9",
        ]);
        assert!(out.contains("from-mirror"), "{out}");
        assert_eq!(runner.images()[0]["name"], "registry.k8s.io/pause");
    }

    // Pinned by digest: verified, no insecure option at all; a dead first mirror is
    // skipped for the live second.
    let fresh = Rkt::new();
    hosts_toml(
        &fresh,
        "registry.k8s.io",
        &format!(
            "server = \"https://registry.k8s.io\"\n\
             [host.\"http://127.0.0.1:1\"]\n\
             [host.\"http://{}\"]\n",
            reg.host
        ),
    );
    let pinned = format!("docker://registry.k8s.io/pause@{digest}");
    let res = fresh.run(["fetch", &pinned]).success();
    assert!(
        res.stderr()
            .contains(&format!("from mirror http://{}", reg.host)),
        "{}",
        res.stderr()
    );
    assert_eq!(fresh.images()[0]["name"], "registry.k8s.io/pause");

    // All dead: every endpoint tried is named (the server too, kept offline here).
    let dead = Rkt::new();
    hosts_toml(
        &dead,
        "registry.k8s.io",
        "server = \"http://127.0.0.1:9\"\n\
         [host.\"http://127.0.0.1:1\"]\n\
         [host.\"http://127.0.0.1:2/prefix\"]\n",
    );
    dead.run(["--insecure-options=image", "fetch", &pinned])
        .fails_with(
            RKT_ERROR,
            &[
                "no endpoint served docker://registry.k8s.io/pause@",
                "http://127.0.0.1:1 (",
                "http://127.0.0.1:2/prefix (",
                "http://127.0.0.1:9 (",
            ],
        );
    assert!(dead.images().is_empty());

    // A hosts.toml rkt cannot honour is refused with its file and line.
    hosts_toml(
        &dead,
        "registry.k8s.io",
        "[host.\"http://127.0.0.1:1\"]\n  ca = \"/etc/mirror-ca.pem\"\n",
    );
    dead.run(["--insecure-options=image", "fetch", &pinned])
        .fails_with(
            RKT_ERROR,
            &["registry.k8s.io/hosts.toml:2:", "ca is not supported"],
        );
}

#[test]
fn docker_hub_names_come_from_a_configured_mirror() {
    let reg = Registry::start(None);
    let rkt = Rkt::new();
    let layout = Layout::busybox(&rkt.scratch(), "hub", "latest", "amd64", "hub-mirror");
    // Docker Hub's official images live under library/.
    push(
        &layout.image("latest"),
        &format!("{}/library/busybox:latest", reg.host),
        None,
        false,
    );
    hosts_toml(
        &rkt,
        "docker.io",
        &format!(
            "server = \"http://127.0.0.1:9\"\n[host.\"http://{}\"]\n",
            reg.host
        ),
    );
    let res = rkt
        .run(["--insecure-options=image", "fetch", "docker://busybox"])
        .success();
    let from = format!(
        "docker://registry-1.docker.io/library/busybox:latest: from mirror http://{}",
        reg.host
    );
    assert!(res.stderr().contains(&from), "{}", res.stderr());
    let images = rkt.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["name"], "registry-1.docker.io/library/busybox");
    // A pod runs it by its Docker Hub name, from the store.
    if is_root() {
        let out = rkt.ok(["run", "--net=host", "docker://busybox"]);
        assert!(out.contains("hub-mirror"), "{out}");
    }
    // docker.io/ spells the same registry.
    rkt.ok([
        "--insecure-options=image",
        "fetch",
        "docker://docker.io/library/busybox:latest",
    ]);
    assert_eq!(rkt.images().len(), 1);
}
