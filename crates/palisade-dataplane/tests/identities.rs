//! What is named in the kernel survives unrelated changes: a rule is identified by its policy's
//! kind, namespace and name and its index, never by the policy's position in a list, so adding a
//! policy (even in a namespace that sorts first) changes no existing chain, and editing one changes
//! only the chains of the classes it selects.

use palisade_dataplane::{build, Ruleset, UpdateSize};
use palisade_model::ClusterState;
use palisade_policy::{Audit, CompiledTable, Engine};
use palisade_synth::{generate, SynthConfig, SynthFile};
use std::sync::Arc;

/// The synthetic cluster, with `extra` manifests loaded after it.
fn cluster(extra: &str) -> ClusterState {
    let mut synth = generate(&SynthConfig {
        namespaces: 12,
        pods_per_ns: 8,
        policies: 60,
        seed: 7,
    });
    synth.files.push(SynthFile {
        name: "extra.yaml".into(),
        contents: extra.into(),
    });
    let (state, diagnostics) = synth.load();
    assert!(
        diagnostics.iter().all(|d| !d.is_error()),
        "{diagnostics:#?}"
    );
    state
}

fn ruleset(state: ClusterState, previous: Option<&Ruleset>) -> Ruleset {
    build(
        &CompiledTable::of(&Engine::new(Arc::new(state)), Audit::Annotated),
        previous,
    )
}

/// What going from `before` to the ruleset of `after` touches.
fn update(before: &Ruleset, after: ClusterState) -> UpdateSize {
    ruleset(after, Some(before)).update_from(before).size()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: first, namespace: aaa, labels: {app: first}}\nspec: {containers: [{name: c, image: x, ports: [{containerPort: 80}]}]}\nstatus: {podIP: 10.250.0.1}\n---\n";

fn policy(name: &str, selector: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: aaa}}\nspec:\n  podSelector: {{matchLabels: {selector}}}\n  ingress: [{{from: [{{podSelector: {{}}}}], ports: [{{port: {port}}}]}}]\n---\n"
    )
}

#[test]
fn a_policy_added_before_all_others_changes_no_existing_chain() {
    let before = ruleset(cluster(POD), None);
    // Selecting nothing: nothing at all changes.
    let nothing = update(
        &before,
        cluster(&(POD.to_string() + &policy("a", "{app: none}", 80))),
    );
    assert_eq!(nothing, UpdateSize::default(), "{nothing}");
    // Selecting the one pod of its namespace: that pod's class gets a chain; nothing else moves.
    let one = update(
        &before,
        cluster(&(POD.to_string() + &policy("a", "{app: first}", 80))),
    );
    assert_eq!(one.old_chains, 0, "{one}");
    assert_eq!(one.old_sets, 0, "{one}");
    assert_eq!(one.new_chains, 1, "{one}");
    assert_eq!(
        one.jumps_edited, 1,
        "the first pod's address now jumps to its chain: {one}"
    );
    assert_eq!(one.edited_sets, 0, "{one}");
}

#[test]
fn a_policy_edit_changes_only_the_chains_of_what_it_selects() {
    let before = ruleset(
        cluster(&(POD.to_string() + &policy("a", "{app: first}", 80))),
        None,
    );
    let edited = update(
        &before,
        cluster(&(POD.to_string() + &policy("a", "{app: first}", 81))),
    );
    assert_eq!((edited.new_chains, edited.old_chains), (1, 1), "{edited}");
    assert_eq!(edited.jumps_edited, 2, "one address re-pointed: {edited}");
    assert_eq!((edited.new_sets, edited.old_sets), (0, 0), "{edited}");
}
