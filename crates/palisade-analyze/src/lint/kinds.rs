//! `unenforced-policy-kind`: network policy kinds in the input that Palisade skipped (Cilium,
//! Calico, AdminNetworkPolicy…). Taken from the loader's report of skipped kinds, whose wording is
//! `skipped <apiVersion> <kind>: …not a kind Palisade reads`; nothing of such an object is read,
//! so its name is unknown. Only the kinds of [`NETWORK_POLICY_KINDS`] count: other policies
//! (Kyverno, PodSecurityPolicy, Istio, admission) are not about what the network allows.

use super::{Finding, ObjectRef, Rule};
use palisade_model::Diagnostic;

/// The network policy kinds of other plugins and APIs, by API group. Their `NetworkPolicy` kinds
/// (Calico's, Antrea's) are not here: the loader rejects a NetworkPolicy of another apiVersion.
const NETWORK_POLICY_KINDS: &[(&str, &[&str])] = &[
    (
        "cilium.io",
        &["CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"],
    ),
    ("crd.projectcalico.org", CALICO),
    ("projectcalico.org", CALICO),
    (
        "policy.networking.k8s.io",
        &[
            "AdminNetworkPolicy",
            "BaselineAdminNetworkPolicy",
            "ClusterNetworkPolicy",
        ],
    ),
    ("networking.gke.io", &["FQDNNetworkPolicy"]),
    ("crd.antrea.io", &["ClusterNetworkPolicy"]),
    (
        "security.antrea.tanzu.vmware.com",
        &["ClusterNetworkPolicy"],
    ),
    ("network.openshift.io", &["EgressNetworkPolicy"]),
    ("k8s.ovn.org", &["EgressFirewall"]),
];

const CALICO: &[&str] = &[
    "GlobalNetworkPolicy",
    "StagedNetworkPolicy",
    "StagedGlobalNetworkPolicy",
    "StagedKubernetesNetworkPolicy",
];

/// True if `kind` of `api_version` is a network policy of [`NETWORK_POLICY_KINDS`].
fn network_policy(api_version: &str, kind: &str) -> bool {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    (NETWORK_POLICY_KINDS.iter()).any(|(g, kinds)| *g == group && kinds.contains(&kind))
}

pub(super) fn check(diagnostics: &[Diagnostic], out: &mut Vec<Finding>) {
    for d in diagnostics {
        let Some((api_version, kind)) = skipped_kind(&d.message) else {
            continue;
        };
        if !network_policy(api_version, kind) {
            continue;
        }
        out.push(Finding {
            rule: Rule::UnenforcedPolicyKind,
            severity: Rule::UnenforcedPolicyKind.severity(),
            object: ObjectRef {
                kind: kind.to_string(),
                namespace: None,
                name: None,
            },
            origin: Some(d.origin.clone()),
            field: Some("kind".into()),
            message: format!(
                "{api_version} {kind} is not enforced by Palisade, and lint and the other analyses leave it out: \
                 what it allows or denies is not in these findings"
            ),
            fix: "express it as networking.k8s.io/v1 NetworkPolicy objects, or enforce it with the plugin it is \
                  written for"
                .into(),
        });
    }
}

/// The apiVersion and kind of a loader message saying a kind was skipped.
fn skipped_kind(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("skipped ")?;
    let (what, why) = rest.split_once(": ")?;
    if !why.ends_with("not a kind Palisade reads") {
        return None;
    }
    what.split_once(' ')
}
