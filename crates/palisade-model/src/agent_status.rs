//! What a node's agent says of itself, as its Lease carries it (see `palisade_kube::status`):
//! read by `palisade status` to tell where NetworkPolicy is enforced.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The most bytes of policy names an agent's status lists: Kubernetes refuses an object whose
/// annotations pass 256 KiB, and a Lease refused would show a working agent as gone.
pub const MAX_LISTED_BYTES: usize = 128 << 10;

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
    /// `applied` and `audited` were cut to fit a Lease's annotations ([`MAX_LISTED_BYTES`]): a
    /// policy missing from them is not known to be missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl AgentStatus {
    /// Sets what is enforced and audited, cut to [`MAX_LISTED_BYTES`] of names (in name order,
    /// enforced ones first) with [`AgentStatus::truncated`] set when anything was left out.
    pub fn set_policies(&mut self, applied: BTreeMap<String, i64>, audited: BTreeMap<String, i64>) {
        let mut budget = MAX_LISTED_BYTES;
        let mut fits = |name: &String| {
            let cost = name.len() + 24;
            let fits = cost <= budget;
            budget = budget.saturating_sub(cost);
            fits
        };
        let total = applied.len() + audited.len();
        self.policies = applied.len();
        self.applied = applied.into_iter().filter(|(n, _)| fits(n)).collect();
        self.audited = audited.into_iter().filter(|(n, _)| fits(n)).collect();
        self.truncated = self.applied.len() + self.audited.len() < total;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_listed_are_cut_to_fit_a_lease() {
        let names = |n: usize, len: usize| -> BTreeMap<String, i64> {
            (0..n).map(|i| (format!("{i:0len$}"), 1)).collect()
        };
        let mut status = AgentStatus::default();
        status.set_policies(names(3, 10), names(2, 10));
        assert_eq!((status.applied.len(), status.audited.len()), (3, 2));
        assert!(!status.truncated);
        // 800 policies of 300-byte names: 240 KB of names, over the budget.
        status.set_policies(names(800, 300), BTreeMap::new());
        assert!(status.truncated);
        assert_eq!(status.policies, 800);
        let listed: usize = status.applied.keys().map(|n| n.len() + 24).sum();
        assert!(
            listed <= MAX_LISTED_BYTES && listed > MAX_LISTED_BYTES - 400,
            "{listed}"
        );
        assert!(serde_json::to_string(&status).unwrap().len() < 200 << 10);
    }
}
