//! A lab of three nodes end to end, as root: `palisade lab up --nodes 3` places pods by
//! `spec.nodeName` (and round-robin), each node's agent enforces only its pods, a connection between
//! nodes is decided by the source node's egress and the destination node's ingress and logged by
//! each with its node name, `lab probe --compare` agrees with the engine, killing one node's agent
//! leaves every node's rules as they were, and `lab down` leaves nothing behind.

mod support;

use palisade_lab::{self as lab, Lab, ProcessStatus};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{connects, palisade, records, within};

/// Pods a, b, c on node-0, node-1 and node-2 by name, d placed round-robin (on node-0); b admits
/// only a, a may reach only b and c; every connection policy decides is logged. Services `b` and
/// `c` front pods b and c.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: mn}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: mn}
spec: {selector: {app: b}, ports: [{port: 8080, targetPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: c, namespace: mn}
spec: {selector: {app: c}, ports: [{port: 8080, targetPort: 80}]}
---
apiVersion: networking.gke.io/v1alpha1
kind: NetworkLogging
metadata: {name: default}
spec: {cluster: {allow: {log: true}, deny: {log: true}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: mn}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-to-b-and-c, namespace: mn}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchExpressions: [{key: app, operator: In, values: [b, c]}]}}]}]
"#;

fn pod(name: &str, node: Option<&str>) -> String {
    let node = node.map(|n| format!("nodeName: {n}, ")).unwrap_or_default();
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: mn, labels: {{app: {name}}}}}\n\
         spec: {{{node}containers: [{{name: c, image: i, ports: [{{containerPort: 80}}]}}]}}\n"
    )
}

/// Lab `<prefix><pid>` of three nodes on [`CLUSTER`], up; taken down when the guard drops, before
/// the folder is removed.
fn up(prefix: &str) -> (Lab, lab::DownOnDrop, tempfile::TempDir) {
    lab::require_root().expect("the lab tests run as root");
    let name = format!("{prefix}{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let pods = [
        pod("a", Some("node-0")),
        pod("b", Some("node-1")),
        pod("c", Some("node-2")),
        pod("d", None),
    ];
    std::fs::write(
        dir.path().join("cluster.yaml"),
        CLUSTER.to_string() + &pods.concat(),
    )
    .unwrap();
    let teardown = lab::DownOnDrop(name.clone());
    let out = palisade(&[
        "lab",
        "--name",
        &name,
        "up",
        "-f",
        dir.path().to_str().unwrap(),
        "--nodes",
        "3",
        "--deny-aggregation-window",
        "100ms",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("on 3 node(s)"), "{stdout}");
    (Lab::load(&name).unwrap(), teardown, dir)
}

/// Each node's `inet palisade` table, as `nft` lists it.
fn tables(lab: &Lab) -> Vec<String> {
    (lab.nodes.iter())
        .map(|n| {
            let out = Command::new("ip")
                .args([
                    "netns", "exec", &n.netns, "nft", "list", "table", "inet", "palisade",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
        .collect()
}

#[test]
fn three_nodes_each_enforce_and_log_their_own_pods_and_outlive_an_agent() {
    let (lab, _teardown, _dir) = up("mn");
    let name = lab.name.clone();
    let pod = |p: &str| lab.find_pod(&format!("mn/{p}")).unwrap();
    let (a, b, c, d) = (pod("a"), pod("b"), pod("c"), pod("d"));
    let on = |p: &lab::LabPod| lab.node_of(p).unwrap().name.clone();
    assert_eq!(
        [a, b, c, d].map(on),
        ["node-0", "node-1", "node-2", "node-0"]
    );
    for (p, cidr) in [
        (a, "10.244.0.0/20"),
        (b, "10.244.16.0/20"),
        (c, "10.244.32.0/20"),
    ] {
        let node = lab.node_of(p).unwrap();
        assert_eq!(node.pod_cidr.unwrap().to_string(), cidr);
        let std::net::IpAddr::V4(ip) = p.ip else {
            panic!("{}: an IPv4 address", p.key)
        };
        assert!(node.pod_cidr.unwrap().contains(&ip), "{ip} in {cidr}");
    }
    let status = palisade(&["lab", "--name", &name, "status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("node node-1 (namespace pal-"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("mn/b") && l.contains("node-1")),
        "{text}"
    );

    let reaches =
        |from: &lab::LabPod, to: &lab::LabPod| connects(&name, &from.key, &to.ip.to_string(), 80);
    let expected = || {
        [
            (a, b, true),  // node-0 egress allows, node-1 ingress allows
            (c, b, false), // node-1 ingress denies
            (d, b, false), // node-1 ingress denies
            (a, c, true),  // node-0 egress allows, c is not isolated
            (a, d, false), // node-0 egress denies (same node)
            (b, c, true),
        ]
        .iter()
        .map(|&(from, to, allowed)| {
            let got = reaches(from, to);
            (got == allowed)
                .then_some(())
                .ok_or(format!("{} -> {}: {got}", from.key, to.key))
        })
        .collect::<Result<Vec<()>, String>>()
    };
    expected().unwrap();
    // Through a Service: translated in the client's node (each has the DNAT), policed on its own
    // node and the backend's.
    assert!(connects(&name, &a.key, "b", 8080), "a -> service b");
    assert!(!connects(&name, &c.key, "b", 8080), "c -> service b");
    assert!(connects(&name, &b.key, "c", 8080), "b -> service c");
    let compare = palisade(&["lab", "--name", &name, "probe", "--compare"]);
    let text = String::from_utf8_lossy(&compare.stdout);
    assert_eq!(compare.status.code(), Some(0), "{text}");
    assert!(text.contains("0 of 16 cells differ"), "{text}");

    // Each node logs what it decided, with its own name: the deny of c -> b on node-1 (ingress), the
    // allow of a -> b on both (egress on node-0, ingress on node-1).
    let log = |node: &str| records(&lab.node_file(&lab::policy_log(&name), node_index(&lab, node)));
    let decided = |node: &str, disposition: &str, from: &lab::LabPod, to: &lab::LabPod| {
        log(node).iter().any(|r| {
            r["disposition"] == disposition
                && r["node_name"] == node
                && r["connection"]["src_ip"] == from.ip.to_string()
                && r["connection"]["dest_ip"] == to.ip.to_string()
        })
    };
    assert!(
        within(Duration::from_secs(3), || decided("node-1", "deny", c, b)).is_some(),
        "node-1: {:#?}",
        log("node-1")
    );
    assert!(
        decided("node-0", "allow", a, b),
        "node-0: {:#?}",
        log("node-0")
    );
    assert!(
        decided("node-1", "allow", a, b),
        "node-1: {:#?}",
        log("node-1")
    );
    for node in ["node-0", "node-2"] {
        assert!(!decided(node, "deny", c, b), "{node} decided b's ingress");
    }
    for node in ["node-0", "node-1", "node-2"] {
        assert!(log(node).iter().all(|r| r["node_name"] == node), "{node}");
    }

    // `palisade status --lab`: every node's agent reports, each policy is in force where its pods
    // are.
    let report = |expected: i32| {
        let out = palisade(&["status", "--lab", &name, "-o", "json"]);
        assert_eq!(out.status.code(), Some(expected), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let file = lab.node_file(&lab::agent_status(&name), node_index(&lab, "node-1"));
    let reported = within(Duration::from_secs(5), || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("mn/b-from-a"))
    });
    assert!(reported.is_some(), "{}", file.display());
    let all = report(0);
    let agents: Vec<&serde_json::Value> = (all["nodes"].as_array().unwrap().iter())
        .map(|n| &n["agent"])
        .collect();
    assert_eq!(agents, ["up", "up", "up"], "{all}");
    for policy in all["policies"].as_array().unwrap() {
        assert_eq!(policy["realized"], policy["nodes"], "{all}");
    }

    // Killing node-1's agent (its recorded process) leaves every node's rules as they were.
    let before = tables(&lab);
    let agent = lab.nodes[1].agent.clone().expect("node-1's agent");
    assert_eq!(agent.status(), ProcessStatus::Running);
    let killed = Command::new("kill")
        .args(["-9", &agent.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(within(Duration::from_secs(2), || agent.status()
        == ProcessStatus::Gone)
    .is_some());
    let running = (lab.nodes.iter().filter_map(|n| n.agent.as_ref()))
        .filter(|p| p.status() == ProcessStatus::Running)
        .count();
    assert_eq!(running, 2, "the other agents run on");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        tables(&lab),
        before,
        "a table changed after node-1's agent died"
    );
    expected().expect("enforcement after node-1's agent died");
    // Its status file, renewed no more, goes stale (made so here rather than waited 40 s for):
    // `status` then says policies are not enforced on b's node.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
    record["renewed"] = 1.0.into();
    std::fs::write(&file, record.to_string()).unwrap();
    let stale = report(1);
    assert_eq!(
        stale["unenforced"],
        serde_json::json!(["node-1"]),
        "{stale}"
    );
    let compare = palisade(&["lab", "--name", &name, "probe", "--compare"]);
    assert_eq!(
        compare.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&compare.stdout)
    );
}

fn node_index(lab: &Lab, node: &str) -> usize {
    lab.nodes.iter().position(|n| n.name == node).unwrap()
}

/// Links of the root namespace named as the lab names its own (`pl<N>`, `n<N>`, `fabric`, `br0`).
fn lab_like_links() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| {
            let numbered = |p: &str| {
                n.strip_prefix(p)
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            };
            numbered("pl") || numbered("n") || n == "fabric" || n == "br0"
        })
        .collect()
}

#[test]
fn lab_down_removes_every_node_the_fabric_and_every_process() {
    // A lab of several nodes names its nodes itself.
    let refused = palisade(&[
        "lab",
        "--name",
        "unused",
        "up",
        "-f",
        "/nonexistent",
        "--nodes",
        "2",
        "--node-name",
        "n",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--node-name names a single-node lab's node"),
        "{stderr}"
    );
    let links = lab_like_links();
    let (lab, _teardown, _dir) = up("md");
    let name = lab.name.clone();
    let prefix = format!("pal-{name}-");
    let netns = || {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let ours: Vec<String> = (text.lines())
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&prefix))
            .map(String::from)
            .collect();
        ours
    };
    let up_netns = netns();
    for ns in ["node-0", "node-1", "node-2", "fabric", "p0", "p3"] {
        assert!(
            up_netns.contains(&format!("{prefix}{ns}")),
            "{ns}: {up_netns:?}"
        );
    }
    assert_eq!(lab.processes.len(), 4, "responders and three agents");
    let files = || {
        (std::fs::read_dir(lab::state_dir()).unwrap().flatten())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|f| {
                f.starts_with(&format!("lab-{name}-")) || f.starts_with(&format!("lab-{name}."))
            })
            .collect::<Vec<_>>()
    };
    assert!(
        files().iter().any(|f| f.ends_with("-agent-node-2.log")),
        "{:?}",
        files()
    );

    let down = palisade(&["lab", "--name", &name, "down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(netns(), Vec::<String>::new());
    assert!(!Path::new("/etc/netns").join(format!("{prefix}p0")).exists());
    assert_eq!(files(), Vec::<String>::new());
    assert!(lab
        .processes
        .iter()
        .all(|p| p.status() != ProcessStatus::Running));
    assert_eq!(lab_like_links(), links, "links left in the root namespace");
}
