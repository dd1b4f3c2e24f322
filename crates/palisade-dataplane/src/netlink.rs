//! A raw netfilter netlink socket and message building, shared by the verdict event reader (NFLOG)
//! and the element updates (nf_tables). Both protocols are small and stable kernel ABIs
//! (`linux/netfilter/nfnetlink_log.h`, `linux/netfilter/nf_tables.h`), spoken directly rather than
//! through crates.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Length of a netlink message header.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// Length of the netfilter generic header that follows it.
pub(crate) const NFGEN_HDRLEN: usize = 4;
/// `NLMSG_ERROR`: an error or (code 0) an acknowledgement.
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// Set on attributes that hold attributes.
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
/// Set on attributes whose payload is in network byte order.
const NLA_F_NET_BYTEORDER: u16 = 0x4000;

/// A `NETLINK_NETFILTER` socket of the calling thread's network namespace.
pub(crate) struct Socket {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// The sequence number of the last [`Socket::request`].
    seq: u32,
}

impl Socket {
    /// Opens the socket.
    pub fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2); the descriptor is owned by the returned OwnedFd.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket {
            // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            buf: vec![0; 1 << 16],
            seq: 0,
        })
    }

    /// Binds the socket to a port the kernel picks, and returns it: every notification of a
    /// change sent through this socket carries it.
    pub fn bind(&self) -> io::Result<u32> {
        // SAFETY: an all-zero sockaddr_nl is valid (port 0: the kernel picks one; no groups).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        let addr_ptr = (&mut addr as *mut libc::sockaddr_nl).cast::<libc::sockaddr>();
        // SAFETY: bind and getsockname on a valid socket, with a live sockaddr_nl and its size.
        let rc = unsafe {
            match libc::bind(self.fd.as_raw_fd(), addr_ptr, len) {
                0 => libc::getsockname(self.fd.as_raw_fd(), addr_ptr, &mut len),
                rc => rc,
            }
        };
        if rc == 0 {
            Ok(addr.nl_pid)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Joins multicast group `group` (nfnetlink's `NFNLGRP_*`).
    pub fn join_group(&self, group: libc::c_int) -> io::Result<()> {
        if self.set_option(libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, group) {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits until a datagram can be read: false when `timeout` passes first (`None`: wait
    /// forever).
    pub fn readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        // Rounded up: a timeout below 1 ms must not become 0 (a busy loop).
        let ms = timeout.map_or(-1, |t| {
            t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
        });
        loop {
            let mut poll = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one valid, live pollfd.
            match unsafe { libc::poll(&mut poll, 1, ms) } {
                0 => return Ok(false),
                n if n > 0 => return Ok(true),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Sets a socket option to an integer value; false if the kernel refused.
    pub fn set_option(&self, level: libc::c_int, option: libc::c_int, value: libc::c_int) -> bool {
        set_int_option(self.fd.as_raw_fd(), level, option, value)
    }

    /// Sets the size of the receive buffer: `SO_RCVBUFFORCE` (beyond `net.core.rmem_max`, as root),
    /// else `SO_RCVBUF` (capped at `rmem_max`).
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        let bytes = bytes.min(i32::MAX as usize) as i32;
        let set = |option| self.set_option(libc::SOL_SOCKET, option, bytes);
        if set(libc::SO_RCVBUFFORCE) || set(libc::SO_RCVBUF) {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Makes `recv` fail with `WouldBlock` after `timeout`.
    pub fn set_receive_timeout(&self, timeout: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: setsockopt with a pointer to a live timeval and its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Sends one buffer (one or more messages) to the kernel.
    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sending an initialised buffer on a valid socket.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Sends request `kind` (`family` and `res_id` in its netfilter header, `body` its attributes)
    /// asking for an acknowledgement, hands each other message of the reply to `take`, and returns
    /// at the acknowledgement: the kernel's error if it refused. Messages that do not answer the
    /// request (another sequence number) are skipped.
    pub fn request(
        &mut self,
        kind: u16,
        family: u8,
        res_id: u16,
        body: &[u8],
        mut take: impl FnMut(&Frame),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut msg = Vec::new();
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        message(&mut msg, kind, flags, seq, family, res_id, body);
        self.send(&msg)?;
        loop {
            for frame in frames(self.recv()?).filter(|f| f.seq == seq) {
                if frame.kind != NLMSG_ERROR {
                    take(&frame);
                    continue;
                }
                return acknowledged(frame.payload);
            }
        }
    }

    /// Sends dump request `kind` for `family` and hands each message of the answer to `take`
    /// until the kernel says it is done (true) or `take` says stop (false: the rest of the dump
    /// may still arrive, so the socket should not be used again).
    pub fn dump(
        &mut self,
        kind: u16,
        family: u8,
        mut take: impl FnMut(&Frame) -> bool,
    ) -> io::Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut msg = Vec::new();
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        message(&mut msg, kind, flags, seq, family, 0, &[]);
        self.send(&msg)?;
        loop {
            for frame in frames(self.recv()?).filter(|f| f.seq == seq) {
                match frame.kind {
                    NLMSG_DONE => return Ok(true),
                    NLMSG_ERROR => return acknowledged(frame.payload).map(|()| true),
                    _ if !take(&frame) => return Ok(false),
                    _ => {}
                }
            }
        }
    }

    /// Receives one datagram (one or more messages).
    pub fn recv(&mut self) -> io::Result<&[u8]> {
        // SAFETY: receiving into an owned, initialised buffer of the given length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                0,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(&self.buf[..n as usize])
        }
    }
}

/// Sets an integer socket option on any socket; false if the kernel refused.
pub(crate) fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> bool {
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Appends attribute `kind` holding `payload`, padded to 4 bytes.
pub(crate) fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

/// Appends a nested attribute `kind` whose attributes `fill` writes.
pub(crate) fn nest(out: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    fill(out);
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    out[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
}

/// Appends a netfilter message: netlink header, generic header (`family`, version 0, `res_id`) and
/// `body` (its attributes).
pub(crate) fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    body: &[u8],
) {
    let len = NLMSG_HDRLEN + NFGEN_HDRLEN + body.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

/// `s` as a NUL-terminated string attribute value.
pub(crate) fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

/// One message of a received datagram.
pub(crate) struct Frame<'a> {
    pub kind: u16,
    pub seq: u32,
    /// The netlink port the message is about: in a notification, the socket that made the change.
    pub port: u32,
    /// What follows the netlink header.
    pub payload: &'a [u8],
}

/// The messages in a received datagram; stops at the first malformed header.
pub(crate) fn frames(mut data: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    std::iter::from_fn(move || {
        if data.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return None;
        }
        let frame = Frame {
            kind: u16::from_ne_bytes([data[4], data[5]]),
            seq: u32::from_ne_bytes(data[8..12].try_into().expect("4 bytes")),
            port: u32::from_ne_bytes(data[12..16].try_into().expect("4 bytes")),
            payload: &data[NLMSG_HDRLEN..len],
        };
        data = &data[len.div_ceil(4).saturating_mul(4).min(data.len())..];
        Some(frame)
    })
}

/// The attributes in `data`: (type without flags, payload); stops at the first malformed one.
pub(crate) fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        data = &data[(len.div_ceil(4) * 4).min(data.len())..];
        Some((kind, payload))
    })
}

/// The error code of an `NLMSG_ERROR` payload (0: acknowledgement).
pub(crate) fn error_code(payload: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?))
}

/// An `NLMSG_ERROR` payload as a result: Ok for an acknowledgement, else the kernel's error.
fn acknowledged(payload: &[u8]) -> io::Result<()> {
    match error_code(payload) {
        Some(0) => Ok(()),
        Some(code) => Err(os_error(code)),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated netlink error message",
        )),
    }
}

/// The error of a non-zero `NLMSG_ERROR` code: the kernel sends the errno negated (whatever else
/// arrives must not overflow).
pub(crate) fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code.saturating_neg())
}

/// Characters kept of an object name in a log line.
pub(crate) const MAX_NAME: usize = 64;

/// `s` up to its first NUL.
pub(crate) fn trim_nul(s: &[u8]) -> &[u8] {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    &s[..end]
}

/// The payload of attribute `kind` in `attrs`, if there.
pub(crate) fn attribute(attrs: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(attrs).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// A big-endian `u32` attribute.
pub(crate) fn be32(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.get(..4)?.try_into().ok()?))
}

/// An object name from the kernel, fit for a log line: at most 64 characters, escaped.
pub(crate) fn printable(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(trim_nul(raw));
    text.chars()
        .take(MAX_NAME)
        .flat_map(char::escape_debug)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_and_escaped() {
        let long = "a".repeat(300);
        assert_eq!(printable(long.as_bytes()).len(), MAX_NAME);
        assert_eq!(printable(b"x\x1b[31m\0junk"), "x\\u{1b}[31m");
    }
}
