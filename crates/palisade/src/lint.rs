//! `palisade lint`.

use crate::exit;
use crate::input::{self, Inputs, Namespaces};
use palisade_analyze::lint::{lint_in, to_json, to_sarif, to_text, Rule};
use palisade_policy::Engines;
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `palisade lint`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "With -n, only findings on objects of those namespaces (and on the Namespaces \
    themselves, and on cluster-scoped objects) are shown; the whole cluster is still read and \
    analysed. Exit status: 0 when no error-severity finding is shown, 1 when one is, 2 on \
    unusable input."
)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,
    /// Which namespaces' findings are shown (see below).
    #[command(flatten)]
    scope: Namespaces,
    /// Output format: txt, json or sarif (SARIF 2.1.0).
    #[arg(short = 'o', long = "output", default_value = "txt", value_parser = ["txt", "text", "json", "sarif"])]
    output: String,
    #[command(flatten)]
    disable: Disabled,
}

/// `--disable RULE`: lint's and report's, one parser of rule ids (an unknown one lists the valid).
#[derive(clap::Args, Debug)]
pub struct Disabled {
    /// Do not run this lint rule (repeatable), e.g. --disable redundant-rule.
    #[arg(long = "disable", value_name = "RULE", value_parser = Rule::parse)]
    pub rules: Vec<Rule>,
}

/// Runs the command: exit 1 if an error-severity finding exists, 2 on unusable input, else 0.
pub fn run(args: Args, verbose: u8) -> u8 {
    let (loaded, scope) = match input::load_scoped(&args.inputs, &args.scope, verbose) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let started = Instant::now();
    let engines = Engines::new(Arc::new(loaded.state));
    let report = lint_in(
        &engines,
        &loaded.diagnostics,
        &args.disable.rules,
        args.inputs.lint_input(),
        &scope,
    );
    tracing::info!(
        findings = report.findings.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "linted"
    );
    let text = match args.output.as_str() {
        "json" => to_json(&report).to_string(),
        "sarif" => to_sarif(&report).to_string(),
        _ => to_text(&report),
    };
    if !crate::print_text(&text) {
        return exit::INVALID;
    }
    if loaded.rejected {
        exit::INVALID
    } else if report.has_errors() {
        exit::FINDINGS
    } else {
        exit::OK
    }
}
