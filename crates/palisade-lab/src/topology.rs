//! The lab's namespaces, links, addresses and routes: planned from a cluster, created with `ip`,
//! recorded in a state file, and removed by name prefix (see the crate documentation for the
//! layout).

use crate::error::LabError;
use crate::nodes::LabNode;
use crate::paths::{owns_file, owns_netns, state_dir, state_file};
use crate::process::{stop, ProcessStatus, RecordedProcess, Stopped};
use crate::services::{render_services, ServicePlan};
use palisade_model::{ClusterState, PodInfo, PodKey, Protocol};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pods' default gateway, on every pod's veth.
const GATEWAY: &str = "169.254.1.1";
/// The IPv6 gateway of every pod: a link-local address answered by the node's end of the veth.
const GATEWAY6: &str = "fe80::1";

type Result<T> = std::result::Result<T, LabError>;

/// One pod of the lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPod {
    /// Which pod of the manifests it is.
    pub key: PodKey,
    /// Its network namespace.
    pub netns: String,
    /// Its address.
    pub ip: IpAddr,
    /// TCP container ports its responder serves.
    pub tcp: Vec<u16>,
    /// UDP container ports its responder serves.
    pub udp: Vec<u16>,
    /// The node it is on (an index into [`Lab::nodes`]; 0 in a state file without nodes).
    #[serde(default)]
    pub node: usize,
}

/// A lab, as recorded on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    /// Lab name (namespaces are `pal-<name>-...`).
    pub name: String,
    /// The first node's namespace (the only one of a single-node lab), where the dataplane
    /// enforces.
    pub node: String,
    /// The nodes (one for a state file written before labs had several).
    #[serde(default)]
    pub nodes: Vec<LabNode>,
    /// The pods.
    pub pods: Vec<LabPod>,
    /// The manifests folder the lab was built from (what the agent watches).
    pub manifests: Option<PathBuf>,
    /// Processes the lab started (responders, agent).
    pub processes: Vec<RecordedProcess>,
}

/// Runs a tool (`ip`) with its arguments; its standard error is the error when it fails.
pub(crate) fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|source| LabError::Tool {
            program: args[0].to_string(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Failed {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The pods a lab holds, with their addresses: those not on the host network that have one.
pub(crate) fn lab_pods(state: &ClusterState) -> impl Iterator<Item = (&PodInfo, IpAddr)> {
    (state.pods.iter())
        .filter(|p| !p.host_network)
        .filter_map(|p| p.ip.map(|ip| (&**p, ip)))
}

/// Fails with a clear message unless running as root.
pub fn require_root() -> Result<()> {
    if nix::unistd::Uid::effective().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

impl Lab {
    /// Plans a lab for the non-hostNetwork pods of `state` that have an address (IPv4 or IPv6).
    /// Nothing is created yet.
    pub fn plan(name: &str, state: &ClusterState) -> Lab {
        let pods = lab_pods(state)
            .enumerate()
            .map(|(i, (p, ip))| {
                let ports = |proto| {
                    let mut v: Vec<u16> = p
                        .ports
                        .iter()
                        .filter(|c| c.protocol == proto)
                        .map(|c| c.port)
                        .collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                };
                LabPod {
                    key: p.key(),
                    netns: format!("pal-{name}-p{i}"),
                    ip,
                    tcp: ports(Protocol::Tcp),
                    udp: ports(Protocol::Udp),
                    node: 0,
                }
            })
            .collect();
        let node = format!("pal-{name}-node");
        Lab {
            name: name.to_string(),
            nodes: vec![LabNode::single(&node)],
            node,
            pods,
            manifests: None,
            processes: Vec::new(),
        }
    }

    /// Records the state, then creates the node namespaces, the fabric joining them (several
    /// nodes) and the pod namespaces. On failure removes what it made.
    pub fn create(&self) -> Result<()> {
        require_root()?;
        if state_file(&self.name).exists() {
            return Err(LabError::AlreadyUp {
                name: self.name.clone(),
            });
        }
        self.save()?;
        let built = (self.nodes.iter())
            .try_for_each(|n| build_node(&n.netns))
            .and_then(|()| match self.nodes.len() {
                1 => Ok(()),
                _ => self.build_fabric(),
            })
            .and_then(|()| {
                (self.pods.iter().enumerate()).try_for_each(|(i, pod)| self.build_pod(i, pod))
            });
        if let Err(e) = built {
            let _ = Lab::down(&self.name);
            return Err(e);
        }
        Ok(())
    }

    /// Writes the state file (atomically: other lab processes may be reading it).
    pub fn save(&self) -> Result<()> {
        std::fs::create_dir_all(state_dir()).map_err(|source| LabError::StateDir {
            path: state_dir(),
            source,
        })?;
        let json = serde_json::to_string_pretty(self).expect("lab state serialises");
        let path = state_file(&self.name);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| LabError::Record { source })
    }

    /// Pod `i`'s namespace, its veth to its node (`eth0` in the pod, `pl<i>` in the node), its
    /// address, its routes both ways and its gateway's neighbour entry.
    fn build_pod(&self, i: usize, pod: &LabPod) -> Result<()> {
        let node = self
            .node_of(pod)
            .map_or(self.node.as_str(), |n| n.netns.as_str());
        let ns = pod.netns.as_str();
        let host_if = format!("pl{i}");
        run(&["ip", "netns", "add", ns])?;
        run(&[
            "ip", "link", "add", &host_if, "netns", node, "type", "veth", "peer", "name", "eth0",
            "netns", ns,
        ])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        let (prefix, gateway, family) = match pod.ip {
            IpAddr::V4(_) => (32, GATEWAY, "-4"),
            IpAddr::V6(_) => (128, GATEWAY6, "-6"),
        };
        let address = format!("{}/{prefix}", pod.ip);
        let mut add = vec!["ip", "-n", ns, "addr", "add", &address, "dev", "eth0"];
        if pod.ip.is_ipv6() {
            add.push("nodad"); // usable at once, no duplicate address detection
        }
        run(&add)?;
        run(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
        run(&["ip", "-n", node, "link", "set", &host_if, "up"])?;
        run(&[
            "ip", "-n", ns, family, "route", "add", gateway, "dev", "eth0", "scope", "link",
        ])?;
        run(&[
            "ip", "-n", ns, family, "route", "add", "default", "via", gateway, "dev", "eth0",
        ])?;
        let mac = link_mac(node, &host_if).ok_or_else(|| LabError::NoMac {
            link: host_if.clone(),
        })?;
        run(&[
            "ip",
            "-n",
            ns,
            "neigh",
            "add",
            gateway,
            "lladdr",
            &mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])?;
        run(&["ip", "-n", node, "route", "add", &address, "dev", &host_if])
    }

    /// Installs Services: DNAT in every node (a pod's own node translates its connections to a
    /// Service), and every pod's hosts file with the Service names.
    pub fn install_services(&self, services: &[ServicePlan]) -> Result<()> {
        let rules = render_services(services);
        for node in &self.nodes {
            palisade_dataplane::apply(&rules, Some(&node.netns)).map_err(LabError::Services)?;
        }
        for pod in &self.pods {
            let dir = Path::new("/etc/netns").join(&pod.netns);
            std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(dir.join("hosts"), hosts(pod, services)))
                .map_err(|source| LabError::Hosts { path: dir, source })?;
        }
        Ok(())
    }

    /// Reads the recorded state of lab `name`.
    pub fn load(name: &str) -> Result<Lab> {
        let path = state_file(name);
        let text = std::fs::read_to_string(&path).map_err(|source| LabError::NotUp {
            name: name.to_string(),
            source,
        })?;
        Lab::parse(&text)
    }

    /// A lab's state from its file's `text`; one written before labs had several nodes gets its
    /// one node.
    fn parse(text: &str) -> Result<Lab> {
        let mut lab: Lab =
            serde_json::from_str(text).map_err(|source| LabError::Corrupt { source })?;
        if lab.nodes.is_empty() {
            lab.nodes = vec![LabNode::single(&lab.node)];
        }
        Ok(lab)
    }

    /// Every pod's address by `ns/name`, for [`palisade_model::Loader::pin_ips`]: what the agent
    /// and the engine read from the manifests must keep the addresses the lab was built with.
    pub fn pinned_ips(&self) -> Vec<(PodKey, IpAddr)> {
        self.pods.iter().map(|p| (p.key.clone(), p.ip)).collect()
    }

    /// The pod `key`.
    pub fn pod(&self, key: &PodKey) -> Option<&LabPod> {
        self.pods.iter().find(|p| p.key == *key)
    }

    /// Stops the recorded processes, removes every namespace of lab `name` (by its `pal-<name>-`
    /// prefix), their `/etc/netns` folders and the state file.
    pub fn down(name: &str) -> Result<()> {
        require_root()?;
        if let Ok(lab) = Lab::load(name) {
            stop_processes(name, &lab.processes);
        }
        let out = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map_err(|source| LabError::Tool {
                program: "ip".into(),
                source,
            })?;
        let errors: Vec<LabError> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|ns| owns_netns(name, ns))
            .filter_map(|ns| run(&["ip", "netns", "del", ns]).err())
            .collect();
        let etc = Path::new("/etc/netns");
        remove_owned(
            etc,
            |entry| owns_netns(name, entry),
            std::fs::remove_dir_all::<PathBuf>,
        );
        remove_owned(
            &state_dir(),
            |entry| owns_file(name, entry),
            std::fs::remove_file::<PathBuf>,
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::Down(errors))
        }
    }
}

/// A node namespace, forwarding (IPv4 and IPv6) with no reverse-path filter.
fn build_node(node: &str) -> Result<()> {
    run(&["ip", "netns", "add", node])?;
    run(&["ip", "-n", node, "link", "set", "lo", "up"])?;
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv6.conf.all.forwarding", "1"),
        // No duplicate address detection: the node's veth ends must answer at once.
        ("net.ipv6.conf.all.accept_dad", "0"),
        ("net.ipv6.conf.default.accept_dad", "0"),
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
    Ok(())
}

/// A pod's `/etc/hosts`: itself, and every Service by its DNS names (the short name only in the
/// pod's own namespace).
fn hosts(pod: &LabPod, services: &[ServicePlan]) -> String {
    let namespace = &pod.key.namespace;
    let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
    hosts.push_str(&format!("{}\t{namespace}.{}\n", pod.ip, pod.key.name));
    for s in services {
        let mut names = format!(
            "{0}.{1}.svc.cluster.local {0}.{1}.svc {0}.{1}",
            s.name, s.namespace
        );
        if s.namespace == *namespace {
            names = format!("{names} {}", s.name);
        }
        hosts.push_str(&format!("{}\t{names}\n", s.cluster_ip));
    }
    hosts
}

/// Stops lab `name`'s recorded processes, logging what became of each.
fn stop_processes(name: &str, processes: &[RecordedProcess]) {
    for (p, outcome) in processes.iter().zip(stop(processes)) {
        let pid = p.pid();
        match outcome {
            Stopped::Skipped(ProcessStatus::PidReused | ProcessStatus::Unverifiable)
            | Stopped::Failed { .. } => tracing::warn!("lab {name}: process {pid} {outcome}"),
            _ => tracing::info!("lab {name}: process {pid} {outcome}"),
        }
    }
}

/// Removes with `remove` the entries of `dir` whose names `owned` accepts; what cannot be removed
/// is left.
fn remove_owned(
    dir: &Path,
    owned: impl Fn(&str) -> bool,
    remove: fn(PathBuf) -> std::io::Result<()>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if owned(&e.file_name().to_string_lossy()) {
            let _ = remove(e.path());
        }
    }
}

/// Removes lab `.0` when dropped, so a test or benchmark that fails still leaves nothing behind.
pub struct DownOnDrop(pub String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if let Err(e) = Lab::down(&self.0) {
            eprintln!("lab {} teardown: {e}", self.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_of_a_single_node_lab_from_before_nodes_still_loads() {
        let old = r#"{"name": "demo", "node": "pal-demo-node", "manifests": "/m",
            "pods": [{"key": "ns/a", "netns": "pal-demo-p0", "ip": "10.244.0.5", "tcp": [80], "udp": []}],
            "processes": [11, {"pid": 12, "start_time": 3, "boot_id": "b"}]}"#;
        let lab = Lab::parse(old).unwrap();
        assert_eq!(lab.nodes, [LabNode::single("pal-demo-node")]);
        assert_eq!(lab.node_of(&lab.pods[0]).unwrap().netns, "pal-demo-node");
        assert_eq!(
            lab.placed_on(Some("pal-demo-node")).unwrap(),
            None,
            "every pod"
        );
        // What it writes back reads the same.
        let again = Lab::parse(&serde_json::to_string(&lab).unwrap()).unwrap();
        assert_eq!(again, lab);
    }
}
