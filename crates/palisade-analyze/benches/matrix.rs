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
}

criterion_group!(benches, bench);
criterion_main!(benches);
