//! `palisade agent` following a cluster's API server (no `--manifests`), served by the in-process
//! API server of the kube crate's tests, enforcing in a scratch network namespace (as root): nothing
//! applied before the first full list, watch events enforced, only this node's pods enforced while
//! every pod is a peer, a relist after `410 Gone`, and enforcement kept while the API server is
//! down, with readiness and `palisade_source_up` saying so; the agent's Lease, and `palisade
//! status` reading it.

#[path = "../../palisade-kube/tests/support/fake_api.rs"]
mod fake_api;
mod support;

use fake_api::{list, FakeApi, Reply, Step};
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use support::{cluster_agent, free_port, get, sample, scrape, within, Netns};

const PODS: &str = "/api/v1/pods";

fn pod(name: &str, node: &str, ip: &str, app: &str, version: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": app},
                     "resourceVersion": version},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running", "podIP": ip},
    })
}

#[test]
fn the_agent_follows_the_api_server_and_enforces_its_nodes_pods() {
    // redis (n1) and cart (n2) accept web only.
    let policy = json!({
        "metadata": {"name": "from-web", "namespace": "shop", "resourceVersion": "1",
                     "generation": 2},
        "spec": {"podSelector": {"matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["redis", "cart"]}]},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]},
    });
    let namespace = json!({"metadata": {"name": "shop", "resourceVersion": "1"}});
    let mut routes = fake_api::cluster(vec![namespace], vec![], vec![policy]);
    // The API server cannot list pods at first.
    routes.insert(
        PODS.into(),
        Reply::status(503, "ServiceUnavailable", "etcd is down"),
    );
    let nodes = ["n1", "n2", "n3"].map(|n| json!({"metadata": {"name": n}}));
    routes.insert(
        "/api/v1/nodes".into(),
        list("v1", "NodeList", nodes.into(), None),
    );
    let api = FakeApi::start(routes);
    let script = api.script(PODS);
    let dir = tempfile::tempdir().unwrap();
    let netns = Netns::new("api");
    let metrics = format!("127.0.0.1:{}", free_port());
    let kubeconfig = api.kubeconfig(dir.path());
    let extra = ["--metrics-addr", &metrics];
    let _agent = cluster_agent(&kubeconfig, &netns.0, dir.path(), &extra);

    // Nothing applied before the first list of every kind; not ready, and why.
    let waiting = within(Duration::from_secs(10), || {
        let (code, body) = get(&metrics, "/readyz");
        code == 503 && body.contains("waiting for the first list of Pod")
    });
    assert!(waiting.is_some(), "{:?}", get(&metrics, "/readyz"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(netns.table(), None, "applied before the pods were listed");
    assert!(scrape(&metrics).contains("\npalisade_source_up 0\n"));

    let pods = vec![
        pod("redis", "n1", "10.1.0.5", "redis", "10"),
        pod("web", "n2", "10.1.0.6", "web", "11"),
        pod("cart", "n2", "10.1.0.7", "cart", "12"),
    ];
    api.set(PODS, list("v1", "PodList", pods, None));
    let table = || netns.table().unwrap_or_default();
    assert!(
        within(Duration::from_secs(35), || table().contains("10.1.0.5")).is_some(),
        "redis enforced once the pods are listed: {}",
        table()
    );
    let first = table();
    // Only this node's pod has a verdict-map entry; the web pod on n2 is a peer.
    assert!(!first.contains("10.1.0.7"), "cart is on n2: {first}");
    assert!(first.contains("10.1.0.6"), "web is a peer: {first}");
    assert!(within(Duration::from_secs(5), || get(&metrics, "/readyz").0 == 200).is_some());
    let m = scrape(&metrics);
    assert_eq!(sample(&m, "palisade_source_up "), 1.0);
    assert!(
        sample(&m, "palisade_source_last_event_seconds ") > 1.7e9,
        "{m}"
    );

    // The agent's Lease says what it enforces; `palisade status` finds n2 (cart) without an agent.
    let lease = "/apis/coordination.k8s.io/v1/namespaces/palisade-system/leases/palisade-n1";
    let said = || {
        let lease = api.applied(lease)?;
        let text = lease["metadata"]["annotations"]["palisade.dev/status"].as_str()?;
        serde_json::from_str::<serde_json::Value>(text).ok()
    };
    let enforced = within(Duration::from_secs(15), || {
        said().is_some_and(|s| s["applied"]["shop/from-web"] == 2 && s["pods"] == 1)
    });
    assert!(enforced.is_some(), "{:?}", api.applied(lease));
    let status = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "status",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "-o",
            "json",
        ])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(1), "{status:?}");
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["unenforced"], json!(["n2"]), "{report}");
    // n3 hosts nothing: listed as a node without an agent, no gap.
    assert_eq!(report["withoutAgent"], json!(["n2", "n3"]), "{report}");
    assert_eq!(report["nodes"][2]["agent"], "none", "{report}");
    assert_eq!(report["nodes"][0]["agent"], "up", "{report}");
    assert_eq!(report["nodes"][1]["agent"], "none", "{report}");
    let policy = &report["policies"][0];
    assert_eq!(
        (&policy["realized"], &policy["nodes"]),
        (&json!(1), &json!(2)),
        "{report}"
    );
    assert_eq!(policy["notRealized"], json!(["n2: no agent"]), "{report}");
    let text = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["status", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("NetworkPolicy is NOT enforced on 1 of the 2 nodes hosting pods: n2"),
        "{text}"
    );

    // Watch events: web relabelled out of the peers, a new web pod in.
    script.event("MODIFIED", pod("web", "n2", "10.1.0.6", "other", "13"));
    script.event("ADDED", pod("web2", "n2", "10.1.0.8", "web", "14"));
    let moved = within(Duration::from_secs(35), || {
        let t = table();
        t.contains("10.1.0.8") && !t.contains("10.1.0.6")
    });
    assert!(moved.is_some(), "{}", table());

    // Too old: listed afresh; web2 is gone from the new list.
    api.set(
        PODS,
        list(
            "v1",
            "PodList",
            vec![
                pod("redis", "n1", "10.1.0.5", "redis", "20"),
                pod("web3", "n2", "10.1.0.9", "web", "21"),
            ],
            None,
        ),
    );
    script.send(Step::Gone);
    let relisted = within(Duration::from_secs(35), || {
        let t = table();
        t.contains("10.1.0.9") && !t.contains("10.1.0.8")
    });
    assert!(relisted.is_some(), "{}", table());
    let m = scrape(&metrics);
    assert_eq!(
        sample(&m, r#"palisade_source_relists{kind="Pod"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, r#"palisade_source_objects{kind="Pod"}"#),
        2.0,
        "{m}"
    );
    assert!(
        m.contains("\npalisade_source_relists{kind=\"Namespace\"} 0\n"),
        "{m}"
    );

    // The API server goes down: enforcement stays as it is; the agent says it is not following.
    // (Waits here and above allow for the backoff: 1 s doubling to 30 s, reset only by a watch
    // open 10 s, which this test's watches are not.)
    let before = table();
    api.set(
        PODS,
        Reply::status(503, "ServiceUnavailable", "etcd is down"),
    );
    script.send(Step::Drop);
    let down = within(Duration::from_secs(35), || {
        let (code, body) = get(&metrics, "/readyz");
        code == 503 && body.contains("cannot watch Pod")
    });
    assert!(down.is_some(), "{:?}", get(&metrics, "/readyz"));
    assert!(scrape(&metrics).contains("\npalisade_source_up 0\n"));
    assert_eq!(
        table(),
        before,
        "enforcement changed while the API server was down"
    );
    // ... and stays so while the agent keeps trying.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(table(), before, "enforcement changed later");
}

/// A cluster of one pod, `shop/redis` on `n1` at 10.1.0.5, which a policy isolates.
fn isolated_redis() -> std::collections::HashMap<String, Reply> {
    let policy = json!({
        "metadata": {"name": "redis", "namespace": "shop", "resourceVersion": "1"},
        "spec": {"podSelector": {"matchLabels": {"app": "redis"}}, "policyTypes": ["Ingress"]},
    });
    let namespace = json!({"metadata": {"name": "shop", "resourceVersion": "1"}});
    let pods = vec![pod("redis", "n1", "10.1.0.5", "redis", "10")];
    fake_api::cluster(vec![namespace], pods, vec![policy])
}

/// After a reboot (the kernel's table gone) with the API server down, the agent enforces the last
/// good state from its state file instead of nothing.
#[test]
fn a_reboot_with_the_api_server_down_enforces_the_last_good_state() {
    let api = FakeApi::start(isolated_redis());
    let dir = tempfile::tempdir().unwrap();
    let netns = Netns::new("api");
    let kubeconfig = api.kubeconfig(dir.path());
    let start = || cluster_agent(&kubeconfig, &netns.0, dir.path(), &[]);
    let table = || netns.table().unwrap_or_default();
    let enforced = || table().contains("10.1.0.5");
    let agent = start();
    assert!(
        within(Duration::from_secs(10), enforced).is_some(),
        "{}",
        table()
    );
    // The state file is written within 2 s of an apply; then the agent is stopped.
    let state = dir.path().join("state.json");
    let written = within(Duration::from_secs(5), || {
        std::fs::read_to_string(&state).is_ok_and(|t| t.contains("\"redis\""))
    });
    assert!(written.is_some(), "no state file");
    drop(agent);

    // The API server goes down; the node reboots (its table gone); the agent starts again.
    api.set(
        PODS,
        Reply::status(503, "ServiceUnavailable", "etcd is down"),
    );
    let deleted = Command::new("ip")
        .args([
            "netns", "exec", &netns.0, "nft", "delete", "table", "inet", "palisade",
        ])
        .status()
        .unwrap();
    assert!(deleted.success());
    let _agent = start();
    let restored = within(Duration::from_secs(10), enforced);
    assert!(
        restored.is_some(),
        "nothing enforced after the reboot: {}",
        table()
    );
}

/// `palisade agent --once` against an API server: applies once the cluster is listed (exit 0);
/// with the server down, applies nothing and exits 2 after `--request-timeout`.
#[test]
fn once_applies_the_listed_cluster_or_nothing() {
    let api = FakeApi::start(isolated_redis());
    let dir = tempfile::tempdir().unwrap();
    let netns = Netns::new("api");
    let kubeconfig = api.kubeconfig(dir.path());
    let state = dir.path().join("state.json").display().to_string();
    let once = || {
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args([
                "agent",
                "--once",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
            ])
            .args([
                "--netns",
                &netns.0,
                "--node-name",
                "n1",
                "--request-timeout",
                "2s",
            ])
            .args(["--state-file", &state])
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    api.set(
        PODS,
        Reply::status(503, "ServiceUnavailable", "etcd is down"),
    );
    let down = once();
    assert_eq!(down.status.code(), Some(2), "{down:?}");
    assert_eq!(netns.table(), None, "applied without the pods");
    let pods = vec![pod("redis", "n1", "10.1.0.5", "redis", "10")];
    api.set(PODS, list("v1", "PodList", pods, None));
    // The cluster also holds a Cilium policy, which the agent does not enforce: it says so.
    api.set(
        "/apis/cilium.io",
        Reply::ok(json!({"kind": "APIGroup", "name": "cilium.io",
            "preferredVersion": {"groupVersion": "cilium.io/v2", "version": "v2"}})),
    );
    api.set(
        "/apis/cilium.io/v2",
        Reply::ok(json!({"kind": "APIResourceList", "resources": [
            {"name": "ciliumnetworkpolicies", "kind": "CiliumNetworkPolicy", "namespaced": true}]})),
    );
    let cilium = json!({"metadata": {"name": "l7", "namespace": "shop"}});
    api.set(
        "/apis/cilium.io/v2/ciliumnetworkpolicies",
        list(
            "cilium.io/v2",
            "CiliumNetworkPolicyList",
            vec![cilium],
            None,
        ),
    );
    let up = once();
    assert_eq!(up.status.code(), Some(0), "{up:?}");
    assert!(netns.table().is_some_and(|t| t.contains("10.1.0.5")));
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(
        stderr.contains(
            "the cluster holds CiliumNetworkPolicy objects: this kind is not enforced by Palisade"
        ),
        "{stderr}"
    );
}
