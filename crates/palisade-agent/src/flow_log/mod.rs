//! The flow log (`--flow-log`): one JSON record per connection per interval it was active, with
//! its packets and bytes each way, from the kernel's connection tracking — the traffic itself,
//! where the policy action log tells only the first packet's verdict. What GKE calls intranode
//! visibility: pod-to-pod traffic of one node is seen here as well as traffic across nodes and to
//! the outside.
//!
//! Data flow: accounting switched on in the enforced namespace; [`Endings`] heard continuously,
//! a [`Conntrack`] listing at the end of every interval → [`accounting`] (what each connection
//! carried in the interval) → records attributed with the engines whose ruleset the kernel
//! holds (ends as pods, workloads and Services; each side's verdict now) → short connections of
//! the same flow summed → rate limit → [`RotatingFile`]. Everything dropped is counted
//! (`palisade_flow_log_dropped_total`), and memory is bounded by [`FlowLimits`]: the connections
//! of one listing, the endings of one interval, the verdicts cached.
//!
//! The kernel tells endings only of connections tracked after someone listened
//! (`nf_conntrack_events` is 2 by default), and counts only those tracked after accounting was
//! switched on: connections older than the agent are told without counters, and their end only
//! when a listing no longer holds them (`ending_unseen`).

mod accounting;
pub mod record;

use crate::health::{Health, Part};
use crate::metrics::{FlowLabels, Metrics, ReasonLabel};
use crate::observe::Hub;
use crate::policy_log::{deciders, node_index, rotate::RotatingFile, PolicyLogger};
use crate::record::{peer, Disposition, Peer};
use accounting::{Accounting, Observed};
use palisade_dataplane::conntrack::{self, Conntrack, Endings, Listing};
use palisade_kube::bucket::TokenBucket;
use palisade_model::{ClusterState, Protocol};
use palisade_policy::{Decision, Direction, Endpoint, Engine, Engines, Flow};
use record::{FlowConnection, FlowRecord, ServiceName, SideVerdict};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The flow log's bounds and rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLimits {
    /// Aggregation interval: each connection's traffic is told once per interval (GKE's finest
    /// is 5 s).
    pub interval: Duration,
    /// Connections accounted at most (read per listing, and endings kept per interval); beyond,
    /// they are not told, and counted.
    pub max_connections: usize,
    /// Records written per second on average; the excess is dropped and counted.
    pub records_per_second: u32,
    /// Size at which the file is rotated.
    pub max_file_bytes: u64,
    /// Rotated files kept.
    pub max_files: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            interval: Duration::from_secs(5),
            max_connections: 65_536,
            records_per_second: 2_000,
            max_file_bytes: 50 << 20,
            max_files: 5,
        }
    }
}

/// Verdicts cached at most (per engine); the cache starts over when full.
const MAX_VERDICTS: usize = 65_536;

/// Label pairs of the per-namespace flow metrics at most; the pairs beyond are summed under
/// namespace `_other` (no namespace is named so: names start with a letter or digit).
const MAX_NAMESPACE_PAIRS: usize = 10_000;

/// How a flow is judged: addresses, port, protocol.
type FlowKey = (IpAddr, IpAddr, u16, Protocol);

/// Short connections (started and ended in one interval) of the same flow, to the same address
/// the client used, are summed into one record.
type SumKey = (FlowKey, IpAddr, u16);

/// What the policies say of a flow, each side.
#[derive(Clone, Debug)]
struct Verdict {
    egress: Option<SideVerdict>,
    ingress: Option<SideVerdict>,
}

/// The engines in use, and what records are attributed with.
struct Attribution {
    engines: Engines,
    nodes: HashMap<IpAddr, String>,
    services: HashMap<IpAddr, (String, String)>,
    verdicts: HashMap<FlowKey, Arc<Verdict>>,
}

impl Attribution {
    fn new(engines: Engines) -> Attribution {
        let state = engines.enforced.state();
        let services = (state.services.iter())
            .filter_map(|s| {
                let ip = s.cluster_ip.as_deref()?.parse().ok()?;
                Some((ip, (s.namespace.clone(), s.name.clone())))
            })
            .collect();
        Attribution {
            nodes: node_index(state),
            services,
            verdicts: HashMap::new(),
            engines,
        }
    }

    fn state(&self) -> &ClusterState {
        self.engines.enforced.state()
    }

    /// The verdict of `key`, cached.
    fn verdict(&mut self, key: FlowKey) -> Arc<Verdict> {
        if let Some(v) = self.verdicts.get(&key) {
            return v.clone();
        }
        if self.verdicts.len() >= MAX_VERDICTS {
            self.verdicts.clear();
        }
        let engine = &self.engines.enforced;
        let flow = Flow {
            src: Endpoint::Ip(key.0),
            dst: Endpoint::Ip(key.1),
            port: key.2,
            protocol: key.3,
        };
        let verdict = Arc::new(Verdict {
            egress: side(engine, Direction::Egress, &flow),
            ingress: side(engine, Direction::Ingress, &flow),
        });
        self.verdicts.insert(key, verdict.clone());
        verdict
    }
}

/// What the policies in force say of `flow` at its `direction` end; `None` where policy does not
/// apply (the end is not a pod, the same pod, a hostNetwork pod).
fn side(engine: &Engine, direction: Direction, flow: &Flow) -> Option<SideVerdict> {
    let decision = engine.side(direction, flow).decision;
    let disposition = match &decision {
        Decision::Unenforced { .. } => return None,
        d if d.allows() => Disposition::Allow,
        _ => Disposition::Deny,
    };
    Some(SideVerdict {
        disposition,
        policies: deciders(direction, decision),
    })
}

/// Turns what conntrack tells into flow records.
pub struct FlowLogger {
    node_name: String,
    limits: FlowLimits,
    accounting: Accounting,
    attribution: Option<Attribution>,
    bucket: TokenBucket,
    file: RotatingFile,
    write_failing: bool,
    metrics: Arc<Metrics>,
    hub: Option<Arc<Hub>>,
    /// Namespace pairs the metrics have series of.
    pairs: std::collections::HashSet<(String, String)>,
}

impl FlowLogger {
    /// A logger writing to `path` (its files owned by `group` when set) as node `node_name`.
    pub fn new(
        path: &Path,
        node_name: &str,
        limits: &FlowLimits,
        group: Option<u32>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<FlowLogger> {
        let rate = limits.records_per_second.max(1);
        // One interval's records may come at once.
        let burst = u64::from(rate) * limits.interval.as_secs().max(1);
        Ok(FlowLogger {
            node_name: node_name.to_string(),
            accounting: Accounting::new(limits.max_connections),
            attribution: None,
            bucket: TokenBucket::new(rate, burst.min(u64::from(u32::MAX)) as u32),
            file: RotatingFile::open(path, limits.max_file_bytes, limits.max_files, group)?,
            write_failing: false,
            metrics,
            hub: None,
            pairs: Default::default(),
            limits: limits.clone(),
        })
    }

    /// Also shows every record it writes to `observe --flows` clients through `hub`.
    pub fn with_hub(mut self, hub: Arc<Hub>) -> Self {
        hub.offer_flows();
        self.hub = Some(hub);
        self
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Attributes later records with `engines` (those whose ruleset the kernel holds); the
    /// verdicts cached start over when they change.
    fn set_engines(&mut self, engines: Engines) {
        let same = self
            .attribution
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(&a.engines.enforced, &engines.enforced));
        if !same {
            let old = self.attribution.replace(Attribution::new(engines));
            crate::drop_later(old);
        }
    }

    /// A connection the kernel no longer tracks.
    fn ended(&mut self, entry: conntrack::Entry) {
        self.accounting.ended(entry);
    }

    /// Closes the interval `start..end` with `listing`, what the kernel tracks at its end, and
    /// writes its records.
    fn close(&mut self, listing: Listing, start: SystemTime, end: SystemTime) {
        if listing.capped {
            Metrics::inc(&self.metrics.flow_dropped, "too_many_connections");
        }
        let interval = self.accounting.close(listing);
        self.metrics
            .flow_tracked
            .set(self.accounting.tracked() as i64);
        let lost = [
            ("ending_unseen", interval.unseen_endings),
            ("too_many_endings", interval.endings_dropped),
        ];
        for (reason, n) in lost {
            if n > 0 {
                let label = ReasonLabel {
                    reason: reason.into(),
                };
                self.metrics
                    .flow_dropped
                    .get_or_create(&label)
                    .inc_by(n as u64);
            }
        }
        let records = self.records(interval.observed, start, end);
        for record in records {
            self.count(&record);
            self.emit(&record, end);
        }
    }

    /// The records of `observed` in `start..end`: connections with a pod at one end at least,
    /// short ones of one flow summed.
    fn records(
        &mut self,
        observed: Vec<Observed>,
        start: SystemTime,
        end: SystemTime,
    ) -> Vec<FlowRecord> {
        let Some(attribution) = &mut self.attribution else {
            return Vec::new();
        };
        let mut records: Vec<FlowRecord> = Vec::new();
        let mut summed: HashMap<SumKey, usize> = HashMap::new();
        for o in observed {
            let judged = o.tracked.judged();
            let key = (judged.src, judged.dst, judged.dst_port, o.tracked.protocol);
            let state = attribution.state();
            if state.pod_by_ip(key.0).is_none() && state.pod_by_ip(key.1).is_none() {
                continue; // the node's own traffic
            }
            let short = o.started && o.ended;
            let sum_key = (key, o.tracked.original.dst, o.tracked.original.dst_port);
            if short {
                if let Some(&i) = summed.get(&sum_key) {
                    let r = &mut records[i];
                    r.connections += 1;
                    r.connection.src_port = 0;
                    add(r, o.carried.as_ref());
                    continue;
                }
                summed.insert(sum_key, records.len());
            }
            let verdict = attribution.verdict(key);
            records.push(flow_record(
                attribution,
                &self.node_name,
                &o,
                &verdict,
                start,
                end,
            ));
        }
        records
    }

    /// Counts `record` in the per-namespace metrics.
    fn count(&mut self, record: &FlowRecord) {
        let namespace = |p: &Peer| match p {
            Peer::Pod { namespace, .. } => namespace.clone(),
            _ => String::new(),
        };
        let mut pair = (namespace(&record.src), namespace(&record.dest));
        if !self.pairs.contains(&pair) {
            if self.pairs.len() >= MAX_NAMESPACE_PAIRS {
                pair = ("_other".into(), "_other".into());
            } else {
                self.pairs.insert(pair.clone());
            }
        }
        let labels = FlowLabels {
            src_namespace: pair.0,
            dest_namespace: pair.1,
        };
        (self.metrics.flow_bytes.get_or_create(&labels)).inc_by(record.bytes());
        if record.started {
            (self.metrics.flow_connections.get_or_create(&labels)).inc_by(record.connections);
        }
    }

    fn emit(&mut self, record: &FlowRecord, now: SystemTime) {
        if !self.bucket.take(now) {
            Metrics::inc(&self.metrics.flow_dropped, "rate_limit");
            return;
        }
        if let Some(hub) = &self.hub {
            hub.publish(record.clone());
        }
        match self.file.write_line(&record.to_line()) {
            Ok(()) => {
                self.write_failing = false;
                self.metrics.flow_records.inc();
            }
            Err(e) => {
                Metrics::inc(&self.metrics.flow_dropped, "write_error");
                if !self.write_failing {
                    tracing::error!(
                        "writing {}: {e}; flow records are dropped",
                        self.path().display()
                    );
                }
                self.write_failing = true;
            }
        }
    }
}

/// Adds what one more short connection carried to a summed record.
fn add(record: &mut FlowRecord, carried: Option<&conntrack::Counters>) {
    let Some(c) = carried else {
        return;
    };
    let sum = |field: &mut Option<u64>, n: u64| *field = Some(field.unwrap_or(0).saturating_add(n));
    sum(&mut record.packets_sent, c.packets_sent);
    sum(&mut record.bytes_sent, c.bytes_sent);
    sum(&mut record.packets_received, c.packets_received);
    sum(&mut record.bytes_received, c.bytes_received);
}

/// The record of one connection's interval.
fn flow_record(
    attribution: &Attribution,
    node_name: &str,
    o: &Observed,
    verdict: &Verdict,
    start: SystemTime,
    end: SystemTime,
) -> FlowRecord {
    let (state, nodes) = (attribution.state(), &attribution.nodes);
    let judged = o.tracked.judged();
    let original = o.tracked.original;
    let service = (original.dst != judged.dst || original.dst_port != judged.dst_port)
        .then(|| attribution.services.get(&original.dst))
        .flatten()
        .map(|(namespace, name)| ServiceName {
            name: name.clone(),
            namespace: namespace.clone(),
            ip: original.dst,
            port: original.dst_port,
        });
    let denied = [&verdict.egress, &verdict.ingress]
        .into_iter()
        .flatten()
        .any(|s| s.disposition == Disposition::Deny);
    let c = o.carried;
    FlowRecord {
        connection: FlowConnection {
            src_ip: judged.src,
            dest_ip: judged.dst,
            src_port: judged.src_port,
            dest_port: judged.dst_port,
            protocol: o.tracked.protocol,
        },
        src: peer(state, nodes, judged.src),
        dest: peer(state, nodes, judged.dst),
        service,
        disposition: match denied {
            true => Disposition::Deny,
            false => Disposition::Allow,
        },
        egress: verdict.egress.clone(),
        ingress: verdict.ingress.clone(),
        packets_sent: c.map(|c| c.packets_sent),
        bytes_sent: c.map(|c| c.bytes_sent),
        packets_received: c.map(|c| c.packets_received),
        bytes_received: c.map(|c| c.bytes_received),
        connections: 1,
        started: o.started,
        ended: o.ended,
        start_time: start,
        end_time: end,
        node_name: node_name.to_string(),
    }
}

/// The end of the interval that holds `now`: the next multiple of `interval` since the epoch, so
/// that every node's intervals line up.
fn interval_end(now: SystemTime, interval: Duration) -> SystemTime {
    let step = interval.as_nanos().max(1_000_000);
    let since = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let end = (since / step + 1) * step;
    UNIX_EPOCH + Duration::from_nanos(end.min(u128::from(u64::MAX)) as u64)
}

/// Runs the flow log in network namespace `netns` until `stop` is set: accounting on, endings
/// heard, a listing per interval, attributed with the engines `policy` holds. Failures are logged,
/// counted and shown in `health`; listing starts over on the next interval.
pub fn run(
    mut logger: FlowLogger,
    netns: Option<String>,
    policy: &Mutex<PolicyLogger>,
    health: &Health,
    stop: &AtomicBool,
) {
    let netns = netns.as_deref();
    let accounting = conntrack::enable_accounting(netns).err().map(|e| {
        format!(
            "cannot switch on conntrack accounting ({e}): records carry no packet or byte counts"
        )
    });
    let mut endings = Endings::open(netns)
        .map_err(|e| tracing::error!("cannot hear conntrack endings: {e}"))
        .ok();
    let mut conntrack: Option<Conntrack> = None;
    let (mut lost, mut start, mut baseline) = (0, SystemTime::now(), true);
    while !stop.load(Ordering::Relaxed) {
        let end = interval_end(SystemTime::now(), logger.limits.interval);
        // Endings until the interval's end, waking every 200 ms to see `stop`.
        while let Ok(left) = end.duration_since(SystemTime::now()) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let wait = left.min(Duration::from_millis(200));
            match endings.as_mut().map(|e| e.next(wait)) {
                Some(Ok(Some(entry))) => logger.ended(entry),
                Some(Ok(None)) => {}
                Some(Err(e)) => {
                    tracing::error!("hearing conntrack endings: {e}");
                    endings = None;
                }
                None => std::thread::sleep(wait),
            }
        }
        if let Some(e) = endings.as_ref().filter(|e| e.overruns() > lost) {
            let label = ReasonLabel {
                reason: "endings_lost".into(),
            };
            (logger.metrics.flow_dropped.get_or_create(&label)).inc_by(e.overruns() - lost);
            lost = e.overruns();
        }
        let listed = conntrack
            .take()
            .map_or_else(|| Conntrack::open(netns), Ok)
            .and_then(|mut c| Ok((c.list(logger.limits.max_connections)?, c)));
        let mut problems: Vec<String> = accounting.iter().cloned().collect();
        if endings.is_none() {
            problems.push("conntrack endings are not heard: connections that end between intervals are not told".into());
        }
        match listed {
            Ok((listing, c)) => {
                // A capped listing may still be arriving: a new socket next time.
                if !listing.capped {
                    conntrack = Some(c);
                }
                let engines = policy.lock().unwrap_or_else(|e| e.into_inner()).engines();
                if let Some(engines) = engines {
                    logger.set_engines(engines);
                }
                if std::mem::take(&mut baseline) {
                    logger.accounting.close(listing);
                } else {
                    logger.close(listing, start, end);
                }
                start = end;
            }
            Err(e) => {
                Metrics::inc(&logger.metrics.flow_dropped, "list_error");
                problems.push(format!("cannot list tracked connections: {e}"));
            }
        }
        let problem = (!problems.is_empty()).then(|| problems.join("; "));
        if health.set(Part::FlowLog, problem.clone()) {
            match problem {
                Some(p) => tracing::warn!("flow log degraded: {p}"),
                None => tracing::info!("flow log working again"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_line_up_on_multiples_of_their_length() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let five = Duration::from_secs(5);
        assert_eq!(interval_end(at(1_000), five), at(5_000));
        assert_eq!(interval_end(at(5_000), five), at(10_000));
        assert_eq!(interval_end(at(9_999), five), at(10_000));
        // Below a millisecond is a millisecond: never a busy loop.
        assert_eq!(interval_end(at(7), Duration::ZERO), at(8));
    }
}
