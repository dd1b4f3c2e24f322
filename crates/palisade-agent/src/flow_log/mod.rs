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
use palisade_policy::{Decision, Direction, Endpoint, Enforcement, Engine, Engines, Flow};
use record::{FlowConnection, FlowRecord, Reporter, ServiceName, SideVerdict};
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

/// The flow `tracked` was judged as (after DNAT).
fn flow_key(tracked: &conntrack::Tracked) -> FlowKey {
    let judged = tracked.judged();
    (judged.src, judged.dst, judged.dst_port, tracked.protocol)
}

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
    /// The state before, for the pods deleted since (a connection of the interval may have been
    /// theirs).
    previous: Option<Arc<ClusterState>>,
    nodes: HashMap<IpAddr, String>,
    services: HashMap<IpAddr, (String, String)>,
    verdicts: HashMap<FlowKey, Arc<Verdict>>,
}

impl Attribution {
    fn new(engines: Engines, previous: Option<Arc<ClusterState>>) -> Attribution {
        let state = engines.enforced.state();
        let services = (state.services.iter())
            .filter_map(|s| Some((s.address()?, (s.namespace.clone(), s.name.clone()))))
            .collect();
        Attribution {
            nodes: node_index(state),
            services,
            verdicts: HashMap::new(),
            previous,
            engines,
        }
    }

    /// The state that knows `ip` as a pod's: the current one, else the one before; the current
    /// one when neither does.
    fn state_of(&self, ip: IpAddr) -> &ClusterState {
        let current = self.engines.enforced.state();
        match &self.previous {
            Some(p) if current.pod_by_ip(ip).is_none() && p.pod_by_ip(ip).is_some() => p,
            _ => current,
        }
    }

    /// The record's end at `ip`.
    fn peer(&self, ip: IpAddr) -> Peer {
        peer(self.state_of(ip), &self.nodes, ip)
    }

    /// `ip` is a pod's, now or before the last change.
    fn is_pod(&self, ip: IpAddr) -> bool {
        self.state_of(ip).pod_by_ip(ip).is_some()
    }

    /// `ip` is a pod `enforcement` says this node enforces.
    fn enforced_here(&self, ip: IpAddr, enforcement: &Enforcement) -> bool {
        let state = self.state_of(ip);
        (state.pod_by_ip(ip)).is_some_and(|p| enforcement.enforces(&state.pods[p]))
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

/// Connections of one interval that make one record: one connection, or short ones of one flow
/// summed.
struct Group {
    first: Observed,
    connections: u64,
    carried: Option<conntrack::Counters>,
}

/// Turns what conntrack tells into flow records.
pub struct FlowLogger {
    node_name: String,
    limits: FlowLimits,
    accounting: Accounting,
    attribution: Option<Attribution>,
    bucket: TokenBucket,
    file: RotatingFile,
    metrics: Arc<Metrics>,
    hub: Option<Arc<Hub>>,
    /// Whose pods this node enforces: which ends it reports.
    enforcement: Enforcement,
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
            metrics,
            hub: None,
            enforcement: Enforcement::default(),
            pairs: Default::default(),
            limits: limits.clone(),
        })
    }

    /// Reports the ends of connections that `enforcement` says this node enforces (default:
    /// every pod, as a single node).
    pub fn with_enforcement(mut self, enforcement: Enforcement) -> Self {
        self.enforcement = enforcement;
        self
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
        let current = self.attribution.as_ref().map(|a| &a.engines.enforced);
        if current.is_some_and(|c| Arc::ptr_eq(c, &engines.enforced)) {
            return;
        }
        let previous = current.map(|e| e.state_arc());
        let old = self
            .attribution
            .replace(Attribution::new(engines, previous));
        crate::drop_later(old);
    }

    /// A connection the kernel no longer tracks.
    fn ended(&mut self, entry: conntrack::Entry) {
        self.accounting.ended(entry);
    }

    /// Counts `n` things the flow log could not tell, for `reason`.
    fn dropped(&self, reason: &str, n: usize) {
        if n > 0 {
            let label = ReasonLabel {
                reason: reason.into(),
            };
            (self.metrics.flow_dropped.get_or_create(&label)).inc_by(n as u64);
        }
    }

    /// Closes the interval `start..end` with `listing`, what the kernel tracks at its end, and
    /// writes its records (the first listing only sets the baseline).
    fn close(&mut self, listing: Listing, start: SystemTime, end: SystemTime) {
        self.dropped("too_many_connections", usize::from(listing.capped));
        let interval = self.accounting.close(listing, start);
        let tracked = self.accounting.tracked();
        self.metrics.flow_tracked.set(tracked as i64);
        self.dropped("ending_unseen", interval.unseen_endings);
        self.dropped("too_many_endings", interval.endings_dropped);
        let Some(mut attribution) = self.attribution.take() else {
            // No ruleset in the kernel yet: nothing to attribute with.
            self.dropped("no_attribution", interval.observed.len());
            return;
        };
        for group in groups(&attribution, interval.observed) {
            // The metrics count every connection, written or not.
            self.count(&attribution, &group);
            // Within the rate, records are built one at a time: what is dropped costs nothing.
            if !self.bucket.take(end) {
                Metrics::inc(&self.metrics.flow_dropped, "rate_limit");
                continue;
            }
            let record = self.record(&mut attribution, &group, start, end);
            self.write(&record);
        }
        self.attribution = Some(attribution);
    }

    /// The record of `group` in `start..end`.
    fn record(
        &self,
        attribution: &mut Attribution,
        group: &Group,
        start: SystemTime,
        end: SystemTime,
    ) -> FlowRecord {
        let o = &group.first;
        let judged = o.tracked.judged();
        let original = o.tracked.original;
        let verdict = attribution.verdict(flow_key(&o.tracked));
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
        let c = group.carried;
        FlowRecord {
            connection: FlowConnection {
                src_ip: judged.src,
                dest_ip: judged.dst,
                src_port: if group.connections > 1 {
                    0
                } else {
                    judged.src_port
                },
                dest_port: judged.dst_port,
                protocol: o.tracked.protocol,
            },
            src: attribution.peer(judged.src),
            dest: attribution.peer(judged.dst),
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
            connections: group.connections,
            started: o.started,
            ended: o.ended,
            start_time: start,
            end_time: end,
            node_name: self.node_name.clone(),
            reporter: Reporter::of(
                attribution.enforced_here(judged.src, &self.enforcement),
                attribution.enforced_here(judged.dst, &self.enforcement),
            ),
        }
    }

    /// Counts `group`'s bytes and started connections in the per-namespace metrics — once in the
    /// cluster: by the node of the source pod, or of the destination when the source is no pod.
    fn count(&mut self, attribution: &Attribution, group: &Group) {
        let judged = group.first.tracked.judged();
        let counted_here = match attribution.is_pod(judged.src) {
            true => attribution.enforced_here(judged.src, &self.enforcement),
            false => attribution.enforced_here(judged.dst, &self.enforcement),
        };
        if !counted_here {
            return;
        }
        let namespace = |ip| {
            let state = attribution.state_of(ip);
            (state.pod_by_ip(ip)).map_or_else(String::new, |p| state.pods[p].namespace.clone())
        };
        let mut pair = (namespace(judged.src), namespace(judged.dst));
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
        let c = group.carried.unwrap_or_default();
        let bytes = c.bytes_sent.saturating_add(c.bytes_received);
        (self.metrics.flow_bytes.get_or_create(&labels)).inc_by(bytes);
        if group.first.started {
            (self.metrics.flow_connections.get_or_create(&labels)).inc_by(group.connections);
        }
    }

    fn write(&mut self, record: &FlowRecord) {
        if let Some(hub) = &self.hub {
            hub.publish(record.clone());
        }
        if self.file.append(&record.to_line(), "flow records") {
            self.metrics.flow_records.inc();
        } else {
            Metrics::inc(&self.metrics.flow_dropped, "write_error");
        }
    }
}

/// The records `observed` makes: connections with a pod at one end at least (the node's own
/// traffic is left out), short ones (started and ended in the interval) of one flow — source,
/// destination, port, protocol, and the address the client used — summed into one.
fn groups(attribution: &Attribution, observed: Vec<Observed>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut short: HashMap<SumKey, usize> = HashMap::new();
    for o in observed {
        let judged = o.tracked.judged();
        if !attribution.is_pod(judged.src) && !attribution.is_pod(judged.dst) {
            continue;
        }
        if o.started && o.ended {
            let original = o.tracked.original;
            let key = (flow_key(&o.tracked), original.dst, original.dst_port);
            if let Some(&i) = short.get(&key) {
                let group = &mut groups[i];
                group.connections += 1;
                if let Some(c) = &o.carried {
                    group.carried.get_or_insert_with(Default::default).add(c);
                }
                continue;
            }
            short.insert(key, groups.len());
        }
        groups.push(Group {
            carried: o.carried,
            first: o,
            connections: 1,
        });
    }
    groups
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

/// What the flow log reads the kernel with in one network namespace.
struct Kernel<'a> {
    netns: Option<&'a str>,
    /// Why counters are missing, if they are.
    accounting: Option<String>,
    endings: Option<Endings>,
    /// Endings overruns counted so far.
    lost: u64,
    conntrack: Option<Conntrack>,
}

impl Kernel<'_> {
    /// Hears endings until `end` (or `stop`, checked every 200 ms: true when set). The wait is
    /// measured on the monotonic clock: a wall clock stepped back does not stretch it.
    fn hear_until(&mut self, logger: &mut FlowLogger, end: SystemTime, stop: &AtomicBool) -> bool {
        let wait = end.duration_since(SystemTime::now()).unwrap_or_default();
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if stop.load(Ordering::Relaxed) || left.is_zero() {
                return stop.load(Ordering::Relaxed);
            }
            self.hear(logger, left.min(Duration::from_millis(200)));
        }
    }

    /// Hears the endings that come within `wait` (none: those already there), counting what the
    /// kernel could not deliver.
    fn hear(&mut self, logger: &mut FlowLogger, wait: Duration) {
        let Some(endings) = &mut self.endings else {
            return std::thread::sleep(wait);
        };
        loop {
            match endings.next(wait) {
                Ok(Some(entry)) => logger.ended(entry),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("hearing conntrack endings: {e}");
                    self.endings = None;
                    return;
                }
            }
            if wait > Duration::ZERO {
                break;
            }
        }
        if endings.overruns() > self.lost {
            let times = endings.overruns() - self.lost;
            logger.dropped("endings_lost", times as usize);
            self.lost = endings.overruns();
        }
    }

    /// Tries again what failed before: switching accounting on, hearing endings.
    fn repair(&mut self) {
        if self.accounting.is_some() {
            self.accounting = conntrack::enable_accounting(self.netns).err().map(|e| {
                format!("cannot switch on conntrack accounting ({e}): records carry no packet or byte counts")
            });
        }
        if self.endings.is_none() {
            self.endings = Endings::open(self.netns)
                .map_err(|e| tracing::debug!("cannot hear conntrack endings: {e}"))
                .ok();
        }
    }

    /// Lists what the kernel tracks (a new socket after a failure or a capped listing, which
    /// may still be arriving).
    fn list(&mut self, cap: usize) -> std::io::Result<Listing> {
        let mut conntrack = match self.conntrack.take() {
            Some(c) => c,
            None => Conntrack::open(self.netns)?,
        };
        let listing = conntrack.list(cap)?;
        if !listing.capped {
            self.conntrack = Some(conntrack);
        }
        Ok(listing)
    }
}

/// Runs the flow log in network namespace `netns` until `stop` is set: accounting on, endings
/// heard, a listing at the start (the baseline) and at the end of each interval, attributed with
/// the engines `policy` holds; at `stop`, the interval so far is closed. Failures are logged,
/// counted and shown in `health` (degraded, still ready: enforcement is whole), and tried again
/// at the next interval.
pub fn run(
    mut logger: FlowLogger,
    netns: Option<String>,
    policy: &Mutex<PolicyLogger>,
    health: &Health,
    stop: &AtomicBool,
) {
    let netns = netns.as_deref();
    let mut kernel = Kernel {
        netns,
        accounting: Some(String::new()),
        endings: None,
        lost: 0,
        conntrack: None,
    };
    let mut start = SystemTime::now();
    let mut stopped = false;
    let mut end = start;
    loop {
        kernel.repair();
        let closing = std::time::Instant::now();
        let listed = kernel.list(logger.limits.max_connections);
        // Endings of what the listing no longer held come while it is read: heard before closing.
        kernel.hear(&mut logger, Duration::ZERO);
        let mut problems: Vec<String> = kernel.accounting.iter().cloned().collect();
        if kernel.endings.is_none() {
            problems.push("conntrack endings are not heard: connections that end between intervals are not told".into());
        }
        match listed {
            Ok(listing) => {
                let engines = policy.lock().unwrap_or_else(|e| e.into_inner()).engines();
                if let Some(engines) = engines {
                    logger.set_engines(engines);
                }
                // Wall-clock steps back never make an interval end before it starts.
                logger.close(listing, start, end.max(start));
                start = end.max(start);
                let took = closing.elapsed().as_secs_f64();
                logger.metrics.flow_close_seconds.observe(took);
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
        if stopped {
            return;
        }
        end = interval_end(SystemTime::now(), logger.limits.interval);
        stopped = kernel.hear_until(&mut logger, end, stop);
        if stopped {
            end = SystemTime::now();
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
