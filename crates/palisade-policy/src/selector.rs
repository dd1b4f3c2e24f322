//! Label selectors compiled against interned labels: matching is a few integer comparisons, and an
//! unmet selector can say in plain words which requirement failed.

use foldhash::HashMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;
use std::fmt;

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

    fn key(&mut self, k: &str) -> u32 {
        Self::intern(&mut self.keys, k)
    }

    fn value(&mut self, v: &str) -> u32 {
        Self::intern(&mut self.values, v)
    }

    /// Compiles a selector.
    pub fn selector(&mut self, sel: &LabelSelector) -> Selector {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement {
                key: (self.key(k), k.clone()),
                op: Op::In,
                values: vec![(self.value(v), v.clone())],
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                _ => Op::Never, // rejected by validation; kept total
            };
            let values = e
                .values
                .iter()
                .flatten()
                .map(|v| (self.value(v), v.clone()))
                .collect();
            reqs.push(Requirement {
                key: (self.key(&e.key), e.key.clone()),
                op,
                values,
            });
        }
        Selector { reqs }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Never,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Requirement {
    key: (u32, String),
    op: Op,
    values: Vec<(u32, String)>,
}

impl Requirement {
    #[inline]
    fn matches(&self, labels: &LabelSet) -> bool {
        let value = labels.get(self.key.0);
        match self.op {
            Op::In => value.is_some_and(|v| self.values.iter().any(|(id, _)| *id == v)),
            Op::NotIn => value.is_none_or(|v| self.values.iter().all(|(id, _)| *id != v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Never => false,
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key.1;
        let values = || {
            self.values
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.op {
            Op::In if self.values.len() == 1 => write!(f, "{key}={}", self.values[0].1),
            Op::In => write!(f, "{key} in ({})", values()),
            Op::NotIn => write!(f, "{key} notin ({})", values()),
            Op::Exists => write!(f, "{key}"),
            Op::DoesNotExist => write!(f, "!{key}"),
            Op::Never => write!(f, "{key} <invalid operator>"),
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

    /// The first requirement `labels` fail, explained against the object's plain labels:
    /// e.g. `needs role=core; namespace y has no such label` (`subject` names the object).
    pub fn unmet(
        &self,
        interned: &LabelSet,
        plain: &BTreeMap<String, String>,
        subject: &str,
    ) -> Option<String> {
        let r = self.reqs.iter().find(|r| !r.matches(interned))?;
        let has = match plain.get(&r.key.1) {
            Some(v) => format!("{subject} has {}={v}", r.key.1),
            None => format!("{subject} has no such label"),
        };
        let need = match r.op {
            Op::Exists => format!("needs label {}", r.key.1),
            Op::DoesNotExist => format!("needs no label {}", r.key.1),
            _ => format!("needs {r}"),
        };
        Some(format!("{need}; {has}"))
    }
}

impl fmt::Display for Selector {
    /// kubectl's selector syntax: `app=web,tier in (a, b)`; `{}` for the empty selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reqs.is_empty() {
            return f.write_str("{}");
        }
        let parts: Vec<String> = self.reqs.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            let sel: LabelSelector = serde_json::from_value(s.clone()).unwrap();
            let compiled = interner.selector(&sel);
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
    fn unmet_explains_the_first_failing_requirement() {
        let mut interner = Interner::default();
        let plain = labels(&[("role", "tenant")]);
        let set = interner.labels(&plain);
        let sel: LabelSelector =
            serde_json::from_value(json!({"matchLabels": {"role": "core"}})).unwrap();
        let c = interner.selector(&sel);
        assert_eq!(
            c.unmet(&set, &plain, "namespace y").unwrap(),
            "needs role=core; namespace y has role=tenant"
        );
        let sel: LabelSelector = serde_json::from_value(
            json!({"matchExpressions": [{"key": "team", "operator": "Exists"}]}),
        )
        .unwrap();
        let c = interner.selector(&sel);
        assert_eq!(
            c.unmet(&set, &plain, "namespace y").unwrap(),
            "needs label team; namespace y has no such label"
        );
        assert_eq!(c.to_string(), "team");
    }
}
