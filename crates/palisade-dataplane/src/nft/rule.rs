//! One rule of a class chain as data: the peer set and the ports it matches, the NFLOG tag it logs
//! with, its verdict and the policy rule it comes from. Written as nft text for scripts, and as
//! nf_tables expressions for the kernel.

use super::expr;
use super::range_text;
use crate::events::{log_prefix, Action, NFLOG_GROUP};
use palisade_model::Protocol;
use palisade_policy::{Direction, RuleOrigin};
use std::fmt;

/// What a rule does with a matching packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Verdict {
    /// Allowed (ingress is the last check).
    Accept,
    /// Dropped.
    Drop,
    /// Back to the base chain (egress allowed; the destination's ingress is still checked).
    Return,
}

impl Verdict {
    fn code(self) -> i32 {
        match self {
            Verdict::Accept => expr::NF_ACCEPT,
            Verdict::Drop => expr::NF_DROP,
            Verdict::Return => expr::NFT_RETURN,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Return => "return",
        }
    }
}

/// The peer's address (source for ingress, destination for egress) is in set `set` of one family.
/// `S` is the set's name, or its id while the ruleset is being built.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PeerMatch<S> {
    pub v6: bool,
    pub set: S,
}

/// The destination port is one of `ranges` (inclusive, sorted, disjoint) of `protocol`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PortsMatch {
    pub protocol: Protocol,
    pub ranges: Vec<(u16, u16)>,
}

impl PortsMatch {
    /// True when the ports need a set (more than one range).
    pub fn needs_set(&self) -> bool {
        self.ranges.len() > 1
    }
}

/// A rule of a class chain. `S` names peer sets (see [`PeerMatch`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Rule<S = String> {
    /// The direction of the chain (which address is the peer; the log tag).
    pub direction: Direction,
    pub peer: Option<PeerMatch<S>>,
    pub ports: Option<PortsMatch>,
    /// What the NFLOG event says happened.
    pub action: Action,
    pub verdict: Verdict,
    /// The policy rule it comes from, as a comment.
    pub origin: Option<RuleOrigin>,
}

impl<S> Rule<S> {
    /// The same rule with its peer set named by `name`.
    pub fn named<T>(self, name: impl FnOnce(S) -> T) -> Rule<T> {
        Rule {
            direction: self.direction,
            peer: self.peer.map(|p| PeerMatch {
                v6: p.v6,
                set: name(p.set),
            }),
            ports: self.ports,
            action: self.action,
            verdict: self.verdict,
            origin: self.origin,
        }
    }
}

/// The peer sets the rules of a chain look up, once per rule that does.
pub(crate) fn looked_up(rules: &[Rule]) -> impl Iterator<Item = &str> {
    rules
        .iter()
        .filter_map(|r| r.peer.as_ref().map(|p| p.set.as_str()))
}

impl Rule {
    /// The comment naming the policy rule, if any: `NetworkPolicy ns/name ingress rule 0`.
    pub fn comment(&self) -> Option<String> {
        self.origin.as_ref().map(origin_text)
    }

    /// The rule as nf_tables expressions. A port match of several ranges is looked up in the
    /// anonymous set `port_set` (its id in the transaction), which the caller adds first.
    pub fn expressions(&self, port_set: Option<u32>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        if let Some(peer) = &self.peer {
            expr::address(&mut out, peer.v6, self.direction == Direction::Ingress);
            expr::lookup(&mut out, &peer.set, None, false);
        }
        if let Some(ports) = &self.ports {
            expr::destination_port(&mut out, ports.protocol.ip_number());
            match (ports.ranges.as_slice(), port_set) {
                ([(first, last)], _) if first == last => {
                    expr::cmp(&mut out, expr::CMP_EQ, &first.to_be_bytes())
                }
                ([(first, last)], _) => {
                    expr::cmp(&mut out, expr::CMP_GTE, &first.to_be_bytes());
                    expr::cmp(&mut out, expr::CMP_LTE, &last.to_be_bytes());
                }
                (_, Some(id)) => expr::lookup(&mut out, ANONYMOUS_SET, Some(id), false),
                (_, None) => unreachable!("a port list is matched through its set"),
            }
        }
        expr::log(
            &mut out,
            &log_prefix(self.direction, self.action),
            NFLOG_GROUP,
        );
        expr::verdict(&mut out, self.verdict.code());
        out
    }
}

/// The name pattern of a set the kernel names itself (a rule's anonymous set).
pub(crate) const ANONYMOUS_SET: &str = "__set%d";

/// The rule as a line of an nft chain block.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("   ")?;
        if let Some(peer) = &self.peer {
            let family = if peer.v6 { "ip6" } else { "ip" };
            let field = match self.direction {
                Direction::Ingress => "saddr",
                Direction::Egress => "daddr",
            };
            write!(f, " {family} {field} @{}", peer.set)?;
        }
        if let Some(ports) = &self.ports {
            let proto = ports.protocol.as_str().to_ascii_lowercase();
            let ranges: Vec<String> = ports
                .ranges
                .iter()
                .map(|&(first, last)| range_text(first, last))
                .collect();
            let ranges = if ranges.len() == 1 {
                ranges[0].clone()
            } else {
                format!("{{ {} }}", ranges.join(", "))
            };
            write!(f, " meta l4proto {proto} th dport {ranges}")?;
        }
        let prefix = log_prefix(self.direction, self.action);
        write!(
            f,
            " log prefix \"{prefix}\" group {NFLOG_GROUP} {}",
            self.verdict.as_str()
        )?;
        if let Some(comment) = self.comment() {
            write!(f, " comment \"{comment}\"")?;
        }
        writeln!(f)
    }
}

/// The most a rule's comment holds: the kernel keeps at most 256 bytes of user data per rule, the
/// comment's own header included.
const MAX_COMMENT: usize = 250;

/// `NetworkPolicy ns/name ingress rule 0`, cut to [`MAX_COMMENT`] bytes with a hash of the whole
/// when longer (a namespace and a name may hold 316 bytes): rules of two policies never share one.
pub(crate) fn origin_text(origin: &RuleOrigin) -> String {
    let text = format!(
        "{} {} rule {}",
        origin.policy,
        origin.direction.as_str(),
        origin.rule
    );
    if text.len() <= MAX_COMMENT {
        return text;
    }
    let hash = {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(0).hash_one(&text)
    };
    let mut cut = MAX_COMMENT - 20;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... #{hash:016x}", &text[..cut])
}
