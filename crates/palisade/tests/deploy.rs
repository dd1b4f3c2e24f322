//! `deploy/` against the code: every document decodes as its Kubernetes type with no field left
//! over, the RBAC rules grant exactly what the agent uses (least privilege), and the DaemonSet
//! runs the agent with flags it has, on the paths and port those flags name, with only the
//! capabilities it needs. Nothing here talks to a cluster (`scripts/cluster-test` does).

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, ResourceQuota, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
const NAMESPACE: &str = "palisade-system";
const ACCOUNT: &str = "palisade-agent";
const READ: [&str; 2] = ["list", "watch"];

/// The objects of `deploy/`, by kind.
#[derive(Default)]
struct Deploy {
    namespaces: Vec<Namespace>,
    accounts: Vec<ServiceAccount>,
    quotas: Vec<ResourceQuota>,
    cluster_roles: Vec<ClusterRole>,
    cluster_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    bindings: Vec<RoleBinding>,
    daemon_sets: Vec<DaemonSet>,
    crds: Vec<CustomResourceDefinition>,
}

/// What `kubectl apply -k deploy/` reads first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    resources: Vec<String>,
}

/// Every document of the files `deploy/kustomization.yaml` lists, decoded strictly; the files it
/// lists are exactly the YAML files of `deploy/`.
fn deploy() -> Deploy {
    let read = |name: &str| {
        let path = Path::new(DEPLOY).join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let kustomization: Kustomization = serde_yaml_ng::from_str(&read("kustomization.yaml"))
        .unwrap_or_else(|e| panic!("deploy/kustomization.yaml: {e}"));
    assert_eq!(
        (
            kustomization.api_version.as_str(),
            kustomization.kind.as_str()
        ),
        ("kustomize.config.k8s.io/v1beta1", "Kustomization")
    );
    let listed: BTreeSet<String> = kustomization.resources.iter().cloned().collect();
    let present: BTreeSet<String> = std::fs::read_dir(DEPLOY)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml lists every manifest");
    let mut deploy = Deploy::default();
    for name in &kustomization.resources {
        let text = read(name);
        for (index, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let at = format!("deploy/{name} document {}", index + 1);
            let value = Value::deserialize(document).unwrap_or_else(|e| panic!("{at}: {e}"));
            deploy.add(&at, value);
        }
    }
    deploy
}

impl Deploy {
    fn add(&mut self, at: &str, value: Value) {
        let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Namespace") => self.namespaces.push(strict(at, value)),
            ("v1", "ServiceAccount") => self.accounts.push(strict(at, value)),
            ("v1", "ResourceQuota") => self.quotas.push(strict(at, value)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                self.cluster_roles.push(strict(at, value))
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                self.cluster_bindings.push(strict(at, value))
            }
            ("rbac.authorization.k8s.io/v1", "Role") => self.roles.push(strict(at, value)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                self.bindings.push(strict(at, value))
            }
            ("apps/v1", "DaemonSet") => self.daemon_sets.push(strict(at, value)),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                self.crds.push(strict(at, value))
            }
            _ => panic!("{at}: {api_version} {kind} is not a kind this test knows; add it"),
        }
    }

    fn agent(&self) -> &DaemonSet {
        let [agent] = &self.daemon_sets[..] else {
            panic!("one DaemonSet, not {}", self.daemon_sets.len());
        };
        agent
    }

    fn cluster_role(&self, name: &str) -> &ClusterRole {
        (self.cluster_roles.iter())
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no ClusterRole {name}"))
    }

    fn role(&self, name: &str) -> &Role {
        (self.roles.iter())
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no Role {name}"))
    }
}

/// `value` as a `T`, refused when decoding it drops or changes anything: the k8s-openapi types
/// ignore unknown fields, as the API server would silently (a misspelt `hostNetwrok: true` is an
/// agent without host networking), so the round trip must give the document back.
fn strict<T: DeserializeOwned + Serialize>(at: &str, value: Value) -> T {
    let typed: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{at}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    let mut lost = Vec::new();
    differences(&value, &back, String::new(), &mut lost);
    assert!(
        lost.is_empty(),
        "{at}: fields unknown or not kept: {lost:?}"
    );
    typed
}

/// The paths (`.spec.template.x`) at which `given` holds something `back` does not.
fn differences(given: &Value, back: &Value, path: String, out: &mut Vec<String>) {
    match (given, back) {
        (Value::Object(given), Value::Object(back)) => {
            for (key, value) in given {
                let at = format!("{path}.{key}");
                match back.get(key) {
                    Some(kept) => differences(value, kept, at, out),
                    None => out.push(at),
                }
            }
        }
        (Value::Array(given), Value::Array(back)) if given.len() == back.len() => {
            for (i, (value, kept)) in given.iter().zip(back).enumerate() {
                differences(value, kept, format!("{path}[{i}]"), out);
            }
        }
        _ if given != back => out.push(path),
        _ => {}
    }
}

/// `(API group, resource, verb)` of every grant of `rules`, after refusing what no Palisade role
/// may hold: wildcards, non-resource URLs, secrets, subresources (`pods/exec`).
fn grants(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        for word in groups.iter().chain(resources).chain(&rule.verbs) {
            assert!(!word.contains('*'), "a wildcard: {rule:?}");
        }
        for resource in resources {
            assert!(!resource.contains('/'), "a subresource: {rule:?}");
            assert_ne!(resource, "secrets", "{rule:?}");
            for group in groups {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    (items.iter())
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect()
}

/// `(API group, resource)` of a list path (`/api/v1/pods`, `/apis/GROUP/VERSION/RESOURCE`).
fn resource(path: &str) -> (&str, &str) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", _, resource] => ("", resource),
        ["apis", group, _, resource] => (group, resource),
        _ => panic!("not a list path: {path}"),
    }
}

#[test]
fn the_agent_reads_what_the_code_lists_and_writes_only_events() {
    let deploy = deploy();
    let granted = grants(
        deploy
            .cluster_role("palisade-agent")
            .rules
            .as_deref()
            .unwrap(),
    );
    let read: Vec<(&str, &str)> = (palisade_kube::KINDS.iter())
        .map(|k| resource(k.path))
        .collect();
    let mut expected: Vec<(&str, &str, &str)> = (read.iter())
        .flat_map(|&(g, r)| READ.map(|v| (g, r, v)))
        .collect();
    for group in ["", "events.k8s.io"] {
        expected.extend([(group, "events", "create"), (group, "events", "patch")]);
    }
    assert_eq!(granted, set(&expected));
}

#[test]
fn the_agent_keeps_leases_in_its_namespace_only() {
    let deploy = deploy();
    let role = deploy.role("palisade-agent-leases");
    assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
    // Server-side apply: patch, and create when the Lease does not exist yet.
    let verbs = ["create", "patch"];
    let expected: Vec<_> = verbs.map(|v| ("coordination.k8s.io", "leases", v)).into();
    assert_eq!(grants(role.rules.as_deref().unwrap()), set(&expected));
    // `palisade status` reads them; it writes nothing.
    let status = deploy.role("palisade-status");
    assert_eq!(status.metadata.namespace.as_deref(), Some(NAMESPACE));
    let expected = set(&[("coordination.k8s.io", "leases", "list")]);
    assert_eq!(grants(status.rules.as_deref().unwrap()), expected);
}

#[test]
fn no_role_writes_anything_but_events_and_leases() {
    let deploy = deploy();
    let rules = (deploy
        .cluster_roles
        .iter()
        .flat_map(|r| r.rules.iter().flatten()))
    .chain(deploy.roles.iter().flat_map(|r| r.rules.iter().flatten()));
    for (group, resource, verb) in grants(&rules.cloned().collect::<Vec<_>>()) {
        if !READ.contains(&verb.as_str()) {
            assert!(
                matches!(
                    (group.as_str(), resource.as_str()),
                    ("" | "events.k8s.io", "events") | ("coordination.k8s.io", "leases")
                ),
                "{verb} {group}/{resource}"
            );
        }
    }
}

#[test]
fn the_bindings_give_the_agents_roles_to_its_service_account_only() {
    let deploy = deploy();
    let [account] = &deploy.accounts[..] else {
        panic!("one ServiceAccount")
    };
    assert_eq!(account.metadata.name.as_deref(), Some(ACCOUNT));
    assert_eq!(account.metadata.namespace.as_deref(), Some(NAMESPACE));
    let [namespace] = &deploy.namespaces[..] else {
        panic!("one Namespace")
    };
    assert_eq!(namespace.metadata.name.as_deref(), Some(NAMESPACE));
    let mut bound = Vec::new();
    let bindings = (deploy.cluster_bindings.iter())
        .map(|b| (&b.metadata, &b.role_ref, &b.subjects))
        .chain((deploy.bindings.iter()).map(|b| (&b.metadata, &b.role_ref, &b.subjects)));
    for (metadata, role_ref, subjects) in bindings {
        let name = metadata.name.as_deref().unwrap_or_default();
        assert_eq!(role_ref.api_group, "rbac.authorization.k8s.io", "{name}");
        let [subject] = subjects.as_deref().unwrap_or_default() else {
            panic!("{name}: one subject")
        };
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", ACCOUNT, Some(NAMESPACE)),
            "{name}"
        );
        if role_ref.kind == "Role" {
            assert_eq!(metadata.namespace.as_deref(), Some(NAMESPACE), "{name}");
            deploy.role(&role_ref.name);
        } else {
            assert_eq!(role_ref.kind, "ClusterRole", "{name}");
            deploy.cluster_role(&role_ref.name);
        }
        bound.push(format!("{} {}", role_ref.kind, role_ref.name));
    }
    bound.sort();
    // The reader roles are for people (bound by them), not for the agent.
    assert_eq!(
        bound,
        ["ClusterRole palisade-agent", "Role palisade-agent-leases"]
    );
}

/// The DaemonSet's pod spec and its one container.
fn agent_pod(deploy: &Deploy) -> (&PodSpec, &Container) {
    let spec = deploy.agent().spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    let [container] = &pod.containers[..] else {
        panic!("one container")
    };
    (pod, container)
}

/// The value of `--flag=VALUE` in the container's arguments.
fn flag<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    (container.args.iter().flatten()).find_map(|arg| arg.strip_prefix(&prefix))
}

#[test]
fn the_agent_runs_on_every_node_in_the_host_network_as_its_account() {
    let deploy = deploy();
    let daemon_set = deploy.agent();
    assert_eq!(daemon_set.metadata.namespace.as_deref(), Some(NAMESPACE));
    let strategy = daemon_set.spec.as_ref().unwrap().update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref()).unwrap();
    assert_eq!(strategy.unwrap().type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(1)));
    let (pod, container) = agent_pod(&deploy);
    assert_eq!(pod.service_account_name.as_deref(), Some(ACCOUNT));
    assert_eq!(
        pod.automount_service_account_token, None,
        "the agent needs its token"
    );
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    let tolerates_all = (pod.tolerations.iter().flatten())
        .any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none());
    assert!(tolerates_all, "{:?}", pod.tolerations);
    assert!(pod.termination_grace_period_seconds.is_some());
    let node_name = (container.env.iter().flatten())
        .find(|e| e.name == "NODE_NAME")
        .and_then(|e| e.value_from.as_ref()?.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(node_name, Some("spec.nodeName"));
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert!(container.image.as_deref().unwrap().contains("palisade"));
    assert_eq!(
        flag(container, "--manifests"),
        None,
        "the API server is the source"
    );
}

/// A namespaced object without a namespace would land in whatever namespace kubectl is set to.
#[test]
fn every_namespaced_object_is_in_the_agents_namespace() {
    let deploy = deploy();
    let namespaced = (deploy.accounts.iter().map(|o| &o.metadata))
        .chain(deploy.quotas.iter().map(|o| &o.metadata))
        .chain(deploy.roles.iter().map(|o| &o.metadata))
        .chain(deploy.bindings.iter().map(|o| &o.metadata))
        .chain(deploy.daemon_sets.iter().map(|o| &o.metadata));
    for metadata in namespaced {
        assert_eq!(
            metadata.namespace.as_deref(),
            Some(NAMESPACE),
            "{:?}",
            metadata.name
        );
    }
}

/// Where the system priority classes are limited (GKE), a pod gets one only in a namespace with a
/// quota for it: without one, the DaemonSet would create no pod at all.
#[test]
fn a_quota_admits_the_agents_priority_class_in_its_namespace() {
    let deploy = deploy();
    let (pod, _) = agent_pod(&deploy);
    let class = pod.priority_class_name.as_deref().unwrap();
    let admitted = (deploy.quotas.iter())
        .filter(|q| q.metadata.namespace.as_deref() == Some(NAMESPACE))
        .filter_map(|q| {
            q.spec
                .as_ref()?
                .scope_selector
                .as_ref()?
                .match_expressions
                .as_ref()
        })
        .flatten()
        .any(|e| {
            (e.scope_name.as_str(), e.operator.as_str()) == ("PriorityClass", "In")
                && e.values.iter().flatten().any(|v| v == class)
        });
    assert!(admitted, "no ResourceQuota in {NAMESPACE} for {class}");
}

#[test]
fn the_probes_ask_the_port_metrics_addr_names() {
    let deploy = deploy();
    let (_, container) = agent_pod(&deploy);
    let addr: SocketAddr = flag(container, "--metrics-addr")
        .expect("--metrics-addr")
        .parse()
        .unwrap();
    // The kubelet probes the pod's address, which is the node's: the agent must listen there.
    assert!(addr.ip().is_unspecified(), "{addr}");
    let port_of = |port: &IntOrString| match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            (container.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("no port named {name}"))
                .container_port
        }
    };
    for (probe, path) in [
        (&container.liveness_probe, "/healthz"),
        (&container.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect(path);
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(port_of(&get.port), i32::from(addr.port()), "{path}");
        assert_eq!(get.host, None, "{path}: the pod's (node's) address");
    }
}

#[test]
fn every_path_the_agent_writes_is_a_host_folder_mounted_there() {
    let deploy = deploy();
    let (pod, container) = agent_pod(&deploy);
    let mut used = BTreeSet::new();
    for name in ["--policy-log", "--observe-socket", "--state-file"] {
        let path = Path::new(flag(container, name).unwrap_or_else(|| panic!("{name}")));
        let folder = path.parent().unwrap().to_str().unwrap();
        let mount = (container.volume_mounts.iter().flatten())
            .find(|m| m.mount_path == folder)
            .unwrap_or_else(|| panic!("{name}: nothing mounted at {folder}"));
        assert_ne!(mount.read_only, Some(true), "{name}");
        assert_eq!(mount.sub_path, None, "{name}");
        let volume = (pod.volumes.iter().flatten())
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("{name}: no volume {}", mount.name));
        let host = volume.host_path.as_ref().expect("a hostPath volume");
        assert_eq!(host.path, folder, "{name}: the node's own folder");
        assert_eq!(host.type_.as_deref(), Some("DirectoryOrCreate"), "{name}");
        used.insert(mount.name.clone());
    }
    let mounted: BTreeSet<String> = (container.volume_mounts.iter().flatten())
        .map(|m| m.name.clone())
        .collect();
    assert_eq!(mounted, used, "no host folder mounted that no flag uses");
}

#[test]
fn the_agent_is_root_with_net_admin_only_and_cannot_escalate() {
    let deploy = deploy();
    let (pod, container) = agent_pod(&deploy);
    assert_ne!(pod.host_pid, Some(true));
    assert_ne!(pod.host_ipc, Some(true));
    let context = container.security_context.as_ref().unwrap();
    let capabilities = context.capabilities.as_ref().unwrap();
    assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(
        capabilities.add.as_deref(),
        Some(&["NET_ADMIN".to_string()][..])
    );
    assert_eq!(context.allow_privilege_escalation, Some(false));
    assert_ne!(context.privileged, Some(true));
    assert_eq!(context.read_only_root_filesystem, Some(true));
    // Root, to own the host folders it writes: neither runAsNonRoot nor another user.
    let pod_context = pod.security_context.as_ref();
    for non_root in [
        context.run_as_non_root,
        pod_context.and_then(|c| c.run_as_non_root),
    ] {
        assert_ne!(non_root, Some(true));
    }
    for user in [context.run_as_user, pod_context.and_then(|c| c.run_as_user)] {
        assert!(matches!(user, None | Some(0)), "{user:?}");
    }
    let seccomp = (context.seccomp_profile.as_ref())
        .or(pod_context.and_then(|c| c.seccomp_profile.as_ref()))
        .map(|s| s.type_.as_str());
    assert_eq!(seccomp, Some("RuntimeDefault"));
}

#[test]
fn the_agent_requests_resources_and_has_a_memory_limit() {
    let deploy = deploy();
    let (_, container) = agent_pod(&deploy);
    let resources = container.resources.as_ref().unwrap();
    let requests = resources.requests.as_ref().unwrap();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    let limits = resources.limits.as_ref().unwrap();
    assert!(limits.contains_key("memory"));
    assert!(
        !limits.contains_key("cpu"),
        "throttling would delay enforcement"
    );
}

/// `palisade agent --help`.
fn agent_help() -> String {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["agent", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    String::from_utf8(help.stdout).unwrap()
}

#[test]
fn the_container_args_are_flags_of_palisade_agent() {
    let help = agent_help();
    let flags: BTreeSet<&str> = (help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
        .filter(|word| word.starts_with("--"))
        .collect();
    let deploy = deploy();
    let (_, container) = agent_pod(&deploy);
    let args = container.args.as_deref().unwrap();
    assert_eq!(args.first().map(String::as_str), Some("agent"));
    assert_eq!(
        container.command, None,
        "the image's entrypoint is palisade"
    );
    for arg in &args[1..] {
        let name = arg.split('=').next().unwrap();
        assert!(
            flags.contains(name),
            "{arg}: `palisade agent --help` has no {name}"
        );
    }
}

/// The paths are written out in the DaemonSet only to be checked against the mounts: they must be
/// the agent's defaults, which `palisade observe` on the node and the README's log paths assume.
#[test]
fn the_paths_given_are_the_agents_defaults() {
    let help = agent_help();
    let deploy = deploy();
    let (_, container) = agent_pod(&deploy);
    for name in ["--policy-log", "--observe-socket", "--state-file"] {
        let value = flag(container, name).unwrap();
        let heading = format!("{name} <");
        let mut lines = (help.lines()).skip_while(|l| !l.trim_start().starts_with(&heading));
        let described = lines
            .nth(1)
            .unwrap_or_else(|| panic!("{name} is not in --help"));
        assert!(
            described.contains(&format!("default {value}")),
            "{name}={value}: the help says {described:?}"
        );
    }
}
