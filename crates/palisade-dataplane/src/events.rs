//! Verdict events: the first packet of every new connection attempt at an isolated pod, allowed or
//! dropped, is copied by the kernel rules to an NFLOG group (`log group N prefix "pal <dir> <verdict>"`);
//! [`EventReader`] reads them from netlink as a typed stream.
//!
//! The NFLOG protocol (`linux/netfilter/nfnetlink_log.h`) is spoken directly, over the crate's raw netfilter socket.

use crate::netlink::{attr, attributes, frames, set_int_option, Socket, NFGEN_HDRLEN};
use palisade_model::Protocol;
use palisade_policy::Direction;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

/// The NFLOG group the rules log to.
pub const NFLOG_GROUP: u16 = 100;
/// Prefix of every log message Palisade's rules emit.
pub const PREFIX: &str = "pal";

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_TIMESTAMP: u16 = 3;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;

/// What the kernel did with a new connection attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A policy rule allowed it.
    Allow,
    /// No rule allowed it: dropped.
    Deny,
    /// No rule allowed it, but audit mode let it through.
    Audit,
}

impl Action {
    /// The letter in the log prefix.
    fn letter(self) -> &'static str {
        match self {
            Action::Allow => "A",
            Action::Deny => "D",
            Action::Audit => "U",
        }
    }
}

/// One verdict the kernel took on a new connection attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictEvent {
    /// Which side decided: egress (enforced on the source pod) or ingress (on the destination).
    pub direction: Direction,
    /// Allowed, dropped, or let through by audit mode.
    pub action: Action,
    /// Source address (after Service translation).
    pub src: IpAddr,
    /// Destination address (after Service translation: the backend pod).
    pub dst: IpAddr,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Source port (0 for ICMP).
    pub src_port: u16,
    /// Destination port (0 for ICMP).
    pub dst_port: u16,
    /// When the packet arrived (the kernel's receive timestamp), or when the event was read if the
    /// packet carried none.
    pub time: SystemTime,
}

impl VerdictEvent {
    /// The address of the pod that enforced: the destination for ingress, the source for egress.
    pub fn enforcing(&self) -> IpAddr {
        match self.direction {
            Direction::Ingress => self.dst,
            Direction::Egress => self.src,
        }
    }
}

/// The NFLOG prefix a rule logs with for `direction` and `action` (in group [`NFLOG_GROUP`]).
pub fn log_prefix(direction: Direction, action: Action) -> String {
    let d = match direction {
        Direction::Ingress => "I",
        Direction::Egress => "E",
    };
    let v = action.letter();
    format!("{PREFIX} {d} {v}")
}

fn parse_prefix(prefix: &[u8]) -> Option<(Direction, Action)> {
    let text = std::str::from_utf8(prefix).ok()?.trim_end_matches('\0');
    let mut parts = text.split(' ');
    if parts.next()? != PREFIX {
        return None;
    }
    let direction = match parts.next()? {
        "I" => Direction::Ingress,
        "E" => Direction::Egress,
        _ => return None,
    };
    let letter = parts.next()?;
    let action = [Action::Allow, Action::Deny, Action::Audit]
        .into_iter()
        .find(|a| a.letter() == letter)?;
    Some((direction, action))
}

/// Addresses, protocol and ports from the start of an IP packet.
fn parse_packet(p: &[u8]) -> Option<(IpAddr, IpAddr, Protocol, u16, u16)> {
    let (src, dst, proto, l4) = match p.first()? >> 4 {
        4 => {
            let ihl = ((p[0] & 0x0f) as usize) * 4;
            let src: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            (
                IpAddr::V4(Ipv4Addr::from(src)),
                IpAddr::V4(Ipv4Addr::from(dst)),
                p[9],
                p.get(ihl..)?,
            )
        }
        6 => {
            let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                *p.get(6)?,
                p.get(40..)?,
            )
        }
        _ => return None,
    };
    let protocol = Protocol::from_ip_number(proto);
    let ports = match (protocol, l4.get(0..4)) {
        (Protocol::Icmp, _) | (_, None) => (0, 0),
        (_, Some(b)) => (
            u16::from_be_bytes([b[0], b[1]]),
            u16::from_be_bytes([b[2], b[3]]),
        ),
    };
    Some((src, dst, protocol, ports.0, ports.1))
}

/// A UDP socket with `SO_TIMESTAMP` on, which turns on packet timestamping in the kernel.
fn stamping_socket() -> Option<std::net::UdpSocket> {
    use std::os::fd::AsRawFd;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
    set_int_option(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMP, 1).then_some(socket)
}

/// Reads verdict events from the NFLOG group of the network namespace it was opened in.
pub struct EventReader {
    socket: Socket,
    /// A socket that asks for receive timestamps: while one exists, the kernel stamps every packet
    /// on arrival, and NFLOG passes the stamp on (otherwise events carry the time they were read,
    /// up to one NFLOG batch — 10 ms — later).
    _stamps: Option<std::net::UdpSocket>,
    pending: std::collections::VecDeque<VerdictEvent>,
    overruns: u64,
}

impl EventReader {
    /// Binds to [`NFLOG_GROUP`] in the calling thread's network namespace.
    pub fn open() -> io::Result<EventReader> {
        let mut reader = EventReader {
            socket: Socket::open()?,
            _stamps: stamping_socket(),
            pending: Default::default(),
            overruns: 0,
        };
        // A 4 MiB receive buffer so that bursts are not lost (beyond `rmem_max` when allowed); the
        // default one if refused.
        let _ = reader.socket.set_receive_buffer(4 << 20);
        reader
            .config(&[(NFULA_CFG_CMD, vec![NFULNL_CFG_CMD_BIND])])
            .map_err(|e| match e.raw_os_error() {
                // EPERM both without CAP_NET_ADMIN and when another socket holds the group.
                Some(libc::EPERM | libc::EBUSY) => io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind NFLOG group {NFLOG_GROUP} ({e}): it needs root (CAP_NET_ADMIN), and no other process in this network namespace may hold it (another palisade agent?)"
                    ),
                ),
                _ => e,
            })?;
        let mut mode = 128u32.to_be_bytes().to_vec(); // copy the first 128 bytes of each packet
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        reader.config(&[(NFULA_CFG_MODE, mode)])?;
        // The kernel batches up to 100 events or 1 s by default; deliver within 10 ms, batches of 16.
        reader.config(&[
            (NFULA_CFG_QTHRESH, 16u32.to_be_bytes().to_vec()),
            (NFULA_CFG_TIMEOUT, 1u32.to_be_bytes().to_vec()),
        ])?;
        Ok(reader)
    }

    fn config(&mut self, attrs: &[(u16, Vec<u8>)]) -> io::Result<()> {
        let mut body = Vec::new();
        for (kind, payload) in attrs {
            attr(&mut body, *kind, payload);
        }
        let kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
        let family = libc::AF_UNSPEC as u8;
        self.socket
            .request(kind, family, NFLOG_GROUP, &body, |_| {})
    }

    /// The next verdict event; `None` when `timeout` passes first (`None` timeout: wait forever).
    /// When the kernel had to drop events because the socket buffer was full, reading goes on and
    /// [`EventReader::overruns`] counts it.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> io::Result<Option<VerdictEvent>> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            if !self.socket.readable(timeout)? {
                return Ok(None);
            }
            match self.socket.recv() {
                Ok(data) => self.pending.extend(events_in(data)),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => self.overruns += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// How many times the kernel dropped events because they were not read fast enough.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }
}

/// The verdict events of one datagram read from the NFLOG socket; other messages, and packets
/// that are not Palisade's or cannot be read, are skipped.
pub(crate) fn events_in(datagram: &[u8]) -> impl Iterator<Item = VerdictEvent> + '_ {
    let packet = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
    frames(datagram)
        .filter(move |f| f.kind == packet)
        .filter_map(|f| event(f.payload.get(NFGEN_HDRLEN..)?))
}

/// The packet's arrival time from `NFULA_TIMESTAMP` (seconds and microseconds, big-endian); `None`
/// for none (0) and for a time the clock cannot hold.
fn timestamp(payload: &[u8]) -> Option<SystemTime> {
    let sec = u64::from_be_bytes(payload.get(0..8)?.try_into().ok()?);
    let usec = u64::from_be_bytes(payload.get(8..16)?.try_into().ok()?);
    let since_epoch = Duration::from_secs(sec).checked_add(Duration::from_micros(usec))?;
    (sec > 0).then_some(std::time::UNIX_EPOCH.checked_add(since_epoch)?)
}

fn event(attrs: &[u8]) -> Option<VerdictEvent> {
    let (mut prefix, mut payload, mut stamp) = (None, None, None);
    for (kind, value) in attributes(attrs) {
        match kind {
            NFULA_PREFIX => prefix = Some(value),
            NFULA_PAYLOAD => payload = Some(value),
            NFULA_TIMESTAMP => stamp = timestamp(value),
            _ => {}
        }
    }
    let (direction, action) = parse_prefix(prefix?)?;
    let (src, dst, protocol, src_port, dst_port) = parse_packet(payload?)?;
    Some(VerdictEvent {
        direction,
        action,
        src,
        dst,
        protocol,
        src_port,
        dst_port,
        time: stamp.unwrap_or_else(SystemTime::now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_round_trip() {
        for d in [Direction::Ingress, Direction::Egress] {
            for a in [Action::Allow, Action::Deny, Action::Audit] {
                let prefix = log_prefix(d, a);
                assert_eq!(parse_prefix(prefix.as_bytes()), Some((d, a)));
            }
        }
        assert_eq!(parse_prefix(b"other I A"), None);
    }

    #[test]
    fn kernel_timestamps_are_read() {
        let mut p = 1_800_000_000u64.to_be_bytes().to_vec();
        p.extend_from_slice(&250_000u64.to_be_bytes());
        let t = timestamp(&p).unwrap();
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(since, Duration::new(1_800_000_000, 250_000_000));
        assert_eq!(timestamp(&[0; 16]), None, "no stamp on the packet");
        assert_eq!(timestamp(&p[..12]), None);
        let mut far = u64::MAX.to_be_bytes().to_vec();
        far.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(timestamp(&far), None, "beyond what the clock holds");
    }

    #[test]
    fn packets_are_parsed() {
        // IPv4 TCP 10.0.0.1:40000 -> 10.0.0.2:6379
        let mut p = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&6379u16.to_be_bytes());
        let (s, d, proto, sp, dp) = parse_packet(&p).unwrap();
        assert_eq!(
            (s.to_string(), d.to_string(), proto, sp, dp),
            (
                "10.0.0.1".into(),
                "10.0.0.2".into(),
                Protocol::Tcp,
                40000,
                6379
            )
        );
        for short in [10, 13, 17, 19] {
            assert!(parse_packet(&p[..short]).is_none(), "{short} bytes");
        }
    }
}
