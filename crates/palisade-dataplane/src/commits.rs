//! This process's own nf_tables commits. The batch registers each one (its namespace, its socket's
//! port, the generation it made) and the drift monitor recognises their notifications by them —
//! so that neither knows the other.

use crate::netlink::{attribute, be32, printable, NFGEN_HDRLEN};
use std::io;

/// `NFT_MSG_NEWGEN`: the notification (and the reply to a commit) naming a generation.
pub(crate) const NFT_MSG_NEWGEN: u16 = 15;
const NFTA_GEN_ID: u16 = 1;
const NFTA_GEN_PROC_PID: u16 = 2;
const NFTA_GEN_PROC_NAME: u16 = 3;
/// Lost generations checked one by one against ours; a wider gap is reported as it is.
const MAX_LOST_SPAN: u32 = 4096;

/// A `NEWGEN` message: the generation a transaction made, and who committed it.
pub(crate) struct Generation {
    pub id: u32,
    pub pid: Option<u32>,
    pub name: Option<String>,
}

impl Generation {
    /// Reads `NFTA_GEN_*` from a `NEWGEN` payload (after the netlink header).
    pub fn parse(payload: &[u8]) -> Option<Generation> {
        let attrs = payload.get(NFGEN_HDRLEN..)?;
        Some(Generation {
            id: attribute(attrs, NFTA_GEN_ID).and_then(be32)?,
            pid: attribute(attrs, NFTA_GEN_PROC_PID).and_then(be32),
            name: attribute(attrs, NFTA_GEN_PROC_NAME).map(printable),
        })
    }
}

/// A network namespace, as the device and inode of its `/proc` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NetnsId {
    dev: u64,
    ino: u64,
}

impl NetnsId {
    /// The calling thread's network namespace.
    pub fn current() -> io::Result<NetnsId> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata("/proc/thread-self/ns/net")?;
        Ok(NetnsId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// How lost generations compare with this process's commits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cover {
    /// Every one is ours.
    Ours,
    /// Not all are known to be ours, but commits of ours are still running.
    Running,
    /// At least one is not ours.
    NotOurs,
}

/// A commit of this process, registered while it runs and kept after ([`own`]).
pub(crate) struct OwnCommit {
    id: u64,
    done: bool,
}

impl OwnCommit {
    /// Registers a commit about to be sent through the socket bound to `port`, in the calling
    /// thread's network namespace.
    pub fn begin(port: u32) -> io::Result<OwnCommit> {
        let id = own::register(NetnsId::current()?, port);
        Ok(OwnCommit { id, done: false })
    }

    /// The commit succeeded and made `generation` (when the kernel said which).
    pub fn committed(mut self, generation: Option<u32>) {
        own::finish(self.id, generation);
        self.done = true;
    }
}

/// A commit that did not succeed made no generation: forgotten.
impl Drop for OwnCommit {
    fn drop(&mut self) {
        if !self.done {
            own::forget(self.id);
        }
    }
}

/// This process's latest commits (256), newest last: enough to recognise their notifications
/// when they are read, even late.
pub(crate) mod own {
    use super::{Cover, NetnsId, MAX_LOST_SPAN};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    const KEPT: usize = 256;

    struct Entry {
        id: u64,
        netns: NetnsId,
        port: u32,
        /// `None` while the commit runs; then the generation it made, if the kernel said.
        made: Option<Option<u32>>,
    }

    static COMMITS: Mutex<VecDeque<Entry>> = Mutex::new(VecDeque::new());
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);

    fn commits() -> std::sync::MutexGuard<'static, VecDeque<Entry>> {
        // The list is valid whatever a panicking holder was doing: entries are written whole.
        COMMITS.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn register(netns: NetnsId, port: u32) -> u64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut commits = commits();
        if commits.len() >= KEPT {
            commits.pop_front();
        }
        commits.push_back(Entry {
            id,
            netns,
            port,
            made: None,
        });
        id
    }

    pub(super) fn finish(id: u64, generation: Option<u32>) {
        if let Some(e) = commits().iter_mut().find(|e| e.id == id) {
            e.made = Some(generation);
        }
    }

    pub(super) fn forget(id: u64) {
        commits().retain(|e| e.id != id);
    }

    /// True when the transaction that made `generation`, committed through `port`, is ours.
    pub(crate) fn is_own(netns: NetnsId, port: u32, generation: u32) -> bool {
        commits().iter().any(|e| {
            e.netns == netns
                && e.port == port
                // Without the echo, the port alone (unique while the socket lived).
                && e.made.is_none_or(|made| made.is_none_or(|g| g == generation))
        })
    }

    /// Whether the generations `after + 1 ..= upto` of `netns` are all ours.
    pub(crate) fn cover(netns: NetnsId, after: u32, upto: u32) -> Cover {
        let span = upto.wrapping_sub(after);
        let commits = commits();
        let running = commits.iter().any(|e| e.netns == netns && e.made.is_none());
        let ours = |g: u32| {
            // Generation 0 is skipped by the kernel when the counter wraps.
            g == 0 || (commits.iter()).any(|e| e.netns == netns && e.made == Some(Some(g)))
        };
        if span <= MAX_LOST_SPAN && (1..=span).all(|i| ours(after.wrapping_add(i))) {
            Cover::Ours
        } else if running {
            Cover::Running
        } else {
            Cover::NotOurs
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_commits_are_recognised_by_port_and_generation() {
        let ns = NetnsId { dev: 1, ino: 99 };
        let other_ns = NetnsId { dev: 1, ino: 98 };
        let id = own::register(ns, 4242);
        assert!(
            own::is_own(ns, 4242, 7),
            "while running, the port is enough"
        );
        assert!(!own::is_own(other_ns, 4242, 7));
        assert!(!own::is_own(ns, 4243, 7));
        assert_eq!(own::cover(ns, 6, 7), Cover::Running);
        own::finish(id, Some(7));
        assert!(own::is_own(ns, 4242, 7));
        assert!(
            !own::is_own(ns, 4242, 8),
            "the port reused after our socket closed"
        );
        assert_eq!(own::cover(ns, 6, 7), Cover::Ours);
        assert_eq!(
            own::cover(ns, 5, 7),
            Cover::NotOurs,
            "generation 6 is not ours"
        );
        assert_eq!(own::cover(ns, 7, 7), Cover::Ours, "nothing lost");
        let failed = own::register(ns, 4244);
        own::forget(failed);
        assert!(!own::is_own(ns, 4244, 8), "a failed commit made nothing");
        // The wrap skips generation 0.
        let wrapped = own::register(ns, 4245);
        own::finish(wrapped, Some(1));
        let last = own::register(ns, 4246);
        own::finish(last, Some(u32::MAX));
        assert_eq!(own::cover(ns, u32::MAX - 1, 1), Cover::Ours);
    }
}
