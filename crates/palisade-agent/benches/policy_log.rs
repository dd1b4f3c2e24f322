//! The policy action logging pipeline under load, from the kernel to the file (root only): a lab
//! pod sends UDP datagrams that policy denies, each to another port, at a paced rate; the kernel
//! logs each to NFLOG; the agent's pipeline (`policy_log::run`: read, attribute, count, publish to the
//! live view, aggregate, write JSON lines) runs in its own thread, as in the agent.
//!
//! Reported per offered rate: events read, events the kernel lost because the reader fell behind,
//! records written, and the CPU the pipeline thread used. Limits are lifted (no rate limit, no key
//! limit, 100 ms windows) so that nearly every event becomes a record and the file writer is part of
//! the cost; with GKE's defaults the pipeline only does less.
//!
//! Run: `cargo bench -p palisade-agent --bench policy_log`.

/// The allocator of the `palisade` binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use palisade_agent::metrics::Metrics;
use palisade_agent::observe::Hub;
use palisade_agent::policy_log::{self, Limits, PolicyLogger};
use palisade_dataplane::events::EventReader;
use palisade_dataplane::netns::{in_netns, within_netns};
use palisade_dataplane::{apply, render};
use palisade_lab::{self as lab, Lab};
use palisade_model::Loader;
use palisade_policy::{Audit, CompiledTable, Engine};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLUSTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: bench, labels: {app: client}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.78.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: bench, labels: {app: server}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
status: {podIP: 10.78.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all-ingress, namespace: bench}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.gke.io/v1alpha1
kind: NetworkLogging
metadata: {name: default}
spec: {cluster: {allow: {log: true}, deny: {log: true}}}
"#;

/// Seconds of traffic per offered rate.
const SECONDS: u64 = 3;

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init()
    };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn sample(metrics: &Metrics, prefix: &str) -> f64 {
    metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Sends `rate` datagrams per second for `SECONDS` from `netns` to `dst`, each to the next port;
/// returns how many and how long it took (longer than planned when the sender cannot keep up).
fn flood(netns: &str, dst: std::net::IpAddr, rate: u64) -> (u64, Duration) {
    in_netns(netns, move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let total = rate * SECONDS;
        let start = Instant::now();
        for i in 0..total {
            let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let port = 1024 + (i % 60000) as u16;
            let _ = socket.send_to(b"x", SocketAddr::new(dst, port));
        }
        (total, start.elapsed())
    })
    .join()
    .unwrap()
    .unwrap()
}

fn main() {
    if lab::require_root().is_err() {
        eprintln!("policy_log bench: needs root (network namespaces, nftables); skipped");
        return;
    }
    let name = format!("b{}", std::process::id());
    let _teardown = lab::DownOnDrop(name.clone());
    let mut loader = Loader::new();
    loader.load_str("bench.yaml", CLUSTER);
    let engine = Arc::new(Engine::new(Arc::new(loader.finish().0)));
    let lab = Lab::plan(&name, engine.state());
    lab.create().expect("lab up");
    apply(
        &render(&CompiledTable::of(&engine, Audit::Annotated)),
        Some(&lab.node),
    )
    .expect("ruleset");
    let (client, server) = (&lab.pods[0], &lab.pods[1]);
    let dir = tempfile::tempdir().unwrap();
    println!("policy action logging pipeline, NFLOG to file; {SECONDS} s per rate");
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "planned/s", "sent/s", "read/s", "lost", "records/s", "cpu %", "cpu µs/event"
    );
    // `PALISADE_BENCH_RATES=1000,5000` measures only those rates (e.g. under a profiler).
    let rates: Vec<u64> = std::env::var("PALISADE_BENCH_RATES")
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|_| vec![1_000, 10_000, 50_000, 100_000, 200_000]);
    for rate in rates {
        let metrics = Arc::new(Metrics::new());
        let limits = Limits {
            aggregation_window: Duration::from_millis(100),
            max_open_keys: 1 << 20,
            records_per_second: u32::MAX,
            burst: u32::MAX,
            ..Limits::default()
        };
        let path = dir.path().join(format!("policy_action-{rate}.log"));
        let mut logger = PolicyLogger::new(&path, "bench", &limits, None, metrics.clone())
            .unwrap()
            .with_hub(Arc::new(Hub::default()));
        logger.set_engine(engine.clone());
        let logger = Arc::new(Mutex::new(logger));
        let reader = within_netns(Some(&lab.node), EventReader::open).expect("NFLOG bind");
        let stop = Arc::new(AtomicBool::new(false));
        let pipeline = {
            let (logger, metrics, stop) = (logger.clone(), metrics.clone(), stop.clone());
            std::thread::spawn(move || {
                policy_log::run(reader, &logger, &metrics, &stop).unwrap();
                thread_cpu()
            })
        };
        let (sent, took) = flood(&client.netns, server.ip, rate);
        // Let the last windows close and the reader catch up.
        let settle = Duration::from_millis(500);
        std::thread::sleep(settle);
        stop.store(true, Ordering::Relaxed);
        let cpu = pipeline.join().unwrap();
        let read = sample(&metrics, "palisade_policy_verdicts_total");
        let lost = sent as f64 - read;
        let written = sample(&metrics, "palisade_policy_log_records_total");
        let secs = took.as_secs_f64();
        println!(
            "{rate:>10} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>10.1} {:>12.2}",
            sent as f64 / secs,
            read / secs,
            lost,
            written / secs,
            cpu.as_secs_f64() / (took + settle).as_secs_f64() * 100.0,
            cpu.as_secs_f64() * 1e6 / read.max(1.0)
        );
        std::fs::remove_file(&path).ok();
    }
}
