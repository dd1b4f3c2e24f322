//! Policy action logging in the lab, end to end, as root: real packets, the kernel's verdict events,
//! the agent's records in `policy_action.log`. The rogue pod → redis-cart walkthrough (deny logging,
//! aggregation, deny delegation), allow records and their delegation, an invalid NetworkLogging, and a
//! flood of denials bounded by the key and rate limits, with rotation.

mod support;

use palisade_dataplane::netns::in_netns;
use palisade_lab::{self as lab, Lab};
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{connects, palisade, records, sample, scrape, within, Demo};

fn network_logging(allow: &str, deny: &str) -> String {
    format!(
        "apiVersion: networking.gke.io/v1alpha1\nkind: NetworkLogging\nmetadata: {{name: default}}\n\
         spec: {{cluster: {{allow: {allow}, deny: {deny}}}}}\n"
    )
}

/// A lab on a copy of the microservices demo with a NetworkLogging, logging to a file of its own.
struct Setup {
    demo: Demo,
    log: PathBuf,
    lab: Lab,
}

/// Brings lab `<prefix><pid>` up with `NetworkLogging` switches `allow`/`deny` and `extra` options.
fn up(prefix: &str, allow: &str, deny: &str, extra: &[&str]) -> Setup {
    up_with(prefix, allow, deny, &[], extra)
}

/// [`up_with`] logging every allowed and denied connection, with `file` (name, manifests), deny
/// windows of 1 s and metrics on `metrics`.
fn up_logging_all(prefix: &str, file: (&str, &str), metrics: &str) -> Setup {
    let extra = ["--deny-aggregation-window", "1s", "--metrics-addr", metrics];
    up_with(prefix, "{log: true}", "{log: true}", &[file], &extra)
}

/// [`up`], with `files` (name, manifests) added to the demo's.
fn up_with(prefix: &str, allow: &str, deny: &str, files: &[(&str, &str)], extra: &[&str]) -> Setup {
    let demo = Demo::new(prefix);
    std::fs::write(
        demo.manifests.join("zz-logging.yaml"),
        network_logging(allow, deny),
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(demo.manifests.join(name), text).unwrap();
    }
    let log = demo.dir.path().join("log/policy_action.log");
    let mut args = vec!["--policy-log", log.to_str().unwrap()];
    args.extend_from_slice(extra);
    Setup {
        lab: demo.up(&args),
        demo,
        log,
    }
}

/// Waits until the agent has taken `n` NetworkLogging configuration events of `reason`.
fn wait_config(metrics: &str, reason: &str, n: f64) {
    let line = format!("palisade_network_logging_config_total{{reason=\"{reason}\"}}");
    assert!(
        within(Duration::from_secs(3), || sample(&scrape(metrics), &line)
            >= n)
        .is_some(),
        "the agent did not take {reason} #{n}:\n{}",
        scrape(metrics)
    );
}

fn of(records: &[Value], disposition: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["disposition"] == disposition)
        .cloned()
        .collect()
}

#[test]
fn rogue_to_redis_walkthrough() {
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let setup = up(
        "l",
        "{log: false}",
        "{log: true}",
        &[
            "--node-name",
            "node-a",
            "--metrics-addr",
            &metrics,
            "--group",
            "4242",
        ],
    );
    let Setup { demo, log, lab } = &setup;
    let (name, manifests) = (&demo.name, &demo.manifests);
    let logging = manifests.join("zz-logging.yaml");
    let (cart, rogue, redis) = (
        lab.find_pod("default/cartservice").unwrap(),
        lab.find_pod("default/rogue").unwrap(),
        lab.find_pod("default/redis-cart").unwrap(),
    );

    // Deny logging: 4 attempts within 5 s through the Service → one record, count 4, addresses
    // after Service translation.
    let first = Instant::now();
    for _ in 0..4 {
        assert!(!connects(name, &rogue.key, "redis-cart", 6379));
    }
    assert!(first.elapsed() < Duration::from_secs(4));
    assert!(
        within(Duration::from_secs(8), || !records(log).is_empty()).is_some(),
        "no deny record within the 5 s window"
    );
    let r = records(log);
    assert_eq!(r.len(), 1, "{r:#?}");
    let d = &r[0];
    assert_eq!(redis.key.namespace, "default");
    let (redis_name, redis_workload) = {
        let n = &redis.key.name;
        (n.clone(), n.rsplit_once('-').unwrap().0.to_string())
    };
    assert_eq!(d["connection"]["src_ip"], rogue.ip.to_string());
    assert_eq!(d["connection"]["dest_ip"], redis.ip.to_string());
    assert_eq!(d["connection"]["dest_port"], 6379);
    assert!(d["connection"]["src_port"].as_u64().unwrap() > 1024);
    assert_eq!(d["connection"]["protocol"], "tcp");
    assert_eq!(d["connection"]["direction"], "ingress");
    assert_eq!(d["disposition"], "deny");
    assert!(d.get("policies").is_none());
    assert_eq!(
        d["src"],
        serde_json::json!({"pod_name": "rogue", "pod_namespace": "default", "namespace": "default"})
    );
    assert_eq!(
        d["dest"],
        serde_json::json!({"pod_name": redis_name, "workload_kind": "ReplicaSet",
            "workload_name": redis_workload, "pod_namespace": "default", "namespace": "default"})
    );
    assert_eq!(d["count"], 4);
    assert_eq!(d["node_name"], "node-a");
    assert!(d["timestamp"].as_str().unwrap().ends_with('Z'));
    // `lab up --group` reached the agent: what it created belongs to the group, with fixed modes.
    let socket = lab::observe_socket(name);
    for (path, mode) in [
        (log.clone(), 0o640),
        (log.parent().unwrap().to_path_buf(), 0o750),
        (socket, 0o660),
    ] {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let got = (meta.mode() & 0o7777, meta.gid());
        assert_eq!(got, (mode, 4242), "{}", path.display());
    }

    // The live view: every attempt, unaggregated, filtered like Hubble; and the file, filtered.
    let live = palisade(&[
        "observe",
        "--lab",
        name,
        "-o",
        "json",
        "--verdict",
        "denied",
        "--from-pod",
        "rogue",
        "--to-pod",
        "default/redis-cart",
        "--port",
        "6379",
        "--protocol",
        "tcp",
    ]);
    let text = String::from_utf8_lossy(&live.stdout);
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{text}");
    assert!(events
        .iter()
        .all(|e| e["count"] == 1 && e["disposition"] == "deny"));
    let none = palisade(&["observe", "--lab", name, "--verdict", "allowed"]);
    assert!(
        none.status.success() && none.stdout.is_empty(),
        "no allowed flows yet"
    );
    let file = palisade(&["observe", "--file", log.to_str().unwrap(), "-o", "table"]);
    let table = String::from_utf8_lossy(&file.stdout);
    assert!(table.starts_with("TIME "), "{table}");
    assert!(table.lines().nth(1).unwrap().contains("DENIED"), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "observe",
            "--lab",
            name,
            "--follow",
            "--to-pod",
            "default/redis-cart",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(connects(name, &cart.key, "redis-cart", 6379));
    let line = rx.recv_timeout(Duration::from_secs(3));
    follow.kill().unwrap();
    follow.wait().unwrap();
    let line = line.expect("a followed flow within 3 s");
    assert!(
        cart.key.namespace == "default"
            && line.contains(&cart.key.to_string())
            && line.contains("-> default/redis-cart-")
            && line.contains("ingress ALLOWED by default/redis-cart-allow-cartservice"),
        "{line}"
    );

    // Allow logging on, deny delegated: the allowed connection is recorded with its policy; the
    // rogue pod is not, until its namespace (the enforcing pod's, redis-cart's) is annotated.
    std::fs::write(
        &logging,
        network_logging("{log: true}", "{log: true, delegate: true}"),
    )
    .unwrap();
    wait_config(&metrics, "UpdateNetworkLogging", 2.0);
    assert!(connects(name, &cart.key, "redis-cart", 6379));
    assert!(!connects(name, &rogue.key, "redis-cart", 6379));
    assert!(
        within(Duration::from_secs(2), || of(&records(log), "allow").len()
            == 1)
        .is_some()
    );
    let a = &of(&records(log), "allow")[0];
    assert_eq!(
        a["policies"],
        serde_json::json!([{"name": "redis-cart-allow-cartservice", "namespace": "default", "kind": "NetworkPolicy"}])
    );
    assert_eq!(
        (&a["count"], &a["connection"]["dest_port"]),
        (&1.into(), &6379.into())
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        of(&records(log), "deny").len(),
        1,
        "delegated, not annotated"
    );
    std::fs::write(
        manifests.join("zz-namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n  annotations: {policy.network.gke.io/enable-deny-logging: \"true\"}\n",
    )
    .unwrap();
    // Annotations do not change the ruleset; wait until the agent has read the file.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!connects(name, &rogue.key, "redis-cart", 6379));
    assert!(
        within(Duration::from_secs(8), || of(&records(log), "deny").len()
            == 2)
        .is_some(),
        "annotated namespace: the denial is recorded"
    );

    // Allow delegated: only annotated policies count, so nothing until the policy is annotated.
    std::fs::write(
        &logging,
        network_logging("{log: true, delegate: true}", "{log: true}"),
    )
    .unwrap();
    wait_config(&metrics, "UpdateNetworkLogging", 3.0);
    assert!(connects(name, &cart.key, "redis-cart", 6379));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(of(&records(log), "allow").len(), 1, "policy not annotated");
    let policy = manifests.join("redis-cart-policy.yaml");
    let text = std::fs::read_to_string(&policy).unwrap().replace(
        "  namespace: default\n",
        "  namespace: default\n  annotations: {policy.network.gke.io/enable-logging: \"true\"}\n",
    );
    std::fs::write(&policy, text).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(connects(name, &cart.key, "redis-cart", 6379));
    assert!(
        within(Duration::from_secs(2), || of(&records(log), "allow").len()
            == 2)
        .is_some()
    );

    // An invalid NetworkLogging keeps the previous configuration.
    std::fs::write(
        &logging,
        network_logging("{log: false, delegate: true}", "{log: true}"),
    )
    .unwrap();
    wait_config(&metrics, "InvalidNetworkLogging", 1.0);
    assert!(connects(name, &cart.key, "redis-cart", 6379));
    assert!(
        within(Duration::from_secs(2), || of(&records(log), "allow").len()
            == 3)
        .is_some(),
        "the previous configuration (allow logging, delegated) stays"
    );
    let m = scrape(&metrics);
    assert!(
        sample(
            &m,
            r#"palisade_policy_verdicts_total{direction="ingress",disposition="deny",namespace="default",policy=""}"#
        ) >= 6.0,
        "{m}"
    );

    // Audit mode for the namespace: the rogue pod gets through, and the attempt is logged.
    std::fs::write(
        manifests.join("zz-namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n  annotations: {policy.palisade.dev/audit-mode: \"true\"}\n",
    )
    .unwrap();
    assert!(
        within(Duration::from_secs(1), || connects(
            name,
            &rogue.key,
            "redis-cart",
            6379
        ))
        .is_some(),
        "audit mode lets the rogue pod through"
    );
    assert!(
        within(Duration::from_secs(8), || {
            records(log).iter().any(|r| r["audit"] == true)
        })
        .is_some(),
        "the audited attempt is logged"
    );
    let audited: Vec<_> = records(log)
        .into_iter()
        .filter(|r| r["audit"] == true)
        .collect();
    assert_eq!(audited[0]["disposition"], "deny");
    assert_eq!(audited[0]["connection"]["dest_ip"], redis.ip.to_string());

    // Stopping the agent writes out the windows still open.
    let before = records(log).len();
    assert!(connects(name, &rogue.key, "redis-cart", 6379));
    std::thread::sleep(Duration::from_millis(300));
    let down = palisade(&["lab", "--name", name, "down"]);
    assert!(down.status.success());
    assert_eq!(
        records(log).len(),
        before + 1,
        "the open window was written at shutdown"
    );
}

#[test]
fn audit_mode_on_the_node_drops_nothing_and_logs_would_be_denials() {
    let setup = up(
        "a",
        "{log: true}",
        "{log: true}",
        &["--policy-audit-mode", "--deny-aggregation-window", "1s"],
    );
    let Setup { demo, log, lab } = &setup;
    let name = &demo.name;
    let (cart, rogue) = (
        lab.find_pod("default/cartservice").unwrap(),
        lab.find_pod("default/rogue").unwrap(),
    );
    assert!(
        connects(name, &rogue.key, "redis-cart", 6379),
        "nothing is dropped"
    );
    assert!(connects(name, &cart.key, "redis-cart", 6379));
    assert!(
        within(Duration::from_secs(3), || records(log).len() == 2).is_some(),
        "{:#?}",
        records(log)
    );
    let r = records(log);
    let audit = of(&r, "deny");
    assert_eq!(audit.len(), 1, "{r:#?}");
    assert_eq!(
        (&audit[0]["audit"], &audit[0]["count"]),
        (&true.into(), &1.into())
    );
    assert_eq!(audit[0]["src"]["pod_name"], "rogue");
    let allow = of(&r, "allow");
    assert_eq!(allow.len(), 1, "{r:#?}");
    assert!(allow[0].get("audit").is_none());
}

#[test]
fn a_flood_of_denials_is_rate_limited_counted_and_rotated() {
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let setup = up(
        "f",
        "{log: false}",
        "{log: true}",
        &["--policy-log-max-size", "16k", "--metrics-addr", &metrics],
    );
    let Setup { log, lab, .. } = &setup;
    let log_dir = log.parent().unwrap();
    let agent = lab.processes.last().unwrap().pid();
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{agent}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let (rogue, redis) = (
        lab.find_pod("default/rogue").unwrap(),
        lab.find_pod("default/redis-cart").unwrap(),
    );
    let rss_before = rss();

    // 5,000 denied attempts in one second: UDP datagrams to redis-cart, each to another port, so
    // each is a flow of its own.
    let target = redis.ip;
    in_netns(&rogue.netns, move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let start = Instant::now();
        for i in 0..5000u32 {
            let due = start + Duration::from_micros(200 * i as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let _ = socket.send_to(b"x", SocketAddr::new(target, 20000 + i as u16));
        }
    })
    .join()
    .unwrap()
    .expect("entering the rogue pod's namespace");
    let m = scrape(&metrics);
    let open = sample(&m, "palisade_policy_log_open_aggregation_keys");
    assert!(open <= 3000.0, "open keys bounded: {open}");
    // The windows close 5 s after they opened; wait for all of them.
    assert!(
        within(Duration::from_secs(10), || {
            sample(
                &scrape(&metrics),
                "palisade_policy_log_open_aggregation_keys",
            ) == 0.0
        })
        .is_some(),
        "windows never closed"
    );
    std::thread::sleep(Duration::from_millis(300));
    let m = scrape(&metrics);
    let verdicts = sample(
        &m,
        r#"palisade_policy_verdicts_total{direction="ingress",disposition="deny",namespace="default",policy=""}"#,
    );
    let lost = sample(&m, "palisade_verdict_events_lost_total");
    let written = sample(
        &m,
        r#"palisade_policy_log_records_total{disposition="deny"}"#,
    );
    let full = sample(
        &m,
        r#"palisade_policy_log_dropped_total{reason="aggregation_full"}"#,
    );
    let limited = sample(
        &m,
        r#"palisade_policy_log_dropped_total{reason="rate_limit"}"#,
    );
    eprintln!(
        "flood: {verdicts} denials read, {lost} overruns, {written} written, {full} over the key limit, {limited} over the rate limit, RSS {} -> {} KiB",
        rss_before,
        rss()
    );
    assert!(
        verdicts >= 4500.0,
        "most of the flood reached the agent: {m}"
    );
    assert!(full >= verdicts - 3000.0, "keys beyond 3000 dropped: {m}");
    // The 3,000 windows close within about a second: the burst of 500 plus the refill.
    assert!(
        (500.0..=1000.0).contains(&written),
        "{written} records: {m}"
    );
    assert_eq!(
        written + limited + full,
        verdicts,
        "every denial accounted for: {m}"
    );
    assert!(rss() < rss_before + 64 * 1024, "memory stays bounded");

    // The records went through rotation at 16 KiB: exactly 5 rotated files remain.
    let mut rotated: Vec<_> = std::fs::read_dir(log_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("policy_action-") && n.ends_with(".log"))
        .collect();
    rotated.sort();
    assert_eq!(rotated.len(), 5, "{rotated:?}");
    for f in &rotated {
        let size = std::fs::metadata(log_dir.join(f)).unwrap().len();
        assert!(size <= 16 << 10, "{f}: {size}");
    }
}

/// Cluster-wide rules enforced with real packets and logged with their kind, tier and rule: an
/// Admin Accept opens redis-cart to the rogue pod although a NetworkPolicy isolates it, and an
/// Admin Deny closes it to the cart service although that NetworkPolicy allows it; the deny
/// record names the rule (`denied_by`), the allow record the policy, and both are counted by rule.
#[test]
fn cluster_wide_rules_are_enforced_and_logged_with_their_kind_tier_and_rule() {
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let guard = "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: guard}\n\
         spec:\n  tier: Admin\n  priority: 5\n  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: redis-cart}}}}\n  ingress:\n\
         \x20 - {name: rogue-ok, action: Accept, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: rogue}}}}]}\n\
         \x20 - {name: no-cart, action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: cartservice}}}}], protocols: [{tcp: {destinationPort: {number: 6379}}}]}\n";
    let setup = up_logging_all("t", ("zz-guard.yaml", guard), &metrics);
    let Setup { demo, log, lab } = &setup;
    let (name, log) = (&demo.name, log.clone());
    let (cart, rogue) = (
        lab.find_pod("default/cartservice").unwrap(),
        lab.find_pod("default/rogue").unwrap(),
    );
    assert!(
        connects(name, &rogue.key, "redis-cart", 6379),
        "the Admin Accept"
    );
    assert!(
        !connects(name, &cart.key, "redis-cart", 6379),
        "the Admin Deny"
    );
    assert!(
        within(Duration::from_secs(4), || records(&log).len() >= 2).is_some(),
        "{:#?}",
        records(&log)
    );
    let r = records(&log);
    let allow = of(&r, "allow");
    assert_eq!(allow.len(), 1, "{r:#?}");
    assert_eq!(allow[0]["src"]["pod_name"], "rogue");
    assert_eq!(
        allow[0]["policies"],
        serde_json::json!([{"name": "guard", "namespace": "", "kind": "ClusterNetworkPolicy", "tier": "Admin", "rule": "rogue-ok"}])
    );
    let deny = of(&r, "deny");
    assert_eq!(deny.len(), 1, "{r:#?}");
    assert_eq!(deny[0]["src"]["pod_name"], cart.key.name);
    assert_eq!(
        deny[0]["denied_by"],
        serde_json::json!({"name": "guard", "namespace": "", "kind": "ClusterNetworkPolicy", "tier": "Admin", "rule": "no-cart"})
    );
    let m = scrape(&metrics);
    for (action, rule) in [("Accept", "rogue-ok"), ("Deny", "no-cart")] {
        let line = format!(
            "palisade_tier_rule_verdicts_total{{direction=\"ingress\",action=\"{action}\",kind=\"ClusterNetworkPolicy\",policy=\"guard\",tier=\"Admin\",rule=\"{rule}\"}}"
        );
        assert_eq!(sample(&m, &line), 1.0, "{line}\n{m}");
    }
}

/// Staged policies (annotated `policy.palisade.dev/audit-mode: "true"`) are evaluated and logged,
/// not enforced, with real packets: a staged default-deny on frontend drops nothing, a staged
/// Admin Deny closes nothing and a staged Admin Accept opens nothing; each connection whose
/// verdict they would change gets an audit record saying what they would do and who decides it,
/// counted by policy, next to the enforced records.
#[test]
fn staged_policies_drop_nothing_open_nothing_and_log_what_they_would_do() {
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let staged = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {name: staged-deny-frontend, namespace: default, annotations: {policy.palisade.dev/audit-mode: \"true\"}}\n\
         spec: {podSelector: {matchLabels: {app: frontend}}, policyTypes: [Ingress]}\n---\n\
         apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n\
         metadata: {name: guard, annotations: {policy.palisade.dev/audit-mode: \"true\"}}\n\
         spec:\n  tier: Admin\n  priority: 5\n  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: redis-cart}}}}\n  ingress:\n\
         \x20 - {name: rogue-ok, action: Accept, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: rogue}}}}]}\n\
         \x20 - {name: no-cart, action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: cartservice}}}}]}\n";
    let setup = up_logging_all("s", ("zz-staged.yaml", staged), &metrics);
    let Setup { demo, log, lab } = &setup;
    let (name, log) = (&demo.name, log.clone());
    let (cart, rogue) = (
        lab.find_pod("default/cartservice").unwrap(),
        lab.find_pod("default/rogue").unwrap(),
    );
    assert!(
        connects(name, &rogue.key, "frontend", 80),
        "the staged default-deny drops nothing"
    );
    assert!(
        connects(name, &cart.key, "redis-cart", 6379),
        "the staged Admin Deny closes nothing"
    );
    assert!(
        !connects(name, &rogue.key, "redis-cart", 6379),
        "the staged Admin Accept opens nothing"
    );
    assert!(
        within(Duration::from_secs(4), || records(&log).len() >= 5).is_some(),
        "{:#?}",
        records(&log)
    );
    let r = records(&log);
    assert_eq!(r.len(), 5, "{r:#?}");
    let staged: Vec<&Value> = r.iter().filter(|r| r.get("would").is_some()).collect();
    let find = |src: &str, dest: &str| {
        let found = (staged.iter()).find(|r| {
            r["src"]["pod_name"]
                .as_str()
                .is_some_and(|s| s.starts_with(src))
                && r["dest"]["pod_name"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(dest))
        });
        (*found.unwrap_or_else(|| panic!("no staged record {src} -> {dest}: {r:#?}"))).clone()
    };
    let network = serde_json::json!([{"name": "staged-deny-frontend", "namespace": "default", "kind": "NetworkPolicy"}]);
    let rule = |rule: &str| serde_json::json!([{"name": "guard", "namespace": "", "kind": "ClusterNetworkPolicy", "tier": "Admin", "rule": rule}]);
    for (src, dest, would, by) in [
        ("rogue", "frontend", "deny", network),
        ("cartservice", "redis-cart", "deny", rule("no-cart")),
        ("rogue", "redis-cart", "allow", rule("rogue-ok")),
    ] {
        let record = find(src, dest);
        assert_eq!(
            (&record["audit"], &record["would"], &record["disposition"]),
            (&true.into(), &would.into(), &would.into()),
            "{record:#}"
        );
        assert_eq!(record["staged_by"], by, "{record:#}");
    }
    // The enforced records are as they were: the NetworkPolicy's allow and its denial.
    let enforced: Vec<&Value> = r.iter().filter(|r| r.get("would").is_none()).collect();
    assert_eq!(enforced.len(), 2, "{r:#?}");
    assert!(enforced.iter().all(|r| r.get("audit").is_none()), "{r:#?}");
    let m = scrape(&metrics);
    for (would, policy, rule) in [
        (
            "deny",
            "NetworkPolicy",
            "default/staged-deny-frontend\",rule=\"",
        ),
        (
            "deny",
            "ClusterNetworkPolicy",
            "ClusterNetworkPolicy/guard\",rule=\"no-cart",
        ),
        (
            "allow",
            "ClusterNetworkPolicy",
            "ClusterNetworkPolicy/guard\",rule=\"rogue-ok",
        ),
    ] {
        let line = format!(
            "palisade_policy_staged_verdicts_total{{direction=\"ingress\",would=\"{would}\",kind=\"{policy}\",policy=\"{rule}\"}}"
        );
        assert_eq!(sample(&m, &line), 1.0, "{line}\n{m}");
    }
}
