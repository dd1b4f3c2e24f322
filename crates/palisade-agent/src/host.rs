//! What the node must provide for the forward hook to see pod traffic: pods a CNI joins to a Linux
//! bridge (flannel, the `bridge` plugin) talk to each other at layer 2, which netfilter's IP hooks
//! see only with `br_netfilter` loaded and `net.bridge.bridge-nf-call-iptables` (and `-ip6tables`)
//! set. Without them policies are silently not enforced between pods of one bridge, so the agent
//! says so (log, readiness) rather than leave it to be found out.

use std::path::Path;

/// The bridges CNIs put pods on: flannel's and the `bridge` plugin's (`cni0`), kubenet's (`cbr0`),
/// kube-router's, Weave Net's. Another bridge (`docker0`, a VM's) may carry no pod at all: it is
/// warned about, not a failed readiness.
const POD_BRIDGES: [&str; 4] = ["cni0", "cbr0", "kube-bridge", "weave"];

/// A bridge whose traffic the forward hook does not see.
#[derive(Debug, PartialEq, Eq)]
pub struct BridgeProblem {
    /// What is wrong and how to fix it.
    pub message: String,
    /// One of the bridges is a CNI's pod bridge ([`POD_BRIDGES`]): pods are surely unenforced.
    pub pods: bool,
}

/// What is wrong, if anything: a bridge with ports on this host while bridged traffic bypasses the
/// IP hooks. `sys` and `proc` are where sysfs and procfs are mounted (`/sys`, `/proc`).
pub fn bridge_problem(sys: &Path, proc: &Path) -> Option<BridgeProblem> {
    let mut bridges: Vec<(String, usize)> = std::fs::read_dir(sys.join("class/net"))
        .ok()?
        .flatten()
        .filter_map(|link| {
            let name = link.file_name().to_string_lossy().into_owned();
            let ports = std::fs::read_dir(link.path().join("brif")).ok()?.count();
            (ports > 0).then_some((name, ports))
        })
        .collect();
    if bridges.is_empty() {
        return None;
    }
    bridges.sort();
    let off: Vec<&str> = ["iptables", "ip6tables"]
        .into_iter()
        .filter(|family| {
            let setting = proc.join(format!("sys/net/bridge/bridge-nf-call-{family}"));
            std::fs::read_to_string(setting).map_or(true, |v| v.trim() != "1")
        })
        .collect();
    if off.is_empty() {
        return None;
    }
    let named: Vec<String> = (bridges.iter().take(3))
        .map(|(name, ports)| format!("{name} ({ports} ports)"))
        .collect();
    let settings: Vec<String> = (off.iter())
        .map(|f| format!("net.bridge.bridge-nf-call-{f}"))
        .collect();
    let fix: Vec<String> = settings.iter().map(|s| format!("{s}=1")).collect();
    let pods = bridges
        .iter()
        .any(|(name, _)| POD_BRIDGES.contains(&name.as_str()));
    let message = format!(
        "bridge {} switches traffic at layer 2 and bridged packets skip the forward hook ({} not 1, or br_netfilter not loaded): policies are not enforced between pods on the same bridge; run `modprobe br_netfilter` and `sysctl -w {}`",
        named.join(", "),
        settings.join(", "),
        fix.join(" ")
    );
    Some(BridgeProblem { message, pods })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(bridge_ports: usize, settings: Option<(&str, &str)>) -> tempfile::TempDir {
        host_with("cni0", bridge_ports, settings)
    }

    fn host_with(bridge: &str, ports: usize, settings: Option<(&str, &str)>) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let net = root.path().join("sys/class/net");
        std::fs::create_dir_all(net.join("eth0")).unwrap();
        std::fs::create_dir_all(net.join(format!("{bridge}/brif"))).unwrap();
        for port in 0..ports {
            std::fs::create_dir_all(net.join(format!("{bridge}/brif/veth{port}"))).unwrap();
        }
        if let Some((v4, v6)) = settings {
            let dir = root.path().join("proc/sys/net/bridge");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("bridge-nf-call-iptables"), v4).unwrap();
            std::fs::write(dir.join("bridge-nf-call-ip6tables"), v6).unwrap();
        }
        root
    }

    fn problem(root: &tempfile::TempDir) -> Option<String> {
        let found = bridge_problem(&root.path().join("sys"), &root.path().join("proc"));
        found.map(|p| p.message)
    }

    #[test]
    fn a_bridge_with_ports_needs_bridged_traffic_filtered() {
        let missing = problem(&host(2, None)).expect("br_netfilter not loaded");
        assert!(
            missing.starts_with("bridge cni0 (2 ports) switches traffic")
                && missing.contains("modprobe br_netfilter")
                && missing.contains("sysctl -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1"),
            "{missing}"
        );
        let v6 = problem(&host(1, Some(("1\n", "0\n")))).expect("IPv6 not filtered");
        assert!(
            v6.contains("(net.bridge.bridge-nf-call-ip6tables not 1"),
            "{v6}"
        );
        assert_eq!(problem(&host(1, Some(("1\n", "1\n")))), None);
        // A bridge without ports (docker0 on an idle node), or none at all: nothing to say.
        assert_eq!(problem(&host(0, None)), None);
        let nothing = tempfile::tempdir().unwrap();
        assert_eq!(problem(&nothing), None);
        // A pod bridge fails readiness; docker0 with containers is only warned about.
        let is_pods = |root: &tempfile::TempDir| {
            bridge_problem(&root.path().join("sys"), &root.path().join("proc")).map(|p| p.pods)
        };
        assert_eq!(is_pods(&host(1, None)), Some(true));
        assert_eq!(is_pods(&host_with("docker0", 2, None)), Some(false));
    }
}
