//! Staged policies: a NetworkPolicy or cluster-wide policy annotated
//! `policy.palisade.dev/audit-mode: "true"` is evaluated and logged but not enforced. What is
//! enforced is the engine of the state without the staged policies; what they would do is the
//! engine of the whole state, compiled only while some policy is staged.

use crate::direction::{Direction, PerDirection};
use crate::engine::Engine;
use crate::table::CompiledTable;
use crate::verdict::{Flow, Side};
use palisade_model::{ClusterState, PodId};
use std::sync::Arc;

/// The engines of one state: the enforced one, and the one with the staged policies in force.
#[derive(Clone)]
pub struct Engines {
    /// The state without its staged policies: what the kernel enforces, what `matrix` answers.
    pub enforced: Arc<Engine>,
    /// The whole state, when some policy is staged: what would be enforced without audit mode.
    pub would: Option<Arc<Engine>>,
}

impl Engines {
    /// The engines of `state`.
    pub fn new(state: Arc<ClusterState>) -> Engines {
        Engines::new_from(None, state)
    }

    /// The engines of `state`, each compiled from its counterpart in `previous`
    /// ([`Engine::new_from`]; a would-engine appearing is compiled from the enforced one, the
    /// closest there is), so that staging costs an incremental compile, not a full one.
    pub fn new_from(previous: Option<&Engines>, state: Arc<ClusterState>) -> Engines {
        let compile = |from: Option<&Engine>, state| match from {
            Some(from) => Arc::new(Engine::new_from(from, state)),
            None => Arc::new(Engine::new(state)),
        };
        let enforced_from = previous.map(|p| &*p.enforced);
        let Some(enforced) = enforced_state(&state) else {
            return Engines {
                enforced: compile(enforced_from, state),
                would: None,
            };
        };
        let would_from = previous.map(|p| p.would.as_deref().unwrap_or(&p.enforced));
        Engines {
            enforced: compile(enforced_from, Arc::new(enforced)),
            would: Some(compile(would_from, state)),
        }
    }

    /// What the staged policies would decide for `flow` at `pod` (the enforcing pod, by its id in
    /// the state, which both engines share) in `direction`; `None` where no staged policy governs
    /// it (the enforced decision stands).
    pub fn would_side(&self, pod: PodId, direction: Direction, flow: &Flow) -> Option<Side> {
        let would = self.would.as_deref()?;
        (would.staged_governs(pod, direction)).then(|| would.side(direction, flow))
    }

    /// `table` (compiled from the enforced engine) with every class holding a pod a staged
    /// policy governs marked for logging, per direction, so that the kernel reports the
    /// connections whose verdict the staged policies may change.
    pub fn mark_staged(&self, mut table: CompiledTable) -> CompiledTable {
        let Some(would) = self.would.as_deref() else {
            return table;
        };
        for class in self.enforced.class_ids() {
            let pods = self.enforced.class_pods(class);
            table.classes[class].staged =
                PerDirection::from_fn(|d| pods.iter().any(|&pod| would.staged_governs(pod, d)));
        }
        table
    }
}

impl From<Arc<Engine>> for Engines {
    /// An engine alone: nothing staged.
    fn from(enforced: Arc<Engine>) -> Engines {
        Engines {
            enforced,
            would: None,
        }
    }
}

/// The engine of what is enforced in `state`: without its staged policies (what `matrix`,
/// `status`, `report`, `diff` and the lab's probes answer).
pub fn enforced_engine(state: ClusterState) -> Engine {
    Engine::new(Arc::new(enforced_state(&state).unwrap_or(state)))
}

/// `state` without its staged policies; `None` when none is staged.
fn enforced_state(state: &ClusterState) -> Option<ClusterState> {
    let staged = (state.policies.iter()).any(|p| p.policy.audit_annotated())
        || (state.tier_policies.iter()).any(|p| p.policy.audit_annotated());
    staged.then(|| {
        let mut enforced = state.clone();
        enforced.policies.retain(|p| !p.policy.audit_annotated());
        enforced
            .tier_policies
            .retain(|p| !p.policy.audit_annotated());
        enforced
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Audit;
    use crate::verdict::Endpoint;
    use palisade_model::{Loader, Protocol};

    const CLUSTER: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: shop, labels: {app: a}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: shop, labels: {app: b}}
status: {podIP: 10.0.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-closed, namespace: shop}
spec: {podSelector: {matchLabels: {app: b}}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-closed, namespace: shop, annotations: {policy.palisade.dev/audit-mode: \"STAGED\"}}
spec: {podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: open-b, annotations: {policy.palisade.dev/audit-mode: \"true\"}}
spec:
  tier: Admin
  priority: 1
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: b}}}}
  ingress: [{name: all, action: Accept, from: [{namespaces: {}}]}]
";

    fn state(text: &str) -> Arc<ClusterState> {
        let mut loader = Loader::new();
        loader.load_str("cluster.yaml", text);
        let (state, diagnostics) = loader.finish();
        assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
        Arc::new(state)
    }

    fn flow(src: usize, dst: usize) -> Flow {
        Flow {
            src: Endpoint::Pod(PodId::new(src)),
            dst: Endpoint::Pod(PodId::new(dst)),
            port: 80,
            protocol: Protocol::Tcp,
        }
    }

    /// A staged default-deny and a staged Admin Accept change nothing enforced: the enforced
    /// engine answers as the cluster without them; the would-engine sees both, and the table
    /// marks for logging the classes (and directions) they govern. Staging follows the annotation
    /// across incremental compiles (the compiled policy is reused, its annotation is not).
    #[test]
    fn staged_policies_change_nothing_enforced_and_the_would_engine_sees_them() {
        let text = CLUSTER.replace("\"STAGED\"", "\"true\"");
        let engines = Engines::new(state(&text));
        let without = text.split("---").filter(|d| !d.contains("audit-mode"));
        let plain = Engine::new(state(&without.collect::<Vec<_>>().join("---")));
        assert_eq!(
            engines.enforced.reach(80, Protocol::Tcp),
            plain.reach(80, Protocol::Tcp)
        );
        let (a, b) = (0, 1);
        assert!(engines.enforced.verdict(&flow(b, a)).allowed, "staged deny");
        assert!(
            !engines.enforced.verdict(&flow(a, b)).allowed,
            "staged Accept"
        );
        let would = engines.would.as_deref().expect("some policy is staged");
        assert!(!would.verdict(&flow(b, a)).allowed);
        assert!(would.verdict(&flow(a, b)).allowed);
        let side = engines.would_side(PodId::new(a), Direction::Ingress, &flow(b, a));
        assert!(side.is_some_and(|s| !s.decision.allows()));
        assert!(engines
            .would_side(PodId::new(a), Direction::Egress, &flow(a, b))
            .is_none());
        let table = engines.mark_staged(CompiledTable::of(&engines.enforced, Audit::Annotated));
        for pod in [a, b] {
            let class = &table.classes[engines.enforced.class_of(PodId::new(pod))];
            assert!(class.staged.ingress && !class.staged.egress, "{pod}");
        }
        // "STAGED" is not "true": the NetworkPolicy is enforced, from the previous engines.
        let next = Engines::new_from(Some(&engines), state(CLUSTER));
        assert!(!next.enforced.verdict(&flow(b, a)).allowed, "enforced now");
        let table = next.mark_staged(CompiledTable::of(&next.enforced, Audit::Annotated));
        assert!(
            !table.classes[next.enforced.class_of(PodId::new(a))]
                .staged
                .ingress
        );
        // Nothing staged: no would-engine.
        assert!(Engines::new(plain.state_arc()).would.is_none());
    }
}
