//! End-to-end harness: a test API server on a free port with a kubeconfig,
//! a namespace per test, the project's binaries run as processes, and
//! everything stopped (with a dump of the server's state) when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::apiserver::TestApiServer;

/// The workspace's target directory holding the built binaries.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("debug");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug")
}

/// Path of a binary of this workspace (built by `cargo build`).
pub fn binary(name: &str) -> PathBuf {
    target_dir().join(name)
}

/// A running environment: the server, a scratch directory with the
/// kubeconfig, and the processes started in it.
#[derive(Debug)]
pub struct Env {
    /// The API server.
    pub server: TestApiServer,
    /// Scratch directory (removed on drop unless the test failed).
    pub dir: PathBuf,
    /// The kubeconfig file.
    pub kubeconfig: PathBuf,
    children: Vec<(String, Child)>,
}

impl Env {
    /// Start a server on a free port and write its kubeconfig into a fresh
    /// scratch directory named after the test.
    pub fn start(test: &str) -> Env {
        let server = TestApiServer::start_background(0).expect("start the test API server");
        let dir = std::env::temp_dir().join(format!("encstr-e2e-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        Env { server, dir, kubeconfig, children: Vec::new() }
    }

    /// A command for a binary, with `KUBECONFIG` set and a per-test kubectl
    /// cache. Its output goes to `<dir>/<label>.log`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.join("kube-cache"))
            .env("HOME", &self.dir)
            .stdin(Stdio::null());
        cmd
    }

    /// Start a long-running process; it is killed when the env drops.
    pub fn spawn(&mut self, label: &str, mut cmd: Command) -> u32 {
        let log = std::fs::File::create(self.dir.join(format!("{label}.log"))).expect("log file");
        let child = cmd.stdout(log.try_clone().expect("log")).stderr(log).spawn().expect("spawn");
        let pid = child.id();
        self.children.push((label.to_owned(), child));
        pid
    }

    /// Kill a started process (SIGKILL) and wait for it.
    pub fn kill(&mut self, label: &str) {
        if let Some(i) = self.children.iter().position(|(l, _)| l == label) {
            let (_, mut child) = self.children.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log of a started process.
    pub fn log(&self, label: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{label}.log"))).unwrap_or_default()
    }

    /// Run a command to completion; panics with its output if it fails.
    pub fn run_ok(&self, mut cmd: Command) -> String {
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Create a namespace (a test's own, for isolation).
    pub fn namespace(&self, name: &str) {
        let body = serde_json::json!({"metadata": {"name": name}}).to_string();
        let created = request_blocking(&self.server, "POST", "/api/v1/namespaces", "application/json", &body);
        assert!(created.is_ok(), "create namespace {name}: {created:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let state = serde_json::to_string_pretty(&Value::Array(self.server.dump())).unwrap_or_default();
            let path = self.dir.join("apiserver-state.json");
            let _ = std::fs::write(&path, &state);
            eprintln!(
                "test failed: API server state in {}, process logs in {}",
                path.display(),
                self.dir.display()
            );
            for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                if entry.path().extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    eprintln!("--- {} (last lines)", entry.path().display());
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An HTTPS client for the test server, as one identity: the admin
/// (`system:masters`), the holder of a token, or anonymous. Requests are
/// plain HTTP/1.1 over TLS with the server's CA, one connection each.
#[derive(Debug, Clone)]
pub struct Client {
    addr: std::net::SocketAddr,
    tls: std::sync::Arc<rustls::ClientConfig>,
    token: Option<String>,
}

/// A response: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Header lines as (lower-case name, value).
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: String,
}

impl RawResponse {
    /// All values of a header.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as JSON (or a JSON string of the text).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| Value::String(self.body.clone()))
    }
}

/// The lines of a streamed (watch) response.
pub type WatchLines =
    tokio::io::Lines<tokio::io::BufReader<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>;

impl Client {
    /// A client with `token` (`None`: anonymous).
    pub fn new(server: &TestApiServer, token: Option<&str>) -> Client {
        Client { addr: server.addr(), tls: server.client_tls(), token: token.map(str::to_owned) }
    }

    /// The admin client.
    pub fn admin(server: &TestApiServer) -> Client {
        Client::new(server, Some(server.admin_token()))
    }

    fn head(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body_len: usize,
        close: bool,
    ) -> String {
        let mut h =
            format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {body_len}\r\n", self.addr);
        if let Some(t) = &self.token {
            h.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        if close {
            h.push_str("Connection: close\r\n");
        }
        h.push_str("\r\n");
        h
    }

    /// Send a request and read the whole response.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<RawResponse, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(crate::apiserver::auth::loopback_name(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let mut req = self.head(method, path, headers, body.len(), true).into_bytes();
        req.extend_from_slice(body);
        tls.write_all(&req).await.map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        let mut buf = [0u8; 16 << 10];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => resp.extend_from_slice(&buf[..n]),
            }
        }
        parse_raw(&resp)
    }

    /// [`Client::send`] for blocking code.
    pub fn send_blocking(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<RawResponse, String> {
        use std::io::{Read as _, Write as _};
        let tcp = std::net::TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(self.tls.clone(), crate::apiserver::auth::loopback_name())
            .map_err(|e| format!("TLS: {e}"))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut req = self.head(method, path, headers, body.len(), true).into_bytes();
        req.extend_from_slice(body);
        tls.write_all(&req).map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        let mut buf = [0u8; 16 << 10];
        loop {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => resp.extend_from_slice(&buf[..n]),
            }
        }
        parse_raw(&resp)
    }

    /// A request with a content type; `Ok((status, json))`, or
    /// `Err("CODE: body")` for error statuses.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Result<(u16, Value), String> {
        let r = self.send(method, path, &[("Content-Type", content_type)], body.as_bytes()).await?;
        status_result(r)
    }

    /// [`Client::request`] for blocking code.
    pub fn request_blocking(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Result<(u16, Value), String> {
        let r = self.send_blocking(method, path, &[("Content-Type", content_type)], body.as_bytes())?;
        status_result(r)
    }

    /// Open a streamed GET (a watch): the status and the body's lines
    /// (chunk-size lines included).
    pub async fn stream(&self, path: &str, headers: &[(&str, &str)]) -> Result<(u16, WatchLines), String> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(crate::apiserver::auth::loopback_name(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        tls.write_all(self.head("GET", path, headers, 0, false).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut lines = tokio::io::BufReader::new(tls).lines();
        let status_line = lines.next_line().await.map_err(|e| e.to_string())?.unwrap_or_default();
        let status = status_line.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("no status")?;
        while let Some(l) = lines.next_line().await.map_err(|e| e.to_string())? {
            if l.is_empty() {
                break;
            }
        }
        Ok((status, lines))
    }
}

fn status_result(r: RawResponse) -> Result<(u16, Value), String> {
    let v = r.json();
    if r.status >= 400 { Err(format!("{}: {v}", r.status)) } else { Ok((r.status, v)) }
}

fn parse_raw(resp: &[u8]) -> Result<RawResponse, String> {
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no response")?;
    let head = String::from_utf8_lossy(&resp[..split]);
    let raw = &resp[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).ok_or("no status")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(raw) } else { raw.to_vec() };
    Ok(RawResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Send one request as the admin (async); returns status and parsed JSON
/// body, or `Err("CODE: body")` for error statuses.
pub async fn request(
    server: &TestApiServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, Value), String> {
    Client::admin(server).request(method, path, content_type, body).await
}

/// [`request`] for blocking code.
pub fn request_blocking(
    server: &TestApiServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, Value), String> {
    Client::admin(server).request_blocking(method, path, content_type, body)
}

fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let after = &rest[eol + 2..];
        if n == 0 || after.len() < n {
            break;
        }
        out.extend_from_slice(&after[..n]);
        rest = after[n..].strip_prefix(b"\r\n").unwrap_or(&after[n..]);
    }
    out
}

/// Poll `f` every 100 ms until it returns `Some`, for at most `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
