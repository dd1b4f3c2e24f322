//! The bodies of the fuzz targets (`fuzz_targets/`). The workspace's tests include this file to
//! replay the corpus (`crates/palisade/tests/fuzz_corpus.rs`), so a fuzz run and `cargo test` run
//! the same code. A body fails only on a bug: a panic, or an answer that contradicts another way
//! of computing it, or a rule the loader promises (the fuzzer adds its timeout and memory limit).

use palisade_analyze::{default_probes, explain, render, Format, Matrix, Probe, Scope};
use palisade_dataplane::{build, fuzzing};
use palisade_model::{
    ClusterState, DocumentCache, Kind, Limits, Loader, ObjectKey, PodId, Protocol, RejectReason,
};
use palisade_policy::{Audit, CompiledTable, Direction, Endpoint, Engine, Flow};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// A target's body: one input.
pub type Body = fn(&[u8]);

/// Every target by name: the folders of `fuzz/corpus/` and `fuzz/regressions/`.
pub const TARGETS: [(&str, Body); 5] = [
    ("loader", loader),
    ("engine", engine),
    ("engine_template", engine_template),
    ("nflog", nflog),
    ("netlink_ack", netlink_ack),
];

/// Manifest text, loaded as standard input is and as a file of a folder is, with the default
/// limits: both ways give the same objects. Then the rules of a file rewritten in place, through
/// the cache as the agent loads: see [`rewritten`].
pub fn loader(data: &[u8]) {
    let mut loader = Loader::new();
    loader.load_str("f.yaml", &String::from_utf8_lossy(data));
    let (state, diagnostics) = loader.finish();
    diagnostics.iter().for_each(|d| drop(d.to_string()));
    let from_folder = rewritten(data);
    if std::str::from_utf8(data).is_ok() {
        assert_eq!(
            summary(&state),
            summary(&from_folder),
            "the same text read as a file and as standard input"
        );
    }
}

/// The objects of `data` loaded as the only file of a folder. Then the file is rewritten in place,
/// with a removal grace, as an editor does: half-written, no policy is lifted when any part of the
/// half is rejected (which objects that part defined is unknown); then emptied, no policy is
/// lifted before the grace ends.
fn rewritten(data: &[u8]) -> ClusterState {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("f.yaml");
    let load = |text: &[u8], cache: Option<DocumentCache>| {
        std::fs::write(&file, text).expect("write the file");
        let mut loader = Loader::new().removal_grace(Duration::from_secs(3600));
        if let Some(cache) = cache {
            loader = loader.with_documents(cache);
        }
        loader.load_path(dir.path());
        loader.finish_with_cache()
    };
    let whole = load(data, None);
    let half = load(&data[..data.len() / 2], Some(whole.cache));
    let rejected = (half.rejections.iter()).any(|r| {
        matches!(
            r.reason,
            RejectReason::Syntax | RejectReason::Decode | RejectReason::Invalid
        )
    });
    let lifted = lifted(&whole.state, &half.state);
    if rejected {
        assert!(
            lifted.is_empty(),
            "a half-written file with a rejected part lifted policies {lifted:?}"
        );
    }
    let emptied = load(b"", Some(half.cache));
    let lifted = self::lifted(&half.state, &emptied.state);
    assert!(
        lifted.is_empty(),
        "an emptied file lifted policies {lifted:?} before its grace ended"
    );
    whole.state
}

/// The policies of `before` that `after` does not have, as `Kind ns/name`.
fn lifted(before: &ClusterState, after: &ClusterState) -> BTreeSet<String> {
    let policies = |s: &ClusterState| -> BTreeSet<String> {
        (s.policies.iter())
            .map(|p| ObjectKey::new(Kind::NetworkPolicy, Some(&p.namespace), &p.name).to_string())
            .collect()
    };
    policies(before)
        .difference(&policies(after))
        .cloned()
        .collect()
}

/// What a state holds, without where it was read.
fn summary(state: &ClusterState) -> Vec<String> {
    let namespaces = (state.namespaces.iter())
        .map(|n| format!("namespace {} {:?} {:?}", n.name, n.labels, n.annotations));
    let pods = state.pods.iter().map(|p| {
        let (key, ip, labels, ports) = (p.key(), p.ip, &p.labels, &p.ports);
        format!("pod {key} {ip:?} {labels:?} {ports:?}")
    });
    let services = state.services.iter().map(|s| {
        let (ns, name, selector, ports) = (&s.namespace, &s.name, &s.selector, &s.ports);
        format!("service {ns}/{name} {selector:?} {ports:?}")
    });
    let policies = state
        .policies
        .iter()
        .map(|p| format!("{:?}", p.policy.object()));
    let tier_policies = (state.tier_policies.iter())
        .map(|p| format!("{:?} {:?}", p.policy.object(), p.policy.spec()));
    namespaces
        .chain(pods)
        .chain(services)
        .chain(policies)
        .chain(tier_policies)
        .collect()
}

/// Limits that keep one run of [`engine`] fast.
const ENGINE_LIMITS: Limits = Limits {
    max_file_bytes: 64 << 10,
    max_total_bytes: 64 << 10,
    max_workload_pods: 16,
    max_pods: 64,
};

/// Pods of an [`engine`] run whose pairs are checked.
const PAIRS_OF: usize = 12;

/// Manifest text (at most 64 KiB, 64 pods), compiled by the policy engine and asked what the
/// analyzer and the agent ask: the matrix (rendered), verdicts and explanations, the compiled rules
/// and the kernel table. The matrix, the verdicts and the compiled rules agree on every pair of the
/// first pods; an engine compiled from the previous one after pod churn equals a fresh one; the
/// table patches to the churned state.
pub fn engine(data: &[u8]) {
    if data.len() as u64 > ENGINE_LIMITS.max_file_bytes {
        return;
    }
    let mut loader = Loader::new().limits(ENGINE_LIMITS);
    loader.load_str("f.yaml", &String::from_utf8_lossy(data));
    let (state, _) = loader.finish();
    let engine = Engine::new(Arc::new(state));
    let probes = probes(&engine);
    let pods = Matrix::pods_in(&engine, &Scope::All);
    let matrix = Matrix::compute(&engine, pods, &probes);
    let mut out = Vec::new();
    render::write(&matrix, Format::Json, &mut out).expect("render to memory");
    let table = CompiledTable::of(&engine, Audit::Annotated);
    pairs_agree(&engine, &matrix, &table);
    let ruleset = build(&table, None);
    drop(ruleset.script());

    let churned = Arc::new(churn(engine.state()));
    let next = Engine::new_from(&engine, churned.clone());
    let next_table = CompiledTable::compile(&next, Some((&engine, &table)), Audit::Annotated);
    let fresh = Engine::new(churned);
    assert_eq!(
        next.class_count(),
        fresh.class_count(),
        "classes after churn"
    );
    for p in &probes {
        let (reused, again) = (
            next.reach(p.port, p.protocol),
            fresh.reach(p.port, p.protocol),
        );
        assert!(reused == again, "reach for {p} after churn");
    }
    let mut cache = Default::default();
    for (c, taken) in next_table.classes.iter_enumerated() {
        let rules = fresh.compile_class(c, &mut cache);
        assert_eq!(&rules, &*taken.rules, "rules of class {c:?} after churn");
    }
    let rebuilt = build(&next_table, Some(&ruleset));
    drop(rebuilt.update_from(&ruleset).to_string());
    let patch = ruleset.patch(&table, &next_table);
    if let Some(patch) = patch {
        drop(patch.update().to_string());
        let mut patched = ruleset.clone();
        patched.absorb(patch);
        drop(patched.script());
    }
}

/// Two namespaces, a Deployment, a Pod and a NetworkPolicy whose interesting fields are `$0`…`$23`:
/// the values of [`engine_template`].
const TEMPLATE: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: a, labels: {team: $0}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b, labels: {team: $1}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: a}
spec:
  replicas: $2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: $3}}
    spec:
      hostNetwork: $4
      containers: [{name: c, image: x, ports: [{name: $5, containerPort: $6, protocol: $7}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: b, labels: {app: $8}}
spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: $9}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: $10}
spec:
  podSelector: {matchExpressions: [{key: $11, operator: $12, values: [$13]}]}
  policyTypes: [$14]
  ingress:
  - from:
    - {namespaceSelector: {matchLabels: {team: $15}}, podSelector: {matchLabels: {app: $16}}}
    - {ipBlock: {cidr: $17, except: [$18]}}
    ports: [{port: $19, endPort: $20, protocol: $21}]
  egress:
  - to: [{podSelector: {matchLabels: {tier: $22}}}]
    ports: [{port: $23}]
";

/// The values of the template's fields (separated by spaces) when the input has fewer lines.
const DEFAULTS: &str = "x y 2 front false http 80 TCP db 10.244.9.9 b app In db Ingress x web \
                        10.244.0.0/16 10.244.9.0/24 8000 8080 TCP front http";

/// [`engine`] on a small valid cluster whose fields are the input's lines (kept to characters of
/// plain YAML scalars, at most 64 each), so that the fuzzer explores the semantics rather than
/// the syntax.
pub fn engine_template(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let value = |default: &str| match lines.next() {
        Some(line) => (line.iter().map(|&b| b as char))
            .filter(|c| c.is_ascii_alphanumeric() || "./_-".contains(*c))
            .take(64)
            .collect(),
        None => default.to_string(),
    };
    let values: Vec<String> = DEFAULTS.split_whitespace().map(value).collect();
    // From the last field down, so that `$1` does not replace the start of `$10`.
    let text = (0..values.len())
        .rev()
        .fold(TEMPLATE.to_string(), |text, i| {
            text.replace(&format!("${i}"), &values[i])
        });
    engine(text.as_bytes());
}

/// The state's container ports and a few usual ones, at most 6.
fn probes(engine: &Engine) -> Vec<Probe> {
    let state = engine.state();
    let all: Vec<PodId> = state.pods.ids().collect();
    let usual = [
        (80, Protocol::Tcp),
        (53, Protocol::Udp),
        (0, Protocol::Icmp),
    ];
    let usual = usual.map(|(port, protocol)| Probe { port, protocol });
    let mut probes = default_probes(state, &all);
    probes.truncate(3);
    probes.extend(usual);
    probes
}

/// For every pair of the first pods and every probe: the matrix, the verdict (by pod, and by
/// address), its explanation, and — for pods the kernel enforces on — the compiled rules agree.
fn pairs_agree(engine: &Engine, matrix: &Matrix, table: &CompiledTable) {
    let state = engine.state();
    let n = matrix.pods.len().min(PAIRS_OF);
    for (probe, p) in matrix.probes.iter().map(|(p, _)| p).enumerate() {
        for (i, j) in (0..n).flat_map(|s| (0..n).map(move |d| (s, d))) {
            let (src, dst) = (matrix.pods[i], matrix.pods[j]);
            let flow = Flow {
                src: Endpoint::Pod(src),
                dst: Endpoint::Pod(dst),
                port: p.port,
                protocol: p.protocol,
            };
            let verdict = engine.verdict(&flow);
            let what = format!("{} -> {} {p}", state.pods[src].key(), state.pods[dst].key());
            assert_eq!(
                verdict.allowed,
                matrix.allowed(probe, i, j),
                "matrix, {what}"
            );
            let (s, d) = (&state.pods[src], &state.pods[dst]);
            let by_address = Flow {
                src: s
                    .ip
                    .filter(|_| !s.host_network)
                    .map_or(flow.src, Endpoint::Ip),
                dst: d
                    .ip
                    .filter(|_| !d.host_network)
                    .map_or(flow.dst, Endpoint::Ip),
                ..flow
            };
            let again = engine.verdict(&by_address);
            assert_eq!(verdict.allowed, again.allowed, "by address, {what}");
            drop(explain::to_text(&explain::explain(engine, flow)));
            if src == dst || s.host_network || d.host_network {
                continue;
            }
            let (Some(sip), Some(dip)) = (s.ip, d.ip) else {
                continue;
            };
            let side = |pod: PodId, direction, peer| {
                let rules = &table.classes[engine.class_of(pod)].rules;
                rules.allows(direction, Some(peer), p.port, p.protocol)
            };
            let kernel = side(src, Direction::Egress, dip) && side(dst, Direction::Ingress, sip);
            assert_eq!(verdict.allowed, kernel, "compiled rules, {what}");
        }
    }
}

/// `state` after pod churn that keeps its namespaces and policies: every third pod gone, and the
/// labels of the others rotated among them.
fn churn(state: &ClusterState) -> ClusterState {
    let mut pods: Vec<_> = (state.pods.iter().enumerate())
        .filter(|(i, _)| i % 3 != 1)
        .map(|(_, p)| p.clone())
        .collect();
    let labels: Vec<_> = pods.iter().map(|p| p.labels.clone()).collect();
    for (i, pod) in pods.iter_mut().enumerate() {
        Arc::make_mut(pod).labels = labels[(i + 1) % labels.len()].clone();
    }
    let mut churned = ClusterState::new(
        state.namespaces.as_slice().to_vec(),
        pods,
        state.services.clone(),
        state.policies.clone(),
    );
    churned.network_logging = state.network_logging.clone();
    churned
}

/// One datagram from the NFLOG socket, read into verdict events.
pub fn nflog(data: &[u8]) {
    for event in fuzzing::verdict_events(data) {
        drop(format!("{event:?} {}", event.enforcing()));
    }
}

/// The kernel's answer to an nf_tables batch: the number of changes (2 bytes, little-endian), where
/// the answer is cut in two datagrams (1 byte), then the answer.
pub fn netlink_ack(data: &[u8]) {
    let Some((&[c0, c1, cut], answer)) = data.split_first_chunk::<3>() else {
        return;
    };
    let (a, b) = answer.split_at(usize::from(cut).min(answer.len()));
    if let Some(Err(e)) = fuzzing::batch_answer(u16::from_le_bytes([c0, c1]), &[a, b]) {
        drop(e.to_string());
    }
}
