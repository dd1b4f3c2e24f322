//! The lab: pods as network namespaces on this machine, routed through a "node" namespace where the
//! dataplane enforces, so real packets meet real kernel rules with no cluster.
//!
//! Layout for a lab named `L`: namespace `pal-L-node`, and per pod `pal-L-p<i>` joined to the node by a
//! veth (`eth0` in the pod, `pl<i>` in the node) with the pod's IP as a /32, a default route via a
//! link-local gateway with a permanent neighbour entry (proxy ARP is unreliable here), and a /32 route
//! back in the node (Calico style). Everything the lab creates carries the `pal-L-` prefix and is
//! recorded in a state file, so `down` removes exactly that, even after a crash.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The pods' default gateway, on every pod's veth.
const GATEWAY: &str = "169.254.1.1";

/// Why a lab operation failed.
#[derive(Debug)]
pub struct LabError(pub String);

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

type Result<T> = std::result::Result<T, LabError>;

/// One pod of the lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPod {
    /// `ns/name` in the manifests.
    pub key: String,
    /// Its network namespace.
    pub netns: String,
    /// Its address.
    pub ip: IpAddr,
}

/// A running lab, as recorded on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    /// Lab name (namespaces are `pal-<name>-...`).
    pub name: String,
    /// The node namespace, where the dataplane enforces.
    pub node: String,
    /// The pods.
    pub pods: Vec<LabPod>,
}

fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| LabError(format!("cannot run {}: {e}", args[0])))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn state_dir() -> PathBuf {
    PathBuf::from("/run/palisade")
}

fn state_file(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}.json"))
}

/// Fails with a clear message unless running as root.
pub fn require_root() -> Result<()> {
    if nix::unistd::Uid::effective().is_root() {
        Ok(())
    } else {
        Err(LabError(
            "the lab creates network namespaces and needs root: run it with sudo".into(),
        ))
    }
}

impl Lab {
    /// Creates the node and one namespace per pod (`(ns/name, ip)`, IPv4). On failure, removes what it
    /// created.
    pub fn up(name: &str, pods: &[(String, IpAddr)]) -> Result<Lab> {
        require_root()?;
        if state_file(name).exists() {
            return Err(LabError(format!(
                "lab {name:?} is already up; run `palisade lab down` first"
            )));
        }
        let lab = Lab {
            name: name.to_string(),
            node: format!("pal-{name}-node"),
            pods: pods
                .iter()
                .enumerate()
                .map(|(i, (key, ip))| LabPod {
                    key: key.clone(),
                    netns: format!("pal-{name}-p{i}"),
                    ip: *ip,
                })
                .collect(),
        };
        std::fs::create_dir_all(state_dir())
            .map_err(|e| LabError(format!("cannot create {}: {e}", state_dir().display())))?;
        let json = serde_json::to_string_pretty(&lab).expect("lab state serialises");
        std::fs::write(state_file(name), json)
            .map_err(|e| LabError(format!("cannot record lab state: {e}")))?;
        if let Err(e) = lab.build() {
            let _ = Lab::down(name);
            return Err(e);
        }
        Ok(lab)
    }

    fn build(&self) -> Result<()> {
        let node = self.node.as_str();
        run(&["ip", "netns", "add", node])?;
        run(&["ip", "-n", node, "link", "set", "lo", "up"])?;
        for (key, value) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ] {
            run(&[
                "ip",
                "netns",
                "exec",
                node,
                "sysctl",
                "-qw",
                &format!("{key}={value}"),
            ])?;
        }
        for (i, pod) in self.pods.iter().enumerate() {
            let IpAddr::V4(ip) = pod.ip else {
                return Err(LabError(format!(
                    "pod {}: the lab supports IPv4 pods only",
                    pod.key
                )));
            };
            let ns = pod.netns.as_str();
            let host_if = format!("pl{i}");
            run(&["ip", "netns", "add", ns])?;
            run(&[
                "ip", "link", "add", &host_if, "netns", node, "type", "veth", "peer", "name",
                "eth0", "netns", ns,
            ])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/32"),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", node, "link", "set", &host_if, "up"])?;
            run(&[
                "ip", "-n", ns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link",
            ])?;
            run(&[
                "ip", "-n", ns, "route", "add", "default", "via", GATEWAY, "dev", "eth0",
            ])?;
            let mac = std::fs::read_to_string(format!("/sys/class/net/{host_if}/address"))
                .ok()
                .or_else(|| link_mac(node, &host_if))
                .ok_or_else(|| LabError(format!("cannot read the MAC of {host_if}")))?;
            run(&[
                "ip",
                "-n",
                ns,
                "neigh",
                "add",
                GATEWAY,
                "lladdr",
                mac.trim(),
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])?;
            run(&[
                "ip",
                "-n",
                node,
                "route",
                "add",
                &format!("{ip}/32"),
                "dev",
                &host_if,
            ])?;
        }
        Ok(())
    }

    /// Reads the recorded state of lab `name`.
    pub fn load(name: &str) -> Result<Lab> {
        let text = std::fs::read_to_string(state_file(name))
            .map_err(|_| LabError(format!("lab {name:?} is not up")))?;
        serde_json::from_str(&text).map_err(|e| LabError(format!("corrupt lab state: {e}")))
    }

    /// Removes every namespace of lab `name` (by its `pal-<name>-` prefix) and its state file.
    pub fn down(name: &str) -> Result<()> {
        require_root()?;
        let prefix = format!("pal-{name}-");
        let out = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map_err(|e| LabError(format!("cannot run ip: {e}")))?;
        let mut errors = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let ns = line.split_whitespace().next().unwrap_or_default();
            if ns.starts_with(&prefix) {
                if let Err(e) = run(&["ip", "netns", "del", ns]) {
                    errors.push(e.0);
                }
            }
        }
        let _ = std::fs::remove_file(state_file(name));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError(errors.join("; ")))
        }
    }
}

fn link_mac(netns: &str, link: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["-n", netns, "-o", "link", "show", link])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let after = text.split("link/ether ").nth(1)?;
    after.split_whitespace().next().map(str::to_string)
}

/// Runs `f` on a new thread inside network namespace `netns`.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<std::io::Result<T>> {
    let path = format!("/var/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = File::open(&path)?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        Ok(f())
    })
}

/// Serves TCP (accept, then close) and UDP (echo) on `ports` of the pod's namespace, forever, on
/// background threads.
pub fn serve(netns: &str, tcp: &[u16], udp: &[u16]) -> std::io::Result<()> {
    for &port in tcp {
        let ready = in_netns(netns, move || -> std::io::Result<()> {
            let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    drop(stream);
                }
            });
            Ok(())
        });
        ready.join().expect("responder thread")??;
    }
    for &port in udp {
        let ready = in_netns(netns, move || -> std::io::Result<()> {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
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

/// Tries one connection from inside `netns` to `dst`; true if it got through within `timeout`.
pub fn probe(
    netns: &str,
    dst: SocketAddr,
    transport: Transport,
    timeout: Duration,
) -> std::io::Result<bool> {
    in_netns(netns, move || match transport {
        Transport::Tcp => TcpStream::connect_timeout(&dst, timeout).is_ok(),
        Transport::Udp => {
            let attempt = || -> std::io::Result<bool> {
                let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                socket.set_read_timeout(Some(timeout))?;
                socket.connect(dst)?;
                socket.send(b"palisade-probe")?;
                let mut buf = [0u8; 64];
                Ok(socket.recv(&mut buf).is_ok())
            };
            attempt().unwrap_or(false)
        }
    })
    .join()
    .expect("probe thread")
}
