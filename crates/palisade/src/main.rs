//! The `palisade` command line: argument parsing and output only; the logic lives in the library
//! crates.

mod agent;
mod diff;
mod explain;
mod explain_record;
mod input;
mod lab;
mod lint;
mod matrix;
mod observe;
mod report;
mod status;
mod synth;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: loading, compiling and rendering allocate heavily, and
/// it makes them about 20 % faster at 10,000 pods (measured; see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// Exit codes scripts can trust.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The command reports findings (e.g. `explain`: the flow is denied).
    pub const FINDINGS: u8 = 1;
    /// Invalid input (some objects were rejected) or usage error.
    pub const INVALID: u8 = 2;
    /// No answer: computing it would exceed a documented work bound (`diff`); the input is fine.
    pub const TOO_LARGE: u8 = 3;
}

/// Whether the output was written: a reader that went away (`| head`) is no error; any other
/// failure is said.
fn output_written(result: std::io::Result<()>) -> bool {
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: writing output: {e}");
            false
        }
        _ => true,
    }
}

/// Prints `text` (trailing blank space trimmed) and a newline; whether it was written.
fn print_text(text: &str) -> bool {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    output_written(writeln!(stdout, "{}", text.trim_end()).and_then(|_| stdout.flush()))
}

/// Palisade: Kubernetes NetworkPolicy enforced faithfully, logged, and easy to debug.
#[derive(Parser)]
#[command(name = "palisade", version, about, propagate_version = true)]
struct Cli {
    /// More output: -v shows skipped objects and timings, -vv debug logs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connectivity matrix of every pod pair, computed from manifests or a live cluster.
    Matrix(matrix::Args),
    /// Why is a connection allowed or denied? Both directions, every policy and rule.
    Explain(explain::Args),
    /// Known NetworkPolicy mistakes, each with its object, file:line, field and fix (txt, json, SARIF).
    Lint(lint::Args),
    /// The connectivity a change adds and removes, by workload, with ports and the policies
    /// deciding (txt, json, md); exit 1 when it changed, like diff(1).
    Diff(diff::Args),
    /// One self-contained HTML page: the connectivity heatmap by workload, a graph, the lint
    /// findings, and why for any cell on click.
    Report(report::Args),
    /// Enforce a manifests folder or a cluster in the kernel (nftables), re-applying on every change.
    Agent(Box<agent::Args>),
    /// Is NetworkPolicy enforced on every node, and is each policy in force? (a cluster, or a lab)
    Status(status::Args),
    /// Verdict events live from a running agent, or from policy action log files, filtered.
    Observe(observe::Args),
    /// Pods as network namespaces on this machine, with the agent enforcing (root only).
    Lab(lab::Args),
    /// Write a synthetic cluster (namespaces, workloads, services, policies) for benchmarks.
    Gen(synth::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = match cli.command {
        Command::Matrix(args) => matrix::run(args, cli.verbose),
        Command::Explain(args) => explain::run(args, cli.verbose),
        Command::Lint(args) => lint::run(args, cli.verbose),
        Command::Diff(args) => diff::run(args, cli.verbose),
        Command::Report(args) => report::run(args, cli.verbose),
        Command::Gen(args) => synth::run(args),
        Command::Agent(args) => agent::run(*args),
        Command::Status(args) => status::run(args, cli.verbose),
        Command::Observe(args) => observe::run(args),
        Command::Lab(args) => lab::run(args, cli.verbose),
    };
    ExitCode::from(code)
}
