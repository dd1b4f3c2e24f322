//! Deny aggregation: repeated denied attempts of one flow become one record with a count.
//!
//! Key: {src_ip, dest_ip, dest_port, protocol, direction} (the source port is ignored, so retries from
//! new ports aggregate). The first event opens a window; later ones add to its count; when the window
//! ends, one record goes out with the first event's source port and timestamp. The number of open
//! windows is bounded; events that would open one more are dropped (and counted by the caller).

use crate::record::{DenyReason, Disposition, Record};
use palisade_model::Protocol;
use palisade_policy::Direction;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// The flow, whether it was audited, what staged policies would do and why a deny record is not
/// of a dropped packet (audited, staged, cut and dropped attempts are reported apart).
type Key = (
    IpAddr,
    IpAddr,
    u16,
    Protocol,
    Direction,
    bool,
    Option<Disposition>,
    Option<DenyReason>,
);

fn key(r: &Record) -> Key {
    let c = &r.connection;
    (
        c.src_ip,
        c.dest_ip,
        c.dest_port,
        c.protocol,
        c.direction,
        r.audit,
        r.would,
        r.reason,
    )
}

/// What [`DenyAggregator::add`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// It opened a new window.
    Opened,
    /// It was counted into an open window.
    Counted,
    /// Too many windows are open: dropped.
    Full,
}

/// Open deny windows, in the order they close.
pub struct DenyAggregator {
    window: Duration,
    max_keys: usize,
    open: HashMap<Key, Record>,
    closing: VecDeque<(SystemTime, Key)>,
}

impl DenyAggregator {
    /// Windows of `window`, at most `max_keys` open at once.
    pub fn new(window: Duration, max_keys: usize) -> Self {
        DenyAggregator {
            window,
            max_keys,
            open: HashMap::new(),
            closing: VecDeque::new(),
        }
    }

    /// Adds a deny record (count 1) observed at its timestamp.
    pub fn add(&mut self, record: Record) -> Added {
        let k = key(&record);
        if let Some(open) = self.open.get_mut(&k) {
            open.count += record.count;
            return Added::Counted;
        }
        if self.open.len() >= self.max_keys {
            return Added::Full;
        }
        // Windows close in the order they opened, so the queue stays sorted by closing time.
        let closes = record.timestamp + self.window;
        self.closing.push_back((closes, k));
        self.open.insert(k, record);
        Added::Opened
    }

    /// Removes and returns the aggregates whose window has ended by `now`.
    pub fn due(&mut self, now: SystemTime) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(&(closes, k)) = self.closing.front() {
            if closes > now {
                break;
            }
            self.closing.pop_front();
            out.extend(self.open.remove(&k));
        }
        out
    }

    /// Removes and returns every open aggregate (at shutdown).
    pub fn drain(&mut self) -> Vec<Record> {
        self.closing.clear();
        let mut out: Vec<Record> = self.open.drain().map(|(_, r)| r).collect();
        out.sort_by_key(|r| r.timestamp);
        out
    }

    /// When the next window closes.
    pub fn next_due(&self) -> Option<SystemTime> {
        self.closing.front().map(|&(t, _)| t)
    }

    /// How many windows are open.
    pub fn open_keys(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Connection, Disposition, Peer};
    use std::time::UNIX_EPOCH;

    fn deny(at_ms: u64, src_port: u16, dest_port: u16) -> Record {
        let ext = |ip: &str| Peer::External {
            instance: ip.into(),
        };
        Record {
            connection: Connection {
                src_ip: "10.0.0.1".parse().unwrap(),
                dest_ip: "10.0.0.2".parse().unwrap(),
                src_port,
                dest_port,
                protocol: Protocol::Tcp,
                direction: Direction::Ingress,
            },
            disposition: Disposition::Deny,
            policies: vec![],
            src: ext("10.0.0.1"),
            dest: ext("10.0.0.2"),
            count: 1,
            node_name: "n".into(),
            timestamp: UNIX_EPOCH + Duration::from_millis(at_ms),
            audit: false,
            denied_by: None,
            would: None,
            staged_by: Vec::new(),
            reason: None,
        }
    }

    #[test]
    fn one_record_per_window_with_the_first_source_port_and_time() {
        let mut agg = DenyAggregator::new(Duration::from_secs(5), 10);
        assert_eq!(agg.add(deny(0, 40000, 6379)), Added::Opened);
        for (i, at) in [1000, 2000, 4999].into_iter().enumerate() {
            assert_eq!(agg.add(deny(at, 40001 + i as u16, 6379)), Added::Counted);
        }
        assert_eq!(agg.add(deny(100, 1, 80)), Added::Opened, "another port");
        assert!(agg.due(UNIX_EPOCH + Duration::from_millis(4999)).is_empty());
        assert_eq!(agg.next_due(), Some(UNIX_EPOCH + Duration::from_secs(5)));
        let out = agg.due(UNIX_EPOCH + Duration::from_secs(5));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].count, out[0].connection.src_port, out[0].timestamp),
            (4, 40000, UNIX_EPOCH)
        );
        // The next attempt of the same flow opens a new window.
        assert_eq!(agg.add(deny(5001, 40010, 6379)), Added::Opened);
        assert_eq!(agg.open_keys(), 2);
        let rest = agg.drain();
        assert_eq!(
            rest.iter()
                .map(|r| r.connection.dest_port)
                .collect::<Vec<_>>(),
            [80, 6379]
        );
        assert_eq!((agg.open_keys(), agg.next_due()), (0, None));
    }

    #[test]
    fn keys_beyond_the_limit_are_dropped_but_open_ones_still_count() {
        let mut agg = DenyAggregator::new(Duration::from_secs(5), 3);
        for port in 1..=3 {
            assert_eq!(agg.add(deny(0, 1, port)), Added::Opened);
        }
        assert_eq!(agg.add(deny(1, 1, 4)), Added::Full);
        assert_eq!(agg.add(deny(1, 1, 2)), Added::Counted);
        let out = agg.due(UNIX_EPOCH + Duration::from_secs(6));
        assert_eq!(out.iter().map(|r| r.count).sum::<u64>(), 4);
        assert_eq!(agg.add(deny(6000, 1, 4)), Added::Opened, "room again");
    }
}
