//! End-to-end: the edges of the `rkt` command line that a user touches: its log lines
//! on a pipe, a file and a terminal, its shell completions and its man pages.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::process::{Command, Stdio};

use e2e::rkt::Rkt;

/// What `rkt` logs (a tracing WARN) when it finds `<dir>/cas` open to other users.
const WARNING: &str = "(image store) was open to other users";

/// Open `<dir>/cas` to other users, so the next command that opens the store logs
/// [`WARNING`] as it closes it again.
fn open_cas(rkt: &Rkt) {
    let cas = rkt.data_dir().join("cas");
    fs::create_dir_all(&cas).unwrap();
    fs::set_permissions(&cas, fs::Permissions::from_mode(0o755)).unwrap();
}

fn assert_no_escapes(what: &str, log: &str) {
    assert!(log.contains(WARNING), "{what}: no warning logged:\n{log}");
    assert!(log.contains("WARN"), "{what}: no level:\n{log}");
    assert!(
        !log.contains("\x1b["),
        "{what}: ANSI escape codes in the log:\n{}",
        log.escape_debug()
    );
}

#[test]
fn logs_to_a_pipe_or_a_file_carry_no_colour_codes() {
    let rkt = Rkt::new();

    open_cas(&rkt);
    let out = rkt.run(["image", "list"]).success();
    assert_no_escapes("stderr to a pipe", &out.stderr());

    open_cas(&rkt);
    let log = rkt.scratch().join("rkt.log");
    let status = rkt
        .command(["image", "list"])
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert_no_escapes("stderr to a file", &fs::read_to_string(&log).unwrap());
}

/// Run `rkt image list` with stderr on the slave side of a new pseudo-terminal and
/// return what it wrote there.
fn stderr_on_a_terminal(rkt: &Rkt, no_color: Option<&str>) -> String {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .expect("open a pseudo-terminal");
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    {
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(name.to_str().unwrap())
            .expect("open the terminal's slave side");
        let mut cmd = rkt.command(["image", "list"]);
        cmd.stdout(Stdio::null()).stderr(slave);
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        assert!(cmd.status().unwrap().success());
        // `cmd` (holding the last slave descriptor) is dropped here.
    }
    // Everything rkt wrote is in the terminal's buffer; with no slave left open, a
    // read past it ends with EIO, and non-blocking it can never hang.
    let flags = rustix::fs::fcntl_getfl(&master).unwrap();
    rustix::fs::fcntl_setfl(&master, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut master = File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("read the terminal: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The other side of the test above, so its check can fail: on a terminal the same
/// warning is coloured, unless NO_COLOR says otherwise.
#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    let rkt = Rkt::new();

    open_cas(&rkt);
    let log = stderr_on_a_terminal(&rkt, None);
    assert!(log.contains(WARNING), "no warning on the terminal:\n{log}");
    assert!(
        log.contains("\x1b["),
        "no colour on a terminal:\n{}",
        log.escape_debug()
    );

    open_cas(&rkt);
    assert_no_escapes(
        "terminal with NO_COLOR=1",
        &stderr_on_a_terminal(&rkt, Some("1")),
    );

    // NO_COLOR set but empty does not count (no-color.org).
    open_cas(&rkt);
    assert!(stderr_on_a_terminal(&rkt, Some("")).contains("\x1b["));
}

#[test]
fn bash_completion_completes_subcommands_and_their_flags() {
    let rkt = Rkt::new();
    let out = rkt.run(["completion", "bash"]).success();
    let script = out.stdout();
    assert!(
        script.contains("complete -F _rkt"),
        "not a bash completion:\n{script}"
    );
    let file = rkt.scratch().join("rkt.bash");
    fs::write(&file, &script).unwrap();

    // Load it into a real bash and ask it to complete, as the shell does on TAB.
    let complete = |words: &[&str]| -> String {
        let words_list = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let cword = words.len() - 1;
        let prev = words[cword - 1];
        let cur = words[cword];
        let line = format!(
            "source '{}'; COMP_WORDS=({words_list}); COMP_CWORD={cword}; \
             COMP_LINE='{}'; _rkt rkt '{cur}' '{prev}'; echo \"${{COMPREPLY[*]}}\"",
            file.display(),
            words.join(" ")
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &line])
            .output()
            .expect("run bash");
        assert!(out.status.success(), "bash: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete(&["rkt", "reco"]), "reconcile");
    assert_eq!(complete(&["rkt", "run-p"]), "run-prepared");
    assert_eq!(complete(&["rkt", "image", "ver"]), "verify");
    assert_eq!(complete(&["rkt", "apply", "--dry"]), "--dry-run");
    assert_eq!(complete(&["rkt", "completion", "z"]), "zsh");

    for shell in ["zsh", "fish"] {
        let out = rkt.run(["completion", shell]).success();
        assert!(
            out.stdout().contains("reconcile"),
            "{shell}: {}",
            out.stdout()
        );
    }
    let bad = rkt.run(["completion", "tcsh"]);
    assert_eq!(bad.code(), Some(2), "{}", bad.stderr());
    assert!(bad.stdout().is_empty());
}

#[test]
fn man_writes_a_page_per_subcommand() {
    let rkt = Rkt::new();
    let dir = rkt.scratch().join("man/man1");
    let listed = rkt.ok([std::ffi::OsStr::new("man"), dir.as_os_str()]);
    let mut pages: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert_eq!(listed.lines().count(), pages.len(), "{listed}");
    for page in [
        "rkt.1",
        "rkt-run.1",
        "rkt-apply.1",
        "rkt-reconcile.1",
        "rkt-reconcile-status.1",
        "rkt-image-list.1",
        "rkt-completion.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "no {page} in {pages:?}");
    }
    let run = fs::read_to_string(dir.join("rkt-run.1")).unwrap();
    assert!(run.contains(".TH rkt-run 1"));
    assert!(run.contains(".SH EXAMPLES"));
    // Nothing was written outside the directory asked for.
    assert!(!rkt.data_dir().join("cas").exists());
}
