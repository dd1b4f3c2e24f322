use super::*;
use crate::lint::{lint, Finding, Input, ObjectRef, Report, Rule};
use crate::Probe;
use palisade_model::Loader;
use palisade_policy::{Engine, Engines};
use std::sync::Arc;

/// `web` (a Deployment of 2), `db` and `client` (pods alone) in `shop`; `db` admits `web` on
/// 5432 only.
const SHOP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: m, image: i, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: m, image: i, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: m, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
"#;

fn engine(text: &str) -> Engine {
    let mut loader = Loader::new();
    loader.load_str("t.yaml", text);
    let (state, diagnostics) = loader.finish();
    assert!(!diagnostics.iter().any(|d| d.is_error()), "{diagnostics:?}");
    Engine::new(Arc::new(state))
}

fn probes(list: &[&str]) -> Vec<Probe> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

fn page_of(engine: &Engine, probe_list: &[&str], limits: Limits) -> Page {
    let matrix = Matrix::compute(
        engine,
        Matrix::pods_in(engine, &crate::Scope::All),
        &probes(probe_list),
    );
    let engines = Engines::new(engine.state_arc());
    build(&matrix, &lint(&engines, &[], &[], Input::Manifests), limits)
}

fn index(page: &Page, label_start: &str) -> usize {
    (page.groups.iter())
        .position(|g| g.label.starts_with(label_start))
        .unwrap_or_else(|| panic!("no group {label_start}: {:?}", page.groups))
}

#[test]
fn pods_are_grouped_by_workload_and_cells_count_pod_pairs_per_probe() {
    let engine = engine(SHOP);
    let page = page_of(&engine, &["5432/TCP", "80/TCP"], Limits::default());
    assert_eq!(page.level, Level::Workload);
    let labels: Vec<&str> = page.groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    let (web, db, client) = (
        index(&page, "shop/web-"),
        index(&page, "shop/db"),
        index(&page, "shop/client"),
    );
    assert_eq!(
        (page.groups[web].pods, page.groups[web].kind.as_str()),
        (2, "ReplicaSet")
    );
    assert_eq!(page.groups[db].kind, "Pod");

    // web → db: 2 pod pairs × 2 probes, allowed on 5432 only.
    let cell = &page.cells[web][db];
    assert_eq!(
        (cell.state, cell.allowed, cell.total),
        (State::Partial, 2, 4)
    );
    // The representative of a partly allowed cell is a denied flow, explained.
    let x = &page.explanations[cell.explanation.unwrap()];
    assert!(!x.allowed);
    assert_eq!((x.to.as_str(), x.probe.as_str()), ("shop/db", "80/TCP"));
    let text = x.text.as_deref().unwrap();
    assert!(
        text.contains("DENIED") && text.contains("shop/db-from-web"),
        "{text}"
    );

    let cell = &page.cells[client][db];
    assert_eq!(
        (cell.state, cell.allowed, cell.total),
        (State::Denied, 0, 2)
    );
    // Two web pods with each other, not with themselves: 2 pairs × 2 probes.
    let cell = &page.cells[web][web];
    assert_eq!(
        (cell.state, cell.allowed, cell.total),
        (State::Allowed, 4, 4)
    );
    assert!(page.explanations[cell.explanation.unwrap()].allowed);
    // A lone pod with itself: nothing to decide, nothing to explain.
    let cell = &page.cells[db][db];
    assert_eq!(
        (cell.state, cell.total, cell.explanation),
        (State::Empty, 0, None)
    );
    assert!(page.notes.is_empty(), "{:?}", page.notes);
}

/// `n` namespaces, each with two lone pods.
fn namespaces(n: usize) -> String {
    (0..n)
        .flat_map(|i| {
            ["a", "b"].map(|p| {
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: {p}, namespace: ns-{i:02}}}\n\
                     spec: {{containers: [{{name: m, image: i}}]}}\n---\n"
                )
            })
        })
        .collect()
}

#[test]
fn too_many_workloads_group_by_namespace_and_the_namespaces_past_the_cap_are_one_group() {
    let engine = engine(&namespaces(6));
    let limits = Limits {
        groups: 4,
        ..Limits::default()
    };
    let page = page_of(&engine, &["80/TCP"], limits);
    assert_eq!(page.level, Level::Namespace);
    let labels: Vec<&str> = page.groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["ns-00", "ns-01", "ns-02", "3 other namespaces"]);
    assert_eq!(page.groups[3].pods, 6);
    assert_eq!(page.groups.iter().map(|g| g.pods).sum::<usize>(), 12);
    // Nothing isolates: every cell allowed, the aggregate with itself 6 × 5 pairs.
    assert!(page
        .cells
        .iter()
        .flatten()
        .all(|c| c.state == State::Allowed));
    assert_eq!(page.cells[3][3].total, 30);
    assert!(page.notes[0].contains("12 workloads") && page.notes[0].contains("by namespace"));
    assert!(page.notes[1].contains("ns-03 … ns-05"), "{:?}", page.notes);

    // Exactly at the cap: no aggregate.
    let page = page_of(
        &engine,
        &["80/TCP"],
        Limits {
            groups: 6,
            ..limits
        },
    );
    assert_eq!(page.groups.len(), 6);
    assert_eq!(page.notes.len(), 1, "{:?}", page.notes);
}

#[test]
fn explanations_and_findings_stay_within_the_limits_and_the_page_says_so() {
    let engine = engine(&namespaces(5));
    let limits = Limits {
        explanation_bytes: 120,
        explanations_bytes: 1000,
        findings: 0,
        ..Limits::default()
    };
    let page = page_of(&engine, &["80/TCP"], limits);
    let texts: Vec<&str> = (page.explanations.iter())
        .filter_map(|e| e.text.as_deref())
        .collect();
    assert!(texts
        .iter()
        .all(|t| t.len() <= 120 && t.ends_with("all of it)\n")));
    assert!(texts.iter().map(|t| t.len()).sum::<usize>() <= 1000);
    let missing = page.explanations.len() - texts.len();
    assert!(missing > 0 && !texts.is_empty());
    assert!(page
        .notes
        .iter()
        .any(|n| n.starts_with(&format!("{missing} cells"))));

    let report = Report {
        findings: vec![finding("m"); 3],
        ..Report::default()
    };
    let matrix = Matrix::compute(&engine, Vec::new(), &[]);
    let page = build(
        &matrix,
        &report,
        Limits {
            findings: 2,
            ..limits
        },
    );
    assert_eq!((page.findings.len(), page.findings_omitted), (2, 1));
    assert!(to_html(&page).contains("and 1 more"));
}

#[test]
fn the_page_of_the_synthetic_cluster_is_bounded() {
    let cluster = palisade_synth::generate(&palisade_synth::SynthConfig {
        namespaces: 80,
        pods_per_ns: 5,
        policies: 200,
        seed: 1,
    });
    let mut loader = Loader::new();
    for f in &cluster.files {
        loader.load_str(&f.name, &f.contents);
    }
    let engine = Engine::new(Arc::new(loader.finish().0));
    let matrix = Matrix::compute(
        &engine,
        Matrix::pods_in(&engine, &crate::Scope::All),
        &probes(&["80/TCP", "443/TCP"]),
    );
    let page = build(
        &matrix,
        &lint(
            &Engines::new(engine.state_arc()),
            &[],
            &[],
            Input::Manifests,
        ),
        Limits::default(),
    );
    assert_eq!(page.groups.len(), 50);
    assert_eq!(page.groups.iter().map(|g| g.pods).sum::<usize>(), 400);
    assert!(page.explanations.len() <= 50 * 50);
    let html = to_html(&page);
    assert!(html.len() < 8 << 20, "{} bytes", html.len());
}

fn finding(text: &str) -> Finding {
    Finding {
        rule: Rule::RedundantPolicy,
        severity: Rule::RedundantPolicy.severity(),
        object: ObjectRef {
            kind: text.into(),
            namespace: Some(text.into()),
            name: Some(text.into()),
        },
        origin: Some(palisade_model::Origin {
            file: text.into(),
            line: Some(3),
        }),
        field: Some(text.into()),
        message: text.into(),
        fix: text.into(),
    }
}

const HOSTILE: &str =
    "</script><script>alert(1)</script><!--<img src=x onerror=alert(2)>&amp;\"'\u{2028}";

#[test]
fn strings_from_manifests_cannot_close_the_script_or_inject_markup() {
    let json = script_json(&HOSTILE);
    assert!(!json.contains('<') && !json.contains('>') && !json.contains('&'));
    assert!(!json.contains('\u{2028}'));
    assert_eq!(serde_json::from_str::<String>(&json).unwrap(), HOSTILE);
    assert_eq!(
        escape_html("<a href=\"x\">'&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );

    let engine = engine(SHOP);
    let mut page = page_of(&engine, &["80/TCP"], Limits::default());
    page.source = HOSTILE.into();
    page.groups[0].label = HOSTILE.into();
    page.groups[0].sample = vec![HOSTILE.into()];
    page.explanations[0].text = Some(HOSTILE.into());
    page.notes.push(HOSTILE.into());
    page.findings = vec![finding(HOSTILE)];
    let html = to_html(&page);
    // The page's own two scripts, no third; no tag or comment from the strings.
    assert_eq!(html.matches("<script").count(), 2);
    assert_eq!(html.matches("</script>").count(), 2);
    assert!(!html.contains("<img") && !html.contains("<!--"));
    assert!(html.contains("&lt;/script&gt;&lt;script&gt;alert(1)"));
    // The data round-trips through the embedded JSON.
    let start = html.find("id=\"data\">").unwrap() + "id=\"data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
    assert_eq!(data["groups"][0]["label"], HOSTILE);
    assert_eq!(data["source"], HOSTILE);
}

/// Each finding is linked to the groups holding the pods its object concerns — a policy's
/// selected pods, a Service's, a Namespace's — and the page links both ways: the table's row to
/// the groups, a cell's explanation to the findings on its groups (by `finding_groups`).
#[test]
fn findings_are_linked_to_the_groups_of_the_pods_they_concern() {
    let service = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n";
    let engine = engine(&format!("{SHOP}{service}"));
    let matrix = Matrix::compute(
        &engine,
        Matrix::pods_in(&engine, &crate::Scope::All),
        &probes(&["80/TCP"]),
    );
    let on = |kind: &str, namespace: Option<&str>, name: &str| Finding {
        object: ObjectRef {
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: Some(name.into()),
        },
        ..finding("m")
    };
    let report = Report {
        findings: vec![
            on("NetworkPolicy", Some("shop"), "db-from-web"),
            on("Service", Some("shop"), "web"),
            on("Namespace", None, "shop"),
            on("NetworkPolicy", Some("shop"), "gone"),
            on("Service", Some("other"), "web"),
        ],
        ..Report::default()
    };
    let page = build(&matrix, &report, Limits::default());
    let (web, db, client) = (
        index(&page, "shop/web-"),
        index(&page, "shop/db"),
        index(&page, "shop/client"),
    );
    let mut all = vec![web, db, client];
    all.sort_unstable();
    assert_eq!(
        page.finding_groups,
        [vec![db], vec![web], all, vec![], vec![]]
    );
    let html = to_html(&page);
    assert!(html.contains("<tr id=\"finding-0\""), "{html}");
    assert!(
        html.contains(&format!("<a href=\"#row={db}\">shop/db</a>")),
        "{html}"
    );
    assert!(html.contains("\"finding_groups\":[["), "{html}");
}
