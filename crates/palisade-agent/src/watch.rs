//! The agent's loop: a pass after every change to the manifests folder (debounced), and whenever a
//! pass is due without one — a removal's grace period ends, a failed pass is retried, the periodic
//! resync — so that the agent never goes deaf: a folder removed and recreated is watched again, and
//! while it cannot be watched it is polled.

use crate::reconcile::{Outcome, Reconciler};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
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

/// A recursive watch on a folder, re-established when the folder is replaced.
struct FolderWatch {
    tx: mpsc::Sender<()>,
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
                let relevant = event.map_or(true, |e| !e.kind.is_access());
                if relevant {
                    let _ = tx.send(());
                }
            })
            .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
        watcher
            .watch(folder, RecursiveMode::Recursive)
            .map_err(|e| format!("cannot watch {}: {e}", folder.display()))?;
        self.watcher = Some(watcher);
        Ok(true)
    }
}

/// Reconciles once, then after every change under the manifests folder and whenever a pass is due,
/// until `stop` is set.
pub fn run(reconciler: &mut Reconciler, stop: &AtomicBool) {
    let folder = reconciler.manifests().to_path_buf();
    let (tx, rx) = mpsc::channel();
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
            break;
        }
        reconciler.health().turned();
        let resync = last_pass + if watched.is_ok() { RESYNC } else { POLL };
        let due = [reconciler.revisit(), retry.map(|r| r.0), Some(resync)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(resync);
        let wait = due.saturating_duration_since(Instant::now()).min(TICK);
        pass = match rx.recv_timeout(wait) {
            Ok(()) => {
                while rx.recv_timeout(DEBOUNCE).is_ok() {}
                true
            }
            Err(_) => Instant::now() >= due,
        };
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
