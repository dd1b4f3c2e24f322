//! `palisade observe`: verdict events live from an agent, or records from `policy_action.log` files;
//! with `--flows`, flow records, live or from flow log files.

use crate::exit;
use palisade_agent::flow_log::record::FlowRecord;
use palisade_agent::observe::file::{Line, Tail};
use palisade_agent::observe::format::align;
use palisade_agent::observe::{self, Filter, Observable, PodPattern, Request, VerdictFilter};
use palisade_agent::record::Record;
use palisade_model::Protocol;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Output formats of `observe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// One line per flow.
    Compact,
    /// The records as JSON lines (as their log writes them).
    Json,
    /// Aligned columns.
    Table,
}

/// Arguments of `palisade observe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The agent's observe socket.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["lab", "file"])]
    socket: Option<PathBuf>,
    /// Observe the agent of this lab.
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    lab: Option<String>,
    /// Read records from policy action log files (flow log files with --flows) instead of a
    /// running agent (repeatable: rotated files too).
    #[arg(long, value_name = "PATH")]
    file: Vec<PathBuf>,
    /// Flow records (the traffic of each connection per interval, from the flow log) instead of
    /// verdicts.
    #[arg(long)]
    flows: bool,
    /// Flows from these pods: [namespace/]name-prefix (namespace default when omitted).
    #[arg(long, value_name = "POD")]
    from_pod: Vec<PodPattern>,
    /// Flows to these pods.
    #[arg(long, value_name = "POD")]
    to_pod: Vec<PodPattern>,
    /// Flows from or to these pods.
    #[arg(long, value_name = "POD")]
    pod: Vec<PodPattern>,
    /// Flows with an end in these namespaces.
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Vec<String>,
    /// Flows with this verdict: allowed, denied (including audited), audit; with --flows, a
    /// record's disposition (denied: policies deny it now).
    #[arg(long, value_name = "VERDICT")]
    verdict: Vec<VerdictFilter>,
    /// Flows with this source or destination port (1-65535).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    port: Vec<u16>,
    /// Flows of this protocol: tcp, udp, sctp, icmp.
    #[arg(long, value_name = "PROTO")]
    protocol: Vec<Protocol>,
    /// Keep printing new flows as they happen.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Start with the last N matching flows (default: 20 from an agent, every record of --file
    /// files; 0 with --follow).
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "compact")]
    output: Output,
}

/// Prints records in the chosen format; the table is aligned over what it has seen so far.
struct Printer {
    output: Output,
    header: &'static [&'static str],
    widths: Vec<usize>,
    header_done: bool,
}

impl Printer {
    fn new<T: Observable>(output: Output) -> Self {
        Printer {
            output,
            header: T::HEADER,
            widths: T::HEADER.iter().map(|h| h.len()).collect(),
            header_done: false,
        }
    }

    fn print<T: Observable>(&mut self, records: &[T]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.output {
            Output::Json => {
                for r in records {
                    out.write_all(r.to_line().as_bytes())?;
                }
            }
            Output::Compact => {
                for r in records {
                    writeln!(out, "{}", r.compact())?;
                }
            }
            Output::Table => {
                let rows: Vec<Vec<String>> = records.iter().map(T::row).collect();
                for row in &rows {
                    for (w, cell) in self.widths.iter_mut().zip(row) {
                        *w = (*w).max(cell.len());
                    }
                }
                if !self.header_done {
                    let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
                    writeln!(out, "{}", align(&header, &self.widths))?;
                    self.header_done = true;
                }
                for row in &rows {
                    writeln!(out, "{}", align(row, &self.widths))?;
                }
            }
        }
        out.flush()
    }
}

/// Runs `observe`. Exit 2 when the agent or a file cannot be read.
pub fn run(args: Args) -> u8 {
    if args.flows && args.verdict.contains(&VerdictFilter::Audit) {
        eprintln!(
            "error: --verdict audit: a flow record does not tell whether audit mode let it \
             through; use --verdict denied (traffic the policies deny now)"
        );
        return exit::INVALID;
    }
    let result = if args.flows {
        observe::<FlowRecord>(&args)
    } else {
        observe::<Record>(&args)
    };
    match result {
        Ok(()) => exit::OK,
        // The reader went away (e.g. `| head`): not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::INVALID
        }
    }
}

fn observe<T: Observable>(args: &Args) -> std::io::Result<()> {
    let filter = Filter {
        from_pods: args.from_pod.clone(),
        to_pods: args.to_pod.clone(),
        pods: args.pod.clone(),
        namespaces: args.namespace.clone(),
        verdicts: args.verdict.clone(),
        ports: args.port.clone(),
        protocols: args.protocol.clone(),
    };
    let last = args.last.unwrap_or(if args.follow { 0 } else { 20 });
    let mut printer = Printer::new::<T>(args.output);
    if args.file.is_empty() {
        live::<T>(args, filter, last, &mut printer)
    } else {
        files::<T>(args, &filter, last, &mut printer)
    }
}

fn live<T: Observable>(
    args: &Args,
    filter: Filter,
    last: usize,
    printer: &mut Printer,
) -> std::io::Result<()> {
    let socket = match (&args.socket, &args.lab) {
        (Some(path), _) => path.clone(),
        (None, Some(lab)) => palisade_lab::observe_socket(lab),
        (None, None) => observe::DEFAULT_SOCKET.into(),
    };
    let request = Request {
        filter,
        last: Some(last),
        follow: args.follow,
        flows: args.flows,
    };
    for record in observe::hub::connect::<T>(&socket, &request)? {
        printer.print(&[record?])?;
    }
    Ok(())
}

fn report<T>(lines: Vec<Line<T>>) -> Vec<T> {
    lines
        .into_iter()
        .filter_map(|l| l.map_err(|e| eprintln!("warning: {e}")).ok())
        .collect()
}

fn files<T: Observable>(
    args: &Args,
    filter: &Filter,
    last: usize,
    printer: &mut Printer,
) -> std::io::Result<()> {
    let mut tails = Vec::new();
    let mut records = Vec::new();
    for path in &args.file {
        let mut tail = Tail::open(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        // Only the records that pass are kept, file by file.
        let mut read = report(tail.read_new::<T>()?);
        read.retain(|r| filter.matches(r));
        records.extend(read);
        tails.push(tail);
    }
    // Several files (e.g. rotated ones) interleave by time.
    records.sort_by_key(|r| r.time());
    let skip = if args.follow || args.last.is_some() {
        records.len().saturating_sub(last)
    } else {
        0 // without --follow or --last, a file is printed whole
    };
    printer.print(&records[skip..])?;
    if !args.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for tail in &mut tails {
            let mut new = report(tail.read_new::<T>()?);
            new.retain(|r| filter.matches(r));
            printer.print(&new)?;
        }
    }
}
