//! `unenforced-policy-kind`: network policy kinds in the input that Palisade skipped (Cilium,
//! Calico, a ClusterNetworkPolicy of another version…). Taken from the loader's warning for them,
//! whose wording is `skipped <apiVersion> <kind>: this kind …` ([`UNENFORCED`]); the kinds are the
//! model's ([`unenforced_policy_kind`]): other policies (Kyverno, PodSecurityPolicy, Istio,
//! admission) are not about what the network allows.

use super::{Finding, ObjectRef, Rule};
use palisade_model::{unenforced_policy_kind, Diagnostic, UNENFORCED};

pub(super) fn check(diagnostics: &[Diagnostic], out: &mut Vec<Finding>) {
    for d in diagnostics {
        let Some((api_version, kind)) = skipped_kind(&d.message) else {
            continue;
        };
        if !unenforced_policy_kind(api_version, kind) {
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

/// The apiVersion and kind of a loader message saying a policy kind was skipped as not enforced.
fn skipped_kind(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("skipped ")?;
    let (what, why) = rest.split_once(": ")?;
    if !why.ends_with(UNENFORCED) {
        return None;
    }
    what.split_once(' ')
}
