//! The last good state on disk: the objects in force, written after passes that applied them, and
//! read back when the agent starts, so that a restart never lifts what was in force — a file broken
//! while the agent was down keeps the versions it had.
//!
//! The file decides what a restarted root process enforces, so it is trusted only as the agent left
//! it: a regular file (never a link) owned by the agent and writable by no one else, in a folder
//! only root or the agent can write to; it is written whole to a new file and renamed into place.
//! Writing happens on a thread of its own, at most every [`INTERVAL`], so that passes do not wait
//! for it.

use crate::safe_fs;
use palisade_model::{DocumentCache, InForce, Limits};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Default place of the state file.
pub const DEFAULT_PATH: &str = "/var/lib/palisade/last-good.json";
/// Writes are at least this far apart.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// A larger state file is not read (10,000 pods make about 10 MB); a smaller one is read whole,
/// then parsed.
const MAX_BYTES: u64 = 1 << 30;

/// What the writer thread is handed: the objects to write (with the number of the hand-over), and
/// whether to stop.
#[derive(Default)]
struct Pending {
    objects: Option<(u64, InForce)>,
    stop: bool,
    /// The number of the last hand-over written (or given up on), for [`StateFile::flush`].
    written: u64,
}

/// The agent's state file and the thread that writes it.
pub struct StateFile {
    path: PathBuf,
    /// The source whose objects it holds (the manifests folder).
    source: String,
    shared: Arc<(Mutex<Pending>, Condvar)>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// A pass applied something not written yet.
    dirty: bool,
    last_offer: Option<Instant>,
    handed: u64,
}

impl StateFile {
    /// The state file at `path`, for the objects of `source` (the manifests folder).
    pub fn new(path: PathBuf, source: String) -> StateFile {
        let shared: Arc<(Mutex<Pending>, Condvar)> = Arc::default();
        let (thread_shared, thread_path, thread_source) =
            (shared.clone(), path.clone(), source.clone());
        let writer = std::thread::Builder::new()
            .name("state-file".into())
            .spawn(move || write_loop(&thread_path, &thread_source, &thread_shared))
            .inspect_err(|e| tracing::error!("cannot start the state file writer: {e}"))
            .ok();
        StateFile {
            path,
            source,
            shared,
            writer,
            dirty: false,
            last_offer: None,
            handed: 0,
        }
    }

    /// The last good state written by an earlier run for this file's source, as a cache to start
    /// from; `None` (and a log line saying why) when there is none or it cannot be trusted.
    pub fn read(&self, limits: Limits) -> Option<DocumentCache> {
        let snapshot = match read(&self.path) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("not starting from the last good state: {e}");
                return None;
            }
        };
        let objects = snapshot.len();
        match DocumentCache::from_snapshot(snapshot, &self.source, limits) {
            Ok(cache) => {
                tracing::info!(
                    path = %self.path.display(),
                    objects,
                    "starting from the last good state: what no longer reads keeps these versions"
                );
                Some(cache)
            }
            Err(e) => {
                tracing::warn!("{}: not used: {e}", self.path.display());
                None
            }
        }
    }

    /// A pass applied what `cache` holds.
    pub fn applied(&mut self) {
        self.dirty = true;
    }

    /// When the objects applied last are due to be written, if they are not yet.
    pub fn due(&self) -> Option<Instant> {
        self.dirty
            .then(|| self.last_offer.map_or_else(Instant::now, |t| t + INTERVAL))
    }

    /// Hands `cache`'s objects to the writer if they are due.
    pub fn write_if_due(&mut self, cache: &DocumentCache) {
        if self.due().is_some_and(|due| Instant::now() >= due) {
            self.hand(cache);
        }
    }

    fn hand(&mut self, cache: &DocumentCache) {
        self.dirty = false;
        self.last_offer = Some(Instant::now());
        self.handed += 1;
        let (lock, wake) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).objects =
            Some((self.handed, cache.in_force()));
        wake.notify_all();
    }

    /// Writes `cache`'s objects now if any are unwritten, and waits until they are (at most 10 s).
    pub fn flush(&mut self, cache: &DocumentCache) {
        if self.dirty {
            self.hand(cache);
        }
        let (handed, alive) = (self.handed, self.writer.is_some());
        let (lock, wake) = &*self.shared;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = wake.wait_timeout_while(guard, Duration::from_secs(10), |p| {
            alive && p.written < handed
        });
    }
}

impl Drop for StateFile {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        wake.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_loop(path: &Path, source: &str, shared: &(Mutex<Pending>, Condvar)) {
    let (lock, wake) = shared;
    loop {
        let objects = {
            let mut pending = lock.lock().unwrap_or_else(|e| e.into_inner());
            while pending.objects.is_none() && !pending.stop {
                pending = wake.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            match pending.objects.take() {
                Some(objects) => objects,
                None => return,
            }
        };
        let (number, objects) = objects;
        let started = Instant::now();
        match write(path, &objects, source) {
            Ok(bytes) => tracing::debug!(
                path = %path.display(),
                bytes,
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "last good state written"
            ),
            Err(e) => tracing::error!(
                "cannot write the last good state: {e}; a restart would start from the manifests alone"
            ),
        }
        drop(objects);
        let mut pending = lock.lock().unwrap_or_else(|e| e.into_inner());
        pending.written = number;
        wake.notify_all();
    }
}

/// Writes `objects` to `path`, whole or not at all; the bytes written.
fn write(path: &Path, objects: &InForce, source: &str) -> io::Result<u64> {
    safe_fs::replace(path, |out| {
        serde_json::to_writer(out, &objects.snapshot(source)).map_err(io::Error::other)
    })
}

/// The snapshot at `path`: `None` when there is none; an error when it cannot be read or trusted.
fn read(path: &Path) -> io::Result<Option<palisade_model::Snapshot>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(safe_fs::at(path)(e)),
    };
    let meta = file.metadata().map_err(safe_fs::at(path))?;
    if !meta.is_file() {
        return Err(safe_fs::refused(
            path,
            format!("is {}", safe_fs::kind(&meta)),
        ));
    }
    if meta.uid() != safe_fs::euid() || meta.mode() & 0o022 != 0 {
        return Err(safe_fs::refused(
            path,
            "is not the agent's own (owned by another user, or writable by others): not trusted",
        ));
    }
    safe_fs::prepare_parent(path, None)?;
    let bytes = palisade_model::read_bounded(file, MAX_BYTES).map_err(safe_fs::at(path))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| safe_fs::at(path)(io::Error::new(io::ErrorKind::InvalidData, e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A cache holding one policy read from a folder.
    fn loaded(dir: &Path) -> DocumentCache {
        std::fs::write(
            dir.join("p.yaml"),
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: x}\nspec: {podSelector: {}}\n",
        )
        .unwrap();
        let mut loader = palisade_model::Loader::new();
        loader.load_path(dir);
        loader.finish_with_cache().cache
    }

    #[test]
    fn written_whole_and_private_and_read_back_only_when_trusted() {
        let folder = tempfile::tempdir().unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let path = state_dir.path().join("state/last-good.json");
        let source = folder.path().display().to_string();
        let mut state = StateFile::new(path.clone(), source);
        assert!(state.read(Limits::default()).is_none(), "none yet");
        assert_eq!(state.due(), None);
        state.applied();
        assert!(state.due().is_some());
        state.flush(&loaded(folder.path()));
        assert_eq!(state.due(), None);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o750);
        // No staged file is left beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        assert!(state.read(Limits::default()).is_some());
        let elsewhere = StateFile::new(path.clone(), "/elsewhere".into());
        assert!(elsewhere.read(Limits::default()).is_none());

        // Writable by others: not trusted.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(state.read(Limits::default()).is_none());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A symlink in its place: not followed.
        let real = state_dir.path().join("real.json");
        std::fs::rename(&path, &real).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        assert!(read(&path).is_err());
        // Garbage: an error, not a panic.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "{not json").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read(&path).is_err());
        // Written again: the link replaced by a file, its target untouched.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let before = std::fs::read(&real).unwrap();
        state.applied();
        state.flush(&loaded(folder.path()));
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(std::fs::read(&real).unwrap(), before);
    }
}
