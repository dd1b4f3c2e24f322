//! Cases the random streams of `incremental.rs` seldom reach, found by review: a load made from the
//! last load's state equals a full load — allocated and pinned addresses when a given address is
//! taken or freed, a pod shadowed by an earlier one of its name, what is loaded besides a store.
//! Each test edits step by step and compares a load made from the changes (`incremental(true)`,
//! chained caches) with a full one (`incremental(false)`).

use palisade_model::{ClusterState, DocumentCache, Load, Loader, PodKey};
use std::net::IpAddr;
use std::path::Path;

fn load_dir(dir: &Path, cache: DocumentCache, incremental: bool, pinned: &[(&str, &str)]) -> Load {
    let mut loader = Loader::new()
        .with_documents(cache)
        .pin_ips(
            pinned
                .iter()
                .map(|(name, ip)| (PodKey::new("default", name), ip.parse().unwrap())),
        )
        .incremental(incremental);
    loader.load_path(dir);
    loader.finish_with_cache()
}

fn pods(s: &ClusterState) -> Vec<(String, Option<IpAddr>, bool)> {
    s.pods
        .iter()
        .map(|p| (p.name.clone(), p.ip, p.ip_allocated))
        .collect()
}

fn ip_of(s: &ClusterState, name: &str) -> IpAddr {
    s.pods[s.pod_id("default", name).unwrap()].ip.unwrap()
}

fn pod(name: &str, extra_spec: &str, status: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\nspec: {{{extra_spec}containers: [{{name: c, image: x}}]}}\n{status}"
    )
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n";

/// Loads each version of `f.yaml` in turn, both ways, and compares every step.
fn steps(pinned: &[(&str, &str)], versions: &[Vec<String>]) {
    let dir = tempfile::tempdir().unwrap();
    let (mut inc, mut full) = (DocumentCache::default(), DocumentCache::default());
    for (step, docs) in versions.iter().enumerate() {
        // A new stamp every step, whatever the clock's granularity.
        // The namespace declared: pods of an implicit namespace always build the state afresh.
        let docs = [vec![NAMESPACE.to_string()], docs.clone()].concat();
        std::fs::write(dir.path().join("f.yaml"), docs.join("---\n")).unwrap();
        let a = load_dir(dir.path(), inc, true, pinned);
        let b = load_dir(dir.path(), full, false, pinned);
        assert_eq!(
            pods(&a.state),
            pods(&b.state),
            "step {step} (patched: {:?})",
            a.patched
        );
        for p in b.state.pods.iter().filter_map(|p| p.ip) {
            assert_eq!(
                a.state.pod_by_ip(p),
                b.state.pod_by_ip(p),
                "step {step}: {p}"
            );
        }
        (inc, full) = (a.cache, b.cache);
    }
}

/// The address pod `a` is given alone.
fn allocated_alone(pinned: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let docs = [NAMESPACE.to_string(), pod("a", "", "")].join("---\n");
    std::fs::write(dir.path().join("f.yaml"), docs).unwrap();
    let load = load_dir(dir.path(), DocumentCache::default(), false, pinned);
    ip_of(&load.state, "a").to_string()
}

/// Pod `b` takes the address `a` would be given (a moves elsewhere); then `b`'s address changes:
/// a full load gives `a` its address back, a load of the changes must too.
#[test]
fn a_given_address_freed_gives_back_the_allocated_one() {
    let x = allocated_alone(&[]);
    let status = |ip: &str| format!("status: {{podIP: {ip}}}\n");
    steps(
        &[],
        &[
            vec![pod("a", "", "")],
            vec![pod("a", "", ""), pod("b", "", &status(&x))],
            vec![pod("a", "", ""), pod("b", "", &status("10.99.0.1"))],
        ],
    );
}

/// The same, with `b` finishing (a finished pod holds no address).
#[test]
fn a_pod_finishing_gives_back_the_allocated_one() {
    let x = allocated_alone(&[]);
    steps(
        &[],
        &[
            vec![
                pod("a", "", ""),
                pod(
                    "b",
                    "",
                    &format!("status: {{podIP: {x}, phase: Running}}\n"),
                ),
            ],
            vec![
                pod("a", "", ""),
                pod(
                    "b",
                    "",
                    &format!("status: {{podIP: {x}, phase: Succeeded}}\n"),
                ),
            ],
        ],
    );
}

/// A hostNetwork pod whose (node) address becomes an allocated pod's: a full load moves the
/// allocated pod (every given address counts as used), a load of the changes must too.
#[test]
fn a_host_network_pod_on_an_allocated_address_moves_it() {
    let x = allocated_alone(&[]);
    let host = |ip: &str| {
        pod(
            "h",
            "hostNetwork: true, ",
            &format!("status: {{podIP: {ip}}}\n"),
        )
    };
    steps(
        &[],
        &[
            vec![pod("a", "", ""), host("10.99.0.2")],
            vec![pod("a", "", ""), host(&x)],
        ],
    );
}

/// The lab's case: `a` is pinned to the address it was created with; a manifest mistake gives `b`
/// that address for a while; once fixed, `a` must be back on its pinned address (else its rules
/// are enforced for an address that is not its own).
#[test]
fn a_pinned_address_comes_back_when_the_mistake_is_fixed() {
    let pinned = [("a", "10.244.3.3")];
    let b = |ip: &str| pod("b", "", &format!("status: {{podIP: {ip}}}\n"));
    steps(
        &pinned,
        &[
            vec![pod("a", "", ""), b("10.99.0.1")],
            vec![pod("a", "", ""), b("10.244.3.3")],
            vec![pod("a", "", ""), b("10.99.0.1")],
        ],
    );
}

/// Two workloads whose templates make a pod of one name (Deployment `d614` and ReplicaSet
/// `d614-xp5hvlm82` both make `d614-xp5hvlm82-lt6hv`; found by brute force, any name collision
/// does): the first one read wins. An edit of the second one's template must not put its pod in
/// place of the winner's.
#[test]
fn a_shadowed_template_pod_does_not_replace_the_winner() {
    let workload = |kind: &str, name: &str, replicas: u32, v: &str| {
        format!(
            "apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}, v: \"{v}\"}}}}\n    spec: {{containers: [{{name: c, image: x}}]}}\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut inc, mut full) = (DocumentCache::default(), DocumentCache::default());
    for (step, v) in ["1", "2"].into_iter().enumerate() {
        let docs = [
            NAMESPACE.to_string(),
            workload("Deployment", "d614", 157, "1"),
            workload("ReplicaSet", "d614-xp5hvlm82", 42, v),
        ];
        std::fs::write(dir.path().join("f.yaml"), docs.join("---\n")).unwrap();
        let a = load_dir(dir.path(), inc, true, &[]);
        let b = load_dir(dir.path(), full, false, &[]);
        let shared = |s: &ClusterState| {
            let p = &s.pods[s.pod_id("default", "d614-xp5hvlm82-lt6hv").unwrap()];
            (p.labels.get("app").cloned(), p.ip)
        };
        assert_eq!(
            shared(&b.state).0.as_deref(),
            Some("d614"),
            "the first one read wins"
        );
        assert_eq!(
            shared(&a.state),
            shared(&b.state),
            "step {step} (patched {:?})",
            a.patched
        );
        assert_eq!(pods(&a.state), pods(&b.state), "step {step}");
        (inc, full) = (a.cache, b.cache);
    }
}

/// A loader given a store it loaded before and then manifest text: a load of the changes must not
/// drop what was loaded besides the store (it does: `finish_with_cache` returns the delta as is).
#[test]
fn what_is_loaded_after_a_store_is_not_dropped() {
    use palisade_model::{Kind, ObjectEvent, ObjectStore};
    use serde_json::json;
    let mut store = ObjectStore::new("https://api", 100);
    let ns = json!({"metadata": {"name": "shop", "resourceVersion": "1"}});
    store.apply(ObjectEvent::Listed(Kind::Namespace, vec![ns]));
    let load = |store: &ObjectStore, cache, text: &str| {
        let mut loader = Loader::new()
            .with_documents(cache)
            .allocate_addresses(false);
        loader.load_store(store);
        if !text.is_empty() {
            loader.load_str("extra.yaml", text);
        }
        loader.finish_with_cache()
    };
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n";
    // Only the store: remembered for the next load.
    let first = load(&store, DocumentCache::default(), "");
    let second = load(&store, first.cache, policy);
    assert_eq!(
        second.state.policies.len(),
        1,
        "the policy given besides the store is in force"
    );
}
