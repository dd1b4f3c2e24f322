//! `unenforced-policy-kind`: policy kinds in the input that Palisade skipped (Cilium, Calico,
//! AdminNetworkPolicy…). Taken from the loader's report of skipped kinds, whose wording is
//! `skipped <apiVersion> <kind>: …not a kind Palisade reads`; nothing of such an object is read,
//! so its name is unknown.

use super::{Finding, ObjectRef, Rule};
use palisade_model::Diagnostic;

pub(super) fn check(diagnostics: &[Diagnostic], out: &mut Vec<Finding>) {
    for d in diagnostics {
        let Some((api_version, kind)) = skipped_kind(&d.message) else {
            continue;
        };
        if !kind.contains("Policy") {
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
