//! Pods from workload templates: when a folder holds a Deployment (or ReplicaSet, StatefulSet,
//! DaemonSet, Job, CronJob) but none of its pods, the template stands in for them, with deterministic
//! names in the controllers' style and the owner recorded, so analysis sees what the cluster would run.

use crate::objects::{Loaded, Workload, WorkloadKind};
use crate::selector;
use foldhash::{HashMap, HashMapExt, HashSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
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

/// Expands the workloads that have no pods among `pods` into template pods. Linear in workloads
/// and pods: owners and pods are indexed first (a `kubectl get -A` dump holds thousands of both).
pub(crate) fn expand(workloads: &[Loaded<Workload>], pods: &[Loaded<Pod>]) -> Vec<Loaded<Pod>> {
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
        out.extend((0..wl.replicas).map(|i| Loaded {
            object: std::sync::Arc::new(template_pod(wl, i)),
            origin: w.origin.clone(),
        }));
    }
    out
}

fn template_pod(wl: &Workload, index: usize) -> Pod {
    let ns = wl.namespace();
    let name = wl.name();
    let template_meta = wl.template.metadata.clone().unwrap_or_default();
    let mut labels = template_meta.labels.clone().unwrap_or_default();
    let h = fnv1a(&[ns, wl.kind.as_str(), name]);
    let idx = index.to_string();
    // The kind is hashed too: a ReplicaSet, a DaemonSet and a Job of the same name must not make
    // pods of the same name.
    let random = safe_suffix(fnv1a(&[ns, wl.kind.as_str(), name, &idx]), 5);
    let (pod_name, owner_kind, owner_name) = match wl.kind {
        WorkloadKind::Deployment => {
            let hash = safe_suffix(h, 9);
            labels.insert("pod-template-hash".into(), hash.clone());
            let rs = format!("{name}-{hash}");
            (format!("{rs}-{random}"), "ReplicaSet", rs)
        }
        WorkloadKind::StatefulSet => {
            let pod = format!("{name}-{index}");
            labels.insert("statefulset.kubernetes.io/pod-name".into(), pod.clone());
            (pod, "StatefulSet", name.to_string())
        }
        WorkloadKind::CronJob => {
            let job = format!("{name}-{}", 29_000_000 + h % 1_000_000);
            labels.insert("job-name".into(), job.clone());
            (format!("{job}-{random}"), "Job", job)
        }
        WorkloadKind::Job => {
            labels.insert("job-name".into(), name.to_string());
            (format!("{name}-{random}"), "Job", name.to_string())
        }
        WorkloadKind::ReplicaSet | WorkloadKind::DaemonSet => (
            format!("{name}-{random}"),
            wl.kind.as_str(),
            name.to_string(),
        ),
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name),
            namespace: Some(ns.to_string()),
            labels: Some(labels),
            annotations: template_meta.annotations,
            owner_references: Some(vec![OwnerReference {
                api_version: if owner_kind == "Job" {
                    "batch/v1"
                } else {
                    "apps/v1"
                }
                .into(),
                kind: owner_kind.into(),
                name: owner_name,
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: wl.template.spec.clone(),
        status: None,
    }
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
