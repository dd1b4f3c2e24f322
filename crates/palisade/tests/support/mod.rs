//! Helpers of the lab tests: running the binary, a lab on a copy of the microservices demo and its
//! agent, connecting from inside pods, polling, copying the example manifests, reading metrics and
//! records.
#![allow(dead_code)] // each test binary uses a part

use palisade_lab::{DownOnDrop, Lab};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn palisade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        // The agent reads NODE_NAME (set on Kubernetes runners): these tests name no node.
        .env_remove("NODE_NAME")
        .output()
        .expect("run palisade")
}

/// Can `pod` (`ns/name`, or `ns/workload`) open a TCP connection to `target` (a name resolved in
/// the pod, or an address)?
pub fn connects(lab: &str, pod: &impl Display, target: &str, port: u16) -> bool {
    let script = format!("echo > /dev/tcp/{target}/{port}");
    let pod = pod.to_string();
    let out = palisade(&[
        "lab", "--name", lab, "exec", &pod, "--", "timeout", "0.3", "bash", "-c", &script,
    ]);
    out.status.success()
}

/// A TCP connection from the namespace of `from` to `to` (connected within a second), whose reads
/// time out after `read_timeout`.
pub fn connect_from(
    from: &palisade_lab::LabPod,
    to: std::net::SocketAddr,
    read_timeout: Duration,
) -> std::net::TcpStream {
    palisade_dataplane::netns::in_netns(&from.netns, move || {
        let stream = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(read_timeout))?;
        Ok::<_, std::io::Error>(stream)
    })
    .join()
    .unwrap()
    .unwrap()
    .unwrap_or_else(|e| panic!("connect from {} to {to}: {e}", from.key))
}

/// Polls `f` every 20 ms for up to `limit`; returns how long it took to become true.
pub fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Copies the microservices demo into `dir/demo` and returns that folder.
pub fn demo_copy(dir: &Path) -> std::path::PathBuf {
    let manifests = dir.join("demo");
    copy_dir(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/microservices-demo"
        )),
        &manifests,
    );
    manifests
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The text of `http://addr/metrics`.
pub fn scrape(addr: &str) -> String {
    get(addr, "/metrics").1
}

/// `GET http://addr{path}`: the status code and the body (0 and the error when nothing listens).
pub fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = match std::net::TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return (0, format!("metrics endpoint {addr}: {e}")),
    };
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// The value of the first sample line starting with `prefix` (0 when absent).
pub fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// The records of a policy action log (none when it does not exist yet).
pub fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Lab `<prefix><pid>` on a copy of the microservices demo in a scratch folder (as root). The lab,
/// once up, is taken down when this drops, before the folder is removed (fields drop in order).
pub struct Demo {
    _teardown: DownOnDrop,
    pub name: String,
    /// The copy of the demo, `dir/demo`: what the lab's agent enforces.
    pub manifests: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Demo {
    /// The lab's name and the copy of the demo; nothing is up yet.
    pub fn new(prefix: &str) -> Demo {
        palisade_lab::require_root().expect("the lab tests run as root");
        let name = format!("{prefix}{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        Demo {
            _teardown: DownOnDrop(name.clone()),
            manifests: demo_copy(dir.path()),
            name,
            dir,
        }
    }

    /// `palisade lab --name NAME up -f MANIFESTS EXTRA...`, which must succeed; the lab's recorded
    /// state.
    pub fn up(&self, extra: &[&str]) -> Lab {
        let mut args = vec![
            "lab",
            "--name",
            &self.name,
            "up",
            "-f",
            self.manifests.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = palisade(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Lab::load(&self.name).unwrap()
    }

    /// `palisade agent --once` enforcing the copy in `lab`'s node, with `state_file` as its last
    /// good state and `extra` options: the agent restarted by hand.
    pub fn agent_once(&self, lab: &Lab, state_file: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "agent",
            "--once",
            "--manifests",
            self.manifests.to_str().unwrap(),
            "--netns",
            &lab.node,
            "--state-file",
            state_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        palisade(&args)
    }
}

/// Kills `lab`'s agent (the last process `lab up` started) with SIGKILL: it cannot clean up.
pub fn kill_agent(lab: &Lab) {
    let agent = lab.processes.last().unwrap().pid();
    let killed = Command::new("kill")
        .args(["-9", &agent.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// A child killed and reaped when dropped, whatever the test did.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch network namespace (`pal-t-<what>-<pid>-<n>`), removed when dropped.
pub struct Netns(pub String);

impl Netns {
    pub fn new(what: &str) -> Netns {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("pal-t-{what}-{}-{n}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(ok.unwrap().success(), "ip netns add {name}");
        Netns(name)
    }

    /// `nft list table inet palisade` in the namespace; `None` when there is no such table.
    pub fn table(&self) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.0, "nft", "list", "table", "inet", "palisade",
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `palisade agent` following the API server of `kubeconfig`, enforcing node `n1`'s pods in
/// `netns`, its log, socket and state file in `dir`, with `extra` flags; its standard error goes to
/// `dir/agent.log`. Killed when dropped.
pub fn cluster_agent(kubeconfig: &Path, netns: &str, dir: &Path, extra: &[&str]) -> Reaped {
    let path = |name: &str| dir.join(name).display().to_string();
    let agent = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["agent", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--netns", netns, "--node-name", "n1"])
        .args(["--policy-log", &path("policy.log")])
        .args(["--observe-socket", &path("observe.sock")])
        .args(["--state-file", &path("state.json")])
        .args(extra)
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log")).unwrap())
        .spawn()
        .unwrap();
    Reaped(agent)
}
