//! `palisade matrix`.

use crate::exit;
use crate::input::{self, Inputs, Namespaces};
use palisade_analyze::{default_probes, render, Format, Matrix, Probe};
use palisade_policy::enforced_engine;
use std::io::Write;
use std::time::Instant;

/// Arguments of `palisade matrix`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,
    /// Port and protocol to evaluate, e.g. 80/TCP or 53/UDP (repeatable). Default: every distinct
    /// container port of the selected pods.
    #[arg(long = "probe", value_name = "PORT/PROTO")]
    probes: Vec<Probe>,
    #[command(flatten)]
    scope: Namespaces,
    /// Output format: txt, json, csv, md or dot.
    #[arg(short = 'o', long = "output", default_value = "txt")]
    output: Format,
}

/// Runs the command; returns the exit code.
pub fn run(args: Args, verbose: u8) -> u8 {
    let (loaded, scope) = match input::load_scoped(&args.inputs, &args.scope, verbose) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let started = Instant::now();
    // The matrix answers what is enforced: staged policies are left out.
    let engine = enforced_engine(loaded.state);
    tracing::info!(
        classes = engine.class_count(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "policies compiled"
    );
    let pods = Matrix::pods_in(&engine, &scope);
    let probes = if args.probes.is_empty() {
        default_probes(engine.state(), &pods)
    } else {
        args.probes
    };
    let started = Instant::now();
    let matrix = Matrix::compute(&engine, pods, &probes);
    tracing::info!(
        probes = probes.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "reachability computed"
    );
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout);
    let written = render::write(&matrix, args.output, &mut out).and_then(|_| out.flush());
    if !crate::output_written(written) {
        return exit::INVALID;
    }
    if loaded.rejected {
        exit::INVALID
    } else {
        exit::OK
    }
}
