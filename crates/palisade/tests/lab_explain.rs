//! Explain a drop the lab logged, as root: the rogue pod's connection to redis-cart is denied
//! and logged, `explain --record` says why and writes the minimal fix into the manifests the
//! lab's agent watches, and the same connection then succeeds.

mod support;

use std::time::Duration;
use support::{connects, palisade, records, within, Demo};

#[test]
fn a_logged_drop_is_explained_and_its_fix_lets_the_same_connection_through() {
    let demo = Demo::new("x");
    let manifests = demo.manifests.to_str().unwrap();
    std::fs::write(
        demo.manifests.join("zz-logging.yaml"),
        "apiVersion: networking.gke.io/v1alpha1\nkind: NetworkLogging\nmetadata: {name: default}\n\
         spec: {cluster: {allow: {log: false}, deny: {log: true}}}\n",
    )
    .unwrap();
    let log = demo.dir.path().join("log/policy_action.log");
    let lab = demo.up(&["--policy-log", log.to_str().unwrap()]);
    let rogue = lab.find_pod("default/rogue").unwrap();

    assert!(!connects(&demo.name, &rogue.key, "redis-cart", 6379));
    assert!(
        within(Duration::from_secs(8), || !records(&log).is_empty()).is_some(),
        "no deny record"
    );
    let out = palisade(&[
        "explain",
        "-f",
        manifests,
        "--record",
        log.to_str().unwrap(),
        "--apply-fix",
        manifests,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-> pod default/redis-cart-"), "{stdout}");
    assert!(stdout.contains("TCP 6379: DENIED"), "{stdout}");
    assert!(
        stdout.contains("nothing else:\n+ default/rogue -> default/redis-cart"),
        "{stdout}"
    );
    assert!(demo
        .manifests
        .join("default-allow-rogue-to-redis-cart-tcp-6379.yaml")
        .exists());

    // The agent watches the folder: the fix reaches the kernel, and the connection succeeds.
    assert!(
        within(Duration::from_secs(10), || connects(
            &demo.name,
            &rogue.key,
            "redis-cart",
            6379
        ))
        .is_some(),
        "rogue still cannot reach redis-cart with the fix applied:\n{stdout}"
    );
}
