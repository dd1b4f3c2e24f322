//! The minimal fix for a denied flow — a recorded drop, usually: new NetworkPolicies that allow
//! exactly that flow, selecting the workloads by their labels (never a pod's name: the next
//! release's pods must match too), and what else they would allow (computed with [`crate::diff`]
//! on the cluster before and with the fix).

use crate::diff::{self, Change, PortRange, Report, Workload};
use crate::matrix::Scope;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_model::{
    ClusterState, Origin, PodInfo, PolicyInfo, Protocol, Tier, TierAction, ValidPolicy,
};
use palisade_policy::{Decision, Direction, Endpoint, Engine, Flow};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Labels that differ from pod to pod of one workload: a selector with them would match one pod.
const PER_POD_LABELS: [&str; 5] = [
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/job-completion-index",
];

/// The namespace label every namespace has (set by the API server, and by the loader).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A pod's labels without the per-pod ones: what selects its whole workload.
pub fn workload_labels(pod: &PodInfo) -> BTreeMap<String, String> {
    (pod.labels.iter())
        .filter(|(k, _)| !PER_POD_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The proposed change and what it would do.
pub struct Fix {
    /// New policies, one per denying side (the destination's ingress, the source's egress).
    pub policies: Vec<NetworkPolicy>,
    /// The connectivity the fix changes between pods: what it adds; and, where a Baseline rule
    /// accepted traffic to a pod the new policy now isolates, what it removes.
    pub report: Report,
    /// True when it adds only the flow's workload pair on the flow's port.
    pub exact: bool,
}

impl Fix {
    /// The policies as YAML documents, separated by `---`.
    pub fn to_yaml(&self) -> String {
        (self.policies.iter())
            .map(|p| serde_yaml_ng::to_string(p).unwrap_or_else(|e| format!("# {e}\n")))
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

/// The fix for `flow`, or `None` when it is allowed already. A side an Admin rule denies has no
/// NetworkPolicy fix (the Admin tier comes first): that is an error naming the rule. A Baseline
/// Deny is overridden by a NetworkPolicy that isolates the pod, as any denial by NetworkPolicy.
pub fn propose(engine: &Engine, flow: &Flow) -> Result<Option<Fix>, String> {
    let verdict = engine.verdict(flow);
    if verdict.allowed {
        return Ok(None);
    }
    let state = engine.state();
    let mut policies = Vec::new();
    for side in [&verdict.ingress, &verdict.egress] {
        match &side.decision {
            Decision::Denied { .. } => policies.push(policy(state, flow, side.direction)),
            Decision::Tier { rule } if rule.action == TierAction::Deny => {
                if rule.policy.tier == Tier::Admin {
                    return Err(format!(
                        "the {} side is denied by {}: the Admin tier comes before NetworkPolicy, so no NetworkPolicy can allow it; change that rule (or add an Accept or Pass before it)",
                        side.direction.as_str(),
                        crate::reason::tier_rule(rule, side.direction)
                    ));
                }
                policies.push(policy(state, flow, side.direction));
            }
            _ => {}
        }
    }
    // Only the new policies are compiled: the rest is `engine`'s (the same answers as a fresh one).
    let after = Engine::new_from(engine, Arc::new(with_policies(state, &policies)?));
    let report = diff::diff(engine, &after, &Scope::All).map_err(|e| e.to_string())?;
    let exact = is_exact(state, flow, &report);
    Ok(Some(Fix {
        policies,
        report,
        exact,
    }))
}

/// `state` with `policies` added (validated as any manifest would be).
pub fn with_policies(
    state: &ClusterState,
    policies: &[NetworkPolicy],
) -> Result<ClusterState, String> {
    let mut all = state.policies.clone();
    for p in policies {
        let (valid, _) = ValidPolicy::new(p.clone())
            .map_err(|issues| format!("the proposed policy is invalid: {issues:?}"))?;
        let origin = Origin {
            file: "(proposed fix)".into(),
            line: None,
        };
        all.push(PolicyInfo::new(valid, origin));
    }
    let mut after = ClusterState::new(
        state.namespaces.iter().cloned().collect(),
        state.pods.iter().cloned().collect(),
        state.services.clone(),
        all,
    )
    .with_nodes(state.nodes.clone())
    .with_tier_policies(state.tier_policies.clone());
    after.network_logging = state.network_logging.clone();
    Ok(after)
}

/// Whether `report` adds only connections from the source's workload to the destination's on the
/// flow's port (none at all when an end is outside the cluster: the diff compares pods).
fn is_exact(state: &ClusterState, flow: &Flow, report: &Report) -> bool {
    let workload = |e: Endpoint| match e {
        Endpoint::Pod(i) => Some(Workload::of(&state.pods[i])),
        Endpoint::Ip(_) => None,
    };
    let (from, to) = (workload(flow.src), workload(flow.dst));
    let port = PortRange {
        protocol: flow.protocol,
        first: flow.port,
        last: flow.port,
    };
    report.groups.iter().all(|g| {
        g.change == Change::Added
            && Some(&g.from) == from.as_ref()
            && Some(&g.to) == to.as_ref()
            && g.ports == [port]
    }) && report.added_pods.is_empty()
}

/// A selector on the endpoint (`peer`) as seen from a policy in `namespace`.
fn peer(state: &ClusterState, endpoint: Endpoint, namespace: &str) -> NetworkPolicyPeer {
    match endpoint {
        Endpoint::Pod(i) => {
            let pod = &state.pods[i];
            let namespace_selector = (pod.namespace != namespace).then(|| LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_NAME_LABEL.to_string(),
                    pod.namespace.clone(),
                )])),
                ..LabelSelector::default()
            });
            NetworkPolicyPeer {
                pod_selector: Some(selector(pod)),
                namespace_selector,
                ip_block: None,
            }
        }
        Endpoint::Ip(ip) => NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: match ip {
                    IpAddr::V4(_) => format!("{ip}/32"),
                    IpAddr::V6(_) => format!("{ip}/128"),
                },
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        },
    }
}

fn selector(pod: &PodInfo) -> LabelSelector {
    LabelSelector {
        match_labels: Some(workload_labels(pod)),
        ..LabelSelector::default()
    }
}

/// The flow's port; none for ICMP, which NetworkPolicy ports cannot name (the rule then allows
/// every port: the diff says so).
fn ports(flow: &Flow) -> Option<Vec<NetworkPolicyPort>> {
    (flow.protocol != Protocol::Icmp).then(|| {
        vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(flow.port))),
            protocol: Some(flow.protocol.as_str().to_string()),
            end_port: None,
        }]
    })
}

/// The policy allowing `flow` on the side enforcing `direction` (always a pod: only a pod's side
/// can deny).
fn policy(state: &ClusterState, flow: &Flow, direction: Direction) -> NetworkPolicy {
    let (enforcing, other) = match direction {
        Direction::Ingress => (flow.dst, flow.src),
        Direction::Egress => (flow.src, flow.dst),
    };
    let Endpoint::Pod(i) = enforcing else {
        unreachable!("only a pod's side denies")
    };
    let pod = &state.pods[i];
    let namespace = pod.namespace.clone();
    let peer = peer(state, other, &namespace);
    let mut spec = NetworkPolicySpec {
        pod_selector: Some(selector(pod)),
        policy_types: Some(vec![match direction {
            Direction::Ingress => "Ingress".to_string(),
            Direction::Egress => "Egress".to_string(),
        }]),
        ..NetworkPolicySpec::default()
    };
    match direction {
        Direction::Ingress => {
            spec.ingress = Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![peer]),
                ports: ports(flow),
            }])
        }
        Direction::Egress => {
            spec.egress = Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![peer]),
                ports: ports(flow),
            }])
        }
    }
    let base = format!(
        "allow-{}-to-{}-{}-{}",
        name_part(state, flow.src),
        name_part(state, flow.dst),
        flow.protocol.as_str().to_ascii_lowercase(),
        flow.port
    );
    let base = if direction == Direction::Egress {
        format!("{base}-egress")
    } else {
        base
    };
    let name = (1..)
        .map(|n| match n {
            1 => base.clone(),
            n => format!("{base}-{n}"),
        })
        .find(|name| !(state.policies.iter()).any(|p| p.namespace == namespace && &p.name == name))
        .unwrap_or(base);
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    }
}

/// A short DNS-1123 name for an endpoint: its workload (the `app` label, else its owner without
/// the ReplicaSet hash, else the pod), or its address.
fn name_part(state: &ClusterState, endpoint: Endpoint) -> String {
    let raw = match endpoint {
        Endpoint::Ip(ip) => ip.to_string(),
        Endpoint::Pod(i) => {
            let pod = &state.pods[i];
            let owner = pod
                .owner
                .as_ref()
                .map(|o| match pod.labels.get("pod-template-hash") {
                    Some(hash) => o.name.strip_suffix(&format!("-{hash}")).unwrap_or(&o.name),
                    None => &o.name,
                });
            (pod.labels.get("app").map(String::as_str))
                .or(owner)
                .unwrap_or(&pod.name)
                .to_string()
        }
    };
    let cleaned: String = (raw.to_ascii_lowercase().chars())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect();
    cleaned.trim_matches('-').to_string()
}
