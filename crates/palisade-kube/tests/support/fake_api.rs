//! An API server for tests, in process: HTTP/1.1 on 127.0.0.1 (keep-alive, as kube-rs's client
//! uses it) answering GET requests from a table of paths with real-format API bodies — lists whose
//! items carry no `apiVersion`/`kind`, pages with a `continue` token, `Status` errors — and watch
//! requests (`?watch=true`) with a chunked stream of watch events the test scripts as it goes
//! (events, bookmarks, `410 Gone`, the end of a watch, a dropped connection). `PATCH` (server-side
//! apply) stores the object sent, which a `GET` of its collection then lists; a merge `PATCH`
//! merges into a stored object (404 without one); `POST` creates one (201, or 409 AlreadyExists
//! when the name is taken); a write can be given another answer ([`FakeApi::answer_writes`]). It
//! records every request it serves. Shared by the kube crate's tests and the CLI's.
#![allow(dead_code)] // each test binary uses a part

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// One answer: a status code and a JSON body.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: serde_json::Value) -> Reply {
        Reply {
            status: 200,
            body: body.to_string(),
        }
    }

    /// No answer at all: the connection is held open (a hung server).
    pub fn hang() -> Reply {
        Reply {
            status: 0,
            body: String::new(),
        }
    }

    /// A plain-text error, as a proxy or an API server without the path answers.
    pub fn plain(code: u16, text: &str) -> Reply {
        Reply {
            status: code,
            body: text.to_string(),
        }
    }

    /// An API `Status` error.
    pub fn status(code: u16, reason: &str, message: &str) -> Reply {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code,
        });
        Reply {
            status: code,
            body: body.to_string(),
        }
    }
}

/// A list of `kind` (`PodList`...) in `api_version` with `items` (written without type fields, as
/// the API server writes them) and, when `next` is given, a continue token.
pub fn list(
    api_version: &str,
    kind: &str,
    items: Vec<serde_json::Value>,
    next: Option<&str>,
) -> Reply {
    let mut metadata = serde_json::json!({"resourceVersion": "42"});
    if let Some(token) = next {
        metadata["continue"] = token.into();
    }
    Reply::ok(serde_json::json!({
        "apiVersion": api_version, "kind": kind, "metadata": metadata, "items": items,
    }))
}

/// The routes of a cluster of these objects, each kind in one page (no Services, no Nodes, no
/// cluster-wide policies, no NetworkLogging CRD).
pub fn cluster(
    namespaces: Vec<serde_json::Value>,
    pods: Vec<serde_json::Value>,
    policies: Vec<serde_json::Value>,
) -> HashMap<String, Reply> {
    let networking = "networking.k8s.io/v1";
    HashMap::from([
        (
            "/api/v1/namespaces".into(),
            list("v1", "NamespaceList", namespaces, None),
        ),
        ("/api/v1/pods".into(), list("v1", "PodList", pods, None)),
        (
            "/api/v1/services".into(),
            list("v1", "ServiceList", vec![], None),
        ),
        (
            "/apis/networking.k8s.io/v1/networkpolicies".into(),
            list(networking, "NetworkPolicyList", policies, None),
        ),
        ("/api/v1/nodes".into(), list("v1", "NodeList", vec![], None)),
        tiers(
            "v1alpha2",
            "clusternetworkpolicies",
            "ClusterNetworkPolicyList",
        ),
        tiers("v1alpha1", "adminnetworkpolicies", "AdminNetworkPolicyList"),
        tiers(
            "v1alpha1",
            "baselineadminnetworkpolicies",
            "BaselineAdminNetworkPolicyList",
        ),
    ])
}

/// The route of an empty list of a cluster-wide policy kind (`policy.networking.k8s.io`).
fn tiers(version: &str, plural: &str, list_kind: &str) -> (String, Reply) {
    let group = "policy.networking.k8s.io";
    let api_version = format!("{group}/{version}");
    let path = format!("/apis/{api_version}/{plural}");
    (path, list(&api_version, list_kind, vec![], None))
}

/// One step of a scripted watch.
#[derive(Clone, Debug)]
pub enum Step {
    /// A watch event line: `{"type": ..., "object": ...}`.
    Event(serde_json::Value),
    /// An `ERROR` event with a `410 Gone` status, then the end of the watch: the version asked
    /// for is too old.
    Gone,
    /// The server ends the watch (its timeout), cleanly.
    End,
    /// The connection is cut mid-stream.
    Drop,
}

/// The steps of the watches of one path, in order, across the watch requests that read them.
pub struct Script {
    tx: Sender<Step>,
}

impl Script {
    /// Sends `step` to the current (or next) watch of the path.
    pub fn send(&self, step: Step) {
        self.tx.send(step).expect("the server is running");
    }

    /// An `ADDED`, `MODIFIED` or `DELETED` event of `object`.
    pub fn event(&self, kind: &str, object: serde_json::Value) {
        self.send(Step::Event(
            serde_json::json!({"type": kind, "object": object}),
        ));
    }

    /// A `BOOKMARK` at `version`, for objects of `api_version` and `kind`.
    pub fn bookmark(&self, api_version: &str, kind: &str, version: &str) {
        self.send(Step::Event(
            serde_json::json!({"type": "BOOKMARK", "object": {
            "apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": version}}}),
        ));
    }
}

type Watches = HashMap<String, Arc<Mutex<Receiver<Step>>>>;

/// A running server; it stops when the test process ends.
pub struct FakeApi {
    pub addr: SocketAddr,
    /// The request targets served, in order (path and query).
    pub requests: Arc<Mutex<Vec<String>>>,
    /// The requests served, as (method, path and query), in order.
    calls: Arc<Mutex<Vec<(String, String)>>>,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    watches: Arc<Mutex<Watches>>,
    applied: Arc<Mutex<std::collections::BTreeMap<String, serde_json::Value>>>,
    writes: Arc<Mutex<Vec<(String, String, Reply)>>>,
}

impl FakeApi {
    /// Serves `routes`: a request's path — followed by `#TOKEN` for a page asked for with
    /// `continue=TOKEN` — to its reply; anything else is a 404 `Status`. A watch of a path with
    /// no [script](FakeApi::script) stays open without an event.
    pub fn start(routes: HashMap<String, Reply>) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let routes = Arc::new(Mutex::new(routes));
        let watches: Arc<Mutex<Watches>> = Arc::default();
        let applied: Arc<Mutex<std::collections::BTreeMap<_, _>>> = Arc::default();
        let writes: Arc<Mutex<Vec<(String, String, Reply)>>> = Arc::default();
        let server = Server {
            writes: writes.clone(),
            applied: applied.clone(),
            routes: routes.clone(),
            watches: watches.clone(),
            seen: requests.clone(),
            calls: calls.clone(),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = server.clone();
                std::thread::spawn(move || server.serve(stream));
            }
        });
        FakeApi {
            addr,
            requests,
            calls,
            routes,
            watches,
            applied,
            writes,
        }
    }

    /// Answers the `method` requests (`POST`, `PATCH`) to paths starting with `prefix` with
    /// `reply`, storing nothing (the last such rule given wins).
    pub fn answer_writes(&self, method: &str, prefix: &str, reply: Reply) {
        (self.writes.lock().unwrap()).push((method.into(), prefix.into(), reply));
    }

    /// The object last applied (`PATCH`) at `path`.
    pub fn applied(&self, path: &str) -> Option<serde_json::Value> {
        self.applied.lock().unwrap().get(path).cloned()
    }

    /// The targets (path and query) of the `method` requests served, in order.
    pub fn calls(&self, method: &str) -> Vec<String> {
        (self.calls.lock().unwrap().iter())
            .filter(|(m, _)| m == method)
            .map(|(_, target)| target.clone())
            .collect()
    }

    /// Every object stored under `prefix` (created, applied or patched), by path.
    pub fn stored(&self, prefix: &str) -> Vec<(String, serde_json::Value)> {
        (self.applied.lock().unwrap().iter())
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(path, object)| (path.clone(), object.clone()))
            .collect()
    }

    /// Replaces the reply to `path` (a list, say, for the next relist).
    pub fn set(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.into(), reply);
    }

    /// The script of the watches of `path`.
    pub fn script(&self, path: &str) -> Script {
        let (tx, rx) = mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        self.watches.lock().unwrap().insert(path.into(), rx);
        Script { tx }
    }

    /// The watch requests served for `path`, in order (their queries).
    pub fn watches_of(&self, path: &str) -> Vec<String> {
        (self.requests.lock().unwrap().iter())
            .filter_map(|r| r.strip_prefix(path)?.strip_prefix('?'))
            .filter(|q| q.split('&').any(|p| p == "watch=true"))
            .map(str::to_string)
            .collect()
    }

    /// A kubeconfig in `dir` for this server ([`kubeconfig`]).
    pub fn kubeconfig(&self, dir: &Path) -> std::path::PathBuf {
        kubeconfig(self.addr, dir)
    }
}

/// A kubeconfig in `dir` whose current context, `fake`, is the server at `addr` (plain HTTP, no
/// credentials); context `elsewhere` names a server nothing answers on.
pub fn kubeconfig(addr: SocketAddr, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n\
         - {{name: fake, cluster: {{server: \"http://{addr}\"}}}}\n\
         - {{name: dead, cluster: {{server: \"http://127.0.0.1:9\"}}}}\n\
         users: [{{name: nobody, user: {{}}}}]\n\
         contexts:\n\
         - {{name: fake, context: {{cluster: fake, user: nobody}}}}\n\
         - {{name: elsewhere, context: {{cluster: dead, user: nobody}}}}\n\
         current-context: fake\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// What every connection's thread shares.
#[derive(Clone)]
struct Server {
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    /// Objects stored by `PATCH`, by path.
    applied: Arc<Mutex<std::collections::BTreeMap<String, serde_json::Value>>>,
    watches: Arc<Mutex<Watches>>,
    seen: Arc<Mutex<Vec<String>>>,
    calls: Arc<Mutex<Vec<(String, String)>>>,
    /// Answers to writes: method, path prefix, reply.
    writes: Arc<Mutex<Vec<(String, String, Reply)>>>,
}

impl Server {
    /// Answers the requests of one connection until it closes.
    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            // Headers, up to the blank line, then the body if there is one.
            let (mut length, mut merge) = (0, false);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                if header == "\r\n" || header == "\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if name.eq_ignore_ascii_case("content-type") {
                        merge = value.trim() == "application/merge-patch+json";
                    }
                }
            }
            let mut body = vec![0; length];
            if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                return;
            }
            let target = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            self.seen.lock().unwrap().push(target.clone());
            let method = request_line.split_whitespace().next().unwrap_or("");
            (self.calls.lock().unwrap()).push((method.to_string(), target.clone()));
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let answered = (self.writes.lock().unwrap().iter().rev())
                .find(|(m, prefix, _)| m == method && path.starts_with(prefix.as_str()))
                .map(|(_, _, reply)| reply.clone());
            let written = match method {
                _ if answered.is_some() => answered,
                "PATCH" if merge => Some(self.merge(path, &body)),
                "PATCH" => Some(self.patch(path, &body)),
                "POST" => Some(self.create(path, &body)),
                _ => None,
            };
            if let Some(reply) = written {
                if reply.status == 0 {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                    return;
                }
                if answer(&mut writer, &reply).is_err() {
                    return;
                }
                continue;
            }
            let mut params = query.split('&');
            if params.clone().any(|p| p == "watch=true") {
                if self.watch(path, &mut writer) {
                    continue;
                }
                return;
            }
            let page = params.find_map(|p| p.strip_prefix("continue="));
            let key = match page {
                Some(token) => format!("{path}#{token}"),
                None => path.to_string(),
            };
            let reply = (self.routes.lock().unwrap().get(&key).cloned())
                .or_else(|| self.applied_list(path))
                .unwrap_or_else(|| Reply::status(404, "NotFound", &format!("{key} not found")));
            if reply.status == 0 {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                return;
            }
            if answer(&mut writer, &reply).is_err() {
                return;
            }
        }
    }

    /// Stores the object a server-side apply sends (a JSON body) at `path`, as a new version.
    fn patch(&self, path: &str, body: &[u8]) -> Reply {
        let Ok(mut object) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Reply::status(400, "BadRequest", "not JSON");
        };
        let mut applied = self.applied.lock().unwrap();
        object["metadata"]["resourceVersion"] = (applied.len() + 100).to_string().into();
        applied.insert(path.to_string(), object.clone());
        Reply::ok(object)
    }

    /// Creates the object sent (a JSON body) in the collection `path`, under its name.
    fn create(&self, path: &str, body: &[u8]) -> Reply {
        let Ok(mut object) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Reply::status(400, "BadRequest", "not JSON");
        };
        let Some(name) = object["metadata"]["name"].as_str().map(str::to_string) else {
            return Reply::status(422, "Invalid", "metadata.name: Required value");
        };
        let mut applied = self.applied.lock().unwrap();
        let at = format!("{path}/{name}");
        if applied.contains_key(&at) {
            let message = format!("{path} \"{name}\" already exists");
            return Reply::status(409, "AlreadyExists", &message);
        }
        object["metadata"]["resourceVersion"] = (applied.len() + 100).to_string().into();
        applied.insert(at, object.clone());
        Reply {
            status: 201,
            body: object.to_string(),
        }
    }

    /// Merges the JSON merge patch sent into the object stored at `path` (RFC 7386).
    fn merge(&self, path: &str, body: &[u8]) -> Reply {
        let Ok(patch) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Reply::status(400, "BadRequest", "not JSON");
        };
        let mut applied = self.applied.lock().unwrap();
        let Some(object) = applied.get_mut(path) else {
            return Reply::status(404, "NotFound", &format!("{path} not found"));
        };
        merge_into(object, patch);
        Reply::ok(object.clone())
    }

    /// The objects applied under the collection `path`, as a list; none if there are none.
    fn applied_list(&self, path: &str) -> Option<Reply> {
        let applied = self.applied.lock().unwrap();
        let items: Vec<serde_json::Value> = (applied.iter())
            .filter(|(at, _)| {
                at.strip_prefix(path)
                    .is_some_and(|rest| rest.matches('/').count() == 1 && rest.starts_with('/'))
            })
            .map(|(_, object)| object.clone())
            .collect();
        (!items.is_empty()).then(|| list("v1", "List", items, None))
    }

    /// Streams the scripted watch of `path`; false when the connection is to be closed. A path
    /// whose list is not a 200 answers the watch the same way.
    fn watch(&self, path: &str, writer: &mut TcpStream) -> bool {
        let listed = self.routes.lock().unwrap().get(path).cloned();
        if let Some(reply) = listed.filter(|r| r.status != 200) {
            return answer(writer, &reply).is_ok();
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if writer.write_all(head.as_bytes()).is_err() {
            return false;
        }
        let script = self.watches.lock().unwrap().get(path).cloned();
        let Some(script) = script else {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            return false;
        };
        loop {
            // The steps are taken only while the client is there: one that closed its watch
            // (say, on an event it refused) must not swallow the next watch's steps.
            if closed(writer) {
                return false;
            }
            // Waiting on the script (not polling it) hands an event over at once.
            let wait = std::time::Duration::from_millis(10);
            let step = script.lock().unwrap().recv_timeout(wait);
            let step = match step {
                Ok(step) => step,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            };
            let line = match step {
                Step::Event(event) => event,
                Step::Gone => {
                    let status = Reply::status(410, "Expired", "too old resource version");
                    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
                    let gone = serde_json::json!({"type": "ERROR", "object": status});
                    return chunk(writer, &gone).and_then(|()| end(writer)).is_ok();
                }
                Step::End => return end(writer).is_ok(),
                Step::Drop => {
                    let _ = writer.shutdown(std::net::Shutdown::Both);
                    return false;
                }
            };
            if chunk(writer, &line).is_err() {
                return false;
            }
        }
    }
}

/// Merges `patch` into `target` as RFC 7386 says: objects key by key, `null` removes, anything
/// else replaces.
fn merge_into(target: &mut serde_json::Value, patch: serde_json::Value) {
    let serde_json::Value::Object(fields) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = serde_json::json!({});
    }
    let object = target.as_object_mut().expect("an object");
    for (key, value) in fields {
        if value.is_null() {
            object.remove(&key);
        } else {
            merge_into(object.entry(key).or_insert(serde_json::Value::Null), value);
        }
    }
}

/// Whether the client closed `stream`: its end read (or an error), where a watch's client, which
/// sends nothing more, leaves nothing to read.
fn closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let peeked = stream.peek(&mut [0u8; 1]);
    let _ = stream.set_nonblocking(false);
    match peeked {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Writes `reply` as a whole response.
fn answer(writer: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        201 => "Created",
        _ => "Error",
    };
    let content = if reply.body.starts_with('{') {
        "application/json"
    } else {
        "text/plain"
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {content}\r\nContent-Length: {}\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(reply.body.as_bytes())
}

/// Writes one watch event line as a chunk.
fn chunk(writer: &mut TcpStream, event: &serde_json::Value) -> std::io::Result<()> {
    let line = format!("{event}\n");
    write!(writer, "{:x}\r\n{line}\r\n", line.len())?;
    writer.flush()
}

/// Ends a chunked response.
fn end(writer: &mut TcpStream) -> std::io::Result<()> {
    writer.write_all(b"0\r\n\r\n")
}
