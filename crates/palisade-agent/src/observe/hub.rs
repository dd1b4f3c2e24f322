//! The live view: every verdict event, as a record, goes to a ring buffer and to the clients
//! following it over a local (Unix) socket. A client sends one JSON request line (filter, how many
//! past records, whether to follow) and reads JSON lines back; a refused request gets one line
//! `{"error": "..."}` instead.
//!
//! A local client costs the agent little and never slows it: at most [`MAX_CLIENTS`] at once (one
//! thread each), a request of at most [`MAX_REQUEST`] bytes and [`MAX_FILTER_VALUES`] filter values
//! within [`REQUEST_TIMEOUT`], a client that stops reading is dropped after [`WRITE_TIMEOUT`], and
//! the publisher only ever queues (a full queue makes the client miss records).

use super::filter::Filter;
use crate::metrics::Metrics;
use crate::record::Record;
use crate::safe_fs::{self, at, refused};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::Permissions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records kept for `--last`.
pub const RING: usize = 4096;
/// Records queued for a slow client before it misses some.
const QUEUE: usize = 1024;
/// Clients served at once; more are sent an error and closed.
pub const MAX_CLIENTS: usize = 64;
/// Longest request line, in bytes.
pub const MAX_REQUEST: usize = 64 << 10;
/// Filter values a request may hold (every record is matched against every follower's filter).
pub const MAX_FILTER_VALUES: usize = 256;
/// Time a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a follower may leave records unread before it is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle follower is checked for having hung up.
const HANGUP_CHECK: Duration = Duration::from_secs(1);

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
    id: u64,
    filter: Filter,
    tx: SyncSender<Arc<Record>>,
}

#[derive(Default)]
struct Inner {
    ring: VecDeque<Arc<Record>>,
    subscribers: Vec<Subscriber>,
    next_id: u64,
    missed: u64,
}

/// A following client's stream of new records; it unsubscribes when dropped (even if no record
/// is ever published again).
pub struct Subscription<'a> {
    hub: &'a Hub,
    id: u64,
    rx: Receiver<Arc<Record>>,
}

impl Subscription<'_> {
    /// The next record, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Arc<Record>, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        self.hub.lock().subscribers.retain(|s| s.id != self.id);
    }
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
    /// is full misses it). A gone client is not here: its [`Subscription`], the only holder of its
    /// queue's receiving end, removes it under the lock when dropped.
    pub fn publish(&self, record: Record) {
        let record = Arc::new(record);
        let mut inner = self.lock();
        if inner.ring.len() == RING {
            inner.ring.pop_front();
        }
        inner.ring.push_back(record.clone());
        let mut missed = 0;
        for s in &inner.subscribers {
            if s.filter.matches(&record)
                && matches!(s.tx.try_send(record.clone()), Err(TrySendError::Full(_)))
            {
                missed += 1;
            }
        }
        inner.missed += missed;
    }

    /// Records a client missed because it read too slowly.
    pub fn missed(&self) -> u64 {
        self.lock().missed
    }

    /// The buffered records `request` asks for, and (when following) the stream of new ones.
    pub fn subscribe(&self, request: &Request) -> (Vec<Arc<Record>>, Option<Subscription<'_>>) {
        let mut inner = self.lock();
        let matching: Vec<Arc<Record>> = inner
            .ring
            .iter()
            .filter(|r| request.filter.matches(r))
            .cloned()
            .collect();
        let skip = request.last.map_or(0, |n| matching.len().saturating_sub(n));
        let past = matching.into_iter().skip(skip).collect();
        let subscription = request.follow.then(|| {
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            let id = inner.next_id;
            inner.next_id += 1;
            inner.subscribers.push(Subscriber {
                id,
                filter: request.filter.clone(),
                tx,
            });
            Subscription { hub: self, id, rx }
        });
        (past, subscription)
    }
}

/// Serves `hub` on the Unix socket `path` (created as `bind` says) from a background thread, one
/// thread per client and at most [`MAX_CLIENTS`] at once. Clients turned away are counted in
/// `metrics`.
pub fn serve(
    path: &Path,
    hub: Arc<Hub>,
    group: Option<u32>,
    metrics: Arc<Metrics>,
) -> io::Result<()> {
    let listener = bind(path, group)?;
    let clients = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("observe".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => accept(stream, &hub, &clients, &metrics),
                    // Out of file descriptors, most likely: wait rather than spin.
                    Err(e) => {
                        tracing::warn!("observe socket: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .map_err(at(path))?;
    Ok(())
}

/// Creates the listening socket at `path` with [`safe_fs::SOCKET_MODE`] and `group` from the first
/// instant it can be reached. Whatever is at `path` must be a socket no agent listens on (it is
/// replaced); anything else is refused and left alone.
///
/// The umask cannot be narrowed just for the bind (it is process-wide: other threads may be
/// creating files), and a chmod after binding at `path` leaves a moment with the umask's mode. So
/// the socket is bound in a fresh private (0700) folder beside `path`, given its mode and group
/// there, and hard-linked into place: a link never replaces an entry, so nothing that appeared at
/// `path` meanwhile is deleted either.
fn bind(path: &Path, group: Option<u32>) -> io::Result<UnixListener> {
    let dir = safe_fs::prepare_parent(path, group)?;
    remove_stale(path)?;
    let private = tempfile::Builder::new()
        .prefix(".obs-")
        .permissions(Permissions::from_mode(0o700))
        .tempdir_in(&dir)
        .map_err(at(&dir))?;
    let staged = private.path().join("s");
    let listener = UnixListener::bind(&staged).map_err(at(path))?;
    if let Some(gid) = group {
        std::os::unix::fs::lchown(&staged, None, Some(gid)).map_err(at(path))?;
    }
    std::fs::set_permissions(&staged, Permissions::from_mode(safe_fs::SOCKET_MODE))
        .map_err(at(path))?;
    std::fs::hard_link(&staged, path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => refused(
            path,
            "appeared while the observe socket was being created; left alone",
        ),
        _ => at(path)(e),
    })?;
    Ok(listener)
}

/// Removes the socket a stopped agent left at `path`. Refused: anything that is not a socket
/// (looked at without following links), and the socket of an agent still serving it.
fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(at(path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(refused(
            path,
            format!(
                "is {}, not a socket; refusing to replace it (remove it, or choose another \
                 --observe-socket)",
                safe_fs::kind(&meta)
            ),
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{}: another agent is serving it", path.display()),
        ));
    }
    std::fs::remove_file(path).map_err(at(path))
}

/// Holds one of the [`MAX_CLIENTS`] places until dropped.
struct Place(Arc<AtomicUsize>);

impl Place {
    fn take(clients: &Arc<AtomicUsize>) -> Option<Place> {
        clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CLIENTS).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(clients.clone()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a client is turned away: the metric's reason and the message it is sent.
struct Refusal {
    reason: &'static str,
    message: String,
}

/// What the server sends instead of records when it refuses a client.
#[derive(Serialize, Deserialize)]
struct ErrorReply {
    error: String,
}

/// Sends `refusal` (without ever blocking: the socket buffer of a new connection has room for a
/// line, and a client that filled it loses the line) and counts it.
fn refuse(stream: &UnixStream, refusal: &Refusal, metrics: &Metrics) {
    Metrics::inc(&metrics.observe_rejected, refusal.reason);
    tracing::debug!("observe client refused: {}", refusal.message);
    let reply = ErrorReply {
        error: refusal.message.clone(),
    };
    let mut line = serde_json::to_string(&reply).expect("a string serialises");
    line.push('\n');
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write_all(line.as_bytes());
}

fn accept(stream: UnixStream, hub: &Arc<Hub>, clients: &Arc<AtomicUsize>, metrics: &Arc<Metrics>) {
    let Some(place) = Place::take(clients) else {
        let refusal = Refusal {
            reason: "too_many_clients",
            message: format!(
                "the agent serves {MAX_CLIENTS} observe clients at most; try again later"
            ),
        };
        return refuse(&stream, &refusal, metrics);
    };
    let (hub, metrics) = (hub.clone(), metrics.clone());
    let spawned = std::thread::Builder::new()
        .name("observe-client".into())
        .spawn(move || {
            let _place = place;
            if let Err(e) = client(&stream, &hub, &metrics) {
                tracing::debug!("observe client: {e}");
            }
        });
    // Without a thread the closure, the stream and the place are dropped: the client is closed.
    if let Err(e) = spawned {
        tracing::warn!("observe client thread: {e}");
    }
}

fn client(stream: &UnixStream, hub: &Hub, metrics: &Metrics) -> io::Result<()> {
    let request = match read_request(stream) {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(()),
        Err(refusal) => {
            refuse(stream, &refusal, metrics);
            return Ok(());
        }
    };
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let (past, subscription) = hub.subscribe(&request);
    let mut out = io::BufWriter::new(stream);
    for r in past {
        out.write_all(r.to_line().as_bytes())?;
    }
    out.flush()?;
    let Some(subscription) = subscription else {
        return Ok(());
    };
    // The client sends nothing more; reading only tells whether it hung up.
    stream.set_read_timeout(Some(Duration::from_millis(1)))?;
    loop {
        match subscription.recv_timeout(HANGUP_CHECK) {
            Ok(r) => {
                out.write_all(r.to_line().as_bytes())?;
                out.flush()?;
            }
            Err(RecvTimeoutError::Timeout) if hung_up(stream) => return Ok(()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// True when the peer closed its end (what it may still send is read and ignored).
fn hung_up(stream: &UnixStream) -> bool {
    match (&*stream).read(&mut [0; 512]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
        ),
    }
}

/// Reads the request line within [`REQUEST_TIMEOUT`] in all, keeping at most [`MAX_REQUEST`]
/// bytes. `None`: the client went away before sending one.
fn read_request(stream: &UnixStream) -> Result<Option<Request>, Refusal> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut line = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timed_out = || Refusal {
            reason: "request_timeout",
            message: format!("no request line within {} s", REQUEST_TIMEOUT.as_secs()),
        };
        if left.is_zero() {
            return Err(timed_out());
        }
        let n = match stream
            .set_read_timeout(Some(left))
            .and_then(|()| (&*stream).read(&mut chunk))
        {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        };
        let end = chunk[..n].iter().position(|&b| b == b'\n');
        line.extend_from_slice(&chunk[..end.unwrap_or(n)]);
        if line.len() > MAX_REQUEST {
            return Err(Refusal {
                reason: "request_too_large",
                message: format!("the request line is longer than {MAX_REQUEST} bytes"),
            });
        }
        match (end, n) {
            (Some(_), _) => break,
            (None, 0) if line.is_empty() => return Ok(None),
            (None, 0) => break,
            (None, _) => {}
        }
    }
    parse_request(&line).map(Some)
}

fn parse_request(line: &[u8]) -> Result<Request, Refusal> {
    let bad = |message| Refusal {
        reason: "bad_request",
        message,
    };
    let request: Request =
        serde_json::from_slice(line).map_err(|e| bad(format!("bad request: {e}")))?;
    let f = &request.filter;
    let values = f.from_pods.len()
        + f.to_pods.len()
        + f.pods.len()
        + f.namespaces.len()
        + f.verdicts.len()
        + f.ports.len()
        + f.protocols.len();
    if values > MAX_FILTER_VALUES {
        return Err(bad(format!(
            "bad request: the filter has {values} values; at most {MAX_FILTER_VALUES}"
        )));
    }
    Ok(request)
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
    let sent = stream.write_all(line.as_bytes());
    let mut reader = BufReader::new(stream);
    if let Err(e) = sent {
        // A client turned away may be closed before its request is taken; the reason is there.
        let mut first = String::new();
        let _ = reader.read_line(&mut first);
        return Err(serde_json::from_str(&first).map_or(e, refused_by_agent));
    }
    Ok(reader.lines().map(|line| {
        let line = line?;
        serde_json::from_str(&line).map_err(|e| {
            serde_json::from_str(&line).map_or(
                io::Error::new(io::ErrorKind::InvalidData, e),
                refused_by_agent,
            )
        })
    }))
}

fn refused_by_agent(reply: ErrorReply) -> io::Error {
    io::Error::other(format!("the agent refused: {}", reply.error))
}
