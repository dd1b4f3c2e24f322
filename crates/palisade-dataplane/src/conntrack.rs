//! The kernel's connection tracking, spoken to over the same netfilter netlink socket as nf_tables
//! and NFLOG (`linux/netfilter/nfnetlink_conntrack.h`). The table accepts `established,related`
//! first, so a policy change judges only new connections; forgetting a tracked one makes its next
//! packet new again. [`forget_connections`] forgets them all (tests, probes); [`Conntrack`] lists
//! them, with their counters, and forgets one at a time (the agent's strict mode, which asks the
//! policy which to forget, and its flow log); [`Endings`] hears of the connections the kernel
//! forgets, with their last counters (the flow log's connections that end between listings).

use crate::netlink::{attr, attribute, attributes, be32, nest, Socket, NFGEN_HDRLEN};
use crate::netns::within_netns;
use palisade_model::Protocol;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_PROTOINFO: u16 = 4;
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_TIMESTAMP: u16 = 20;
const CTA_TIMESTAMP_START: u16 = 1;

const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;

const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;

const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const TCP_CONNTRACK_TIME_WAIT: u8 = 7;
const TCP_CONNTRACK_CLOSE: u8 = 8;

const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;

/// nfnetlink's multicast group of conntrack entries being destroyed (`NFNLGRP_CONNTRACK_DESTROY`).
const NFNLGRP_CONNTRACK_DESTROY: libc::c_int = 3;

/// The switch that makes the kernel count packets and bytes per connection (per network
/// namespace; entries created before it was on have no counters).
const ACCOUNTING: &str = "/proc/sys/net/netfilter/nf_conntrack_acct";

/// The switch that makes the kernel stamp each connection with the time it was first tracked.
const TIMESTAMPS: &str = "/proc/sys/net/netfilter/nf_conntrack_timestamp";

/// How long the kernel may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A ctnetlink message type.
fn kind(message: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | message
}

/// Forgets every connection the kernel tracks in network namespace `netns` (a conntrack flush):
/// the next packet of any flow is judged as a new connection. Probing right after a policy change
/// then measures what the policy does to new connections, not flows that earlier probes left
/// established (a UDP probe's flow stays tracked for 30 s, and a later probe can reuse its port).
pub fn forget_connections(netns: &str) -> io::Result<()> {
    within_netns(Some(netns), || {
        let mut socket = Socket::open()?;
        socket.set_receive_timeout(TIMEOUT)?;
        // No tuple: every entry; family AF_UNSPEC: IPv4 and IPv6.
        socket.request(
            kind(IPCTNL_MSG_CT_DELETE),
            libc::AF_UNSPEC as u8,
            0,
            &[],
            |_| {},
        )
    })
}

/// One direction of a tracked connection, as the kernel keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// A tracked TCP, UDP or SCTP connection (the only ones with ports a policy can tell apart; ICMP
/// and the rest are never listed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tracked {
    /// The protocol.
    pub protocol: Protocol,
    /// As its first packet went: what it is deleted by.
    pub original: Tuple,
    /// As the answers come back: after DNAT (a Service), its source is the backend.
    pub reply: Tuple,
    /// Its conntrack zone, when not the default one.
    pub zone: Option<u16>,
    /// The kernel's id of the entry: a deletion names it, so that a new connection on the same
    /// tuple since the listing is left alone.
    pub id: Option<u32>,
}

impl Tracked {
    /// The flow the forward hook judged when the connection was new — after DNAT, before SNAT:
    /// the original source and the reply's source (the backend of a Service) and its port.
    pub fn judged(&self) -> Tuple {
        Tuple {
            src: self.original.src,
            dst: self.reply.src,
            src_port: self.original.src_port,
            dst_port: self.reply.src_port,
        }
    }
}

/// Packets and bytes a connection has carried, each way, since it was first tracked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets the way its first packet went (from the source).
    pub packets_sent: u64,
    /// Bytes the way its first packet went.
    pub bytes_sent: u64,
    /// Packets the way the answers come back.
    pub packets_received: u64,
    /// Bytes the way the answers come back.
    pub bytes_received: u64,
}

impl Counters {
    /// What was carried since `earlier` (counters never go back; a smaller value reads as 0).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            packets_sent: self.packets_sent.saturating_sub(earlier.packets_sent),
            bytes_sent: self.bytes_sent.saturating_sub(earlier.bytes_sent),
            packets_received: self
                .packets_received
                .saturating_sub(earlier.packets_received),
            bytes_received: self.bytes_received.saturating_sub(earlier.bytes_received),
        }
    }

    /// Adds `other` (for connections summed into one record).
    pub fn add(&mut self, other: &Counters) {
        self.packets_sent = self.packets_sent.saturating_add(other.packets_sent);
        self.bytes_sent = self.bytes_sent.saturating_add(other.bytes_sent);
        self.packets_received = self.packets_received.saturating_add(other.packets_received);
        self.bytes_received = self.bytes_received.saturating_add(other.bytes_received);
    }

    /// Nothing carried.
    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

/// A tracked connection as a listing or an ending reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The connection.
    pub tracked: Tracked,
    /// Its counters; `None` when accounting was off as it was first tracked.
    pub counters: Option<Counters>,
    /// A TCP connection that is over (closed or reset: `TIME_WAIT`, `CLOSE`), though still
    /// tracked a while.
    pub closed: bool,
    /// When the kernel began tracking it; `None` when timestamps were off then.
    pub start: Option<SystemTime>,
}

/// What one listing read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The TCP, UDP and SCTP connections read.
    pub entries: Vec<Entry>,
    /// The listing stopped at the cap: more entries may be tracked than were read.
    pub capped: bool,
}

/// A ctnetlink socket kept in one network namespace: lists tracked connections and forgets them
/// one by one. Opened once (entering a namespace costs a thread); after an error or a capped
/// listing (the kernel may still be sending), open a new one.
pub struct Conntrack(Socket);

impl Conntrack {
    /// A socket in network namespace `netns` (or the current one). Needs `CAP_NET_ADMIN` there.
    pub fn open(netns: Option<&str>) -> io::Result<Conntrack> {
        within_netns(netns, || {
            let socket = Socket::open()?;
            socket.set_receive_timeout(TIMEOUT)?;
            Ok(Conntrack(socket))
        })
    }

    /// The tracked connections (IPv4 and IPv6), at most `cap` entries of any protocol read: the
    /// listing stops there, and the socket should not be used again.
    pub fn list(&mut self, cap: usize) -> io::Result<Listing> {
        let mut listing = Listing::default();
        let mut read = 0;
        let complete = self
            .0
            .dump(kind(IPCTNL_MSG_CT_GET), libc::AF_UNSPEC as u8, |frame| {
                if frame.kind != kind(IPCTNL_MSG_CT_NEW) {
                    return true;
                }
                if read == cap {
                    return false;
                }
                read += 1;
                listing.entries.extend(parse(frame.payload));
                true
            })?;
        listing.capped = !complete;
        Ok(listing)
    }

    /// Forgets `tracked`: its next packet is judged as a new connection. Ok when it is gone
    /// already.
    pub fn forget(&mut self, tracked: &Tracked) -> io::Result<()> {
        let (family, body) = delete_request(tracked);
        match self
            .0
            .request(kind(IPCTNL_MSG_CT_DELETE), family, 0, &body, |_| {})
        {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other,
        }
    }
}

/// Switches accounting and timestamps on in network namespace `netns` (or the current one), so
/// that connections tracked from now on count their packets and bytes and say when they began.
/// Needs root there.
pub fn enable_accounting(netns: Option<&str>) -> io::Result<()> {
    set_switch(netns, ACCOUNTING, "1")?;
    set_switch(netns, TIMESTAMPS, "1")
}

/// Writes `value` to the per-namespace sysctl `path` unless it holds it already.
fn set_switch(netns: Option<&str>, path: &'static str, value: &'static str) -> io::Result<()> {
    within_netns(netns, move || {
        if std::fs::read_to_string(path)?.trim() == value {
            return Ok(());
        }
        std::fs::write(path, value)
    })
    .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// The connections the kernel stops tracking in one network namespace, with their last counters:
/// those that end between two listings are known only from here.
pub struct Endings {
    socket: Socket,
    pending: std::collections::VecDeque<Entry>,
    overruns: u64,
}

impl Endings {
    /// Listens in network namespace `netns` (or the current one). Needs `CAP_NET_ADMIN` there.
    pub fn open(netns: Option<&str>) -> io::Result<Endings> {
        within_netns(netns, || {
            let socket = Socket::open()?;
            socket.bind()?;
            // Bursts of endings (a flood of short connections timing out together) must not be
            // lost: 4 MiB, beyond `rmem_max` when allowed.
            let _ = socket.set_receive_buffer(4 << 20);
            socket.join_group(NFNLGRP_CONNTRACK_DESTROY)?;
            Ok(Endings {
                socket,
                pending: Default::default(),
                overruns: 0,
            })
        })
    }

    /// The next connection no longer tracked; `None` when `timeout` passes first. When the kernel
    /// had to drop endings because they were not read fast enough, reading goes on and
    /// [`Endings::overruns`] counts it.
    pub fn next(&mut self, timeout: Duration) -> io::Result<Option<Entry>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            if !self.socket.readable(Some(timeout))? {
                return Ok(None);
            }
            match self.socket.recv() {
                Ok(data) => {
                    let destroyed = kind(IPCTNL_MSG_CT_DELETE);
                    let frames = crate::netlink::frames(data).filter(|f| f.kind == destroyed);
                    self.pending.extend(frames.filter_map(|f| parse(f.payload)));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => self.overruns += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// How many times the kernel dropped endings because they were not read fast enough.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }
}

/// An address attribute's payload.
fn address(value: &[u8]) -> Option<IpAddr> {
    match value.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(value).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(value).ok()?,
        ))),
        _ => None,
    }
}

/// A big-endian `u16` attribute.
fn be16(value: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(value.get(..2)?.try_into().ok()?))
}

/// A big-endian `u64` attribute.
fn be64(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?))
}

/// A `CTA_COUNTERS_*` nest: (packets, bytes).
fn counted(nested: &[u8]) -> Option<(u64, u64)> {
    let packets = attribute(nested, CTA_COUNTERS_PACKETS).and_then(be64)?;
    let bytes = attribute(nested, CTA_COUNTERS_BYTES).and_then(be64)?;
    Some((packets, bytes))
}

/// A `CTA_TUPLE_*` nest: its tuple and IP protocol number; `None` when a part is missing.
fn tuple(nested: &[u8]) -> Option<(Tuple, u8)> {
    let ip = attribute(nested, CTA_TUPLE_IP)?;
    let (mut src, mut dst) = (None, None);
    for (kind, value) in attributes(ip) {
        match kind {
            CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = address(value),
            CTA_IP_V4_DST | CTA_IP_V6_DST => dst = address(value),
            _ => {}
        }
    }
    let proto = attribute(nested, CTA_TUPLE_PROTO)?;
    let number = *attribute(proto, CTA_PROTO_NUM)?.first()?;
    let port = |kind| attribute(proto, kind).and_then(be16);
    let tuple = Tuple {
        src: src?,
        dst: dst?,
        src_port: port(CTA_PROTO_SRC_PORT).unwrap_or(0),
        dst_port: port(CTA_PROTO_DST_PORT).unwrap_or(0),
    };
    Some((tuple, number))
}

/// The connection a `IPCTNL_MSG_CT_NEW` or `_DELETE` message (what follows its netlink header)
/// describes; `None` when it is not a ported protocol or a part is missing or malformed.
pub(crate) fn parse(payload: &[u8]) -> Option<Entry> {
    let attrs = payload.get(NFGEN_HDRLEN..)?;
    let (original, number) = tuple(attribute(attrs, CTA_TUPLE_ORIG)?)?;
    let (reply, _) = tuple(attribute(attrs, CTA_TUPLE_REPLY)?)?;
    let protocol = Protocol::PORTED
        .into_iter()
        .find(|p| p.ip_number() == number)?;
    let same_family = |t: &Tuple| t.src.is_ipv4() == t.dst.is_ipv4();
    if !same_family(&original) || !same_family(&reply) {
        return None;
    }
    let tracked = Tracked {
        protocol,
        original,
        reply,
        zone: attribute(attrs, CTA_ZONE)
            .and_then(be16)
            .filter(|&z| z != 0),
        id: attribute(attrs, CTA_ID).and_then(be32),
    };
    let sent = attribute(attrs, CTA_COUNTERS_ORIG).and_then(counted);
    let received = attribute(attrs, CTA_COUNTERS_REPLY).and_then(counted);
    let counters = sent.zip(received).map(|(sent, received)| Counters {
        packets_sent: sent.0,
        bytes_sent: sent.1,
        packets_received: received.0,
        bytes_received: received.1,
    });
    let tcp_state = attribute(attrs, CTA_PROTOINFO)
        .and_then(|info| attribute(info, CTA_PROTOINFO_TCP))
        .and_then(|tcp| attribute(tcp, CTA_PROTOINFO_TCP_STATE))
        .and_then(|state| state.first().copied());
    let start = attribute(attrs, CTA_TIMESTAMP)
        .and_then(|stamps| attribute(stamps, CTA_TIMESTAMP_START))
        .and_then(be64)
        .filter(|&ns| ns > 0)
        .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns));
    Some(Entry {
        tracked,
        counters,
        closed: matches!(
            tcp_state,
            Some(TCP_CONNTRACK_TIME_WAIT | TCP_CONNTRACK_CLOSE)
        ),
        start,
    })
}

/// The family and attributes of the request deleting `tracked`.
pub(crate) fn delete_request(tracked: &Tracked) -> (u8, Vec<u8>) {
    let t = &tracked.original;
    let family = match t.src.is_ipv4() && t.dst.is_ipv4() {
        true => libc::AF_INET,
        false => libc::AF_INET6,
    };
    let mut body = Vec::new();
    put_tuple(&mut body, CTA_TUPLE_ORIG, t, tracked.protocol.ip_number());
    if let Some(zone) = tracked.zone {
        attr(&mut body, CTA_ZONE, &zone.to_be_bytes());
    }
    if let Some(id) = tracked.id {
        attr(&mut body, CTA_ID, &id.to_be_bytes());
    }
    (family as u8, body)
}

/// Appends tuple `t` of IP protocol `number` as nest `which` (`CTA_TUPLE_ORIG`, `_REPLY`).
fn put_tuple(out: &mut Vec<u8>, which: u16, t: &Tuple, number: u8) {
    let (src, dst) = match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (
            (CTA_IP_V4_SRC, s.octets().to_vec()),
            (CTA_IP_V4_DST, d.octets().to_vec()),
        ),
        (s, d) => ((CTA_IP_V6_SRC, v6(s)), (CTA_IP_V6_DST, v6(d))),
    };
    nest(out, which, |out| {
        nest(out, CTA_TUPLE_IP, |out| {
            attr(out, src.0, &src.1);
            attr(out, dst.0, &dst.1);
        });
        nest(out, CTA_TUPLE_PROTO, |out| {
            attr(out, CTA_PROTO_NUM, &[number]);
            attr(out, CTA_PROTO_SRC_PORT, &t.src_port.to_be_bytes());
            attr(out, CTA_PROTO_DST_PORT, &t.dst_port.to_be_bytes());
        });
    });
}

/// An address as 16 bytes (IPv4 mapped; [`Tracked`] never mixes families).
fn v6(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel sends for a connection (after the netlink header).
    fn new_message(c: &Tracked, number: u8) -> Vec<u8> {
        let mut out = vec![libc::AF_INET as u8, 0, 0, 0];
        put_tuple(&mut out, CTA_TUPLE_ORIG, &c.original, number);
        put_tuple(&mut out, CTA_TUPLE_REPLY, &c.reply, number);
        attr(&mut out, 3, &8u32.to_be_bytes()); // CTA_STATUS, skipped
        if let Some(zone) = c.zone {
            attr(&mut out, CTA_ZONE, &zone.to_be_bytes());
        }
        if let Some(id) = c.id {
            attr(&mut out, CTA_ID, &id.to_be_bytes());
        }
        out
    }

    fn tuple(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
        Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: sport,
            dst_port: dport,
        }
    }

    /// A connection to a Service address, translated to a backend.
    fn through_a_service() -> Tracked {
        Tracked {
            protocol: Protocol::Tcp,
            original: tuple("10.0.0.1", 40000, "10.96.0.10", 80),
            reply: tuple("10.0.0.2", 8080, "10.0.0.1", 40000),
            zone: None,
            id: Some(0xdead_beef),
        }
    }

    /// What parsing read of a message's connection.
    fn read(message: &[u8]) -> Option<Tracked> {
        parse(message).map(|e| e.tracked)
    }

    #[test]
    fn entries_are_read_with_the_flow_the_policy_judged() {
        let c = through_a_service();
        let entry = parse(&new_message(&c, 6)).unwrap();
        assert_eq!(entry.tracked, c);
        assert_eq!((entry.counters, entry.closed), (None, false));
        assert_eq!(c.judged(), tuple("10.0.0.1", 40000, "10.0.0.2", 8080));
        let v6 = Tracked {
            protocol: Protocol::Udp,
            original: tuple("fd00::1", 5353, "fd00::2", 53),
            reply: tuple("fd00::2", 53, "fd00::1", 5353),
            zone: Some(7),
            id: None,
        };
        assert_eq!(read(&new_message(&v6, 17)), Some(v6));
    }

    /// Counters are read each way when both are there; a TCP state of `TIME_WAIT` or `CLOSE` is
    /// a closed connection, any other is not.
    #[test]
    fn counters_and_the_end_of_a_tcp_connection_are_read() {
        let c = through_a_service();
        let with = |state: u8, counters: &[(u16, u64, u64)]| {
            let mut message = new_message(&c, 6);
            nest(&mut message, CTA_PROTOINFO, |out| {
                nest(out, CTA_PROTOINFO_TCP, |out| {
                    attr(out, CTA_PROTOINFO_TCP_STATE, &[state])
                })
            });
            for &(which, packets, bytes) in counters {
                nest(&mut message, which, |out| {
                    attr(out, CTA_COUNTERS_PACKETS, &packets.to_be_bytes());
                    attr(out, CTA_COUNTERS_BYTES, &bytes.to_be_bytes());
                });
            }
            parse(&message).unwrap()
        };
        let both = [(CTA_COUNTERS_ORIG, 3, 180), (CTA_COUNTERS_REPLY, 2, 5000)];
        let established = with(3, &both);
        assert!(!established.closed);
        assert_eq!(established.start, None, "no timestamp");
        let mut stamped = new_message(&c, 6);
        nest(&mut stamped, CTA_TIMESTAMP, |out| {
            attr(
                out,
                CTA_TIMESTAMP_START,
                &1_795_341_600_000_000_007u64.to_be_bytes(),
            )
        });
        assert_eq!(
            parse(&stamped).unwrap().start,
            Some(UNIX_EPOCH + Duration::from_nanos(1_795_341_600_000_000_007))
        );
        let counters = established.counters.unwrap();
        assert_eq!(
            counters,
            Counters {
                packets_sent: 3,
                bytes_sent: 180,
                packets_received: 2,
                bytes_received: 5000
            }
        );
        assert!(with(TCP_CONNTRACK_TIME_WAIT, &both).closed);
        assert!(with(TCP_CONNTRACK_CLOSE, &both).closed);
        assert!(!with(5, &both).closed); // CLOSE_WAIT: one side still sends
        assert_eq!(with(3, &both[..1]).counters, None, "one way only");
        // Differences never go below zero; sums never overflow.
        let later = Counters {
            bytes_sent: 100,
            ..counters
        };
        assert_eq!(later.since(&counters).bytes_sent, 0);
        assert_eq!(counters.since(&later).bytes_sent, 80);
        let mut sum = Counters {
            bytes_received: u64::MAX,
            ..Counters::default()
        };
        sum.add(&counters);
        assert_eq!(sum.bytes_received, u64::MAX);
    }

    #[test]
    fn icmp_and_other_protocols_are_not_listed() {
        for number in [1, 58, 47] {
            assert_eq!(read(&new_message(&through_a_service(), number)), None);
        }
    }

    /// The deletion names the original tuple, the zone and the id, as the kernel reads them.
    #[test]
    fn a_deletion_names_the_entry() {
        let mut c = through_a_service();
        c.zone = Some(3);
        let (family, body) = delete_request(&c);
        assert_eq!(family, libc::AF_INET as u8);
        let orig = attribute(&body, CTA_TUPLE_ORIG).expect("original tuple");
        assert_eq!(super::tuple(orig), Some((c.original, 6)));
        assert_eq!(attribute(&body, CTA_TUPLE_REPLY), None);
        assert_eq!(attribute(&body, CTA_ZONE).and_then(be16), Some(3));
        assert_eq!(attribute(&body, CTA_ID).and_then(be32), Some(0xdead_beef));
        let v6 = Tracked {
            original: tuple("fd00::1", 1, "fd00::2", 2),
            ..c
        };
        let (family, body) = delete_request(&v6);
        assert_eq!(family, libc::AF_INET6 as u8);
        let orig = attribute(&body, CTA_TUPLE_ORIG).unwrap();
        assert_eq!(super::tuple(orig), Some((v6.original, 6)));
    }

    /// Truncated at every length, or with any byte changed, a message is read or refused, never
    /// a panic; a truncated one is never read as a connection with other addresses.
    #[test]
    fn hostile_messages_never_panic() {
        let c = through_a_service();
        let message = new_message(&c, 6);
        for len in 0..message.len() {
            if let Some(got) = read(&message[..len]) {
                assert_eq!(
                    (got.original, got.reply),
                    (c.original, c.reply),
                    "cut at {len}"
                );
            }
        }
        for i in 0..message.len() {
            for byte in [0x00, 0x03, 0x7f, 0xff] {
                let mut changed = message.clone();
                changed[i] = byte;
                let _ = parse(&changed);
            }
        }
        // Attribute lengths pointing past the end, zero-length addresses, empty nests.
        let mut odd = vec![0u8; 4];
        attr(&mut odd, CTA_TUPLE_ORIG, &[]);
        nest(&mut odd, CTA_TUPLE_REPLY, |out| {
            attr(out, CTA_TUPLE_IP, &[0xff; 3])
        });
        assert_eq!(read(&odd), None);
        assert_eq!(read(&[0xff; 64]), None);
    }
}
