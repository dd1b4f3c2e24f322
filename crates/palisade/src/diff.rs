//! `palisade diff`.

use crate::exit;
use crate::input::{self, Inputs, Loaded};
use palisade_analyze::diff::{diff, to_json, to_markdown, to_text, unlisted, DiffError};
use palisade_analyze::Scope;
use palisade_policy::{enforced_engine, Engine};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `palisade diff`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 when connectivity between the pods of both sides is \
    unchanged (pods only added or removed included), 1 when it changed (also when too widely to \
    list), 2 on unusable input (an object rejected on either side, a cluster that cannot be \
    read) — like diff(1); 3 when the comparison would exceed its work bound (no answer; the \
    error says what would have taken the work)."
)]
pub struct Args {
    /// The cluster before the change: a manifest file or folder, or - (repeatable).
    #[arg(long = "before", value_name = "PATH", required_unless_present_any = ["before_kubeconfig", "before_context"])]
    before: Vec<PathBuf>,
    /// The cluster before the change, read from its API server with this kubeconfig.
    #[arg(long, value_name = "PATH", conflicts_with = "before")]
    before_kubeconfig: Option<PathBuf>,
    /// The kubeconfig context of the cluster before the change.
    #[arg(long, value_name = "NAME", conflicts_with = "before")]
    before_context: Option<String>,
    /// The cluster after the change: a manifest file or folder, or - (repeatable).
    #[arg(long = "after", value_name = "PATH", required_unless_present_any = ["after_kubeconfig", "after_context"])]
    after: Vec<PathBuf>,
    /// The cluster after the change, read from its API server with this kubeconfig.
    #[arg(long, value_name = "PATH", conflicts_with = "after")]
    after_kubeconfig: Option<PathBuf>,
    /// The kubeconfig context of the cluster after the change.
    #[arg(long, value_name = "NAME", conflicts_with = "after")]
    after_context: Option<String>,
    /// How long one request to an API server may take (e.g. 30s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::agent::parse_duration)]
    request_timeout: std::time::Duration,
    /// Only connections from or to pods of this namespace (repeatable).
    #[arg(short = 'n', long = "namespace", conflicts_with = "all_namespaces")]
    namespaces: Vec<String>,
    /// Pods of all namespaces (the default).
    #[arg(short = 'A', long = "all-namespaces")]
    all_namespaces: bool,
    /// Output format: txt, json, or md (a summary for a pull-request comment).
    #[arg(short = 'o', long = "output", default_value = "txt", value_parser = ["txt", "text", "json", "md"])]
    output: String,
}

/// Runs the command: exit 1 if connectivity changed, 2 on unusable input, 3 over the work bound,
/// else 0.
pub fn run(args: Args, verbose: u8) -> u8 {
    let side = |files: &[PathBuf], kubeconfig: &Option<PathBuf>, context: &Option<String>| {
        let inputs = Inputs {
            files: files.to_vec(),
            kubeconfig: kubeconfig.clone(),
            context: context.clone(),
            request_timeout: args.request_timeout,
        };
        input::load(&inputs, verbose)
    };
    if args
        .before
        .iter()
        .chain(&args.after)
        .filter(|p| p.as_os_str() == "-")
        .count()
        > 1
    {
        eprintln!("error: only one side can be read from standard input (-)");
        return exit::INVALID;
    }
    let before = match side(&args.before, &args.before_kubeconfig, &args.before_context) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let after = match side(&args.after, &args.after_kubeconfig, &args.after_context) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let known = |ns: &String| {
        [&before, &after]
            .iter()
            .any(|l| l.state.namespace(ns).is_some())
    };
    if let Some(ns) = args.namespaces.iter().find(|ns| !known(ns)) {
        eprintln!("error: namespace {ns:?} not found before or after the change");
        return exit::INVALID;
    }
    let rejected = before.rejected || after.rejected;
    let started = Instant::now();
    // Connectivity as enforced: staging a policy changes none (it is logged, not enforced).
    let [before, after] = [before, after].map(|l: Loaded| enforced_engine(l.state));
    let scope = if args.namespaces.is_empty() {
        Scope::All
    } else {
        Scope::Namespaces(args.namespaces)
    };
    let report = match diff(&before, &after, &scope) {
        Ok(report) => report,
        Err(e) => return refused(&e, &args.output, rejected),
    };
    tracing::info!(
        groups = report.groups.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "compared"
    );
    let text = match args.output.as_str() {
        "json" => to_json(&report).to_string(),
        "md" => to_markdown(&report),
        _ => to_text(&report),
    };
    if !crate::print_text(&text) {
        return exit::INVALID;
    }
    let unmatched = unmatched_namespaces(&before, &after, &scope);
    for (ns, before, after) in &unmatched {
        eprintln!(
            "error: namespace {ns}: none of its {before} pods before has the name of one of its {after} pods after, so their connectivity was not compared (pods are matched by namespace and name: a live cluster's pod names never equal those a folder's workloads make; compare a folder with a folder, or a cluster with a cluster)"
        );
    }
    if rejected || !unmatched.is_empty() {
        exit::INVALID
    } else if report.connectivity_changed() {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

/// The exit code, and what is said, when `diff` gave no report: connectivity changed too widely to
/// list is still an answer (1: it changed; printed in the output format), a comparison over the
/// work bound is none (3). Unusable input (`rejected`) is said first, as always (2).
fn refused(error: &DiffError, format: &str, rejected: bool) -> u8 {
    let code = match error {
        DiffError::TooManyChanges => {
            if !crate::print_text(&unlisted(error, format)) {
                return exit::INVALID;
            }
            exit::FINDINGS
        }
        DiffError::TooMuchWork(_) => {
            eprintln!("error: {error}");
            exit::TOO_LARGE
        }
    };
    if rejected {
        exit::INVALID
    } else {
        code
    }
}

/// The namespaces in `scope` that hold pods on both sides but none of the same name (their pods
/// before and after): nothing of them was compared.
fn unmatched_namespaces(
    before: &Engine,
    after: &Engine,
    scope: &Scope,
) -> Vec<(String, usize, usize)> {
    use std::collections::BTreeMap;
    let mut counts: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for pod in before.state().pods.iter() {
        let entry = counts.entry(&pod.namespace).or_default();
        entry.0 += 1;
        if after.state().pod_id(&pod.namespace, &pod.name).is_some() {
            entry.2 += 1;
        }
    }
    for pod in after.state().pods.iter() {
        counts.entry(&pod.namespace).or_default().1 += 1;
    }
    let in_scope = |ns: &str| match scope {
        Scope::All => true,
        Scope::Namespaces(names) => names.iter().any(|n| n == ns),
    };
    (counts.into_iter())
        .filter(|&(ns, (b, a, same))| b > 0 && a > 0 && same == 0 && in_scope(ns))
        .map(|(ns, (b, a, _))| (ns.to_string(), b, a))
        .collect()
}
