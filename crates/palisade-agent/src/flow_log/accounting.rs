//! What each connection carried in an interval, from the kernel's cumulative counters: a listing
//! at the end of every interval, compared with the one before, and the endings heard between two
//! listings (a connection that ends between them is in neither after; its last counters come
//! with its ending).
//!
//! Whether a connection started in the interval comes from its kernel timestamp when it has one;
//! otherwise from its absence before. A connection that began before the interval but was never
//! seen (older than the agent, or past a capped listing) is a baseline: what it carried before is
//! not told as this interval's. One missing from a listing is kept one more interval: its ending
//! may come late, or a capped listing may have left it out.
//!
//! Memory is what the last listing held and what went missing from it (each at most the
//! listing's cap) plus the endings heard in one interval (at most as many); nothing grows with
//! the traffic beyond those bounds.

use palisade_dataplane::conntrack::{Counters, Entry, Listing, Tracked};
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

/// What one connection did in an interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    /// The connection.
    pub tracked: Tracked,
    /// Packets and bytes in the interval; `None` when unknown (the kernel does not count this
    /// connection's, or it was never seen before its end).
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
    /// Connections gone for two listings without an ending heard (the kernel dropped it): what
    /// they carried since they were last listed is unknown.
    pub unseen_endings: usize,
    /// Endings not kept because more than the cap arrived in one interval.
    pub endings_dropped: usize,
}

/// A connection as last listed.
struct Seen {
    counters: Option<Counters>,
    /// Its end was reported already (a closed TCP connection stays tracked for a while).
    ended: bool,
}

/// The accounting between listings.
pub(crate) struct Accounting {
    /// The last listing's connections; `None` before the first, which only sets the baseline.
    seen: Option<HashMap<Tracked, Seen>>,
    /// Connections of the listing before the last that the last did not hold.
    missing: HashMap<Tracked, Seen>,
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
            missing: HashMap::new(),
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

    /// Closes the interval that began at `since` with `listing`, what the kernel tracks at its
    /// end: the first listing only sets the baseline (what connections carried before the agent
    /// looked is not told).
    pub(crate) fn close(&mut self, listing: Listing, since: SystemTime) -> Interval {
        let mut interval = Interval {
            endings_dropped: std::mem::take(&mut self.endings_dropped),
            ..Interval::default()
        };
        let mut seen = HashMap::with_capacity(listing.entries.len());
        let Some(mut before) = self.seen.take() else {
            for entry in listing.entries {
                seen.insert(entry.tracked, Seen::of(&entry, entry.closed));
            }
            self.seen = Some(seen);
            return interval;
        };
        let mut missing = std::mem::take(&mut self.missing);
        let mut last = |t: &Tracked| before.remove(t).or_else(|| missing.remove(t));
        let window = Window {
            since,
            capped: listing.capped,
        };
        let endings = std::mem::take(&mut self.endings);
        // A connection listed, then ended before the endings were read, is in both: its ending
        // has the later counters and the end.
        let ended: HashSet<Tracked> = endings.iter().map(|e| e.tracked).collect();
        for entry in endings {
            let old = last(&entry.tracked);
            interval
                .observed
                .extend(window.observed(&entry, old.as_ref(), true));
        }
        for entry in listing.entries {
            if ended.contains(&entry.tracked) {
                continue;
            }
            let old = last(&entry.tracked);
            let observed = window.observed(&entry, old.as_ref(), entry.closed);
            interval.observed.extend(observed);
            let ended = entry.closed || old.is_some_and(|o| o.ended);
            seen.insert(entry.tracked, Seen::of(&entry, ended));
        }
        interval.unseen_endings = missing.values().filter(|s| !s.ended).count();
        self.missing = before;
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

/// The interval being closed.
struct Window {
    since: SystemTime,
    /// Its listing stopped at the cap: a connection it holds for the first time may have been
    /// left out before.
    capped: bool,
}

impl Window {
    /// What `entry` did since `old` (as last listed; `None`: never seen), ending now when `ends`;
    /// `None` when it did nothing worth a record.
    fn observed(&self, entry: &Entry, old: Option<&Seen>, ends: bool) -> Option<Observed> {
        let Some(old) = old else {
            // Never seen: new in the interval, or a baseline (what it carried is not all this
            // interval's), by its timestamp; without one, new unless a capped listing may have
            // left it out before.
            let started = entry.start.map_or(!self.capped, |t| t >= self.since);
            return (started || ends).then_some(Observed {
                tracked: entry.tracked,
                carried: entry.counters.filter(|_| started),
                started,
                ended: ends,
            });
        };
        let carried = (entry.counters).map(|now| now.since(&old.counters.unwrap_or_default()));
        let ended = ends && !old.ended;
        let active = ended || carried.is_some_and(|c| !c.is_zero());
        active.then_some(Observed {
            tracked: entry.tracked,
            carried,
            started: false,
            ended,
        })
    }
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
            start: None,
        }
    }

    fn listing(entries: Vec<Entry>) -> Listing {
        Listing {
            entries,
            capped: false,
        }
    }

    /// A time, in seconds.
    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s)
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
        let first = a.close(
            listing(vec![entry(1, 500, false), entry(2, 100, false)]),
            at(0),
        );
        assert!(first.observed.is_empty(), "what came before is not told");
        let second = a.close(
            listing(vec![
                entry(1, 800, false), // carried 300
                entry(2, 100, false), // idle
                entry(3, 50, false),  // new
            ]),
            at(5),
        );
        assert_eq!(
            summary(&second),
            [(1, Some(300), false, false), (3, Some(50), true, false)]
        );
        // 1 closes (TIME_WAIT: still listed), 3 ends between listings and is heard of.
        a.ended(entry(3, 70, false));
        let third = a.close(
            listing(vec![entry(1, 900, true), entry(2, 100, false)]),
            at(10),
        );
        assert_eq!(
            summary(&third),
            [(1, Some(100), false, true), (3, Some(20), false, true)]
        );
        assert_eq!(third.unseen_endings, 0);
        // Still listed while closed, and its ending at last: told once.
        let fourth = a.close(
            listing(vec![entry(1, 900, true), entry(2, 100, false)]),
            at(15),
        );
        assert_eq!(summary(&fourth), []);
        a.ended(entry(1, 900, true));
        assert_eq!(
            summary(&a.close(listing(vec![entry(2, 100, false)]), at(20))),
            []
        );
        // 2 vanishes without an ending (the kernel dropped it): kept one interval, then counted,
        // never invented.
        let sixth = a.close(listing(vec![]), at(25));
        assert_eq!((summary(&sixth), sixth.unseen_endings), (vec![], 0));
        let seventh = a.close(listing(vec![]), at(30));
        assert_eq!((summary(&seventh), seventh.unseen_endings), (vec![], 1));
        assert_eq!(a.tracked(), 0);
    }

    /// A connection that starts and ends between two listings is told from its ending alone; a
    /// short one still listed (closed) is told started and ended at once.
    #[test]
    fn short_connections_are_told_started_and_ended() {
        let mut a = Accounting::new(10);
        a.close(listing(vec![]), at(0));
        a.ended(entry(7, 40, true));
        let interval = a.close(listing(vec![entry(8, 60, true)]), at(5));
        assert_eq!(
            summary(&interval),
            [(7, Some(40), true, true), (8, Some(60), true, true)]
        );
    }

    /// An ending heard only after the listing that no longer held the connection (the kernel
    /// reaps expired entries while it dumps) is told in the next interval by difference — not
    /// as a new connection; one whose end was told already is not told again.
    #[test]
    fn an_ending_heard_late_is_not_a_new_connection() {
        let mut a = Accounting::new(10);
        a.close(
            listing(vec![entry(1, 500, false), entry(2, 60, true)]),
            at(0),
        );
        let reaped = a.close(listing(vec![]), at(5));
        assert_eq!((summary(&reaped), reaped.unseen_endings), (vec![], 0));
        a.ended(entry(1, 900, false));
        a.ended(entry(2, 60, true));
        let late = a.close(listing(vec![]), at(10));
        assert_eq!(summary(&late), [(1, Some(400), false, true)]);
        assert_eq!(late.unseen_endings, 0);
    }

    /// A capped listing holds another part of the table each time: a connection it leaves out
    /// and holds again is told by difference; one it holds for the first time is new only if it
    /// began in the interval (its timestamp), never told with what it carried before.
    #[test]
    fn capped_listings_invent_neither_connections_nor_bytes() {
        let mut a = Accounting::new(10);
        a.close(listing(vec![entry(1, 500, false)]), at(0));
        let capped = |entries| Listing {
            entries,
            capped: true,
        };
        let out = a.close(capped(vec![entry(2, 10_000_000_000, false)]), at(5));
        assert_eq!(
            summary(&out),
            [],
            "2 may have been left out before: a baseline"
        );
        let stamped = |port, bytes, s| Entry {
            start: Some(at(s)),
            ..entry(port, bytes, false)
        };
        let out = a.close(
            capped(vec![
                entry(1, 700, false),
                stamped(3, 50, 12),
                stamped(4, 9_000, 2),
            ]),
            at(10),
        );
        assert_eq!(
            summary(&out),
            [(1, Some(200), false, false), (3, Some(50), true, false)],
            "1 by difference after an absence; 3 began in the interval; 4 before it"
        );
        assert_eq!(out.unseen_endings, 0);
    }

    /// A connection listed and then ended before its ending was read is in both: told once, from
    /// its ending, and never reported missing after.
    #[test]
    fn a_connection_both_listed_and_ended_is_told_once() {
        let mut a = Accounting::new(10);
        a.close(
            listing(vec![entry(1, 500, false), entry(2, 60, true)]),
            at(0),
        );
        a.ended(entry(1, 900, false));
        a.ended(entry(2, 60, true));
        let both = a.close(
            listing(vec![entry(1, 850, false), entry(2, 60, true)]),
            at(5),
        );
        assert_eq!(summary(&both), [(1, Some(400), false, true)]);
        for t in [10, 15] {
            let after = a.close(listing(vec![]), at(t));
            assert_eq!((summary(&after), after.unseen_endings), (vec![], 0));
        }
    }

    /// Endings beyond the cap are counted, not kept; endings before the baseline are ignored;
    /// connections without counters are told without them.
    #[test]
    fn endings_are_bounded_and_counters_may_be_missing() {
        let mut a = Accounting::new(2);
        a.ended(entry(1, 1, true));
        a.close(listing(vec![]), at(0));
        for port in 2..6 {
            a.ended(entry(port, 10, true));
        }
        let interval = a.close(
            listing(vec![Entry {
                counters: None,
                ..entry(9, 0, false)
            }]),
            at(5),
        );
        assert_eq!(interval.endings_dropped, 2);
        assert_eq!(
            summary(&interval),
            [
                (2, Some(10), true, true),
                (3, Some(10), true, true),
                (9, None, true, false)
            ]
        );
        let next = a.close(listing(vec![]), at(10));
        assert_eq!(next.endings_dropped, 0);
    }
}
