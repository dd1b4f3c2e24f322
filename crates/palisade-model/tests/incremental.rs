//! A load of a store that applies only the objects changed since the last load equals a load
//! that reads every object, after every step of a random stream of API events (pods, policies,
//! Services, namespaces, nodes, cluster-wide policies and NetworkLogging applied, changed, rejected and deleted, nodes'
//! heartbeats, kinds listed afresh or unknown, addresses reused), and it does look at only what
//! changed.

use palisade_model::{ClusterState, DocumentCache, Kind, Load, Loader, ObjectEvent, ObjectStore};
use serde_json::{json, Value};

/// xorshift64*: a fixed stream of choices, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const NAMESPACES: [&str; 4] = ["a", "b", "c", "d"];

/// A random event; `version` makes each applied object a new version.
fn event(rng: &mut Rng, version: u64) -> ObjectEvent {
    let (n, i) = (rng.below(4), rng.below(6));
    let ns = NAMESPACES[n as usize];
    let name = format!("x{i}");
    let v = version.to_string();
    let meta = |labels: Value| json!({"name": name, "namespace": ns, "resourceVersion": v, "labels": labels});
    let labels = json!({"app": rng.pick(&["web", "db", "cache"])});
    match rng.below(80) {
        0..=29 => {
            // Mostly its own address; now and then another pod's.
            let ip = match rng.below(20) {
                0 => Value::Null,
                1 => format!("10.0.{}.{}", rng.below(4), rng.below(6)).into(),
                _ => format!("10.0.{n}.{i}").into(),
            };
            let port: Value = match rng.below(10) {
                0 => "not-a-number".into(),
                _ => 8080.into(),
            };
            let pod = json!({
                "metadata": meta(labels),
                "spec": {"hostNetwork": rng.below(10) == 0, "nodeName": "n1",
                         "containers": [{"name": "c", "image": "x",
                                         "ports": [{"name": "http", "containerPort": port}]}]},
                "status": {"phase": rng.pick(&["Running", "Running", "Pending", "Succeeded"]),
                           "podIP": ip},
            });
            match rng.below(5) {
                0 => ObjectEvent::Deleted(Kind::Pod, pod),
                _ => ObjectEvent::Applied(Kind::Pod, pod),
            }
        }
        30..=44 => {
            let cidr = rng.pick(&["10.0.0.0/8", "10.0.0.0/33", "192.168.0.0/16"]);
            let policy = json!({
                "metadata": meta(json!({})),
                "spec": {"podSelector": {"matchLabels": labels},
                         "ingress": [{"from": [{"ipBlock": {"cidr": cidr}}],
                                      "ports": [{"port": "http"}]}]},
            });
            match rng.below(4) {
                0 => ObjectEvent::Deleted(Kind::NetworkPolicy, policy),
                _ => ObjectEvent::Applied(Kind::NetworkPolicy, policy),
            }
        }
        45..=51 => {
            let service = json!({
                "metadata": meta(json!({})),
                "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
            });
            match rng.below(3) {
                0 => ObjectEvent::Deleted(Kind::Service, service),
                _ => ObjectEvent::Applied(Kind::Service, service),
            }
        }
        52..=57 => {
            let namespace = json!({"metadata": {"name": ns, "resourceVersion": v,
                "labels": {"team": rng.pick(&["red", "blue"])}}});
            match rng.below(8) {
                0 => ObjectEvent::Deleted(Kind::Namespace, namespace),
                _ => ObjectEvent::Applied(Kind::Namespace, namespace),
            }
        }
        58..=60 => {
            let log: Value = match rng.below(4) {
                0 => "yes".into(),
                _ => (rng.below(2) == 0).into(),
            };
            let name = rng.pick(&["default", "default", "other"]);
            let object = json!({"metadata": {"name": name, "resourceVersion": v},
                "spec": {"cluster": {"allow": {"log": log, "delegate": false},
                                     "deny": {"log": true, "delegate": false}}}});
            match rng.below(4) {
                0 => ObjectEvent::Deleted(Kind::NetworkLogging, object),
                _ => ObjectEvent::Applied(Kind::NetworkLogging, object),
            }
        }
        61..=68 => {
            let node = node(rng, i % 4, &v);
            match rng.below(6) {
                0 => ObjectEvent::Deleted(Kind::Node, node),
                _ => ObjectEvent::Applied(Kind::Node, node),
            }
        }
        // The nodes listed afresh: some come back (maybe changed), some do not.
        69 => {
            let mut nodes = Vec::new();
            for i in 0..4 {
                if rng.below(3) != 0 {
                    nodes.push(node(rng, i, "1"));
                }
            }
            ObjectEvent::Listed(Kind::Node, nodes)
        }
        // A relist of the namespaces: some come back, some do not.
        70 => ObjectEvent::Listed(
            Kind::Namespace,
            (NAMESPACES.iter())
                .filter(|_| rng.below(4) != 0)
                .map(|ns| json!({"metadata": {"name": ns, "resourceVersion": "1"}}))
                .collect(),
        ),
        // Pods listed afresh, as after a 410 Gone: all gone.
        71 => ObjectEvent::Listed(Kind::Pod, Vec::new()),
        72..=78 => {
            let (kind, policy) = tier_policy(rng, i % 3, &v);
            match rng.below(5) {
                0 => ObjectEvent::Deleted(kind, policy),
                _ => ObjectEvent::Applied(kind, policy),
            }
        }
        // A cluster-wide kind listed afresh: some come back (maybe changed), some do not.
        79 => {
            let kind = TIERS[rng.below(3) as usize];
            let mut policies = Vec::new();
            for i in 0..3 {
                let (of, policy) = tier_policy(rng, i, "1");
                if of == kind && rng.below(3) != 0 {
                    policies.push(policy);
                }
            }
            ObjectEvent::Listed(kind, policies)
        }
        // The optional kind listed afresh (after it could not be).
        _ => ObjectEvent::Listed(Kind::NetworkLogging, Vec::new()),
    }
}

const TIERS: [Kind; 3] = [
    Kind::ClusterNetworkPolicy,
    Kind::AdminNetworkPolicy,
    Kind::BaselineAdminNetworkPolicy,
];

/// A cluster-wide policy of a random kind, `t{i}` (a BaselineAdminNetworkPolicy `default`, now
/// and then another name: rejected) at `version`: its priority and action now and then another, a
/// peer of no known field (a warning), or an invalid priority (rejected, the last good one held).
fn tier_policy(rng: &mut Rng, i: u64, version: &str) -> (Kind, Value) {
    let kind = TIERS[rng.below(3) as usize];
    let (accept, priority) = match kind {
        Kind::ClusterNetworkPolicy => ("Accept", json!(rng.below(3) * 10)),
        _ => ("Allow", json!(rng.below(3) * 10)),
    };
    let action = rng.pick(&[accept, "Deny"]);
    let peer = match rng.below(8) {
        0 => json!({"serviceAccounts": {}}),
        _ => json!({"namespaces": {"matchLabels": {"team": rng.pick(&["red", "blue"])}}}),
    };
    let name = match kind {
        Kind::BaselineAdminNetworkPolicy if rng.below(8) != 0 => "default".to_string(),
        _ => format!("t{i}"),
    };
    let mut spec =
        json!({"subject": {"namespaces": {}}, "egress": [{"action": action, "to": [peer]}]});
    if kind != Kind::BaselineAdminNetworkPolicy {
        spec["priority"] = if rng.below(8) == 0 {
            json!(1001)
        } else {
            priority
        };
    }
    if kind == Kind::ClusterNetworkPolicy {
        spec["tier"] = rng.pick(&["Admin", "Baseline"]).into();
    }
    let object = json!({"metadata": {"name": name, "resourceVersion": version}, "spec": spec,
                        "status": {"conditions": []}});
    (kind, object)
}

/// Node `n{i}` at `version`: its labels and addresses now and then another (an address now and
/// then not one), and a heartbeat, which changes nothing Palisade reads, every time.
fn node(rng: &mut Rng, i: u64, version: &str) -> Value {
    let mut addresses = vec![json!({"type": "Hostname", "address": format!("n{i}")})];
    addresses.push(match rng.below(8) {
        0 => json!({"type": "InternalIP", "address": format!("10.128.0.{}", 300 + i)}),
        1 => json!({"type": "InternalIP", "address": format!("10.128.1.{i}")}),
        _ => json!({"type": "InternalIP", "address": format!("10.128.0.{i}")}),
    });
    if rng.below(3) == 0 {
        addresses.push(json!({"type": "ExternalIP", "address": format!("2001:db8::{i}")}));
    }
    let labels = match rng.below(10) {
        0 => json!({"zone": "-bad-"}),
        _ => json!({"zone": rng.pick(&["a", "a", "b"])}),
    };
    json!({"metadata": {"name": format!("n{i}"), "resourceVersion": version, "labels": labels},
           "spec": {"unschedulable": rng.below(2) == 0},
           "status": {"addresses": addresses,
                      "conditions": [{"type": "Ready", "status": "True",
                                      "lastHeartbeatTime": format!("2026-12-06T12:00:{:02}Z", rng.below(60))}]}})
}

fn load(store: &ObjectStore, cache: DocumentCache, incremental: bool) -> Load {
    (Loader::new().with_documents(cache))
        .allocate_addresses(false)
        .incremental(incremental)
        .finish_with_store(store)
}

/// What a load says, in a form two loads compare by (the order of its reports aside).
fn said(load: &Load) -> (Vec<String>, Vec<String>, Vec<String>) {
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    (
        sorted(
            load.diagnostics
                .iter()
                .map(|d| format!("{d} {d:?}"))
                .collect(),
        ),
        sorted(load.rejections.iter().map(|r| format!("{r:?}")).collect()),
        sorted(load.held.iter().map(|h| format!("{h:?}")).collect()),
    )
}

fn assert_same_state(a: &ClusterState, b: &ClusterState, step: usize) {
    assert_eq!(a.namespaces, b.namespaces, "step {step}: namespaces");
    let pods = |s: &ClusterState| s.pods.iter().map(|p| (**p).clone()).collect::<Vec<_>>();
    assert_eq!(pods(a), pods(b), "step {step}: pods");
    assert_eq!(a.services, b.services, "step {step}: services");
    assert_eq!(a.policies, b.policies, "step {step}: policies");
    assert_eq!(a.nodes, b.nodes, "step {step}: nodes");
    assert_eq!(
        a.tier_policies, b.tier_policies,
        "step {step}: tier policies"
    );
    assert_eq!(a.network_logging, b.network_logging, "step {step}: logging");
    // Every address the stream uses, held or not.
    for (n, i) in (0..4).flat_map(|n| (0..6).map(move |i| (n, i))) {
        let ip = format!("10.0.{n}.{i}").parse().unwrap();
        assert_eq!(a.pod_by_ip(ip), b.pod_by_ip(ip), "step {step}: {ip}");
    }
    for ns in b.namespaces.iter() {
        assert_eq!(a.namespace_id(&ns.name), b.namespace_id(&ns.name));
    }
}

#[test]
fn a_load_of_the_changes_equals_a_load_of_everything() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut store = ObjectStore::new("https://api", 1000);
        let (mut incremental, mut full) = (DocumentCache::default(), DocumentCache::default());
        let (mut partial_loads, mut examined) = (0, 0);
        for step in 0..400 {
            for _ in 0..=rng.below(3) {
                store.apply(event(&mut rng, step as u64 * 10 + 2));
            }
            match rng.below(100) {
                0 => store.mark_unknown(Kind::NetworkLogging),
                1..=30 if store.unknown(Kind::NetworkLogging) => {
                    store.apply(ObjectEvent::Listed(Kind::NetworkLogging, Vec::new()));
                }
                _ => {}
            }
            let a = load(&store, incremental, true);
            let b = load(&store, full, false);
            assert_same_state(&a.state, &b.state, step);
            assert_eq!(said(&a), said(&b), "seed {seed} step {step}");
            assert_eq!(a.changed, b.changed, "seed {seed} step {step}: changed");
            if a.examined < b.examined {
                partial_loads += 1;
                examined += a.examined;
            }
            assert!(b.examined == store.len(), "a full load reads every object");
            (incremental, full) = (a.cache, b.cache);
        }
        // Most loads take only the changes (the rest: addresses reused — and the load after
        // one —, namespaces added or removed, a kind unknown), each a few objects.
        assert!(partial_loads > 180, "seed {seed}: {partial_loads} of 400");
        assert!(
            examined <= partial_loads * 4,
            "{examined} for {partial_loads}"
        );
    }
}

/// A pod relabelled among 2,000 is the only object a load of the changes looks at, and the
/// objects it did not change are the same `Arc`s.
#[test]
fn a_pod_event_touches_that_pod() {
    let mut store = ObjectStore::new("https://api", 10_000);
    let namespace = json!({"metadata": {"name": "shop", "resourceVersion": "1"}});
    store.apply(ObjectEvent::Listed(Kind::Namespace, vec![namespace]));
    let pod = |i: u32, app: &str, version: &str| {
        json!({"metadata": {"name": format!("p{i}"), "namespace": "shop",
                            "resourceVersion": version, "labels": {"app": app}},
               "spec": {"containers": [{"name": "c", "image": "x"}]},
               "status": {"phase": "Running", "podIP": format!("10.1.{}.{}", i / 200, i % 200 + 1)}})
    };
    let pods = (0..2000).map(|i| pod(i, "web", "1")).collect();
    store.apply(ObjectEvent::Listed(Kind::Pod, pods));
    let first = load(&store, DocumentCache::default(), true);
    assert_eq!(first.examined, 2001);
    store.apply(ObjectEvent::Applied(Kind::Pod, pod(7, "api", "2")));
    let second = load(&store, first.cache, true);
    assert_eq!(second.examined, 1);
    assert!(second.changed);
    let id = second.state.pod_id("shop", "p7").unwrap();
    assert_eq!(second.state.pods[id].labels["app"], "api");
    let shared = (first.state.pods.iter().zip(second.state.pods.iter()))
        .filter(|(a, b)| std::sync::Arc::ptr_eq(a, b))
        .count();
    assert_eq!(shared, 1999);
    // Deleted: gone, and its address free.
    store.apply(ObjectEvent::Deleted(Kind::Pod, pod(7, "api", "3")));
    let third = load(&store, second.cache, true);
    assert_eq!(third.examined, 1);
    assert_eq!(third.state.pod_id("shop", "p7"), None);
    assert_eq!(third.state.pod_by_ip("10.1.0.8".parse().unwrap()), None);
    assert_eq!(third.state.pods.len(), 1999);
    let p8 = third.state.pod_id("shop", "p8").unwrap();
    assert_eq!(third.state.pod_by_ip("10.1.0.9".parse().unwrap()), Some(p8));
    // Nothing changed: nothing looked at.
    let fourth = load(&store, third.cache, true);
    assert_eq!((fourth.examined, fourth.changed), (0, false));
}

/// A node's labels and addresses changed, among 500 nodes and a pod, is the only object a load
/// of the changes looks at; its heartbeat is no change; deleted, it is gone; added, in place.
#[test]
fn a_node_event_touches_that_node() {
    let mut store = ObjectStore::new("https://api", 1_000);
    let node = |i: u32, zone: &str, ip: &str, beat: u32| {
        json!({"metadata": {"name": format!("n{i:03}"), "resourceVersion": format!("{i}.{beat}"),
                            "labels": {"zone": zone}},
               "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                          "conditions": [{"type": "Ready", "lastHeartbeatTime": beat.to_string()}]}})
    };
    let ip = |i: u32| format!("10.128.{}.{}", i / 200, i % 200 + 1);
    let nodes = (0..500).map(|i| node(i, "a", &ip(i), 0)).collect();
    store.apply(ObjectEvent::Listed(Kind::Node, nodes));
    let first = load(&store, DocumentCache::default(), true);
    assert_eq!((first.examined, first.state.nodes.len()), (500, 500));
    store.apply(ObjectEvent::Applied(Kind::Node, node(7, "a", &ip(7), 1)));
    let beat = load(&store, first.cache, true);
    assert_eq!((beat.examined, beat.changed), (0, false), "a heartbeat");
    store.apply(ObjectEvent::Applied(
        Kind::Node,
        node(7, "b", "2001:db8::7", 2),
    ));
    let changed = load(&store, beat.cache, true);
    assert_eq!((changed.examined, changed.patched), (1, Some(1)));
    let n7 = changed.state.node("n007").unwrap();
    assert_eq!(n7.labels["zone"], "b");
    assert_eq!(
        n7.addresses,
        ["2001:db8::7".parse::<std::net::IpAddr>().unwrap()]
    );
    store.apply(ObjectEvent::Deleted(Kind::Node, node(7, "b", "", 3)));
    let deleted = load(&store, changed.cache, true);
    assert_eq!((deleted.examined, deleted.patched), (1, Some(1)));
    assert!(deleted.state.node("n007").is_none());
    store.apply(ObjectEvent::Applied(
        Kind::Node,
        node(900, "c", "10.9.9.9", 0),
    ));
    let added = load(&store, deleted.cache, true);
    assert_eq!((added.examined, added.patched), (1, Some(1)));
    let names: Vec<&str> = added.state.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!((names.len(), names[0], names[499]), (500, "n000", "n900"));
}

/// One random manifest document of file `file`, slot `slot`: pods made by workloads
/// (`regime` 0), by Pod objects (1) or by both (2).
fn document(rng: &mut Rng, regime: u64, file: usize, slot: usize) -> String {
    let ns = rng.pick(&NAMESPACES);
    let app = rng.pick(&["web", "db"]);
    let ports = "ports: [{name: http, containerPort: 8080}]";
    let choice = match (regime, rng.below(10)) {
        (0, 3) | (0, 4) => 1,
        (1, 1) | (1, 2) => 3,
        (_, choice) => choice,
    };
    match choice {
        0 => format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {}, labels: {{team: {}}}}}\n",
            rng.pick(&["a", "b", "c"]),
            rng.pick(&["red", "blue"])
        ),
        1 | 2 => format!(
            "apiVersion: apps/v1\nkind: {}\nmetadata: {{name: w{file}{slot}, namespace: {ns}}}\nspec:\n  replicas: {}\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}, v: \"{}\"}}}}\n    spec: {{containers: [{{name: c, image: x, {ports}}}]}}\n",
            rng.pick(&["Deployment", "StatefulSet"]),
            rng.below(3) + 1,
            rng.below(3)
        ),
        3 | 4 => {
            let status = match rng.below(4) {
                0 => format!(
                    "status: {{podIP: 10.244.0.{}, phase: {}}}\n",
                    rng.below(20) + 10,
                    rng.pick(&["Running", "Running", "Succeeded"])
                ),
                _ => String::new(),
            };
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{file}{slot}, namespace: {ns}, labels: {{app: {app}}}}}\nspec: {{hostNetwork: {}, containers: [{{name: c, image: x, {ports}}}]}}\n{status}",
                rng.below(4) == 0
            )
        }
        5 | 6 => format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: n{file}{slot}, namespace: {ns}}}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  ingress: [{{from: [{{ipBlock: {{cidr: {}}}}}], ports: [{{port: http}}]}}]\n",
            rng.pick(&["10.0.0.0/8", "10.0.0.0/33"])
        ),
        7 => format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{file}{slot}, namespace: {ns}}}\nspec: {{selector: {{app: {app}}}, ports: [{{port: 80, targetPort: http}}]}}\n"
        ),
        8 if rng.below(2) == 0 => format!(
            "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: c{file}{slot}}}\nspec:\n  tier: Admin\n  priority: {}\n  subject: {{namespaces: {{}}}}\n  ingress: [{{action: Deny, from: [{{pods: {{podSelector: {{matchLabels: {{app: {app}}}}}}}}}]}}]\n",
            rng.pick(&["5", "10", "1001"])
        ),
        8 => format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {}, labels: {{app: {app}}}}}\nstatus: {{addresses: [{{type: InternalIP, address: 10.128.0.{}}}]}}\n",
            rng.pick(&["n1", "n2"]),
            rng.below(3)
        ),
        _ => "kind: [unclosed\n".to_string(),
    }
}

fn write_file(dir: &std::path::Path, name: &str, docs: &[String]) {
    std::fs::write(dir.join(name), docs.join("---\n")).unwrap();
}

/// A folder edited at random — a document rewritten, a file rewritten, removed, added or renamed
/// — loads to the same state, addresses allocated included, whether the state is made from the
/// last load's or afresh; most loads make it from the last load's.
#[test]
fn a_folder_load_of_the_changes_equals_a_load_of_everything() {
    let load_dir = |dir: &std::path::Path, cache, incremental| {
        let mut loader = Loader::new()
            .with_documents(cache)
            .pod_cidr("10.244.0.0/26".parse().unwrap())
            .pin_ips([(
                palisade_model::PodKey::new("a", "p00"),
                "10.244.0.40".parse().unwrap(),
            )])
            .incremental(incremental);
        loader.load_path(dir);
        loader.finish_with_cache()
    };
    for seed in 1..=9u64 {
        let regime = seed % 3;
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<(String, Vec<String>)> = (0..4)
            .map(|f| {
                let docs = (0..4)
                    .map(|slot| document(&mut rng, regime, f, slot))
                    .collect();
                (format!("f{f}.yaml"), docs)
            })
            .collect();
        for (name, docs) in &files {
            write_file(dir.path(), name, docs);
        }
        let (mut incremental, mut full) = (DocumentCache::default(), DocumentCache::default());
        let mut patched = 0;
        for step in 0..150 {
            let f = rng.below(files.len() as u64) as usize;
            match rng.below(20) {
                0 if files.len() > 2 => {
                    std::fs::remove_file(dir.path().join(&files[f].0)).unwrap();
                    files.remove(f);
                }
                1 => {
                    let renamed = format!("r{step}.yaml");
                    std::fs::rename(dir.path().join(&files[f].0), dir.path().join(&renamed))
                        .unwrap();
                    files[f].0 = renamed;
                }
                2 => {
                    let docs = (0..3)
                        .map(|slot| document(&mut rng, regime, 4 + step, slot))
                        .collect();
                    files.push((format!("n{step}.yaml"), docs));
                    let (name, docs) = files.last().unwrap();
                    write_file(dir.path(), name, docs);
                }
                // The common edit: labels changed, the object the same.
                3..=12 => {
                    let (name, docs) = &mut files[f];
                    let slot = rng.below(docs.len().max(1) as u64) as usize;
                    if let Some(doc) = docs.get_mut(slot) {
                        *doc = match doc.contains("app: web") {
                            true => doc.replace("app: web", "app: db"),
                            false => doc.replace("app: db", "app: web"),
                        }
                        .replace("team: red", "team: green")
                        // A given address moved: allocated ones may move with it.
                        .replace("podIP: 10.244.0.1", "podIP: 10.244.0.2");
                    }
                    write_file(dir.path(), name, docs);
                }
                _ => {
                    let slot = rng.below(4) as usize;
                    let doc = document(&mut rng, regime, f, slot);
                    let (name, docs) = &mut files[f];
                    if slot < docs.len() {
                        docs[slot] = doc;
                    }
                    write_file(dir.path(), name, docs);
                }
            }
            let a = load_dir(dir.path(), incremental, true);
            let b = load_dir(dir.path(), full, false);
            assert_same_state(&a.state, &b.state, step);
            let pods =
                |s: &ClusterState| s.pods.iter().map(|p| (p.key(), p.ip)).collect::<Vec<_>>();
            assert_eq!(
                pods(&a.state),
                pods(&b.state),
                "seed {seed} step {step}: addresses"
            );
            assert_eq!(said(&a), said(&b), "seed {seed} step {step}");
            assert_eq!(b.patched, None);
            patched += a.patched.is_some() as usize;
            (incremental, full) = (a.cache, b.cache);
        }
        // Where both Pod objects and workloads make pods, which workloads stand for pods is
        // decided afresh on every change of either.
        let least = if regime == 2 { 20 } else { 25 };
        assert!(
            patched > least,
            "seed {seed}: {patched} of 150 made from the last load"
        );
    }
}
