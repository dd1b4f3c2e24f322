//! The kernel accepts the ruleset of realistic synthetic clusters (overlapping port ranges, IPv4 and
//! IPv6 ipBlocks with excepts, named ports resolving differently, shared peer sets), and the whole
//! replacement is atomic: after applying one cluster then another, the table is the second one's.
//! Needs root and `nft`.

use palisade_dataplane::lab::{self, Lab};
use palisade_dataplane::{apply, render};
use palisade_model::{ClusterState, Loader};
use palisade_policy::Engine;
use palisade_synth::{generate, SynthConfig};
use std::process::Command;
use std::sync::Arc;

fn cluster(seed: u64) -> ClusterState {
    let synth = generate(&SynthConfig {
        namespaces: 40,
        pods_per_ns: 8,
        policies: 300,
        seed,
    });
    let mut loader = Loader::new();
    for f in &synth.files {
        loader.load_str(&f.name, &f.contents);
    }
    let (state, diags) = loader.finish();
    assert!(diags.iter().all(|d| !d.is_error()));
    state
}

#[test]
fn synthetic_rulesets_apply_and_replace_atomically() {
    lab::require_root().expect("the kernel tests run as root");
    let name = format!("s{}", std::process::id());
    let _teardown = lab::DownOnDrop(name.clone());
    let node = Lab::plan(&name, &ClusterState::default());
    node.create().expect("node namespace");
    let mut last = String::new();
    for seed in 1..=4 {
        let script = render(&Engine::new(Arc::new(cluster(seed))));
        apply(&script, Some(&node.node)).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        last = script;
    }
    let listed = Command::new("ip")
        .args([
            "netns", "exec", &node.node, "nft", "list", "map", "inet", "palisade", "ingress4",
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    // Every pod of the last cluster, and only those, is in the ingress map.
    let expected = last.matches(": jump ingress_").count();
    assert!(expected > 100);
    assert_eq!(listed.matches(": jump ingress_").count(), expected);
}
