//! Strict mode in the lab, as root, with real packets: a long-lived TCP connection (cartservice →
//! redis-cart's echo responder) that a policy added later denies is cut within a second under
//! `--strict`, with a deny record `"reason": "strict"` and the metric; without it, it keeps running.

mod support;

use palisade_lab::LabPod;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;
use support::{connects, records, sample, scrape, within, Demo};

/// Isolates cartservice's egress, allowing nothing: its connection to redis-cart is now denied.
const DENY_EGRESS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cartservice-no-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: cartservice}}
  policyTypes: [Egress]
"#;

const DENY_LOGGING: &str = "apiVersion: networking.gke.io/v1alpha1\nkind: NetworkLogging\n\
    metadata: {name: default}\nspec: {cluster: {allow: {log: false}, deny: {log: true}}}\n";

/// A lab on the demo with deny logging (1 s windows) and metrics, `extra` options added; its
/// policy log and metrics address.
struct Setup {
    demo: Demo,
    log: PathBuf,
    metrics: String,
    cart: LabPod,
    redis: LabPod,
    /// The lab node's network namespace.
    node: String,
}

fn up(prefix: &str, extra: &[&str]) -> Setup {
    let demo = Demo::new(prefix);
    std::fs::write(demo.manifests.join("zz-logging.yaml"), DENY_LOGGING).unwrap();
    let log = demo.dir.path().join("log/policy_action.log");
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let mut args = vec![
        "--policy-log",
        log.to_str().unwrap(),
        "--deny-aggregation-window",
        "1s",
        "--metrics-addr",
        &metrics,
    ];
    args.extend_from_slice(extra);
    let lab = demo.up(&args);
    let cart = lab.find_pod("default/cartservice").unwrap().clone();
    let redis = lab.find_pod("default/redis-cart").unwrap().clone();
    Setup {
        demo,
        log,
        metrics,
        cart,
        redis,
        node: lab.node.clone(),
    }
}

/// A TCP connection from `from`'s namespace to `to`:6379 (the lab's echo responder).
fn connect(from: &LabPod, to: &LabPod) -> TcpStream {
    support::connect_from(
        from,
        SocketAddr::new(to.ip, 6379),
        Duration::from_millis(300),
    )
}

/// True if a message on `stream` comes back.
fn echoes(mut stream: &TcpStream) -> bool {
    let mut buf = [0u8; 4];
    stream.write_all(b"ping").is_ok() && stream.read_exact(&mut buf).is_ok() && &buf == b"ping"
}

/// What the lab's agent logged.
fn agent_log(setup: &Setup) -> String {
    let path = palisade_lab::process_log(&setup.demo.name, "agent");
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Brings a lab up with `extra`, opens the connection, adds the denying policy and waits until the
/// kernel denies new connections; the setup and the established connection.
fn deny_an_established_connection(prefix: &str, extra: &[&str]) -> (Setup, TcpStream) {
    let setup = up(prefix, extra);
    let stream = connect(&setup.cart, &setup.redis);
    assert!(echoes(&stream), "no policy on cartservice's egress yet");
    std::fs::write(setup.demo.manifests.join("zz-deny.yaml"), DENY_EGRESS).unwrap();
    (setup, stream)
}

#[test]
fn strict_mode_cuts_an_established_connection_a_new_policy_denies() {
    let (setup, stream) = deny_an_established_connection("s", &["--strict"]);
    // A client sending periodically (one busy both ways: the test below).
    let cut = within(Duration::from_millis(1500), || {
        std::thread::sleep(Duration::from_millis(100));
        !echoes(&stream)
    });
    assert!(
        cut.is_some(),
        "the connection still runs 1.5 s after the denying policy; the agent's log:\n{}",
        agent_log(&setup)
    );
    assert!(
        !connects(
            &setup.demo.name,
            &setup.cart.key,
            &setup.redis.ip.to_string(),
            6379
        ),
        "new connections are denied too"
    );
    let strict = |r: &Value| r["reason"] == "strict";
    assert!(
        within(Duration::from_secs(5), || records(&setup.log)
            .iter()
            .any(strict))
        .is_some(),
        "no strict deny record: {:#?}",
        records(&setup.log)
    );
    let all = records(&setup.log);
    let r = all.iter().find(|r| strict(r)).unwrap();
    let port = stream.local_addr().unwrap().port();
    assert_eq!(r["disposition"], "deny", "{r:#}");
    assert_eq!(
        r["connection"]["src_ip"],
        setup.cart.ip.to_string(),
        "{r:#}"
    );
    assert_eq!(r["connection"]["src_port"], port, "{r:#}");
    assert_eq!(
        r["connection"]["dest_ip"],
        setup.redis.ip.to_string(),
        "{r:#}"
    );
    assert_eq!(r["connection"]["dest_port"], 6379, "{r:#}");
    assert_eq!(r["connection"]["protocol"], "tcp", "{r:#}");
    assert_eq!(r["connection"]["direction"], "egress", "{r:#}");
    assert_eq!(r["src"]["pod_name"], setup.cart.key.name, "{r:#}");
    // Only the denied connection was cut: the kernel's own denial (the probe above) is a record
    // without a reason.
    assert_eq!(all.iter().filter(|r| strict(r)).count(), 1, "{all:#?}");
    let metrics = scrape(&setup.metrics);
    let cut = "palisade_strict_connections_cut_total{direction=\"egress\"}";
    assert_eq!(sample(&metrics, cut), 1.0, "{metrics}");
    assert_eq!(
        sample(&metrics, "palisade_strict_failures_total"),
        0.0,
        "{metrics}"
    );
}

#[test]
fn without_strict_mode_an_established_connection_keeps_running() {
    let (setup, stream) = deny_an_established_connection("n", &[]);
    let denied = within(Duration::from_secs(3), || {
        !connects(
            &setup.demo.name,
            &setup.cart.key,
            &setup.redis.ip.to_string(),
            6379,
        )
    });
    assert!(denied.is_some(), "the denying policy was not applied");
    for _ in 0..10 {
        assert!(echoes(&stream), "the established connection was cut");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let all = records(&setup.log);
    assert!(!all.iter().any(|r| r.get("reason").is_some()), "{all:#?}");
    let metrics = scrape(&setup.metrics);
    assert!(
        !metrics.contains("palisade_strict_connections_cut_total{"),
        "{metrics}"
    );
}

/// Sends on `stream` for `period` without waiting for the echoes (writes and reads time out
/// quickly), so that answers are in flight all along.
fn pump(mut stream: &TcpStream, period: Duration) {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let (chunk, mut buf) = (vec![b'x'; 64 << 10], vec![0u8; 1 << 20]);
    let start = std::time::Instant::now();
    while start.elapsed() < period {
        let _ = stream.write(&chunk);
        let _ = stream.read(&mut buf);
    }
}

/// True if `stream` still carries traffic: what was received already is read away (until 0.5 s
/// pass without any), then a message is sent, and its echo must come back within a second.
fn alive(mut stream: &TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    stream.write_all(b"still there?").is_ok() && matches!(stream.read(&mut buf), Ok(n) if n > 0)
}

/// A connection busy both ways has answers in flight whenever it is cut: the kernel must not
/// start tracking it again from the server's side (`nf_conntrack_tcp_loose` picks up mid-stream
/// packets, judged then by rules that allow them: here nothing isolates redis-cart's egress or
/// cartservice's ingress), so strict mode's table drops TCP packets that would start tracking a
/// connection in mid-stream.
#[test]
fn strict_mode_cuts_a_connection_busy_both_ways() {
    let (setup, stream) = deny_an_established_connection("b", &["--strict"]);
    // Cut while busy: sending all along, for as long as the cut may take.
    pump(&stream, Duration::from_secs(3));
    assert!(
        !alive(&stream),
        "the connection runs on after the cut; the agent's log:\n{}",
        agent_log(&setup)
    );
    let chain = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &setup.node,
            "nft",
            "list",
            "chain",
            "inet",
            "palisade",
            "forward",
        ])
        .output()
        .unwrap();
    let chain = String::from_utf8_lossy(&chain.stdout);
    assert!(
        chain.contains("ct state new tcp flags != syn / fin,syn,rst,ack drop"),
        "{chain}"
    );
}
