//! Running renders: once (init container) or continuously (native sidecar)
//! with inotify, a debounce, a periodic resync, metrics and health.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use encstr_core::Keyring;
use notify::{RecursiveMode, Watcher as _};
use tracing::{error, info, warn};
use zeroize::Zeroizing;

use super::output::{Outcome, Target};
use super::{Failure, RenderOptions, failure_report, render_tree};
use crate::cli::KeyringArgs;
use crate::error::{CliError, Result};
use crate::http::Health;
use crate::metrics::{DECRYPT_REASONS, ReasonLabel, ResultLabel};

/// Kubernetes shows at most this many bytes of a termination message.
const TERMINATION_LOG_MAX: usize = 4096;
/// Where Kubernetes expects the termination message by default.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// Why a render did not produce output.
#[derive(Debug)]
pub enum RenderError {
    /// The keyring could not be loaded.
    Keyring(CliError),
    /// Values or files failed.
    Failures(Vec<Failure>),
    /// The target could not be written.
    Output(std::io::Error),
}

impl RenderError {
    /// The message for logs and the termination log.
    pub fn report(&self) -> String {
        match self {
            RenderError::Keyring(e) => format!("encstr render failed: {e}; the previous output was kept\n"),
            RenderError::Failures(f) => failure_report(f),
            RenderError::Output(e) => {
                format!("encstr render failed: cannot write the target: {e}; the previous output was kept\n")
            }
        }
    }
}

/// Counts of a successful render.
#[derive(Debug)]
pub struct Summary {
    /// Files rendered.
    pub files: usize,
    /// Tokens decrypted.
    pub decrypted: usize,
    /// Plaintext values that look secret.
    pub plaintext: usize,
    /// What changed in the target.
    pub outcome: Outcome,
}

/// Everything one render needs, and what carries over between renders.
#[derive(Debug)]
pub struct Renderer {
    source: PathBuf,
    target: Target,
    opts: RenderOptions,
    keyring: KeyringArgs,
    termination_log: Option<PathBuf>,
    health: Arc<Health>,
    loaded: Option<(Zeroizing<Vec<u8>>, Arc<Keyring>)>,
    warned: HashSet<(String, String)>,
}

impl Renderer {
    /// A renderer; nothing is read until [`Renderer::render`].
    pub fn new(
        source: PathBuf,
        target: Target,
        opts: RenderOptions,
        keyring: KeyringArgs,
        termination_log: Option<PathBuf>,
        health: Arc<Health>,
    ) -> Self {
        Renderer {
            source,
            target,
            opts,
            keyring,
            termination_log,
            health,
            loaded: None,
            warned: HashSet::new(),
        }
    }

    /// The keyring, re-read from its file when that changed.
    fn keyring(&mut self) -> Result<Arc<Keyring>> {
        let file = match (&self.keyring.keyring, &self.keyring.keyring_env, &self.keyring.passphrase_env) {
            (Some(path), None, None) => Some(path.clone()),
            _ => None,
        };
        let bytes = match &file {
            Some(path) => Some(crate::fsio::read_limited(path, crate::keyring_source::MAX_KEYRING_FILE)?),
            None => None,
        };
        if let Some((old, ring)) = &self.loaded
            && bytes.as_ref().is_none_or(|b| b.as_slice() == old.as_slice())
        {
            return Ok(ring.clone());
        }
        let ring = Arc::new(match (&file, &bytes) {
            (Some(path), Some(b)) => {
                if let Some(w) = crate::keyring_source::permission_warning(path) {
                    warn!("{w}");
                }
                crate::keyring_source::parse_file(path, b)?
            }
            _ => self.keyring.load()?,
        });
        let m = &self.health.metrics;
        m.keyring_keys.set(i64::try_from(ring.len()).unwrap_or(i64::MAX));
        m.set_primary(&ring.primary().id().to_string());
        if self.loaded.is_some() {
            m.keyring_reloads.inc();
            info!(keys = ring.len(), primary = %ring.primary().id(), "keyring reloaded");
        }
        self.loaded = Some((bytes.unwrap_or_default(), ring.clone()));
        Ok(ring)
    }

    /// Render once: load the keyring, decrypt everything, write the target,
    /// and record metrics, logs and the termination message.
    pub fn render(&mut self) -> Result<Summary, RenderError> {
        let started = Instant::now();
        let result = self.render_inner();
        let m = &self.health.metrics;
        m.render_duration.observe(started.elapsed().as_secs_f64());
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(s) => {
                // Details first, then readiness, then the render count: whoever
                // sees a render counted (or the pod ready) sees all it did.
                m.decryptions.inc_by(s.decrypted as u64);
                m.plaintext_values.set(i64::try_from(s.plaintext).unwrap_or(i64::MAX));
                let now =
                    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
                m.last_success.set(now);
                self.termination_message("");
                self.health.ready.store(true, Ordering::Release);
                m.renders.get_or_create(&ResultLabel { result: "success" }).inc();
                info!(
                    files = s.files,
                    decrypted = s.decrypted,
                    plaintext = s.plaintext,
                    changed = s.outcome.changed.len(),
                    removed = s.outcome.removed.len(),
                    unchanged = s.outcome.unchanged,
                    duration_ms = format_args!("{ms:.2}"),
                    "render succeeded"
                );
            }
            Err(e) => {
                if let RenderError::Failures(failures) = e {
                    for f in failures.iter().filter(|f| DECRYPT_REASONS.contains(&f.reason)) {
                        m.decrypt_failures.get_or_create(&ReasonLabel { reason: f.reason }).inc();
                    }
                }
                let report = e.report();
                self.termination_message(&report);
                m.renders.get_or_create(&ResultLabel { result: "failure" }).inc();
                let mut lines = report.lines();
                let headline = lines.next().unwrap_or_default();
                let problems: Vec<&str> = lines.collect();
                error!(problems = problems.join("; "), duration_ms = format_args!("{ms:.2}"), "{headline}");
            }
        }
        result
    }

    fn render_inner(&mut self) -> Result<Summary, RenderError> {
        let ring = self.keyring().map_err(RenderError::Keyring)?;
        let tree = render_tree(&self.source, &ring, &self.opts).map_err(RenderError::Failures)?;
        for p in &tree.plaintext {
            if self.warned.insert((p.file.clone(), p.name.clone())) {
                warn!(file = %p.file, line = p.line, name = %p.name, "value is not encrypted (seal it with `encstr seal`)");
            }
        }
        let outcome = self.target.write(&tree.files).map_err(RenderError::Output)?;
        Ok(Summary {
            files: tree.files.len(),
            decrypted: tree.decrypted,
            plaintext: tree.plaintext.len(),
            outcome,
        })
    }

    /// Replace the termination message (empty after a success).
    fn termination_message(&self, report: &str) {
        let Some(path) = &self.termination_log else { return };
        let mut text = report.to_owned();
        if text.len() > TERMINATION_LOG_MAX {
            let mut cut = TERMINATION_LOG_MAX - 20;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("\n... (truncated)\n");
        }
        let written = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .create(path.as_os_str() != DEFAULT_TERMINATION_LOG)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            warn!(path = %path.display(), error = %e, "cannot write the termination message");
        }
    }
}

/// The termination log to use: the one given, else `/dev/termination-log`
/// when it exists and is writable.
pub fn termination_log(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        std::fs::OpenOptions::new()
            .append(true)
            .open(DEFAULT_TERMINATION_LOG)
            .ok()
            .map(|_| PathBuf::from(DEFAULT_TERMINATION_LOG))
    })
}

/// Init-container mode: render once; fail with the report on any problem.
pub fn run_once(mut renderer: Renderer) -> Result<()> {
    match renderer.render() {
        Ok(_) => Ok(()),
        Err(e) => {
            let report = e.report();
            let _ = std::io::stderr().write_all(report.as_bytes());
            Err(CliError::RenderFailed)
        }
    }
}

/// The keyring file to watch, when the keyring comes from a file.
fn watched_keyring(args: &KeyringArgs) -> Option<PathBuf> {
    args.keyring.clone().filter(|_| args.keyring_env.is_none() && args.passphrase_env.is_none())
}

fn keyring_dir(file: &Path) -> &Path {
    file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Whether a file event calls for a render: anything in the source tree; in
/// the keyring's directory only the keyring file itself and kubelet's `..*`
/// entries (its Secret volume swaps `..data`), so unrelated files there do
/// not cause renders.
pub fn relevant(event: &notify::Event, source: &Path, keyring_file: Option<&Path>) -> bool {
    if event.kind.is_access() {
        return false;
    }
    event.paths.iter().any(|p| {
        if p.starts_with(source) {
            return true;
        }
        let Some(file) = keyring_file else { return false };
        p.parent() == Some(keyring_dir(file))
            && p.file_name()
                .is_some_and(|n| Some(n) == file.file_name() || n.to_string_lossy().starts_with(".."))
    })
}

/// Settings of watch mode.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Address of the metrics and health server.
    pub listen: std::net::SocketAddr,
    /// Quiet time after a change before rendering.
    pub debounce: Duration,
    /// Render this often even without events (catches missed events).
    pub resync: Duration,
    /// Whom to tell when a render changed files.
    pub notify: super::notify::NotifySettings,
}

/// Native-sidecar mode: render, then re-render on every change of the source
/// directory or the keyring file until SIGTERM or SIGINT.
pub fn watch(renderer: Renderer, settings: WatchSettings) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Stdio { what: "starting the runtime", source })?;
    runtime.block_on(watch_loop(renderer, settings))
}

async fn watch_loop(renderer: Renderer, settings: WatchSettings) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let health = renderer.health.clone();
    let mut watched: Vec<(PathBuf, RecursiveMode)> =
        vec![(renderer.source.clone(), RecursiveMode::Recursive)];
    // notify reports absolute paths; compare against absolute ones.
    let source = std::path::absolute(&renderer.source).unwrap_or_else(|_| renderer.source.clone());
    let keyring_file = watched_keyring(&renderer.keyring).map(|f| std::path::absolute(&f).unwrap_or(f));
    if let Some(file) = &keyring_file {
        watched.push((keyring_dir(file).to_owned(), RecursiveMode::NonRecursive));
    }
    let signal_err = |source| CliError::Stdio { what: "installing signal handlers", source };
    let mut sigterm = signal(SignalKind::terminate()).map_err(signal_err)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(signal_err)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = crate::http::serve(settings.listen, health.clone(), async {
        let _ = stop_rx.await;
    })
    .await
    .map_err(|source| CliError::Stdio { what: "binding the metrics address", source })?;
    info!(%addr, "serving /metrics, /healthz and /readyz");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| relevant(&e, &source, keyring_file.as_deref())) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| CliError::Stdio { what: "starting the file watcher", source: std::io::Error::other(e) })?;
    for (path, mode) in &watched {
        watcher.watch(path, *mode).map_err(|e| CliError::Stdio {
            what: "watching the source directory",
            source: std::io::Error::other(format!("{}: {e}", path.display())),
        })?;
    }

    // Changed files of each successful render after the first go to the
    // notifier (when one is configured), which runs on its own.
    let notify_tx = settings.notify.any().then(|| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(super::notify::Notifier::new(settings.notify.clone(), health.clone()).run(rx));
        tx
    });
    let renderer = Arc::new(Mutex::new(renderer));
    let render = || {
        let r = renderer.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut r = r.lock().ok()?;
                let s = r.render().ok()?;
                Some(s.outcome.changed.into_iter().chain(s.outcome.removed).collect::<Vec<_>>())
            })
            .await
            .ok()
            .flatten()
        }
    };
    // The first successful render is before the app starts: nothing to notify.
    let mut rendered_once = render().await.is_some();
    let mut after_render = |changed: Option<Vec<PathBuf>>| {
        let Some(changed) = changed else { return };
        if rendered_once
            && !changed.is_empty()
            && let Some(tx) = &notify_tx
        {
            let _ = tx.send(changed);
        }
        rendered_once = true;
    };
    let mut resync = tokio::time::interval(settings.resync);
    resync.reset();
    loop {
        tokio::select! {
            Some(()) = rx.recv() => {
                tokio::time::sleep(settings.debounce).await;
                while rx.try_recv().is_ok() {}
                after_render(render().await);
                resync.reset();
            }
            _ = resync.tick() => after_render(render().await),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    info!("shutting down");
    drop(watcher);
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, EventKind};

    use super::*;

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_source_and_keyring_events_count() {
        let create = EventKind::Create(CreateKind::Any);
        let (src, key) = (Path::new("/config"), Some(Path::new("/etc/encstr/keyring")));
        assert!(relevant(&event(create, "/config/app.yaml"), src, key));
        assert!(relevant(&event(create, "/config/..data_tmp"), src, key));
        assert!(relevant(&event(create, "/etc/encstr/keyring"), src, key));
        assert!(relevant(&event(create, "/etc/encstr/..data"), src, key));
        assert!(!relevant(&event(create, "/etc/encstr/other.log"), src, key));
        assert!(!relevant(&event(create, "/etc/encstr/keyring"), src, None));
        assert!(!relevant(&event(EventKind::Access(AccessKind::Any), "/config/app.yaml"), src, key));
    }
}
