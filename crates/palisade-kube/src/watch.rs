//! Following the API server, as the agent does: every kind listed, then watched from the list's
//! resource version, each event applied to one [`ObjectStore`] (the object it names, nothing
//! else) and announced to the caller. When the server says the watch is too old (410 Gone) the
//! kind is listed afresh (a [`ObjectEvent::Listed`]: what it no longer holds is gone); when the
//! server cannot be reached, or answers with an error, the kind waits (1 s doubling to 30 s, with
//! jitter, so that a thousand agents do not come back at once) and resumes from where it was. A
//! list, or a watch, started again within [`STEADY`] of the last one (a server that keeps
//! answering 410, or ends every watch at once) waits the same way: only a watch that lasts
//! [`STEADY`] resets the wait. The store keeps what it holds meanwhile: the caller
//! keeps enforcing the last state it had.

use crate::bounded::{Events, Fault};
use crate::list::Lister;
use crate::{client, runtime, Background, Connection, ListedKind, SourceError, KINDS};
use kube::api::WatchParams;
use kube::core::WatchEvent;
use kube::Client;
use palisade_model::{Kind, ObjectEvent, ObjectStore};
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long the server keeps one watch open (it then ends it, and the kind is watched again from
/// where it was); kube-rs's and client-go's figure.
const WATCH_SECONDS: u32 = 290;
/// A watch silent this much longer than its timeout is taken for a dropped connection.
const SILENT: Duration = Duration::from_secs(WATCH_SECONDS as u64 + 30);
/// The first and the longest wait after a failure.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// How often an optional kind the server does not serve is asked for again (its CRD may be
/// installed later).
const RECHECK: Duration = Duration::from_secs(60);
/// A list or watch started again sooner than this after the last one waits for the backoff first;
/// a watch that lasts this long is healthy.
const STEADY: Duration = Duration::from_secs(10);

/// How one kind is being followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindHealth {
    /// The kind.
    pub kind: Kind,
    /// Listed whole at least once (an optional kind: or found not served).
    pub synced: bool,
    /// Why an optional kind is not served (say, `404 the server could not find the requested
    /// resource`): the store holds none of it.
    pub not_served: Option<String>,
    /// Why the kind is not being followed now, since the last failure until the next success.
    pub error: Option<String>,
    /// Objects the store refused (no name, past the bound), until a list of the kind has none:
    /// what they define is not enforced.
    pub refused: Option<String>,
    /// Lists after the first one: the watch had to start over (410 Gone, a watch that failed).
    pub relists: u64,
}

/// How the source is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceHealth {
    /// The API server.
    pub server: String,
    /// Each kind, in [`KINDS`] order.
    pub kinds: Vec<KindHealth>,
    /// When an object last changed.
    pub last_event: Option<SystemTime>,
}

impl SourceHealth {
    /// Every kind has been listed (or found not served): the store holds the cluster.
    pub fn synced(&self) -> bool {
        self.kinds.iter().all(|k| k.synced)
    }

    /// What is wrong, if anything: kinds not listed yet, or not being followed now.
    pub fn problem(&self) -> Option<String> {
        let waiting: Vec<&str> = (self.kinds.iter())
            .filter(|k| !k.synced)
            .map(|k| k.kind.as_str())
            .collect();
        let failing: Vec<String> = (self.kinds.iter())
            .flat_map(|k| {
                [&k.error, &k.refused].map(|e| Some(format!("{}: {}", k.kind, e.as_ref()?)))
            })
            .flatten()
            .collect();
        let mut parts = Vec::new();
        if !waiting.is_empty() {
            parts.push(format!(
                "waiting for the first list of {} from {}",
                waiting.join(", "),
                self.server
            ));
        }
        parts.extend(failing);
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// What the watching thread and its owner share.
struct Shared {
    store: Mutex<ObjectStore>,
    health: Mutex<SourceHealth>,
    /// Called after every change to the store ([`Watch::on_change`]).
    wake: Mutex<Option<Wake>>,
}

/// What the owner of a [`Watch`] is told changes with.
type Wake = Arc<dyn Fn() + Send + Sync>;

impl Shared {
    fn health(&self) -> MutexGuard<'_, SourceHealth> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self) -> MutexGuard<'_, ObjectStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the owner the store changed.
    fn wake(&self) {
        let wake = self.wake.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(wake) = wake {
            wake();
        }
    }

    /// Reads or changes the health of `kind`, under one lock.
    fn kind<R: Default>(&self, kind: Kind, change: impl FnOnce(&mut KindHealth) -> R) -> R {
        let mut health = self.health();
        (health.kinds.iter_mut().find(|k| k.kind == kind)).map_or_else(R::default, change)
    }

    /// Applies `event` to the store; true when that changed it. Objects refused are logged and
    /// recorded in the kind's health (not enforced: the source is degraded); a list without any
    /// clears that.
    fn store_apply(&self, kind: Kind, event: ObjectEvent) -> bool {
        let list = matches!(event, ObjectEvent::Listed(..));
        let (changed, refused) = self.store().apply(event);
        for why in &refused {
            tracing::warn!("{why}");
        }
        if changed {
            self.health().last_event = Some(SystemTime::now());
        }
        let summary = (refused.first()).map(|first| match refused.len() {
            1 => format!("refused {first}"),
            n => format!("refused {n} objects, the first: {first}"),
        });
        if summary.is_some() || list {
            self.kind(kind, |k| k.refused = summary);
        }
        changed
    }

    /// Applies a watch event; wakes the owner when that changed the store.
    fn apply(&self, kind: Kind, event: ObjectEvent) {
        if self.store_apply(kind, event) {
            self.wake();
        }
    }

    /// `kind` was listed whole. The owner is woken after the health says so: the first list of
    /// every kind is what it waits for.
    /// `again`: it was listed before.
    fn listed(&self, kind: Kind, items: Vec<Value>, again: bool) {
        let changed = self.store_apply(kind, ObjectEvent::Listed(kind, items));
        // The error (if any) clears when the watch starts: a kind that may be listed but not
        // watched stays failing, not flapping.
        let first = self.kind(kind, |k| {
            k.relists += u64::from(again);
            k.not_served = None;
            !std::mem::replace(&mut k.synced, true)
        });
        if changed || first {
            self.wake();
        }
    }

    /// `kind` is followed again (or for the first time).
    fn recovered(&self, kind: Kind) {
        let was = self.kind(kind, |k| {
            k.synced = true;
            k.error.take()
        });
        if let Some(was) = was {
            tracing::info!(%kind, "following {kind} again (was: {was})");
        }
    }

    /// `kind` failed (`why`); logged when that is news. An optional kind that fails before it
    /// was ever listed does not hold the first apply back (enforcement matters more than a
    /// logging configuration): it counts as listed, with nothing, and its error is said.
    fn failed(&self, listed: &ListedKind, why: String) {
        let kind = listed.kind;
        let (news, first) = self.kind(kind, |k| {
            let news = k.error.as_ref() != Some(&why);
            k.error = Some(why.clone());
            (news, !k.synced)
        });
        if news {
            tracing::warn!(%kind, "{why}; what is known of {kind} stays as it was");
        }
        if listed.optional && first {
            // Its last good objects (the state file's) stay in force until it is listed.
            self.store().mark_unknown(kind);
            self.kind(kind, |k| k.synced = true);
            self.wake();
        }
    }

    /// `kind` is not served (`why`) and may be left out for it: none of it is held.
    fn not_served(&self, kind: Kind, why: String) {
        let news = self.kind(kind, |k| {
            let news = k.not_served.as_ref() != Some(&why);
            k.not_served = Some(why.clone());
            news
        });
        if news {
            tracing::info!(%kind, "{kind} is not served ({why}): none is read");
        }
        let changed = self.store_apply(kind, ObjectEvent::Listed(kind, Vec::new()));
        self.recovered(kind);
        if changed {
            self.wake();
        }
    }
}

/// The API server, followed on a thread of its own until dropped.
pub struct Watch {
    shared: Arc<Shared>,
    _follower: Background,
}

impl Watch {
    /// Starts following the cluster `connection` names. An error only when the configuration is
    /// unusable: a server that cannot be reached is retried, and said in [`Watch::health`].
    pub fn start(connection: &Connection) -> Result<Watch, SourceError> {
        let runtime = runtime()?;
        let (client, server) = runtime.block_on(client(connection))?;
        let kinds = (KINDS.iter())
            .map(|k| KindHealth {
                kind: k.kind,
                synced: false,
                not_served: None,
                error: None,
                refused: None,
                relists: 0,
            })
            .collect();
        let shared = Arc::new(Shared {
            store: Mutex::new(ObjectStore::new(&server, connection.max_objects)),
            health: Mutex::new(SourceHealth {
                server: server.clone(),
                kinds,
                last_event: None,
            }),
            wake: Mutex::new(None),
        });
        let follower = Follower {
            client,
            server,
            connection: connection.clone(),
            shared: shared.clone(),
        };
        let follow = async move {
            futures::future::join_all(KINDS.iter().map(|k| follower.follow(k))).await;
        };
        let follower = Background::spawn("api-watch", runtime, follow)?;
        Ok(Watch {
            shared,
            _follower: follower,
        })
    }

    /// Calls `wake` (on the watching thread) after every change to the store, after each kind's
    /// first list, and when an optional kind failing counts as listed. Other health changes are
    /// not announced: [`Watch::health`] is cheap to poll.
    pub fn on_change(&self, wake: impl Fn() + Send + Sync + 'static) {
        *self.shared.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(wake));
    }

    /// The API server.
    pub fn server(&self) -> String {
        self.shared.health().server.clone()
    }

    /// How the source is doing.
    pub fn health(&self) -> SourceHealth {
        self.shared.health().clone()
    }

    /// Runs `f` on the store as it is now (the watching thread waits meanwhile: keep it short).
    pub fn with_store<R>(&self, f: impl FnOnce(&ObjectStore) -> R) -> R {
        f(&self.shared.store())
    }
}

/// Follows the kinds, on the watching thread.
struct Follower {
    client: Client,
    server: String,
    connection: Connection,
    shared: Arc<Shared>,
}

impl Follower {
    /// Lists `listed`, then watches it, forever: again from a fresh list whenever the watch has
    /// to start over.
    async fn follow(&self, listed: &ListedKind) {
        let kind = listed.kind;
        let lister = Lister {
            client: &self.client,
            server: &self.server,
            connection: &self.connection,
        };
        let mut pace = Pace::default();
        // A kind listed before and now not served as one that may be left out (an optional kind
        // refused: 403, 404; a custom resource's CRD removed: 404) is taken for gone only once
        // it has been refused for the connection's `refused_hold`: a role being replaced, or an
        // API server restarting, must not turn logging off.
        let hold = self.connection.refused_hold;
        let (mut listed_once, mut refused_since) = (false, None::<Instant>);
        loop {
            pace.before(Step::List).await;
            let version = match lister.all(listed).await {
                Ok((items, version)) => {
                    self.shared.listed(kind, items, listed_once);
                    (listed_once, refused_since) = (true, None);
                    version
                }
                Err(e) => {
                    let gone = refused_since.is_some_and(|at| at.elapsed() >= hold);
                    match e.not_served(listed) {
                        Some(why) if !listed_once || gone => {
                            self.shared.not_served(kind, why);
                            (listed_once, refused_since) = (false, None);
                            tokio::time::sleep(RECHECK).await;
                        }
                        Some(why) => {
                            refused_since.get_or_insert_with(Instant::now);
                            let why = format!(
                                "{why}; what was listed stays until it is refused for {} s",
                                hold.as_secs()
                            );
                            self.shared.failed(listed, why);
                            pace.failed(Step::List).await;
                        }
                        None => {
                            self.shared.failed(listed, e.to_string());
                            pace.failed(Step::List).await;
                        }
                    }
                    continue;
                }
            };
            self.watch(listed, version, &mut pace).await;
        }
    }

    /// Watches `listed` from `version` until it must be listed afresh: the server says the
    /// version is too old (410), or refuses the kind (403, 404: an optional kind's CRD removed).
    async fn watch(&self, listed: &ListedKind, mut version: String, pace: &mut Pace) {
        let kind = listed.kind;
        let failed = |why: String| self.watch_failed(listed, why);
        loop {
            pace.before(Step::Watch).await;
            // Bookmarks are asked for by default: a quiet kind's version stays fresh.
            let params = WatchParams::default().timeout(WATCH_SECONDS);
            let request = match kube::core::Request::new(listed.path).watch(&params, &version) {
                Ok(request) => request,
                Err(e) => {
                    // Not expected (the path and parameters are constants): list afresh later.
                    failed(e.to_string());
                    pace.failed(Step::List).await;
                    return;
                }
            };
            let started = tokio::time::timeout(
                self.connection.request_timeout,
                Events::start(&self.client, request),
            );
            let mut stream = match started.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(Fault::Api(status))) if status.code == 410 => return,
                // The kind is refused, or gone (an optional kind's CRD removed): the next list
                // (paced) finds out which.
                Ok(Err(fault @ Fault::Api(_))) if matches!(fault.code(), Some(403 | 404)) => {
                    failed(fault.to_string());
                    return;
                }
                Ok(Err(e)) => {
                    failed(e.to_string());
                    pace.failed(Step::Watch).await;
                    continue;
                }
                Err(_) => {
                    failed(format!(
                        "no answer within {:?}",
                        self.connection.request_timeout
                    ));
                    pace.failed(Step::Watch).await;
                    continue;
                }
            };
            self.shared.recovered(kind);
            let failure = self
                .follow_stream(listed, &mut stream, &mut version, pace)
                .await;
            // The connection is closed before any wait: a dead watch is not held open.
            drop(stream);
            match failure {
                Ended::Gone => return,
                Ended::Refused => {
                    pace.failed(Step::List).await;
                    return;
                }
                Ended::Failed => pace.failed(Step::Watch).await,
                Ended::Closed => {}
            }
        }
    }

    /// The watch of `listed` failed (`why`).
    fn watch_failed(&self, listed: &ListedKind, why: String) {
        let kind = listed.kind;
        let why = format!("cannot watch {kind} from {}: {why}", self.server);
        self.shared.failed(listed, why);
    }

    /// Applies the events of `stream` until it ends, moving `version` along; how it ended.
    async fn follow_stream(
        &self,
        listed: &ListedKind,
        stream: &mut Events,
        version: &mut String,
        pace: &mut Pace,
    ) -> Ended {
        let kind = listed.kind;
        let failed = |why: String| self.watch_failed(listed, why);
        let opened = Instant::now();
        loop {
            let event = match tokio::time::timeout(SILENT, stream.next()).await {
                Err(_) => {
                    failed(format!("the watch was silent for {} s", SILENT.as_secs()));
                    return Ended::Closed;
                }
                // The server ended the watch (its timeout): watched again from `version`.
                Ok(None) => {
                    if opened.elapsed() >= STEADY {
                        pace.healthy();
                    }
                    return Ended::Closed;
                }
                // A `Status` line in the stream.
                Ok(Some(Err(Fault::Api(status)))) if status.code == 410 => return Ended::Gone,
                // Resuming would bring it again: list afresh instead.
                Ok(Some(Err(Fault::Line(why)))) => {
                    failed(format!("{why}; listing {kind} afresh"));
                    return Ended::Refused;
                }
                Ok(Some(Err(e))) => {
                    failed(e.to_string());
                    return Ended::Failed;
                }
                Ok(Some(Ok(event))) => event,
            };
            match event {
                WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                    *version = version_of(&object).unwrap_or(std::mem::take(version));
                    self.shared.apply(kind, ObjectEvent::Applied(kind, object));
                }
                WatchEvent::Deleted(object) => {
                    *version = version_of(&object).unwrap_or(std::mem::take(version));
                    self.shared.apply(kind, ObjectEvent::Deleted(kind, object));
                }
                WatchEvent::Bookmark(bookmark) => *version = bookmark.metadata.resource_version,
                // Too old: what happened meanwhile is lost; list afresh.
                WatchEvent::Error(status) if status.code == 410 => return Ended::Gone,
                WatchEvent::Error(status) => {
                    failed(Fault::Api(status).to_string());
                    return Ended::Failed;
                }
            }
            if opened.elapsed() >= STEADY {
                pace.healthy();
            }
        }
    }
}

/// How a watch stream ended.
enum Ended {
    /// The server ended it, or it went silent: watch again (at once, or paced).
    Closed,
    /// It failed: watch again after the backoff.
    Failed,
    /// A line could not be taken: list afresh after the backoff.
    Refused,
    /// 410 Gone: list afresh.
    Gone,
}

/// What a kind's follower starts.
#[derive(Clone, Copy)]
enum Step {
    List,
    Watch,
}

/// When a kind's follower may start a list or a watch: at once, unless the last one of the same
/// step started less than [`STEADY`] ago (then after the backoff), or after a failure (the
/// backoff, once). Only a healthy watch (open for [`STEADY`]) resets the backoff.
#[derive(Default)]
struct Pace {
    backoff: Backoff,
    last_list: Option<Instant>,
    last_watch: Option<Instant>,
}

impl Pace {
    async fn before(&mut self, step: Step) {
        let last = match step {
            Step::List => &mut self.last_list,
            Step::Watch => &mut self.last_watch,
        };
        let soon = last.is_some_and(|at| at.elapsed() < STEADY);
        *last = Some(Instant::now());
        if soon {
            tokio::time::sleep(self.backoff.next()).await;
        }
    }

    /// `step` failed: waits the backoff, which stands for the wait before the next `step`.
    async fn failed(&mut self, step: Step) {
        match step {
            Step::List => self.last_list = None,
            Step::Watch => self.last_watch = None,
        }
        tokio::time::sleep(self.backoff.next()).await;
    }

    fn healthy(&mut self) {
        self.backoff.reset();
        self.last_watch = None;
    }
}

/// An object's `metadata.resourceVersion`.
fn version_of(object: &Value) -> Option<String> {
    match object.pointer("/metadata/resourceVersion") {
        Some(Value::String(v)) if !v.is_empty() => Some(v.clone()),
        _ => None,
    }
}

/// Waits after failures: [`BACKOFF`]'s first wait, doubled on each failure up to its longest,
/// each with ±25 % jitter; back to the first after a success.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = (BACKOFF.0 * 2u32.saturating_pow(self.failures.min(16))).min(BACKOFF.1);
        self.failures = self.failures.saturating_add(1);
        wait.mul_f64(0.75 + 0.5 * jitter())
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A number in [0, 1) that differs between processes and calls.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_with_jitter_and_resets() {
        let mut backoff = Backoff::default();
        let waits: Vec<Duration> = (0..8).map(|_| backoff.next()).collect();
        for (wait, base) in waits.iter().zip([1, 2, 4, 8, 16, 30, 30, 30]) {
            let base = Duration::from_secs(base);
            assert!(
                *wait >= base.mul_f64(0.75) && *wait < base.mul_f64(1.25),
                "{wait:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next() < Duration::from_millis(1250));
    }
}
