//! The agent's loop: a pass after every change to the source — the manifests folder, or the API
//! server's objects — (debounced), and whenever a pass is due without one — a removal's grace period ends, a failed pass is retried, the periodic
//! resync — so that the agent never goes deaf: a folder removed and recreated is watched again, and
//! while it cannot be watched it is polled. The kernel's table is watched too: a change another
//! process makes to it (reported by nf_tables notifications as it is committed, or found by a
//! periodic check) is repaired at once.

use crate::reconcile::{Outcome, Reconciler};
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use palisade_dataplane::drift::{DriftMonitor, MonitorThread};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the folder must be quiet before a change is applied (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long the API server's events must pause before they are applied: a rollout's events come
/// in bursts, and a pass per event would fall behind; a single event is applied within this.
const EVENT_DEBOUNCE: Duration = Duration::from_millis(10);
/// A burst of changes is applied this long after its first change at the latest, quiet or not:
/// a stream of events (someone touching files every few milliseconds) never holds passes off.
const MAX_BURST: Duration = Duration::from_secs(1);
/// How often the loop turns at least: checks the folder is still the one watched, and `stop`.
const TICK: Duration = Duration::from_millis(200);
/// How often the folder is read when it cannot be watched.
const POLL: Duration = Duration::from_secs(1);
/// How often the folder is read even without a change: repairs anything a lost event hid.
const RESYNC: Duration = Duration::from_secs(30);
/// The first and the longest wait before a failed pass is retried, or a folder that could not be
/// watched is watched again ([`backoff`]).
const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// How long a pass waits for a manifest being written to be closed, from its first write: a file
/// read half-written could hold a rule cut short (`- from:` and nothing after it allows every
/// source). A writer that keeps a file open longer does not hold the agent back further.
const WRITE_WAIT: Duration = Duration::from_secs(1);
/// How often the kernel's table is checked while notifications are heard, and while they are not.
const CHECK: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(1));

/// What wakes the loop.
enum Wake {
    /// Something changed under the folder.
    Changed,
    /// A manifest is being written (`true`: modified, not yet closed) or was closed after writing.
    Writing(PathBuf, bool),
    /// Another process changed the table (the description), or notifications were lost (`lost`).
    Drift { what: String, lost: bool },
    /// The notification monitor stopped.
    MonitorDown(String),
}

/// A recursive watch on a folder, re-established when the folder is replaced.
struct FolderWatch {
    tx: mpsc::Sender<Wake>,
    watcher: Option<RecommendedWatcher>,
    /// Device and inode of the folder watched.
    watched: Option<(u64, u64)>,
    /// After a failed attempt: when to try again, and the wait that led there.
    retry: Option<(Instant, Duration)>,
}

impl FolderWatch {
    /// Watches `folder` again if it is not the folder watched (replaced, removed, recreated);
    /// true when that changed what is watched. An error says why it cannot be watched (attempts
    /// are then spaced out: setting up a watch walks the whole tree).
    fn ensure(&mut self, folder: &Path) -> Result<bool, String> {
        let now = std::fs::metadata(folder).ok().map(|m| (m.dev(), m.ino()));
        if now == self.watched && (self.watcher.is_some() || now.is_none()) {
            return Ok(false);
        }
        if now.is_none() {
            self.watcher = None;
            self.watched = None;
            return Err(format!("{} does not exist", folder.display()));
        }
        if now == self.watched && self.retry.is_some_and(|(at, _)| Instant::now() < at) {
            return Err(format!("{} cannot be watched", folder.display()));
        }
        self.watcher = None;
        self.watched = now;
        match self.watch(folder) {
            Ok(watcher) => {
                self.watcher = Some(watcher);
                self.retry = None;
                Ok(true)
            }
            Err(e) => {
                self.retry = Some(backoff(self.retry, Instant::now()));
                Err(format!("cannot watch {}: {e}", folder.display()))
            }
        }
    }

    fn watch(&self, folder: &Path) -> notify::Result<RecommendedWatcher> {
        let tx = self.tx.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            // Errors and overflows (`need_rescan`) are changes too: a pass reads everything.
            let Ok(event) = event else {
                let _ = tx.send(Wake::Changed);
                return;
            };
            let writing = match event.kind {
                EventKind::Create(CreateKind::File | CreateKind::Any)
                | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Some(true),
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(false),
                EventKind::Access(_) => return,
                _ => None,
            };
            if let Some(writing) = writing {
                for path in event.paths.iter().filter(|p| is_manifest(p)) {
                    let _ = tx.send(Wake::Writing(path.clone(), writing));
                }
            }
            let _ = tx.send(Wake::Changed);
        };
        // Links are never followed: one to `/` would have a root process watch the whole host.
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = RecommendedWatcher::new(handler, config)?;
        watcher.watch(folder, RecursiveMode::Recursive)?;
        Ok(watcher)
    }
}

/// When the loop passes: every timing decision about changes to the source, without I/O.
struct Schedule {
    /// How long the source must be quiet after a change.
    debounce: Duration,
    /// The first and the last change of the burst not yet passed.
    burst: Option<(Instant, Instant)>,
    /// Manifests modified and not yet closed, with their first modification.
    writing: HashMap<PathBuf, Instant>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            debounce: DEBOUNCE,
            burst: None,
            writing: HashMap::new(),
        }
    }
}

impl Schedule {
    /// Something changed under the folder.
    fn changed(&mut self, now: Instant) {
        let first = self.burst.map_or(now, |(first, _)| first);
        self.burst = Some((first, now));
    }

    /// Manifest `path` was written to (`open`), or closed after writing.
    fn writing(&mut self, path: PathBuf, open: bool, now: Instant) {
        if open {
            self.writing.entry(path).or_insert(now);
        } else {
            self.writing.remove(&path);
        }
    }

    /// When the burst's pass is due: once the source is quiet, or [`MAX_BURST`] after its first
    /// change.
    fn burst_due(&self) -> Option<Instant> {
        self.burst
            .map(|(first, last)| (last + self.debounce).min(first + MAX_BURST))
    }

    /// Until when passes wait for manifests being written (at most [`WRITE_WAIT`] after the first
    /// write of each).
    fn held_until(&self, now: Instant) -> Option<Instant> {
        (self.writing.values())
            .map(|&first| first + WRITE_WAIT)
            .filter(|&until| until > now)
            .max()
    }

    /// Whether to pass now, with another pass due at `due` (a retry, a revisit, the resync); a
    /// pass clears the burst.
    fn pass(&mut self, now: Instant, due: Instant) -> bool {
        self.writing.retain(|_, first| now < *first + WRITE_WAIT);
        let wanted = self.burst_due().is_some_and(|d| now >= d) || now >= due;
        if wanted && self.writing.is_empty() {
            self.burst = None;
            return true;
        }
        false
    }

    /// When the loop should wake to pass, with another pass due at `due`: never earlier than
    /// the manifests being written allow, so that a held-back pass does not spin.
    fn wake(&self, now: Instant, due: Instant) -> Instant {
        let wanted = self.burst_due().map_or(due, |b| b.min(due));
        match self.held_until(now) {
            Some(until) => wanted.max(until),
            None => wanted,
        }
    }
}

/// After a failure at `now`: when to try again, and the wait that leads there — [`RETRY`]'s first
/// wait after a success (`last` is `None`), then twice the `last` wait, up to [`RETRY`]'s longest.
fn backoff(last: Option<(Instant, Duration)>, now: Instant) -> (Instant, Duration) {
    let wait = last.map_or(RETRY.0, |(_, w)| (w * 2).min(RETRY.1));
    (now + wait, wait)
}

/// A file the loader reads.
fn is_manifest(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    palisade_model::is_manifest_name(name)
}

/// Listens to nf_tables notifications in `netns` on a thread that wakes the loop.
fn monitor(netns: Option<&str>, tx: &mpsc::Sender<Wake>) -> Result<MonitorThread, String> {
    let tx = tx.clone();
    let report = move |drift: std::io::Result<palisade_dataplane::drift::Drift>| {
        let wake = match drift {
            Ok(d) => Wake::Drift {
                what: d.to_string(),
                lost: d.lost,
            },
            Err(e) => Wake::MonitorDown(e.to_string()),
        };
        tx.send(wake).is_ok()
    };
    DriftMonitor::open(netns)
        .and_then(|m| m.spawn(report))
        .map_err(|e| format!("cannot listen to nf_tables notifications: {e}"))
}

/// Reconciles once, then after every change to the source and whenever a pass is due, and repairs
/// the kernel's table when another process changes it, until `stop` is set.
pub fn run(reconciler: &mut Reconciler, stop: &AtomicBool) {
    let mut turns = Turns::new(reconciler);
    reconciler.check_host();
    let mut pass = true;
    loop {
        if pass {
            turns.pass(reconciler);
        }
        if stop.load(Ordering::Relaxed) {
            reconciler.write_state(true);
            break;
        }
        reconciler.write_state(false);
        reconciler.check_source();
        reconciler.health().turned();
        let due = turns.due(reconciler);
        let drift = turns.wait(reconciler, due);
        turns.check_folder(reconciler);
        pass = turns.schedule.pass(Instant::now(), due);
        let drift = drift.or_else(|| turns.check_kernel(reconciler));
        if let Some((what, reason)) = drift {
            // A pass due anyway replaces the table whole; otherwise the last ruleset is put back.
            reconciler.kernel_drifted(&what, reason);
            if !pass && !reconciler.repair() {
                turns.retry = Some(backoff(None, Instant::now()));
            }
        }
    }
}

/// What the loop keeps between its turns.
struct Turns {
    /// The manifests folder, when that is the source.
    folder: Option<PathBuf>,
    netns: Option<String>,
    rx: mpsc::Receiver<Wake>,
    watch: FolderWatch,
    monitor: Option<MonitorThread>,
    schedule: Schedule,
    /// When a failed pass is retried, and the wait that led there (doubled on each failure).
    retry: Option<(Instant, Duration)>,
    /// Why the last pass waited for the source, if it did.
    waiting: Option<String>,
    last_pass: Instant,
    last_check: Instant,
}

impl Turns {
    fn new(reconciler: &mut Reconciler) -> Turns {
        let folder = reconciler.folder().map(Path::to_path_buf);
        let netns = reconciler.netns().map(str::to_string);
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        reconciler.on_source_change(move || {
            let _ = events.send(Wake::Changed);
        });
        let monitor = monitor(netns.as_deref(), &tx)
            .inspect_err(|e| tracing::warn!("{e}; checking the table every second instead"))
            .ok();
        let mut watch = FolderWatch {
            tx,
            watcher: None,
            watched: None,
            retry: None,
        };
        let schedule = match &folder {
            Some(folder) => {
                reconciler.set_unwatched(watch.ensure(folder).err());
                Schedule::default()
            }
            None => Schedule {
                debounce: EVENT_DEBOUNCE,
                ..Schedule::default()
            },
        };
        Turns {
            folder,
            netns,
            rx,
            watch,
            monitor,
            schedule,
            retry: None,
            waiting: None,
            last_pass: Instant::now(),
            last_check: Instant::now(),
        }
    }

    /// One reconcile pass; a failed one is retried later, waiting twice as long each time.
    fn pass(&mut self, reconciler: &mut Reconciler) {
        self.last_pass = Instant::now();
        self.retry = match reconciler.reconcile() {
            // The source wakes the loop when it has the cluster; said once per reason.
            Outcome::Waiting(why) => {
                if self.waiting.as_ref() != Some(&why) {
                    tracing::info!("{why}");
                    self.waiting = Some(why);
                }
                None
            }
            Outcome::Failed(_) => {
                let retry = backoff(self.retry, self.last_pass);
                tracing::info!("retrying in {} s", retry.1.as_secs());
                Some(retry)
            }
            _ => None,
        };
    }

    /// When a pass is due without a change: a removal's grace ends, a retry, the resync (or the
    /// poll of a folder that cannot be watched).
    fn due(&self, reconciler: &Reconciler) -> Instant {
        let watched = reconciler.unwatched().is_none();
        let resync = self.last_pass + if watched { RESYNC } else { POLL };
        [reconciler.revisit(), self.retry.map(|r| r.0), Some(resync)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(resync)
    }

    /// When the kernel's table is checked next.
    fn check_at(&self) -> Instant {
        let every = if self.monitor.is_some() {
            CHECK.0
        } else {
            CHECK.1
        };
        self.last_check + every
    }

    /// Waits (at most a tick) for something to happen, and takes everything that did: changes to
    /// the folder go to the schedule; a drift reported by nf_tables notifications is returned.
    fn wait(&mut self, reconciler: &Reconciler, due: Instant) -> Option<(String, &'static str)> {
        let now = Instant::now();
        let check = self.check_at();
        let wake = [
            self.schedule.wake(now, due),
            check,
            reconciler.state_due().unwrap_or(check),
        ]
        .into_iter()
        .min()
        .unwrap_or(check);
        let first = self
            .rx
            .recv_timeout(wake.saturating_duration_since(now).min(TICK))
            .ok()?;
        let mut drift = None;
        // Everything that arrived, without waiting further.
        let woke: Vec<Wake> = std::iter::once(first).chain(self.rx.try_iter()).collect();
        for woke in woke {
            match woke {
                Wake::Changed => self.schedule.changed(Instant::now()),
                Wake::Writing(path, open) => self.schedule.writing(path, open, Instant::now()),
                Wake::Drift { what, lost } => {
                    drift = Some((what, if lost { "lost" } else { "changed" }))
                }
                Wake::MonitorDown(e) => {
                    tracing::warn!("nf_tables notifications stopped: {e}; checking the table every second instead");
                    self.monitor = None;
                }
            }
        }
        drift
    }

    /// Watches the folder again if it was replaced (a change, then), and records in the reconciler
    /// whether it is watched (the one place that says so).
    fn check_folder(&mut self, reconciler: &mut Reconciler) {
        let Some(folder) = &self.folder else {
            return;
        };
        let unwatched = match self.watch.ensure(folder) {
            Ok(replaced) => {
                if replaced {
                    self.schedule.changed(Instant::now());
                }
                None
            }
            Err(why) => Some(why),
        };
        if unwatched.as_deref() != reconciler.unwatched() {
            match &unwatched {
                Some(why) => tracing::warn!("{why}; reading it every {} s", POLL.as_secs()),
                None => tracing::info!("watching {} again", folder.display()),
            }
            reconciler.set_unwatched(unwatched);
        }
    }

    /// When due, checks the kernel's table (and listens to its notifications again if that
    /// stopped); what differs, if anything.
    fn check_kernel(&mut self, reconciler: &mut Reconciler) -> Option<(String, &'static str)> {
        if Instant::now() < self.check_at() {
            return None;
        }
        self.last_check = Instant::now();
        reconciler.check_host();
        if self.monitor.is_none() {
            self.monitor = monitor(self.netns.as_deref(), &self.watch.tx).ok();
        }
        reconciler.check_kernel().map(|what| (what, "check"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn retries_wait_a_second_then_twice_as_long_up_to_thirty() {
        let t = Instant::now();
        let mut last = None;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let next = backoff(last, t);
            assert_eq!(next.0, t + next.1);
            waits.push(next.1.as_secs());
            last = Some(next);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn a_burst_passes_once_quiet_or_a_second_after_its_first_change() {
        let t = Instant::now();
        let never = at(t, 1_000_000);
        let mut s = Schedule::default();
        assert!(!s.pass(t, never));
        s.changed(t);
        assert!(!s.pass(at(t, 20), never));
        assert_eq!(s.wake(at(t, 20), never), at(t, 50));
        assert!(s.pass(at(t, 50), never));
        assert!(!s.pass(at(t, 60), never), "the burst was passed");
        // A change every 20 ms never quiets down: passed a second after the first.
        for ms in (100..2000).step_by(20) {
            s.changed(at(t, ms));
            let passed = s.pass(at(t, ms + 1), never);
            assert_eq!(passed, ms + 1 >= 1100, "at {ms} ms");
            if passed {
                break;
            }
        }
        // Another pass due (a retry, the resync) passes without a change.
        assert!(s.pass(at(t, 3000), at(t, 3000)));
    }

    #[test]
    fn a_manifest_being_written_holds_passes_a_second_from_its_first_write() {
        let t = Instant::now();
        let never = at(t, 1_000_000);
        let mut s = Schedule::default();
        let file = PathBuf::from("p.yaml");
        s.writing(file.clone(), true, t);
        s.changed(t);
        assert!(!s.pass(at(t, 100), never), "held while written");
        // The loop wakes when the hold ends, not before (a held-back pass must not spin).
        assert_eq!(s.wake(at(t, 100), at(t, 0)), at(t, 1000));
        // Closed: passes at once.
        s.writing(file.clone(), false, at(t, 200));
        assert!(s.pass(at(t, 200), never));
        // A writer that writes every half second without closing: held at most a second from
        // its first write, then passed.
        s.writing(file.clone(), true, at(t, 300));
        for ms in (300..1300).step_by(500) {
            s.writing(file.clone(), true, at(t, ms));
            s.changed(at(t, ms));
        }
        assert!(!s.pass(at(t, 1200), never));
        assert!(s.pass(at(t, 1300), never));
        // Closed or not, two files: held until both are done.
        let other = PathBuf::from("q.yaml");
        s.writing(file.clone(), true, at(t, 2000));
        s.writing(other.clone(), true, at(t, 2100));
        s.changed(at(t, 2100));
        s.writing(file, false, at(t, 2200));
        assert!(!s.pass(at(t, 2300), never));
        s.writing(other, false, at(t, 2400));
        assert!(s.pass(at(t, 2400), never));
    }
}
