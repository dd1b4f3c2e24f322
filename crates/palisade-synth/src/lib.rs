//! Deterministic synthetic Kubernetes clusters for benchmarks and tests of the policy engine.
//!
//! [`generate`] writes namespaces with team/env/role labels, workloads (Deployments and StatefulSets
//! whose replicas add up to exactly `namespaces × pods_per_ns` pods), a Service per workload, and a
//! realistic mix of NetworkPolicies: default-deny ingress, default-deny egress with a DNS exception,
//! same-namespace allows, tier-to-tier allows with named ports that resolve differently per workload,
//! cross-namespace peers (namespaceSelector AND podSelector, matchExpressions), `endPort` ranges,
//! `ipBlock` with `except`, and UDP rules. Same configuration and seed ⇒ byte-identical output
//! (ChaCha8 seeded from the seed; no hash-map iteration anywhere).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::path::Path;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthConfig {
    /// Number of namespaces, `kube-system` (holding the DNS pods) included.
    pub namespaces: usize,
    /// Pods per namespace, as workload replicas.
    pub pods_per_ns: usize,
    /// Number of NetworkPolicies.
    pub policies: usize,
    /// Random seed.
    pub seed: u64,
}

/// One generated manifest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthFile {
    /// File name, relative to the output folder.
    pub name: String,
    /// Multi-document YAML.
    pub contents: String,
}

/// Counts of what was generated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynthSummary {
    /// Namespaces.
    pub namespaces: usize,
    /// Workloads (Deployments and StatefulSets).
    pub workloads: usize,
    /// Pods (sum of replicas).
    pub pods: usize,
    /// Services.
    pub services: usize,
    /// NetworkPolicies.
    pub policies: usize,
}

/// A generated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthCluster {
    /// The manifest files.
    pub files: Vec<SynthFile>,
    /// What they contain.
    pub summary: SynthSummary,
}

impl SynthCluster {
    /// Creates `dir` (and parents) and writes every file into it.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for f in &self.files {
            std::fs::write(dir.join(&f.name), &f.contents)?;
        }
        Ok(())
    }
}

const TEAMS: [&str; 8] = [
    "payments", "shop", "search", "data", "platform", "ml", "identity", "media",
];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const TIERS: [&str; 6] = ["frontend", "api", "worker", "db", "cache", "batch"];
/// Namespaces per generated file.
const CHUNK: usize = 50;

struct Namespace {
    name: String,
    team: &'static str,
    env: &'static str,
    role: &'static str,
    /// Tiers of the workloads it runs.
    tiers: Vec<&'static str>,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn namespaces(config: &SynthConfig, rng: &mut ChaCha8Rng) -> Vec<Namespace> {
    (0..config.namespaces)
        .map(|i| {
            if i == 0 {
                return Namespace {
                    name: "kube-system".into(),
                    team: "platform",
                    env: "prod",
                    role: "core",
                    tiers: vec!["dns"],
                };
            }
            let team = pick(rng, &TEAMS);
            let env = pick(rng, &ENVS);
            let role = match rng.random_range(0..10) {
                0 => "core",
                1 | 2 => "shared",
                _ => "tenant",
            };
            let count = rng.random_range(3..=6).min(config.pods_per_ns.max(1));
            let mut tiers: Vec<&'static str> = TIERS.to_vec();
            while tiers.len() > count {
                tiers.remove(rng.random_range(0..tiers.len()));
            }
            Namespace {
                name: format!("{team}-{env}-{i:04}"),
                team,
                env,
                role,
                tiers,
            }
        })
        .collect()
}

/// Container ports of a tier; the port behind a name differs between workloads.
fn ports(tier: &str, rng: &mut ChaCha8Rng) -> Vec<Value> {
    let http = pick(rng, &[8080, 9090, 3000]);
    match tier {
        "dns" => vec![
            json!({"name": "dns", "containerPort": 53, "protocol": "UDP"}),
            json!({"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}),
        ],
        "frontend" => vec![
            json!({"name": "http", "containerPort": http}),
            json!({"name": "metrics", "containerPort": 9100}),
        ],
        "api" => {
            let mut p = vec![
                json!({"name": "http", "containerPort": http}),
                json!({"name": "grpc", "containerPort": 50051}),
                json!({"name": "metrics", "containerPort": 9100}),
            ];
            if rng.random_bool(0.3) {
                p.push(json!({"name": "statsd", "containerPort": 8125, "protocol": "UDP"}));
            }
            p
        }
        "worker" => vec![json!({"name": "metrics", "containerPort": pick(rng, &[9100, 9102])})],
        "db" => vec![json!({"name": "db", "containerPort": pick(rng, &[5432, 3306])})],
        "cache" => vec![json!({"name": "redis", "containerPort": 6379})],
        _ => vec![],
    }
}

/// Splits `total` into `parts` positive-ish random shares (zeros only when total < parts).
fn split(total: usize, parts: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut shares = vec![0; parts];
    for (i, s) in shares.iter_mut().enumerate() {
        if i < total {
            *s = 1;
        }
    }
    for _ in parts.min(total)..total {
        shares[rng.random_range(0..parts)] += 1;
    }
    shares
}

fn workload(ns: &Namespace, tier: &str, replicas: usize, rng: &mut ChaCha8Rng) -> (Value, Value) {
    let name = if tier == "dns" { "coredns" } else { tier };
    let app_label = if tier == "dns" { "kube-dns" } else { tier };
    let mut labels = json!({"app": app_label, "tier": tier, "team": ns.team, "version": format!("v{}", rng.random_range(1..=3))});
    if tier == "dns" {
        labels = json!({"k8s-app": "kube-dns", "tier": "dns"});
    }
    let selector = if tier == "dns" {
        json!({"k8s-app": "kube-dns"})
    } else {
        json!({"app": app_label})
    };
    let container_ports = ports(tier, rng);
    let kind = if tier == "db" {
        "StatefulSet"
    } else {
        "Deployment"
    };
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": name, "image": format!("registry.example/{name}:1.0"), "ports": container_ports}]}
        }
    });
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    let workload = json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "namespace": ns.name, "labels": {"app": app_label}},
        "spec": spec
    });
    let service_ports: Vec<Value> = container_ports
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("port");
            let named_target = rng.random_bool(0.5);
            json!({
                "name": name,
                "port": if name == "http" { json!(80) } else { p["containerPort"].clone() },
                "targetPort": if named_target { json!(name) } else { p["containerPort"].clone() },
                "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP")),
            })
        })
        .collect();
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns.name},
        "spec": {"selector": selector, "ports": service_ports}
    });
    (workload, service)
}

fn dns_egress_rule() -> Value {
    json!({
        "to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}
        }],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    })
}

/// The `t`-th policy template of namespace `ns` (templates cycle when `t` exceeds their number).
fn policy(ns: &Namespace, t: usize, rng: &mut ChaCha8Rng) -> Value {
    let tier = |rng: &mut ChaCha8Rng| pick(rng, &ns.tiers);
    let (name, spec) = match t % 12 {
        0 => (
            "default-deny-ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        1 => (
            "default-deny-egress-allow-dns",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [dns_egress_rule()]}),
        ),
        2 => (
            "allow-same-namespace",
            json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
        ),
        3 => (
            "allow-api-from-frontend",
            json!({
                "podSelector": {"matchLabels": {"tier": "api"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "frontend"}}}], "ports": [{"port": "http"}, {"port": "grpc"}]}]
            }),
        ),
        4 => (
            "allow-db-from-backends",
            json!({
                "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "cache"]}]},
                "ingress": [{"from": [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api", "worker"]}]}}],
                             "ports": [{"port": "db"}, {"port": "redis"}, {"port": 5432, "endPort": 5440}]}]
            }),
        ),
        5 => (
            "allow-from-team-namespaces",
            json!({
                "podSelector": {"matchLabels": {"tier": tier(rng)}},
                "ingress": [{"from": [{
                    "namespaceSelector": {"matchExpressions": [
                        {"key": "team", "operator": "In", "values": [pick(rng, &TEAMS), ns.team]},
                        {"key": "env", "operator": "NotIn", "values": ["dev"]}]},
                    "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend", "api"]}]}
                }], "ports": [{"port": 8080, "endPort": 8090}, {"port": "grpc"}]}]
            }),
        ),
        6 => (
            "allow-egress-internet-https",
            json!({
                "podSelector": {"matchLabels": {"tier": tier(rng)}},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]}}],
                            "ports": [{"port": 443}]}, dns_egress_rule()]
            }),
        ),
        7 => (
            "allow-metrics-scrape",
            json!({
                "podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
                "ingress": [
                    {"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": [format!("10.244.{}.0/24", rng.random_range(0..256))]}}],
                     "ports": [{"port": "metrics"}]},
                    {"from": [{"namespaceSelector": {"matchLabels": {"role": "core"}}}], "ports": [{"port": 9100, "endPort": 9102}]}
                ]
            }),
        ),
        8 => (
            "allow-egress-to-shared",
            json!({
                "podSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"role": "shared"}}, "podSelector": {"matchLabels": {"tier": "api"}}}],
                     "ports": [{"port": "http"}, {"port": "grpc"}]},
                    {"to": [{"namespaceSelector": {"matchLabels": {"role": "core"}}}], "ports": [{"port": 8125, "protocol": "UDP"}]},
                    {"to": [{"podSelector": {}}]}
                ]
            }),
        ),
        9 => (
            "allow-frontend-from-anywhere",
            json!({
                "podSelector": {"matchLabels": {"tier": "frontend"}},
                "ingress": [{"ports": [{"port": "http"}, {"port": 80}, {"port": 443}]}]
            }),
        ),
        10 => (
            "deny-batch-ingress",
            json!({
                "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch"]}, {"key": "canary", "operator": "DoesNotExist"}]},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [],
                "egress": [dns_egress_rule(), {"to": [{"namespaceSelector": {"matchLabels": {"team": ns.team}}}]}]
            }),
        ),
        _ => (
            "allow-partner-cidr",
            json!({
                "podSelector": {"matchLabels": {"tier": tier(rng)}},
                "ingress": [{"from": [
                    {"ipBlock": {"cidr": format!("192.0.2.{}/28", 16 * rng.random_range(0..16)), "except": []}},
                    {"ipBlock": {"cidr": "2001:db8::/32", "except": ["2001:db8:1::/48"]}}
                ], "ports": [{"port": 443}, {"port": 8443, "protocol": "TCP"}]}]
            }),
        ),
    };
    let name = if t < 12 {
        name.to_string()
    } else {
        format!("{name}-{}", t / 12)
    };
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns.name},
        "spec": spec
    })
}

fn yaml_docs(docs: &[Value]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(d).expect("JSON values always serialise to YAML"));
    }
    out
}

/// Generates a cluster.
pub fn generate(config: &SynthConfig) -> SynthCluster {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let nss = namespaces(config, &mut rng);
    let mut summary = SynthSummary {
        namespaces: nss.len(),
        ..Default::default()
    };
    let ns_docs: Vec<Value> = nss
        .iter()
        .map(|ns| {
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": ns.name, "labels": {"team": ns.team, "env": ns.env, "role": ns.role}}})
        })
        .collect();
    let mut files = vec![SynthFile {
        name: "namespaces.yaml".into(),
        contents: yaml_docs(&ns_docs),
    }];
    // Policies: template t for every namespace before template t + 1, until the count is reached.
    let mut per_ns_policies: Vec<Vec<Value>> = vec![Vec::new(); nss.len()];
    let app_namespaces: Vec<usize> = if nss.len() > 1 {
        (1..nss.len()).collect()
    } else {
        (0..nss.len()).collect()
    };
    let mut t = 0;
    while summary.policies < config.policies && !app_namespaces.is_empty() {
        for &i in &app_namespaces {
            if summary.policies == config.policies {
                break;
            }
            per_ns_policies[i].push(policy(&nss[i], t, &mut rng));
            summary.policies += 1;
        }
        t += 1;
    }
    for (chunk_index, chunk) in nss.chunks(CHUNK).enumerate() {
        let (mut workloads, mut services, mut policies) = (Vec::new(), Vec::new(), Vec::new());
        for (offset, ns) in chunk.iter().enumerate() {
            let replicas = split(config.pods_per_ns, ns.tiers.len(), &mut rng);
            for (tier, r) in ns.tiers.iter().zip(replicas) {
                let (w, s) = workload(ns, tier, r, &mut rng);
                workloads.push(w);
                services.push(s);
                summary.pods += r;
            }
            policies.append(&mut per_ns_policies[chunk_index * CHUNK + offset]);
        }
        summary.workloads += workloads.len();
        summary.services += services.len();
        let n = chunk_index + 1;
        files.push(SynthFile {
            name: format!("workloads-{n:04}.yaml"),
            contents: yaml_docs(&workloads),
        });
        files.push(SynthFile {
            name: format!("services-{n:04}.yaml"),
            contents: yaml_docs(&services),
        });
        if !policies.is_empty() {
            files.push(SynthFile {
                name: format!("policies-{n:04}.yaml"),
                contents: yaml_docs(&policies),
            });
        }
    }
    SynthCluster { files, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(cluster: &SynthCluster) -> Vec<Value> {
        cluster
            .files
            .iter()
            .flat_map(|f| {
                serde_yaml_ng::Deserializer::from_str(&f.contents)
                    .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_null())
            .collect()
    }

    fn config(namespaces: usize, pods_per_ns: usize, policies: usize, seed: u64) -> SynthConfig {
        SynthConfig {
            namespaces,
            pods_per_ns,
            policies,
            seed,
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let a = generate(&config(20, 10, 60, 7));
        assert_eq!(a, generate(&config(20, 10, 60, 7)));
        assert_ne!(a.files, generate(&config(20, 10, 60, 8)).files);
    }

    #[test]
    fn counts_are_exact() {
        for (n, p, k) in [
            (20, 10, 60),
            (120, 7, 500),
            (3, 1, 0),
            (1, 1, 5),
            (1, 4, 0),
            (60, 20, 1000),
        ] {
            let cluster = generate(&config(n, p, k, 1));
            let docs = docs(&cluster);
            let kind = |k: &str| docs.iter().filter(|d| d["kind"] == k).count();
            assert_eq!(kind("Namespace"), n);
            assert_eq!(kind("NetworkPolicy"), k);
            let replicas: u64 = docs
                .iter()
                .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
                .map(|d| d["spec"]["replicas"].as_u64().unwrap())
                .sum();
            assert_eq!(replicas as usize, n * p, "{n} {p} {k}");
            assert_eq!(cluster.summary.pods, n * p);
            assert_eq!(cluster.summary.policies, k);
            assert_eq!(cluster.summary.services, kind("Service"));
            // Policy names are unique per namespace.
            let mut keys: Vec<String> = docs
                .iter()
                .filter(|d| d["kind"] == "NetworkPolicy")
                .map(|d| format!("{}/{}", d["metadata"]["namespace"], d["metadata"]["name"]))
                .collect();
            let total = keys.len();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), total);
        }
    }

    #[test]
    fn every_except_is_inside_its_cidr() {
        let cluster = generate(&config(60, 5, 720, 3));
        let mut blocks = 0;
        for d in docs(&cluster)
            .iter()
            .filter(|d| d["kind"] == "NetworkPolicy")
        {
            let text = d.to_string();
            for (pos, _) in text.match_indices("\"ipBlock\"") {
                let rest = &text[pos..];
                let v: Value =
                    serde_json::from_str(&rest[10..rest.find('}').unwrap() + 1]).unwrap();
                let cidr: ipnet::IpNet = v["cidr"].as_str().unwrap().parse().unwrap();
                for e in v["except"].as_array().unwrap() {
                    let e: ipnet::IpNet = e.as_str().unwrap().parse().unwrap();
                    assert!(
                        cidr.contains(&e) && e.prefix_len() > cidr.prefix_len(),
                        "{e} in {cidr}"
                    );
                }
                blocks += 1;
            }
        }
        assert!(blocks > 0);
    }

    #[test]
    fn write_to_creates_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = generate(&config(5, 3, 10, 1));
        cluster.write_to(&dir.path().join("out")).unwrap();
        for f in &cluster.files {
            assert_eq!(
                std::fs::read_to_string(dir.path().join("out").join(&f.name)).unwrap(),
                f.contents
            );
        }
    }
}
