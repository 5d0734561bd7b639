//! The end-to-end harness and the `kube-test-apiserver` binary.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use encstr_tests::harness::{Env, request_blocking};

#[test]
fn the_binary_serves_on_a_free_port_with_a_kubeconfig_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("encstr-apiserver-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-test-apiserver"))
        .args(["--port", "0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().expect("the port on stdout");
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(config.contains(&format!("server: http://127.0.0.1:{port}")), "{config}");
    let out = Command::new("kubectl")
        .args(["get", "namespaces", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBECACHEDIR", dir.join("cache"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "namespace/default\nnamespace/kube-public\nnamespace/kube-system\n"
    );
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn env_gives_each_test_a_namespace_runs_processes_and_cleans_up() {
    let mut env = Env::start("harness-ok");
    env.namespace("harness-ok");
    let (code, ns) =
        request_blocking(&env.server.url(), "GET", "/api/v1/namespaces/harness-ok", "application/json", "")
            .unwrap();
    assert_eq!((code, ns["status"]["phase"].as_str()), (200, Some("Active")));
    // A process run with the env's kubeconfig sees the server.
    let mut cmd = env.command("kubectl");
    cmd.args(["get", "ns", "harness-ok", "-o", "name"]);
    assert_eq!(env.run_ok(cmd).trim(), "namespace/harness-ok");
    let mut sleeper = env.command("sleep");
    sleeper.arg("60");
    env.spawn("sleeper", sleeper);
    let dir = env.dir.clone();
    drop(env);
    assert!(!dir.exists(), "a passing test leaves nothing behind");
}

#[test]
fn a_failing_test_keeps_its_logs_and_a_dump_of_the_server_state() {
    let dir = std::thread::spawn(|| {
        let env = Env::start("harness-fail");
        env.namespace("left-behind");
        let dir = env.dir.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _env = env;
            panic!("simulated test failure");
        }));
        assert!(result.is_err());
        dir
    })
    .join()
    .unwrap();
    let state = std::fs::read_to_string(dir.join("apiserver-state.json")).expect("state dumped on failure");
    assert!(state.contains("\"left-behind\""));
    let _ = std::fs::remove_dir_all(&dir);
}
