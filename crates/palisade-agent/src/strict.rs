//! Strict mode (`--strict`): after the kernel takes a new ruleset, the established connections
//! it now denies are cut. The table accepts established traffic first, so without this a
//! connection a policy change denies keeps running until it closes; with it, its conntrack entry
//! is removed and its next packet is judged as new — and dropped.
//!
//! Which connections: those the kernel tracks in the enforced namespace (at most [`MAX_ENTRIES`]
//! read per pass), TCP, UDP and SCTP, judged as the forward hook judged their first packet (after
//! DNAT), at each end this node enforces, by the compiled rules of that end's class in the table
//! the kernel now holds ([`ClassRules::allows`], the contract the dataplane renders). Those rules
//! rather than [`Engine::verdict`]: they give the same answer, are compiled already, say only
//! what this node's kernel enforces (its pods, its audit mode) and cost one walk of one class's
//! entries, no reasons built. Audited classes are left alone: audit mode lets their new
//! connections through.
//!
//! [`ClassRules::allows`]: palisade_policy::ClassRules::allows

use crate::metrics::{DirectionLabel, Metrics};
use crate::policy_log::PolicyLogger;
use palisade_dataplane::conntrack::{Conntrack, Tracked};
use palisade_dataplane::events::{Action, VerdictEvent};
use palisade_policy::{CompiledTable, Direction, Endpoint, Enforcement, Engine};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Conntrack entries read per pass at most: a listing costs time and memory in proportion (the
/// kernel's default table holds up to 262,144); what lies beyond waits for the next change.
pub const MAX_ENTRIES: usize = 65_536;

/// Strict mode's socket in the enforced namespace, kept between passes.
pub(crate) struct Strict {
    netns: Option<String>,
    conntrack: Option<Conntrack>,
}

/// What a sweep judges with: the engine and the table the kernel holds, and whose pods are
/// enforced here.
pub(crate) struct Judge<'a> {
    pub engine: &'a Engine,
    pub table: &'a CompiledTable,
    pub enforcement: &'a Enforcement,
}

impl Judge<'_> {
    /// The direction whose rules deny `tracked` at an end this node enforces, if one does.
    pub(crate) fn denies(&self, tracked: &Tracked) -> Option<Direction> {
        let state = self.engine.state();
        let flow = tracked.judged();
        let ends = [
            (Direction::Egress, flow.src, flow.dst),
            (Direction::Ingress, flow.dst, flow.src),
        ];
        ends.into_iter().find_map(|(direction, here, peer)| {
            let pod = state.pod_by_ip(here)?;
            let info = &state.pods[pod];
            if !info.enforceable() || !self.enforcement.enforces(info) {
                return None;
            }
            // A pod and its own node: no policy governs that traffic, and it never crosses the
            // forward hook.
            if self
                .engine
                .ungoverned(Endpoint::Ip(here), Endpoint::Ip(peer))
            {
                return None;
            }
            let class = &self.table.classes[self.engine.class_of(pod)];
            let allowed = class.audited
                || (class.rules).allows(direction, Some(peer), flow.dst_port, tracked.protocol);
            (!allowed).then_some(direction)
        })
    }
}

impl Strict {
    /// Strict mode in network namespace `netns` (or the agent's own).
    pub(crate) fn new(netns: Option<String>) -> Strict {
        Strict {
            netns,
            conntrack: None,
        }
    }

    /// Cuts the tracked connections `judge` denies: each removal is counted and handed to
    /// `logger`. Failures are logged and counted; they never stop enforcement.
    pub(crate) fn sweep(
        &mut self,
        judge: &Judge,
        metrics: &Metrics,
        logger: Option<&Arc<Mutex<PolicyLogger>>>,
    ) {
        let mut cut = 0;
        let conntrack = match &mut self.conntrack {
            Some(c) => c,
            None => match Conntrack::open(self.netns.as_deref()) {
                Ok(c) => self.conntrack.insert(c),
                Err(e) => return self.failed(metrics, &e),
            },
        };
        let listing = match conntrack.list(MAX_ENTRIES) {
            Ok(listing) => listing,
            Err(e) => return self.failed(metrics, &e),
        };
        for tracked in listing.entries.iter().map(|e| &e.tracked) {
            let Some(direction) = judge.denies(tracked) else {
                continue;
            };
            if let Err(e) = conntrack.forget(tracked) {
                Metrics::inc(&metrics.strict_failures, "delete");
                tracing::warn!(
                    ?tracked,
                    "strict mode: cannot remove a denied connection: {e}"
                );
                continue;
            }
            cut += 1;
            let label = DirectionLabel {
                direction: direction.as_str().into(),
            };
            metrics.strict_cut.get_or_create(&label).inc();
            if let Some(logger) = logger {
                let event = cut_event(tracked, direction);
                logger.lock().unwrap_or_else(|e| e.into_inner()).cut(&event);
            }
        }
        if listing.capped {
            // The kernel may still be sending the rest of the listing: a new socket next time.
            self.conntrack = None;
            Metrics::inc(&metrics.strict_failures, "capped");
            tracing::warn!(
                "strict mode: more than {MAX_ENTRIES} tracked connections; only the first were judged"
            );
        }
        if cut > 0 {
            tracing::info!(cut, "strict mode: established connections cut");
        }
    }

    /// A listing that failed: logged, counted, and the socket opened afresh next time.
    fn failed(&mut self, metrics: &Metrics, e: &std::io::Error) {
        self.conntrack = None;
        Metrics::inc(&metrics.strict_failures, "list");
        tracing::warn!("strict mode: cannot list tracked connections: {e}; none were cut");
    }
}

/// A cut as the logger takes it: a denial by `direction`'s rules, now.
fn cut_event(tracked: &Tracked, direction: Direction) -> VerdictEvent {
    let flow = tracked.judged();
    VerdictEvent {
        direction,
        action: Action::Deny,
        src: flow.src,
        dst: flow.dst,
        protocol: tracked.protocol,
        src_port: flow.src_port,
        dst_port: flow.dst_port,
        time: SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dataplane::conntrack::Tuple;
    use palisade_model::{Loader, Protocol};
    use palisade_policy::Audit;

    /// Pods a (10.1.0.1, node n1) and b (10.1.0.2, node n2); b accepts nothing but port 80 from
    /// a, and namespace `audited` (pod c, 10.1.0.3, on n1) is in audit mode, accepting nothing.
    const STATE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: audited, annotations: {policy.palisade.dev/audit-mode: "true"}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {nodeName: n2, containers: [{name: c, image: i}]}
status: {podIP: 10.1.0.2, hostIP: 192.168.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: audited, labels: {app: c}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 10.1.0.3}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: none, namespace: audited}
spec: {podSelector: {}, policyTypes: [Ingress]}
"#;

    fn tracked(src: &str, dst: &str, port: u16) -> Tracked {
        let t = |src: &str, dst: &str, sport, dport| Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: sport,
            dst_port: dport,
        };
        Tracked {
            protocol: Protocol::Tcp,
            original: t(src, dst, 40000, port),
            reply: t(dst, src, port, 40000),
            zone: None,
            id: None,
        }
    }

    /// What node `node` (every node: `None`) cuts of each flow.
    fn denials(node: Option<&str>, flows: &[Tracked]) -> Vec<Option<Direction>> {
        let mut loader = Loader::new();
        loader.load_str("state.yaml", STATE);
        let engine = Engine::new(std::sync::Arc::new(loader.finish().0));
        let enforcement = Enforcement {
            audit: Audit::Annotated,
            node: node.map(String::from),
            placed: None,
            strict: false,
        };
        let table = CompiledTable::of(&engine, enforcement.clone());
        let judge = Judge {
            engine: &engine,
            table: &table,
            enforcement: &enforcement,
        };
        flows.iter().map(|f| judge.denies(f)).collect()
    }

    /// Denied flows are cut by the node enforcing the denying end; allowed flows, flows of ends
    /// enforced elsewhere, addresses of no pod, audited pods and a pod's own node never.
    #[test]
    fn only_denied_flows_at_ends_enforced_here_are_cut() {
        let flows = [
            tracked("10.1.0.1", "10.1.0.2", 80),    // a → b:80, allowed
            tracked("10.1.0.1", "10.1.0.2", 81),    // a → b:81, denied at b
            tracked("192.0.2.9", "10.1.0.2", 80),   // outside → b:80, denied at b
            tracked("10.1.0.1", "10.1.0.3", 80),    // a → c, audited
            tracked("192.0.2.9", "192.0.2.8", 80),  // no pod
            tracked("192.168.0.2", "10.1.0.2", 81), // b's node → b:81, node-local
        ];
        let ingress = Some(Direction::Ingress);
        assert_eq!(
            denials(None, &flows),
            [None, ingress, ingress, None, None, None]
        );
        assert_eq!(
            denials(Some("n2"), &flows),
            [None, ingress, ingress, None, None, None]
        );
        assert_eq!(denials(Some("n1"), &flows), [None; 6]);
    }

    /// A Service's connection is judged at its backend (the reply's source), as the kernel
    /// judged it after DNAT.
    #[test]
    fn a_service_connection_is_judged_at_its_backend() {
        let mut via_service = tracked("10.1.0.1", "10.96.0.1", 81);
        via_service.reply.src = "10.1.0.2".parse().unwrap();
        assert_eq!(denials(None, &[via_service]), [Some(Direction::Ingress)]);
        via_service.reply.src_port = 80;
        assert_eq!(denials(None, &[via_service]), [None]);
    }
}
