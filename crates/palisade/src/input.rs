//! Loading `-f` inputs and reporting diagnostics on stderr.

use palisade_model::{ClusterState, Loader, Severity};
use std::path::PathBuf;
use std::time::Instant;

/// Manifest inputs shared by the analysis commands.
#[derive(clap::Args, Debug)]
pub struct Inputs {
    /// Manifest file or folder (recursive; *.yaml, *.yml, *.json), or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
}

/// A loaded cluster and whether any input was rejected.
pub struct Loaded {
    /// The snapshot.
    pub state: ClusterState,
    /// True if at least one object or document was rejected.
    pub rejected: bool,
}

/// Loads every input; prints errors and warnings (and skipped kinds with `-v`) to stderr.
pub fn load(inputs: &Inputs, verbose: u8) -> Loaded {
    load_paths(&inputs.files, verbose)
}

/// Loads `paths` (files, folders or `-`), reporting like [`load`].
pub fn load_paths(paths: &[PathBuf], verbose: u8) -> Loaded {
    load_with(Loader::new(), paths, verbose)
}

/// [`load_paths`] with a configured `loader`.
pub fn load_with(mut loader: Loader, paths: &[PathBuf], verbose: u8) -> Loaded {
    let started = Instant::now();
    for path in paths {
        loader.load_path(path);
    }
    let (state, diagnostics) = loader.finish();
    let mut rejected = false;
    for d in &diagnostics {
        rejected |= d.is_error();
        if d.severity > Severity::Info || verbose > 0 {
            eprintln!("{d}");
        }
    }
    tracing::info!(
        namespaces = state.namespaces.len(),
        pods = state.pods.len(),
        policies = state.policies.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "manifests loaded"
    );
    Loaded { state, rejected }
}
