//! Loading manifests from files, folders and standard input into a [`ClusterState`].

use crate::diagnostic::{Diagnostic, Origin, Severity};
use crate::logging::LoggingConfig;
use crate::objects::{self, labels_of, object_id, Decoded, Loaded, Objects, Workload};
use crate::state::{
    ClusterState, ContainerPortInfo, NamespaceInfo, OwnerRef, PodInfo, PolicyInfo, ServiceInfo,
    ServicePortInfo,
};
use crate::{document, validate, workload, Protocol};
use foldhash::{HashMap, HashMapExt, HashSet};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Pod, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The range pod IPs are allocated from when a manifest gives none.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";

/// Decoded manifest files, kept from one load to the next: a file whose inode, length and
/// modification time are unchanged is not read, parsed or decoded again (the agent re-reads its
/// whole folder on every change; only duplicate detection, which needs every file, runs again).
#[derive(Default)]
pub struct DocumentCache {
    files: HashMap<PathBuf, CachedFile>,
    /// The pods made from each Pod or workload object by the last load, by the object's address.
    pods: HashMap<usize, ObjectPods>,
}

/// The pods one object (a Pod, or a workload's template) stood for in the last load, addresses
/// allocated: reused, shared, while the object is the same (same `Arc`: its file is unchanged), so
/// that unchanged pods are neither rebuilt nor copied.
struct ObjectPods {
    /// Holds the object, so that its address cannot be reused by another while it is a key.
    _object: Source,
    pods: Vec<Arc<PodInfo>>,
}

/// An object that pods are made from.
#[derive(Clone)]
enum Source {
    Pod(Arc<Pod>),
    Workload(Arc<Workload>),
}

impl Source {
    fn address(&self) -> usize {
        match self {
            Source::Pod(p) => Arc::as_ptr(p) as usize,
            Source::Workload(w) => Arc::as_ptr(w) as usize,
        }
    }
}

type Stamp = (u64, u64, Option<std::time::SystemTime>);

struct CachedFile {
    stamp: Stamp,
    /// Diagnostics of parsing the file.
    diagnostics: Vec<Diagnostic>,
    /// Its documents, decoded and validated, in order.
    documents: Vec<CachedDocument>,
}

/// One document of a cached file.
struct CachedDocument {
    /// Its first line and its text, for a YAML document that parsed: when its file changes, a
    /// document with the same text on the same line is not parsed or decoded again, and its objects
    /// stay shared (with what was made from them: pods, classes).
    source: Option<(usize, String)>,
    /// Its objects (every item of a `List`), decoded and validated.
    decoded: Vec<Decoded>,
}

/// Reads manifests and builds a [`ClusterState`]. Problems are collected as diagnostics; a rejected
/// object never stops the others from loading.
pub struct Loader {
    objects: Objects,
    diagnostics: Vec<Diagnostic>,
    pod_cidr: IpNet,
    /// Files parsed by earlier loads, taken from as files are read again.
    documents: DocumentCache,
    /// Files read by this load.
    visited: DocumentCache,
    /// Addresses to give pods without `status.podIP`, by `ns/name`, before allocating.
    pinned: HashMap<String, IpAddr>,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// A loader with the default pod CIDR that rejects duplicate objects.
    pub fn new() -> Self {
        Loader {
            objects: Objects::default(),
            diagnostics: Vec::new(),
            pod_cidr: DEFAULT_POD_CIDR.parse().expect("valid constant"),
            documents: DocumentCache::default(),
            visited: DocumentCache::default(),
            pinned: HashMap::new(),
        }
    }

    /// Gives these pods (by `ns/name`) these addresses when they have no `status.podIP`, instead of
    /// allocating: a running lab pins the addresses its pods were created with, so that pods added
    /// to the manifests later cannot move them.
    pub fn pin_ips(mut self, pinned: impl IntoIterator<Item = (String, IpAddr)>) -> Self {
        self.pinned = pinned.into_iter().collect();
        self
    }

    /// Reuses the files parsed, and the pods made, by an earlier load ([`Loader::finish_with_cache`]).
    pub fn with_documents(mut self, cache: DocumentCache) -> Self {
        self.documents = cache;
        self
    }

    /// Later definitions of an object (same kind, namespace and name) replace earlier ones, as
    /// `kubectl apply` of a second file would, instead of being rejected.
    pub fn replace_duplicates(mut self, replace: bool) -> Self {
        self.objects.replace_duplicates = replace;
        self
    }

    /// Sets the range allocated pod IPs come from.
    pub fn pod_cidr(mut self, cidr: IpNet) -> Self {
        self.pod_cidr = cidr;
        self
    }

    /// Loads a file, a folder (recursively: `*.yaml`, `*.yml`, `*.json`, in name order; hidden entries
    /// and symlinked sub-folders are skipped) or `-` (stdin).
    pub fn load_path(&mut self, path: &Path) {
        if path == Path::new("-") {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => self.load_str("-", &text),
                Err(e) => self.io_error("-", &e),
            }
            return;
        }
        let display = path.display().to_string();
        match std::fs::metadata(path) {
            Err(e) => self.io_error(&display, &e),
            Ok(meta) if meta.is_dir() => self.load_dir(path),
            Ok(meta) => self.load_file(path, &meta),
        }
    }

    fn load_dir(&mut self, dir: &Path) {
        let mut entries = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .collect::<Vec<_>>(),
            Err(e) => return self.io_error(&dir.display().to_string(), &e),
        };
        entries.sort();
        for path in entries {
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            let manifest = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            );
            if hidden {
                continue;
            }
            if path.is_dir() {
                // Symlinked folders are not followed: a link cycle must not recurse forever.
                if !path.is_symlink() {
                    self.load_dir(&path);
                }
            } else if manifest {
                self.load_path(&path);
            }
        }
    }

    fn io_error(&mut self, file: &str, e: &std::io::Error) {
        self.diagnostics.push(Diagnostic::new(
            Severity::Error,
            Origin {
                file: file.to_string(),
                line: None,
            },
            format!("cannot read: {e}"),
        ));
    }

    /// Loads manifest text; `file` names it in diagnostics.
    pub fn load_str(&mut self, file: &str, text: &str) {
        for doc in document::parse(file, text, &mut self.diagnostics) {
            self.objects.ingest(&doc, &mut self.diagnostics);
        }
    }

    /// Loads a file through the document cache: read and decoded again only when it changed.
    fn load_file(&mut self, path: &Path, meta: &std::fs::Metadata) {
        use std::os::unix::fs::MetadataExt;
        let display = path.display().to_string();
        let stamp = (meta.ino(), meta.len(), meta.modified().ok());
        let cached = self.documents.files.remove(path);
        let file = match cached {
            Some(file) if file.stamp == stamp => file,
            earlier => {
                let text = match std::fs::read_to_string(path) {
                    Ok(text) => text,
                    Err(e) => return self.io_error(&display, &e),
                };
                let mut diagnostics = Vec::new();
                let documents = match document::yaml_documents(&text) {
                    Some(sources) => decode_yaml(&display, sources, earlier, &mut diagnostics),
                    None => vec![CachedDocument {
                        source: None,
                        decoded: document::parse(&display, &text, &mut diagnostics)
                            .iter()
                            .flat_map(objects::decode)
                            .collect(),
                    }],
                };
                CachedFile {
                    stamp,
                    diagnostics,
                    documents,
                }
            }
        };
        self.diagnostics.extend(file.diagnostics.iter().cloned());
        for d in file.documents.iter().flat_map(|d| &d.decoded) {
            self.objects.add(d, &mut self.diagnostics);
        }
        self.visited.files.insert(path.to_path_buf(), file);
    }

    /// Expands workload templates, allocates missing pod IPs and returns the snapshot and every
    /// diagnostic collected.
    pub fn finish(mut self) -> (ClusterState, Vec<Diagnostic>) {
        let state = self.state();
        (state, self.diagnostics)
    }

    /// [`Loader::finish`], and the cache for the next load ([`Loader::with_documents`]): the files
    /// read by this one, and the pods made from their objects.
    pub fn finish_with_cache(mut self) -> (ClusterState, Vec<Diagnostic>, DocumentCache) {
        let state = self.state();
        (state, self.diagnostics, self.visited)
    }

    fn state(&mut self) -> ClusterState {
        let objects = std::mem::take(&mut self.objects);
        let mut previous = std::mem::take(&mut self.documents.pods);
        // Every object's pods, from the last load where the object is the same; with the object
        // each pod came from.
        let mut pods: Vec<Arc<PodInfo>> = Vec::new();
        let mut made_by: Vec<usize> = Vec::new();
        let mut sources: Vec<Source> = Vec::new();
        let mut add = |source: Source, make: &dyn Fn() -> Vec<PodInfo>| {
            let list = match previous.remove(&source.address()) {
                Some(cached) => cached.pods,
                None => make().into_iter().map(Arc::new).collect(),
            };
            made_by.extend(std::iter::repeat_n(sources.len(), list.len()));
            sources.push(source);
            pods.extend(list);
        };
        for p in &objects.pods {
            add(Source::Pod(p.object.clone()), &|| vec![pod_info(p)]);
        }
        for w in workload::podless(&objects.workloads, &objects.pods) {
            let make = || workload::template_pods(w).collect();
            add(Source::Workload(w.object.clone()), &make);
        }
        // The first pod of a name wins: a template pod never replaces a Pod object, nor another
        // template pod.
        let mut taken: HashSet<(&str, &str)> = HashSet::default();
        let mut kept: Vec<bool> = pods
            .iter()
            .map(|p| taken.insert((&p.namespace, &p.name)))
            .collect();
        drop(taken);
        self.reject_duplicate_ips(&pods, &mut kept);
        self.allocate_ips(&mut pods, &kept);
        // Left-out pods are cached too (unallocated): an object's pods are all or nothing.
        for (pod, &source) in pods.iter().zip(&made_by) {
            let source = &sources[source];
            let entry = self.visited.pods.entry(source.address());
            entry
                .or_insert_with(|| ObjectPods {
                    _object: source.clone(),
                    pods: Vec::new(),
                })
                .pods
                .push(pod.clone());
        }
        let pods: Vec<Arc<PodInfo>> = pods
            .into_iter()
            .zip(kept)
            .filter_map(|(pod, kept)| kept.then_some(pod))
            .collect();
        let mut namespaces: Vec<NamespaceInfo> = objects
            .namespaces
            .iter()
            .map(|n| NamespaceInfo {
                name: n.object.metadata.name.clone().unwrap_or_default(),
                labels: labels_of(&n.object.metadata),
                annotations: n.object.metadata.annotations.clone().unwrap_or_default(),
                origin: Some(n.origin.clone()),
            })
            .collect();
        // A workload's namespace exists even when the workload has no pods (`replicas: 0`).
        let mut known: HashSet<String> = namespaces.iter().map(|n| n.name.clone()).collect();
        for w in &objects.workloads {
            let ns = w.object.namespace();
            if known.insert(ns.to_string()) {
                namespaces.push(NamespaceInfo {
                    name: ns.to_string(),
                    labels: Default::default(),
                    annotations: Default::default(),
                    origin: None,
                });
            }
        }
        let services = objects.services.iter().map(service_info).collect();
        let policies = objects
            .policies
            .iter()
            .map(|p| PolicyInfo {
                namespace: p.object.metadata.namespace.clone().unwrap_or_default(),
                name: p.object.metadata.name.clone().unwrap_or_default(),
                policy: p.object.clone(),
                origin: p.origin.clone(),
            })
            .collect();
        let mut state = ClusterState::new(namespaces, pods, services, policies);
        state.network_logging = match (
            objects.network_logging.first(),
            objects.invalid_network_logging,
        ) {
            // A valid `default` wins over rejected objects of other names.
            (Some(nl), _) => LoggingConfig::Valid(nl.object.spec.cluster),
            (None, Some(reason)) => LoggingConfig::Invalid(reason),
            (None, None) => LoggingConfig::Absent,
        };
        state
    }

    /// Two pods cannot have one address (`status.podIP`): the later one is reported and left out, so
    /// that what is enforced for that address is never a silent pick.
    fn reject_duplicate_ips(&mut self, pods: &[Arc<PodInfo>], kept: &mut [bool]) {
        let mut owner: HashMap<IpAddr, (String, Origin)> = HashMap::new();
        for (pod, kept) in pods.iter().zip(kept) {
            let given = pod.ip.filter(|_| !pod.host_network && !pod.ip_allocated);
            let Some(ip) = given.filter(|_| *kept) else {
                continue;
            };
            match owner.get(&ip) {
                None => {
                    owner.insert(ip, (pod.key(), pod.origin.clone()));
                }
                Some((first, origin)) => {
                    *kept = false;
                    self.diagnostics.push(Diagnostic {
                        object: Some(object_id("Pod", Some(&pod.namespace), &pod.name)),
                        field: Some("status.podIP".into()),
                        ..Diagnostic::new(
                            Severity::Error,
                            pod.origin.clone(),
                            format!(
                                "{ip} is already the address of pod {first} ({origin}); pod addresses are unique, so this pod is left out"
                            ),
                        )
                    });
                }
            }
        }
    }

    /// Gives every kept pod without an address of its own (`status.podIP`) one: its pinned address
    /// if free, else one from the pod CIDR, picked by hashing its name and probing. Pods carrying
    /// an address allocated by an earlier load get it again (the same object, shared) when the
    /// allocation gives the same.
    fn allocate_ips(&mut self, pods: &mut [Arc<PodInfo>], kept: &[bool]) {
        let given = |p: &PodInfo| p.ip.filter(|_| !p.ip_allocated);
        let mut used: HashSet<IpAddr> = pods
            .iter()
            .zip(kept)
            .filter(|(_, kept)| **kept)
            .filter_map(|(p, _)| given(p))
            .collect();
        let mut pending: Vec<usize> = (0..pods.len())
            .filter(|&i| kept[i] && given(&pods[i]).is_none() && !pods[i].host_network)
            .collect();
        let (base, size) = match self.pod_cidr {
            IpNet::V4(n) => (
                u32::from(n.network()) as u128,
                1u128 << (32 - n.prefix_len()),
            ),
            IpNet::V6(n) => (
                u128::from(n.network()),
                1u128
                    .checked_shl(128 - n.prefix_len() as u32)
                    .unwrap_or(u128::MAX),
            ),
        };
        let to_ip = |offset: u128| -> IpAddr {
            match self.pod_cidr {
                IpNet::V4(_) => IpAddr::V4(((base + offset) as u32).into()),
                IpNet::V6(_) => IpAddr::V6((base + offset).into()),
            }
        };
        if !self.pinned.is_empty() {
            pending.retain(|&i| {
                let pinned = self.pinned.get(&pods[i].key()).copied();
                match pinned.filter(|ip| used.insert(*ip)) {
                    Some(ip) => {
                        allocated(&mut pods[i], Some(ip));
                        false
                    }
                    None => true,
                }
            });
        }
        // Skip the network address and the first few (gateway-style) addresses and the last one.
        let usable = size.saturating_sub(11);
        for i in pending {
            let pod = &mut pods[i];
            // A CIDR with no usable address reports every pod below, like a full one.
            let start =
                crate::workload::fnv1a(&[&pod.namespace, &pod.name]) as u128 % usable.max(1);
            let free = (0..usable.min(used.len() as u128 + 1))
                .map(|i| to_ip(10 + (start + i) % usable))
                .find(|ip| !used.contains(ip));
            if let Some(ip) = free {
                used.insert(ip);
            } else {
                self.diagnostics.push(Diagnostic {
                    object: Some(object_id("Pod", Some(&pod.namespace), &pod.name)),
                    ..Diagnostic::new(
                        Severity::Error,
                        pod.origin.clone(),
                        format!("no free address left in pod CIDR {}", self.pod_cidr),
                    )
                });
            }
            allocated(pod, free);
        }
    }
}

/// The documents of a YAML file (`sources`: first line and text), parsed, decoded and validated;
/// those with the text and line they had in `earlier` (the file's cached version) are taken from it.
fn decode_yaml(
    file: &str,
    sources: Vec<(usize, String)>,
    earlier: Option<CachedFile>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<CachedDocument> {
    let mut earlier = earlier.map_or_else(Vec::new, |f| f.documents);
    let index: HashMap<(usize, &str), usize> = (earlier.iter().enumerate())
        .filter_map(|(i, d)| d.source.as_ref().map(|(l, t)| ((*l, t.as_str()), i)))
        .collect();
    let same: Vec<Option<usize>> = (sources.iter())
        .map(|(line, text)| index.get(&(*line, text.as_str())).copied())
        .collect();
    drop(index);
    (sources.into_iter().zip(same))
        .filter_map(|((line, text), same)| {
            if let Some(i) = same {
                // Lines are unique within a file: each earlier document is taken at most once.
                let decoded = std::mem::take(&mut earlier[i].decoded);
                return Some(CachedDocument {
                    source: Some((line, text)),
                    decoded,
                });
            }
            match document::parse_yaml_document(file, line, &text) {
                Ok(doc) => Some(CachedDocument {
                    decoded: doc.iter().flat_map(objects::decode).collect(),
                    source: Some((line, text)),
                }),
                Err(d) => {
                    diagnostics.push(d);
                    None
                }
            }
        })
        .collect()
}

fn parse_protocol(p: Option<&str>) -> Protocol {
    validate::protocol(p).unwrap_or(Protocol::Tcp) // validated before; never falls back in practice
}

/// Sets an allocated address (or none), copying the pod only if that changes it.
fn allocated(pod: &mut Arc<PodInfo>, ip: Option<IpAddr>) {
    if pod.ip != ip || pod.ip_allocated != ip.is_some() {
        let pod = Arc::make_mut(pod);
        pod.ip = ip;
        pod.ip_allocated = ip.is_some();
    }
}

fn pod_info(loaded: &Loaded<Pod>) -> PodInfo {
    let pod = &loaded.object;
    let mut info = pod_info_of(&pod.metadata, pod.spec.as_ref(), &loaded.origin);
    let status = pod.status.as_ref();
    let ip_text = if info.host_network {
        status.and_then(|s| s.host_ip.as_ref().or(s.pod_ip.as_ref()))
    } else {
        status.and_then(|s| s.pod_ip.as_ref())
    };
    info.ip = ip_text.and_then(|ip| ip.parse().ok());
    info.host_ip = status.and_then(|s| s.host_ip.as_ref()?.parse().ok());
    info
}

/// What a pod's metadata and spec say of it (no status: no addresses), as read from `origin`.
pub(crate) fn pod_info_of(meta: &ObjectMeta, spec: Option<&PodSpec>, origin: &Origin) -> PodInfo {
    let ports = spec
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| ContainerPortInfo {
            name: p.name.clone(),
            port: p.container_port as u16,
            protocol: parse_protocol(p.protocol.as_deref()),
        })
        .collect();
    PodInfo {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        labels: labels_of(meta),
        ip: None,
        ip_allocated: false,
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        host_ip: None,
        node_name: spec.and_then(|s| s.node_name.clone()),
        ports,
        owner: meta
            .owner_references
            .iter()
            .flatten()
            .next()
            .map(|o| OwnerRef {
                kind: o.kind.clone(),
                name: o.name.clone(),
            }),
        from_template: false,
        origin: origin.clone(),
    }
}

fn service_info(loaded: &Loaded<Service>) -> ServiceInfo {
    let svc = &loaded.object;
    let spec = svc.spec.clone().unwrap_or_default();
    ServiceInfo {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        selector: spec.selector,
        cluster_ip: spec.cluster_ip,
        ports: spec
            .ports
            .into_iter()
            .flatten()
            .map(|p| ServicePortInfo {
                name: p.name,
                port: p.port as u16,
                protocol: parse_protocol(p.protocol.as_deref()),
                target_port: p.target_port.unwrap_or(IntOrString::Int(p.port)),
            })
            .collect(),
        origin: loaded.origin.clone(),
    }
}
