//! What each node's agent says of itself, for `palisade status`: one Lease per node in
//! [`NAMESPACE`], which the agent renews every [`RENEW`] with its [`AgentStatus`] as an annotation
//! (a Lease is the object Kubernetes has for "who is alive": kubelets' heartbeats are Leases too).
//! A Lease not renewed within its duration means no agent is enforcing on that node. `reports`
//! reads them, with the cluster's nodes.

use crate::list::Lister;
use crate::{client, runtime, Background, Connection, SourceError};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::Request;
use kube::Client;
use palisade_model::AgentStatus;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Where agents keep their Leases.
pub const NAMESPACE: &str = "palisade-system";
/// The label on agents' Leases.
pub const LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "palisade-agent");
/// The annotation holding an [`AgentStatus`] as JSON.
pub const ANNOTATION: &str = "palisade.dev/status";
/// How often an agent renews its Lease (and at most how stale what it says is).
pub const RENEW: Duration = Duration::from_secs(10);
/// How long a Lease stays fresh without renewal: four renewals missed.
pub const DURATION: Duration = Duration::from_secs(40);
/// The least time between two writes, however often the status changes (at 1,000 nodes, 200
/// writes a second at most).
const MIN_GAP: Duration = Duration::from_secs(5);
/// Nodes (and so agents' Leases) listed at most.
const MAX_NODES: usize = 100_000;

/// The collection of the agents' Leases.
fn leases() -> Request {
    Request::new(format!(
        "/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
    ))
}

/// The Lease of the agent of `node`.
pub fn lease_name(node: &str) -> String {
    format!("palisade-{node}")
}

/// An agent's Lease, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentLease {
    /// What the agent said.
    pub status: AgentStatus,
    /// When it last renewed its Lease.
    pub renewed: Option<SystemTime>,
    /// How long the Lease lasts without renewal.
    pub duration: Duration,
}

impl AgentLease {
    /// Renewed within its duration, as of `now` ([`palisade_model::fresh`]).
    pub fn fresh(&self, now: SystemTime) -> bool {
        palisade_model::fresh(self.renewed, self.duration, now)
    }
}

/// Keeps this node's Lease renewed with the latest status, on a thread of its own, until
/// dropped, while the agent is alive. A write that fails is logged (once per distinct error) and
/// tried again at the next renewal: a Lease left to expire is how `palisade status` learns of an
/// agent that cannot reach the API server, or whose loop is stuck.
pub struct LeaseKeeper {
    shared: Arc<Shared>,
    _writer: Background,
}

struct Shared {
    latest: Mutex<Option<AgentStatus>>,
    changed: tokio::sync::Notify,
    /// Whether the agent is alive (its loop turning): the Lease is renewed only then.
    alive: Box<dyn Fn() -> bool + Send + Sync>,
}

impl LeaseKeeper {
    /// Starts keeping the Lease of `node` in the cluster `connection` names, renewed while
    /// `alive` says the agent is.
    pub fn start(
        connection: &Connection,
        node: &str,
        alive: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Result<LeaseKeeper, SourceError> {
        let runtime = runtime()?;
        let (client, _) = runtime.block_on(client(connection))?;
        let shared = Arc::new(Shared {
            latest: Mutex::new(None),
            changed: tokio::sync::Notify::new(),
            alive: Box::new(alive),
        });
        let timeout = connection.request_timeout;
        let renew = renew(client, timeout, lease_name(node), shared.clone());
        let writer = Background::spawn("lease", runtime, renew)?;
        Ok(LeaseKeeper {
            shared,
            _writer: writer,
        })
    }

    /// Says `status` at the next write (at once, unless a write happened less than 5 s ago).
    pub fn publish(&self, status: AgentStatus) {
        let mut latest = self.shared.latest.lock().unwrap_or_else(|e| e.into_inner());
        if latest.as_ref() != Some(&status) {
            *latest = Some(status);
            self.shared.changed.notify_one();
        }
    }
}

/// Writes the Lease whenever the status changes and every [`RENEW`], forever.
async fn renew(client: Client, timeout: Duration, name: String, shared: Arc<Shared>) {
    let params = PatchParams::apply("palisade-agent").force();
    let mut failing: Option<String> = None;
    loop {
        let status = shared
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(status) = status.filter(|_| (shared.alive)()) {
            let lease = lease(&name, &status);
            let written = match leases().patch(&name, &params, &Patch::Apply(&lease)) {
                Ok(request) => {
                    let patch = crate::bounded::write(&client, request);
                    match tokio::time::timeout(timeout, patch).await {
                        Ok(written) => written.map_err(|e| e.to_string()),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            match written {
                Ok(_) if failing.is_some() => {
                    tracing::info!("Lease {NAMESPACE}/{name} renewed again");
                    failing = None;
                }
                Ok(_) => {}
                Err(why) => {
                    if failing.as_ref() != Some(&why) {
                        tracing::warn!("cannot renew Lease {NAMESPACE}/{name}: {why}; `palisade status` will show this node's agent as stale");
                        failing = Some(why);
                    }
                }
            }
        }
        tokio::time::sleep(MIN_GAP).await;
        let _ = tokio::time::timeout(RENEW - MIN_GAP, shared.changed.notified()).await;
    }
}

/// The Lease saying `status`, renewed now.
fn lease(name: &str, status: &AgentStatus) -> Lease {
    let now = k8s_openapi::jiff::Timestamp::now();
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            labels: Some(BTreeMap::from([(LABEL.0.into(), LABEL.1.into())])),
            annotations: Some(BTreeMap::from([(
                ANNOTATION.into(),
                serde_json::to_string(status).unwrap_or_default(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(status.node.clone()),
            lease_duration_seconds: Some(DURATION.as_secs() as i32),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// What the agents of a cluster report, and its nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reports {
    /// Every agent's Lease that could be read.
    pub agents: Vec<AgentLease>,
    /// Every node's name (empty when they may not be listed: then it is said in `unread`).
    pub nodes: Vec<String>,
    /// What could not be read: a Lease without a readable status, the nodes.
    pub unread: Vec<String>,
}

/// Every agent's Lease and every node of the cluster `connection` names, listed page by page
/// within the connection's bounds. A Lease without a readable status is skipped, nodes that may
/// not be listed are left out, and each is said so.
pub fn reports(connection: &Connection) -> Result<Reports, SourceError> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let (client, server) = client(connection).await?;
        let lister = Lister {
            client: &client,
            server: &server,
            connection,
        };
        let selector = format!("{}={}", LABEL.0, LABEL.1);
        let list = |params: &ListParams| leases().list(&params.clone().labels(&selector));
        let (items, _) =
            (lister.pages(list, MAX_NODES).await).map_err(|e| SourceError::Leases {
                server: server.clone(),
                why: e.to_string(),
            })?;
        let mut reports = Reports::default();
        for item in items {
            let name = (item.pointer("/metadata/name").and_then(|n| n.as_str()))
                .unwrap_or_default()
                .to_string();
            match agent_lease(item) {
                Ok(agent) => reports.agents.push(agent),
                Err(why) => reports
                    .unread
                    .push(format!("Lease {NAMESPACE}/{name}: {why}")),
            }
        }
        let nodes = |params: &ListParams| Request::new("/api/v1/nodes").list_metadata(params);
        match lister.pages(nodes, MAX_NODES).await {
            Ok((nodes, _)) => {
                reports.nodes = (nodes.iter())
                    .filter_map(|n| n.pointer("/metadata/name")?.as_str().map(String::from))
                    .collect()
            }
            Err(why) => reports.unread.push(format!(
                "cannot list Nodes: {why}; only the nodes hosting pods or agents are shown"
            )),
        }
        Ok(reports)
    })
}

/// An agent's Lease as listed, read; the error says why it cannot be.
fn agent_lease(item: serde_json::Value) -> Result<AgentLease, String> {
    let lease: Lease = serde_json::from_value(item).map_err(|e| format!("not a Lease: {e}"))?;
    let text = (lease.metadata.annotations.as_ref()).and_then(|a| a.get(ANNOTATION));
    let text = text.ok_or_else(|| format!("no {ANNOTATION} annotation"))?;
    let status = serde_json::from_str(text).map_err(|e| format!("{ANNOTATION}: {e}"))?;
    let spec = lease.spec.unwrap_or_default();
    Ok(AgentLease {
        status,
        renewed: spec.renew_time.map(|t| SystemTime::from(t.0)),
        duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_fresh_within_its_duration() {
        let now = SystemTime::now();
        let lease = |ago: u64| AgentLease {
            status: AgentStatus::default(),
            renewed: Some(now - Duration::from_secs(ago)),
            duration: DURATION,
        };
        assert!(lease(0).fresh(now));
        assert!(lease(40).fresh(now));
        assert!(!lease(41).fresh(now));
        let never = AgentLease {
            renewed: None,
            ..lease(0)
        };
        assert!(!never.fresh(now));
        let ahead = |secs| AgentLease {
            renewed: Some(now + Duration::from_secs(secs)),
            ..lease(0)
        };
        assert!(ahead(30).fresh(now), "clocks differ a little");
        assert!(!ahead(3600).fresh(now), "an hour ahead keeps nothing fresh");
    }

    #[test]
    fn a_status_reads_back_from_its_lease() {
        let status = AgentStatus {
            node: "n1".into(),
            version: "0.1.0".into(),
            last_applied: Some("2026-12-06T09:00:00Z".into()),
            pods: 3,
            policies: 1,
            errors: vec![],
            applied: BTreeMap::from([("shop/from-web".into(), 2)]),
            audited: BTreeMap::new(),
            truncated: false,
        };
        let lease = lease("palisade-n1", &status);
        let text = &lease.metadata.annotations.as_ref().unwrap()[ANNOTATION];
        assert_eq!(serde_json::from_str::<AgentStatus>(text).unwrap(), status);
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
    }
}
