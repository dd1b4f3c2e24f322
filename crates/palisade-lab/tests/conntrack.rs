//! Tracked connections and policy changes, in the kernel: a flow a policy allowed keeps going after
//! a policy that denies it is applied (established traffic is accepted first), and once the node's
//! tracked connections are forgotten (`conntrack::forget_connections`), its next packet is judged as a new
//! connection and dropped. Needs root and `ip`.

mod support;

use palisade_dataplane::build;
use palisade_dataplane::conntrack::forget_connections;
use palisade_dataplane::netns::in_netns;
use palisade_model::PodKey;
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

#[test]
fn established_flows_survive_a_denying_policy_until_forgotten() {
    let open = engine(PODS);
    let (lab, _teardown) = support::served_lab("k", open.state());
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
    forget_connections(&lab.node).expect("conntrack flush");
    assert!(
        !answered(&socket),
        "forgotten, the flow's next packet is a new connection, which the policy drops"
    );
}
