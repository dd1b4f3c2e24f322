//! Label selectors compiled against interned labels: matching is a few integer comparisons, and an
//! unmet selector says which requirement failed and what the object has instead.

use foldhash::HashMap;
use palisade_model::selector::{LabelOperator, SelectorSpec};
use std::collections::BTreeMap;

/// Interns label keys and values seen on pods and namespaces, and those selectors ask for. Ids are
/// only ever added, so a selector compiled earlier stays valid for objects interned later (an
/// engine compiled from the previous one reuses its compiled policies).
#[derive(Clone, Default, Debug)]
pub struct Interner {
    keys: HashMap<String, u32>,
    values: HashMap<String, u32>,
}

/// A label set as sorted `(key id, value id)` pairs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LabelSet(Vec<(u32, u32)>);

impl LabelSet {
    #[inline]
    fn get(&self, key: u32) -> Option<u32> {
        self.0
            .binary_search_by_key(&key, |&(k, _)| k)
            .ok()
            .map(|i| self.0[i].1)
    }
}

impl Interner {
    fn intern(map: &mut HashMap<String, u32>, s: &str) -> u32 {
        if let Some(&id) = map.get(s) {
            return id;
        }
        let id = map.len() as u32;
        map.insert(s.to_string(), id);
        id
    }

    /// Interns an object's labels.
    pub fn labels(&mut self, labels: &BTreeMap<String, String>) -> LabelSet {
        let mut set: Vec<(u32, u32)> = labels
            .iter()
            .map(|(k, v)| {
                (
                    Self::intern(&mut self.keys, k),
                    Self::intern(&mut self.values, v),
                )
            })
            .collect();
        set.sort_unstable();
        LabelSet(set)
    }

    /// Compiles a selector, interning what it asks for.
    pub fn selector(&mut self, sel: &SelectorSpec) -> Selector {
        compile(
            sel,
            |k| Self::intern(&mut self.keys, k),
            |v| Self::intern(&mut self.values, v),
        )
    }

    /// Compiles a selector without interning: a key or value no object has gets an id no label
    /// set holds, so the selector matches exactly as [`Interner::selector`]'s would, on the
    /// objects interned so far (for questions asked of a compiled engine).
    pub fn known_selector(&self, sel: &SelectorSpec) -> Selector {
        let known = |map: &HashMap<String, u32>, s: &str| map.get(s).copied().unwrap_or(u32::MAX);
        compile(sel, |k| known(&self.keys, k), |v| known(&self.values, v))
    }
}

/// `sel` with `key` and `value` giving label ids.
fn compile(
    sel: &SelectorSpec,
    mut key: impl FnMut(&str) -> u32,
    mut value: impl FnMut(&str) -> u32,
) -> Selector {
    let mut reqs = Vec::new();
    for (k, v) in &sel.match_labels {
        reqs.push(Requirement {
            term: SelectorTerm::MatchLabels,
            key: (key(k), k.clone()),
            op: LabelOperator::In,
            values: vec![(value(v), v.clone())],
        });
    }
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let values = (e.values.iter()).map(|v| (value(v), v.clone())).collect();
        reqs.push(Requirement {
            term: SelectorTerm::MatchExpressions(i),
            key: (key(&e.key), e.key.clone()),
            op: e.operator,
            values,
        });
    }
    Selector { reqs }
}

/// Where a selector requirement was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SelectorTerm {
    /// An entry of `matchLabels` (its key is the requirement's).
    MatchLabels,
    /// `matchExpressions[i]`.
    MatchExpressions(usize),
}

/// One requirement of a label selector, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelRequirement {
    /// Where it was written.
    pub term: SelectorTerm,
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: LabelOperator,
    /// The values (`In`, `NotIn`), in the order written.
    pub values: Vec<String>,
}

/// The first requirement of a selector an object's labels fail, and what the object has instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorMiss {
    /// The failed requirement.
    pub requirement: LabelRequirement,
    /// The object's value for the requirement's key (`None`: it has no such label).
    pub found: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Requirement {
    term: SelectorTerm,
    key: (u32, String),
    op: LabelOperator,
    values: Vec<(u32, String)>,
}

impl Requirement {
    #[inline]
    fn matches(&self, labels: &LabelSet) -> bool {
        let value = labels.get(self.key.0);
        match self.op {
            LabelOperator::In => value.is_some_and(|v| self.values.iter().any(|(id, _)| *id == v)),
            LabelOperator::NotIn => {
                value.is_none_or(|v| self.values.iter().all(|(id, _)| *id != v))
            }
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
        }
    }

    fn as_written(&self) -> LabelRequirement {
        LabelRequirement {
            term: self.term,
            key: self.key.1.clone(),
            operator: self.op,
            values: self.values.iter().map(|(_, v)| v.clone()).collect(),
        }
    }
}

/// A compiled label selector (`matchLabels` AND `matchExpressions`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

impl Selector {
    /// True if `labels` satisfy every requirement.
    #[inline]
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.reqs.iter().all(|r| r.matches(labels))
    }

    /// The first requirement `labels` fail (`interned` and `plain` are the same object's labels).
    pub fn unmet(
        &self,
        interned: &LabelSet,
        plain: &BTreeMap<String, String>,
    ) -> Option<SelectorMiss> {
        let r = self.reqs.iter().find(|r| !r.matches(interned))?;
        Some(SelectorMiss {
            requirement: r.as_written(),
            found: plain.get(&r.key.1).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use palisade_model::validate::{self, Issues};
    use serde_json::json;

    /// A valid selector, as written and decoded.
    fn selector(s: &serde_json::Value) -> (LabelSelector, SelectorSpec) {
        let written: LabelSelector = serde_json::from_value(s.clone()).unwrap();
        let mut issues = Issues::default();
        let spec = validate::selector(&written, "s", &mut issues);
        (written, spec.unwrap_or_else(|| panic!("{s}: {issues:?}")))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn compiled_matches_like_the_plain_matcher() {
        let mut interner = Interner::default();
        let objects = [
            labels(&[("app", "web"), ("tier", "fe")]),
            labels(&[("app", "db")]),
            labels(&[]),
            labels(&[("env", "prod"), ("app", "web")]),
        ];
        let sets: Vec<_> = objects.iter().map(|l| interner.labels(l)).collect();
        let selectors = [
            json!({}),
            json!({"matchLabels": {"app": "web"}}),
            json!({"matchLabels": {"app": "never-seen"}}),
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}),
            json!({"matchExpressions": [{"key": "unknown", "operator": "DoesNotExist"}]}),
            json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}, {"key": "app", "operator": "In", "values": ["web", "x"]}]}),
        ];
        for s in selectors {
            let (sel, spec) = selector(&s);
            let compiled = interner.selector(&spec);
            for (plain, set) in objects.iter().zip(&sets) {
                assert_eq!(
                    compiled.matches(set),
                    palisade_model::selector::matches(&sel, plain),
                    "{s} on {plain:?}"
                );
            }
        }
    }

    #[test]
    fn unmet_names_the_first_failing_requirement_and_what_the_object_has() {
        let mut interner = Interner::default();
        let plain = labels(&[("role", "tenant")]);
        let set = interner.labels(&plain);
        let (_, spec) = selector(&json!({
            "matchLabels": {"role": "core"},
            "matchExpressions": [
                {"key": "role", "operator": "Exists"},
                {"key": "team", "operator": "In", "values": ["a", "b"]}
            ]
        }));
        let c = interner.selector(&spec);
        let miss = c.unmet(&set, &plain).unwrap();
        assert_eq!(
            miss,
            SelectorMiss {
                requirement: LabelRequirement {
                    term: SelectorTerm::MatchLabels,
                    key: "role".into(),
                    operator: LabelOperator::In,
                    values: vec!["core".into()],
                },
                found: Some("tenant".into()),
            }
        );
        let plain = labels(&[("role", "core")]);
        let set = interner.labels(&plain);
        let miss = c.unmet(&set, &plain).unwrap();
        assert_eq!(miss.requirement.term, SelectorTerm::MatchExpressions(1));
        assert_eq!(miss.requirement.values, ["a", "b"]);
        assert_eq!(miss.found, None);
        let plain = labels(&[("role", "core"), ("team", "b")]);
        assert_eq!(c.unmet(&interner.labels(&plain), &plain), None);
    }
}
