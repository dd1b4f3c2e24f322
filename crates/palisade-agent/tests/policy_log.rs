//! The policy action logging pipeline with synthetic verdict events (the kernel path is tested in the
//! lab tests of the `palisade` crate): NetworkLogging switches and delegation, attribution, record
//! fields, deny aggregation, key limit, rate limit and the drop counters.

use palisade_agent::metrics::Metrics;
use palisade_agent::policy_log::{ConfigChange, Limits, PolicyLogger};
use palisade_dataplane::events::{Action, VerdictEvent};
use palisade_model::{Loader, Protocol};
use palisade_policy::{Direction, Engine};
use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis-cart, namespace: shop}
spec:
  selector: {matchLabels: {app: redis-cart}}
  template:
    metadata: {labels: {app: redis-cart}}
    spec: {containers: [{name: redis, image: redis, ports: [{containerPort: 6379}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cartservice, namespace: shop}
spec:
  selector: {matchLabels: {app: cartservice}}
  template:
    metadata: {labels: {app: cartservice}}
    spec: {containers: [{name: cart, image: cart}]}
---
apiVersion: v1
kind: Pod
metadata: {name: rogue, namespace: shop, labels: {app: rogue}}
spec: {containers: [{name: sh, image: busybox}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: redis-from-cart, namespace: shop}
spec:
  podSelector: {matchLabels: {app: redis-cart}}
  ingress: [{from: [{podSelector: {matchLabels: {app: cartservice}}}], ports: [{port: 6379}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: redis-from-shop, namespace: shop, annotations: {"policy.network.gke.io/enable-logging": "true"}}
spec:
  podSelector: {matchLabels: {app: redis-cart}}
  ingress: [{from: [{podSelector: {}}], ports: [{port: 6379}, {port: 6380}]}]
"#;

fn namespace(annotated: bool) -> String {
    let a = if annotated {
        r#"annotations: {"policy.network.gke.io/enable-deny-logging": "true"}"#
    } else {
        ""
    };
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop, {a}}}\n---\n")
}

fn logging(allow: &str, deny: &str) -> String {
    format!(
        "---\napiVersion: networking.gke.io/v1alpha1\nkind: NetworkLogging\nmetadata: {{name: default}}\n\
         spec: {{cluster: {{allow: {allow}, deny: {deny}}}}}\n"
    )
}

fn engine(text: &str) -> Arc<Engine> {
    let mut loader = Loader::new();
    loader.load_str("t.yaml", text);
    let (state, diags) = loader.finish();
    // Only an invalid NetworkLogging (a case under test) may be rejected.
    let unexpected = diags.iter().filter(|d| {
        d.is_error()
            && !d
                .object
                .as_deref()
                .unwrap_or("")
                .starts_with("NetworkLogging")
    });
    assert_eq!(unexpected.count(), 0, "{diags:#?}");
    Arc::new(Engine::new(Arc::new(state)))
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    logger: PolicyLogger,
    metrics: Arc<Metrics>,
}

fn fixture(limits: Limits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("network/policy_action.log");
    let metrics = Arc::new(Metrics::new());
    let logger = PolicyLogger::new(&path, "node-a", &limits, None, metrics.clone()).unwrap();
    Fixture {
        _dir: dir,
        path,
        logger,
        metrics,
    }
}

/// A logger with default limits, configured with `allow`/`deny` switches on the shop cluster.
fn configured(allow: &str, deny: &str) -> (Fixture, Arc<Engine>) {
    let mut f = fixture(Limits::default());
    let e = engine(&format!(
        "{}{APP}{}",
        namespace(false),
        logging(allow, deny)
    ));
    f.logger.set_engine(e.clone());
    (f, e)
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ip_of(engine: &Engine, prefix: &str) -> IpAddr {
    let state = engine.state();
    state
        .pods
        .iter()
        .find(|p| p.name.starts_with(prefix))
        .and_then(|p| p.ip)
        .unwrap_or_else(|| panic!("no pod {prefix}"))
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)
}

/// An ingress event at redis-cart from the pod named `from`.
fn to_redis(engine: &Engine, from: &str, port: u16, allowed: bool, ms: u64) -> VerdictEvent {
    VerdictEvent {
        direction: Direction::Ingress,
        action: if allowed { Action::Allow } else { Action::Deny },
        src: ip_of(engine, from),
        dst: ip_of(engine, "redis-cart"),
        protocol: Protocol::Tcp,
        src_port: 40000 + ms as u16,
        dst_port: port,
        time: at(ms),
    }
}

fn metric(metrics: &Metrics, line_prefix: &str) -> f64 {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn nothing_is_logged_without_a_network_logging() {
    let mut f = fixture(Limits::default());
    let e = engine(&format!("{}{APP}", namespace(true)));
    assert_eq!(f.logger.set_engine(e.clone()), ConfigChange::Unchanged);
    f.logger.handle(&to_redis(&e, "rogue", 6379, false, 0));
    f.logger.handle(&to_redis(&e, "cartservice", 6379, true, 0));
    f.logger.flush_due(at(10_000));
    assert!(records(&f.path).is_empty());
    // Verdicts are still counted.
    let m = f.metrics.encode();
    assert!(m.contains(r#"palisade_policy_verdicts_total{direction="ingress",disposition="deny",namespace="shop",policy=""} 1"#), "{m}");
    assert!(m.contains(r#"palisade_policy_verdicts_total{direction="ingress",disposition="allow",namespace="shop",policy="shop/redis-from-cart"} 1"#), "{m}");
}

#[test]
fn denials_are_aggregated_per_flow_for_five_seconds() {
    let (mut f, e) = configured("{log: false}", "{log: true}");
    assert!(f.logger.switches().deny.log && !f.logger.switches().allow.log);
    for ms in [0, 1000, 2000, 4000] {
        f.logger.handle(&to_redis(&e, "rogue", 6379, false, ms));
    }
    f.logger.handle(&to_redis(&e, "rogue", 6380, false, 100));
    f.logger.flush_due(at(4999));
    assert!(records(&f.path).is_empty(), "the window is still open");
    assert_eq!(f.logger.next_due(), Some(at(5000)));
    f.logger.flush_due(at(5000));
    let r = records(&f.path);
    assert_eq!(r.len(), 1, "{r:#?}");
    let rogue = ip_of(&e, "rogue").to_string();
    let redis = ip_of(&e, "redis-cart");
    let redis_pod = e.state().pods[e.state().pod_by_ip(redis).unwrap()]
        .name
        .clone();
    let expected = serde_json::json!({
        "connection": {"src_ip": rogue, "dest_ip": redis.to_string(), "src_port": 40000,
                       "dest_port": 6379, "protocol": "tcp", "direction": "ingress"},
        "disposition": "deny",
        "src": {"pod_name": "rogue", "pod_namespace": "shop", "namespace": "shop"},
        "dest": {"pod_name": redis_pod, "workload_kind": "ReplicaSet",
                 "workload_name": redis_pod.rsplit_once('-').unwrap().0,
                 "pod_namespace": "shop", "namespace": "shop"},
        "count": 4,
        "node_name": "node-a",
        "timestamp": "2027-01-15T08:00:00.000000000Z",
    });
    assert_eq!(r[0], expected);
    f.logger.flush_due(at(5100));
    assert_eq!(records(&f.path).len(), 2, "the second flow's window");
}

#[test]
fn deny_delegation_follows_the_enforcing_namespace_annotation() {
    let mut f = fixture(Limits::default());
    let nl = logging("{log: false}", "{log: true, delegate: true}");
    let plain = engine(&format!("{}{APP}{nl}", namespace(false)));
    f.logger.set_engine(plain.clone());
    f.logger.handle(&to_redis(&plain, "rogue", 6379, false, 0));
    f.logger.flush_due(at(6000));
    assert!(records(&f.path).is_empty(), "namespace not annotated");
    // Annotating the namespace applies to new connections without a restart.
    let annotated = engine(&format!("{}{APP}{nl}", namespace(true)));
    assert_eq!(
        f.logger.set_engine(annotated.clone()),
        ConfigChange::Unchanged
    );
    f.logger
        .handle(&to_redis(&annotated, "rogue", 6379, false, 7000));
    f.logger.flush_due(at(13000));
    assert_eq!(records(&f.path).len(), 1);
}

#[test]
fn allow_records_list_every_permitting_policy_or_only_the_annotated_ones() {
    let (mut f, e) = configured("{log: true}", "{log: false}");
    f.logger.handle(&to_redis(&e, "cartservice", 6379, true, 0));
    // 6380 is allowed by one policy only.
    f.logger.handle(&to_redis(&e, "cartservice", 6380, true, 1));
    // Traffic to a pod no policy isolates is never recorded.
    let mut open = to_redis(&e, "rogue", 80, true, 3);
    (open.src, open.dst) = (ip_of(&e, "redis-cart"), ip_of(&e, "cartservice"));
    f.logger.handle(&open);
    let r = records(&f.path);
    let names = |v: &Value| -> Vec<String> {
        v["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(
                    (&p["namespace"], &p["kind"]),
                    (&"shop".into(), &"NetworkPolicy".into())
                );
                p["name"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(r.len(), 2, "{r:#?}");
    assert_eq!(names(&r[0]), ["redis-from-cart", "redis-from-shop"]);
    assert_eq!(names(&r[1]), ["redis-from-shop"]);
    assert_eq!(
        (r[0]["disposition"].as_str(), r[0]["count"].as_u64()),
        (Some("allow"), Some(1))
    );
    assert_eq!(r[0]["src"]["workload_kind"], "ReplicaSet");

    // Delegated: only the annotated policy is listed, and a flow allowed only by unannotated ones
    // is not recorded.
    let delegated = engine(&format!(
        "{}{}{}",
        namespace(false),
        APP.replace(
            "ports: [{port: 6379}, {port: 6380}]",
            "ports: [{port: 6380}]"
        ),
        logging("{log: true, delegate: true}", "{log: false}")
    ));
    f.logger.set_engine(delegated.clone());
    f.logger
        .handle(&to_redis(&delegated, "cartservice", 6379, true, 10));
    f.logger
        .handle(&to_redis(&delegated, "cartservice", 6380, true, 11));
    let r = records(&f.path);
    assert_eq!(r.len(), 3, "{r:#?}");
    assert_eq!(names(&r[2]), ["redis-from-shop"]);
    assert_eq!(r[2]["connection"]["dest_port"], 6380);
}

#[test]
fn an_invalid_network_logging_keeps_the_previous_configuration() {
    let mut f = fixture(Limits::default());
    let base = format!("{}{APP}", namespace(false));
    f.logger.set_engine(engine(&format!(
        "{base}{}",
        logging("{log: false}", "{log: true}")
    )));
    let invalid = engine(&format!(
        "{base}{}",
        logging("{log: false}", "{log: false, delegate: true}")
    ));
    assert!(
        matches!(f.logger.set_engine(invalid.clone()), ConfigChange::Invalid(r) if r.contains("delegate"))
    );
    assert!(f.logger.switches().deny.log);
    f.logger
        .handle(&to_redis(&invalid, "rogue", 6379, false, 0));
    f.logger.flush_due(at(5000));
    assert_eq!(records(&f.path).len(), 1);
    assert_eq!(
        metric(
            &f.metrics,
            r#"palisade_network_logging_config_total{reason="InvalidNetworkLogging"}"#
        ),
        1.0
    );
    // Deleting the object turns logging off.
    assert!(matches!(f.logger.set_engine(engine(&base)), ConfigChange::Updated(s) if !s.deny.log));
}

#[test]
fn a_flood_is_bounded_by_the_key_limit_and_the_rate_limit() {
    let (mut f, e) = configured("{log: false}", "{log: true}");
    // 5,000 denied attempts in one second, each to another port: 5,000 keys.
    for i in 0..5000u64 {
        f.logger
            .handle(&to_redis(&e, "rogue", 10000 + i as u16, false, i / 5));
    }
    assert_eq!(
        metric(&f.metrics, "palisade_policy_log_open_aggregation_keys"),
        3000.0
    );
    f.logger.flush_due(at(6000));
    assert_eq!(records(&f.path).len(), 500, "burst of 500");
    // Every record of the second second (more windows closing) is limited to the rate again.
    f.logger.flush_due(at(7000));
    let written = records(&f.path).len();
    assert_eq!(written, 500, "nothing was left open after the first flush");
    let dropped = |reason: &str| {
        metric(
            &f.metrics,
            &format!(r#"palisade_policy_log_dropped_total{{reason="{reason}"}}"#),
        )
    };
    assert_eq!(dropped("aggregation_full"), 2000.0);
    assert_eq!(dropped("rate_limit"), 2500.0);
    assert_eq!(
        metric(
            &f.metrics,
            r#"palisade_policy_log_records_total{disposition="deny"}"#
        ),
        500.0
    );
    assert_eq!(
        metric(&f.metrics, "palisade_policy_log_open_aggregation_keys"),
        0.0
    );
}

#[test]
fn audit_events_are_deny_records_marked_audit_and_aggregated_apart() {
    let (mut f, e) = configured("{log: false}", "{log: true}");
    let mut audited = to_redis(&e, "rogue", 6379, false, 0);
    audited.action = Action::Audit;
    f.logger.handle(&audited);
    f.logger.handle(&audited);
    f.logger.handle(&to_redis(&e, "rogue", 6379, false, 1));
    f.logger.flush_due(at(5001));
    let r = records(&f.path);
    assert_eq!(r.len(), 2, "{r:#?}");
    assert_eq!(
        (&r[0]["audit"], &r[0]["count"], &r[0]["disposition"]),
        (&true.into(), &2.into(), &"deny".into())
    );
    assert!(
        r[1].get("audit").is_none(),
        "a real denial carries no audit field"
    );
    assert_eq!(
        metric(
            &f.metrics,
            r#"palisade_policy_audit_verdicts_total{direction="ingress",disposition="deny",namespace="shop",policy=""}"#
        ),
        2.0
    );
}
