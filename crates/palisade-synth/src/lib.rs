//! Deterministic synthetic Kubernetes clusters, for benchmarks and tests of the policy engine.
//!
//! Real clusters cannot be shipped with the project, and hand-written fixtures are too small to show
//! how the engine scales (the target is 10,000 pods, 2,000 policies, 500 namespaces). [`generate`]
//! writes manifests that look like a real multi-tenant cluster, so the engine meets the shapes it will
//! meet in production:
//!
//! - **Namespaces** labelled `team`, `env` (`prod`/`staging`/`dev`) and `role`
//!   (`tenant`/`shared`/`core`), some with `compliance: pci` or `istio-injection: enabled`.
//!   The first is always `kube-system` with CoreDNS (`k8s-app: kube-dns`, `dns` 53/UDP and `dns-tcp`
//!   53/TCP, Service `kube-dns`); from 6 namespaces on there are also `monitoring` (Prometheus,
//!   Grafana, Alertmanager, a statsd exporter) and `ingress-nginx`.
//! - **Workloads**: Deployments and StatefulSets (no DaemonSets: every pod is counted by `replicas`),
//!   3–6 application tiers per tenant namespace (`frontend`, `api`, `worker`, `db`, `cache`, `batch`)
//!   with pod labels `app`, `tier`, `team`, `version` (and sometimes `canary`). Replicas add up to
//!   exactly `namespaces × pods_per_ns`; the loader expands the templates into pods.
//! - **Named ports that differ per workload**: `http` is 8080, 9090, 3000 or 8000, `metrics` 9100,
//!   9102, 9153, 9187…, `db` 5432 or 3306, `cache` 6379 or 11211; UDP ports (`dns`, `statsd`,
//!   `cache-udp`, `mesh-udp`).
//! - **A Service per workload**, `targetPort` named or numeric at random, headless for databases.
//! - **NetworkPolicies** (`networking.k8s.io/v1`), exactly as many as asked, spread unevenly over the
//!   namespaces: default-deny ingress, default-deny egress with a DNS exception (or default-deny-all),
//!   then a weighted mix of tier-to-tier allows (`matchLabels`, `In`/`NotIn`/`Exists`/`DoesNotExist`),
//!   cross-namespace peers (`namespaceSelector` alone, AND-ed with a `podSelector` in one peer, OR-ed as
//!   two peers), named and numeric ports, `endPort` ranges, `ipBlock` with `except` (IPv4 and IPv6),
//!   UDP and SCTP rules, policies for both directions, with `policyTypes` explicit or defaulted. Every
//!   object is valid under the reference's validation rules.
//!
//! The same [`SynthConfig`] (seed included) gives byte-identical output: randomness comes from ChaCha8
//! seeded with the seed, and nothing iterates a hash map. Namespaces, workloads and policies draw from
//! separate ChaCha streams, so changing the policy count leaves namespaces, workloads and services
//! unchanged.

mod cluster;
mod policies;
#[cfg(test)]
mod tests;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
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
    /// Random seed: the same configuration and seed give byte-identical output.
    pub seed: u64,
}

impl SynthConfig {
    /// The cluster every benchmark measures: 10,000 pods in 500 namespaces, 2,000 policies.
    pub const BENCHMARK: SynthConfig = SynthConfig {
        namespaces: 500,
        pods_per_ns: 20,
        policies: 2000,
        seed: 1,
    };
}

/// One generated manifest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthFile {
    /// File name, relative to the output folder (`namespaces.yaml`, `workloads-0001.yaml`, …).
    pub name: String,
    /// Multi-document YAML, each document introduced by `---`.
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

/// A generated cluster: the manifest files and what they hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthCluster {
    /// The manifest files, in the order [`generate`] documents.
    pub files: Vec<SynthFile>,
    /// What they contain.
    pub summary: SynthSummary,
}

/// Namespaces per `workloads-`, `services-` and `policies-` file.
const CHUNK: usize = 50;

/// The file name prefixes of chunked files.
const CHUNK_PREFIXES: [&str; 3] = ["workloads-", "services-", "policies-"];

/// ChaCha streams, one per independent part of the cluster.
const STREAM_NAMESPACES: u64 = 0;
const STREAM_WORKLOADS: u64 = 1;
const STREAM_POLICIES: u64 = 2;
const STREAM_SERVICES: u64 = 3;

impl SynthCluster {
    /// The cluster as Palisade's loader reads it, and what it said.
    pub fn load(
        &self,
    ) -> (
        palisade_model::ClusterState,
        Vec<palisade_model::Diagnostic>,
    ) {
        let mut loader = palisade_model::Loader::new();
        for f in &self.files {
            loader.load_str(&f.name, &f.contents);
        }
        loader.finish()
    }

    /// Creates `dir` (and its parents) and writes every file into it.
    ///
    /// Files a previous run left there under the generator's own names (`namespaces.yaml`,
    /// `workloads-NNNN.yaml`, `services-NNNN.yaml`, `policies-NNNN.yaml`) that are not part of this
    /// cluster are removed, so that loading the folder gives exactly this cluster. Other files are left
    /// alone.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = self.files.iter().any(|f| f.name == name);
            if !ours && is_generated_name(name) && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        for f in &self.files {
            std::fs::write(dir.join(&f.name), &f.contents)?;
        }
        Ok(())
    }
}

/// Whether `name` is one the generator writes: `namespaces.yaml` or `<prefix>NNNN.yaml`.
fn is_generated_name(name: &str) -> bool {
    if name == "namespaces.yaml" {
        return true;
    }
    CHUNK_PREFIXES.iter().any(|prefix| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(".yaml"))
            .is_some_and(|n| n.len() >= 4 && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// A uniformly random element of a non-empty slice.
pub(crate) fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    use rand::Rng;
    items[rng.random_range(0..items.len())]
}

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Multi-document YAML: `---` before each document.
fn yaml_docs(docs: &[Value]) -> String {
    let mut out = String::with_capacity(docs.len() * 600);
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(d).expect("JSON values always serialise to YAML"));
    }
    out
}

/// Generates a cluster (see the crate documentation for what it holds).
///
/// Files: `namespaces.yaml`, then for every group of 50 namespaces (in order, `kube-system` first)
/// `workloads-NNNN.yaml` and `services-NNNN.yaml`, and `policies-NNNN.yaml` when the group has
/// policies; `NNNN` counts groups from `0001`. Never panics, whatever the counts (zero included): with
/// one namespace, `kube-system` holds every pod and every policy; with zero, the files are empty.
pub fn generate(config: &SynthConfig) -> SynthCluster {
    let mut nss = cluster::namespaces(
        config.namespaces,
        &mut stream(config.seed, STREAM_NAMESPACES),
    );
    cluster::populate(
        &mut nss,
        config.pods_per_ns,
        &mut stream(config.seed, STREAM_WORKLOADS),
    );

    // Policies go to every namespace but kube-system, unless kube-system is all there is.
    let mut policy_rng = stream(config.seed, STREAM_POLICIES);
    let first_policy_ns = usize::from(nss.len() > 1);
    let counts = policies::allocate(
        config.policies,
        nss.len() - first_policy_ns,
        &mut policy_rng,
    );
    let mut per_ns: Vec<Vec<Value>> = vec![Vec::new(); nss.len()];
    for (offset, &count) in counts.iter().enumerate() {
        let i = first_policy_ns + offset;
        per_ns[i] = policies::namespace_policies(&nss[i], count, &mut policy_rng);
    }

    let mut summary = SynthSummary {
        namespaces: nss.len(),
        ..Default::default()
    };
    let ns_docs: Vec<Value> = nss.iter().map(cluster::namespace_doc).collect();
    let mut files = vec![SynthFile {
        name: "namespaces.yaml".into(),
        contents: yaml_docs(&ns_docs),
    }];
    let mut service_rng = stream(config.seed, STREAM_SERVICES);
    for (chunk_index, chunk) in nss.chunks(CHUNK).enumerate() {
        let (mut workloads, mut services, mut policies) = (Vec::new(), Vec::new(), Vec::new());
        for (offset, ns) in chunk.iter().enumerate() {
            for w in &ns.workloads {
                workloads.push(cluster::workload_doc(ns, w));
                services.push(cluster::service_doc(ns, w, &mut service_rng));
                summary.pods += w.replicas;
            }
            policies.append(&mut per_ns[chunk_index * CHUNK + offset]);
        }
        summary.workloads += workloads.len();
        summary.services += services.len();
        summary.policies += policies.len();
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
