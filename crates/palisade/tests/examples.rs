//! The examples behave as their READMEs say.

use std::process::Command;

fn explain(dir: &str, from: &str, to: &str, port: &str) -> (i32, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/");
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "explain",
            "-f",
            &format!("{root}{dir}"),
            "--from",
            from,
            "--to",
            to,
            "--port",
            port,
        ])
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn microservices_demo_only_cartservice_reaches_redis() {
    let (code, text) = explain(
        "microservices-demo",
        "default/cartservice",
        "default/redis-cart",
        "6379",
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("NetworkPolicy default/redis-cart-allow-cartservice spec.ingress[0]"),
        "{text}"
    );
    let (code, text) = explain(
        "microservices-demo",
        "default/rogue",
        "default/redis-cart",
        "6379",
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("podSelector needs app=cartservice; pod default/rogue has app=rogue"),
        "{text}"
    );
    let (code, _) = explain(
        "microservices-demo",
        "default/rogue",
        "default/frontend",
        "8080",
    );
    assert_eq!(code, 0, "nothing else is isolated");
}

#[test]
fn trial_cluster_release_agents_reach_elasticsearch_only_on_9200() {
    let dir = "trial-cluster";
    assert_eq!(
        explain(dir, "tenant-a/release-agent", "vamp/elasticsearch", "9200").0,
        0
    );
    let (code, text) = explain(dir, "tenant-a/release-agent", "vamp/elasticsearch", "9300");
    assert_eq!(code, 1);
    assert!(text.contains("allows port 9200/TCP only"), "{text}");
    assert_eq!(
        explain(dir, "tenant-b/release-agent", "vamp/vamp", "8080").0,
        1
    );
    let (code, text) = explain(dir, "tenant-a/trial-app", "vamp/elasticsearch", "9200");
    assert_eq!(code, 1);
    assert!(
        text.contains("Egress of tenant-a/trial-app")
            && text.contains("allows ports 53/UDP, 53/TCP only"),
        "{text}"
    );
    assert!(
        text.contains("podSelector needs io.vamp=release-agent"),
        "{text}"
    );
    assert_eq!(
        explain(dir, "tenant-a/trial-app", "kube-system/coredns", "53/UDP").0,
        0
    );
    assert_eq!(
        explain(dir, "tenant-b/trial-app", "kube-system/coredns", "dns-tcp").0,
        0
    );
    let (code, text) = explain(dir, "vamp/vamp", "vamp/elasticsearch", "9200");
    assert_eq!(code, 1);
    assert!(
        text.contains("namespaceSelector needs role=tenant; namespace vamp has role=core"),
        "{text}"
    );
    assert_eq!(explain(dir, "vamp/vamp", "tenant-a/trial-app", "8080").0, 0);
}
