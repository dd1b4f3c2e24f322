//! Faults and bad input never open what the agent was closing, checked with real packets in the lab
//! (as root): typos and syntax errors in a policy file, a file truncated or half-written while being
//! rewritten, the manifests folder deleted and recreated, the kernel's table deleted or flushed by another tool,
//! and a table the kernel will not let the agent replace. Every degraded state shows in `/readyz`
//! and the metrics, and the agent recovers when the input (or the kernel) does.

use palisade_dataplane::apply;
use palisade_lab as lab;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{
    connects, demo_copy, free_port, get, kill_agent, sample, scrape, within, Demo, Reaped,
};

/// Writes `text` to `path` at once (a new file renamed over it), as a careful editor would.
fn replace(path: &Path, text: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// An interactive `nft` that holds a table flagged `owner`: nobody else may change or delete it
/// while the process lives; it goes with the process.
fn take_table(netns: &str) -> Reaped {
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.as_mut().unwrap();
    // One line, one transaction: the agent must not put its table back in between.
    writeln!(
        stdin,
        "delete table inet palisade; add table inet palisade {{ flags owner; }}"
    )
    .unwrap();
    stdin.flush().unwrap();
    Reaped(child)
}

/// Waits until `/readyz` answers `status` with a body containing `needle`.
fn readiness(metrics: &str, status: u16, needle: &str) {
    let mut last = (0, String::new());
    let seen = within(Duration::from_secs(3), || {
        last = get(metrics, "/readyz");
        last.0 == status && last.1.contains(needle)
    });
    assert!(
        seen.is_some(),
        "expected /readyz {status} with {needle:?}, got {last:?}"
    );
}

#[test]
fn bad_input_and_faults_never_open_enforcement() {
    let demo = Demo::new("f");
    let metrics = format!("127.0.0.1:{}", free_port());
    let lab = demo.up(&["--metrics-addr", &metrics]);
    let (name, manifests, dir) = (&demo.name, &demo.manifests, demo.dir.path());
    let (cart, rogue, redis) = (
        lab.find_pod("default/cartservice").unwrap(),
        lab.find_pod("default/rogue").unwrap(),
        lab.find_pod("default/redis-cart").unwrap(),
    );
    let redis_ip = redis.ip.to_string();
    let blocked = || !connects(name, &rogue.key, &redis_ip, 6379);
    readiness(&metrics, 200, "ok");
    assert!(blocked(), "rogue -> redis-cart is denied by policy");
    assert!(connects(name, &cart.key, &redis_ip, 6379));
    let policy_file = manifests.join("redis-cart-policy.yaml");
    let good = std::fs::read_to_string(&policy_file).unwrap();

    // 1. A YAML syntax error: the policy stays in force; the agent says it is degraded.
    replace(
        &policy_file,
        &good.replace("app: cartservice", "{app: cartservice"),
    );
    readiness(&metrics, 503, "input: 1 rejected");
    assert!(blocked(), "a syntax error must not lift the policy");
    assert!(connects(name, &cart.key, &redis_ip, 6379));
    let m = scrape(&metrics);
    assert_eq!(
        sample(&m, "palisade_objects_rejected{kind=\"\",reason=\"syntax\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "palisade_objects_held{reason=\"rejected\"}"),
        1.0
    );
    assert_eq!(sample(&m, "palisade_degraded "), 1.0);

    // 2. A misspelt field that would allow every source (`fromm`) and an invalid port: rejected,
    //    the last good version stays.
    replace(&policy_file, &good.replace("- from:", "- fromm:"));
    readiness(&metrics, 503, "input: 1 rejected");
    within(Duration::from_secs(3), || {
        sample(
            &scrape(&metrics),
            "palisade_objects_rejected{kind=\"NetworkPolicy\",reason=\"decode\"}",
        ) == 1.0
    })
    .expect("the misspelt field is a decode rejection");
    assert!(blocked(), "a misspelt field must not open the policy");
    replace(&policy_file, &good.replace("port: 6379", "port: 70000"));
    within(Duration::from_secs(3), || {
        sample(
            &scrape(&metrics),
            "palisade_objects_rejected{kind=\"NetworkPolicy\",reason=\"invalid\"}",
        ) == 1.0
    })
    .expect("the invalid port is an invalid rejection");
    assert!(blocked(), "an invalid port must not open the policy");
    assert_eq!(
        sample(
            &scrape(&metrics),
            "palisade_objects_held{reason=\"rejected\"}"
        ),
        1.0
    );

    // Fixed: ready again.
    replace(&policy_file, &good);
    readiness(&metrics, 200, "ok");
    assert_eq!(sample(&scrape(&metrics), "palisade_degraded "), 0.0);
    assert!(blocked());

    // 3. Rewritten in place, empty for 400 ms (truncate, then write): never open.
    std::fs::write(&policy_file, "").unwrap();
    let truncated = Instant::now();
    while truncated.elapsed() < Duration::from_millis(400) {
        assert!(
            blocked(),
            "an emptied file keeps its policy while it is rewritten"
        );
    }
    std::fs::write(&policy_file, &good).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(blocked(), "rewritten within the grace period: never lifted");

    // 3b. Half-written: the file cut right after `- from:` would allow every source. The agent
    //     waits for the writer to close it (at most a second).
    let cut = good.find("    - podSelector:").unwrap();
    let mut writer = std::fs::File::create(&policy_file).unwrap();
    writer.write_all(&good.as_bytes()[..cut]).unwrap();
    writer.flush().unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(500) {
        assert!(
            blocked(),
            "a half-written file is not applied while it is being written"
        );
    }
    writer.write_all(&good.as_bytes()[cut..]).unwrap();
    drop(writer);
    std::thread::sleep(Duration::from_millis(300));
    assert!(blocked());

    // 4. The whole folder removed and recreated: enforcement stays meanwhile, the agent says its
    //    source is down, and it sees the new folder (it does not go deaf).
    std::fs::remove_dir_all(manifests).unwrap();
    readiness(&metrics, 503, "source:");
    assert_eq!(sample(&scrape(&metrics), "palisade_source_up "), 0.0);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(blocked(), "a missing folder keeps the last good state");
    let recreated = demo_copy(dir);
    assert_eq!(&recreated, manifests);
    readiness(&metrics, 200, "ok");
    assert!(blocked());
    // A change in the new folder is seen: the policy removed (after the grace), then back.
    std::fs::remove_file(&policy_file).unwrap();
    assert!(
        within(Duration::from_secs(3), || !blocked()).is_some(),
        "the agent watches the recreated folder"
    );
    replace(&policy_file, &good);
    assert!(
        within(Duration::from_secs(1), blocked).is_some(),
        "and applies changes to it within a second"
    );
    assert_eq!(sample(&scrape(&metrics), "palisade_source_up "), 1.0);

    // 5. The table deleted, or flushed, by another tool: put back within a second.
    apply("delete table inet palisade", Some(&lab.node)).unwrap();
    let deleted = Instant::now();
    let took = within(Duration::from_secs(1), || {
        blocked() && connects(name, &cart.key, &redis_ip, 6379)
    });
    assert!(
        took.is_some(),
        "a deleted table is put back within a second"
    );
    assert!(deleted.elapsed() < Duration::from_secs(2));
    apply("flush table inet palisade", Some(&lab.node)).unwrap();
    assert!(
        within(Duration::from_secs(1), || blocked()
            && connects(name, &cart.key, &redis_ip, 6379))
        .is_some(),
        "a flushed table is put back within a second"
    );
    let m = scrape(&metrics);
    assert!(
        sample(&m, "palisade_drift_repairs_total{reason=\"changed\"}") >= 2.0,
        "{m}"
    );
    readiness(&metrics, 200, "ok");

    // 6. Another process holds the table (flag `owner`): the agent cannot put its own back; it
    //    says so, retries, and succeeds once that process is gone.
    let failures = sample(&scrape(&metrics), "palisade_ruleset_apply_failures_total");
    let owned = take_table(&lab.node);
    readiness(&metrics, 503, "kernel:");
    assert!(sample(&scrape(&metrics), "palisade_ruleset_apply_failures_total") > failures);
    drop(owned);
    let mut last = (0, String::new());
    let recovered = within(Duration::from_secs(10), || {
        last = get(&metrics, "/readyz");
        last.0 == 200
    });
    assert!(
        recovered.is_some(),
        "recovers once the table is free: {last:?}"
    );
    assert!(blocked() && connects(name, &cart.key, &redis_ip, 6379));

    // 7. Restarted while the policy file is broken: the last good state the agent wrote keeps
    //    the policy in force (without it, a restart would lift it).
    let state_file = lab::last_good(name);
    let written = within(Duration::from_secs(5), || {
        std::fs::read_to_string(&state_file)
            .is_ok_and(|t| t.contains("redis-cart-allow-cartservice"))
    });
    assert!(written.is_some(), "the agent writes its last good state");
    kill_agent(&lab);
    replace(&policy_file, &good.replace("port: 6379", "port: 70000"));
    let restart = |state: &Path| demo.agent_once(&lab, state, &["--lab", name]);
    let again = restart(&state_file);
    assert_eq!(again.status.code(), Some(2), "something was rejected");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("the last good version of 1 object stays in force"),
        "{stderr}"
    );
    assert!(blocked(), "a restart keeps the policy a broken file had");
    assert!(connects(name, &cart.key, &redis_ip, 6379));
    // Without a last good state (a first start), what is valid is enforced: the policy is gone.
    let again = restart(&dir.join("none.json"));
    assert_eq!(again.status.code(), Some(2));
    assert!(!blocked(), "a first start enforces what is valid");
}
