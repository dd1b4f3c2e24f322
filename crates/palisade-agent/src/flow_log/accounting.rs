//! What each connection carried in an interval, from the kernel's cumulative counters: a listing
//! at the end of every interval, compared with the one before, and the endings heard between two
//! listings (a connection that ends between them is in neither after; its last counters come
//! with its ending).
//!
//! Memory is what the last listing held (at most the listing's cap) plus the endings heard in one
//! interval (at most as many); nothing grows with the traffic beyond those bounds.

use palisade_dataplane::conntrack::{Counters, Entry, Listing, Tracked};
use std::collections::HashMap;

/// What one connection did in an interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    /// The connection.
    pub tracked: Tracked,
    /// Packets and bytes in the interval; `None` when the kernel does not count this connection's
    /// (accounting was off as it started).
    pub carried: Option<Counters>,
    /// It started in the interval.
    pub started: bool,
    /// It ended in the interval (closed, reset, or no longer tracked).
    pub ended: bool,
}

/// One interval's accounting, and what could not be accounted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Interval {
    /// The connections active in the interval.
    pub observed: Vec<Observed>,
    /// Connections gone without an ending heard (the kernel dropped endings): what they carried
    /// since the last listing is unknown.
    pub unseen_endings: usize,
    /// Endings not kept because more than the cap arrived in one interval.
    pub endings_dropped: usize,
}

/// A connection of the last listing.
struct Seen {
    counters: Option<Counters>,
    /// Its end was reported already (a closed TCP connection stays tracked for a while).
    ended: bool,
}

/// The accounting between listings.
pub(crate) struct Accounting {
    /// The last listing's connections; `None` before the first, which only sets the baseline.
    seen: Option<HashMap<Tracked, Seen>>,
    /// Connections no longer tracked since the last listing.
    endings: Vec<Entry>,
    endings_dropped: usize,
    max_endings: usize,
}

impl Accounting {
    /// Accounting that keeps at most `max_endings` endings per interval.
    pub(crate) fn new(max_endings: usize) -> Accounting {
        Accounting {
            seen: None,
            endings: Vec::new(),
            endings_dropped: 0,
            max_endings,
        }
    }

    /// How many connections the last listing held.
    pub(crate) fn tracked(&self) -> usize {
        self.seen.as_ref().map_or(0, HashMap::len)
    }

    /// A connection the kernel no longer tracks (before the first listing: ignored, its start is
    /// not known).
    pub(crate) fn ended(&mut self, entry: Entry) {
        if self.seen.is_none() {
            return;
        }
        if self.endings.len() < self.max_endings {
            self.endings.push(entry);
        } else {
            self.endings_dropped += 1;
        }
    }

    /// Closes the interval with `listing`, what the kernel tracks at its end: the first listing
    /// only sets the baseline (what connections carried before the agent looked is not told).
    pub(crate) fn close(&mut self, listing: Listing) -> Interval {
        let mut interval = Interval {
            endings_dropped: std::mem::take(&mut self.endings_dropped),
            ..Interval::default()
        };
        let mut seen = HashMap::with_capacity(listing.entries.len());
        let Some(mut before) = self.seen.take() else {
            for entry in listing.entries {
                let ended = entry.closed;
                seen.insert(entry.tracked, Seen::of(&entry, ended));
            }
            self.seen = Some(seen);
            return interval;
        };
        for entry in std::mem::take(&mut self.endings) {
            let old = before.remove(&entry.tracked);
            interval
                .observed
                .extend(observed(&entry, old.as_ref(), true));
        }
        for entry in listing.entries {
            let old = before.remove(&entry.tracked);
            interval
                .observed
                .extend(observed(&entry, old.as_ref(), entry.closed));
            let ended = entry.closed || old.is_some_and(|o| o.ended);
            seen.insert(entry.tracked, Seen::of(&entry, ended));
        }
        interval.unseen_endings = before.values().filter(|s| !s.ended).count();
        self.seen = Some(seen);
        interval
    }
}

impl Seen {
    fn of(entry: &Entry, ended: bool) -> Seen {
        Seen {
            counters: entry.counters,
            ended,
        }
    }
}

/// What `entry` did since `old` (its state at the last listing; `None`: it started since),
/// ending now when `ends`; `None` when it did nothing worth a record.
fn observed(entry: &Entry, old: Option<&Seen>, ends: bool) -> Option<Observed> {
    let carried = match old {
        Some(old) => entry
            .counters
            .map(|now| now.since(&old.counters.unwrap_or_default())),
        None => entry.counters,
    };
    let started = old.is_none();
    let ended = ends && !old.is_some_and(|o| o.ended);
    let active = started || ended || carried.is_some_and(|c| !c.is_zero());
    active.then_some(Observed {
        tracked: entry.tracked,
        carried,
        started,
        ended,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_dataplane::conntrack::Tuple;
    use palisade_model::Protocol;

    fn connection(port: u16) -> Tracked {
        let t = |src: &str, dst: &str, sport, dport| Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: sport,
            dst_port: dport,
        };
        Tracked {
            protocol: Protocol::Tcp,
            original: t("10.0.0.1", "10.0.0.2", port, 80),
            reply: t("10.0.0.2", "10.0.0.1", 80, port),
            zone: None,
            id: Some(u32::from(port)),
        }
    }

    fn entry(port: u16, bytes: u64, closed: bool) -> Entry {
        Entry {
            tracked: connection(port),
            counters: Some(Counters {
                packets_sent: bytes / 100,
                bytes_sent: bytes,
                packets_received: 1,
                bytes_received: 2 * bytes,
            }),
            closed,
        }
    }

    fn listing(entries: Vec<Entry>) -> Listing {
        Listing {
            entries,
            capped: false,
        }
    }

    /// (port, bytes sent, started, ended) of each observation, sorted.
    fn summary(interval: &Interval) -> Vec<(u16, Option<u64>, bool, bool)> {
        let mut out: Vec<_> = (interval.observed.iter())
            .map(|o| {
                let bytes = o.carried.map(|c| c.bytes_sent);
                (o.tracked.original.src_port, bytes, o.started, o.ended)
            })
            .collect();
        out.sort();
        out
    }

    /// The first listing is the baseline; then each interval tells what changed: new
    /// connections in full, running ones by difference, idle ones not at all, closed ones once.
    #[test]
    fn each_interval_tells_what_each_connection_carried_in_it() {
        let mut a = Accounting::new(10);
        let first = a.close(listing(vec![entry(1, 500, false), entry(2, 100, false)]));
        assert!(first.observed.is_empty(), "what came before is not told");
        let second = a.close(listing(vec![
            entry(1, 800, false), // carried 300
            entry(2, 100, false), // idle
            entry(3, 50, false),  // new
        ]));
        assert_eq!(
            summary(&second),
            [(1, Some(300), false, false), (3, Some(50), true, false)]
        );
        // 1 closes (TIME_WAIT: still listed), 3 ends between listings and is heard of.
        a.ended(entry(3, 70, false));
        let third = a.close(listing(vec![entry(1, 900, true), entry(2, 100, false)]));
        assert_eq!(
            summary(&third),
            [(1, Some(100), false, true), (3, Some(20), false, true)]
        );
        assert_eq!(third.unseen_endings, 0);
        // Still listed while closed, and its ending at last: told once.
        let fourth = a.close(listing(vec![entry(1, 900, true), entry(2, 100, false)]));
        assert_eq!(summary(&fourth), []);
        a.ended(entry(1, 900, true));
        assert_eq!(summary(&a.close(listing(vec![entry(2, 100, false)]))), []);
        // 2 vanishes without an ending (the kernel dropped it): counted, not invented.
        let fifth = a.close(listing(vec![]));
        assert_eq!((summary(&fifth), fifth.unseen_endings), (vec![], 1));
        assert_eq!(a.tracked(), 0);
    }

    /// A connection that starts and ends between two listings is told from its ending alone; a
    /// short one still listed (closed) is told started and ended at once.
    #[test]
    fn short_connections_are_told_started_and_ended() {
        let mut a = Accounting::new(10);
        a.close(listing(vec![]));
        a.ended(entry(7, 40, true));
        let interval = a.close(listing(vec![entry(8, 60, true)]));
        assert_eq!(
            summary(&interval),
            [(7, Some(40), true, true), (8, Some(60), true, true)]
        );
    }

    /// Endings beyond the cap are counted, not kept; endings before the baseline are ignored;
    /// connections without counters are told without them.
    #[test]
    fn endings_are_bounded_and_counters_may_be_missing() {
        let mut a = Accounting::new(2);
        a.ended(entry(1, 1, true));
        a.close(listing(vec![]));
        for port in 2..6 {
            a.ended(entry(port, 10, true));
        }
        let interval = a.close(listing(vec![Entry {
            counters: None,
            ..entry(9, 0, false)
        }]));
        assert_eq!(interval.endings_dropped, 2);
        assert_eq!(
            summary(&interval),
            [
                (2, Some(10), true, true),
                (3, Some(10), true, true),
                (9, None, true, false)
            ]
        );
        let next = a.close(listing(vec![]));
        assert_eq!(next.endings_dropped, 0);
    }
}
