//! The Kubernetes API server as a source of the objects Palisade reads, through kube-rs: the same
//! kinds a manifests folder gives (Namespaces, Pods, Services, NetworkPolicies and GKE's
//! NetworkLogging), listed and handed to the model's [`Loader`] as documents, so that an object
//! from the API server is validated, reported and indexed exactly like one from a file.
//!
//! Listing is read-only, paginated (500 objects a page) and bounded: each request must answer within
//! the request timeout, a kind may have so many objects, a page token may not come back. The
//! NetworkLogging kind is optional: a cluster without its CRD, or a user who may not read it, has
//! no logging configuration. Workloads are not listed — the API server has their pods.

use kube::api::{ListParams, ObjectList};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use palisade_model::Loader;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Objects asked for per page of a list.
const PAGE: u32 = 500;

/// A kind Palisade lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedKind {
    /// Its name.
    pub kind: &'static str,
    /// Its `apiVersion`.
    pub api_version: &'static str,
    /// The path of its cluster-wide list.
    pub path: &'static str,
    /// Left out, not an error, when the cluster does not serve it (its CRD not installed, or not
    /// readable).
    pub optional: bool,
}

/// The kinds Palisade reads, in the order listed (what `deploy/rbac-reader.yaml` grants).
pub const KINDS: [ListedKind; 5] = [
    ListedKind {
        kind: "Namespace",
        api_version: "v1",
        path: "/api/v1/namespaces",
        optional: false,
    },
    ListedKind {
        kind: "Pod",
        api_version: "v1",
        path: "/api/v1/pods",
        optional: false,
    },
    ListedKind {
        kind: "Service",
        api_version: "v1",
        path: "/api/v1/services",
        optional: false,
    },
    ListedKind {
        kind: "NetworkPolicy",
        api_version: "networking.k8s.io/v1",
        path: "/apis/networking.k8s.io/v1/networkpolicies",
        optional: false,
    },
    ListedKind {
        kind: "NetworkLogging",
        api_version: "networking.gke.io/v1alpha1",
        path: "/apis/networking.gke.io/v1alpha1/networkloggings",
        optional: true,
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
}

impl Default for Connection {
    fn default() -> Connection {
        Connection {
            kubeconfig: None,
            context: None,
            request_timeout: Duration::from_secs(30),
            max_objects: palisade_model::Limits::default().max_pods,
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
    #[error("cannot list {kind} from {server}: {source}")]
    List {
        /// The kind.
        kind: &'static str,
        /// The API server.
        server: String,
        /// Why.
        source: kube::Error,
    },
    /// A list request took too long.
    #[error("cannot list {kind} from {server}: no answer within {timeout:?} (--request-timeout)")]
    Timeout {
        /// The kind.
        kind: &'static str,
        /// The API server.
        server: String,
        /// The limit.
        timeout: Duration,
    },
    /// A list went past the bounds: more objects than allowed, or a page token seen before.
    #[error("cannot list {kind} from {server}: {why}")]
    Unbounded {
        /// The kind.
        kind: &'static str,
        /// The API server.
        server: String,
        /// What went past which bound.
        why: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the client runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What a listing read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    /// The API server.
    pub server: String,
    /// Objects per kind, in the order listed.
    pub counts: Vec<(&'static str, usize)>,
    /// Optional kinds left out, and why (say, `NetworkLogging: 403 ...`).
    pub skipped: Vec<String>,
}

/// Lists every kind Palisade reads from the cluster `connection` names into `loader`, each list
/// as one multi-document text named `<server><path>` with one object per document (the n-th
/// object at line 2n − 1). Objects go to the loader as the API server wrote them (its unknown
/// fields included), with the `apiVersion` and `kind` list items leave out: one malformed object
/// is rejected there, with its kind, name and field, and the others are kept.
pub fn list_into(connection: &Connection, loader: &mut Loader) -> Result<Listed, SourceError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SourceError::Runtime)?;
    runtime.block_on(async {
        let config = config(connection).await?;
        let server = config.cluster_url.to_string();
        let server = server.trim_end_matches('/').to_string();
        let client = Client::try_from(config).map_err(SourceError::Client)?;
        let lister = Lister {
            client: &client,
            server: &server,
            connection,
        };
        let mut listed = Listed {
            server: server.clone(),
            ..Listed::default()
        };
        for ListedKind {
            kind,
            api_version,
            path,
            optional,
        } in KINDS
        {
            let items = match lister.all(kind, path).await {
                Err(SourceError::List {
                    source: kube::Error::Api(status),
                    ..
                }) if optional && matches!(status.code, 403 | 404) => {
                    listed
                        .skipped
                        .push(format!("{kind}: {} {}", status.code, status.message));
                    Vec::new()
                }
                other => other?,
            };
            listed.counts.push((kind, items.len()));
            let documents: Vec<String> = (items.into_iter())
                .map(|item| typed(item, api_version, kind).to_string())
                .collect();
            loader.load_str(&format!("{server}{path}"), &documents.join("\n---\n"));
        }
        Ok(listed)
    })
}

/// `item` with the `apiVersion` and `kind` that the items of a list leave out.
fn typed(mut item: Value, api_version: &str, kind: &str) -> Value {
    if let Value::Object(fields) = &mut item {
        for (field, value) in [("apiVersion", api_version), ("kind", kind)] {
            fields
                .entry(field)
                .or_insert_with(|| Value::String(value.into()));
        }
    }
    item
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

/// Lists kinds, page by page, within bounds.
struct Lister<'a> {
    client: &'a Client,
    server: &'a str,
    connection: &'a Connection,
}

impl Lister<'_> {
    /// Every object at `path`, as the API server wrote it, following the continue token.
    async fn all(&self, kind: &'static str, path: &str) -> Result<Vec<Value>, SourceError> {
        let unbounded = |why: String| SourceError::Unbounded {
            kind,
            server: self.server.to_string(),
            why,
        };
        let (timeout, max) = (self.connection.request_timeout, self.connection.max_objects);
        let mut objects = Vec::new();
        let mut tokens = std::collections::HashSet::new();
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let request = (kube::core::Request::new(path).list(&params))
                .map_err(|e| unbounded(format!("cannot ask for the next page: {e}")))?;
            let page = tokio::time::timeout(timeout, self.client.request(request));
            let page: ObjectList<Value> = page
                .await
                .map_err(|_| SourceError::Timeout {
                    kind,
                    server: self.server.to_string(),
                    timeout,
                })?
                .map_err(|source| SourceError::List {
                    kind,
                    server: self.server.to_string(),
                    source,
                })?;
            objects.extend(page.items);
            if objects.len() > max {
                return Err(unbounded(format!("more than {max} objects")));
            }
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) if !tokens.insert(token.clone()) => {
                    return Err(unbounded(format!(
                        "the server repeated page token {token:?}"
                    )))
                }
                Some(token) => params = params.continue_token(&token),
                None => return Ok(objects),
            }
        }
    }
}
