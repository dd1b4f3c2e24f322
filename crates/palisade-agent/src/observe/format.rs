//! How `observe` prints records: `compact` (one line, Hubble-like) and `table` (aligned columns).

use crate::record::{timestamp, Disposition, Peer, Record};

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
    if port == 0 {
        name
    } else {
        format!("{name}:{port}")
    }
}

fn verdict(r: &Record) -> &'static str {
    match (r.disposition, r.audit) {
        (Disposition::Allow, _) => "ALLOWED",
        (Disposition::Deny, false) => "DENIED",
        (Disposition::Deny, true) => "AUDIT",
    }
}

fn policies(r: &Record) -> String {
    r.policies
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect::<Vec<_>>()
        .join(",")
}

/// One line: time, source → destination, protocol, enforcing direction, verdict, policies, count.
pub fn compact(r: &Record) -> String {
    let c = &r.connection;
    let mut line = format!(
        "{} {} -> {} {} {} {}",
        timestamp(r.timestamp),
        peer(&r.src, c.src_port),
        peer(&r.dest, c.dest_port),
        c.protocol.as_str().to_ascii_lowercase(),
        c.direction.as_str(),
        verdict(r)
    );
    if r.audit {
        line.push_str(" (would be denied)");
    }
    if !r.policies.is_empty() {
        line.push_str(" by ");
        line.push_str(&policies(r));
    }
    if r.count > 1 {
        line.push_str(&format!(" x{}", r.count));
    }
    line
}

/// The table's header row.
pub const TABLE_HEADER: [&str; 8] = [
    "TIME",
    "SOURCE",
    "DESTINATION",
    "PROTO",
    "DIRECTION",
    "VERDICT",
    "COUNT",
    "POLICIES",
];

/// One table row's cells.
pub fn table_row(r: &Record) -> [String; 8] {
    let c = &r.connection;
    [
        timestamp(r.timestamp),
        peer(&r.src, c.src_port),
        peer(&r.dest, c.dest_port),
        c.protocol.as_str().into(),
        c.direction.as_str().into(),
        verdict(r).into(),
        r.count.to_string(),
        policies(r),
    ]
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
            compact(&r),
            "2026-11-22T10:00:00.500000000Z shop/cart-1:40000 -> node/n1:6379 tcp ingress ALLOWED by shop/p"
        );
        let mut d = r.clone();
        d.disposition = Disposition::Deny;
        (d.policies, d.audit, d.count) = (vec![], true, 3);
        assert!(
            compact(&d).ends_with("AUDIT (would be denied) x3"),
            "{}",
            compact(&d)
        );
        let row = table_row(&d);
        assert_eq!(
            align(&row, &[4, 4, 4, 4, 4, 4, 4, 4])
                .split_whitespace()
                .count(),
            7
        );
    }
}
