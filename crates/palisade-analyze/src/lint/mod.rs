//! `palisade lint`: the NetworkPolicy mistakes people make again and again, found in a cluster's
//! manifests with the engine's answers — each a [`Finding`] with a stable rule id, the object, its
//! file and line, the field, what is wrong and what to write instead.
//!
//! Rules work on the engine's endpoint classes (pods every policy treats alike), never on pod
//! pairs, so that a 10,000-pod cluster takes well under a second. One file per group of rules:
//! `services.rs` (Service ports and Services split by policies), `dns.rs`, `peers.rs` (selectors
//! and named ports that match nothing, peers that look like an AND), `redundant.rs`, `addresses.rs`
//! (ipBlocks over pod addresses, namespaces left open), `kinds.rs` (policy kinds not enforced),
//! `tiers.rs` (cluster-wide policies' ambiguities) and `shadowed.rs` (what the tiers' order makes
//! of a rule).

mod addresses;
mod dns;
mod index;
mod kinds;
mod output;
mod peers;
mod redundant;
mod services;
mod shadowed;
mod tiers;

pub(crate) use index::service_selects;
pub use output::{to_json, to_sarif, to_text};

use crate::matrix::Scope;
use index::Index;
use palisade_model::logging::{annotation_enabled, AUDIT_ANNOTATION};
use palisade_model::selector::SelectorSpec;
use palisade_model::{Diagnostic, Kind, ObjectKey, Origin, PolicyInfo};
use palisade_policy::{Direction, Engines};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The annotation that silences rules on the object it is on (a NetworkPolicy or a Namespace; on a
/// Namespace, for every object in it): rule ids separated by commas.
pub const DISABLE_ANNOTATION: &str = "policy.palisade.dev/lint-disable";

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing is broken.
    Info,
    /// Probably not what the author meant.
    Warning,
    /// Traffic the author meant to allow is dropped.
    Error,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! rules {
    ($($variant:ident = $id:literal, $severity:ident, $basis:ident, $summary:literal;)*) => {
        /// A lint rule. Its id is stable: scripts, `--disable` and annotations name it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $(#[doc = $summary] $variant,)*
        }

        impl Rule {
            /// Every rule, in the order of the README's table.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The stable kebab-case id.
            pub fn id(self) -> &'static str {
                match self { $(Rule::$variant => $id,)* }
            }

            /// The severity of its findings.
            pub fn severity(self) -> Severity {
                match self { $(Rule::$variant => Severity::$severity,)* }
            }

            /// What it judges a staged policy on.
            fn basis(self) -> Basis {
                match self { $(Rule::$variant => Basis::$basis,)* }
            }

            /// What it checks, in one sentence.
            pub fn summary(self) -> &'static str {
                match self { $(Rule::$variant => $summary,)* }
            }
        }
    };
}

rules! {
    ServicePortNotTargetPort = "service-port-not-target-port", Error, Written,
        "A policy port is a Service's port, but the Service forwards to a different targetPort: policies see the pod's port.";
    PolicySplitsService = "policy-splits-service", Warning, Written,
        "A policy selects some but not all pods of a Service.";
    ServicePodsUncovered = "service-pods-uncovered", Warning, Enforced,
        "Some pods of a Service are isolated by no policy while the others are.";
    EgressWithoutDns = "egress-without-dns", Warning, Enforced,
        "Pods isolated for egress may not reach the cluster DNS on UDP and TCP 53.";
    SelectorMatchesNothing = "selector-matches-nothing", Warning, Written,
        "A podSelector or namespaceSelector (of the policy or of a peer) matches nothing.";
    NamedPortUnresolved = "named-port-unresolved", Warning, Written,
        "A named port resolves on none of the destination pods.";
    PeersLookLikeAnd = "peers-look-like-and", Warning, Written,
        "A namespaceSelector-only peer and a podSelector-only peer in one from/to (OR), where one peer with both (AND) was probably meant.";
    RedundantPolicy = "redundant-policy", Warning, Enforced,
        "A policy allows nothing beyond what other policies allow, and isolates nothing they do not.";
    RedundantRule = "redundant-rule", Info, Enforced,
        "A rule allows nothing beyond what other rules allow.";
    IpBlockCoversPods = "ipblock-covers-pods", Warning, Written,
        "An ipBlock covers pod or Service addresses, which network plugins treat differently.";
    NamespaceNotIsolated = "namespace-not-isolated", Warning, Enforced,
        "A namespace has no pod isolated for ingress while other namespaces do.";
    UnenforcedPolicyKind = "unenforced-policy-kind", Warning, Written,
        "The input holds a policy kind Palisade does not enforce (nor analyse).";
    TierPriorityTie = "tier-priority-tie", Warning, Enforced,
        "Two cluster-wide policies of one tier have the same priority and hold the same pods: the API leaves their order undefined.";
    TierVersionsMixed = "tier-versions-mixed", Warning, Enforced,
        "A v1alpha1 and a v1alpha2 cluster-wide policy of one tier hold the same pods: their relative order is undefined.";
    TierRuleMatchesEverything = "tier-rule-matches-everything", Warning, Written,
        "A Deny or Pass rule of a cluster-wide policy has an entry Palisade cannot read, so it matches everything (failing closed) and hides the rules after it.";
    TierRuleShadowed = "tier-rule-shadowed", Warning, Enforced,
        "A rule never decides anything: earlier rules of its tier, or Admin Accept and Deny rules, decide everything it matches first.";
    TierPassToNothing = "tier-pass-to-nothing", Warning, Enforced,
        "An Admin Pass rule hands traffic to nothing (no NetworkPolicy isolates the pods, no Baseline rule matches), so it allows it as an Accept would.";
}

impl Rule {
    /// The rule called `id`; an unknown id is an error listing the valid ones.
    pub fn parse(id: &str) -> Result<Rule, String> {
        Rule::ALL
            .iter()
            .copied()
            .find(|r| r.id() == id)
            .ok_or_else(|| {
                let valid: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
                format!("unknown lint rule {id:?}; valid: {}", valid.join(", "))
            })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// The object a finding is about: a kind Palisade reads, or one it only saw skipped (`name` then
/// unknown).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// `NetworkPolicy`, `Service`, `Namespace`…
    pub kind: String,
    /// Its namespace, for namespaced objects.
    pub namespace: Option<String>,
    /// Its name, when known.
    pub name: Option<String>,
}

impl From<ObjectKey> for ObjectRef {
    fn from(key: ObjectKey) -> ObjectRef {
        ObjectRef {
            kind: key.kind().as_str().to_string(),
            namespace: key.namespace().map(str::to_string),
            name: Some(key.name().to_string()),
        }
    }
}

impl fmt::Display for ObjectRef {
    /// `Kind ns/name`, `Kind name` (cluster-scoped), or `Kind` alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind)?;
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => write!(f, " {ns}/{name}"),
            (None, Some(name)) => write!(f, " {name}"),
            _ => Ok(()),
        }
    }
}

/// One thing wrong, where it is, and what to write instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule that found it.
    pub rule: Rule,
    /// How serious it is: the rule's severity, or less where the input leaves doubt.
    pub severity: Severity,
    /// The object.
    pub object: ObjectRef,
    /// Its file and line (the object's document), when known.
    pub origin: Option<Origin>,
    /// The field path, e.g. `spec.ingress[0].ports[0].port`, when one field is at fault.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub fix: String,
}

impl Finding {
    /// How serious it is.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// A finding of `rule` on `policy`.
    fn policy(
        rule: Rule,
        policy: &PolicyInfo,
        field: Option<String>,
        message: String,
        fix: String,
    ) -> Finding {
        Finding {
            rule,
            severity: rule.severity(),
            object: policy.key().into(),
            origin: Some(policy.origin.clone()),
            field,
            message,
            fix,
        }
    }
}

/// Where the cluster was read from: what the input leaves out cannot be said to match nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Manifests: maybe part of a cluster, so namespaces (and their pods) may exist that are not
    /// in them.
    Manifests,
    /// A live cluster's API server: every namespace is in it.
    Cluster,
}

/// Findings by severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Errors.
    pub error: usize,
    /// Warnings.
    pub warning: usize,
    /// Infos.
    pub info: usize,
}

/// What a lint run found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The findings: errors first, then by object and field.
    pub findings: Vec<Finding>,
    /// How many were silenced by the annotation.
    pub silenced: usize,
}

impl Report {
    /// Findings by severity.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for f in &self.findings {
            match f.severity() {
                Severity::Error => counts.error += 1,
                Severity::Warning => counts.warning += 1,
                Severity::Info => counts.info += 1,
            }
        }
        counts
    }

    /// True if a finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity() == Severity::Error)
    }
}

/// What a rule judges a staged policy (annotated `policy.palisade.dev/audit-mode: "true"`) on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Basis {
    /// Each object as written, staged ones too: a selector matching nothing is a mistake before
    /// the policy is enforced as after.
    Written,
    /// What is enforced (the cluster without its staged policies), as `matrix` answers:
    /// connectivity — isolation, coverage, redundancy, order.
    Enforced,
}

/// Runs every rule not in `disabled` on the cluster of `engines` (see [`Engines::new`]): the
/// rules on connectivity on what is enforced, those on each object as written on every policy,
/// staged ones too, whose findings say they are staged. `diagnostics` are the loader's (for the
/// policy kinds it skipped); `input` says whether it is the whole cluster. Findings on an object
/// annotated with [`DISABLE_ANNOTATION`] naming their rule (or in a namespace so annotated) are
/// counted as silenced, not reported.
pub fn lint(
    engines: &Engines,
    diagnostics: &[Diagnostic],
    disabled: &[Rule],
    input: Input,
) -> Report {
    lint_in(engines, diagnostics, disabled, input, &Scope::All)
}

/// [`lint`], reporting only the findings in `scope`: on objects of its namespaces, on those
/// Namespaces themselves, and on cluster-scoped objects (they concern every namespace). The rules
/// still see the whole cluster, so that what other namespaces' pods and policies do stays right.
pub fn lint_in(
    engines: &Engines,
    diagnostics: &[Diagnostic],
    disabled: &[Rule],
    input: Input,
    scope: &Scope,
) -> Report {
    let written = Index::new(engines.would.as_deref().unwrap_or(&engines.enforced), input);
    let on = |rule: Rule| !disabled.contains(&rule);
    let mut found = Vec::new();
    match engines.would {
        None => run_checks(&written, &|r| on(r), &mut found),
        Some(_) => {
            let enforced = Index::new(&engines.enforced, input);
            run_checks(
                &written,
                &|r| on(r) && r.basis() == Basis::Written,
                &mut found,
            );
            run_checks(
                &enforced,
                &|r| on(r) && r.basis() == Basis::Enforced,
                &mut found,
            );
            for f in &mut found {
                if staged(&written, &f.object) {
                    f.message += &format!(
                        " (this policy is staged, annotated {AUDIT_ANNOTATION}: \"true\": its \
                         traffic is logged, not enforced yet)"
                    );
                }
            }
        }
    }
    if on(Rule::UnenforcedPolicyKind) {
        kinds::check(diagnostics, &mut found);
    }
    found.retain(|f| in_scope(&f.object, scope));
    let before = found.len();
    found.retain(|f| !silenced(&written, f));
    found.sort_by(|a, b| {
        (b.severity(), &a.object, &a.field, a.rule).cmp(&(
            a.severity(),
            &b.object,
            &b.field,
            b.rule,
        ))
    });
    Report {
        silenced: before - found.len(),
        findings: found,
    }
}

/// Runs on `ix` each check some of whose rules `wanted`, keeping the findings of those rules.
fn run_checks(ix: &Index, wanted: &dyn Fn(Rule) -> bool, found: &mut Vec<Finding>) {
    type Check = fn(&Index, &mut Vec<Finding>);
    let checks: [(&[Rule], Check); 7] = [
        (
            &[
                Rule::ServicePortNotTargetPort,
                Rule::PolicySplitsService,
                Rule::ServicePodsUncovered,
            ],
            services::check,
        ),
        (&[Rule::EgressWithoutDns], dns::check),
        (
            &[
                Rule::SelectorMatchesNothing,
                Rule::NamedPortUnresolved,
                Rule::PeersLookLikeAnd,
            ],
            peers::check,
        ),
        (
            &[Rule::RedundantPolicy, Rule::RedundantRule],
            redundant::check,
        ),
        (
            &[Rule::IpBlockCoversPods, Rule::NamespaceNotIsolated],
            addresses::check,
        ),
        (
            &[
                Rule::TierPriorityTie,
                Rule::TierVersionsMixed,
                Rule::TierRuleMatchesEverything,
            ],
            tiers::check,
        ),
        (
            &[Rule::TierRuleShadowed, Rule::TierPassToNothing],
            shadowed::check,
        ),
    ];
    for (rules, check) in checks {
        if rules.iter().any(|&r| wanted(r)) {
            let mut some = Vec::new();
            check(ix, &mut some);
            found.extend(some.into_iter().filter(|f| wanted(f.rule)));
        }
    }
}

/// True if `object` is a policy of `ix`'s cluster that is staged.
fn staged(ix: &Index, object: &ObjectRef) -> bool {
    let (Some(kind), Some(name)) = (Kind::parse(&object.kind), &object.name) else {
        return false;
    };
    let namespace = object.namespace.as_deref().unwrap_or_default();
    (ix.state.policy_annotations(kind, namespace, name))
        .is_some_and(|a| annotation_enabled(a, AUDIT_ANNOTATION))
}

/// True if a finding on `object` is in `scope` (see [`lint_in`]).
fn in_scope(object: &ObjectRef, scope: &Scope) -> bool {
    let Scope::Namespaces(names) = scope else {
        return true;
    };
    let namespace = match (&object.namespace, Kind::parse(&object.kind)) {
        (Some(ns), _) => ns,
        (None, Some(Kind::Namespace)) => match &object.name {
            Some(name) => name,
            None => return true,
        },
        (None, _) => return true,
    };
    names.contains(namespace)
}

/// True if the finding's object, or its namespace, carries [`DISABLE_ANNOTATION`] naming its
/// rule.
fn silenced(ix: &Index, finding: &Finding) -> bool {
    let state = ix.state;
    let names_rule = |annotations: &BTreeMap<String, String>| {
        annotations.get(DISABLE_ANNOTATION).is_some_and(|list| {
            list.split(',')
                .any(|id| id.trim() == finding.rule.id() || id.trim() == "all")
        })
    };
    let object = &finding.object;
    let (Some(name), kind) = (&object.name, Kind::parse(&object.kind)) else {
        return false;
    };
    let own = match kind {
        Some(Kind::Namespace) => state
            .namespace(name)
            .is_some_and(|n| names_rule(&n.annotations)),
        Some(kind) => {
            let namespace = object.namespace.as_deref().unwrap_or_default();
            (state.policy_annotations(kind, namespace, name)).is_some_and(names_rule)
        }
        _ => false,
    };
    let namespace = (object.namespace.as_deref())
        .and_then(|ns| state.namespace(ns))
        .is_some_and(|n| names_rule(&n.annotations));
    own || namespace
}

/// `spec.ingress[rule]` or `spec.egress[rule]`.
fn rule_field(direction: Direction, rule: usize) -> String {
    format!("spec.{}[{rule}]", direction.as_str())
}

/// `spec.ingress[rule].from[peer]` or `spec.egress[rule].to[peer]`.
fn peer_field(direction: Direction, rule: usize, peer: usize) -> String {
    let list = match direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    format!("{}.{list}[{peer}]", rule_field(direction, rule))
}

/// A selector as one would write it in flow-style YAML: `{matchLabels: {app: web}}`, `{}`.
fn selector_text(sel: &SelectorSpec) -> String {
    let mut parts = Vec::new();
    if !sel.match_labels.is_empty() {
        let pairs: Vec<String> = (sel.match_labels.iter())
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        parts.push(format!("matchLabels: {{{}}}", pairs.join(", ")));
    }
    if !sel.match_expressions.is_empty() {
        let terms: Vec<String> = (sel.match_expressions.iter())
            .map(|e| {
                let values = if e.values.is_empty() {
                    String::new()
                } else {
                    format!(", values: [{}]", e.values.join(", "))
                };
                format!("{{key: {}, operator: {:?}{values}}}", e.key, e.operator)
            })
            .collect();
        parts.push(format!("matchExpressions: [{}]", terms.join(", ")));
    }
    format!("{{{}}}", parts.join(", "))
}

/// `n thing` or `n things`.
fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// Up to `max` items joined with commas, then `and N more`.
fn some_of(items: impl IntoIterator<Item = String>, max: usize) -> String {
    let all: Vec<String> = items.into_iter().collect();
    let shown = all[..all.len().min(max)].join(", ");
    match all.len().saturating_sub(max) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}
