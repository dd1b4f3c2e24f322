//! Where an agent says what it enforces, for `palisade status`: its Lease in a cluster
//! (`palisade_kube::status::LeaseKeeper`), or a file for a lab's agents, which have no API server.
//! Both are renewed every 10 s while the agent's loop turns, and soon after the status changes (a
//! Lease at most every 5 s, the file at once); a reader takes one not renewed for 40 s for an
//! agent that is gone.

use crate::safe_fs;
use palisade_kube::status::{LeaseKeeper, DURATION, RENEW};
use palisade_model::{AgentStatus, StatusRecord};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

/// Where an agent's status goes.
pub enum StatusOut {
    /// Its node's Lease.
    Lease(LeaseKeeper),
    /// A file (a lab's agent).
    File(StatusFile),
}

impl StatusOut {
    /// Says `status` from now on.
    pub fn publish(&self, status: AgentStatus) {
        match self {
            StatusOut::Lease(keeper) => keeper.publish(status),
            StatusOut::File(file) => file.publish(status),
        }
    }
}

/// Keeps a status file renewed with the latest status, on a thread of its own, until dropped,
/// while the agent is alive.
pub struct StatusFile {
    shared: Arc<(Mutex<Pending>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Pending {
    latest: Option<AgentStatus>,
    changed: bool,
    stop: bool,
}

impl StatusFile {
    /// Starts writing `path`, renewed while `alive` says the agent is.
    pub fn start(path: PathBuf, alive: impl Fn() -> bool + Send + 'static) -> StatusFile {
        let shared: Arc<(Mutex<Pending>, Condvar)> = Arc::default();
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("status-file".into())
            .spawn(move || write_loop(&path, &writer, alive))
            .inspect_err(|e| tracing::error!("cannot start the status file's writer: {e}"))
            .ok();
        StatusFile { shared, thread }
    }

    fn publish(&self, status: AgentStatus) {
        let (lock, wake) = &*self.shared;
        let mut pending = lock.lock().unwrap_or_else(|e| e.into_inner());
        if pending.latest.as_ref() != Some(&status) {
            pending.latest = Some(status);
            pending.changed = true;
            wake.notify_all();
        }
    }
}

impl Drop for StatusFile {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes the latest status whenever it changes and every [`RENEW`] while `alive`, until stopped.
fn write_loop(
    path: &std::path::Path,
    shared: &(Mutex<Pending>, Condvar),
    alive: impl Fn() -> bool,
) {
    let (lock, wake) = shared;
    let mut failing = false;
    loop {
        let status = {
            let mut pending = lock.lock().unwrap_or_else(|e| e.into_inner());
            let until = Instant::now() + RENEW;
            while !pending.changed && !pending.stop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                pending = wake
                    .wait_timeout(pending, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if pending.stop {
                return;
            }
            pending.changed = false;
            pending.latest.clone()
        };
        let Some(status) = status.filter(|_| alive()) else {
            continue;
        };
        let renewed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
        let record = StatusRecord {
            renewed: renewed.map_or(0.0, |d| d.as_secs_f64()),
            duration_seconds: DURATION.as_secs(),
            status,
        };
        let written = safe_fs::replace(path, |out| {
            serde_json::to_writer(out, &record).map_err(std::io::Error::other)
        });
        match written {
            Err(e) if !failing => {
                tracing::warn!("cannot write the status file: {e}; `palisade status` will show this agent as stale");
                failing = true;
            }
            Ok(_) => failing = false,
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_file_says_the_latest_status_and_when() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let file = StatusFile::start(path.clone(), || true);
        let status = |pods| AgentStatus {
            node: "node-0".into(),
            pods,
            ..AgentStatus::default()
        };
        file.publish(status(1));
        file.publish(status(2));
        let read = || -> Option<StatusRecord> {
            serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while read().is_none_or(|r| r.status.pods != 2) {
            assert!(Instant::now() < deadline, "{:?}", read());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let record = read().unwrap();
        assert_eq!(record.duration_seconds, 40);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert!(
            (now.as_secs_f64() - record.renewed).abs() < 5.0,
            "{record:?}"
        );
        // Stopping does not wait for the next renewal.
        let stopped = Instant::now();
        drop(file);
        assert!(stopped.elapsed() < std::time::Duration::from_secs(1));
    }
}
