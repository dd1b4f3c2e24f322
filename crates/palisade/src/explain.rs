//! `palisade explain`.

use crate::exit;
use crate::input::{self, Inputs};
use palisade_analyze::explain::{explain, resolve_endpoint, resolve_port, to_text, PortArg};
use palisade_policy::{Engine, Flow};
use std::sync::Arc;

/// Arguments of `palisade explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,
    /// Source: ns/pod, ns/workload (its first pod) or an IP address.
    #[arg(long, value_name = "NS/POD|IP")]
    from: String,
    /// Destination: ns/pod, ns/workload (its first pod) or an IP address.
    #[arg(long, value_name = "NS/POD|IP")]
    to: String,
    /// Destination port and protocol: 6379, 6379/TCP, 53/UDP, or a named port of the destination pod
    /// (http/TCP).
    #[arg(long, value_name = "PORT[/PROTO]")]
    port: PortArg,
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
    let state = &loaded.state;
    let protocol = args.port.protocol;
    let src = match resolve_endpoint(state, &args.from, &args.namespace) {
        Ok(e) => e,
        Err(e) => return usage(&format!("--from {e}")),
    };
    let dst = match resolve_endpoint(state, &args.to, &args.namespace) {
        Ok(e) => e,
        Err(e) => return usage(&format!("--to {e}")),
    };
    let port = match resolve_port(state, dst, &args.port) {
        Ok(p) => p,
        Err(e) => return usage(&format!("--port {e}")),
    };
    let engine = Engine::new(Arc::new(loaded.state));
    let explanation = explain(
        &engine,
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
