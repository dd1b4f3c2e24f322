//! Pods from workload templates: when a folder holds a Deployment (or ReplicaSet, StatefulSet,
//! DaemonSet, Job, CronJob) but none of its pods, the template stands in for them, with deterministic
//! names in the controllers' style and the owner recorded, so analysis sees what the cluster would run.

use crate::info::pod_info_of;
use crate::key::Kind;
use crate::objects::{Loaded, Workload};
use crate::selector;
use crate::state::{OwnerRef, PodInfo};
use foldhash::{HashMap, HashMapExt, HashSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 64 bit: small, stable across platforms and releases.
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for part in parts {
        for b in part.bytes().chain([0u8]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

fn safe_suffix(mut h: u64, len: usize) -> String {
    (0..len)
        .map(|_| {
            let c = SAFE_ALPHABET[(h % SAFE_ALPHABET.len() as u64) as usize] as char;
            h /= SAFE_ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// `(namespace, owner kind, owner name)` of every owner reference of `metas`.
fn owners<'a>(metas: impl Iterator<Item = &'a ObjectMeta>) -> HashSet<(&'a str, &'a str, &'a str)> {
    metas
        .flat_map(|m| {
            let ns = m.namespace.as_deref().unwrap_or("default");
            m.owner_references
                .iter()
                .flatten()
                .map(move |o| (ns, o.kind.as_str(), o.name.as_str()))
        })
        .collect()
}

/// The workloads that have no pods among `pods`: their templates stand in for pods
/// ([`template_pods`]). Linear in workloads and pods: owners and pods are indexed first (a `kubectl
/// get -A` dump holds thousands of both).
pub(crate) fn podless<'a>(
    workloads: &'a [Loaded<Workload>],
    pods: &[Loaded<Pod>],
) -> Vec<&'a Loaded<Workload>> {
    let owning_workloads = owners(workloads.iter().map(|w| &w.object.metadata));
    let owning_pods = owners(pods.iter().map(|p| &p.object.metadata));
    let mut pods_by_namespace: HashMap<&str, Vec<&ObjectMeta>> = HashMap::new();
    for p in pods {
        let meta = &p.object.metadata;
        let ns = meta.namespace.as_deref().unwrap_or("default");
        pods_by_namespace.entry(ns).or_default().push(meta);
    }
    let no_labels = BTreeMap::new();
    let mut out = Vec::new();
    for w in workloads {
        let wl = &w.object;
        let me = (wl.namespace(), wl.kind.as_str(), wl.name());
        // A loaded ReplicaSet or Job owned by this workload expands instead (it has the real names).
        if owning_workloads.contains(&me) {
            continue;
        }
        // The workload's pods are those its selector matches, or (Jobs usually give no selector:
        // the API server generates one) those carrying its template labels or owned by it.
        let non_empty = |sel: &&LabelSelector| {
            !sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                || !sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
        };
        let template_selector = LabelSelector {
            match_labels: wl.template.metadata.as_ref().and_then(|m| m.labels.clone()),
            ..Default::default()
        };
        let sel = wl
            .selector
            .as_ref()
            .filter(non_empty)
            .or(Some(&template_selector).filter(non_empty));
        let has_pods = owning_pods.contains(&me)
            || sel.is_some_and(|sel| {
                pods_by_namespace
                    .get(wl.namespace())
                    .into_iter()
                    .flatten()
                    .any(|meta| selector::matches(sel, meta.labels.as_ref().unwrap_or(&no_labels)))
            });
        if has_pods {
            continue;
        }
        out.push(w);
    }
    out
}

/// The name of a template pod, the label its controller adds (if any), and its owner `(kind, name)`.
struct Generated {
    name: String,
    label: Option<(&'static str, String)>,
    owner: (&'static str, String),
}

fn generated(wl: &Workload, index: usize) -> Generated {
    let ns = wl.namespace();
    let name = wl.name();
    let h = fnv1a(&[ns, wl.kind.as_str(), name]);
    let idx = index.to_string();
    // The kind is hashed too: a ReplicaSet, a DaemonSet and a Job of the same name must not make
    // pods of the same name.
    let random = safe_suffix(fnv1a(&[ns, wl.kind.as_str(), name, &idx]), 5);
    match wl.kind {
        Kind::Deployment => {
            let hash = safe_suffix(h, 9);
            let rs = format!("{name}-{hash}");
            Generated {
                name: format!("{rs}-{random}"),
                label: Some(("pod-template-hash", hash)),
                owner: ("ReplicaSet", rs),
            }
        }
        Kind::StatefulSet => {
            let pod = format!("{name}-{index}");
            Generated {
                name: pod.clone(),
                label: Some(("statefulset.kubernetes.io/pod-name", pod)),
                owner: ("StatefulSet", name.to_string()),
            }
        }
        Kind::CronJob => {
            let job = format!("{name}-{}", 29_000_000 + h % 1_000_000);
            Generated {
                name: format!("{job}-{random}"),
                label: Some(("job-name", job.clone())),
                owner: ("Job", job),
            }
        }
        Kind::Job => Generated {
            name: format!("{name}-{random}"),
            label: Some(("job-name", name.to_string())),
            owner: ("Job", name.to_string()),
        },
        _ => Generated {
            name: format!("{name}-{random}"),
            label: None,
            owner: (wl.kind.as_str(), name.to_string()),
        },
    }
}

/// The pods of a workload's template: what the template says once, then each replica's name, label
/// and owner.
pub(crate) fn template_pods(w: &Loaded<Workload>) -> impl Iterator<Item = PodInfo> + '_ {
    let wl = &w.object;
    let meta = ObjectMeta {
        namespace: Some(wl.namespace().to_string()),
        labels: wl.template.metadata.as_ref().and_then(|m| m.labels.clone()),
        ..Default::default()
    };
    let mut template = pod_info_of(&meta, wl.template.spec.as_ref(), w.origin());
    template.from_template = true;
    (0..wl.replicas).map(move |i| {
        let generated = generated(wl, i);
        let mut pod = template.clone();
        pod.name = generated.name;
        if let Some((key, value)) = generated.label {
            pod.labels.insert(key.to_string(), value);
        }
        let (kind, name) = generated.owner;
        pod.owner = Some(OwnerRef {
            kind: kind.to_string(),
            name,
        });
        pod
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_stable_and_safe() {
        let a = safe_suffix(fnv1a(&["default", "web", "0"]), 5);
        assert_eq!(a, safe_suffix(fnv1a(&["default", "web", "0"]), 5));
        assert_ne!(a, safe_suffix(fnv1a(&["default", "web", "1"]), 5));
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_eq!(a.len(), 5);
    }
}
