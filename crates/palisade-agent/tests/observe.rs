//! The observe socket as a hostile local user meets it: what it replaces at its path, its mode and
//! group, and the bounds on clients, request size and time, and slow followers.

use palisade_agent::flow_log::record::FlowRecord;
use palisade_agent::metrics::Metrics;
use palisade_agent::observe::hub::{self, MAX_CLIENTS, MAX_FILTER_VALUES, MAX_REQUEST};
use palisade_agent::observe::{Hub, Request};
use palisade_agent::record::Record;
use palisade_model::Protocol;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORD: &str = r#"{"connection":{"src_ip":"10.0.0.1","dest_ip":"10.0.0.2","src_port":40000,"dest_port":6379,"protocol":"tcp","direction":"ingress"},"disposition":"deny","src":{"instance":"10.0.0.1"},"dest":{"instance":"10.0.0.2"},"count":1,"node_name":"n","timestamp":"2026-11-22T10:00:00.000000001Z"}"#;

fn record() -> Record {
    serde_json::from_str(RECORD).unwrap()
}

const FLOW: &str = r#"{"connection":{"src_ip":"10.0.0.1","dest_ip":"10.0.0.2","src_port":40000,"dest_port":6379,"protocol":"tcp"},"src":{"pod_name":"cart","namespace":"shop"},"dest":{"pod_name":"redis","namespace":"shop"},"disposition":"allow","bytes_sent":100,"packets_sent":2,"started":true,"ended":false,"start_time":"2026-11-22T10:00:00Z","end_time":"2026-11-22T10:00:05Z"}"#;

fn flow(port: u16) -> FlowRecord {
    let mut flow: FlowRecord = serde_json::from_str(FLOW).unwrap();
    flow.connection.dest_port = port;
    flow
}

struct Server {
    _dir: tempfile::TempDir,
    path: PathBuf,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("observe.sock");
    let (hub, metrics) = (Arc::new(Hub::default()), Arc::new(Metrics::new()));
    hub::serve(&path, hub.clone(), None, metrics.clone()).unwrap();
    Server {
        _dir: dir,
        path,
        hub,
        metrics,
    }
}

impl Server {
    fn rejected(&self, reason: &str) -> f64 {
        let prefix = format!("palisade_observe_connections_rejected_total{{reason=\"{reason}\"}}");
        self.metrics
            .encode()
            .lines()
            .find(|l| l.starts_with(&prefix))
            .map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
    }
}

/// Sends `request` raw and returns the first line of the answer.
fn ask(path: &Path, request: &str) -> String {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

/// A client that asked to follow and then reads nothing.
fn follower(path: &Path) -> UnixStream {
    let request = Request {
        last: Some(0),
        follow: true,
        ..Default::default()
    };
    let mut s = UnixStream::connect(path).unwrap();
    let line = serde_json::to_string(&request).unwrap() + "\n";
    s.write_all(line.as_bytes()).unwrap();
    s
}

fn served(path: &Path) -> bool {
    let request = Request {
        last: Some(1),
        ..Default::default()
    };
    hub::connect::<Record>(path, &request)
        .is_ok_and(|mut records| records.all(|r| r.is_ok_and(|r| r.count == 1)))
}

#[test]
fn anything_but_a_socket_at_the_path_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, metrics) = (Arc::new(Hub::default()), Arc::new(Metrics::new()));
    let serve = |path: &Path| hub::serve(path, hub.clone(), None, metrics.clone());

    let file = dir.path().join("file.sock");
    std::fs::write(&file, "precious\n").unwrap();
    let e = serve(&file).unwrap_err().to_string();
    assert!(
        e.contains("file.sock: is a regular file, not a socket"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious\n");

    let folder = dir.path().join("folder.sock");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("inside"), "x").unwrap();
    let e = serve(&folder).unwrap_err().to_string();
    assert!(e.contains("is a folder, not a socket"), "{e}");
    assert!(folder.join("inside").exists());

    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let e = serve(&link).unwrap_err().to_string();
    assert!(e.contains("is a symbolic link, not a socket"), "{e}");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious\n");
    // Nothing staged is left behind.
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["file.sock", "folder.sock", "link.sock"]);
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("observe.sock");
    drop(UnixListener::bind(&path).unwrap()); // an agent that stopped: the file stays
    let hub = Arc::new(Hub::default());
    hub.publish(record());
    hub::serve(&path, hub.clone(), None, Arc::new(Metrics::new())).unwrap();
    assert!(served(&path));
    let e = hub::serve(
        &path,
        Arc::new(Hub::default()),
        None,
        Arc::new(Metrics::new()),
    )
    .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    assert!(served(&path), "the first agent still serves");
}

#[test]
fn the_socket_is_0660_with_the_group_in_a_0750_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/observe.sock");
    let hub = Arc::new(Hub::default());
    hub.publish(record());
    hub::serve(&path, hub, Some(4242), Arc::new(Metrics::new())).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o660, 4242));
    let folder = std::fs::metadata(dir.path().join("run")).unwrap();
    assert_eq!((folder.mode() & 0o7777, folder.gid()), (0o750, 4242));
    assert_eq!(
        std::fs::read_dir(dir.path().join("run")).unwrap().count(),
        1
    );
    assert!(served(&path));
}

#[test]
fn clients_beyond_the_limit_are_told_counted_and_served_once_a_place_is_free() {
    let s = server();
    s.hub.publish(record());
    let mut followers: Vec<UnixStream> = (0..MAX_CLIENTS).map(|_| follower(&s.path)).collect();
    let reply = ask(&s.path, "{}\n");
    assert!(
        reply.contains(&format!("serves {MAX_CLIENTS} observe clients at most")),
        "{reply}"
    );
    // What `palisade observe` shows then, whether or not it could send its request.
    let e = hub::connect::<Record>(&s.path, &Request::default())
        .and_then(|mut records| records.next().unwrap().map(drop))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("the agent refused: the agent serves"), "{e}");
    assert_eq!(s.rejected("too_many_clients"), 2.0);
    // A follower leaves without another record published: its place is freed within seconds.
    drop(followers.pop());
    let start = Instant::now();
    while !served(&s.path) {
        assert!(start.elapsed() < Duration::from_secs(5), "no place freed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_oversized_request_is_cut_off_and_the_server_stays_up() {
    let s = server();
    s.hub.publish(record());
    let mut stream = UnixStream::connect(&s.path).unwrap();
    let reader = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0;
        while sent < 256 << 20 {
            match stream.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => return (sent, true),
            }
        }
        (sent, false)
    });
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // One line, then the connection is reset: the server closed it with the rest unread.
    let mut reply = String::new();
    BufReader::new(reader).read_line(&mut reply).unwrap();
    assert!(
        reply.contains(&format!("longer than {MAX_REQUEST} bytes")),
        "{reply}"
    );
    let (sent, cut_off) = writer.join().unwrap();
    assert!(cut_off, "the server kept reading");
    assert!(sent < 8 << 20, "{sent} bytes were taken before the cut");
    assert_eq!(s.rejected("request_too_large"), 1.0);
    assert!(served(&s.path));
}

#[test]
fn a_silent_client_is_dropped_after_the_request_timeout() {
    let s = server();
    let start = Instant::now();
    let reply = ask(&s.path, "");
    assert!(reply.contains("no request line within 5 s"), "{reply}");
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.rejected("request_timeout"), 1.0);
}

#[test]
fn bad_requests_are_answered_and_the_client_shows_why() {
    let s = server();
    let reply = ask(&s.path, "not json\n");
    assert!(reply.starts_with(r#"{"error":"bad request: "#), "{reply}");
    let request = Request {
        filter: palisade_agent::observe::Filter {
            ports: (0..=MAX_FILTER_VALUES as u16).collect(),
            protocols: vec![Protocol::Tcp],
            ..Default::default()
        },
        ..Default::default()
    };
    let e = hub::connect::<Record>(&s.path, &request)
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the agent refused: bad request: the filter has 258 values; at most 256"),
        "{e}"
    );
    assert_eq!(s.rejected("bad_request"), 2.0);
}

#[test]
fn a_follower_that_does_not_read_never_slows_the_publisher() {
    let s = server();
    let stuck = follower(&s.path);
    // Let the server subscribe it before publishing.
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    for _ in 0..100_000 {
        s.hub.publish(record());
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(s.hub.missed() > 0, "the stuck follower missed nothing?");
    assert!(served(&s.path));
    let mut first = [0; 1];
    (&stuck).read_exact(&mut first).unwrap();
    assert_eq!(&first, b"{", "it still gets what fit in its queue");
}

#[test]
fn flows_are_served_apart_from_verdicts_and_refused_when_the_agent_writes_none() {
    let s = server();
    let flows = |follow: bool, ports: Vec<u16>| Request {
        flows: true,
        follow,
        filter: palisade_agent::observe::Filter {
            ports,
            ..Default::default()
        },
        ..Default::default()
    };
    // Without a flow logger: told at once, not left waiting.
    let e = hub::connect::<FlowRecord>(&s.path, &flows(true, vec![]))
        .and_then(|mut records| records.next().unwrap().map(drop))
        .unwrap_err()
        .to_string();
    assert!(e.contains("writes no flow log"), "{e}");
    assert_eq!(s.rejected("no_flow_log"), 1.0);

    s.hub.offer_flows();
    s.hub.publish(record());
    s.hub.publish(flow(6379));
    s.hub.publish(flow(80));
    let past: Vec<FlowRecord> = hub::connect(&s.path, &flows(false, vec![80]))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(past, [flow(80)], "the filter applies to flows");
    let verdicts: Vec<Record> = hub::connect(&s.path, &Request::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        verdicts,
        [record()],
        "an old client's request gets verdicts only"
    );

    // A follower of flows is sent each new one, and no verdict.
    let mut live = hub::connect::<FlowRecord>(&s.path, &flows(true, vec![443])).unwrap();
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(live.next().map(Result::unwrap));
    });
    // Published until the server has subscribed it.
    let followed = loop {
        if let Ok(got) = rx.try_recv() {
            break got;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no flow followed");
        s.hub.publish(record());
        s.hub.publish(flow(443));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(followed, Some(flow(443)));
}
