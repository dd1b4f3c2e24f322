//! The connectivity matrix: for each probe, may pod i open a connection to pod j? Computed on endpoint
//! classes ([`palisade_policy::Engine::reach`]) and expanded to pods row by row only when rendered.

use crate::probe::Probe;
use crate::render::Grid;
use palisade_model::PodId;
use palisade_policy::{BitSet, ClassId, Engine, Reach};

/// Which pods a matrix covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every pod.
    #[default]
    All,
    /// The pods of these namespaces.
    Namespaces(Vec<String>),
}

/// A computed matrix: pods (sorted by namespace, then name) × pods, per probe.
pub struct Matrix<'e> {
    engine: &'e Engine,
    /// The pods of rows and columns, by position.
    pub pods: Vec<PodId>,
    /// The probes, in order, with their class-level reachability.
    pub probes: Vec<(Probe, Reach)>,
    /// Class of each covered pod, by position.
    classes: Vec<ClassId>,
    /// Per position, the other positions it is always allowed with: a pod and its node (both ways).
    always: Vec<Vec<usize>>,
}

impl<'e> Matrix<'e> {
    /// The pods of `scope`, in state order (namespace, then name).
    pub fn pods_in(engine: &Engine, scope: &Scope) -> Vec<PodId> {
        (engine.state().pods.iter_enumerated())
            .filter(|(_, pod)| match scope {
                Scope::All => true,
                Scope::Namespaces(nss) => nss.iter().any(|n| *n == pod.namespace),
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Computes the matrix of `pods` for `probes`.
    pub fn compute(engine: &'e Engine, pods: Vec<PodId>, probes: &[Probe]) -> Matrix<'e> {
        let probes = probes
            .iter()
            .map(|p| (*p, engine.reach(p.port, p.protocol)))
            .collect();
        let classes = pods.iter().map(|&p| engine.class_of(p)).collect();
        let state = engine.state();
        let mut always = vec![Vec::new(); pods.len()];
        for (h, &hp) in pods
            .iter()
            .enumerate()
            .filter(|(_, &p)| state.pods[p].host_network)
        {
            for (p, &pp) in pods.iter().enumerate() {
                if h != p && engine.always_allowed(hp, pp) {
                    always[h].push(p);
                    always[p].push(h);
                }
            }
        }
        Matrix {
            engine,
            pods,
            probes,
            classes,
            always,
        }
    }

    /// The engine the matrix was computed with.
    pub fn engine(&self) -> &Engine {
        self.engine
    }

    /// `ns/name` of the pod at position `i`.
    pub fn pod_name(&self, i: usize) -> String {
        self.engine.state().pods[self.pods[i]].key().to_string()
    }

    /// The endpoint class of the pod at position `i`.
    pub fn class(&self, i: usize) -> ClassId {
        self.classes[i]
    }

    /// The positions the pod at position `i` is always allowed with (its node), whatever the
    /// policies; a position may be listed twice.
    pub fn always(&self, i: usize) -> &[usize] {
        &self.always[i]
    }

    /// May the pod at position `src` connect to the pod at position `dst` for probe `probe`?
    pub fn allowed(&self, probe: usize, src: usize, dst: usize) -> bool {
        src == dst
            || self.always[src].contains(&dst)
            || self.probes[probe]
                .1
                .allowed(self.classes[src], self.classes[dst])
    }
}

impl Grid for Matrix<'_> {
    fn names(&self) -> Vec<String> {
        (0..self.pods.len()).map(|i| self.pod_name(i)).collect()
    }

    fn probes(&self) -> Vec<Probe> {
        self.probes.iter().map(|(p, _)| *p).collect()
    }

    fn row_into(&self, probe: usize, src: usize, out: &mut Vec<bool>) {
        let reach = &self.probes[probe].1;
        let sc = self.classes[src];
        let mut dst_classes = BitSet::new(self.engine.class_count());
        for dc in self.engine.class_ids() {
            if reach.allowed(sc, dc) {
                dst_classes.insert(dc);
            }
        }
        out.clear();
        out.extend(
            self.classes
                .iter()
                .enumerate()
                .map(|(j, &c)| j == src || dst_classes.contains(c)),
        );
        for &j in &self.always[src] {
            out[j] = true;
        }
    }
}
