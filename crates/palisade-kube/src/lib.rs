//! The Kubernetes API server as a source of the objects Palisade reads, through kube-rs: the same
//! kinds a manifests folder gives (Namespaces, Pods, Services, NetworkPolicies and GKE's
//! NetworkLogging), listed and handed to the model's [`Loader`] as documents, so that an object
//! from the API server is validated, reported and indexed exactly like one from a file.
//!
//! Listing is read-only and paginated (500 objects a page). The NetworkLogging kind is optional: a
//! cluster without its CRD has no logging configuration. Workloads are not listed — the API
//! server has their pods.

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectList, TypeMeta};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use palisade_model::Loader;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::path::PathBuf;

/// Objects asked for per page of a list.
const PAGE: u32 = 500;

/// Which cluster to read, as kubectl's `--kubeconfig` and `--context` say.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// The kubeconfig file; `None`: `KUBECONFIG`, `~/.kube/config`, or the in-cluster service
    /// account, as kubectl would.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use; `None`: the kubeconfig's current one.
    pub context: Option<String>,
}

/// Why the cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file (or `default` for the one kubectl would use).
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
    /// The async runtime could not start.
    #[error("cannot start the client runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What a listing read: objects per kind, in the order listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    /// `(kind, how many)`.
    pub counts: Vec<(&'static str, usize)>,
}

/// Lists every kind Palisade reads from the cluster `connection` names into `loader`. Each list
/// becomes one multi-document text named after the server and the list's path, one object per
/// document (its line is its position).
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
        let mut listed = Listed::default();
        let mut add = |kind: &'static str, path: &str, documents: Vec<String>| {
            listed.counts.push((kind, documents.len()));
            loader.load_str(&format!("{server}{path}"), &documents.join("\n---\n"));
        };
        let lister = Lister {
            client: &client,
            server: &server,
        };
        add(
            "Namespace",
            "/api/v1/namespaces",
            lister.typed(Api::<Namespace>::all(client.clone())).await?,
        );
        add(
            "Pod",
            "/api/v1/pods",
            lister.typed(Api::<Pod>::all(client.clone())).await?,
        );
        add(
            "Service",
            "/api/v1/services",
            lister.typed(Api::<Service>::all(client.clone())).await?,
        );
        add(
            "NetworkPolicy",
            "/apis/networking.k8s.io/v1/networkpolicies",
            lister
                .typed(Api::<NetworkPolicy>::all(client.clone()))
                .await?,
        );
        add(
            "NetworkLogging",
            "/apis/networking.gke.io/v1alpha1/networkloggings",
            lister.network_logging().await?,
        );
        Ok(listed)
    })
}

/// The client configuration `connection` names.
async fn config(connection: &Connection) -> Result<Config, SourceError> {
    let options = KubeConfigOptions {
        context: connection.context.clone(),
        ..KubeConfigOptions::default()
    };
    match &connection.kubeconfig {
        Some(path) => {
            let error = |source| SourceError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kubeconfig = Kubeconfig::read_from(path).map_err(error)?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(error)
        }
        None if connection.context.is_some() => {
            Config::from_kubeconfig(&options)
                .await
                .map_err(|source| SourceError::Kubeconfig {
                    path: "default".into(),
                    source,
                })
        }
        None => Config::infer().await.map_err(SourceError::Infer),
    }
}

/// Lists kinds, page by page, as documents.
struct Lister<'a> {
    client: &'a Client,
    server: &'a str,
}

impl Lister<'_> {
    /// Every object of a built-in kind, each as a JSON document (k8s-openapi writes `apiVersion`
    /// and `kind`, which the items of an API list leave out).
    async fn typed<K>(&self, api: Api<K>) -> Result<Vec<String>, SourceError>
    where
        K: k8s_openapi::Resource + Clone + DeserializeOwned + Serialize + Debug,
        K: kube::Resource<DynamicType = ()>,
    {
        let kind = <K as k8s_openapi::Resource>::KIND;
        let mut documents = Vec::new();
        for object in self.all(kind, &api).await? {
            documents.push(serde_json::to_string(&object).expect("API objects serialise"));
        }
        Ok(documents)
    }

    /// The NetworkLogging objects, or none when the cluster does not have the CRD.
    async fn network_logging(&self) -> Result<Vec<String>, SourceError> {
        let gvk = GroupVersionKind::gvk("networking.gke.io", "v1alpha1", "NetworkLogging");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "networkloggings");
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let objects = match self.all("NetworkLogging", &api).await {
            Err(SourceError::List {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => Vec::new(),
            other => other?,
        };
        Ok((objects.into_iter())
            .map(|mut object| {
                object.types = Some(TypeMeta {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                });
                serde_json::to_string(&object).expect("API objects serialise")
            })
            .collect())
    }

    /// Every object `api` lists, following the continue token.
    async fn all<K>(&self, kind: &'static str, api: &Api<K>) -> Result<Vec<K>, SourceError>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let mut objects = Vec::new();
        let mut params = ListParams::default().limit(PAGE);
        loop {
            let page: ObjectList<K> =
                api.list(&params)
                    .await
                    .map_err(|source| SourceError::List {
                        kind,
                        server: self.server.to_string(),
                        source,
                    })?;
            objects.extend(page.items);
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(objects),
            }
        }
    }
}
