//! The lab: pods as network namespaces on this machine, routed through a "node" namespace where the
//! dataplane enforces, so real packets meet real kernel rules with no cluster. It is a tool for
//! trying and testing the dataplane, not part of it: no production crate depends on this one.
//!
//! Layout for a lab named `L` of one node: namespace `pal-L-node`, and per pod `pal-L-p<i>` joined to the node by a
//! veth (`eth0` in the pod, `pl<i>` in the node) with the pod's IP as a /32, a default route via a
//! link-local gateway with a permanent neighbour entry (proxy ARP is unreliable here), and a /32 route
//! back in the node (Calico style). Services get a ClusterIP with DNAT in the node and their names in
//! each pod's `/etc/netns/<ns>/hosts` (which `ip netns exec` mounts over `/etc/hosts`). Everything the
//! lab creates carries the `pal-L-` prefix, and the processes it starts are recorded in a state file
//! (with their start time, so a PID reused since is left alone), so `down` removes exactly that,
//! even after a crash. A lab of several nodes (`--nodes N`) has a namespace per node, joined by a
//! fabric, and an agent per node enforcing the pods placed on it (see the `nodes` module).

mod error;
mod launch;
mod measure;
mod net;
mod nodes;
mod paths;
mod process;
mod services;
mod topology;

pub use error::LabError;
pub use launch::{serve_pods, Launch};
pub use measure::{measure, Comparison, Difference, Measured};
pub use net::{probe, serve, Transport};
pub use nodes::{LabNode, MAX_NODES};
pub use paths::{
    agent_status, last_good, observe_socket, per_node, policy_log, process_log, ready_file,
    state_dir,
};
pub use process::{LabProcess, ProcessStatus, RecordedProcess};
pub use services::ServicePlan;
pub use topology::{require_root, DownOnDrop, Lab, LabPod};
