//! The live view: every verdict event, as a record, goes to a ring buffer and to the clients
//! following it over a local (Unix) socket. A client sends one JSON request line (filter, how many
//! past records, whether to follow) and reads JSON lines back.

use super::filter::Filter;
use crate::policy_log::record::Record;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records kept for `--last`.
pub const RING: usize = 4096;
/// Records queued for a slow client before it misses some.
const QUEUE: usize = 1024;

/// What a client asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Only matching records.
    pub filter: Filter,
    /// The last N matching records from the buffer first (`None`: all it holds).
    pub last: Option<usize>,
    /// Then keep streaming new ones.
    pub follow: bool,
}

struct Subscriber {
    filter: Filter,
    tx: SyncSender<Arc<Record>>,
}

#[derive(Default)]
struct Inner {
    ring: VecDeque<Arc<Record>>,
    subscribers: Vec<Subscriber>,
    missed: u64,
}

/// The ring buffer and the following clients.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a record: into the ring, and to every client whose filter matches (a client whose queue
    /// is full misses it; a gone client is forgotten).
    pub fn publish(&self, record: Record) {
        let record = Arc::new(record);
        let mut inner = self.lock();
        if inner.ring.len() == RING {
            inner.ring.pop_front();
        }
        inner.ring.push_back(record.clone());
        let mut missed = 0;
        inner.subscribers.retain(|s| {
            match s
                .filter
                .matches(&record)
                .then(|| s.tx.try_send(record.clone()))
            {
                Some(Err(TrySendError::Disconnected(_))) => false,
                Some(Err(TrySendError::Full(_))) => {
                    missed += 1;
                    true
                }
                _ => true,
            }
        });
        inner.missed += missed;
    }

    /// Records a client missed because it read too slowly.
    pub fn missed(&self) -> u64 {
        self.lock().missed
    }

    /// The buffered records `request` asks for, and (when following) the stream of new ones.
    pub fn subscribe(
        &self,
        request: &Request,
    ) -> (Vec<Arc<Record>>, Option<Receiver<Arc<Record>>>) {
        let mut inner = self.lock();
        let matching: Vec<Arc<Record>> = inner
            .ring
            .iter()
            .filter(|r| request.filter.matches(r))
            .cloned()
            .collect();
        let skip = request.last.map_or(0, |n| matching.len().saturating_sub(n));
        let past = matching.into_iter().skip(skip).collect();
        let rx = request.follow.then(|| {
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            inner.subscribers.push(Subscriber {
                filter: request.filter.clone(),
                tx,
            });
            rx
        });
        (past, rx)
    }
}

/// Listens on `path` (replacing a stale socket file) and serves each client from its own thread.
pub fn serve(path: &Path, hub: Arc<Hub>) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{}: another agent is serving it", path.display()),
        ));
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let hub = hub.clone();
            std::thread::spawn(move || {
                if let Err(e) = client(stream, &hub) {
                    tracing::debug!("observe client: {e}");
                }
            });
        }
    });
    Ok(())
}

fn client(stream: UnixStream, hub: &Hub) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let request: Request = serde_json::from_str(&line)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad request: {e}")))?;
    let (past, rx) = hub.subscribe(&request);
    let mut out = io::BufWriter::new(&stream);
    for r in past {
        out.write_all(r.to_line().as_bytes())?;
    }
    out.flush()?;
    if let Some(rx) = rx {
        for r in rx {
            out.write_all(r.to_line().as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

/// Connects to the agent at `path` and sends `request`; yields the records it sends back.
pub fn connect(
    path: &Path,
    request: &Request,
) -> io::Result<impl Iterator<Item = io::Result<Record>>> {
    let mut stream = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{}: {e}; is `palisade agent` (or a lab) running with this --observe-socket?",
                path.display()
            ),
        )
    })?;
    let mut line = serde_json::to_string(request).map_err(io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    Ok(BufReader::new(stream).lines().map(|line| {
        serde_json::from_str(&line?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }))
}
