//! The node agent: reads the cluster from a source (a manifests folder now, the API server later),
//! compiles it with the policy engine and keeps the kernel in step — one atomic ruleset replacement per
//! change, and the last good state kept whenever a new one cannot be built or applied.

pub mod metrics;
pub mod observe;
pub mod policy_log;
mod reconcile;
mod watch;

pub use reconcile::{Outcome, Reconciler};
pub use watch::run;
