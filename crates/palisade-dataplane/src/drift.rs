//! Drift: changes to the `inet palisade` table that this process did not make (`nft delete table
//! inet palisade`, a flush, a rule or element added by another tool), noticed as the kernel
//! commits them, so that the agent can put its table back at once.
//!
//! [`DriftMonitor`] listens to the nf_tables notifications of one network namespace (multicast
//! group `NFNLGRP_NFTABLES`). A transaction produces one message per object it creates or deletes,
//! then `NFT_MSG_NEWGEN` with the new generation id: a transaction that touched the table and was
//! not committed by this process is reported as a [`Drift`] when its `NEWGEN` arrives.
//!
//! **Which transactions are ours.** Every notification carries, in its netlink header, the port
//! id of the socket that committed the transaction. Each commit of this crate registers its
//! socket's port before sending, and the generation the transaction made once it is known (the
//! first message of the batch asks for an echo, so the kernel sends the `NEWGEN` to the committing
//! socket too): a `NEWGEN` is ours when it carries a port registered in the same network namespace,
//! while that commit runs or with the generation it made. Port ids are unique among the live
//! sockets of a namespace, so another socket can only get the port after ours closed, and then the
//! generation differs. The pid in `NEWGEN` (`NFTA_GEN_PROC_PID`) cannot serve: it is the committing
//! *thread* in the initial pid namespace — in a container it names nothing the agent can see — and
//! the commit thread has often exited by the time the notification is read.
//!
//! **Lost notifications.** When a listener's receive buffer is full, the kernel drops the
//! notification and the next `recv` fails with `ENOBUFS`. The monitor then asks for the current
//! generation: if every generation since the last `NEWGEN` it read is one of ours, nothing that
//! matters was lost (our own large replace overflowing the buffer must not cause a repair, which is
//! another large replace); otherwise it reports a drift with [`Drift::lost`] set.
//!
//! **Measured** (Linux 6.18, nft 1.0.6; `tests/drift.rs` checks each):
//! - Every notification of a transaction comes before its `NEWGEN`, and the generation goes up by
//!   one per transaction that changed something; a no-op (`nft add table inet palisade` when it
//!   exists) makes no transaction and no notification.
//! - `nft delete table` sends one delete per rule (and per anonymous set of a port list), set and
//!   chain it holds, then the table's. `nft flush chain` and `nft flush table` send one delete per
//!   rule and per anonymous set those rules took along.
//! - Elements come one per message (`add element … { 10.9.0.0/16, 10.8.0.1 }` is 4 messages: an
//!   interval set stores a start and an end per range).
//! - `NFTA_GEN_PROC_PID` and `NFTA_GEN_PROC_NAME` name the `nft` process (pid as seen from the
//!   initial pid namespace); the reporting thread has the drift before `nft` has exited.
//! - A listener must be bound before it joins the group: a socket that joined unbound got only the
//!   notifications echoed to their committer.
//! - `NFTA_TABLE_USE` counts chains, named sets and maps, and stateful objects (a counter raised
//!   it by one); anonymous sets are not counted, nor are rules and elements, so deleting rules,
//!   flushing the table or editing elements leaves it as it is. Whole-table replacement (ours or
//!   another tool's) gives the table a new handle; an update keeps it.
//!   [`Ruleset::table_use`](crate::Ruleset::table_use) is the count for a ruleset; [`TableProbe`]
//!   is the cheap periodic check behind the notifications (missing table, new handle, other count,
//!   dormant flag).

use crate::commits::{own, Cover, Generation, NetnsId, NFT_MSG_NEWGEN};
use crate::netlink::{
    self, attribute, attributes, be32, cstr, frames, printable, trim_nul, Frame, Socket,
    NFGEN_HDRLEN,
};
use crate::netns::within_netns;
use crate::nft::batch::{
    NFNL_SUBSYS_NFTABLES, NFPROTO_INET, NFTA_CHAIN_NAME, NFTA_LIST_ELEM, NFTA_RULE_CHAIN,
    NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET, NFTA_SET_NAME, NFTA_TABLE_NAME,
    NFT_MSG_DELCHAIN, NFT_MSG_DELSET, NFT_MSG_DELSETELEM, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN,
    NFT_MSG_NEWRULE, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM, NFT_MSG_NEWTABLE,
};
use crate::nft::TABLE;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_GETGEN: u16 = 16;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_DELOBJ: u16 = 20;
const NFT_MSG_NEWFLOWTABLE: u16 = 22;
const NFT_MSG_DELFLOWTABLE: u16 = 24;
/// The multicast group of nf_tables notifications.
const NFNLGRP_NFTABLES: libc::c_int = 7;

const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_USE: u16 = 3;
const NFTA_TABLE_HANDLE: u16 = 4;
const NFT_TABLE_F_DORMANT: u32 = 1;
/// The object's name in the messages about stateful objects and flowtables (`NFTA_OBJ_NAME`,
/// `NFTA_FLOWTABLE_NAME`), and about kinds not named here.
const NAME_ATTR: u16 = 2;

/// Receive buffer asked for: a transaction's notifications (~100 bytes per element) arrive in one
/// burst. Those of a whole replacement for a 10,000-pod synthetic cluster (a 4.8 MB script) fit
/// in it unread (measured).
const RECEIVE_BUFFER: usize = 64 << 20;
/// Kinds of change a drift lists; the rest are counted.
const MAX_KINDS: usize = 8;
/// How often an unresolved loss is looked at again.
const RECHECK: Duration = Duration::from_millis(20);
/// How long a loss waits for commits of ours that are still running before it is reported.
const PENDING_LIMIT: Duration = Duration::from_secs(10);

/// A change to the table that this process did not make, or notifications the kernel dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The generation the change made; with [`Drift::lost`], the generation when the loss was
    /// noticed.
    pub generation: u32,
    /// The thread that committed the change as the kernel names it: its id in the initial pid
    /// namespace (`None` when notifications were lost).
    pub by_pid: Option<u32>,
    /// The command name of that thread (`nft`, …).
    pub by_name: Option<String>,
    /// What changed, one line per kind of change (`"table deleted"`, `"2 rules deleted from chain
    /// c"`), at most 8 and a line counting the rest; empty when notifications were lost.
    pub what: Vec<String>,
    /// The kernel dropped notifications before they were read and a transaction that is not ours
    /// may be among them: what changed is unknown, the table must be assumed altered.
    pub lost: bool,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lost {
            return write!(
                f,
                "nf_tables notifications were lost up to generation {} (receive buffer full): \
                 table inet {TABLE} may have been changed by another process",
                self.generation
            );
        }
        let name = self.by_name.as_deref().unwrap_or("?");
        let pid = self.by_pid.map_or("?".to_string(), |p| p.to_string());
        write!(
            f,
            "table inet {TABLE} changed by another process ({name}, pid {pid}), generation {}: {}",
            self.generation,
            self.what.join("; ")
        )
    }
}

/// The table as the kernel describes it (`NFT_MSG_GETTABLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Given when the table is created, never reused: a table deleted and created again (by
    /// anyone) has a new one.
    pub handle: u64,
    /// `NFTA_TABLE_USE`: chains, named sets and maps, stateful objects and flowtables in the
    /// table (not anonymous sets, rules or elements).
    pub use_count: u32,
    /// `NFTA_TABLE_FLAGS` (`1`: dormant — its chains filter nothing).
    pub flags: u32,
}

impl TableInfo {
    /// True when the table is dormant: present, but its chains see no packets.
    pub fn dormant(&self) -> bool {
        self.flags & NFT_TABLE_F_DORMANT != 0
    }
}

/// A socket that asks the kernel about the `inet palisade` table of one network namespace: opened
/// in it once, then asked from any thread (a thread entering the namespace for each question would
/// cost milliseconds after each apply).
pub struct TableProbe(Query);

impl TableProbe {
    /// A probe of network namespace `netns` (or the current one).
    pub fn open(netns: Option<&str>) -> io::Result<TableProbe> {
        within_netns(netns, Query::open).map(TableProbe)
    }

    /// The table as the kernel describes it now; `None` if there is none.
    pub fn table(&mut self) -> io::Result<Option<TableInfo>> {
        self.0.table()
    }
}

/// The ruleset generation of network namespace `netns` (or the current one): it goes up by one
/// with every transaction that changes any table.
pub fn generation(netns: Option<&str>) -> io::Result<u32> {
    within_netns(netns, || Query::open()?.generation())
}

/// Watches one network namespace for changes to the `inet palisade` table made by other
/// processes. Read it often ([`DriftMonitor::next`]), or on a thread of its own
/// ([`DriftMonitor::spawn`]): the kernel drops what does not fit in the receive buffer.
pub struct DriftMonitor {
    socket: Socket,
    /// Asks the kernel for the generation after a loss.
    query: Query,
    reading: Reading,
    /// Generations whose notifications may have been lost, not yet known to be ours.
    lost: Option<Lost>,
    overflows: u64,
}

impl DriftMonitor {
    /// Listens in network namespace `netns` (or the current one). Needs `CAP_NET_ADMIN` there.
    pub fn open(netns: Option<&str>) -> io::Result<DriftMonitor> {
        let (socket, mut query, netns_id) = within_netns(netns, || {
            let socket = Socket::open()?;
            // Bound before joining: a member that is not bound got only the notifications
            // echoed to their committer (measured), the kernel saw no listener for the rest.
            socket.bind()?;
            socket.join_group(NFNLGRP_NFTABLES).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen to nf_tables notifications ({e}): it needs root (CAP_NET_ADMIN)"),
                )
            })?;
            Ok((socket, Query::open()?, NetnsId::current()?))
        })?;
        // Read after joining: every transaction after this generation is seen.
        let last_generation = query.generation()?;
        let monitor = DriftMonitor {
            socket,
            query,
            reading: Reading {
                netns: netns_id,
                changes: Changes::new(0),
                last_generation,
                own_seen: 0,
                ready: VecDeque::new(),
            },
            lost: None,
            overflows: 0,
        };
        monitor.set_receive_buffer(RECEIVE_BUFFER)?;
        Ok(monitor)
    }

    /// Sets the size of the receive buffer (64 MiB by default; beyond `net.core.rmem_max` only as
    /// root).
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        self.socket.set_receive_buffer(bytes)
    }

    /// The next drift; `None` when `timeout` passes first (`None` timeout: wait forever).
    pub fn next(&mut self, timeout: Option<Duration>) -> io::Result<Option<Drift>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(drift) = self.reading.ready.pop_front() {
                return Ok(Some(drift));
            }
            if let Some(drift) = self.settle_loss() {
                return Ok(Some(drift));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let wait = match (&self.lost, left) {
                (Some(_), left) => Some(left.map_or(RECHECK, |l| l.min(RECHECK))),
                (None, left) => left,
            };
            if !self.socket.readable(wait)? {
                if left.is_some_and(|l| l <= wait.unwrap_or(l)) {
                    return Ok(None);
                }
                continue;
            }
            match self.socket.recv() {
                Ok(data) => self.reading.absorb(data),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => self.overflowed()?,
                Err(e) => return Err(e),
            }
        }
    }

    /// How many transactions of this process the monitor has read (and not reported).
    pub fn own_commits_seen(&self) -> u64 {
        self.reading.own_seen
    }

    /// How many times the kernel dropped notifications because the receive buffer was full
    /// (whether or not that was reported as a drift).
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Reads on a thread of its own, handing every drift to `report` (and the error that ends
    /// the thread, if one does) until `report` returns false or the returned handle is dropped.
    pub fn spawn(
        mut self,
        mut report: impl FnMut(io::Result<Drift>) -> bool + Send + 'static,
    ) -> io::Result<MonitorThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = std::thread::Builder::new()
            .name("drift-monitor".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    match self.next(Some(Duration::from_millis(100))) {
                        Ok(None) => {}
                        Ok(Some(drift)) => {
                            if !report(Ok(drift)) {
                                return;
                            }
                        }
                        Err(e) => {
                            report(Err(e));
                            return;
                        }
                    }
                }
            })?;
        Ok(MonitorThread {
            stop,
            handle: Some(handle),
        })
    }

    /// The kernel dropped notifications: every generation since the last one read is suspect.
    fn overflowed(&mut self) -> io::Result<()> {
        self.overflows += 1;
        let upto = self.query.generation()?;
        let after = self
            .lost
            .as_ref()
            .map_or(self.reading.last_generation, |l| l.after);
        self.lost = Some(Lost {
            after,
            upto,
            since: Instant::now(),
        });
        Ok(())
    }

    /// A drift for lost notifications, once it is known that they were not all ours.
    fn settle_loss(&mut self) -> Option<Drift> {
        let lost = self.lost.as_ref()?;
        match own::cover(self.reading.netns, lost.after, lost.upto) {
            Cover::Ours => {}
            Cover::Running if lost.since.elapsed() < PENDING_LIMIT => return None,
            Cover::Running | Cover::NotOurs => {
                let generation = lost.upto;
                self.lost = None;
                return Some(Drift {
                    generation,
                    by_pid: None,
                    by_name: None,
                    what: Vec::new(),
                    lost: true,
                });
            }
        }
        self.lost = None;
        None
    }
}

/// A [`DriftMonitor`] reading on its own thread ([`DriftMonitor::spawn`]); dropping it stops the
/// thread (within 100 ms) and waits for it.
pub struct MonitorThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for MonitorThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Generations `after + 1 ..= upto` may have lost notifications.
struct Lost {
    after: u32,
    upto: u32,
    since: Instant,
}

/// The monitor's reading state (apart from its sockets).
struct Reading {
    netns: NetnsId,
    /// What the transaction being read did to the table so far.
    changes: Changes,
    last_generation: u32,
    own_seen: u64,
    /// Drifts read and not yet returned (at most the `NEWGEN`s of one datagram).
    ready: VecDeque<Drift>,
}

impl Reading {
    fn absorb(&mut self, data: &[u8]) {
        for frame in frames(data) {
            if frame.kind >> 8 != NFNL_SUBSYS_NFTABLES {
                continue;
            }
            let kind = frame.kind & 0xff;
            if kind == NFT_MSG_NEWGEN {
                self.transaction_end(&frame);
            } else if let Some(attrs) = about_our_table(frame.payload) {
                if self.changes.port != frame.port {
                    // Another committer: the last one's NEWGEN was lost.
                    self.changes = Changes::new(frame.port);
                }
                self.changes.add(kind, attrs);
            }
        }
    }

    fn transaction_end(&mut self, frame: &Frame) {
        let changes = std::mem::replace(&mut self.changes, Changes::new(frame.port));
        let Some(generation) = Generation::parse(frame.payload) else {
            return;
        };
        self.last_generation = generation.id;
        if own::is_own(self.netns, frame.port, generation.id) {
            self.own_seen += 1;
        } else if !changes.is_empty() && changes.port == frame.port {
            self.ready.push_back(Drift {
                generation: generation.id,
                by_pid: generation.pid,
                by_name: generation.name,
                what: changes.lines(),
                lost: false,
            });
        }
    }
}

/// The attributes of a notification about an object of the `inet palisade` table (attribute 1
/// names the table in every object message: `NFTA_{TABLE_NAME,CHAIN,RULE,SET,SET_ELEM_LIST,OBJ,
/// FLOWTABLE}_TABLE`).
fn about_our_table(payload: &[u8]) -> Option<&[u8]> {
    let (&family, attrs) = (payload.first()?, payload.get(NFGEN_HDRLEN..)?);
    let (_, table) = attributes(attrs).find(|(kind, _)| *kind == NFTA_TABLE_NAME)?;
    (family == NFPROTO_INET && trim_nul(table) == TABLE.as_bytes()).then_some(attrs)
}

/// What one transaction did to the table, in bounded memory: the first kinds of change (message
/// type and object name) with how many objects each, and a count of the rest.
struct Changes {
    /// The port of the socket that committed: every message of a transaction carries it.
    port: u32,
    kinds: Vec<(u16, String, u64)>,
    more: u64,
}

impl Changes {
    fn new(port: u32) -> Changes {
        Changes {
            port,
            kinds: Vec::new(),
            more: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.more == 0
    }

    fn add(&mut self, kind: u16, attrs: &[u8]) {
        let name_attr = match kind {
            NFT_MSG_NEWTABLE => {
                let flags = attribute(attrs, NFTA_TABLE_FLAGS).and_then(be32);
                let dormant = flags.is_some_and(|f| f & NFT_TABLE_F_DORMANT != 0);
                return self.count(kind, if dormant { "dormant" } else { "" }, 1);
            }
            NFT_MSG_DELTABLE => return self.count(kind, "", 1),
            NFT_MSG_NEWCHAIN | NFT_MSG_DELCHAIN => NFTA_CHAIN_NAME,
            NFT_MSG_NEWRULE | NFT_MSG_DELRULE => NFTA_RULE_CHAIN,
            NFT_MSG_NEWSET | NFT_MSG_DELSET => NFTA_SET_NAME,
            NFT_MSG_NEWSETELEM | NFT_MSG_DELSETELEM => NFTA_SET_ELEM_LIST_SET,
            _ => NAME_ATTR,
        };
        let name = printable(attribute(attrs, name_attr).unwrap_or_default());
        let count = match kind {
            NFT_MSG_NEWSETELEM | NFT_MSG_DELSETELEM => {
                let elements = attribute(attrs, NFTA_SET_ELEM_LIST_ELEMENTS).unwrap_or_default();
                let n = attributes(elements)
                    .filter(|(k, _)| *k == NFTA_LIST_ELEM)
                    .count();
                n.max(1) as u64
            }
            _ => 1,
        };
        self.count(kind, &name, count);
    }

    fn count(&mut self, kind: u16, name: &str, count: u64) {
        if let Some((_, _, n)) = (self.kinds.iter_mut()).find(|(k, n, _)| *k == kind && n == name) {
            *n = n.saturating_add(count);
            return;
        }
        // What happened to the table itself comes first, even when the list is full.
        let table = matches!(kind, NFT_MSG_NEWTABLE | NFT_MSG_DELTABLE);
        if self.kinds.len() >= MAX_KINDS {
            let displaced = if table { self.kinds.pop() } else { None };
            let moved = displaced.map_or(count, |(_, _, n)| n);
            self.more = self.more.saturating_add(moved);
            if !table {
                return;
            }
        }
        let at = if table { 0 } else { self.kinds.len() };
        self.kinds.insert(at, (kind, name.to_string(), count));
    }

    fn lines(self) -> Vec<String> {
        let mut lines: Vec<String> = (self.kinds.iter())
            .map(|(kind, name, count)| describe(*kind, name, *count))
            .collect();
        if self.more > 0 {
            lines.push(format!("and {} more changes", self.more));
        }
        lines
    }
}

/// One kind of change as a line: `"3 rules deleted from chain c"`.
fn describe(kind: u16, name: &str, count: u64) -> String {
    let n = |noun: &str| match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    };
    let times = match count {
        1 => String::new(),
        _ => format!(" ({count} times)"),
    };
    match kind {
        NFT_MSG_NEWTABLE if name == "dormant" => {
            "table made dormant (its chains filter nothing)".into()
        }
        NFT_MSG_NEWTABLE => format!("table created or changed{times}"),
        NFT_MSG_DELTABLE => format!("table deleted{times}"),
        NFT_MSG_NEWCHAIN => format!("chain {name} added or changed{times}"),
        NFT_MSG_DELCHAIN => format!("chain {name} deleted{times}"),
        NFT_MSG_NEWRULE => format!("{} added to chain {name}", n("rule")),
        NFT_MSG_DELRULE => format!("{} deleted from chain {name}", n("rule")),
        NFT_MSG_NEWSET => format!("set {name} added{times}"),
        NFT_MSG_DELSET => format!("set {name} deleted{times}"),
        NFT_MSG_NEWSETELEM => format!("{} added to set {name}", n("element")),
        NFT_MSG_DELSETELEM => format!("{} deleted from set {name}", n("element")),
        NFT_MSG_NEWOBJ => format!("object {name} added or changed{times}"),
        NFT_MSG_DELOBJ => format!("object {name} deleted{times}"),
        NFT_MSG_NEWFLOWTABLE => format!("flowtable {name} added{times}"),
        NFT_MSG_DELFLOWTABLE => format!("flowtable {name} deleted{times}"),
        other => format!("{} of message type {other} ({name})", n("change")),
    }
}

/// A socket for questions to nf_tables in the namespace it was opened in.
struct Query {
    socket: Socket,
}

impl Query {
    fn open() -> io::Result<Query> {
        let socket = Socket::open()?;
        socket.set_receive_timeout(Duration::from_secs(5))?;
        Ok(Query { socket })
    }

    /// Sends nf_tables request `kind` and hands each message of the reply to `take`; the kernel's
    /// error if it refuses.
    fn ask(
        &mut self,
        kind: u16,
        family: u8,
        body: &[u8],
        take: impl FnMut(&Frame),
    ) -> io::Result<()> {
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | kind;
        self.socket.request(kind, family, 0, body, take)
    }

    fn generation(&mut self) -> io::Result<u32> {
        let mut generation = None;
        self.ask(NFT_MSG_GETGEN, libc::AF_UNSPEC as u8, &[], |f| {
            generation = generation.or(Generation::parse(f.payload).map(|g| g.id));
        })?;
        generation.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "nf_tables sent no generation")
        })
    }

    fn table(&mut self) -> io::Result<Option<TableInfo>> {
        let mut body = Vec::new();
        netlink::attr(&mut body, NFTA_TABLE_NAME, &cstr(TABLE));
        let mut info = None;
        let asked = self.ask(NFT_MSG_GETTABLE, NFPROTO_INET, &body, |f| {
            let Some(attrs) = f.payload.get(NFGEN_HDRLEN..) else {
                return;
            };
            let handle = attribute(attrs, NFTA_TABLE_HANDLE)
                .and_then(|v| Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?)));
            info = handle.map(|handle| TableInfo {
                handle,
                use_count: attribute(attrs, NFTA_TABLE_USE).and_then(be32).unwrap_or(0),
                flags: attribute(attrs, NFTA_TABLE_FLAGS)
                    .and_then(be32)
                    .unwrap_or(0),
            });
        });
        match asked {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
            Ok(()) => info.map(Some).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "nf_tables described no table")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
        netlink::attr(out, kind, payload)
    }

    /// A notification payload (after the netlink header) of `family` with `attrs`.
    fn payload(family: u8, attrs: &[u8]) -> Vec<u8> {
        let mut p = vec![family, 0, 0, 0];
        p.extend_from_slice(attrs);
        p
    }

    fn named(table: &str, kind: u16, name: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attr(&mut attrs, 1, &cstr(table));
        attr(&mut attrs, kind, &cstr(name));
        attrs
    }

    #[test]
    fn only_messages_about_inet_palisade_count() {
        let ours = payload(NFPROTO_INET, &named("palisade", 2, "c"));
        assert!(about_our_table(&ours).is_some());
        assert!(
            about_our_table(&payload(2, &named("palisade", 2, "c"))).is_none(),
            "ip family"
        );
        assert!(about_our_table(&payload(NFPROTO_INET, &named("palisade2", 2, "c"))).is_none());
        assert!(about_our_table(&payload(NFPROTO_INET, &named("other", 2, "c"))).is_none());
        assert!(about_our_table(&[1, 0]).is_none(), "truncated");
        // Garbage attributes end the walk instead of reading past the message.
        assert!(about_our_table(&payload(NFPROTO_INET, &[0xff, 0xff, 1, 0, b'p'])).is_none());
    }

    #[test]
    fn changes_are_summarized_in_bounded_memory() {
        let mut changes = Changes::new(0);
        let mut elements = Vec::new();
        netlink::nest(&mut elements, NFTA_SET_ELEM_LIST_ELEMENTS, |out| {
            for _ in 0..3 {
                netlink::nest(out, NFTA_LIST_ELEM, |_| {});
            }
        });
        let mut setelem = named("palisade", NFTA_SET_ELEM_LIST_SET, "s");
        setelem.extend_from_slice(&elements);
        for _ in 0..1000 {
            changes.add(NFT_MSG_DELSETELEM, &setelem);
        }
        changes.add(NFT_MSG_DELRULE, &named("palisade", 2, "c"));
        changes.add(NFT_MSG_DELRULE, &named("palisade", 2, "c"));
        for i in 0..100 {
            changes.add(NFT_MSG_NEWCHAIN, &named("palisade", 3, &format!("x{i}\n")));
        }
        assert_eq!(changes.kinds.len(), MAX_KINDS);
        changes.add(NFT_MSG_DELTABLE, &named("palisade", 0, ""));
        assert_eq!(
            changes.lines(),
            [
                "table deleted",
                "3000 elements deleted from set s",
                "2 rules deleted from chain c",
                "chain x0\\n added or changed",
                "chain x1\\n added or changed",
                "chain x2\\n added or changed",
                "chain x3\\n added or changed",
                "chain x4\\n added or changed",
                "and 95 more changes",
            ]
        );
    }
}
