//! What the kernel needs of a compiled cluster, and nothing else: per class, the addresses that
//! jump to its chains, its rules, and whether it is audited. The dataplane renders only this — it
//! never reads the cluster state — and what a node enforces is decided here: audit mode, which
//! namespaces decide, and whose pods (those scheduled on the node).

use crate::classes::{Class, ClassId};
use crate::compile::ClassRules;
use crate::direction::PerDirection;
use crate::engine::Engine;
use palisade_model::logging::{annotation_enabled, AUDIT_ANNOTATION};
use palisade_model::{IdVec, NamespaceInfo, PodInfo, PodKey};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

/// Where audit mode applies: for those pods nothing is dropped; what policy would deny is let through
/// and logged as an audit event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Audit {
    /// Only in namespaces annotated `policy.palisade.dev/audit-mode: "true"`.
    #[default]
    Annotated,
    /// Everywhere on this node (`--policy-audit-mode`).
    All,
}

/// What one node's table enforces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enforcement {
    /// Where audit mode applies.
    pub audit: Audit,
    /// The node's name: only the pods scheduled on it (`spec.nodeName`), and those not scheduled
    /// on any node (a manifests folder's, which would otherwise go unenforced), jump to their
    /// chains — every other node enforces its own. Every pod remains a peer. `None`: every pod.
    pub node: Option<String>,
    /// The pods placed on this node by `ns/name`, when something other than `spec.nodeName`
    /// places them (a multi-node lab, whose manifests need not name nodes): only these are
    /// enforced, of those `node` lets through. `None`: placement by `node` alone.
    pub placed: Option<Arc<BTreeSet<PodKey>>>,
    /// Strict mode (`--strict`): a connection lives only as long as the kernel tracks it — a TCP
    /// packet that would start tracking one in mid-stream is dropped (the agent also cuts the
    /// connections a change denies).
    pub strict: bool,
}

impl Enforcement {
    /// True when this node enforces `pod`'s policies.
    pub fn enforces(&self, pod: &PodInfo) -> bool {
        let scheduled = match (&self.node, &pod.node_name) {
            (Some(node), Some(on)) => node == on,
            _ => true,
        };
        scheduled && (self.placed.as_ref()).is_none_or(|placed| placed.contains(&pod.key()))
    }
}

impl From<Audit> for Enforcement {
    /// Every pod, with audit mode where `audit` says.
    fn from(audit: Audit) -> Enforcement {
        Enforcement {
            audit,
            ..Enforcement::default()
        }
    }
}

/// One class as the kernel sees it.
#[derive(Clone, Debug)]
pub struct TableClass {
    /// The addresses that jump to its chains: those of its pods this node enforces (hostNetwork
    /// pods, and pods without an address, have none), in pod order.
    pub addresses: Vec<IpAddr>,
    /// What it allows.
    pub rules: Arc<ClassRules>,
    /// Nothing is dropped: what would be is logged as audited.
    pub audited: bool,
    /// Per direction: a staged policy governs a pod of the class, so every new connection is
    /// logged — also those its rules leave allowed without a rule (where it is not isolated) —
    /// for the agent to compare with what the staged policies would decide
    /// ([`crate::Engines::mark_staged`]).
    pub staged: PerDirection<bool>,
}

/// The classes of one engine as the kernel sees them, and which table this one was compiled from.
#[derive(Clone, Debug)]
pub struct CompiledTable {
    /// The engine's id.
    id: u64,
    /// The engine it was compiled from (its id), and each class's counterpart there.
    derived: Option<(u64, IdVec<Class, Option<ClassId>>)>,
    /// Every class of the engine.
    pub classes: IdVec<Class, TableClass>,
    /// Strict mode ([`Enforcement::strict`]).
    pub strict: bool,
}

impl CompiledTable {
    /// The table of `engine`, whose classes compiled to `rules` ([`Engine::compile_classes`]),
    /// enforcing what `enforcement` says.
    pub fn new(
        engine: &Engine,
        rules: &IdVec<Class, Arc<ClassRules>>,
        enforcement: impl Into<Enforcement>,
    ) -> CompiledTable {
        let enforcement = enforcement.into();
        let state = engine.state();
        let audited: IdVec<NamespaceInfo, bool> = (state.namespaces.iter())
            .map(|n| {
                enforcement.audit == Audit::All
                    || annotation_enabled(&n.annotations, AUDIT_ANNOTATION)
            })
            .collect();
        let classes = (rules.iter_enumerated())
            .map(|(c, rules)| {
                let pods = engine.class_pods(c);
                TableClass {
                    addresses: (pods.iter())
                        .map(|&p| &state.pods[p])
                        .filter(|p| !p.host_network && enforcement.enforces(p))
                        .filter_map(|p| p.ip)
                        .collect(),
                    rules: rules.clone(),
                    // A class never spans namespaces.
                    audited: audited[engine.class_namespace(c)],
                    staged: PerDirection::default(),
                }
            })
            .collect();
        CompiledTable {
            id: engine.id(),
            derived: engine.derived_classes(),
            classes,
            strict: enforcement.strict,
        }
    }

    /// The table of `engine`, every class compiled afresh.
    pub fn of(engine: &Engine, enforcement: impl Into<Enforcement>) -> CompiledTable {
        CompiledTable::compile(engine, None, enforcement)
    }

    /// The table of `engine`, taking from `previous` — the engine it was compiled from
    /// ([`Engine::new_from`]) and that engine's table — the rules of every class that cannot have
    /// changed ([`Engine::compile_classes`]).
    pub fn compile(
        engine: &Engine,
        previous: Option<(&Engine, &CompiledTable)>,
        enforcement: impl Into<Enforcement>,
    ) -> CompiledTable {
        let previous = previous.map(|(old, table)| {
            let rules: IdVec<Class, Arc<ClassRules>> =
                (table.classes.iter()).map(|c| c.rules.clone()).collect();
            (old, rules)
        });
        let rules = engine.compile_classes(previous.as_ref().map(|(old, r)| (*old, r)));
        CompiledTable::new(engine, &rules, enforcement)
    }

    /// Names this table (and what is built for it) among the tables of this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// When this table's engine was compiled from `previous`'s: each class's counterpart there.
    pub fn counterparts(&self, previous: &CompiledTable) -> Option<&IdVec<Class, Option<ClassId>>> {
        match &self.derived {
            Some((from, classes)) if *from == previous.id => Some(classes),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Direction;
    use palisade_model::{Loader, PodId, Protocol};

    const CLUSTER: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: quiet, annotations: {policy.palisade.dev/audit-mode: \"true\"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: strict}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: quiet, labels: {app: web}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: strict, labels: {app: web}}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: host, namespace: strict, labels: {app: web}}
spec: {hostNetwork: true}
status: {podIP: 192.0.2.1}
";

    fn engine(text: &str) -> Engine {
        let mut loader = Loader::new();
        loader.load_str("cluster.yaml", text);
        let (state, diagnostics) = loader.finish();
        assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
        Engine::new(Arc::new(state))
    }

    /// The class holding pod `name`.
    fn class_of<'t>(engine: &Engine, table: &'t CompiledTable, name: &str) -> &'t TableClass {
        let (pod, _) = (engine.state().pods.iter_enumerated())
            .find(|(_, p)| p.name == name)
            .expect("pod");
        &table.classes[engine.class_of(pod)]
    }

    #[test]
    fn audit_mode_is_decided_per_namespace_and_addresses_are_the_pods_that_jump() {
        let engine = engine(CLUSTER);
        let table = CompiledTable::of(&engine, Audit::Annotated);
        let quiet = class_of(&engine, &table, "a");
        assert!(quiet.audited, "the annotated namespace is audited");
        assert_eq!(quiet.addresses, ["10.0.0.1".parse::<IpAddr>().unwrap()]);
        let strict = class_of(&engine, &table, "b");
        assert!(
            !strict.audited,
            "a namespace without the annotation is enforced"
        );
        // The hostNetwork pod has the node's address: it never jumps to a class chain.
        let addresses: Vec<IpAddr> = (table.classes.iter())
            .flat_map(|c| c.addresses.iter().copied())
            .collect();
        assert_eq!(addresses.len(), 2, "{addresses:?}");
        assert!(!addresses.contains(&"192.0.2.1".parse().unwrap()));
        let everywhere = CompiledTable::of(&engine, Audit::All);
        assert!(everywhere.classes.iter().all(|c| c.audited));
    }

    #[test]
    fn counterparts_are_given_only_against_the_table_compiled_from() {
        let first = engine(CLUSTER);
        let table = CompiledTable::of(&first, Audit::Annotated);
        let relabelled = CLUSTER.replacen(
            "name: b, namespace: strict, labels: {app: web}",
            "name: b, namespace: strict, labels: {app: api}",
            1,
        );
        let next_state = engine(&relabelled).state().clone();
        let next = Engine::new_from(&first, Arc::new(next_state));
        let next_table = CompiledTable::compile(&next, Some((&first, &table)), Audit::Annotated);
        let counterparts = next_table.counterparts(&table).expect("compiled from it");
        assert_eq!(counterparts.len(), next_table.classes.len());
        // The audited class kept its pods and policies: same rules, by pointer.
        let (a, was) = (
            class_of(&next, &next_table, "a"),
            class_of(&first, &table, "a"),
        );
        assert!(Arc::ptr_eq(&a.rules, &was.rules));
        // A table is named after its engine, so a fresh one of the same engine counts too…
        let fresh = CompiledTable::of(&next, Audit::Annotated);
        assert!(
            fresh.counterparts(&table).is_some(),
            "same engine, so same derivation"
        );
        // …but the table of another engine does not.
        let other = CompiledTable::of(&engine(CLUSTER), Audit::Annotated);
        assert!(next_table.counterparts(&other).is_none());
    }

    #[test]
    fn a_policy_whose_annotations_alone_changed_keeps_its_compiled_rules() {
        let policy = |annotations: &str| {
            format!(
                "{CLUSTER}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                 metadata: {{name: web, namespace: strict, annotations: {{{annotations}}}}}\n\
                 spec: {{podSelector: {{matchLabels: {{app: web}}}}, ingress: [{{from: [{{podSelector: {{}}}}]}}]}}\n"
            )
        };
        let first = engine(&policy(""));
        let table = CompiledTable::of(&first, Audit::Annotated);
        let b = class_of(&first, &table, "b");
        assert!(b.rules.ingress.is_some(), "the policy isolates b");
        let edited = engine(&policy("note: edited")).state().clone();
        let next = Engine::new_from(&first, Arc::new(edited));
        let next_table = CompiledTable::compile(&next, Some((&first, &table)), Audit::Annotated);
        assert!(
            Arc::ptr_eq(&class_of(&next, &next_table, "b").rules, &b.rules),
            "the same spec compiles to the same rules: they are reused"
        );
    }

    #[test]
    fn a_node_enforces_its_own_pods_and_knows_every_pod_as_a_peer() {
        let pod = |name: &str, node: &str, ip: &str| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: strict, labels: {{app: {name}}}}}\n\
                 spec: {{nodeName: {node}, containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: {ip}}}\n"
            )
        };
        let text = [
            CLUSTER.to_string(),
            pod("here", "n1", "10.0.1.1"),
            pod("there", "n2", "10.0.2.1"),
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
             metadata: {name: same-namespace, namespace: strict}\n\
             spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}\n"
                .to_string(),
        ]
        .concat();
        let engine = engine(&text);
        let on_n1 = Enforcement {
            node: Some("n1".into()),
            ..Enforcement::default()
        };
        let table = CompiledTable::of(&engine, on_n1);
        let addresses = |name: &str| class_of(&engine, &table, name).addresses.clone();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(addresses("here"), [ip("10.0.1.1")]);
        assert!(addresses("there").is_empty(), "n2 enforces its own pods");
        assert_eq!(
            addresses("b"),
            [ip("10.0.0.2")],
            "a pod scheduled nowhere (a manifests folder's) is enforced"
        );
        // The pod of n2 is still a peer of what n1 enforces.
        let rules = &class_of(&engine, &table, "here").rules;
        assert!(rules.allows(Direction::Ingress, Some(ip("10.0.2.1")), 80, Protocol::Tcp));
        assert!(!rules.allows(Direction::Ingress, Some(ip("192.0.2.9")), 80, Protocol::Tcp));
        // Without a node, every pod.
        let everywhere = CompiledTable::of(&engine, Audit::Annotated);
        assert_eq!(
            class_of(&engine, &everywhere, "there").addresses,
            [ip("10.0.2.1")]
        );
        // Placed by name (a lab's node): only the pods placed, whatever their nodeName says.
        let placed = |node: Option<&str>, pods: &[&str]| Enforcement {
            node: node.map(Into::into),
            placed: Some(Arc::new(
                pods.iter().map(|p| PodKey::new("strict", p)).collect(),
            )),
            ..Enforcement::default()
        };
        let table = CompiledTable::of(&engine, placed(None, &["there"]));
        let addresses = |name: &str| class_of(&engine, &table, name).addresses.clone();
        assert_eq!(addresses("there"), [ip("10.0.2.1")]);
        assert!(addresses("here").is_empty(), "not placed here");
        assert!(
            addresses("b").is_empty(),
            "scheduled nowhere, and not placed here"
        );
        let table = CompiledTable::of(&engine, placed(Some("n1"), &["there", "b"]));
        let addresses = |name: &str| class_of(&engine, &table, name).addresses.clone();
        assert!(addresses("there").is_empty(), "placed, but scheduled on n2");
        assert_eq!(addresses("b"), [ip("10.0.0.2")]);
    }

    #[test]
    fn policies_bringing_or_dropping_ip_blocks_are_compiled_from_the_previous_engine() {
        let block = |name: &str, cidr: &str| {
            format!(
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                 metadata: {{name: {name}, namespace: quiet}}\n\
                 spec: {{podSelector: {{}}, ingress: [{{from: [{{ipBlock: {{cidr: {cidr}}}}}]}}]}}\n"
            )
        };
        let first = engine(&(CLUSTER.to_string() + &block("old", "10.0.0.0/8")));
        let table = CompiledTable::of(&first, Audit::Annotated);
        // A new ipBlock holding pod b: the classes are split by it, from the previous ones.
        let text = CLUSTER.to_string() + &block("old", "10.0.0.0/8") + &block("new", "10.0.0.2/32");
        let next = Engine::new_from(&first, engine(&text).state_arc());
        assert!(
            next.counterparts(&first).is_some(),
            "compiled from the previous engine"
        );
        let next_table = CompiledTable::compile(&next, Some((&first, &table)), Audit::Annotated);
        let fresh = CompiledTable::of(&engine(&text), Audit::Annotated);
        assert_eq!(next.class_count(), fresh.classes.len());
        for name in ["a", "b", "host"] {
            assert_eq!(
                *class_of(&next, &next_table, name).rules,
                *class_of(&engine(&text), &fresh, name).rules,
                "{name}"
            );
        }
        // Back: the new ipBlock's only use deleted, the classes it split merge again.
        let back = Engine::new_from(
            &next,
            engine(&(CLUSTER.to_string() + &block("old", "10.0.0.0/8"))).state_arc(),
        );
        assert!(back.counterparts(&next).is_some());
        assert_eq!(back.class_count(), first.class_count());
        let back_table =
            CompiledTable::compile(&back, Some((&next, &next_table)), Audit::Annotated);
        for name in ["a", "b", "host"] {
            assert_eq!(
                *class_of(&back, &back_table, name).rules,
                *class_of(&first, &table, name).rules,
                "{name}"
            );
        }
        // Every ipBlock gone.
        let none = Engine::new_from(&first, engine(CLUSTER).state_arc());
        assert_eq!(none.block_count(), 0);
        assert!(none.counterparts(&first).is_some());
    }

    /// An ipBlock's only use deleted, before others: the later ipBlocks' ids shift down, and the
    /// classes it split (a and a2 differ only by it) merge — the same answers as a fresh engine.
    #[test]
    fn an_ip_block_gone_renumbers_the_others_and_merges_classes() {
        let policy = |name: &str, namespace: &str, cidr: &str| {
            format!(
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                 metadata: {{name: {name}, namespace: {namespace}}}\n\
                 spec: {{podSelector: {{}}, ingress: [{{from: [{{ipBlock: {{cidr: {cidr}}}}}]}}]}}\n"
            )
        };
        let twin = "---\napiVersion: v1\nkind: Pod\n\
                    metadata: {name: a2, namespace: quiet, labels: {app: web}}\n\
                    status: {podIP: 10.0.0.3}\n";
        let cluster = |policies: &[(&str, &str, &str)]| {
            let policies: String = policies.iter().map(|(n, ns, c)| policy(n, ns, c)).collect();
            CLUSTER.to_string() + twin + &policies
        };
        // Blocks: a's, b's, and one of a, a2 and b.
        let all = [
            ("p1", "quiet", "10.0.0.1/32"),
            ("p2", "quiet", "10.0.0.2/32"),
            ("p3", "strict", "10.0.0.0/30"),
        ];
        let first = engine(&cluster(&all));
        let table = CompiledTable::of(&first, Audit::Annotated);
        let text = cluster(&all[1..]);
        let next = Engine::new_from(&first, engine(&text).state_arc());
        let counterparts = next
            .counterparts(&first)
            .expect("compiled from the previous engine");
        let class = |engine: &Engine, ns: &str, name: &str| {
            engine.class_of(engine.state().pod_id(ns, name).expect("pod"))
        };
        assert_eq!(
            counterparts[class(&next, "strict", "b")],
            Some(class(&first, "strict", "b")),
            "b's class kept its pods: its counterpart, whose key is renumbered"
        );
        let merged = counterparts[class(&next, "quiet", "a")];
        assert!(
            [class(&first, "quiet", "a"), class(&first, "quiet", "a2")]
                .iter()
                .any(|&o| merged == Some(o)),
            "a merged class keeps one of its classes as counterpart: {merged:?}"
        );
        let next_table = CompiledTable::compile(&next, Some((&first, &table)), Audit::Annotated);
        let fresh = engine(&text);
        let fresh_table = CompiledTable::of(&fresh, Audit::Annotated);
        assert_eq!(next.class_count(), fresh.class_count(), "a and a2 merged");
        assert_eq!(next.class_of(PodId::new(0)), next.class_of(PodId::new(1)));
        for (port, protocol) in [(80, Protocol::Tcp), (53, Protocol::Udp)] {
            assert_eq!(next.reach(port, protocol), fresh.reach(port, protocol));
        }
        for class in next.class_ids() {
            assert_eq!(
                next_table.classes[class].rules,
                fresh_table.classes[class].rules
            );
        }
    }
}
