//! Scratch network namespaces for the kernel tests, which need only somewhere to put a table (the
//! lab, with pods and probes, is `palisade-lab`'s).

use std::process::Command;

/// An empty network namespace, removed when dropped: also when the test fails.
pub struct Netns {
    /// Its name (`ip netns` names it so; [`palisade_dataplane::netns`] takes it).
    pub name: String,
}

impl Netns {
    /// Creates `pal-test-<tag>-<pid>` (one left by an earlier run of this PID is replaced). Panics
    /// unless it can: the kernel tests run as root, with `ip`.
    pub fn new(tag: &str) -> Netns {
        let name = format!("pal-test-{tag}-{}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        if let Err(e) = ip(&["netns", "add", &name]) {
            panic!("the kernel tests run as root, with `ip`: {e}");
        }
        Netns { name }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("scratch namespace {}: {e}", self.name);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!("`ip {}` failed: {}", args.join(" "), stderr.trim()))
    }
}
