//! `palisade matrix`, and with `--observed`, the pairs the recorded flows used.

use crate::exit;
use crate::input::{self, Inputs, Namespaces};
use palisade_agent::flow_log::record::FlowRecord;
use palisade_agent::observe::file;
use palisade_agent::record::Peer;
use palisade_analyze::observed::{self, Pair, Summary, Usage, Use};
use palisade_analyze::{default_probes, render, Format, Matrix, Probe};
use palisade_policy::enforced_engine;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Bad lines of `--observed` files shown; the rest are only counted.
const BAD_LINES_SHOWN: u64 = 10;

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
    /// Flow log files (`agent --flow-log`, rotated ones too): mark the pairs their flows used,
    /// so that allowed pairs never used stand out. Without --probe, the ports they used are
    /// probed too.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    observed: Vec<PathBuf>,
}

/// The flows of `paths` between pods, summed by pair, port and protocol, and what was read.
/// Lines that are not flow records are said with their file:line, counted, and skipped.
fn read_observed(paths: &[PathBuf]) -> Result<(BTreeMap<Pair, Use>, Summary), String> {
    let mut flows: BTreeMap<Pair, Use> = BTreeMap::new();
    let mut summary = Summary::default();
    for path in paths {
        let read = file::read_all::<FlowRecord>(path, |line| match line {
            Ok(record) => {
                summary.records += 1;
                let pod = |p: &Peer| match p {
                    Peer::Pod {
                        namespace,
                        pod_name,
                        ..
                    } => Some(format!("{namespace}/{pod_name}")),
                    _ => None,
                };
                let (Some(src), Some(dest)) = (pod(&record.src), pod(&record.dest)) else {
                    summary.not_between_pods += 1;
                    return;
                };
                let probe = Probe {
                    port: record.connection.dest_port,
                    protocol: record.connection.protocol,
                };
                let used = Use {
                    records: 1,
                    connections: if record.started {
                        record.connections
                    } else {
                        0
                    },
                    bytes: record.bytes(),
                };
                flows
                    .entry(Pair { src, dest, probe })
                    .or_default()
                    .add(used);
            }
            Err(e) => {
                summary.skipped_lines += 1;
                if summary.skipped_lines <= BAD_LINES_SHOWN {
                    eprintln!("warning: {e}");
                }
            }
        });
        read.map_err(|e| format!("--observed {}: {e}", path.display()))?;
    }
    if summary.skipped_lines > 0 {
        eprintln!(
            "warning: {} lines of --observed files are not flow records and were skipped",
            summary.skipped_lines
        );
    }
    Ok((flows, summary))
}

/// Runs the command; returns the exit code.
pub fn run(args: Args, verbose: u8) -> u8 {
    let (flows, summary) = match read_observed(&args.observed) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
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
        let names: HashSet<String> = (pods.iter())
            .map(|&p| engine.state().pods[p].key().to_string())
            .collect();
        observed::with_observed(default_probes(engine.state(), &pods), &flows, &names)
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
    let written = if args.observed.is_empty() {
        render::write(&matrix, args.output, &mut out)
    } else {
        let usage = Usage::mark(&matrix, &flows, summary);
        // txt, md and json carry the summary; csv and dot have no place for it.
        if matches!(args.output, Format::Csv | Format::Dot) {
            for line in usage.summary.lines("note: ") {
                eprintln!("{line}");
            }
        }
        render::write_observed(&matrix, &usage, args.output, &mut out)
    };
    let written = written.and_then(|_| out.flush());
    if !crate::output_written(written) {
        return exit::INVALID;
    }
    if loaded.rejected {
        exit::INVALID
    } else {
        exit::OK
    }
}
