//! Telling the app that its secrets changed: a signal to its processes
//! (`--notify-signal` with `--notify-process`) and/or an HTTP POST
//! (`--notify-url`), once per real change.
//!
//! Renders report the files they changed; a [`Coalescer`] waits until no
//! render has changed anything for `--notify-debounce`, then one
//! notification goes out for everything that changed meanwhile. The first
//! render, renders that change nothing and failed renders report nothing.
//! The notifier runs in its own task, and HTTP retries in tasks of their
//! own, so a slow or failing app never delays a render.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use rustix::process::{Pid, Signal};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::http::Health;
use crate::metrics::NotifyLabels;

/// How long one HTTP attempt may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP attempts per notification.
pub const HTTP_ATTEMPTS: u32 = 4;
/// Wait before the first HTTP retry; doubled for each further one.
pub const HTTP_BACKOFF: Duration = Duration::from_millis(250);

/// A signal by name, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedSignal {
    /// The name without `SIG` (`HUP`).
    pub name: &'static str,
    /// The signal.
    pub signal: Signal,
}

/// The signals an app may reasonably be asked to reload on.
const SIGNALS: [(&str, Signal); 9] = [
    ("HUP", Signal::HUP),
    ("USR1", Signal::USR1),
    ("USR2", Signal::USR2),
    ("TERM", Signal::TERM),
    ("INT", Signal::INT),
    ("QUIT", Signal::QUIT),
    ("WINCH", Signal::WINCH),
    ("ALRM", Signal::ALARM),
    ("CONT", Signal::CONT),
];

/// Parse `HUP`, `SIGHUP`, `usr1`, ...
pub fn parse_signal(s: &str) -> Result<NamedSignal, String> {
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == name).map(|&(name, signal)| NamedSignal { name, signal }).ok_or_else(
        || {
            let known: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
            format!("{s:?} is not a signal encstr sends (one of {})", known.join(", "))
        },
    )
}

/// Parse an `http://` URL to POST to.
pub fn parse_url(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) => Ok(uri),
        (Some("https"), _) => Err(format!(
            "{s:?}: only plain http is supported (the app's reload endpoint on loopback, e.g. http://127.0.0.1:9090/-/reload)"
        )),
        _ => Err(format!("{s:?} is not an http:// URL with a host")),
    }
}

/// What to notify, and when.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Send this signal to processes of this name.
    pub signal: Option<(NamedSignal, String)>,
    /// POST to this URL.
    pub url: Option<Uri>,
    /// Quiet time after the last changing render.
    pub debounce: Duration,
}

impl NotifySettings {
    /// Whether anything is to be notified at all.
    pub fn any(&self) -> bool {
        self.signal.is_some() || self.url.is_some()
    }
}

/// Coalesces changes: a notification is due once `debounce` has passed
/// since the last change, and carries every file changed since the last
/// notification.
#[derive(Debug)]
pub struct Coalescer {
    debounce: Duration,
    pending: BTreeSet<PathBuf>,
    due: Option<Instant>,
}

impl Coalescer {
    /// Nothing pending.
    pub fn new(debounce: Duration) -> Self {
        Coalescer { debounce, pending: BTreeSet::new(), due: None }
    }

    /// A render changed `files` at `now`: the quiet period starts again.
    pub fn changed(&mut self, files: impl IntoIterator<Item = PathBuf>, now: Instant) {
        let before = self.pending.len();
        self.pending.extend(files);
        if self.pending.len() > before || self.due.is_some() {
            self.due = Some(now + self.debounce);
        }
    }

    /// When the pending notification is due, if one is.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The files of the notification that is due at `now` (and nothing
    /// pending after it), or `None` when none is due yet.
    pub fn take_due(&mut self, now: Instant) -> Option<Vec<PathBuf>> {
        match self.due {
            Some(at) if at <= now => {
                self.due = None;
                Some(std::mem::take(&mut self.pending).into_iter().collect())
            }
            _ => None,
        }
    }
}

/// One process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// `/proc/PID/comm` (the kernel keeps at most 15 bytes of the name).
    pub comm: String,
    /// The base name of `argv[0]`, when readable.
    pub argv0: Option<String>,
}

/// The kernel's limit on `comm`: 16 bytes with the terminating NUL.
const COMM_LEN: usize = 15;

/// The processes called `name` (by `comm`, which the kernel cuts to 15
/// bytes, or by the base name of `argv[0]`), other than `own`.
pub fn matching(processes: &[ProcessInfo], name: &str, own: u32) -> Vec<u32> {
    let cut = &name.as_bytes()[..name.len().min(COMM_LEN)];
    processes
        .iter()
        .filter(|p| p.pid != own && (p.comm.as_bytes() == cut || p.argv0.as_deref() == Some(name)))
        .map(|p| p.pid)
        .collect()
}

/// Every process visible in `/proc` (in a pod with `shareProcessNamespace`,
/// those of all its containers).
pub fn processes(proc_root: &Path) -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir(proc_root) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let argv0 = std::fs::read(e.path().join("cmdline")).ok().and_then(|c| {
                let first = c.split(|&b| b == 0).next()?;
                let base = Path::new(std::str::from_utf8(first).ok()?).file_name()?.to_str()?.to_owned();
                (!base.is_empty()).then_some(base)
            });
            Some(ProcessInfo { pid, comm: comm.trim_end_matches('\n').to_owned(), argv0 })
        })
        .collect()
}

/// Where the notifier sends from.
#[derive(Debug)]
pub struct Notifier {
    settings: NotifySettings,
    health: Arc<Health>,
    proc_root: PathBuf,
    /// Said once that no process of the name is visible.
    warned_invisible: bool,
}

impl Notifier {
    /// A notifier reading processes from `/proc`.
    pub fn new(settings: NotifySettings, health: Arc<Health>) -> Self {
        Notifier { settings, health, proc_root: PathBuf::from("/proc"), warned_invisible: false }
    }

    /// Run until the channel closes: coalesce the changed files renders
    /// report, and notify when a quiet period ends.
    pub async fn run(mut self, mut changes: tokio::sync::mpsc::UnboundedReceiver<Vec<PathBuf>>) {
        let mut coalescer = Coalescer::new(self.settings.debounce);
        loop {
            let due = coalescer.due();
            tokio::select! {
                change = changes.recv() => match change {
                    Some(files) => coalescer.changed(files, Instant::now()),
                    None => return,
                },
                () = sleep_until(due) => {
                    if let Some(files) = coalescer.take_due(Instant::now()) {
                        self.notify(&files);
                    }
                }
            }
        }
    }

    /// Send one notification by every configured method.
    fn notify(&mut self, files: &[PathBuf]) {
        let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        if let Some((signal, name)) = self.settings.signal.clone() {
            let ok = self.signal(signal, &name, &shown);
            self.count("signal", ok);
        }
        if let Some(url) = self.settings.url.clone() {
            let health = self.health.clone();
            // Its own task: retries never hold back renders or signals.
            tokio::spawn(async move {
                let ok = post_with_retries(&url, &shown).await;
                health
                    .metrics
                    .notifications
                    .get_or_create(&NotifyLabels { method: "http", result: result(ok) })
                    .inc();
            });
        }
    }

    fn count(&self, method: &'static str, ok: bool) {
        self.health.metrics.notifications.get_or_create(&NotifyLabels { method, result: result(ok) }).inc();
    }

    fn signal(&mut self, signal: NamedSignal, name: &str, files: &[String]) -> bool {
        let pids = matching(&processes(&self.proc_root), name, std::process::id());
        if pids.is_empty() {
            if !std::mem::replace(&mut self.warned_invisible, true) {
                warn!(
                    process = name,
                    signal = signal.name,
                    "no process named {name:?} is visible, so it cannot be signalled: the pod needs `shareProcessNamespace: true` (and the app must run as the sidecar's user)"
                );
            }
            return false;
        }
        let mut failed = Vec::new();
        for &pid in &pids {
            let target = Pid::from_raw(i32::try_from(pid).unwrap_or(0)).expect("pids in /proc are positive");
            if let Err(e) = rustix::process::kill_process(target, signal.signal) {
                failed.push((pid, std::io::Error::from(e)));
            }
        }
        for (pid, e) in &failed {
            warn!(pid, process = name, signal = signal.name, error = %e, "cannot signal the app (it must run as the sidecar's user)");
        }
        let ok = failed.is_empty();
        info!(method = "signal", signal = signal.name, process = name, pids = ?pids, files = ?files, result = result(ok), "notified the app");
        ok
    }
}

fn result(ok: bool) -> &'static str {
    if ok { "success" } else { "failure" }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// POST to `url` until it answers 2xx, at most [`HTTP_ATTEMPTS`] times with
/// a doubling backoff, each attempt limited to [`HTTP_TIMEOUT`].
async fn post_with_retries(url: &Uri, files: &[String]) -> bool {
    let mut wait = HTTP_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=HTTP_ATTEMPTS {
        match tokio::time::timeout(HTTP_TIMEOUT, post(url)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => {
                info!(method = "http", url = %url, status, attempt, files = ?files, result = "success", "notified the app");
                return true;
            }
            Ok(Ok(status)) => last = format!("HTTP {status}"),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("no answer within {HTTP_TIMEOUT:?}"),
        }
        if attempt < HTTP_ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    warn!(method = "http", url = %url, error = %last, attempts = HTTP_ATTEMPTS, files = ?files, result = "failure", "cannot notify the app");
    false
}

/// One POST with an empty body; the response status.
async fn post(url: &Uri) -> Result<u16, String> {
    let host = url.host().ok_or("no host")?;
    let port = url.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let authority = url.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, concat!("encstr/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::CONTENT_LENGTH, 0)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    // Read the body so the connection closes cleanly.
    let _ = response.into_body().collect().await;
    conn.abort();
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name() {
        assert_eq!(parse_signal("HUP").unwrap().signal, Signal::HUP);
        assert_eq!(parse_signal("sigusr1").unwrap().name, "USR1");
        assert_eq!(parse_signal("SIGTERM").unwrap().signal, Signal::TERM);
        assert!(parse_signal("KILL").unwrap_err().contains("HUP, USR1"));
        assert!(parse_signal("9").is_err());
    }

    #[test]
    fn urls_are_plain_http() {
        assert!(parse_url("http://127.0.0.1:9090/-/reload").is_ok());
        assert!(parse_url("https://127.0.0.1/reload").unwrap_err().contains("only plain http"));
        assert!(parse_url("/-/reload").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn processes_match_by_comm_cut_to_15_bytes_or_argv0() {
        let p = |pid, comm: &str, argv0: Option<&str>| ProcessInfo {
            pid,
            comm: comm.into(),
            argv0: argv0.map(Into::into),
        };
        let procs = [
            p(1, "pause", Some("pause")),
            p(7, "print-agent-ser", Some("print-agent-server")),
            p(8, "java", Some("print-agent-server")),
            p(9, "encstr", Some("encstr")),
            p(10, "print-agent", None),
        ];
        assert_eq!(matching(&procs, "print-agent-server", 9), [7, 8]);
        assert_eq!(matching(&procs, "print-agent", 9), [10]);
        assert_eq!(matching(&procs, "encstr", 9), Vec::<u32>::new(), "never the sidecar itself");
        assert_eq!(matching(&procs, "nginx", 9), Vec::<u32>::new());
    }

    #[test]
    fn this_process_is_found_in_proc() {
        let me = processes(Path::new("/proc"));
        let own = std::process::id();
        assert!(me.iter().any(|p| p.pid == own), "own pid listed");
    }

    #[test]
    fn changes_coalesce_into_one_notification_after_a_quiet_period() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Coalescer::new(ms(500));
        assert_eq!(c.due(), None);
        c.changed([PathBuf::from("a")], t0);
        c.changed([PathBuf::from("b")], t0 + ms(300));
        assert_eq!(c.due(), Some(t0 + ms(800)), "the quiet period restarts");
        assert_eq!(c.take_due(t0 + ms(700)), None);
        c.changed([PathBuf::from("a")], t0 + ms(750));
        assert_eq!(c.take_due(t0 + ms(1200)), None);
        assert_eq!(c.take_due(t0 + ms(1250)), Some(vec![PathBuf::from("a"), PathBuf::from("b")]));
        assert_eq!(c.due(), None, "nothing pending after it");
        c.changed(Vec::new(), t0 + ms(2000));
        assert_eq!(c.due(), None, "a render that changed nothing starts nothing");
    }
}
