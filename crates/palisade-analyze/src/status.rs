//! Where NetworkPolicy is enforced (`palisade status`): per node, whether an agent reports from
//! it and what it says; per policy, on how many of the nodes that host its selected pods an agent
//! enforces its current generation. Kubernetes accepts policies and silently ignores them when
//! nothing enforces them: this is the answer to "is my policy in force?".

use palisade_model::{AgentStatus, ClusterState, PodInfo};
use palisade_policy::Engine;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::Duration;

/// An agent as its Lease shows it.
#[derive(Clone, Debug)]
pub struct Reported<'a> {
    /// What it says.
    pub status: &'a AgentStatus,
    /// Its Lease was renewed within its duration.
    pub fresh: bool,
    /// How long ago it was renewed.
    pub renewed: Option<Duration>,
}

/// Whether a node's agent reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Agent {
    /// Its Lease is fresh.
    Up,
    /// Its Lease expired: the agent stopped, or cannot reach the API server.
    Stale,
    /// No agent has ever reported from the node.
    None,
}

/// One node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Its name.
    pub node: String,
    /// Its agent.
    pub agent: Agent,
    /// The agent's version.
    pub version: Option<String>,
    /// When the agent's kernel last took a ruleset.
    pub last_applied: Option<String>,
    /// Seconds since the agent last renewed its Lease.
    pub renewed_seconds_ago: Option<u64>,
    /// Pods scheduled on it, with an address (the API server's view).
    pub pods: usize,
    /// Pods the agent enforces (its view).
    pub enforced_pods: Option<usize>,
    /// Policies in force there (its view).
    pub policies: Option<usize>,
    /// What the agent says is degraded.
    pub errors: Vec<String>,
}

/// One policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// `ns/name` (a cluster-wide policy: `Kind/name`).
    pub policy: String,
    /// Its `metadata.generation` (0 when the API server gives none).
    pub generation: i64,
    /// Pods it selects that have an address.
    pub selected_pods: usize,
    /// Nodes hosting them.
    pub nodes: usize,
    /// Of those, where a fresh agent enforces this generation (or a later one).
    pub realized: usize,
    /// Where it is not, and why (`n2: no agent`, `n3: generation 2 of 3`).
    pub not_realized: Vec<String>,
}

/// The whole answer (`unenforced` and `without_agent` decide the exit code and the closing line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Every node hosting a pod, or with an agent's Lease, by name.
    pub nodes: Vec<Node>,
    /// Every policy, in the state's order.
    pub policies: Vec<Policy>,
    /// Nodes hosting a pod some policy selects where that policy is not enforced: no fresh agent,
    /// nothing applied yet, audit mode, or the policy not in force there.
    pub unenforced: Vec<String>,
    /// Every node without a fresh agent: a pod scheduled there would not be enforced.
    pub without_agent: Vec<String>,
}

/// The node a cluster's pod runs on, if it counts: scheduled (`spec.nodeName`) and enforceable
/// (an address of its own).
pub fn scheduled(pod: &PodInfo) -> Option<&str> {
    (pod.enforceable())
        .then_some(pod.node_name.as_deref())
        .flatten()
}

/// The status of the cluster `engine` holds, of its `nodes`, with the agents that report from it;
/// `placed` says which node a pod runs on, if any ([`scheduled`] in a cluster).
pub fn status<'a>(
    engine: &'a Engine,
    nodes: &'a [String],
    agents: &'a [Reported],
    placed: &dyn Fn(&'a PodInfo) -> Option<&'a str>,
) -> Status {
    let state: &ClusterState = engine.state();
    let by_node: BTreeMap<&str, &Reported> = (agents.iter())
        .map(|a| (a.status.node.as_str(), a))
        .collect();
    // Per node, its pods; per policy, the nodes hosting the pods it selects.
    let mut pods: BTreeMap<&str, usize> = (by_node.keys().copied())
        .chain(nodes.iter().map(String::as_str))
        .map(|n| (n, 0))
        .collect();
    // Every policy by the name agents report it under, and its generation: NetworkPolicies, then
    // the cluster-wide ones.
    let every: Vec<(String, i64)> = (state.policies.iter())
        .map(|p| (p.policy.namespaced_name(), p.policy.generation()))
        .chain(
            (state.tier_policies.iter())
                .map(|p| (p.policy.qualified_name(), p.policy.generation())),
        )
        .collect();
    let mut hosts: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); every.len()];
    let mut selected = vec![0usize; every.len()];
    let index: BTreeMap<&str, usize> = (every.iter().enumerate())
        .map(|(i, (key, _))| (key.as_str(), i))
        .collect();
    // A class's policies, found once per class (its pods share them).
    let mut of_class: BTreeMap<palisade_policy::ClassId, Vec<usize>> = BTreeMap::new();
    for (id, pod) in state.pods.iter_enumerated() {
        let Some(node) = placed(pod) else {
            continue;
        };
        *pods.entry(node).or_default() += 1;
        let class = engine.class_of(id);
        let policies = of_class.entry(class).or_insert_with(|| {
            let keys = (engine.policies_selecting(class).into_iter())
                .map(|p| p.namespaced_name())
                .chain(
                    (engine.tier_policies_selecting(class).into_iter()).map(|p| p.qualified_name()),
                );
            keys.filter_map(|key| index.get(key.as_str()).copied())
                .collect()
        });
        for &i in policies.iter() {
            hosts[i].insert(node);
            selected[i] += 1;
        }
    }
    let agent = |node: &str| match by_node.get(node) {
        Some(a) if a.fresh => Agent::Up,
        Some(_) => Agent::Stale,
        None => Agent::None,
    };
    let nodes = (pods.iter())
        .map(|(&node, &count)| {
            let reported = by_node.get(node).map(|a| a.status);
            Node {
                node: node.to_string(),
                agent: agent(node),
                version: reported.map(|s| s.version.clone()),
                last_applied: reported.and_then(|s| s.last_applied.clone()),
                renewed_seconds_ago: (by_node.get(node))
                    .and_then(|a| a.renewed)
                    .map(|d| d.as_secs()),
                pods: count,
                enforced_pods: reported.map(|s| s.pods),
                policies: reported.map(|s| s.policies),
                errors: reported.map_or_else(Vec::new, |s| s.errors.clone()),
            }
        })
        .collect();
    let mut unenforced = BTreeSet::new();
    let policies = (every.into_iter().enumerate())
        .map(|(i, (key, generation))| {
            let not_realized: Vec<String> = (hosts[i].iter())
                .filter_map(|&node| {
                    let (why, enforced) = realized(by_node.get(node).copied(), &key, generation)?;
                    if !enforced {
                        unenforced.insert(node.to_string());
                    }
                    Some(format!("{node}: {why}"))
                })
                .collect();
            Policy {
                policy: key,
                generation,
                selected_pods: selected[i],
                nodes: hosts[i].len(),
                realized: hosts[i].len() - not_realized.len(),
                not_realized,
            }
        })
        .collect();
    let without_agent = (pods.keys())
        .filter(|n| agent(n) != Agent::Up)
        .map(|n| n.to_string())
        .collect();
    Status {
        nodes,
        policies,
        unenforced: unenforced.into_iter().collect(),
        without_agent,
    }
}

/// Why policy `key` at `generation` is not realized on a node whose agent is `agent`, and whether
/// it is enforced there at all (an earlier generation is); `None` when it is realized.
fn realized(agent: Option<&Reported>, key: &str, generation: i64) -> Option<(String, bool)> {
    let Some(agent) = agent else {
        return Some(("no agent".into(), false));
    };
    let status = agent.status;
    if !agent.fresh {
        return Some(("agent stale".into(), false));
    }
    if status.last_applied.is_none() {
        return Some(("nothing applied yet".into(), false));
    }
    // What it enforces may be old: pods scheduled since are not.
    if status.errors.iter().any(|e| e.starts_with("source:")) {
        return Some((
            "agent not following the API server (see ERRORS)".into(),
            false,
        ));
    }
    if let Some(&g) = status.applied.get(key) {
        return (g < generation).then(|| (format!("generation {g} of {generation}"), true));
    }
    if status.audited.contains_key(key) {
        return Some(("audit mode: logged, not enforced".into(), false));
    }
    if status.truncated {
        return Some((
            "not known (the agent's status was cut to fit its Lease)".into(),
            true,
        ));
    }
    Some(("not in force".into(), false))
}

/// `status` as two tables, nodes then policies, and a closing line that says the answer.
pub fn to_text(status: &Status) -> String {
    let dash = || "-".to_string();
    let mut rows = vec![[
        "NODE",
        "AGENT",
        "VERSION",
        "LAST APPLY",
        "RENEWED",
        "PODS",
        "POLICIES",
        "ERRORS",
    ]
    .map(String::from)];
    for n in &status.nodes {
        rows.push([
            n.node.clone(),
            format!("{:?}", n.agent).to_lowercase(),
            n.version.clone().unwrap_or_else(dash),
            n.last_applied.clone().unwrap_or_else(dash),
            n.renewed_seconds_ago
                .map_or_else(dash, |s| format!("{s}s ago")),
            match n.enforced_pods {
                Some(e) => format!("{e}/{}", n.pods),
                None => format!("-/{}", n.pods),
            },
            n.policies.map_or_else(dash, |p| p.to_string()),
            if n.errors.is_empty() {
                dash()
            } else {
                n.errors.join("; ")
            },
        ]);
    }
    let mut out = table(&rows);
    out.push('\n');
    let mut rows = vec![[
        "POLICY",
        "GENERATION",
        "SELECTED PODS",
        "REALIZED",
        "NOT REALIZED ON",
    ]
    .map(String::from)];
    for p in &status.policies {
        rows.push([
            p.policy.clone(),
            p.generation.to_string(),
            p.selected_pods.to_string(),
            format!("{}/{} nodes", p.realized, p.nodes),
            if p.not_realized.is_empty() {
                dash()
            } else {
                p.not_realized.join(", ")
            },
        ]);
    }
    out.push_str(&table(&rows));
    out.push('\n');
    let hosting = status.nodes.iter().filter(|n| n.pods > 0).count();
    if status.unenforced.is_empty() {
        let _ = writeln!(
            out,
            "NetworkPolicy is enforced on every node that hosts a selected pod."
        );
    } else {
        let _ = writeln!(
            out,
            "NetworkPolicy is NOT enforced on {} of the {hosting} nodes hosting pods: {} (see NOT REALIZED ON)",
            status.unenforced.len(),
            status.unenforced.join(", ")
        );
    }
    if !status.without_agent.is_empty() {
        let _ = writeln!(
            out,
            "No fresh agent on {} of {} nodes ({}): pods scheduled there would not be enforced.",
            status.without_agent.len(),
            status.nodes.len(),
            status.without_agent.join(", ")
        );
    }
    out
}

/// Rows as columns aligned on their widest cell.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = (row.iter().zip(widths))
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_model::Loader;
    use std::sync::Arc;

    fn engine() -> Engine {
        let mut loader = Loader::new();
        let pod = |name: &str, node: &str, ip: &str, app: &str| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, labels: {{app: {app}}}}}\n\
                 spec: {{nodeName: {node}, containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: {ip}}}\n"
            )
        };
        let text = [
            pod("redis", "n1", "10.1.0.5", "redis"),
            pod("cart", "n2", "10.1.0.6", "cart"),
            pod("web", "n3", "10.1.0.7", "web"),
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
             metadata: {name: from-web, namespace: shop, generation: 3}\n\
             spec: {podSelector: {matchExpressions: [{key: app, operator: In, values: [redis, cart]}]}}\n"
                .to_string(),
        ]
        .concat();
        loader.load_str("shop.yaml", &text);
        Engine::new(Arc::new(loader.finish().0))
    }

    fn agent(node: &str, generation: Option<i64>) -> AgentStatus {
        AgentStatus {
            node: node.into(),
            version: "0.1.0".into(),
            last_applied: Some("2026-12-06T09:00:00Z".into()),
            applied: generation
                .map(|g| BTreeMap::from([("shop/from-web".to_string(), g)]))
                .unwrap_or_default(),
            ..AgentStatus::default()
        }
    }

    /// Each node's agent is up, stale or missing; a policy is realized where a fresh agent
    /// enforces its generation; nodes hosting selected pods without a fresh agent are named.
    #[test]
    fn a_policy_is_realized_where_a_fresh_agent_enforces_its_generation() {
        let engine = engine();
        let (n1, n2) = (agent("n1", Some(3)), agent("n2", Some(2)));
        let reported = |status, fresh| Reported {
            status,
            fresh,
            renewed: Some(Duration::from_secs(4)),
        };
        let (both, up_and_stale) = (
            [reported(&n1, true), reported(&n2, true)],
            [reported(&n1, true), reported(&n2, false)],
        );
        let nodes = ["n4".to_string()];
        let all = status(&engine, &nodes, &both, &scheduled);
        let policy = &all.policies[0];
        assert_eq!(
            (policy.selected_pods, policy.nodes, policy.realized),
            (2, 2, 1)
        );
        assert_eq!(policy.not_realized, ["n2: generation 2 of 3"]);
        assert!(
            all.unenforced.is_empty(),
            "an old generation is still enforcement"
        );
        let agents: Vec<Agent> = all.nodes.iter().map(|n| n.agent).collect();
        // n4 hosts nothing, but is a node: listed, without an agent.
        assert_eq!(agents, [Agent::Up, Agent::Up, Agent::None, Agent::None]);
        assert_eq!(all.without_agent, ["n3", "n4"]);

        let stale = status(&engine, &[], &up_and_stale, &scheduled);
        assert_eq!(stale.policies[0].not_realized, ["n2: agent stale"]);
        assert_eq!(stale.unenforced, ["n2"]);
        let text = to_text(&stale);
        assert!(
            text.contains("NOT enforced on 1 of the 3 nodes hosting pods: n2"),
            "{text}"
        );

        // n3 hosts only web, which no policy selects: no agent there is no enforcement gap.
        let n2_current = agent("n2", Some(3));
        let current = [reported(&n1, true), reported(&n2_current, true)];
        let fine = status(&engine, &[], &current, &scheduled);
        assert_eq!(fine.policies[0].realized, 2);
        assert!(fine.unenforced.is_empty());
        let text = to_text(&fine);
        assert!(
            text.contains("enforced on every node that hosts a selected pod"),
            "{text}"
        );
        assert!(
            text.contains("No fresh agent on 1 of 3 nodes (n3)"),
            "{text}"
        );
    }

    /// A cluster-wide policy is checked like a NetworkPolicy, under `Kind/name`: on the nodes
    /// hosting the pods its subject holds.
    #[test]
    fn a_cluster_wide_policy_is_realized_where_agents_report_it() {
        let mut loader = Loader::new();
        let pod = |name: &str, node: &str, ip: &str| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, labels: {{app: {name}}}}}\n\
                 spec: {{nodeName: {node}, containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: {ip}}}\n"
            )
        };
        let text = [
            pod("redis", "n1", "10.1.0.5"),
            pod("web", "n2", "10.1.0.7"),
            "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n\
             metadata: {name: guard, generation: 2}\n\
             spec: {tier: Admin, priority: 1, subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: redis}}}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}\n"
                .to_string(),
        ]
        .concat();
        loader.load_str("shop.yaml", &text);
        let (state, diagnostics) = loader.finish();
        assert_eq!(state.tier_policies.len(), 1, "{diagnostics:#?}");
        let engine = Engine::new(Arc::new(state));
        let reporting = |generation: i64| AgentStatus {
            node: "n1".into(),
            last_applied: Some("2026-12-06T09:00:00Z".into()),
            applied: BTreeMap::from([("ClusterNetworkPolicy/guard".to_string(), generation)]),
            ..AgentStatus::default()
        };
        let (old, current) = (reporting(1), reporting(2));
        for (n1, not_realized) in [(&current, vec![]), (&old, vec!["n1: generation 1 of 2"])] {
            let agents = [Reported {
                status: n1,
                fresh: true,
                renewed: None,
            }];
            let all = status(&engine, &[], &agents, &scheduled);
            let policy = &all.policies[0];
            assert_eq!(policy.policy, "ClusterNetworkPolicy/guard");
            assert_eq!((policy.selected_pods, policy.nodes), (1, 1));
            assert_eq!(policy.not_realized, not_realized);
        }
    }

    /// A fresh agent is not enough: one that applied nothing yet, enforces a policy in audit mode
    /// only, or does not have it in force, does not enforce it.
    #[test]
    fn a_fresh_agent_that_does_not_enforce_the_policy_is_a_gap() {
        let engine = engine();
        let n1 = agent("n1", Some(3));
        let waiting = AgentStatus {
            last_applied: None,
            ..agent("n2", None)
        };
        let audit = AgentStatus {
            audited: BTreeMap::from([("shop/from-web".to_string(), 3)]),
            ..agent("n2", None)
        };
        let missing = agent("n2", None);
        let deaf = AgentStatus {
            errors: vec!["source: Pod: cannot watch Pod from https://api: 403".into()],
            ..agent("n2", Some(3))
        };
        for (n2, why) in [
            (&waiting, "n2: nothing applied yet"),
            (&deaf, "n2: agent not following the API server (see ERRORS)"),
            (&audit, "n2: audit mode: logged, not enforced"),
            (&missing, "n2: not in force"),
        ] {
            let fresh = |status| Reported {
                status,
                fresh: true,
                renewed: None,
            };
            let agents = [fresh(&n1), fresh(n2)];
            let gap = status(&engine, &[], &agents, &scheduled);
            assert_eq!(gap.policies[0].not_realized, [why]);
            assert_eq!(gap.unenforced, ["n2"], "{why}");
        }
    }
}
