//! Matrix benchmarks on synthetic clusters: load, compile, one-probe reachability, and the full
//! rendered JSON matrix. Run: `cargo bench -p palisade-analyze --bench matrix`.

/// The allocator of the `palisade` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use palisade_analyze::{render, Format, Matrix, Probe, Scope};
use palisade_model::{ClusterState, Loader, Protocol};
use palisade_policy::Engine;
use palisade_synth::{generate, SynthConfig};
use std::sync::Arc;

fn cluster(
    namespaces: usize,
    pods_per_ns: usize,
    policies: usize,
) -> (Vec<(String, String)>, ClusterState) {
    let synth = generate(&SynthConfig {
        namespaces,
        pods_per_ns,
        policies,
        seed: 1,
    });
    let files: Vec<(String, String)> = synth
        .files
        .iter()
        .map(|f| (f.name.clone(), f.contents.clone()))
        .collect();
    let mut loader = Loader::new();
    for (name, text) in &files {
        loader.load_str(name, text);
    }
    let (state, diags) = loader.finish();
    assert!(
        diags.iter().all(|d| !d.is_error()),
        "synthetic cluster must be valid"
    );
    (files, state)
}

/// Cluster-wide policies an administrator of the synthetic cluster might write: the metadata
/// server and other teams' production denied, monitoring and DNS passed or accepted, PCI
/// namespaces fenced, and a Baseline default deny between namespaces. 13 policies, 31 rules, each
/// selecting hundreds of namespaces.
fn admin_policies() -> String {
    let cnp = |name: &str, tier: &str, priority: u32, subject: &str, rules: &str| {
        format!(
            "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\n\
             spec: {{tier: {tier}, priority: {priority}, subject: {subject}, {rules}}}\n"
        )
    };
    let all = "{namespaces: {}}";
    let mut out = cnp(
        "deny-metadata",
        "Admin",
        1,
        all,
        "egress: [{name: imds, action: Deny, to: [{networks: [169.254.169.254/32, fd00:ec2::254/128]}]}]",
    );
    out += &cnp(
        "dns",
        "Admin",
        2,
        all,
        "egress: [{name: dns, action: Accept, to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}], protocols: [{udp: {destinationPort: {number: 53}}}, {tcp: {destinationPort: {number: 53}}}]}]",
    );
    out += &cnp(
        "monitoring",
        "Admin",
        3,
        all,
        "ingress: [{name: scrape, action: Pass, from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}], protocols: [{tcp: {destinationPort: {range: {start: 9090, end: 9200}}}}]}]",
    );
    for (i, team) in [
        "payments", "shop", "search", "data", "platform", "ml", "identity", "media",
    ]
    .iter()
    .enumerate()
    {
        out += &cnp(
            &format!("fence-{team}"),
            "Admin",
            10 + i as u32,
            &format!("{{namespaces: {{matchLabels: {{team: {team}, env: prod}}}}}}"),
            &format!(
                "ingress: [{{name: same-team, action: Pass, from: [{{namespaces: {{matchLabels: {{team: {team}}}}}}}]}}, \
                 {{name: ingress, action: Pass, from: [{{namespaces: {{matchLabels: {{kubernetes.io/metadata.name: ingress-nginx}}}}}}]}}, \
                 {{name: others, action: Deny, from: [{{namespaces: {{matchExpressions: [{{key: env, operator: In, values: [dev, staging]}}]}}}}]}}]"
            ),
        );
    }
    out += &cnp(
        "pci",
        "Admin",
        50,
        "{namespaces: {matchLabels: {compliance: pci}}}",
        "egress: [{name: pci-only, action: Pass, to: [{namespaces: {matchLabels: {compliance: pci}}}]}, {name: outside, action: Deny, to: [{networks: [0.0.0.0/0]}]}]",
    );
    out += &cnp(
        "baseline-deny",
        "Baseline",
        100,
        all,
        "ingress: [{name: same-namespace, action: Pass, from: [{pods: {namespaceSelector: {matchLabels: {role: shared}}, podSelector: {}}}]}, {name: default-deny, action: Deny, from: [{namespaces: {matchExpressions: [{key: role, operator: In, values: [tenant]}]}}]}]",
    );
    out
}

fn bench(c: &mut Criterion) {
    let probe = Probe {
        port: 80,
        protocol: Protocol::Tcp,
    };
    for (label, ns, per_ns, policies) in [
        ("1k-pods-500-policies", 50, 20, 500),
        ("10k-pods-2k-policies", 500, 20, 2000),
    ] {
        let (files, state) = cluster(ns, per_ns, policies);
        let state = Arc::new(state);
        let mut group = c.benchmark_group(label);
        group.sample_size(10);
        group.bench_function("load", |b| {
            b.iter(|| {
                let mut loader = Loader::new();
                for (name, text) in &files {
                    loader.load_str(name, text);
                }
                loader.finish()
            })
        });
        group.bench_function("compile", |b| b.iter(|| Engine::new(state.clone())));
        let engine = Engine::new(state.clone());
        group.bench_function("reach-one-probe", |b| {
            b.iter(|| engine.reach(probe.port, probe.protocol))
        });
        group.bench_function("matrix-json-one-probe", |b| {
            b.iter(|| {
                let pods = Matrix::pods_in(&engine, &Scope::All);
                let matrix = Matrix::compute(&engine, pods, &[probe]);
                render::write(&matrix, Format::Json, &mut std::io::sink()).unwrap();
            })
        });
        group.finish();
    }
    // The same 10,000 pods with the cluster-wide policies: their compile, reach and the rules of
    // every class for the kernel (the chains flattened), against the same without them.
    let (mut files, plain) = cluster(500, 20, 2000);
    files.push(("admin.yaml".into(), admin_policies()));
    let mut loader = Loader::new();
    for (name, text) in &files {
        loader.load_str(name, text);
    }
    let (tiered, diags) = loader.finish();
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
    assert_eq!(tiered.tier_policies.len(), 13);
    let mut group = c.benchmark_group("10k-pods-2k-policies-tiers");
    group.sample_size(10);
    for (label, state) in [("without", Arc::new(plain)), ("with", Arc::new(tiered))] {
        group.bench_function(format!("compile-{label}"), |b| {
            b.iter(|| Engine::new(state.clone()))
        });
        let engine = Engine::new(state.clone());
        group.bench_function(format!("reach-one-probe-{label}"), |b| {
            b.iter(|| engine.reach(probe.port, probe.protocol))
        });
        group.bench_function(format!("class-rules-{label}"), |b| {
            b.iter(|| engine.compile_classes(None))
        });
        let rules = engine.compile_classes(None);
        group.bench_function(format!("flatten-{label}"), |b| {
            b.iter(|| {
                let mut cache = palisade_policy::AddrCache::default();
                let mut entries = 0;
                for class in rules.iter() {
                    for direction in [&class.ingress, &class.egress].into_iter().flatten() {
                        entries += direction.flatten(&mut cache).entries.len();
                    }
                }
                entries
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
