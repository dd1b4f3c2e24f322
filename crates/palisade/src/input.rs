//! Loading the analysis commands' input — `-f` manifests, or a live cluster's API server — and
//! reporting diagnostics on stderr.

use crate::exit;
use palisade_analyze::Scope;
use palisade_model::{
    decode_utf8, is_blank, read_bounded, summarize, ClusterState, Diagnostic, Loader, Origin,
    Severity,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Diagnostics of one shape printed before the rest are only counted.
const SHOWN_PER_KIND: usize = 10;

/// The input shared by the analysis commands: manifests, or else a cluster.
#[derive(clap::Args, Debug)]
pub struct Inputs {
    /// Manifest file or folder (recursive; *.yaml, *.yml, *.json), or - for stdin. Repeatable.
    /// Without it, the cluster is read from its API server (lists only) as kubectl would find it:
    /// --kubeconfig, KUBECONFIG, ~/.kube/config, or the pod's service account.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// The kubeconfig of the cluster to read (instead of -f).
    #[arg(long, value_name = "PATH", conflicts_with = "files")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (instead of -f).
    #[arg(long, value_name = "NAME", conflicts_with = "files")]
    pub context: Option<String>,
    /// How long one request to the API server may take (e.g. 30s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::agent::parse_duration)]
    pub request_timeout: std::time::Duration,
}

/// Which pods a command covers: `-n NS` (repeatable), or `-A`, all (the default).
#[derive(clap::Args, Debug)]
pub struct Namespaces {
    /// Only pods of this namespace (repeatable).
    #[arg(short = 'n', long = "namespace", conflicts_with = "all_namespaces")]
    namespaces: Vec<String>,
    /// Pods of all namespaces (the default).
    #[arg(short = 'A', long = "all-namespaces")]
    all_namespaces: bool,
}

impl Namespaces {
    /// The scope, once every namespace named is in `state`; otherwise the error is said and the
    /// exit code returned.
    fn scope(&self, state: &ClusterState) -> Result<Scope, u8> {
        if let Some(ns) = (self.namespaces.iter()).find(|ns| state.namespace(ns).is_none()) {
            eprintln!("error: namespace {ns:?} not found in the input");
            return Err(exit::INVALID);
        }
        Ok(match self.namespaces.is_empty() {
            true => Scope::All,
            false => Scope::Namespaces(self.namespaces.clone()),
        })
    }
}

/// [`load`], and the scope `namespaces` gives in what was loaded.
pub fn load_scoped(
    inputs: &Inputs,
    namespaces: &Namespaces,
    verbose: u8,
) -> Result<(Loaded, Scope), u8> {
    let loaded = load(inputs, verbose)?;
    let scope = namespaces.scope(&loaded.state)?;
    Ok((loaded, scope))
}

impl Inputs {
    /// What lint is told of the input: without -f it is a live cluster, all of it (every
    /// namespace is there); manifests may be part of one.
    pub fn lint_input(&self) -> palisade_analyze::lint::Input {
        if self.files.is_empty() {
            palisade_analyze::lint::Input::Cluster
        } else {
            palisade_analyze::lint::Input::Manifests
        }
    }
}

/// A loaded cluster and whether any input was rejected.
pub struct Loaded {
    /// The snapshot.
    pub state: ClusterState,
    /// True if at least one object or document was rejected.
    pub rejected: bool,
    /// What the loader reported (already printed), for commands that look further into it.
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads every input — the manifests, or without them the cluster's API server; prints errors and
/// warnings (and skipped kinds with `-v`) to stderr, repeats summarised. A cluster that cannot be
/// read is an error (printed) and the exit code to end with.
pub fn load(inputs: &Inputs, verbose: u8) -> Result<Loaded, u8> {
    if !inputs.files.is_empty() {
        return Ok(load_paths(&inputs.files, verbose));
    }
    let connection = palisade_kube::Connection {
        kubeconfig: inputs.kubeconfig.clone(),
        context: inputs.context.clone(),
        request_timeout: inputs.request_timeout,
        ..palisade_kube::Connection::default()
    };
    // A real cluster's pod without an address has none yet.
    let (started, mut loader) = (Instant::now(), Loader::new().allocate_addresses(false));
    match palisade_kube::list_into(&connection, &mut loader) {
        Ok(listed) => {
            // Said every time: without -f, which cluster is read depends on the environment.
            eprintln!("read the cluster at {}", listed.server);
            tracing::info!(counts = ?listed.counts, skipped = ?listed.skipped, "cluster listed");
            for why in &listed.refused {
                eprintln!("warning: {why}");
            }
            Ok(report(loader, Vec::new(), verbose, started))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(exit::INVALID)
        }
    }
}

/// Loads `paths` (files, folders or `-`), reporting like [`load`].
pub fn load_paths(paths: &[PathBuf], verbose: u8) -> Loaded {
    load_with(Loader::new(), paths, verbose)
}

/// [`load_paths`] with a configured `loader`.
pub fn load_with(mut loader: Loader, paths: &[PathBuf], verbose: u8) -> Loaded {
    let started = Instant::now();
    let mut unread = Vec::new();
    for path in paths {
        if path == Path::new("-") {
            match read_stdin() {
                Ok(text) => loader.load_str("-", &text),
                Err(d) => unread.push(d),
            }
        } else {
            loader.load_path(path);
        }
    }
    report(loader, unread, verbose, started)
}

/// Finishes `loader` and reports its diagnostics after `unread` (inputs that could not be read).
fn report(loader: Loader, mut unread: Vec<Diagnostic>, verbose: u8, started: Instant) -> Loaded {
    let (state, diagnostics) = loader.finish();
    unread.extend(diagnostics);
    let rejected = unread.iter().any(Diagnostic::is_error);
    let shown = unread
        .iter()
        .filter(|d| d.severity > Severity::Info || verbose > 0);
    for line in summarize(shown, SHOWN_PER_KIND) {
        eprintln!("{line}");
    }
    tracing::info!(
        namespaces = state.namespaces.len(),
        pods = state.pods.len(),
        policies = state.policies.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "input loaded"
    );
    Loaded {
        state,
        rejected,
        diagnostics: unread,
    }
}

/// Standard input as manifest text: UTF-8, at most as large as a file may be, and not empty (a closed
/// or empty stdin is a mistake in a pipeline, never an empty cluster).
fn read_stdin() -> Result<String, Diagnostic> {
    let error = |message: String| {
        let origin = Origin {
            file: "-".into(),
            line: None,
        };
        Diagnostic::new(Severity::Error, origin, message)
    };
    // Standard input has no size to check beforehand, and may never end: read as much as a file.
    let limit = palisade_model::Limits::default().max_file_bytes;
    let bytes = read_bounded(std::io::stdin().lock(), limit).map_err(|e| {
        error(match e.kind() {
            std::io::ErrorKind::FileTooLarge => format!(
                "more than {} MiB on standard input; give large inputs as files or folders",
                limit >> 20
            ),
            _ => format!("cannot read standard input: {e}"),
        })
    })?;
    let text = decode_utf8("-", &bytes)?;
    if is_blank(text) {
        return Err(error(
            "no objects read from standard input: it was empty or closed (pipe manifests into -f -)"
                .into(),
        ));
    }
    Ok(text.to_owned())
}
