//! How `observe` prints records: `compact` (one line, Hubble-like) and `table` (aligned columns),
//! for policy action records and flow records alike.

use super::Observable;
use crate::flow_log::record::FlowRecord;
use crate::record::{timestamp, Disposition, Peer, PolicyName, Record};
use palisade_model::Protocol;
use std::time::SystemTime;

fn peer(p: &Peer, port: u16) -> String {
    let name = match p {
        Peer::Pod {
            namespace,
            pod_name,
            ..
        } => format!("{namespace}/{pod_name}"),
        Peer::Node { node_name, .. } => format!("node/{node_name}"),
        Peer::External { instance } => instance.clone(),
    };
    let name = palisade_model::printable(&name);
    if port == 0 {
        name.into_owned()
    } else {
        format!("{name}:{port}")
    }
}

fn verdict<R: Observable>(r: &R) -> &'static str {
    match (r.disposition(), r.audit()) {
        (Disposition::Allow, _) => "ALLOWED",
        (Disposition::Deny, false) => "DENIED",
        (Disposition::Deny, true) => "AUDIT",
    }
}

fn policies<'a>(names: impl IntoIterator<Item = &'a PolicyName>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for p in names {
        let name = format!("{}/{}", p.namespace, p.name);
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    palisade_model::printable(&seen.join(",")).into_owned()
}

/// `time source -> destination protocol`: how a compact line starts.
fn head<R: Observable>(r: &R) -> String {
    let [time, src, dest, protocol] = ends(r);
    format!("{time} {src} -> {dest} {protocol}")
}

/// The cells every format starts with: time, source, destination, protocol.
fn ends<R: Observable>(r: &R) -> [String; 4] {
    let ((src, dest), (src_port, dest_port)) = (r.ends(), r.ports());
    [
        timestamp(r.time()),
        peer(src, src_port),
        peer(dest, dest_port),
        r.protocol().as_str().to_ascii_lowercase(),
    ]
}

/// The accessors whose fields both kinds of record name alike.
macro_rules! same_fields {
    () => {
        fn ends(&self) -> (&Peer, &Peer) {
            (&self.src, &self.dest)
        }

        fn ports(&self) -> (u16, u16) {
            (self.connection.src_port, self.connection.dest_port)
        }

        fn protocol(&self) -> Protocol {
            self.connection.protocol
        }

        fn disposition(&self) -> Disposition {
            self.disposition
        }
    };
}

impl Observable for Record {
    const WHAT: &'static str = "policy action record";
    const HEADER: &'static [&'static str] = &[
        "TIME",
        "SOURCE",
        "DESTINATION",
        "PROTO",
        "DIRECTION",
        "VERDICT",
        "COUNT",
        "POLICIES",
    ];

    same_fields!();

    fn audit(&self) -> bool {
        self.audit
    }

    fn time(&self) -> SystemTime {
        self.timestamp
    }

    /// Time, source → destination, protocol, enforcing direction, verdict, policies, count.
    fn compact(&self) -> String {
        let mut line = head(self);
        line.push_str(&format!(
            " {} {}",
            self.connection.direction.as_str(),
            verdict(self)
        ));
        if self.audit {
            line.push_str(" (would be denied)");
        }
        if !self.policies.is_empty() {
            line.push_str(" by ");
            line.push_str(&policies(&self.policies));
        }
        if self.count > 1 {
            line.push_str(&format!(" x{}", self.count));
        }
        line
    }

    fn row(&self) -> Vec<String> {
        let mut row = Vec::from(ends(self));
        row.extend([
            self.connection.direction.as_str().into(),
            verdict(self).into(),
            self.count.to_string(),
            policies(&self.policies),
        ]);
        row
    }

    fn to_line(&self) -> String {
        Record::to_line(self)
    }
}

/// `bytes B/packets pkts` of one way, or `-` when the kernel did not count them.
fn carried(bytes: Option<u64>, packets: Option<u64>) -> String {
    match (bytes, packets) {
        (Some(b), Some(p)) => format!("{b} B/{p} pkts"),
        _ => "-".into(),
    }
}

impl FlowRecord {
    /// `started`, `ended`, both, or `-` (neither: the connection ran through the interval).
    fn marks(&self) -> &'static str {
        match (self.started, self.ended) {
            (true, true) => "started,ended",
            (true, false) => "started",
            (false, true) => "ended",
            (false, false) => "-",
        }
    }

    /// The policies of both sides' verdicts.
    fn policies(&self) -> String {
        let sides = [&self.egress, &self.ingress];
        policies(sides.into_iter().flatten().flat_map(|s| &s.policies))
    }
}

impl Observable for FlowRecord {
    const WHAT: &'static str = "flow record";
    const HEADER: &'static [&'static str] = &[
        "END",
        "SOURCE",
        "DESTINATION",
        "PROTO",
        "VERDICT",
        "SENT",
        "RECEIVED",
        "CONNS",
        "STATE",
        "POLICIES",
    ];

    same_fields!();

    /// A flow record does not tell whether audit mode let it through.
    fn audit(&self) -> bool {
        false
    }

    /// The end of its interval: when it was written.
    fn time(&self) -> SystemTime {
        self.end_time
    }

    /// Interval end, source → destination, protocol, verdict now, bytes and packets each way,
    /// started/ended, policies, connections summed.
    fn compact(&self) -> String {
        let mut line = head(self);
        line.push_str(&format!(
            " {} sent {} received {}",
            verdict(self),
            carried(self.bytes_sent, self.packets_sent),
            carried(self.bytes_received, self.packets_received)
        ));
        match self.marks() {
            "-" => {}
            marks => line.push_str(&format!(" [{marks}]")),
        }
        let policies = self.policies();
        if !policies.is_empty() {
            line.push_str(" by ");
            line.push_str(&policies);
        }
        if self.connections > 1 {
            line.push_str(&format!(" x{}", self.connections));
        }
        line
    }

    fn row(&self) -> Vec<String> {
        let mut row = Vec::from(ends(self));
        row.extend([
            verdict(self).into(),
            carried(self.bytes_sent, self.packets_sent),
            carried(self.bytes_received, self.packets_received),
            self.connections.to_string(),
            self.marks().into(),
            self.policies(),
        ]);
        row
    }

    fn to_line(&self) -> String {
        FlowRecord::to_line(self)
    }
}

/// Rows padded to `widths` (the last column is not padded).
pub fn align(row: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in row.iter().enumerate() {
        if i + 1 == row.len() {
            line.push_str(cell);
        } else {
            line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
        }
    }
    line.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_lines() {
        let r: Record = serde_json::from_str(r#"{"connection":{"src_ip":"10.0.0.1","dest_ip":"10.0.0.2","src_port":40000,"dest_port":6379,"protocol":"tcp","direction":"ingress"},"disposition":"allow","policies":[{"name":"p","namespace":"shop","kind":"NetworkPolicy"}],"src":{"pod_name":"cart-1","namespace":"shop"},"dest":{"node_name":"n1","workload_kind":"Node"},"count":1,"node_name":"n","timestamp":"2026-11-22T10:00:00.5Z"}"#).unwrap();
        assert_eq!(
            r.compact(),
            "2026-11-22T10:00:00.500000000Z shop/cart-1:40000 -> node/n1:6379 tcp ingress ALLOWED by shop/p"
        );
        // Names from a hostile file are shown escaped, never as terminal control.
        let mut hostile = r.clone();
        hostile.src = Peer::External {
            instance: "\u{1b}]0;owned\u{7}".into(),
        };
        hostile.policies[0].name = "p\u{1b}[2J".into();
        let line = hostile.compact();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u{1b}]0;owned\\u{7}:40000"), "{line}");
        assert!(hostile
            .row()
            .iter()
            .all(|c| !c.chars().any(char::is_control)));
        let mut d = r.clone();
        d.disposition = Disposition::Deny;
        (d.policies, d.audit, d.count) = (vec![], true, 3);
        assert!(
            d.compact().ends_with("AUDIT (would be denied) x3"),
            "{}",
            d.compact()
        );
        let row = d.row();
        assert_eq!(
            align(&row, &[4, 4, 4, 4, 4, 4, 4, 4])
                .split_whitespace()
                .count(),
            7
        );
    }

    const FLOW: &str = r#"{"connection":{"src_ip":"10.8.1.20","dest_ip":"10.8.0.7","src_port":40312,"dest_port":8080,"protocol":"tcp"},"src":{"pod_name":"web-1","namespace":"shop"},"dest":{"pod_name":"api-1","namespace":"shop"},"disposition":"allow","egress":{"disposition":"allow","policies":[{"name":"web","namespace":"shop","kind":"NetworkPolicy"}]},"ingress":{"disposition":"allow","policies":[{"name":"api","namespace":"shop","kind":"NetworkPolicy"},{"name":"web","namespace":"shop","kind":"NetworkPolicy"}]},"packets_sent":4,"bytes_sent":310,"packets_received":3,"bytes_received":5120,"started":true,"ended":false,"start_time":"2026-11-22T10:00:00Z","end_time":"2026-11-22T10:00:05Z","node_name":"n"}"#;

    #[test]
    fn flow_lines_show_ends_bytes_each_way_marks_and_verdict() {
        let f: FlowRecord = serde_json::from_str(FLOW).unwrap();
        assert_eq!(
            f.compact(),
            "2026-11-22T10:00:05.000000000Z shop/web-1:40312 -> shop/api-1:8080 tcp ALLOWED \
             sent 310 B/4 pkts received 5120 B/3 pkts [started] by shop/web,shop/api"
        );
        let mut summed = f.clone();
        (summed.started, summed.ended, summed.connections) = (true, true, 7);
        (summed.bytes_sent, summed.packets_sent) = (None, None);
        summed.connection.src_port = 0;
        (summed.egress, summed.ingress) = (None, None);
        summed.disposition = Disposition::Deny;
        assert_eq!(
            summed.compact(),
            "2026-11-22T10:00:05.000000000Z shop/web-1 -> shop/api-1:8080 tcp DENIED \
             sent - received 5120 B/3 pkts [started,ended] x7"
        );
        let mut running = f.clone();
        running.started = false;
        assert!(!running.compact().contains('['), "{}", running.compact());
        let row = f.row();
        assert_eq!(row.len(), FlowRecord::HEADER.len());
        assert_eq!(
            row[4..],
            [
                "ALLOWED",
                "310 B/4 pkts",
                "5120 B/3 pkts",
                "1",
                "started",
                "shop/web,shop/api"
            ]
        );
        assert_eq!(running.row()[8], "-");
    }
}
