//! The checked-in CRD is what `encstr-operator crd` generates (no drift), and
//! it carries the validation the spec asks for.

#[test]
fn checked_in_crd_matches_the_generated_one() {
    let checked_in = include_str!("../../crds/secretkeyring.yaml");
    assert_eq!(
        encstr_operator::crd::crd_yaml(),
        checked_in,
        "crds/secretkeyring.yaml is stale: run `cargo run -p encstr-operator -- crd > crds/secretkeyring.yaml`"
    );
}

#[test]
fn the_schema_validates_durations_namespaces_max_keys_and_deletion_policy() {
    let crd: serde_json::Value =
        serde_saphyr::from_str(include_str!("../../crds/secretkeyring.yaml")).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "skr");
    assert!(version["subresources"]["status"].is_object());
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert!(spec["rotation"]["properties"]["every"]["pattern"].as_str().unwrap().contains("ms|s|m|h"));
    assert!(spec["targets"]["properties"]["namespaces"]["items"]["pattern"].is_string());
    assert_eq!(spec["retention"]["properties"]["maxKeys"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(spec["deletionPolicy"]["enum"], serde_json::json!(["Retain", "Delete"]));
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, vec!["Primary", "Keys", "Targets", "Ready", "Age"]);
}
