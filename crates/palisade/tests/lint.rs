//! `palisade lint` end to end: exit codes, `--disable`, and the txt, json and SARIF outputs (the
//! SARIF validated against the SARIF 2.1.0 JSON schema, `tests/data/sarif-2.1.0-rtm.5.json`, the
//! schema `@microsoft/jest-sarif` ships, with Python's `jsonschema`).

#[path = "../../palisade-kube/tests/support/fake_api.rs"]
mod fake_api;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Two web pods behind Service `web` (port 80 → container port `http`, 8080), a client, and a
/// policy written with the Service's port (an error-severity finding) in a namespace isolated
/// for ingress.
const CLUSTER: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {containers: [{name: m, image: i, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.244.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.244.1.3}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80}]
  - from: [{namespaceSelector: {matchLabels: {team: front}}}, {podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 9090}]
"#;

/// The line of `NetworkPolicy shop/web-in`'s document.
const POLICY_LINE: usize = 22;

fn lint(dir: &Path, text: &str, args: &[&str]) -> Output {
    let file = dir.join("cluster.yaml");
    std::fs::write(&file, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("lint")
        .arg("-f")
        .arg(&file)
        .args(args)
        .output()
        .expect("run palisade")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn exit_codes_say_whether_an_error_was_found() {
    let dir = tempfile::tempdir().unwrap();
    let o = lint(dir.path(), CLUSTER, &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    // Warnings only: 0.
    let o = lint(
        dir.path(),
        CLUSTER,
        &["--disable", "service-port-not-target-port"],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("warning[peers-look-like-and]"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("service-port-not-target-port"));
    // Fixed as the finding says: 0.
    let fixed = CLUSTER.replace("ports: [{port: 80}]", "ports: [{port: 8080}]");
    let o = lint(dir.path(), &fixed, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // Unusable input: 2, with the loader's error.
    let broken = format!("{CLUSTER}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: b, namespace: shop}}\nspec: {{podSelector: {{}}, ingress: [{{ports: [{{port: 0}}]}}]}}\n");
    let o = lint(dir.path(), &broken, &[]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("error"), "{}", stderr(&o));
    // An unknown rule: 2, naming the valid ones.
    let o = lint(dir.path(), CLUSTER, &["--disable", "no-such-rule"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("unknown lint rule \"no-such-rule\"") && err.contains("redundant-rule"),
        "{err}"
    );
}

#[test]
fn text_output_points_at_file_line_object_and_field_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let o = lint(dir.path(), CLUSTER, &["-o", "txt"]);
    let text = stdout(&o);
    let file = dir.path().join("cluster.yaml");
    let head = format!(
        "{}:{POLICY_LINE}: error[service-port-not-target-port]: NetworkPolicy shop/web-in: spec.ingress[0].ports[0].port: port 80/TCP is the port of Service shop/web",
        file.display()
    );
    assert!(text.starts_with(&head), "{text}");
    assert!(text.contains("\n  fix: write `port: 8080` (or the container port's name, `port: http`) instead of 80\n"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("2 findings: 1 error, 1 warning, 0 info"),
        "{text}"
    );
}

#[test]
fn the_annotation_silences_a_finding_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = CLUSTER.replace(
        "{name: web-in, namespace: shop}",
        "{name: web-in, namespace: shop, annotations: {policy.palisade.dev/lint-disable: service-port-not-target-port}}",
    );
    let o = lint(dir.path(), &quiet, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("(1 silenced by policy.palisade.dev/lint-disable)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn json_output_is_one_document_with_counts() {
    let dir = tempfile::tempdir().unwrap();
    let o = lint(dir.path(), CLUSTER, &["-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        doc["counts"],
        serde_json::json!({"error": 1, "warning": 1, "info": 0})
    );
    let first = &doc["findings"][0];
    assert_eq!(first["rule"], "service-port-not-target-port");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["object"], "NetworkPolicy shop/web-in");
    assert_eq!(
        (
            first["kind"].as_str(),
            first["namespace"].as_str(),
            first["name"].as_str()
        ),
        (Some("NetworkPolicy"), Some("shop"), Some("web-in"))
    );
    assert_eq!(
        first["file"],
        dir.path().join("cluster.yaml").display().to_string()
    );
    assert_eq!(first["line"], POLICY_LINE);
    assert_eq!(first["field"], "spec.ingress[0].ports[0].port");
    assert!(first["fix"].as_str().unwrap().contains("`port: 8080`"));
    let rules: Vec<&str> = (doc["findings"].as_array().unwrap().iter())
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        // Not selector-matches-nothing on `team: front`: manifests may leave namespaces out.
        ["service-port-not-target-port", "peers-look-like-and"]
    );
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0() {
    let dir = tempfile::tempdir().unwrap();
    let o = lint(dir.path(), CLUSTER, &["-o", "sarif"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let log = valid_sarif(dir.path(), &o.stdout);

    // What code-scanning tools read, field by field.
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 17);
    for r in rules {
        assert!(
            r["id"].is_string() && r["shortDescription"]["text"].is_string(),
            "{r}"
        );
        assert!(["error", "warning", "note"]
            .contains(&r["defaultConfiguration"]["level"].as_str().unwrap()));
    }
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "service-port-not-target-port");
    assert_eq!(result["level"], "error");
    assert_eq!(
        rules[result["ruleIndex"].as_u64().unwrap() as usize]["id"],
        result["ruleId"]
    );
    assert!(result["message"]["text"]
        .as_str()
        .unwrap()
        .contains("Fix: write `port: 8080`"));
    let location = &result["locations"][0];
    let uri = location["physicalLocation"]["artifactLocation"]["uri"]
        .as_str()
        .unwrap();
    assert_eq!(
        uri,
        format!("file://{}", dir.path().join("cluster.yaml").display())
    );
    assert_eq!(
        location["physicalLocation"]["region"]["startLine"],
        POLICY_LINE
    );
    assert_eq!(
        location["logicalLocations"][0]["name"],
        "NetworkPolicy shop/web-in"
    );
    assert_eq!(run["results"].as_array().unwrap().len(), 2);
}

/// The SARIF log `bytes`, checked against the SARIF 2.1.0 schema (written to `dir` for Python).
fn valid_sarif(dir: &Path, bytes: &[u8]) -> Value {
    let log_path = dir.join("lint.sarif");
    std::fs::write(&log_path, bytes).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-2.1.0-rtm.5.json");
    let check = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1])); log = json.load(open(sys.argv[2]))\n\
             jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker()).validate(log)\n\
             print('valid')",
        )
        .arg(&schema)
        .arg(&log_path)
        .output()
        .expect("python3 (with the jsonschema module) validates SARIF");
    assert_eq!(stdout(&check).trim(), "valid", "{}", stderr(&check));
    serde_json::from_slice(bytes).unwrap()
}

/// A live cluster's findings point at their objects' API paths relative to a base naming the
/// server (`CLUSTER`), not at the server's URL: the same URI whatever address the server has, so
/// code-scanning tools track a finding from run to run.
#[test]
fn sarif_of_a_live_cluster_names_objects_relative_to_the_server() {
    let policy = serde_json::json!({
        "metadata": {"name": "web-in", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "wbe"}}, "policyTypes": ["Ingress"]},
    });
    let pod = serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "m", "image": "i"}]},
        "status": {"phase": "Running", "podIP": "10.244.1.1"},
    });
    let namespace = serde_json::json!({"metadata": {"name": "shop"}});
    let dir = tempfile::tempdir().unwrap();
    let mut uris = Vec::new();
    // Two servers (two runs), one cluster: the same artifact URI.
    for _ in 0..2 {
        let routes = fake_api::cluster(
            vec![namespace.clone()],
            vec![pod.clone()],
            vec![policy.clone()],
        );
        let api = fake_api::FakeApi::start(routes);
        let kubeconfig = api.kubeconfig(dir.path());
        let o = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["lint", "-o", "sarif", "--kubeconfig"])
            .arg(&kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
            .expect("run palisade");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let log = valid_sarif(dir.path(), &o.stdout);
        let run = &log["runs"][0];
        let result = &run["results"][0];
        assert_eq!(result["ruleId"], "selector-matches-nothing", "{log}");
        let artifact = &result["locations"][0]["physicalLocation"]["artifactLocation"];
        assert_eq!(artifact["uriBaseId"], "CLUSTER", "{artifact}");
        assert_eq!(
            run["originalUriBaseIds"]["CLUSTER"]["uri"],
            format!("http://{}/", api.addr)
        );
        uris.push((
            artifact["uri"].clone(),
            result["partialFingerprints"].clone(),
        ));
    }
    assert_eq!(
        uris[0].0,
        "apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/web-in"
    );
    assert_eq!(uris[0], uris[1]);
}

/// The rules and objects of `-o json`'s findings.
fn findings(o: &Output) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(&stdout(o)).expect("one JSON document");
    (doc["findings"].as_array().unwrap().iter())
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap().to_string();
            (text("rule"), text("object"))
        })
        .collect()
}

#[test]
fn namespaces_scope_the_findings_not_the_analysis() {
    // `front` isolates nothing while `shop` does: a finding on Namespace front that only the
    // other namespace's policy makes true.
    let front = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: front}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: visitor, namespace: front, labels: {app: visitor}}\nspec: {containers: [{name: m, image: i}]}\nstatus: {podIP: 10.244.2.1}\n";
    let cluster = format!("{CLUSTER}{front}");
    let dir = tempfile::tempdir().unwrap();
    let pair = |rule: &str, object: &str| (rule.to_string(), object.to_string());
    let shop = [
        pair("service-port-not-target-port", "NetworkPolicy shop/web-in"),
        pair("peers-look-like-and", "NetworkPolicy shop/web-in"),
    ];
    let open = pair("namespace-not-isolated", "Namespace front");
    for everything in [&[][..], &["-A"]] {
        let o = lint(
            dir.path(),
            &cluster,
            &[&["-o", "json"], everything].concat(),
        );
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let all = findings(&o);
        assert!(
            shop.iter().all(|f| all.contains(f)) && all.contains(&open),
            "{all:?}"
        );
    }
    // Only front: its Namespace's finding, and no error left, so exit 0.
    let o = lint(dir.path(), &cluster, &["-o", "json", "-n", "front"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(findings(&o), std::slice::from_ref(&open));
    // Only shop: its policy's findings, not front's.
    let o = lint(dir.path(), &cluster, &["-o", "json", "--namespace", "shop"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(findings(&o), shop);
    // Both, repeated.
    let o = lint(
        dir.path(),
        &cluster,
        &["-o", "json", "-n", "shop", "-n", "front"],
    );
    assert_eq!(findings(&o).len(), 3, "{}", stdout(&o));
    // An unknown namespace is unusable input; -n with -A a usage error.
    let o = lint(dir.path(), &cluster, &["-n", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("namespace \"nowhere\" not found"),
        "{}",
        stderr(&o)
    );
    let o = lint(dir.path(), &cluster, &["-n", "shop", "-A"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A cluster-wide rule shadowed by an earlier one: a valid SARIF result at the policy's line and
/// the rule's field, named as a cluster-scoped object; `--disable` drops it.
#[test]
fn a_shadowed_tier_rule_in_sarif_and_disabled() {
    let tiers = "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: guard}\n\
                 spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}\n\
                 ---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: late}\n\
                 spec: {tier: Admin, priority: 2, subject: {namespaces: {}}, ingress: [{action: Accept, from: [{namespaces: {}}]}]}\n";
    let text = format!("{CLUSTER}{tiers}");
    // The document's first line: `apiVersion`, two above `metadata`.
    let line = text[..text.find("name: late").unwrap()].lines().count() - 2;
    let dir = tempfile::tempdir().unwrap();
    let o = lint(dir.path(), &text, &["-o", "sarif"]);
    let log = valid_sarif(dir.path(), &o.stdout);
    let results = log["runs"][0]["results"].as_array().unwrap();
    let shadowed: Vec<&Value> = (results.iter())
        .filter(|r| r["ruleId"] == "tier-rule-shadowed")
        .filter(|r| r["locations"][0]["logicalLocations"][0]["name"] == "ClusterNetworkPolicy late")
        .collect();
    assert_eq!(shadowed.len(), 1, "{results:#?}");
    let location = &shadowed[0]["locations"][0];
    assert_eq!(location["physicalLocation"]["region"]["startLine"], line);
    assert!(
        (shadowed[0]["message"]["text"].as_str().unwrap())
            .contains("ClusterNetworkPolicy late: this rule never decides anything"),
        "{}",
        shadowed[0]
    );
    assert_eq!(shadowed[0]["properties"]["field"], "spec.ingress[0]");
    let o = lint(dir.path(), &text, &["--disable", "tier-rule-shadowed"]);
    assert!(!stdout(&o).contains("tier-rule-shadowed"), "{}", stdout(&o));
    assert!(stdout(&o).contains("service-port-not-target-port"));
}
