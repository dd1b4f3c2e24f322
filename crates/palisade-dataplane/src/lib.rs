//! Kernel enforcement: the policy engine's per-class rule sets rendered into one `inet palisade`
//! nftables table and applied in one atomic transaction.
//!
//! The table hooks `forward` after DNAT (so Services are already translated to pod IP and
//! targetPort), accepts `established,related` first, then sends new connections through verdict maps
//! keyed by pod IP: `egress4/6` on the source address, `ingress4/6` on the destination, each jumping to
//! the chain of the pod's endpoint class. A class chain holds one rule per allowing policy rule and
//! protocol, with peers as named interval sets of addresses and ports as a per-protocol port set —
//! never one rule per peer. Traffic between a pod and its own node uses the input/output hooks and is
//! never touched; a pod talking to itself never leaves its namespace. Every decision on a new
//! connection is also copied to NFLOG ([`events`]), the verdict stream logging is built on.
//!
//! The table is first applied whole ([`Ruleset::apply`]); later changes go in as one transaction that
//! edits only what differs — set members, verdict-map elements, new and unused chains and sets —
//! worked out from the classes that changed ([`Ruleset::patch`]) when the engine was compiled from
//! the last one, else by comparing whole rulesets ([`Ruleset::update_from`]). Both are nf_tables netlink batches built here, not `nft` scripts (`nft`
//! costs a third of a second of parsing at 10,000 pods); the same table as an `nft -f` script
//! ([`Ruleset::script`]) is for reading and `--dry-run`. Changes other processes make to the table
//! are noticed as the kernel commits them ([`drift`]), so that it can be put back.

mod apply;
mod commits;
pub mod conntrack;
pub mod drift;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
mod netlink;
pub mod netns;
mod nft;

pub use apply::{apply, ApplyError};
pub use nft::{build, render, Patch, Ruleset, Update, UpdateSize, TABLE};
