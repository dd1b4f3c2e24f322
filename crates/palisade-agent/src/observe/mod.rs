//! `palisade observe`: the live stream of verdict events from a running agent ([`hub`]), or the
//! records of `policy_action.log` files ([`mod@file`]), filtered ([`filter`]) and printed ([`mod@format`]).

pub mod file;
pub mod filter;
pub mod format;
pub mod hub;

pub use filter::{Filter, PodPattern, VerdictFilter};
pub use hub::{Hub, Request};

/// The agent's default observe socket.
pub const DEFAULT_SOCKET: &str = "/run/palisade/observe.sock";
