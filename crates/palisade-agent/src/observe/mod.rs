//! `palisade observe`: the live stream of verdict events (or, with `--flows`, flow records) from a
//! running agent ([`hub`]), or the records of `policy_action.log` or flow log files ([`mod@file`]),
//! filtered ([`filter`]) and printed ([`mod@format`]).

pub mod file;
pub mod filter;
pub mod format;
pub mod hub;

use crate::record::{Disposition, Peer};
use palisade_model::Protocol;
use serde::de::DeserializeOwned;
use std::time::SystemTime;

pub use filter::{Filter, PodPattern, VerdictFilter};
pub use hub::{Hub, Request};

/// The agent's default observe socket.
pub const DEFAULT_SOCKET: &str = "/run/palisade/observe.sock";

/// What `observe` shows — a policy action record or a flow record —, seen the same way by the
/// filters, the formats, the file reader and the live view, so that neither has its own copy.
pub trait Observable: DeserializeOwned + Send + Sync + 'static {
    /// What one is called in messages (`policy action record`).
    const WHAT: &'static str;
    /// The table's header row.
    const HEADER: &'static [&'static str];
    /// Source and destination.
    fn ends(&self) -> (&Peer, &Peer);
    /// Source and destination ports (0: none).
    fn ports(&self) -> (u16, u16);
    /// The protocol.
    fn protocol(&self) -> Protocol;
    /// Allowed or denied.
    fn disposition(&self) -> Disposition;
    /// Let through by audit mode although policy denies it.
    fn audit(&self) -> bool;
    /// When it happened (records of several files are ordered by it).
    fn time(&self) -> SystemTime;
    /// One line, Hubble-like.
    fn compact(&self) -> String;
    /// One table row, a cell per [`Self::HEADER`] column.
    fn row(&self) -> Vec<String>;
    /// As written to its log: one JSON line with its newline.
    fn to_line(&self) -> String;
}
