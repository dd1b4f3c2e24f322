//! `matrix --observed`: which cells of a connectivity matrix the recorded flows used — allowed
//! pairs that carried traffic, allowed pairs that never did (what a tighter policy could deny),
//! and traffic the policies deny now. Flows are matched to the matrix's pods by namespace and
//! name; what cannot be matched is counted, never dropped silently.

use crate::matrix::Matrix;
use crate::probe::Probe;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Pods gone from the input, or ports not probed, named at most (the rest only counted).
pub const MAX_NAMED: usize = 100;

/// What recorded flows carried on one cell: between two pods, on one port and protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Use {
    /// Flow records.
    pub records: u64,
    /// Connections started (a record may sum several short ones).
    pub connections: u64,
    /// Bytes both ways.
    pub bytes: u64,
}

impl Use {
    /// Adds `other` to this.
    pub fn add(&mut self, other: Use) {
        self.records = self.records.saturating_add(other.records);
        self.connections = self.connections.saturating_add(other.connections);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// A flow between two pods (`namespace/name`), as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    /// The source pod.
    pub src: String,
    /// The destination pod.
    pub dest: String,
    /// Destination port and protocol.
    pub probe: Probe,
}

/// What could not be marked, and how much was read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Flow records read.
    pub records: u64,
    /// Lines that were not flow records (each reported with its file:line).
    pub skipped_lines: u64,
    /// Records marked on a cell.
    pub marked: u64,
    /// Of those, records on cells the policies deny now (connections established before a
    /// policy change, or let through by audit mode).
    pub denied: u64,
    /// Records with an end that is not a pod (a node, or outside the cluster).
    pub not_between_pods: u64,
    /// Records of pods not in the input (gone since, or another cluster's), by pod.
    pub unknown_pods: BTreeMap<String, u64>,
    /// Records of pods in the input but outside the matrix's namespaces.
    pub outside_scope: u64,
    /// Records on a port and protocol the matrix does not probe, by probe.
    pub unprobed: BTreeMap<String, u64>,
}

impl Summary {
    /// What was read and could not be marked, as lines starting with `prefix`.
    pub fn lines(&self, prefix: &str) -> Vec<String> {
        let s = self;
        let mut lines = vec![format!(
            "{prefix}flow records: {} read, {} marked ({} on denied cells), {} lines skipped",
            s.records, s.marked, s.denied, s.skipped_lines
        )];
        let named = |map: &BTreeMap<String, u64>| {
            let items: Vec<String> = map.iter().map(|(k, n)| format!("{k} ({n})")).collect();
            (map.values().sum::<u64>(), format!(": {}", items.join(", ")))
        };
        let (unknown, unprobed) = (named(&s.unknown_pods), named(&s.unprobed));
        let unmarked = [
            (
                s.not_between_pods,
                "with an end that is not a pod (a node, or outside the cluster)",
                String::new(),
            ),
            (unknown.0, "of pods not in the input", unknown.1),
            (
                s.outside_scope,
                "of pods outside the namespaces shown",
                String::new(),
            ),
            (unprobed.0, "on ports not probed", unprobed.1),
        ];
        for (n, what, which) in unmarked {
            if n > 0 {
                lines.push(format!("{prefix}{n} records {what}{which}"));
            }
        }
        lines
    }
}

/// Counts `n` under `key`, naming at most [`MAX_NAMED`] keys (the rest under `…`).
fn count(map: &mut BTreeMap<String, u64>, key: String, n: u64) {
    // Names read from files are shown: never as terminal control.
    let key = palisade_model::printable(&key).into_owned();
    let key = if map.len() < MAX_NAMED || map.contains_key(&key) {
        key
    } else {
        "…".into()
    };
    *map.entry(key).or_default() += n;
}

/// Recorded flows marked on a matrix's cells (by probe, source and destination position).
#[derive(Clone, Debug, Default)]
pub struct Usage {
    cells: HashMap<(usize, usize, usize), Use>,
    /// What was read and what could not be marked.
    pub summary: Summary,
}

impl Usage {
    /// Marks `flows` on `matrix`; `summary` says what was read.
    pub fn mark(matrix: &Matrix, flows: &BTreeMap<Pair, Use>, summary: Summary) -> Usage {
        let positions: HashMap<String, usize> = (0..matrix.pods.len())
            .map(|i| (matrix.pod_name(i), i))
            .collect();
        let state = matrix.engine().state();
        let known: HashSet<String> = state.pods.iter().map(|p| p.key().to_string()).collect();
        let probes: HashMap<Probe, usize> = (matrix.probes.iter().enumerate())
            .map(|(i, (p, _))| (*p, i))
            .collect();
        let mut usage = Usage {
            cells: HashMap::new(),
            summary,
        };
        for (pair, used) in flows {
            let s = &mut usage.summary;
            let unknown: Vec<&String> = [&pair.src, &pair.dest]
                .into_iter()
                .filter(|p| !known.contains(*p))
                .collect();
            if !unknown.is_empty() {
                // Once per record, however many of its ends are unknown.
                let pods: Vec<&str> = unknown.iter().map(|p| p.as_str()).collect();
                count(&mut s.unknown_pods, pods.join(" → "), used.records);
                continue;
            }
            let (Some(&src), Some(&dest)) = (positions.get(&pair.src), positions.get(&pair.dest))
            else {
                s.outside_scope += used.records;
                continue;
            };
            let Some(&probe) = probes.get(&pair.probe) else {
                count(&mut s.unprobed, pair.probe.to_string(), used.records);
                continue;
            };
            s.marked += used.records;
            if !matrix.allowed(probe, src, dest) {
                s.denied += used.records;
            }
            usage
                .cells
                .entry((probe, src, dest))
                .or_default()
                .add(*used);
        }
        usage
    }

    /// What the flows carried on the cell of `probe` from position `src` to `dest`.
    pub fn get(&self, probe: usize, src: usize, dest: usize) -> Option<&Use> {
        self.cells.get(&(probe, src, dest))
    }
}

/// Probes added from observed flows at most: each is a whole matrix, and a log can hold many
/// ports (a UDP answer after its entry expired is recorded to the client's ephemeral port).
pub const MAX_OBSERVED_PROBES: usize = 32;

/// The probes to draw with observed flows: `probes`, and the port and protocol of the flows
/// between two pods of `pods` (`ns/name`) that they miss — the [`MAX_OBSERVED_PROBES`] with the
/// most records; the flows of the others are counted as on ports not probed.
pub fn with_observed(
    mut probes: Vec<Probe>,
    flows: &BTreeMap<Pair, Use>,
    pods: &HashSet<String>,
) -> Vec<Probe> {
    let mut seen: HashMap<Probe, u64> = HashMap::new();
    let between_pods =
        (flows.iter()).filter(|(p, _)| pods.contains(&p.src) && pods.contains(&p.dest));
    for (pair, used) in between_pods {
        if !probes.contains(&pair.probe) {
            *seen.entry(pair.probe).or_default() += used.records;
        }
    }
    let mut seen: Vec<(Probe, u64)> = seen.into_iter().collect();
    seen.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    probes.extend(seen.into_iter().take(MAX_OBSERVED_PROBES).map(|(p, _)| p));
    probes.sort();
    probes.dedup();
    probes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Scope;
    use crate::render::{self, Format};
    use palisade_model::{Loader, Protocol};
    use palisade_policy::Engine;
    use std::sync::Arc;

    /// shop/api admits shop/web on 8080; shop/web and other/x are not isolated.
    fn engine() -> Engine {
        let pod = |ns: &str, name: &str, ip: &str| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}\n\
                 spec: {{containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: {ip}}}\n"
            )
        };
        let text = [
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_string(),
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n".to_string(),
            pod("shop", "api", "10.1.0.1"),
            pod("shop", "web", "10.1.0.2"),
            pod("other", "x", "10.1.0.3"),
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
             metadata: {name: api, namespace: shop}\n\
             spec: {podSelector: {matchLabels: {app: api}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]}\n"
                .to_string(),
        ]
        .concat();
        let mut loader = Loader::new();
        loader.load_str("shop.yaml", &text);
        Engine::new(Arc::new(loader.finish().0))
    }

    fn tcp(port: u16) -> Probe {
        Probe {
            port,
            protocol: Protocol::Tcp,
        }
    }

    fn flow(src: &str, dest: &str, port: u16, records: u64) -> (Pair, Use) {
        let pair = Pair {
            src: src.into(),
            dest: dest.into(),
            probe: tcp(port),
        };
        let used = Use {
            records,
            connections: 1,
            bytes: 100 * records,
        };
        (pair, used)
    }

    fn flows() -> BTreeMap<Pair, Use> {
        [
            flow("shop/web", "shop/api", 8080, 3),
            flow("shop/api", "shop/web", 8080, 1), // not admitted: api is isolated, web is not
            flow("shop/web", "shop/api", 9000, 2),
            flow("other/x", "shop/web", 8080, 4),
            flow("shop/gone-1", "shop/api", 8080, 5),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn flows_are_marked_on_their_cells_and_the_rest_counted_by_why() {
        let engine = engine();
        let pods = Matrix::pods_in(&engine, &Scope::Namespaces(vec!["shop".into()]));
        let matrix = Matrix::compute(&engine, pods, &[tcp(8080)]);
        let (api, web) = (0, 1);
        assert_eq!(matrix.pod_name(api), "shop/api");
        let read = Summary {
            records: 16,
            skipped_lines: 2,
            not_between_pods: 1,
            ..Default::default()
        };
        let usage = Usage::mark(&matrix, &flows(), read);
        assert_eq!(
            usage.get(0, web, api),
            Some(&Use {
                records: 3,
                connections: 1,
                bytes: 300
            })
        );
        assert!(usage.get(0, api, web).is_some());
        assert!(usage.get(0, web, web).is_none() && usage.get(0, api, api).is_none());
        let s = &usage.summary;
        assert_eq!((s.records, s.skipped_lines, s.not_between_pods), (16, 2, 1));
        assert_eq!((s.marked, s.denied), (4, 0), "api -> web is allowed: {s:?}");
        assert_eq!(s.outside_scope, 4);
        assert_eq!(s.unknown_pods, BTreeMap::from([("shop/gone-1".into(), 5)]));
        assert_eq!(s.unprobed, BTreeMap::from([("9000/TCP".into(), 2)]));

        // Traffic on a cell the policies deny: marked, and counted as denied.
        let denied: BTreeMap<Pair, Use> = [flow("other/x", "shop/api", 8080, 7)].into();
        let all = Matrix::compute(&engine, Matrix::pods_in(&engine, &Scope::All), &[tcp(8080)]);
        let usage = Usage::mark(&all, &denied, Summary::default());
        assert_eq!((usage.summary.marked, usage.summary.denied), (7, 7));
        assert!(usage.get(0, 0, 1).is_some(), "other/x -> shop/api");
    }

    #[test]
    fn names_are_bounded_and_observed_ports_probed() {
        let mut map = BTreeMap::new();
        for i in 0..MAX_NAMED + 5 {
            count(&mut map, format!("shop/p{i:03}"), 1);
        }
        count(&mut map, "shop/p000".into(), 1);
        assert_eq!(map.len(), MAX_NAMED + 1);
        assert_eq!((map["…"], map["shop/p000"]), (5, 2));

        let pods: HashSet<String> = ["shop/api".into(), "shop/web".into()].into();
        let probes = with_observed(vec![tcp(80), tcp(8080)], &flows(), &pods);
        assert_eq!(probes, [tcp(80), tcp(8080), tcp(9000)], "not other/x's");
        // Ports of many flows: only the busiest are probed.
        let many: BTreeMap<Pair, Use> = (0..MAX_OBSERVED_PROBES as u16 + 10)
            .map(|i| flow("shop/web", "shop/api", 10_000 + i, 1 + u64::from(i)))
            .collect();
        let probes = with_observed(vec![tcp(80)], &many, &pods);
        assert_eq!(probes.len(), MAX_OBSERVED_PROBES + 1);
        assert!(probes.contains(&tcp(10_000 + MAX_OBSERVED_PROBES as u16 + 9)));
        assert!(!probes.contains(&tcp(10_000)), "the quietest is left out");
    }

    /// A record whose two ends are unknown is counted once.
    #[test]
    fn a_record_of_two_unknown_pods_counts_once() {
        let engine = engine();
        let pods = Matrix::pods_in(&engine, &Scope::Namespaces(vec!["shop".into()]));
        let matrix = Matrix::compute(&engine, pods, &[tcp(8080)]);
        let both = [flow("shop/gone-1", "shop/gone-2", 8080, 3)]
            .into_iter()
            .collect();
        let usage = Usage::mark(&matrix, &both, Summary::default());
        let s = &usage.summary;
        assert_eq!(s.unknown_pods.values().sum::<u64>(), 3, "{s:?}");
    }

    #[test]
    fn every_format_marks_used_cells_and_sums_up_the_rest() {
        let engine = engine();
        let pods = Matrix::pods_in(&engine, &Scope::Namespaces(vec!["shop".into()]));
        let matrix = Matrix::compute(&engine, pods, &[tcp(8080)]);
        let usage = Usage::mark(&matrix, &flows(), Summary::default());
        let text = |format| {
            let mut out = Vec::new();
            render::write_observed(&matrix, &usage, format, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let txt = text(Format::Txt);
        assert!(
            txt.starts_with("# observed flows: U allowed and used"),
            "{txt}"
        );
        let rows: Vec<String> = (txt.lines())
            .filter(|l| l.starts_with("shop/"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(rows, ["shop/api . U", "shop/web U ."], "{txt}");
        assert!(txt.contains("# used shop/web -> shop/api: 1 connections, 300 bytes\n"));
        assert!(txt.contains("# allowed and never used: 0 pairs"), "{txt}");
        assert!(txt.contains("records of pods not in the input: shop/gone-1 (5)"));
        assert!(
            txt.contains("records on ports not probed: 9000/TCP (2)"),
            "{txt}"
        );

        let json: serde_json::Value = serde_json::from_str(&text(Format::Json)).unwrap();
        let observed = &json["probes"][0]["observed"];
        assert_eq!(observed[1][0]["bytes"], 300, "{json}");
        assert_eq!(observed[0][0], serde_json::Value::Null, "{json}");
        assert_eq!(json["observed"]["outside_scope"], 4, "{json}");
        assert_eq!(json["observed"]["marked"], 4, "{json}");

        let csv = text(Format::Csv);
        assert!(csv.contains("8080,TCP,shop/web,1u,1\n"), "{csv}");
        let md = text(Format::Md);
        assert!(md.contains("| **shop/web** | ✓● | ✓ |"), "{md}");
        let dot = text(Format::Dot);
        assert!(
            dot.contains(r#""shop/web" -> "shop/api" [label="8080/TCP used", style=bold];"#),
            "{dot}"
        );

        // Traffic on a denied cell stands out too.
        let all = Matrix::compute(&engine, Matrix::pods_in(&engine, &Scope::All), &[tcp(8080)]);
        let denied: BTreeMap<Pair, Use> = [flow("other/x", "shop/api", 8080, 7)].into();
        let usage = Usage::mark(&all, &denied, Summary::default());
        let mut out = Vec::new();
        render::write_observed(&all, &usage, Format::Txt, &mut out).unwrap();
        let txt = String::from_utf8(out).unwrap();
        let x = txt.lines().find(|l| l.starts_with("other/x")).unwrap();
        assert_eq!(x.split_whitespace().nth(2), Some("!"), "{txt}");
        assert!(txt.contains("other/x -> shop/api: 1 connections, 700 bytes (denied now)"));
        assert!(txt.contains("# allowed and never used: 5 pairs"), "{txt}");
    }
}
