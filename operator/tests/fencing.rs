//! End to end: writes that cannot land on stale state. A paused leader
//! writes nothing once its lease passed on; SIGKILLs at random points of
//! rotations lose no key and make none twice; caches that lag the writes
//! by seconds still repair copies and follow namespaces at once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use encstr_tests::apiserver::{Fault, Matcher};
use encstr_tests::harness::Env;
use serde_json::Value;

/// Two replicas as distinct users bound to the chart's roles (so the
/// request log tells them apart).
fn replica_kubeconfig(env: &Env, user: &str) -> std::path::PathBuf {
    env.server.add_user(&format!("{user}-token"), user, &["encstr-replicas"]);
    let path = env.dir.join(format!("{user}-kubeconfig"));
    std::fs::write(&path, env.server.kubeconfig_for(user, Some(&format!("{user}-token")))).unwrap();
    path
}

/// Two replicas (lease of 3 s) and a converged ClusterSecretKeyring
/// `payments` targeting `team-a`: the replicas' pids, the leader and the
/// standby.
fn two_replicas(env: &mut Env) -> (BTreeMap<&'static str, u32>, &'static str, &'static str) {
    let _install = install(env, &[]);
    kubectl(
        env,
        &["create", "clusterrolebinding", "replicas", "--clusterrole=encstr", "--group=encstr-replicas"],
    );
    kubectl(
        env,
        &[
            "create",
            "rolebinding",
            "replicas-lease",
            "--role=encstr-leader-election",
            "--group=encstr-replicas",
            "-n",
            OPERATOR_NS,
        ],
    );
    kubectl(env, &["create", "namespace", "team-a"]);
    let mut pids = BTreeMap::new();
    for id in ["one", "two"] {
        let kc = replica_kubeconfig(env, id);
        let mut cmd = env.command(env!("CARGO_BIN_EXE_encstr-operator"));
        cmd.env("KUBECONFIG", &kc).env("POD_NAMESPACE", OPERATOR_NS);
        cmd.args(["run", "--listen", "127.0.0.1:0", "--lease-duration", "3", "--identity", id]);
        cmd.args(["--min-rotation-interval", "0s"]);
        pids.insert(id, env.spawn(id, cmd));
    }
    let (a, b) = (metrics_addr(env, "one"), metrics_addr(env, "two"));
    let leader = wait(15, "one leader", || match (is_leader(&a)?, is_leader(&b)?) {
        (true, false) => Some("one"),
        (false, true) => Some("two"),
        _ => None,
    });
    let standby = if leader == "one" { "two" } else { "one" };
    apply(
        env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a]}\n  rotation: {promotionDelay: 1s}\n",
    );
    converged(env, OPERATOR_NS, "payments", &["team-a"]);
    (pids, leader, standby)
}

fn signal(pid: u32, sig: &str) {
    std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
}

/// Thaw the old leader and wait until it has exited or said it lost the
/// lease; then every write it sent since the log was reset, whatever the
/// answer (the lease's own requests aside: they fail on their
/// precondition).
fn thaw_and_collect_writes(env: &Env, pid: u32, leader: &str) -> Vec<String> {
    signal(pid, "-CONT");
    wait(20, "the old leader to exit", || {
        let alive =
            std::process::Command::new("kill").args(["-0", &pid.to_string()]).status().unwrap().success();
        (!alive || env.log(leader).contains("lost leadership")).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    env.server
        .recent_requests()
        .into_iter()
        .filter(|r| {
            r.user == leader && !matches!(r.verb.as_str(), "get" | "list" | "watch") && r.resource != "leases"
        })
        .map(|r| format!("{} {}", r.code, r.line))
        .collect()
}

#[test]
fn a_paused_leader_writes_nothing_after_its_lease_passed_on() {
    let mut env = Env::start("fencing");
    let (pids, leader, standby) = two_replicas(&mut env);
    // Freeze the leader: its lease expires and the standby takes over.
    signal(pids[leader], "-STOP");
    wait(20, "the standby to lead", || env.log(standby).contains("became leader").then_some(()));
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    let rotated = settled(&env, "payments", &["team-a"], 2);
    // Thaw the old leader: it must not write, and it must exit.
    env.server.reset_counts();
    let writes = thaw_and_collect_writes(&env, pids[leader], leader);
    assert!(writes.is_empty(), "the old leader wrote after losing the lease: {writes:?}");
    assert_eq!(converged(&env, OPERATOR_NS, "payments", &["team-a"]), rotated);
    // It stands by (serving, not exiting: its webhook keeps admitting
    // pods), reports no keyring state of its own, and leads again when the
    // other replica goes.
    let old = metrics_addr(&env, leader);
    let scraped = wait(10, "the old leader's metrics as a standby", || {
        scrape(&old).filter(|m| m.contains("encstr_operator_leader 0"))
    });
    assert!(
        !scraped.lines().any(|l| l.starts_with("encstr_keyring_keys{")),
        "a standby reports keyring state: {scraped}"
    );
    env.kill(standby);
    wait(30, "the old leader to lead again", || {
        (is_leader(&old)? && env.log(leader).matches("became leader").count() == 2).then_some(())
    });
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=2", "--overwrite"]);
    settled(&env, "payments", &["team-a"], 3);
}

/// The API server answers the leader's status write with 503 and
/// `Retry-After`; the leader is paused while it waits to retry, past its
/// lease; the standby takes over and writes. The retry, due when the old
/// leader wakes, must not be sent: the fence is checked on every attempt,
/// not once underneath the client's retries.
#[test]
fn a_retry_due_after_the_lease_passed_on_is_never_sent() {
    let mut env = Env::start("fencing-retry");
    let (pids, leader, standby) = two_replicas(&mut env);
    let mut fault = Fault::new(
        Matcher {
            verb: Some("patch".into()),
            resource: Some("clustersecretkeyrings".into()),
            subresource: Some("status".into()),
            user: Some(leader.into()),
            ..Matcher::default()
        },
        1,
        503,
    );
    fault.retry_after = Some(4);
    env.server.fail(fault);
    env.server.reset_counts();
    kubectl(&env, &["annotate", "cskr", "payments", "encstr.io/rotate=1"]);
    wait(20, "the leader's status write to be answered with 503", || {
        env.server.recent_requests().iter().any(|r| r.user == leader && r.code == 503).then_some(())
    });
    signal(pids[leader], "-STOP");
    wait(20, "the standby to lead", || env.log(standby).contains("became leader").then_some(()));
    let rotated = settled(&env, "payments", &["team-a"], 2);
    env.server.reset_counts();
    // Past the retry's due time: it fires the moment the leader runs again.
    std::thread::sleep(Duration::from_secs(1));
    let writes = thaw_and_collect_writes(&env, pids[leader], leader);
    assert!(writes.is_empty(), "the old leader's retry was sent after the takeover: {writes:?}");
    assert_eq!(converged(&env, OPERATOR_NS, "payments", &["team-a"]), rotated);
    let st = cstatus(&env, "payments");
    assert_eq!(key_states(&st).len(), 2, "the status is the new leader's: {st}");
}

/// Every version of a Secret (through a watch).
fn record_versions(env: &Env, ns: &str, name: &str) -> Recorded {
    record_watch(
        env,
        &format!("/api/v1/namespaces/{ns}/secrets?watch=true&fieldSelector=metadata.name%3D{name}"),
    )
}

/// The keyring texts and staged-key annotations recorded, in the order written.
fn keyrings_and_staged(recorded: &Recorded) -> Vec<(String, Option<String>)> {
    let staged = |s: &Value| s["metadata"]["annotations"]["encstr.io/staged-key"].as_str().map(str::to_owned);
    recorded.lock().unwrap().iter().filter_map(|(_, s)| Some((keyring_text(s)?, staged(s)))).collect()
}

fn staged_now(env: &Env) -> bool {
    kubectl_json(env, &["get", "secret", "payments", "-n", OPERATOR_NS])
        .is_some_and(|s| s["metadata"]["annotations"].get("encstr.io/staged-key").is_some())
}

#[test]
fn sigkill_at_random_points_during_rotations_loses_no_key_and_makes_none_twice() {
    let (mut env, install) = setup("crash", &["team-a", "team-b"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a, team-b]}\n  rotation: {promotionDelay: 1s}\n",
    );
    converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    let versions = record_versions(&env, OPERATOR_NS, "payments");
    let mut with_staged = 0;
    // At least 20 kills, and at least 10 of them with a key staged: on a
    // loaded machine rotations reach the staged step later, so more rounds
    // are run until they have (at most 60).
    for i in 1..=60 {
        if i > 20 && with_staged >= 10 {
            break;
        }
        kubectl(&env, &["annotate", "cskr", "payments", &format!("encstr.io/rotate={i}"), "--overwrite"]);
        if i % 2 == 0 || i > 20 {
            // Half the kills land while a key is staged (if the rotation gets there).
            let _ = (0..50).find(|_| {
                std::thread::sleep(Duration::from_millis(20));
                staged_now(&env)
            });
        }
        std::thread::sleep(Duration::from_millis((rand() % 600) as u64));
        env.kill("operator");
        with_staged += usize::from(staged_now(&env));
        start_operator(&mut env, &install, "operator", &[]);
    }
    assert!(with_staged >= 10, "only {with_staged} kills with a staged key present");
    // Let the last rotation finish.
    let keys = wait(60, "the last rotation to complete", || {
        let st = cstatus(&env, "payments");
        let done =
            condition(&st, "RotationInProgress")?.0 == "False" && key_states(&st).last()?.1 == "Primary";
        let text = converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
        (done && st["keyCount"].as_u64() == Some(text.lines().count() as u64)).then_some(text)
    });
    caught_up(&env, &versions, &[&["secret", "payments", "-n", OPERATOR_NS]]);
    let versions = keyrings_and_staged(&versions);
    assert!(versions.len() > 20, "every master version recorded: {}", versions.len());
    // Each version holds every key of the previous one (nothing is pruned here).
    for pair in versions.windows(2) {
        let (before, after) = (lines(&pair[0].0), lines(&pair[1].0));
        assert!(before.is_subset(&after), "a master write dropped a key");
    }
    // Every key after the first came in by a staging step that names it: no
    // key was made and replaced by another for the same rotation.
    let mut seen: BTreeSet<String> = lines(&versions[0].0);
    for (text, staged) in &versions[1..] {
        for line in text.lines() {
            if seen.insert(line.to_owned()) {
                let id = encstr_core::Keyring::parse(line).unwrap().primary().id().to_string();
                assert_eq!(staged.as_deref(), Some(id.as_str()), "a key that was not staged");
            }
        }
    }
    let ever: BTreeSet<String> = versions.iter().flat_map(|v| lines(&v.0)).collect();
    // Announced at most once per key (a SIGKILL right after a staging write
    // may lose its event, never double it).
    let staged_events = events(&env, OPERATOR_NS).iter().filter(|(_, r, _)| r == "KeyStaged").count();
    assert!(staged_events < ever.len(), "{staged_events} KeyStaged events for {} new keys", ever.len() - 1);
    assert_eq!(lines(&keys), ever, "no key lost");
    assert_no_forbidden(&env);
}

#[test]
fn caches_that_lag_by_seconds_still_repair_copies_and_follow_namespaces() {
    let mut env = Env::start("stale");
    let install = install(&env, &[]);
    for ns in ["team-a", "team-b"] {
        kubectl(&env, &["create", "namespace", ns]);
    }
    start_operator(&mut env, &install, "operator", &["--resync", "10m"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets:\n    namespaces: [team-a]\n    namespaceSelector: {matchLabels: {team: payments}}\n",
    );
    let master = converged(&env, OPERATOR_NS, "payments", &["team-a"]);
    wait(20, "Ready", || (condition(&cstatus(&env, "payments"), "Ready")?.0 == "True").then_some(()));
    env.server.set_watch_delay("secrets", Duration::from_secs(2));
    env.server.set_watch_delay("namespaces", Duration::from_secs(2));
    // A tampered copy is repaired in seconds (the 10-minute resync does not help).
    kubectl(
        &env,
        &[
            "patch",
            "secret",
            "payments",
            "-n",
            "team-a",
            "--type=merge",
            "-p",
            r#"{"data":{"keyring":"dGFtcGVyZWQK"}}"#,
        ],
    );
    wait(30, "the copy repaired", || (keyring_secret(&env, "team-a", "payments")?.0 == master).then_some(()));
    // A namespace labelled now gets its copy in seconds.
    kubectl(&env, &["label", "namespace", "team-b", "team=payments"]);
    converged(&env, OPERATOR_NS, "payments", &["team-a", "team-b"]);
    assert_no_forbidden(&env);
}
