//! Helpers of the operator's end-to-end tests: the tests/ API server with
//! RBAC enforced, the chart's ServiceAccount and RBAC (rendered by the real
//! helm), the real `encstr-operator` running as that account, kubectl where
//! a user would use kubectl, and the real `encstr` where an app would.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use encstr_tests::harness::{Client, Env, binary};
use serde_json::Value;

/// The release namespace: the operator, its Lease and the
/// ClusterSecretKeyrings' masters.
pub const OPERATOR_NS: &str = "encstr";
/// The chart's ServiceAccount as a user.
pub const OPERATOR_USER: &str = "system:serviceaccount:encstr:encstr";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn crd_path() -> PathBuf {
    root().join("crds/encstr.yaml")
}

pub fn helm() -> PathBuf {
    let p = std::env::var_os("ENCSTR_HELM").map_or_else(|| root().join(".tools/k8s/helm"), PathBuf::from);
    assert!(
        p.exists(),
        "helm not found at {}: run scripts/fetch-k8s-tools.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

pub fn encstr() -> PathBuf {
    let bin = binary("encstr");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p encstr` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

pub fn run(env: &Env, program: &Path, args: &[&str]) -> String {
    let mut cmd = env.command(program);
    cmd.args(args);
    env.run_ok(cmd)
}

pub fn kubectl(env: &Env, args: &[&str]) -> String {
    run(env, Path::new("kubectl"), args)
}

/// kubectl as another identity (a kubeconfig file).
pub fn kubectl_as(env: &Env, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = env.command("kubectl").env("KUBECONFIG", kubeconfig).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn kubectl_json(env: &Env, args: &[&str]) -> Option<Value> {
    let out = env.command("kubectl").args(args).args(["-o", "json"]).output().unwrap();
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

pub fn rand() -> u128 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u128::from(u64::from_le_bytes(b))
}

pub fn write(env: &Env, text: &str) -> PathBuf {
    let path = env.dir.join(format!("f-{}", rand()));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn apply(env: &Env, yaml: &str) {
    kubectl(env, &["apply", "--server-side", "-f", write(env, yaml).to_str().unwrap()]);
}

/// Apply a manifest the API server must refuse; returns kubectl's error.
pub fn apply_refused(env: &Env, yaml: &str) -> String {
    let out = env
        .command("kubectl")
        .args(["apply", "--server-side", "-f", write(env, yaml).to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the API server accepted {yaml}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn wait<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The chart's objects of some kinds, as `helm template` renders them.
pub fn chart_objects(env: &Env, set: &[&str], kinds: &[&str]) -> Vec<Value> {
    let chart = root().join("charts/encstr");
    let mut args: Vec<String> = ["template", "encstr", chart.to_str().unwrap(), "-n", OPERATOR_NS]
        .into_iter()
        .map(String::from)
        .collect();
    for s in set {
        args.push("--set".into());
        args.push((*s).into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = run(env, &helm(), &refs);
    text.split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|d| d["kind"].as_str().is_some_and(|k| kinds.contains(&k)))
        .collect()
}

/// What an install gives a test: the operator's kubeconfig.
#[derive(Debug, Clone)]
pub struct Install {
    /// A kubeconfig for the chart's ServiceAccount.
    pub kubeconfig: PathBuf,
    /// The `--set` values it was rendered with.
    pub set: Vec<String>,
}

/// Install the CRDs, the operator namespace, and the chart's ServiceAccount
/// and RBAC (rendered with `set`); returns a kubeconfig for that account.
pub fn install(env: &Env, set: &[&str]) -> Install {
    kubectl(env, &["apply", "--server-side", "-f", crd_path().to_str().unwrap()]);
    kubectl(env, &["create", "namespace", OPERATOR_NS]);
    let rbac = chart_objects(
        env,
        set,
        &["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
    );
    for obj in &rbac {
        if let Some(ns) = obj["metadata"]["namespace"].as_str() {
            let _ = env.command("kubectl").args(["create", "namespace", ns]).output();
        }
    }
    let yaml: Vec<String> = rbac.iter().map(|o| serde_saphyr::to_string(o).unwrap()).collect();
    kubectl(env, &["apply", "--server-side", "-f", write(env, &yaml.join("---\n")).to_str().unwrap()]);
    let token = wait(10, "the ServiceAccount", || env.server.service_account_token(OPERATOR_NS, "encstr"));
    let kubeconfig = env.dir.join("operator-kubeconfig");
    std::fs::write(&kubeconfig, env.server.kubeconfig_for(OPERATOR_USER, Some(&token))).unwrap();
    Install { kubeconfig, set: set.iter().map(|s| (*s).to_owned()).collect() }
}

/// Start an operator replica as the chart's ServiceAccount. Rotations may
/// follow each other at once (the tests rotate in quick succession)
/// unless `extra` sets `--min-rotation-interval`.
pub fn start_operator(env: &mut Env, install: &Install, label: &str, extra: &[&str]) -> u32 {
    let mut cmd = env.command(env!("CARGO_BIN_EXE_encstr-operator"));
    cmd.env("KUBECONFIG", &install.kubeconfig).env("POD_NAMESPACE", OPERATOR_NS);
    cmd.args(["run", "--listen", "127.0.0.1:0", "--lease-duration", "3", "--identity", label]);
    if !extra.iter().any(|a| a.starts_with("--min-rotation-interval")) {
        cmd.args(["--min-rotation-interval", "0s"]);
    }
    cmd.args(extra);
    env.spawn(label, cmd)
}

/// A cluster-wide install with these namespaces and the operator running.
pub fn setup(test: &str, namespaces: &[&str]) -> (Env, Install) {
    setup_with(test, &[], namespaces, &[])
}

/// An install with the chart's RBAC rendered with `set`, these namespaces,
/// and the operator running with `extra` flags.
pub fn setup_with(test: &str, set: &[&str], namespaces: &[&str], extra: &[&str]) -> (Env, Install) {
    let mut env = Env::start(test);
    let install = install(&env, set);
    for ns in namespaces {
        kubectl(&env, &["create", "namespace", ns]);
    }
    start_operator(&mut env, &install, "operator", extra);
    (env, install)
}

/// A free port on 127.0.0.1 (nothing listens on it when this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The operator never got a 403 (its RBAC is enough for what it does).
pub fn assert_no_forbidden(env: &Env) {
    let denied: Vec<String> = env
        .server
        .usage()
        .into_iter()
        .filter(|(u, c)| u.user == OPERATOR_USER && c.forbidden > 0)
        .map(|(u, c)| {
            format!("{} {}/{} in {:?}: {} denied", u.verb, u.group, u.resource, u.namespace, c.forbidden)
        })
        .collect();
    assert!(denied.is_empty(), "the operator was denied: {denied:?}");
}

/// The keyring text, key-ids annotation and object of a Secret, if it exists.
pub fn keyring_secret(env: &Env, ns: &str, name: &str) -> Option<(String, String, Value)> {
    let s = kubectl_json(env, &["get", "secret", name, "-n", ns])?;
    let text = keyring_text(&s)?;
    let ids = s["metadata"]["annotations"]["encstr.io/key-ids"].as_str().unwrap_or_default().to_owned();
    Some((text, ids, s))
}

/// The keyring text a Secret object holds, if any.
pub fn keyring_text(secret: &Value) -> Option<String> {
    secret_text(secret, "keyring")
}

/// A Secret's `data` entry, decoded, if it exists.
pub fn secret_text(secret: &Value, key: &str) -> Option<String> {
    let data = secret["data"][key].as_str()?;
    Some(String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data).unwrap()).unwrap())
}

/// Every object a watch saw added or modified, with its resourceVersion.
pub type Recorded = Arc<Mutex<Vec<(u64, Value)>>>;

/// Record a watch at `path` (a thread with its own runtime).
pub fn record_watch(env: &Env, path: &str) -> Recorded {
    let seen: Recorded = Arc::default();
    let client = Client::admin(&env.server);
    let (path, out) = (path.to_owned(), seen.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let Ok((_, mut lines)) = client.stream(&path, &[]).await else { return };
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(ev @ Value::Object(_)) = serde_json::from_str::<Value>(&line) else { continue };
                let rv = ev["object"]["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse().ok());
                if let (Some(rv), "ADDED" | "MODIFIED") = (rv, ev["type"].as_str().unwrap_or_default()) {
                    out.lock().unwrap().push((rv, ev["object"].clone()));
                }
            }
        });
    });
    seen
}

/// Wait until a recorder has seen each object (`kubectl get` arguments) at
/// its current resourceVersion: watches lag, and a sleep is only a guess.
pub fn caught_up(env: &Env, recorded: &Recorded, objects: &[&[&str]]) {
    for args in objects {
        let mut get = vec!["get"];
        get.extend_from_slice(args);
        let rv: u64 = kubectl_json(env, &get)
            .and_then(|o| o["metadata"]["resourceVersion"].as_str()?.parse().ok())
            .unwrap_or_else(|| panic!("{args:?} has a resourceVersion"));
        wait(30, "the recorded watch to catch up", || {
            recorded.lock().unwrap().iter().any(|(r, _)| *r >= rv).then_some(())
        });
    }
}

/// The status of a ClusterSecretKeyring.
pub fn cstatus(env: &Env, name: &str) -> Value {
    kubectl_json(env, &["get", "cskr", name]).map(|v| v["status"].clone()).unwrap_or(Value::Null)
}

/// The status of a SecretKeyring.
pub fn status(env: &Env, ns: &str, name: &str) -> Value {
    kubectl_json(env, &["get", "skr", name, "-n", ns]).map(|v| v["status"].clone()).unwrap_or(Value::Null)
}

pub fn condition(st: &Value, type_: &str) -> Option<(String, String, String)> {
    st["conditions"].as_array()?.iter().find(|c| c["type"] == type_).map(|c| {
        (
            c["status"].as_str().unwrap_or_default().into(),
            c["reason"].as_str().unwrap_or_default().into(),
            c["message"].as_str().unwrap_or_default().into(),
        )
    })
}

/// Events in a namespace (a ClusterSecretKeyring's are in the cluster
/// resource namespace).
pub fn events(env: &Env, ns: &str) -> Vec<(String, String, String)> {
    let list = kubectl_json(env, &["get", "events.events.k8s.io", "-n", ns]).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().into(),
                e["reason"].as_str().unwrap_or_default().into(),
                e["note"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

/// Wait until the master and every copy in `targets` hold identical keyrings; returns the text.
pub fn converged(env: &Env, master_ns: &str, name: &str, targets: &[&str]) -> String {
    wait(30, "identical copies", || {
        let (master, ids, _) = keyring_secret(env, master_ns, name)?;
        for t in targets {
            let (copy, copy_ids, _) = keyring_secret(env, t, name)?;
            if copy != master || copy_ids != ids {
                return None;
            }
        }
        Some(master)
    })
}

pub fn key_states(st: &Value) -> Vec<(String, String)> {
    st["keys"]
        .as_array()
        .map(|ks| {
            ks.iter()
                .map(|k| (k["id"].as_str().unwrap().into(), k["state"].as_str().unwrap().into()))
                .collect()
        })
        .unwrap_or_default()
}

/// Render `config` with `keyring_text` through the real `encstr render`.
pub fn render_ok(env: &Env, keyring_text: &str, config: &str) -> String {
    let dir = env.dir.join(format!("render-{}", rand()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("keyring"), keyring_text).unwrap();
    std::fs::set_permissions(dir.join("keyring"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
    std::fs::write(dir.join("src/app.properties"), config).unwrap();
    let out = Command::new(encstr())
        .args(["render", "--source"])
        .arg(dir.join("src"))
        .arg("--target")
        .arg(dir.join("out"))
        .arg("--keyring")
        .arg(dir.join("keyring"))
        .arg("--termination-log")
        .arg(dir.join("tlog"))
        .output()
        .unwrap();
    assert!(out.status.success(), "render failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(dir.join("out/app.properties")).unwrap()
}

/// A keyring file (mode 0600) holding one keyring line.
fn keyring_file(env: &Env, keyring_line: &str) -> PathBuf {
    let file = env.dir.join(format!("k-{}", rand()));
    std::fs::write(&file, format!("{keyring_line}\n")).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    file
}

/// `encstr encrypt --name NAME` with these further arguments, `plain` on
/// its standard input; the token it prints.
fn encrypt_cli(name: &str, args: &[&OsStr], plain: &str) -> String {
    let mut child = Command::new(encstr())
        .args(["encrypt", "--name", name])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), plain.as_bytes()).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap().trim().to_owned()
}

/// A token made with one keyring line through the real `encstr encrypt`.
pub fn encrypt_with(env: &Env, keyring_line: &str, name: &str, plain: &str) -> String {
    let file = keyring_file(env, keyring_line);
    encrypt_cli(name, &["--keyring".as_ref(), file.as_os_str()], plain)
}

/// A v2 token sealed to the recipient of one keyring line, through the
/// real `encstr keys recipient` and `encstr encrypt --recipient` (the
/// sealer holds no key).
pub fn seal_with(env: &Env, keyring_line: &str, name: &str, plain: &str) -> String {
    let file = keyring_file(env, keyring_line);
    let out = Command::new(encstr()).args(["keys", "recipient", "--keyring"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "keys recipient: {}", String::from_utf8_lossy(&out.stderr));
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let token = encrypt_cli(name, &["--recipient".as_ref(), recipient.as_ref()], plain);
    assert_eq!(encstr_core::token::peek(&token).map(|(v, _)| v), Some(2), "a version-2 token");
    token
}

/// The key lines of a keyring text, as a set.
pub fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_owned).collect()
}

/// The metrics address an operator logged.
pub fn metrics_addr(env: &Env, label: &str) -> String {
    wait(10, "the metrics address in the log", || {
        env.log(label).lines().find_map(|l| {
            l.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap_or_default().to_owned())
        })
    })
}

/// A metrics scrape of an operator.
pub fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

pub fn is_leader(addr: &str) -> Option<bool> {
    scrape(addr)?.lines().find_map(|l| l.strip_prefix("encstr_operator_leader ")).map(|v| v.trim() == "1")
}

/// Wait until a ClusterSecretKeyring has `n` keys, the last one primary,
/// no rotation in progress, and every copy identical; returns the text.
pub fn settled(env: &Env, name: &str, targets: &[&str], n: usize) -> String {
    wait(40, "a settled keyring", || {
        let st = cstatus(env, name);
        let states = key_states(&st);
        let ok = states.len() == n
            && states.last()?.1 == "Primary"
            && states[..n - 1].iter().all(|(_, s)| s == "DecryptOnly")
            && condition(&st, "RotationInProgress")?.0 == "False";
        if !ok {
            return None;
        }
        let text = converged(env, OPERATOR_NS, name, targets);
        (text.lines().count() == n && !text.lines().last()?.is_empty()).then_some(text)
    })
}

pub type Grant = (String, String, String);

/// What the chart grants the operator's ServiceAccount (not the aggregated
/// user roles), as (verb, group, resource) triples; `only`: from the roles
/// of that name alone.
pub fn granted(env: &Env, set: &[&str], only: Option<&str>) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for role in chart_objects(env, set, &["ClusterRole", "Role"]) {
        let name = role["metadata"]["name"].as_str().unwrap_or_default();
        if name.ends_with("-edit") || name.ends_with("-view") || only.is_some_and(|o| o != name) {
            continue;
        }
        for rule in role["rules"].as_array().unwrap() {
            let list = |k: &str| {
                rule[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect::<Vec<_>>()
            };
            for verb in list("verbs") {
                for group in list("apiGroups") {
                    for resource in list("resources") {
                        assert!(verb != "*" && group != "*" && resource != "*", "no wildcards: {rule}");
                        out.insert((verb.clone(), group.clone(), resource.clone()));
                    }
                }
            }
        }
    }
    out
}

/// What the operator used (requests that were not denied).
pub fn used(env: &Env) -> BTreeSet<Grant> {
    env.server
        .usage()
        .into_iter()
        .filter(|(u, c)| u.user == OPERATOR_USER && c.requests > c.forbidden)
        .map(|(u, _)| (u.verb, u.group, u.resource))
        .collect()
}
