//! `palisade diff` end to end: exit codes (0 unchanged, 1 changed — listed or too widely to list —,
//! 2 unusable input), and the txt, json and md outputs.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A web Deployment's two pods, a database pod, and a client in another namespace.
const PODS: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: db, ports: [{containerPort: 5432}]}]}
status: {podIP: 10.244.9.1}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: front, labels: {app: client}}
spec: {containers: [{name: c, image: c}]}
status: {podIP: 10.244.9.2}
"#;

/// The database isolated: only web may reach it, on 5432.
const DB_FROM_WEB: &str = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
"#;

/// Writes `docs` as one folder's files; its path.
fn folder(root: &Path, name: &str, docs: &[&str]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, d) in docs.iter().enumerate() {
        std::fs::write(dir.join(format!("{i}.yaml")), d).unwrap();
    }
    dir
}

fn diff(before: &Path, after: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("diff")
        .arg("--before")
        .arg(before)
        .arg("--after")
        .arg(after)
        .args(args)
        .output()
        .expect("run palisade")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn exit_code_says_whether_connectivity_changed() {
    let dir = tempfile::tempdir().unwrap();
    let open = folder(dir.path(), "open", &[PODS]);
    let isolated = folder(dir.path(), "isolated", &[PODS, DB_FROM_WEB]);
    let o = diff(&open, &open, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("0 groups added (0 pod pairs), 0 groups removed"));
    let o = diff(&open, &isolated, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    // Pods only added are no connectivity change.
    let more = "apiVersion: v1\nkind: Pod\nmetadata: {name: extra, namespace: shop}\nspec: {containers: [{name: a, image: a}]}\n";
    let grown = folder(dir.path(), "grown", &[PODS, more]);
    let o = diff(&open, &grown, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).starts_with("+ pod shop/extra\n"),
        "{}",
        stdout(&o)
    );
    // Unusable input: a rejected object on either side, a missing path, an unknown namespace.
    let broken = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b, namespace: shop}\nspec: {podSelector: {}, ingress: [{fromm: []}]}\n";
    let bad = folder(dir.path(), "bad", &[PODS, broken]);
    let o = diff(&open, &bad, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fromm"));
    let o = diff(&open, &dir.path().join("missing"), &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = diff(&open, &isolated, &["-n", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["diff", "--before", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "--after is required");
}

#[test]
fn connectivity_changed_too_widely_to_list_is_a_change_not_bad_input() {
    // 1,001 pods of distinct labels, then all isolated for ingress: 1,001,000 pairs of pod
    // classes change, more than the diff holds to group.
    let dir = tempfile::tempdir().unwrap();
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: big}\n";
    let pods: String = (0..1001)
        .map(|i| format!("---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: big, labels: {{app: p{i}}}}}\nspec: {{containers: [{{name: c, image: c}}]}}\n"))
        .collect();
    let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: big}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n";
    let before = folder(dir.path(), "before", &[ns, &pods]);
    let after = folder(dir.path(), "after", &[ns, &pods, deny]);
    let o = diff(&before, &after, &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout(&o).starts_with("connectivity changed, not listed: connectivity changed between more than 1000000 pairs"),
        "{}",
        stdout(&o)
    );
    let o = diff(&before, &after, &["-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (&doc["connectivity_changed"], &doc["listed"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert!(doc["reason"].as_str().unwrap().contains("-n NS"), "{doc}");
}

#[test]
fn text_names_workloads_ports_and_the_deciding_policies() {
    let dir = tempfile::tempdir().unwrap();
    let open = folder(dir.path(), "open", &[PODS]);
    let isolated = folder(dir.path(), "isolated", &[PODS, DB_FROM_WEB]);
    let o = diff(&open, &isolated, &[]);
    let text = stdout(&o);
    assert!(
        text.contains(
            "- front/client -> shop/db: all ports\n    before: allowed: not isolated\n    after:  denied: ingress isolated by shop/db-from-web\n"
        ),
        "{text}"
    );
    // web keeps 5432 and loses every other port.
    assert!(text.contains("- shop/web-"), "{text}");
    assert!(
        text.contains("TCP 1-5431, 5433-65535; UDP all; SCTP all"),
        "{text}"
    );
    assert!(text.ends_with("connectivity: 0 groups added (0 pod pairs), 2 groups removed (3 pod pairs); pods: 0 added, 0 removed\n"), "{text}");
    // Scoped to front: only the client's change.
    let o = diff(&open, &isolated, &["-n", "front"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("1 group removed (1 pod pair)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn json_and_markdown_carry_the_same_groups() {
    let dir = tempfile::tempdir().unwrap();
    let open = folder(dir.path(), "open", &[PODS]);
    let isolated = folder(dir.path(), "isolated", &[PODS, DB_FROM_WEB]);
    let o = diff(&isolated, &open, &["-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["counts"]["added"]["pairs"], 3);
    let changes = v["changes"].as_array().unwrap();
    let client = changes
        .iter()
        .find(|c| c["from"]["name"] == "client")
        .expect("client's group");
    assert_eq!(client["change"], "added");
    assert_eq!(client["to"]["pods"][0], "shop/db");
    assert_eq!(client["before"]["allowed"], false);
    assert_eq!(
        client["before"]["ingress"]["denied_by"][0],
        "shop/db-from-web"
    );
    assert_eq!(client["after"]["ingress"]["isolated"], false);
    assert_eq!(client["ports"].as_array().unwrap().len(), 3);
    let web = changes
        .iter()
        .find(|c| c["from"]["kind"] == "ReplicaSet")
        .unwrap();
    assert_eq!(web["from"]["pods"].as_array().unwrap().len(), 2);
    assert_eq!(web["pairs"], 2);

    let o = diff(&isolated, &open, &["-o", "md"]);
    let md = stdout(&o);
    assert!(
        md.contains("**3 pod pairs gain** connectivity (2 groups), **0 lose** it (0 groups)."),
        "{md}"
    );
    // Escaped: a name is text, never markup (`:` would make an autolink, `|` end the cell).
    assert!(md.contains("| added | front/client | shop/db | all ports | denied\\: ingress isolated by shop/db-from-web | allowed\\: not isolated |"), "{md}");
    let o = diff(&open, &open, &["-o", "md"]);
    assert!(stdout(&o).contains("No connectivity between existing pods changes."));
}

#[test]
fn markdown_caps_its_table() {
    let dir = tempfile::tempdir().unwrap();
    // 60 lone pods, then a default deny: 60 × 59 pairs, one group per pair.
    let pods: String = (0..60)
        .map(|i| format!("---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: n}}\nspec: {{containers: [{{name: a, image: a}}]}}\nstatus: {{podIP: 10.3.0.{}}}\n", i + 1))
        .collect();
    let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: n}\nspec: {podSelector: {}}\n";
    let before = folder(dir.path(), "before", &[&pods]);
    let after = folder(dir.path(), "after", &[&pods, deny]);
    let o = diff(&before, &after, &["-o", "md"]);
    let md = stdout(&o);
    let rows = md.lines().filter(|l| l.starts_with("| removed |")).count();
    assert_eq!(rows, 50, "{md}");
    assert!(
        md.contains(&format!("and {} more groups", 60 * 59 - 50)),
        "{md}"
    );
}

/// A live cluster's pod names never equal those a folder's workloads make: a namespace whose pods
/// match by no name on the two sides was not compared, which is an error (exit 2), not "nothing
/// changed".
#[test]
fn a_namespace_whose_pods_match_by_no_name_is_an_error_not_a_silent_zero() {
    let dir = tempfile::tempdir().unwrap();
    let live = r#"apiVersion: v1
kind: Pod
metadata: {name: web-7c9d8b6f5d-abcde, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: web}]}
status: {podIP: 10.244.9.7}
"#;
    let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n";
    let before = folder(dir.path(), "live", &[live]);
    let after = folder(dir.path(), "folder", &[PODS, deny]);
    let o = diff(&before, &after, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(
            "namespace shop: none of its 1 pods before has the name of one of its 3 pods after"
        ),
        "{stderr}"
    );
    // Where names match, nothing to say.
    let same = folder(dir.path(), "same", &[PODS]);
    let o = diff(&same, &after, &[]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("none of its"));
}
