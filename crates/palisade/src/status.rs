//! `palisade status`: is NetworkPolicy enforced here, and is my policy in force?

use crate::exit;
use palisade_analyze::status::{status, to_text, Reported};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Arguments of `palisade status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The kubeconfig of the cluster (default: KUBECONFIG, ~/.kube/config, or the pod's service
    /// account, as kubectl finds it).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// How long one request to the API server may take (e.g. 30s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::agent::parse_duration)]
    request_timeout: Duration,
    /// Output format: txt (two tables and the answer) or json.
    #[arg(short, long, value_name = "FORMAT", default_value = "txt", value_parser = ["txt", "json"])]
    output: String,
}

/// Prints the status of the cluster; exit 1 when a node that hosts a pod some policy selects has
/// no fresh agent (policies are not enforced there), 2 when the cluster cannot be read.
pub fn run(args: Args, verbose: u8) -> u8 {
    let connection = palisade_kube::Connection {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        request_timeout: args.request_timeout,
        ..palisade_kube::Connection::default()
    };
    let inputs = crate::input::Inputs {
        files: Vec::new(),
        kubeconfig: args.kubeconfig,
        context: args.context,
        request_timeout: args.request_timeout,
    };
    let loaded = match crate::input::load(&inputs, verbose) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let (leases, unread) = match palisade_kube::status::agent_leases(&connection) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    for why in &unread {
        eprintln!("warning: {why}");
    }
    let engine = palisade_policy::Engine::new(std::sync::Arc::new(loaded.state));
    let now = SystemTime::now();
    let reported: Vec<Reported> = (leases.iter())
        .map(|lease| Reported {
            status: &lease.status,
            fresh: lease.fresh(now),
            renewed: lease.renewed.and_then(|at| now.duration_since(at).ok()),
        })
        .collect();
    let status = status(&engine, &reported);
    if args.output == "json" {
        match serde_json::to_string_pretty(&status) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::INVALID;
            }
        }
    } else {
        print!("{}", to_text(&status));
    }
    if status.unenforced.is_empty() {
        exit::OK
    } else {
        exit::FINDINGS
    }
}
