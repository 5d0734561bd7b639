//! Helpers shared by the integration tests: scratch directories, the real
//! binary, kubelet-style volumes and a tiny HTTP client.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys `a` and `b` of the published vectors, and their ids.
pub const KEY_A: &str = "TJfYpFOWpmj0PbSthoRNEleAKc9avU5OiqXpFx7OGhA=";
pub const KEY_B: &str = "FNP8PqAWQgSeMPQ6XGCIF09/lUPClTG63kieec6/iGM=";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_encstr")
}

/// A scratch directory removed on drop.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("encstr-it-{name}-{}", std::process::id()));
        let _ = Command::new("chmod").args(["-R", "u+w"]).arg(&d).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = Command::new("chmod").args(["-R", "u+w"]).arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory laid out the way kubelet mounts a ConfigMap or Secret:
/// `name -> ..data/name`, `..data -> ..<timestamp>`; `update` swaps
/// `..data` atomically, as kubelet does.
pub struct Volume {
    pub dir: PathBuf,
    generation: u32,
}

impl Volume {
    pub fn new(dir: PathBuf, files: &[(&str, &[u8])]) -> Volume {
        std::fs::create_dir_all(&dir).unwrap();
        let mut v = Volume { dir, generation: 0 };
        v.update(files);
        v
    }

    pub fn update(&mut self, files: &[(&str, &[u8])]) {
        self.generation += 1;
        let ts = format!("..2026_11_23_00_00_{:02}.{}", self.generation % 60, self.generation);
        let data = self.dir.join(&ts);
        for (name, content) in files {
            let p = data.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        symlink(&ts, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        for (name, _) in files {
            let top = Path::new(name).components().next().unwrap().as_os_str().to_owned();
            let link = self.dir.join(&top);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(&top), link).unwrap();
            }
        }
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(self.dir.join(old));
        }
    }
}

/// `encstr render` once, from `source` to `target` with `keyring`.
pub fn render_once(source: &Path, target: &Path, keyring: &Path) -> Output {
    let (s, t, k) = (source.to_str().unwrap(), target.to_str().unwrap(), keyring.to_str().unwrap());
    run(&["render", "--source", s, "--target", t, "--keyring", k], &[])
}

pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("ENCSTR_KEYRING").env("RUST_LOG", "info").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `encstr encrypt --keep-newline --name NAME` with these further
/// arguments, `plain` on its standard input; the token it prints.
fn encrypt_cli(name: &str, args: &[&str], plain: &[u8]) -> String {
    let mut child = Command::new(bin())
        .args(["encrypt", "--keep-newline", "--name", name])
        .args(args)
        .env_remove("ENCSTR_KEYRING")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(plain).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn encrypt(keyring: &Path, name: &str, plain: &[u8]) -> String {
    encrypt_cli(name, &["--keyring", keyring.to_str().unwrap()], plain)
}

/// The primary key's recipient, as `encstr keys recipient` prints it.
pub fn recipient(keyring: &Path) -> String {
    let out = Command::new(bin()).args(["keys", "recipient", "--keyring"]).arg(keyring).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A value sealed to a recipient (an ENCSTR v2 token) by `encstr encrypt
/// --recipient`, with no keyring.
pub fn seal(recipient: &str, name: &str, plain: &[u8]) -> String {
    let token = encrypt_cli(name, &["--recipient", recipient], plain);
    assert!(token.starts_with("ENCSTR:A"), "{token}");
    token
}

/// A GET over plain HTTP/1.1: status and body.
pub fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// Poll `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of one sample in a Prometheus exposition.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn parsers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/parsers")
}

/// A watching sidecar and what it logs.
pub struct Sidecar {
    pub proc: Proc,
    pub addr: String,
    pub log: Arc<Mutex<String>>,
}

pub fn start_watch(src: &Path, target: &Path, keyring: &Path, extra: &[&str]) -> Sidecar {
    start_watch_under(&[], src, target, keyring, extra)
}

/// [`start_watch`] through a wrapper command (`setpriv …`) that execs it.
pub fn start_watch_under(
    wrapper: &[&str],
    src: &Path,
    target: &Path,
    keyring: &Path,
    extra: &[&str],
) -> Sidecar {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    let mut child = cmd
        .args(["render", "--watch", "--listen", "127.0.0.1:0", "--log-format", "json", "--debounce", "50ms"])
        .arg("--source")
        .arg(src)
        .arg("--target")
        .arg(target)
        .arg("--keyring")
        .arg(keyring)
        .args(extra)
        .env_remove("ENCSTR_KEYRING")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = v["addr"].as_str()
                {
                    let _ = tx.send(addr.to_owned());
                }
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    let addr = rx.recv_timeout(Duration::from_secs(10)).expect("the sidecar logs its address");
    Sidecar { proc: Proc(child), addr, log }
}

pub fn metrics(addr: &str) -> String {
    get(addr, "/metrics").expect("metrics endpoint").1
}

/// `promtool check metrics` accepts an exposition.
pub fn promtool_accepts(exposition: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (run scripts/test.sh to install prometheus)");
    promtool.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}
