//! End-to-end tests of the `palisade` binary: output formats, exit codes, errors.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: vamp, labels: {role: core}}
---
apiVersion: v1
kind: Namespace
metadata: {name: tenant-a, labels: {role: tenant}}
---
apiVersion: v1
kind: Pod
metadata: {name: es, namespace: vamp, labels: {app: elasticsearch}}
spec:
  containers:
  - name: es
    image: es
    ports: [{containerPort: 9200, name: http}, {containerPort: 9300, name: transport}]
status: {podIP: 10.1.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: tenant-a, labels: {io.vamp: release-agent}}
spec: {containers: [{name: a, image: a}]}
status: {podIP: 10.1.0.20}
---
apiVersion: v1
kind: Pod
metadata: {name: app, namespace: tenant-a, labels: {app: trial}}
spec: {containers: [{name: a, image: a, ports: [{containerPort: 8080, protocol: TCP}]}]}
status: {podIP: 10.1.0.30}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: es-from-agents, namespace: vamp}
spec:
  podSelector: {matchLabels: {app: elasticsearch}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {role: tenant}}
      podSelector: {matchLabels: {io.vamp: release-agent}}
    ports: [{port: 9200}]
"#;

const BROKEN_POLICY: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: broken, namespace: vamp}
spec:
  podSelector: {}
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}
"#;

fn palisade(args: &[&str], stdin: Option<&str>) -> Output {
    palisade_bytes(args, stdin.map(str::as_bytes))
}

/// [`palisade`] with any bytes on stdin (`None`: stdin closed at once).
fn palisade_bytes(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        // The agent reads NODE_NAME (set on Kubernetes runners): these tests name no node.
        .env_remove("NODE_NAME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run palisade");
    if let Some(input) = stdin {
        // A command may exit before it reads its input (a usage error, say): what it printed is
        // what the test checks, and the pipe's other end is gone.
        if let Err(e) = child.stdin.take().unwrap().write_all(input) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn matrix_txt_from_stdin() {
    let o = palisade(&["matrix", "-f", "-", "--probe", "9200/TCP"], Some(CLUSTER));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# probe 9200 TCP");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        vec!["-", "tenant-a/agent", "tenant-a/app", "vamp/es"]
    );
    let rows: Vec<Vec<&str>> = lines[2..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], vec!["tenant-a/agent", ".", ".", "."]);
    assert_eq!(rows[1], vec!["tenant-a/app", ".", ".", "X"]);
    assert_eq!(rows[2], vec!["vamp/es", ".", ".", "."]);
}

#[test]
fn matrix_json_shape_and_default_probes() {
    let o = palisade(&["matrix", "-f", "-", "-o", "json"], Some(CLUSTER));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["pods"],
        serde_json::json!(["tenant-a/agent", "tenant-a/app", "vamp/es"])
    );
    let probes = v["probes"].as_array().unwrap();
    let ports: Vec<(u64, &str)> = probes
        .iter()
        .map(|p| (p["port"].as_u64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(ports, vec![(8080, "TCP"), (9200, "TCP"), (9300, "TCP")]);
    // 9300: only es itself reaches es; agent -> es denied.
    assert_eq!(
        probes[2]["allowed"][0],
        serde_json::json!([true, true, false])
    );
    assert_eq!(
        probes[2]["allowed"][2],
        serde_json::json!([true, true, true])
    );
}

#[test]
fn matrix_namespace_filter_and_other_formats() {
    let o = palisade(
        &[
            "matrix", "-f", "-", "-n", "tenant-a", "--probe", "80", "-o", "csv",
        ],
        Some(CLUSTER),
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "port,protocol,source,tenant-a/agent,tenant-a/app\n80,TCP,tenant-a/agent,1,1\n80,TCP,tenant-a/app,1,1\n"
    );
    let o = palisade(
        &["matrix", "-f", "-", "--probe", "9200", "-o", "md"],
        Some(CLUSTER),
    );
    assert!(
        stdout(&o).contains("| **tenant-a/app** | ✓ | ✓ | ✗ |"),
        "{}",
        stdout(&o)
    );
    let o = palisade(
        &["matrix", "-f", "-", "--probe", "9200", "-o", "dot"],
        Some(CLUSTER),
    );
    let dot = stdout(&o);
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains("\"tenant-a/agent\" -> \"vamp/es\" [label=\"9200/TCP\"]"));
    assert!(!dot.contains("\"tenant-a/app\" -> \"vamp/es\""));
    let o = palisade(&["matrix", "-f", "-", "-n", "nope"], Some(CLUSTER));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn explain_denied_says_why_and_exits_1() {
    let o = palisade(
        &[
            "explain",
            "-f",
            "-",
            "--from",
            "tenant-a/app",
            "--to",
            "vamp/es",
            "--port",
            "9200",
        ],
        Some(CLUSTER),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("DENIED"), "{text}");
    assert!(text.contains("NetworkPolicy vamp/es-from-agents"), "{text}");
    assert!(
        text.contains(
            "podSelector needs io.vamp=release-agent; pod tenant-a/app has no such label"
        ),
        "{text}"
    );
    let o = palisade(
        &[
            "explain",
            "-f",
            "-",
            "--from",
            "tenant-a/agent",
            "--to",
            "vamp/es",
            "--port",
            "transport",
        ],
        Some(CLUSTER),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("rule 0: allows port 9200/TCP only"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn explain_allowed_json_by_ip() {
    let o = palisade(
        &[
            "explain",
            "-f",
            "-",
            "--from",
            "10.1.0.20",
            "--to",
            "vamp/es",
            "--port",
            "9200/TCP",
            "-o",
            "json",
        ],
        Some(CLUSTER),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["allowed"], true);
    assert_eq!(v["egress"]["decision"], "not_isolated");
    assert_eq!(v["ingress"]["decision"], "allowed");
    assert_eq!(v["ingress"]["by"][0]["policy"]["name"], "es-from-agents");
    assert_eq!(v["ingress"]["by"][0]["rule"], 0);
}

#[test]
fn invalid_policy_is_reported_with_location_and_the_rest_still_analyzed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), CLUSTER).unwrap();
    std::fs::write(dir.path().join("broken.yaml"), BROKEN_POLICY).unwrap();
    let path = dir.path().to_str().unwrap();
    let o = palisade(&["matrix", "-f", path, "--probe", "9200"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("broken.yaml:2: error: NetworkPolicy vamp/broken: spec.ingress[0].from[0].ipBlock.except[0]"),
        "{err}"
    );
    // The valid policy still applies.
    assert!(
        stdout(&o).contains("tenant-a/app   .              .              X"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn malformed_yaml_and_missing_files_are_errors_not_panics() {
    let o = palisade(&["matrix", "-f", "-"], Some("kind: Pod\nmetadata: [\n"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("-:"), "{}", stderr(&o));
    assert!(stderr(&o).contains("invalid YAML"), "{}", stderr(&o));
    let o = palisade(&["matrix", "-f", "/nonexistent/palisade"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/palisade: error: cannot read"),
        "{}",
        stderr(&o)
    );
    let o = palisade(&["matrix"], None);
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
    let o = palisade(&["matrix", "-f", "-", "--probe", "80/XTP"], Some(CLUSTER));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn closed_empty_or_invalid_stdin_is_an_error() {
    for stdin in [None, Some(&b""[..]), Some(b"# nothing\n---\n")] {
        let o = palisade_bytes(&["matrix", "-f", "-"], stdin);
        assert_eq!(o.status.code(), Some(2), "{stdin:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("-: error: no objects read from standard input"),
            "{}",
            stderr(&o)
        );
    }
    let o = palisade_bytes(
        &["matrix", "-f", "-"],
        Some(b"kind: Pod\nmetadata: {name: caf\xe9}\n"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("-:2: error: not UTF-8 text: invalid byte at byte column 21"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn port_arguments_are_validated_with_what_is_valid() {
    let explain = |port: &str| {
        palisade(
            &[
                "explain", "-f", "-", "--from", "vamp/es", "--to", "vamp/es", "--port", port,
            ],
            Some(CLUSTER),
        )
    };
    for (port, says) in [
        (
            "70000",
            "port 70000 is out of range: a port number is 1-65535",
        ),
        ("0", "port 0 is out of range"),
        ("Http_x", "is not a valid port name (IANA_SVC_NAME)"),
        ("http/XTP", "unknown protocol"),
    ] {
        let o = explain(port);
        assert_eq!(o.status.code(), Some(2), "{port}");
        assert!(stderr(&o).contains(says), "{port}: {}", stderr(&o));
    }
    assert_eq!(
        explain("http").status.code(),
        Some(0),
        "{}",
        stderr(&explain("http"))
    );
    let o = palisade(&["matrix", "-f", "-", "--probe", "70000"], Some(CLUSTER));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("PORT 1-65535"), "{}", stderr(&o));
    for port in ["70000", "0"] {
        let o = palisade(&["observe", "--file", "/dev/null", "--port", port], None);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("is not in 1..=65535"), "{}", stderr(&o));
    }
}

#[test]
fn repeated_diagnostics_are_summarised() {
    let pods: String = (0..25)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: vamp}}\nspec: {{containers: [{{name: c, image: i}}], bogus: {i}}}\n"
            )
        })
        .collect();
    let o = palisade(&["matrix", "-f", "-", "--probe", "80"], Some(&pods));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 11, "{err}");
    assert!(
        lines[9].contains("Pod vamp/p9: spec.bogus: unknown field"),
        "{err}"
    );
    assert_eq!(lines[10], "warning: \u{2026} and 15 more like this");
}

#[test]
fn agent_refuses_unsafe_log_and_socket_paths_and_unknown_groups() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(d("shadow"), "secret\n").unwrap();
    std::os::unix::fs::symlink(d("shadow"), d("policy_action.log")).unwrap();
    std::fs::write(d("file.sock"), "precious\n").unwrap();
    // A missing namespace: should the agent get past its checks, it still enforces nothing here.
    let agent = |log: &str, socket: &str, group: &str| {
        palisade(
            &[
                "agent",
                "--manifests",
                &d("manifests"),
                "--netns",
                "pal-no-such-netns",
                "--policy-log",
                log,
                "--observe-socket",
                socket,
                "--group",
                group,
            ],
            None,
        )
    };
    let o = agent(&d("policy_action.log"), &d("observe.sock"), "0");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("policy_action.log: is a symbolic link"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(d("shadow")).unwrap(), "secret\n");
    let o = agent(&d("new.log"), &d("file.sock"), "root");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("file.sock: is a regular file, not a socket"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(d("file.sock")).unwrap(),
        "precious\n"
    );
    for command in [
        &["agent", "--manifests", "x"][..],
        &["lab", "up", "-f", "x"],
    ] {
        let mut args = command.to_vec();
        args.extend(["--group", "no-such-group-palisade"]);
        let o = palisade(&args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&o).contains("unknown group \"no-such-group-palisade\""),
            "{}",
            stderr(&o)
        );
    }
}

/// One small file must not exhaust the host: a workload standing for 2^31 pods is rejected before
/// a pod is made, and a device given as a file is refused rather than read without end.
#[test]
fn huge_workloads_and_devices_are_refused_quickly() {
    let started = std::time::Instant::now();
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: x}\nspec:\n  replicas: 2147483647\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: i}]}\n";
    let o = palisade(&["matrix", "-f", "-", "--probe", "80"], Some(deployment));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "Deployment x/web: spec.replicas: 2147483647 pods exceed the limit of 10000 pods per workload"
        ),
        "{}",
        stderr(&o)
    );
    let o = palisade(&["matrix", "-f", "/dev/zero"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/dev/zero: error: not read: a character device"),
        "{}",
        stderr(&o)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// `--node-name` (or NODE_NAME, as the downward API sets it): the node enforces only the pods
/// scheduled on it — only their addresses jump to policy chains — while every pod stays a peer.
#[test]
fn an_agent_enforces_the_pods_of_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let pod = |name: &str, node: &str, ip: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop, labels: {{app: {name}}}}}\n\
             spec: {{nodeName: {node}, containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: {ip}}}\n---\n"
        )
    };
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                  metadata: {name: same-namespace, namespace: shop}\n\
                  spec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}\n";
    let text = [
        pod("here", "n1", "10.0.1.1"),
        pod("there", "n2", "10.0.2.1"),
    ]
    .concat()
        + policy;
    std::fs::write(dir.path().join("m.yaml"), text).unwrap();
    let manifests = dir.path().to_str().unwrap();
    let script = |node: Option<(&str, &str)>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        command.args(["agent", "--manifests", manifests, "--dry-run"]);
        command.env_remove("NODE_NAME");
        match node {
            Some(("--node-name", name)) => command.args(["--node-name", name]),
            Some((_, name)) => command.env("NODE_NAME", name),
            None => &mut command,
        };
        let out = command.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let jumps = |script: &str, ip: &str| script.contains(&format!("{ip} : jump "));
    let n1 = script(Some(("--node-name", "n1")));
    assert!(jumps(&n1, "10.0.1.1") && !jumps(&n1, "10.0.2.1"), "{n1}");
    assert!(
        n1.contains("elements = { 10.0.1.1, 10.0.2.1 }"),
        "a peer: {n1}"
    );
    let n2 = script(Some(("NODE_NAME", "n2")));
    assert!(!jumps(&n2, "10.0.1.1") && jumps(&n2, "10.0.2.1"), "{n2}");
    let everywhere = script(None);
    assert!(jumps(&everywhere, "10.0.1.1") && jumps(&everywhere, "10.0.2.1"));
    // An empty or misspelt NODE_NAME would enforce nothing: refused.
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["agent", "--manifests", manifests, "--dry-run"])
        .env("NODE_NAME", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NODE_NAME: \"\" is not a node name"),
        "{stderr}"
    );
}
