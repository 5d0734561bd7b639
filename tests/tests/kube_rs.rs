//! kube-rs against the test API server: typed `Api` calls, server-side apply
//! of a derived CustomResource with its status, the runtime's watcher and
//! reflector (surviving dropped watches, 410 Gone and watch events that lag
//! behind writes), a small Controller converging despite injected faults,
//! and API errors (422 Invalid, 403 Forbidden for a ServiceAccount's token)
//! as kube-rs surfaces them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use encstr_tests::TestApiServer;
use encstr_tests::apiserver::{Fault, Matcher};
use encstr_tests::harness::eventually;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd"
)]
struct WidgetSpec {
    size: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
struct WidgetStatus {
    ready: bool,
}

async fn client(s: &TestApiServer) -> Client {
    client_from(&s.kubeconfig()).await
}

async fn client_from(kubeconfig: &str) -> Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    c.data = Some(BTreeMap::from([("k".to_string(), name.to_string())]));
    c
}

#[tokio::test]
async fn typed_api_calls_and_custom_resources() {
    let s = TestApiServer::start(0).await.unwrap();
    let c = client(&s).await;
    let ns: Api<Namespace> = Api::all(c.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some("team".into());
    ns.create(&PostParams::default(), &n).await.unwrap();

    let secrets: Api<Secret> = Api::namespaced(c.clone(), "team");
    let mut sec = Secret::default();
    sec.metadata.name = Some("s".into());
    sec.string_data = Some(BTreeMap::from([("k".into(), "v".into())]));
    let created = secrets.create(&PostParams::default(), &sec).await.unwrap();
    assert_eq!(created.data.unwrap()["k"].0, b"v");
    let err = secrets.create(&PostParams::default(), &sec).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err:?}");
    let ssa = PatchParams::apply("encstr-test").force();
    let applied = secrets
        .patch(
            "s",
            &ssa,
            &Patch::Apply(
                serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"labels": {"a": "b"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(applied.labels()["a"], "b");
    let listed = secrets.list(&ListParams::default().labels("a=b")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(secrets.get_opt("missing").await.unwrap().is_none());

    // A derived CRD, applied; then a custom resource and its status.
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    crds.patch("widgets.example.com", &ssa, &Patch::Apply(Widget::crd())).await.unwrap();
    let widgets: Api<Widget> = Api::namespaced(c.clone(), "team");
    let w = Widget::new("w", WidgetSpec { size: 1 });
    let w = widgets.patch("w", &ssa, &Patch::Apply(&w)).await.unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    let status =
        serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {"ready": true}});
    let w = widgets.patch_status("w", &ssa, &Patch::Apply(&status)).await.unwrap();
    assert!(w.status.unwrap().ready);
    assert_eq!(w.metadata.generation, Some(1), "status changes do not bump generation");
    let w = widgets.patch("w", &ssa, &Patch::Apply(Widget::new("w", WidgetSpec { size: 2 }))).await.unwrap();
    assert_eq!((w.metadata.generation, w.status.map(|s| s.ready)), (Some(2), Some(true)));
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    assert!(widgets.get_opt("w").await.unwrap().is_none());
}

#[tokio::test]
async fn watcher_and_reflector_survive_dropped_watches_and_410() {
    let s = TestApiServer::start(0).await.unwrap();
    let c = client(&s).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    api.create(&PostParams::default(), &cm("a", &[("app", "x")])).await.unwrap();
    api.create(&PostParams::default(), &cm("ignored", &[("app", "y")])).await.unwrap();

    let (reader, writer) = reflector::store::<ConfigMap>();
    let cfg = watcher::Config::default().labels("app=x").timeout(5);
    let stream = reflector(writer, watcher(api.clone(), cfg)).default_backoff().applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    let names = |r: &reflector::Store<ConfigMap>| {
        let mut n: Vec<String> = r.state().iter().map(|o| o.name_any()).collect();
        n.sort();
        n
    };
    reader.wait_until_ready().await.unwrap();
    assert_eq!(names(&reader), vec!["a"]);

    api.create(&PostParams::default(), &cm("b", &[("app", "x")])).await.unwrap();
    eventually(10, "b in the store", || async { (names(&reader) == ["a", "b"]).then_some(()) }).await;

    // Dropped watch streams: the watcher re-watches and misses nothing.
    s.close_watches();
    api.create(&PostParams::default(), &cm("c", &[("app", "x")])).await.unwrap();
    eventually(10, "c after a dropped watch", || async { (names(&reader) == ["a", "b", "c"]).then_some(()) })
        .await;

    // History compacted and the watch dropped: the resume gets 410 and relists.
    api.delete("a", &DeleteParams::default()).await.unwrap();
    s.compact();
    s.close_watches();
    api.create(&PostParams::default(), &cm("d", &[("app", "x")])).await.unwrap();
    eventually(15, "state after 410 Gone", || async { (names(&reader) == ["b", "c", "d"]).then_some(()) })
        .await;
    // Relabelled out of the selector: it leaves the store.
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"app": "z"}}})),
    )
    .await
    .unwrap();
    eventually(10, "b relabelled away", || async { (names(&reader) == ["c", "d"]).then_some(()) }).await;
    task.abort();
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(obj: Arc<ConfigMap>, api: Arc<Api<ConfigMap>>) -> Result<Action, ReconcileError> {
    let want = obj.data.as_ref().and_then(|d| d.get("k")).cloned().unwrap_or_default();
    if obj.annotations().get("reconciled") != Some(&want) {
        let patch = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"annotations": {"reconciled": want}}});
        api.patch(&obj.name_any(), &PatchParams::apply("test-controller").force(), &Patch::Apply(patch))
            .await?;
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &ReconcileError, _: Arc<Api<ConfigMap>>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test]
async fn a_controller_converges_despite_faults() {
    let s = TestApiServer::start(0).await.unwrap();
    let c = client(&s).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    for n in ["one", "two", "three"] {
        api.create(&PostParams::default(), &cm(n, &[("managed", "yes")])).await.unwrap();
    }
    // The first two writes fail (500, then 409), and watches get dropped.
    s.fail(Fault::new(Matcher { verb: Some("patch".into()), ..Matcher::default() }, 1, 500));
    s.fail(Fault::new(Matcher { verb: Some("patch".into()), ..Matcher::default() }, 2, 409));
    let ctx = Arc::new(api.clone());
    let controller = Controller::new(api.clone(), watcher::Config::default().labels("managed=yes"))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    let converged = || async {
        let list = api.list(&ListParams::default().labels("managed=yes")).await.ok()?;
        list.items
            .iter()
            .all(|o| o.annotations().get("reconciled") == o.data.as_ref().and_then(|d| d.get("k")))
            .then_some(())
    };
    eventually(15, "convergence", converged).await;
    let codes: Vec<u16> = s.recent_requests().iter().filter(|r| r.verb == "patch").map(|r| r.code).collect();
    assert!(codes.contains(&500) && codes.contains(&409), "the faults were hit: {codes:?}");
    s.close_watches();
    api.patch("two", &PatchParams::default(), &Patch::Merge(serde_json::json!({"data": {"k": "changed"}})))
        .await
        .unwrap();
    eventually(15, "re-convergence after a change", || async {
        let o = api.get("two").await.ok()?;
        (o.annotations().get("reconciled").map(String::as_str) == Some("changed")).then_some(())
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn api_errors_and_lagging_watches_as_kube_rs_sees_them() {
    let s = TestApiServer::start(0).await.unwrap();
    let c = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    // 422 with its causes.
    let long = "v".repeat(64);
    let err = cms.create(&PostParams::default(), &cm("bad", &[("k", &long)])).await.unwrap_err();
    let kube::Error::Api(status) = err else { panic!("{err:?}") };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.contains("must be no more than 63 bytes"), "{}", status.message);
    // A ServiceAccount's token: 403 with the real message.
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(c.clone(), "default");
    let mut sa = k8s_openapi::api::core::v1::ServiceAccount::default();
    sa.metadata.name = Some("reader".into());
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let token = s.service_account_token("default", "reader").unwrap();
    let restricted = client_from(&s.kubeconfig_for("reader", Some(&token))).await;
    let err =
        Api::<Secret>::namespaced(restricted, "default").list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(status) = err else { panic!("{err:?}") };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        r#"secrets is forbidden: User "system:serviceaccount:default:reader" cannot list resource "secrets" in API group "" in the namespace "default""#
    );
    // A reflector whose watch lags its own writes catches up.
    s.set_watch_delay("configmaps", Duration::from_millis(800));
    let (reader, writer) = reflector::store();
    let stream =
        reflector(writer, watcher(cms.clone(), watcher::Config::default().fields("metadata.name=lagging")))
            .applied_objects()
            .boxed();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    cms.create(&PostParams::default(), &cm("lagging", &[])).await.unwrap();
    assert!(cms.get("lagging").await.is_ok(), "reads see the write at once");
    assert!(reader.state().is_empty(), "the cache does not yet");
    eventually(5, "the cache to catch up", || {
        let r = reader.clone();
        async move { (!r.state().is_empty()).then_some(()) }
    })
    .await;
    task.abort();
}
