//! The indexed cluster snapshot every other part of Palisade reads.

use crate::diagnostic::Origin;
use crate::id::{Id, IdVec};
use crate::key::{Kind, ObjectKey, PodKey};
use crate::logging::LoggingConfig;
use crate::netpol::ValidPolicy;
use crate::tier::ValidTierPolicy;
use crate::Protocol;
use foldhash::{HashMap, HashMapExt};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The label the apiserver sets on every namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A namespace with its labels (always including `kubernetes.io/metadata.name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Namespace name.
    pub name: String,
    /// Labels, including `kubernetes.io/metadata.name: <name>`.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Where it was declared; `None` when it exists only because objects live in it.
    pub origin: Option<Origin>,
}

/// A container port of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPortInfo {
    /// The port name, if any (IANA_SVC_NAME).
    pub name: Option<String>,
    /// Port number.
    pub port: u16,
    /// Protocol (TCP, UDP or SCTP).
    pub protocol: Protocol,
}

/// The controller that owns a pod (its first owner reference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    /// Kind, e.g. `ReplicaSet`.
    pub kind: String,
    /// Name, e.g. `web-6d9c7b5f4`.
    pub name: String,
}

/// A pod as policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// Pod IP (`status.podIP`, or allocated from the pod CIDR); for `hostNetwork` pods the node's IP
    /// when the manifest gives one.
    pub ip: Option<IpAddr>,
    /// True when `ip` was allocated by Palisade rather than read from `status.podIP`.
    pub ip_allocated: bool,
    /// `spec.hostNetwork`: such pods are never selected by policies.
    pub host_network: bool,
    /// `status.hostIP`: the address of the node the pod runs on, if known.
    pub host_ip: Option<IpAddr>,
    /// `spec.nodeName`, if set.
    pub node_name: Option<String>,
    /// `status.phase` is `Succeeded` or `Failed`: the pod has ended and holds no address (the API
    /// server may give its IP to another pod), so it is never given one either.
    pub finished: bool,
    /// Container ports.
    pub ports: Vec<ContainerPortInfo>,
    /// First owner reference (workload kind and name).
    pub owner: Option<OwnerRef>,
    /// True when the pod was made from a workload template (no Pod object was given).
    pub from_template: bool,
    /// Where it was read (the workload's document for template pods).
    pub origin: Origin,
}

impl PodInfo {
    /// Whether policy can be enforced for it anywhere: it has an address, not the node's
    /// (`hostNetwork` pods are never selected).
    pub fn enforceable(&self) -> bool {
        self.ip.is_some() && !self.host_network
    }

    /// Which pod it is.
    pub fn key(&self) -> PodKey {
        PodKey::new(&self.namespace, &self.name)
    }

    /// Resolves a named port for `protocol` on this pod.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.protocol == protocol && p.name.as_deref() == Some(name))
            .map(|p| p.port)
    }
}

/// A Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortInfo {
    /// Port name.
    pub name: Option<String>,
    /// The Service's port (what clients dial on the ClusterIP).
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// `targetPort` (number or container port name); defaults to `port`.
    pub target_port: IntOrString,
}

/// A Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pod selector; `None` for selector-less Services.
    pub selector: Option<BTreeMap<String, String>>,
    /// `spec.clusterIP`, if given.
    pub cluster_ip: Option<String>,
    /// Ports.
    pub ports: Vec<ServicePortInfo>,
    /// Where it was read.
    pub origin: Origin,
}

impl ServiceInfo {
    /// `spec.clusterIP` as an address; `None` when absent or not one (`None`, headless).
    pub fn address(&self) -> Option<IpAddr> {
        self.cluster_ip.as_deref()?.parse().ok()
    }
}

/// A validated NetworkPolicy.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object as read and its decoded spec, shared with the loader's cache.
    pub policy: Arc<ValidPolicy>,
    /// Where it was read.
    pub origin: Origin,
}

impl PolicyInfo {
    /// The policy `policy`, read at `origin`, in the namespace and with the name of its metadata.
    pub fn new(policy: impl Into<Arc<ValidPolicy>>, origin: Origin) -> PolicyInfo {
        let policy = policy.into();
        let meta = &policy.object().metadata;
        PolicyInfo {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            policy,
            origin,
        }
    }

    /// Which policy it is.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(Kind::NetworkPolicy, Some(&self.namespace), &self.name)
    }
}

/// A validated cluster-wide policy (ClusterNetworkPolicy, AdminNetworkPolicy or
/// BaselineAdminNetworkPolicy).
#[derive(Clone, Debug, PartialEq)]
pub struct TierPolicyInfo {
    /// Name (the kinds are cluster-scoped).
    pub name: String,
    /// The object as read and its decoded spec, shared with the loader's cache.
    pub policy: Arc<ValidTierPolicy>,
    /// Where it was read.
    pub origin: Origin,
}

impl TierPolicyInfo {
    /// The policy `policy`, read at `origin`.
    pub fn new(policy: impl Into<Arc<ValidTierPolicy>>, origin: Origin) -> TierPolicyInfo {
        let policy = policy.into();
        TierPolicyInfo {
            name: policy.name().to_string(),
            policy,
            origin,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.policy.kind()
    }

    /// Which policy it is.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.kind(), None, &self.name)
    }
}

/// A node as policy will see it: what the cluster-wide tiers' `nodes` peers select (its labels)
/// and match (its addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Its `InternalIP` and `ExternalIP` addresses (`status.addresses`), in the order given,
    /// each once.
    pub addresses: Vec<IpAddr>,
    /// Where it was read.
    pub origin: Origin,
}

/// A pod of a [`ClusterState`] (its position in [`ClusterState::pods`]).
pub type PodId = Id<PodInfo>;

/// A namespace of a [`ClusterState`] (its position in [`ClusterState::namespaces`]).
pub type NamespaceId = Id<NamespaceInfo>;

/// One consistent snapshot of the cluster: namespaces, pods, services and policies, each sorted by
/// namespace then name, with indexes by name and by pod IP; and the nodes, sorted by name.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    /// Namespaces sorted by name.
    pub namespaces: IdVec<NamespaceInfo, NamespaceInfo>,
    /// Pods sorted by namespace, then name; shared with the loader's cache while unchanged.
    pub pods: IdVec<PodInfo, Arc<PodInfo>>,
    /// Services sorted by namespace, then name.
    pub services: Vec<ServiceInfo>,
    /// NetworkPolicies sorted by namespace, then name.
    pub policies: Vec<PolicyInfo>,
    /// Nodes sorted by name ([`ClusterState::with_nodes`]).
    pub nodes: Vec<NodeInfo>,
    /// Cluster-wide policies sorted by kind, then name ([`ClusterState::with_tier_policies`]).
    pub tier_policies: Vec<TierPolicyInfo>,
    /// The `NetworkLogging` configuration.
    pub network_logging: LoggingConfig,
    namespace_index: HashMap<String, NamespaceId>,
    ip_index: HashMap<IpAddr, PodId>,
}

impl ClusterState {
    /// Builds the snapshot: sorts, adds implicit namespaces and the name label, and indexes.
    pub fn new<P: Into<Arc<PodInfo>>>(
        mut namespaces: Vec<NamespaceInfo>,
        pods: Vec<P>,
        mut services: Vec<ServiceInfo>,
        mut policies: Vec<PolicyInfo>,
    ) -> Self {
        let mut pods: Vec<Arc<PodInfo>> = pods.into_iter().map(Into::into).collect();
        let mut known: HashMap<String, usize> = HashMap::new();
        for ns in &namespaces {
            known.insert(ns.name.clone(), 0);
        }
        let referenced = pods
            .iter()
            .map(|p| &p.namespace)
            .chain(services.iter().map(|s| &s.namespace))
            .chain(policies.iter().map(|p| &p.namespace));
        for name in referenced {
            if !known.contains_key(name) {
                known.insert(name.clone(), 0);
                namespaces.push(NamespaceInfo {
                    name: name.clone(),
                    labels: BTreeMap::new(),
                    annotations: BTreeMap::new(),
                    origin: None,
                });
            }
        }
        for ns in &mut namespaces {
            ns.labels
                .insert(NAMESPACE_NAME_LABEL.to_string(), ns.name.clone());
        }
        namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let (namespaces, pods) = (IdVec::from(namespaces), IdVec::from(pods));
        let namespace_index = (namespaces.iter_enumerated())
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let ip_index = index_ips(&pods);
        ClusterState {
            namespaces,
            pods,
            services,
            policies,
            nodes: Vec::new(),
            tier_policies: Vec::new(),
            network_logging: LoggingConfig::Absent,
            namespace_index,
            ip_index,
        }
    }

    /// The snapshot with `nodes` (sorted here), in place of those it had.
    pub fn with_nodes(mut self, mut nodes: Vec<NodeInfo>) -> Self {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        self.nodes = nodes;
        self
    }

    /// The snapshot with the cluster-wide policies `policies` (sorted here), in place of those it
    /// had.
    pub fn with_tier_policies(mut self, mut policies: Vec<TierPolicyInfo>) -> Self {
        policies.sort_by(|a, b| (a.kind(), &a.name).cmp(&(b.kind(), &b.name)));
        self.tier_policies = policies;
        self
    }

    /// The annotations of the policy of `kind` (a NetworkPolicy, in `namespace`, or a
    /// cluster-wide kind) called `name`, when it is in this state and has any.
    pub fn policy_annotations(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Option<&BTreeMap<String, String>> {
        if kind == Kind::NetworkPolicy {
            // Sorted by namespace, then name.
            let at = (self.policies).binary_search_by(|p| {
                (p.namespace.as_str(), p.name.as_str()).cmp(&(namespace, name))
            });
            return at.ok().and_then(|i| {
                self.policies[i]
                    .policy
                    .object()
                    .metadata
                    .annotations
                    .as_ref()
            });
        }
        (self.tier_policies.iter())
            .find(|p| p.kind() == kind && p.name == name)
            .and_then(|p| p.policy.object().metadata.annotations.as_ref())
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        let at = self.nodes.binary_search_by(|n| n.name.as_str().cmp(name));
        at.ok().map(|i| &self.nodes[i])
    }

    /// The namespace called `name`.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceInfo> {
        self.namespace_index.get(name).map(|&i| &self.namespaces[i])
    }

    /// The namespace called `name`.
    pub fn namespace_id(&self, name: &str) -> Option<NamespaceId> {
        self.namespace_index.get(name).copied()
    }

    /// Pod `namespace/name`.
    pub fn pod_id(&self, namespace: &str, name: &str) -> Option<PodId> {
        // Pods are sorted by namespace, then name.
        (self.pods.as_slice())
            .binary_search_by(|p| (p.namespace.as_str(), p.name.as_str()).cmp(&(namespace, name)))
            .ok()
            .map(Id::new)
    }

    /// The (non-hostNetwork) pod that has `ip`.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<PodId> {
        self.ip_index.get(&ip).copied()
    }

    /// Puts `pod` in place of pod `namespace/name` (or adds it), or takes that pod out (`None`).
    /// Refused when that would change the namespaces (the namespace has no object of its own) or
    /// give one address two pods: the loader then builds the state afresh, where both are decided
    /// and reported.
    pub(crate) fn set_pod(
        &mut self,
        namespace: &str,
        name: &str,
        pod: Option<Arc<PodInfo>>,
    ) -> Result<(), Rebuild> {
        self.declared(namespace)?;
        let at = (self.pods.as_slice())
            .binary_search_by(|p| (p.namespace.as_str(), p.name.as_str()).cmp(&(namespace, name)));
        let address = |p: &PodInfo| p.ip.filter(|_| !p.host_network);
        if let Some(ip) = pod.as_deref().and_then(address) {
            match (self.ip_index.get(&ip), at) {
                (Some(&owner), Ok(i)) if owner.index() == i => {}
                (Some(_), _) => return Err(Rebuild),
                (None, _) => {}
            }
        }
        match (at, pod) {
            (Ok(i), Some(pod)) => {
                let id = Id::new(i);
                if let Some(ip) = address(&self.pods[id]) {
                    self.ip_index.remove(&ip);
                }
                if let Some(ip) = address(&pod) {
                    self.ip_index.insert(ip, id);
                }
                self.pods[id] = pod;
            }
            // Ids after it move: the address index is made again.
            (Ok(i), None) => {
                self.pods.remove(Id::new(i));
                self.ip_index = index_ips(&self.pods);
            }
            (Err(i), Some(pod)) => {
                self.pods.insert(Id::new(i), pod);
                self.ip_index = index_ips(&self.pods);
            }
            (Err(_), None) => {}
        }
        Ok(())
    }

    /// Puts `service` in place of Service `namespace/name` (or adds it), or takes it out.
    pub(crate) fn set_service(
        &mut self,
        namespace: &str,
        name: &str,
        service: Option<ServiceInfo>,
    ) -> Result<(), Rebuild> {
        self.declared(namespace)?;
        set_sorted(&mut self.services, service, |s| {
            (s.namespace.as_str(), s.name.as_str()).cmp(&(namespace, name))
        });
        Ok(())
    }

    /// Puts `policy` in place of NetworkPolicy `namespace/name` (or adds it), or takes it out.
    pub(crate) fn set_policy(
        &mut self,
        namespace: &str,
        name: &str,
        policy: Option<PolicyInfo>,
    ) -> Result<(), Rebuild> {
        self.declared(namespace)?;
        set_sorted(&mut self.policies, policy, |p| {
            (p.namespace.as_str(), p.name.as_str()).cmp(&(namespace, name))
        });
        Ok(())
    }

    /// Puts `policy` in place of the cluster-wide policy `name` of `kind` (or adds it), or takes
    /// it out (`None`). They belong to no namespace: always taken in place.
    pub(crate) fn set_tier_policy(
        &mut self,
        kind: Kind,
        name: &str,
        policy: Option<TierPolicyInfo>,
    ) {
        set_sorted(&mut self.tier_policies, policy, |p| {
            (p.kind(), p.name.as_str()).cmp(&(kind, name))
        });
    }

    /// Puts `node` in place of node `name` (or adds it), or takes that node out (`None`). Nodes
    /// belong to no namespace: always taken in place.
    pub(crate) fn set_node(&mut self, name: &str, node: Option<NodeInfo>) {
        set_sorted(&mut self.nodes, node, |n| n.name.as_str().cmp(name));
    }

    /// Puts `namespace` (its labels, annotations and origin) in place of the declared namespace
    /// of its name; refused for a namespace added or removed.
    pub(crate) fn set_namespace(&mut self, mut namespace: NamespaceInfo) -> Result<(), Rebuild> {
        let id = self.declared(&namespace.name)?;
        (namespace.labels).insert(NAMESPACE_NAME_LABEL.to_string(), namespace.name.clone());
        self.namespaces[id] = namespace;
        Ok(())
    }

    /// The namespace `name`, when it has an object of its own (it does not come and go with
    /// the objects in it).
    fn declared(&self, name: &str) -> Result<NamespaceId, Rebuild> {
        let id = self.namespace_id(name).ok_or(Rebuild)?;
        match self.namespaces[id].origin {
            Some(_) => Ok(id),
            None => Err(Rebuild),
        }
    }
}

/// A change a [`ClusterState`] cannot take in place: it is to be built afresh.
#[derive(Debug)]
pub(crate) struct Rebuild;

/// Which (non-hostNetwork) pod has each address.
fn index_ips(pods: &IdVec<PodInfo, Arc<PodInfo>>) -> HashMap<IpAddr, PodId> {
    (pods.iter_enumerated())
        .filter(|(_, p)| !p.host_network)
        .filter_map(|(i, p)| p.ip.map(|ip| (ip, i)))
        .collect()
}

/// Puts `value` in place of the item of the sorted `list` that `order` finds (how an item
/// compares with the one sought), or adds it there; takes that item out when `value` is `None`.
fn set_sorted<T>(list: &mut Vec<T>, value: Option<T>, order: impl Fn(&T) -> std::cmp::Ordering) {
    let found = list.binary_search_by(order);
    match (found, value) {
        (Ok(i), Some(value)) => list[i] = value,
        (Ok(i), None) => {
            list.remove(i);
        }
        (Err(i), Some(value)) => list.insert(i, value),
        (Err(_), None) => {}
    }
}
