//! Set-up shared by the lab's kernel tests (as root): the engine of a cluster written inline, and a
//! lab of its pods with every container port served.
#![allow(dead_code)] // each test binary uses a part

use palisade_lab::{self as lab, DownOnDrop, Lab};
use palisade_model::{ClusterState, Loader};
use palisade_policy::Engine;
use std::sync::Arc;

/// The engine of the cluster in `yaml`, which must load without errors.
pub fn engine(yaml: &str) -> Engine {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", yaml);
    let (state, diags) = loader.finish();
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
    Engine::new(Arc::new(state))
}

/// Lab `<prefix><pid>` of the pods of `state`, created (after removing what an earlier process of
/// that PID may have left) with responders on every pod's container ports; it is taken down when
/// the returned guard drops.
pub fn served_lab(prefix: &str, state: &ClusterState) -> (Lab, DownOnDrop) {
    served_lab_of(prefix, state, 1)
}

/// [`served_lab`] of `nodes` nodes.
pub fn served_lab_of(prefix: &str, state: &ClusterState, nodes: usize) -> (Lab, DownOnDrop) {
    lab::require_root().expect("the kernel tests run as root");
    let name = format!("{prefix}{}", std::process::id());
    let _ = Lab::down(&name);
    let teardown = DownOnDrop(name.clone());
    let lab = Lab::plan_nodes(&name, state, nodes).expect("lab plan");
    lab.create().expect("lab up");
    for p in &lab.pods {
        lab::serve(&p.netns, &p.tcp, &p.udp).expect("responders");
    }
    (lab, teardown)
}
