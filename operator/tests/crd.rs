//! The checked-in CRDs are what `encstr-operator crd` generates (no drift),
//! and they carry the validation the spec asks for.

fn crds() -> Vec<serde_json::Value> {
    let text = include_str!("../../crds/encstr.yaml");
    text.split("\n---\n").skip(1).map(|doc| serde_saphyr::from_str(doc).unwrap()).collect()
}

#[test]
fn checked_in_crds_match_the_generated_ones() {
    assert_eq!(
        encstr_operator::crd::crd_yaml(),
        include_str!("../../crds/encstr.yaml"),
        "crds/encstr.yaml is stale: run `cargo run -p encstr-operator -- crd > crds/encstr.yaml`"
    );
}

#[test]
fn both_kinds_validate_names_durations_and_their_immutable_secret_name() {
    let crds = crds();
    let by_kind = |k: &str| crds.iter().find(|c| c["spec"]["names"]["kind"] == k).unwrap().clone();
    let skr = by_kind("SecretKeyring");
    let cskr = by_kind("ClusterSecretKeyring");
    assert_eq!(
        (skr["spec"]["scope"].as_str(), skr["spec"]["names"]["shortNames"][0].as_str()),
        (Some("Namespaced"), Some("skr"))
    );
    assert_eq!(
        (cskr["spec"]["scope"].as_str(), cskr["spec"]["names"]["shortNames"][0].as_str()),
        (Some("Cluster"), Some("cskr"))
    );
    for (crd, columns) in [
        (&skr, vec!["Primary", "Keys", "Ready", "Age"]),
        (&cskr, vec!["Primary", "Keys", "Targets", "Ready", "Age"]),
    ] {
        let version = &crd["spec"]["versions"][0];
        assert!(version["subresources"]["status"].is_object());
        let root = &version["schema"]["openAPIV3Schema"];
        assert_eq!(root["x-kubernetes-validations"][0]["rule"], "self.metadata.name.size() <= 63");
        let spec = &root["properties"]["spec"];
        assert!(spec["x-kubernetes-validations"][0]["rule"].as_str().unwrap().contains("oldSelf.secretName"));
        let props = &spec["properties"];
        assert!(props["rotation"]["properties"]["every"]["pattern"].as_str().unwrap().contains("ms|s|m|h"));
        assert!(props["retention"]["properties"]["minDecryptOnlyAge"]["pattern"].is_string());
        assert_eq!(props["retention"]["properties"]["maxKeys"]["minimum"].as_f64(), Some(1.0));
        assert_eq!(props["deletionPolicy"]["enum"], serde_json::json!(["Retain", "Delete"]));
        let got: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, columns);
    }
    assert!(
        skr["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            .get("targets")
            .is_none(),
        "a SecretKeyring has no targets"
    );
    let targets = &cskr["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["targets"];
    assert!(targets["properties"]["namespaces"]["items"]["pattern"].is_string());
}

#[test]
fn every_example_keyring_passes_the_operators_own_validation() {
    use encstr_operator::crd::{ClusterSecretKeyring, SecretKeyring};
    use encstr_operator::desired::validate;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.contains("secretkeyring-") || !name.ends_with(".yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let kind: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let result = match kind["kind"].as_str() {
            Some("ClusterSecretKeyring") => {
                validate(&serde_saphyr::from_str::<ClusterSecretKeyring>(&text).unwrap())
            }
            Some("SecretKeyring") => validate(&serde_saphyr::from_str::<SecretKeyring>(&text).unwrap()),
            other => panic!("{name}: kind {other:?}"),
        };
        // Recipients parse, durations are valid, ... as the operator sees them.
        assert!(result.is_ok(), "{name}: {:?}", result.err());
        checked += 1;
    }
    assert!(checked >= 5, "{checked} examples");
}
