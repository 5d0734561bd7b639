//! The official Python `kubernetes` client (PyPI; `scripts/test.sh`
//! installs it) against the test API server: CRUD, pagination with
//! `_continue`, `watch.Watch` resuming and recovering from 410, server-side
//! apply through the dynamic client, and a 403 as `ApiException(403)`.
//! The scenarios are in `tests/python/test_kubernetes_client.py`.

use std::path::Path;
use std::process::Command;

use encstr_tests::harness::Env;

#[test]
fn the_python_kubernetes_client_works_against_the_test_server() {
    let have = Command::new("python3").args(["-c", "import kubernetes"]).status().is_ok_and(|s| s.success());
    assert!(
        have,
        "the Python `kubernetes` client is missing: python3 -m pip install kubernetes (scripts/test.sh does)"
    );
    let env = Env::start("python-client");
    env.server.add_user("restricted-token", "restricted", &[]);
    let restricted = env.dir.join("restricted-kubeconfig");
    std::fs::write(&restricted, env.server.kubeconfig_for("restricted", Some("restricted-token"))).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/test_kubernetes_client.py");
    let mut cmd = env.command("python3");
    cmd.arg(&script).env("RESTRICTED_KUBECONFIG", &restricted);
    let out = cmd.output().unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python client's scenarios failed:\n{report}");
    for test in [
        "crud_and_errors",
        "pagination_with_continue",
        "watch_resumes_and_recovers_from_410",
        "server_side_apply_with_the_dynamic_client",
        "forbidden_surfaces_as_api_exception_403",
    ] {
        assert!(report.contains(&format!("test_{test}) ... ok")), "{test} did not pass:\n{report}");
    }
}
