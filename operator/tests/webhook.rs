//! The sidecar injection webhook end to end: the chart's
//! MutatingWebhookConfiguration, Service and RBAC on the tests/ API server
//! (which calls webhooks as kube-apiserver does), the real operator serving
//! it, kubectl creating pods, the library chart rendered by the real helm
//! for comparison, kubernetes-validate on the result, and the real `encstr`
//! running the injected sidecar's command over the pod's files.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use encstr_tests::apiserver::{Delay, Matcher};
use encstr_tests::harness::Env;
use encstr_tests::webhook::{TestWebhook, patch};
use serde_json::{Value, json};

const SVC: &str = "encstr-webhook";
const TLS_SECRET: &str = "encstr-webhook-tls";
const MWC: &str = "encstr";
const APPS: &str = "apps";

/// The webhook flags the chart gives the operator (all but the listen address).
fn chart_webhook_args(env: &Env) -> Vec<String> {
    let deployment = chart_objects(env, &["webhook.enabled=true"], &["Deployment"]).remove(0);
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|a| {
            (a.starts_with("--webhook-") || a.starts_with("--sidecar-")) && !a.starts_with("--webhook-listen")
        })
        .map(str::to_owned)
        .collect()
}

/// Start a replica serving the webhook on `port` of 127.0.0.1.
fn start_replica(env: &mut Env, install: &Install, label: &str, port: u16) {
    let mut args = vec![format!("--webhook-listen=127.0.0.1:{port}"), "--webhook-ca-grace=2s".to_owned()];
    args.extend(chart_webhook_args(env));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    start_operator(env, install, label, &refs);
}

/// Point the webhook's Service at a replica.
fn route_to(env: &Env, port: u16) {
    env.server.set_service_endpoint(&format!("{OPERATOR_NS}/{SVC}=127.0.0.1:{port}")).unwrap();
}

fn ca_bundle(env: &Env) -> Option<String> {
    let mwc = kubectl_json(env, &["get", "mutatingwebhookconfiguration", MWC])?;
    let b = mwc["webhooks"][0]["clientConfig"]["caBundle"].as_str()?;
    let pem = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
    Some(String::from_utf8(pem).ok()?).filter(|p| p.contains("BEGIN CERTIFICATE"))
}

fn tls_secret(env: &Env) -> Option<(String, String)> {
    let s = kubectl_json(env, &["get", "secret", TLS_SECRET, "-n", OPERATOR_NS])?;
    Some((secret_text(&s, "tls.crt")?, secret_text(&s, "ca.crt")?))
}

/// An install with the webhook: the chart's RBAC, Service and
/// MutatingWebhookConfiguration, one replica serving, the caBundle written,
/// and the `apps` namespace.
fn setup(test: &str) -> (Env, Install, u16) {
    let mut env = Env::start(test);
    let install = install(&env, &["webhook.enabled=true"]);
    let objects =
        chart_objects(&env, &["webhook.enabled=true"], &["Service", "MutatingWebhookConfiguration"]);
    let yaml: Vec<String> = objects.iter().map(|o| serde_saphyr::to_string(o).unwrap()).collect();
    kubectl(&env, &["apply", "--server-side", "-f", write(&env, &yaml.join("---\n")).to_str().unwrap()]);
    let port = free_port();
    route_to(&env, port);
    start_replica(&mut env, &install, "operator", port);
    wait(20, "the caBundle", || ca_bundle(&env));
    kubectl(&env, &["create", "namespace", APPS]);
    (env, install, port)
}

/// `kubectl create -f` of a pod: the stored object, or kubectl's error.
fn create_pod(env: &Env, yaml: &str) -> Result<Value, String> {
    let file = write(env, yaml);
    let out =
        env.command("kubectl").args(["create", "-n", APPS, "-o", "json", "-f"]).arg(&file).output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A pod asking for injection with these `encstr.io/` annotations.
fn labelled_pod(name: &str, annotations: &[(&str, &str)], containers: &[&str]) -> String {
    let mut a = serde_json::Map::new();
    for (k, v) in annotations {
        a.insert(format!("encstr.io/{k}"), json!(v));
    }
    let containers: Vec<Value> = containers.iter().map(|c| json!({"name": c, "image": "app:1"})).collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": {"encstr.io/inject": "true"}, "annotations": a},
           "spec": {"securityContext": {"fsGroup": 65532}, "containers": containers}})
    .to_string()
}

/// A tiny app chart on the library chart, rendering one Pod with
/// `containers` (those in `mountIn` get the app mount).
fn app_chart(env: &Env) -> std::path::PathBuf {
    let dir = env.dir.join("app-chart");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let library = root().join("charts/encstr-sidecar");
    std::fs::write(
        dir.join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: encstr-sidecar\n    version: 0.1.0\n    repository: file://{}\n",
            library.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/pod.yaml"),
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {{ .Values.name }}
spec:
  {{- with include "encstr-sidecar.podSpec" .Values.encstr }}
  {{- . | nindent 2 }}
  {{- end }}
  initContainers:
    {{- include "encstr-sidecar.container" .Values.encstr | nindent 4 }}
  containers:
    {{- range .Values.containers }}
    - name: {{ . }}
      image: app:1
      {{- if has . $.Values.mountIn }}
      volumeMounts:
        {{- include "encstr-sidecar.appVolumeMount" $.Values.encstr | nindent 8 }}
      {{- end }}
    {{- end }}
  volumes:
    {{- include "encstr-sidecar.volumes" .Values.encstr | nindent 4 }}
"#,
    )
    .unwrap();
    run(env, &helm(), &["dependency", "build", dir.to_str().unwrap()]);
    dir
}

fn spec_part(pod: &Value) -> Value {
    let spec = &pod["spec"];
    json!({
        "initContainers": spec["initContainers"],
        "containers": spec["containers"],
        "volumes": spec["volumes"],
        "shareProcessNamespace": spec["shareProcessNamespace"],
    })
}

/// Field by field: the paths where two values differ.
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                differences(
                    &x.get(k).cloned().unwrap_or(Value::Null),
                    &y.get(k).cloned().unwrap_or(Value::Null),
                    &format!("{at}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{at}: chart {a} / webhook {b}")),
        _ => {}
    }
}

fn kubernetes_validate(env: &Env, obj: &Value) {
    let mut obj = obj.clone();
    obj.as_object_mut().unwrap().remove("status");
    let file = env.dir.join(format!("validate-{}.json", rand()));
    std::fs::write(&file, obj.to_string()).unwrap();
    let out = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", "1.32.0"])
        .arg(&file)
        .output()
        .expect("kubernetes-validate (pip install kubernetes-validate)");
    assert!(
        out.status.success(),
        "kubernetes-validate --strict: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run the injected sidecar's command as kubelet would, over the pod's
/// volumes laid out as files; the rendered file.
fn run_sidecar(env: &Env, pod: &Value, config: &str, keyring: &str) -> String {
    let c = &pod["spec"]["initContainers"][0];
    let mounts = c["volumeMounts"].as_array().unwrap();
    let dir = env.dir.join(format!("kubelet-{}", rand()));
    let mount_of = |volume: &str| -> String {
        mounts.iter().find(|m| m["name"] == volume).unwrap()["mountPath"].as_str().unwrap().to_owned()
    };
    let host = |path: &str| dir.join(path.trim_start_matches('/'));
    let config_dir = host(&mount_of("encstr-config"));
    let keyring_dir = host(&mount_of("encstr-keyring"));
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::create_dir_all(&keyring_dir).unwrap();
    std::fs::create_dir_all(host(&mount_of("encstr-secrets"))).unwrap();
    std::fs::write(config_dir.join("app.properties"), config).unwrap();
    std::fs::write(keyring_dir.join("keyring"), keyring).unwrap();
    // defaultMode 0400, as kubelet projects the Secret.
    let mode = pod["spec"]["volumes"][1]["secret"]["defaultMode"].as_u64().unwrap() as u32;
    std::fs::set_permissions(keyring_dir.join("keyring"), std::os::unix::fs::PermissionsExt::from_mode(mode))
        .unwrap();
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            match a.split_once('=') {
                Some((flag, path))
                    if path.starts_with('/') && ["--source", "--target", "--keyring"].contains(&flag) =>
                {
                    format!("{flag}={}", host(path).display())
                }
                _ => a.to_owned(),
            }
        })
        .collect();
    let out = std::process::Command::new(encstr())
        .args(&args)
        .arg("--termination-log")
        .arg(dir.join("termination-log"))
        .output()
        .unwrap();
    assert!(out.status.success(), "encstr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(host(&mount_of("encstr-secrets")).join("app.properties")).unwrap()
}

type Case = (&'static str, Vec<(&'static str, &'static str)>, Value, &'static [&'static str]);

#[test]
fn injected_pods_are_the_library_charts_pods_and_their_sidecar_renders_the_config() {
    let (env, _install, _port) = setup("inject");
    let chart = app_chart(&env);
    // The app's keyring (a SecretKeyring in the namespace) and a config file sealed with it.
    apply(
        &env,
        "apiVersion: encstr.io/v1alpha1\nkind: SecretKeyring\nmetadata: {name: payments, namespace: apps}\nspec: {}\n",
    );
    let keyring = wait(20, "the keyring Secret", || keyring_secret(&env, APPS, "payments")).0;
    let token = encrypt_with(&env, keyring.lines().last().unwrap(), "agent.db.password", "s3cret-pw");
    let config = format!("db.user = agent\ndb.password = {token}\n");

    // (case, the pod's annotations, the library chart's values, containers it mounts in)
    let cases: [Case; 3] = [
        (
            "native",
            vec![
                ("keyring-secret", "payments"),
                ("config-map", "agent-config"),
                ("target-path", "/etc/agent/secrets"),
                ("name-prefix", "agent."),
                ("deny-plaintext", "true"),
                ("notify-signal", "HUP"),
                ("notify-process", "agent"),
                ("notify-debounce", "3s"),
                ("resources", r#"{"limits":{"memory":"48Mi"}}"#),
            ],
            json!({"keyringSecret": "payments", "configMap": "agent-config", "targetPath": "/etc/agent/secrets",
                   "namePrefix": "agent.", "denyPlaintext": true,
                   "notify": {"signal": "HUP", "process": "agent", "debounce": "3s"},
                   "resources": {"limits": {"memory": "48Mi"}}}),
            &["app", "web"],
        ),
        (
            "classic",
            vec![
                ("keyring-secret", "payments"),
                ("config-map", "agent-config"),
                ("mode", "classic"),
                ("containers", "app"),
                ("name-prefix", "agent."),
            ],
            json!({"keyringSecret": "payments", "configMap": "agent-config", "mode": "classic",
                   "targetPath": "/run/secrets/encstr", "namePrefix": "agent."}),
            &["app"],
        ),
        (
            "url",
            vec![
                ("keyring-secret", "payments"),
                ("config-map", "agent-config"),
                ("notify-url", "http://127.0.0.1:8080/-/reload"),
            ],
            json!({"keyringSecret": "payments", "configMap": "agent-config", "targetPath": "/run/secrets/encstr",
                   "notify": {"url": "http://127.0.0.1:8080/-/reload"}}),
            &["app", "web"],
        ),
    ];
    for (case, annotations, values, mount_in) in cases {
        let injected =
            create_pod(&env, &labelled_pod(&format!("injected-{case}"), &annotations, &["app", "web"]))
                .unwrap_or_else(|e| panic!("{case}: {e}"));
        // The library chart's pod for the same settings, through kubectl too
        // (unlabelled: the webhook never sees it).
        let chart_values = json!({"name": format!("chart-{case}"), "containers": ["app", "web"], "mountIn": mount_in, "encstr": values});
        let rendered = run(
            &env,
            &helm(),
            &[
                "template",
                "t",
                chart.to_str().unwrap(),
                "--set-json",
                &format!("name={}", chart_values["name"]),
                "--set-json",
                &format!("containers={}", chart_values["containers"]),
                "--set-json",
                &format!("mountIn={}", chart_values["mountIn"]),
                "--set-json",
                &format!("encstr={}", chart_values["encstr"]),
            ],
        );
        let from_chart = create_pod(&env, &rendered).unwrap_or_else(|e| panic!("{case}: {e}"));
        let mut diff = Vec::new();
        differences(&spec_part(&from_chart), &spec_part(&injected), "spec", &mut diff);
        assert!(
            diff.is_empty(),
            "{case}: the injected pod differs from the library chart's:\n{}",
            diff.join("\n")
        );
        let init = injected["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(init.len(), 1, "{case}");
        assert_eq!(init[0]["restartPolicy"].as_str() == Some("Always"), case != "classic", "{case}");
        kubernetes_validate(&env, &injected);
        let stored = kubectl_json(&env, &["get", "pod", &format!("injected-{case}"), "-n", APPS]).unwrap();
        assert_eq!(spec_part(&stored), spec_part(&injected), "kubectl get shows what was created");
        if case == "classic" {
            let rendered = run_sidecar(&env, &injected, &config, &keyring);
            assert_eq!(rendered, "db.user = agent\ndb.password = s3cret-pw\n");
        }
    }
    // The documented example (deploy/examples/app-injected.yaml), as its
    // Deployment's ReplicaSet would create the pod.
    let text = std::fs::read_to_string(root().join("deploy/examples/app-injected.yaml")).unwrap();
    let example: Value = serde_saphyr::from_str(&text).unwrap();
    let t = &example["spec"]["template"];
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "example", "labels": t["metadata"]["labels"], "annotations": t["metadata"]["annotations"]},
        "spec": t["spec"]});
    let created = create_pod(&env, &pod.to_string()).unwrap();
    let sidecar = &created["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "encstr");
    assert!(
        sidecar["args"].as_array().unwrap().contains(&json!("--notify-url=http://127.0.0.1:8080/-/reload"))
    );
    assert_eq!(
        created["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "encstr-secrets", "mountPath": "/run/secrets/app", "readOnly": true}])
    );
    kubernetes_validate(&env, &created);
    // Unlabelled pods are never changed.
    let plain = create_pod(&env, &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "annotations": {"encstr.io/keyring-secret": "payments", "encstr.io/config-map": "agent-config"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}).to_string()).unwrap();
    assert!(plain["spec"].get("initContainers").is_none() && plain["spec"].get("volumes").is_none());
    assert_no_forbidden(&env);
}

fn metric(env: &Env, label: &str, result: &str) -> u64 {
    let text = scrape(&metrics_addr(env, label)).unwrap_or_default();
    let line = format!("encstr_webhook_requests_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn misconfigured_pods_are_denied_and_reinvocation_does_not_inject_twice() {
    let (env, _install, _port) = setup("deny");
    let base = [("keyring-secret", "payments"), ("config-map", "agent-config")];
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("config-map", "agent-config")], "annotation encstr.io/keyring-secret is required"),
        (
            &[("keyring-secret", "payments"), ("config-map", "c"), ("mode", "sidecar")],
            "annotation encstr.io/mode: \"sidecar\" is not native or classic",
        ),
        (
            &[("keyring-secret", "payments"), ("config-map", "c"), ("containers", "app,worker")],
            "annotation encstr.io/containers: the pod has no container \"worker\" (it has: app)",
        ),
        (
            &[
                ("keyring-secret", "payments"),
                ("config-map", "c"),
                ("resources", "{\"limits\":{\"memory\":\"lots\"}}"),
            ],
            "annotation encstr.io/resources: limits.memory: \"lots\" is not a quantity",
        ),
    ];
    for (i, (annotations, message)) in cases.iter().enumerate() {
        let err = create_pod(&env, &labelled_pod(&format!("bad-{i}"), annotations, &["app"])).unwrap_err();
        assert!(err.contains("Error from server (Forbidden): error when creating"), "{err}");
        assert!(
            err.contains(&format!(
                "admission webhook \"inject.encstr.io\" denied the request: encstr: {message}"
            )),
            "{err}"
        );
        assert!(kubectl_json(&env, &["get", "pod", &format!("bad-{i}"), "-n", APPS]).is_none());
    }
    assert_eq!(metric(&env, "operator", "denied"), 4);

    // Another webhook after ours changes the pod: ours is called again
    // (reinvocationPolicy: IfNeeded) and leaves it as it is.
    let later = TestWebhook::start(
        "relabel.hooks.svc",
        Duration::ZERO,
        Arc::new(|req: &Value| {
            if req["object"]["metadata"]["labels"]["relabelled"].is_string() {
                json!({"allowed": true})
            } else {
                patch(json!([{"op": "add", "path": "/metadata/labels/relabelled", "value": "yes"}]))
            }
        }),
    );
    env.server.set_service_endpoint(&format!("hooks/relabel=127.0.0.1:{}", later.addr.port())).unwrap();
    let config = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "zz-relabel"},
        "webhooks": [{"name": "relabel.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": "hooks", "name": "relabel", "path": "/"},
                             "caBundle": base64::engine::general_purpose::STANDARD.encode(&later.ca_pem)},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "reinvocationPolicy": "IfNeeded"}]});
    apply(&env, &config.to_string());
    let pod = create_pod(&env, &labelled_pod("twice", &base, &["app"])).unwrap();
    assert_eq!(pod["metadata"]["labels"]["relabelled"], "yes");
    let init: Vec<&str> =
        pod["spec"]["initContainers"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(init, ["encstr"]);
    assert_eq!(pod["spec"]["volumes"].as_array().unwrap().len(), 3);
    assert_eq!(pod["spec"]["containers"][0]["volumeMounts"].as_array().unwrap().len(), 1);
    // The relabelling webhook saw the injected pod, so it ran after ours.
    assert_eq!(later.reviews()[0]["request"]["object"]["spec"]["initContainers"][0]["name"], "encstr");
    assert_eq!((metric(&env, "operator", "injected"), metric(&env, "operator", "skipped")), (1, 1));
    let text = scrape(&metrics_addr(&env, "operator")).unwrap();
    assert!(text.contains("encstr_webhook_request_duration_seconds_count 6"), "{text}");
}

#[test]
fn with_the_operator_down_labelled_pods_are_refused_and_others_are_not() {
    let (mut env, _install, _port) = setup("down");
    let pod = labelled_pod("p", &[("keyring-secret", "payments"), ("config-map", "agent-config")], &["app"]);
    create_pod(&env, &pod).expect("served while the operator runs");
    env.kill("operator");
    let err = create_pod(&env, &pod.replace("\"p\"", "\"q\"")).unwrap_err();
    assert!(
        err.contains("Internal error occurred: failed calling webhook \"inject.encstr.io\": failed to call webhook: Post \"https://encstr-webhook.encstr.svc:443/inject?timeout=5s\""),
        "{err}"
    );
    assert!(kubectl_json(&env, &["get", "pod", "q", "-n", APPS]).is_none());
    create_pod(
        &env,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unlabelled"}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}).to_string(),
    )
    .expect("pods without the label do not need the webhook");
}

/// The certificate a replica serves, fetched with a TLS handshake that
/// verifies it against `ca_pem` for the Service's name.
fn served_certificate(port: u16, ca_pem: &str) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cas = encstr_tests::apiserver::auth::certs_from_pem(ca_pem);
        let config = encstr_tests::apiserver::auth::client_config_for(&cas);
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from(format!("{SVC}.{OPERATOR_NS}.svc")).unwrap();
        let tls =
            tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| e.to_string())?;
        Ok(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec())
    })
}

fn der_of(pem: &str) -> Vec<u8> {
    encstr_tests::apiserver::auth::certs_from_pem(pem)[0].to_vec()
}

#[test]
fn every_replica_serves_renewals_are_picked_up_live_and_a_wrong_ca_bundle_is_refused() {
    let (mut env, install, port) = setup("cert");
    let pod = |name: &str| {
        labelled_pod(name, &[("keyring-secret", "payments"), ("config-map", "agent-config")], &["app"])
    };
    let (cert, ca) = tls_secret(&env).unwrap();
    assert_eq!(ca_bundle(&env).unwrap(), ca, "the caBundle is the Secret's CA");
    assert_eq!(wait(10, "the certificate served", || served_certificate(port, &ca).ok()), der_of(&cert));

    // A standby replica serves too (the leader keeps the keyrings, every
    // replica answers admission requests).
    let standby = free_port();
    start_replica(&mut env, &install, "standby", standby);
    wait(20, "the standby to serve", || served_certificate(standby, &ca).ok());
    assert_eq!(is_leader(&metrics_addr(&env, "standby")), Some(false));
    route_to(&env, standby);
    create_pod(&env, &pod("via-standby")).expect("the standby injects");

    // A forced renewal: both replicas serve the new certificate without a
    // restart; the CA (and caBundle) stay.
    kubectl(&env, &["annotate", "secret", TLS_SECRET, "-n", OPERATOR_NS, "encstr.io/renew-certificate=now"]);
    let (renewed, same_ca) =
        wait(20, "a renewed certificate", || tls_secret(&env).filter(|(c, _)| *c != cert));
    assert_eq!(same_ca, ca);
    let s = kubectl_json(&env, &["get", "secret", TLS_SECRET, "-n", OPERATOR_NS]).unwrap();
    assert!(s["metadata"]["annotations"]["encstr.io/renew-certificate"].is_null(), "the request is consumed");
    for p in [port, standby] {
        wait(20, "the renewed certificate served", || {
            served_certificate(p, &ca).ok().filter(|d| *d == der_of(&renewed))
        });
    }
    create_pod(&env, &pod("after-renewal")).expect("injects with the renewed certificate");

    // A new CA (the Secret deleted): it joins the old one in the caBundle
    // before any replica serves a certificate of it, so pods are admitted
    // throughout the roll (the bundle's writes are slowed to widen the
    // window in which a replica serving the new CA too early is refused).
    env.server.delay(Delay {
        matcher: Matcher {
            verb: Some("update".into()),
            resource: Some("mutatingwebhookconfigurations".into()),
            ..Matcher::default()
        },
        ms: 1500,
    });
    kubectl(&env, &["delete", "secret", TLS_SECRET, "-n", OPERATOR_NS]);
    let started = std::time::Instant::now();
    let (mut fresh, mut new_ca) = (String::new(), String::new());
    for n in 0.. {
        create_pod(&env, &pod(&format!("during-roll-{n}"))).expect("admitted during the CA roll");
        if let Some((c, a)) = tls_secret(&env).filter(|(_, a)| *a != ca) {
            (fresh, new_ca) = (c, a);
        }
        let switched = !new_ca.is_empty()
            && [port, standby].iter().all(|p| served_certificate(*p, &new_ca).ok() == Some(der_of(&fresh)));
        if switched {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the replicas did not switch to the new CA");
    }
    env.server.clear_faults();
    assert_eq!(ca_bundle(&env).unwrap(), format!("{new_ca}{ca}"), "the new CA, then the old one");
    create_pod(&env, &pod("after-new-ca")).expect("injects with the new CA");

    // A caBundle of another CA: the API server refuses to call the webhook.
    // (A replica that keeps the bundle puts it back at once, so only one
    // that leaves it to cert-manager serves meanwhile.)
    env.kill("operator");
    env.kill("standby");
    let read_only = free_port();
    let mut args =
        vec![format!("--webhook-listen=127.0.0.1:{read_only}"), "--webhook-cert-manager".to_owned()];
    args.extend(chart_webhook_args(&env));
    start_operator(&mut env, &install, "read-only", &args.iter().map(String::as_str).collect::<Vec<_>>());
    wait(20, "the read-only replica to serve", || served_certificate(read_only, &new_ca).ok());
    route_to(&env, read_only);
    let mut mwc = kubectl_json(&env, &["get", "mutatingwebhookconfiguration", MWC]).unwrap();
    mwc["webhooks"][0]["clientConfig"]["caBundle"] =
        json!(base64::engine::general_purpose::STANDARD.encode(&ca));
    let file = write(&env, &mwc.to_string());
    kubectl(&env, &["replace", "-f", file.to_str().unwrap()]);
    let err = create_pod(&env, &pod("wrong-ca")).unwrap_err();
    assert!(
        err.contains("failed calling webhook \"inject.encstr.io\"")
            && err.contains("tls: failed to verify certificate"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ca_bundle(&env).unwrap(), ca, "with cert-manager the operator leaves the caBundle alone");
    // A replica that manages the certificate repairs the bundle as it starts,
    // and at once when it is changed again.
    start_replica(&mut env, &install, "repair", free_port());
    let both = format!("{new_ca}{ca}");
    wait(20, "the caBundle repaired", || ca_bundle(&env).filter(|b| *b == both));
    create_pod(&env, &pod("repaired")).expect("injects once the caBundle is right");
    let wrong = json!([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle",
                        "value": base64::engine::general_purpose::STANDARD.encode(&ca)}]);
    kubectl(&env, &["patch", "mutatingwebhookconfiguration", MWC, "--type=json", "-p", &wrong.to_string()]);
    wait(5, "the caBundle repaired again", || ca_bundle(&env).filter(|b| *b == both));
    // The webhook's RBAC is all used (and enough).
    assert_no_forbidden(&env);
    let grants = granted(&env, &["webhook.enabled=true"], Some("encstr-webhook"));
    assert_eq!(grants.len(), 9, "{grants:?}");
    let used = used(&env);
    let unused: Vec<_> = grants.difference(&used).collect();
    assert!(unused.is_empty(), "the webhook's roles grant what it never used: {unused:?}");
}

/// A Secret of the webhook's name that the operator did not write (here an
/// Opaque one carrying the operator's label) is never replaced: the
/// operator says why and serves nothing until it is removed; then it
/// issues its own.
#[test]
fn a_tls_secret_the_operator_did_not_write_is_not_taken_over() {
    let mut env = Env::start("cert-foreign");
    let install = install(&env, &["webhook.enabled=true"]);
    let objects =
        chart_objects(&env, &["webhook.enabled=true"], &["Service", "MutatingWebhookConfiguration"]);
    let yaml: Vec<String> = objects.iter().map(|o| serde_saphyr::to_string(o).unwrap()).collect();
    kubectl(&env, &["apply", "--server-side", "-f", write(&env, &yaml.join("---\n")).to_str().unwrap()]);
    kubectl(
        &env,
        &["create", "secret", "generic", TLS_SECRET, "-n", OPERATOR_NS, "--from-literal=password=keep-me"],
    );
    kubectl(
        &env,
        &["label", "secret", TLS_SECRET, "-n", OPERATOR_NS, "app.kubernetes.io/managed-by=encstr-operator"],
    );
    let before = kubectl_json(&env, &["get", "secret", TLS_SECRET, "-n", OPERATOR_NS]).unwrap();
    let port = free_port();
    start_replica(&mut env, &install, "operator", port);
    wait(20, "the refusal in the log", || {
        env.log("operator").contains("was not written by encstr-operator").then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let after = kubectl_json(&env, &["get", "secret", TLS_SECRET, "-n", OPERATOR_NS]).unwrap();
    assert_eq!(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"], "replaced");
    assert_eq!(ca_bundle(&env), None, "no caBundle from a certificate the operator did not make");
    kubectl(&env, &["delete", "secret", TLS_SECRET, "-n", OPERATOR_NS]);
    let (cert, ca) = wait(30, "the operator's own certificate", || tls_secret(&env));
    assert_eq!(wait(20, "the caBundle", || ca_bundle(&env)), ca);
    assert_eq!(wait(10, "the certificate served", || served_certificate(port, &ca).ok()), der_of(&cert));
}
