//! `palisade explain`.

use crate::exit;
use crate::input::{self, Inputs};
use palisade_analyze::explain::{explain_staged, resolve_endpoint, resolve_port, to_text, PortArg};
use palisade_policy::{enforced_engine, Engines, Flow};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `palisade explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,
    /// Source: ns/pod, ns/workload (its first pod) or an IP address.
    #[arg(long, value_name = "NS/POD|IP", required_unless_present = "record")]
    from: Option<String>,
    /// Destination: ns/pod, ns/workload (its first pod) or an IP address.
    #[arg(long, value_name = "NS/POD|IP", required_unless_present = "record")]
    to: Option<String>,
    /// Destination port and protocol: 6379, 6379/TCP, 53/UDP, or a named port of the destination pod
    /// (http/TCP).
    #[arg(long, value_name = "PORT[/PROTO]", required_unless_present = "record")]
    port: Option<PortArg>,
    /// Explain recorded flows instead: policy_action.log lines or `observe -o json` events, from
    /// a file or - (standard input); a denied flow gets its minimal fix.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["from", "to", "port"])]
    record: Option<PathBuf>,
    /// With --record: write each fix as a new manifest file in this directory.
    #[arg(long, value_name = "DIR", requires = "record")]
    apply_fix: Option<PathBuf>,
    /// Namespace for a --from/--to given without one.
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    namespace: String,
    /// Output format: text or json.
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = ["text", "json"])]
    output: String,
}

/// Runs the command: exit 0 if the flow is allowed, 1 if denied, 2 on invalid input.
pub fn run(args: Args, verbose: u8) -> u8 {
    let loaded = match input::load(&args.inputs, verbose) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if let Some(record) = &args.record {
        if record.as_os_str() == "-" && args.inputs.files.iter().any(|f| f.as_os_str() == "-") {
            return usage("--record - and -f - cannot both read standard input");
        }
        let options = crate::explain_record::Options {
            output: &args.output,
            apply_fix: args.apply_fix.as_deref(),
        };
        // Records are what the kernel enforced: explained and fixed against that (one compile:
        // the would-engine of staged policies is not needed).
        let engine = enforced_engine(loaded.state);
        return crate::explain_record::run(&engine, record, &options, loaded.rejected);
    }
    let (Some(from), Some(to), Some(port)) = (&args.from, &args.to, &args.port) else {
        return usage("--from, --to and --port are required without --record");
    };
    let state = &loaded.state;
    let protocol = port.protocol;
    let src = match resolve_endpoint(state, from, &args.namespace) {
        Ok(e) => e,
        Err(e) => return usage(&format!("--from {e}")),
    };
    let dst = match resolve_endpoint(state, to, &args.namespace) {
        Ok(e) => e,
        Err(e) => return usage(&format!("--to {e}")),
    };
    let port = match resolve_port(state, dst, port) {
        Ok(p) => p,
        Err(e) => return usage(&format!("--port {e}")),
    };
    let engines = Engines::new(Arc::new(loaded.state));
    let explanation = explain_staged(
        &engines,
        Flow {
            src,
            dst,
            port,
            protocol,
        },
    );
    if args.output == "json" {
        match serde_json::to_string_pretty(&explanation) {
            Ok(s) => println!("{s}"),
            Err(e) => return usage(&e.to_string()),
        }
    } else {
        print!("{}", to_text(&explanation));
    }
    if loaded.rejected {
        exit::INVALID
    } else if explanation.verdict.allowed {
        exit::OK
    } else {
        exit::FINDINGS
    }
}

fn usage(message: &str) -> u8 {
    eprintln!("error: {message}");
    exit::INVALID
}
