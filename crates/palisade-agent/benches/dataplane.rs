//! Dataplane benchmarks, side by side in one run (root only):
//! - build (render) and apply the full ruleset of 10,000 pods / 2,000 policies;
//! - short-connection rate and bulk TCP throughput between two lab pods, with no ruleset and with that
//!   full ruleset in force (the two pods are pods of the synthetic cluster, so their packets go through
//!   the verdict maps, their class chains and peer sets);
//! - a label change to kernel state: one reconcile pass (read, compile, patch the ruleset, apply the
//!   difference) after a label edit, and each of those steps timed alone.
//!
//! Run: `cargo bench -p palisade-agent --bench dataplane`.

/// The allocator of the `palisade` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod traffic;

use traffic::{conn_rate, median, serve_echo};

use palisade_agent::{Outcome, Reconciler};
use palisade_dataplane::netns::in_netns;
use palisade_dataplane::{apply, build, render};
use palisade_lab::{self as lab, Lab};
use palisade_model::{ClusterState, DocumentCache, Loader, PodId, Protocol};
use palisade_policy::{Audit, CompiledTable, Direction, Engine};
use palisade_synth::{generate, SynthConfig};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECONDS: f64 = 2.0;
/// Interleaved rounds per traffic scenario; the median is reported.
const ROUNDS: usize = 5;

/// A pair of pods (src, dst) and a port such that both are isolated in the relevant direction and
/// policy allows src -> dst on that TCP port.
fn enforced_pair(engine: &Engine) -> (PodId, PodId, u16) {
    let state = engine.state();
    for (dst, d) in state.pods.iter_enumerated() {
        for port in d
            .ports
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp)
            .map(|p| p.port)
        {
            let reach = engine.reach(port, Protocol::Tcp);
            if !reach.isolated(engine.class_of(dst), Direction::Ingress) {
                continue;
            }
            for src in state.pods.ids() {
                let (sc, dc) = (engine.class_of(src), engine.class_of(dst));
                if src != dst
                    && reach.isolated(sc, Direction::Egress)
                    && reach.allowed(sc, dc)
                    && state.pods[src].ip.is_some()
                {
                    return (src, dst, port);
                }
            }
        }
    }
    panic!("the synthetic cluster has no enforced, allowed pair");
}

fn throughput_gbit(client: &str, server: SocketAddr) -> f64 {
    in_netns(client, move || {
        let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(1)).expect("connect");
        let buf = vec![0u8; 1 << 16];
        let start = Instant::now();
        let mut bytes = 0u64;
        while start.elapsed().as_secs_f64() < SECONDS {
            s.write_all(&buf).unwrap();
            bytes += buf.len() as u64;
        }
        bytes as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9
    })
    .join()
    .unwrap()
    .unwrap()
}

fn main() {
    if lab::require_root().is_err() {
        eprintln!("the dataplane benchmarks need root (network namespaces, nftables)");
        std::process::exit(2);
    }
    let cluster = generate(&SynthConfig::BENCHMARK);
    let dir = std::env::temp_dir().join(format!("palisade-bench-{}", std::process::id()));
    cluster.write_to(&dir).unwrap();
    let load = || -> ClusterState {
        let mut l = Loader::new();
        l.load_path(&dir);
        l.finish().0
    };
    let engine = Engine::new(Arc::new(load()));
    let name = format!("b{}", std::process::id());
    let _teardown = lab::DownOnDrop(name.clone());

    // Two synthetic pods that policy isolates and allows, as lab pods.
    let (src, dst, port) = enforced_pair(&engine);
    let state = engine.state();
    let pair = ClusterState::new(
        Vec::new(),
        vec![state.pods[src].clone(), state.pods[dst].clone()],
        Vec::new(),
        Vec::new(),
    );
    let lab = Lab::plan(&name, &pair);
    lab.create().expect("lab");
    let client = lab
        .pods
        .iter()
        .find(|p| p.key == state.pods[src].key())
        .unwrap()
        .netns
        .clone();
    let server_pod = lab
        .pods
        .iter()
        .find(|p| p.key == state.pods[dst].key())
        .unwrap();
    let server = SocketAddr::new(server_pod.ip, port);
    serve_echo(&server_pod.netns, port);

    // Build and apply the full ruleset (one nf_tables transaction, as the agent does), 5 times; and
    // for comparison, the same table as an nft script through `nft -f`.
    let mut builds = Vec::new();
    let mut applies = Vec::new();
    let table = CompiledTable::of(&engine, Audit::Annotated);
    let mut ruleset = build(&table, None);
    for _ in 0..5 {
        let t = Instant::now();
        ruleset = build(&table, None);
        builds.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        ruleset.apply(Some(&lab.node)).expect("apply");
        applies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let script = ruleset.script();
    let mut nft_applies = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        apply(&script, Some(&lab.node)).expect("apply with nft");
        nft_applies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (build_full_ms, apply_ms, nft_ms) = (median(builds), median(applies), median(nft_applies));
    let reached = lab::probe(
        &client,
        server,
        lab::Transport::Tcp,
        Duration::from_millis(500),
    )
    .unwrap();
    assert!(
        reached,
        "{} -> {} port {port}: the engine allows it, the kernel must too",
        state.pods[src].key(),
        state.pods[dst].key()
    );

    // Traffic with no table at all, with Palisade's table but no policy (conntrack on, maps empty),
    // and with the full ruleset; interleaved rounds, medians reported (this machine is noisy: single
    // runs vary by ±20%).
    let empty = format!(
        "table inet {0}\ndelete table inet {0}\n",
        palisade_dataplane::TABLE
    );
    let no_policy = render(&CompiledTable::of(
        &Engine::new(Arc::new(ClusterState::new(
            Vec::new(),
            state.pods.as_slice().to_vec(),
            Vec::new(),
            Vec::new(),
        ))),
        Audit::Annotated,
    ));
    let scenarios = [
        ("no table", &empty),
        ("no policy", &no_policy),
        ("full ruleset", &script),
    ];
    let mut samples: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (_, rules)) in scenarios.iter().enumerate() {
            apply(rules, Some(&lab.node)).unwrap();
            samples[i].0.push(conn_rate(&client, server, SECONDS));
            samples[i].1.push(throughput_gbit(&client, server));
        }
    }
    let best: Vec<(f64, f64)> = samples
        .into_iter()
        .map(|(r, t)| (median(r), median(t)))
        .collect();

    // A label change: edit one workload's template labels, then one reconcile pass; 5 edits (the
    // label toggles), medians. The steps of a pass are also timed one by one on the same edits.
    // No removal grace: the policy deletion below takes effect in the pass that sees it.
    let mut reconciler = Reconciler::new(dir.clone(), Some(lab.node.clone())).with_source(
        palisade_agent::SourceOptions {
            removal_grace: Duration::ZERO,
            ..Default::default()
        },
    );
    assert!(matches!(reconciler.reconcile(), Outcome::Applied { .. }));
    let file = dir.join("workloads-0001.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    // Relabel the pods of the first api Deployment (its template; selectors use `app`).
    let mut docs: Vec<String> = original.split("---\n").map(str::to_string).collect();
    let api = docs
        .iter()
        .position(|d| d.contains("kind: Deployment") && d.contains("tier: api"))
        .expect("the synthetic cluster has an api Deployment");
    docs[api] = docs[api].replace("tier: api", "tier: api-v2");
    let edited = docs.join("---\n");
    // Loads as the reconciler does: files parsed by the previous load are not parsed again.
    let mut documents = DocumentCache::default();
    let mut load = |dir: &std::path::Path| {
        let mut loader = Loader::new().with_documents(std::mem::take(&mut documents));
        loader.load_path(dir);
        let load = loader.finish_with_cache();
        let (state, cache) = (load.state, load.cache);
        documents = cache;
        state
    };
    let mut steps: [Vec<f64>; 5] = Default::default(); // load, compile, patch, apply, pass
    let mut compiled = Engine::new(Arc::new(load(&dir)));
    let mut compiled_table = CompiledTable::of(&compiled, Audit::Annotated);
    let mut previous = build(&compiled_table, None);
    let scratch = Lab::plan(&format!("{name}s"), &ClusterState::default());
    let _scratch_teardown = lab::DownOnDrop(scratch.name.clone());
    scratch.create().expect("scratch namespace");
    previous.apply(Some(&scratch.node)).expect("scratch table");
    for round in 0..5 {
        let text = if round % 2 == 0 { &edited } else { &original };
        std::fs::write(&file, text).unwrap();
        let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let state = load(&dir);
        steps[0].push(ms(t));
        let t = Instant::now();
        let engine = Engine::new_from(&compiled, Arc::new(state));
        steps[1].push(ms(t));
        let t = Instant::now();
        let table = CompiledTable::compile(
            &engine,
            Some((&compiled, &compiled_table)),
            Audit::Annotated,
        );
        let patch = previous
            .patch(&compiled_table, &table)
            .expect("the engine was compiled from the previous one");
        steps[2].push(ms(t));
        // Applied to a scratch namespace holding the previous table, so that the reconciler's own
        // pass below still has the change to make.
        let t = Instant::now();
        patch.update().apply(Some(&scratch.node)).expect("update");
        steps[3].push(ms(t));
        previous.absorb(patch);
        let t = Instant::now();
        let outcome = reconciler.reconcile();
        steps[4].push(ms(t));
        assert!(
            matches!(outcome, Outcome::Applied { .. }),
            "the relabel must change the ruleset: {outcome:?}"
        );
        compiled = engine;
        compiled_table = table;
    }
    let [load_ms, compile_ms, build_ms, update_ms, label_ms] = steps.map(median);
    let policy_changes = policy_changes(&mut reconciler, &dir, &compiled);

    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "dataplane, 10,000 pods / 2,000 policies / 500 namespaces ({} classes, ruleset {:.1} MB):",
        engine.class_count(),
        script.len() as f64 / 1e6
    );
    println!("  build the ruleset (median of 5)       {build_full_ms:8.1} ms");
    println!("  apply it, one netlink transaction     {apply_ms:8.1} ms (median of 5)");
    println!(
        "  build + apply                         {:8.1} ms",
        build_full_ms + apply_ms
    );
    println!("  (the same table with nft -f: {nft_ms:.1} ms, median of 3)");
    for (i, (what, _)) in scenarios.iter().enumerate() {
        println!(
            "  {what:<13} short connections/s {:7.0} (ratio to no policy {:.2})   bulk TCP {:6.2} Gbit/s (ratio {:.2})",
            best[i].0,
            best[i].0 / best[1].0,
            best[i].1,
            best[i].1 / best[1].1
        );
    }
    println!("  label change -> kernel (one pass)     {label_ms:8.1} ms (median of 5)");
    println!("    load manifests (one file parsed)    {load_ms:8.1} ms");
    println!("    compile (Engine::new_from)          {compile_ms:8.1} ms");
    println!("    compile classes, patch the ruleset  {build_ms:8.1} ms");
    println!("    apply only the difference           {update_ms:8.1} ms");
    for (what, ms, size) in policy_changes {
        println!("  {what:<42}{ms:8.1} ms (median of 3): {size}");
    }
}

/// A policy added (in a file that sorts first, selecting one app's pods of the first namespace),
/// edited (its port) and deleted, each applied by one reconcile pass; three times each, medians,
/// with what the update touches in the kernel (from full builds of the states before and after).
fn policy_changes(
    reconciler: &mut Reconciler,
    dir: &std::path::Path,
    engine: &Engine,
) -> Vec<(&'static str, f64, palisade_dataplane::UpdateSize)> {
    let state = engine.state();
    let pod = (state.pods.iter())
        .find(|p| p.labels.contains_key("app") && !p.host_network)
        .expect("a pod with an app label");
    let (namespace, app) = (&pod.namespace, &pod.labels["app"]);
    let policy = |port: u16| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: bench-extra, namespace: {namespace}}}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  ingress: [{{from: [{{podSelector: {{}}}}], ports: [{{port: {port}}}]}}]\n"
        )
    };
    let file = dir.join("000-bench-policy.yaml");
    let fresh = |previous: Option<&palisade_dataplane::Ruleset>| {
        let mut loader = Loader::new();
        loader.load_path(dir);
        let engine = Engine::new(Arc::new(loader.finish().0));
        build(&CompiledTable::of(&engine, Audit::Annotated), previous)
    };
    // Three rounds of: `before` written and passed, then `after` written and one pass timed, its
    // outcome checked by `ok`; the median, and what the update touches in the kernel (from full
    // builds of the states before and after, in the first round).
    let mut timed = |what: &str, before: &dyn Fn(), after: &dyn Fn(), ok: fn(&Outcome) -> bool| {
        let mut times = Vec::new();
        let mut size = None;
        for _ in 0..3 {
            before();
            assert!(!matches!(reconciler.reconcile(), Outcome::Failed(_)));
            let old = size.is_none().then(|| fresh(None));
            after();
            let t = Instant::now();
            let outcome = reconciler.reconcile();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(ok(&outcome), "{what}: {outcome:?}");
            if let Some(old) = old {
                size = Some(fresh(Some(&old)).update_from(&old).size());
            }
        }
        (median(times), size.expect("measured"))
    };
    let mut out = Vec::new();
    // A policy with an ipBlock no other policy has: the blocks partition the pods into classes.
    // Added, the classes are split from the previous ones; deleted, they would merge, and the
    // engine is compiled afresh (the slow path).
    let with_block = policy(8080).replace("podSelector: {}", "ipBlock: {cidr: 192.0.2.0/24}");
    // One that holds every pod's address: every class is split.
    let holding_all = policy(8080).replace("podSelector: {}", "ipBlock: {cidr: 10.0.0.0/8}");
    for (what, before, after) in [
        (
            "policy added -> kernel (one pass)",
            None,
            Some(policy(8080)),
        ),
        (
            "policy with a new ipBlock added",
            None,
            Some(with_block.clone()),
        ),
        (
            "policy with the only use of an ipBlock deleted",
            Some(with_block),
            None,
        ),
        (
            "policy with an ipBlock holding every pod added",
            None,
            Some(holding_all),
        ),
        (
            "policy edited -> kernel (one pass)",
            Some(policy(8080)),
            Some(policy(8081)),
        ),
        (
            "policy deleted -> kernel (one pass)",
            Some(policy(8081)),
            None,
        ),
    ] {
        let write = |text: &Option<String>| match text {
            Some(text) => std::fs::write(&file, text).unwrap(),
            // Another kind in the file: it reads cleanly and no longer defines the policy.
            None => std::fs::write(
                &file,
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            )
            .unwrap(),
        };
        let applied = |o: &Outcome| matches!(o, Outcome::Applied { .. });
        let (ms, size) = timed(what, &|| write(&before), &|| write(&after), applied);
        out.push((what, ms, size));
    }
    let _ = std::fs::remove_file(&file);
    // A namespace relabelled (the first namespace's `env`, which namespace selectors read).
    let namespaces = dir.join("namespaces.yaml");
    let original = std::fs::read_to_string(&namespaces).unwrap();
    let relabelled = original.replacen("env: prod", "env: prod-x", 1);
    assert_ne!(relabelled, original);
    let what = "namespace relabelled -> kernel (one pass)";
    let (ms, size) = timed(
        what,
        &|| std::fs::write(&namespaces, &original).unwrap(),
        &|| std::fs::write(&namespaces, &relabelled).unwrap(),
        |o| !matches!(o, Outcome::Failed(_)),
    );
    std::fs::write(&namespaces, &original).unwrap();
    out.push((what, ms, size));
    out
}
