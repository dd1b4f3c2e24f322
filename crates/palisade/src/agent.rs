//! `palisade agent`.

use crate::exit;
use palisade_agent::flow_log::FlowLimits;
use palisade_agent::policy_log::Limits;
use palisade_agent::{Config, Input, LogConfig, SourceOptions};
use palisade_policy::{Audit, Enforcement};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `palisade agent`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Manifests folder to enforce; watched, and re-applied on every change. Without it, the
    /// cluster's API server is followed (list and watch), found as kubectl would: --kubeconfig,
    /// KUBECONFIG, ~/.kube/config, or the pod's service account.
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// The kubeconfig of the cluster to follow (instead of --manifests).
    #[arg(long, value_name = "PATH", conflicts_with = "manifests")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (instead of --manifests).
    #[arg(long, value_name = "NAME", conflicts_with = "manifests")]
    context: Option<String>,
    /// How long one request to the API server may take (e.g. 30s, 1m); with --once, also how long
    /// to wait for the first list of every kind.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Following an API server: write a Warning Event on a pod of this node whenever its policies
    /// drop a connection, aggregated per flow (the Event's series counts repeats) and at most 10
    /// new Events a second. Needs this node's name (--node-name or NODE_NAME).
    #[arg(long, conflicts_with = "manifests")]
    deny_events: bool,
    /// Network namespace to enforce in (default: the agent's own).
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Apply once and exit (no watching, no logging).
    #[arg(long)]
    once: bool,
    /// Print the nftables ruleset instead of applying it.
    #[arg(long)]
    dry_run: bool,
    /// (internal) Keep the pod addresses lab NAME was built with; set by `lab up`.
    #[arg(long, value_name = "NAME", hide = true)]
    lab: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    logging: LogArgs,
}

/// How the manifests folder is read, and the bounds on what it may make the agent build. The counts
/// default to `Limits::default()`'s; the other defaults are written as `--help` shows them (`1s`,
/// `128MiB`) and a unit test checks that they are `SourceOptions::default()`.
#[derive(clap::Args, Debug, Clone)]
pub struct SourceArgs {
    /// A file removed from the folder, or emptied, keeps its objects in force this long, in case it
    /// is being rewritten (replace files by renaming a new version into the folder: that is atomic).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration_or_zero)]
    pub removal_grace: Duration,
    /// Follow symlinks to manifest files only when they lead inside the folder (`inside`, as a
    /// ConfigMap volume's do), or `anywhere`.
    #[arg(long, value_name = "WHERE", default_value = "inside", value_parser = ["inside", "anywhere"])]
    pub symlinks: String,
    /// Larger files are not read (e.g. 128MiB).
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = parse_size)]
    pub max_file_size: u64,
    /// Files past this many bytes in all are not read.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub max_total_size: u64,
    /// Pods one workload's template may stand for (replicas, parallelism).
    #[arg(long, value_name = "N", default_value_t = palisade_model::Limits::default().max_workload_pods)]
    pub max_workload_pods: usize,
    /// Pods in all; objects whose pods would exceed it are left out.
    #[arg(long, value_name = "N", default_value_t = palisade_model::Limits::default().max_pods)]
    pub max_pods: usize,
    /// Where the objects in force are written, for a restart to start from the last good state
    /// (default /var/lib/palisade/last-good.json; for a lab: in its state folder).
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<PathBuf>,
}

impl SourceArgs {
    fn options(&self) -> SourceOptions {
        SourceOptions {
            limits: palisade_model::Limits {
                max_file_bytes: self.max_file_size,
                max_total_bytes: self.max_total_size,
                max_workload_pods: self.max_workload_pods,
                max_pods: self.max_pods,
            },
            symlinks: if self.symlinks == "anywhere" {
                palisade_model::Symlinks::Anywhere
            } else {
                palisade_model::Symlinks::Inside
            },
            removal_grace: self.removal_grace,
        }
    }
}

/// Policy action logging, audit and strict mode, live view and metrics options, shared by `agent`
/// and `lab up`.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// The policy action log (JSON lines); default /var/log/network/policy_action.log (for a lab:
    /// in its state folder).
    #[arg(long, value_name = "PATH")]
    pub policy_log: Option<PathBuf>,
    /// This node's name, as pods' `spec.nodeName` gives it. `agent`: only the pods scheduled on it,
    /// and pods scheduled nowhere, are enforced here (every pod stays a peer); default NODE_NAME,
    /// as the downward API sets it; without either, every pod. Records carry it (default: the host
    /// name). `lab up`: names a single-node lab's node in records only (it holds every pod); a lab
    /// of several names its nodes node-0 .. node-<N-1>.
    #[arg(long, value_name = "NAME", value_parser = node_name)]
    pub node_name: Option<String>,
    /// Serve the live view for `palisade observe` on this Unix socket (default
    /// /run/palisade/observe.sock; for a lab: in its state folder).
    #[arg(long, value_name = "PATH")]
    pub observe_socket: Option<PathBuf>,
    /// Group owner of the policy action log files (0640) and the observe socket (0660), and of the
    /// folders the agent creates for them (0750): its members may read the logs and use
    /// `palisade observe` without root. Default: the agent's own group.
    #[arg(long, value_name = "NAME|GID", value_parser = palisade_agent::safe_fs::group_id)]
    pub group: Option<u32>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9090).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Deny aggregation window (e.g. 5s, 500ms, 1m).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub deny_aggregation_window: Duration,
    /// Deny aggregation keys open at most; denials of new flows beyond are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 3000)]
    pub deny_aggregation_max_keys: usize,
    /// Records written per second at most; the excess is dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub policy_log_rate: u32,
    /// Records written at once at most (token bucket size).
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub policy_log_burst: u32,
    /// Rotate the log when it reaches this size (e.g. 10MiB, 500k, 1048576).
    #[arg(long, value_name = "SIZE", default_value = "10MiB", value_parser = parse_size)]
    pub policy_log_max_size: u64,
    /// Rotated log files kept.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub policy_log_max_files: usize,
    /// Audit mode on this node: drop nothing, log what policy would deny (`"audit": true`). Per
    /// namespace: annotate it `policy.palisade.dev/audit-mode: "true"`.
    #[arg(long)]
    pub policy_audit_mode: bool,
    /// Strict mode: after each new ruleset, cut the established connections it denies (their
    /// conntrack entries are removed, so their next packet is judged again and dropped), each
    /// logged as a deny record with `"reason": "strict"`. Default: established connections run
    /// until they close.
    #[arg(long)]
    pub strict: bool,
    /// The flow log (JSON lines): every connection's packets and bytes each way, per interval it
    /// was active, from conntrack, with its ends' pods and workloads and each side's verdict.
    /// Off unless given.
    #[arg(long, value_name = "PATH")]
    pub flow_log: Option<PathBuf>,
    /// The flow log's interval (1s to 1h; GKE's finest is 5s): each connection is told once per
    /// interval, at its end.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = flow_interval)]
    pub flow_log_interval: Duration,
    /// Flow records written per second on average (one interval's worth may come at once); the
    /// excess is dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub flow_log_rate: u32,
    /// Connections the flow log accounts at most (per listing of conntrack, and ended per
    /// interval); the rest are counted as dropped. What the flow log keeps is bounded by it (the
    /// last listing, what went missing from it, one interval's endings).
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1..))]
    pub flow_log_max_connections: u32,
    /// Rotate the flow log when it reaches this size.
    #[arg(long, value_name = "SIZE", default_value = "50MiB", value_parser = parse_size)]
    pub flow_log_max_size: u64,
    /// Rotated flow log files kept.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub flow_log_max_files: usize,
}

/// A flow log interval: 1s to 1h.
fn flow_interval(s: &str) -> Result<Duration, String> {
    let interval = parse_duration(s)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&interval) {
        return Err(format!("{s:?}: the interval must be 1s to 1h"));
    }
    Ok(interval)
}

impl LogArgs {
    /// Where audit mode applies.
    fn audit(&self) -> Audit {
        if self.policy_audit_mode {
            Audit::All
        } else {
            Audit::Annotated
        }
    }

    fn config(&self) -> LogConfig {
        LogConfig {
            policy_log: self.policy_log.clone(),
            node_name: self.node_name.clone(),
            observe_socket: self.observe_socket.clone(),
            group: self.group,
            limits: self.limits(),
            flow_log: self.flow_log.clone(),
            flow_limits: FlowLimits {
                interval: self.flow_log_interval,
                max_connections: self.flow_log_max_connections as usize,
                records_per_second: self.flow_log_rate,
                max_file_bytes: self.flow_log_max_size,
                max_files: self.flow_log_max_files,
            },
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            aggregation_window: self.deny_aggregation_window,
            max_open_keys: self.deny_aggregation_max_keys,
            records_per_second: self.policy_log_rate,
            burst: self.policy_log_burst,
            max_file_bytes: self.policy_log_max_size,
            max_files: self.policy_log_max_files,
        }
    }

    /// The same options as command-line arguments, to start an agent with them.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = &self.policy_log {
            out.extend(["--policy-log".into(), p.display().to_string()]);
        }
        if let Some(n) = &self.node_name {
            out.extend(["--node-name".into(), n.clone()]);
        }
        if let Some(p) = &self.observe_socket {
            out.extend(["--observe-socket".into(), p.display().to_string()]);
        }
        if let Some(g) = self.group {
            out.extend(["--group".into(), g.to_string()]);
        }
        if let Some(a) = &self.metrics_addr {
            out.extend(["--metrics-addr".into(), a.to_string()]);
        }
        if self.policy_audit_mode {
            out.push("--policy-audit-mode".into());
        }
        if self.strict {
            out.push("--strict".into());
        }
        if let Some(p) = &self.flow_log {
            out.extend(["--flow-log".into(), p.display().to_string()]);
        }
        out.extend([
            "--deny-aggregation-window".into(),
            format!("{}ms", self.deny_aggregation_window.as_millis()),
            "--deny-aggregation-max-keys".into(),
            self.deny_aggregation_max_keys.to_string(),
            "--policy-log-rate".into(),
            self.policy_log_rate.to_string(),
            "--policy-log-burst".into(),
            self.policy_log_burst.to_string(),
            "--policy-log-max-size".into(),
            self.policy_log_max_size.to_string(),
            "--policy-log-max-files".into(),
            self.policy_log_max_files.to_string(),
            "--flow-log-interval".into(),
            format!("{}ms", self.flow_log_interval.as_millis()),
            "--flow-log-rate".into(),
            self.flow_log_rate.to_string(),
            "--flow-log-max-connections".into(),
            self.flow_log_max_connections.to_string(),
            "--flow-log-max-size".into(),
            self.flow_log_max_size.to_string(),
            "--flow-log-max-files".into(),
            self.flow_log_max_files.to_string(),
        ]);
        out
    }
}

/// A leading number and the unit after it (`"10MiB"` → `(10, "MiB")`).
fn number_and_unit(s: &str) -> Option<(u64, &str)> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    Some((number.parse().ok()?, unit))
}

/// `5s`, `500ms`, `1m`, `2h`, or plain seconds; `0` (no wait) is allowed.
fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(s)
        .ok_or_else(|| format!("{s:?} is not a duration; use e.g. 5s, 500ms, 1m"))?;
    let scale: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("unknown unit in {s:?}; use ms, s, m or h")),
    };
    let ms = n
        .checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is out of range"))?;
    Ok(Duration::from_millis(ms))
}

/// `5s`, `500ms`, `1m`, `2h`, or plain seconds, longer than 0.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_duration_or_zero(s)?;
    if duration.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(duration)
}

/// Bytes, with an optional `k`/`KiB`, `M`/`MiB` or `G`/`GiB` suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(s)
        .ok_or_else(|| format!("{s:?} is not a size; use e.g. 10MiB, 500k, 1048576"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return Err(format!("unknown unit in {s:?}; use k, MiB or GiB")),
    };
    match n.checked_shl(shift) {
        Some(bytes) if bytes > 0 && bytes >> shift == n => Ok(bytes),
        _ => Err(format!("{s:?} is out of range")),
    }
}

/// Runs the agent. Exit 2 if the first ruleset cannot be applied with `--once`, or if logging or
/// metrics cannot be set up.
pub fn run(args: Args) -> u8 {
    let enforcement = match enforcement(&args) {
        Ok(enforcement) => enforcement,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    if args.dry_run {
        let inputs = crate::input::Inputs {
            files: args.manifests.iter().cloned().collect(),
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
            request_timeout: args.request_timeout,
        };
        return match crate::input::load(&inputs, 0) {
            Ok(loaded) => {
                print!("{}", palisade_agent::script(loaded.state, enforcement));
                exit::OK
            }
            Err(code) => code,
        };
    }
    let config = match config(&args, enforcement) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    if args.once {
        // Scripts can trust the code: 2 when anything was rejected, even if the rest was applied.
        return match palisade_agent::once(&config) {
            Ok(report) if report.clean() => exit::OK,
            Ok(_) => exit::INVALID,
            Err(e) => {
                eprintln!("error: {e}");
                exit::INVALID
            }
        };
    }
    match palisade_agent::run(&config) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::INVALID
        }
    }
}

/// The agent's configuration from the flags; with `--lab`, the lab's pod addresses and state file.
/// Whose pods this agent enforces: those of `--node-name`, else of NODE_NAME — but for a lab's
/// agent every pod, or in a lab of several nodes those placed on its node (see [`config`]) — and
/// where audit mode applies.
fn enforcement(args: &Args) -> Result<Enforcement, String> {
    let node = match (
        &args.lab,
        &args.logging.node_name,
        std::env::var("NODE_NAME"),
    ) {
        (Some(_), _, _) => None,
        (None, Some(name), _) => Some(name.clone()),
        (None, None, Ok(name)) => Some(node_name(&name).map_err(|e| format!("NODE_NAME: {e}"))?),
        (None, None, Err(_)) => None,
    };
    Ok(Enforcement {
        audit: args.logging.audit(),
        node,
        placed: None,
        strict: args.logging.strict,
    })
}

/// A node's name: a DNS subdomain, as Kubernetes names nodes (an empty or misspelt one would
/// enforce nothing).
fn node_name(text: &str) -> Result<String, String> {
    palisade_model::validate::dns1123_subdomain(text)
        .map(|()| text.to_string())
        .map_err(|e| format!("{text:?} is not a node name: {e}"))
}

/// With `--lab`, the lab's pod addresses, and in a lab of several nodes the pods placed on this
/// one (`--node-name`), which alone it enforces.
fn config(args: &Args, mut enforcement: Enforcement) -> Result<Config, palisade_lab::LabError> {
    let (pinned_ips, status_file) = match &args.lab {
        Some(name) => {
            let lab = palisade_lab::Lab::load(name)?;
            let node = args.logging.node_name.as_deref();
            let placed = lab.placed_on(node)?;
            enforcement.placed = placed.map(Arc::new);
            let status = lab.named_node_file(&palisade_lab::agent_status(name), node);
            (lab.pinned_ips(), Some(status))
        }
        None => (Vec::new(), None),
    };
    let lab_state_file = args.lab.as_deref().map(palisade_lab::last_good);
    Ok(Config {
        netns: args.netns.clone(),
        pinned_ips,
        source: args.source.options(),
        // Records name the enforced node (the lab's agent gets the lab's node name).
        logging: LogConfig {
            node_name: args.logging.node_name.clone().or(enforcement.node.clone()),
            ..args.logging.config()
        },
        enforcement,
        state_file: args.source.state_file.clone().or(lab_state_file),
        metrics_addr: args.logging.metrics_addr,
        status_file,
        deny_events: args.deny_events,
        strict: args.logging.strict,
        input: match &args.manifests {
            Some(folder) => Input::Manifests(folder.clone()),
            None => Input::Cluster(palisade_kube::Connection {
                kubeconfig: args.kubeconfig.clone(),
                context: args.context.clone(),
                request_timeout: args.request_timeout,
                max_objects: args.source.max_pods,
                // A list page is bounded like a manifest file.
                max_page_bytes: usize::try_from(args.source.max_file_size).unwrap_or(usize::MAX),
                ..palisade_kube::Connection::default()
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(["agent", "--manifests", "m"].iter().chain(args)).map(|c| c.args)
    }

    #[test]
    fn a_node_name_is_a_valid_one_and_a_labs_agent_enforces_every_pod() {
        let enforced = |args: &[&str]| enforcement(&parse(args).unwrap()).unwrap().node;
        assert_eq!(enforced(&["--node-name", "n1"]).as_deref(), Some("n1"));
        // The lab names its node in records; its one node namespace holds every pod.
        assert_eq!(
            enforced(&["--lab", "demo", "--node-name", "pal-demo-node"]),
            None
        );
        for bad in ["", "Node_1", "n..1"] {
            let err = parse(&["--node-name", bad]).map(|_| ()).unwrap_err();
            assert!(
                err.to_string().contains("is not a node name"),
                "{bad:?}: {err}"
            );
        }
    }

    /// `--strict` reaches the agent's configuration and, through `lab up`, each lab agent's
    /// command line; off by default.
    #[test]
    fn strict_mode_is_off_unless_asked_and_passed_on() {
        let strict = |args: &[&str]| {
            let args = parse(args).unwrap();
            config(&args, Enforcement::default()).unwrap().strict
        };
        assert!(!strict(&[]));
        assert!(strict(&["--strict"]));
        let passed = parse(&["--strict"]).unwrap().logging.to_args();
        assert!(passed.iter().any(|a| a == "--strict"), "{passed:?}");
        let default = parse(&[]).unwrap().logging.to_args();
        assert!(!default.iter().any(|a| a == "--strict"), "{default:?}");
    }

    /// The flow log is off unless asked; its options reach the configuration and, through `lab
    /// up`, each lab agent's command line; an interval outside 1s..1h is refused.
    #[test]
    fn the_flow_log_is_off_unless_asked_and_its_options_are_passed_on() {
        let logging = |args: &[&str]| {
            config(&parse(args).unwrap(), Enforcement::default())
                .unwrap()
                .logging
        };
        assert_eq!(logging(&[]).flow_log, None);
        let given = [
            "--flow-log",
            "/f.log",
            "--flow-log-interval",
            "2s",
            "--flow-log-rate",
            "10",
            "--flow-log-max-connections",
            "100",
        ];
        let on = logging(&given);
        assert_eq!(on.flow_log.as_deref(), Some(std::path::Path::new("/f.log")));
        assert_eq!(on.flow_limits.interval, Duration::from_secs(2));
        assert_eq!(on.flow_limits.records_per_second, 10);
        assert_eq!(on.flow_limits.max_connections, 100);
        let passed = parse(&given).unwrap().logging.to_args();
        let again = parse(&passed.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!(again.logging.config().flow_limits, on.flow_limits);
        assert_eq!(again.logging.flow_log, on.flow_log);
        for bad in ["500ms", "2h", "0"] {
            assert!(parse(&["--flow-log-interval", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn deny_events_are_for_an_agent_following_the_api_server() {
        let err = parse(&["--deny-events"]).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("cannot be used with"), "{err}");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("99999999999999999h").is_err());
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("1s"), Ok(Duration::from_secs(1)));
        assert!(parse_duration_or_zero("0bogus").is_err());
        assert!(parse_duration_or_zero("fast").is_err());
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("500k"), Ok(500 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("10TB").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn source_defaults_are_the_agents() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            source: SourceArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(["agent"]).unwrap();
        assert_eq!(cli.source.options(), SourceOptions::default());
    }

    #[test]
    fn the_group_is_passed_on_as_a_gid() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            logging: LogArgs,
        }
        let parse = |args: &[String]| {
            <Cli as clap::Parser>::try_parse_from(
                std::iter::once("agent".into()).chain(args.iter().cloned()),
            )
            .map(|c| c.logging)
        };
        let given = parse(&["--group".into(), "root".into()]).unwrap();
        assert_eq!(given.group, Some(0));
        let passed = given.to_args();
        assert!(
            passed.windows(2).any(|w| w == ["--group", "0"]),
            "{passed:?}"
        );
        assert_eq!(parse(&passed).unwrap().group, Some(0));
        assert_eq!(
            parse(&[])
                .unwrap()
                .to_args()
                .iter()
                .filter(|a| *a == "--group")
                .count(),
            0
        );
    }
}
