//! The agent's loop: a pass after every change to the manifests folder (debounced), and whenever a
//! pass is due without one — a removal's grace period ends, a failed pass is retried, the periodic
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
/// How often the loop turns at least: checks the folder is still the one watched, and `stop`.
const TICK: Duration = Duration::from_millis(200);
/// How often the folder is read when it cannot be watched.
const POLL: Duration = Duration::from_secs(1);
/// How often the folder is read even without a change: repairs anything a lost event hid.
const RESYNC: Duration = Duration::from_secs(30);
/// The first and the longest wait before a failed pass is retried.
const RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// How long a pass waits for a manifest being written to be closed: a file read half-written could
/// hold a rule cut short (`- from:` and nothing after it allows every source). A writer that keeps
/// a file open longer does not hold the agent back further.
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
}

impl FolderWatch {
    /// Watches `folder` again if it is not the folder watched (replaced, removed, recreated);
    /// true when that changed what is watched. An error says why it cannot be watched.
    fn ensure(&mut self, folder: &Path) -> Result<bool, String> {
        let now = std::fs::metadata(folder).ok().map(|m| (m.dev(), m.ino()));
        if now == self.watched && (self.watcher.is_some() || now.is_none()) {
            return Ok(false);
        }
        self.watcher = None;
        self.watched = now;
        if now.is_none() {
            return Err(format!("{} does not exist", folder.display()));
        }
        let tx = self.tx.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
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
            })
            .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
        watcher
            .watch(folder, RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
        self.watcher = Some(watcher);
        Ok(true)
    }
}

/// A file the loader reads: `*.yaml`, `*.yml` or `*.json`, not hidden (editors' swap files and
/// staged copies are not waited for).
fn is_manifest(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.') && [".yaml", ".yml", ".json"].iter().any(|x| name.ends_with(x))
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

/// Reconciles once, then after every change under the manifests folder and whenever a pass is due,
/// and repairs the kernel's table when another process changes it, until `stop` is set.
pub fn run(reconciler: &mut Reconciler, stop: &AtomicBool) {
    let folder = reconciler.manifests().to_path_buf();
    let netns = reconciler.netns().map(str::to_string);
    let (tx, rx) = mpsc::channel();
    let mut drift_monitor = monitor(netns.as_deref(), &tx)
        .inspect_err(|e| tracing::warn!("{e}; checking the table every second instead"))
        .ok();
    let mut watch = FolderWatch {
        tx,
        watcher: None,
        watched: None,
    };
    let mut watched = watch.ensure(&folder).map(|_| false);
    reconciler.set_unwatched(watched.as_ref().err().cloned());
    // When a failed pass is retried, and the wait that led there (doubled on each failure).
    let mut retry: Option<(Instant, Duration)> = None;
    let mut last_pass = Instant::now();
    let mut last_check = Instant::now();
    // Manifests modified and not yet closed, with their last modification.
    let mut writing: HashMap<PathBuf, Instant> = HashMap::new();
    let mut held_back = false;
    let mut pass = true;
    loop {
        if pass {
            last_pass = Instant::now();
            retry = match reconciler.reconcile() {
                Outcome::Failed(_) => {
                    let wait = retry.map_or(RETRY.0, |(_, w)| (w * 2).min(RETRY.1));
                    tracing::info!("retrying in {} s", wait.as_secs());
                    Some((last_pass + wait, wait))
                }
                _ => None,
            };
        }
        if stop.load(Ordering::Relaxed) {
            reconciler.write_state(true);
            break;
        }
        reconciler.write_state(false);
        reconciler.health().turned();
        let resync = last_pass + if watched.is_ok() { RESYNC } else { POLL };
        let check = last_check
            + if drift_monitor.is_some() {
                CHECK.0
            } else {
                CHECK.1
            };
        let due = [reconciler.revisit(), retry.map(|r| r.0), Some(resync)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(resync);
        let state_due = reconciler.state_due().unwrap_or(check);
        let wait = due
            .min(check)
            .min(state_due)
            .saturating_duration_since(Instant::now())
            .min(TICK);
        let mut drift: Option<(String, &str)> = None;
        pass = held_back;
        let mut woke = rx.recv_timeout(wait).ok();
        while let Some(wake) = woke.take() {
            match wake {
                Wake::Changed => pass = true,
                Wake::Writing(path, true) => {
                    writing.insert(path, Instant::now());
                }
                Wake::Writing(path, false) => {
                    writing.remove(&path);
                }
                Wake::Drift { what, lost } => {
                    drift = Some((what, if lost { "lost" } else { "changed" }))
                }
                Wake::MonitorDown(e) => {
                    tracing::warn!("nf_tables notifications stopped: {e}; checking the table every second instead");
                    drift_monitor = None;
                }
            }
            // Changes come in bursts (editors write in several steps): wait for quiet.
            if pass {
                woke = rx.recv_timeout(DEBOUNCE).ok();
            }
        }
        pass |= Instant::now() >= due;
        // Not while a manifest is half-written (for at most WRITE_WAIT after its last write).
        writing.retain(|_, last| last.elapsed() < WRITE_WAIT);
        held_back = pass && !writing.is_empty();
        pass &= !held_back;
        if drift.is_none() && Instant::now() >= check {
            last_check = Instant::now();
            drift = reconciler.check_kernel().map(|what| (what, "check"));
            if drift_monitor.is_none() {
                drift_monitor = monitor(netns.as_deref(), &watch.tx).ok();
            }
        }
        if let Some((what, reason)) = drift {
            // A pass due anyway replaces the table whole; otherwise the last ruleset is put back.
            reconciler.kernel_drifted(&what, reason);
            if !pass && !reconciler.repair() {
                retry = Some((Instant::now() + RETRY.0, RETRY.0));
            }
        }
        let now_watched = watch.ensure(&folder);
        pass |= matches!(now_watched, Ok(true));
        let now_watched = now_watched.map(|_| false);
        if now_watched != watched {
            match &now_watched {
                Err(why) => tracing::warn!("{why}; polling it every {} s", POLL.as_secs()),
                Ok(_) => tracing::info!("watching {} again", folder.display()),
            }
            reconciler.set_unwatched(now_watched.as_ref().err().cloned());
            watched = now_watched;
        }
    }
}
