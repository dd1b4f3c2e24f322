//! What the flow log costs the traffic (root only): the short-connection rate between two lab
//! pods (one isolated, the other allowed in by a NetworkPolicy) with the flow log off, on at its
//! default 5 s interval and on at 1 s — accounting on, every connection's ending heard, conntrack
//! listed each interval — in interleaved rounds, medians reported, with what the flow log wrote
//! and dropped.
//!
//! Run: `cargo bench -p palisade-agent --bench flow_log`.

/// The allocator of the `palisade` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod traffic;

use palisade_agent::flow_log::{self, FlowLimits, FlowLogger};
use palisade_agent::health::Health;
use palisade_agent::metrics::{Metrics, ReasonLabel};
use palisade_agent::policy_log::{Limits, PolicyLogger};
use palisade_dataplane::build;
use palisade_dataplane::conntrack::forget_connections;
use palisade_lab::{self as lab, Lab};
use palisade_model::{Loader, PodKey};
use palisade_policy::{Audit, CompiledTable, Engine, Engines};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use traffic::{conn_rate, median, serve_echo};

/// Seconds each rate is measured over: at least one 5 s interval closes within it.
const SECONDS: f64 = 6.0;
const ROUNDS: usize = 5;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: bench, labels: {app: client}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.79.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: bench, labels: {app: server}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.79.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server, namespace: bench}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8080}]}]
"#;

/// A flow log running in `netns` until dropped.
struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(
        netns: &str,
        interval: Duration,
        policy: &Arc<Mutex<PolicyLogger>>,
        metrics: &Arc<Metrics>,
        path: &std::path::Path,
    ) -> Running {
        let limits = FlowLimits {
            interval,
            ..FlowLimits::default()
        };
        let logger = FlowLogger::new(path, "bench", &limits, None, metrics.clone()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (netns, policy, flag) = (netns.to_string(), policy.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let health = Health::default();
            flow_log::run(logger, Some(netns), &policy, &health, &flag)
        });
        // The first listing is the baseline.
        std::thread::sleep(interval.min(Duration::from_secs(1)) + Duration::from_millis(200));
        Running {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn main() {
    if lab::require_root().is_err() {
        eprintln!("the flow log benchmark needs root (network namespaces, nftables, conntrack)");
        std::process::exit(2);
    }
    let mut loader = Loader::new();
    loader.load_str("bench.yaml", CLUSTER);
    let state = Arc::new(loader.finish().0);
    let engine = Engine::new(state.clone());
    let name = format!("fb{}", std::process::id());
    let _teardown = lab::DownOnDrop(name.clone());
    let lab = Lab::plan(&name, &state);
    lab.create().expect("lab");
    let pod = |n: &str| lab.pod(&PodKey::new("bench", n)).unwrap().clone();
    let (client, server) = (pod("client"), pod("server"));
    serve_echo(&server.netns, 8080);
    let table = CompiledTable::of(&engine, Audit::Annotated);
    build(&table, None).apply(Some(&lab.node)).expect("apply");
    let target = SocketAddr::new(server.ip, 8080);

    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut policy = PolicyLogger::new(
        &dir.path().join("policy.log"),
        "bench",
        &Limits::default(),
        None,
        metrics.clone(),
    )
    .unwrap();
    policy.set_engine(Engines::new(state.clone()));
    let policy = Arc::new(Mutex::new(policy));

    let scenarios: [(&str, Option<Duration>); 3] = [
        ("flow log off", None),
        ("flow log 5 s", Some(Duration::from_secs(5))),
        ("flow log 1 s", Some(Duration::from_secs(1))),
    ];
    let mut rates: [Vec<f64>; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (_, interval)) in scenarios.iter().enumerate() {
            // Every scenario starts from an empty conntrack table.
            forget_connections(&lab.node).unwrap();
            let path = dir.path().join(format!("flows-{i}.log"));
            let running =
                interval.map(|every| Running::start(&lab.node, every, &policy, &metrics, &path));
            rates[i].push(conn_rate(&client.netns, target, SECONDS));
            drop(running);
        }
    }
    let rates = rates.map(median);
    println!(
        "flow log overhead, short connections between two lab pods ({ROUNDS} interleaved rounds of {SECONDS} s, medians):"
    );
    for (i, (what, _)) in scenarios.iter().enumerate() {
        println!(
            "  {what:<14} {:7.0} connections/s (ratio to off {:.2})",
            rates[i],
            rates[i] / rates[0]
        );
    }
    let dropped = |reason: &str| {
        let label = ReasonLabel {
            reason: reason.into(),
        };
        metrics.flow_dropped.get_or_create(&label).get()
    };
    let text = metrics.encode();
    let value = |name: &str| -> f64 {
        (text.lines())
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        value("palisade_flow_log_close_seconds_sum "),
        value("palisade_flow_log_close_seconds_count "),
    );
    println!(
        "  closing an interval (list, account, write): {:.2} ms on average over {count} intervals; the last listing held {} connections",
        sum * 1e3 / count.max(1.0),
        value("palisade_flow_log_connections ")
    );
    println!(
        "  flow log: {} records written; dropped: rate_limit {}, too_many_connections {}, too_many_endings {}, endings_lost {}, ending_unseen {}",
        metrics.flow_records.get(),
        dropped("rate_limit"),
        dropped("too_many_connections"),
        dropped("too_many_endings"),
        dropped("endings_lost"),
        dropped("ending_unseen"),
    );
}
