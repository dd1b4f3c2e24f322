//! The node agent: reads the cluster from a source (a manifests folder now, the API server later),
//! compiles it with the policy engine and keeps the kernel in step — the table replaced whole at
//! start, then patched (one atomic transaction per change), and the last good state kept whenever
//! input is rejected or a ruleset cannot be built or applied.
//!
//! [`run`] starts it from a [`Config`] (what `palisade agent` builds from its flags): the metrics
//! server, the live view, policy action logging and the reconcile loop, until SIGTERM or SIGINT;
//! [`once`] applies a single pass.

mod config;
mod daemon;
pub mod flow_log;
pub mod health;
mod host;
pub mod metrics;
pub mod observe;
pub mod policy_log;
mod reconcile;
pub mod record;
pub mod safe_fs;
pub mod state_file;
mod status_out;
mod strict;
mod watch;

pub use config::{Config, Input, LogConfig};
pub use daemon::{once, run, script, AgentError, OnceReport};
pub use reconcile::{Outcome, Reconciler, Source, SourceOptions};

/// Drops `value` on a short-lived thread: freeing a 10,000-pod engine or ruleset takes milliseconds
/// that a reconcile pass (or the logger, under its lock) need not wait for.
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    let spawned = std::thread::Builder::new()
        .name("drop".into())
        .spawn(move || drop(value));
    // Without a thread, the value was dropped in place: no harm but the wait.
    let _ = spawned;
}
