//! The inputs that once made `diff` and `lint` run for tens of seconds (the review of issue 13),
//! timed as the commands run them, three runs each, one line per run; inputs are built in memory:
//! `cargo bench -p palisade-analyze --bench bounds [WHICH]`, WHICH one of `diff`, `diff-rules`,
//! `diff-peers`, `fix`, `lint [PODS POLICIES]` (all by default).
//!
//! - `diff`: the 10,000-pod synthetic cluster, and after it the same with one policy added whose
//!   one rule lists 2,000 single ports; `diff-rules`: the same ports in 2,000 rules with the same
//!   peers; `diff-peers`: in 2,000 rules each with peers of its own (2,000 port classes: past the
//!   work bound, refused).
//! - `fix`: `explain --record`'s fix (`fix::propose`: the new policies, and what else they allow,
//!   by `diff`) for a denied flow of the 10,000-pod synthetic cluster — the first pod to a
//!   container port of a pod halfway through the cluster.
//! - `lint [PODS POLICIES]`: 2,000 pods of distinct labels in one namespace and 250 policies
//!   selecting them all, each allowing ingress on port 80 from every pod but one of its own
//!   (crafted so that every policy is a redundancy candidate at every class, against all the
//!   others).

/// The allocator of the `palisade` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use palisade_analyze::diff::diff;
use palisade_analyze::fix::propose;
use palisade_analyze::lint::{lint, Input};
use palisade_analyze::Scope;
use palisade_model::PodId;
use palisade_model::{ClusterState, Loader};
use palisade_policy::{enforced_engine, Endpoint, Engine, Engines, Flow};
use palisade_synth::{generate, SynthConfig};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

const RUNS: usize = 3;

fn load(files: &[(String, String)]) -> ClusterState {
    let mut loader = Loader::new();
    for (name, text) in files {
        loader.load_str(name, text);
    }
    let (state, diags) = loader.finish();
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "the input must be valid: {errors:#?}");
    state
}

/// How the 2,000 ports are written.
#[derive(Clone, Copy, PartialEq)]
enum Ports {
    OneRule,
    RuleEach,
    RuleEachOwnPeers,
}

/// `diff` of the benchmark cluster and the same with 2,000 single ports allowed, written `how`.
fn diff_bench(how: Ports) {
    let synth = generate(&SynthConfig::BENCHMARK);
    let files: Vec<(String, String)> = (synth.files.iter())
        .map(|f| (f.name.clone(), f.contents.clone()))
        .collect();
    let before = load(&files);
    let namespace = (before.pods.iter().nth(before.pods.len() / 2))
        .expect("the cluster has pods")
        .namespace
        .clone();
    let port = |i: usize| format!("{{port: {}}}", 20_000 + 2 * i);
    let rules: Vec<String> = match how {
        Ports::OneRule => {
            let ports: Vec<String> = (0..2000).map(port).collect();
            vec![ports.join(", ")]
        }
        Ports::RuleEach | Ports::RuleEachOwnPeers => (0..2000).map(port).collect(),
    };
    let rules: Vec<String> = (rules.iter().enumerate())
        .map(|(i, ports)| match how {
            Ports::RuleEachOwnPeers => {
                format!("{{from: [{{podSelector: {{matchLabels: {{rule: r{i}}}}}}}], ports: [{ports}]}}")
            }
            _ => format!("{{from: [{{namespaceSelector: {{}}}}], ports: [{ports}]}}"),
        })
        .collect();
    let wide = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: wide-ports, namespace: {namespace}}}\n\
         spec: {{podSelector: {{}}, ingress: [{}]}}\n",
        rules.join(", ")
    );
    let mut after_files = files.clone();
    after_files.push(("wide-ports.yaml".into(), wide));
    let after = load(&after_files);
    let [before, after] = [before, after].map(|s| Engine::new(Arc::new(s)));
    println!(
        "diff: {} pods, {} + 1 policies (2,000 single ports in {} in {namespace})",
        before.state().pods.len(),
        before.state().policies.len(),
        match how {
            Ports::OneRule => "one rule",
            Ports::RuleEach => "a rule each, the same peers",
            Ports::RuleEachOwnPeers => "a rule each, peers of its own",
        }
    );
    for run in 1..=RUNS {
        let started = Instant::now();
        let result = diff(&before, &after, &Scope::All);
        let elapsed = started.elapsed();
        let what = match &result {
            Ok(r) => format!("{} groups", r.groups.len()),
            Err(e) => format!("error: {e}"),
        };
        println!("  run {run}: {:.3} s, {what}", elapsed.as_secs_f64());
    }
}

/// A denied flow of `engine`'s cluster: from its first pod to a declared port of a pod at or
/// after its middle.
fn denied_flow(engine: &Engine) -> Flow {
    let pods = &engine.state().pods;
    (pods.len() / 2..pods.len())
        .flat_map(|dst| pods[PodId::new(dst)].ports.iter().map(move |p| (dst, p)))
        .map(|(dst, p)| Flow {
            src: Endpoint::Pod(PodId::new(0)),
            dst: Endpoint::Pod(PodId::new(dst)),
            port: p.port,
            protocol: p.protocol,
        })
        .find(|flow| !engine.verdict(flow).allowed)
        .expect("the benchmark cluster denies some flow")
}

fn fix_bench() {
    let synth = generate(&SynthConfig::BENCHMARK);
    let files: Vec<(String, String)> = (synth.files.iter())
        .map(|f| (f.name.clone(), f.contents.clone()))
        .collect();
    let engine = enforced_engine(load(&files));
    let flow = denied_flow(&engine);
    let pod = |e: Endpoint| match e {
        Endpoint::Pod(id) => engine.state().pods[id].key().to_string(),
        other => format!("{other:?}"),
    };
    println!(
        "fix: {} pods, {} policies; {} -> {} {:?} {}",
        engine.state().pods.len(),
        engine.state().policies.len(),
        pod(flow.src),
        pod(flow.dst),
        flow.protocol,
        flow.port
    );
    for run in 1..=RUNS {
        let started = Instant::now();
        let fix = propose(&engine, &flow);
        let elapsed = started.elapsed();
        let what = match &fix {
            Ok(Some(fix)) => format!(
                "{} policies, {} groups added, exact: {}",
                fix.policies.len(),
                fix.report.groups.len(),
                fix.exact
            ),
            Ok(None) => "allowed already".into(),
            Err(e) => format!("error: {e}"),
        };
        println!("  run {run}: {:.3} s, {what}", elapsed.as_secs_f64());
    }
}

fn lint_bench(pod_count: usize, policy_count: usize) {
    let mut pods = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: lab}\n");
    for i in 0..pod_count {
        let _ = write!(
            pods,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: lab, labels: {{app: p{i}}}}}\n\
             spec: {{containers: [{{name: c, image: c, ports: [{{containerPort: 80}}]}}]}}\n"
        );
    }
    let mut policies = String::new();
    for i in 0..policy_count {
        let _ = write!(
            policies,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: all-but-{i}, namespace: lab}}\n\
             spec: {{podSelector: {{}}, ingress: [{{from: [{{podSelector: {{matchExpressions: [{{key: app, operator: NotIn, values: [p{i}]}}]}}}}], ports: [{{port: 80}}]}}]}}\n"
        );
    }
    let state = load(&[
        ("pods.yaml".into(), pods),
        ("policies.yaml".into(), policies),
    ]);
    println!(
        "lint: {} pods of distinct labels, {} policies",
        state.pods.len(),
        state.policies.len()
    );
    let engines = Engines::new(Arc::new(state));
    for run in 1..=RUNS {
        let started = Instant::now();
        let report = lint(&engines, &[], &[], Input::Manifests);
        let elapsed = started.elapsed();
        let notices: Vec<&str> = (report.findings.iter())
            .filter(|f| f.message.contains("stopped"))
            .map(|f| f.message.as_str())
            .collect();
        println!(
            "  run {run}: {:.3} s, {} findings {notices:?}",
            elapsed.as_secs_f64(),
            report.findings.len()
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a word names the one scenario to run, and `lint` may be
    // followed by its pod and policy counts (smaller inputs, to see how the time grows).
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| words.is_empty() || words.iter().any(|w| w == name);
    if wants("diff") {
        diff_bench(Ports::OneRule);
    }
    if wants("diff-rules") {
        diff_bench(Ports::RuleEach);
    }
    if wants("diff-peers") {
        diff_bench(Ports::RuleEachOwnPeers);
    }
    if wants("fix") {
        fix_bench();
    }
    if wants("lint") {
        let sizes: Vec<usize> = words.iter().filter_map(|w| w.parse().ok()).collect();
        match sizes[..] {
            [pods, policies] => lint_bench(pods, policies),
            _ => lint_bench(2000, 250),
        }
    }
}
