//! Watching the manifests folder: every change (debounced) triggers a reconcile pass.

use crate::reconcile::Reconciler;
use notify::{RecursiveMode, Watcher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long the folder must be quiet before a change is applied (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Reconciles once, then after every change under the manifests folder, until `stop` is set.
pub fn run(reconciler: &mut Reconciler, manifests: &Path, stop: &AtomicBool) -> notify::Result<()> {
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !event.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })?;
    watcher.watch(manifests, RecursiveMode::Recursive)?;
    reconciler.reconcile();
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(()) => {
                while rx.recv_timeout(DEBOUNCE).is_ok() {}
                reconciler.reconcile();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(())
}
