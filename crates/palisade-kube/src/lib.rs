//! The Kubernetes API server as a source of the objects Palisade reads, through kube-rs: the same
//! kinds a manifests folder gives (Namespaces, Pods, Services, NetworkPolicies, Nodes, the
//! cluster-wide tiers' ClusterNetworkPolicies, AdminNetworkPolicies and
//! BaselineAdminNetworkPolicies, and GKE's NetworkLogging), as the model's per-object events ([`ObjectEvent`]) into an [`ObjectStore`],
//! which the model's [`palisade_model::Loader`] loads like files — so that an object from the API
//! server is validated, reported and indexed exactly like one from a file.
//!
//! Two ways to read: [`list_into`] lists every kind once (`palisade matrix|explain|status`);
//! [`Watch`] lists, then follows every kind (the agent), relisting when the server says the watch
//! is too old (410 Gone) and backing off when it cannot be reached. Both are bounded in time (each
//! request must answer within the request timeout; a watch, within its server-side timeout), in
//! objects (so many of a kind; a page token may not come back) and in bytes (a list page, a watch
//! event: `bounded.rs`). The NetworkLogging kind is optional: when the cluster does not serve it
//! (no CRD) or the user may not read it, it is left out, said, and holds nothing back. The tiers'
//! kinds are none when their CRDs are not installed, but refused, they hold like any required
//! kind. Workloads are not read — the API server has their pods. What is written is the agent's
//! own: its node's Lease ([`status`]) and its Events ([`events`]).

mod bounded;
pub mod bucket;
pub mod events;
mod foreign;
mod list;
pub mod status;
mod watch;

pub use foreign::Foreign;
pub use list::{list_into, Listed};
pub use watch::{KindHealth, SourceHealth, Watch};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use palisade_model::Kind;
use std::path::PathBuf;
use std::time::Duration;

/// A kind Palisade lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedKind {
    /// The kind.
    pub kind: Kind,
    /// The path of its cluster-wide list.
    pub path: &'static str,
    /// Left out, not an error, when the cluster does not serve it (its CRD not installed, or not
    /// readable).
    pub optional: bool,
    /// A custom resource: when the server does not have it (404, its CRD not installed) there is
    /// none of it. Refused (403) it is an error like any list failing, unless `optional`: a role
    /// that cannot read a kind must not make what that kind says look absent.
    pub custom: bool,
}

/// The kinds Palisade reads, in the order listed (what `deploy/rbac-reader.yaml` grants).
pub const KINDS: [ListedKind; 9] = [
    ListedKind {
        kind: Kind::Namespace,
        path: "/api/v1/namespaces",
        optional: false,
        custom: false,
    },
    ListedKind {
        kind: Kind::Pod,
        path: "/api/v1/pods",
        optional: false,
        custom: false,
    },
    ListedKind {
        kind: Kind::Service,
        path: "/api/v1/services",
        optional: false,
        custom: false,
    },
    ListedKind {
        kind: Kind::NetworkPolicy,
        path: "/apis/networking.k8s.io/v1/networkpolicies",
        optional: false,
        custom: false,
    },
    // Required: the cluster-wide tiers' `nodes` peers match node addresses, and a node left out
    // would change what is allowed or denied.
    ListedKind {
        kind: Kind::Node,
        path: "/api/v1/nodes",
        optional: false,
        custom: false,
    },
    // The cluster-wide tiers: custom resources, none where their CRDs are not installed; but
    // refused (403: a ClusterRole without them), the source holds as for a required kind — an
    // Admin Deny the agent cannot read must not look like no policy.
    ListedKind {
        kind: Kind::ClusterNetworkPolicy,
        path: "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies",
        optional: false,
        custom: true,
    },
    ListedKind {
        kind: Kind::AdminNetworkPolicy,
        path: "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies",
        optional: false,
        custom: true,
    },
    ListedKind {
        kind: Kind::BaselineAdminNetworkPolicy,
        path: "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies",
        optional: false,
        custom: true,
    },
    ListedKind {
        kind: Kind::NetworkLogging,
        path: "/apis/networking.gke.io/v1alpha1/networkloggings",
        optional: true,
        custom: true,
    },
];

/// Which cluster to read, as kubectl's `--kubeconfig`, `--context` and `--request-timeout` say,
/// and how much of it at most.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The kubeconfig file; `None`: `KUBECONFIG`, `~/.kube/config`, or the in-cluster service
    /// account, as kubectl would.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use; `None`: the kubeconfig's current one.
    pub context: Option<String>,
    /// How long one request (a page, its body included) may take.
    pub request_timeout: Duration,
    /// Objects of one kind at most: a larger cluster (or a server that does not stop) is an
    /// error, not unbounded memory.
    pub max_objects: usize,
    /// Bytes of one list page at most (500 objects): a larger answer is an error, not memory.
    pub max_page_bytes: usize,
    /// How long an optional kind refused (403, 404) after it was listed keeps what was listed
    /// before it is taken for gone ([`Watch`]): a role being replaced, or an API server
    /// restarting, must not turn logging off.
    pub refused_hold: Duration,
}

impl Default for Connection {
    fn default() -> Connection {
        Connection {
            kubeconfig: None,
            context: None,
            request_timeout: Duration::from_secs(30),
            max_objects: palisade_model::Limits::default().max_pods,
            max_page_bytes: palisade_model::Limits::default().max_file_bytes as usize,
            refused_hold: Duration::from_secs(60),
        }
    }
}

/// Why the cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file (`KUBECONFIG` or `~/.kube/config` when none was given).
        path: String,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// No configuration was found (no kubeconfig, not in a cluster).
    #[error("no cluster to read: {0}; give --kubeconfig or -f")]
    Infer(#[source] kube::config::InferConfigError),
    /// The client could not be made (TLS, a bad server address).
    #[error("cannot reach the API server: {0}")]
    Client(#[source] kube::Error),
    /// A list request failed.
    #[error("cannot list {kind} from {server}: {why}")]
    List {
        /// The kind.
        kind: Kind,
        /// The API server.
        server: String,
        /// The HTTP status code of the server's error answer, if it answered with one.
        code: Option<u16>,
        /// Why.
        why: String,
    },
    /// A list request took too long.
    #[error("cannot list {kind} from {server}: no answer within {timeout:?} (--request-timeout)")]
    Timeout {
        /// The kind.
        kind: Kind,
        /// The API server.
        server: String,
        /// The limit.
        timeout: Duration,
    },
    /// A list went past the bounds: more objects than allowed, or a page token seen before.
    #[error("cannot list {kind} from {server}: {why}")]
    Unbounded {
        /// The kind.
        kind: Kind,
        /// The API server.
        server: String,
        /// What went past which bound.
        why: String,
    },
    /// The agents' Leases could not be listed.
    #[error(
        "cannot list the agents' Leases in {} from {server}: {why}",
        status::NAMESPACE
    )]
    Leases {
        /// The API server.
        server: String,
        /// Why.
        why: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the client runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl SourceError {
    /// Why `listed` is not served, when that is what this error says and the kind may be left
    /// out for it: an optional kind not readable (403) or not there (404), a custom resource whose
    /// CRD is not installed (404).
    fn not_served(&self, listed: &ListedKind) -> Option<String> {
        match self {
            SourceError::List {
                code: Some(code @ (403 | 404)),
                why,
                ..
            } if listed.optional || (*code == 404 && listed.custom) => Some(why.clone()),
            _ => None,
        }
    }
}

/// The network policy kinds of other plugins the cluster `connection` names holds objects of
/// (see `foreign.rs`): for the agent, which watches only the kinds it reads.
pub fn foreign_policies(connection: &Connection) -> Result<Vec<Foreign>, SourceError> {
    runtime()?.block_on(async {
        let (client, server) = client(connection).await?;
        let timeout = connection.request_timeout;
        Ok(foreign::foreign_policies(&client, &server, timeout).await)
    })
}

/// A runtime for the client, on the calling thread: the only async code in Palisade.
fn runtime() -> Result<tokio::runtime::Runtime, SourceError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SourceError::Runtime)
}

/// A future run on a thread of its own, in `runtime`, until dropped: then it is stopped (at its
/// next await) and the thread joined.
struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn spawn(
        name: &str,
        runtime: tokio::runtime::Runtime,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<Background, SourceError> {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(futures::future::select(Box::pin(work), stopped));
                // A blocking task (a DNS lookup) must not hold the owner's drop.
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })
            .map_err(SourceError::Runtime)?;
        Ok(Background {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A client of the cluster `connection` names, and its server's URL.
async fn client(connection: &Connection) -> Result<(Client, String), SourceError> {
    let mut config = config(connection).await?;
    // The client's own retries (429, 503, 504: up to 15, for minutes) would hide a failing server
    // behind a timeout: a failure is said at once, with the server's message, and retried here
    // with a backoff the health reports.
    config.default_retry = false;
    let server = config.cluster_url.to_string();
    let server = server.trim_end_matches('/').to_string();
    let client = Client::try_from(config).map_err(SourceError::Client)?;
    Ok((client, server))
}

/// The client configuration `connection` names.
async fn config(connection: &Connection) -> Result<Config, SourceError> {
    let options = KubeConfigOptions {
        context: connection.context.clone(),
        ..KubeConfigOptions::default()
    };
    let error = |path: String| {
        move |source| SourceError::Kubeconfig {
            path: path.clone(),
            source,
        }
    };
    match &connection.kubeconfig {
        Some(path) => {
            let error = error(path.display().to_string());
            let kubeconfig = Kubeconfig::read_from(path).map_err(&error)?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(error)
        }
        None if connection.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(error("KUBECONFIG or ~/.kube/config".into())),
        None => Config::infer().await.map_err(SourceError::Infer),
    }
}
