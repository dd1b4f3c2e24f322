//! A label change reaching the kernel through the API-server source, on the benchmark cluster
//! (10,000 pods, 2,000 policies, 500 namespaces): an in-process API server (the kube crate's test
//! server) lists the cluster and streams scripted watch events; the agent's `Reconciler` follows it
//! with a `palisade_kube::Watch` and enforces in a scratch network namespace (as root).
//!
//! Measured per event (a pod relabelled, then back; medians of 10):
//! - event → store: from the server writing the event to the store holding it (HTTP, JSON);
//! - one pass: the store loaded (one object decoded), compiled, patched, applied;
//! - event → kernel: both, the latency the agent adds after a debounce of 10 ms.
//!
//! Run: `cargo bench -p palisade-agent --bench api_source` (root).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../palisade-kube/tests/support/fake_api.rs"]
mod fake_api;

use fake_api::{FakeApi, Reply};
use palisade_agent::{Outcome, Reconciler, Source};
use palisade_kube::{Connection, Watch};
use palisade_model::{ClusterState, Loader, PodInfo};
use palisade_synth::{generate, SynthConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A scratch network namespace, removed when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `pod` as the API server writes it (a list item), at `version`, with `labels`.
fn pod_object(
    pod: &PodInfo,
    version: u64,
    labels: &std::collections::BTreeMap<String, String>,
) -> Value {
    let ports: Vec<Value> = (pod.ports.iter())
        .map(|p| {
            let mut port = json!({"containerPort": p.port, "protocol": p.protocol.as_str()});
            if let Some(name) = &p.name {
                port["name"] = name.as_str().into();
            }
            port
        })
        .collect();
    json!({
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": labels,
                     "resourceVersion": version.to_string()},
        "spec": {"nodeName": "bench", "hostNetwork": pod.host_network,
                 "containers": [{"name": "c", "image": "x", "ports": ports}]},
        "status": {"phase": "Running", "podIP": pod.ip.map(|ip| ip.to_string())},
    })
}

/// The API server's lists of `state`.
fn routes(state: &ClusterState) -> HashMap<String, Reply> {
    let namespaces = (state.namespaces.iter())
        .map(|n| json!({"metadata": {"name": n.name, "labels": n.labels, "resourceVersion": "1"}}))
        .collect();
    let pods = (state.pods.iter())
        .map(|p| pod_object(p, 1, &p.labels))
        .collect();
    let policies = (state.policies.iter())
        .map(|p| {
            let mut value = serde_json::to_value(p.policy.object()).unwrap();
            value["metadata"]["resourceVersion"] = "1".into();
            value
        })
        .collect();
    // Each list in one page: pagination is not what is measured.
    fake_api::cluster(namespaces, pods, policies)
}

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("the API source benchmark needs root (network namespaces, nftables)");
        std::process::exit(2);
    }
    let cluster = generate(&SynthConfig::BENCHMARK);
    let dir = tempfile::tempdir().unwrap();
    cluster.write_to(dir.path()).unwrap();
    let mut loader = Loader::new();
    loader.load_path(dir.path());
    let (state, _) = loader.finish();
    let api = FakeApi::start(routes(&state));
    let script = api.script("/api/v1/pods");

    let netns = Netns(format!("pal-bench-api-{}", std::process::id()));
    let created = Command::new("ip").args(["netns", "add", &netns.0]).status();
    assert!(created.unwrap().success(), "ip netns add");

    let connection = Connection {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..Connection::default()
    };
    let t = Instant::now();
    let watch = Watch::start(&connection).expect("watch");
    while !watch.health().synced() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let listed_ms = t.elapsed().as_secs_f64() * 1e3;
    let (tx, woken) = std::sync::mpsc::channel();
    watch.on_change(move || {
        let _ = tx.send(());
    });
    let mut reconciler = Reconciler::reading(Source::Cluster(watch), Some(netns.0.clone()));
    let t = Instant::now();
    let first = reconciler.reconcile();
    assert!(matches!(first, Outcome::Applied { .. }), "{first:?}");
    let first_ms = t.elapsed().as_secs_f64() * 1e3;

    // A pod of an api tier (which policies select by `tier`), relabelled and back.
    let pod = (state.pods.iter())
        .find(|p| p.labels.get("tier").map(String::as_str) == Some("api") && p.ip.is_some())
        .expect("an api pod");
    let mut samples: [Vec<f64>; 3] = Default::default();
    for round in 0..10u64 {
        let mut labels = pod.labels.clone();
        if round % 2 == 0 {
            labels.insert("tier".into(), "api-v2".into());
        }
        while woken.try_recv().is_ok() {}
        let sent = Instant::now();
        script.event("MODIFIED", pod_object(pod, 100 + round, &labels));
        woken
            .recv_timeout(Duration::from_secs(10))
            .expect("the event");
        let stored = sent.elapsed();
        let t = Instant::now();
        let outcome = reconciler.reconcile();
        assert!(
            matches!(outcome, Outcome::Applied { .. }),
            "the relabel must change the ruleset: {outcome:?}"
        );
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        samples[0].push(ms(stored));
        samples[1].push(ms(t.elapsed()));
        samples[2].push(ms(sent.elapsed()));
    }
    let [stored, pass, total] = samples.map(median);
    let pods = state.pods.len();
    let policies = state.policies.len();
    println!(
        "API source: {pods} pods, {policies} policies, {} namespaces",
        state.namespaces.len()
    );
    println!("  first list of every kind               {listed_ms:8.1} ms");
    println!("  first pass (load, compile, apply)      {first_ms:8.1} ms");
    println!("  pod relabel: event -> store            {stored:8.1} ms (median of 10)");
    println!("  pod relabel: one pass -> kernel        {pass:8.1} ms (median of 10)");
    println!("  pod relabel: event -> kernel           {total:8.1} ms (median of 10)");
}
