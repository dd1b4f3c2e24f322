//! nf_tables rule expressions and data, encoded as the kernel reads them (`linux/netfilter/
//! nf_tables.h`): the handful the `inet palisade` table needs, each exactly as `nft` encodes the
//! same statement (checked with `nft --debug=netlink`, and by comparing listings in the kernel tests).

use super::batch::NFTA_LIST_ELEM;
use crate::netlink::{attr, cstr, nest};

const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// The verdict register, and the first data register (the one `nft` uses for single matches).
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;

/// Verdict codes.
pub(crate) const NF_DROP: i32 = 0;
pub(crate) const NF_ACCEPT: i32 = 1;
pub(crate) const NFT_JUMP: i32 = -3;
pub(crate) const NFT_RETURN: i32 = -5;

/// `cmp` operators.
pub(crate) const CMP_EQ: u32 = 0;
pub(crate) const CMP_NEQ: u32 = 1;
pub(crate) const CMP_LTE: u32 = 3;
pub(crate) const CMP_GTE: u32 = 5;

/// `meta` keys.
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;

/// Payload bases.
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;

/// Appends a big-endian 32-bit attribute.
pub(crate) fn be32(out: &mut Vec<u8>, kind: u16, value: u32) {
    attr(out, kind, &value.to_be_bytes());
}

/// A data attribute `kind` holding a plain value.
pub(crate) fn value(out: &mut Vec<u8>, kind: u16, bytes: &[u8]) {
    nest(out, kind, |out| attr(out, NFTA_DATA_VALUE, bytes));
}

/// A data attribute `kind` holding a verdict (with its chain for a jump).
pub(crate) fn verdict_data(out: &mut Vec<u8>, kind: u16, code: i32, chain: Option<&str>) {
    nest(out, kind, |out| {
        nest(out, NFTA_DATA_VERDICT, |out| {
            attr(out, NFTA_VERDICT_CODE, &code.to_be_bytes());
            if let Some(chain) = chain {
                attr(out, NFTA_VERDICT_CHAIN, &cstr(chain));
            }
        })
    });
}

/// One expression of a rule's list: its name and its attributes.
fn expr(out: &mut Vec<u8>, name: &str, fill: impl FnOnce(&mut Vec<u8>)) {
    nest(out, NFTA_LIST_ELEM, |out| {
        attr(out, NFTA_EXPR_NAME, &cstr(name));
        nest(out, NFTA_EXPR_DATA, fill);
    });
}

/// `meta load KEY => reg 1`.
fn meta(out: &mut Vec<u8>, key: u32) {
    const DREG: u16 = 1;
    const KEY: u16 = 2;
    expr(out, "meta", |out| {
        be32(out, DREG, NFT_REG_1);
        be32(out, KEY, key);
    });
}

/// `cmp OP reg 1 DATA`.
pub(crate) fn cmp(out: &mut Vec<u8>, op: u32, data: &[u8]) {
    const SREG: u16 = 1;
    const OP: u16 = 2;
    const DATA: u16 = 3;
    expr(out, "cmp", |out| {
        be32(out, SREG, NFT_REG_1);
        be32(out, OP, op);
        value(out, DATA, data);
    });
}

/// `payload load LEN @ BASE + OFFSET => reg 1`.
fn payload(out: &mut Vec<u8>, base: u32, offset: u32, len: u32) {
    const DREG: u16 = 1;
    const BASE: u16 = 2;
    const OFFSET: u16 = 3;
    const LEN: u16 = 4;
    expr(out, "payload", |out| {
        be32(out, DREG, NFT_REG_1);
        be32(out, BASE, base);
        be32(out, OFFSET, offset);
        be32(out, LEN, len);
    });
}

/// `lookup reg 1 set SET` (a set added in the same transaction without a name of its own is found by
/// `id`); with `verdict_map`, the element's verdict is the rule's (`vmap`).
pub(crate) fn lookup(out: &mut Vec<u8>, set: &str, id: Option<u32>, verdict_map: bool) {
    const SET: u16 = 1;
    const SREG: u16 = 2;
    const DREG: u16 = 3;
    const SET_ID: u16 = 4;
    expr(out, "lookup", |out| {
        attr(out, SET, &cstr(set));
        be32(out, SREG, NFT_REG_1);
        if verdict_map {
            be32(out, DREG, NFT_REG_VERDICT);
        }
        if let Some(id) = id {
            be32(out, SET_ID, id);
        }
    });
}

/// `ip|ip6 saddr|daddr` into reg 1, for packets of that family only (`meta nfproto`).
pub(crate) fn address(out: &mut Vec<u8>, v6: bool, source: bool) {
    let (nfproto, offset, len) = match (v6, source) {
        (false, true) => (libc::NFPROTO_IPV4, 12, 4),
        (false, false) => (libc::NFPROTO_IPV4, 16, 4),
        (true, true) => (libc::NFPROTO_IPV6, 8, 16),
        (true, false) => (libc::NFPROTO_IPV6, 24, 16),
    };
    meta(out, NFT_META_NFPROTO);
    cmp(out, CMP_EQ, &[nfproto as u8]);
    payload(out, NFT_PAYLOAD_NETWORK_HEADER, offset, len);
}

/// `meta l4proto PROTO th dport` into reg 1.
pub(crate) fn destination_port(out: &mut Vec<u8>, l4proto: u8) {
    meta(out, NFT_META_L4PROTO);
    cmp(out, CMP_EQ, &[l4proto]);
    payload(out, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
}

/// `tcp flags & (fin | syn | rst | ack) != syn`: a TCP packet other than a connection's first.
pub(crate) fn tcp_flags_not_syn(out: &mut Vec<u8>) {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    meta(out, NFT_META_L4PROTO);
    cmp(out, CMP_EQ, &[libc::IPPROTO_TCP as u8]);
    payload(out, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1);
    bitwise(out, 1, &[FIN | SYN | RST | ACK]);
    cmp(out, CMP_NEQ, &[SYN]);
}

/// `reg 1 = (reg 1 & MASK) ^ 0` over `len` bytes.
fn bitwise(out: &mut Vec<u8>, len: u32, mask: &[u8]) {
    const BW_SREG: u16 = 1;
    const BW_DREG: u16 = 2;
    const BW_LEN: u16 = 3;
    const BW_MASK: u16 = 4;
    const BW_XOR: u16 = 5;
    expr(out, "bitwise", |out| {
        be32(out, BW_SREG, NFT_REG_1);
        be32(out, BW_DREG, NFT_REG_1);
        be32(out, BW_LEN, len);
        value(out, BW_MASK, mask);
        value(out, BW_XOR, &vec![0; mask.len()]);
    });
}

/// `ct state` has any of `states` (a conntrack state bit mask, in host order as the kernel loads it).
pub(crate) fn ct_state_any(out: &mut Vec<u8>, states: u32) {
    const CT_DREG: u16 = 1;
    const CT_KEY: u16 = 2;
    const NFT_CT_STATE: u32 = 0;
    expr(out, "ct", |out| {
        be32(out, CT_DREG, NFT_REG_1);
        be32(out, CT_KEY, NFT_CT_STATE);
    });
    bitwise(out, 4, &states.to_ne_bytes());
    cmp(out, CMP_NEQ, &[0; 4]);
}

/// `log prefix PREFIX group GROUP` (to NFLOG).
pub(crate) fn log(out: &mut Vec<u8>, prefix: &str, group: u16) {
    const GROUP: u16 = 1;
    const PREFIX: u16 = 2;
    expr(out, "log", |out| {
        attr(out, GROUP, &group.to_be_bytes());
        attr(out, PREFIX, &cstr(prefix));
    });
}

/// The rule's verdict (`accept`, `drop`, `return`).
pub(crate) fn verdict(out: &mut Vec<u8>, code: i32) {
    const DREG: u16 = 1;
    const DATA: u16 = 2;
    expr(out, "immediate", |out| {
        be32(out, DREG, NFT_REG_VERDICT);
        verdict_data(out, DATA, code, None);
    });
}
