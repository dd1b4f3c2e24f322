//! Following a cluster through kube-rs, against an in-process API server that lists and streams
//! watch events in the API's format: events reach the store one object at a time, a watch that
//! ends resumes from the last version seen (bookmarks included), `410 Gone` lists afresh, a
//! dropped connection resumes, and an API server down at start is waited for.

mod support;

use palisade_kube::{Connection, Watch};
use palisade_model::{Kind, Loader, ObjectStore};
use serde_json::json;
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::fake_api::{self, list, FakeApi, Reply, Step};

const PODS: &str = "/api/v1/pods";

fn pod(name: &str, version: &str, app: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": app},
                     "resourceVersion": version},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running", "podIP": format!("10.1.0.{}", name.len())},
    })
}

fn cluster() -> HashMap<String, Reply> {
    let namespace = json!({"metadata": {"name": "shop"}});
    fake_api::cluster(vec![namespace], vec![pod("redis", "40", "redis")], vec![])
}

/// A watch of the fake server, and the wake-ups it sends.
struct Watched {
    watch: Watch,
    woken: mpsc::Receiver<()>,
    _dir: tempfile::TempDir,
}

fn watch(api: &FakeApi) -> Watched {
    watch_holding(api, Connection::default().refused_hold)
}

/// A watch of the fake server whose optional kinds refused after a list are held for `hold`.
fn watch_holding(api: &FakeApi, hold: Duration) -> Watched {
    let dir = tempfile::tempdir().unwrap();
    let connection = Connection {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        request_timeout: Duration::from_secs(5),
        refused_hold: hold,
        ..Connection::default()
    };
    let (tx, woken) = mpsc::channel();
    let watch = Watch::start(&connection).expect("a usable configuration");
    watch.on_change(move || {
        let _ = tx.send(());
    });
    Watched {
        watch,
        woken,
        _dir: dir,
    }
}

impl Watched {
    /// Waits (woken by the watch, at most 20 s: backoffs included) until `done` holds of the
    /// store.
    fn until(&self, what: &str, done: impl Fn(&ObjectStore) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.watch.with_store(&done) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}: {:?}",
                self.watch.health()
            );
            let _ = self
                .woken
                .recv_timeout(left.min(Duration::from_millis(100)));
        }
    }

    /// The pods held, as `name=app`.
    fn pods(&self) -> Vec<String> {
        let mut loader = Loader::new().allocate_addresses(false);
        self.watch.with_store(|store| loader.load_store(store));
        let (state, _) = loader.finish();
        (state.pods.iter())
            .map(|p| format!("{}={}", p.name, p.labels["app"]))
            .collect()
    }
}

/// The NetworkLogging kind's health.
fn logging_health(w: &Watched) -> palisade_kube::KindHealth {
    let health = w.watch.health();
    (health.kinds.into_iter())
        .find(|k| k.kind == Kind::NetworkLogging)
        .unwrap()
}

/// Polls `what` (at most 20 s: backoffs included).
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn events_change_one_object_and_a_gone_watch_lists_afresh() {
    let api = FakeApi::start(cluster());
    let script = api.script(PODS);
    let w = watch(&api);
    eventually("every kind synced", || w.watch.health().synced());
    assert_eq!(w.pods(), ["redis=redis"]);
    // The optional NetworkLogging kind is not served: synced, said so.
    let health = w.watch.health();
    let logging = health.kinds.iter().find(|k| k.kind == Kind::NetworkLogging);
    assert!(logging.unwrap().not_served.is_some(), "{health:?}");
    assert_eq!(health.problem(), None);

    script.event("ADDED", pod("cart", "45", "cart"));
    script.event("MODIFIED", pod("redis", "46", "cache"));
    w.until("cart", |s| s.count(Kind::Pod) == 2);
    eventually("redis relabelled", || {
        w.pods().contains(&"redis=cache".into())
    });
    script.event("DELETED", pod("cart", "47", "cart"));
    w.until("cart deleted", |s| s.count(Kind::Pod) == 1);

    // The first watch starts at the list's version; one that ends resumes from the last version
    // seen: here a bookmark's.
    script.bookmark("v1", "Pod", "50");
    script.send(Step::End);
    eventually("a second watch", || api.watches_of(PODS).len() == 2);
    let watches = api.watches_of(PODS);
    assert!(watches[0].contains("resourceVersion=42"), "{watches:?}");
    assert!(watches[1].contains("resourceVersion=50"), "{watches:?}");

    // Too old: listed afresh, and what the new list lacks is gone.
    api.set(
        PODS,
        list("v1", "PodList", vec![pod("web", "60", "web")], None),
    );
    script.send(Step::Gone);
    eventually("the relist", || w.pods() == ["web=web"]);
    let pod_health = w.watch.health().kinds[1].clone();
    assert_eq!((pod_health.kind, pod_health.relists), (Kind::Pod, 1));
    assert_eq!(pod_health.error, None);
}

/// Node `name` at `version`, in `zone`, with one address and a heartbeat.
fn node(name: &str, version: &str, zone: &str, ip: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "labels": {"zone": zone}, "resourceVersion": version},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                   "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": version}]},
    })
}

/// Nodes are listed and followed like the other kinds: an added node, a heartbeat, a relabelled
/// and readdressed node and a deleted one — the state follows. Refused, they hold nothing back.
#[test]
fn node_events_reach_the_store_and_a_refusal_holds_nothing_back() {
    const NODES: &str = "/api/v1/nodes";
    let mut routes = cluster();
    let n1 = node("n1", "40", "a", "10.128.0.1");
    routes.insert(NODES.into(), list("v1", "NodeList", vec![n1], None));
    let api = FakeApi::start(routes);
    let script = api.script(NODES);
    let w = watch(&api);
    eventually("every kind synced", || w.watch.health().synced());
    let nodes = || {
        let mut loader = Loader::new();
        w.watch.with_store(|store| loader.load_store(store));
        let (state, _) = loader.finish();
        (state.nodes.iter())
            .map(|n| format!("{}={}@{:?}", n.name, n.labels["zone"], n.addresses))
            .collect::<Vec<_>>()
    };
    assert_eq!(nodes(), ["n1=a@[10.128.0.1]"]);
    assert_eq!(w.watch.with_store(|s| s.count(Kind::Node)), 1);

    script.event("ADDED", node("n2", "41", "b", "10.128.0.2"));
    script.event("MODIFIED", node("n1", "42", "a", "10.128.0.1"));
    script.event("MODIFIED", node("n1", "43", "c", "10.128.0.9"));
    w.until("n2", |s| s.count(Kind::Node) == 2);
    eventually("n1 relabelled and readdressed", || {
        nodes() == ["n1=c@[10.128.0.9]", "n2=b@[10.128.0.2]"]
    });
    script.event("DELETED", node("n2", "44", "b", "10.128.0.2"));
    w.until("n2 deleted", |s| s.count(Kind::Node) == 1);
    assert!(api.watches_of(NODES)[0].contains("resourceVersion=42"));
    drop(w);

    // Forbidden (a ClusterRole without nodes): nodes are required (the tiers' `nodes` peers match
    // their addresses), so the source is not synced and says why.
    let mut routes = cluster();
    let forbidden = "nodes is forbidden: User cannot list resource \"nodes\"";
    routes.insert(NODES.into(), Reply::status(403, "Forbidden", forbidden));
    let api = FakeApi::start(routes);
    let w = watch(&api);
    eventually("the refusal said", || {
        (w.watch.health().problem()).is_some_and(|p| p.contains("forbidden"))
    });
    let health = w.watch.health();
    assert!(!health.synced(), "{health:?}");
    let nodes = health.kinds.iter().find(|k| k.kind == Kind::Node).unwrap();
    assert!(!nodes.synced && nodes.not_served.is_none(), "{nodes:?}");
}

const CNPS: &str = "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies";

fn cnp(name: &str, version: &str, priority: u32) -> serde_json::Value {
    json!({"metadata": {"name": name, "resourceVersion": version},
           "spec": {"tier": "Admin", "priority": priority, "subject": {"namespaces": {}},
                    "egress": [{"action": "Deny", "to": [{"networks": ["169.254.169.254/32"]}]}]}})
}

/// ClusterNetworkPolicies are listed and followed, and reach the state's tier policies; a cluster
/// without the CRD (404) has none and is synced; a role that may not read them (403) holds the
/// source back, as for any required kind: an Admin Deny it cannot read must not look absent.
#[test]
fn cluster_network_policies_are_followed_and_a_refusal_holds() {
    let mut routes = cluster();
    let list_of = |items| {
        list(
            "policy.networking.k8s.io/v1alpha2",
            "ClusterNetworkPolicyList",
            items,
            None,
        )
    };
    routes.insert(CNPS.into(), list_of(vec![cnp("deny-imds", "40", 10)]));
    let api = FakeApi::start(routes);
    let script = api.script(CNPS);
    let w = watch(&api);
    eventually("every kind synced", || w.watch.health().synced());
    let tiers = || {
        let mut loader = Loader::new().allocate_addresses(false);
        w.watch.with_store(|store| loader.load_store(store));
        let (state, _) = loader.finish();
        (state.tier_policies.iter())
            .map(|p| format!("{}@{:?}", p.name, p.policy.spec().priority))
            .collect::<Vec<_>>()
    };
    assert_eq!(tiers(), ["deny-imds@Some(10)"]);
    script.event("MODIFIED", cnp("deny-imds", "41", 20));
    script.event("ADDED", cnp("allow-dns", "42", 5));
    w.until("two", |s| s.count(Kind::ClusterNetworkPolicy) == 2);
    eventually("the update", || {
        tiers() == ["allow-dns@Some(5)", "deny-imds@Some(20)"]
    });
    drop(w);

    // No CRD: none, synced, no problem.
    let mut routes = cluster();
    routes.insert(CNPS.into(), Reply::plain(404, "404 page not found"));
    let api = FakeApi::start(routes);
    let w = watch(&api);
    eventually("every kind synced", || w.watch.health().synced());
    assert_eq!(w.watch.health().problem(), None);
    drop(w);

    // Forbidden: not synced, the problem said.
    let mut routes = cluster();
    let forbidden = "clusternetworkpolicies.policy.networking.k8s.io is forbidden";
    routes.insert(CNPS.into(), Reply::status(403, "Forbidden", forbidden));
    let api = FakeApi::start(routes);
    let w = watch(&api);
    eventually("the refusal said", || {
        (w.watch.health().problem()).is_some_and(|p| p.contains("forbidden"))
    });
    assert!(!w.watch.health().synced());
}

#[test]
fn a_dropped_connection_resumes_where_it_was() {
    let api = FakeApi::start(cluster());
    let script = api.script(PODS);
    let w = watch(&api);
    eventually("every kind synced", || w.watch.health().synced());
    script.event("ADDED", pod("cart", "44", "cart"));
    w.until("cart", |s| s.count(Kind::Pod) == 2);
    script.send(Step::Drop);
    eventually("a second watch", || api.watches_of(PODS).len() == 2);
    assert!(api.watches_of(PODS)[1].contains("resourceVersion=44"));
    script.event("ADDED", pod("web", "45", "web"));
    w.until("web, on the new watch", |s| s.count(Kind::Pod) == 3);
    // Resumed, not listed again.
    assert_eq!(w.watch.health().kinds[1].relists, 0);
    let lists = (api.requests.lock().unwrap().iter())
        .filter(|r| r.starts_with(PODS) && !r.contains("watch=true"))
        .count();
    assert_eq!(lists, 1);
}

/// Nothing is synced while the server fails (the agent applies nothing before); the failure is
/// said with the kind and the server, and the kind is listed once the server answers.
#[test]
fn a_server_down_at_start_is_waited_for() {
    let api = FakeApi::start(cluster());
    api.set(
        PODS,
        Reply::status(503, "ServiceUnavailable", "etcd is down"),
    );
    let w = watch(&api);
    eventually("the failure said", || {
        (w.watch.health().kinds[1].error.as_deref()).is_some_and(|e| e.contains("etcd is down"))
    });
    let health = w.watch.health();
    assert!(!health.synced());
    let problem = health.problem().expect("a problem");
    assert!(
        problem.contains("waiting for the first list of Pod from http://127.0.0.1")
            && problem.contains("Pod: cannot list Pod from"),
        "{problem}"
    );
    assert_eq!(w.watch.with_store(|s| s.count(Kind::Pod)), 0);
    api.set(
        PODS,
        list("v1", "PodList", vec![pod("redis", "40", "redis")], None),
    );
    eventually("synced after the backoff", || w.watch.health().synced());
    assert_eq!(w.watch.health().problem(), None);
    assert_eq!(w.pods(), ["redis=redis"]);
}

/// An object the store cannot take (no name) is skipped; the events around it are not.
#[test]
fn a_nameless_object_is_skipped_alone() {
    let api = FakeApi::start(cluster());
    let script = api.script(PODS);
    let w = watch(&api);
    eventually("every kind synced", || w.watch.health().synced());
    script.event("ADDED", json!({"metadata": {"namespace": "shop"}}));
    script.event("ADDED", pod("cart", "41", "cart"));
    w.until("cart", |s| s.count(Kind::Pod) == 2);
    assert_eq!(w.pods(), ["cart=cart", "redis=redis"]);
}

/// Counts the lists (not watches) of `path` served.
fn lists_of(api: &FakeApi, path: &str) -> usize {
    (api.requests.lock().unwrap().iter())
        .filter(|r| r.split('?').next() == Some(path) && !r.contains("watch=true"))
        .count()
}

/// A server that answers every watch with `410 Gone`, or ends every watch at once, is not
/// hammered: lists and watches started again within 10 s wait for the backoff (1 s, doubling).
#[test]
fn a_server_that_keeps_restarting_the_watch_is_paced() {
    for (step, what) in [(Step::Gone, "410 Gone"), (Step::End, "an ended watch")] {
        let api = FakeApi::start(cluster());
        let script = api.script(PODS);
        for _ in 0..50 {
            script.send(step.clone());
        }
        let w = watch(&api);
        eventually("every kind synced", || w.watch.health().synced());
        std::thread::sleep(Duration::from_secs(4));
        let (lists, watches) = (lists_of(&api, PODS), api.watches_of(PODS).len());
        // Unpaced, this was 20-40 of either in 2 s.
        assert!(
            lists + watches <= 6,
            "{what}: {lists} lists, {watches} watches in 4 s"
        );
        assert!(watches >= 2, "{what}: it went on watching: {watches}");
    }
}

/// The optional NetworkLogging kind failing does not hold enforcement back (synced, the error
/// said, its objects unknown: the loader keeps their last good versions); refused after it was
/// listed, what was listed stays for the hold (here 4 s), then the kind is taken for gone: not
/// served, none of it held.
#[test]
fn an_optional_kind_failing_holds_nothing_back_and_a_refusal_keeps_what_was_listed_for_the_hold() {
    const NL: &str = "/apis/networking.gke.io/v1alpha1/networkloggings";
    let mut routes = cluster();
    routes.insert(
        NL.into(),
        Reply::status(503, "ServiceUnavailable", "webhook down"),
    );
    let api = FakeApi::start(routes);
    let w = watch_holding(&api, Duration::from_secs(4));
    eventually("synced without NetworkLogging", || {
        w.watch.health().synced()
    });
    let problem = w.watch.health().problem().unwrap_or_default();
    assert!(problem.contains("NetworkLogging: cannot list") && problem.contains("webhook down"));
    assert!(w.watch.with_store(|s| s.unknown(Kind::NetworkLogging)));

    let logging = json!({"metadata": {"name": "default", "resourceVersion": "3"},
        "spec": {"cluster": {"allow": {"log": true, "delegate": false},
                             "deny": {"log": true, "delegate": false}}}});
    api.set(
        NL,
        list(
            "networking.gke.io/v1alpha1",
            "NetworkLoggingList",
            vec![logging],
            None,
        ),
    );
    let script = api.script(NL);
    w.until("the NetworkLogging listed", |s| {
        s.count(Kind::NetworkLogging) == 1
    });
    eventually("no problem", || w.watch.health().problem().is_none());
    // A watch open for 10 s is healthy: the backoff starts again from 1 s, so that the lists
    // below come within the hold.
    std::thread::sleep(Duration::from_millis(10_500));
    // The kind is refused (a role being replaced, the CRD gone): its watch is cut, the next watch
    // and lists get a 404. What was listed stays (logging is not turned off by a blip) and the
    // error says for how long.
    api.set(NL, Reply::plain(404, "404 page not found"));
    script.send(Step::Drop);
    eventually("the refusal said", || {
        let nl = logging_health(&w);
        (nl.error.as_deref()).is_some_and(|e| e.contains("stays until it is refused for 4 s"))
    });
    let (refused, lists) = (Instant::now(), lists_of(&api, NL));
    let held = || w.watch.with_store(|s| s.count(Kind::NetworkLogging));
    assert_eq!(held(), 1);
    // Listed again (after the 1 s backoff) and refused again, within the hold: still kept.
    eventually("another refused list", || lists_of(&api, NL) > lists);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(held(), 1, "kept while refused under the hold");
    assert!(
        refused.elapsed() < Duration::from_secs(3),
        "{:?}",
        refused.elapsed()
    );
    assert!(logging_health(&w).not_served.is_none());
    // Refused for the hold: gone. None of it is held (its objects removed, not unknown: the loader
    // keeps no last good version of them), the kind is not served, and that is no problem.
    w.until("the NetworkLogging dropped", |s| {
        s.count(Kind::NetworkLogging) == 0
    });
    assert!(
        refused.elapsed() >= Duration::from_secs(2),
        "{:?}",
        refused.elapsed()
    );
    assert!(!w.watch.with_store(|s| s.unknown(Kind::NetworkLogging)));
    let health = w.watch.health();
    let nl = health
        .kinds
        .iter()
        .find(|k| k.kind == Kind::NetworkLogging)
        .unwrap();
    assert!(
        nl.synced && (nl.not_served.as_deref()).is_some_and(|why| why.contains("404")),
        "{nl:?}"
    );
    assert_eq!(health.problem(), None);
}

/// Objects past the per-kind bound arriving by watch are refused, and the source says so (what
/// they define is not enforced); a list within the bound clears it.
#[test]
fn objects_refused_on_the_watch_path_degrade_the_source() {
    let api = FakeApi::start(cluster());
    let script = api.script(PODS);
    let dir = tempfile::tempdir().unwrap();
    let connection = Connection {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        max_objects: 2,
        ..Connection::default()
    };
    let watch = Watch::start(&connection).unwrap();
    eventually("every kind synced", || watch.health().synced());
    script.event("ADDED", pod("cart", "45", "cart"));
    script.event("ADDED", pod("web", "46", "web"));
    eventually("the refusal said", || {
        (watch.health().problem()).is_some_and(|p| p.contains("Pod: refused Pod shop/web"))
    });
    assert_eq!(watch.with_store(|s| s.count(Kind::Pod)), 2);
    api.set(
        PODS,
        list("v1", "PodList", vec![pod("web", "50", "web")], None),
    );
    script.send(Step::Gone);
    eventually("a clean list clears it", || {
        watch.health().problem().is_none()
    });
}

/// A watch event past 16 MiB (a hostile or broken server) is an error, not memory: the watch is
/// dropped and said, and the kind listed afresh (resuming would bring the same event again); the
/// events after it arrive.
#[test]
fn an_oversized_watch_event_is_refused_and_the_watch_resumed() {
    let api = FakeApi::start(cluster());
    let script = api.script(PODS);
    let w = watch(&api);
    eventually("every kind synced", || w.watch.health().synced());
    let mut huge = pod("huge", "45", "huge");
    huge["metadata"]["annotations"] = json!({"x": "a".repeat(17 << 20)});
    script.event("ADDED", huge);
    eventually("the refusal said", || {
        (w.watch.health().kinds[1].error.as_deref())
            .is_some_and(|e| e.contains("larger than 16 MiB"))
    });
    // The refusing client closed that watch, listed afresh, and watches again.
    eventually("a second watch", || api.watches_of(PODS).len() == 2);
    assert_eq!(w.watch.health().kinds[1].relists, 1);
    script.event("ADDED", pod("cart", "46", "cart"));
    w.until("cart, after the refused event", |s| s.count(Kind::Pod) == 2);
    assert_eq!(w.pods(), ["cart=cart", "redis=redis"]);
}
