//! The views of the flow log end to end, on a small manifest and a hand-written flow log (with a
//! rotated part, a pod gone since, an outside address and a bad line): `matrix --observed`, and
//! `observe --flows --file`.

use std::path::Path;
use std::process::{Command, Output};

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.1.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 5432}]}]}
status: {podIP: 10.1.0.3}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: api}}}], ports: [{port: 5432}]}]
"#;

/// A flow record line from `src` to `dest` (JSON peers) on `port`.
fn flow(src: &str, dest: &str, port: u16, bytes_sent: u64, started: bool) -> String {
    format!(
        r#"{{"connection":{{"src_ip":"10.1.0.1","dest_ip":"10.1.0.2","src_port":40000,"dest_port":{port},"protocol":"tcp"}},"src":{src},"dest":{dest},"disposition":"allow","packets_sent":3,"bytes_sent":{bytes_sent},"packets_received":2,"bytes_received":100,"started":{started},"ended":false,"start_time":"2026-11-22T10:00:00Z","end_time":"2026-11-22T10:00:05Z","node_name":"n"}}"#
    ) + "\n"
}

fn pod(name: &str) -> String {
    format!(r#"{{"pod_name":"{name}","namespace":"shop"}}"#)
}

fn palisade(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.yaml"), SHOP).unwrap();
    let (web, api, db) = (pod("web"), pod("api"), pod("db"));
    // The rotated file: web -> api's first interval, the one before the current file's.
    let first = flow(&web, &api, 8080, 1000, true).replace(
        r#""start_time":"2026-11-22T10:00:00Z","end_time":"2026-11-22T10:00:05Z""#,
        r#""start_time":"2026-11-22T09:59:55Z","end_time":"2026-11-22T10:00:00Z""#,
    );
    std::fs::write(dir.path().join("flows-1.log"), first).unwrap();
    let current = [
        flow(&web, &api, 8080, 500, false),
        flow(&web, &db, 5432, 10, true), // db admits only api: traffic the policies deny now
        flow(&pod("old-1"), &api, 8080, 5, true),
        flow(r#"{"instance":"192.0.2.1"}"#, &api, 8080, 5, true),
        "not a record\n".into(),
        flow(&api, &web, 9000, 7, true), // a port no container declares
    ]
    .concat();
    std::fs::write(dir.path().join("flows.log"), current).unwrap();
    dir
}

const ARGS: [&str; 5] = ["matrix", "-f", "shop.yaml", "--observed", "flows-1.log"];

#[test]
fn used_pairs_are_marked_unused_ones_stand_out_and_the_rest_is_counted() {
    let dir = setup();
    let o = palisade(dir.path(), &[&ARGS[..], &["flows.log"]].concat());
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    // The bad line: where it is, and that the rest was read.
    assert!(err.contains("flows.log:5: not a flow record"), "{err}");
    assert!(
        err.contains("1 lines of --observed files are not flow records"),
        "{err}"
    );
    let cells = |probe: &str, src: &str| -> String {
        let table = out
            .split("# probe ")
            .find(|t| t.starts_with(probe))
            .unwrap();
        let row = table.lines().find(|l| l.starts_with(src)).unwrap();
        row.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    };
    // Columns: shop/api, shop/db, shop/web.
    assert_eq!(cells("8080 TCP", "shop/web"), "U X .", "{out}");
    assert_eq!(cells("5432 TCP", "shop/web"), "X ! .", "{out}");
    assert_eq!(cells("5432 TCP", "shop/api"), ". . .", "{out}");
    // 9000 is probed because a flow used it.
    assert_eq!(cells("9000 TCP", "shop/api"), ". X U", "{out}");
    assert!(
        out.contains("# used shop/web -> shop/api: 1 connections, 1700 bytes\n"),
        "{out}"
    );
    assert!(out.contains("# flow records: 6 read, 4 marked (1 on denied cells), 1 lines skipped"));
    assert!(
        out.contains("# 1 records with an end that is not a pod"),
        "{out}"
    );
    assert!(
        out.contains("records of pods not in the input: shop/old-1 (1)"),
        "{out}"
    );

    // json: an `observed` cell beside each `allowed` one, and the summary.
    let o = palisade(
        dir.path(),
        &[&ARGS[..], &["flows.log", "--probe", "8080", "-o", "json"]].concat(),
    );
    assert_eq!(o.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["pods"][2], "shop/web");
    let cell = &json["probes"][0]["observed"][2][0];
    assert_eq!(
        *cell,
        serde_json::json!({"records": 2, "connections": 1, "bytes": 1700}),
        "{json}"
    );
    assert_eq!(json["probes"][0]["observed"][2][1], serde_json::Value::Null);
    assert_eq!(json["observed"]["unprobed"]["5432/TCP"], 1, "{json}");
    assert_eq!(json["observed"]["unknown_pods"]["shop/old-1"], 1, "{json}");
}

#[test]
fn a_missing_flow_file_is_an_error_naming_it() {
    let dir = setup();
    let o = palisade(dir.path(), &[&ARGS[..], &["nowhere.log"]].concat());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--observed nowhere.log: No such file"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn observe_flows_reads_rotated_files_in_order_filtered_in_every_format() {
    let dir = setup();
    let observe = |extra: &[&str]| {
        let args = [
            &[
                "observe",
                "--flows",
                "--file",
                "flows.log",
                "--file",
                "flows-1.log",
            ][..],
            extra,
        ]
        .concat();
        let o = palisade(dir.path(), &args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(0), "{err}");
        (String::from_utf8_lossy(&o.stdout).to_string(), err)
    };
    let (out, err) = observe(&["--to-pod", "shop/api", "--from-pod", "shop/web"]);
    assert!(err.contains("flows.log:5: not a flow record"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0],
        "2026-11-22T10:00:00.000000000Z shop/web:40000 -> shop/api:8080 tcp ALLOWED \
         sent 1000 B/3 pkts received 100 B/2 pkts [started]"
    );
    assert!(lines[1].contains("sent 500 B/3 pkts"), "{out}");
    let (out, _) = observe(&["--port", "9000", "-o", "table"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..5],
        ["END", "SOURCE", "DESTINATION", "PROTO", "VERDICT"],
        "{out}"
    );
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[1][1..3], ["shop/api:40000", "shop/web:9000"], "{out}");
    let (out, _) = observe(&["-o", "json", "--pod", "shop/old", "--last", "1"]);
    let record: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(record["src"]["pod_name"], "old-1", "{out}");
    let (out, _) = observe(&["--verdict", "denied"]);
    assert!(out.is_empty(), "{out}");

    let o = palisade(
        dir.path(),
        &[
            "observe",
            "--flows",
            "--file",
            "flows.log",
            "--verdict",
            "audit",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("use --verdict denied"), "{err}");
}
