//! Namespaces, workloads and services: the cluster the policies are written for.

use crate::pick;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

/// Teams owning tenant namespaces (namespace label `team`, pod label `team`).
pub(crate) const TEAMS: [&str; 8] = [
    "payments", "shop", "search", "data", "platform", "ml", "identity", "media",
];
/// Environments (namespace label `env`).
pub(crate) const ENVS: [&str; 3] = ["prod", "staging", "dev"];
/// Application tiers of tenant namespaces (pod label `tier`).
const APP_TIERS: [&str; 6] = ["frontend", "api", "worker", "db", "cache", "batch"];

/// Name of the monitoring namespace (present when the cluster has at least
/// [`PLATFORM_MIN_NAMESPACES`] namespaces).
pub(crate) const MONITORING: &str = "monitoring";
/// Name of the ingress-controller namespace (same condition as [`MONITORING`]).
pub(crate) const INGRESS_NGINX: &str = "ingress-nginx";
/// Below this many namespaces, only `kube-system` and tenant namespaces are generated.
const PLATFORM_MIN_NAMESPACES: usize = 6;

/// A container port.
#[derive(Clone, Debug)]
pub(crate) struct Port {
    /// IANA_SVC_NAME.
    pub name: &'static str,
    pub number: u16,
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
}

fn tcp(name: &'static str, number: u16) -> Port {
    Port {
        name,
        number,
        protocol: "TCP",
    }
}

fn udp(name: &'static str, number: u16) -> Port {
    Port {
        name,
        number,
        protocol: "UDP",
    }
}

/// A container of a pod template.
#[derive(Clone, Debug)]
pub(crate) struct Container {
    pub name: String,
    pub image: String,
    pub ports: Vec<Port>,
}

/// A Deployment or StatefulSet, and the Service in front of it.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    /// `Deployment` or `StatefulSet`.
    pub kind: &'static str,
    /// Workload name, also the `app` label and the Service name (except for CoreDNS).
    pub name: String,
    /// The `tier` label.
    pub tier: &'static str,
    /// Pod template labels (sorted by key when rendered).
    pub labels: Vec<(&'static str, String)>,
    /// `spec.selector.matchLabels`, also the Service selector.
    pub selector: Vec<(&'static str, String)>,
    pub containers: Vec<Container>,
    pub replicas: usize,
    /// Name of the Service.
    pub service: String,
    /// A headless Service (`clusterIP: None`), as StatefulSets usually have.
    pub headless: bool,
}

impl Workload {
    /// Every container port of the pod.
    pub fn ports(&self) -> impl Iterator<Item = &Port> {
        self.containers.iter().flat_map(|c| c.ports.iter())
    }
}

/// What a namespace is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NsKind {
    KubeSystem,
    Monitoring,
    IngressNginx,
    Tenant,
}

/// A namespace and its workloads.
#[derive(Clone, Debug)]
pub(crate) struct Namespace {
    pub name: String,
    pub kind: NsKind,
    pub team: &'static str,
    pub env: &'static str,
    /// Namespace labels beyond `team`, `env` and `role`.
    pub extra_labels: Vec<(&'static str, &'static str)>,
    pub role: &'static str,
    pub workloads: Vec<Workload>,
}

/// The namespaces of the cluster, labels only (workloads come from [`populate`]).
pub(crate) fn namespaces(count: usize, rng: &mut ChaCha8Rng) -> Vec<Namespace> {
    let platform = count >= PLATFORM_MIN_NAMESPACES;
    (0..count)
        .map(|i| {
            let fixed = |name: &str, kind| Namespace {
                name: name.to_string(),
                kind,
                team: "platform",
                env: "prod",
                extra_labels: Vec::new(),
                role: "core",
                workloads: Vec::new(),
            };
            match i {
                0 => return fixed("kube-system", NsKind::KubeSystem),
                1 if platform => return fixed(MONITORING, NsKind::Monitoring),
                2 if platform => return fixed(INGRESS_NGINX, NsKind::IngressNginx),
                _ => {}
            }
            let team = pick(rng, &TEAMS);
            let env = ENVS[match rng.random_range(0..10) {
                0..=4 => 0,
                5..=7 => 1,
                _ => 2,
            }];
            let role = match rng.random_range(0..10) {
                0 => "core",
                1 | 2 => "shared",
                _ => "tenant",
            };
            let mut extra_labels = Vec::new();
            if matches!(team, "payments" | "identity") && rng.random_bool(0.6) {
                extra_labels.push(("compliance", "pci"));
            }
            if rng.random_bool(0.3) {
                extra_labels.push(("istio-injection", "enabled"));
            }
            Namespace {
                name: format!("{team}-{env}-{i:04}"),
                kind: NsKind::Tenant,
                team,
                env,
                extra_labels,
                role,
                workloads: Vec::new(),
            }
        })
        .collect()
}

/// What a tenant tier runs: its workload but for the labels.
struct TierApp {
    name: &'static str,
    kind: &'static str,
    containers: Vec<Container>,
    headless: bool,
}

/// A Deployment of one container called `name`: most tiers' shape.
fn deployment(name: &'static str, ports: Vec<Port>) -> TierApp {
    TierApp {
        name,
        kind: "Deployment",
        containers: vec![container(name, ports)],
        headless: false,
    }
}

/// Builds one workload of a tenant namespace for `tier`.
fn tenant_workload(ns: &Namespace, tier: &'static str, rng: &mut ChaCha8Rng) -> Workload {
    let app = tier_app(tier, rng);
    let version = format!("v{}", rng.random_range(1..=3));
    let mut labels = app_labels(app.name, ns.team, tier, version);
    if app.kind == "Deployment" && rng.random_bool(0.1) {
        labels.push(("canary", "true".to_string()));
    }
    let selector = vec![("app", app.name.to_string())];
    let mut w = workload(app.name, app.kind, tier, labels, selector, app.containers);
    w.headless = app.headless;
    w
}

/// The application a tenant namespace runs for `tier`: name, kind and ports drawn from `rng`.
fn tier_app(tier: &'static str, rng: &mut ChaCha8Rng) -> TierApp {
    let http = |rng: &mut ChaCha8Rng| pick(rng, &[8080u16, 9090, 3000, 8000]);
    match tier {
        "frontend" => {
            let name = pick(rng, &["web", "storefront", "portal", "dashboard"]);
            let mut ports = vec![tcp("http", http(rng))];
            if rng.random_bool(0.7) {
                ports.push(tcp("metrics", 9100));
            }
            deployment(name, ports)
        }
        "api" => {
            let name = pick(rng, &["api", "orders", "catalog", "accounts", "checkout"]);
            let mut ports = vec![tcp("http", http(rng))];
            if rng.random_bool(0.6) {
                ports.push(tcp("grpc", pick(rng, &[50051, 9000])));
            }
            ports.push(tcp("metrics", 9100));
            if rng.random_bool(0.3) {
                ports.push(udp("statsd", 8125));
            }
            deployment(name, ports)
        }
        "worker" => {
            let name = pick(rng, &["worker", "indexer", "mailer", "scheduler"]);
            deployment(
                name,
                vec![tcp("metrics", pick(rng, &[9100, 9102])), tcp("admin", 8081)],
            )
        }
        "db" => {
            let (name, port, exporter) = if rng.random_bool(0.6) {
                ("postgres", 5432, 9187)
            } else {
                ("mysql", 3306, 9104)
            };
            TierApp {
                name,
                kind: "StatefulSet",
                containers: vec![
                    container(name, vec![tcp("db", port)]),
                    container("exporter", vec![tcp("metrics", exporter)]),
                ],
                headless: true,
            }
        }
        "cache" => {
            if rng.random_bool(0.6) {
                let mut redis = deployment("redis", vec![tcp("cache", 6379)]);
                if rng.random_bool(0.5) {
                    redis.kind = "StatefulSet";
                }
                redis
            } else {
                deployment(
                    "memcached",
                    vec![tcp("cache", 11211), udp("cache-udp", 11211)],
                )
            }
        }
        _ => {
            let name = pick(rng, &["reports", "etl", "exporter-job"]);
            deployment(name, vec![tcp("metrics", 9091)])
        }
    }
}

fn container(name: &str, ports: Vec<Port>) -> Container {
    Container {
        name: name.to_string(),
        image: format!("registry.example.com/{name}:1.{}", name.len() % 7),
        ports,
    }
}

/// A workload whose Service has its name, with no replicas yet ([`populate`] gives them).
fn workload(
    name: &str,
    kind: &'static str,
    tier: &'static str,
    labels: Vec<(&'static str, String)>,
    selector: Vec<(&'static str, String)>,
    containers: Vec<Container>,
) -> Workload {
    Workload {
        kind,
        name: name.to_string(),
        tier,
        labels,
        selector,
        containers,
        replicas: 0,
        service: name.to_string(),
        headless: false,
    }
}

/// The pod labels every workload has: `app`, `team`, `tier`, `version`.
fn app_labels(
    name: &str,
    team: &str,
    tier: &'static str,
    version: String,
) -> Vec<(&'static str, String)> {
    vec![
        ("app", name.to_string()),
        ("team", team.to_string()),
        ("tier", tier.to_string()),
        ("version", version),
    ]
}

/// A platform workload of one container, with the platform team's labels plus `extra_labels`.
fn platform_workload(
    name: &str,
    kind: &'static str,
    tier: &'static str,
    extra_labels: &[(&'static str, &str)],
    selector: &[(&'static str, &str)],
    ports: Vec<Port>,
) -> Workload {
    let mut labels = app_labels(name, "platform", tier, "v1".to_string());
    labels.extend(extra_labels.iter().map(|&(k, v)| (k, v.to_string())));
    let selector = selector.iter().map(|&(k, v)| (k, v.to_string())).collect();
    workload(
        name,
        kind,
        tier,
        labels,
        selector,
        vec![container(name, ports)],
    )
}

/// A platform workload selected by its `app` label.
fn platform_app(name: &str, kind: &'static str, tier: &'static str, ports: Vec<Port>) -> Workload {
    platform_workload(name, kind, tier, &[], &[("app", name)], ports)
}

/// The workloads of a platform namespace, most important first.
fn platform_workloads(kind: NsKind) -> Vec<Workload> {
    match kind {
        NsKind::KubeSystem => kube_system_workloads(),
        NsKind::Monitoring => monitoring_workloads(),
        NsKind::IngressNginx => ingress_nginx_workloads(),
        NsKind::Tenant => Vec::new(),
    }
}

/// CoreDNS (Service `kube-dns`) and metrics-server, selected by `k8s-app` as upstream does.
fn kube_system_workloads() -> Vec<Workload> {
    let k8s_app = |name, tier, app, ports| {
        let label = [("k8s-app", app)];
        platform_workload(name, "Deployment", tier, &label, &label, ports)
    };
    let mut dns = k8s_app(
        "coredns",
        "dns",
        "kube-dns",
        vec![udp("dns", 53), tcp("dns-tcp", 53), tcp("metrics", 9153)],
    );
    dns.service = "kube-dns".into();
    dns.containers[0].image = "registry.k8s.io/coredns/coredns:v1.11.3".into();
    let metrics_server = k8s_app(
        "metrics-server",
        "monitoring",
        "metrics-server",
        vec![tcp("https", 10250)],
    );
    vec![dns, metrics_server]
}

fn monitoring_workloads() -> Vec<Workload> {
    let mut prometheus = platform_app(
        "prometheus",
        "StatefulSet",
        "monitoring",
        vec![tcp("http", 9090)],
    );
    prometheus.headless = true;
    vec![
        prometheus,
        platform_app("grafana", "Deployment", "frontend", vec![tcp("http", 3000)]),
        platform_app(
            "alertmanager",
            "StatefulSet",
            "monitoring",
            vec![
                tcp("http", 9093),
                tcp("mesh-tcp", 9094),
                udp("mesh-udp", 9094),
            ],
        ),
        platform_app(
            "statsd-exporter",
            "Deployment",
            "monitoring",
            vec![udp("statsd", 8125), tcp("metrics", 9102)],
        ),
    ]
}

fn ingress_nginx_workloads() -> Vec<Workload> {
    let controller = platform_workload(
        "ingress-nginx-controller",
        "Deployment",
        "ingress",
        &[
            ("app.kubernetes.io/name", "ingress-nginx"),
            ("app.kubernetes.io/component", "controller"),
        ],
        &[
            ("app.kubernetes.io/component", "controller"),
            ("app.kubernetes.io/name", "ingress-nginx"),
        ],
        vec![tcp("http", 80), tcp("https", 443), tcp("metrics", 10254)],
    );
    vec![controller]
}

/// Replica weight of a tier: stateless front tiers scale out, data tiers stay small.
fn tier_weight(tier: &str) -> u32 {
    match tier {
        "frontend" | "api" | "dns" => 4,
        "worker" | "ingress" => 3,
        _ => 1,
    }
}

/// Gives every namespace its workloads, with replicas adding up to exactly `pods_per_ns`.
///
/// A namespace never has more workloads than pods (but always at least one, with zero replicas when
/// `pods_per_ns` is zero).
pub(crate) fn populate(nss: &mut [Namespace], pods_per_ns: usize, rng: &mut ChaCha8Rng) {
    let max_workloads = pods_per_ns.max(1);
    for ns in nss.iter_mut() {
        let mut workloads = if ns.kind == NsKind::Tenant {
            let count = rng.random_range(3..=6usize);
            let mut tiers: Vec<&'static str> = APP_TIERS.to_vec();
            while tiers.len() > count {
                tiers.remove(rng.random_range(0..tiers.len()));
            }
            // The first tiers survive truncation: keep the ones policies talk about most.
            tiers.sort_by_key(|t| APP_TIERS.iter().position(|x| x == t));
            tiers
                .into_iter()
                .map(|t| tenant_workload(ns, t, rng))
                .collect()
        } else {
            platform_workloads(ns.kind)
        };
        workloads.truncate(max_workloads);
        // One pod each, then the rest by weight.
        let base = pods_per_ns.min(workloads.len());
        for w in workloads.iter_mut().take(base) {
            w.replicas = 1;
        }
        let weights: Vec<u32> = workloads.iter().map(|w| tier_weight(w.tier)).collect();
        let total: u32 = weights.iter().sum();
        for _ in base..pods_per_ns {
            let mut r = rng.random_range(0..total);
            let mut i = 0;
            while r >= weights[i] {
                r -= weights[i];
                i += 1;
            }
            workloads[i].replicas += 1;
        }
        ns.workloads = workloads;
    }
}

fn labels_value(labels: &[(&str, String)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// The `Namespace` object.
pub(crate) fn namespace_doc(ns: &Namespace) -> Value {
    let mut labels = Map::new();
    labels.insert("team".into(), json!(ns.team));
    labels.insert("env".into(), json!(ns.env));
    labels.insert("role".into(), json!(ns.role));
    for (k, v) in &ns.extra_labels {
        labels.insert(k.to_string(), json!(v));
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name, "labels": labels}})
}

/// The Deployment or StatefulSet object.
pub(crate) fn workload_doc(ns: &Namespace, w: &Workload) -> Value {
    let containers: Vec<Value> = w
        .containers
        .iter()
        .map(|c| {
            let ports: Vec<Value> = c
                .ports
                .iter()
                .map(|p| {
                    let mut port = json!({"name": p.name, "containerPort": p.number});
                    if p.protocol != "TCP" {
                        port["protocol"] = json!(p.protocol);
                    }
                    port
                })
                .collect();
            json!({"name": c.name, "image": c.image, "ports": ports})
        })
        .collect();
    let mut spec = json!({
        "replicas": w.replicas,
        "selector": {"matchLabels": labels_value(&w.selector)},
        "template": {
            "metadata": {"labels": labels_value(&w.labels)},
            "spec": {"containers": containers}
        }
    });
    if w.kind == "StatefulSet" {
        spec["serviceName"] = json!(w.service);
    }
    let meta_labels: Vec<(&str, String)> = w
        .labels
        .iter()
        .filter(|(k, _)| matches!(*k, "app" | "team" | "tier" | "k8s-app"))
        .cloned()
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": w.kind,
        "metadata": {"name": w.name, "namespace": ns.name, "labels": labels_value(&meta_labels)},
        "spec": spec
    })
}

/// The Service in front of a workload: `http`/`https` on 80/443, others on their container port;
/// `targetPort` named or numeric at random.
pub(crate) fn service_doc(ns: &Namespace, w: &Workload, rng: &mut ChaCha8Rng) -> Value {
    let ports: Vec<Value> = w
        .ports()
        .map(|p| {
            let port = match p.name {
                "http" => 80,
                "https" => 443,
                _ => p.number,
            };
            let target = if rng.random_bool(0.5) {
                json!(p.name)
            } else {
                json!(p.number)
            };
            json!({"name": p.name, "port": port, "targetPort": target, "protocol": p.protocol})
        })
        .collect();
    let mut spec = json!({"selector": labels_value(&w.selector), "ports": ports});
    if w.headless {
        spec["clusterIP"] = json!("None");
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": w.service, "namespace": ns.name, "labels": {"app": w.name}},
        "spec": spec
    })
}
