//! The lab end to end, as root: `palisade lab up` on the microservices demo, Services reached by name,
//! the rogue pod blocked, policy edits and pod relabels enforced within a second, established
//! connections kept across re-applies, enforcement surviving the agent, and `lab down` leaving nothing
//! behind and signalling no process but those it started.

use palisade_dataplane::netns::in_netns;
use palisade_lab::{self as lab, Lab, LabProcess, RecordedProcess};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod support;

use support::{connects, kill_agent, palisade, within, Demo, Reaped};

#[test]
fn lab_end_to_end() {
    let demo = Demo::new("e");
    let lab = demo.up(&[]);
    let (name, manifests) = (&demo.name, &demo.manifests);
    let (cart, rogue, redis) = (
        lab.find_pod("default/cartservice").unwrap(),
        lab.find_pod("default/rogue").unwrap(),
        lab.find_pod("default/redis-cart").unwrap(),
    );

    // Through the Service name (DNAT to the backend pod, policed on its IP and targetPort).
    assert!(
        connects(name, &cart.key, "redis-cart", 6379),
        "cartservice -> redis-cart"
    );
    assert!(
        !connects(name, &rogue.key, "redis-cart", 6379),
        "rogue must be blocked"
    );
    assert!(
        connects(name, &rogue.key, "frontend", 80),
        "frontend stays open (Service 80 -> 8080)"
    );

    // The kernel agrees with the engine on every container port.
    let probe = palisade(&["lab", "--name", name, "probe", "--compare"]);
    let text = String::from_utf8_lossy(&probe.stdout);
    assert_eq!(probe.status.code(), Some(0), "{text}");
    assert!(text.contains("0 of "), "{text}");

    // An established connection survives re-applying policies that still allow it.
    let redis_addr = SocketAddr::new(redis.ip, 6379);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<std::io::Result<Vec<u8>>>();
    in_netns(&cart.netns, move || {
        let result = (|| {
            let mut s = TcpStream::connect_timeout(&redis_addr, Duration::from_secs(1))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut buf = [0u8; 1];
            s.write_all(b"a")?;
            s.read_exact(&mut buf)?;
            rx.recv().ok();
            s.write_all(b"b")?;
            let mut second = [0u8; 1];
            s.read_exact(&mut second)?;
            Ok(vec![buf[0], second[0]])
        })();
        done_tx.send(result).unwrap();
    });
    let extra = manifests.join("zz-extra.yaml");
    std::fs::write(
        &extra,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: frontend-ingress, namespace: default}\nspec:\n  podSelector: {matchLabels: {app: frontend}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: loadgenerator}}}]}]\n",
    )
    .unwrap();
    // The new policy takes effect for new connections within a second...
    let took = within(Duration::from_secs(1), || {
        !connects(name, &rogue.key, "frontend", 80)
    });
    assert!(
        took.is_some(),
        "a policy added while the lab runs must apply within 1 s"
    );
    tx.send(()).unwrap();
    // ...and the established cartservice -> redis connection still works.
    let echoed = done_rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("established connection survives");
    assert_eq!(echoed, b"ab");

    // Removing the redis policy's file opens redis-cart to the rogue pod once the removal grace
    // (1 s: the file might be being rewritten) is over, and not before.
    std::fs::remove_file(manifests.join("redis-cart-policy.yaml")).unwrap();
    let removed = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        !connects(name, &rogue.key, &redis.ip.to_string(), 6379),
        "a removed file keeps its policies during the grace period"
    );
    let took = within(Duration::from_secs(2), || {
        connects(name, &rogue.key, &redis.ip.to_string(), 6379)
    });
    assert!(
        took.is_some(),
        "deleting a policy must apply after the 1 s grace"
    );
    assert!(removed.elapsed() >= Duration::from_secs(1));
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/microservices-demo/redis-cart-policy.yaml"
        ),
        manifests.join("redis-cart-policy.yaml"),
    )
    .unwrap();
    assert!(within(Duration::from_secs(1), || !connects(
        name,
        &rogue.key,
        &redis.ip.to_string(),
        6379
    ))
    .is_some());

    // A pod relabelled into what a policy allows gets through within a second, and is blocked
    // again when relabelled back. Only a pod changes: the agent patches its table (and the kernel
    // takes each patch: no whole replacement).
    std::fs::write(
        manifests.join("zz-clients.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: redis-clients, namespace: default}\nspec:\n  podSelector: {matchLabels: {app: redis-cart}}\n  ingress: [{from: [{podSelector: {matchLabels: {role: cache-client}}}]}]\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let rogue_file = manifests.join("rogue.yaml");
    let rogue_yaml = std::fs::read_to_string(&rogue_file).unwrap();
    let relabelled = rogue_yaml.replace("app: rogue", "app: rogue\n    role: cache-client");
    assert_ne!(relabelled, rogue_yaml);
    for (text, reaches) in [(&relabelled, true), (&rogue_yaml, false)] {
        std::fs::write(&rogue_file, text).unwrap();
        let took = within(Duration::from_secs(1), || {
            connects(name, &rogue.key, &redis.ip.to_string(), 6379) == reaches
        });
        assert!(
            took.is_some(),
            "a relabel (reaches redis: {reaches}) must apply within 1 s"
        );
    }
    let log = std::fs::read_to_string(lab::process_log(name, "agent")).unwrap();
    assert!(!log.contains("replacing the whole table"), "{log}");
    std::fs::remove_file(manifests.join("zz-clients.yaml")).unwrap();

    // Killing the agent leaves enforcement in place; a restart reconciles without a gap.
    kill_agent(&lab);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !connects(name, &rogue.key, &redis.ip.to_string(), 6379),
        "rules stay after the agent dies"
    );
    std::fs::remove_file(&extra).unwrap();
    let again = demo.agent_once(&lab, &demo.dir.path().join("last-good.json"), &[]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(!connects(name, &rogue.key, &redis.ip.to_string(), 6379));
    assert!(
        connects(name, &rogue.key, "frontend", 80),
        "the restarted agent dropped the removed policy"
    );

    // Down removes every namespace, hosts file and process of the lab.
    let down = palisade(&["lab", "--name", name, "down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let prefix = format!("pal-{name}-");
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&prefix));
    assert!(!Path::new("/etc/netns").join(format!("{prefix}p0")).exists());
    assert!(lab
        .processes
        .iter()
        .all(|p| p.status() != lab::ProcessStatus::Running));
}

/// After a crash, the PIDs in a lab's state file may belong to other processes: `lab status` tells
/// them apart and `lab down` signals only the process it started, not one whose start time differs
/// (its PID reused) nor a bare PID from an older state file.
#[test]
fn lab_down_signals_only_the_processes_the_lab_started() {
    lab::require_root().expect("the lab tests run as root");
    let name = format!("r{}", std::process::id());
    let _teardown = lab::DownOnDrop(name.clone());
    let sleep = || Reaped(Command::new("sleep").arg("30").spawn().unwrap());
    let (mut ours, mut reused, mut bare) = (sleep(), sleep(), sleep());
    let identity = |c: &Reaped| LabProcess::of(c.0.id()).unwrap();
    let impostor = LabProcess {
        start_time: identity(&reused).start_time + 1,
        ..identity(&reused)
    };
    Lab {
        name: name.clone(),
        node: format!("pal-{name}-node"),
        nodes: Vec::new(),
        pods: Vec::new(),
        manifests: None,
        processes: vec![
            RecordedProcess::Identified(identity(&ours)),
            RecordedProcess::Identified(impostor),
            RecordedProcess::BarePid(bare.0.id()),
        ],
    }
    .save()
    .unwrap();
    let [ours_pid, reused_pid, bare_pid] = [&ours, &reused, &bare].map(|c| c.0.id());

    let status = palisade(&["lab", "--name", &name, "status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    for line in [
        format!("process {ours_pid}: running"),
        format!("process {reused_pid}: pid reused by another process"),
        format!("process {bare_pid}: unverifiable"),
    ] {
        assert!(text.contains(&line), "{line:?} in {text}");
    }

    let down = palisade(&["lab", "--name", &name, "down"]);
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(down.status.success(), "{stderr}");
    for line in [
        format!("process {reused_pid} not signalled: pid reused by another process"),
        format!("process {bare_pid} not signalled: recorded as a bare PID"),
    ] {
        assert!(stderr.contains(&line), "{line:?} in {stderr}");
    }
    assert!(
        reused.0.try_wait().unwrap().is_none(),
        "a reused PID was signalled"
    );
    assert!(
        bare.0.try_wait().unwrap().is_none(),
        "a bare PID was signalled"
    );
    const SIGTERM: i32 = 15;
    assert_eq!(ours.0.wait().unwrap().signal(), Some(SIGTERM));
}
