//! The load step of a pass on the benchmark cluster (10,000 pods, 2,000 policies, 500
//! namespaces), made from the last load's state and the changed objects, and built from every
//! object (`Loader::incremental(false)`), for both sources:
//! - a manifests folder (`palisade gen`'s files; 10,000 pods from 2,243 workload templates): one
//!   Deployment's template relabelled, and back;
//! - an API server's store (12,500 objects, each pod a Pod object): one pod relabelled.
//!
//! Medians of 20 loads. No root needed. Run: `cargo bench -p palisade-agent --bench load`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use palisade_model::{ClusterState, DocumentCache, Kind, Load, Loader, ObjectEvent, ObjectStore};
use palisade_synth::{generate, SynthConfig};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

const ROUNDS: usize = 20;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Loads `ROUNDS` times after `edit(round)`, each load from the last one's cache; the median
/// time and whether the last load was made from the changes.
fn measure(
    mut edit: impl FnMut(usize),
    mut load: impl FnMut(DocumentCache) -> Load,
) -> (f64, bool) {
    let mut cache = load(DocumentCache::default()).cache;
    let mut samples = Vec::new();
    let mut patched = false;
    for round in 0..ROUNDS {
        edit(round);
        let t = Instant::now();
        let done = load(cache);
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        patched = done.patched.is_some();
        cache = done.cache;
    }
    (median(samples), patched)
}

fn folder(dir: &Path, incremental: bool) -> (f64, bool) {
    let file = dir.join("workloads-0001.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    let mut docs: Vec<String> = original.split("---\n").map(str::to_string).collect();
    let api = (docs.iter())
        .position(|d| d.contains("kind: Deployment") && d.contains("tier: api"))
        .expect("an api Deployment");
    docs[api] = docs[api].replace("tier: api", "tier: api-v2");
    let edited = docs.join("---\n");
    let edit = |round: usize| {
        let text = if round.is_multiple_of(2) {
            &edited
        } else {
            &original
        };
        std::fs::write(&file, text).unwrap();
    };
    let load = |cache| {
        let mut loader = Loader::new().with_documents(cache).incremental(incremental);
        loader.load_path(dir);
        loader.finish_with_cache()
    };
    let measured = measure(edit, load);
    std::fs::write(&file, &original).unwrap();
    measured
}

/// `state`'s namespaces, pods (with their addresses) and policies as an API server's store.
fn store_of(state: &ClusterState) -> ObjectStore {
    let mut store = ObjectStore::new("http://bench", usize::MAX);
    let namespaces = (state.namespaces.iter())
        .map(|n| json!({"metadata": {"name": n.name, "labels": n.labels, "resourceVersion": "1"}}))
        .collect();
    store.apply(ObjectEvent::Listed(Kind::Namespace, namespaces));
    let pods = state.pods.iter().map(|p| pod_object(p, 1, "api")).collect();
    store.apply(ObjectEvent::Listed(Kind::Pod, pods));
    let policies = (state.policies.iter())
        .map(|p| {
            let mut value = serde_json::to_value(p.policy.object()).unwrap();
            value["metadata"]["resourceVersion"] = "1".into();
            value
        })
        .collect();
    store.apply(ObjectEvent::Listed(Kind::NetworkPolicy, policies));
    store
}

/// `pod` as the API server gives it, at `version`, its `tier` label `tier`.
fn pod_object(pod: &palisade_model::PodInfo, version: usize, tier: &str) -> Value {
    let mut labels = pod.labels.clone();
    if labels.contains_key("tier") {
        labels.insert("tier".into(), tier.into());
    }
    json!({
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": labels,
                     "resourceVersion": version.to_string()},
        "spec": {"nodeName": "bench", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running", "podIP": pod.ip.map(|ip| ip.to_string())},
    })
}

fn store(state: &ClusterState, incremental: bool) -> (f64, bool) {
    let mut store = store_of(state);
    let pod = (state.pods.iter())
        .find(|p| p.labels.get("tier").map(String::as_str) == Some("api"))
        .expect("an api pod")
        .clone();
    let store = std::cell::RefCell::new(&mut store);
    let edit = |round: usize| {
        let tier = if round.is_multiple_of(2) {
            "api-v2"
        } else {
            "api"
        };
        let event = ObjectEvent::Applied(Kind::Pod, pod_object(&pod, 100 + round, tier));
        store.borrow_mut().apply(event);
    };
    let load = |cache| {
        (Loader::new().with_documents(cache))
            .allocate_addresses(false)
            .incremental(incremental)
            .finish_with_store(&store.borrow())
    };
    measure(edit, load)
}

fn main() {
    let cluster = generate(&SynthConfig::BENCHMARK);
    let dir = tempfile::tempdir().unwrap();
    cluster.write_to(dir.path()).unwrap();
    let mut loader = Loader::new();
    loader.load_path(dir.path());
    let (state, _) = loader.finish();
    println!(
        "load step, {} pods, {} policies, {} namespaces (median of {ROUNDS}):",
        state.pods.len(),
        state.policies.len(),
        state.namespaces.len()
    );
    for incremental in [true, false] {
        let how = if incremental {
            "from the changes"
        } else {
            "from every object"
        };
        let (ms, patched) = folder(dir.path(), incremental);
        println!(
            "  folder, a Deployment relabelled, {how:<18} {ms:6.2} ms (state patched: {patched})"
        );
        let (ms, patched) = store(&state, incremental);
        println!(
            "  store, a pod relabelled, {how:<18}       {ms:6.2} ms (state patched: {patched})"
        );
    }
}
