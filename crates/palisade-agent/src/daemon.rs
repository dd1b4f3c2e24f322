//! Running an agent from its [`Config`]: once (apply and exit), or as the node's daemon — the
//! metrics server, the live view, policy action logging from the kernel's verdict events, and the
//! reconcile loop until SIGTERM or SIGINT.

use crate::config::{Config, Input};
use crate::flow_log::{self, FlowLogger};
use crate::metrics::{self, Metrics};
use crate::observe::{self, Hub};
use crate::policy_log::{self, PolicyLogger};
use crate::reconcile::{Outcome, Reconciler, Source};
use crate::status_out::{StatusFile, StatusOut};
use palisade_dataplane::events::EventReader;
use palisade_dataplane::netns::within_netns;
use palisade_kube::events::EventWriter;
use palisade_model::ClusterState;
use palisade_policy::{CompiledTable, Enforcement, Engines};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Why the agent could not start. The messages are those `palisade agent` prints after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API server's configuration is unusable (no kubeconfig, a bad one).
    #[error("{0}")]
    Source(#[from] palisade_kube::SourceError),
    /// The metrics server cannot listen.
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// A stop signal's handler cannot be installed.
    #[error("handling signal {signal}: {source}")]
    Signal {
        signal: i32,
        #[source]
        source: io::Error,
    },
    /// The live view's socket cannot be served (the error names the path).
    #[error("policy action logging: {source}")]
    ObserveSocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The policy action log cannot be opened (the error names the path).
    #[error("policy action logging: {source}")]
    PolicyLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The flow log cannot be opened (the error names the path).
    #[error("flow log: {source}")]
    FlowLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `--deny-events` without this node's name.
    #[error("--deny-events needs this node's name (--node-name or NODE_NAME): Events are written for the pods of this node only")]
    DenyEventsWithoutNode,
    /// The kernel's verdict events cannot be read in the namespace.
    #[error("policy action logging: {source}")]
    Events {
        netns: Option<String>,
        #[source]
        source: io::Error,
    },
}

/// What [`once`] did.
#[derive(Debug)]
pub struct OnceReport {
    /// The pass's outcome.
    pub outcome: Outcome,
    /// Some part of the agent is not as it should be (see [`crate::health::Health`]).
    pub degraded: bool,
}

impl OnceReport {
    /// True when everything was applied: nothing rejected, nothing failed, nothing degraded.
    pub fn clean(&self) -> bool {
        !self.degraded
            && !matches!(
                self.outcome,
                Outcome::Failed(_) | Outcome::Waiting(_) | Outcome::Applied { rejected: 1.., .. }
            )
    }
}

/// The ruleset the agent would apply for `state`, as an `nft -f` script (`--dry-run`): staged
/// policies left out of enforcement and their classes marked, as a pass does.
pub fn script(state: ClusterState, enforcement: Enforcement) -> String {
    let engines = Engines::new(Arc::new(state));
    let table = CompiledTable::of(&engines.enforced, enforcement);
    palisade_dataplane::render(&engines.mark_staged(table))
}

/// One pass: reads the source (starting from the last good state; an API server: once every kind
/// has been listed, waiting at most the request timeout), applies it, writes the state file, and
/// reports; no watching, no logging.
pub fn once(config: &Config) -> Result<OnceReport, AgentError> {
    let mut reconciler = reconciler(config)?;
    if let Input::Cluster(connection) = &config.input {
        let deadline = std::time::Instant::now() + connection.request_timeout;
        while !reconciler.source_synced() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let outcome = reconciler.reconcile();
    if let Outcome::Waiting(why) = &outcome {
        tracing::error!("{why}");
    }
    if let Input::Cluster(connection) = &config.input {
        warn_of_foreign_policies(connection);
    }
    reconciler.write_state(true);
    Ok(OnceReport {
        outcome,
        degraded: reconciler.health().degraded(),
    })
}

/// Runs the agent until SIGTERM or SIGINT: then open deny windows are written out, and the kernel
/// keeps enforcing the last ruleset. Fails only while starting.
pub fn run(config: &Config) -> Result<(), AgentError> {
    let reconciler = reconciler(config)?;
    let (metrics, health) = (reconciler.metrics().clone(), reconciler.health().clone());
    if let Some(addr) = config.metrics_addr {
        let bound = metrics::serve(addr, metrics.clone(), health)
            .map_err(|source| AgentError::Metrics { addr, source })?;
        tracing::info!("metrics at http://{bound}/metrics");
    }
    let stop = stop_on_signals()?;
    if let Input::Cluster(connection) = &config.input {
        // Off the loop: an aggregated API that hangs must not hold enforcement back.
        let connection = connection.clone();
        let asked = std::thread::Builder::new().name("foreign-policies".into());
        if let Err(e) = asked.spawn(move || warn_of_foreign_policies(&connection)) {
            tracing::debug!(%e, "cannot ask for the policies of other plugins");
        }
    }
    let events = start_events(config, &metrics)?;
    // The live view: verdicts from the policy action log, flows from the flow log.
    let hub = Arc::new(Hub::default());
    let (logger, logging) = start_logging(config, &hub, metrics, stop.clone(), events.as_ref())?;
    let flows = start_flow_log(config, &reconciler, &logger, hub, stop.clone())?;
    let mut reconciler = reconciler.with_logger(logger).restoring_last_good();
    // The status is renewed only while the loop turns: a stuck agent's goes stale.
    let health = reconciler.health().clone();
    let alive = move || health.alive().is_ok();
    match (&config.input, &config.enforcement.node, &config.status_file) {
        (Input::Cluster(connection), Some(node), _) => {
            let keeper = palisade_kube::status::LeaseKeeper::start(connection, node, alive)?;
            reconciler = reconciler.with_status(StatusOut::Lease(keeper), node);
        }
        (Input::Cluster(_), None, _) => tracing::warn!(
            "no node name (--node-name, NODE_NAME): this agent enforces every pod and keeps no Lease, so `palisade status` cannot see it"
        ),
        (Input::Manifests(_), _, Some(path)) => {
            let file = StatusFile::start(path.clone(), alive);
            reconciler = reconciler.with_status(StatusOut::File(file), &config.logging.node_name());
        }
        (Input::Manifests(_), _, None) => {}
    }
    crate::watch::run(&mut reconciler, &stop);
    stop.store(true, Ordering::Relaxed);
    let _ = logging.join();
    if let Some(flows) = flows {
        let _ = flows.join();
    }
    drop(events);
    tracing::info!("agent stopped; the kernel keeps the last ruleset");
    Ok(())
}

/// Warns of the network policy kinds of other plugins the cluster holds objects of: the agent
/// enforces none of them (what `matrix` and `explain` say of a cluster, said in the agent's log).
fn warn_of_foreign_policies(connection: &palisade_kube::Connection) {
    match palisade_kube::foreign_policies(connection) {
        Ok(found) => {
            for f in found {
                let holds = if f.unreadable { "may hold" } else { "holds" };
                tracing::warn!(
                    api_version = %f.api_version,
                    kind = %f.kind,
                    url = %f.url,
                    "the cluster {holds} {} objects: this kind {}",
                    f.kind,
                    palisade_model::UNENFORCED
                );
            }
        }
        Err(e) => tracing::debug!(%e, "cannot ask for the policies of other plugins"),
    }
}

/// The reconciler `config` describes, starting from its state file (with metrics and health of its
/// own, which [`run`] serves); an API server is followed from now on.
fn reconciler(config: &Config) -> Result<Reconciler, AgentError> {
    let source = match &config.input {
        Input::Manifests(folder) => Source::Folder(folder.clone()),
        Input::Cluster(connection) => {
            let watch = palisade_kube::Watch::start(connection)?;
            tracing::info!(server = %watch.server(), "following the API server");
            Source::Cluster(watch)
        }
    };
    let reconciler = Reconciler::reading(source, config.netns.clone());
    let reconciler = match config.strict {
        true => reconciler.strict(),
        false => reconciler,
    };
    Ok(reconciler
        .with_pinned_ips(config.pinned_ips.clone())
        .with_source(config.source)
        .with_enforcement(config.enforcement.clone())
        // After the source: its limits apply to the state file read.
        .with_state_file(config.state_file()))
}

/// A flag that SIGTERM and SIGINT set: the agent stops cleanly.
fn stop_on_signals() -> Result<Arc<AtomicBool>, AgentError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|source| AgentError::Signal { signal, source })?;
    }
    Ok(stop)
}

/// Following an API server, starts writing Kubernetes Events (as this node; drops counted in
/// `metrics`): `NetworkLogging` changes, and with `--deny-events` denials.
fn start_events(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Option<(EventWriter, Option<String>)>, AgentError> {
    let Input::Cluster(connection) = &config.input else {
        return Ok(None);
    };
    let deny_events = match (config.deny_events, &config.enforcement.node) {
        (false, _) => None,
        (true, Some(node)) => Some(node.clone()),
        (true, None) => return Err(AgentError::DenyEventsWithoutNode),
    };
    let instance = config.logging.node_name();
    let limits = palisade_kube::events::Limits::default();
    let writer = EventWriter::start(connection, &instance, limits, metrics.event_drops())?;
    Ok(Some((writer, deny_events)))
}

/// Serves the live view `hub`, opens the policy action log (telling what `events` says as
/// Kubernetes Events) and starts the thread that feeds it from the kernel's verdict events until
/// `stop` is set.
fn start_logging(
    config: &Config,
    hub: &Arc<Hub>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    events: Option<&(EventWriter, Option<String>)>,
) -> Result<(Arc<Mutex<PolicyLogger>>, JoinHandle<()>), AgentError> {
    let opts = &config.logging;
    let (path, node, socket) = (opts.policy_log(), opts.node_name(), opts.observe_socket());
    observe::hub::serve(&socket, hub.clone(), opts.group, metrics.clone()).map_err(|source| {
        AgentError::ObserveSocket {
            path: socket.clone(),
            source,
        }
    })?;
    let logger = PolicyLogger::new(&path, &node, &opts.limits, opts.group, metrics.clone())
        .map_err(|source| AgentError::PolicyLog {
            path: path.clone(),
            source,
        })?
        .with_hub(hub.clone());
    let logger = match events {
        Some((writer, deny_events)) => logger.with_events(writer.recorder(), deny_events.clone()),
        None => logger,
    };
    tracing::info!(path = %path.display(), node, socket = %socket.display(), "policy action log and live view");
    let logger = Arc::new(Mutex::new(logger));
    let reader = within_netns(config.netns.as_deref(), EventReader::open).map_err(|source| {
        AgentError::Events {
            netns: config.netns.clone(),
            source,
        }
    })?;
    let shared = logger.clone();
    let thread = std::thread::spawn(move || {
        if let Err(e) = policy_log::run(reader, &shared, &metrics, &stop) {
            tracing::error!("reading verdict events: {e}; policy action logging stopped");
        }
    });
    Ok((logger, thread))
}

/// With `--flow-log`, opens the flow log and starts the thread that writes it (and shows it to
/// `observe --flows` through `hub`) until `stop` is set, attributing with the engines `logger`
/// holds.
fn start_flow_log(
    config: &Config,
    reconciler: &Reconciler,
    logger: &Arc<Mutex<PolicyLogger>>,
    hub: Arc<Hub>,
    stop: Arc<AtomicBool>,
) -> Result<Option<JoinHandle<()>>, AgentError> {
    let opts = &config.logging;
    let Some(path) = &opts.flow_log else {
        return Ok(None);
    };
    if same_file(path, &opts.policy_log()) {
        let clash = std::io::Error::other(format!(
            "{}: the flow log cannot be the policy action log",
            path.display()
        ));
        return Err(AgentError::FlowLog {
            path: path.clone(),
            source: clash,
        });
    }
    let (node, metrics) = (opts.node_name(), reconciler.metrics().clone());
    let flows = FlowLogger::new(path, &node, &opts.flow_limits, opts.group, metrics)
        .map_err(|source| AgentError::FlowLog {
            path: path.clone(),
            source,
        })?
        .with_enforcement(config.enforcement.clone())
        .with_hub(hub);
    tracing::info!(path = %path.display(), interval = ?opts.flow_limits.interval, "flow log");
    let (netns, policy, health) = (
        config.netns.clone(),
        logger.clone(),
        reconciler.health().clone(),
    );
    let thread = std::thread::Builder::new()
        .name("flow-log".into())
        .spawn(move || flow_log::run(flows, netns, &policy, &health, &stop))
        .map_err(|source| AgentError::FlowLog {
            path: path.clone(),
            source,
        })?;
    Ok(Some(thread))
}

/// `a` and `b` name the same file, however named: a relative path, a linked folder.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    let canonical = |p: &std::path::Path| {
        let folder = (p.parent())
            .map(|f| match f.as_os_str().is_empty() {
                true => std::path::Path::new("."),
                false => f,
            })
            .and_then(|f| std::fs::canonicalize(f).ok());
        folder.zip(p.file_name()).map(|(f, n)| f.join(n))
    };
    a == b || canonical(a).is_some_and(|a| Some(a) == canonical(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_pass_is_clean_only_when_nothing_was_rejected_failed_or_degraded() {
        let report = |outcome, degraded| OnceReport { outcome, degraded };
        let applied = |rejected| Outcome::Applied {
            rejected,
            elapsed: Duration::ZERO,
        };
        assert!(report(applied(0), false).clean());
        assert!(report(Outcome::Unchanged, false).clean());
        assert!(!report(applied(1), false).clean());
        assert!(!report(Outcome::Failed("refused".into()), false).clean());
        assert!(!report(Outcome::Unchanged, true).clean());
    }

    #[test]
    fn the_same_file_is_recognised_however_named() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("logs");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(same_file(&real.join("a.log"), &link.join("a.log")));
        assert!(same_file(&real.join("a.log"), &real.join("./a.log")));
        assert!(!same_file(&real.join("a.log"), &real.join("b.log")));
        assert!(same_file(
            std::path::Path::new("x.log"),
            std::path::Path::new("./x.log")
        ));
    }

    #[test]
    fn a_setup_error_says_what_was_being_set_up() {
        let refused = || io::Error::from(io::ErrorKind::AddrInUse);
        let metrics = AgentError::Metrics {
            addr: "127.0.0.1:9090".parse().unwrap(),
            source: refused(),
        };
        assert!(metrics
            .to_string()
            .starts_with("serving metrics on 127.0.0.1:9090: "));
        let log = AgentError::PolicyLog {
            path: "/x/policy_action.log".into(),
            source: io::Error::other("/x/policy_action.log: is a symbolic link"),
        };
        assert_eq!(
            log.to_string(),
            "policy action logging: /x/policy_action.log: is a symbolic link"
        );
    }
}
