//! `palisade agent`.

use crate::exit;
use palisade_agent::{Outcome, Reconciler};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// Arguments of `palisade agent`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Manifests folder to enforce; watched, and re-applied on every change.
    #[arg(long, value_name = "DIR")]
    manifests: PathBuf,
    /// Network namespace to enforce in (default: the agent's own).
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// Apply once and exit (no watching).
    #[arg(long)]
    once: bool,
    /// Print the nftables ruleset instead of applying it.
    #[arg(long)]
    dry_run: bool,
}

/// Runs the agent. Exit 2 if the first ruleset cannot be applied with `--once`.
pub fn run(args: Args) -> u8 {
    if args.dry_run {
        let loaded = crate::input::load_paths(std::slice::from_ref(&args.manifests), 0);
        let engine = palisade_policy::Engine::new(std::sync::Arc::new(loaded.state));
        print!("{}", palisade_dataplane::render(&engine));
        return exit::OK;
    }
    let mut reconciler = Reconciler::new(args.manifests.clone(), args.netns);
    if args.once {
        return match reconciler.reconcile() {
            Outcome::Failed(_) => exit::INVALID,
            _ => exit::OK,
        };
    }
    let stop = AtomicBool::new(false);
    match palisade_agent::run(&mut reconciler, &args.manifests, &stop) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: watching {}: {e}", args.manifests.display());
            exit::INVALID
        }
    }
}
