//! An API server for tests, in process: HTTP/1.1 on 127.0.0.1 (keep-alive, as kube-rs's client
//! uses it) answering GET requests from a table of paths with real-format API bodies — lists whose
//! items carry no `apiVersion`/`kind`, pages with a `continue` token, `Status` errors — and
//! recording every request it serves. Shared by the kube crate's tests and the CLI's.
#![allow(dead_code)] // each test binary uses a part

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
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

/// The routes of a cluster of these objects, each kind in one page (no Services, no
/// NetworkLogging CRD).
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
    ])
}

/// A running server; it stops when the test process ends.
pub struct FakeApi {
    pub addr: SocketAddr,
    /// The request targets served, in order (path and query).
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    /// Serves `routes`: a request's path — followed by `#TOKEN` for a page asked for with
    /// `continue=TOKEN` — to its reply; anything else is a 404 `Status`.
    pub fn start(routes: HashMap<String, Reply>) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (routes, seen) = (Arc::new(routes), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (routes, seen) = (routes.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &routes, &seen));
            }
        });
        FakeApi { addr, requests }
    }

    /// A kubeconfig in `dir` whose current context, `fake`, is this server (plain HTTP, no
    /// credentials); context `elsewhere` names a server nothing answers on.
    pub fn kubeconfig(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n\
             - {{name: fake, cluster: {{server: \"http://{}\"}}}}\n\
             - {{name: dead, cluster: {{server: \"http://127.0.0.1:9\"}}}}\n\
             users: [{{name: nobody, user: {{}}}}]\n\
             contexts:\n\
             - {{name: fake, context: {{cluster: fake, user: nobody}}}}\n\
             - {{name: elsewhere, context: {{cluster: dead, user: nobody}}}}\n\
             current-context: fake\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Answers the requests of one connection until it closes.
fn serve(stream: TcpStream, routes: &HashMap<String, Reply>, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        // Headers, up to the blank line (GET requests have no body).
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        seen.lock().unwrap().push(target.clone());
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let page = (query.split('&')).find_map(|p| p.strip_prefix("continue="));
        let key = match page {
            Some(token) => format!("{path}#{token}"),
            None => path.to_string(),
        };
        let reply = (routes.get(&key).cloned())
            .unwrap_or_else(|| Reply::status(404, "NotFound", &format!("{key} not found")));
        if reply.status == 0 {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            return;
        }
        let reason = if reply.status == 200 { "OK" } else { "Error" };
        let json = reply.body.starts_with('{');
        let content = if json {
            "application/json"
        } else {
            "text/plain"
        };
        let head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {content}\r\nContent-Length: {}\r\n\r\n",
            reply.status,
            reply.body.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(reply.body.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}
