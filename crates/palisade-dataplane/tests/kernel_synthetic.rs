//! The kernel accepts the ruleset of realistic synthetic clusters (overlapping port ranges, IPv4 and
//! IPv6 ipBlocks with excepts, named ports resolving differently, shared peer sets), and the whole
//! replacement is atomic: after applying one cluster then another, the table is the second one's.
//! Updates that change only what differs leave exactly the table a full replacement would. Needs root
//! and `nft`.

use palisade_dataplane::{apply, build, Ruleset};
use palisade_model::{ClusterState, NamespaceInfo, PodInfo, PolicyInfo};
use palisade_policy::{Audit, CompiledTable, Enforcement, Engine};
use palisade_synth::{generate, SynthConfig};
use std::process::Command;
use std::sync::Arc;

mod support;
use support::Netns;

fn cluster(seed: u64) -> ClusterState {
    let synth = generate(&SynthConfig {
        namespaces: 40,
        pods_per_ns: 8,
        policies: 300,
        seed,
    });
    let (state, diags) = synth.load();
    assert!(diags.iter().all(|d| !d.is_error()));
    state
}

#[test]
fn synthetic_rulesets_apply_and_replace_atomically() {
    let node = Netns::new("s");
    let rulesets: Vec<Ruleset> = (1..=4)
        .map(|seed| {
            build(
                &CompiledTable::of(&Engine::new(Arc::new(cluster(seed))), Audit::Annotated),
                None,
            )
        })
        .collect();
    for (seed, ruleset) in rulesets.iter().enumerate() {
        ruleset
            .apply(Some(&node.name))
            .unwrap_or_else(|e| panic!("seed {}: {e}", seed + 1));
    }
    let listed = Command::new("ip")
        .args([
            "netns", "exec", &node.name, "nft", "list", "map", "inet", "palisade", "ingress4",
        ])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    // Every pod of the last cluster, and only those, is in the ingress map.
    let expected = rulesets[3].script().matches(": jump ingress_").count();
    assert!(expected > 100);
    assert_eq!(listed.matches(": jump ingress_").count(), expected);

    // An update made for another table is refused as a whole: the kernel keeps the table it holds,
    // and the error names the change it refused.
    let before = listing(&node.name);
    let wrong = rulesets[1].update_from(&rulesets[0]);
    let err = wrong
        .apply(Some(&node.name))
        .expect_err("an update for another table must be refused")
        .to_string();
    assert!(err.contains("nf_tables refused change"), "{err}");
    assert!(
        listing(&node.name) == before,
        "a refused update changed the table"
    );
}

/// The table in `netns` as canonical JSON: handles dropped, set and map elements sorted, objects
/// sorted (so two tables built in different orders compare equal when they hold the same).
fn listing(netns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", netns, "nft", "-j", "list", "table", "inet", "palisade",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fn canonical(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("handle");
                for (key, value) in map.iter_mut() {
                    canonical(value);
                    if key == "elem" {
                        if let Some(items) = value.as_array_mut() {
                            items.sort_by_key(|i| i.to_string());
                        }
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(canonical),
            _ => {}
        }
    }
    let mut json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    canonical(&mut json);
    let mut objects: Vec<String> = json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("metainfo").is_none())
        .map(|o| o.to_string())
        .collect();
    objects.sort();
    objects
}

/// Two empty namespaces (`…<tag>a…`, `…<tag>b…`), removed when dropped, also when the test fails.
fn two_nodes(tag: &str) -> [Netns; 2] {
    ["a", "b"].map(|n| Netns::new(&format!("{tag}{n}")))
}

/// What the steps change of a state.
struct Parts {
    namespaces: Vec<NamespaceInfo>,
    pods: Vec<Arc<PodInfo>>,
    policies: Vec<PolicyInfo>,
}

/// `state` with the given changes, re-indexed.
fn changed(state: &ClusterState, f: impl FnOnce(&mut Parts)) -> ClusterState {
    let mut parts = Parts {
        namespaces: state.namespaces.as_slice().to_vec(),
        pods: state.pods.as_slice().to_vec(),
        policies: state.policies.clone(),
    };
    f(&mut parts);
    let Parts {
        namespaces,
        pods,
        policies,
    } = parts;
    ClusterState::new(namespaces, pods, state.services.clone(), policies)
}

#[test]
fn incremental_updates_leave_the_table_a_full_apply_would() {
    let [node_a, node_b] = two_nodes("i");
    let base = cluster(1);
    let app_values: Vec<String> = base
        .pods
        .iter()
        .filter_map(|p| p.labels.get("app").cloned())
        .collect();
    let steps: Vec<(&str, ClusterState, Audit)> = vec![
        ("base", base.clone(), Audit::Annotated),
        (
            "five pods relabelled",
            changed(&base, |s| {
                for (i, p) in s.pods.iter_mut().take(5).enumerate() {
                    std::sync::Arc::make_mut(p).labels.insert(
                        "app".into(),
                        app_values[(i * 37) % app_values.len()].clone(),
                    );
                }
            }),
            Audit::Annotated,
        ),
        (
            "40 policies deleted",
            changed(&base, |s| {
                s.policies.drain(0..40);
            }),
            Audit::Annotated,
        ),
        ("policies back", base.clone(), Audit::Annotated),
        (
            "20 pods gone, a namespace relabelled",
            changed(&base, |s| {
                s.pods.drain(10..30);
                s.namespaces[3].labels.insert("team".into(), "moved".into());
            }),
            Audit::Annotated,
        ),
        ("audit mode", base.clone(), Audit::All),
        ("strict mode", base.clone(), Audit::Annotated),
        ("strict mode off", base.clone(), Audit::Annotated),
        ("another cluster", cluster(2), Audit::Annotated),
    ];
    let mut previous: Option<palisade_dataplane::Ruleset> = None;
    let mut update_text = String::new();
    for (what, state, audit) in steps {
        // Strict mode's base chain drops TCP packets that would start tracking in mid-stream.
        let enforcement = Enforcement {
            audit,
            strict: what == "strict mode",
            ..Enforcement::default()
        };
        let ruleset = build(
            &CompiledTable::of(&Engine::new(Arc::new(state)), enforcement),
            previous.as_ref(),
        );
        let strict_rule = "ct state new tcp flags & (fin | syn | rst | ack) != syn drop";
        assert_eq!(
            ruleset.script().contains(strict_rule),
            what == "strict mode"
        );
        let applied = match &previous {
            Some(old) => {
                let update = ruleset.update_from(old);
                update_text = update.to_string();
                update.apply(Some(&node_a.name))
            }
            None => ruleset.apply(Some(&node_a.name)),
        };
        applied.unwrap_or_else(|e| panic!("{what}: {e}"));
        apply(&ruleset.script(), Some(&node_b.name)).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (incremental, full) = (listing(&node_a.name), listing(&node_b.name));
        assert!(
            incremental == full,
            "{what}: the table sent over netlink differs from nft's reading of the script"
        );
        if what == "five pods relabelled" {
            assert!(
                update_text.len() < ruleset.script().len() / 10,
                "{what}: the update ({} bytes) is not much smaller than the table ({} bytes)",
                update_text.len(),
                ruleset.script().len()
            );
        }
        assert!(ruleset.update_from(&ruleset).is_empty());
        previous = Some(ruleset);
    }
}

/// Patches (the change from the classes that changed only, for an engine compiled from the previous
/// one) leave in the kernel exactly the ruleset they lead to, step after step: relabels, pods gone and
/// added, readdressed.
#[test]
fn patches_leave_the_table_they_lead_to() {
    let [node_a, node_b] = two_nodes("p");
    let base = cluster(3);
    let app = |i: usize| base.pods.as_slice()[(i * 53) % base.pods.len()].labels["app"].clone();
    let mut engine = Engine::new(Arc::new(base.clone()));
    let mut table = CompiledTable::of(&engine, Audit::Annotated);
    let mut ruleset = build(&table, None);
    ruleset.apply(Some(&node_a.name)).unwrap();
    for step in 0..6 {
        let state = changed(engine.state(), |s| {
            for (i, p) in s.pods.iter_mut().skip(step * 7).take(4).enumerate() {
                let p = Arc::make_mut(p);
                p.labels.insert("app".into(), app(step * 4 + i));
            }
            s.pods.remove(step * 11 + 1);
            let mut added = (*s.pods[step]).clone();
            added.name = format!("added-{step}");
            added.ip = Some(format!("10.250.0.{}", step + 1).parse().unwrap());
            s.pods.push(Arc::new(added));
        });
        let next = Engine::new_from(&engine, Arc::new(state));
        let next_table = CompiledTable::compile(&next, Some((&engine, &table)), Audit::Annotated);
        let patch = ruleset.patch(&table, &next_table).expect("patched");
        assert!(!patch.update().is_empty(), "step {step} changes the table");
        patch
            .update()
            .apply(Some(&node_a.name))
            .unwrap_or_else(|e| panic!("step {step}: {e}"));
        ruleset.absorb(patch);
        apply(&ruleset.script(), Some(&node_b.name)).unwrap();
        assert!(
            listing(&node_a.name) == listing(&node_b.name),
            "step {step}: the patched table differs from the ruleset it leads to"
        );
        (engine, table) = (next, next_table);
    }
}
