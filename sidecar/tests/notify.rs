//! `encstr render --watch` tells the app when its secrets changed: real
//! processes (an app under a copied interpreter named `fake-app`, which
//! records every SIGHUP and what it reads then), a real HTTP reload
//! endpoint, and the sidecar's metrics checked by promtool.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const QUIET: Duration = Duration::from_millis(1500);

fn keyring(d: &Dir, keys: &[&str]) -> PathBuf {
    let p = d.path("keyring");
    std::fs::write(&p, keys.join("\n") + "\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn config(ring: &Path, value: &str) -> String {
    format!("db.url = jdbc:x\ndb.password = {}\n", encrypt(ring, "db.password", value.as_bytes()))
}

/// The app: a Python script run by a copy of the interpreter named
/// `fake-app`, so its process name is its own. Every SIGHUP appends what
/// `file` holds at that moment to `log`, one line each.
fn start_fake_app(d: &Dir, file: &Path) -> (Proc, PathBuf) {
    let python = Command::new("python3")
        .args(["-c", "import os, sys; print(os.path.realpath(sys.executable))"])
        .output()
        .expect("python3");
    let interpreter = String::from_utf8(python.stdout).unwrap().trim().to_owned();
    let app = d.path("fake-app");
    std::fs::copy(&interpreter, &app).unwrap();
    let log = d.path("app.log");
    let script = r#"
import signal, sys
target, log = sys.argv[1], sys.argv[2]
def on_hup(signum, frame):
    with open(target) as f:
        content = f.read()
    with open(log, "a") as out:
        out.write("HUP " + repr(content) + "\n")
signal.signal(signal.SIGHUP, on_hup)
with open(log, "a") as out:
    out.write("ready\n")
while True:
    signal.pause()
"#;
    let child = Command::new(&app)
        .args(["-c", script])
        .arg(file)
        .arg(&log)
        .stdin(Stdio::null())
        .spawn()
        .expect("the copied interpreter runs");
    let proc = Proc(child);
    wait_for(10, "the app to start", || std::fs::read_to_string(&log).ok()?.contains("ready").then_some(()));
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", proc.0.id())).unwrap();
    assert_eq!(comm.trim(), "fake-app", "the app has its own process name");
    (proc, log)
}

fn hups(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("HUP "))
        .map(str::to_owned)
        .collect()
}

fn counter(addr: &str, series: &str) -> f64 {
    sample(&metrics(addr), series).unwrap_or_else(|| panic!("{series} missing"))
}

#[test]
fn the_app_gets_one_signal_per_real_change() {
    let d = Dir::new("notify-signal");
    let ring = keyring(&d, &[KEY_A]);
    let src = d.path("src");
    let mut vol = Volume::new(src.clone(), &[("app.properties", config(&ring, "v0").as_bytes())]);
    let target = d.path("out");
    let sidecar = start_watch(
        &src,
        &target,
        &ring,
        &["--notify-signal", "HUP", "--notify-process", "fake-app", "--notify-debounce", "1s"],
    );
    let addr = sidecar.addr.clone();
    // Sealed before the burst, so that the burst is only file writes.
    let contents: Vec<String> = (1..=5).map(|i| config(&ring, &format!("v{i}"))).collect();
    wait_for(10, "the first render", || (get(&addr, "/readyz")?.0 == 200).then_some(()));
    // The app starts after the first render: that render notifies nobody.
    let (_app, app_log) = start_fake_app(&d, &target.join("app.properties"));
    std::thread::sleep(QUIET);
    assert!(hups(&app_log).is_empty(), "no signal for the first render");

    // Five ConfigMap changes 100 ms apart (well within the 1 s debounce):
    // one signal, after the last, and the app then reads the final content.
    for text in &contents {
        vol.update(&[("app.properties", text.as_bytes())]);
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(10, "the signal", || (!hups(&app_log).is_empty()).then_some(()));
    std::thread::sleep(QUIET);
    assert_eq!(hups(&app_log), ["HUP 'db.url = jdbc:x\\ndb.password = v5\\n'"]);
    assert_eq!(counter(&addr, "encstr_notifications_total{method=\"signal\",result=\"success\"}"), 1.0);
    let log = sidecar.log.lock().unwrap().clone();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("notified the app")).collect();
    assert_eq!(lines.len(), 1, "one log line per notification: {log}");
    assert!(lines[0].contains("\"files\":\"[\\\"app.properties\\\"]\""), "{}", lines[0]);
    assert!(!log.contains("v5"), "no plaintext in the log");

    // A keyring rotation that changes no plaintext: a render, no signal.
    let renders = counter(&addr, "encstr_renders_total{result=\"success\"}");
    std::fs::write(&ring, format!("{KEY_A}\n{KEY_B}\n")).unwrap();
    wait_for(10, "the keyring reload", || {
        (counter(&addr, "encstr_keyring_reloads_total") >= 1.0).then_some(())
    });
    wait_for(10, "the render", || {
        (counter(&addr, "encstr_renders_total{result=\"success\"}") > renders).then_some(())
    });
    std::thread::sleep(QUIET);
    assert_eq!(hups(&app_log).len(), 1, "an unchanged render notifies nobody");
    let m = metrics(&addr);
    assert_eq!(sample(&m, "encstr_keyring_primary_key_info{key_id=\"07e5a8df\"}"), Some(1.0));
    assert_eq!(sample(&m, "encstr_keyring_primary_key_info{key_id=\"2d353d4a\"}"), None);

    // A resync that changes nothing, a ConfigMap touched without a change.
    vol.update(&[("app.properties", std::fs::read(src.join("app.properties")).unwrap().as_slice())]);
    std::thread::sleep(QUIET);
    assert_eq!(hups(&app_log).len(), 1);

    // A failed render: no signal, and the old files stay.
    let bad = format!("db.password = {}\n", encrypt(&ring, "moved.password", b"x"));
    vol.update(&[("app.properties", bad.as_bytes())]);
    wait_for(10, "the failed render", || {
        (counter(&addr, "encstr_renders_total{result=\"failure\"}") >= 1.0).then_some(())
    });
    std::thread::sleep(QUIET);
    assert_eq!(hups(&app_log).len(), 1, "a failed render notifies nobody");
    assert_eq!(
        std::fs::read_to_string(target.join("app.properties")).unwrap(),
        "db.url = jdbc:x\ndb.password = v5\n"
    );

    // A real change again: one more signal.
    vol.update(&[("app.properties", config(&ring, "v6").as_bytes())]);
    wait_for(10, "the second signal", || (hups(&app_log).len() == 2).then_some(()));
    assert!(hups(&app_log)[1].contains("v6"));
    promtool_accepts(&metrics(&addr));
}

/// A reload endpoint on loopback that records POSTs and answers with
/// `status`; while `hold` is set it records a POST and does not answer yet.
struct ReloadEndpoint {
    url: String,
    posts: Arc<Mutex<Vec<Instant>>>,
    status: Arc<AtomicU16>,
    hold: Arc<AtomicBool>,
}

fn reload_endpoint() -> ReloadEndpoint {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/-/reload", listener.local_addr().unwrap());
    let posts = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(AtomicU16::new(200));
    let hold = Arc::new(AtomicBool::new(false));
    {
        let (posts, status, hold) = (posts.clone(), status.clone(), hold.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 0) && header.trim() != "" {
                    header.clear();
                }
                if request_line.starts_with("POST /-/reload ") {
                    posts.lock().unwrap().push(Instant::now());
                }
                while hold.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let code = status.load(Ordering::SeqCst);
                let _ = write!(stream, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
    }
    ReloadEndpoint { url, posts, status, hold }
}

#[test]
fn http_reloads_coalesce_retry_and_never_hold_back_renders() {
    let d = Dir::new("notify-http");
    let ring = keyring(&d, &[KEY_A]);
    let src = d.path("src");
    let mut vol = Volume::new(src.clone(), &[("app.properties", config(&ring, "v0").as_bytes())]);
    let target = d.path("out");
    let endpoint = reload_endpoint();
    // Both methods at once, the signal to a process that is not visible.
    let sidecar = start_watch(
        &src,
        &target,
        &ring,
        &[
            "--notify-url",
            &endpoint.url,
            "--notify-signal",
            "USR1",
            "--notify-process",
            "no-such-app",
            "--notify-debounce",
            "500ms",
        ],
    );
    let addr = sidecar.addr.clone();
    wait_for(10, "the first render", || (get(&addr, "/readyz")?.0 == 200).then_some(()));
    std::thread::sleep(QUIET);
    assert!(endpoint.posts.lock().unwrap().is_empty(), "nothing for the first render");

    // Three quick changes: one POST.
    for i in 1..=3 {
        vol.update(&[("app.properties", config(&ring, &format!("v{i}")).as_bytes())]);
        std::thread::sleep(Duration::from_millis(120));
    }
    wait_for(10, "the POST", || (!endpoint.posts.lock().unwrap().is_empty()).then_some(()));
    std::thread::sleep(QUIET);
    assert_eq!(endpoint.posts.lock().unwrap().len(), 1);
    let http_ok = "encstr_notifications_total{method=\"http\",result=\"success\"}";
    let http_failed = "encstr_notifications_total{method=\"http\",result=\"failure\"}";
    let signal_failed = "encstr_notifications_total{method=\"signal\",result=\"failure\"}";
    assert_eq!(counter(&addr, http_ok), 1.0);
    assert_eq!(counter(&addr, signal_failed), 1.0, "the invisible process is a failure of its own method");

    // The endpoint fails: retried, counted once as a failure; a render while
    // a notification is still unanswered is not held back.
    endpoint.status.store(500, Ordering::SeqCst);
    endpoint.hold.store(true, Ordering::SeqCst);
    vol.update(&[("app.properties", config(&ring, "v4").as_bytes())]);
    let v5 = config(&ring, "v5");
    wait_for(10, "the first failing attempt", || (endpoint.posts.lock().unwrap().len() >= 2).then_some(()));
    vol.update(&[("app.properties", v5.as_bytes())]);
    wait_for(10, "a render during the retries", || {
        std::fs::read_to_string(target.join("app.properties")).ok()?.contains("v5").then_some(())
    });
    assert_eq!(counter(&addr, http_failed), 0.0, "the first attempt is still unanswered");
    endpoint.hold.store(false, Ordering::SeqCst);
    // Retried 250 ms, 500 ms and 1 s apart; counted when they are used up.
    wait_for(30, "the failure", || (counter(&addr, http_failed) >= 1.0).then_some(()));
    let attempts = endpoint.posts.lock().unwrap().len() - 1;
    assert!(attempts >= 4, "retried: {attempts} attempts");
    // Recovery: the v5 change is notified once the endpoint answers again.
    endpoint.status.store(200, Ordering::SeqCst);
    wait_for(15, "recovery", || (counter(&addr, http_ok) >= 2.0).then_some(()));
    let log = sidecar.log.lock().unwrap().clone();
    assert_eq!(log.matches("is visible, so it cannot be signalled").count(), 1, "said once: {log}");
    assert!(counter(&addr, signal_failed) >= 2.0, "counted every time");
    assert!(log.contains("cannot notify the app") && log.contains("HTTP 500"), "{log}");
    promtool_accepts(&metrics(&addr));
}

#[test]
fn notify_options_need_watch_mode() {
    let d = Dir::new("notify-classic");
    let ring = keyring(&d, &[KEY_A]);
    let src = d.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let base = ["render", "--source", src.to_str().unwrap(), "--target", "/nonexistent", "--keyring"];
    for extra in [
        &["--notify-url", "http://127.0.0.1:1/-/reload"][..],
        &["--notify-signal", "HUP", "--notify-process", "app"],
        &["--notify-debounce", "1s"],
    ] {
        let out = run(&[&base[..], &[ring.to_str().unwrap()], extra].concat(), &[]);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("need --watch: an init container renders once"), "{stderr}");
    }
    for (extra, why) in [
        (&["--watch", "--notify-signal", "HUP"][..], "--notify-process"),
        (&["--watch", "--notify-signal", "KILL", "--notify-process", "a"], "not a signal encstr sends"),
        (&["--watch", "--notify-url", "https://127.0.0.1/reload"], "only plain http"),
    ] {
        let out = run(&[&base[..], &[ring.to_str().unwrap()], extra].concat(), &[]);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{extra:?}");
    }
}
