//! `palisade explain --record` through the binary: policy_action.log lines from a file or standard
//! input, bad lines, `--apply-fix`, and a live cluster (`--kubeconfig`, served by the in-process
//! API server of the kube crate's tests) as the source.

#[path = "../../palisade-kube/tests/support/fake_api.rs"]
mod fake_api;

use fake_api::FakeApi;
use serde_json::json;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.1.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: api}}}]}]}
"#;

/// web -> db on TCP 5432, denied at db's ingress, as the agent logs it.
const DENY: &str = r#"{"connection":{"src_ip":"10.1.0.1","dest_ip":"10.1.0.2","src_port":40312,"dest_port":5432,"protocol":"tcp","direction":"ingress"},"disposition":"deny","src":{"pod_name":"web","pod_namespace":"shop","namespace":"shop"},"dest":{"pod_name":"db","pod_namespace":"shop","namespace":"shop"},"count":3,"node_name":"node-a","timestamp":"2026-11-22T10:00:00.123456789Z"}"#;

fn palisade(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn cluster(dir: &Path) -> String {
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, CLUSTER).unwrap();
    path.display().to_string()
}

#[test]
fn a_logged_deny_is_explained_with_its_fix_and_bad_lines_are_skipped_with_their_number() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = cluster(dir.path());
    let log = dir.path().join("policy_action.log");
    let unknown = DENY
        .replace("10.1.0.1", "10.9.0.1")
        .replace("10.1.0.2", "10.9.0.2");
    let long = "x".repeat(70_000);
    std::fs::write(
        &log,
        format!("{DENY}\nnot json\n{DENY}\n{long}\n{unknown}\n"),
    )
    .unwrap();
    let out = palisade(
        &[
            "explain",
            "-f",
            &manifests,
            "--record",
            log.to_str().unwrap(),
        ],
        "",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // A bad line makes the input unusable as a whole (exit 2), the rest is still explained.
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("policy_action.log:2: not a policy action record"),
        "{stderr}"
    );
    assert!(
        stderr.contains("policy_action.log:4: line longer than 64 KiB"),
        "{stderr}"
    );
    // The two records of one flow are told once.
    assert!(stdout.contains("policy_action.log:1: 10.1.0.1 -> 10.1.0.2 tcp/5432: recorded deny at ingress (2 records, 6 attempts)"), "{stdout}");
    assert_eq!(
        stdout.matches("10.1.0.1 -> 10.1.0.2").count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout.contains("pod shop/web (10.1.0.1) -> pod shop/db (10.1.0.2) TCP 5432: DENIED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  - NetworkPolicy shop/db-ingress"),
        "{stdout}"
    );
    assert!(
        stdout.contains("name: allow-web-to-db-tcp-5432"),
        "{stdout}"
    );
    assert!(stdout.contains("It allows this flow's workload pair on this port, nothing else:\n+ shop/web -> shop/db: TCP 5432"), "{stdout}");
    assert!(
        stdout.contains("address 10.9.0.1 matches no pod in the manifests"),
        "{stdout}"
    );
}

#[test]
fn records_from_standard_input_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = cluster(dir.path());
    let out = palisade(
        &["explain", "-f", &manifests, "--record", "-", "-o", "json"],
        &format!("{DENY}\n"),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["explanation"]["allowed"], false);
    assert_eq!(json["fix"]["exact"], true);
    assert!(json["fix"]["yaml"].as_str().unwrap().contains("app: web"));
    // Both standard inputs at once is refused.
    let out = palisade(&["explain", "-f", "-", "--record", "-"], CLUSTER);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot both read standard input"));
}

#[test]
fn apply_fix_writes_a_new_manifest_once_and_the_flow_is_then_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    cluster(&manifests);
    let folder = manifests.to_str().unwrap();
    let args = [
        "explain",
        "-f",
        folder,
        "--record",
        "-",
        "--apply-fix",
        folder,
    ];
    let out = palisade(&args, DENY);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let written = manifests.join("shop-allow-web-to-db-tcp-5432.yaml");
    let mode = std::fs::metadata(&written).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let fix = std::fs::read_to_string(&written).unwrap();
    assert!(fix.contains("kind: NetworkPolicy"), "{fix}");
    // With the fix among the manifests the recorded flow is allowed, and nothing is written.
    let out = palisade(&args, DENY);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("TCP 5432: ALLOWED"));
    // An existing file is never overwritten: with the fix removed from the inputs but present
    // in the output folder, it is refused.
    let inputs = dir.path().join("cluster-only.yaml");
    std::fs::write(&inputs, CLUSTER).unwrap();
    std::fs::write(&written, "keep").unwrap();
    let out = palisade(
        &[
            "explain",
            "-f",
            inputs.to_str().unwrap(),
            "--record",
            "-",
            "--apply-fix",
            folder,
        ],
        DENY,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("exists; not overwritten"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "keep");
    // A symbolic link as the folder is refused.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&manifests, &link).unwrap();
    let out = palisade(
        &[
            "explain",
            "-f",
            inputs.to_str().unwrap(),
            "--record",
            "-",
            "--apply-fix",
            link.to_str().unwrap(),
        ],
        DENY,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is a symbolic link"),
        "{}",
        text(&out.stderr)
    );
}

/// `CLUSTER` as a live cluster serves it: the recorded drop is explained from the API server's
/// objects (the policy named with its URL), and the fix is proposed and written as from files.
#[test]
fn a_recorded_drop_is_explained_and_fixed_from_a_live_cluster() {
    let pod = |name: &str, ip: &str| {
        json!({
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
            "spec": {"containers": [{"name": "m", "image": "i"}]},
            "status": {"phase": "Running", "podIP": ip},
        })
    };
    let policy = json!({
        "metadata": {"name": "db-ingress", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]},
    });
    let namespace = json!({"metadata": {"name": "shop"}});
    let pods = vec![pod("web", "10.1.0.1"), pod("db", "10.1.0.2")];
    let api = FakeApi::start(fake_api::cluster(vec![namespace], pods, vec![policy]));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let fixes = dir.path().join("fixes");
    std::fs::create_dir(&fixes).unwrap();
    let args = [
        "explain",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--record",
        "-",
        "--apply-fix",
        fixes.to_str().unwrap(),
    ];
    let out = palisade(&args, DENY);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("read the cluster at http://{}", api.addr)),
        "{stderr}"
    );
    assert!(
        stdout.contains("pod shop/web (10.1.0.1) -> pod shop/db (10.1.0.2) TCP 5432: DENIED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  - NetworkPolicy shop/db-ingress"),
        "{stdout}"
    );
    assert!(
        stdout.contains("It allows this flow's workload pair on this port, nothing else:\n+ shop/web -> shop/db: TCP 5432"),
        "{stdout}"
    );
    let fix = std::fs::read_to_string(fixes.join("shop-allow-web-to-db-tcp-5432.yaml")).unwrap();
    for part in [
        "kind: NetworkPolicy",
        "name: allow-web-to-db-tcp-5432",
        "app: web",
        "app: db",
        "port: 5432",
    ] {
        assert!(fix.contains(part), "{part}: {fix}");
    }
    // The live cluster with the fix beside it (as files cannot be mixed with a cluster, the
    // cluster as manifests plus the fix) allows the recorded flow.
    let manifests = cluster(dir.path());
    let with_fix = palisade(
        &[
            "explain",
            "-f",
            &manifests,
            "-f",
            fixes.to_str().unwrap(),
            "--record",
            "-",
        ],
        DENY,
    );
    assert_eq!(
        with_fix.status.code(),
        Some(0),
        "{}",
        text(&with_fix.stdout)
    );
}
