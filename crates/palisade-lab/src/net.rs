//! Doing things inside pod namespaces from this process: threads that enter a namespace to serve or
//! probe.

use palisade_dataplane::netns::in_netns;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// Serves TCP and UDP echo on `ports` of the pod's namespace, forever, on background threads; the
/// sockets are dual-stack (`[::]`), so IPv4 and IPv6 pods are served alike.
pub fn serve(netns: &str, tcp: &[u16], udp: &[u16]) -> std::io::Result<()> {
    for &port in tcp {
        let ready = in_netns(netns, move || -> std::io::Result<()> {
            let listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))?;
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut &stream, &mut &stream);
                    });
                }
            });
            Ok(())
        });
        ready.join().expect("responder thread")??;
    }
    for &port in udp {
        let ready = in_netns(netns, move || -> std::io::Result<()> {
            let socket = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))?;
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            });
            Ok(())
        });
        ready.join().expect("responder thread")??;
    }
    Ok(())
}

/// Transport of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connect.
    Tcp,
    /// A UDP request that the responder echoes.
    Udp,
}

/// Tries one connection from inside `netns` to `dst`; true if the network let it through within
/// `timeout`. A refusal (TCP reset, ICMP port unreachable) counts as through: packets reached the
/// destination pod, nothing listens there. Only silence — a drop — counts as blocked.
pub fn probe(
    netns: &str,
    dst: SocketAddr,
    transport: Transport,
    timeout: Duration,
) -> std::io::Result<bool> {
    let reached = |r: std::io::Result<()>| match r {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    };
    in_netns(netns, move || match transport {
        Transport::Tcp => reached(TcpStream::connect_timeout(&dst, timeout).map(drop)),
        Transport::Udp => {
            let attempt = || -> std::io::Result<()> {
                let any = match dst.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                };
                let socket = UdpSocket::bind((any, 0))?;
                socket.set_read_timeout(Some(timeout))?;
                socket.connect(dst)?;
                socket.send(b"palisade-probe")?;
                let mut buf = [0u8; 64];
                socket.recv(&mut buf).map(drop)
            };
            reached(attempt())
        }
    })
    .join()
    .expect("probe thread")
}

/// Probes every ordered pair of different `pods` (namespace, address) for every probe, in parallel;
/// `result[probe][src][dst]`, with a pod always reaching itself. Pairs of different address families
/// (an IPv4 and an IPv6 pod) cannot talk at all: they are not tried and count as blocked.
pub fn probe_matrix(
    pods: &[(String, std::net::IpAddr)],
    probes: &[(u16, Transport)],
    timeout: Duration,
) -> std::io::Result<Vec<Vec<Vec<bool>>>> {
    let n = pods.len();
    let mut result = vec![vec![vec![true; n]; n]; probes.len()];
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .filter(|&(i, j)| i != j)
        .collect();
    for (pi, &(port, transport)) in probes.iter().enumerate() {
        for &(i, j) in &pairs {
            result[pi][i][j] = pods[i].1.is_ipv6() == pods[j].1.is_ipv6();
        }
        let pairs: Vec<(usize, usize)> = pairs
            .iter()
            .copied()
            .filter(|&(i, j)| pods[i].1.is_ipv6() == pods[j].1.is_ipv6())
            .collect();
        // Bounded parallelism: a denied attempt costs the whole timeout.
        for batch in pairs.chunks(256) {
            let attempts: Vec<_> = batch
                .iter()
                .map(|&(i, j)| {
                    let netns = pods[i].0.clone();
                    let dst = SocketAddr::new(pods[j].1, port);
                    (
                        i,
                        j,
                        std::thread::spawn(move || probe(&netns, dst, transport, timeout)),
                    )
                })
                .collect();
            for (i, j, handle) in attempts {
                result[pi][i][j] = handle.join().expect("probe thread")?;
            }
        }
    }
    Ok(result)
}
