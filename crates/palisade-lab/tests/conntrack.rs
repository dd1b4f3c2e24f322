//! Tracked connections and policy changes, in the kernel: a flow a policy allowed keeps going after
//! a policy that denies it is applied (established traffic is accepted first), and once the node's
//! tracked connections are forgotten (`conntrack::forget_connections`), its next packet is judged as a new
//! connection and dropped; strict mode's listing finds the flow and forgets it alone. Needs root
//! and `ip`.

mod support;

use palisade_dataplane::build;
use palisade_dataplane::conntrack::{
    enable_accounting, forget_connections, Conntrack, Counters, Endings, Tuple,
};
use palisade_dataplane::netns::in_netns;
use palisade_lab::{DownOnDrop, Lab};
use palisade_model::{PodKey, Protocol};
use palisade_policy::{Audit, CompiledTable};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use support::engine;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ct, labels: {app: client}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 53, protocol: UDP}]}]}
status: {podIP: 10.78.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: ct, labels: {app: server}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 53, protocol: UDP}]}]}
status: {podIP: 10.78.0.2}
"#;

/// The server accepts nothing.
const DENY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: ct}
spec: {podSelector: {matchLabels: {app: server}}, policyTypes: [Ingress]}
"#;

/// True if a datagram on `socket` gets its echo back.
fn answered(socket: &UdpSocket) -> bool {
    let mut buf = [0u8; 16];
    socket.send(b"ping").is_ok() && socket.recv(&mut buf).is_ok()
}

/// A lab of the two pods under no policy (`before` run in its node first), and the client's
/// flow to the server established (answered): the lab, its guard and the client's socket.
fn established(prefix: &str, before: impl FnOnce(&Lab)) -> (Lab, DownOnDrop, UdpSocket) {
    let open = engine(PODS);
    let (lab, teardown) = support::served_lab(prefix, open.state());
    build(&CompiledTable::of(&open, Audit::Annotated), None)
        .apply(Some(&lab.node))
        .unwrap();
    before(&lab);
    // One socket, one flow (same source port) throughout.
    let server: SocketAddr = "10.78.0.2:53".parse().unwrap();
    let socket = in_netns(
        &lab.pod(&PodKey::new("ct", "client"))
            .expect("lab pod")
            .netns,
        move || {
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            socket.set_read_timeout(Some(Duration::from_millis(500)))?;
            socket.connect(server)?;
            Ok::<_, std::io::Error>(socket)
        },
    )
    .join()
    .unwrap()
    .unwrap()
    .unwrap();
    assert!(answered(&socket), "no policy: the flow is allowed");
    (lab, teardown, socket)
}

/// [`established`], then the denying policy applied.
fn established_then_denied(prefix: &str) -> (Lab, DownOnDrop, UdpSocket) {
    let (lab, teardown, socket) = established(prefix, |_| {});
    build(
        &CompiledTable::of(&engine(&format!("{PODS}---\n{DENY}")), Audit::Annotated),
        None,
    )
    .apply(Some(&lab.node))
    .unwrap();
    assert!(
        answered(&socket),
        "the established flow outlives the policy change"
    );
    (lab, teardown, socket)
}

/// The flow log's kernel half: with accounting on, a listing counts each way's packets and bytes
/// (a 4-byte datagram is 32 bytes with its IP and UDP headers), and a connection forgotten is
/// heard of with its last counters.
#[test]
fn connections_are_counted_and_their_endings_heard() {
    let mut endings = None;
    let (lab, _teardown, socket) = established("a", |lab| {
        enable_accounting(Some(&lab.node)).expect("accounting on");
        // Connections tracked from now on are told when they end.
        endings = Some(Endings::open(Some(&lab.node)).expect("conntrack endings"));
    });
    assert!(answered(&socket));
    let port = socket.local_addr().unwrap().port();
    let mut conntrack = Conntrack::open(Some(&lab.node)).unwrap();
    let listing = conntrack.list(1000).unwrap();
    let entry = (listing.entries.iter())
        .find(|e| e.tracked.original.src_port == port && e.tracked.protocol == Protocol::Udp)
        .unwrap_or_else(|| panic!("port {port} not in {listing:?}"));
    let counted = |packets, bytes| Counters {
        packets_sent: packets,
        bytes_sent: bytes,
        packets_received: packets,
        bytes_received: bytes,
    };
    assert_eq!(
        entry.counters,
        Some(counted(2, 64)),
        "two datagrams each way"
    );
    assert!(!entry.closed, "UDP has no close");
    conntrack.forget(&entry.tracked).unwrap();
    let ended = endings.unwrap().next(Duration::from_secs(1)).unwrap();
    assert_eq!(
        ended.map(|e| (e.tracked, e.counters)),
        Some((entry.tracked, entry.counters))
    );
}

#[test]
fn established_flows_survive_a_denying_policy_until_forgotten() {
    let (lab, _teardown, socket) = established_then_denied("k");
    forget_connections(&lab.node).expect("conntrack flush");
    assert!(
        !answered(&socket),
        "forgotten, the flow's next packet is a new connection, which the policy drops"
    );
}

/// Strict mode's kernel half: the flow is listed (as the policy judged it), forgetting that one
/// entry drops its next packet, and a listing stops at its cap, saying so.
#[test]
fn one_tracked_flow_is_listed_and_forgotten() {
    let (lab, _teardown, socket) = established_then_denied("c");
    let mut capped = Conntrack::open(Some(&lab.node)).unwrap();
    let listing = capped.list(0).unwrap();
    assert!(listing.capped && listing.entries.is_empty(), "{listing:?}");
    let mut conntrack = Conntrack::open(Some(&lab.node)).expect("ctnetlink socket");
    let listing = conntrack.list(1000).expect("listing");
    assert!(!listing.capped, "{listing:?}");
    let port = socket.local_addr().unwrap().port();
    let flow = Tuple {
        src: "10.78.0.1".parse().unwrap(),
        dst: "10.78.0.2".parse().unwrap(),
        src_port: port,
        dst_port: 53,
    };
    let tracked = (listing.entries.iter().map(|e| &e.tracked))
        .find(|t| t.judged() == flow && t.protocol == Protocol::Udp)
        .unwrap_or_else(|| panic!("{flow:?} not in {listing:?}"));
    conntrack.forget(tracked).expect("delete");
    conntrack
        .forget(tracked)
        .expect("deleting again: already gone is fine");
    assert!(!answered(&socket), "forgotten, its next packet is dropped");
}
