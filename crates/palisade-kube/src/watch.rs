//! Following the API server, as the agent does: every kind listed, then watched from the list's
//! resource version, each event applied to one [`ObjectStore`] (the object it names, nothing
//! else) and announced to the caller. When the server says the watch is too old (410 Gone) the
//! kind is listed afresh (a [`ObjectEvent::Listed`]: what it no longer holds is gone); when the
//! server cannot be reached, or answers with an error, the kind waits (1 s doubling to 30 s, with
//! jitter, so that a thousand agents do not come back at once) and resumes from where it was. The
//! store keeps what it holds meanwhile: the caller keeps enforcing the last state it had.

use crate::list::Lister;
use crate::{client, runtime, Background, Connection, ListedKind, SourceError, KINDS};
use futures::TryStreamExt;
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
            .filter_map(|k| Some(format!("{}: {}", k.kind, k.error.as_ref()?)))
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

    fn kind(&self, kind: Kind, change: impl FnOnce(&mut KindHealth)) {
        let mut health = self.health();
        if let Some(k) = health.kinds.iter_mut().find(|k| k.kind == kind) {
            change(k);
        }
    }

    /// Applies `event` to the store; true when that changed it.
    fn store_apply(&self, event: ObjectEvent) -> bool {
        let (changed, refused) = self.store().apply(event);
        for why in refused {
            tracing::warn!("{why}");
        }
        if changed {
            self.health().last_event = Some(SystemTime::now());
        }
        changed
    }

    /// Applies a watch event; wakes the owner when that changed the store.
    fn apply(&self, event: ObjectEvent) {
        if self.store_apply(event) {
            self.wake();
        }
    }

    /// `kind` was listed whole. The owner is woken after the health says so: the first list of
    /// every kind is what it waits for.
    fn listed(&self, kind: Kind, items: Vec<Value>) {
        let first = self
            .health()
            .kinds
            .iter()
            .any(|k| k.kind == kind && !k.synced);
        let changed = self.store_apply(ObjectEvent::Listed(kind, items));
        self.kind(kind, |k| {
            k.relists += u64::from(!first);
            k.not_served = None;
        });
        self.recovered(kind);
        if changed || first {
            self.wake();
        }
    }

    /// `kind` is followed again (or for the first time).
    fn recovered(&self, kind: Kind) {
        let mut was = None;
        self.kind(kind, |k| {
            k.synced = true;
            was = k.error.take();
        });
        if let Some(was) = was {
            tracing::info!(%kind, "following {kind} again (was: {was})");
        }
    }

    /// `kind` failed (`why`); logged when that is news.
    fn failed(&self, kind: Kind, why: String) {
        let mut news = false;
        self.kind(kind, |k| {
            news = k.error.as_ref() != Some(&why);
            k.error = Some(why.clone());
        });
        if news {
            tracing::warn!(%kind, "{why}; what is known of {kind} stays as it was");
        }
    }

    /// `kind`, optional, is not served (`why`): none of it is held.
    fn not_served(&self, kind: Kind, why: String) {
        let mut news = false;
        self.kind(kind, |k| {
            news = k.not_served.as_ref() != Some(&why);
            k.not_served = Some(why.clone());
        });
        if news {
            tracing::info!(%kind, "{kind} is not served ({why}): none is read");
        }
        let changed = self.store_apply(ObjectEvent::Listed(kind, Vec::new()));
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

    /// Calls `wake` (on the watching thread) after every change to the store, and once every kind
    /// has been listed. Health changes are not announced: [`Watch::health`] is cheap to poll.
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
        let mut backoff = Backoff::default();
        loop {
            let version = match lister.all(listed).await {
                Ok((items, version)) => {
                    self.shared.listed(kind, items);
                    backoff.reset();
                    version
                }
                Err(e) => {
                    match e.not_served(listed) {
                        Some(why) => {
                            self.shared.not_served(kind, why);
                            tokio::time::sleep(RECHECK).await;
                        }
                        None => {
                            self.shared.failed(kind, e.to_string());
                            tokio::time::sleep(backoff.next()).await;
                        }
                    }
                    continue;
                }
            };
            self.watch(listed, version, &mut backoff).await;
        }
    }

    /// Watches `listed` from `version` until the server says it must be listed afresh.
    async fn watch(&self, listed: &ListedKind, mut version: String, backoff: &mut Backoff) {
        let kind = listed.kind;
        let failed = |why: String| {
            self.shared.failed(
                kind,
                format!("cannot watch {kind} from {}: {why}", self.server),
            )
        };
        loop {
            // Bookmarks are asked for by default: a quiet kind's version stays fresh.
            let params = WatchParams::default().timeout(WATCH_SECONDS);
            let request = match kube::core::Request::new(listed.path).watch(&params, &version) {
                Ok(request) => request,
                Err(e) => {
                    // Not expected (the path and parameters are constants): list afresh later.
                    failed(e.to_string());
                    tokio::time::sleep(backoff.next()).await;
                    return;
                }
            };
            let started = tokio::time::timeout(
                self.connection.request_timeout,
                self.client.request_events::<Value>(request),
            );
            let stream = match started.await {
                Err(_) => Err(format!(
                    "no answer within {:?}",
                    self.connection.request_timeout
                )),
                Ok(Err(kube::Error::Api(status))) if status.code == 410 => return,
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(stream)) => Ok(stream),
            };
            let stream = match stream {
                Ok(stream) => stream,
                Err(why) => {
                    failed(why);
                    tokio::time::sleep(backoff.next()).await;
                    continue;
                }
            };
            self.shared.recovered(kind);
            backoff.reset();
            let mut stream = std::pin::pin!(stream);
            loop {
                let event = match tokio::time::timeout(SILENT, stream.try_next()).await {
                    Err(_) => {
                        failed(format!("the watch was silent for {} s", SILENT.as_secs()));
                        break;
                    }
                    // The server ended the watch (its timeout): watched again from `version`.
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        failed(e.to_string());
                        tokio::time::sleep(backoff.next()).await;
                        break;
                    }
                    Ok(Ok(Some(event))) => event,
                };
                match event {
                    WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                        version = version_of(&object).unwrap_or(version);
                        self.shared.apply(ObjectEvent::Applied(kind, object));
                    }
                    WatchEvent::Deleted(object) => {
                        version = version_of(&object).unwrap_or(version);
                        self.shared.apply(ObjectEvent::Deleted(kind, object));
                    }
                    WatchEvent::Bookmark(bookmark) => version = bookmark.metadata.resource_version,
                    // Too old: what happened meanwhile is lost; list afresh.
                    WatchEvent::Error(status) if status.code == 410 => return,
                    WatchEvent::Error(status) => {
                        failed(format!("{} {}", status.code, status.message));
                        tokio::time::sleep(backoff.next()).await;
                        break;
                    }
                }
            }
        }
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
