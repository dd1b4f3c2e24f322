//! A diff as text (one paragraph per group), as one JSON document, or as a Markdown summary for a
//! pull-request comment.

use super::{Change, DiffError, DirectionWhy, Group, PortRange, Report, Why, Workload};
use palisade_model::Protocol;
use serde_json::{json, Value};
use std::fmt::Write;

/// Groups shown in a Markdown table before the rest are counted.
pub const MARKDOWN_ROWS: usize = 50;

/// Pod names shown per workload in text before the rest are counted.
const PODS_SHOWN: usize = 3;

/// `TCP 80, 8080-8090; UDP all`, or `all ports`.
pub fn ports_text(ports: &[PortRange]) -> String {
    let all = |p: &PortRange| p.first == 1 && p.last == 65535;
    if ports.len() == Protocol::PORTED.len() && ports.iter().all(all) {
        return "all ports".into();
    }
    let mut out = String::new();
    for protocol in Protocol::PORTED {
        let ranges: Vec<String> = (ports.iter().filter(|p| p.protocol == protocol))
            .map(|p| match (p.first, p.last) {
                (1, 65535) => "all".into(),
                (f, l) if f == l => f.to_string(),
                (f, l) => format!("{f}-{l}"),
            })
            .collect();
        if !ranges.is_empty() {
            if !out.is_empty() {
                out.push_str("; ");
            }
            let _ = write!(out, "{protocol} {}", ranges.join(", "));
        }
    }
    out
}

/// `shop/web (ReplicaSet web-6d9c7b5f4: 3 pods)`, naming the pods when there are few.
fn workload_text(w: &Workload, pods: &[String]) -> String {
    let names: Vec<&str> = (pods.iter().take(PODS_SHOWN))
        .map(|p| p.split_once('/').map_or(p.as_str(), |(_, n)| n))
        .collect();
    let mut listed = names.join(", ");
    if pods.len() > PODS_SHOWN {
        let _ = write!(listed, " and {} more", pods.len() - PODS_SHOWN);
    }
    match &w.kind {
        Some(kind) => format!("{}/{} ({kind}: {listed})", w.namespace, w.name),
        None => format!("{}/{}", w.namespace, w.name),
    }
}

/// `denied: ingress isolated by shop/deny-all`, `allowed: ingress by shop/web`, `allowed: not
/// isolated`, `allowed: ingress not enforced` (a pod and its node): the directions that decide.
pub fn why_text(why: &Why) -> String {
    let allowed = why.allowed();
    let mut parts = Vec::new();
    for (direction, w) in [("egress", &why.egress), ("ingress", &why.ingress)] {
        match w {
            DirectionWhy::AllowedBy(p) if allowed => {
                parts.push(format!("{direction} by {}", p.join(", ")))
            }
            DirectionWhy::DeniedBy(p) => {
                parts.push(format!("{direction} isolated by {}", p.join(", ")))
            }
            DirectionWhy::Unenforced => parts.push(format!("{direction} not enforced")),
            DirectionWhy::Open | DirectionWhy::AllowedBy(_) => {}
        }
    }
    match (allowed, parts.is_empty()) {
        (true, true) => "allowed: not isolated".into(),
        (true, false) => format!("allowed: {}", parts.join("; ")),
        (false, _) => format!("denied: {}", parts.join("; ")),
    }
}

fn sign(change: Change) -> char {
    match change {
        Change::Added => '+',
        Change::Removed => '-',
    }
}

/// One line: counts of pods and groups.
fn summary(report: &Report) -> String {
    let (ag, ap) = report.count(Change::Added);
    let (rg, rp) = report.count(Change::Removed);
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "connectivity: {} added ({}), {} removed ({}); pods: {} added, {} removed",
        plural(ag, "group"),
        plural(ap, "pod pair"),
        plural(rg, "group"),
        plural(rp, "pod pair"),
        report.added_pods.len(),
        report.removed_pods.len()
    )
}

/// The report as text: added and removed pods, then one paragraph per group, then the counts.
pub fn to_text(report: &Report) -> String {
    let mut out = String::new();
    for (sign, pods) in [('+', &report.added_pods), ('-', &report.removed_pods)] {
        for pod in pods {
            let _ = writeln!(out, "{sign} pod {pod}");
        }
    }
    if !(report.added_pods.is_empty() && report.removed_pods.is_empty()) {
        out.push('\n');
    }
    for g in &report.groups {
        let _ = writeln!(
            out,
            "{} {} -> {}: {}\n    before: {}\n    after:  {}\n",
            sign(g.change),
            workload_text(&g.from, &g.from_pods),
            workload_text(&g.to, &g.to_pods),
            ports_text(&g.ports),
            why_text(&g.before),
            why_text(&g.after),
        );
    }
    let _ = writeln!(out, "{}", summary(report));
    out
}

fn workload_json(w: &Workload, pods: &[String]) -> Value {
    json!({"namespace": w.namespace, "kind": w.kind, "name": w.name, "pods": pods})
}

fn direction_json(w: &DirectionWhy) -> Value {
    match w {
        DirectionWhy::Unenforced => json!({"isolated": false, "enforced": false}),
        DirectionWhy::Open => json!({"isolated": false}),
        DirectionWhy::AllowedBy(p) => json!({"isolated": true, "allowed_by": p}),
        DirectionWhy::DeniedBy(p) => json!({"isolated": true, "denied_by": p}),
    }
}

fn why_json(why: &Why) -> Value {
    json!({
        "allowed": why.allowed(),
        "egress": direction_json(&why.egress),
        "ingress": direction_json(&why.ingress),
    })
}

fn group_json(g: &Group) -> Value {
    let ports: Vec<Value> = (g.ports.iter())
        .map(|p| json!({"protocol": p.protocol.as_str(), "first": p.first, "last": p.last}))
        .collect();
    json!({
        "change": g.change.as_str(),
        "from": workload_json(&g.from, &g.from_pods),
        "to": workload_json(&g.to, &g.to_pods),
        "ports": ports,
        "pairs": g.pairs,
        "before": why_json(&g.before),
        "after": why_json(&g.after),
    })
}

/// The report as one JSON document: `added_pods`, `removed_pods`, `changes` and `counts`.
pub fn to_json(report: &Report) -> Value {
    let (ag, ap) = report.count(Change::Added);
    let (rg, rp) = report.count(Change::Removed);
    json!({
        "added_pods": report.added_pods,
        "removed_pods": report.removed_pods,
        "changes": report.groups.iter().map(group_json).collect::<Vec<_>>(),
        "counts": {
            "added": {"groups": ag, "pairs": ap},
            "removed": {"groups": rg, "pairs": rp},
        },
    })
}

/// The answer when `error` kept the groups from being listed — connectivity changed
/// ([`DiffError::TooManyChanges`]) — as `format` (`json`, `md`, else text): that it changed, and
/// why the rest is not shown.
pub fn unlisted(error: &DiffError, format: &str) -> String {
    match format {
        "json" => json!({"connectivity_changed": true, "listed": false, "reason": error.to_string()})
            .to_string(),
        // The error's words are ours, never a manifest's: no escaping needed.
        "md" => format!(
            "### Network connectivity change (palisade diff)\n\nConnectivity changes, too widely to \
             list: {error}.\n"
        ),
        _ => format!("connectivity changed, not listed: {error}"),
    }
}

/// A Markdown table cell. What a name brings is text, never markup: every character Markdown (or
/// GitHub's) makes something of — a pipe ending the cell, emphasis, code, a link, an image, HTML,
/// a mention, an autolink — is escaped with a backslash (a backslash first), and control
/// characters (line breaks) become spaces.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if c.is_control() => out.push(' '),
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '!' | '#' | '~' | '@' | ':' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The report as Markdown for a pull-request comment: the counts, then a table of the groups (at
/// most [`MARKDOWN_ROWS`], the rest counted), then the pods added and removed.
pub fn to_markdown(report: &Report) -> String {
    let mut out = String::from("### Network connectivity change (palisade diff)\n\n");
    if !report.connectivity_changed() {
        out.push_str("No connectivity between existing pods changes.\n");
    } else {
        let (ag, ap) = report.count(Change::Added);
        let (rg, rp) = report.count(Change::Removed);
        let _ = writeln!(
            out,
            "**{ap} pod pairs gain** connectivity ({ag} groups), **{rp} lose** it ({rg} groups).\n"
        );
        out.push_str("| | from | to | ports | before | after |\n|---|---|---|---|---|---|\n");
        for g in report.groups.iter().take(MARKDOWN_ROWS) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                g.change.as_str(),
                cell(&workload_text(&g.from, &g.from_pods)),
                cell(&workload_text(&g.to, &g.to_pods)),
                cell(&ports_text(&g.ports)),
                cell(&why_text(&g.before)),
                cell(&why_text(&g.after)),
            );
        }
        if report.groups.len() > MARKDOWN_ROWS {
            let _ = writeln!(
                out,
                "\nand {} more groups (`palisade diff -o txt` lists them all).",
                report.groups.len() - MARKDOWN_ROWS
            );
        }
    }
    for (word, pods) in [
        ("added", &report.added_pods),
        ("removed", &report.removed_pods),
    ] {
        if pods.is_empty() {
            continue;
        }
        let shown: Vec<String> = pods
            .iter()
            .take(MARKDOWN_ROWS)
            .map(|p| format!("`{p}`"))
            .collect();
        let _ = write!(out, "\nPods {word} ({}): {}", pods.len(), shown.join(", "));
        if pods.len() > MARKDOWN_ROWS {
            let _ = write!(out, " and {} more", pods.len() - MARKDOWN_ROWS);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cell;

    /// A hostile name stays one cell of text: no cell ended, no line broken, no link, image,
    /// mention or HTML made.
    #[test]
    fn a_cell_is_text_whatever_the_name() {
        let hostile = "a\\|b | [click](https://x.example) ![i](y) @octocat <b>x</b>\r\nnext";
        let escaped = cell(hostile);
        assert!(
            !escaped.contains('\n') && !escaped.contains('\r'),
            "{escaped}"
        );
        // Every markup character is preceded by a backslash that is not itself escaped.
        let chars: Vec<char> = escaped.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' {
                i += 2;
                continue;
            }
            assert!(
                !"|[]!@<>:`*_#~".contains(chars[i]),
                "{escaped}: {}",
                chars[i]
            );
            i += 1;
        }
        assert_eq!(
            cell("shop/web (ReplicaSet: web-1)"),
            "shop/web (ReplicaSet\\: web-1)"
        );
    }
}
