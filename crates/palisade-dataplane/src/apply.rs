//! Applying an nft script with `nft -f -`, optionally inside a named network namespace (the lab's
//! Service NAT table; tests that compare with nft's own reading of a ruleset), and the error of any
//! apply. A script is one transaction: the kernel holds either the old rules or the new.

use std::io::{self, Write};
use std::process::{Command, Stdio};

/// Why a ruleset (or script) could not be applied. The previous kernel state is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// `program` (`nft`, or `ip` to enter the namespace) could not be run or fed the script.
    #[error(
        "cannot run {program}: {source} (nft comes with the nftables package, ip with iproute2)"
    )]
    Spawn {
        program: &'static str,
        #[source]
        source: io::Error,
    },
    /// `nft` rejected the script, in `netns` if given; `stderr` is what it said.
    #[error("nft rejected the ruleset: {stderr}")]
    Rejected {
        netns: Option<String>,
        stderr: String,
    },
    /// The kernel refused the transaction (or could not be reached in the namespace).
    #[error("the kernel refused the ruleset: {0}")]
    Kernel(#[source] io::Error),
}

/// Feeds `script` to `nft -f -`, in network namespace `netns` when given (`ip netns exec`).
pub fn apply(script: &str, netns: Option<&str>) -> Result<(), ApplyError> {
    let (program, mut cmd) = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft", "-f", "-"]);
            ("ip", c)
        }
        None => {
            let mut c = Command::new("nft");
            c.args(["-f", "-"]);
            ("nft", c)
        }
    };
    let spawn = |source| ApplyError::Spawn { program, source };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    // The tool may exit before it reads the script (`ip` with no such namespace): its status and
    // what it said tell why, below; it is waited for whatever happened.
    let written = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(script.as_bytes()),
        None => Err(io::ErrorKind::BrokenPipe.into()),
    };
    let out = child.wait_with_output().map_err(spawn)?;
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(spawn(e)),
        // Success without the whole script read is no success.
        Err(e) if out.status.success() => return Err(spawn(e)),
        _ => {}
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(ApplyError::Rejected {
            netns: netns.map(str::to_string),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No namespace of that name: `ip` fails before `nft` runs, so nothing reaches any kernel.
    #[test]
    fn a_failed_apply_carries_what_the_tool_said_and_the_namespace() {
        let netns = "pal-no-such-netns-apply";
        match apply("table inet palisade_test { bogus }\n", Some(netns)) {
            Err(ApplyError::Rejected {
                netns: Some(ns),
                stderr,
            }) => {
                assert_eq!(ns, netns);
                assert!(stderr.contains(netns), "{stderr}");
            }
            other => panic!("{other:?}"),
        }
        let rejected = ApplyError::Rejected {
            netns: None,
            stderr: "syntax error".into(),
        };
        assert_eq!(
            rejected.to_string(),
            "nft rejected the ruleset: syntax error"
        );
    }
}
