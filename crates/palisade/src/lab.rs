//! `palisade lab`: pods as network namespaces, real packets, the agent enforcing.

use crate::agent::LogArgs;
use crate::exit;
use crate::input;
use palisade_analyze::{render, Format, Probe};
use palisade_lab::{self as lab, Lab, Launch, Measured};
use palisade_model::Loader;
use palisade_policy::Engine;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `palisade lab`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Lab name: several labs can run side by side.
    #[arg(long, default_value = "lab", global = true)]
    name: String,
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(clap::Subcommand, Debug)]
enum LabCommand {
    /// Build the lab from a manifests folder and start the agent enforcing it.
    Up {
        /// Manifests folder (watched by the agent: edit a policy, the kernel follows).
        #[arg(short = 'f', long = "filename", value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        logging: LogArgs,
    },
    /// Remove everything the lab created (namespaces, links, processes), and nothing else.
    Down,
    /// Show the lab's pods, addresses and processes.
    Status,
    /// Run a command inside a pod: `palisade lab exec ns/pod -- CMD ...`.
    Exec {
        /// The pod: `ns/name`, or `ns/workload` for its first pod.
        pod: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Real connection attempts from every pod to every pod.
    Probe {
        /// Port and protocol (TCP or UDP), repeatable. Default: every container port of the pods.
        #[arg(long = "probe", value_name = "PORT/PROTO")]
        probes: Vec<Probe>,
        /// Output format: txt, json, csv, md or dot.
        #[arg(short = 'o', long = "output", default_value = "txt")]
        output: Format,
        /// Print only the cells where the kernel and the engine disagree; exit 1 if any.
        #[arg(long)]
        compare: bool,
        /// How long a connection attempt may take before it counts as dropped, in milliseconds.
        #[arg(long, default_value_t = 300)]
        timeout_ms: u64,
    },
    /// (internal) Serve every pod's container ports; started by `up`.
    #[command(hide = true)]
    Serve,
}

/// Runs a lab command.
pub fn run(args: Args, verbose: u8) -> u8 {
    if let Err(e) = lab::require_root() {
        eprintln!("error: {e}");
        return exit::INVALID;
    }
    let result = match args.command {
        LabCommand::Up { dir, logging } => up(&args.name, &dir, logging, verbose),
        LabCommand::Down => down(&args.name),
        LabCommand::Status => status(&args.name),
        LabCommand::Exec { pod, command } => exec(&args.name, &pod, &command),
        LabCommand::Probe {
            probes,
            output,
            compare,
            timeout_ms,
        } => probe(
            &args.name,
            probes,
            output,
            compare,
            Duration::from_millis(timeout_ms),
        ),
        LabCommand::Serve => lab::serve_pods(&args.name)
            .map(|never| match never {})
            .map_err(Into::into),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        exit::INVALID
    })
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn up(name: &str, dir: &Path, mut logging: LogArgs, verbose: u8) -> Result<u8> {
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let loaded = input::load_paths(std::slice::from_ref(&dir), verbose);
    let mut lab = Lab::plan(name, &loaded.state);
    lab.manifests = Some(dir.clone());
    let services = lab::plan_services(&loaded.state);
    logging
        .policy_log
        .get_or_insert_with(|| lab::policy_log(name));
    logging.node_name.get_or_insert_with(|| lab.node.clone());
    logging
        .observe_socket
        .get_or_insert_with(|| lab::observe_socket(name));
    let launch = launch(name, &lab.node, &dir, &logging)?;
    lab.up(&services, &launch)?;
    println!(
        "lab {name} is up: {} pods, {} services; the agent enforces {}",
        lab.pods.len(),
        services.len(),
        dir.display()
    );
    for p in &lab.pods {
        println!("  {:<40} {:<16} {}", p.key, p.ip.to_string(), p.netns);
    }
    for s in &services {
        let ports: Vec<String> = s
            .ports
            .iter()
            .map(|p| format!("{}/{}", p.port, p.protocol))
            .collect();
        println!(
            "  service {}/{} {} {}",
            s.namespace,
            s.name,
            s.cluster_ip,
            ports.join(",")
        );
    }
    println!("logs: {}/lab-{name}-*.log", lab::state_dir().display());
    if let Some(path) = &logging.policy_log {
        println!("policy action log: {}", path.display());
    }
    println!("live view: palisade observe --lab {name} --follow");
    if let Some(addr) = &logging.metrics_addr {
        println!("metrics: http://{addr}/metrics");
    }
    if loaded.rejected {
        Ok(exit::INVALID)
    } else {
        Ok(exit::OK)
    }
}

/// This binary's command lines for lab `name`'s responders and its agent, enforcing `dir` in the
/// node namespace `node` with the `logging` options.
fn launch(name: &str, node: &str, dir: &Path, logging: &LogArgs) -> Result<Launch> {
    let dir = dir.to_string_lossy();
    let mut agent: Vec<String> = [
        "-v",
        "agent",
        "--manifests",
        &dir,
        "--netns",
        node,
        "--lab",
        name,
    ]
    .map(String::from)
    .into();
    agent.extend(logging.to_args());
    Ok(Launch {
        program: std::env::current_exe()?,
        serve: ["lab", "--name", name, "serve"].map(String::from).into(),
        agent,
    })
}

fn down(name: &str) -> Result<u8> {
    Lab::down(name)?;
    println!("lab {name} removed");
    Ok(exit::OK)
}

fn status(name: &str) -> Result<u8> {
    let lab = Lab::load(name)?;
    println!(
        "lab {name}: node {}, manifests {}",
        lab.node,
        lab.manifests
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    for p in &lab.processes {
        println!("  process {}: {}", p.pid(), p.status());
    }
    for p in &lab.pods {
        println!(
            "  {:<40} {:<16} {:<16} tcp {:?} udp {:?}",
            p.key,
            p.ip.to_string(),
            p.netns,
            p.tcp,
            p.udp
        );
    }
    Ok(exit::OK)
}

fn exec(name: &str, pod: &str, command: &[String]) -> Result<u8> {
    let status = Lab::load(name)?.exec(pod, command)?;
    Ok(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

fn probe(
    name: &str,
    probes: Vec<Probe>,
    output: Format,
    compare: bool,
    timeout: Duration,
) -> Result<u8> {
    let lab = Lab::load(name)?;
    let dir = lab.manifests_folder()?.to_path_buf();
    let loaded = input::load_with(Loader::new().pin_ips(lab.pinned_ips()), &[dir], 0);
    let engine = Engine::new(Arc::new(loaded.state));
    let (measured, skipped) = lab::measure(&lab, &engine, probes, timeout)?;
    for p in skipped {
        eprintln!("warning: probe {p} skipped: the lab probes TCP and UDP only");
    }
    if compare {
        return Ok(print_comparison(&measured, &engine));
    }
    render::write(&measured, output, &mut std::io::stdout().lock())?;
    if measured.mixed_families() {
        eprintln!("note: IPv4 and IPv6 pods cannot reach each other; those cells show X");
    }
    Ok(exit::OK)
}

/// Prints the cells where the kernel and the engine differ, and how many; exit 1 if any.
fn print_comparison(measured: &Measured, engine: &Engine) -> u8 {
    let verdict = |allowed| if allowed { "allowed" } else { "denied" };
    let comparison = measured.compare(engine);
    for d in &comparison.differences {
        println!(
            "probe {}: {} -> {}: kernel {}, engine {}",
            d.probe,
            d.src,
            d.dst,
            verdict(d.kernel),
            verdict(d.engine)
        );
    }
    let differ = comparison.differences.len();
    println!(
        "{differ} of {} cells differ between the kernel and the engine",
        comparison.compared
    );
    if comparison.cross_family > 0 {
        println!(
            "{} cells between IPv4 and IPv6 pods not compared (no path between families)",
            comparison.cross_family
        );
    }
    if differ > 0 {
        exit::FINDINGS
    } else {
        exit::OK
    }
}
