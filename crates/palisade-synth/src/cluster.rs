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

/// Builds one workload of a tenant namespace for `tier`.
fn tenant_workload(ns: &Namespace, tier: &'static str, rng: &mut ChaCha8Rng) -> Workload {
    let http = |rng: &mut ChaCha8Rng| pick(rng, &[8080u16, 9090, 3000, 8000]);
    let (name, kind, containers, headless): (&str, &str, Vec<Container>, bool) = match tier {
        "frontend" => {
            let name = pick(rng, &["web", "storefront", "portal", "dashboard"]);
            let mut ports = vec![tcp("http", http(rng))];
            if rng.random_bool(0.7) {
                ports.push(tcp("metrics", 9100));
            }
            (name, "Deployment", vec![container(name, ports)], false)
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
            (name, "Deployment", vec![container(name, ports)], false)
        }
        "worker" => {
            let name = pick(rng, &["worker", "indexer", "mailer", "scheduler"]);
            let ports = vec![tcp("metrics", pick(rng, &[9100, 9102])), tcp("admin", 8081)];
            (name, "Deployment", vec![container(name, ports)], false)
        }
        "db" => {
            let (name, port, exporter) = if rng.random_bool(0.6) {
                ("postgres", 5432, 9187)
            } else {
                ("mysql", 3306, 9104)
            };
            let containers = vec![
                container(name, vec![tcp("db", port)]),
                container("exporter", vec![tcp("metrics", exporter)]),
            ];
            (name, "StatefulSet", containers, true)
        }
        "cache" => {
            if rng.random_bool(0.6) {
                let kind = if rng.random_bool(0.5) {
                    "StatefulSet"
                } else {
                    "Deployment"
                };
                let ports = vec![tcp("cache", 6379)];
                ("redis", kind, vec![container("redis", ports)], false)
            } else {
                let ports = vec![tcp("cache", 11211), udp("cache-udp", 11211)];
                (
                    "memcached",
                    "Deployment",
                    vec![container("memcached", ports)],
                    false,
                )
            }
        }
        _ => {
            let name = pick(rng, &["reports", "etl", "exporter-job"]);
            let ports = vec![tcp("metrics", 9091)];
            (name, "Deployment", vec![container(name, ports)], false)
        }
    };
    let mut labels = vec![
        ("app", name.to_string()),
        ("team", ns.team.to_string()),
        ("tier", tier.to_string()),
        ("version", format!("v{}", rng.random_range(1..=3))),
    ];
    if kind == "Deployment" && rng.random_bool(0.1) {
        labels.push(("canary", "true".to_string()));
    }
    Workload {
        kind,
        name: name.to_string(),
        tier,
        labels,
        selector: vec![("app", name.to_string())],
        containers,
        replicas: 0,
        service: name.to_string(),
        headless,
    }
}

fn container(name: &str, ports: Vec<Port>) -> Container {
    Container {
        name: name.to_string(),
        image: format!("registry.example.com/{name}:1.{}", name.len() % 7),
        ports,
    }
}

fn platform_workload(
    name: &str,
    kind: &'static str,
    tier: &'static str,
    labels: Vec<(&'static str, String)>,
    selector: Vec<(&'static str, String)>,
    ports: Vec<Port>,
) -> Workload {
    Workload {
        kind,
        name: name.to_string(),
        tier,
        labels,
        selector,
        containers: vec![container(name, ports)],
        replicas: 0,
        service: name.to_string(),
        headless: false,
    }
}

fn app_labels(name: &str, tier: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("app", name.to_string()),
        ("team", "platform".to_string()),
        ("tier", tier.to_string()),
        ("version", "v1".to_string()),
    ]
}

/// The workloads of a platform namespace, most important first.
fn platform_workloads(kind: NsKind) -> Vec<Workload> {
    match kind {
        NsKind::KubeSystem => {
            let mut dns_labels = app_labels("coredns", "dns");
            dns_labels.push(("k8s-app", "kube-dns".to_string()));
            let mut dns = platform_workload(
                "coredns",
                "Deployment",
                "dns",
                dns_labels,
                vec![("k8s-app", "kube-dns".to_string())],
                vec![udp("dns", 53), tcp("dns-tcp", 53), tcp("metrics", 9153)],
            );
            dns.service = "kube-dns".into();
            dns.containers[0].image = "registry.k8s.io/coredns/coredns:v1.11.3".into();
            let mut ms_labels = app_labels("metrics-server", "monitoring");
            ms_labels.push(("k8s-app", "metrics-server".to_string()));
            let metrics_server = platform_workload(
                "metrics-server",
                "Deployment",
                "monitoring",
                ms_labels,
                vec![("k8s-app", "metrics-server".to_string())],
                vec![tcp("https", 10250)],
            );
            vec![dns, metrics_server]
        }
        NsKind::Monitoring => {
            let sel = |n: &str| vec![("app", n.to_string())];
            let mut prometheus = platform_workload(
                "prometheus",
                "StatefulSet",
                "monitoring",
                app_labels("prometheus", "monitoring"),
                sel("prometheus"),
                vec![tcp("http", 9090)],
            );
            prometheus.headless = true;
            let grafana = platform_workload(
                "grafana",
                "Deployment",
                "frontend",
                app_labels("grafana", "frontend"),
                sel("grafana"),
                vec![tcp("http", 3000)],
            );
            let alertmanager = platform_workload(
                "alertmanager",
                "StatefulSet",
                "monitoring",
                app_labels("alertmanager", "monitoring"),
                sel("alertmanager"),
                vec![
                    tcp("http", 9093),
                    tcp("mesh-tcp", 9094),
                    udp("mesh-udp", 9094),
                ],
            );
            let statsd = platform_workload(
                "statsd-exporter",
                "Deployment",
                "monitoring",
                app_labels("statsd-exporter", "monitoring"),
                sel("statsd-exporter"),
                vec![udp("statsd", 8125), tcp("metrics", 9102)],
            );
            vec![prometheus, grafana, alertmanager, statsd]
        }
        NsKind::IngressNginx => {
            let mut labels = app_labels("ingress-nginx-controller", "ingress");
            labels.push(("app.kubernetes.io/name", "ingress-nginx".to_string()));
            labels.push(("app.kubernetes.io/component", "controller".to_string()));
            let controller = platform_workload(
                "ingress-nginx-controller",
                "Deployment",
                "ingress",
                labels,
                vec![
                    ("app.kubernetes.io/component", "controller".to_string()),
                    ("app.kubernetes.io/name", "ingress-nginx".to_string()),
                ],
                vec![tcp("http", 80), tcp("https", 443), tcp("metrics", 10254)],
            );
            vec![controller]
        }
        NsKind::Tenant => Vec::new(),
    }
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
