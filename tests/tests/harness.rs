//! The end-to-end harness and the `kube-test-apiserver` binary.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use encstr_tests::harness::{Env, request_blocking};

#[test]
fn the_binary_serves_on_a_free_port_with_a_kubeconfig_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("encstr-apiserver-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, "alice-token,alice,uid-1,\"dev,ops\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-test-apiserver"))
        .args(["--port", "0", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--token-auth-file")
        .arg(&tokens)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().expect("the port on stdout");
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(config.contains(&format!("server: https://127.0.0.1:{port}")), "{config}");
    assert!(config.contains("certificate-authority-data: "), "{config}");
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("KUBECACHEDIR", dir.join("cache"))
            .output()
            .unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(
        kubectl(&["get", "namespaces", "-o", "name"]).0,
        "namespace/default\nnamespace/kube-node-lease\nnamespace/kube-public\nnamespace/kube-system\n"
    );
    // A user of the token file: authenticated, in its groups, and allowed
    // nothing beyond what a new cluster grants every user.
    let (who, _) = kubectl(&[
        "--token",
        "alice-token",
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(who, r#"alice ["dev","ops","system:authenticated"]"#);
    let (_, err) = kubectl(&["--token", "alice-token", "get", "secrets"]);
    assert!(
        err.contains(
            r#"User "alice" cannot list resource "secrets" in API group "" in the namespace "default""#
        ),
        "{err}"
    );
    let (_, err) = kubectl(&["--token", "not-a-token", "get", "secrets"]);
    assert!(err.contains("Unauthorized"), "{err}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn env_gives_each_test_a_namespace_runs_processes_and_cleans_up() {
    let mut env = Env::start("harness-ok");
    env.namespace("harness-ok");
    let (code, ns) =
        request_blocking(&env.server, "GET", "/api/v1/namespaces/harness-ok", "application/json", "")
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
