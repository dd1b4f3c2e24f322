//! Policy action logging, compatible with GKE Dataplane V2: verdict events from the kernel are decided
//! on with the `NetworkLogging` switches and the delegation annotations, attributed to policies by the
//! engine, deny-aggregated, rate-limited and written as JSON lines to a size-rotated file.
//!
//! Data flow per event: [`PolicyLogger::handle`] → (allow) record, or (deny) [`aggregate`] window →
//! [`PolicyLogger::flush_due`] → [`bucket`] → [`rotate`] file. Everything dropped is counted in
//! [`Metrics`]. In a cluster, [`events`] tells configuration changes and (opt-in) denials as
//! Kubernetes Events.

pub mod aggregate;
mod events;
pub mod rotate;

pub use palisade_kube::bucket;

use crate::metrics::{DispositionLabel, Metrics, StagedLabels, TierRuleLabels, VerdictLabels};
use crate::observe::Hub;
use crate::record::{self, Connection, DenyReason, Disposition, PolicyName, Record};
use aggregate::{Added, DenyAggregator};
use bucket::TokenBucket;
use palisade_dataplane::events::{Action, EventReader, VerdictEvent};
use palisade_kube::events::{Recorder, Regarding};
use palisade_model::logging::{self, LoggingConfig, LoggingObject, LoggingSwitches};
use palisade_model::{ClusterState, PodId, TierAction};
use palisade_policy::{
    Decision, Direction, Endpoint, Engine, Engines, Flow, PolicyRef, TierRuleRef,
};
use rotate::RotatingFile;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The default policy action log.
pub const DEFAULT_PATH: &str = "/var/log/network/policy_action.log";

/// The pipeline's limits; the defaults are GKE's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deny aggregation window.
    pub aggregation_window: Duration,
    /// Open deny aggregation keys at most; events for new keys beyond are dropped.
    pub max_open_keys: usize,
    /// Records written per second at most (token bucket rate).
    pub records_per_second: u32,
    /// Records written at once at most (token bucket size).
    pub burst: u32,
    /// Size at which the log file is rotated.
    pub max_file_bytes: u64,
    /// Rotated files kept.
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            aggregation_window: Duration::from_secs(5),
            max_open_keys: 3000,
            records_per_second: 500,
            burst: 500,
            max_file_bytes: 10 << 20,
            max_files: 5,
        }
    }
}

/// What a new `NetworkLogging` configuration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    /// Now in effect (`UpdateNetworkLogging`); a missing object turns everything off.
    Updated(LoggingSwitches),
    /// Rejected (`InvalidNetworkLogging`); the previous configuration stays.
    Invalid(String),
    /// Same as before.
    Unchanged,
}

/// Node addresses by IP, from the pods' `status.hostIP` and `spec.nodeName`.
pub(crate) fn node_index(state: &ClusterState) -> HashMap<IpAddr, String> {
    state
        .pods
        .iter()
        .filter_map(|p| Some((p.host_ip?, p.node_name.clone().unwrap_or_default())))
        .collect()
}

/// The flow a verdict event saw, as the engine takes it.
fn flow(event: &VerdictEvent) -> Flow {
    Flow {
        src: Endpoint::Ip(event.src),
        dst: Endpoint::Ip(event.dst),
        port: event.dst_port,
        protocol: event.protocol,
    }
}

/// A cluster-wide rule of `direction` as a record names it.
fn tier_rule_name(direction: Direction, rule: &TierRuleRef) -> PolicyName {
    PolicyName {
        name: rule.policy.name.clone(),
        namespace: String::new(),
        kind: rule.policy.kind.as_str().into(),
        tier: rule.policy.tier.as_str().into(),
        rule: (rule.name.clone())
            .unwrap_or_else(|| format!("{}[{}]", direction.as_str(), rule.rule)),
    }
}

/// NetworkPolicies as records name them, each once.
fn network_policies(policies: impl Iterator<Item = PolicyRef>) -> Vec<PolicyName> {
    let mut policies: Vec<PolicyRef> = policies.collect();
    policies.dedup();
    (policies.into_iter())
        .map(|p| PolicyName {
            name: p.name,
            namespace: p.namespace,
            kind: "NetworkPolicy".into(),
            tier: String::new(),
            rule: String::new(),
        })
        .collect()
}

/// Who decides `decision` of `direction`: the cluster-wide rule, the allowing NetworkPolicies or
/// the isolating ones; nobody where no policy decided.
pub(crate) fn deciders(direction: Direction, decision: Decision) -> Vec<PolicyName> {
    match decision {
        Decision::Tier { rule } => vec![tier_rule_name(direction, &rule)],
        Decision::Allowed { by } => network_policies(by.into_iter().map(|r| r.policy)),
        Decision::Denied { isolating } => network_policies(isolating.into_iter().map(|m| m.policy)),
        Decision::Unenforced { .. } | Decision::NotIsolated => Vec::new(),
    }
}

/// A policy as a metric label names it: `namespace/name`, or `Kind/name` when cluster-wide.
fn label_name(p: &PolicyName) -> String {
    match p.namespace.is_empty() {
        true => format!("{}/{}", p.kind, p.name),
        false => format!("{}/{}", p.namespace, p.name),
    }
}

/// Turns verdict events into policy action records. Audit events (policy denied, audit mode let
/// the connection through) are deny records with `"audit": true`; so are, with `would`, the
/// connections whose verdict staged policies would change.
pub struct PolicyLogger {
    node_name: String,
    switches: LoggingSwitches,
    engines: Option<Engines>,
    nodes: HashMap<IpAddr, String>,
    aggregator: DenyAggregator,
    bucket: TokenBucket,
    file: RotatingFile,
    metrics: Arc<Metrics>,
    hub: Option<Arc<Hub>>,
    /// Where Kubernetes Events go (in a cluster).
    events: Option<Recorder>,
    /// The node whose pods' denials are told as Events (`--deny-events`).
    deny_events: Option<String>,
    /// The deny Events of recent flows, reused for their repeats.
    told: events::Told,
    /// The rejected configuration (why, and which version of the object), until a valid one
    /// arrives: a rejection is told once, not at every pass.
    invalid: Option<(String, LoggingObject)>,
}

impl PolicyLogger {
    /// A logger writing to `path` (its files owned by `group` when set) as node `node_name`; all
    /// logging is off until a configuration arrives with [`PolicyLogger::set_engine`].
    pub fn new(
        path: &Path,
        node_name: &str,
        limits: &Limits,
        group: Option<u32>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        Ok(PolicyLogger {
            node_name: node_name.to_string(),
            switches: LoggingSwitches::default(),
            engines: None,
            nodes: HashMap::new(),
            aggregator: DenyAggregator::new(limits.aggregation_window, limits.max_open_keys),
            bucket: TokenBucket::new(limits.records_per_second, limits.burst),
            file: RotatingFile::open(path, limits.max_file_bytes, limits.max_files, group)?,
            metrics,
            hub: None,
            events: None,
            deny_events: None,
            told: events::Told::default(),
            invalid: None,
        })
    }

    /// Also tells `NetworkLogging` changes as Kubernetes Events through `recorder` and, when
    /// `deny_events` names a node, the connections its pods' policies drop.
    pub fn with_events(mut self, recorder: Recorder, deny_events: Option<String>) -> Self {
        self.events = Some(recorder);
        self.deny_events = deny_events;
        self
    }

    /// Also shows every verdict event, as a record, to `observe` clients through `hub`.
    pub fn with_hub(mut self, hub: Arc<Hub>) -> Self {
        self.hub = Some(hub);
        self
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The engines whose ruleset the kernel holds (the flow log attributes with them too); `None`
    /// before the first pass.
    pub fn engines(&self) -> Option<Engines> {
        self.engines.clone()
    }

    /// The switches in effect.
    pub fn switches(&self) -> LoggingSwitches {
        self.switches
    }

    /// Attributes later events with `engines` (the enforced one is the one whose ruleset the
    /// kernel holds; the would-engine, if any, says what staged policies would change) and applies
    /// its `NetworkLogging` configuration.
    pub fn set_engine(&mut self, engines: impl Into<Engines>) -> ConfigChange {
        let engines = engines.into();
        let state = engines.enforced.state();
        self.nodes = node_index(state);
        let change = self.configure(&state.network_logging);
        crate::drop_later(self.engines.replace(engines));
        change
    }

    fn configure(&mut self, config: &LoggingConfig) -> ConfigChange {
        let switches = match config {
            LoggingConfig::Absent => LoggingSwitches::default(),
            LoggingConfig::Valid(s, _) => *s,
            LoggingConfig::Invalid(reason, version)
                if (self.invalid.as_ref()).is_some_and(|(r, v)| r == reason && v == version) =>
            {
                return ConfigChange::Unchanged;
            }
            LoggingConfig::Invalid(reason, version) => {
                self.invalid = Some((reason.clone(), version.clone()));
                self.tell(|| events::invalid(reason, Regarding::network_logging(version)));
                Metrics::inc(&self.metrics.logging_config, "InvalidNetworkLogging");
                tracing::error!(
                    event = "InvalidNetworkLogging",
                    "{reason}; the previous logging configuration stays in effect"
                );
                return ConfigChange::Invalid(reason.clone());
            }
        };
        self.invalid = None;
        if switches == self.switches {
            return ConfigChange::Unchanged;
        }
        self.switches = switches;
        // A deleted object (logging turned off) has no object left to tell it on.
        if let LoggingConfig::Valid(_, version) = config {
            self.tell(|| events::updated(switches, Regarding::network_logging(version)));
        }
        Metrics::inc(&self.metrics.logging_config, "UpdateNetworkLogging");
        tracing::info!(
            event = "UpdateNetworkLogging",
            allow.log = switches.allow.log,
            allow.delegate = switches.allow.delegate,
            deny.log = switches.deny.log,
            deny.delegate = switches.deny.delegate,
            "policy action logging configured"
        );
        ConfigChange::Updated(switches)
    }

    /// Queues the Event `occurrence` makes, when Events are written.
    fn tell(&self, occurrence: impl FnOnce() -> palisade_kube::events::Occurrence) {
        if let Some(recorder) = &self.events {
            recorder.record(occurrence());
        }
    }

    /// Tells a connection `pod`'s policies dropped as an Event on it, when `--deny-events` is on
    /// and the pod is on this node.
    fn tell_denied(
        &mut self,
        engine: &Engine,
        event: &VerdictEvent,
        pod: &palisade_model::PodInfo,
    ) {
        let here = self.deny_events.as_deref();
        if event.action != Action::Deny || here.is_none() || pod.node_name.as_deref() != here {
            return;
        }
        if let Some(occurrence) = self.told.denied(engine, event, pod) {
            self.tell(|| occurrence);
        }
    }

    /// Takes one verdict event: counts it, shows it to `observe` clients, and logs it when the
    /// configuration says so (allow records at once, denials into their aggregation window).
    pub fn handle(&mut self, event: &VerdictEvent) {
        let Some(engines) = self.engines.clone() else {
            return;
        };
        let engine = &*engines.enforced;
        let state = engine.state();
        // Events for addresses that are not (or no longer) pods have nothing to attribute.
        let Some(pod_id) = state.pod_by_ip(event.enforcing()) else {
            return;
        };
        let pod = &state.pods[pod_id];
        if let Some(record) = self.staged(&engines, event, pod_id) {
            self.take(state, record, event, &pod.namespace);
        }
        let record = if event.action == Action::Allow {
            // Allowed because the pod is not isolated (or by a race with a new ruleset): no record.
            let Some(record) = self.allowed(engine, event, &pod.namespace) else {
                return;
            };
            record
        } else {
            self.tell_denied(engine, event, pod);
            self.denied(engine, event, pod_id)
        };
        self.take(state, record, event, &pod.namespace);
    }

    /// Takes a connection strict mode cut (`--strict`; `event` says which side's rules deny it):
    /// shown to `observe` clients and, as deny logging says, logged as a deny record with
    /// `"reason": "strict"` (aggregated apart from dropped packets).
    pub fn cut(&mut self, event: &VerdictEvent) {
        let Some(engines) = self.engines.clone() else {
            return;
        };
        let state = engines.enforced.state();
        let Some(pod) = state.pod_by_ip(event.enforcing()) else {
            return;
        };
        let mut record = self.record(state, event, Disposition::Deny, Vec::new());
        record.reason = Some(DenyReason::Strict);
        self.take(state, record, event, &state.pods[pod].namespace);
    }

    /// Shows `record` (of a connection at a pod of `namespace`) to `observe` clients and logs it
    /// as its disposition's switches say.
    fn take(
        &mut self,
        state: &ClusterState,
        record: Record,
        event: &VerdictEvent,
        namespace: &str,
    ) {
        if let Some(hub) = &self.hub {
            hub.publish(record.clone());
        }
        match record.disposition {
            Disposition::Allow => self.log_allowed(state, record, event),
            Disposition::Deny => self.log_denied(state, record, namespace),
        }
    }

    /// The audit record of a connection whose verdict the staged policies would change — the
    /// would-engine's decision against the kernel's action (audit mode's let-through counts as
    /// the denial it stands for) —, counted by who would decide; `None` where they change nothing
    /// or govern no pod of the event.
    fn staged(&self, engines: &Engines, event: &VerdictEvent, pod: PodId) -> Option<Record> {
        let side = engines.would_side(pod, event.direction, &flow(event))?;
        let would = match side.decision.allows() {
            true => Disposition::Allow,
            false => Disposition::Deny,
        };
        let enforced = match event.action {
            Action::Allow => Disposition::Allow,
            Action::Deny | Action::Audit => Disposition::Deny,
        };
        if would == enforced {
            return None;
        }
        let staged_by = deciders(event.direction, side.decision);
        for p in &staged_by {
            let labels = StagedLabels {
                direction: event.direction.as_str().into(),
                would: would.as_str().into(),
                kind: p.kind.clone(),
                policy: label_name(p),
                rule: p.rule.clone(),
            };
            self.metrics.staged.get_or_create(&labels).inc();
        }
        let state = engines.enforced.state();
        let mut record = self.record(state, event, would, Vec::new());
        (record.audit, record.would, record.staged_by) = (true, Some(would), staged_by);
        Some(record)
    }

    /// The labels of a verdict at a pod of `namespace`, attributed to `policy`.
    fn labels(
        event: &VerdictEvent,
        disposition: Disposition,
        namespace: &str,
        policy: String,
    ) -> VerdictLabels {
        VerdictLabels {
            direction: event.direction.as_str().into(),
            disposition: disposition.as_str().into(),
            namespace: namespace.to_string(),
            policy,
        }
    }

    /// The record of an allowed connection, counted per allowing policy (or the cluster-wide
    /// rule that accepted it); `None` when no policy allowed it (the pod is not isolated).
    fn allowed(&self, engine: &Engine, event: &VerdictEvent, namespace: &str) -> Option<Record> {
        let policies = match engine.side(event.direction, &flow(event)).decision {
            Decision::Allowed { by } => network_policies(by.into_iter().map(|r| r.policy)),
            Decision::Tier { rule } if rule.action == TierAction::Accept => {
                vec![self.tier_rule(event, &rule)]
            }
            _ => return None,
        };
        for p in &policies {
            let labels = Self::labels(event, Disposition::Allow, namespace, label_name(p));
            self.metrics.verdicts.get_or_create(&labels).inc();
        }
        Some(self.record(engine.state(), event, Disposition::Allow, policies))
    }

    /// A cluster-wide rule as a record names it, counted by rule.
    fn tier_rule(&self, event: &VerdictEvent, rule: &TierRuleRef) -> PolicyName {
        let name = tier_rule_name(event.direction, rule);
        let labels = TierRuleLabels {
            direction: event.direction.as_str().into(),
            action: rule.action.as_str().into(),
            kind: name.kind.clone(),
            policy: name.name.clone(),
            tier: name.tier.clone(),
            rule: name.rule.clone(),
        };
        self.metrics.tier_rules.get_or_create(&labels).inc();
        name
    }

    /// The record of a denied (or audited) connection, counted; it names the Admin or Baseline
    /// rule that denied, when one did (only pods a cluster-wide policy holds are asked).
    fn denied(&self, engine: &Engine, event: &VerdictEvent, pod: PodId) -> Record {
        let (state, namespace) = (engine.state(), &engine.state().pods[pod].namespace);
        let deny = Self::labels(event, Disposition::Deny, namespace, String::new());
        self.metrics.verdicts.get_or_create(&deny).inc();
        let mut record = self.record(state, event, Disposition::Deny, Vec::new());
        if engine.tier_governed(pod, event.direction) {
            if let Decision::Tier { rule } = engine.side(event.direction, &flow(event)).decision {
                // A ruleset changed since the drop may say otherwise: name only a Deny.
                if rule.action == TierAction::Deny {
                    record.denied_by = Some(self.tier_rule(event, &rule));
                }
            }
        }
        if event.action == Action::Audit {
            self.metrics.audited.get_or_create(&deny).inc();
            record.audit = true;
        }
        record
    }

    /// Writes an allow record when allow logging is on; with delegation, only for (and listing
    /// only) the allowing policies annotated for it.
    fn log_allowed(&mut self, state: &ClusterState, mut record: Record, event: &VerdictEvent) {
        let allow = self.switches.allow;
        if !allow.log {
            return;
        }
        // A staged would-allow names no enforced policy to delegate by: `allow.log` decides.
        if allow.delegate && record.would.is_none() {
            record.policies.retain(|p| {
                let annotations = palisade_model::Kind::parse(&p.kind)
                    .and_then(|kind| state.policy_annotations(kind, &p.namespace, &p.name));
                annotations
                    .is_some_and(|a| logging::annotation_enabled(a, logging::POLICY_ANNOTATION))
            });
            if record.policies.is_empty() {
                return;
            }
        }
        self.emit(record, event.time);
    }

    /// Puts a deny record into its aggregation window when deny logging is on (with delegation:
    /// for pods of a namespace annotated for it).
    fn log_denied(&mut self, state: &ClusterState, record: Record, namespace: &str) {
        let deny = self.switches.deny;
        let delegated = || {
            state.namespace(namespace).is_some_and(|ns| {
                logging::annotation_enabled(&ns.annotations, logging::NAMESPACE_ANNOTATION)
            })
        };
        if !deny.log || (deny.delegate && !delegated()) {
            return;
        }
        if self.aggregator.add(record) == Added::Full {
            Metrics::inc(&self.metrics.dropped, "aggregation_full");
        }
        self.metrics
            .open_keys
            .set(self.aggregator.open_keys() as i64);
    }

    fn record(
        &self,
        state: &ClusterState,
        event: &VerdictEvent,
        disposition: Disposition,
        policies: Vec<PolicyName>,
    ) -> Record {
        Record {
            connection: Connection {
                src_ip: event.src,
                dest_ip: event.dst,
                src_port: event.src_port,
                dest_port: event.dst_port,
                protocol: event.protocol,
                direction: event.direction,
            },
            disposition,
            policies,
            src: record::peer(state, &self.nodes, event.src),
            dest: record::peer(state, &self.nodes, event.dst),
            count: 1,
            node_name: self.node_name.clone(),
            timestamp: event.time,
            audit: false,
            denied_by: None,
            would: None,
            staged_by: Vec::new(),
            reason: None,
        }
    }

    /// Writes the deny aggregates whose window has ended by `now`.
    pub fn flush_due(&mut self, now: SystemTime) {
        for record in self.aggregator.due(now) {
            self.emit(record, now);
        }
        self.metrics
            .open_keys
            .set(self.aggregator.open_keys() as i64);
    }

    /// Writes every open deny aggregate now (at shutdown).
    pub fn flush_all(&mut self) {
        let now = SystemTime::now();
        for record in self.aggregator.drain() {
            self.emit(record, now);
        }
        self.metrics.open_keys.set(0);
    }

    /// When the next deny window closes.
    pub fn next_due(&self) -> Option<SystemTime> {
        self.aggregator.next_due()
    }

    fn emit(&mut self, record: Record, now: SystemTime) {
        if !self.bucket.take(now) {
            Metrics::inc(&self.metrics.dropped, "rate_limit");
            return;
        }
        if self.file.append(&record.to_line(), "records") {
            let label = DispositionLabel {
                disposition: record.disposition.as_str().into(),
            };
            self.metrics.records.get_or_create(&label).inc();
        } else {
            Metrics::inc(&self.metrics.dropped, "write_error");
        }
    }
}

/// Feeds `logger` from `reader` until `stop` is set or reading fails, closing deny windows on time;
/// open windows are written out at the end.
pub fn run(
    mut reader: EventReader,
    logger: &Mutex<PolicyLogger>,
    metrics: &Metrics,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let lock = || logger.lock().unwrap_or_else(|e| e.into_inner());
    let mut lost = 0;
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let now = SystemTime::now();
        let wait = lock()
            .next_due()
            .map_or(Duration::from_millis(200), |due| {
                due.duration_since(now).unwrap_or(Duration::ZERO)
            })
            .min(Duration::from_millis(200));
        match reader.next_event(Some(wait)) {
            Ok(Some(event)) => lock().handle(&event),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        lock().flush_due(SystemTime::now());
        if reader.overruns() > lost {
            metrics.events_lost.inc_by(reader.overruns() - lost);
            tracing::warn!(
                "verdict events were lost: the kernel's buffer overflowed ({} times so far)",
                reader.overruns()
            );
            lost = reader.overruns();
        }
    };
    lock().flush_all();
    result
}
