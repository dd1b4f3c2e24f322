//! Object identities: the kind, namespace and name that say which object a document defines, so
//! that a later version of it (or its rejection) can be matched with an earlier one.

use std::fmt;

/// The kinds Palisade reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `v1 Namespace`.
    Namespace,
    /// `v1 Pod`.
    Pod,
    /// `v1 Service`.
    Service,
    /// `networking.k8s.io/v1 NetworkPolicy`.
    NetworkPolicy,
    /// `v1 Node`: its labels and addresses (the cluster-wide tiers' `nodes` peers).
    Node,
    /// `apps/v1 Deployment`.
    Deployment,
    /// `apps/v1 ReplicaSet`.
    ReplicaSet,
    /// `apps/v1 StatefulSet`.
    StatefulSet,
    /// `apps/v1 DaemonSet`.
    DaemonSet,
    /// `batch/v1 Job`.
    Job,
    /// `batch/v1 CronJob`.
    CronJob,
    /// `networking.gke.io/v1alpha1 NetworkLogging`.
    NetworkLogging,
    /// `policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy`: the Admin and Baseline tiers.
    ClusterNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy`: the Admin tier, before v1alpha2.
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1 BaselineAdminNetworkPolicy`: the Baseline tier, before
    /// v1alpha2 (one, named `default`).
    BaselineAdminNetworkPolicy,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 15] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::Service,
        Kind::NetworkPolicy,
        Kind::Node,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::Job,
        Kind::CronJob,
        Kind::NetworkLogging,
        Kind::ClusterNetworkPolicy,
        Kind::AdminNetworkPolicy,
        Kind::BaselineAdminNetworkPolicy,
    ];

    /// The kind's name as manifests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::Node => "Node",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
            Kind::NetworkLogging => "NetworkLogging",
            Kind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            Kind::AdminNetworkPolicy => "AdminNetworkPolicy",
            Kind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
        }
    }

    /// The kind spelled exactly `name`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The `apiVersion` Palisade reads this kind at.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Pod | Kind::Service | Kind::Node => "v1",
            Kind::NetworkPolicy => "networking.k8s.io/v1",
            Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet | Kind::DaemonSet => "apps/v1",
            Kind::Job | Kind::CronJob => "batch/v1",
            Kind::NetworkLogging => crate::logging::API_VERSION,
            Kind::ClusterNetworkPolicy => "policy.networking.k8s.io/v1alpha2",
            Kind::AdminNetworkPolicy | Kind::BaselineAdminNetworkPolicy => {
                "policy.networking.k8s.io/v1alpha1"
            }
        }
    }

    /// The kind's resource name in API paths (`pods`, `networkpolicies`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::NetworkPolicy => "networkpolicies",
            Kind::Node => "nodes",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
            Kind::NetworkLogging => "networkloggings",
            Kind::ClusterNetworkPolicy => "clusternetworkpolicies",
            Kind::AdminNetworkPolicy => "adminnetworkpolicies",
            Kind::BaselineAdminNetworkPolicy => "baselineadminnetworkpolicies",
        }
    }

    /// Namespaced kinds live in a namespace (`default` when none is given).
    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            Kind::Namespace
                | Kind::Node
                | Kind::NetworkLogging
                | Kind::ClusterNetworkPolicy
                | Kind::AdminNetworkPolicy
                | Kind::BaselineAdminNetworkPolicy
        )
    }

    /// Whether objects of this kind stand for pods by their template.
    pub fn is_workload(self) -> bool {
        matches!(
            self,
            Kind::Deployment
                | Kind::ReplicaSet
                | Kind::StatefulSet
                | Kind::DaemonSet
                | Kind::Job
                | Kind::CronJob
        )
    }

    /// The kind `name` most likely misspells, for a name that is not a kind Palisade reads: the
    /// same letters in another case, or within two edits of a kind of seven letters or more (short
    /// names such as `Pod` are too close to other real kinds to guess).
    pub fn misspelled(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| {
            let kind = k.as_str();
            kind.eq_ignore_ascii_case(name)
                || (kind.len() >= 7 && name.len() >= 5 && edit_distance(kind, name) <= 2)
        })
    }
}

/// Network policy kinds Palisade does not enforce, by API group: other plugins' and APIs', and
/// other versions of the kinds it reads (a Calico or Antrea `NetworkPolicy`, a `v1beta1`
/// ClusterNetworkPolicy). One list for the loader, which skips them with a warning, and for lint.
const UNENFORCED_POLICY_KINDS: &[(&str, &[&str])] = &[
    (
        "cilium.io",
        &["CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"],
    ),
    ("crd.projectcalico.org", CALICO),
    ("projectcalico.org", CALICO),
    (
        "policy.networking.k8s.io",
        &[
            "AdminNetworkPolicy",
            "BaselineAdminNetworkPolicy",
            "ClusterNetworkPolicy",
        ],
    ),
    ("networking.k8s.io", &["NetworkPolicy"]),
    ("extensions", &["NetworkPolicy"]),
    ("networking.gke.io", &["FQDNNetworkPolicy"]),
    ("crd.antrea.io", &["NetworkPolicy", "ClusterNetworkPolicy"]),
    (
        "security.antrea.tanzu.vmware.com",
        &["NetworkPolicy", "ClusterNetworkPolicy"],
    ),
    ("network.openshift.io", &["EgressNetworkPolicy"]),
    ("k8s.ovn.org", &["EgressFirewall"]),
];

const CALICO: &[&str] = &[
    "NetworkPolicy",
    "GlobalNetworkPolicy",
    "StagedNetworkPolicy",
    "StagedGlobalNetworkPolicy",
    "StagedKubernetesNetworkPolicy",
];

/// The API groups of network policy kinds of other plugins (no kind of theirs is one Palisade
/// reads at any version), with those kinds: what a cluster is asked about, so that an answer read
/// from its API server says what it ignores, as one read from manifests does.
pub fn foreign_policy_groups() -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    const OURS: [&str; 3] = [
        "policy.networking.k8s.io",
        "networking.k8s.io",
        "extensions",
    ];
    (UNENFORCED_POLICY_KINDS.iter())
        .filter(|(group, _)| !OURS.contains(group))
        .copied()
}

/// True if `kind` of `api_version` is a network policy Palisade does not enforce: one of
/// another plugin or API, or another version of a kind it reads. A kind it reads at the version
/// it reads is not; nor is a group not listed (a misspelt `networking.k8s.io` stays an error).
pub fn unenforced_policy_kind(api_version: &str, kind: &str) -> bool {
    if Kind::parse(kind).is_some_and(|k| k.api_version() == api_version) {
        return false;
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    (UNENFORCED_POLICY_KINDS.iter()).any(|(g, kinds)| *g == group && kinds.contains(&kind))
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Levenshtein distance over bytes (kind names are ASCII; anything else is far from all of them).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 2 || b.len() > 64 {
        return usize::MAX;
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Which object a document defines: kind, namespace (for namespaced kinds) and name. Its hash is
/// computed once, when it is made: keys are looked up many times per load (every object, every
/// pass), and the objects they belong to live across loads.
#[derive(Clone, Debug)]
pub struct ObjectKey {
    kind: Kind,
    namespace: Option<String>,
    name: String,
    hash: u64,
}

impl ObjectKey {
    /// The key of object `name` of `kind`, in `namespace` when the kind is namespaced.
    pub fn new(kind: Kind, namespace: Option<&str>, name: &str) -> Self {
        let namespace = kind
            .namespaced()
            .then(|| namespace.unwrap_or("default").to_string());
        let hash = {
            use std::hash::BuildHasher;
            foldhash::fast::FixedState::with_seed(0).hash_one((kind, &namespace, name))
        };
        ObjectKey {
            kind,
            namespace,
            name: name.to_string(),
            hash,
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The namespace of a namespaced kind.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::hash::Hash for ObjectKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for ObjectKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.kind == other.kind
            && self.name == other.name
            && self.namespace == other.namespace
    }
}

impl Eq for ObjectKey {}

impl PartialOrd for ObjectKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.kind, &self.namespace, &self.name).cmp(&(other.kind, &other.namespace, &other.name))
    }
}

/// `Kind ns/name`, or `Kind name` for cluster-scoped kinds (as diagnostics name objects).
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_keys_are_written_and_read_as_ns_slash_name() {
        let key = PodKey::new("shop", "cart-1");
        assert_eq!(key.to_string(), "shop/cart-1");
        assert_eq!("shop/cart-1".parse::<PodKey>(), Ok(key.clone()));
        // As the lab's state file has always written them.
        assert_eq!(serde_json::to_string(&key).unwrap(), r#""shop/cart-1""#);
        assert_eq!(
            serde_json::from_str::<PodKey>(r#""shop/cart-1""#).unwrap(),
            key
        );
        for bad in ["cart", "/cart", "shop/", ""] {
            let err = bad.parse::<PodKey>().unwrap_err();
            assert!(err.contains("expected namespace/name"), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<PodKey>(r#""cart""#).is_err());
    }

    #[test]
    fn misspelled_kinds_are_recognised_and_real_ones_are_not() {
        assert_eq!(
            Kind::misspelled("NetworkPolicyy"),
            Some(Kind::NetworkPolicy)
        );
        assert_eq!(Kind::misspelled("networkpolicy"), Some(Kind::NetworkPolicy));
        assert_eq!(Kind::misspelled("NetworkPolcy"), Some(Kind::NetworkPolicy));
        assert_eq!(Kind::misspelled("Deploymnet"), Some(Kind::Deployment));
        assert_eq!(Kind::misspelled("pod"), Some(Kind::Pod));
        for real in [
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "Role",
            "Pods",
            "Ingress",
            "GlobalNetworkPolicy",
            "CiliumNetworkPolicy",
            "CiliumClusterwideNetworkPolicy",
            "Endpoints",
            "PodDisruptionBudget",
        ] {
            assert_eq!(Kind::misspelled(real), None, "{real}");
        }
    }

    #[test]
    fn unenforced_policy_kinds_are_other_plugins_and_other_versions() {
        for (api_version, kind) in [
            ("cilium.io/v2", "CiliumNetworkPolicy"),
            ("projectcalico.org/v3", "NetworkPolicy"),
            ("crd.projectcalico.org/v1", "GlobalNetworkPolicy"),
            ("crd.antrea.io/v1beta1", "NetworkPolicy"),
            ("networking.gke.io/v1alpha3", "FQDNNetworkPolicy"),
            ("policy.networking.k8s.io/v1alpha1", "ClusterNetworkPolicy"),
            ("policy.networking.k8s.io/v1beta1", "ClusterNetworkPolicy"),
            ("policy.networking.k8s.io/v1alpha2", "AdminNetworkPolicy"),
            ("networking.k8s.io/v1beta1", "NetworkPolicy"),
            ("extensions/v1beta1", "NetworkPolicy"),
        ] {
            assert!(
                unenforced_policy_kind(api_version, kind),
                "{api_version} {kind}"
            );
        }
        for (api_version, kind) in [
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy"),
            ("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy"),
            ("netwrking.k8s.io/v1", "NetworkPolicy"),
            ("v1", "ConfigMap"),
            ("kyverno.io/v1", "ClusterPolicy"),
        ] {
            assert!(
                !unenforced_policy_kind(api_version, kind),
                "{api_version} {kind}"
            );
        }
    }

    #[test]
    fn keys_display_like_diagnostics() {
        let k = ObjectKey::new(Kind::NetworkPolicy, None, "x");
        assert_eq!(k.to_string(), "NetworkPolicy default/x");
        let k = ObjectKey::new(Kind::Namespace, Some("ignored"), "shop");
        assert_eq!(k.to_string(), "Namespace shop");
        let k = ObjectKey::new(Kind::Node, Some("ignored"), "n1");
        assert_eq!(k.to_string(), "Node n1");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "ab"), 1);
    }
}

/// A pod's identity: its namespace and name, written `ns/name` (as kubectl and the lab's state
/// file write it).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub struct PodKey {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl PodKey {
    /// Pod `name` of `namespace`.
    pub fn new(namespace: &str, name: &str) -> PodKey {
        PodKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for PodKey {
    type Err = String;

    /// Parses `ns/name`.
    fn from_str(text: &str) -> Result<PodKey, String> {
        match text.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
                Ok(PodKey::new(namespace, name))
            }
            _ => Err(format!("{text:?} is not a pod; expected namespace/name")),
        }
    }
}

impl From<PodKey> for String {
    fn from(key: PodKey) -> String {
        key.to_string()
    }
}

impl TryFrom<String> for PodKey {
    type Error = String;
    fn try_from(text: String) -> Result<PodKey, String> {
        text.parse()
    }
}
