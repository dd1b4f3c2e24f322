//! `palisade report`.

use crate::exit;
use crate::input::{self, Inputs, Namespaces};
use palisade_analyze::lint::lint;
use palisade_analyze::report::{build, to_html, Limits};
use palisade_analyze::{default_probes, Matrix, Probe};
use palisade_policy::Engines;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `palisade report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,
    /// Port and protocol the cells are decided on (repeatable). Default: every distinct container
    /// port of the selected pods.
    #[arg(long = "probe", value_name = "PORT/PROTO")]
    probes: Vec<Probe>,
    #[command(flatten)]
    scope: Namespaces,
    /// Lint rules left out of the findings (as `palisade lint --disable`).
    #[command(flatten)]
    disable: crate::lint::Disabled,
    /// The HTML file to write (replaced whole; a symbolic link or anything but a regular file there
    /// is refused).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
}

/// Runs the command: 0 when written, 2 on unusable input or an unwritable output.
pub fn run(args: Args, verbose: u8) -> u8 {
    if let Err(e) = writable(&args.output) {
        eprintln!("error: {}: {e}", args.output.display());
        return exit::INVALID;
    }
    let (loaded, scope) = match input::load_scoped(&args.inputs, &args.scope, verbose) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let started = Instant::now();
    // Lint sees staged policies; the cells are what is enforced, as `matrix` says (staged
    // policies are logged, not enforced).
    let engines = Engines::new(Arc::new(loaded.state));
    let findings = lint(
        &engines,
        &loaded.diagnostics,
        &args.disable.rules,
        args.inputs.lint_input(),
    );
    let engine = &*engines.enforced;
    let pods = Matrix::pods_in(engine, &scope);
    let probes = if args.probes.is_empty() {
        default_probes(engine.state(), &pods)
    } else {
        args.probes.clone()
    };
    let matrix = Matrix::compute(engine, pods, &probes);
    tracing::info!(
        probes = probes.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "linted, reachability computed"
    );
    let mut page = build(&matrix, &findings, Limits::default());
    page.source = source(&args);
    let html = to_html(&page);
    tracing::info!(
        groups = page.groups.len(),
        bytes = html.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "report built"
    );
    let written = palisade_agent::safe_fs::replace(&args.output, |out: &mut dyn std::io::Write| {
        out.write_all(html.as_bytes())
    });
    if let Err(e) = written {
        eprintln!("error: writing the report: {e}");
        return exit::INVALID;
    }
    if loaded.rejected {
        exit::INVALID
    } else {
        exit::OK
    }
}

/// Refuses an output path that is a symbolic link or exists as anything but a regular file.
fn writable(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err("is a symbolic link; give the file itself (the report follows no link)".into())
        }
        Ok(meta) if !meta.is_file() => Err("exists and is not a regular file".into()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The arguments that read the cluster again, for the `palisade explain` command the page shows.
fn source(args: &Args) -> String {
    let mut words: Vec<String> = Vec::new();
    for f in &args.inputs.files {
        words.push(format!("-f {}", shell_word(&f.to_string_lossy())));
    }
    if let Some(k) = &args.inputs.kubeconfig {
        words.push(format!("--kubeconfig {}", shell_word(&k.to_string_lossy())));
    }
    if let Some(c) = &args.inputs.context {
        words.push(format!("--context {}", shell_word(c)));
    }
    words.join(" ")
}

/// `word` as one shell word: as it is when plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._/:=@%+-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
