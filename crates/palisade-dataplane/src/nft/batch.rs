//! One nf_tables transaction, built as netlink messages and sent to the kernel in one batch: every
//! change in it takes effect together, or none does. The whole `inet palisade` table and every
//! update to it go this way rather than through `nft`: `nft` spends a third of a second parsing the
//! script of a 10,000-pod table, and reads every element of the table before any element command
//! (a quarter of a second at that scale, whatever the size of the edit) — both measured.

use super::expr::{self, be32, value, verdict_data};
use super::rule::{PortsMatch, Rule, ANONYMOUS_SET};
use super::TABLE;
use crate::commits::{Generation, OwnCommit, NFT_MSG_NEWGEN};
use crate::netlink::{self, attr, cstr, error_code, frames, nest, os_error, Socket, NLMSG_ERROR};
use std::io;
use std::net::IpAddr;
use std::time::Duration;

pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
pub(crate) const NFT_MSG_NEWTABLE: u16 = 0;
pub(crate) const NFT_MSG_DELTABLE: u16 = 2;
pub(crate) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(crate) const NFT_MSG_DELCHAIN: u16 = 5;
pub(crate) const NFT_MSG_NEWRULE: u16 = 6;
pub(crate) const NFT_MSG_NEWSET: u16 = 9;
pub(crate) const NFT_MSG_DELSET: u16 = 11;
pub(crate) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(crate) const NFT_MSG_DELSETELEM: u16 = 14;
pub(crate) const NFPROTO_INET: u8 = 1;

pub(crate) const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
pub(crate) const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
pub(crate) const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_SET_TABLE: u16 = 1;
pub(crate) const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(crate) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(crate) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
pub(crate) const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;

const NFT_SET_ANONYMOUS: u32 = 0x1;
const NFT_SET_CONSTANT: u32 = 0x2;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_MAP: u32 = 0x8;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
/// `NFT_DATA_VERDICT`: a map's data are verdicts.
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
/// The rule userdata tag of a comment (libnftnl's `NFTNL_UDATA_RULE_COMMENT`).
const UDATA_RULE_COMMENT: u8 = 0;
/// Elements per message (attribute lengths are 16-bit; a batch holds as many messages as needed).
const CHUNK: usize = 256;

/// The key type of a set, as nft names it (so that `nft list` shows it as nft would have made it).
#[derive(Clone, Copy)]
enum KeyType {
    /// `ipv4_addr`.
    Ipv4,
    /// `ipv6_addr`.
    Ipv6,
    /// `inet_service` (a port).
    Port,
}

impl KeyType {
    /// nft's datatype number and the key's length in bytes.
    fn nft_type(self) -> (u32, u32) {
        match self {
            KeyType::Ipv4 => (7, 4),
            KeyType::Ipv6 => (8, 16),
            KeyType::Port => (13, 2),
        }
    }

    /// The type of addresses of one family.
    fn address(v6: bool) -> KeyType {
        if v6 {
            KeyType::Ipv6
        } else {
            KeyType::Ipv4
        }
    }
}

/// A key as a big-endian number of `width` bytes.
#[derive(Clone, Copy)]
struct Key {
    value: u128,
    width: usize,
}

impl Key {
    fn addr(ip: IpAddr) -> Key {
        match ip {
            IpAddr::V4(a) => Key {
                value: u32::from(a).into(),
                width: 4,
            },
            IpAddr::V6(a) => Key {
                value: a.into(),
                width: 16,
            },
        }
    }

    fn port(port: u16) -> Key {
        Key {
            value: port.into(),
            width: 2,
        }
    }

    /// The key just after this one, or `None` at the top of its width.
    fn next(self) -> Option<Key> {
        let top = if self.width == 16 {
            u128::MAX
        } else {
            (1u128 << (8 * self.width)) - 1
        };
        (self.value < top).then(|| Key {
            value: self.value + 1,
            width: self.width,
        })
    }
}

/// One element as the kernel stores it: a key, interval-end flag, and for maps a jump target.
struct Element<'a> {
    key: Key,
    end: bool,
    jump: Option<&'a str>,
}

/// The two elements an interval set stores for the range `first..=last`: its start, and an
/// interval end just after it (none when the range reaches the top of the key space).
fn interval(first: Key, last: Key) -> impl Iterator<Item = Element<'static>> {
    let start = Element {
        key: first,
        end: false,
        jump: None,
    };
    let end = last.next().map(|key| Element {
        key,
        end: true,
        jump: None,
    });
    std::iter::once(start).chain(end)
}

/// A set named by the caller, or an anonymous one known by its id in the transaction.
#[derive(Clone, Copy)]
enum SetRef<'a> {
    Named(&'a str),
    Anonymous(u32),
}

impl SetRef<'_> {
    /// The name to send (the kernel names an anonymous set from the pattern).
    fn name(&self) -> &str {
        match self {
            SetRef::Named(name) => name,
            SetRef::Anonymous(_) => ANONYMOUS_SET,
        }
    }
}

/// The start of a message about an object of the `inet palisade` table: the table's name as
/// attribute `table_kind`, the object's `name` as attribute `name_kind`.
fn in_table(table_kind: u16, name_kind: u16, name: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    attr(&mut body, table_kind, &cstr(TABLE));
    attr(&mut body, name_kind, &cstr(name));
    body
}

/// An nf_tables transaction on the `inet palisade` table.
#[derive(Default)]
pub(crate) struct Batch {
    body: Vec<u8>,
    /// What each message does, by sequence number − 1 (for errors).
    what: Vec<String>,
    /// Where the last message starts in `body`.
    last: usize,
    /// The last set id given.
    set_ids: u32,
}

/// What the kernel answered so far to a batch.
#[derive(Default)]
pub(crate) struct Answer {
    /// The first change refused, and why.
    pub first_error: Option<io::Error>,
    /// The generation the transaction made, when the kernel echoed it.
    pub generation: Option<u32>,
}

impl Batch {
    fn push(&mut self, kind: u16, flags: i32, body: &[u8], what: String) {
        self.what.push(what);
        let seq = self.what.len() as u32;
        let flags = (libc::NLM_F_REQUEST | flags) as u16;
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | kind;
        self.last = self.body.len();
        netlink::message(&mut self.body, kind, flags, seq, NFPROTO_INET, 0, body);
    }

    /// Replaces the table with an empty one: whatever it held is gone when the batch commits.
    pub fn replace_table(&mut self) {
        let mut body = Vec::new();
        attr(&mut body, NFTA_TABLE_NAME, &cstr(TABLE));
        let create = libc::NLM_F_CREATE;
        self.push(
            NFT_MSG_NEWTABLE,
            create,
            &body,
            format!("add table inet {TABLE}"),
        );
        self.push(
            NFT_MSG_DELTABLE,
            0,
            &body,
            format!("delete table inet {TABLE}"),
        );
        self.push(
            NFT_MSG_NEWTABLE,
            create,
            &body,
            format!("add table inet {TABLE}"),
        );
    }

    fn set(&mut self, set: SetRef, key: KeyType, flags: u32) {
        let (key_type, key_len) = key.nft_type();
        let name = set.name();
        let mut body = in_table(NFTA_SET_TABLE, NFTA_SET_NAME, name);
        be32(&mut body, NFTA_SET_FLAGS, flags);
        be32(&mut body, NFTA_SET_KEY_TYPE, key_type);
        be32(&mut body, NFTA_SET_KEY_LEN, key_len);
        if flags & NFT_SET_MAP != 0 {
            be32(&mut body, NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
        }
        // The kernel wants an id for every new set; only anonymous sets are looked up by it.
        let id = match set {
            SetRef::Anonymous(id) => id,
            SetRef::Named(_) => self.next_set_id(),
        };
        be32(&mut body, NFTA_SET_ID, id);
        self.push(
            NFT_MSG_NEWSET,
            libc::NLM_F_CREATE,
            &body,
            format!("add set inet {TABLE} {name}"),
        );
    }

    fn next_set_id(&mut self) -> u32 {
        self.set_ids += 1;
        self.set_ids
    }

    /// Adds a named interval set of addresses of one family.
    pub fn add_peer_set(&mut self, name: &str, v6: bool) {
        self.set(SetRef::Named(name), KeyType::address(v6), NFT_SET_INTERVAL);
    }

    /// Adds a verdict map keyed by addresses of one family.
    pub fn add_verdict_map(&mut self, name: &str, v6: bool) {
        self.set(SetRef::Named(name), KeyType::address(v6), NFT_SET_MAP);
    }

    fn elements(&mut self, add: bool, set: SetRef, elements: &[Element]) {
        for chunk in elements.chunks(CHUNK) {
            let name = set.name();
            let mut body = in_table(NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, name);
            body.reserve(chunk.len() * 48);
            if let SetRef::Anonymous(id) = set {
                be32(&mut body, NFTA_SET_ELEM_LIST_SET_ID, id);
            }
            nest(&mut body, NFTA_SET_ELEM_LIST_ELEMENTS, |out| {
                for e in chunk {
                    nest(out, NFTA_LIST_ELEM, |out| {
                        let bytes = e.key.value.to_be_bytes();
                        value(out, NFTA_SET_ELEM_KEY, &bytes[16 - e.key.width..]);
                        if e.end {
                            be32(out, NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
                        }
                        if let Some(chain) = e.jump {
                            verdict_data(out, NFTA_SET_ELEM_DATA, expr::NFT_JUMP, Some(chain));
                        }
                    });
                }
            });
            let (kind, flags, verb) = if add {
                (NFT_MSG_NEWSETELEM, libc::NLM_F_CREATE, "add")
            } else {
                (NFT_MSG_DELSETELEM, 0, "delete")
            };
            self.push(
                kind,
                flags,
                &body,
                format!("{verb} {} elements of set {name}", chunk.len()),
            );
        }
    }

    /// Adds (`add`) or deletes the ranges `first..=last` of interval set `set`.
    pub fn ranges(&mut self, add: bool, set: &str, ranges: &[(IpAddr, IpAddr)]) {
        let elements: Vec<Element> = ranges
            .iter()
            .flat_map(|&(first, last)| interval(Key::addr(first), Key::addr(last)))
            .collect();
        self.elements(add, SetRef::Named(set), &elements);
    }

    /// Adds `ip : jump chain` elements to verdict map `map`.
    pub fn add_jumps(&mut self, map: &str, jumps: &[(IpAddr, &str)]) {
        let elements: Vec<Element> = jumps
            .iter()
            .map(|&(key, chain)| Element {
                key: Key::addr(key),
                end: false,
                jump: Some(chain),
            })
            .collect();
        self.elements(true, SetRef::Named(map), &elements);
    }

    /// Deletes the elements of verdict map `map` with these keys.
    pub fn delete_keys(&mut self, map: &str, keys: &[IpAddr]) {
        let elements: Vec<Element> = keys
            .iter()
            .map(|&key| Element {
                key: Key::addr(key),
                end: false,
                jump: None,
            })
            .collect();
        self.elements(false, SetRef::Named(map), &elements);
    }

    /// Adds a regular chain.
    pub fn add_chain(&mut self, name: &str) {
        let body = in_table(NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, name);
        self.push(
            NFT_MSG_NEWCHAIN,
            libc::NLM_F_CREATE,
            &body,
            format!("add chain inet {TABLE} {name}"),
        );
    }

    /// Adds base chain `name`: `type filter hook forward priority filter; policy accept;`.
    pub fn add_forward_chain(&mut self, name: &str) {
        const NF_INET_FORWARD: u32 = 2;
        let mut body = in_table(NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, name);
        nest(&mut body, NFTA_CHAIN_HOOK, |out| {
            be32(out, NFTA_HOOK_HOOKNUM, NF_INET_FORWARD);
            be32(out, NFTA_HOOK_PRIORITY, 0);
        });
        be32(&mut body, NFTA_CHAIN_POLICY, expr::NF_ACCEPT as u32);
        attr(&mut body, NFTA_CHAIN_TYPE, &cstr("filter"));
        self.push(
            NFT_MSG_NEWCHAIN,
            libc::NLM_F_CREATE,
            &body,
            format!("add chain inet {TABLE} {name} (hook forward)"),
        );
    }

    /// Appends a rule of `expressions` (see [`expr`]) with an optional comment to chain `chain`.
    pub fn add_expressions(&mut self, chain: &str, expressions: &[u8], comment: Option<&str>) {
        let mut body = in_table(NFTA_RULE_TABLE, NFTA_RULE_CHAIN, chain);
        body.reserve(expressions.len() + 32);
        nest(&mut body, NFTA_RULE_EXPRESSIONS, |out| {
            out.extend_from_slice(expressions)
        });
        if let Some(comment) = comment {
            let text = cstr(comment);
            let mut udata = vec![UDATA_RULE_COMMENT, text.len() as u8];
            udata.extend_from_slice(&text);
            attr(&mut body, NFTA_RULE_USERDATA, &udata);
        }
        let flags = libc::NLM_F_CREATE | libc::NLM_F_APPEND;
        self.push(
            NFT_MSG_NEWRULE,
            flags,
            &body,
            format!("add rule inet {TABLE} {chain}"),
        );
    }

    /// Appends `rule` to chain `chain`, with the anonymous set its port list needs.
    pub fn add_rule(&mut self, chain: &str, rule: &Rule) {
        let port_set = rule
            .ports
            .as_ref()
            .filter(|p| p.needs_set())
            .map(|p| self.port_set(p));
        let comment = rule.comment();
        self.add_expressions(chain, &rule.expressions(port_set), comment.as_deref());
    }

    /// Adds the anonymous interval set of a port list; its id.
    fn port_set(&mut self, ports: &PortsMatch) -> u32 {
        let id = self.next_set_id();
        let flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_INTERVAL;
        self.set(SetRef::Anonymous(id), KeyType::Port, flags);
        let elements: Vec<Element> = ports
            .ranges
            .iter()
            .flat_map(|&(first, last)| interval(Key::port(first), Key::port(last)))
            .collect();
        self.elements(true, SetRef::Anonymous(id), &elements);
        id
    }

    /// Deletes chain `name` (unused by then).
    pub fn delete_chain(&mut self, name: &str) {
        let body = in_table(NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, name);
        self.push(
            NFT_MSG_DELCHAIN,
            0,
            &body,
            format!("delete chain inet {TABLE} {name}"),
        );
    }

    /// Deletes set `name` (unused by then).
    pub fn delete_set(&mut self, name: &str) {
        let body = in_table(NFTA_SET_TABLE, NFTA_SET_NAME, name);
        self.push(
            NFT_MSG_DELSET,
            0,
            &body,
            format!("delete set inet {TABLE} {name}"),
        );
    }

    /// The changes between batch begin and end messages. Only the last change asks for an
    /// acknowledgement: the kernel answers every failed message anyway, in order, so the answer to
    /// the last one ends the reply. The first asks for an echo: the kernel then also sends this
    /// socket the `NEWGEN` notification of the transaction (it reads the flag of the first
    /// message), which names the generation the commit made — how [`crate::drift`] tells this
    /// process's transactions from others'.
    fn frame(&self) -> Vec<u8> {
        let mut batch = Vec::with_capacity(self.body.len() + 40);
        let subsys = NFNL_SUBSYS_NFTABLES;
        let request = libc::NLM_F_REQUEST as u16;
        netlink::message(&mut batch, NFNL_MSG_BATCH_BEGIN, request, 0, 0, subsys, &[]);
        let first = batch.len();
        let last = first + self.last;
        batch.extend_from_slice(&self.body);
        add_flags(&mut batch[first..], libc::NLM_F_ECHO);
        add_flags(&mut batch[last..], libc::NLM_F_ACK);
        let end = self.what.len() as u32 + 1;
        netlink::message(&mut batch, NFNL_MSG_BATCH_END, request, end, 0, subsys, &[]);
        batch
    }

    /// Sends the batch to the calling thread's network namespace and waits for the kernel's answer:
    /// every change applied, or none. The commit is registered as this process's while it runs and
    /// after ([`OwnCommit`]), so that [`crate::drift::DriftMonitor`] does not report it.
    pub fn commit(&self) -> io::Result<()> {
        let count = self.what.len() as u32;
        if count == 0 {
            return Ok(());
        }
        let batch = self.frame();
        let mut socket = Socket::open()?;
        let own = OwnCommit::begin(socket.bind()?)?;
        socket.set_option(
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            batch.len() as i32 * 2,
        );
        socket.set_option(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20);
        socket.set_receive_timeout(Duration::from_secs(30))?;
        socket.send(&batch)?;
        let result = self.answer(&mut socket);
        // Closing a socket that changed nf_tables waits for the kernel (~14 ms measured, whatever
        // the change): done off the caller's path.
        let closing = std::thread::Builder::new().name("netlink-close".into());
        let _ = closing.spawn(move || drop(socket));
        own.committed(result?);
        Ok(())
    }

    /// Reads one datagram of the kernel's answer to the batch into `answer`: the first error, and
    /// the generation the transaction made when the kernel echoes it; true once the last change is
    /// answered.
    pub(crate) fn read_answer(&self, data: &[u8], answer: &mut Answer) -> bool {
        let count = self.what.len() as u32;
        let mut answered = false;
        for frame in frames(data) {
            if frame.kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN {
                let generation = Generation::parse(frame.payload).map(|g| g.id);
                answer.generation = answer.generation.or(generation);
            }
            if frame.kind != NLMSG_ERROR {
                continue;
            }
            let (seq, code) = (frame.seq, error_code(frame.payload).unwrap_or(0));
            if code != 0 && answer.first_error.is_none() {
                let e = os_error(code);
                let what = (seq as usize).checked_sub(1).and_then(|i| self.what.get(i));
                let what = what.map_or("?", |w| w.as_str());
                answer.first_error = Some(io::Error::new(
                    e.kind(),
                    format!("nf_tables refused change {seq} of {count} ({what}): {e}"),
                ));
            }
            answered |= seq == count;
        }
        answered
    }

    /// Reads the kernel's answer to the batch: the acknowledgement of its last message, after an
    /// error for each message refused (the first one is returned). On success, the generation the
    /// transaction made, when the kernel echoed it.
    fn answer(&self, socket: &mut Socket) -> io::Result<Option<u32>> {
        let mut answer = Answer::default();
        loop {
            let data = match socket.recv() {
                Ok(data) => data,
                // Errors overflowed the receive buffer, or the kernel stopped answering after one:
                // the transaction failed; report the first error seen.
                Err(e) => return Err(answer.first_error.unwrap_or(e)),
            };
            if self.read_answer(data, &mut answer) {
                return answer.first_error.map_or(Ok(answer.generation), Err);
            }
            if answer.first_error.is_some() {
                // The rest of the answer follows at once, if it comes at all.
                socket.set_receive_timeout(Duration::from_secs(1))?;
            }
        }
    }
}

/// Sets `flags` in the header of the netlink message at the start of `message`.
fn add_flags(message: &mut [u8], flags: i32) {
    let old = u16::from_ne_bytes([message[6], message[7]]);
    message[6..8].copy_from_slice(&(old | flags as u16).to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(elements: impl Iterator<Item = Element<'static>>) -> Vec<(u128, bool)> {
        elements.map(|e| (e.key.value, e.end)).collect()
    }

    #[test]
    fn intervals_end_just_after_the_range_except_at_the_top() {
        let v4 = |s: &str| Key::addr(s.parse().unwrap());
        let n = |s: &str| v4(s).value;
        assert_eq!(
            keys(interval(v4("10.0.0.1"), v4("10.0.0.1"))),
            [(n("10.0.0.1"), false), (n("10.0.0.2"), true)]
        );
        assert_eq!(
            keys(interval(v4("10.0.0.255"), v4("10.0.1.3"))),
            [(n("10.0.0.255"), false), (n("10.0.1.4"), true)]
        );
        assert_eq!(
            keys(interval(v4("255.255.255.0"), v4("255.255.255.255"))),
            [(n("255.255.255.0"), false)]
        );
        let v6 = |s: &str| Key::addr(s.parse().unwrap());
        assert_eq!(
            keys(interval(v6("::1"), v6("::1"))),
            [(1, false), (2, true)]
        );
        assert!(v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
            .next()
            .is_none());
        assert_eq!(
            keys(interval(Key::port(8000), Key::port(8080))),
            [(8000, false), (8081, true)]
        );
        assert_eq!(
            keys(interval(Key::port(1024), Key::port(65535))),
            [(1024, false)]
        );
    }

    #[test]
    fn changes_are_framed_only_the_last_asks_for_an_acknowledgement_and_the_first_for_an_echo() {
        let mut batch = Batch::default();
        batch.replace_table();
        batch.add_chain("c");
        let framed = batch.frame();
        // (type, acknowledgement asked, echo asked, sequence) of every message, from the netlink
        // headers.
        let mut headers = Vec::new();
        let mut rest = framed.as_slice();
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let flags = u16::from_ne_bytes([rest[6], rest[7]]);
            let seq = u32::from_ne_bytes(rest[8..12].try_into().unwrap());
            let flag = |f: i32| flags & f as u16 != 0;
            headers.push((kind, flag(libc::NLM_F_ACK), flag(libc::NLM_F_ECHO), seq));
            rest = &rest[len.div_ceil(4) * 4..];
        }
        let nft = |kind| (NFNL_SUBSYS_NFTABLES << 8) | kind;
        assert_eq!(
            headers,
            [
                (NFNL_MSG_BATCH_BEGIN, false, false, 0),
                (nft(NFT_MSG_NEWTABLE), false, true, 1),
                (nft(NFT_MSG_DELTABLE), false, false, 2),
                (nft(NFT_MSG_NEWTABLE), false, false, 3),
                (nft(NFT_MSG_NEWCHAIN), true, false, 4),
                (NFNL_MSG_BATCH_END, false, false, 5),
            ]
        );
        assert_eq!(batch.what[3], "add chain inet palisade c");
    }
}
