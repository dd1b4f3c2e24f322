//! Drift detection against the kernel: changes other processes make to `inet palisade` (here the
//! `nft` binary) are reported with what they did and who did it, within a second; this process's
//! own applies and updates are not; other tables are ignored; a lost notification is reported
//! unless every lost transaction was ours. Needs root, `ip` and `nft`.

use palisade_dataplane::drift::{self, Drift, DriftMonitor, TableProbe};
use palisade_dataplane::{build, Ruleset};
use palisade_policy::{Audit, CompiledTable, Engine};
use palisade_synth::{generate, SynthConfig};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

mod support;
use support::Netns;

/// A small synthetic cluster's table: a few chains, peer sets and port-list anonymous sets.
fn ruleset(seed: u64, previous: Option<&Ruleset>) -> Ruleset {
    let synth = generate(&SynthConfig {
        namespaces: 4,
        pods_per_ns: 4,
        policies: 12,
        seed,
    });
    let (state, diags) = synth.load();
    assert!(diags.iter().all(|d| !d.is_error()));
    build(
        &CompiledTable::of(&Engine::new(Arc::new(state)), Audit::Annotated),
        previous,
    )
}

/// An empty namespace (its name), removed when the guard drops, also when the test fails.
fn node(tag: &str) -> (Netns, String) {
    let netns = Netns::new(tag);
    let name = netns.name.clone();
    (netns, name)
}

/// Runs `nft` in `netns` with `args` (and `stdin` as its input, if given); its pid (`ip netns
/// exec` execs it).
fn nft(netns: &str, args: &[&str], stdin: Option<&str>) -> u32 {
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "nft"])
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft runs");
    let pid = child.id();
    let mut input = child.stdin.take().expect("piped");
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    assert!(child.wait().unwrap().success(), "nft {args:?} failed");
    pid
}

/// The drift `nft <args>` causes: exactly one, within a second; the other fields checked.
fn reported(monitor: &mut DriftMonitor, netns: &str, args: &[&str]) -> Vec<String> {
    let before = drift::generation(Some(netns)).unwrap();
    let pid = nft(netns, args, None);
    let drift = monitor
        .next(Some(Duration::from_secs(1)))
        .unwrap()
        .unwrap_or_else(|| panic!("nft {args:?} not reported within a second"));
    assert_eq!(
        (
            drift.generation,
            drift.by_pid,
            drift.by_name.as_deref(),
            drift.lost
        ),
        (before + 1, Some(pid), Some("nft"), false),
        "nft {args:?}: {drift}"
    );
    assert_eq!(monitor.next(Some(Duration::ZERO)).unwrap(), None);
    drift.what
}

/// The first address in verdict map `map` of `ruleset`.
fn address_in(ruleset: &Ruleset, map: &str) -> String {
    let script = ruleset.script();
    let block = &script[script.find(&format!("map {map} {{")).unwrap()..];
    let elements = &block[block.find("elements = { ").unwrap() + 13..];
    elements.split(' ').next().unwrap().to_string()
}

/// How many objects (the table, chains, rules, named and anonymous sets) the `nft -f` script of
/// a ruleset makes.
fn objects(script: &str) -> u64 {
    let lines: Vec<&str> = script.lines().collect();
    let count = |f: &dyn Fn(&str) -> bool| lines.iter().filter(|l| f(l)).count() as u64;
    let chains = count(&|l| l.starts_with("  chain "));
    let sets = count(&|l| l.starts_with("  set ") || l.starts_with("  map "));
    // Rule lines are the chains' indented lines, but for the base chain's declaration.
    let in_chains = &script[script.find("  chain ").unwrap()..];
    let rules = in_chains
        .lines()
        .filter(|l| l.starts_with("    ") && !l.trim().starts_with("type "))
        .count() as u64;
    let anonymous = count(&|l| l.contains("dport { "));
    1 + chains + sets + rules + anonymous
}

#[test]
fn own_applies_and_updates_are_not_reported() {
    let (_teardown, netns) = node("da");
    let mut monitor = DriftMonitor::open(Some(&netns)).unwrap();
    let first = ruleset(1, None);
    let second = ruleset(2, Some(&first));
    let update = second.update_from(&first);
    assert!(!update.is_empty());
    let before = drift::generation(Some(&netns)).unwrap();
    first.apply(Some(&netns)).unwrap();
    update.apply(Some(&netns)).unwrap();
    assert_eq!(drift::generation(Some(&netns)).unwrap(), before + 2);
    assert_eq!(
        monitor.next(Some(Duration::from_millis(500))).unwrap(),
        None
    );
    // Both transactions were read (and recognised), not missed.
    assert_eq!(monitor.own_commits_seen(), 2);
    assert_eq!(monitor.overflows(), 0);
}

#[test]
fn a_deleted_table_is_reported_within_a_second() {
    let (_teardown, netns) = node("db");
    let table = ruleset(1, None);
    table.apply(Some(&netns)).unwrap();
    let (tx, rx) = mpsc::channel();
    let _monitor = DriftMonitor::open(Some(&netns))
        .unwrap()
        .spawn(move |drift| tx.send(drift.unwrap()).is_ok())
        .unwrap();
    let before = drift::generation(Some(&netns)).unwrap();
    let start = Instant::now();
    let pid = nft(&netns, &["delete", "table", "inet", "palisade"], None);
    let exited = start.elapsed();
    let drift = rx
        .recv_timeout(Duration::from_secs(1).saturating_sub(start.elapsed()))
        .expect("the deletion is reported within a second of the command");
    let latency = start.elapsed();
    eprintln!(
        "nft ran {exited:?}; reported {:?} after it exited",
        latency - exited
    );
    assert_eq!(
        (
            drift.generation,
            drift.by_pid,
            drift.by_name.as_deref(),
            drift.lost
        ),
        (before + 1, Some(pid), Some("nft"), false)
    );
    // The table first; then, in the kernel's order, what it took along: every rule (and the
    // anonymous set of its port list), set and chain, summed up beyond 8 lines.
    assert_eq!(drift.what[0], "table deleted");
    assert_eq!(drift.what.len(), 9, "{drift}");
    let counted: u64 = drift
        .what
        .iter()
        .map(|line| match line.split(' ').next().unwrap().parse() {
            Ok(n) => n,
            Err(_) if line.starts_with("and ") => {
                line[4..].split(' ').next().unwrap().parse().unwrap()
            }
            Err(_) => 1,
        })
        .sum();
    assert_eq!(counted, objects(&table.script()), "{drift}");
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
}

#[test]
fn edits_by_other_tools_are_reported() {
    let (_teardown, netns) = node("dc");
    let table = ruleset(1, None);
    table.apply(Some(&netns)).unwrap();
    let mut monitor = DriftMonitor::open(Some(&netns)).unwrap();
    let pod = address_in(&table, "ingress4");
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["flush", "chain", "inet", "palisade", "forward"],
            &["6 rules deleted from chain forward"],
        ),
        (
            &["add", "rule", "inet", "palisade", "forward", "accept"],
            &["1 rule added to chain forward"],
        ),
        (
            &[
                "delete", "element", "inet", "palisade", "ingress4", "{", &pod, "}",
            ],
            &["1 element deleted from set ingress4"],
        ),
        (
            &[
                "add",
                "element",
                "inet",
                "palisade",
                "peers4_0",
                "{",
                "10.9.0.0/16,",
                "10.8.0.1",
                "}",
            ],
            &["4 elements added to set peers4_0"],
        ),
        (
            &[
                "add", "chain", "inet", "palisade", "forward", "{", "policy", "drop", ";", "}",
            ],
            &["chain forward added or changed"],
        ),
        (
            &[
                "add", "table", "inet", "palisade", "{", "flags", "dormant", ";", "}",
            ],
            &["table made dormant (its chains filter nothing)"],
        ),
    ];
    // A command that changes nothing makes no transaction: no generation, nothing to report.
    let before = drift::generation(Some(&netns)).unwrap();
    nft(&netns, &["add", "table", "inet", "palisade"], None);
    assert_eq!(drift::generation(Some(&netns)).unwrap(), before);
    assert_eq!(
        monitor.next(Some(Duration::from_millis(200))).unwrap(),
        None
    );
    for (args, what) in cases {
        assert_eq!(reported(&mut monitor, &netns, args), what, "nft {args:?}");
    }
    assert_eq!(monitor.own_commits_seen(), 0);
}

#[test]
fn other_tables_are_not_reported() {
    let (_teardown, netns) = node("dd");
    ruleset(1, None).apply(Some(&netns)).unwrap();
    let mut monitor = DriftMonitor::open(Some(&netns)).unwrap();
    // Same name in another family, and another name in the same family.
    let others = "table ip palisade {
  chain forward { type filter hook forward priority 0; policy drop; }
}
table inet other {
  set s { type ipv4_addr; elements = { 10.0.0.1 }; }
  chain c { ip saddr @s drop; }
}
delete element inet other s { 10.0.0.1 }
delete table ip palisade
";
    nft(&netns, &["-f", "-"], Some(others));
    nft(&netns, &["flush", "table", "inet", "other"], None);
    assert_eq!(
        monitor.next(Some(Duration::from_millis(500))).unwrap(),
        None
    );
    // The monitor was listening all along: the next change to our table is the first report.
    assert_eq!(
        reported(
            &mut monitor,
            &netns,
            &["add", "rule", "inet", "palisade", "forward", "drop"]
        ),
        ["1 rule added to chain forward"]
    );
}

#[test]
fn table_info_tells_a_missing_table_and_a_recreated_one() {
    let (_teardown, netns) = node("de");
    let mut probe = TableProbe::open(Some(&netns)).unwrap();
    assert_eq!(probe.table().unwrap(), None);
    let table = ruleset(1, None);
    assert!(
        table.script().contains("th dport { "),
        "port-list anonymous sets"
    );
    table.apply(Some(&netns)).unwrap();
    let applied = probe.table().unwrap().expect("table");
    assert_eq!((applied.use_count, applied.flags), (table.table_use(), 0));
    // Rules and elements are not counted; the anonymous sets flushed rules take along neither.
    let pod = address_in(&table, "ingress4");
    nft(
        &netns,
        &[
            "delete", "element", "inet", "palisade", "ingress4", "{", &pod, "}",
        ],
        None,
    );
    nft(&netns, &["flush", "table", "inet", "palisade"], None);
    assert_eq!(probe.table().unwrap(), Some(applied));
    // A stateful object is counted.
    nft(&netns, &["add", "counter", "inet", "palisade", "k"], None);
    let counted = probe.table().unwrap().expect("table");
    assert_eq!(counted.use_count, applied.use_count + 1);
    nft(
        &netns,
        &[
            "add", "table", "inet", "palisade", "{", "flags", "dormant", ";", "}",
        ],
        None,
    );
    let dormant = probe.table().unwrap().expect("table");
    assert!(dormant.dormant() && dormant.handle == applied.handle);
    nft(&netns, &["delete", "table", "inet", "palisade"], None);
    assert_eq!(probe.table().unwrap(), None);
    nft(&netns, &["add", "table", "inet", "palisade"], None);
    let recreated = probe.table().unwrap().expect("table");
    assert_ne!(recreated.handle, applied.handle);
    assert_eq!((recreated.use_count, recreated.dormant()), (0, false));
    // Our whole replacement makes a new table too; an update keeps it.
    table.apply(Some(&netns)).unwrap();
    let reapplied = probe.table().unwrap().expect("table");
    assert_ne!(reapplied.handle, recreated.handle);
    let next = ruleset(2, Some(&table));
    next.update_from(&table).apply(Some(&netns)).unwrap();
    let updated = probe.table().unwrap().expect("table");
    assert_eq!(updated.handle, reapplied.handle);
    assert_eq!(updated.use_count, next.table_use());
}

#[test]
fn an_overflow_is_reported_unless_every_lost_transaction_is_ours() {
    let (_teardown, netns) = node("df");
    let mut monitor = DriftMonitor::open(Some(&netns)).unwrap();
    monitor.set_receive_buffer(4096).unwrap();
    // Our own whole table floods the small buffer while nobody reads: nothing to report.
    let table = ruleset(1, None);
    table.apply(Some(&netns)).unwrap();
    assert_eq!(
        monitor.next(Some(Duration::from_millis(300))).unwrap(),
        None
    );
    assert_eq!(monitor.overflows(), 1);
    // Another process's burst does the same: reported as lost, at the generation of the loss.
    let elements: Vec<String> = (0..2000)
        .map(|i| format!("10.{}.{}.1", 100 + i / 256, i % 256))
        .collect();
    let burst = format!(
        "add element inet palisade peers4_1 {{ {} }}\n",
        elements.join(", ")
    );
    nft(&netns, &["-f", "-"], Some(&burst));
    let generation = drift::generation(Some(&netns)).unwrap();
    let mut drifts = Vec::new();
    while let Some(d) = monitor.next(Some(Duration::from_secs(1))).unwrap() {
        drifts.push(d);
    }
    assert_eq!(
        drifts,
        [Drift {
            generation,
            by_pid: None,
            by_name: None,
            what: Vec::new(),
            lost: true,
        }]
    );
    assert_eq!(monitor.overflows(), 2);
}
