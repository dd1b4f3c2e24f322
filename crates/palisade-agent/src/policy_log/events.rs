//! What the logger tells as Kubernetes Events (written by [`palisade_kube::events`]): a
//! `NetworkLogging` change (`InvalidNetworkLogging`, `UpdateNetworkLogging`, as GKE says them, on
//! the object every agent sees alike) and, with `--deny-events`, a connection a policy dropped
//! (`PolicyDenied`, on the pod whose policy denied it).
//!
//! Audit mode's "would deny" makes no Event: the connection went through, so a Warning saying
//! "denied" would be false, and audit mode is how a rollout is previewed quietly — its findings are
//! in the policy action log (`"audit": true`) and `palisade_policy_audit_verdicts_total`.

use palisade_dataplane::events::VerdictEvent;
use palisade_kube::events::{EventType, Occurrence, Regarding, Scope};
use palisade_model::logging::LoggingSwitches;
use palisade_model::{ClusterState, PodInfo};
use palisade_model::{Protocol, TierAction};
use palisade_policy::{Decision, Direction, Engine};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

/// How long a flow's Event is reused for its repeats without evaluating its policies again.
const REUSE: Duration = Duration::from_secs(10);
/// Flows remembered at most (then forgotten all at once: a flood of new flows costs what it did).
const MAX_TOLD: usize = 4096;

/// A flow, as deny Events count repeats: direction, source, destination, port, protocol.
type FlowKey = (Direction, IpAddr, IpAddr, u16, Protocol);

/// The `PolicyDenied` occurrences of the flows told lately, by flow, under one engine: a repeat
/// of a flow (a client retrying) is counted into its series without `Engine::side` again.
#[derive(Default)]
pub(super) struct Told {
    engine: u64,
    flows: HashMap<FlowKey, (SystemTime, Occurrence)>,
}

impl Told {
    /// The occurrence of `event`, a drop at `pod` ([`denied`]), reused for a repeat.
    pub fn denied(
        &mut self,
        engine: &Engine,
        event: &VerdictEvent,
        pod: &PodInfo,
    ) -> Option<Occurrence> {
        if self.engine != engine.id() {
            self.flows.clear();
            self.engine = engine.id();
        }
        let key = (
            event.direction,
            event.src,
            event.dst,
            event.dst_port,
            event.protocol,
        );
        if let Some((at, told)) = self.flows.get(&key) {
            if event.time.duration_since(*at).is_ok_and(|age| age < REUSE) {
                return Some(Occurrence {
                    time: event.time,
                    ..told.clone()
                });
            }
        }
        let mut occurrence = denied(engine, event, pod)?;
        // What is kept is what the Event will say: bounded, however many policies isolate.
        palisade_kube::events::cut_note(&mut occurrence.note);
        if self.flows.len() >= MAX_TOLD {
            self.flows.clear();
        }
        self.flows.insert(key, (event.time, occurrence.clone()));
        Some(occurrence)
    }
}

/// A change every agent sees alike, told on `regarding` (the `NetworkLogging` object, with the
/// generation that made it): keyed by its note, so that they write one Event.
fn configured(type_: EventType, reason: &str, note: String, regarding: Regarding) -> Occurrence {
    Occurrence {
        regarding,
        type_,
        reason: reason.into(),
        action: "Configure".into(),
        key: note.clone(),
        note,
        scope: Scope::Cluster,
        time: std::time::SystemTime::now(),
    }
}

/// `InvalidNetworkLogging` on `regarding`: `reason` rejected the object; the previous
/// configuration stays.
pub(super) fn invalid(reason: &str, regarding: Regarding) -> Occurrence {
    let note = format!("{reason}; the previous logging configuration stays in effect");
    configured(EventType::Warning, "InvalidNetworkLogging", note, regarding)
}

/// `UpdateNetworkLogging` on `regarding`: `switches` are in effect.
pub(super) fn updated(switches: LoggingSwitches, regarding: Regarding) -> Occurrence {
    let (allow, deny) = (switches.allow, switches.deny);
    let note = format!(
        "policy action logging configured: spec.cluster.allow {{log: {}, delegate: {}}}, spec.cluster.deny {{log: {}, delegate: {}}}",
        allow.log, allow.delegate, deny.log, deny.delegate
    );
    configured(EventType::Normal, "UpdateNetworkLogging", note, regarding)
}

/// `PolicyDenied` on `pod`, which enforced `event` (a drop), naming the policies that isolate it
/// or the cluster-wide rule that denied it; `None` when the engine does not deny the flow (a
/// ruleset that has changed since).
fn denied(engine: &Engine, event: &VerdictEvent, pod: &PodInfo) -> Option<Occurrence> {
    let flow = super::flow(event);
    let direction = event.direction.as_str();
    let why = match engine.side(event.direction, &flow).decision {
        Decision::Denied { isolating } => {
            let policies: Vec<String> = (isolating.iter())
                .map(|miss| {
                    format!(
                        "NetworkPolicy {}/{}",
                        miss.policy.namespace, miss.policy.name
                    )
                })
                .collect();
            match event.direction {
                Direction::Ingress => format!("isolated by {}", policies.join(", ")),
                Direction::Egress => format!("isolated for egress by {}", policies.join(", ")),
            }
        }
        Decision::Tier { rule } if rule.action == TierAction::Deny => {
            let name = rule.name.map(|n| format!(" `{n}`")).unwrap_or_default();
            format!(
                "denied by {} {} ({} tier) spec.{direction}[{}]{name}",
                rule.policy.kind,
                rule.policy.name,
                rule.policy.tier.as_str(),
                rule.rule
            )
        }
        _ => return None,
    };
    let state = engine.state();
    let to = address(event.dst, event.dst_port, event.protocol);
    let note = match event.direction {
        Direction::Ingress => format!(
            "connection from {} to {to} denied: {why}",
            peer(state, event.src)
        ),
        Direction::Egress => match pod_name(state, event.dst) {
            Some(name) => format!("connection to {name} at {to} denied: {why}"),
            None => format!("connection to {to} denied: {why}"),
        },
    };
    Some(Occurrence {
        regarding: Regarding {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some(pod.namespace.clone()),
            name: pod.name.clone(),
            uid: None,
            generation: None,
        },
        type_: EventType::Warning,
        reason: "PolicyDenied".into(),
        action: "Drop".into(),
        // The flow, as deny aggregation keys it: retries from new source ports are one series.
        key: format!("{} {}>{to}", event.direction.as_str(), event.src),
        note,
        scope: Scope::Node,
        time: event.time,
    })
}

/// `10.42.0.10:6379/TCP`, `[fd00::a]:53/UDP`, or `10.42.0.10/ICMP` (no port).
fn address(ip: IpAddr, port: u16, protocol: palisade_model::Protocol) -> String {
    match port {
        0 => format!("{ip}/{protocol}"),
        _ => format!("{}/{protocol}", SocketAddr::new(ip, port)),
    }
}

/// `ns/name` of the pod at `ip`, if one is.
fn pod_name(state: &ClusterState, ip: IpAddr) -> Option<String> {
    let pod = &state.pods[state.pod_by_ip(ip)?];
    Some(format!("{}/{}", pod.namespace, pod.name))
}

/// The pod at `ip` as `ns/name`, else the address.
fn peer(state: &ClusterState, ip: IpAddr) -> String {
    pod_name(state, ip).unwrap_or_else(|| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dataplane::events::Action;
    use std::sync::Arc;

    /// Redis isolated by policy `name`; rogue beside it.
    fn engine(name: &str) -> Engine {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: redis, namespace: shop, labels: {{app: redis}}}}\n\
             spec: {{nodeName: n1, containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: 10.42.0.10}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: rogue, namespace: shop, labels: {{app: rogue}}}}\n\
             spec: {{nodeName: n1, containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: 10.42.0.11}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: shop}}\n\
             spec: {{podSelector: {{matchLabels: {{app: redis}}}}, policyTypes: [Ingress]}}\n"
        );
        let mut loader = palisade_model::Loader::new();
        loader.load_str("shop.yaml", &text);
        Engine::new(Arc::new(loader.finish().0))
    }

    fn drop_at(secs: u64) -> VerdictEvent {
        VerdictEvent {
            direction: Direction::Ingress,
            action: Action::Deny,
            src: "10.42.0.11".parse().unwrap(),
            dst: "10.42.0.10".parse().unwrap(),
            protocol: Protocol::Tcp,
            src_port: 40000,
            dst_port: 6379,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs),
        }
    }

    /// A flow's repeats within 10 s, under one engine, reuse its first occurrence (only the time
    /// moves); after 10 s, or under a new engine (whose policies may differ), it is evaluated
    /// again.
    #[test]
    fn repeats_of_a_flow_reuse_its_occurrence_until_ten_seconds_or_a_new_engine() {
        let (first, renamed) = (engine("isolate"), engine("renamed"));
        let state = first.state();
        let redis = &state.pods[state.pod_id("shop", "redis").unwrap()];
        let mut told = Told::default();
        let note = |o: Option<Occurrence>| o.expect("a drop").note;
        let at0 = told.denied(&first, &drop_at(0), redis).unwrap();
        assert!(
            at0.note.contains("NetworkPolicy shop/isolate"),
            "{}",
            at0.note
        );
        let repeat = told.denied(&first, &drop_at(9), redis).unwrap();
        assert_eq!(
            (repeat.note, repeat.time),
            (at0.note.clone(), drop_at(9).time)
        );
        assert_eq!(told.flows.len(), 1);
        // Reused: the kept occurrence is still the first one's.
        assert_eq!(told.flows.values().next().unwrap().0, drop_at(0).time);
        told.denied(&first, &drop_at(11), redis);
        assert_eq!(told.flows.values().next().unwrap().0, drop_at(11).time);
        // A new engine: evaluated again, with what it says.
        assert!(note(told.denied(&renamed, &drop_at(12), redis)).contains("shop/renamed"));
    }
}
