//! Why a lab operation failed: what it was doing, on which namespace, file or process, and the
//! underlying error. The messages are those `palisade lab` prints after `error: `.

use palisade_dataplane::ApplyError;
use std::io;
use std::path::PathBuf;

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab creates namespaces and links: it needs root.
    #[error("the lab creates network namespaces and needs root: run it with sudo")]
    NotRoot,
    /// A lab of this name is recorded as up.
    #[error("lab {name:?} is already up; run `palisade lab down` first")]
    AlreadyUp { name: String },
    /// No lab of this name is recorded (its state file cannot be read).
    #[error("lab {name:?} is not up")]
    NotUp {
        name: String,
        #[source]
        source: io::Error,
    },
    /// The state file is not a lab's state.
    #[error("corrupt lab state: {source}")]
    Corrupt {
        #[source]
        source: serde_json::Error,
    },
    /// The state folder cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The state file cannot be written.
    #[error("cannot record lab state: {source}")]
    Record {
        #[source]
        source: io::Error,
    },
    /// A tool (`ip`) cannot be started.
    #[error("cannot run {program}: {source}")]
    Tool {
        program: String,
        #[source]
        source: io::Error,
    },
    /// A tool ran and failed.
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    /// The node's end of a pod's veth has no MAC address to point the pod's gateway at.
    #[error("cannot read the MAC of {link}")]
    NoMac { link: String },
    /// The Services' NAT table was not applied.
    #[error("services: {0}")]
    Services(#[source] ApplyError),
    /// A pod's hosts file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Hosts {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The log file of a background process cannot be created.
    #[error("{}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A background process (its arguments) cannot be started.
    #[error("{source}")]
    Start {
        #[source]
        source: io::Error,
    },
    /// A process the lab started cannot be identified for the state file (it was killed again).
    #[error("cannot record process {pid} ({command}): {source}")]
    Identify {
        pid: u32,
        command: String,
        #[source]
        source: io::Error,
    },
    /// A background process did not get ready in time.
    #[error("timed out waiting for {what}; see the logs in {}", logs.display())]
    Timeout { what: String, logs: PathBuf },
    /// No pod of the lab has that key, nor starts with it as a workload's pods do.
    #[error("no pod {pod:?} in lab {lab}; see `palisade lab status`")]
    NoPod { pod: String, lab: String },
    /// A command cannot be run in a pod's namespace.
    #[error("{source}")]
    Exec {
        #[source]
        source: io::Error,
    },
    /// A pod's responders cannot listen.
    #[error("{pod}: {source}")]
    Serve {
        pod: String,
        #[source]
        source: io::Error,
    },
    /// The responders cannot mark the lab ready.
    #[error("{source}")]
    Ready {
        #[source]
        source: io::Error,
    },
    /// The lab's state names no manifests folder (written by hand, or by an older palisade).
    #[error("lab has no manifests")]
    NoManifests,
    /// Probing could not run (a thread could not enter a pod's namespace).
    #[error("{source}")]
    Probe {
        #[source]
        source: io::Error,
    },
    /// `--nodes` out of range.
    #[error("a lab has 1 to {} nodes, not {nodes}", crate::MAX_NODES)]
    Nodes { nodes: usize },
    /// A pod's `spec.nodeName` names no node of the lab.
    #[error("{origin}: Pod {pod}: spec.nodeName {node:?} is not a node of lab {lab}: name one of node-0 .. node-{last}, or none to place it round-robin")]
    UnknownNode {
        origin: String,
        pod: String,
        node: String,
        lab: String,
        last: usize,
    },
    /// A node's pod CIDR has no address left for a pod placed on it.
    #[error("node {node}: no free address left in its pod CIDR {cidr}")]
    NodeFull { node: String, cidr: ipnet::Ipv4Net },
    /// An agent names a node the lab does not have.
    #[error("lab {lab} has no node {node:?}; its nodes are {nodes}")]
    NoNode {
        node: String,
        lab: String,
        nodes: String,
    },
    /// Taking the lab down left some of its namespaces behind.
    #[error("{}", joined(.0))]
    Down(Vec<LabError>),
}

/// The messages of `errors`, in order, separated by `; `.
fn joined(errors: &[LabError]) -> String {
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    messages.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_messages_name_what_failed_and_keep_the_cause_as_source() {
        let missing = || io::Error::from(io::ErrorKind::NotFound);
        let not_up = LabError::NotUp {
            name: "demo".into(),
            source: missing(),
        };
        assert_eq!(not_up.to_string(), r#"lab "demo" is not up"#);
        assert!(not_up.source().is_some());
        let failed = |ns: &str| LabError::Failed {
            command: format!("ip netns del {ns}"),
            stderr: "busy".into(),
        };
        assert_eq!(
            LabError::Down(vec![failed("a"), failed("b")]).to_string(),
            "`ip netns del a` failed: busy; `ip netns del b` failed: busy"
        );
        let hosts = LabError::Hosts {
            path: "/etc/netns/pal-demo-p0".into(),
            source: missing(),
        };
        assert!(
            hosts
                .to_string()
                .starts_with("cannot write /etc/netns/pal-demo-p0: "),
            "{hosts}"
        );
    }
}
