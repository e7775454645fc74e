//! A small HTTP/1.1 server on loopback for fetch and discovery tests.
//!
//! It serves an in-memory map of paths to bytes that tests change while it runs,
//! with a strong `ETag` per content (and `304 Not Modified` for a matching
//! `If-None-Match`), an optional `Cache-Control: max-age` per path, discovery pages
//! for `GET /path?ac-discovery=1`, redirects, and `404` for anything else. Every
//! request is logged so tests can assert "no request was made" or "the answer was a
//! 304". One request per connection (`Connection: close`). Stops when dropped.
//!
//! ```no_run
//! let server = e2e::http::TestServer::start();
//! server.put("/images/app.aci", b"...".to_vec());
//! let url = server.url("/images/app.aci");
//! // ... fetch url ...
//! assert_eq!(server.hits("/images/app.aci"), 1);
//! ```

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags};
use sha2::{Digest, Sha256};

/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: Option<String>,
    pub if_none_match: Option<String>,
    /// The status the server answered with.
    pub status: u16,
    /// Bytes of body sent.
    pub body_len: usize,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    max_age: HashMap<String, u64>,
    discovery: HashMap<String, String>,
    /// `target` (path, or path?query) -> (status, Location).
    redirects: HashMap<String, (u16, String)>,
    log: Vec<Request>,
}

/// A running test server; stops (and joins its thread) on drop.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Start on `127.0.0.1` and a free port.
    pub fn start() -> TestServer {
        Self::start_on("127.0.0.1:0").expect("bind a loopback port")
    }

    /// Start on a given address (`127.0.0.1:80` inside a private network namespace,
    /// see [`crate::netns`]).
    pub fn start_on(addr: impl ToSocketAddrs) -> io::Result<TestServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let (stop_rx, stop_tx) = rustix::pipe::pipe()?;
        let thread_state = Arc::clone(&state);
        let thread = thread::Builder::new()
            .name(format!("test-http-{}", addr.port()))
            .spawn(move || serve(listener, stop_rx, thread_state))?;
        Ok(TestServer {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serve `data` at `path` (replacing what was there).
    pub fn put(&self, path: &str, data: impl Into<Vec<u8>>) {
        self.state().files.insert(path.to_string(), data.into());
    }

    /// Stop serving `path` (404 from now on).
    pub fn remove(&self, path: &str) {
        self.state().files.remove(path);
    }

    /// Send `Cache-Control: max-age=<secs>` with `path` (`None`: no header).
    pub fn set_max_age(&self, path: &str, secs: Option<u64>) {
        let mut s = self.state();
        match secs {
            Some(secs) => s.max_age.insert(path.to_string(), secs),
            None => s.max_age.remove(path),
        };
    }

    /// Serve `html` for `GET <path>?ac-discovery=1`.
    pub fn put_discovery(&self, path: &str, html: &str) {
        self.state()
            .discovery
            .insert(path.to_string(), html.to_string());
    }

    /// Answer requests for `target` (a path, or `path?query` to match one query
    /// exactly) with a `302` to `location`.
    pub fn redirect(&self, target: &str, location: &str) {
        self.redirect_with(target, 302, location);
    }

    /// Like [`TestServer::redirect`] with a given 3xx status.
    pub fn redirect_with(&self, target: &str, status: u16, location: &str) {
        self.state()
            .redirects
            .insert(target.to_string(), (status, location.to_string()));
    }

    /// The strong ETag the server sends for `data`.
    pub fn etag_of(data: &[u8]) -> String {
        format!("\"{}\"", &hex::encode(Sha256::digest(data))[..32])
    }

    /// Every request so far, oldest first.
    pub fn log(&self) -> Vec<Request> {
        self.state().log.clone()
    }

    /// Requests for `path` (any query).
    pub fn hits(&self, path: &str) -> usize {
        self.state().log.iter().filter(|r| r.path == path).count()
    }

    /// Statuses answered for `path` (any query), oldest first.
    pub fn statuses(&self, path: &str) -> Vec<u16> {
        self.state()
            .log
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.status)
            .collect()
    }

    /// Total requests so far.
    pub fn total_requests(&self) -> usize {
        self.state().log.len()
    }

    /// Forget the request log.
    pub fn clear_log(&self) {
        self.state().log.clear();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Closing the write end wakes the server's poll.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, stop: OwnedFd, state: Arc<Mutex<State>>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let mut fds = [
            PollFd::new(&listener, PollFlags::IN),
            PollFd::new(&stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        if !fds[1].revents().is_empty() {
            break;
        }
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    let state = Arc::clone(&state);
                    workers.push(thread::spawn(move || {
                        let _ = handle(stream, &state);
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        workers.retain(|w| !w.is_finished());
    }
    for w in workers {
        let _ = w.join();
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn handle(stream: TcpStream, state: &Mutex<State>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let mut if_none_match = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(v.trim().to_string());
            } else if k.eq_ignore_ascii_case("content-length") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    if content_length > 0 {
        io::copy(
            &mut (&mut reader).take(content_length as u64),
            &mut io::sink(),
        )?;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };

    let answer = {
        let s = state.lock().unwrap_or_else(|e| e.into_inner());
        answer(
            &s,
            method,
            target,
            &path,
            query.as_deref(),
            if_none_match.as_deref(),
        )
    };
    let head_only = method.eq_ignore_ascii_case("HEAD");
    let mut out = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    for (k, v) in &answer.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if answer.status != 304 {
        out.push_str(&format!("Content-Length: {}\r\n", answer.body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut stream = stream;
    stream.write_all(out.as_bytes())?;
    let body_len = if head_only || answer.status == 304 {
        0
    } else {
        answer.body.len()
    };
    // Log before sending the body, so a client that has read the headers sees it.
    state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .log
        .push(Request {
            method: method.to_string(),
            path,
            query,
            if_none_match,
            status: answer.status,
            body_len,
        });
    stream.write_all(&answer.body[..body_len])?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

fn answer(
    s: &State,
    method: &str,
    target: &str,
    path: &str,
    query: Option<&str>,
    if_none_match: Option<&str>,
) -> Answer {
    let not_found = || Answer {
        status: 404,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: b"not found\n".to_vec(),
    };
    if !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("HEAD") {
        return Answer {
            status: 405,
            headers: vec![("Allow".into(), "GET, HEAD".into())],
            body: Vec::new(),
        };
    }
    if let Some((status, location)) = s.redirects.get(target).or_else(|| s.redirects.get(path)) {
        return Answer {
            status: *status,
            headers: vec![("Location".into(), location.clone())],
            body: Vec::new(),
        };
    }
    let is_discovery = query.is_some_and(|q| q.split('&').any(|kv| kv == "ac-discovery=1"));
    if is_discovery {
        return match s.discovery.get(path) {
            Some(html) => Answer {
                status: 200,
                headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
                body: html.as_bytes().to_vec(),
            },
            None => not_found(),
        };
    }
    let Some(data) = s.files.get(path) else {
        return not_found();
    };
    let etag = TestServer::etag_of(data);
    let mut headers = vec![
        (
            "Content-Type".to_string(),
            "application/octet-stream".to_string(),
        ),
        ("ETag".to_string(), etag.clone()),
    ];
    if let Some(age) = s.max_age.get(path) {
        headers.push(("Cache-Control".into(), format!("max-age={age}")));
    }
    if let Some(inm) = if_none_match {
        let matches = inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag);
        if matches {
            return Answer {
                status: 304,
                headers,
                body: Vec::new(),
            };
        }
    }
    Answer {
        status: 200,
        headers,
        body: data.clone(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        304 => "Not Modified",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw HTTP/1.1 GET; returns (status, headers, body).
    fn get(server: &TestServer, target: &str, extra: &str) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head, raw[split + 4..].to_vec())
    }

    #[test]
    fn serves_etags_304_discovery_redirects_and_logs() {
        let server = TestServer::start();
        server.put("/a.aci", b"hello".to_vec());
        server.set_max_age("/a.aci", Some(60));
        let (status, head, body) = get(&server, "/a.aci", "");
        assert_eq!(status, 200);
        assert_eq!(body, b"hello");
        let etag = TestServer::etag_of(b"hello");
        assert!(head.contains(&format!("ETag: {etag}")), "{head}");
        assert!(head.contains("Cache-Control: max-age=60"), "{head}");

        let (status, _, body) = get(&server, "/a.aci", &format!("If-None-Match: {etag}\r\n"));
        assert_eq!(status, 304);
        assert!(body.is_empty());
        let (status, _, _) = get(&server, "/a.aci", "If-None-Match: \"other\"\r\n");
        assert_eq!(status, 200);

        server.put("/a.aci", b"changed".to_vec());
        let (status, _, body) = get(&server, "/a.aci", &format!("If-None-Match: {etag}\r\n"));
        assert_eq!((status, body.as_slice()), (200, b"changed".as_slice()));

        server.put_discovery("/app", "<meta name=\"ac-discovery\" content=\"x y\">");
        let (status, head, body) = get(&server, "/app?ac-discovery=1", "");
        assert_eq!(status, 200);
        assert!(head.contains("text/html"));
        assert!(String::from_utf8(body).unwrap().contains("ac-discovery"));
        assert_eq!(get(&server, "/app", "").0, 404);
        assert_eq!(get(&server, "/other?ac-discovery=1", "").0, 404);

        server.redirect("/old", "/a.aci");
        let (status, head, _) = get(&server, "/old", "");
        assert_eq!(status, 302);
        assert!(head.contains("Location: /a.aci"));

        assert_eq!(server.hits("/a.aci"), 4);
        assert_eq!(server.statuses("/a.aci"), vec![200, 304, 200, 200]);
        assert_eq!(server.hits("/app"), 2);
        assert_eq!(server.total_requests(), 8);
        let log = server.log();
        assert_eq!(log[1].if_none_match.as_deref(), Some(etag.as_str()));
        assert_eq!(log[4].query.as_deref(), Some("ac-discovery=1"));
        server.clear_log();
        assert_eq!(server.total_requests(), 0);
    }

    #[test]
    fn stops_on_drop() {
        let server = TestServer::start();
        let addr = server.addr();
        drop(server);
        // The listener is closed: nothing accepts connections on that port any more.
        assert!(TcpStream::connect(addr).is_err());
    }
}
