//! The generated clusters load through Palisade's own loader without a single diagnostic, and the
//! loader's expansion of workload templates gives exactly the requested number of pods.

use palisade_synth::{generate, SynthConfig};

fn load(config: SynthConfig) {
    let cluster = generate(&config);
    let (state, diagnostics) = cluster.load();
    let shown: Vec<String> = diagnostics
        .iter()
        .take(10)
        .map(|d| format!("{}: {:?} {:?}: {}", d.origin, d.object, d.field, d.message))
        .collect();
    assert!(diagnostics.is_empty(), "{config:?}: {shown:#?}");
    assert_eq!(state.namespaces.len(), config.namespaces);
    assert_eq!(state.pods.len(), config.namespaces * config.pods_per_ns);
    assert_eq!(state.services.len(), cluster.summary.services);
    assert_eq!(state.policies.len(), cluster.summary.policies);
    // Every generated pod got an address inside the default pod CIDR, which the policies' ipBlocks
    // (10.244.0.0/16 except some /24) are written against.
    let pod_cidr: ipnet::IpNet = palisade_model::DEFAULT_POD_CIDR.parse().unwrap();
    assert!(state
        .pods
        .iter()
        .all(|p| p.ip.is_some_and(|ip| pod_cidr.contains(&ip))));
}

#[test]
fn small_and_edge_clusters_load_cleanly() {
    for (namespaces, pods_per_ns, policies) in
        [(1, 1, 0), (1, 4, 9), (3, 2, 5), (6, 3, 40), (20, 10, 200)]
    {
        load(SynthConfig {
            namespaces,
            pods_per_ns,
            policies,
            seed: 42,
        });
    }
}

#[test]
fn the_benchmark_cluster_loads_cleanly() {
    load(SynthConfig::BENCHMARK);
}
