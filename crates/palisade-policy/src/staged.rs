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

/// `state` without its staged policies; `None` when none is staged.
pub fn enforced_state(state: &ClusterState) -> Option<ClusterState> {
    let staged = (state.policies.iter()).any(|p| p.policy.audit_annotated())
        || (state.tier_policies.iter()).any(|p| p.policy.audit_annotated());
    staged.then(|| {
        let mut enforced = state.clone();
        enforced.policies.retain(|p| !p.policy.audit_annotated());
        enforced.tier_policies.retain(|p| !p.policy.audit_annotated());
        enforced
    })
}
