//! `palisade lab`: pods as network namespaces, real packets, the agent enforcing.

use crate::agent::LogArgs;
use crate::exit;
use crate::input;
use palisade_analyze::{render, Format, Probe};
use palisade_lab::{self as lab, Lab, Launch, Measured};
use palisade_model::Loader;
use palisade_policy::{enforced_engine, Engine};
use std::path::{Path, PathBuf};
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
        /// Nodes (1 to 16): node-0 .. node-<N-1>, joined by a fabric, each with its own agent
        /// enforcing its pods (those whose spec.nodeName names it, the others round-robin).
        #[arg(long, value_name = "N", default_value_t = 1)]
        nodes: usize,
        #[command(flatten)]
        logging: Box<LogArgs>,
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
        LabCommand::Up {
            dir,
            nodes,
            logging,
        } => up(&args.name, &dir, nodes, *logging, verbose),
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

fn up(name: &str, dir: &Path, nodes: usize, mut logging: LogArgs, verbose: u8) -> Result<u8> {
    if nodes > 1 && logging.node_name.is_some() {
        return Err("--node-name names a single-node lab's node: a lab of several names its nodes node-0 .. node-<N-1>".into());
    }
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let loaded = input::load_paths(std::slice::from_ref(&dir), verbose);
    let mut lab = Lab::plan_nodes(name, &loaded.state, nodes)?;
    lab.manifests = Some(dir.clone());
    let services = lab.plan_services(&loaded.state);
    logging
        .policy_log
        .get_or_insert_with(|| lab::policy_log(name));
    logging.node_name.get_or_insert_with(|| lab.node.clone());
    logging
        .observe_socket
        .get_or_insert_with(|| lab::observe_socket(name));
    let launch = launch(&lab, &dir, &logging)?;
    lab.up(&services, &launch)?;
    println!(
        "lab {name} is up: {} pods, {} services on {} node(s); the agents enforce {}",
        lab.pods.len(),
        services.len(),
        lab.nodes.len(),
        dir.display()
    );
    print_pods(&lab);
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
    for (i, node) in lab.nodes.iter().enumerate() {
        let node_logging = node_logging(&lab, &logging, i)?;
        let on = if lab.nodes.len() > 1 {
            format!(" ({})", node.name)
        } else {
            String::new()
        };
        if let Some(path) = &node_logging.policy_log {
            println!("policy action log{on}: {}", path.display());
        }
        if let Some(path) = &node_logging.flow_log {
            println!("flow log{on}: {}", path.display());
        }
        match &node_logging.observe_socket {
            Some(socket) if lab.nodes.len() > 1 => println!(
                "live view{on}: palisade observe --socket {} --follow",
                socket.display()
            ),
            _ => println!("live view: palisade observe --lab {name} --follow"),
        }
        if let Some(addr) = &node_logging.metrics_addr {
            println!("metrics{on}: http://{addr}/metrics");
        }
    }
    if loaded.rejected {
        Ok(exit::INVALID)
    } else {
        Ok(exit::OK)
    }
}

/// The pods of `lab`, with their addresses, namespaces and nodes.
fn print_pods(lab: &Lab) {
    for p in &lab.pods {
        let node = lab.node_of(p).map_or("?", |n| n.name.as_str());
        println!(
            "  {:<40} {:<16} {:<16} {node}",
            p.key,
            p.ip.to_string(),
            p.netns
        );
    }
}

/// The `logging` options of node `node`'s agent: in a lab of several nodes, its own name, files
/// ([`Lab::node_file`]) and metrics port (the given one plus the node's number).
fn node_logging(lab: &Lab, logging: &LogArgs, node: usize) -> Result<LogArgs> {
    let mut own = logging.clone();
    if lab.nodes.len() > 1 {
        own.node_name = Some(lab.nodes[node].name.clone());
        own.policy_log = own.policy_log.map(|p| lab.node_file(&p, node));
        own.flow_log = own.flow_log.map(|p| lab.node_file(&p, node));
        own.observe_socket = own.observe_socket.map(|p| lab.node_file(&p, node));
        if let Some(addr) = &mut own.metrics_addr {
            let port = u16::try_from(node)
                .ok()
                .and_then(|n| addr.port().checked_add(n))
                .ok_or("--metrics-addr: no port left for every node (node N serves on port + N)")?;
            addr.set_port(port);
        }
    }
    Ok(own)
}

/// This binary's command lines for `lab`'s responders and each node's agent, enforcing `dir` in
/// the node's namespace with the `logging` options ([`node_logging`]).
fn launch(lab: &Lab, dir: &Path, logging: &LogArgs) -> Result<Launch> {
    let dir = dir.to_string_lossy();
    let name = lab.name.as_str();
    let agents = (lab.nodes.iter().enumerate())
        .map(|(i, node)| {
            let mut agent: Vec<String> = [
                "-v",
                "agent",
                "--manifests",
                &dir,
                "--netns",
                &node.netns,
                "--lab",
                name,
            ]
            .map(String::from)
            .into();
            if lab.nodes.len() > 1 {
                let state = lab.node_file(&lab::last_good(name), i);
                agent.extend(["--state-file".into(), state.display().to_string()]);
            }
            agent.extend(node_logging(lab, logging, i)?.to_args());
            Ok(agent)
        })
        .collect::<Result<_>>()?;
    Ok(Launch {
        program: std::env::current_exe()?,
        serve: ["lab", "--name", name, "serve"].map(String::from).into(),
        agents,
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
        "lab {name}: {} node(s), manifests {}",
        lab.nodes.len(),
        lab.manifests
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    for node in &lab.nodes {
        let cidr = node.pod_cidr.map(|c| format!(", pod CIDR {c}"));
        let agent = (node.agent.as_ref()).map(|a| format!(", agent {}: {}", a.pid(), a.status()));
        println!(
            "  node {} (namespace {}{}{})",
            node.name,
            node.netns,
            cidr.unwrap_or_default(),
            agent.unwrap_or_default()
        );
    }
    for p in &lab.processes {
        println!("  process {}: {}", p.pid(), p.status());
    }
    for p in &lab.pods {
        let node = lab.node_of(p).map_or("?", |n| n.name.as_str());
        println!(
            "  {:<40} {:<16} {:<16} {:<8} tcp {:?} udp {:?}",
            p.key,
            p.ip.to_string(),
            p.netns,
            node,
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
    // The kernel enforces the state without its staged policies.
    let engine = enforced_engine(loaded.state);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn logging(args: &[&str]) -> LogArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            logging: LogArgs,
        }
        let args = std::iter::once("up").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(args).unwrap().logging
    }

    #[test]
    fn each_node_of_a_lab_of_several_has_its_own_name_files_and_metrics_port() {
        let lab = Lab::plan_nodes("t", &Default::default(), 3).unwrap();
        let given = logging(&[
            "--policy-log",
            "/l/p.log",
            "--observe-socket",
            "/l/o.sock",
            "--flow-log",
            "/l/f.log",
            "--metrics-addr",
            "127.0.0.1:9090",
        ]);
        let own = node_logging(&lab, &given, 2).unwrap();
        assert_eq!(own.flow_log.as_deref(), Some(Path::new("/l/f-node-2.log")));
        assert_eq!(own.node_name.as_deref(), Some("node-2"));
        assert_eq!(own.policy_log.unwrap(), Path::new("/l/p-node-2.log"));
        assert_eq!(own.observe_socket.unwrap(), Path::new("/l/o-node-2.sock"));
        assert_eq!(own.metrics_addr.unwrap().port(), 9092);
        let full = logging(&["--metrics-addr", "127.0.0.1:65535"]);
        assert!(node_logging(&lab, &full, 0).is_ok());
        let err = node_logging(&lab, &full, 1).unwrap_err().to_string();
        assert!(err.contains("no port left for every node"), "{err}");
        // One node: the options as given.
        let single = Lab::plan_nodes("t", &Default::default(), 1).unwrap();
        let own = node_logging(&single, &given, 0).unwrap();
        assert_eq!(own.policy_log.unwrap(), Path::new("/l/p.log"));
        assert_eq!(own.metrics_addr.unwrap().port(), 9090);
    }
}
