//! From typed objects to what policy sees of them: the `PodInfo` of a Pod (or of a pod a workload's
//! template stands for), the `ServiceInfo` of a Service and the `NodeInfo` of a Node.

use crate::diagnostic::Origin;
use crate::objects::{labels_of, Loaded};
use crate::state::{ContainerPortInfo, NodeInfo, OwnerRef, PodInfo, ServiceInfo, ServicePortInfo};
use crate::{validate, Protocol};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn parse_protocol(p: Option<&str>) -> Protocol {
    validate::protocol(p).unwrap_or(Protocol::Tcp) // validated before; never falls back in practice
}

pub(crate) fn pod_info(loaded: &Loaded<Pod>) -> PodInfo {
    let pod = &loaded.object;
    let mut info = pod_info_of(&pod.metadata, pod.spec.as_ref(), loaded.origin());
    let status = pod.status.as_ref();
    let ip_text = if info.host_network {
        status.and_then(|s| s.host_ip.as_ref().or(s.pod_ip.as_ref()))
    } else {
        status.and_then(|s| s.pod_ip.as_ref())
    };
    info.finished = status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| matches!(phase, "Succeeded" | "Failed"));
    info.ip = ip_text
        .filter(|_| !info.finished)
        .and_then(|ip| ip.parse().ok());
    info.host_ip = status.and_then(|s| s.host_ip.as_ref()?.parse().ok());
    info
}

/// What a pod's metadata and spec say of it (no status: no addresses), as read from `origin`.
pub(crate) fn pod_info_of(meta: &ObjectMeta, spec: Option<&PodSpec>, origin: &Origin) -> PodInfo {
    let ports = spec
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| ContainerPortInfo {
            name: p.name.clone(),
            port: p.container_port as u16,
            protocol: parse_protocol(p.protocol.as_deref()),
        })
        .collect();
    PodInfo {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        labels: labels_of(meta),
        ip: None,
        ip_allocated: false,
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        host_ip: None,
        // An empty name schedules the pod nowhere.
        node_name: (spec.and_then(|s| s.node_name.clone())).filter(|n| !n.is_empty()),
        finished: false,
        ports,
        // Shown in reports as is: only an owner whose kind is a word and whose name is an object
        // name (nothing that could break a line or a table) is kept.
        owner: (meta.owner_references.iter().flatten().next())
            .filter(|o| !o.kind.is_empty() && o.kind.chars().all(|c| c.is_ascii_alphanumeric()))
            .filter(|o| crate::validate::dns1123_subdomain(&o.name).is_ok())
            .map(|o| OwnerRef {
                kind: o.kind.clone(),
                name: o.name.clone(),
            }),
        from_template: false,
        origin: origin.clone(),
    }
}

pub(crate) fn service_info(loaded: &Loaded<Service>) -> ServiceInfo {
    let svc = &loaded.object;
    let spec = svc.spec.clone().unwrap_or_default();
    ServiceInfo {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        selector: spec.selector,
        cluster_ip: spec.cluster_ip,
        ports: spec
            .ports
            .into_iter()
            .flatten()
            .map(|p| ServicePortInfo {
                name: p.name,
                port: p.port as u16,
                protocol: parse_protocol(p.protocol.as_deref()),
                target_port: p.target_port.unwrap_or(IntOrString::Int(p.port)),
            })
            .collect(),
        origin: loaded.origin().clone(),
    }
}

/// A node (decoding kept only its valid `InternalIP` and `ExternalIP` addresses), each address
/// once.
pub(crate) fn node_info(loaded: &Loaded<Node>) -> NodeInfo {
    let node = &loaded.object;
    let given = (node.status.iter())
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| a.address.parse().ok());
    let mut addresses = Vec::new();
    for ip in given {
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: labels_of(&node.metadata),
        addresses,
        origin: loaded.origin().clone(),
    }
}
