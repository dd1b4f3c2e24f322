//! `palisade status`: is NetworkPolicy enforced here, and is my policy in force? For a cluster from
//! the agents' Leases; for a lab from its agents' status files.

use crate::exit;
use palisade_analyze::status::{scheduled, status, to_text, Reported, Status};
use palisade_model::{AgentStatus, PodInfo, PodKey, StatusRecord};
use palisade_policy::enforced_engine;
use std::collections::HashMap;
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
    /// The lab NAME instead of a cluster (`palisade lab up --name`; `default` is the default
    /// lab's name).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["kubeconfig", "context"])]
    lab: Option<String>,
    /// How long one request to the API server may take (e.g. 30s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::agent::parse_duration)]
    request_timeout: Duration,
    /// Output format: txt (two tables and the answer) or json.
    #[arg(short, long, value_name = "FORMAT", default_value = "txt", value_parser = ["txt", "json"])]
    output: String,
}

/// Prints the status of the cluster (or lab); exit 1 when a policy is not enforced on a node that
/// hosts a pod it selects (no fresh agent, nothing applied yet, audit mode, not in force), 2 when
/// it cannot be read.
pub fn run(args: Args, verbose: u8) -> u8 {
    let status = match &args.lab {
        Some(lab) => lab_status(lab),
        None => cluster_status(&args, verbose),
    };
    let status = match status {
        Ok(status) => status,
        Err(code) => return code,
    };
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

/// An agent's report as of `now`.
fn reported<'a>(
    status: &'a AgentStatus,
    renewed: Option<SystemTime>,
    duration: Duration,
    now: SystemTime,
) -> Reported<'a> {
    Reported {
        status,
        fresh: palisade_model::fresh(renewed, duration, now),
        renewed: renewed.map(|at| now.duration_since(at).unwrap_or_default()),
    }
}

/// The cluster, from its API server and the agents' Leases.
fn cluster_status(args: &Args, verbose: u8) -> Result<Status, u8> {
    let connection = palisade_kube::Connection {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        request_timeout: args.request_timeout,
        ..palisade_kube::Connection::default()
    };
    let inputs = crate::input::Inputs {
        files: Vec::new(),
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        request_timeout: args.request_timeout,
    };
    let loaded = crate::input::load(&inputs, verbose)?;
    let reports = palisade_kube::status::reports(&connection).map_err(|e| {
        eprintln!("error: {e}");
        exit::INVALID
    })?;
    for why in &reports.unread {
        eprintln!("warning: {why}");
    }
    // What agents enforce: staged policies are logged, not enforced, and not in their Leases.
    let engine = enforced_engine(loaded.state);
    let now = SystemTime::now();
    let agents: Vec<Reported> = (reports.agents.iter())
        .map(|l| reported(&l.status, l.renewed, l.duration, now))
        .collect();
    Ok(status(&engine, &reports.nodes, &agents, &scheduled))
}

/// A lab, from its manifests, where it placed its pods, and its agents' status files.
fn lab_status(name: &str) -> Result<Status, u8> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        exit::INVALID
    };
    let lab = palisade_lab::Lab::load(name).map_err(|e| fail(&e))?;
    let folder = lab.manifests_folder().map_err(|e| fail(&e))?;
    let loader = palisade_model::Loader::new().pin_ips(lab.pinned_ips());
    let loaded = crate::input::load_with(loader, &[folder.to_path_buf()], 0);
    // What agents enforce: staged policies are logged, not enforced, and not in their Leases.
    let engine = enforced_engine(loaded.state);
    let now = SystemTime::now();
    let mut records = Vec::new();
    for i in 0..lab.nodes.len() {
        let path = lab.node_file(&palisade_lab::agent_status(name), i);
        match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<StatusRecord>(&text) {
                Ok(record) => records.push(record),
                Err(e) => eprintln!("warning: {}: {e}", path.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("warning: {}: {e}", path.display()),
        }
    }
    let agents: Vec<Reported> = (records.iter())
        .map(|r| {
            let since = Duration::try_from_secs_f64(r.renewed).ok();
            let renewed = since.and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d));
            reported(
                &r.status,
                renewed,
                Duration::from_secs(r.duration_seconds),
                now,
            )
        })
        .collect();
    let placement: HashMap<&PodKey, &str> = (lab.pods.iter())
        .filter_map(|p| Some((&p.key, lab.node_of(p)?.name.as_str())))
        .collect();
    let placed = |pod: &PodInfo| -> Option<&str> {
        let counts = pod.ip.is_some() && !pod.host_network;
        counts.then(|| placement.get(&pod.key()).copied()).flatten()
    };
    let nodes: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
    Ok(status(&engine, &nodes, &agents, &placed))
}
