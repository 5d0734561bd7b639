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
        let created =
            request_blocking(&self.server.url(), "POST", "/api/v1/namespaces", "application/json", &body);
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

fn http_request(addr: &str, method: &str, path: &str, content_type: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Send one HTTP/1.1 request (async); returns status and parsed JSON body,
/// or `Err("CODE: body")` for error statuses.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, Value), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(http_request(addr, method, path, content_type, body).as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.map_err(|e| e.to_string())?;
    parse_response(&resp)
}

/// [`request`] for blocking code.
pub fn request_blocking(
    base: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, Value), String> {
    use std::io::{Read as _, Write as _};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.write_all(http_request(addr, method, path, content_type, body).as_bytes())
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    parse_response(&resp)
}

fn parse_response(resp: &[u8]) -> Result<(u16, Value), String> {
    let text = String::from_utf8_lossy(resp);
    let status: u16 = text.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("no status")?;
    let (head, raw) = text.split_once("\r\n\r\n").ok_or("no body")?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(raw)
    } else {
        raw.to_owned()
    };
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if status >= 400 { Err(format!("{status}: {v}")) } else { Ok((status, v)) }
}

fn dechunk(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
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
