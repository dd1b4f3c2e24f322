//! `palisade explain`.

use crate::exit;
use crate::input::{self, Inputs};
use palisade_analyze::explain::{explain, resolve_endpoint, resolve_port, to_text};
use palisade_model::Protocol;
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
    #[arg(long, value_name = "PORT[/PROTO]", value_parser = port_arg)]
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
    let PortArg {
        port: port_text,
        protocol,
    } = &args.port;
    let protocol = *protocol;
    let src = match resolve_endpoint(state, &args.from, &args.namespace) {
        Ok(e) => e,
        Err(e) => return usage(&format!("--from {e}")),
    };
    let dst = match resolve_endpoint(state, &args.to, &args.namespace) {
        Ok(e) => e,
        Err(e) => return usage(&format!("--to {e}")),
    };
    let port = match resolve_port(state, dst, port_text, protocol) {
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

/// `--port`: a number (1-65535; 0 only with ICMP) or a port name (IANA_SVC_NAME), and a protocol.
#[derive(Clone, Debug)]
struct PortArg {
    port: String,
    protocol: Protocol,
}

/// Checks `--port` when the arguments are parsed, with what would be valid.
fn port_arg(text: &str) -> Result<PortArg, String> {
    let (port, protocol) = match text.split_once('/') {
        Some((port, proto)) => (port, proto.parse::<Protocol>()?),
        None => (text, Protocol::Tcp),
    };
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        let number = port.parse::<u32>().unwrap_or(u32::MAX);
        if number > u32::from(u16::MAX) || (number == 0 && protocol != Protocol::Icmp) {
            return Err(format!(
                "port {port} is out of range: a port number is 1-65535 (or a port name such as http)"
            ));
        }
    } else {
        palisade_model::validate::port_name(port)?;
    }
    Ok(PortArg {
        port: port.to_string(),
        protocol,
    })
}

fn usage(message: &str) -> u8 {
    eprintln!("error: {message}");
    exit::INVALID
}
