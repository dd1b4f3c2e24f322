//! What a node's agent says of itself, as its Lease carries it (see `palisade_kube::status`):
//! read by `palisade status` to tell where NetworkPolicy is enforced.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// How far in the future a renewal may be and still count (clocks differ between machines).
const SKEW: Duration = Duration::from_secs(60);

/// Whether a status renewed at `renewed`, lasting `duration`, is fresh at `now`: renewed within its
/// duration, and not more than a minute ahead of `now` (a renewal in the future would keep a dead
/// agent fresh until then).
pub fn fresh(renewed: Option<SystemTime>, duration: Duration, now: SystemTime) -> bool {
    renewed.is_some_and(|at| match now.duration_since(at) {
        Ok(age) => age <= duration,
        Err(ahead) => ahead.duration() <= SKEW,
    })
}

/// What an agent says of itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// The node it enforces.
    pub node: String,
    /// Its version.
    pub version: String,
    /// When the kernel last took its ruleset (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<String>,
    /// Pods enforced on the node.
    pub pods: usize,
    /// Policies enforced there (those selecting one of its pods, audit mode aside).
    pub policies: usize,
    /// What is degraded (readiness problems), if anything.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Each policy enforced there (`ns/name`) and the `metadata.generation` it enforces.
    #[serde(default)]
    pub applied: BTreeMap<String, i64>,
    /// Each policy there in audit mode only (it drops nothing), and its generation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audited: BTreeMap<String, i64>,
}

/// What an agent without an API server (a lab's) writes to its status file instead of a Lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    /// When it was written, in seconds since the Unix epoch.
    pub renewed: f64,
    /// How long it stays fresh without being written again, in seconds.
    pub duration_seconds: u64,
    /// What the agent says.
    pub status: AgentStatus,
}
