//! The objects of a watched source — the API server — kept up to date per object by its events
//! (applied, deleted, a kind listed afresh: the shape of a Kubernetes reflector), and loaded like a
//! folder's files ([`crate::Loader::load_store`]): each object is one document named by its URL,
//! whose resource version tells it unchanged, so that an event decodes one object, not the
//! cluster.

use crate::key::{Kind, ObjectKey};
use serde_json::Value;
use std::collections::BTreeMap;

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

/// One object as the source last gave it.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    /// `metadata.resourceVersion` of the version of the object that last changed what Palisade
    /// reads (or, for a source that gives none, a digest of the object).
    pub version: String,
    /// The object with only what Palisade reads: `apiVersion` and `kind` set; no
    /// `metadata.managedFields` nor `metadata.resourceVersion`; of a Pod's `status`, only
    /// [`POD_STATUS`].
    pub value: Value,
}

/// The objects of a source, by kind, namespace and name.
#[derive(Clone, Debug, Default)]
pub struct ObjectStore {
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
                Ok(changed) => changed,
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
                self.unknown.remove(&kind);
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
                self.unchanged_since(kind, &old)
            }
        };
        (changed, refused)
    }

    fn insert(&mut self, kind: Kind, mut value: Value) -> Result<bool, String> {
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
            Some(stored) if stored.version == version || stored.value == value => Ok(false),
            Some(stored) => {
                *stored = Stored { version, value };
                Ok(true)
            }
            None if count >= self.max_per_kind => Err(format!(
                "{key} from {}: more than {} objects of kind {kind}; skipped",
                self.server, self.max_per_kind
            )),
            None => {
                self.objects.insert(key, Stored { version, value });
                *self.counts.entry(kind).or_default() += 1;
                Ok(true)
            }
        }
    }

    /// Whether the objects of `kind` differ from `old` (what was held of the kind before it was
    /// listed afresh). Those that do not keep their old version, so that the loader's cache of
    /// them stays good: a relist that brings nothing new is no change at all.
    fn unchanged_since(&mut self, kind: Kind, old: &BTreeMap<ObjectKey, Stored>) -> bool {
        let mut changed = old.len() != self.count(kind);
        for (key, stored) in self.objects.iter_mut().filter(|(k, _)| k.kind() == kind) {
            match old.get(key) {
                Some(was) if was.version == stored.version || was.value == stored.value => {
                    stored.version.clone_from(&was.version);
                }
                _ => changed = true,
            }
        }
        changed
    }

    fn remove(&mut self, key: &ObjectKey) -> bool {
        let removed = self.objects.remove(key).is_some();
        if removed {
            if let Some(count) = self.counts.get_mut(&key.kind()) {
                *count -= 1;
            }
        }
        removed
    }

    /// Says the objects of `kind` are unknown for now (it could not be listed): the loader keeps
    /// their last good versions until it is listed.
    pub fn mark_unknown(&mut self, kind: Kind) {
        self.unknown.insert(kind);
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
        if kind == Kind::Pod {
            if let Some(Value::Object(status)) = fields.get_mut("status") {
                status.retain(|field, _| POD_STATUS.contains(&field.as_str()));
            }
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
