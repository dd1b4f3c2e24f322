//! The lab: pods as network namespaces on this machine, routed through a "node" namespace where the
//! dataplane enforces, so real packets meet real kernel rules with no cluster. It is a tool for
//! trying and testing the dataplane, not part of it: no production crate depends on this one.
//!
//! Layout for a lab named `L`: namespace `pal-L-node`, and per pod `pal-L-p<i>` joined to the node by a
//! veth (`eth0` in the pod, `pl<i>` in the node) with the pod's IP as a /32, a default route via a
//! link-local gateway with a permanent neighbour entry (proxy ARP is unreliable here), and a /32 route
//! back in the node (Calico style). Services get a ClusterIP with DNAT in the node and their names in
//! each pod's `/etc/netns/<ns>/hosts` (which `ip netns exec` mounts over `/etc/hosts`). Everything the
//! lab creates carries the `pal-L-` prefix, and the processes it starts are recorded in a state file
//! (with their start time, so a PID reused since is left alone), so `down` removes exactly that,
//! even after a crash.

mod net;
mod process;
mod services;

pub use net::{probe, probe_matrix, serve, Transport};
pub use process::{stop, LabProcess, ProcessStatus, RecordedProcess, Stopped};
pub use services::{plan_services, render_services, ServicePlan};

use palisade_model::{ClusterState, Protocol};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pods' default gateway, on every pod's veth.
const GATEWAY: &str = "169.254.1.1";
/// The IPv6 gateway of every pod: a link-local address answered by the node's end of the veth.
const GATEWAY6: &str = "fe80::1";

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
    /// TCP container ports its responder serves.
    pub tcp: Vec<u16>,
    /// UDP container ports its responder serves.
    pub udp: Vec<u16>,
}

/// A lab, as recorded on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    /// Lab name (namespaces are `pal-<name>-...`).
    pub name: String,
    /// The node namespace, where the dataplane enforces.
    pub node: String,
    /// The pods.
    pub pods: Vec<LabPod>,
    /// The manifests folder the lab was built from (what the agent watches).
    pub manifests: Option<PathBuf>,
    /// Processes the lab started (responders, agent).
    pub processes: Vec<RecordedProcess>,
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

/// Where lab state and logs live.
pub fn state_dir() -> PathBuf {
    PathBuf::from("/run/palisade")
}

fn state_file(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}.json"))
}

/// The file the lab's responder process creates once every port is bound.
pub fn ready_file(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}.ready"))
}

/// The log of lab `name`'s background `process` (`agent` or `serve`).
pub fn process_log(name: &str, process: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}-{process}.log"))
}

/// Lab `name`'s policy action log unless `--policy-log` says otherwise (removed by `lab down`).
pub fn policy_log(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}-policy_action.log"))
}

/// Lab `name`'s observe socket unless `--observe-socket` says otherwise.
pub fn observe_socket(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}-observe.sock"))
}

/// The agent's last good state (its state file) of lab `name`.
pub fn last_good(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}-last-good.json"))
}

/// True for the network namespaces (and `/etc/netns` folders) lab `name` creates: `pal-<name>-node`
/// and `pal-<name>-p<N>` — and not those of a lab whose name merely starts with `<name>-`.
fn owns_netns(name: &str, ns: &str) -> bool {
    ns.strip_prefix(&format!("pal-{name}-"))
        .is_some_and(|rest| {
            rest == "node"
                || rest
                    .strip_prefix('p')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// True for the files of lab `name` in the state folder: its state and readiness files, the logs
/// of its processes, its policy action log (rotated ones too) and its observe socket.
fn owns_file(name: &str, file: &str) -> bool {
    let Some(rest) = file.strip_prefix(&format!("lab-{name}")) else {
        return false;
    };
    matches!(
        rest,
        ".json"
            | ".json.tmp"
            | ".ready"
            | "-agent.log"
            | "-serve.log"
            | "-observe.sock"
            | "-policy_action.log"
            | "-last-good.json"
    ) || rest
        .strip_prefix("-policy_action-")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()) && r.ends_with(".log"))
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
    /// Plans a lab for the non-hostNetwork pods of `state` that have an address (IPv4 or IPv6).
    /// Nothing is created yet.
    pub fn plan(name: &str, state: &ClusterState) -> Lab {
        let pods = state
            .pods
            .iter()
            .filter(|p| !p.host_network)
            .filter_map(|p| p.ip.map(|ip| (p, ip)))
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
                }
            })
            .collect();
        Lab {
            name: name.to_string(),
            node: format!("pal-{name}-node"),
            pods,
            manifests: None,
            processes: Vec::new(),
        }
    }

    /// Records the state, then creates the node and pod namespaces. On failure removes what it made.
    pub fn create(&self) -> Result<()> {
        require_root()?;
        if state_file(&self.name).exists() {
            return Err(LabError(format!(
                "lab {:?} is already up; run `palisade lab down` first",
                self.name
            )));
        }
        self.save()?;
        if let Err(e) = self.build() {
            let _ = Lab::down(&self.name);
            return Err(e);
        }
        Ok(())
    }

    /// Writes the state file (atomically: other lab processes may be reading it).
    pub fn save(&self) -> Result<()> {
        std::fs::create_dir_all(state_dir())
            .map_err(|e| LabError(format!("cannot create {}: {e}", state_dir().display())))?;
        let json = serde_json::to_string_pretty(self).expect("lab state serialises");
        let path = state_file(&self.name);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| LabError(format!("cannot record lab state: {e}")))
    }

    fn build(&self) -> Result<()> {
        let node = self.node.as_str();
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
        for (i, pod) in self.pods.iter().enumerate() {
            let ns = pod.netns.as_str();
            let host_if = format!("pl{i}");
            run(&["ip", "netns", "add", ns])?;
            run(&[
                "ip", "link", "add", &host_if, "netns", node, "type", "veth", "peer", "name",
                "eth0", "netns", ns,
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
            let mac = link_mac(node, &host_if)
                .ok_or_else(|| LabError(format!("cannot read the MAC of {host_if}")))?;
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
            run(&["ip", "-n", node, "route", "add", &address, "dev", &host_if])?;
        }
        Ok(())
    }

    /// Installs Services: DNAT in the node, and every pod's hosts file with the Service names.
    pub fn install_services(&self, services: &[ServicePlan]) -> Result<()> {
        palisade_dataplane::apply(&render_services(services), Some(&self.node))
            .map_err(|e| LabError(format!("services: {e}")))?;
        for pod in &self.pods {
            let namespace = pod.key.split('/').next().unwrap_or_default();
            let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
            hosts.push_str(&format!("{}\t{}\n", pod.ip, pod.key.replace('/', ".")));
            for s in services {
                let mut names = format!(
                    "{0}.{1}.svc.cluster.local {0}.{1}.svc {0}.{1}",
                    s.name, s.namespace
                );
                if s.namespace == namespace {
                    names = format!("{names} {}", s.name);
                }
                hosts.push_str(&format!("{}\t{names}\n", s.cluster_ip));
            }
            let dir = Path::new("/etc/netns").join(&pod.netns);
            std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(dir.join("hosts"), hosts))
                .map_err(|e| LabError(format!("cannot write {}: {e}", dir.display())))?;
        }
        Ok(())
    }

    /// Reads the recorded state of lab `name`.
    pub fn load(name: &str) -> Result<Lab> {
        let text = std::fs::read_to_string(state_file(name))
            .map_err(|_| LabError(format!("lab {name:?} is not up")))?;
        serde_json::from_str(&text).map_err(|e| LabError(format!("corrupt lab state: {e}")))
    }

    /// Every pod's address by `ns/name`, for [`palisade_model::Loader::pin_ips`]: what the agent
    /// and the engine read from the manifests must keep the addresses the lab was built with.
    pub fn pinned_ips(&self) -> Vec<(String, IpAddr)> {
        self.pods.iter().map(|p| (p.key.clone(), p.ip)).collect()
    }

    /// The pod with key `ns/name`.
    pub fn pod(&self, key: &str) -> Option<&LabPod> {
        self.pods.iter().find(|p| p.key == key)
    }

    /// Stops the recorded processes, removes every namespace of lab `name` (by its `pal-<name>-`
    /// prefix), their `/etc/netns` folders and the state file.
    pub fn down(name: &str) -> Result<()> {
        require_root()?;
        if let Ok(lab) = Lab::load(name) {
            for (p, outcome) in lab.processes.iter().zip(stop(&lab.processes)) {
                let pid = p.pid();
                match outcome {
                    Stopped::Skipped(ProcessStatus::PidReused | ProcessStatus::Unverifiable)
                    | Stopped::Failed(_) => tracing::warn!("lab {name}: process {pid} {outcome}"),
                    _ => tracing::info!("lab {name}: process {pid} {outcome}"),
                }
            }
        }
        let out = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map_err(|e| LabError(format!("cannot run ip: {e}")))?;
        let mut errors = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let ns = line.split_whitespace().next().unwrap_or_default();
            if owns_netns(name, ns) {
                if let Err(e) = run(&["ip", "netns", "del", ns]) {
                    errors.push(e.0);
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir("/etc/netns") {
            for e in entries.flatten() {
                if owns_netns(name, &e.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(state_dir()) {
            for e in entries.flatten() {
                if owns_file(name, &e.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError(errors.join("; ")))
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
    fn a_lab_owns_its_names_and_not_those_of_a_lab_named_like_it() {
        for ns in ["pal-a-node", "pal-a-p0", "pal-a-p12"] {
            assert!(owns_netns("a", ns), "{ns}");
        }
        for ns in [
            "pal-a-b-node",
            "pal-a-b-p0",
            "pal-a-p",
            "pal-a-px",
            "pal-ab-node",
            "other",
        ] {
            assert!(!owns_netns("a", ns), "{ns}");
        }
        for f in [
            "lab-a.json",
            "lab-a.ready",
            "lab-a-agent.log",
            "lab-a-serve.log",
            "lab-a-observe.sock",
            "lab-a-policy_action.log",
            "lab-a-policy_action-2026-11-30T10-00-00.123.log",
        ] {
            assert!(owns_file("a", f), "{f}");
        }
        for f in [
            "lab-a-b.json",
            "lab-a-b-agent.log",
            "lab-a-b-policy_action.log",
            "lab-ab.json",
            "lab-a-notes.log",
        ] {
            assert!(!owns_file("a", f), "{f}");
        }
    }
}
