//! Kubernetes Events the agent writes (`events.k8s.io/v1`): what happened to an object, where
//! `kubectl describe` and `kubectl get events` show it.
//!
//! Callers [`Recorder::record`] an [`Occurrence`] without waiting: the queue is bounded, and an
//! occurrence that finds it full is dropped and counted. A thread with its own runtime
//! ([`EventWriter`]) aggregates occurrences per key into one Event: the first creates it, later ones
//! patch its `series` ({count, lastObservedTime}) at most once per [`Limits::series_interval`] —
//! how kubectl shows "x5 over 2m". New Events are rate-limited; a series ends
//! [`Limits::series_window`] after its last occurrence, and the next one starts a new Event.
//!
//! Names are deterministic. An occurrence every node's agent sees alike (a `NetworkLogging`
//! change: [`Scope::Cluster`]) is named after its object (with its uid and generation, when
//! known), reason and key alone, so that N agents converge on one Event: the first create wins,
//! the others get 409 AlreadyExists and leave it as it is — theirs is the same observation, not a
//! repeat. The same change told again for a later generation of the object is a new Event. A
//! node's own occurrence ([`Scope::Node`]) is named after its key, the node and when its series
//! began.

use crate::bucket::TokenBucket;
use crate::{client, runtime, Background, Connection, SourceError};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Client;
use palisade_model::logging::LoggingObject;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `reportingController` of every Event the agent writes.
pub const CONTROLLER: &str = "palisade.dev/agent";
/// The longest `note` the API server accepts, in bytes.
const MAX_NOTE: usize = 1024;
/// The longest object name.
const MAX_NAME: usize = 253;
/// The longest `reportingInstance` the API server accepts.
const MAX_INSTANCE: usize = 128;

/// Cuts `note` to what an Event may say (1 KiB, at a character boundary).
pub fn cut_note(note: &mut String) {
    let len = cut(note, MAX_NOTE).len();
    note.truncate(len);
}

/// Called with why an occurrence was dropped: `queue_full`, `rate_limit`, `too_many_keys` or
/// `write_error` (the agent counts them in a metric).
pub type OnDrop = Arc<dyn Fn(&'static str) + Send + Sync>;

/// The object an Event is about (its `regarding`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regarding {
    /// `v1`, `networking.gke.io/v1alpha1`, ...
    pub api_version: String,
    /// `Pod`, `NetworkLogging`, ...
    pub kind: String,
    /// `None` for a cluster-scoped object, whose Events go to namespace `default`.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// The object's uid, when known.
    pub uid: Option<String>,
    /// The object's `metadata.generation`, when known. With the uid, it names the Event: a change
    /// told again in a later generation of the object (turned off, then on again) is a new Event,
    /// while every agent telling the same generation still names it alike.
    pub generation: Option<i64>,
}

impl Regarding {
    /// The `NetworkLogging` object (GKE's `default`, or one rejected for its name) a logging
    /// change is told on.
    pub fn network_logging(object: &LoggingObject) -> Regarding {
        Regarding {
            api_version: palisade_model::logging::API_VERSION.into(),
            kind: "NetworkLogging".into(),
            namespace: None,
            name: object.name.clone(),
            uid: object.uid.clone(),
            generation: object.generation,
        }
    }
}

/// An Event's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Nothing is wrong.
    Normal,
    /// Something may be wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Who sees an occurrence: it decides the Event's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every node's agent, alike: one Event for all of them.
    Cluster,
    /// This node's agent alone.
    Node,
}

/// Something that happened, to be told as an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// The object it happened to.
    pub regarding: Regarding,
    /// Normal or Warning.
    pub type_: EventType,
    /// Why, in CamelCase (`InvalidNetworkLogging`).
    pub reason: String,
    /// What was done, in CamelCase (`Drop`).
    pub action: String,
    /// For humans; cut to 1 KiB.
    pub note: String,
    /// With `regarding` and `reason`, what makes two occurrences the same (one Event's series).
    pub key: String,
    /// Who sees it.
    pub scope: Scope,
    /// When it happened.
    pub time: SystemTime,
}

/// How much the writer queues, creates and patches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Occurrences waiting for the writer at most; more are dropped (`queue_full`).
    pub queue: usize,
    /// New Events per second at most, on average (`rate_limit`).
    pub per_second: u32,
    /// New Events at once at most.
    pub burst: u32,
    /// The least time between two patches of one Event's series.
    pub series_interval: Duration,
    /// A series ends this long after its last occurrence.
    pub series_window: Duration,
    /// Series followed at once at most; occurrences of new keys beyond are dropped
    /// (`too_many_keys`).
    pub max_keys: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            queue: 1024,
            per_second: 10,
            burst: 50,
            series_interval: Duration::from_secs(10),
            series_window: Duration::from_secs(300),
            max_keys: 4096,
        }
    }
}

/// Hands occurrences to an [`EventWriter`]; cheap to clone, never blocks.
#[derive(Clone)]
pub struct Recorder {
    tx: tokio::sync::mpsc::Sender<Occurrence>,
    on_drop: OnDrop,
}

/// The other end of a [`Recorder`]'s queue.
pub struct Queued(tokio::sync::mpsc::Receiver<Occurrence>);

impl Recorder {
    /// A recorder with a queue of `capacity` (at least 1), and its other end.
    pub fn bounded(capacity: usize, on_drop: OnDrop) -> (Recorder, Queued) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (Recorder { tx, on_drop }, Queued(rx))
    }

    /// Queues `occurrence`; false when it was dropped (the queue full, counted as `queue_full`,
    /// or the writer stopped).
    pub fn record(&self, occurrence: Occurrence) -> bool {
        match self.tx.try_send(occurrence) {
            Ok(()) => true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                (self.on_drop)("queue_full");
                false
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl Queued {
    /// The next occurrence queued, if any.
    pub fn try_next(&mut self) -> Option<Occurrence> {
        self.0.try_recv().ok()
    }
}

/// How long the last writes may take when the writer is dropped.
const FLUSH: Duration = Duration::from_secs(2);

/// Writes the Events of the occurrences its [`Recorder`]s queue, on a thread of its own, until
/// dropped: then the series counts not yet written are, within 2 s (the drop waits for them). A
/// write that fails is logged (once per distinct error), counted as `write_error`, and its series
/// forgotten: the next occurrence starts again.
pub struct EventWriter {
    recorder: Recorder,
    /// Tells the writer to write its last counts and end.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Disconnected when the writer has ended.
    ended: std::sync::mpsc::Receiver<()>,
    _writer: Background,
}

impl EventWriter {
    /// Starts writing Events to the cluster `connection` names, as `reportingInstance`
    /// `instance` (the node).
    pub fn start(
        connection: &Connection,
        instance: &str,
        limits: Limits,
        on_drop: OnDrop,
    ) -> Result<EventWriter, SourceError> {
        let runtime = runtime()?;
        let (client, _) = runtime.block_on(client(connection))?;
        let (recorder, queued) = Recorder::bounded(limits.queue, on_drop.clone());
        let aggregator = Aggregator::new(limits, instance);
        let timeout = connection.request_timeout;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ending, ended) = std::sync::mpsc::channel();
        let write = write(client, queued, aggregator, on_drop, timeout, stopped);
        let write = async move {
            write.await;
            drop(ending);
        };
        Ok(EventWriter {
            recorder,
            stop: Some(stop),
            ended,
            _writer: Background::spawn("events", runtime, write)?,
        })
    }

    /// A recorder for this writer.
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The last counts are written (or given up on) within FLUSH; then the thread is stopped.
        let _ = self.ended.recv_timeout(FLUSH + Duration::from_secs(1));
    }
}

/// Takes queued occurrences into `aggregator` and writes what is due, until the queue closes or
/// `stopped` says so; then writes the series counts not yet written, within [`FLUSH`].
async fn write(
    client: Client,
    mut queued: Queued,
    aggregator: Aggregator,
    on_drop: OnDrop,
    timeout: Duration,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let shared = Mutex::new(aggregator);
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
    let wake = tokio::sync::Notify::new();
    let collect = async {
        while let Some(occurrence) = queued.0.recv().await {
            if let Err(why) = lock().observe(occurrence, SystemTime::now()) {
                on_drop(why);
            }
            wake.notify_one();
        }
    };
    let send = async {
        let mut failing: Option<String> = None;
        loop {
            let work = lock().due(SystemTime::now());
            for write in work {
                let (id, sent) = (write.id().to_string(), write.count());
                let outcome = match send_one(&client, write, timeout).await {
                    Ok(outcome) => {
                        if failing.take().is_some() {
                            tracing::info!("Events are written again");
                        }
                        outcome
                    }
                    // Logged once per cause, whatever Event it hit.
                    Err((what, cause)) => {
                        on_drop("write_error");
                        if failing.as_ref() != Some(&cause) {
                            tracing::warn!("cannot write an Event ({what}): {cause}; Events are dropped (palisade_kube_events_dropped_total)");
                            failing = Some(cause);
                        }
                        Written::Failed
                    }
                };
                lock().done(&id, outcome, sent, SystemTime::now());
            }
            let now = SystemTime::now();
            let wait = (lock().next_due()).map_or(Duration::from_secs(60), |due| {
                due.duration_since(now).unwrap_or(Duration::ZERO)
            });
            let _ = tokio::time::timeout(wait, wake.notified()).await;
        }
    };
    let running = futures::future::select(Box::pin(collect), Box::pin(send));
    // A write under way is cut short: its series is among the pending ones if it was a patch.
    let _ = futures::future::select(running, stopped).await;
    let pending = lock().pending();
    let (total, mut written) = (pending.len(), 0);
    let flush = async {
        for write in pending {
            if send_one(&client, write, timeout).await.is_ok() {
                written += 1;
            }
        }
    };
    let _ = tokio::time::timeout(FLUSH, flush).await;
    if written < total {
        tracing::warn!(
            "{} of {total} Event series counts not written at shutdown (within {FLUSH:?})",
            total - written
        );
    }
}

/// Sends one write (its answer read within [`crate::bounded::MAX_WRITTEN`]); the error says
/// which write failed, and why.
async fn send_one(
    client: &Client,
    write: Write,
    timeout: Duration,
) -> Result<Written, (String, String)> {
    let create = matches!(write, Write::Create { .. });
    let (what, request) = match write {
        Write::Create {
            namespace, event, ..
        } => {
            let name = event.metadata.name.clone().unwrap_or_default();
            let request = serde_json::to_vec(&event)
                .map_err(kube::core::request::Error::SerializeBody)
                .and_then(|body| events(&namespace).create(&PostParams::default(), body));
            (format!("creating {namespace}/{name}"), request)
        }
        Write::Patch {
            namespace,
            name,
            count,
            last_observed,
            ..
        } => {
            let series = serde_json::json!({"series": {
                "count": count, "lastObservedTime": micro_time(last_observed)}});
            let patch = Patch::Merge(&series);
            let request = events(&namespace).patch(&name, &PatchParams::default(), &patch);
            (format!("patching {namespace}/{name}"), request)
        }
    };
    let request = request.map_err(|e| (what.clone(), e.to_string()))?;
    match tokio::time::timeout(timeout, crate::bounded::write(client, request)).await {
        Ok(Ok(())) => Ok(Written::Ok),
        Ok(Err(fault)) if create && fault.code() == Some(409) => Ok(Written::AlreadyExists),
        Ok(Err(fault)) => Err((what, fault.to_string())),
        Err(_) => Err((what, format!("no answer within {timeout:?}"))),
    }
}

/// The Events of `namespace`.
fn events(namespace: &str) -> kube::core::Request {
    kube::core::Request::new(format!(
        "/apis/events.k8s.io/v1/namespaces/{namespace}/events"
    ))
}

/// A write the writer is to make.
#[derive(Debug)]
enum Write {
    /// The first occurrence of a series.
    Create {
        id: String,
        namespace: String,
        event: Box<Event>,
    },
    /// Later occurrences: the series' count and last time.
    Patch {
        id: String,
        namespace: String,
        name: String,
        count: u32,
        last_observed: SystemTime,
    },
}

impl Write {
    fn id(&self) -> &str {
        match self {
            Write::Create { id, .. } | Write::Patch { id, .. } => id,
        }
    }

    /// The occurrences the Event counts once written.
    fn count(&self) -> u32 {
        match self {
            Write::Create { .. } => 1,
            Write::Patch { count, .. } => *count,
        }
    }
}

/// How a write went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Written {
    Ok,
    /// A create found the Event there already (another agent's, or this one's before a restart).
    AlreadyExists,
    Failed,
}

/// One Event's series.
struct Series {
    namespace: String,
    name: String,
    first: Occurrence,
    count: u32,
    last_observed: SystemTime,
    /// The count the Event holds (0: not created yet).
    written: u32,
    last_write: SystemTime,
    /// A write of it is under way.
    busy: bool,
}

impl Series {
    /// When its next write is due, if one is.
    fn due(&self, interval: Duration) -> Option<SystemTime> {
        match (self.busy, self.written) {
            (true, _) => None,
            (false, 0) => Some(UNIX_EPOCH),
            _ if self.count > self.written => Some(self.last_write + interval),
            _ => None,
        }
    }
}

impl Series {
    /// The patch writing its count, as series `id`.
    fn patch(&self, id: String) -> Write {
        Write::Patch {
            id,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            count: self.count,
            last_observed: self.last_observed,
        }
    }
}

/// Occurrences into Events: which to create, which series to patch, which to drop. No I/O.
struct Aggregator {
    limits: Limits,
    instance: String,
    bucket: TokenBucket,
    /// Series patches draw on a budget of their own, as large: thousands of series each patched
    /// every interval would otherwise be hundreds of writes a second.
    patches: TokenBucket,
    series: HashMap<String, Series>,
}

impl Aggregator {
    fn new(limits: Limits, instance: &str) -> Aggregator {
        Aggregator {
            bucket: TokenBucket::new(limits.per_second, limits.burst),
            patches: TokenBucket::new(limits.per_second, limits.burst),
            limits,
            instance: instance.to_string(),
            series: HashMap::new(),
        }
    }

    /// Counts `occurrence` into its series, or starts one; the error says why it was dropped.
    fn observe(&mut self, mut occurrence: Occurrence, now: SystemTime) -> Result<(), &'static str> {
        let id = identity(&occurrence);
        let window = self.limits.series_window;
        if let Some(series) = self.series.get_mut(&id) {
            if series.busy || now < series.last_observed + window {
                series.count = series.count.saturating_add(1);
                series.last_observed = series.last_observed.max(occurrence.time);
                return Ok(());
            }
        }
        if !self.series.contains_key(&id) && self.series.len() >= self.limits.max_keys {
            self.sweep(now);
            if self.series.len() >= self.limits.max_keys {
                return Err("too_many_keys");
            }
        }
        if !self.bucket.take(now) {
            return Err("rate_limit");
        }
        // What a series keeps is bounded: its first note, as the Event will say it.
        cut_note(&mut occurrence.note);
        let name = event_name(&occurrence, &self.instance, now);
        let namespace =
            (occurrence.regarding.namespace.clone()).unwrap_or_else(|| "default".into());
        let series = Series {
            namespace,
            name,
            last_observed: occurrence.time,
            first: occurrence,
            count: 1,
            written: 0,
            last_write: UNIX_EPOCH,
            busy: false,
        };
        self.series.insert(id, series);
        Ok(())
    }

    /// Forgets the series that ended and are written out.
    fn sweep(&mut self, now: SystemTime) {
        let (window, interval) = (self.limits.series_window, self.limits.series_interval);
        self.series
            .retain(|_, s| now < s.last_observed + window || s.busy || s.due(interval).is_some());
    }

    /// The writes due by `now`, marked under way.
    fn due(&mut self, now: SystemTime) -> Vec<Write> {
        self.sweep(now);
        let interval = self.limits.series_interval;
        let mut out = Vec::new();
        for (id, series) in &mut self.series {
            if series.due(interval).is_none_or(|at| at > now) {
                continue;
            }
            if series.written > 0 && !self.patches.take(now) {
                // Over budget: its count is written at its next interval (nothing is lost).
                series.last_write = now;
                continue;
            }
            series.busy = true;
            let id = id.clone();
            out.push(match series.written {
                0 => Write::Create {
                    id,
                    namespace: series.namespace.clone(),
                    event: Box::new(event(series, &self.instance)),
                },
                _ => series.patch(id),
            });
        }
        out
    }

    /// The patches of the series whose Event holds fewer occurrences than counted (a patch cut
    /// short included: a count is written whole, so writing it again is harmless): the last writes,
    /// at shutdown, made whatever the budget — they are bounded in time.
    fn pending(&self) -> Vec<Write> {
        (self.series.iter())
            .filter(|(_, s)| s.written > 0 && s.count > s.written)
            .map(|(id, s)| s.patch(id.clone()))
            .collect()
    }

    /// When the next write is due.
    fn next_due(&self) -> Option<SystemTime> {
        let interval = self.limits.series_interval;
        self.series.values().filter_map(|s| s.due(interval)).min()
    }

    /// The write of series `id`, which counted `sent` occurrences, went as `outcome`.
    fn done(&mut self, id: &str, outcome: Written, sent: u32, now: SystemTime) {
        if outcome == Written::Failed {
            self.series.remove(id);
            return;
        }
        if let Some(series) = self.series.get_mut(id) {
            series.busy = false;
            series.written = sent;
            series.last_write = now;
        }
    }
}

/// What makes occurrences one series.
fn identity(o: &Occurrence) -> String {
    let r = &o.regarding;
    let namespace = r.namespace.as_deref().unwrap_or("");
    let mut identity = [&r.kind, namespace, &r.name, &o.reason, &o.key].join("\0");
    // Only when known: an occurrence without them is named as before they were.
    if let Some(uid) = &r.uid {
        identity.push_str(&format!("\0uid={uid}"));
    }
    if let Some(generation) = r.generation {
        identity.push_str(&format!("\0generation={generation}"));
    }
    identity
}

/// The deterministic name of the Event starting a series of `o` at `first`, seen by `instance`:
/// the object's name, a dot, and 16 hex digits of a hash of what identifies the series.
fn event_name(o: &Occurrence, instance: &str, first: SystemTime) -> String {
    let identity = identity(o);
    let secs = first
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let secs = secs.to_string();
    let hash = match o.scope {
        Scope::Cluster => fnv1a(&[identity.as_bytes()]),
        Scope::Node => fnv1a(&[identity.as_bytes(), instance.as_bytes(), secs.as_bytes()]),
    };
    let prefix = cut(&o.regarding.name, MAX_NAME - 17);
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}.{hash:016x}")
}

/// FNV-1a, 64 bits, over `parts` (each closed by a 0xff byte): the same in every agent's build,
/// unlike std's hasher, so that agents of different versions name an Event alike.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter().chain([&0xff])) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn micro_time(at: SystemTime) -> MicroTime {
    MicroTime(
        k8s_openapi::jiff::Timestamp::try_from(at)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now()),
    )
}

/// The Event that starts `series`.
fn event(series: &Series, instance: &str) -> Event {
    let o = &series.first;
    let r = &o.regarding;
    Event {
        metadata: ObjectMeta {
            name: Some(series.name.clone()),
            namespace: Some(series.namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(micro_time(o.time)),
        reporting_controller: Some(CONTROLLER.into()),
        reporting_instance: Some(cut(instance, MAX_INSTANCE).into()),
        action: Some(o.action.clone()),
        reason: Some(o.reason.clone()),
        note: Some(o.note.clone()),
        type_: Some(o.type_.as_str().into()),
        regarding: Some(ObjectReference {
            api_version: Some(r.api_version.clone()),
            kind: Some(r.kind.clone()),
            namespace: r.namespace.clone(),
            name: Some(r.name.clone()),
            uid: r.uid.clone(),
            ..ObjectReference::default()
        }),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn at(secs: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_secs_f64(secs)
    }

    fn denied(key: &str, time: SystemTime) -> Occurrence {
        Occurrence {
            regarding: Regarding {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: Some("shop".into()),
                name: "redis-0".into(),
                uid: None,
                generation: None,
            },
            type_: EventType::Warning,
            reason: "PolicyDenied".into(),
            action: "Drop".into(),
            note: format!("connection {key} denied"),
            key: key.into(),
            scope: Scope::Node,
            time,
        }
    }

    fn logging(note: &str) -> Occurrence {
        Occurrence {
            regarding: Regarding::network_logging(&LoggingObject::default()),
            scope: Scope::Cluster,
            reason: "InvalidNetworkLogging".into(),
            note: note.into(),
            key: note.into(),
            ..denied("", at(0.0))
        }
    }

    fn aggregator() -> Aggregator {
        Aggregator::new(Limits::default(), "node-a")
    }

    fn is_subdomain(name: &str) -> bool {
        name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && label.ends_with(|c: char| c.is_ascii_alphanumeric())
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    }

    #[test]
    fn cluster_events_are_named_alike_by_every_agent_node_events_per_node_and_start() {
        let nl = logging("spec.cluster.deny: delegate needs log");
        let name = event_name(&nl, "node-a", at(0.0));
        assert_eq!(name, event_name(&nl, "node-b", at(99.0)));
        assert!(
            name.starts_with("default.") && is_subdomain(&name),
            "{name}"
        );
        let other = logging("another reason");
        assert_ne!(name, event_name(&other, "node-a", at(0.0)));
        // A generation of the object: its own Event, named alike by every agent.
        let generation = |g| {
            let mut nl = nl.clone();
            (nl.regarding.uid, nl.regarding.generation) = (Some("u-1".into()), Some(g));
            nl
        };
        let second = event_name(&generation(2), "node-a", at(0.0));
        assert_eq!(second, event_name(&generation(2), "node-b", at(99.0)));
        assert_ne!(second, event_name(&generation(3), "node-a", at(0.0)));
        assert_ne!(second, name);
        let flow = denied("10.0.0.1>10.0.0.2:6379/TCP ingress", at(0.0));
        let name = event_name(&flow, "node-a", at(0.0));
        assert_eq!(name, event_name(&flow, "node-a", at(0.0)));
        assert_ne!(name, event_name(&flow, "node-b", at(0.0)));
        assert_ne!(name, event_name(&flow, "node-a", at(1.0)));
        assert!(
            name.starts_with("redis-0.") && is_subdomain(&name),
            "{name}"
        );
        // A long object name is cut so that the name stays a valid one.
        let mut long = flow.clone();
        long.regarding.name = format!("{}-{}", "a".repeat(235), "b".repeat(17));
        let name = event_name(&long, "node-a", at(0.0));
        assert!(is_subdomain(&name), "{name}");
    }

    /// Patches draw on their own budget: over it, a series' count waits one more interval.
    #[test]
    fn series_patches_are_rate_limited_too() {
        let limits = Limits {
            per_second: 1,
            burst: 2,
            ..Limits::default()
        };
        let mut agg = Aggregator::new(limits, &"n".repeat(300));
        let keys = ["a", "b", "c"];
        for (i, key) in keys.iter().enumerate() {
            let t = at(i as f64);
            agg.observe(denied(key, t), t).unwrap();
            for write in agg.due(t) {
                let Write::Create { id, event, .. } = write else {
                    panic!("a create");
                };
                assert_eq!(event.reporting_instance.map(|i| i.len()), Some(128));
                agg.done(&id, Written::Ok, 1, t);
            }
            agg.observe(denied(key, at(5.0)), at(5.0)).unwrap();
        }
        // All three are due at 12 s; the budget (burst 2) lets two through.
        let writes = agg.due(at(12.0));
        assert_eq!(writes.len(), 2, "{writes:?}");
        for write in &writes {
            agg.done(write.id(), Written::Ok, 2, at(12.0));
        }
        assert!(
            agg.due(at(12.5)).is_empty(),
            "the third waits its next interval"
        );
        let later = agg.due(at(22.0));
        assert!(
            matches!(&later[..], [Write::Patch { count: 2, .. }]),
            "{later:?}"
        );
    }

    #[test]
    fn a_series_is_created_once_then_patched_at_most_once_per_interval() {
        let mut agg = aggregator();
        agg.observe(denied("k", at(0.0)), at(0.0)).unwrap();
        let writes = agg.due(at(0.0));
        let [Write::Create { id, event, .. }] = &writes[..] else {
            panic!("{writes:?}");
        };
        assert_eq!(event.reason.as_deref(), Some("PolicyDenied"));
        assert_eq!(event.reporting_controller.as_deref(), Some(CONTROLLER));
        assert_eq!(event.reporting_instance.as_deref(), Some("node-a"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert!(event.series.is_none());
        // Occurrences while the create is under way count into the series.
        agg.observe(denied("k", at(0.5)), at(0.5)).unwrap();
        assert!(agg.due(at(0.5)).is_empty());
        agg.done(id, Written::Ok, 1, at(1.0));
        for t in [2.0, 3.0, 4.0] {
            agg.observe(denied("k", at(t)), at(t)).unwrap();
        }
        assert!(agg.due(at(10.9)).is_empty(), "at most once per 10 s");
        assert_eq!(agg.next_due(), Some(at(11.0)));
        let writes = agg.due(at(11.0));
        let [Write::Patch {
            id,
            count,
            last_observed,
            ..
        }] = &writes[..]
        else {
            panic!("{writes:?}");
        };
        assert_eq!((*count, *last_observed), (5, at(4.0)));
        agg.done(id, Written::Ok, 5, at(11.0));
        assert_eq!(agg.next_due(), None, "nothing new: nothing to write");
        // After the window, the next occurrence starts a new Event.
        agg.observe(denied("k", at(400.0)), at(400.0)).unwrap();
        let writes = agg.due(at(400.0));
        assert!(matches!(&writes[..], [Write::Create { .. }]), "{writes:?}");
    }

    #[test]
    fn new_events_are_rate_limited_and_keys_bounded() {
        let mut agg = aggregator();
        let results: Vec<_> = (0..60)
            .map(|i| agg.observe(denied(&i.to_string(), at(0.0)), at(0.0)))
            .collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 50, "burst");
        assert_eq!(results[59], Err("rate_limit"));
        // A known key still counts; a second later ten more new ones get through.
        assert_eq!(agg.observe(denied("0", at(0.1)), at(0.1)), Ok(()));
        let later = (100..120)
            .filter(|i| (agg.observe(denied(&i.to_string(), at(1.0)), at(1.0))).is_ok())
            .count();
        assert!((9..=11).contains(&later), "{later}");

        let mut agg = Aggregator::new(
            Limits {
                max_keys: 2,
                ..Limits::default()
            },
            "node-a",
        );
        agg.observe(denied("a", at(0.0)), at(0.0)).unwrap();
        agg.observe(denied("b", at(0.0)), at(0.0)).unwrap();
        assert_eq!(
            agg.observe(denied("c", at(1.0)), at(1.0)),
            Err("too_many_keys")
        );
        for write in agg.due(at(1.0)) {
            agg.done(write.id(), Written::Ok, 1, at(1.0));
        }
        assert_eq!(
            agg.observe(denied("c", at(301.0)), at(301.0)),
            Ok(()),
            "ended series are forgotten"
        );
    }

    #[test]
    fn an_event_already_there_is_left_be_and_a_failed_write_forgets_its_series() {
        let mut agg = aggregator();
        agg.observe(logging("bad"), at(0.0)).unwrap();
        let id = agg.due(at(0.0))[0].id().to_string();
        agg.done(&id, Written::AlreadyExists, 1, at(0.0));
        assert!(agg.due(at(60.0)).is_empty(), "no second create, no patch");

        agg.observe(denied("k", at(0.0)), at(0.0)).unwrap();
        let id = agg.due(at(0.0))[0].id().to_string();
        agg.done(&id, Written::Failed, 1, at(0.0));
        agg.observe(denied("k", at(1.0)), at(1.0)).unwrap();
        assert!(matches!(&agg.due(at(1.0))[..], [Write::Create { .. }]));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let count = dropped.clone();
        let on_drop: OnDrop = Arc::new(move |why| {
            assert_eq!(why, "queue_full");
            count.fetch_add(1, Ordering::Relaxed);
        });
        let (recorder, mut queued) = Recorder::bounded(2, on_drop);
        let sent: Vec<bool> = (0..3)
            .map(|i| recorder.record(denied(&i.to_string(), at(0.0))))
            .collect();
        assert_eq!(sent, [true, true, false]);
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(queued.try_next().map(|o| o.key), Some("0".into()));
    }

    #[test]
    fn a_long_note_is_cut_at_a_character_boundary() {
        let mut o = denied("k", at(0.0));
        o.note = "é".repeat(1000);
        let mut agg = aggregator();
        agg.observe(o, at(0.0)).unwrap();
        let [Write::Create { event, .. }] = &agg.due(at(0.0))[..] else {
            panic!();
        };
        let note = event.note.as_deref().unwrap();
        assert_eq!(note.len(), 1024);
        assert!(note.chars().all(|c| c == 'é'));
    }
}
