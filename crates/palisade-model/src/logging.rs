//! The `NetworkLogging` object of GKE Dataplane V2 (`networking.gke.io/v1alpha1`, cluster-scoped,
//! exactly one, named `default`): the cluster-wide switches of policy action logging, and the two
//! delegation annotations. Not part of the Kubernetes API, so the type is defined here, shaped like the
//! CRD; unknown extra fields are accepted and ignored (reported as warnings, like other kinds).

use crate::validate::Issues;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `apiVersion` of `NetworkLogging`.
pub const API_VERSION: &str = "networking.gke.io/v1alpha1";
/// The only name a `NetworkLogging` may have.
pub const NAME: &str = "default";
/// Policy annotation that opts a policy's allowed connections into logging when `allow.delegate`.
pub const POLICY_ANNOTATION: &str = "policy.network.gke.io/enable-logging";
/// Namespace annotation that opts its pods' denied connections into logging when `deny.delegate`.
pub const NAMESPACE_ANNOTATION: &str = "policy.network.gke.io/enable-deny-logging";

/// Namespace annotation that puts its pods in audit mode: nothing is dropped, would-be denials are
/// logged (Palisade's own, like Cilium's policy audit mode). On a policy it stages the policy.
pub const AUDIT_ANNOTATION: &str = "policy.palisade.dev/audit-mode";

/// True when the object of `meta` is annotated [`AUDIT_ANNOTATION`]`: "true"`: a Namespace in
/// audit mode, or a policy staged (evaluated and logged, not enforced).
pub fn audit_annotated(meta: &ObjectMeta) -> bool {
    (meta.annotations.as_ref()).is_some_and(|a| annotation_enabled(a, AUDIT_ANNOTATION))
}

/// True when `annotations` holds `key` with exactly the value `"true"` (the only value that counts).
pub fn annotation_enabled(annotations: &BTreeMap<String, String>, key: &str) -> bool {
    annotations.get(key).is_some_and(|v| v == "true")
}

/// A `NetworkLogging` object.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct NetworkLogging {
    /// `networking.gke.io/v1alpha1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// `NetworkLogging`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata; the name must be `default`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The switches.
    #[serde(default)]
    pub spec: NetworkLoggingSpec,
}

/// `spec` of a `NetworkLogging`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct NetworkLoggingSpec {
    /// Cluster-wide switches.
    #[serde(default)]
    pub cluster: LoggingSwitches,
}

/// `spec.cluster`: what to log for allowed and for denied connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LoggingSwitches {
    /// Allowed connections.
    #[serde(default)]
    pub allow: LogAction,
    /// Denied connections.
    #[serde(default)]
    pub deny: LogAction,
}

/// One disposition's switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LogAction {
    /// Log connections of this disposition.
    #[serde(default)]
    pub log: bool,
    /// Log only those the delegation annotations opt in (needs `log: true`).
    #[serde(default)]
    pub delegate: bool,
}

/// The cluster's logging configuration as read from the manifests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LoggingConfig {
    /// No `NetworkLogging`: all logging off.
    #[default]
    Absent,
    /// A valid `NetworkLogging default`.
    Valid(LoggingSwitches, LoggingObject),
    /// A `NetworkLogging` was given but is invalid: consumers keep their previous configuration.
    Invalid(String, LoggingObject),
}

/// The `NetworkLogging` object a configuration was read from: its name (`default` unless the
/// object was rejected for its name), uid and generation, when the source gives them (the API
/// server does). They name the Kubernetes Event telling the change, so that each generation's
/// change is told once, alike on every node, on the object it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggingObject {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
}

impl Default for LoggingObject {
    /// `default`, of no known uid or generation.
    fn default() -> LoggingObject {
        LoggingObject {
            name: NAME.to_string(),
            uid: None,
            generation: None,
        }
    }
}

impl LoggingObject {
    /// The object `meta` says.
    pub(crate) fn of(meta: &ObjectMeta) -> LoggingObject {
        LoggingObject {
            name: meta.name.clone().unwrap_or_else(|| NAME.to_string()),
            uid: meta.uid.clone(),
            generation: meta.generation,
        }
    }

    /// The object a value that could not be decoded says, as far as it can be read.
    pub(crate) fn of_value(value: &serde_json::Value) -> LoggingObject {
        let text = |field: &str| value.pointer(field).and_then(|v| v.as_str());
        LoggingObject {
            name: text("/metadata/name").unwrap_or(NAME).to_string(),
            uid: text("/metadata/uid").map(str::to_string),
            generation: value
                .pointer("/metadata/generation")
                .and_then(|v| v.as_i64()),
        }
    }
}

/// Checks a `NetworkLogging`: the name is `default`; `delegate: true` needs `log: true`.
pub fn validate(nl: &NetworkLogging) -> Issues {
    let mut issues = Issues::default();
    let name = nl.metadata.name.as_deref().unwrap_or_default();
    if name != NAME {
        issues.error(
            "metadata.name",
            format!("a NetworkLogging must be named {NAME:?}, not {name:?}; there is exactly one per cluster"),
        );
    }
    let switches = &nl.spec.cluster;
    for (field, action) in [("allow", switches.allow), ("deny", switches.deny)] {
        if action.delegate && !action.log {
            issues.error(
                format!("spec.cluster.{field}.delegate"),
                "delegate: true needs log: true (delegation narrows logging that is on); set log: true, or delegate: false to log nothing",
            );
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, allow: (bool, bool), deny: (bool, bool)) -> NetworkLogging {
        let action = |(log, delegate)| LogAction { log, delegate };
        NetworkLogging {
            api_version: API_VERSION.into(),
            kind: "NetworkLogging".into(),
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: NetworkLoggingSpec {
                cluster: LoggingSwitches {
                    allow: action(allow),
                    deny: action(deny),
                },
            },
        }
    }

    #[test]
    fn the_four_combinations_and_the_name() {
        for (allow, deny, errors) in [
            ((false, false), (false, false), 0),
            ((true, false), (true, true), 0),
            ((false, true), (true, false), 1),
            ((false, true), (false, true), 2),
        ] {
            let issues = validate(&object("default", allow, deny));
            assert_eq!(issues.0.len(), errors, "{allow:?} {deny:?}: {issues:?}");
        }
        let issues = validate(&object("other", (true, false), (true, false)));
        assert_eq!(issues.0[0].field, "metadata.name");
    }

    #[test]
    fn only_exactly_true_counts() {
        let mut a = BTreeMap::new();
        for (value, on) in [("true", true), ("True", false), ("yes", false), ("", false)] {
            a.insert(POLICY_ANNOTATION.to_string(), value.to_string());
            assert_eq!(annotation_enabled(&a, POLICY_ANNOTATION), on, "{value}");
        }
        assert!(!annotation_enabled(&BTreeMap::new(), POLICY_ANNOTATION));
    }
}
