//! The Kubernetes Events `palisade agent` writes while it follows an API server (the in-process one
//! of the kube crate's tests), enforcing in a scratch network namespace (as root): the
//! NetworkLogging configuration taken (`UpdateNetworkLogging`) and a rejected one
//! (`InvalidNetworkLogging`), each once; `--deny-events` refused without a node name.

#[path = "../../palisade-kube/tests/support/fake_api.rs"]
mod fake_api;
mod support;

use fake_api::{list, FakeApi};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{free_port, sample, scrape, within, Reaped};

const LOGGING: &str = "/apis/networking.gke.io/v1alpha1/networkloggings";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn network_logging(deny: serde_json::Value, version: &str) -> serde_json::Value {
    json!({
        "apiVersion": "networking.gke.io/v1alpha1", "kind": "NetworkLogging",
        "metadata": {"name": "default", "resourceVersion": version},
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

/// A scratch network namespace, removed when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("pal-t-ev-{}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(ok.unwrap().success(), "ip netns add {name}");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn the_agent_tells_network_logging_changes_as_events() {
    let namespace = json!({"metadata": {"name": "shop", "resourceVersion": "1"}});
    let policy = json!({
        "metadata": {"name": "redis-isolated", "namespace": "shop", "resourceVersion": "2"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    });
    let mut routes = fake_api::cluster(vec![namespace], vec![pod("redis", "3")], vec![policy]);
    let valid = network_logging(json!({"log": true}), "5");
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
    let netns = Netns::new();
    let metrics = format!("127.0.0.1:{}", free_port());
    let path = |name: &str| dir.path().join(name).display().to_string();
    let kubeconfig = api.kubeconfig(dir.path());
    let agent = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["agent", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--netns", &netns.0, "--node-name", "n1", "--deny-events"])
        .args(["--metrics-addr", &metrics])
        .args(["--policy-log", &path("policy.log")])
        .args(["--observe-socket", &path("observe.sock")])
        .args(["--state-file", &path("state.json")])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(path("agent.log")).unwrap())
        .spawn()
        .unwrap();
    let _agent = Reaped(agent);
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
    let invalid = network_logging(json!({"log": false, "delegate": true}), "6");
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
