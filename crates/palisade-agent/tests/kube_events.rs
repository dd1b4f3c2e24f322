//! The Kubernetes Events the policy logger asks for, fed synthetic verdict events (the writer is
//! tested against an API server in the kube crate): `NetworkLogging` changes once per change,
//! denials at this node's pods with `--deny-events`, nothing for audit mode, drops counted.

use palisade_agent::metrics::Metrics;
use palisade_agent::policy_log::{Limits, PolicyLogger};
use palisade_dataplane::events::{Action, VerdictEvent};
use palisade_kube::events::{EventType, Occurrence, Queued, Recorder, Scope};
use palisade_model::{Loader, Protocol};
use palisade_policy::{Direction, Engine};
use std::sync::Arc;
use std::time::SystemTime;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: redis-0, namespace: shop, labels: {app: redis}}
spec: {nodeName: node-a, containers: [{name: redis, image: redis, ports: [{containerPort: 6379}]}]}
status: {podIP: 10.42.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-0, namespace: shop, labels: {app: cart}}
spec: {nodeName: node-a, containers: [{name: cart, image: cart}]}
status: {podIP: 10.42.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: rogue-1, namespace: shop, labels: {app: rogue}}
spec: {nodeName: node-b, containers: [{name: sh, image: busybox}]}
status: {podIP: 10.42.1.5}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: redis-from-cart, namespace: shop}
spec:
  podSelector: {matchLabels: {app: redis}}
  ingress: [{from: [{podSelector: {matchLabels: {app: cart}}}], ports: [{port: 6379}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: rogue-isolated, namespace: shop}
spec:
  podSelector: {matchLabels: {app: rogue}}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cart-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: cart}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: redis}}}], ports: [{port: 6379}]}]
"#;

fn logging(deny: &str) -> String {
    format!(
        "---\napiVersion: networking.gke.io/v1alpha1\nkind: NetworkLogging\nmetadata: {{name: default}}\n\
         spec: {{cluster: {{allow: {{log: false}}, deny: {deny}}}}}\n"
    )
}

fn engine(text: &str) -> Arc<Engine> {
    let mut loader = Loader::new();
    loader.load_str("t.yaml", text);
    let (state, _) = loader.finish();
    Arc::new(Engine::new(Arc::new(state)))
}

struct Fixture {
    _dir: tempfile::TempDir,
    logger: PolicyLogger,
    queued: Queued,
    metrics: Arc<Metrics>,
}

/// A logger on node-a whose Events queue holds `capacity`, with deny Events when `deny_events`.
fn fixture(capacity: usize, deny_events: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let (recorder, queued) = Recorder::bounded(capacity, metrics.event_drops());
    let path = dir.path().join("policy_action.log");
    let logger = PolicyLogger::new(&path, "node-a", &Limits::default(), None, metrics.clone())
        .unwrap()
        .with_events(recorder, deny_events.then(|| "node-a".to_string()));
    Fixture {
        _dir: dir,
        logger,
        queued,
        metrics,
    }
}

fn drain(queued: &mut Queued) -> Vec<Occurrence> {
    std::iter::from_fn(|| queued.try_next()).collect()
}

fn verdict(direction: Direction, action: Action, src: &str, dst: &str, port: u16) -> VerdictEvent {
    VerdictEvent {
        direction,
        action,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        protocol: Protocol::Tcp,
        src_port: 40000,
        dst_port: port,
        time: SystemTime::now(),
    }
}

fn metric(metrics: &Metrics, line_prefix: &str) -> f64 {
    (metrics.encode().lines())
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn a_drop_at_a_pod_of_this_node_is_a_warning_on_it_naming_the_peer_and_the_policies() {
    let mut f = fixture(100, true);
    let e = engine(CLUSTER);
    f.logger.set_engine(e);
    let redis = "10.42.0.10";
    f.logger.handle(&verdict(
        Direction::Ingress,
        Action::Deny,
        "10.42.1.5",
        redis,
        6379,
    ));
    let mut retry = verdict(Direction::Ingress, Action::Deny, "10.42.1.5", redis, 6379);
    retry.src_port = 40001;
    f.logger.handle(&retry);
    f.logger.handle(&verdict(
        Direction::Ingress,
        Action::Deny,
        "203.0.113.9",
        redis,
        6379,
    ));
    let told = drain(&mut f.queued);
    assert_eq!(told.len(), 3, "{told:#?}");
    let first = &told[0];
    assert_eq!(
        first.note,
        "connection from shop/rogue-1 to 10.42.0.10:6379/TCP denied: isolated by NetworkPolicy shop/redis-from-cart"
    );
    assert_eq!(
        (first.type_, first.reason.as_str(), first.scope),
        (EventType::Warning, "PolicyDenied", Scope::Node)
    );
    let r = &first.regarding;
    assert_eq!(
        (
            r.api_version.as_str(),
            r.kind.as_str(),
            r.namespace.as_deref(),
            r.name.as_str()
        ),
        ("v1", "Pod", Some("shop"), "redis-0")
    );
    assert_eq!(told[1].key, first.key, "another source port: the same flow");
    assert!(
        told[2]
            .note
            .starts_with("connection from 203.0.113.9 to 10.42.0.10:6379/TCP denied"),
        "{}",
        told[2].note
    );
    assert_ne!(told[2].key, first.key);
}

#[test]
fn an_egress_drop_names_the_destination() {
    let mut f = fixture(100, true);
    f.logger.set_engine(engine(CLUSTER));
    let cart = "10.42.0.11";
    for dst in ["93.184.216.34", "10.42.1.5"] {
        f.logger
            .handle(&verdict(Direction::Egress, Action::Deny, cart, dst, 443));
    }
    let notes: Vec<String> = drain(&mut f.queued).into_iter().map(|o| o.note).collect();
    assert_eq!(
        notes,
        [
            "connection to 93.184.216.34:443/TCP denied: isolated for egress by NetworkPolicy shop/cart-egress",
            "connection to shop/rogue-1 at 10.42.1.5:443/TCP denied: isolated for egress by NetworkPolicy shop/cart-egress",
        ]
    );
}

#[test]
fn no_deny_event_for_audit_allow_another_nodes_pod_or_without_the_flag() {
    let mut f = fixture(100, true);
    f.logger.set_engine(engine(CLUSTER));
    let (rogue, redis, cart) = ("10.42.1.5", "10.42.0.10", "10.42.0.11");
    f.logger.handle(&verdict(
        Direction::Ingress,
        Action::Audit,
        rogue,
        redis,
        6379,
    ));
    f.logger.handle(&verdict(
        Direction::Ingress,
        Action::Allow,
        cart,
        redis,
        6379,
    ));
    // rogue-1 is isolated, but on node-b: its agent tells that.
    f.logger
        .handle(&verdict(Direction::Ingress, Action::Deny, cart, rogue, 80));
    assert_eq!(drain(&mut f.queued), []);

    let mut f = fixture(100, false);
    f.logger.set_engine(engine(CLUSTER));
    f.logger.handle(&verdict(
        Direction::Ingress,
        Action::Deny,
        rogue,
        redis,
        6379,
    ));
    assert_eq!(drain(&mut f.queued), []);
}

#[test]
fn a_network_logging_change_is_told_once() {
    let mut f = fixture(100, false);
    let valid = format!("{CLUSTER}{}", logging("{log: true}"));
    f.logger.set_engine(engine(&valid));
    f.logger.set_engine(engine(&valid));
    let told = drain(&mut f.queued);
    assert_eq!(told.len(), 1, "{told:#?}");
    let update = &told[0];
    assert_eq!(
        (update.type_, update.reason.as_str(), update.scope),
        (EventType::Normal, "UpdateNetworkLogging", Scope::Cluster)
    );
    assert!(
        update
            .note
            .contains("spec.cluster.deny {log: true, delegate: false}"),
        "{}",
        update.note
    );
    let r = &update.regarding;
    assert_eq!(
        (
            r.api_version.as_str(),
            r.kind.as_str(),
            r.namespace.as_deref(),
            r.name.as_str()
        ),
        (
            "networking.gke.io/v1alpha1",
            "NetworkLogging",
            None,
            "default"
        )
    );

    let invalid = format!("{CLUSTER}{}", logging("{log: false, delegate: true}"));
    f.logger.set_engine(engine(&invalid));
    f.logger.set_engine(engine(&invalid));
    let told = drain(&mut f.queued);
    assert_eq!(told.len(), 1, "once per change, not per pass: {told:#?}");
    let rejected = &told[0];
    assert_eq!(
        (rejected.type_, rejected.reason.as_str()),
        (EventType::Warning, "InvalidNetworkLogging")
    );
    assert!(rejected.note.contains("delegate"), "{}", rejected.note);
    assert!(
        rejected
            .note
            .ends_with("the previous logging configuration stays in effect"),
        "{}",
        rejected.note
    );
    assert!(f.logger.switches().deny.log, "the previous one stays");
    assert_eq!(
        metric(
            &f.metrics,
            r#"palisade_network_logging_config_total{reason="InvalidNetworkLogging"}"#
        ),
        1.0
    );
    // Valid again, as before the rejection: nothing changed in effect.
    f.logger.set_engine(engine(&valid));
    assert_eq!(drain(&mut f.queued), []);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let mut f = fixture(1, true);
    f.logger.set_engine(engine(CLUSTER));
    for port in [6379, 6380, 6381] {
        f.logger.handle(&verdict(
            Direction::Ingress,
            Action::Deny,
            "10.42.1.5",
            "10.42.0.10",
            port,
        ));
    }
    assert_eq!(drain(&mut f.queued).len(), 1);
    assert_eq!(
        metric(
            &f.metrics,
            r#"palisade_kube_events_dropped_total{reason="queue_full"}"#
        ),
        2.0
    );
}
