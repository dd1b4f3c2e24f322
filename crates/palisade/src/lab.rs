//! `palisade lab`: pods as network namespaces, real packets, the agent enforcing.

use crate::agent::LogArgs;
use crate::exit;
use crate::input;
use palisade_analyze::{default_probes, render, Format, Grid, Matrix, Probe};
use palisade_lab::{self as lab, Lab, Transport};
use palisade_model::{Loader, Protocol};
use palisade_policy::Engine;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        LabCommand::Serve => serve(&args.name),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        exit::INVALID
    })
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn err(e: impl std::fmt::Display) -> Box<dyn std::error::Error> {
    e.to_string().into()
}

/// Starts this binary with `args` in the background, detached from the terminal, logging to `log`,
/// and returns its identity for the state file.
fn spawn_background(args: &[&str], log: &Path) -> Result<lab::RecordedProcess> {
    let file = std::fs::File::create(log).map_err(|e| err(format!("{}: {e}", log.display())))?;
    let exe = std::env::current_exe().map_err(err)?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(err)?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .map_err(err)?;
    // Not waited for yet, the child keeps its PID even if it exits: its identity is readable.
    match lab::LabProcess::of(child.id()) {
        Ok(identity) => Ok(lab::RecordedProcess::Identified(identity)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(err(format!(
                "cannot record process {} ({}): {e}",
                child.id(),
                args.join(" ")
            )))
        }
    }
}

fn up(name: &str, dir: &Path, mut logging: LogArgs, verbose: u8) -> Result<u8> {
    let dir = std::fs::canonicalize(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    let loaded = input::load_paths(std::slice::from_ref(&dir), verbose);
    let mut lab = Lab::plan(name, &loaded.state);
    lab.manifests = Some(dir.clone());
    lab.create()?;
    let services = lab::plan_services(&loaded.state);
    logging
        .policy_log
        .get_or_insert_with(|| lab::policy_log(name));
    logging.node_name.get_or_insert_with(|| lab.node.clone());
    logging
        .observe_socket
        .get_or_insert_with(|| lab::observe_socket(name));
    let started = (|| -> Result<()> {
        lab.install_services(&services)?;
        let serve_log = lab::process_log(name, "serve");
        lab.processes.push(spawn_background(
            &["lab", "--name", name, "serve"],
            &serve_log,
        )?);
        lab.save()?;
        let agent_log = lab::process_log(name, "agent");
        let dir_text = dir.to_string_lossy().to_string();
        let mut args: Vec<String> = [
            "-v",
            "agent",
            "--manifests",
            &dir_text,
            "--netns",
            &lab.node,
            "--lab",
            name,
        ]
        .map(String::from)
        .into();
        args.extend(logging.to_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.processes.push(spawn_background(&args, &agent_log)?);
        lab.save()?;
        wait_for(Duration::from_secs(10), "the agent's first ruleset", || {
            table_present(&lab.node)
        })?;
        wait_for(Duration::from_secs(10), "the responders", || {
            lab::ready_file(name).exists()
        })
    })();
    if let Err(e) = started {
        let _ = Lab::down(name);
        return Err(e);
    }
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

/// True once the agent has put the `inet palisade` table into the node namespace.
fn table_present(node: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            node,
            "nft",
            "list",
            "table",
            "inet",
            palisade_dataplane::TABLE,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `ready` until it holds, or fails after `limit` naming `what` it waited for.
fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !ready() {
        if Instant::now() > deadline {
            return Err(err(format!(
                "timed out waiting for {what}; see the logs in {}",
                lab::state_dir().display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
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
    let lab = Lab::load(name)?;
    // `ns/pod`, or `ns/workload` for the first pod whose name is the workload's plus a suffix.
    let p = lab
        .pod(pod)
        .or_else(|| {
            lab.pods
                .iter()
                .find(|p| p.key.starts_with(&format!("{pod}-")))
        })
        .ok_or_else(|| {
            err(format!(
                "no pod {pod:?} in lab {name}; see `palisade lab status`"
            ))
        })?;
    let status = Command::new("ip")
        .args(["netns", "exec", &p.netns])
        .args(command)
        .status()
        .map_err(err)?;
    Ok(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

fn serve(name: &str) -> Result<u8> {
    let lab = Lab::load(name)?;
    for p in &lab.pods {
        lab::serve(&p.netns, &p.tcp, &p.udp).map_err(|e| err(format!("{}: {e}", p.key)))?;
    }
    std::fs::write(lab::ready_file(name), b"").map_err(err)?;
    tracing::info!(pods = lab.pods.len(), "responders serving");
    loop {
        std::thread::park();
    }
}

/// Measured connectivity, drawable by the matrix renderers.
struct Measured {
    names: Vec<String>,
    probes: Vec<Probe>,
    cells: Vec<Vec<Vec<bool>>>,
}

impl Grid for Measured {
    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn probes(&self) -> Vec<Probe> {
        self.probes.clone()
    }

    fn row_into(&self, probe: usize, src: usize, out: &mut Vec<bool>) {
        out.clear();
        out.extend_from_slice(&self.cells[probe][src]);
    }
}

fn probe(
    name: &str,
    probes: Vec<Probe>,
    output: Format,
    compare: bool,
    timeout: Duration,
) -> Result<u8> {
    let lab = Lab::load(name)?;
    let dir = lab
        .manifests
        .clone()
        .ok_or_else(|| err("lab has no manifests"))?;
    let loaded = input::load_with(Loader::new().pin_ips(lab.pinned_ips()), &[dir], 0);
    let engine = Engine::new(Arc::new(loaded.state));
    let state = engine.state();
    // The lab's pods, in the engine's order (namespace, then name).
    let pods: Vec<usize> = (0..state.pods.len())
        .filter(|&i| lab.pod(&state.pods[i].key()).is_some())
        .collect();
    let probes = if probes.is_empty() {
        default_probes(state, &pods)
    } else {
        probes
    };
    let (probes, skipped): (Vec<Probe>, Vec<Probe>) = probes
        .into_iter()
        .partition(|p| matches!(p.protocol, Protocol::Tcp | Protocol::Udp));
    for p in skipped {
        eprintln!("warning: probe {p} skipped: the lab probes TCP and UDP only");
    }
    let targets: Vec<(String, std::net::IpAddr)> = pods
        .iter()
        .map(|&i| {
            let p = lab.pod(&state.pods[i].key()).expect("filtered above");
            (p.netns.clone(), p.ip)
        })
        .collect();
    let transports: Vec<(u16, Transport)> = probes
        .iter()
        .map(|p| {
            (
                p.port,
                if p.protocol == Protocol::Udp {
                    Transport::Udp
                } else {
                    Transport::Tcp
                },
            )
        })
        .collect();
    let cells = lab::probe_matrix(&targets, &transports, timeout).map_err(err)?;
    let measured = Measured {
        names: pods.iter().map(|&i| state.pods[i].key()).collect(),
        probes: probes.clone(),
        cells,
    };
    let mut out = std::io::stdout().lock();
    if !compare {
        render::write(&measured, output, &mut out).map_err(err)?;
        let families = targets.iter().filter(|(_, ip)| ip.is_ipv6()).count();
        if families > 0 && families < targets.len() {
            eprintln!("note: IPv4 and IPv6 pods cannot reach each other; those cells show X");
        }
        return Ok(exit::OK);
    }
    let matrix = Matrix::compute(&engine, pods, &probes);
    let (mut differ, mut cross_family) = (0, 0);
    for (pi, probe) in probes.iter().enumerate() {
        for i in 0..measured.names.len() {
            for j in 0..measured.names.len() {
                // IPv4 and IPv6 pods cannot reach each other whatever the policy: not compared.
                if targets[i].1.is_ipv6() != targets[j].1.is_ipv6() {
                    cross_family += 1;
                    continue;
                }
                let (kernel, predicted) = (measured.cells[pi][i][j], matrix.allowed(pi, i, j));
                if kernel != predicted {
                    differ += 1;
                    println!(
                        "probe {probe}: {} -> {}: kernel {}, engine {}",
                        measured.names[i],
                        measured.names[j],
                        if kernel { "allowed" } else { "denied" },
                        if predicted { "allowed" } else { "denied" }
                    );
                }
            }
        }
    }
    let cells = probes.len() * measured.names.len() * measured.names.len() - cross_family;
    println!("{differ} of {cells} cells differ between the kernel and the engine");
    if cross_family > 0 {
        println!("{cross_family} cells between IPv4 and IPv6 pods not compared (no path between families)");
    }
    Ok(if differ > 0 { exit::FINDINGS } else { exit::OK })
}
