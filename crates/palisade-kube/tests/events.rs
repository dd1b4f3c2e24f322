//! Events written through kube-rs to an in-process API server: created once, their series patched,
//! agents converging on one Event for what they all see, drops counted.

mod support;

use palisade_kube::events::{
    EventType, EventWriter, Limits, Occurrence, OnDrop, Regarding, Scope, CONTROLLER,
};
use palisade_kube::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use support::fake_api::{FakeApi, Reply};

const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces";

fn denied(key: &str) -> Occurrence {
    Occurrence {
        regarding: Regarding {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some("shop".into()),
            name: "redis-0".into(),
            uid: Some("0b5c-uid".into()),
            generation: None,
        },
        type_: EventType::Warning,
        reason: "PolicyDenied".into(),
        action: "Drop".into(),
        note: format!("connection {key} denied"),
        key: key.into(),
        scope: Scope::Node,
        time: SystemTime::now(),
    }
}

fn invalid_logging() -> Occurrence {
    Occurrence {
        regarding: Regarding::network_logging(&Default::default()),
        type_: EventType::Warning,
        reason: "InvalidNetworkLogging".into(),
        action: "Validate".into(),
        note: "spec.cluster.deny: delegate needs log".into(),
        key: "spec.cluster.deny: delegate needs log".into(),
        scope: Scope::Cluster,
        time: SystemTime::now(),
    }
}

/// Drops counted by reason.
#[derive(Clone, Default)]
struct Drops(Arc<Mutex<HashMap<&'static str, usize>>>);

impl Drops {
    fn on_drop(&self) -> OnDrop {
        let counts = self.0.clone();
        Arc::new(move |why| *counts.lock().unwrap().entry(why).or_default() += 1)
    }

    fn get(&self, why: &str) -> usize {
        self.0.lock().unwrap().get(why).copied().unwrap_or(0)
    }
}

fn writer(api: &FakeApi, dir: &std::path::Path, node: &str, drops: &Drops) -> EventWriter {
    let connection = Connection {
        kubeconfig: Some(api.kubeconfig(dir)),
        request_timeout: Duration::from_secs(5),
        ..Connection::default()
    };
    let limits = Limits {
        series_interval: Duration::from_millis(300),
        ..Limits::default()
    };
    EventWriter::start(&connection, node, limits, drops.on_drop()).unwrap()
}

/// Waits (at most 10 s) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_event_is_created_once_and_its_series_patched() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(HashMap::new());
    let drops = Drops::default();
    let writer = writer(&api, dir.path(), "node-a", &drops);
    let recorder = writer.recorder();
    for _ in 0..5 {
        assert!(recorder.record(denied("10.0.0.1>10.0.0.2:6379/TCP")));
    }
    let collection = format!("{EVENTS}/shop/events");
    wait_for("the series to count 5", || {
        api.stored(&collection)
            .first()
            .is_some_and(|(_, e)| e["series"]["count"] == 5)
    });
    let stored = api.stored(&collection);
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let (path, event) = &stored[0];
    assert!(
        path.starts_with(&format!("{collection}/redis-0.")),
        "{path}"
    );
    assert_eq!(event["reportingController"], CONTROLLER);
    assert_eq!(event["reportingInstance"], "node-a");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "PolicyDenied");
    assert_eq!(event["action"], "Drop");
    assert_eq!(
        event["note"],
        "connection 10.0.0.1>10.0.0.2:6379/TCP denied"
    );
    assert_eq!(
        event["regarding"],
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "namespace": "shop",
                           "name": "redis-0", "uid": "0b5c-uid"})
    );
    assert!(event["eventTime"].is_string());
    assert!(event["series"]["lastObservedTime"].is_string());
    assert_eq!(api.calls("POST").len(), 1, "created once");
    let patches = api.calls("PATCH");
    assert!(
        (1..=2).contains(&patches.len()),
        "the series is patched at most once per interval: {patches:?}"
    );
    assert_eq!(drops.get("write_error"), 0);
}

#[test]
fn every_nodes_agent_converges_on_one_network_logging_event() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(HashMap::new());
    let drops = Drops::default();
    let writers: Vec<EventWriter> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|node| writer(&api, dir.path(), node, &drops))
        .collect();
    for writer in &writers {
        assert!(writer.recorder().record(invalid_logging()));
    }
    wait_for("every agent's create", || api.calls("POST").len() == 3);
    // Long enough for a (wrong) series patch after the 409s.
    std::thread::sleep(Duration::from_millis(600));
    let stored = api.stored(&format!("{EVENTS}/default/events"));
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let (path, event) = &stored[0];
    assert!(path.contains("/events/default."), "{path}");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidNetworkLogging");
    assert_eq!(event["regarding"]["kind"], "NetworkLogging");
    assert!(event["regarding"].get("namespace").is_none());
    assert!(
        event.get("series").is_none(),
        "one change is one occurrence"
    );
    assert!(api.calls("PATCH").is_empty(), "{:?}", api.calls("PATCH"));
    assert_eq!(drops.get("write_error"), 0, "409 AlreadyExists is no error");
}

/// The same change told again for a later generation of the object (logging turned off and on
/// again within the hour an Event lasts) is a new Event; every agent still converges on one Event
/// per generation.
#[test]
fn each_generation_of_a_network_logging_change_is_its_own_event() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(HashMap::new());
    let drops = Drops::default();
    let writers: Vec<EventWriter> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|node| writer(&api, dir.path(), node, &drops))
        .collect();
    let collection = format!("{EVENTS}/default/events");
    for (generation, creates) in [(4, 3), (6, 6)] {
        for writer in &writers {
            let mut told = invalid_logging();
            told.regarding.uid = Some("nl-uid".into());
            told.regarding.generation = Some(generation);
            assert!(writer.recorder().record(told));
        }
        wait_for("every agent's create", || {
            api.calls("POST").len() == creates
        });
    }
    let stored = api.stored(&collection);
    assert_eq!(stored.len(), 2, "one per generation: {stored:#?}");
    for (_, event) in &stored {
        assert_eq!(event["reason"], "InvalidNetworkLogging");
        assert_eq!(event["regarding"]["uid"], "nl-uid");
    }
    assert_eq!(drops.get("write_error"), 0);
}

/// A writer with a series interval of a minute: counts wait for it, or for the shutdown.
fn slow_writer(api: &FakeApi, dir: &std::path::Path, drops: &Drops) -> EventWriter {
    let connection = Connection {
        kubeconfig: Some(api.kubeconfig(dir)),
        request_timeout: Duration::from_secs(30),
        ..Connection::default()
    };
    let limits = Limits {
        series_interval: Duration::from_secs(60),
        ..Limits::default()
    };
    EventWriter::start(&connection, "node-a", limits, drops.on_drop()).unwrap()
}

/// Counts not yet written (their patch waits for the interval) are written when the writer is
/// dropped, before the drop returns; a server that does not answer holds the drop 2 s at most.
#[test]
fn pending_series_counts_are_written_at_shutdown_within_2_s() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(HashMap::new());
    let drops = Drops::default();
    let writer = slow_writer(&api, dir.path(), &drops);
    let collection = format!("{EVENTS}/shop/events");
    assert!(writer.recorder().record(denied("a")));
    wait_for("the Event", || api.stored(&collection).len() == 1);
    for _ in 0..3 {
        assert!(writer.recorder().record(denied("a")));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(api.calls("PATCH").is_empty(), "the interval is a minute");
    let started = Instant::now();
    drop(writer);
    assert!(started.elapsed() < Duration::from_secs(2));
    let (_, event) = &api.stored(&collection)[0];
    assert_eq!(event["series"]["count"], 4, "{event:#}");
    assert_eq!(api.calls("PATCH").len(), 1);

    // The same, against a server that takes the patch and never answers.
    let api = FakeApi::start(HashMap::new());
    let writer = slow_writer(&api, dir.path(), &drops);
    assert!(writer.recorder().record(denied("a")));
    wait_for("the Event", || api.stored(&collection).len() == 1);
    api.answer_writes("PATCH", EVENTS, Reply::hang());
    assert!(writer.recorder().record(denied("a")));
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    drop(writer);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(2800),
        "{took:?}"
    );
    assert_eq!(api.calls("PATCH").len(), 1);
}

#[test]
fn failed_writes_are_counted_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing answers at the `elsewhere` context's server: every create fails.
    let api = FakeApi::start(HashMap::new());
    let connection = Connection {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        context: Some("elsewhere".into()),
        request_timeout: Duration::from_secs(2),
        ..Connection::default()
    };
    let drops = Drops::default();
    let writer =
        EventWriter::start(&connection, "node-a", Limits::default(), drops.on_drop()).unwrap();
    assert!(writer.recorder().record(denied("a")));
    wait_for("a write error", || drops.get("write_error") == 1);
    assert!(writer.recorder().record(denied("b")));
    wait_for("a second write error", || drops.get("write_error") == 2);
}
