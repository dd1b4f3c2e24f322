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
    /// Print every verdict event (first packet of each new connection at an isolated pod, allowed or
    /// dropped) to stdout as a JSON line.
    #[arg(long)]
    events: bool,
}

/// Runs the agent. Exit 2 if the first ruleset cannot be applied with `--once`.
pub fn run(args: Args) -> u8 {
    if args.dry_run {
        let loaded = crate::input::load_paths(std::slice::from_ref(&args.manifests), 0);
        let engine = palisade_policy::Engine::new(std::sync::Arc::new(loaded.state));
        print!("{}", palisade_dataplane::render(&engine));
        return exit::OK;
    }
    let mut reconciler = Reconciler::new(args.manifests.clone(), args.netns.clone());
    if args.once {
        return match reconciler.reconcile() {
            Outcome::Failed(_) => exit::INVALID,
            _ => exit::OK,
        };
    }
    if args.events {
        if let Err(e) = print_events(args.netns.clone()) {
            eprintln!("error: reading verdict events: {e}");
            return exit::INVALID;
        }
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

/// Starts a thread that prints verdict events as JSON lines.
fn print_events(netns: Option<String>) -> std::io::Result<()> {
    use palisade_dataplane::events::EventReader;
    let mut reader = match &netns {
        Some(ns) => palisade_dataplane::lab::in_netns(ns, EventReader::open)
            .join()
            .map_err(|_| std::io::Error::other("event reader thread panicked"))???,
        None => EventReader::open()?,
    };
    std::thread::spawn(move || {
        while let Ok(e) = reader.next_event() {
            let time = e
                .time
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let line = serde_json::json!({
                "time_unix_ns": time.as_nanos() as u64,
                "direction": e.direction.as_str(),
                "disposition": if e.allowed { "allow" } else { "deny" },
                "protocol": e.protocol.as_str().to_ascii_lowercase(),
                "src_ip": e.src, "src_port": e.src_port,
                "dest_ip": e.dst, "dest_port": e.dst_port,
            });
            println!("{line}");
        }
    });
    Ok(())
}
