//! `palisade gen`.

use crate::exit;
use palisade_synth::{generate, SynthConfig};
use std::path::PathBuf;

/// Arguments of `palisade gen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of namespaces (one of them is kube-system).
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// Pods per namespace (expressed as workload replicas).
    #[arg(long = "pods-per-ns", default_value_t = 20)]
    pods_per_ns: usize,
    /// Number of NetworkPolicies.
    #[arg(long, default_value_t = 200)]
    policies: usize,
    /// Random seed: the same seed gives byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs the command.
pub fn run(args: Args) -> u8 {
    let cluster = generate(&SynthConfig {
        namespaces: args.namespaces,
        pods_per_ns: args.pods_per_ns,
        policies: args.policies,
        seed: args.seed,
    });
    if let Err(e) = cluster.write_to(&args.out) {
        eprintln!("error: writing {}: {e}", args.out.display());
        return exit::INVALID;
    }
    let s = &cluster.summary;
    println!(
        "wrote {} files to {}: {} namespaces, {} workloads, {} pods, {} services, {} policies",
        cluster.files.len(),
        args.out.display(),
        s.namespaces,
        s.workloads,
        s.pods,
        s.services,
        s.policies
    );
    exit::OK
}
