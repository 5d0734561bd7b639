//! API-call scenarios (the tier of kube-rs controller-rs's `fixtures.rs`,
//! against the real tests/ API server instead of a mock): for one
//! reconcile of each scenario, the exact sequence of requests the operator
//! sends, read from the server's request log. A change that adds, drops or
//! reorders a request — a write before the backup, a cache read turned into
//! a LIST, a write without its precondition's GET — shows here first.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use encstr_core::{Key, Keyring, token};
use encstr_operator::backup::store::Policy;
use encstr_operator::context::{self, Ctx, Shared};
use encstr_operator::crd::{ClusterSecretKeyring, KeyringStatus, SecretKeyring};
use encstr_operator::keyring::KeyringResource;
use encstr_operator::metrics::Metrics;
use encstr_operator::{cache, controller, reconcile, writer};
use encstr_tests::harness::Env;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher::Event;
use kube::{Client, Config, ResourceExt};

async fn client(env: &Env) -> Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&env.server.kubeconfig()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

/// A context whose caches hold what the server holds now, as the
/// controller's reflectors would once synced.
async fn ctx<K: KeyringResource>(client: &Client) -> Ctx {
    ctx_with::<K>(client, Duration::from_secs(60)).await
}

/// [`ctx`] with another usage-scan interval.
async fn ctx_with<K: KeyringResource>(client: &Client, scan_interval: Duration) -> Ctx {
    let settings = context::Settings {
        cluster_namespace: OPERATOR_NS.into(),
        resync: Duration::from_secs(300),
        scan_interval,
        min_rotation_interval: Duration::from_secs(300),
        backup_timeout: Duration::from_secs(5),
        backup_policy: Policy::default(),
    };
    let recorder =
        Recorder::new(client.clone(), Reporter { controller: "encstr-operator".into(), instance: None });
    let shared = Arc::new(Shared::new(client.clone(), recorder, Arc::new(Metrics::default()), settings));
    let (secrets, mut s_writer) = cache::index(cache::secret_entry);
    s_writer.apply(&Event::Init);
    let labelled = ListParams::default().labels(K::KIND.label());
    for s in Api::<Secret>::all(client.clone()).list(&labelled).await.unwrap() {
        s_writer.apply(&Event::InitApply(s));
    }
    s_writer.apply(&Event::InitDone);
    let (namespaces, mut n_writer) = cache::index(cache::namespace_entry);
    n_writer.apply(&Event::Init);
    for n in Api::<Namespace>::all(client.clone()).list_metadata(&ListParams::default()).await.unwrap() {
        n_writer.apply(&Event::InitApply(n));
    }
    n_writer.apply(&Event::InitDone);
    let (config_maps, mut c_writer) = cache::index(cache::config_map_entry);
    c_writer.apply(&Event::Init);
    let recipients = ListParams::default().labels(&controller::config_map_selector(K::KIND));
    for c in Api::<ConfigMap>::all(client.clone()).list(&recipients).await.unwrap() {
        c_writer.apply(&Event::InitApply(c));
    }
    c_writer.apply(&Event::InitDone);
    Ctx { shared, secrets, config_maps, namespaces: Some(namespaces) }
}

/// Reconcile `name` once; the requests it sent, as `VERB resource[/sub]
/// namespace/name CODE`.
async fn reconcile_once<K: KeyringResource>(
    env: &Env,
    client: &Client,
    ns: Option<&str>,
    name: &str,
) -> Vec<String> {
    let ctx = ctx::<K>(client).await;
    let k = K::api(client.clone(), ns.unwrap_or_default()).get(name).await.unwrap();
    env.server.reset_counts();
    reconcile::apply(&k, &ctx).await.expect("the reconcile succeeds");
    env.server
        .recent_requests()
        .into_iter()
        .map(|r| {
            let sub = if r.subresource.is_empty() { String::new() } else { format!("/{}", r.subresource) };
            format!("{} {}{sub} {}/{} {}", r.verb, r.resource, r.namespace, r.name, r.code)
        })
        .collect()
}

fn assert_calls(seen: &[String], expected: &[&str]) {
    assert_eq!(seen, expected, "\nthe requests were:\n{}", seen.join("\n"));
}

const PAYMENTS: &str = "apiVersion: encstr.io/v1alpha1\nkind: ClusterSecretKeyring\nmetadata: {name: payments}\nspec:\n  targets: {namespaces: [team-a]}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_distribute_then_a_rotation_step() {
    let env = Env::start("calls-create");
    kubectl(&env, &["apply", "--server-side", "-f", crd_path().to_str().unwrap()]);
    for ns in [OPERATOR_NS, "team-a"] {
        kubectl(&env, &["create", "namespace", ns]);
    }
    apply(&env, PAYMENTS);
    let client = client(&env).await;
    // No master, nothing handed out: the API server (not the cache) is
    // asked for labelled Secrets first, then the master is created and the
    // status written. No copy yet: the next reconcile distributes.
    let calls = reconcile_once::<ClusterSecretKeyring>(&env, &client, None, "payments").await;
    assert_calls(
        &calls,
        &[
            "get secrets encstr/payments 404",
            "list secrets / 200",
            "create secrets encstr/ 201",
            "create events encstr/ 201",
            "patch clustersecretkeyrings/status /payments 200",
        ],
    );
    // The copy: the cache has none, so it is created (no read first);
    // then, the copy holding the primary, the recipient ConfigMap likewise.
    let calls = reconcile_once::<ClusterSecretKeyring>(&env, &client, None, "payments").await;
    assert_calls(
        &calls,
        &[
            "get secrets encstr/payments 200",
            "create secrets team-a/ 201",
            "create configmaps team-a/ 201",
            "patch clustersecretkeyrings/status /payments 200",
        ],
    );
    // Converged: one read of the master, nothing written.
    let calls = reconcile_once::<ClusterSecretKeyring>(&env, &client, None, "payments").await;
    assert_calls(&calls, &["get secrets encstr/payments 200"]);
    // A rotation request: the staged key is written to the master (with
    // the resourceVersion read), announced at once, then the copy is read
    // from the server (the cache keeps only a digest) and replaced.
    kubectl(&env, &["annotate", "clustersecretkeyring", "payments", "encstr.io/rotate=1"]);
    let calls = reconcile_once::<ClusterSecretKeyring>(&env, &client, None, "payments").await;
    assert_calls(
        &calls,
        &[
            "get secrets encstr/payments 200",
            "update secrets encstr/payments 200",
            "create events encstr/ 201",
            "get secrets team-a/payments 200",
            "update secrets team-a/payments 200",
            "patch clustersecretkeyrings/status /payments 200",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_holds_and_a_restore_rebuilds_the_master_from_a_copy() {
    let env = Env::start("calls-guard");
    kubectl(&env, &["apply", "--server-side", "-f", crd_path().to_str().unwrap()]);
    for ns in [OPERATOR_NS, "team-a"] {
        kubectl(&env, &["create", "namespace", ns]);
    }
    apply(&env, PAYMENTS);
    let client = client(&env).await;
    reconcile_once::<ClusterSecretKeyring>(&env, &client, None, "payments").await;
    reconcile_once::<ClusterSecretKeyring>(&env, &client, None, "payments").await;
    kubectl(&env, &["delete", "secret", "payments", "-n", OPERATOR_NS]);
    // MasterMissing: one read, a Warning and the status; nothing else.
    let calls = reconcile_once::<ClusterSecretKeyring>(&env, &client, None, "payments").await;
    assert_calls(
        &calls,
        &[
            "get secrets encstr/payments 404",
            "create events encstr/ 201",
            "patch clustersecretkeyrings/status /payments 200",
        ],
    );
    // Held again: the same Warning is not repeated.
    let calls = reconcile_once::<ClusterSecretKeyring>(&env, &client, None, "payments").await;
    assert_calls(&calls, &["get secrets encstr/payments 404"]);
    kubectl(&env, &["annotate", "clustersecretkeyring", "payments", "encstr.io/restore-from=team-a"]);
    let calls = reconcile_once::<ClusterSecretKeyring>(&env, &client, None, "payments").await;
    assert_calls(
        &calls,
        &[
            "get secrets encstr/payments 404",
            "get secrets team-a/payments 200",
            "create secrets encstr/ 201",
            "create events encstr/ 201",
            "patch clustersecretkeyrings /payments 200",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_key_is_pruned_after_a_scan_of_the_namespace() {
    let env = Env::start("calls-prune");
    kubectl(&env, &["apply", "--server-side", "-f", crd_path().to_str().unwrap()]);
    kubectl(&env, &["create", "namespace", "print"]);
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: agents, namespace: print}\nspec:\n  retention: {maxKeys: 1, minDecryptOnlyAge: 0s}\n",
    );
    // A master put back by hand: two keys, the older decrypt-only.
    let ring = Keyring::new(vec![Key::generate().unwrap(), Key::generate().unwrap()]).unwrap();
    let text = ring.to_text();
    let keyring = format!("--from-literal=keyring={}", text.as_str());
    kubectl(&env, &["create", "secret", "generic", "agents", "-n", "print", &keyring]);
    kubectl(
        &env,
        &["label", "secret", "agents", "-n", "print", "encstr.io/keyring=agents", "encstr.io/role=master"],
    );
    // A Secret in another namespace carrying the keyring's label: anybody
    // can write one, and it makes no namespace part of the keyring's scan.
    kubectl(&env, &["create", "namespace", "other"]);
    kubectl(&env, &["create", "secret", "generic", "agents", "-n", "other", "--from-literal=x=y"]);
    kubectl(&env, &["label", "secret", "agents", "-n", "other", "encstr.io/keyring=agents"]);
    let client = client(&env).await;
    // Retention wants the older key gone. A first count of the namespace
    // is not enough: the same objects must be seen twice, a scan interval
    // apart (the first reconcile records when the key's quiet period
    // began in the master, which is in the namespace: the second sees
    // that change).
    let interval = Duration::from_millis(300);
    let ctx = ctx_with::<SecretKeyring>(&client, interval).await;
    for _ in 0..2 {
        let k = SecretKeyring::api(client.clone(), "print").get("agents").await.unwrap();
        reconcile::apply(&k, &ctx).await.expect("the reconcile succeeds");
        let master = kubectl_json(&env, &["get", "secret", "agents", "-n", "print"]).unwrap();
        assert_eq!(keyring_text(&master).unwrap().lines().count(), 2, "not pruned on one count");
        tokio::time::sleep(interval).await;
    }
    // Then ConfigMaps and Secrets of the namespace (and of no other) are
    // listed (in pages), no token uses it, they are counted again right
    // before the write, it is pruned and announced, the recipient
    // ConfigMap is checked, then the status.
    let k = SecretKeyring::api(client.clone(), "print").get("agents").await.unwrap();
    env.server.reset_counts();
    reconcile::apply(&k, &ctx).await.expect("the reconcile succeeds");
    let calls: Vec<String> = env
        .server
        .recent_requests()
        .into_iter()
        .map(|r| {
            let sub = if r.subresource.is_empty() { String::new() } else { format!("/{}", r.subresource) };
            format!("{} {}{sub} {}/{} {}", r.verb, r.resource, r.namespace, r.name, r.code)
        })
        .collect();
    assert_calls(
        &calls,
        &[
            "get secrets print/agents 200",
            "list configmaps print/ 200",
            "list secrets print/ 200",
            "list configmaps print/ 200",
            "list secrets print/ 200",
            "update secrets print/agents 200",
            "create events print/ 201",
            // This test's caches were filled once, before the earlier
            // reconciles published the recipient: the ConfigMap they wrote
            // is unknown to them, so a create meets it and it is read.
            "create configmaps print/ 409",
            "get configmaps print/agents-recipient 200",
            "patch secretkeyrings/status print/agents 200",
        ],
    );
    let master = kubectl_json(&env, &["get", "secret", "agents", "-n", "print"]).unwrap();
    assert_eq!(keyring_text(&master).unwrap().lines().count(), 1, "one key left");
}

/// Status and one-shot annotation writes are conditional on what was read:
/// a status computed from an older keyring (a deposed leader's, a late
/// retry's) is not written, and an annotation the user changed since it was
/// read is not removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_annotation_writes_do_not_apply_to_a_changed_keyring() {
    let env = Env::start("calls-preconditions");
    kubectl(&env, &["apply", "--server-side", "-f", crd_path().to_str().unwrap()]);
    kubectl(&env, &["create", "namespace", OPERATOR_NS]);
    apply(&env, PAYMENTS);
    kubectl(
        &env,
        &["annotate", "clustersecretkeyring", "payments", "encstr.io/accept-missing-keys=0badc0de"],
    );
    let client = client(&env).await;
    let api = ClusterSecretKeyring::api(client.clone(), "");
    let seen = api.get("payments").await.unwrap();
    // The user changes the keyring after it was read.
    kubectl(
        &env,
        &[
            "annotate",
            "clustersecretkeyring",
            "payments",
            "encstr.io/accept-missing-keys=feedf00d",
            "--overwrite",
        ],
    );
    let stale = KeyringStatus { primary_key_id: Some("0badc0de".into()), ..KeyringStatus::default() };
    writer::status(&client, &seen, &stale).await.expect("a conflict is not an error");
    writer::remove_annotation(&client, &seen, "encstr.io/accept-missing-keys").await.unwrap();
    let now = api.get("payments").await.unwrap();
    assert_eq!(now.status, None, "a status computed from an older keyring was written");
    assert_eq!(
        now.annotations().get("encstr.io/accept-missing-keys").map(String::as_str),
        Some("feedf00d"),
        "a request made after the read was removed unread"
    );
    // Read again, both apply.
    writer::status(&client, &now, &stale).await.unwrap();
    assert!(
        writer::remove_annotation(&client, &now, "encstr.io/accept-missing-keys").await.unwrap().is_some()
    );
    let after = api.get("payments").await.unwrap();
    assert_eq!(after.status.as_ref().and_then(|s| s.primary_key_id.as_deref()), Some("0badc0de"));
    assert!(!after.annotations().contains_key("encstr.io/accept-missing-keys"));
}

/// A SecretKeyring `name` in `ns` keeping one key, whose master (put back
/// by hand) holds two, the older decrypt-only; a token of the older one.
fn keyring_with_an_old_key(env: &Env, ns: &str, name: &str) -> String {
    apply(
        env,
        &format!(
            "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  retention: {{maxKeys: 1, minDecryptOnlyAge: 0s}}\n"
        ),
    );
    let old = Key::generate().unwrap();
    let ring = Keyring::new(vec![old.clone(), Key::generate().unwrap()]).unwrap();
    let keyring = format!("--from-literal=keyring={}", ring.to_text().as_str());
    kubectl(env, &["create", "secret", "generic", name, "-n", ns, &keyring]);
    let label = format!("encstr.io/keyring={name}");
    kubectl(env, &["label", "secret", name, "-n", ns, &label, "encstr.io/role=master"]);
    token::encrypt(&Keyring::new(vec![old]).unwrap(), "x", b"1").unwrap()
}

/// The usage-scan lists among the requests since the last reset.
fn scan_lists(env: &Env) -> Vec<String> {
    env.server
        .recent_requests()
        .into_iter()
        .filter(|r| r.verb == "list" && (r.resource == "configmaps" || r.resource == "secrets"))
        .map(|r| format!("{} {} {}/ {}", r.verb, r.resource, r.namespace, r.code))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyrings_reaching_one_namespace_share_one_scan_per_interval() {
    let env = Env::start("calls-shared-scan");
    kubectl(&env, &["apply", "--server-side", "-f", crd_path().to_str().unwrap()]);
    kubectl(&env, &["create", "namespace", "print"]);
    let names = ["a1", "a2", "a3", "a4"];
    // Every keyring's older key is still used: each is blocked, and each
    // wants a count of the namespace.
    let tokens: Vec<String> = names.iter().map(|n| keyring_with_an_old_key(&env, "print", n)).collect();
    let config = format!("--from-literal=config={}", tokens.join("\n"));
    kubectl(&env, &["create", "configmap", "app", "-n", "print", &config]);
    let client = client(&env).await;
    let ctx = ctx::<SecretKeyring>(&client).await;
    env.server.reset_counts();
    for name in names {
        let k = SecretKeyring::api(client.clone(), "print").get(name).await.unwrap();
        reconcile::apply(&k, &ctx).await.expect("the reconcile succeeds");
    }
    // One scan of the namespace for four keyrings, not four.
    assert_eq!(scan_lists(&env), ["list configmaps print/ 200", "list secrets print/ 200"]);
    for name in names {
        let master = kubectl_json(&env, &["get", "secret", name, "-n", "print"]).unwrap();
        assert_eq!(keyring_text(&master).unwrap().lines().count(), 2, "{name}: the used key is kept");
    }
    // Within the interval, the next round of reconciles scans nothing.
    env.server.reset_counts();
    for name in names {
        let k = SecretKeyring::api(client.clone(), "print").get(name).await.unwrap();
        reconcile::apply(&k, &ctx).await.expect("the reconcile succeeds");
    }
    assert_eq!(scan_lists(&env), Vec::<String>::new());
}
