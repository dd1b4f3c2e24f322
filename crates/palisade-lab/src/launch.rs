//! Bringing a lab up with its background processes — the responders that serve every pod's ports
//! and the agent that enforces in each node — and using it: running a command in a pod, serving.

use crate::error::LabError;
use crate::net::serve;
use crate::paths::{per_node, process_log, ready_file, state_dir};
use crate::process::{LabProcess, RecordedProcess};
use crate::services::ServicePlan;
use crate::topology::{Lab, LabPod};
use palisade_dataplane::drift::TableProbe;
use palisade_model::PodKey;
use std::convert::Infallible;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, LabError>;

/// How long `up` waits for the agent's first ruleset, and for the responders.
const READY_WAIT: Duration = Duration::from_secs(10);

/// The lab's background processes, as command lines of one program: `palisade` starts itself
/// (`lab serve` for the responders, `agent` for the agent), so their flags stay the command line's.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The program.
    pub program: PathBuf,
    /// Its arguments that serve every pod's container ports until killed (see [`serve_pods`]).
    pub serve: Vec<String>,
    /// Its arguments that run each node's agent, enforcing in that node's namespace, in node
    /// order.
    pub agents: Vec<Vec<String>>,
}

impl Lab {
    /// Creates the lab, installs `services`, starts the responders and each node's agent
    /// (recorded, for `down` to stop them), and waits until every agent has applied its first
    /// ruleset and every port is served. On failure the lab is taken down again.
    pub fn up(&mut self, services: &[ServicePlan], launch: &Launch) -> Result<()> {
        self.create()?;
        let started = self.start(services, launch);
        if started.is_err() {
            let _ = Lab::down(&self.name);
        }
        started
    }

    fn start(&mut self, services: &[ServicePlan], launch: &Launch) -> Result<()> {
        self.install_services(services)?;
        let serve_log = process_log(&self.name, "serve");
        let responders = spawn_background(&launch.program, &launch.serve, &serve_log)?;
        self.processes.push(responders);
        self.save()?;
        for (i, args) in launch.agents.iter().enumerate().take(self.nodes.len()) {
            let agent_log = self.node_file(&process_log(&self.name, "agent"), i);
            let agent = spawn_background(&launch.program, args, &agent_log)?;
            self.processes.push(agent.clone());
            self.nodes[i].agent = Some(agent);
            self.save()?;
        }
        for node in &self.nodes {
            // Asked over one netlink socket opened in the node (no `nft` process per poll); if it
            // cannot be opened, the table never shows and the wait times out as for no table.
            let mut table = TableProbe::open(Some(&node.netns)).ok();
            wait_for(&format!("the first ruleset of {}", node.name), || {
                table
                    .as_mut()
                    .is_some_and(|t| matches!(t.table(), Ok(Some(_))))
            })?;
        }
        wait_for("the responders", || ready_file(&self.name).exists())
    }

    /// The file `path` of node `node`'s agent: `path` itself in a single-node lab, else
    /// [`per_node`]'s.
    pub fn node_file(&self, path: &Path, node: usize) -> PathBuf {
        match self.nodes.get(node) {
            Some(n) if self.nodes.len() > 1 => per_node(path, &n.name),
            _ => path.to_path_buf(),
        }
    }

    /// The file `path` of the agent of the node named `node` ([`Lab::node_file`]); `path` itself
    /// for a name that is none of the lab's nodes.
    pub fn named_node_file(&self, path: &Path, node: Option<&str>) -> PathBuf {
        let index = self
            .nodes
            .iter()
            .position(|n| Some(n.name.as_str()) == node);
        index.map_or_else(|| path.to_path_buf(), |i| self.node_file(path, i))
    }

    /// The pod `ns/name`, or for `ns/workload` the first pod whose name is the workload's plus a
    /// suffix.
    pub fn find_pod(&self, pod: &str) -> Result<&LabPod> {
        let key: Option<PodKey> = pod.parse().ok();
        key.as_ref()
            .and_then(|key| {
                let prefix = format!("{}-", key.name);
                let workload = |p: &&LabPod| {
                    p.key.namespace == key.namespace && p.key.name.starts_with(&prefix)
                };
                self.pod(key).or_else(|| self.pods.iter().find(workload))
            })
            .ok_or_else(|| LabError::NoPod {
                pod: pod.to_string(),
                lab: self.name.clone(),
            })
    }

    /// Runs `command` (program and arguments) inside the pod [`Lab::find_pod`] finds for `pod`,
    /// with this process's standard streams, and returns how it exited.
    pub fn exec(&self, pod: &str, command: &[String]) -> Result<ExitStatus> {
        let netns = &self.find_pod(pod)?.netns;
        Command::new("ip")
            .args(["netns", "exec", netns])
            .args(command)
            .status()
            .map_err(|source| LabError::Exec { source })
    }

    /// The manifests folder the lab was built from.
    pub fn manifests_folder(&self) -> Result<&Path> {
        self.manifests.as_deref().ok_or(LabError::NoManifests)
    }
}

/// Serves every pod of lab `name` (TCP and UDP echo on its container ports), marks the lab ready
/// ([`ready_file`]) once every port is bound, and serves until the process is killed.
pub fn serve_pods(name: &str) -> Result<Infallible> {
    let lab = Lab::load(name)?;
    for p in &lab.pods {
        serve(&p.netns, &p.tcp, &p.udp).map_err(|source| LabError::Serve {
            pod: p.key.to_string(),
            source,
        })?;
    }
    std::fs::write(ready_file(name), b"").map_err(|source| LabError::Ready { source })?;
    tracing::info!(pods = lab.pods.len(), "responders serving");
    loop {
        std::thread::park();
    }
}

/// Starts `program` with `args` in the background, detached from the terminal (its own process
/// group), logging to `log`, and returns its identity for the state file.
fn spawn_background(program: &Path, args: &[String], log: &Path) -> Result<RecordedProcess> {
    let command = args.join(" ");
    let start = |source| LabError::Start { source };
    let file = std::fs::File::create(log).map_err(|source| LabError::Log {
        path: log.to_path_buf(),
        source,
    })?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(start)?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .map_err(start)?;
    // Not waited for yet, the child keeps its PID even if it exits: its identity is readable.
    match LabProcess::of(child.id()) {
        Ok(identity) => Ok(RecordedProcess::Identified(identity)),
        Err(source) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(LabError::Identify {
                pid: child.id(),
                command,
                source,
            })
        }
    }
}

/// Polls `ready` until it holds, or fails after [`READY_WAIT`] naming `what` it waited for.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + READY_WAIT;
    while !ready() {
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                what: what.to_string(),
                logs: state_dir(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_found_by_its_key_or_its_workloads() {
        let pod = |key: &str| LabPod {
            key: key.parse().unwrap(),
            netns: format!("pal-t-{key}"),
            ip: "10.0.0.1".parse().unwrap(),
            tcp: vec![],
            udp: vec![],
            node: 0,
        };
        let mut lab = Lab::plan("t", &Default::default());
        lab.pods = vec![pod("ns/web-0"), pod("ns/web"), pod("ns/api-7f9c")];
        assert_eq!(
            lab.find_pod("ns/web").unwrap().key,
            PodKey::new("ns", "web")
        );
        assert_eq!(
            lab.find_pod("ns/api").unwrap().key,
            PodKey::new("ns", "api-7f9c")
        );
        // A workload's pod is in the workload's namespace.
        lab.pods.push(pod("other/db-1"));
        assert!(lab.find_pod("ns/db").is_err());
        assert!(lab.find_pod("web").is_err(), "not ns/name");
        let missing = lab.find_pod("ns/ap").unwrap_err();
        assert_eq!(
            missing.to_string(),
            r#"no pod "ns/ap" in lab t; see `palisade lab status`"#
        );
    }
}
