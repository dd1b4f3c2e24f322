//! The live view: every verdict event, as a record, goes to a ring buffer and to the clients
//! following it over a local (Unix) socket; so does every flow record, in a ring of its own, when
//! the agent writes a flow log. A client sends one JSON request line (filter, how many past
//! records, whether to follow, verdicts or flows) and reads JSON lines back; a refused request
//! gets one line `{"error": "..."}` instead.
//!
//! A local client costs the agent little and never slows it: at most [`MAX_CLIENTS`] at once (one
//! thread each), a request of at most [`MAX_REQUEST`] bytes and [`MAX_FILTER_VALUES`] filter values
//! within [`REQUEST_TIMEOUT`], a client that stops reading is dropped after [`WRITE_TIMEOUT`], and
//! the publisher only ever queues (a full queue makes the client miss records).

use super::filter::Filter;
use super::Observable;
use crate::flow_log::record::FlowRecord;
use crate::metrics::Metrics;
use crate::record::Record;
use crate::safe_fs::{self, at, refused};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::Permissions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records kept for `--last` (of each kind).
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
    /// Flow records instead of verdicts; omitted (as older clients do) when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flows: bool,
}

struct Subscriber<T> {
    id: u64,
    filter: Filter,
    tx: SyncSender<Arc<T>>,
}

struct Inner<T> {
    ring: VecDeque<Arc<T>>,
    subscribers: Vec<Subscriber<T>>,
    next_id: u64,
    missed: u64,
}

/// One kind of record's ring buffer and followers.
pub struct Channel<T> {
    inner: Mutex<Inner<T>>,
}

impl<T> Default for Channel<T> {
    fn default() -> Self {
        Channel {
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                subscribers: Vec::new(),
                next_id: 0,
                missed: 0,
            }),
        }
    }
}

/// A kind of record the hub carries: verdicts ([`Record`]) or flows ([`FlowRecord`]).
pub trait Carried: Observable {
    /// Its channel in `hub`.
    fn channel(hub: &Hub) -> &Channel<Self>;
}

impl Carried for Record {
    fn channel(hub: &Hub) -> &Channel<Self> {
        &hub.records
    }
}

impl Carried for FlowRecord {
    fn channel(hub: &Hub) -> &Channel<Self> {
        &hub.flows
    }
}

/// A following client's stream of new records; it unsubscribes when dropped (even if no record
/// is ever published again).
pub struct Subscription<'a, T> {
    channel: &'a Channel<T>,
    id: u64,
    rx: Receiver<Arc<T>>,
}

impl<T> Subscription<'_, T> {
    /// The next record, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Arc<T>, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }
}

impl<T> Drop for Subscription<'_, T> {
    fn drop(&mut self) {
        self.channel.lock().subscribers.retain(|s| s.id != self.id);
    }
}

impl<T> Channel<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Observable> Channel<T> {
    fn publish(&self, record: T) {
        let record = Arc::new(record);
        let mut inner = self.lock();
        if inner.ring.len() == RING {
            inner.ring.pop_front();
        }
        inner.ring.push_back(record.clone());
        let mut missed = 0;
        for s in &inner.subscribers {
            if s.filter.matches(&*record)
                && matches!(s.tx.try_send(record.clone()), Err(TrySendError::Full(_)))
            {
                missed += 1;
            }
        }
        inner.missed += missed;
    }

    fn subscribe(&self, request: &Request) -> (Vec<Arc<T>>, Option<Subscription<'_, T>>) {
        let mut inner = self.lock();
        let matching: Vec<Arc<T>> = inner
            .ring
            .iter()
            .filter(|r| request.filter.matches(&***r))
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
            Subscription {
                channel: self,
                id,
                rx,
            }
        });
        (past, subscription)
    }
}

/// The ring buffers and the following clients, of verdicts and of flows.
#[derive(Default)]
pub struct Hub {
    records: Channel<Record>,
    flows: Channel<FlowRecord>,
    /// A flow logger publishes here: clients may ask for flows.
    flows_offered: AtomicBool,
}

impl Hub {
    /// Adds a record: into its ring, and to every client of its kind whose filter matches (a
    /// client whose queue is full misses it). A gone client is not here: its [`Subscription`],
    /// the only holder of its queue's receiving end, removes it under the lock when dropped.
    pub fn publish<T: Carried>(&self, record: T) {
        T::channel(self).publish(record);
    }

    /// Records clients missed because they read too slowly.
    pub fn missed(&self) -> u64 {
        self.records.lock().missed + self.flows.lock().missed
    }

    /// The buffered records `request` asks for, and (when following) the stream of new ones.
    pub fn subscribe<T: Carried>(
        &self,
        request: &Request,
    ) -> (Vec<Arc<T>>, Option<Subscription<'_, T>>) {
        T::channel(self).subscribe(request)
    }

    /// Lets clients ask for flow records (without it, they are told the agent writes no flow
    /// log rather than waiting for records that never come).
    pub fn offer_flows(&self) {
        self.flows_offered.store(true, Ordering::Relaxed);
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
    if !request.flows {
        return send::<Record>(stream, hub, &request);
    }
    if !hub.flows_offered.load(Ordering::Relaxed) {
        let refusal = Refusal {
            reason: "no_flow_log",
            message: "this agent writes no flow log: there are no flow records to observe \
                      (start it with --flow-log PATH, or `lab up --flow-log PATH`)"
                .into(),
        };
        refuse(stream, &refusal, metrics);
        return Ok(());
    }
    send::<FlowRecord>(stream, hub, &request)
}

/// Sends the `T`s `request` asks for: the buffered ones, then (following) each new one.
fn send<T: Carried>(stream: &UnixStream, hub: &Hub, request: &Request) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let (past, subscription) = hub.subscribe::<T>(request);
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

/// Connects to the agent at `path` and sends `request`; yields the records it sends back (flow
/// records when `request.flows`).
pub fn connect<T: DeserializeOwned>(
    path: &Path,
    request: &Request,
) -> io::Result<impl Iterator<Item = io::Result<T>>> {
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
