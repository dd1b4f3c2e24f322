//! The answers the agent's writes get (its Lease, its Events) and `palisade status`'s lists (the
//! Leases, the Nodes) are read within bounds, against an in-process API server: an oversized one
//! is refused with an error naming the bound, and the normal paths work.

mod support;

use palisade_kube::events::{EventType, EventWriter, Limits, Occurrence, OnDrop, Regarding, Scope};
use palisade_kube::status::{reports, LeaseKeeper};
use palisade_kube::{Connection, SourceError};
use palisade_model::AgentStatus;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use support::fake_api::{list, FakeApi, Reply};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/palisade-system/leases";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces";

/// What the crate logged, in this test binary (a global subscriber: the writers log on threads
/// of their own).
fn logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits (at most 10 s) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect(api: &FakeApi, dir: &std::path::Path) -> Connection {
    Connection {
        kubeconfig: Some(api.kubeconfig(dir)),
        request_timeout: Duration::from_secs(5),
        ..Connection::default()
    }
}

/// A 200 answer of more than 1 MiB.
fn oversized() -> Reply {
    Reply::ok(json!({"metadata": {"name": "x"}, "pad": "a".repeat(1 << 20)}))
}

fn status(node: &str) -> AgentStatus {
    AgentStatus {
        node: node.into(),
        version: "0.1.0".into(),
        pods: 2,
        ..AgentStatus::default()
    }
}

fn node(name: &str, pad: usize) -> serde_json::Value {
    json!({"metadata": {"name": name, "annotations": {"pad": "p".repeat(pad)}}})
}

#[test]
fn an_oversized_answer_to_a_lease_renewal_is_refused_and_status_reads_the_leases() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(HashMap::from([(
        "/api/v1/nodes".into(),
        list(
            "v1",
            "NodeList",
            vec![node("n-ok", 0), node("n-big", 0)],
            None,
        ),
    )]));
    api.answer_writes("PATCH", &format!("{LEASES}/palisade-n-big"), oversized());
    let connection = connect(&api, dir.path());
    let big = LeaseKeeper::start(&connection, "n-big", || true).unwrap();
    big.publish(status("n-big"));
    let ok = LeaseKeeper::start(&connection, "n-ok", || true).unwrap();
    ok.publish(status("n-ok"));
    wait_for("the refusal logged", || {
        logs().contains(
            "cannot renew Lease palisade-system/palisade-n-big: the answer is larger than 1 MiB",
        )
    });
    wait_for("n-ok's Lease", || {
        api.applied(&format!("{LEASES}/palisade-n-ok")).is_some()
    });
    assert!(!logs().contains("cannot renew Lease palisade-system/palisade-n-ok"));

    let reports = reports(&connection).unwrap();
    let agents: Vec<&str> = (reports.agents.iter())
        .map(|a| a.status.node.as_str())
        .collect();
    assert_eq!(agents, ["n-ok"]);
    assert_eq!(reports.agents[0].status, status("n-ok"));
    assert_eq!(reports.nodes, ["n-ok", "n-big"]);
    assert!(reports.unread.is_empty(), "{:?}", reports.unread);
}

/// `palisade status`'s lists are read page by page within the page bound: a Lease page past it
/// fails the command, a Node page past it leaves the nodes out, said.
#[test]
fn status_lists_past_the_page_bound_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lease = |pad: usize| {
        json!({"metadata": {"name": "palisade-n1", "namespace": "palisade-system",
            "annotations": {"palisade.dev/status": serde_json::to_string(&status("n1")).unwrap(),
                            "pad": "p".repeat(pad)}},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}})
    };
    let routes = |lease_pad: usize, node_pad: usize| {
        HashMap::from([
            (
                LEASES.to_string(),
                list(
                    "coordination.k8s.io/v1",
                    "LeaseList",
                    vec![lease(lease_pad)],
                    None,
                ),
            ),
            (
                "/api/v1/nodes".to_string(),
                list("v1", "NodeList", vec![node("n1", node_pad)], None),
            ),
        ])
    };
    let bounded = |api: &FakeApi| Connection {
        max_page_bytes: 4096,
        ..connect(api, dir.path())
    };

    let api = FakeApi::start(routes(0, 0));
    let read = reports(&bounded(&api)).unwrap();
    assert_eq!(
        (read.agents.len(), &read.nodes[..]),
        (1, &["n1".to_string()][..])
    );

    let api = FakeApi::start(routes(5000, 0));
    match reports(&bounded(&api)) {
        Err(e @ SourceError::Leases { .. }) => assert!(
            e.to_string()
                .contains("the answer is larger than 4 KiB (a page of 500 objects)"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }

    let api = FakeApi::start(routes(0, 5000));
    let read = reports(&bounded(&api)).unwrap();
    assert_eq!(read.agents.len(), 1);
    assert!(read.nodes.is_empty());
    assert!(
        (read.unread.iter()).any(|w| w.starts_with(
            "cannot list Nodes: the answer is larger than 4 KiB (a page of 500 objects)"
        )),
        "{:?}",
        read.unread
    );
    // Pages are asked for: the lists are paginated.
    assert!(
        (api.requests.lock().unwrap().iter())
            .any(|r| r.starts_with("/api/v1/nodes?") && r.contains("limit=500")),
        "{:?}",
        api.requests
    );
}

fn occurrence(namespace: &str) -> Occurrence {
    Occurrence {
        regarding: Regarding {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some(namespace.into()),
            name: "redis-0".into(),
            uid: None,
            generation: None,
        },
        type_: EventType::Warning,
        reason: "PolicyDenied".into(),
        action: "Drop".into(),
        note: "denied".into(),
        key: "k".into(),
        scope: Scope::Node,
        time: SystemTime::now(),
    }
}

/// An oversized answer to an Event's create, or to its series patch, is a failed write: logged
/// with the bound, counted.
#[test]
fn an_oversized_answer_to_an_event_write_is_refused() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(HashMap::new());
    api.answer_writes("POST", &format!("{EVENTS}/shop/events"), oversized());
    api.answer_writes("PATCH", &format!("{EVENTS}/cart/events/"), oversized());
    let errors = Arc::new(AtomicUsize::new(0));
    let count = errors.clone();
    let on_drop: OnDrop = Arc::new(move |why| {
        if why == "write_error" {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    let limits = Limits {
        series_interval: Duration::from_millis(300),
        ..Limits::default()
    };
    let writer = EventWriter::start(&connect(&api, dir.path()), "n1", limits, on_drop).unwrap();
    let recorder = writer.recorder();
    assert!(recorder.record(occurrence("shop")));
    wait_for("the create refused", || {
        (logs().lines())
            .any(|l| l.contains("(creating shop/redis-0.") && l.contains("larger than 1 MiB"))
    });
    assert_eq!(errors.load(Ordering::Relaxed), 1);

    // Created as usual; its series patch gets the oversized answer.
    assert!(recorder.record(occurrence("cart")));
    wait_for("cart's Event", || {
        !api.stored(&format!("{EVENTS}/cart/events")).is_empty()
    });
    assert!(recorder.record(occurrence("cart")));
    wait_for("the patch refused", || {
        (logs().lines())
            .any(|l| l.contains("(patching cart/redis-0.") && l.contains("larger than 1 MiB"))
    });
    assert_eq!(errors.load(Ordering::Relaxed), 2);
}
