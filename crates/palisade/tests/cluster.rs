//! `palisade matrix`, `explain`, `lint` and `diff` against a live cluster (`--kubeconfig`, read-only
//! lists), served by the in-process API server of the kube crate's tests.

#[path = "../../palisade-kube/tests/support/fake_api.rs"]
mod fake_api;

use fake_api::{FakeApi, Reply};
use serde_json::json;
use std::collections::HashMap;
use std::process::{Command, Output};

fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run palisade")
}

fn pod(name: &str, ip: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 6379}]}]},
        "status": {"phase": "Running", "podIP": ip},
    })
}

/// Redis accepts web only.
fn shop() -> HashMap<String, Reply> {
    let policy = json!({
        "metadata": {"name": "redis-from-web", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "redis"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]},
    });
    let pods = ["redis", "web", "cart"]
        .iter()
        .zip(["10.1.0.5", "10.1.0.6", "10.1.0.7"])
        .map(|(name, ip)| pod(name, ip))
        .collect();
    let namespace = json!({"metadata": {"name": "shop"}});
    fake_api::cluster(vec![namespace], pods, vec![policy])
}

#[test]
fn matrix_and_explain_read_a_live_cluster() {
    let api = FakeApi::start(shop());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap();
    let out = palisade(&["matrix", "--kubeconfig", kubeconfig, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let matrix: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = matrix.to_string();
    assert!(
        text.contains("shop/redis") && text.contains("shop/cart"),
        "{text}"
    );
    let explain = |from: &str| {
        palisade(&[
            "explain",
            "--kubeconfig",
            kubeconfig,
            "--from",
            from,
            "--to",
            "shop/redis",
            "--port",
            "6379",
        ])
    };
    let denied = explain("shop/cart");
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    assert!(String::from_utf8_lossy(&denied.stdout).contains("shop/redis-from-web"));
    assert_eq!(explain("shop/web").status.code(), Some(0));
    let said = format!("read the cluster at http://{}", api.addr);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&said),
        "always said"
    );
    // Another context of the kubeconfig: its server answers nothing.
    let elsewhere = palisade(&[
        "matrix",
        "--kubeconfig",
        kubeconfig,
        "--context",
        "elsewhere",
        "--request-timeout",
        "2s",
    ]);
    assert_eq!(elsewhere.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&elsewhere.stderr).contains("http://127.0.0.1:9"));
    let by_context = palisade(&[
        "matrix",
        "--kubeconfig",
        kubeconfig,
        "--context",
        "fake",
        "-o",
        "json",
    ]);
    assert_eq!(by_context.stdout, out.stdout);
}

#[test]
fn a_cluster_that_cannot_be_read_is_an_error_and_manifests_exclude_it() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake_api::kubeconfig(addr, dir.path());
    let out = palisade(&["matrix", "--kubeconfig", kubeconfig.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("error: cannot list Namespace from http://{addr}")),
        "{stderr}"
    );
    let both = palisade(&["matrix", "-f", "x.yaml", "--kubeconfig", "k"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    let missing = palisade(&["matrix", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("kubeconfig /nonexistent/kubeconfig"));
}

#[test]
fn lint_reads_a_live_cluster() {
    let typo = json!({
        "metadata": {"name": "redis-from-web", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "reddis"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]},
    });
    let pods = vec![pod("redis", "10.1.0.5"), pod("web", "10.1.0.6")];
    let namespace = json!({"metadata": {"name": "shop"}});
    let api = FakeApi::start(fake_api::cluster(vec![namespace], pods, vec![typo]));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let out = palisade(&[
        "lint",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = &report["findings"][0];
    assert_eq!(finding["rule"], "selector-matches-nothing", "{report}");
    assert_eq!(finding["object"], "NetworkPolicy shop/redis-from-web");
    assert_eq!(finding["field"], "spec.podSelector");
    assert!(
        finding["fix"].as_str().unwrap().contains("redis"),
        "{finding}"
    );
    assert!(
        finding["file"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{}", api.addr)),
        "{finding}"
    );
}

#[test]
fn diff_compares_a_folder_with_a_live_cluster() {
    let api = FakeApi::start(shop());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap();
    // The same pods in a folder, without the policy: the cluster removes cart -> redis.
    let manifests: String = ["redis", "web", "cart"]
        .iter()
        .zip(["10.1.0.5", "10.1.0.6", "10.1.0.7"])
        .map(|(name, ip)| {
            let mut object = pod(name, ip);
            object["apiVersion"] = json!("v1");
            object["kind"] = json!("Pod");
            format!("---\n{object}\n")
        })
        .collect();
    let folder = dir.path().join("k8s");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("pods.yaml"), manifests).unwrap();
    let folder = folder.to_str().unwrap();
    let out = palisade(&["diff", "--before", folder, "--after-kubeconfig", kubeconfig]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("- shop/cart -> shop/redis: all ports\n    before: allowed: not isolated\n    after:  denied: ingress isolated by shop/redis-from-web\n"),
        "{text}"
    );
    let same = palisade(&[
        "diff",
        "--before-kubeconfig",
        kubeconfig,
        "--after-kubeconfig",
        kubeconfig,
    ]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
}
