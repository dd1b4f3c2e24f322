//! What an agent enforces and how, as data: the `palisade agent` command line converts its flags
//! into a [`Config`], and [`crate::run`] or [`crate::once`] does the rest. Paths left unset take
//! the agent's defaults.

use crate::flow_log::FlowLimits;
use crate::policy_log::{self, Limits};
use crate::reconcile::SourceOptions;
use crate::{observe, state_file};
use palisade_policy::Enforcement;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Where an agent reads the objects it enforces.
#[derive(Clone, Debug)]
pub enum Input {
    /// A manifests folder (watched by [`crate::run`]).
    Manifests(PathBuf),
    /// A cluster's API server, listed and watched.
    Cluster(palisade_kube::Connection),
}

/// An agent's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// What to enforce.
    pub input: Input,
    /// The network namespace to enforce in; `None`: the agent's own.
    pub netns: Option<String>,
    /// Pod addresses kept whatever the manifests say, by `ns/name` (a lab's pods, built with
    /// them; see [`palisade_model::Loader::pin_ips`]).
    pub pinned_ips: Vec<(palisade_model::PodKey, IpAddr)>,
    /// How a folder is read, and the bounds on what the input may make the agent build.
    pub source: SourceOptions,
    /// Whose pods this node enforces, and where audit mode applies.
    pub enforcement: Enforcement,
    /// Where the objects in force are written for a restart (default
    /// [`state_file::DEFAULT_PATH`]).
    pub state_file: Option<PathBuf>,
    /// Policy action logging and the live view.
    pub logging: LogConfig,
    /// Serve Prometheus metrics (and the health endpoints) on this address.
    pub metrics_addr: Option<SocketAddr>,
    /// Where to say what is enforced, without an API server (a lab's agent); a cluster's agent
    /// keeps its node's Lease instead.
    pub status_file: Option<PathBuf>,
    /// Following an API server: also write a Kubernetes Event on a pod of this node whenever its
    /// policies drop a connection (`--deny-events`; needs the node's name).
    pub deny_events: bool,
    /// Cut the established connections a new ruleset denies (`--strict`), rather than let them
    /// run until they close.
    pub strict: bool,
}

/// Policy action logging and the live view.
#[derive(Clone, Debug, Default)]
pub struct LogConfig {
    /// The policy action log (default [`policy_log::DEFAULT_PATH`]).
    pub policy_log: Option<PathBuf>,
    /// The node name written into records (default: the host name).
    pub node_name: Option<String>,
    /// The live view's Unix socket (default [`observe::DEFAULT_SOCKET`]).
    pub observe_socket: Option<PathBuf>,
    /// Group owner of the log files, the socket and the folders made for them (default: the
    /// agent's own group).
    pub group: Option<u32>,
    /// Aggregation, rate and rotation limits.
    pub limits: Limits,
    /// The flow log (`--flow-log`); off when `None`.
    pub flow_log: Option<PathBuf>,
    /// The flow log's interval, bounds and rotation.
    pub flow_limits: FlowLimits,
}

impl Config {
    /// Enforces `manifests` in the agent's own namespace, with every other setting at its default.
    pub fn new(manifests: PathBuf) -> Config {
        Config {
            input: Input::Manifests(manifests),
            netns: None,
            pinned_ips: Vec::new(),
            source: SourceOptions::default(),
            enforcement: Enforcement::default(),
            state_file: None,
            logging: LogConfig::default(),
            metrics_addr: None,
            status_file: None,
            deny_events: false,
            strict: false,
        }
    }

    /// The state file, default or given.
    pub(crate) fn state_file(&self) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| state_file::DEFAULT_PATH.into())
    }
}

impl LogConfig {
    /// The policy action log, default or given.
    pub(crate) fn policy_log(&self) -> PathBuf {
        self.policy_log
            .clone()
            .unwrap_or_else(|| policy_log::DEFAULT_PATH.into())
    }

    /// The observe socket, default or given.
    pub(crate) fn observe_socket(&self) -> PathBuf {
        self.observe_socket
            .clone()
            .unwrap_or_else(|| observe::DEFAULT_SOCKET.into())
    }

    /// The node name, given or the host's.
    pub(crate) fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(host_name)
    }
}

/// The host name (for records' `node_name`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
