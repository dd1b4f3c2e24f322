//! `diff` against the conformance suite (`tests/conformance/`): for consecutive steps of a case,
//! and from the base cluster (no policy: everything allowed) to each case's first step, the
//! connectivity the diff reports added and removed must be exactly where the expected truth tables
//! differ, probe by probe.

#[path = "../../../tests/conformance/support.rs"]
mod support;

use palisade_analyze::diff::{diff, Change, DirectionWhy, Report};
use palisade_analyze::{Probe, Scope};
use palisade_model::{ClusterState, Loader};
use palisade_policy::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Per (probe, source, destination), whether it is allowed.
type Truth = BTreeMap<(Probe, String, String), bool>;

fn truth(tables: &[support::Table]) -> Truth {
    let mut out = Truth::new();
    for t in tables {
        for (src, cells) in &t.rows {
            for (dst, &allowed) in t.columns.iter().zip(cells) {
                if src != dst {
                    out.insert((t.probe, src.clone(), dst.clone()), allowed);
                }
            }
        }
    }
    out
}

/// The base cluster alone: no policy, every pair allowed on every probe.
fn base() -> ClusterState {
    let mut loader = Loader::new();
    loader.load_path(&support::suite_dir().join("base.yaml"));
    loader.finish().0
}

/// How `report` says each of `probes` changed, per (probe, src, dst); every pod pair at most once.
fn reported(report: &Report, probes: &[Probe]) -> BTreeMap<(Probe, String, String), Change> {
    let mut out = BTreeMap::new();
    for g in &report.groups {
        let covered = |p: &&Probe| {
            (g.ports.iter())
                .any(|r| r.protocol == p.protocol && (r.first..=r.last).contains(&p.port))
        };
        for &probe in probes.iter().filter(covered) {
            for src in &g.from_pods {
                for dst in g.to_pods.iter().filter(|d| *d != src) {
                    let previous = out.insert((probe, src.clone(), dst.clone()), g.change);
                    assert!(previous.is_none(), "{probe} {src} -> {dst} in two groups");
                }
            }
        }
    }
    out
}

/// Diffs `before` against `after` and compares with their truth tables; the mismatches.
fn check(name: &str, before: (ClusterState, Truth), after: (ClusterState, Truth)) -> Vec<String> {
    let (b, a) = (
        Engine::new(Arc::new(before.0)),
        Engine::new(Arc::new(after.0)),
    );
    let report = diff(&b, &a, &Scope::All).expect("small inputs");
    let mut probes: Vec<Probe> = after.1.keys().map(|k| k.0).collect();
    probes.dedup();
    let got = reported(&report, &probes);
    let mut mismatches = Vec::new();
    for (key, &now) in &after.1 {
        let Some(&was) = before.1.get(key) else {
            continue; // a probe only one step's tables have
        };
        let expected = (was != now).then_some(if now { Change::Added } else { Change::Removed });
        // Probes absent from the report's ports are unchanged.
        let reported = got.get(key).copied();
        if reported != expected {
            mismatches.push(format!(
                "{name}: {} {} -> {}: expected {expected:?}, diff says {reported:?}",
                key.0, key.1, key.2
            ));
        }
    }
    for g in &report.groups {
        let pods = g.from_pods.len() * g.to_pods.len();
        assert!(g.pairs > 0 && g.pairs <= pods, "{name}: {g:?}");
    }
    mismatches
}

fn step_case(step: &Path) -> PathBuf {
    step.parent().expect("a step is in a case").to_path_buf()
}

#[test]
fn diff_of_consecutive_steps_is_the_difference_of_their_truth_tables() {
    let steps = support::steps();
    let mut mismatches = Vec::new();
    let mut pairs = 0;
    for window in steps.windows(2) {
        let [before, after] = window else { continue };
        if step_case(before) != step_case(after) {
            continue;
        }
        pairs += 1;
        let side = |s: &Path| (support::load_step(s), truth(&support::expected(s)));
        mismatches.extend(check(
            &after.display().to_string(),
            side(before),
            side(after),
        ));
    }
    assert!(pairs >= 5, "only {pairs} consecutive step pairs");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn diff_from_no_policy_to_each_first_step_is_what_the_step_denies() {
    let steps = support::steps();
    let mut mismatches = Vec::new();
    for step in steps.iter().filter(|s| s.ends_with("step1")) {
        let tables = support::expected(step);
        // Without policies every pair of the step's tables is allowed.
        let open: Truth = truth(&tables).into_keys().map(|k| (k, true)).collect();
        let after = (support::load_step(step), truth(&tables));
        mismatches.extend(check(&step.display().to_string(), (base(), open), after));
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Two workloads: web (three pods, one canary) and a database.
const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: shop
  labels: {app: db}
  ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: u1}]
spec: {containers: [{name: db, image: db, ports: [{containerPort: 5432, name: pg}]}]}
status: {podIP: 10.1.0.10}
---
apiVersion: v1
kind: Pod
metadata:
  name: db-1
  namespace: shop
  labels: {app: db}
  ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: u1}]
spec: {containers: [{name: db, image: db, ports: [{containerPort: 5432, name: pg}]}]}
status: {podIP: 10.1.0.11}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  labels: {app: web, track: stable}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-6d9c, uid: u2}]
spec: {containers: [{name: web, image: web}]}
status: {podIP: 10.1.0.20}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-2
  namespace: shop
  labels: {app: web, track: stable}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-6d9c, uid: u2}]
spec: {containers: [{name: web, image: web}]}
status: {podIP: 10.1.0.21}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-3
  namespace: shop
  labels: {app: web, track: canary}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-6d9c, uid: u2}]
spec: {containers: [{name: web, image: web}]}
status: {podIP: 10.1.0.22}
"#;

const DENY_DB: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-deny, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
"#;

fn engine(docs: &[&str]) -> Engine {
    let mut loader = Loader::new();
    for (i, d) in docs.iter().enumerate() {
        loader.load_str(&format!("doc{i}.yaml"), d);
    }
    let (state, diagnostics) = loader.finish();
    assert!(!diagnostics.iter().any(|d| d.is_error()), "{diagnostics:?}");
    Engine::new(Arc::new(state))
}

fn allow_web(selector: &str, ports: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: db-from-web, namespace: shop}}\n\
         spec:\n  podSelector: {{matchLabels: {{app: db}}}}\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {selector}}}}}]\n    ports: {ports}\n"
    )
}

#[test]
fn pods_of_a_workload_with_the_same_answer_form_one_group_with_the_deciding_policies() {
    let before = engine(&[PODS, DENY_DB]);
    let after = engine(&[PODS, DENY_DB, &allow_web("{app: web}", "[{port: 5432}]")]);
    let report = diff(&before, &after, &Scope::All).unwrap();
    assert_eq!(report.groups.len(), 1, "{report:#?}");
    let g = &report.groups[0];
    assert_eq!(g.change, Change::Added);
    assert_eq!(
        (g.from.name.as_str(), g.to.name.as_str()),
        ("web-6d9c", "db")
    );
    assert_eq!(g.from_pods, ["shop/web-1", "shop/web-2", "shop/web-3"]);
    assert_eq!(g.to_pods, ["shop/db-0", "shop/db-1"]);
    assert_eq!(g.pairs, 6);
    assert_eq!(palisade_analyze::diff::ports_text(&g.ports), "TCP 5432");
    assert_eq!(
        g.before.ingress,
        DirectionWhy::DeniedBy(vec!["shop/db-deny".into()])
    );
    let by = vec!["shop/db-from-web".to_string()];
    assert_eq!(g.after.ingress, DirectionWhy::AllowedBy(by));
    assert_eq!(g.after.egress, DirectionWhy::Open);
    // The reverse change removes exactly the same.
    let back = diff(&after, &before, &Scope::All).unwrap();
    assert_eq!(back.groups.len(), 1);
    assert_eq!(
        (back.groups[0].change, back.groups[0].pairs),
        (Change::Removed, 6)
    );
}

#[test]
fn pods_of_a_workload_that_differ_are_not_claimed() {
    let before = engine(&[PODS, DENY_DB]);
    let selector = "{app: web, track: stable}";
    let after = engine(&[
        PODS,
        DENY_DB,
        &allow_web(
            selector,
            "[{port: 5432}, {port: 8000, endPort: 8010}, {port: 53, protocol: UDP}]",
        ),
    ]);
    let report = diff(&before, &after, &Scope::All).unwrap();
    assert_eq!(report.groups.len(), 1, "{report:#?}");
    let g = &report.groups[0];
    assert_eq!(
        g.from_pods,
        ["shop/web-1", "shop/web-2"],
        "the canary gains nothing"
    );
    assert_eq!(g.pairs, 4);
    assert_eq!(
        palisade_analyze::diff::ports_text(&g.ports),
        "TCP 5432, 8000-8010; UDP 53"
    );
}

/// Ports a change adds through different policies are told apart: each group's reasons hold for
/// every one of its ports.
#[test]
fn ports_allowed_by_different_policies_are_groups_of_their_own() {
    let before = engine(&[PODS, DENY_DB]);
    let pg = allow_web("{app: web}", "[{port: 5432}]");
    let metrics = pg
        .replace("db-from-web", "db-metrics")
        .replace("port: 5432", "port: 9187");
    let after = engine(&[PODS, DENY_DB, &pg, &metrics]);
    let report = diff(&before, &after, &Scope::All).unwrap();
    let by: Vec<(String, DirectionWhy)> = (report.groups.iter())
        .map(|g| {
            assert_eq!((g.change, g.pairs), (Change::Added, 6), "{g:#?}");
            (
                palisade_analyze::diff::ports_text(&g.ports),
                g.after.ingress.clone(),
            )
        })
        .collect();
    let allowed = |p: &str| DirectionWhy::AllowedBy(vec![format!("shop/{p}")]);
    assert_eq!(
        by,
        [
            ("TCP 5432".to_string(), allowed("db-from-web")),
            ("TCP 9187".to_string(), allowed("db-metrics")),
        ]
    );
}

#[test]
fn pods_on_one_side_only_are_listed_apart_and_scope_narrows() {
    let extra = "apiVersion: v1\nkind: Pod\nmetadata: {name: new, namespace: other}\nspec: {containers: [{name: a, image: a}]}\nstatus: {podIP: 10.2.0.1}\n";
    let before = engine(&[PODS]);
    let after = engine(&[PODS, extra, DENY_DB]);
    let report = diff(&before, &after, &Scope::All).unwrap();
    assert_eq!(report.added_pods, ["other/new"]);
    assert!(report.removed_pods.is_empty());
    // db isolated: every other existing pod loses it, on every port; `other/new` is not counted.
    let (groups, pairs) = report.count(Change::Removed);
    assert_eq!((groups, pairs), (2, 3 * 2 + 2), "{report:#?}");
    assert!(report
        .groups
        .iter()
        .all(|g| g.ports.len() == 3 && g.from_pods.iter().all(|p| p != "other/new")));
    let other = Scope::Namespaces(vec!["other".into()]);
    let narrowed = diff(&before, &after, &other).unwrap();
    assert!(narrowed.groups.is_empty() && narrowed.added_pods == ["other/new"]);
    let unchanged = diff(&before, &before, &Scope::All).unwrap();
    assert_eq!(unchanged, Report::default());
}

/// A small synthetic cluster of `seed` with the policies of `policies_seed` instead of its own
/// when given, and its documents as `edit` leaves them (given the file name and the document's
/// position in it; `None` drops it).
fn synthetic(
    seed: u64,
    edit: impl Fn(&str, usize, &str) -> Option<String>,
    policies_seed: Option<u64>,
) -> Engine {
    let generate = |seed| {
        palisade_synth::generate(&palisade_synth::SynthConfig {
            namespaces: 12,
            pods_per_ns: 6,
            policies: 40,
            seed,
        })
    };
    let (own, other) = (generate(seed), policies_seed.map(generate));
    let is_policy = |name: &str| name.starts_with("policies-");
    let files = (own.files.iter())
        .filter(|f| !(other.is_some() && is_policy(&f.name)))
        .chain(
            other
                .iter()
                .flat_map(|o| o.files.iter().filter(|f| is_policy(&f.name))),
        );
    let mut loader = Loader::new();
    for f in files {
        let docs: Vec<&str> = f.contents.split("\n---\n").collect();
        let kept: Vec<String> = (docs.iter().enumerate())
            .filter_map(|(i, d)| edit(&f.name, i, d))
            .collect();
        loader.load_str(&f.name, &kept.join("\n---\n"));
    }
    Engine::new(Arc::new(loader.finish().0))
}

/// Every port a policy or a pod names, the ports around them, and the ends of the range.
fn naive_probes(engines: [&Engine; 2]) -> Vec<Probe> {
    let mut set = std::collections::BTreeSet::new();
    for state in engines.map(|e| e.state()) {
        let pods = state.pods.iter().flat_map(|p| p.ports.iter());
        let mut add = |port: u16, protocol| {
            for p in [port.saturating_sub(1).max(1), port, port.saturating_add(1)] {
                set.insert(Probe { port: p, protocol });
            }
        };
        pods.for_each(|c| add(c.port, c.protocol));
        for policy in &state.policies {
            let spec = policy.policy.spec();
            let rules = [&spec.ingress, &spec.egress]
                .into_iter()
                .flatten()
                .flatten();
            for port in rules.flat_map(|r| r.ports.iter().flatten()) {
                if let palisade_model::PortMatch::Range(first, last) = port.port {
                    add(first, port.protocol);
                    add(last, port.protocol);
                }
            }
        }
        for protocol in palisade_model::Protocol::PORTED {
            add(1, protocol);
            add(65535, protocol);
        }
    }
    set.into_iter().collect()
}

/// The diff, probe by probe and pod pair by pod pair, from the two matrices.
fn naive(
    before: &Engine,
    after: &Engine,
    probes: &[Probe],
) -> BTreeMap<(Probe, String, String), Change> {
    let [mb, ma] = [before, after].map(|e| {
        palisade_analyze::Matrix::compute(
            e,
            palisade_analyze::Matrix::pods_in(e, &Scope::All),
            probes,
        )
    });
    let position = |m: &palisade_analyze::Matrix, name: &str| {
        (0..m.pods.len()).find(|&i| m.pod_name(i) == name)
    };
    let mut out = BTreeMap::new();
    let names: Vec<String> = (0..mb.pods.len()).map(|i| mb.pod_name(i)).collect();
    let common: Vec<(usize, usize, &String)> = (names.iter().enumerate())
        .filter_map(|(i, n)| position(&ma, n).map(|j| (i, j, n)))
        .collect();
    for (pi, probe) in probes.iter().enumerate() {
        for &(sb, sa, src) in &common {
            for &(db, da, dst) in &common {
                let (was, now) = (mb.allowed(pi, sb, db), ma.allowed(pi, sa, da));
                if src != dst && was != now {
                    let change = if now { Change::Added } else { Change::Removed };
                    out.insert((*probe, src.clone(), dst.clone()), change);
                }
            }
        }
    }
    out
}

type Changes = BTreeMap<(Probe, String, String), Change>;

/// Fails with the first differences (what the diff says, what the matrices say).
fn assert_same(got: &Changes, expected: &Changes, what: &str) {
    let keys: std::collections::BTreeSet<_> = got.keys().chain(expected.keys()).collect();
    let wrong: Vec<String> = (keys.into_iter())
        .filter(|k| got.get(*k) != expected.get(*k))
        .map(|k| {
            format!(
                "{} {} -> {}: diff {:?}, matrices {:?}",
                k.0,
                k.1,
                k.2,
                got.get(k),
                expected.get(k)
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: {} differences, first: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

#[test]
fn diff_equals_the_pairwise_difference_of_the_matrices_on_synthetic_clusters() {
    let all = |_: &str, _, doc: &str| Some(doc.to_string());
    let some_policies = |name: &str, i, doc: &str| {
        (!name.starts_with("policies-") || i % 3 != 1).then(|| doc.into())
    };
    // The DNS pods and every other workload's databases and APIs relabelled; half the
    // namespaces change team and role.
    let relabel = |name: &str, i, doc: &str| {
        Some(match name {
            "namespaces.yaml" if i % 2 == 0 => {
                (doc.replace("team: ", "team: x")).replace("role: shared", "role: own")
            }
            _ if name.starts_with("workloads-") => {
                let doc = doc.replace("k8s-app: kube-dns", "k8s-app: coredns");
                match i % 2 {
                    0 => (doc.replace("tier: db", "tier: frontend"))
                        .replace("tier: api", "tier: worker"),
                    _ => doc,
                }
            }
            _ => doc.to_string(),
        })
    };
    let cases = [
        (
            "other policies",
            synthetic(1, all, None),
            synthetic(1, all, Some(2)),
        ),
        (
            "policies dropped",
            synthetic(3, all, None),
            synthetic(3, some_policies, None),
        ),
        (
            "policies added",
            synthetic(4, some_policies, None),
            synthetic(4, all, None),
        ),
        (
            "labels changed",
            synthetic(5, all, None),
            synthetic(5, relabel, None),
        ),
    ];
    for (name, before, after) in &cases {
        let probes = naive_probes([before, after]);
        let expected = naive(before, after, &probes);
        assert!(!expected.is_empty(), "{name}: the case changes nothing");
        let report = diff(before, after, &Scope::All).unwrap();
        let got = reported(&report, &probes);
        assert_same(&got, &expected, name);
        // Narrowed to each namespace: the pairs with an end there, no others.
        for ns in before.state().namespaces.iter().map(|n| &n.name) {
            let scope = Scope::Namespaces(vec![ns.clone()]);
            let narrowed = reported(&diff(before, after, &scope).unwrap(), &probes);
            let inside = |pod: &String| pod.starts_with(&format!("{ns}/"));
            let mut expected_inside = expected.clone();
            expected_inside.retain(|(_, src, dst), _| inside(src) || inside(dst));
            assert_same(
                &narrowed,
                &expected_inside,
                &format!("{name}, narrowed to {ns}"),
            );
        }
    }
}

#[test]
fn a_pod_and_its_node_are_compared_as_the_matrix_decides_them() {
    // A hostNetwork agent on node 10.0.0.1, web on that node, then isolated, then moved away.
    let agent = "apiVersion: v1\nkind: Pod\nmetadata: {name: agent, namespace: kube-system, labels: {app: agent}}\nspec: {hostNetwork: true, containers: [{name: a, image: a}]}\nstatus: {podIP: 10.0.0.1, hostIP: 10.0.0.1}\n";
    let web = |node: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: shop, labels: {{app: web}}}}\nspec: {{containers: [{{name: w, image: w, ports: [{{containerPort: 80}}]}}]}}\nstatus: {{podIP: 10.1.0.1, hostIP: {node}}}\n")
    };
    let other = "apiVersion: v1\nkind: Pod\nmetadata: {name: other, namespace: shop, labels: {app: other}}\nspec: {containers: [{name: o, image: o}]}\nstatus: {podIP: 10.1.0.2, hostIP: 10.0.0.2}\n";
    let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress, Egress]}\n";
    let here = web("10.0.0.1");
    let away = web("10.0.0.9");
    let open = engine(&[agent, &here, other]);
    let isolated = engine(&[agent, &here, other, deny]);
    let moved = engine(&[agent, &away, other, deny]);
    for (name, before, after) in [("isolated", &open, &isolated), ("moved", &isolated, &moved)] {
        let probes = naive_probes([before, after]);
        let expected = naive(before, after, &probes);
        let report = diff(before, after, &Scope::All).unwrap();
        assert_eq!(reported(&report, &probes), expected, "{name}: {report:#?}");
        let agent_pair = |g: &palisade_analyze::diff::Group| {
            g.from_pods.contains(&"kube-system/agent".to_string()) && g.to_pods == ["shop/web"]
        };
        // Isolating web keeps it with its node; moving it away loses that.
        assert_eq!(
            report.groups.iter().any(agent_pair),
            name == "moved",
            "{name}: {report:#?}"
        );
    }
}
