//! The Kubernetes Events `palisade agent` writes while it follows an API server (the in-process one
//! of the kube crate's tests), enforcing in a scratch network namespace (as root): the
//! NetworkLogging configuration taken (`UpdateNetworkLogging`) and a rejected one
//! (`InvalidNetworkLogging`), each once, and the first again in a later generation as a new Event;
//! with `--deny-events`, a connection really dropped in a lab's node (its pods served by the API
//! server) as a `PolicyDenied` Event on the pod, its repeats in the Event's series;
//! `--deny-events` refused without a node name.

#[path = "../../palisade-kube/tests/support/fake_api.rs"]
mod fake_api;
mod support;

use fake_api::{list, FakeApi};
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use support::{
    cluster_agent, connects, free_port, get, kill_agent, palisade, sample, scrape, within, Netns,
};

const LOGGING: &str = "/apis/networking.gke.io/v1alpha1/networkloggings";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// The cluster's NetworkLogging at `version`, its `generation` (its spec's version).
fn network_logging(deny: serde_json::Value, version: &str, generation: i64) -> serde_json::Value {
    json!({
        "apiVersion": "networking.gke.io/v1alpha1", "kind": "NetworkLogging",
        "metadata": {"name": "default", "uid": "nl-uid", "generation": generation,
                     "resourceVersion": version},
        "spec": {"cluster": {"allow": {"log": false}, "deny": deny}},
    })
}

/// A pod of shop on n1.
fn pod(name: &str, version: &str) -> serde_json::Value {
    let ip = if name == "redis" {
        "10.1.0.5"
    } else {
        "10.1.0.6"
    };
    json!({"metadata": {"name": name, "namespace": "shop", "resourceVersion": version},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
           "status": {"phase": "Running", "podIP": ip}})
}

#[test]
fn the_agent_tells_network_logging_changes_as_events() {
    let namespace = json!({"metadata": {"name": "shop", "resourceVersion": "1"}});
    let policy = json!({
        "metadata": {"name": "redis-isolated", "namespace": "shop", "resourceVersion": "2"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    });
    let mut routes = fake_api::cluster(vec![namespace], vec![pod("redis", "3")], vec![policy]);
    let valid = network_logging(json!({"log": true}), "5", 1);
    routes.insert(
        LOGGING.into(),
        list(
            "networking.gke.io/v1alpha1",
            "NetworkLoggingList",
            vec![valid],
            None,
        ),
    );
    let api = FakeApi::start(routes);
    let (script, pods) = (api.script(LOGGING), api.script("/api/v1/pods"));
    let dir = tempfile::tempdir().unwrap();
    let netns = Netns::new("ev");
    let metrics = format!("127.0.0.1:{}", free_port());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let kubeconfig = api.kubeconfig(dir.path());
    let extra = ["--deny-events", "--metrics-addr", &metrics];
    let _agent = cluster_agent(&kubeconfig, &netns.0, dir.path(), &extra);
    let log = || std::fs::read_to_string(path("agent.log")).unwrap_or_default();

    let reasons = || -> Vec<String> {
        (api.stored(EVENTS).iter())
            .map(|(_, e)| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let updated = within(Duration::from_secs(10), || {
        reasons() == ["UpdateNetworkLogging"]
    });
    assert!(updated.is_some(), "{:#?}", api.stored(EVENTS));
    let (_, event) = &api.stored(EVENTS)[0];
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["reportingController"], "palisade.dev/agent");
    assert_eq!(event["reportingInstance"], "n1");
    assert_eq!(event["regarding"]["kind"], "NetworkLogging");
    assert_eq!(event["regarding"]["name"], "default");

    // Rejected: told once, though the agent passes again (the pods change).
    let invalid = network_logging(json!({"log": false, "delegate": true}), "6", 2);
    script.event("MODIFIED", invalid);
    let rejected = within(Duration::from_secs(10), || reasons().len() == 2);
    assert!(rejected.is_some(), "{:#?}\n{}", api.stored(EVENTS), log());
    let invalid = (api.stored(EVENTS).into_iter())
        .map(|(_, e)| e)
        .find(|e| e["reason"] == "InvalidNetworkLogging")
        .expect("an InvalidNetworkLogging Event");
    assert_eq!(invalid["type"], "Warning");
    let note = invalid["note"].as_str().unwrap();
    assert!(
        note.contains("delegate") && note.contains("previous logging configuration stays"),
        "{note}"
    );
    pods.event("ADDED", pod("cart", "7"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(api.calls("POST").len(), 2, "{:?}", api.calls("POST"));
    let m = scrape(&metrics);
    assert_eq!(
        sample(
            &m,
            "palisade_network_logging_config_total{reason=\"InvalidNetworkLogging\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(!m.contains("palisade_kube_events_dropped_total{"), "{m}");

    // Changed, then put back as it was in a later generation, within the hour the first Event
    // lasts: each change a new Event on the object (its uid), not the first one's name again.
    script.event("MODIFIED", network_logging(json!({"log": false}), "8", 3));
    let changed = within(Duration::from_secs(10), || reasons().len() == 3);
    assert!(changed.is_some(), "{:#?}\n{}", api.stored(EVENTS), log());
    script.event("MODIFIED", network_logging(json!({"log": true}), "9", 4));
    let again = within(Duration::from_secs(10), || reasons().len() == 4);
    assert!(again.is_some(), "{:#?}\n{}", api.stored(EVENTS), log());
    let updates = (reasons().iter())
        .filter(|r| *r == "UpdateNetworkLogging")
        .count();
    assert_eq!(updates, 3, "{:#?}", api.stored(EVENTS));
    for (_, event) in api.stored(EVENTS) {
        assert_eq!(event["regarding"]["uid"], "nl-uid", "{event:#}");
    }
}

#[test]
fn deny_events_need_a_node_name() {
    let api = FakeApi::start(fake_api::cluster(vec![], vec![], vec![]));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["agent", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--deny-events", "--policy-log", &path("policy.log")])
        .args(["--observe-socket", &path("observe.sock")])
        .args(["--state-file", &path("state.json")])
        .env_remove("KUBECONFIG")
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--deny-events needs this node's name (--node-name or NODE_NAME)"),
        "{stderr}"
    );
}

/// The lab's pods and policy: rogue may not reach redis.
const LAB: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: redis, namespace: shop, labels: {app: redis}}
spec: {containers: [{name: redis, image: redis, ports: [{containerPort: 6379}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: rogue, namespace: shop, labels: {app: rogue}}
spec: {containers: [{name: sh, image: busybox}]}
"#;

#[test]
fn a_dropped_connection_is_a_warning_event_on_the_pod_with_its_repeats_in_the_series() {
    palisade_lab::require_root().expect("the lab tests run as root");
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("shop.yaml"), LAB).unwrap();
    let name = format!("ev{}", std::process::id());
    let _down = palisade_lab::DownOnDrop(name.clone());
    let path = |file: &str| dir.path().join(file).display().to_string();
    let up = palisade(&[
        "lab",
        "--name",
        &name,
        "up",
        "-f",
        manifests.to_str().unwrap(),
        "--policy-log",
        &path("lab.log"),
    ]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let lab = palisade_lab::Lab::load(&name).unwrap();
    // The lab's agent gives way to one following the API server, which serves the lab's pods.
    kill_agent(&lab);
    let ip = |pod: &str| {
        let pod = lab.pods.iter().find(|p| p.key.name == pod).unwrap();
        pod.ip.to_string()
    };
    let api_pod = |pod: &str, app: &str| {
        json!({"metadata": {"name": pod, "namespace": "shop", "labels": {"app": app},
                            "resourceVersion": "3"},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
               "status": {"phase": "Running", "podIP": ip(pod)}})
    };
    let policy = json!({
        "metadata": {"name": "redis-from-cart", "namespace": "shop", "resourceVersion": "2"},
        "spec": {"podSelector": {"matchLabels": {"app": "redis"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "cart"}}}],
                              "ports": [{"port": 6379}]}]},
    });
    let namespace = json!({"metadata": {"name": "shop", "resourceVersion": "1"}});
    let pods = vec![api_pod("redis", "redis"), api_pod("rogue", "rogue")];
    let api = FakeApi::start(fake_api::cluster(vec![namespace], pods, vec![policy]));
    let kubeconfig = api.kubeconfig(dir.path());
    let metrics = format!("127.0.0.1:{}", free_port());
    let extra = ["--deny-events", "--metrics-addr", &metrics];
    let _agent = cluster_agent(&kubeconfig, &lab.node, dir.path(), &extra);
    let log = || std::fs::read_to_string(path("agent.log")).unwrap_or_default();
    let ready = within(Duration::from_secs(10), || {
        get(&metrics, "/readyz").0 == 200
    });
    assert!(ready.is_some(), "{:?}\n{}", get(&metrics, "/readyz"), log());

    let redis = ip("redis");
    assert!(
        !connects(&name, &"shop/rogue", &redis, 6379),
        "rogue reached redis"
    );
    let events = EVENTS.replace("/default/", "/shop/");
    let told = within(Duration::from_secs(10), || api.stored(&events).len() == 1);
    assert!(told.is_some(), "{:#?}\n{}", api.stored(&events), log());
    let (_, event) = &api.stored(&events)[0];
    assert_eq!(
        event["note"],
        format!(
            "connection from shop/rogue to {redis}:6379/TCP denied: isolated by NetworkPolicy shop/redis-from-cart"
        )
    );
    assert_eq!(
        (
            &event["type"],
            &event["reason"],
            &event["reportingInstance"]
        ),
        (&json!("Warning"), &json!("PolicyDenied"), &json!("n1"))
    );
    assert_eq!(
        (&event["regarding"]["kind"], &event["regarding"]["name"]),
        (&json!("Pod"), &json!("redis"))
    );

    // Two more attempts (from new source ports): one Event, its series at 3 (patched within 10 s).
    for _ in 0..2 {
        assert!(!connects(&name, &"shop/rogue", &redis, 6379));
    }
    let counted = within(Duration::from_secs(15), || {
        api.stored(&events)
            .first()
            .is_some_and(|(_, e)| e["series"]["count"] == 3)
    });
    assert!(counted.is_some(), "{:#?}\n{}", api.stored(&events), log());
    assert_eq!(api.stored(&events).len(), 1);
    assert_eq!(api.calls("POST").len(), 1, "{:?}", api.calls("POST"));
}
