//! Verdict events from the kernel: allowed and dropped first packets reach an NFLOG reader in the
//! node namespace with direction, verdict, addresses and ports; audit mode lets would-be denials
//! through and reports them. Needs root, `ip` and `nft`.

mod support;

use palisade_dataplane::build;
use palisade_dataplane::events::{Action, EventReader};
use palisade_dataplane::netns::{in_netns, within_netns};
use palisade_lab::{self as lab, Transport};
use palisade_model::Protocol;
use palisade_policy::{Audit, CompiledTable, Direction};
use std::net::SocketAddr;
use std::time::Duration;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ev, labels: {app: client}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
status: {podIP: 10.77.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: ev, labels: {app: server}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
status: {podIP: 10.77.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-client, namespace: ev}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 80}]}]
"#;

#[test]
fn allowed_and_dropped_first_packets_are_reported() {
    let engine = support::engine(CLUSTER);
    let (lab, _teardown) = support::served_lab("v", engine.state());
    build(&CompiledTable::of(&engine, Audit::Annotated), None)
        .apply(Some(&lab.node))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = within_netns(Some(&lab.node), EventReader::open).expect("NFLOG bind");
    std::thread::spawn(move || {
        let mut reader = reader;
        while let Ok(Some(e)) = reader.next_event(None) {
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    let (client, server) = (&lab.pods[0], &lab.pods[1]);
    assert_eq!(client.key.to_string(), "ev/client");
    let connects = |from: &lab::LabPod, to: &lab::LabPod| {
        let to = SocketAddr::new(to.ip, 80);
        lab::probe(&from.netns, to, Transport::Tcp, Duration::from_millis(300)).unwrap()
    };
    // Every event until none has come for half a second.
    let drain = || -> Vec<_> {
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_millis(500)).ok()).collect()
    };
    assert!(connects(client, server));
    assert!(!connects(server, client));
    let events = drain();
    let allowed = events
        .iter()
        .find(|e| e.action == Action::Allow)
        .unwrap_or_else(|| panic!("no allow event in {events:?}"));
    assert_eq!(allowed.direction, Direction::Ingress);
    assert_eq!((allowed.src, allowed.dst), (client.ip, server.ip));
    assert_eq!((allowed.protocol, allowed.dst_port), (Protocol::Tcp, 80));
    assert_eq!(allowed.enforcing(), server.ip);
    assert_eq!(
        events.iter().filter(|e| e.action == Action::Allow).count(),
        1,
        "only the first packet of a connection: {events:?}"
    );
    let dropped: Vec<_> = events.iter().filter(|e| e.action == Action::Deny).collect();
    assert!(!dropped.is_empty(), "no drop event in {events:?}");
    assert!(dropped.iter().all(|e| e.direction == Direction::Ingress
        && e.src == server.ip
        && e.dst == client.ip
        && e.dst_port == 80));
    assert!(dropped[0].src_port > 0);

    // Events carry the packets' arrival times, not the time their NFLOG batch (up to 10 ms) was
    // read: two datagrams 3 ms apart, dropped, are 3 ms apart in their events.
    let target = client.ip;
    in_netns(&server.netns, move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.send_to(b"1", SocketAddr::new(target, 9001)).unwrap();
        std::thread::sleep(Duration::from_millis(3));
        socket.send_to(b"2", SocketAddr::new(target, 9002)).unwrap();
    })
    .join()
    .unwrap()
    .unwrap();
    let events = drain();
    let at = |port| {
        events
            .iter()
            .find(|e| e.dst_port == port)
            .unwrap_or_else(|| panic!("no event for port {port}: {events:?}"))
            .time
    };
    let gap = at(9002).duration_since(at(9001)).unwrap_or_default();
    assert!(gap >= Duration::from_micros(2500), "{gap:?}: {events:?}");

    // Audit mode: the same attempt passes, and is reported as an audit event.
    build(&CompiledTable::of(&engine, Audit::All), None)
        .apply(Some(&lab.node))
        .unwrap();
    assert!(connects(server, client));
    let events = drain();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].action, events[0].direction, events[0].dst),
        (Action::Audit, Direction::Ingress, client.ip)
    );
}
