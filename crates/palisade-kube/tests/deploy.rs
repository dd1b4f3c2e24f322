//! The manifests in `deploy/` against the code: the NetworkLogging CRD defines the kind the source
//! lists (GKE's group, version, kind, plural and short name `nl`), and the reader's ClusterRole
//! grants exactly the lists the source makes — least privilege, checked.

use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use palisade_kube::KINDS;
use std::collections::BTreeSet;

fn manifest<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/").to_string() + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `(API group, resource)` of a list path (`/api/v1/pods`, `/apis/GROUP/VERSION/RESOURCE`).
fn resource(path: &str) -> (String, String) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", _, resource] => (String::new(), resource.to_string()),
        ["apis", group, _, resource] => (group.to_string(), resource.to_string()),
        _ => panic!("not a list path: {path}"),
    }
}

#[test]
fn the_network_logging_crd_defines_the_kind_listed() {
    let crd: CustomResourceDefinition = manifest("networklogging-crd.yaml");
    let listed = KINDS
        .iter()
        .find(|k| k.kind == palisade_model::Kind::NetworkLogging)
        .unwrap();
    let (group, plural) = resource(listed.path);
    let spec = &crd.spec;
    assert_eq!(spec.group, group);
    assert_eq!(spec.scope, "Cluster");
    assert_eq!(spec.names.kind, "NetworkLogging");
    assert_eq!(spec.names.plural, plural);
    assert_eq!(
        spec.names.short_names.as_deref(),
        Some(&["nl".to_string()][..])
    );
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some(format!("{plural}.{group}").as_str())
    );
    let version = &spec.versions[0];
    assert_eq!(
        format!("{}/{}", spec.group, version.name),
        listed.kind.api_version()
    );
    assert!(version.served && version.storage);
    let schema = serde_json::to_value(&version.schema).unwrap();
    let switches = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["cluster"];
    for action in ["allow", "deny"] {
        let fields = &switches["properties"][action]["properties"];
        assert_eq!(fields["log"]["type"], "boolean", "{action}");
        assert_eq!(fields["delegate"]["type"], "boolean", "{action}");
    }
}

#[test]
fn the_reader_role_grants_exactly_the_lists_made() {
    let role: ClusterRole = manifest("rbac-reader.yaml");
    let mut granted = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        assert_eq!(rule.verbs, ["list"], "list only: {rule:?}");
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                granted.insert((group.clone(), resource.clone()));
            }
        }
    }
    // The kinds read (the nodes among them, which `palisade status` also lists).
    let listed: BTreeSet<(String, String)> = KINDS.iter().map(|k| resource(k.path)).collect();
    assert!(listed.contains(&(String::new(), "nodes".into())));
    assert_eq!(granted, listed);
}
