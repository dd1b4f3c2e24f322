//! The objects of a watched source — the API server — kept up to date per object by its events
//! (applied, deleted, a kind listed afresh: the shape of a Kubernetes reflector), and loaded like a
//! folder's files ([`crate::Loader::load_store`]): each object is one document named by its URL,
//! whose resource version tells it unchanged, so that an event decodes one object, not the
//! cluster.

use crate::key::{Kind, ObjectKey};
use crate::tier::TIER_KINDS;
use foldhash::HashMap;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a source says happened to the objects of one kind.
#[derive(Clone, Debug, PartialEq)]
pub enum ObjectEvent {
    /// An object was added or changed (as the API server wrote it).
    Applied(Kind, Value),
    /// An object was deleted (its last state).
    Deleted(Kind, Value),
    /// Every object of the kind, listed afresh (at start, or after the watch had to start over):
    /// objects of the kind not in it are gone.
    Listed(Kind, Vec<Value>),
}

/// The fields of a Pod's `status` Palisade reads; the rest (conditions, container statuses) changes
/// all the time and means nothing to policy.
const POD_STATUS: [&str; 5] = ["phase", "podIP", "podIPs", "hostIP", "hostIPs"];

/// The fields of a Node's `status` Palisade reads. The kubelet rewrites the rest (conditions and
/// their heartbeats, images, capacity, volumes) all the time; the node's `spec` (taints,
/// `unschedulable`) and annotations change too and mean nothing to policy: none of them is kept.
const NODE_STATUS: [&str; 1] = ["addresses"];

/// One object as the source last gave it.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    /// `metadata.resourceVersion` of the version of the object that last changed what Palisade
    /// reads (or, for a source that gives none, a digest of the object).
    pub version: String,
    /// The object with only what Palisade reads: `apiVersion` and `kind` set; no
    /// `metadata.managedFields` nor `metadata.resourceVersion`; of a Pod's `status`, only
    /// [`POD_STATUS`]; of a Node, no `spec` nor annotations, and of its `status` only
    /// [`NODE_STATUS`].
    pub value: Value,
}

/// The objects of a source, by kind, namespace and name.
#[derive(Debug)]
pub struct ObjectStore {
    /// Which store this is (unique in the process, a clone included): a load knows whether the
    /// changes it is told are those since its own last load.
    id: u64,
    /// What changed since when: lets a load apply only that ([`crate::Loader::load_store`]).
    journal: Journal,
    /// Where the objects come from (the API server's URL): names them in diagnostics.
    server: String,
    objects: BTreeMap<ObjectKey, Stored>,
    /// Objects per kind.
    counts: BTreeMap<Kind, usize>,
    /// Kinds the source could not list (an optional kind failing): none of their objects is held,
    /// and the loader keeps their last good versions until a list of them arrives.
    unknown: std::collections::BTreeSet<Kind>,
    /// Objects of one kind at most: past it, new objects are refused.
    max_per_kind: usize,
}

/// Which objects changed, at which revision of the store: a load that knows the revision it last
/// read takes only the objects changed since.
#[derive(Clone, Debug, Default)]
struct Journal {
    /// The revision of the last change.
    revision: u64,
    /// Each key changed (a deleted one too, until forgotten) and the revision of its last change.
    last_change: HashMap<ObjectKey, u64>,
    /// The same, by revision.
    by_revision: BTreeMap<u64, ObjectKey>,
    /// What changed up to this revision is no longer told apart (deleted keys forgotten, a kind
    /// unknown or known again): a load from before it reads every object.
    horizon: u64,
}

impl Journal {
    fn changed(&mut self, key: &ObjectKey) {
        self.revision += 1;
        if let Some(old) = self.last_change.insert(key.clone(), self.revision) {
            self.by_revision.remove(&old);
        }
        self.by_revision.insert(self.revision, key.clone());
    }

    /// Everything changed, as far as a load from before now can tell.
    fn reset(&mut self) {
        self.revision += 1;
        self.horizon = self.revision;
    }

    /// Forgets the deleted keys once they outnumber the live ones (pods come and go for ever):
    /// memory stays proportional to the objects held.
    fn forget_deleted(&mut self, live: &BTreeMap<ObjectKey, Stored>) {
        if self.last_change.len() <= 2 * live.len() + 4096 {
            return;
        }
        let horizon = &mut self.horizon;
        self.by_revision.retain(|&revision, key| {
            let keep = live.contains_key(key);
            if !keep {
                *horizon = (*horizon).max(revision);
            }
            keep
        });
        self.last_change.retain(|key, _| live.contains_key(key));
    }
}

/// Gives every store its own id.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Default for ObjectStore {
    fn default() -> Self {
        ObjectStore {
            id: next_id(),
            journal: Journal::default(),
            server: String::new(),
            objects: BTreeMap::new(),
            counts: BTreeMap::new(),
            unknown: Default::default(),
            max_per_kind: 0,
        }
    }
}

impl Clone for ObjectStore {
    /// A copy is another store: a load of the original does not count as one of the copy.
    fn clone(&self) -> Self {
        ObjectStore {
            id: next_id(),
            journal: self.journal.clone(),
            server: self.server.clone(),
            objects: self.objects.clone(),
            counts: self.counts.clone(),
            unknown: self.unknown.clone(),
            max_per_kind: self.max_per_kind,
        }
    }
}

impl ObjectStore {
    /// An empty store for the objects of `server`, holding at most `max_per_kind` objects of a
    /// kind.
    pub fn new(server: impl Into<String>, max_per_kind: usize) -> ObjectStore {
        ObjectStore {
            server: server.into(),
            max_per_kind,
            ..ObjectStore::default()
        }
    }

    /// The source's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Applies one event. True when it changed what the store holds; an error says why an object
    /// was refused (no name, or too many of its kind) — the rest of the event is applied.
    pub fn apply(&mut self, event: ObjectEvent) -> (bool, Vec<String>) {
        let mut refused = Vec::new();
        let changed = match event {
            ObjectEvent::Applied(kind, value) => match self.insert(kind, value) {
                Ok(Some(key)) => {
                    self.journal.changed(&key);
                    true
                }
                Ok(None) => false,
                Err(why) => {
                    refused.push(why);
                    false
                }
            },
            ObjectEvent::Deleted(kind, value) => match key_of(kind, &value) {
                Some(key) => self.remove(&key),
                None => false,
            },
            ObjectEvent::Listed(kind, values) => {
                // A kind known again is a change even when its objects are the same: the loader
                // held their last good versions meanwhile.
                let was_unknown = self.unknown.remove(&kind);
                if was_unknown {
                    self.journal.reset();
                }
                let keys: Vec<ObjectKey> = (self.objects.keys())
                    .filter(|key| key.kind() == kind)
                    .cloned()
                    .collect();
                let old: BTreeMap<ObjectKey, Stored> = (keys.into_iter())
                    .filter_map(|key| self.objects.remove_entry(&key))
                    .collect();
                self.counts.remove(&kind);
                for value in values {
                    if let Err(why) = self.insert(kind, value) {
                        refused.push(why);
                    }
                }
                self.unchanged_since(kind, &old) | was_unknown
            }
        };
        self.journal.forget_deleted(&self.objects);
        (changed, refused)
    }

    /// Holds `value`: its key when that changed what is held.
    fn insert(&mut self, kind: Kind, mut value: Value) -> Result<Option<ObjectKey>, String> {
        let Some(key) = key_of(kind, &value) else {
            return Err(format!(
                "a {kind} without metadata.name from {}: skipped",
                self.server
            ));
        };
        let version = trim(kind, &mut value);
        let count = self.count(kind);
        match self.objects.get_mut(&key) {
            // A new version that changes nothing Palisade reads (a pod's readiness, say) is no
            // change: nothing is decoded again, no pass is made.
            Some(stored) if stored.version == version || stored.value == value => Ok(None),
            Some(stored) => {
                *stored = Stored { version, value };
                Ok(Some(key))
            }
            None if count >= self.max_per_kind => Err(format!(
                "{key} from {}: more than {} objects of kind {kind}; skipped",
                self.server, self.max_per_kind
            )),
            None => {
                self.objects.insert(key.clone(), Stored { version, value });
                *self.counts.entry(kind).or_default() += 1;
                Ok(Some(key))
            }
        }
    }

    /// Whether the objects of `kind` differ from `old` (what was held of the kind before it was
    /// listed afresh). Those that do not keep their old version, so that the loader's cache of
    /// them stays good: a relist that brings nothing new is no change at all.
    fn unchanged_since(&mut self, kind: Kind, old: &BTreeMap<ObjectKey, Stored>) -> bool {
        let mut changed = false;
        for (key, stored) in self.objects.iter_mut().filter(|(k, _)| k.kind() == kind) {
            match old.get(key) {
                Some(was) if was.version == stored.version || was.value == stored.value => {
                    stored.version.clone_from(&was.version);
                }
                _ => {
                    self.journal.changed(key);
                    changed = true;
                }
            }
        }
        for key in old.keys().filter(|key| !self.objects.contains_key(*key)) {
            self.journal.changed(key);
            changed = true;
        }
        changed
    }

    fn remove(&mut self, key: &ObjectKey) -> bool {
        let removed = self.objects.remove(key).is_some();
        if removed {
            self.journal.changed(key);
            if let Some(count) = self.counts.get_mut(&key.kind()) {
                *count -= 1;
            }
        }
        removed
    }

    /// Says the objects of `kind` are unknown for now (it could not be listed): the loader keeps
    /// their last good versions until it is listed.
    pub fn mark_unknown(&mut self, kind: Kind) {
        if self.unknown.insert(kind) {
            self.journal.reset();
        }
    }

    /// Which store this is and its revision: what a load records to be told, next time, only
    /// what changed since ([`ObjectStore::changed_since`]).
    pub(crate) fn revision(&self) -> (u64, u64) {
        (self.id, self.journal.revision)
    }

    /// The keys changed (applied, deleted) since `revision` of this store (`id`), in the order of
    /// their last change; none when that is no longer known (another store, or too long ago).
    pub(crate) fn changed_since(
        &self,
        (id, revision): (u64, u64),
    ) -> Option<impl Iterator<Item = &ObjectKey>> {
        (id == self.id && revision >= self.journal.horizon && revision <= self.journal.revision)
            .then(|| {
                self.journal
                    .by_revision
                    .range(revision + 1..)
                    .map(|(_, key)| key)
            })
    }

    /// The object `key` as held.
    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&Stored> {
        self.objects.get(key)
    }

    /// Whether the objects of `kind` are unknown ([`ObjectStore::mark_unknown`]).
    pub fn unknown(&self, kind: Kind) -> bool {
        self.unknown.contains(&kind)
    }

    /// Objects of `kind` held.
    pub fn count(&self, kind: Kind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when no object is held.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every object, in key order.
    pub(crate) fn objects(&self) -> impl Iterator<Item = (&ObjectKey, &Stored)> {
        self.objects.iter()
    }

    /// The URL of the object `key` on the source's server (what `kubectl get --raw` takes):
    /// names it in diagnostics.
    pub fn url(&self, key: &ObjectKey) -> String {
        let kind = key.kind();
        let root = match kind.api_version() {
            "v1" => "/api/v1".to_string(),
            group => format!("/apis/{group}"),
        };
        let namespace = (key.namespace()).map_or(String::new(), |ns| format!("/namespaces/{ns}"));
        format!(
            "{}{root}{namespace}/{}/{}",
            self.server,
            kind.plural(),
            key.name()
        )
    }
}

/// The key of `value`, an object of `kind`: none without a name.
fn key_of(kind: Kind, value: &Value) -> Option<ObjectKey> {
    let text = |field: &str| match value.pointer(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    };
    let name = text("/metadata/name")?;
    Some(ObjectKey::new(kind, text("/metadata/namespace"), name))
}

/// Keeps of `value`, an object of `kind`, only what Palisade reads ([`Stored::value`]); its
/// version.
fn trim(kind: Kind, value: &mut Value) -> String {
    let mut version = None;
    if let Value::Object(fields) = value {
        fields.insert("apiVersion".into(), kind.api_version().into());
        fields.insert("kind".into(), kind.as_str().into());
        if let Some(Value::Object(meta)) = fields.get_mut("metadata") {
            meta.remove("managedFields");
            version = match meta.remove("resourceVersion") {
                Some(Value::String(v)) if !v.is_empty() => Some(v),
                _ => None,
            };
        }
        if TIER_KINDS.contains(&kind) {
            fields.retain(|field, _| {
                matches!(field.as_str(), "apiVersion" | "kind" | "metadata" | "spec")
            });
        }
        let status_read: Option<&[&str]> = match kind {
            Kind::Pod => Some(&POD_STATUS),
            Kind::Node => {
                fields.remove("spec");
                if let Some(Value::Object(meta)) = fields.get_mut("metadata") {
                    meta.remove("annotations");
                }
                Some(&NODE_STATUS)
            }
            _ => None,
        };
        if let (Some(read), Some(Value::Object(status))) = (status_read, fields.get_mut("status")) {
            status.retain(|field, _| read.contains(&field.as_str()));
        }
    }
    version.unwrap_or_else(|| digest(value))
}

/// A version for an object that carries none: its content's digest.
fn digest(value: &Value) -> String {
    use std::hash::BuildHasher;
    let state = foldhash::fast::FixedState::with_seed(0);
    format!("#{:016x}", state.hash_one(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Pod `name` at `version`, labelled with it (each version changes what Palisade reads).
    fn pod(name: &str, version: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "shop", "resourceVersion": version,
               "labels": {"v": version}, "managedFields": [{"manager": "kubectl"}]}, "spec": {}})
    }

    #[test]
    fn events_change_one_object_and_lists_replace_a_kind() {
        let mut store = ObjectStore::new("https://api", 3);
        let list = || vec![pod("a", "1"), pod("b", "1")];
        let listed = ObjectEvent::Listed(Kind::Pod, list());
        assert_eq!(store.apply(listed), (true, vec![]));
        assert_eq!(store.count(Kind::Pod), 2);
        // The same list again (a relist that brings nothing new) is no change.
        let again = ObjectEvent::Listed(Kind::Pod, list());
        assert_eq!(store.apply(again), (false, vec![]));
        // The same version again is no change; a new one is.
        assert!(
            !store
                .apply(ObjectEvent::Applied(Kind::Pod, pod("a", "1")))
                .0
        );
        assert!(
            store
                .apply(ObjectEvent::Applied(Kind::Pod, pod("a", "2")))
                .0
        );
        let (key, stored) = store.objects().next().unwrap();
        assert_eq!(key.to_string(), "Pod shop/a");
        assert_eq!(stored.version, "2");
        assert_eq!(stored.value["kind"], "Pod");
        assert_eq!(stored.value["apiVersion"], "v1");
        assert_eq!(stored.value["metadata"].get("managedFields"), None);
        assert_eq!(stored.value["metadata"].get("resourceVersion"), None);
        assert!(
            store
                .apply(ObjectEvent::Deleted(Kind::Pod, pod("b", "3")))
                .0
        );
        assert!(
            !store
                .apply(ObjectEvent::Deleted(Kind::Pod, pod("b", "3")))
                .0
        );
        // A relist replaces the kind: `a` is gone, `c` is new.
        assert!(
            store
                .apply(ObjectEvent::Listed(Kind::Pod, vec![pod("c", "4")]))
                .0
        );
        let names: Vec<String> = store.objects().map(|(k, _)| k.to_string()).collect();
        assert_eq!(names, ["Pod shop/c"]);
        assert_eq!(
            store.url(&ObjectKey::new(Kind::NetworkPolicy, Some("shop"), "p")),
            "https://api/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/p"
        );
    }

    /// A pod's readiness or container restarts change its resource version and nothing Palisade
    /// reads: no change. Its address does.
    #[test]
    fn a_new_version_that_changes_nothing_read_is_no_change() {
        let mut store = ObjectStore::new("https://api", 10);
        let running = |version: &str, ready: &str, ip: &str| {
            let mut p = pod("a", version);
            p["metadata"]["labels"] = json!({});
            p["status"] = json!({"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": ready}],
                "containerStatuses": [{"name": "c", "restartCount": version.len()}]});
            p
        };
        store.apply(ObjectEvent::Listed(
            Kind::Pod,
            vec![running("1", "False", "")],
        ));
        let mut event = |p| store.apply(ObjectEvent::Applied(Kind::Pod, p)).0;
        assert!(!event(running("22", "True", "")), "readiness alone");
        assert!(event(running("333", "True", "10.0.0.1")), "the address");
        let (_, stored) = store.objects().next().unwrap();
        assert_eq!(stored.version, "333");
        assert_eq!(
            stored.value["status"],
            json!({"phase": "Running", "podIP": "10.0.0.1"})
        );
    }

    /// A node's heartbeat rewrites its conditions, and the kubelet its images and capacity; a
    /// cordon its spec: no change. Its labels and addresses are.
    #[test]
    fn a_node_heartbeat_is_no_change() {
        let mut store = ObjectStore::new("https://api", 10);
        let node = |version: &str, beat: &str, zone: &str, ip: &str| {
            json!({"metadata": {"name": "n1", "resourceVersion": version,
                    "labels": {"zone": zone}, "annotations": {"node.alpha.kubernetes.io/ttl": beat}},
                "spec": {"unschedulable": beat == "2", "podCIDR": "10.244.1.0/24"},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                    "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": beat}],
                    "images": [{"names": [beat]}], "capacity": {"cpu": beat}}})
        };
        let listed = vec![node("1", "1", "a", "10.128.0.4")];
        store.apply(ObjectEvent::Listed(Kind::Node, listed));
        let mut event = |n| store.apply(ObjectEvent::Applied(Kind::Node, n)).0;
        assert!(!event(node("2", "2", "a", "10.128.0.4")), "a heartbeat");
        assert!(event(node("3", "3", "b", "10.128.0.4")), "a label");
        assert!(event(node("4", "4", "b", "10.128.0.5")), "an address");
        let (key, stored) = store.objects().next().unwrap();
        assert_eq!(key.to_string(), "Node n1");
        assert_eq!(stored.version, "4");
        assert_eq!(
            stored.value,
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "labels": {"zone": "b"}},
                "status": {"addresses": [{"type": "InternalIP", "address": "10.128.0.5"}]}})
        );
        assert_eq!(
            store.url(&ObjectKey::new(Kind::Node, None, "n1")),
            "https://api/api/v1/nodes/n1"
        );
    }

    /// A cluster-wide policy keeps its apiVersion, kind, metadata and spec: the status its
    /// implementations write (conditions) is no change.
    #[test]
    fn a_tier_policy_status_is_no_change() {
        let mut store = ObjectStore::new("https://api", 10);
        let cnp = |version: &str, priority: u32, condition: &str| {
            json!({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
                "metadata": {"name": "deny-imds", "resourceVersion": version, "managedFields": [{"manager": "x"}]},
                "spec": {"tier": "Admin", "priority": priority, "subject": {"namespaces": {}}},
                "status": {"conditions": [{"type": "Ready", "status": condition}]},
                "extra": true})
        };
        let kind = Kind::ClusterNetworkPolicy;
        store.apply(ObjectEvent::Listed(kind, vec![cnp("1", 10, "False")]));
        let mut event = |p| store.apply(ObjectEvent::Applied(kind, p)).0;
        assert!(!event(cnp("2", 10, "True")), "a status");
        assert!(event(cnp("3", 20, "True")), "the spec");
        let (key, stored) = store.objects().next().unwrap();
        assert_eq!(key.to_string(), "ClusterNetworkPolicy deny-imds");
        assert_eq!(
            stored.value,
            json!({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
                "metadata": {"name": "deny-imds"},
                "spec": {"tier": "Admin", "priority": 20, "subject": {"namespaces": {}}}})
        );
        assert_eq!(
            store.url(key),
            "https://api/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies/deny-imds"
        );
    }

    #[test]
    fn nameless_objects_and_objects_past_the_bound_are_refused_with_a_reason() {
        let mut store = ObjectStore::new("https://api", 2);
        let list = vec![
            pod("a", "1"),
            json!({"metadata": {}}),
            pod("b", "1"),
            pod("c", "1"),
        ];
        let (changed, refused) = store.apply(ObjectEvent::Listed(Kind::Pod, list));
        assert!(changed);
        assert_eq!(store.count(Kind::Pod), 2);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused[0].contains("without metadata.name"),
            "{}",
            refused[0]
        );
        assert!(
            refused[1].contains("more than 2 objects of kind Pod"),
            "{}",
            refused[1]
        );
        // A changed version of a held object is still taken.
        assert!(
            store
                .apply(ObjectEvent::Applied(Kind::Pod, pod("a", "2")))
                .0
        );
    }
}
