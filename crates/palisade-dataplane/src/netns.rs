//! Working in another network namespace from this process: the agent enforces in, reads verdict
//! events from and watches the table of a namespace it does not live in (a lab's node, a test's
//! scratch namespace). `setns` changes the namespace of one thread only, so the work runs on a
//! thread that enters the namespace and ends with it; no other thread of the process moves.

use std::fs::File;
use std::io;
use std::thread::JoinHandle;

/// Runs `f` on a new thread inside network namespace `netns` (named as `ip netns` names it, a file
/// under `/var/run/netns`).
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<io::Result<T>> {
    let path = format!("/var/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = File::open(&path)?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        Ok(f())
    })
}

/// Runs `f` inside network namespace `netns` (on a thread that enters it), or right here when
/// `None`, and returns its result.
pub fn within_netns<T: Send + 'static>(
    netns: Option<&str>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match netns {
        Some(ns) => in_netns(ns, f)
            .join()
            .map_err(|_| io::Error::other(format!("thread in network namespace {ns} panicked")))?
            .and_then(|r| r),
        None => f(),
    }
}
