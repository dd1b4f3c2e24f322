//! The flow log in the lab, as root, with real packets: a connection between two pods of one node
//! (cartservice → redis-cart's echo responder) is told with its bytes within an interval and a
//! second, once per interval it is active, with its pods, workloads and the policy that let it in;
//! its end is told; a flood of short connections is summed, counted where it exceeds the bounds,
//! and leaves the agent's memory bounded; `observe --flows` shows a connection's record live and
//! from the file.

mod support;

use palisade_dataplane::netns::in_netns;
use palisade_lab::LabPod;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{records, sample, scrape, within, Demo, Reaped};

/// A lab on the demo with a flow log of 1 s intervals and metrics, `extra` options added.
struct Setup {
    demo: Demo,
    flows: PathBuf,
    metrics: String,
    cart: LabPod,
    redis: LabPod,
    agent: u32,
}

fn up(prefix: &str, extra: &[&str]) -> Setup {
    let demo = Demo::new(prefix);
    let flows = demo.dir.path().join("log/flows.log");
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let mut args = vec![
        "--flow-log",
        flows.to_str().unwrap(),
        "--flow-log-interval",
        "1s",
        "--metrics-addr",
        &metrics,
    ];
    args.extend_from_slice(extra);
    let lab = demo.up(&args);
    let cart = lab.find_pod("default/cartservice").unwrap().clone();
    let redis = lab.find_pod("default/redis-cart").unwrap().clone();
    let agent = lab.processes.last().unwrap().pid();
    // The first listing only sets the baseline: connections older than it are not told as new.
    let baseline = within(Duration::from_secs(5), || {
        sample(&scrape(&metrics), "palisade_flow_log_connections ") >= 0.0
            && scrape(&metrics).contains("palisade_flow_log_connections ")
    });
    assert!(baseline.is_some(), "no flow log metrics");
    std::thread::sleep(Duration::from_millis(1200));
    Setup {
        demo,
        flows,
        metrics,
        cart,
        redis,
        agent,
    }
}

/// A TCP connection from `from`'s namespace to `to`:6379 (the lab's echo responder).
fn connect(from: &LabPod, to: &LabPod) -> TcpStream {
    connect_to(from, SocketAddr::new(to.ip, 6379))
}

/// Sends `n` bytes on `stream` and reads them back.
fn exchange(mut stream: &TcpStream, n: usize) {
    let data = vec![b'x'; n];
    stream.write_all(&data).unwrap();
    let mut back = vec![0; n];
    stream.read_exact(&mut back).unwrap();
}

/// The records of the connection from local port `port`.
fn of_port(path: &Path, port: u16) -> Vec<Value> {
    records(path)
        .into_iter()
        .filter(|r| r["connection"]["src_port"] == port)
        .collect()
}

/// Bytes one way of a record carrying `payload` bytes of data in `packets` packets: the data and
/// each packet's IP and TCP headers (20 + 20 to 60 bytes).
fn carries(record: &Value, way: &str, payload: u64) {
    let bytes = record[format!("bytes_{way}")].as_u64().expect("counted");
    let packets = record[format!("packets_{way}")].as_u64().expect("counted");
    assert!(packets >= 1, "{record:#}");
    assert!(
        (payload + 40 * packets..=payload + 80 * packets).contains(&bytes),
        "{way}: {bytes} bytes in {packets} packets for {payload} bytes of data: {record:#}"
    );
}

#[test]
fn a_connection_is_told_with_its_bytes_once_per_interval_it_is_active() {
    let setup = up("fl", &[]);
    let stream = connect(&setup.cart, &setup.redis);
    let port = stream.local_addr().unwrap().port();
    exchange(&stream, 20_000);
    let sent = Instant::now();
    let told = within(Duration::from_secs(4), || {
        !of_port(&setup.flows, port).is_empty()
    });
    let elapsed = told.map(|_| sent.elapsed());
    assert!(
        elapsed.is_some_and(|e| e <= Duration::from_secs(2)),
        "not in the flow log within an interval (1 s) and a second: {elapsed:?}; {:#?}",
        records(&setup.flows)
    );
    let first = of_port(&setup.flows, port).remove(0);
    carries(&first, "sent", 20_000);
    carries(&first, "received", 20_000);
    assert_eq!(first["started"], true, "{first:#}");
    assert_eq!(first["ended"], false, "{first:#}");
    assert_eq!(first["connection"]["src_ip"], setup.cart.ip.to_string());
    assert_eq!(first["connection"]["dest_ip"], setup.redis.ip.to_string());
    assert_eq!(first["connection"]["dest_port"], 6379);
    assert_eq!(first["connection"]["protocol"], "tcp");
    let name = |end: &str| first[end]["pod_name"].as_str().unwrap().to_string();
    assert_eq!(name("src"), setup.cart.key.name, "{first:#}");
    assert_eq!(name("dest"), setup.redis.key.name, "{first:#}");
    assert!(name("dest").starts_with("redis-cart-"), "{first:#}");
    let workload = first["dest"]["workload_name"].as_str().unwrap();
    assert!(workload.starts_with("redis-cart-"), "{first:#}");
    assert_eq!(first["dest"]["namespace"], "default", "{first:#}");
    assert!(
        !first["node_name"].as_str().unwrap().is_empty(),
        "{first:#}"
    );
    assert_eq!(
        first["reporter"], "both",
        "one node holds both pods: {first:#}"
    );
    // The demo's redis-cart admits cartservice by its policy: the verdict names it.
    assert_eq!(first["disposition"], "allow", "{first:#}");
    assert_eq!(first["ingress"]["disposition"], "allow", "{first:#}");
    let admitting: Vec<&str> = (first["ingress"]["policies"].as_array())
        .expect("the policy that let it in")
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(admitting, ["redis-cart-allow-cartservice"], "{first:#}");
    let start = |r: &Value| r["start_time"].as_str().unwrap().to_string();
    let end = |r: &Value| r["end_time"].as_str().unwrap().to_string();

    // Two more intervals with traffic, one idle: a record for each active one, none for the idle.
    for n in [5_000, 7_000] {
        std::thread::sleep(Duration::from_millis(1100));
        exchange(&stream, n);
    }
    std::thread::sleep(Duration::from_millis(2200));
    let all = of_port(&setup.flows, port);
    assert_eq!(all.len(), 3, "one record per active interval: {all:#?}");
    for (r, payload) in all[1..].iter().zip([5_000, 7_000]) {
        carries(r, "sent", payload);
        carries(r, "received", payload);
        assert_eq!(
            (&r["started"], &r["ended"]),
            (&Value::Bool(false), &Value::Bool(false))
        );
    }
    assert!(
        start(&all[0]) < start(&all[1]) && end(&all[1]) <= start(&all[2]),
        "{all:#?}"
    );

    // Its end is told, within an interval and a second.
    drop(stream);
    let ended = within(Duration::from_secs(3), || {
        of_port(&setup.flows, port)
            .iter()
            .any(|r| r["ended"] == true)
    });
    assert!(ended.is_some(), "{:#?}", of_port(&setup.flows, port));
    let metrics = scrape(&setup.metrics);
    let bytes = sample(
        &metrics,
        r#"palisade_flow_bytes_total{src_namespace="default",dest_namespace="default"}"#,
    );
    assert!(bytes >= 64_000.0, "{metrics}");
}

/// The agent's resident memory, in KiB.
fn rss(agent: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{agent}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `n` short connections from `from` to `to`:6379, each a round trip of 10 bytes, closed
/// normally (their entries stay tracked, closed, in TIME_WAIT); how many were made.
fn flood(from: &LabPod, to: &LabPod, n: usize) -> u64 {
    let server = SocketAddr::new(to.ip, 6379);
    in_netns(&from.netns, move || {
        let mut made = 0;
        for _ in 0..n {
            let Ok(stream) = TcpStream::connect_timeout(&server, Duration::from_secs(1)) else {
                continue;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            exchange(&stream, 10);
            made += 1;
        }
        made
    })
    .join()
    .unwrap()
    .unwrap()
}

/// The records of connections from `from`'s address to port 6379, and how many connections the
/// started ones and the ended ones count.
fn told(path: &Path, from: &LabPod) -> (Vec<Value>, u64, u64) {
    let flood: Vec<Value> = records(path)
        .into_iter()
        .filter(|r| {
            r["connection"]["dest_port"] == 6379 && r["connection"]["src_ip"] == from.ip.to_string()
        })
        .collect();
    let count = |mark: &str| {
        (flood.iter())
            .filter(|r| r[mark] == true)
            .map(|r| r["connections"].as_u64().unwrap_or(1))
            .sum()
    };
    let (started, ended) = (count("started"), count("ended"));
    (flood, started, ended)
}

/// Every one of a flood of short connections is told started once and ended once, summed into a
/// few records per interval; the agent's memory stays flat.
#[test]
fn a_flood_of_short_connections_is_told_once_each_in_a_few_records() {
    let setup = up("ff", &[]);
    let before = rss(setup.agent);
    let made = flood(&setup.cart, &setup.redis, 3000);
    assert!(made > 2900, "only {made} connections");
    let counted = within(Duration::from_secs(4), || {
        let (_, started, ended) = told(&setup.flows, &setup.cart);
        started >= made && ended >= made
    });
    let (lines, started, ended) = told(&setup.flows, &setup.cart);
    assert!(
        counted.is_some(),
        "{started} started and {ended} ended told of {made}"
    );
    assert_eq!((started, ended), (made, made), "each told once: {lines:#?}");
    let summed = lines.iter().filter(|r| r["connections"].as_u64() > Some(1));
    assert!(summed.count() >= 1, "{lines:#?}");
    assert!(lines.len() < 100, "{} records for the lines", lines.len());
    for r in &lines {
        let n = r["connections"].as_u64().unwrap_or(1);
        // 10 bytes each way in each connection, and at least its handshake's packets.
        let data = r["bytes_sent"].as_u64().unwrap();
        assert!(
            data >= n * 10 + n * 40 * 3 || r["started"] == false,
            "{r:#}"
        );
    }
    let after = rss(setup.agent);
    eprintln!(
        "flood: {made} connections told in {} records; the agent's memory {before} KiB, then {after} KiB",
        lines.len()
    );
    assert!(
        after.saturating_sub(before) < 20_000,
        "{before} -> {after} KiB"
    );
}

/// Past `--flow-log-max-connections`, the listing stops at the bound and says so; what is told
/// is never more than what happened, and memory stays bounded.
#[test]
fn past_its_bound_the_flow_log_counts_what_it_cannot_tell() {
    let setup = up("fb", &["--flow-log-max-connections", "500"]);
    let before = rss(setup.agent);
    let made = flood(&setup.cart, &setup.redis, 3000);
    std::thread::sleep(Duration::from_millis(2500));
    let first = rss(setup.agent);
    let metrics = scrape(&setup.metrics);
    let capped = sample(
        &metrics,
        r#"palisade_flow_log_dropped_total{reason="too_many_connections"}"#,
    );
    assert!(
        capped >= 1.0,
        "the bound was reached and counted: {metrics}"
    );
    assert!(
        sample(&metrics, "palisade_flow_log_connections ") <= 500.0,
        "{metrics}"
    );
    let (lines, started, ended) = told(&setup.flows, &setup.cart);
    assert!(
        started <= made && ended <= made,
        "{started}/{ended} told of {made}: {lines:#?}"
    );
    assert!(started > 0, "some are told");
    // What the flow log keeps is bounded by the cap, not by the traffic: once warm (a second
    // flood), two more floods as large (the kernel then tracks 12,000) leave the agent's memory
    // where it was, within allocator noise.
    flood(&setup.cart, &setup.redis, 3000);
    std::thread::sleep(Duration::from_millis(2000));
    let warm = rss(setup.agent);
    for _ in 0..2 {
        flood(&setup.cart, &setup.redis, 3000);
        std::thread::sleep(Duration::from_millis(2000));
    }
    let last = rss(setup.agent);
    eprintln!("bounded: 12,000 connections; memory {before} KiB, {first} KiB after 3,000, {warm} KiB after 6,000, {last} KiB after 12,000");
    assert!(
        first.saturating_sub(before) < 20_000,
        "{before} -> {first} KiB"
    );
    assert!(last.saturating_sub(warm) < 1_000, "{warm} -> {last} KiB");
}

#[test]
fn observe_flows_follows_a_connection_live_and_reads_it_from_the_flow_log() {
    let setup = up("fv", &[]);
    let cart = setup.cart.key.to_string();
    let mut follow = Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["observe", "--flows", "--lab", &setup.demo.name, "--follow"])
            .args([
                "-o",
                "json",
                "--from-pod",
                &cart,
                "--to-pod",
                "default/redis-cart",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = follow.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300)); // subscribed
    let stream = connect(&setup.cart, &setup.redis);
    let port = stream.local_addr().unwrap().port();
    exchange(&stream, 5_000);
    let deadline = Instant::now() + Duration::from_secs(4);
    let live: Value = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the connection's flow record followed within an interval and 3 s");
        let record: Value = serde_json::from_str(&line).unwrap();
        if record["connection"]["src_port"] == port {
            break record;
        }
    };
    drop(follow);
    carries(&live, "sent", 5_000);
    assert_eq!(live["src"]["pod_name"], setup.cart.key.name, "{live:#}");
    assert_eq!(live["started"], true, "{live:#}");
    assert_eq!(live["disposition"], "allow", "{live:#}");

    // The same record, from the lab's flow log, as a table.
    let written = within(Duration::from_secs(3), || {
        !of_port(&setup.flows, port).is_empty()
    });
    assert!(written.is_some(), "{:#?}", records(&setup.flows));
    let port_arg = port.to_string();
    let file = setup.flows.to_str().unwrap();
    let o = support::palisade(&[
        "observe", "--flows", "--file", file, "--port", &port_arg, "-o", "table",
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(table.starts_with("END "), "{table}");
    let first = table.lines().nth(1).expect("a row");
    assert!(first.contains(&format!("{cart}:{port}")), "{table}");
    assert!(
        first.contains(" ALLOWED ") && first.contains(" started"),
        "{table}"
    );
}

/// Pods a on node-0 and b on node-1 (port 80), no policy.
const TWO_NODES: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: fl}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: fl, labels: {app: a}}
spec: {nodeName: node-0, containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: fl, labels: {app: b}}
spec: {nodeName: node-1, containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}
"#;

/// Across nodes, each node tells the connection in its own flow log with its name; a connection
/// from a pod to an address outside the cluster (node-1's fabric address, as node-0 forwards it)
/// is told with the address as its destination.
#[test]
fn connections_across_nodes_and_to_the_outside_are_told_by_each_node() {
    palisade_lab::require_root().expect("the lab tests run as root");
    let name = format!("fn{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), TWO_NODES).unwrap();
    let _teardown = palisade_lab::DownOnDrop(name.clone());
    let flows = dir.path().join("flows.log");
    // Two free ports in a row: node i serves metrics on the given port + i.
    let port = (0..50)
        .map(|_| support::free_port())
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok())
        .unwrap();
    let metrics = format!("127.0.0.1:{port}");
    let out = support::palisade(&[
        "lab",
        "--name",
        &name,
        "up",
        "-f",
        dir.path().to_str().unwrap(),
        "--nodes",
        "2",
        "--flow-log",
        flows.to_str().unwrap(),
        "--flow-log-interval",
        "1s",
        "--metrics-addr",
        &metrics,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lab = palisade_lab::Lab::load(&name).unwrap();
    let node_log = |i: usize| lab.node_file(&flows, i);
    assert!(
        stdout.contains(&format!("flow log (node-1): {}", node_log(1).display())),
        "{stdout}"
    );
    let (a, b) = (lab.find_pod("fl/a").unwrap(), lab.find_pod("fl/b").unwrap());
    // Something outside node-0: a listener on node-1's own address on the fabric.
    let outside: SocketAddr = "169.254.100.2:7777".parse().unwrap();
    let listener = in_netns(&lab.nodes[1].netns, move || {
        std::net::TcpListener::bind(outside)
    })
    .join()
    .unwrap()
    .unwrap()
    .unwrap();
    // It answers 100 bytes with 5,000: sent and received tell apart.
    let accepting = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0; 100];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&[b'y'; 5_000]).unwrap();
    });
    std::thread::sleep(Duration::from_millis(1200)); // the baseline listing

    let to_b = connect_to(a, SocketAddr::new(b.ip, 80));
    exchange(&to_b, 3_000);
    let mut to_outside = connect_to(a, outside);
    to_outside.write_all(&[b'x'; 100]).unwrap();
    to_outside.read_exact(&mut [0; 5_000]).unwrap();
    accepting.join().unwrap();
    let (b_port, out_port) = (
        to_b.local_addr().unwrap().port(),
        to_outside.local_addr().unwrap().port(),
    );
    for (i, (node, reporter)) in [("node-0", "src"), ("node-1", "dest")]
        .into_iter()
        .enumerate()
    {
        let told = within(Duration::from_secs(3), || {
            !of_port(&node_log(i), b_port).is_empty()
        });
        assert!(told.is_some(), "{node}: {:#?}", records(&node_log(i)));
        let r = &of_port(&node_log(i), b_port)[0];
        assert_eq!(r["node_name"], node, "{r:#}");
        assert_eq!(r["reporter"], reporter, "each node says its end: {r:#}");
        assert_eq!(
            (&r["src"]["pod_name"], &r["dest"]["pod_name"]),
            (&Value::from("a"), &Value::from("b"))
        );
        carries(r, "sent", 3_000);
    }
    // The metrics count a connection once in the cluster: on its source's node.
    let fl = r#"palisade_flow_bytes_total{src_namespace="fl",dest_namespace="fl"}"#;
    let bytes = |node: u16| sample(&scrape(&format!("127.0.0.1:{}", port + node)), fl);
    assert!(bytes(0) >= 3_000.0, "node-0 counts it");
    let node1 = scrape(&format!("127.0.0.1:{}", port + 1));
    assert!(node1.contains("palisade_flow_log_records_total"), "{node1}");
    assert_eq!(bytes(1), 0.0, "node-1 tells it but does not count it again");
    let told = within(Duration::from_secs(3), || {
        !of_port(&node_log(0), out_port).is_empty()
    });
    assert!(told.is_some(), "{:#?}", records(&node_log(0)));
    let r = &of_port(&node_log(0), out_port)[0];
    assert_eq!(r["dest"]["instance"], "169.254.100.2", "{r:#}");
    assert_eq!(r["src"]["pod_name"], "a", "{r:#}");
    assert_eq!(r["reporter"], "src", "{r:#}");
    assert!(r.get("ingress").is_none(), "no pod receives it: {r:#}");
    carries(r, "sent", 100);
    carries(r, "received", 5_000);
}

/// A TCP connection from `from`'s namespace to `to`.
fn connect_to(from: &LabPod, to: SocketAddr) -> TcpStream {
    support::connect_from(from, to, Duration::from_secs(2))
}
