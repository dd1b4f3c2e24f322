//! Label selectors: validated selectors as typed values ([`SelectorSpec`], what a policy's
//! selectors decode to), and plain matching (Kubernetes semantics) where clarity beats speed —
//! workload selectors when expanding templates, and as the reference the policy engine's compiled
//! matcher is tested against.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// The operator of a selector requirement (`matchLabels` entries are `In` with one value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelOperator {
    /// The label's value is one of the values.
    In,
    /// The label is missing or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is missing.
    DoesNotExist,
}

impl LabelOperator {
    /// The operator a manifest spells `text`.
    pub fn parse(text: &str) -> Option<LabelOperator> {
        match text {
            "In" => Some(LabelOperator::In),
            "NotIn" => Some(LabelOperator::NotIn),
            "Exists" => Some(LabelOperator::Exists),
            "DoesNotExist" => Some(LabelOperator::DoesNotExist),
            _ => None,
        }
    }
}

/// A `matchExpressions` entry of a valid selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expression {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: LabelOperator,
    /// The values (`In`, `NotIn`: at least one), in the order written.
    pub values: Vec<String>,
}

/// A valid label selector: every `matchLabels` pair AND every `matchExpressions` entry (`{}`
/// selects everything). Made by `validate::selector`, as it validates one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectorSpec {
    /// `matchLabels`.
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`, in the order written.
    pub match_expressions: Vec<Expression>,
}

impl SelectorSpec {
    /// True for `{}`, which selects everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// True if `labels` satisfy the selector, with the semantics of [`matches`] (plain matching
    /// for analyses that ask about a few selectors; the engine compiles its own).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        (self.match_labels.iter()).all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let value = labels.get(&e.key);
                match e.operator {
                    LabelOperator::In => value.is_some_and(|v| e.values.contains(v)),
                    LabelOperator::NotIn => value.is_none_or(|v| !e.values.contains(v)),
                    LabelOperator::Exists => value.is_some(),
                    LabelOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// True if `labels` satisfy `selector`: every `matchLabels` pair AND every `matchExpressions` term.
/// `NotIn` and `DoesNotExist` match objects without the key; an empty selector matches everything.
/// Unknown operators match nothing (validation rejects them before this is reached).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(matches(&sel(json!({})), &labels(&[])));
        assert!(matches(&sel(json!({})), &labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let s = sel(json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]}));
        assert!(matches(&s, &labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!matches(&s, &labels(&[("app", "web"), ("tier", "db")])));
        assert!(!matches(&s, &labels(&[("app", "web")])));
        assert!(!matches(&s, &labels(&[("app", "api"), ("tier", "fe")])));
    }

    #[test]
    fn not_in_and_does_not_exist_match_missing_keys() {
        let not_in = sel(
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}),
        );
        assert!(matches(&not_in, &labels(&[])));
        assert!(matches(&not_in, &labels(&[("env", "dev")])));
        assert!(!matches(&not_in, &labels(&[("env", "prod")])));
        let dne = sel(json!({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}));
        assert!(matches(&dne, &labels(&[("app", "x")])));
        assert!(!matches(&dne, &labels(&[("env", "")])));
        let exists = sel(json!({"matchExpressions": [{"key": "env", "operator": "Exists"}]}));
        assert!(matches(&exists, &labels(&[("env", "")])));
        assert!(!matches(&exists, &labels(&[])));
    }

    #[test]
    fn a_decoded_selector_matches_as_the_manifest_does() {
        let written = [
            json!({}),
            json!({"matchLabels": {"app": "web"}}),
            json!({"matchLabels": {"app": "web"},
                   "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]}),
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}),
            json!({"matchExpressions": [{"key": "env", "operator": "Exists"}]}),
            json!({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}),
        ];
        let pods = [
            labels(&[]),
            labels(&[("app", "web")]),
            labels(&[("app", "web"), ("tier", "fe"), ("env", "prod")]),
            labels(&[("app", "api"), ("tier", "db"), ("env", "dev")]),
        ];
        for w in written {
            let raw = sel(w.clone());
            let mut issues = crate::validate::Issues::default();
            let spec = crate::validate::selector(&raw, "s", &mut issues).expect("valid");
            assert_eq!(spec.is_empty(), w == json!({}));
            for pod in &pods {
                assert_eq!(spec.matches(pod), matches(&raw, pod), "{w} on {pod:?}");
            }
        }
    }
}
