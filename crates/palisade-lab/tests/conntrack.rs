//! Tracked connections and policy changes, in the kernel: a flow a policy allowed keeps going after
//! a policy that denies it is applied (established traffic is accepted first), and once the node's
//! tracked connections are forgotten (`conntrack::forget_connections`), its next packet is judged as a new
//! connection and dropped; strict mode's listing finds the flow and forgets it alone. Needs root
//! and `ip`.

mod support;

use palisade_dataplane::build;
use palisade_dataplane::conntrack::{forget_connections, Conntrack, Tuple};
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

/// A lab of the two pods, the client's flow to the server established (answered) under no
/// policy, then the denying policy applied: the lab, its guard and the client's socket.
fn established_then_denied(prefix: &str) -> (Lab, DownOnDrop, UdpSocket) {
    let open = engine(PODS);
    let (lab, teardown) = support::served_lab(prefix, open.state());
    build(&CompiledTable::of(&open, Audit::Annotated), None)
        .apply(Some(&lab.node))
        .unwrap();
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
    assert!(listing.capped && listing.tracked.is_empty(), "{listing:?}");
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
    let tracked = (listing.tracked.iter())
        .find(|t| t.judged() == flow && t.protocol == Protocol::Udp)
        .unwrap_or_else(|| panic!("{flow:?} not in {listing:?}"));
    conntrack.forget(tracked).expect("delete");
    conntrack
        .forget(tracked)
        .expect("deleting again: already gone is fine");
    assert!(!answered(&socket), "forgotten, its next packet is dropped");
}
