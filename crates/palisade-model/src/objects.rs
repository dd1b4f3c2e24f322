//! From parsed documents to typed, validated Kubernetes objects: kind dispatch, `List` expansion,
//! typed decoding with field paths, per-kind validation and duplicate detection.

use crate::diagnostic::{Diagnostic, Origin, Severity};
use crate::document::Document;
use crate::key::{Kind, ObjectKey};
use crate::logging::{self, LoggingObject, NetworkLogging};
use crate::netpol::ValidPolicy;
use crate::rejection::{RejectReason, Rejection};
use crate::tier::{TierObject, ValidTierPolicy, TIER_KINDS};
use crate::validate::{self, Issues};
use foldhash::{HashMap, HashSet, HashSetExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Namespace, Node, NodeAddress, NodeStatus, Pod, PodSpec, PodTemplateSpec, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An accepted object: its key, where it was read, and the object. Shared (`Arc`) by the cache's
/// decoded documents and every load that uses them: nothing of it is copied on reuse.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub key: ObjectKey,
    pub origin: Origin,
    pub object: Typed,
}

/// A typed object of a load, and what it was accepted as.
#[derive(Debug)]
pub(crate) struct Loaded<T> {
    pub object: Arc<T>,
    pub accepted: Arc<Accepted>,
}

impl<T> Loaded<T> {
    pub fn key(&self) -> &ObjectKey {
        &self.accepted.key
    }

    pub fn origin(&self) -> &Origin {
        &self.accepted.origin
    }
}

/// An accepted object as a map key: hashed and compared by its [`ObjectKey`], which lookups
/// borrow, so that indexing objects copies no key.
#[derive(Clone, Debug)]
struct ByKey(Arc<Accepted>);

impl std::hash::Hash for ByKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.key.hash(state);
    }
}

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for ByKey {}

impl std::borrow::Borrow<ObjectKey> for ByKey {
    fn borrow(&self) -> &ObjectKey {
        &self.0.key
    }
}

/// The field that says how many pods a workload of `kind` stands for.
pub(crate) fn replicas_field(kind: Kind) -> &'static str {
    match kind {
        Kind::Job => "spec.parallelism",
        Kind::CronJob => "spec.jobTemplate.spec.parallelism",
        _ => "spec.replicas",
    }
}

/// A workload reduced to what template expansion needs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Workload {
    /// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob.
    pub kind: Kind,
    pub metadata: ObjectMeta,
    pub selector: Option<LabelSelector>,
    pub template: PodTemplateSpec,
    pub replicas: usize,
}

impl Workload {
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Every object read so far, by kind, in reading order.
#[derive(Default)]
pub(crate) struct Objects {
    pub namespaces: Vec<Loaded<Namespace>>,
    pub pods: Vec<Loaded<Pod>>,
    pub services: Vec<Loaded<Service>>,
    pub policies: Vec<Loaded<ValidPolicy>>,
    /// ClusterNetworkPolicies, AdminNetworkPolicies and BaselineAdminNetworkPolicies.
    pub tier_policies: Vec<Loaded<ValidTierPolicy>>,
    /// Nodes, with only what Palisade reads of them ([`Ctx::node`]).
    pub nodes: Vec<Loaded<Node>>,
    pub workloads: Vec<Loaded<Workload>>,
    /// Valid `NetworkLogging` objects (at most one: `default`).
    pub network_logging: Vec<Loaded<NetworkLogging>>,
    /// Why the first rejected `NetworkLogging` was rejected, with its place, and its version.
    pub invalid_network_logging: Option<(String, LoggingObject)>,
    /// Each object's index in its vector.
    seen: HashMap<ByKey, usize>,
    /// Later definitions replace earlier ones instead of being rejected.
    pub replace_duplicates: bool,
    /// What was rejected, in reading order.
    pub rejections: Vec<Rejection>,
}

fn str_at<'a>(value: &'a serde_json::Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(|v| v.as_str())
}

/// A typed object that passed decoding and validation, before duplicates are looked for (which
/// needs every other object).
#[derive(Clone, Debug)]
pub(crate) enum Typed {
    Namespace(Arc<Namespace>),
    Pod(Arc<Pod>),
    Service(Arc<Service>),
    Policy(Arc<ValidPolicy>),
    TierPolicy(Arc<ValidTierPolicy>),
    Node(Arc<Node>),
    Workload(Arc<Workload>),
    NetworkLogging(Arc<NetworkLogging>),
}

/// What one document (or one item of a list) decodes to: its diagnostics in order, the object when
/// it was accepted, why it was rejected otherwise, and why a `NetworkLogging` was rejected. Depends
/// on the document alone, so a loader can keep it for a file that has not changed.
#[derive(Clone, Default)]
pub(crate) struct Decoded {
    diagnostics: Vec<Diagnostic>,
    accepted: Option<Arc<Accepted>>,
    invalid_network_logging: Option<(String, LoggingObject)>,
    /// Why it was rejected, and which object it is when that could be read.
    rejected: Option<(Option<ObjectKey>, RejectReason)>,
}

impl Decoded {
    /// The object, when it was accepted.
    pub fn accepted(&self) -> Option<&Arc<Accepted>> {
        self.accepted.as_ref()
    }

    /// Why it was rejected.
    pub fn rejected(&self) -> Option<RejectReason> {
        self.rejected.as_ref().map(|(_, reason)| *reason)
    }

    /// True when decoding it said nothing: no diagnostic, no rejection.
    pub fn is_quiet(&self) -> bool {
        self.diagnostics.is_empty() && self.rejected.is_none()
    }
}

/// Limits on what one document may make the loader build.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DecodeLimits {
    /// Pods a workload's template may stand for (its replicas or parallelism).
    pub max_workload_pods: usize,
}

/// Decodes and validates one document (every item of a `List`, in order).
pub(crate) fn decode(doc: &Document, limits: DecodeLimits) -> Vec<Decoded> {
    let mut out = Vec::new();
    // Lists are expanded with a stack, not recursion: a document may nest them deeply.
    let mut pending = vec![std::borrow::Cow::Borrowed(&doc.value)];
    while let Some(value) = pending.pop() {
        match decode_one(&value, &doc.origin, limits) {
            Step::Done(d) => out.push(d),
            Step::List(items) => {
                pending.extend(items.into_iter().rev().map(std::borrow::Cow::Owned))
            }
        }
    }
    out
}

/// What decoding one value gave: a result, or the items of a list to decode next.
enum Step {
    Done(Decoded),
    List(Vec<serde_json::Value>),
}

fn decode_one(value: &serde_json::Value, origin: &Origin, limits: DecodeLimits) -> Step {
    let mut d = Decoded::default();
    let Header { kind, key, id } = match header(value, origin, &mut d) {
        Ok(Some(header)) => header,
        Ok(None) => return Step::Done(d),
        Err(list) => return *list,
    };
    let mut ctx = Ctx {
        origin: origin.clone(),
        id,
        key,
        strict: kind == Kind::NetworkPolicy || TIER_KINDS.contains(&kind),
        diags: &mut d.diagnostics,
        failed: RejectReason::Decode,
    };
    let mut invalid_network_logging = None;
    let accepted = ctx.typed(kind, value, limits, &mut invalid_network_logging);
    if accepted.is_none() {
        d.rejected = Some((ctx.key.take(), ctx.failed));
    }
    d.accepted = accepted;
    d.invalid_network_logging = invalid_network_logging;
    Step::Done(d)
}

/// What a value's `apiVersion`, `kind` and `metadata` say: its kind (one Palisade reads, at the
/// version it reads), its key (when it has a name) and how diagnostics name it. `Ok(None)` when the
/// value is not to be decoded further (its problem, or why it is skipped, is in `d`); a list's items
/// are a [`Step::List`].
fn header(
    value: &serde_json::Value,
    origin: &Origin,
    d: &mut Decoded,
) -> Result<Option<Header>, Box<Step>> {
    let error = |message: String| Diagnostic::new(Severity::Error, origin.clone(), message);
    let fields = if value.is_object() {
        (str_at(value, &["apiVersion"]), str_at(value, &["kind"]))
    } else {
        (None, None)
    };
    let (Some(api_version), Some(kind_name)) = fields else {
        let message = if value.is_object() {
            "object has no apiVersion or kind; every document must be a Kubernetes object"
        } else {
            "expected a Kubernetes object: a mapping with apiVersion, kind and metadata"
        };
        d.diagnostics.push(error(message.into()));
        d.rejected = Some((None, RejectReason::Syntax));
        return Ok(None);
    };
    if kind_name.ends_with("List") && Kind::parse(kind_name).is_none() {
        return Err(Box::new(list_items(
            value.clone(),
            api_version,
            kind_name,
            origin,
        )));
    }
    let name = str_at(value, &["metadata", "name"]).filter(|n| !n.is_empty());
    let namespace = str_at(value, &["metadata", "namespace"]).filter(|ns| !ns.is_empty());
    let key_of = |kind: Kind| name.map(|name| ObjectKey::new(kind, namespace, name));
    if crate::key::unenforced_policy_kind(api_version, kind_name) {
        // Not an error (the object is valid where it is enforced), but the answer leaves it out.
        let object = match (namespace, name) {
            (Some(ns), Some(name)) => format!("{kind_name} {ns}/{name}"),
            (_, name) => format!("{kind_name} {}", name.unwrap_or("<unnamed>")),
        };
        d.diagnostics.push(Diagnostic {
            object: Some(object),
            field: Some("kind".into()),
            ..Diagnostic::new(
                Severity::Warning,
                origin.clone(),
                format!("skipped {api_version} {kind_name}: this kind {UNENFORCED}"),
            )
        });
        return Ok(None);
    }
    let Some(kind) = Kind::parse(kind_name) else {
        // A misspelt kind would silently drop the object (a policy no longer enforced): kubectl
        // rejects kinds it does not know, and so do we when the name is close to one we read.
        match Kind::misspelled(kind_name) {
            Some(meant) => {
                let key = key_of(meant);
                d.diagnostics.push(Diagnostic {
                    object: key.as_ref().map(ToString::to_string),
                    field: Some("kind".into()),
                    ..error(format!("unknown kind {kind_name:?}; did you mean {meant}?"))
                });
                d.rejected = Some((key, RejectReason::Decode));
            }
            None => d.diagnostics.push(Diagnostic::new(
                Severity::Info,
                origin.clone(),
                format!("skipped {api_version} {kind_name}: not a kind Palisade reads"),
            )),
        }
        return Ok(None);
    };
    let key = key_of(kind);
    let id = ObjectKey::new(kind, namespace, name.unwrap_or("<unnamed>")).to_string();
    let expected = kind.api_version();
    if api_version != expected {
        d.diagnostics.push(Diagnostic {
            object: Some(id),
            field: Some("apiVersion".into()),
            ..error(format!(
                "{api_version} is not supported for {kind}; use {expected}"
            ))
        });
        d.rejected = Some((key, RejectReason::Decode));
        return Ok(None);
    }
    Ok(Some(Header { kind, key, id }))
}

/// How the loader says it skipped a network policy kind it does not enforce (lint finds it).
pub const UNENFORCED: &str =
    "is not enforced by Palisade; matrix, explain and enforcement ignore it";

/// What a value's header says of the object (see [`header`]).
struct Header {
    kind: Kind,
    /// Its key, when it has a name.
    key: Option<ObjectKey>,
    /// How diagnostics name it.
    id: String,
}

/// What a workload's template and size break, besides its metadata's rules.
fn workload_issues(workload: &Workload, limits: DecodeLimits) -> Issues {
    let mut issues = Issues::default();
    meta(&workload.metadata, validate::dns1123_subdomain, &mut issues);
    let template_labels = workload
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    if let Some(labels) = template_labels {
        validate::labels(labels, "spec.template.metadata.labels", &mut issues);
    }
    if let Some(sel) = &workload.selector {
        validate::selector(sel, "spec.selector", &mut issues);
    }
    if let Some(spec) = &workload.template.spec {
        pod_spec(spec, "spec.template.spec", &mut issues);
    }
    if workload.replicas > limits.max_workload_pods {
        issues.error(
            replicas_field(workload.kind),
            format!(
                "{} pods exceed the limit of {} pods per workload (--max-workload-pods)",
                workload.replicas, limits.max_workload_pods
            ),
        );
    }
    issues
}

/// `kind: List` items carry their own apiVersion and kind; the items of a typed list (`PodList`,
/// as the API server returns it) may not, and take them from the list.
fn list_items(
    mut value: serde_json::Value,
    api_version: &str,
    kind: &str,
    origin: &Origin,
) -> Step {
    let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
    let diagnostic = match value.get_mut("items").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(mut items)) => {
            for item in &mut items {
                if let (Some(item_kind), Some(fields)) = (item_kind, item.as_object_mut()) {
                    fields
                        .entry("apiVersion")
                        .or_insert_with(|| api_version.into());
                    fields.entry("kind").or_insert_with(|| item_kind.into());
                }
            }
            return Step::List(items);
        }
        // A kind that merely ends in "List" (a custom resource) is not a list.
        None if item_kind.is_some() => Diagnostic::new(
            Severity::Info,
            origin.clone(),
            format!("skipped {api_version} {kind}: no items, and not a kind Palisade reads"),
        ),
        Some(serde_json::Value::Null) | None => return Step::Done(Decoded::default()),
        Some(_) => Diagnostic {
            field: Some("items".into()),
            ..Diagnostic::new(
                Severity::Error,
                origin.clone(),
                format!("{kind}.items must be a list of objects"),
            )
        },
    };
    Step::Done(Decoded {
        diagnostics: vec![diagnostic],
        ..Decoded::default()
    })
}

/// Where an accepted object goes, and what a duplicate is reported into.
struct Slot<'a> {
    seen: &'a mut HashMap<ByKey, usize>,
    replace: bool,
    accepted: &'a Arc<Accepted>,
    diags: &'a mut Vec<Diagnostic>,
    rejections: &'a mut Vec<Rejection>,
}

impl Slot<'_> {
    /// Adds `object` to `list` unless an object with its key is already there (then reported as a
    /// duplicate, or replaced when `replace`).
    fn insert<T>(self, list: &mut Vec<Loaded<T>>, object: Arc<T>) {
        let loaded = Loaded {
            object,
            accepted: self.accepted.clone(),
        };
        let key = &self.accepted.key;
        match self.seen.get(key) {
            Some(&i) if self.replace => {
                // The key held is the replaced object's: it is what `Objects::get` gives.
                self.seen.remove(key);
                self.seen.insert(ByKey(self.accepted.clone()), i);
                list[i] = loaded;
            }
            Some(&i) => {
                let first = list[i].origin().to_string();
                let origin = loaded.origin().clone();
                self.diags.push(Diagnostic {
                    object: Some(key.to_string()),
                    ..Diagnostic::new(
                        Severity::Error,
                        origin.clone(),
                        format!("defined twice; the first definition at {first} is used"),
                    )
                });
                self.rejections.push(Rejection {
                    object: Some(key.clone()),
                    origin,
                    reason: RejectReason::Duplicate,
                    kept: None,
                });
            }
            None => {
                self.seen.insert(ByKey(self.accepted.clone()), list.len());
                list.push(loaded);
            }
        }
    }
}

impl Objects {
    /// Adds one document (every item of a `List`). Problems become diagnostics.
    pub fn ingest(&mut self, doc: &Document, limits: DecodeLimits, diags: &mut Vec<Diagnostic>) {
        for d in decode(doc, limits) {
            self.add(&d, diags);
        }
    }

    /// Adds a decoded document: its diagnostics and its rejection, or its object unless it
    /// duplicates one already there.
    pub fn add(&mut self, d: &Decoded, diags: &mut Vec<Diagnostic>) {
        diags.extend(d.diagnostics.iter().cloned());
        if self.invalid_network_logging.is_none() {
            self.invalid_network_logging = d.invalid_network_logging.clone();
        }
        if let Some((key, reason)) = &d.rejected {
            let origin = d.diagnostics.first().map(|d| d.origin.clone());
            self.rejections.push(Rejection {
                object: key.clone(),
                origin: origin.unwrap_or_default(),
                reason: *reason,
                kept: None,
            });
        }
        if let Some(accepted) = &d.accepted {
            self.add_object(accepted, diags);
        }
    }

    /// The object accepted under `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&Arc<Accepted>> {
        self.seen.get_key_value(key).map(|(by, _)| &by.0)
    }

    /// Takes the object accepted under `key` out (the last of its kind takes its place in the
    /// reading order).
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Arc<Accepted>> {
        fn take<T>(list: &mut Vec<Loaded<T>>, at: usize, seen: &mut HashMap<ByKey, usize>) {
            list.swap_remove(at);
            if let Some(moved) = list.get(at) {
                if let Some(i) = seen.get_mut(moved.key()) {
                    *i = at;
                }
            }
        }
        let (ByKey(accepted), at) = self.seen.remove_entry(key)?;
        let seen = &mut self.seen;
        match accepted.object {
            Typed::Namespace(_) => take(&mut self.namespaces, at, seen),
            Typed::Pod(_) => take(&mut self.pods, at, seen),
            Typed::Service(_) => take(&mut self.services, at, seen),
            Typed::Policy(_) => take(&mut self.policies, at, seen),
            Typed::TierPolicy(_) => take(&mut self.tier_policies, at, seen),
            Typed::Node(_) => take(&mut self.nodes, at, seen),
            Typed::Workload(_) => take(&mut self.workloads, at, seen),
            Typed::NetworkLogging(_) => take(&mut self.network_logging, at, seen),
        }
        Some(accepted)
    }

    /// Adds an accepted object unless it duplicates one already there.
    pub fn add_object(&mut self, accepted: &Arc<Accepted>, diags: &mut Vec<Diagnostic>) {
        let slot = Slot {
            seen: &mut self.seen,
            replace: self.replace_duplicates,
            accepted,
            diags,
            rejections: &mut self.rejections,
        };
        match accepted.object.clone() {
            Typed::Namespace(x) => slot.insert(&mut self.namespaces, x),
            Typed::Pod(x) => slot.insert(&mut self.pods, x),
            Typed::Service(x) => slot.insert(&mut self.services, x),
            Typed::Policy(x) => slot.insert(&mut self.policies, x),
            Typed::TierPolicy(x) => slot.insert(&mut self.tier_policies, x),
            Typed::Node(x) => slot.insert(&mut self.nodes, x),
            Typed::Workload(x) => slot.insert(&mut self.workloads, x),
            Typed::NetworkLogging(x) => slot.insert(&mut self.network_logging, x),
        }
    }

    /// Every accepted object, kind by kind, in reading order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Accepted>> {
        fn each<T>(list: &[Loaded<T>]) -> impl Iterator<Item = &Arc<Accepted>> {
            list.iter().map(|l| &l.accepted)
        }
        each(&self.namespaces)
            .chain(each(&self.nodes))
            .chain(each(&self.network_logging))
            .chain(each(&self.tier_policies))
            .chain(each(&self.policies))
            .chain(each(&self.services))
            .chain(each(&self.workloads))
            .chain(each(&self.pods))
    }

    /// True when no object was accepted.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// True when an object with `key` was accepted.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.seen.contains_key(key)
    }
}

/// An absent or empty `metadata.namespace` means `default`, as for `kubectl apply`.
/// Paths of the keys of `input` that the typed object `known` (its serialisation) does not have.
pub(crate) fn unknown_fields(
    input: &serde_json::Value,
    known: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, value) in i {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    Some(kv) => unknown_fields(value, kv, &at, out),
                    None if !value.is_null() => out.push(at),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (iv, kv)) in i.iter().zip(k).enumerate() {
                unknown_fields(iv, kv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn default_namespace(meta: &mut ObjectMeta) {
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some("default".into());
    }
}

/// Decoding and reporting context for one object.
struct Ctx<'a> {
    origin: Origin,
    id: String,
    /// The object's key, when it has a name.
    key: Option<ObjectKey>,
    /// Every unknown field is an error, not only those in metadata.
    strict: bool,
    diags: &'a mut Vec<Diagnostic>,
    /// Why the object is rejected when it is.
    failed: RejectReason,
}

impl Ctx<'_> {
    fn report(&mut self, severity: Severity, field: Option<String>, message: String) {
        self.diags.push(Diagnostic {
            severity,
            origin: self.origin.clone(),
            object: Some(self.id.clone()),
            field,
            message,
        });
    }

    /// Decodes `value` as a `T`; fields the typed decoder ignored are unknown, as kubectl's strict
    /// field validation finds them. A misspelt field changes what a policy allows (a rule's `fromm`
    /// leaves a rule that admits everyone) or which pods it selects (`metadata.lables`): unknown
    /// fields of a NetworkPolicy, and of any object's metadata, reject the object; elsewhere (pod
    /// specs, status: where newer API versions add fields) they are warnings.
    fn decode<T: DeserializeOwned + serde::Serialize>(
        &mut self,
        value: &serde_json::Value,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(object) => {
                let mut unknown = Vec::new();
                if let Ok(known) = serde_json::to_value(&object) {
                    unknown_fields(value, &known, "", &mut unknown);
                }
                let mut rejected = false;
                for field in unknown {
                    let in_metadata =
                        field.starts_with("metadata.") || field.contains(".metadata.");
                    if self.strict || in_metadata {
                        rejected = true;
                        self.report(
                            Severity::Error,
                            Some(field),
                            "unknown field; check its spelling and indentation (kubectl rejects it too)".into(),
                        );
                    } else {
                        self.report(
                            Severity::Warning,
                            Some(field),
                            "unknown field, ignored; check its spelling and indentation".into(),
                        );
                    }
                }
                if rejected {
                    self.reject_object();
                    return None;
                }
                Some(object)
            }
            Err(e) => {
                let path = e.path().to_string();
                let field = (path != ".").then_some(path);
                self.report(Severity::Error, field, e.into_inner().to_string());
                None
            }
        }
    }

    /// Decodes and validates `value` as a `kind`; why a `NetworkLogging` is invalid goes to
    /// `invalid_network_logging` (the agent keeps its last switches on it).
    fn typed(
        &mut self,
        kind: Kind,
        value: &serde_json::Value,
        limits: DecodeLimits,
        invalid_network_logging: &mut Option<(String, LoggingObject)>,
    ) -> Option<Arc<Accepted>> {
        match kind {
            Kind::NetworkLogging => {
                let Some(nl) = self.decode::<NetworkLogging>(value) else {
                    let why = format!("{} at {}: cannot be decoded", self.id, self.origin);
                    *invalid_network_logging = Some((why, LoggingObject::of_value(value)));
                    return None;
                };
                let issues = logging::validate(&nl);
                if let Some(issue) = issues.0.iter().find(|i| i.severity == Severity::Error) {
                    let why = format!(
                        "{} at {}: {}: {}",
                        self.id, self.origin, issue.field, issue.message
                    );
                    *invalid_network_logging = Some((why, LoggingObject::of(&nl.metadata)));
                }
                self.accept(Typed::NetworkLogging(Arc::new(nl)), issues)
            }
            Kind::Namespace => self.decode::<Namespace>(value).and_then(|ns| {
                let mut issues = Issues::default();
                meta(&ns.metadata, validate::dns1123_label, &mut issues);
                self.accept(Typed::Namespace(Arc::new(ns)), issues)
            }),
            Kind::Pod => self.decode::<Pod>(value).and_then(|mut pod| {
                default_namespace(&mut pod.metadata);
                let mut issues = Issues::default();
                meta(&pod.metadata, validate::dns1123_subdomain, &mut issues);
                if let Some(spec) = &pod.spec {
                    pod_spec(spec, "spec", &mut issues);
                }
                pod_status(&pod, &mut issues);
                self.accept(Typed::Pod(Arc::new(pod)), issues)
            }),
            Kind::Service => self.decode::<Service>(value).and_then(|mut svc| {
                default_namespace(&mut svc.metadata);
                let mut issues = Issues::default();
                meta(&svc.metadata, validate::dns1123_label, &mut issues);
                service(&svc, &mut issues);
                self.accept(Typed::Service(Arc::new(svc)), issues)
            }),
            Kind::Node => self.decode::<Node>(value).and_then(|node| self.node(node)),
            Kind::NetworkPolicy => self.decode::<NetworkPolicy>(value).and_then(|mut np| {
                default_namespace(&mut np.metadata);
                match ValidPolicy::new(np) {
                    Ok((policy, warnings)) => {
                        self.accept(Typed::Policy(Arc::new(policy)), warnings)
                    }
                    Err(issues) => self.reject(issues),
                }
            }),
            Kind::ClusterNetworkPolicy
            | Kind::AdminNetworkPolicy
            | Kind::BaselineAdminNetworkPolicy => self.tier_policy(kind, value),
            _ => self.decode_workload(kind, value).and_then(|workload| {
                let issues = workload_issues(&workload, limits);
                self.accept(Typed::Workload(Arc::new(workload)), issues)
            }),
        }
    }

    /// A cluster-wide policy, validated and decoded ([`ValidTierPolicy::new`]). Its `status` (what
    /// `kubectl get` shows) is not read.
    fn tier_policy(&mut self, kind: Kind, value: &serde_json::Value) -> Option<Arc<Accepted>> {
        let value = match value.get("status") {
            Some(_) => {
                let mut value = value.clone();
                value.as_object_mut().map(|fields| fields.remove("status"));
                std::borrow::Cow::Owned(value)
            }
            None => std::borrow::Cow::Borrowed(value),
        };
        let object = self.decode::<TierObject>(&value)?;
        match ValidTierPolicy::new(kind, object) {
            Ok((policy, warnings)) => self.accept(Typed::TierPolicy(Arc::new(policy)), warnings),
            Err(issues) => self.reject(issues),
        }
    }

    /// A Node reduced to what Palisade reads — its name, labels and `InternalIP`/`ExternalIP`
    /// addresses — when its metadata is valid. An address that is not one is skipped alone, with
    /// a warning (the node is accepted: it keeps its other addresses and its labels rather than
    /// disappearing from every `nodes` peer).
    fn node(&mut self, node: Node) -> Option<Arc<Accepted>> {
        let mut issues = Issues::default();
        meta(&node.metadata, validate::dns1123_subdomain, &mut issues);
        let addresses = node.status.and_then(|s| s.addresses).unwrap_or_default();
        let mut kept = Vec::new();
        for (i, address) in addresses.into_iter().enumerate() {
            if !matches!(address.type_.as_str(), "InternalIP" | "ExternalIP") {
                continue;
            }
            match address.address.parse::<std::net::IpAddr>() {
                Ok(ip) => kept.push(NodeAddress {
                    address: ip.to_string(),
                    type_: address.type_,
                }),
                Err(_) => issues.warning(
                    format!("status.addresses[{i}].address"),
                    format!(
                        "{:?} is not an IP address (e.g. '10.128.0.4'); this {} address is skipped, the node's others are used",
                        address.address, address.type_
                    ),
                ),
            }
        }
        let node = Node {
            metadata: ObjectMeta {
                name: node.metadata.name,
                labels: node.metadata.labels,
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(NodeStatus {
                addresses: Some(kept),
                ..NodeStatus::default()
            }),
        };
        self.accept(Typed::Node(Arc::new(node)), issues)
    }

    fn decode_workload(&mut self, kind: Kind, value: &serde_json::Value) -> Option<Workload> {
        let replicas = |r: Option<i32>| r.unwrap_or(1).max(0) as usize;
        let w = match kind {
            Kind::Deployment => {
                let d: Deployment = self.decode(value)?;
                let spec = d.spec.unwrap_or_default();
                Workload {
                    kind: Kind::Deployment,
                    metadata: d.metadata,
                    selector: Some(spec.selector),
                    template: spec.template,
                    replicas: replicas(spec.replicas),
                }
            }
            Kind::ReplicaSet => {
                let d: ReplicaSet = self.decode(value)?;
                let spec = d.spec.unwrap_or_default();
                Workload {
                    kind: Kind::ReplicaSet,
                    metadata: d.metadata,
                    selector: Some(spec.selector),
                    template: spec.template.unwrap_or_default(),
                    replicas: replicas(spec.replicas),
                }
            }
            Kind::StatefulSet => {
                let d: StatefulSet = self.decode(value)?;
                let spec = d.spec.unwrap_or_default();
                Workload {
                    kind: Kind::StatefulSet,
                    metadata: d.metadata,
                    selector: Some(spec.selector),
                    template: spec.template,
                    replicas: replicas(spec.replicas),
                }
            }
            Kind::DaemonSet => {
                let d: DaemonSet = self.decode(value)?;
                let spec = d.spec.unwrap_or_default();
                Workload {
                    kind: Kind::DaemonSet,
                    metadata: d.metadata,
                    selector: Some(spec.selector),
                    template: spec.template,
                    replicas: 1, // one node offline
                }
            }
            Kind::Job => {
                let d: Job = self.decode(value)?;
                let spec = d.spec.unwrap_or_default();
                Workload {
                    kind: Kind::Job,
                    metadata: d.metadata,
                    selector: spec.selector,
                    template: spec.template,
                    replicas: replicas(spec.parallelism),
                }
            }
            _ => {
                let d: CronJob = self.decode(value)?;
                let spec = d
                    .spec
                    .unwrap_or_default()
                    .job_template
                    .spec
                    .unwrap_or_default();
                Workload {
                    kind: Kind::CronJob,
                    metadata: d.metadata,
                    selector: spec.selector,
                    template: spec.template,
                    replicas: replicas(spec.parallelism),
                }
            }
        };
        let mut w = w;
        default_namespace(&mut w.metadata);
        Some(w)
    }

    fn reject_object(&mut self) {
        self.report(
            Severity::Error,
            None,
            "object rejected; the other objects are still used".into(),
        );
    }

    /// Reports `issues`; the object is accepted unless one of them is an error.
    fn accept(&mut self, object: Typed, issues: Issues) -> Option<Arc<Accepted>> {
        if issues.has_errors() {
            return self.reject(issues);
        }
        self.report_issues(issues);
        // Without a name there is no key: validation reported it (`metadata.name`).
        Some(Arc::new(Accepted {
            key: self.key.take()?,
            origin: self.origin.clone(),
            object,
        }))
    }

    /// Reports `issues` (at least one an error) and rejects the object.
    fn reject(&mut self, issues: Issues) -> Option<Arc<Accepted>> {
        self.report_issues(issues);
        self.failed = RejectReason::Invalid;
        self.reject_object();
        None
    }

    fn report_issues(&mut self, issues: Issues) {
        for issue in issues.0 {
            self.report(issue.severity, Some(issue.field), issue.message);
        }
    }
}

/// Validates an object's name (with `name_rule`), namespace and labels.
pub(crate) fn meta(
    meta: &ObjectMeta,
    name_rule: fn(&str) -> Result<(), String>,
    issues: &mut Issues,
) {
    match meta.name.as_deref() {
        None => issues.error("metadata.name", "a name is required"),
        Some(name) => {
            if let Err(e) = name_rule(name) {
                issues.error("metadata.name", e);
            }
        }
    }
    if let Some(ns) = meta.namespace.as_deref() {
        if let Err(e) = validate::dns1123_label(ns) {
            issues.error("metadata.namespace", e);
        }
    }
    if let Some(labels) = &meta.labels {
        validate::labels(labels, "metadata.labels", issues);
    }
}

fn pod_spec(spec: &PodSpec, path: &str, issues: &mut Issues) {
    // Port names are unique per container (as the API server checks); the same name in two
    // containers is valid but ambiguous for named-port resolution, which uses the first.
    let mut pod_names = HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let mut names = HashSet::new();
        for (j, p) in c.ports.iter().flatten().enumerate() {
            let at = format!("{path}.containers[{i}].ports[{j}]");
            if let Err(e) = validate::port_number(p.container_port) {
                issues.error(format!("{at}.containerPort"), e);
            }
            if let Err(e) = validate::protocol(p.protocol.as_deref()) {
                issues.error(format!("{at}.protocol"), e);
            }
            if let Some(name) = &p.name {
                if let Err(e) = validate::port_name(name) {
                    issues.error(format!("{at}.name"), e);
                } else if !names.insert(name.clone()) {
                    issues.error(
                        format!("{at}.name"),
                        format!(
                            "port name {name:?} is used twice in this container; names must be unique"
                        ),
                    );
                } else if !pod_names.insert(name.clone()) {
                    issues.warning(
                        format!("{at}.name"),
                        format!(
                            "port name {name:?} is also used by an earlier container; the named port resolves to the first"
                        ),
                    );
                }
            }
        }
    }
}

fn pod_status(pod: &Pod, issues: &mut Issues) {
    let status = pod.status.as_ref();
    let ips = status
        .and_then(|s| s.pod_ip.as_ref())
        .map(|ip| ("status.podIP".to_string(), ip))
        .into_iter()
        .chain(
            status
                .and_then(|s| s.host_ip.as_ref())
                .map(|ip| ("status.hostIP".to_string(), ip)),
        );
    for (field, ip) in ips {
        if ip.parse::<std::net::IpAddr>().is_err() {
            issues.error(
                field,
                format!("{ip:?} is not an IP address (e.g. '10.244.1.5')"),
            );
        }
    }
}

fn service(svc: &Service, issues: &mut Issues) {
    let Some(spec) = &svc.spec else { return };
    if let Some(sel) = &spec.selector {
        validate::labels(sel, "spec.selector", issues);
    }
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let at = format!("spec.ports[{i}]");
        if let Err(e) = validate::port_number(p.port) {
            issues.error(format!("{at}.port"), e);
        }
        if let Err(e) = validate::protocol(p.protocol.as_deref()) {
            issues.error(format!("{at}.protocol"), e);
        }
        let target = match &p.target_port {
            Some(IntOrString::Int(n)) => validate::port_number(*n).map(|_| ()),
            Some(IntOrString::String(name)) => validate::port_name(name),
            None => Ok(()),
        };
        if let Err(e) = target {
            issues.error(format!("{at}.targetPort"), e);
        }
    }
}

/// Labels of an object's metadata, or an empty map.
pub(crate) fn labels_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}
