//! Applying an nft script with `nft -f -`, optionally inside a named network namespace (the lab's
//! Service NAT table; tests that compare with nft's own reading of a ruleset), and the error of any
//! apply. A script is one transaction: the kernel holds either the old rules or the new.

use std::io::Write;
use std::process::{Command, Stdio};

/// Why a ruleset (or script) could not be applied. The previous kernel state is untouched.
#[derive(Debug)]
pub enum ApplyError {
    /// `nft` (or `ip`) could not be run.
    Spawn(std::io::Error),
    /// `nft` rejected the script.
    Rejected(String),
    /// The kernel refused the transaction (or could not be reached in the namespace).
    Kernel(std::io::Error),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Spawn(e) => write!(f, "cannot run nft: {e} (install the nftables package)"),
            ApplyError::Rejected(msg) => write!(f, "nft rejected the ruleset: {msg}"),
            ApplyError::Kernel(e) => write!(f, "the kernel refused the ruleset: {e}"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// Feeds `script` to `nft -f -`, in network namespace `netns` when given (`ip netns exec`).
pub fn apply(script: &str, netns: Option<&str>) -> Result<(), ApplyError> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft", "-f", "-"]);
            c
        }
        None => {
            let mut c = Command::new("nft");
            c.args(["-f", "-"]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ApplyError::Spawn)?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes())
        .map_err(ApplyError::Spawn)?;
    let out = child.wait_with_output().map_err(ApplyError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ApplyError::Rejected(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}
