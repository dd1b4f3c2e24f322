//! The agent's Prometheus metrics (`prometheus-client`, OpenMetrics text) and the `/metrics` endpoint.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::health::Health;

/// Labels of a verdict: the enforcing side, the outcome and the policy it is attributed to (empty
/// for denials, which no single policy owns).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `allow` or `deny`.
    pub disposition: String,
    /// The enforcing pod's namespace.
    pub namespace: String,
    /// `namespace/name` of an allowing policy; empty for denials.
    pub policy: String,
}

/// Labels of a verdict a cluster-wide rule decided.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierRuleLabels {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `Accept` or `Deny`.
    pub action: String,
    /// `ClusterNetworkPolicy`, `AdminNetworkPolicy` or `BaselineAdminNetworkPolicy`.
    pub kind: String,
    /// The policy's name.
    pub policy: String,
    /// `Admin` or `Baseline`.
    pub tier: String,
    /// The rule's `name`, or `ingress[i]` / `egress[i]`.
    pub rule: String,
}

/// Labels of a connection whose verdict staged policies would change: what they would do, and
/// which policy (or cluster-wide rule) would decide it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StagedLabels {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `allow` or `deny`: what the staged policies would do.
    pub would: String,
    /// `NetworkPolicy`, `ClusterNetworkPolicy`, `AdminNetworkPolicy` or
    /// `BaselineAdminNetworkPolicy`.
    pub kind: String,
    /// `namespace/name` of a NetworkPolicy, the name of a cluster-wide policy.
    pub policy: String,
    /// A cluster-wide policy's rule (its `name`, or `ingress[i]` / `egress[i]`); empty for a
    /// NetworkPolicy.
    pub rule: String,
}

/// Labels of flow log traffic: the namespaces of its ends (empty for an end that is not a pod;
/// `_other` for the pairs beyond the flow log's bound).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowLabels {
    /// The source pod's namespace.
    pub src_namespace: String,
    /// The destination pod's namespace.
    pub dest_namespace: String,
}

/// A single `reason` (or `event`) label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: String,
}

/// A `direction` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `ingress` or `egress`.
    pub direction: String,
}

/// A `disposition` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DispositionLabel {
    /// `allow` or `deny`.
    pub disposition: String,
}

/// A `kind` label (`Pod`, `NetworkPolicy`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: String,
}

/// Labels of a rejection: the object's kind (empty when unknown) and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// `NetworkPolicy`, `Pod`, ...; empty for a file or document whose object is unknown.
    pub kind: String,
    /// `unreadable`, `syntax`, `decode`, `invalid`, `duplicate`, `address` or `limit`.
    pub reason: String,
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    /// Verdict events by direction, disposition, namespace and policy.
    pub verdicts: Family<VerdictLabels, Counter>,
    /// Would-be denials audit mode let through, by direction and namespace.
    pub audited: Family<VerdictLabels, Counter>,
    /// Verdict events a cluster-wide rule decided, by rule.
    pub tier_rules: Family<TierRuleLabels, Counter>,
    /// Connections whose verdict staged policies would change, by what they would do and who
    /// would decide it.
    pub staged: Family<StagedLabels, Counter>,
    /// Records written to the policy action log, by disposition.
    pub records: Family<DispositionLabel, Counter>,
    /// Records not written: `rate_limit`, `aggregation_full`, `write_error`.
    pub dropped: Family<ReasonLabel, Counter>,
    /// Deny aggregation windows currently open.
    pub open_keys: Gauge,
    /// Times the kernel dropped verdict events the agent did not read fast enough.
    pub events_lost: Counter,
    /// `NetworkLogging` changes: `UpdateNetworkLogging` or `InvalidNetworkLogging`.
    pub logging_config: Family<ReasonLabel, Counter>,
    /// Kubernetes Events not written: `queue_full`, `rate_limit`, `too_many_keys`, `write_error`.
    pub kube_events_dropped: Family<ReasonLabel, Counter>,
    /// Seconds from reading the manifests to the kernel holding the new ruleset.
    pub apply_seconds: Histogram,
    /// Rulesets that could not be built or applied (the kernel kept the previous one).
    pub apply_failures: Counter,
    /// Input rejected by the last pass, by kind and reason.
    pub objects_rejected: Family<RejectionLabels, Gauge>,
    /// Objects in force at their last good version after the last pass, by why.
    pub objects_held: Family<ReasonLabel, Gauge>,
    /// 1 while the agent is degraded (see `/readyz` for why), else 0.
    pub degraded: Gauge,
    /// 1 while the source is readable and watched, else 0.
    pub source_up: Gauge,
    /// Unix time of the last pass that read the source.
    pub source_last_read: Gauge<f64, AtomicU64>,
    /// Unix time of the source's last change: a watch event, or a change to the folder.
    pub source_last_event: Gauge<f64, AtomicU64>,
    /// The API server's objects held, by kind.
    pub source_objects: Family<KindLabel, Gauge>,
    /// Times a kind was listed afresh after its first list (its watch had to start over), by kind.
    pub source_relists: Family<KindLabel, Gauge>,
    /// Times the kernel's table was found altered or missing and was replaced, by why.
    pub drift_repairs: Family<ReasonLabel, Counter>,
    /// Observe clients turned away: `too_many_clients`, `request_too_large`, `request_timeout`,
    /// `bad_request`.
    pub observe_rejected: Family<ReasonLabel, Counter>,
    /// Established connections strict mode cut, by the direction whose rules deny them.
    pub strict_cut: Family<DirectionLabel, Counter>,
    /// Strict mode's sweeps and removals that did not complete: `list`, `delete`, `capped`.
    pub strict_failures: Family<ReasonLabel, Counter>,
    /// Bytes (both ways) the flow log told, by the namespaces of the ends.
    pub flow_bytes: Family<FlowLabels, Counter>,
    /// Connections the flow log saw start, by the namespaces of the ends.
    pub flow_connections: Family<FlowLabels, Counter>,
    /// Records written to the flow log.
    pub flow_records: Counter,
    /// What the flow log could not tell, by reason.
    pub flow_dropped: Family<ReasonLabel, Counter>,
    /// Connections the flow log's last listing held.
    pub flow_tracked: Gauge,
    /// Seconds each interval's close took: listing conntrack, accounting, writing the records.
    pub flow_close_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("palisade"),
            verdicts: Family::default(),
            audited: Family::default(),
            tier_rules: Family::default(),
            staged: Family::default(),
            records: Family::default(),
            dropped: Family::default(),
            open_keys: Gauge::default(),
            events_lost: Counter::default(),
            logging_config: Family::default(),
            kube_events_dropped: Family::default(),
            apply_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            apply_failures: Counter::default(),
            objects_rejected: Family::default(),
            objects_held: Family::default(),
            degraded: Gauge::default(),
            source_up: Gauge::default(),
            source_last_read: Gauge::default(),
            source_last_event: Gauge::default(),
            source_objects: Family::default(),
            source_relists: Family::default(),
            drift_repairs: Family::default(),
            observe_rejected: Family::default(),
            strict_cut: Family::default(),
            strict_failures: Family::default(),
            flow_bytes: Family::default(),
            flow_connections: Family::default(),
            flow_records: Counter::default(),
            flow_dropped: Family::default(),
            flow_tracked: Gauge::default(),
            flow_close_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        };
        m.register_policy_log();
        m.register_flow_log();
        m.register_dataplane();
        m.register_source();
        m
    }

    /// What the policy action log and `observe` saw and did.
    fn register_policy_log(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "policy_verdicts",
            "Verdict events (first packet of each new connection at an isolated pod)",
            self.verdicts.clone(),
        );
        registry.register(
            "tier_rule_verdicts",
            "Verdict events an Admin or Baseline rule (ClusterNetworkPolicy and the v1alpha1 kinds) decided",
            self.tier_rules.clone(),
        );
        registry.register(
            "policy_audit_verdicts",
            "Connections policy would deny that audit mode let through",
            self.audited.clone(),
        );
        registry.register(
            "policy_staged_verdicts",
            "Connections whose verdict staged policies (policy.palisade.dev/audit-mode) would change, by what they would do and the policy deciding it",
            self.staged.clone(),
        );
        registry.register(
            "policy_log_records",
            "Records written to the policy action log",
            self.records.clone(),
        );
        registry.register(
            "policy_log_dropped",
            "Policy action records dropped, by reason",
            self.dropped.clone(),
        );
        registry.register(
            "policy_log_open_aggregation_keys",
            "Deny aggregation windows open",
            self.open_keys.clone(),
        );
        registry.register(
            "verdict_events_lost",
            "Times the kernel dropped verdict events because the agent read too slowly",
            self.events_lost.clone(),
        );
        registry.register(
            "network_logging_config",
            "NetworkLogging configuration events",
            self.logging_config.clone(),
        );
        registry.register(
            "kube_events_dropped",
            "Kubernetes Events (NetworkLogging changes, denials) not written, by reason",
            self.kube_events_dropped.clone(),
        );
        registry.register(
            "observe_connections_rejected",
            "Observe clients turned away, by reason",
            self.observe_rejected.clone(),
        );
    }

    /// What the flow log saw and could not tell.
    fn register_flow_log(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "flow_bytes",
            "Bytes (both ways) of the connections the flow log told, by source and destination namespace (empty: not a pod)",
            self.flow_bytes.clone(),
        );
        registry.register(
            "flow_connections",
            "Connections the flow log saw start, by source and destination namespace (empty: not a pod)",
            self.flow_connections.clone(),
        );
        registry.register(
            "flow_log_records",
            "Records written to the flow log",
            self.flow_records.clone(),
        );
        registry.register(
            "flow_log_dropped",
            "What the flow log could not tell, by reason: rate_limit and write_error (records), too_many_connections (a listing stopped at its bound), too_many_endings, ending_unseen (connections whose last traffic is unknown) and endings_lost (times the kernel dropped endings, each time one or more), no_attribution (no ruleset yet), list_error",
            self.flow_dropped.clone(),
        );
        registry.register(
            "flow_log_connections",
            "Connections the flow log's last listing of conntrack held",
            self.flow_tracked.clone(),
        );
        registry.register(
            "flow_log_close_seconds",
            "Time the flow log took to close an interval: list conntrack, account, attribute and write the records",
            self.flow_close_seconds.clone(),
        );
    }

    /// How the kernel's table is kept: applies, failures, drift repaired.
    fn register_dataplane(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "ruleset_apply_seconds",
            "Time from reading the cluster state to the kernel holding the new ruleset",
            self.apply_seconds.clone(),
        );
        registry.register(
            "ruleset_apply_failures",
            "Rulesets that could not be built or applied",
            self.apply_failures.clone(),
        );
        registry.register(
            "drift_repairs",
            "Times the kernel's table was found altered or missing and was replaced",
            self.drift_repairs.clone(),
        );
        registry.register(
            "strict_connections_cut",
            "Established connections strict mode removed from conntrack because a policy change denies them, by the denying direction",
            self.strict_cut.clone(),
        );
        registry.register(
            "strict_failures",
            "Strict mode's conntrack listings and removals that did not complete, by reason (list, delete, capped)",
            self.strict_failures.clone(),
        );
    }

    /// What the last pass made of the source: rejections, held objects, degradation.
    fn register_source(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "objects_rejected",
            "Input rejected by the last pass (files, documents, objects), by kind and reason",
            self.objects_rejected.clone(),
        );
        registry.register(
            "objects_held",
            "Objects in force at their last good version, by reason (rejected, unreadable, removed)",
            self.objects_held.clone(),
        );
        registry.register(
            "degraded",
            "1 while the agent is degraded: input rejected, source unreadable, or kernel behind",
            self.degraded.clone(),
        );
        registry.register(
            "source_up",
            "1 while the source is readable and watched (the API server: every kind listed and followed)",
            self.source_up.clone(),
        );
        registry.register(
            "source_objects",
            "Objects of each kind the API server gave, held (a folder: not counted here)",
            self.source_objects.clone(),
        );
        registry.register(
            "source_relists",
            "Times each kind was listed afresh since the agent started (410 Gone, a watch that failed)",
            self.source_relists.clone(),
        );
        registry.register(
            "source_last_event_seconds",
            "Unix time of the source's last change: a watch event that changed an object, or a change to the folder",
            self.source_last_event.clone(),
        );
        registry.register(
            "source_last_read_seconds",
            "Unix time the source was last known current: the last pass that read the folder, or the API server followed without error",
            self.source_last_read.clone(),
        );
    }

    /// Counts one record `reason` in `family`.
    pub fn inc(family: &Family<ReasonLabel, Counter>, reason: &str) {
        family
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts the Kubernetes Events the writer drops, by why.
    pub fn event_drops(self: &Arc<Self>) -> palisade_kube::events::OnDrop {
        let metrics = self.clone();
        Arc::new(move |why| Metrics::inc(&metrics.kube_events_dropped, why))
    }

    /// The metrics in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Serves `GET /metrics`, `/readyz` (200, or 503 with one line per problem) and `/healthz` (200
/// while the agent's loop turns) on `addr` from a background thread; returns the bound address.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> std::io::Result<SocketAddr> {
    let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("metrics server is not on an IP address"))?;
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let text = |body: String, code: u16| {
                tiny_http::Response::from_string(body).with_status_code(code)
            };
            let response = match request.url() {
                "/metrics" => {
                    let header = tiny_http::Header::from_bytes(
                        "Content-Type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                    .expect("valid header");
                    tiny_http::Response::from_string(metrics.encode()).with_header(header)
                }
                "/readyz" => match health.ready() {
                    Ok(()) => text("ok\n".into(), 200),
                    Err(why) => text(why.join("\n") + "\n", 503),
                },
                "/healthz" => match health.alive() {
                    Ok(()) => text("ok\n".into(), 200),
                    Err(idle) => text(
                        format!("the agent's loop has not turned for {} s\n", idle.as_secs()),
                        503,
                    ),
                },
                _ => text("not found; try /metrics, /readyz or /healthz\n".into(), 404),
            };
            let _ = request.respond(response);
        }
    });
    Ok(bound)
}
