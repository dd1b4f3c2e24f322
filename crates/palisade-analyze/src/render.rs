//! Matrix renderers: `txt` truth tables, `json`, `csv`, `md` and `dot`. All stream row by row, so a
//! 10,000-pod matrix never exists in memory as pods × pods.

use crate::observed::Usage;
use crate::probe::Probe;
use std::io::{self, Write};
use std::str::FromStr;

/// Output formats of `palisade matrix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Truth tables: `# probe 80 TCP`, a header of destinations, a row per source, `.` allowed, `X` denied.
    Txt,
    /// `{"pods": [...], "probes": [{"port", "protocol", "allowed": [[bool]]}]}`.
    Json,
    /// One line per (probe, source): `port,protocol,source,<1|0 per destination>`.
    Csv,
    /// A Markdown table per probe.
    Md,
    /// A Graphviz digraph: an edge per allowed pair of different pods, labelled with its probes.
    Dot,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "txt" | "text" => Ok(Format::Txt),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "md" | "markdown" => Ok(Format::Md),
            "dot" => Ok(Format::Dot),
            _ => Err(format!(
                "unknown output format {s:?}; valid: txt, json, csv, md, dot"
            )),
        }
    }
}

/// Truth tables over one list of pods, one per probe: what the renderers draw. The engine's
/// [`crate::Matrix`] is one; the lab's measured probes are another.
pub trait Grid {
    /// `ns/name` of every pod, for rows and columns alike.
    fn names(&self) -> Vec<String>;
    /// The probes, in order.
    fn probes(&self) -> Vec<Probe>;
    /// Fills `out` with row `src` of probe `probe`, one cell per column.
    fn row_into(&self, probe: usize, src: usize, out: &mut Vec<bool>);
}

/// Writes `matrix` in `format`.
pub fn write(matrix: &dyn Grid, format: Format, out: &mut dyn Write) -> io::Result<()> {
    render(matrix, None, format, out)
}

/// Writes `matrix` in `format` with the cells `usage` says the recorded flows used marked
/// (`matrix --observed`), and what could not be marked summed up.
pub fn write_observed(
    matrix: &dyn Grid,
    usage: &Usage,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    render(matrix, Some(usage), format, out)
}

fn render(
    matrix: &dyn Grid,
    usage: Option<&Usage>,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Txt => txt(matrix, usage, out),
        Format::Json => json(matrix, usage, out),
        Format::Csv => csv(matrix, usage, out),
        Format::Md => md(matrix, usage, out),
        Format::Dot => dot(matrix, usage, out),
    }
}

/// Whether the recorded flows used the cell of `probe` from `src` to `dest` (never, without
/// observed flows).
fn used(usage: Option<&Usage>, probe: usize, src: usize, dest: usize) -> bool {
    usage.is_some_and(|u| u.get(probe, src, dest).is_some())
}

/// The txt legend of observed marks.
const TXT_LEGEND: &str = "# observed flows: U allowed and used, . allowed and never used, \
                              X denied, ! denied yet used (established before a policy change, \
                              or audit mode)";

fn txt(matrix: &dyn Grid, usage: Option<&Usage>, out: &mut dyn Write) -> io::Result<()> {
    let names = matrix.names();
    let mut row = Vec::new();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(1).max(1);
    let mut line = Vec::new();
    if usage.is_some() {
        writeln!(out, "{TXT_LEGEND}")?;
    }
    for (pi, probe) in matrix.probes().iter().enumerate() {
        writeln!(out, "# probe {} {}", probe.port, probe.protocol)?;
        line.clear();
        line.extend_from_slice(format!("{:width$}", "-").as_bytes());
        for n in &names {
            line.push(b' ');
            line.extend_from_slice(format!("{n:width$}").as_bytes());
        }
        trim_end(&mut line);
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        for (i, src) in names.iter().enumerate() {
            line.clear();
            line.extend_from_slice(format!("{src:width$}").as_bytes());
            matrix.row_into(pi, i, &mut row);
            for (j, &cell) in row.iter().enumerate() {
                line.push(b' ');
                line.push(match (cell, used(usage, pi, i, j)) {
                    (true, false) => b'.',
                    (false, false) => b'X',
                    (true, true) => b'U',
                    (false, true) => b'!',
                });
                line.resize(line.len() + width - 1, b' ');
            }
            trim_end(&mut line);
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
        if let Some(usage) = usage {
            txt_used(matrix, usage, pi, &names, out)?;
        }
    }
    if let Some(usage) = usage {
        for line in usage.summary.lines("# ") {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// Under a probe's table: what each used cell carried, and how many allowed pairs of different
/// pods were never used.
fn txt_used(
    matrix: &dyn Grid,
    usage: &Usage,
    probe: usize,
    names: &[String],
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut row = Vec::new();
    let mut unused = 0;
    for (i, src) in names.iter().enumerate() {
        matrix.row_into(probe, i, &mut row);
        for (j, &allowed) in row.iter().enumerate() {
            match usage.get(probe, i, j) {
                Some(u) => writeln!(
                    out,
                    "# used {src} -> {}: {} connections, {} bytes{}",
                    names[j],
                    u.connections,
                    u.bytes,
                    if allowed { "" } else { " (denied now)" }
                )?,
                None if allowed && i != j => unused += 1,
                None => {}
            }
        }
    }
    writeln!(out, "# allowed and never used: {unused} pairs")
}

fn trim_end(line: &mut Vec<u8>) {
    while line.last() == Some(&b' ') {
        line.pop();
    }
}

fn json(matrix: &dyn Grid, usage: Option<&Usage>, out: &mut dyn Write) -> io::Result<()> {
    let names = matrix.names();
    let mut row = Vec::new();
    out.write_all(b"{\"pods\":")?;
    serde_json::to_writer(&mut *out, &names)?;
    out.write_all(b",\"probes\":[")?;
    let mut line = Vec::new();
    for (pi, probe) in matrix.probes().iter().enumerate() {
        if pi > 0 {
            out.write_all(b",")?;
        }
        write!(
            out,
            "{{\"port\":{},\"protocol\":\"{}\",\"allowed\":[",
            probe.port, probe.protocol
        )?;
        for i in 0..names.len() {
            line.clear();
            if i > 0 {
                line.push(b',');
            }
            line.push(b'[');
            matrix.row_into(pi, i, &mut row);
            for (j, &cell) in row.iter().enumerate() {
                if j > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(if cell { b"true" } else { b"false" });
            }
            line.push(b']');
            out.write_all(&line)?;
        }
        out.write_all(b"]")?;
        if let Some(usage) = usage {
            json_observed(usage, pi, names.len(), out)?;
        }
        out.write_all(b"}")?;
    }
    out.write_all(b"]")?;
    if let Some(usage) = usage {
        out.write_all(b",\"observed\":")?;
        serde_json::to_writer(&mut *out, &usage.summary)?;
    }
    out.write_all(b"}\n")
}

/// A probe's `observed` cells beside its `allowed` ones: `null`, or what the flows carried.
fn json_observed(usage: &Usage, probe: usize, pods: usize, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(b",\"observed\":[")?;
    let mut line = Vec::new();
    for i in 0..pods {
        line.clear();
        if i > 0 {
            line.push(b',');
        }
        line.push(b'[');
        for j in 0..pods {
            if j > 0 {
                line.push(b',');
            }
            match usage.get(probe, i, j) {
                Some(u) => serde_json::to_writer(&mut line, u)?,
                None => line.extend_from_slice(b"null"),
            }
        }
        line.push(b']');
        out.write_all(&line)?;
    }
    out.write_all(b"]")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(matrix: &dyn Grid, usage: Option<&Usage>, out: &mut dyn Write) -> io::Result<()> {
    let names = matrix.names();
    let mut row = Vec::new();
    let mut line = Vec::new();
    line.extend_from_slice(b"port,protocol,source");
    for n in &names {
        line.push(b',');
        line.extend_from_slice(csv_field(n).as_bytes());
    }
    line.push(b'\n');
    out.write_all(&line)?;
    for (pi, probe) in matrix.probes().iter().enumerate() {
        for (i, src) in names.iter().enumerate() {
            line.clear();
            line.extend_from_slice(
                format!("{},{},{}", probe.port, probe.protocol, csv_field(src)).as_bytes(),
            );
            matrix.row_into(pi, i, &mut row);
            for (j, &cell) in row.iter().enumerate() {
                line.extend_from_slice(if cell { b",1" } else { b",0" });
                if used(usage, pi, i, j) {
                    line.push(b'u');
                }
            }
            line.push(b'\n');
            out.write_all(&line)?;
        }
    }
    Ok(())
}

fn md(matrix: &dyn Grid, usage: Option<&Usage>, out: &mut dyn Write) -> io::Result<()> {
    let names = matrix.names();
    let mut row = Vec::new();
    if usage.is_some() {
        writeln!(
            out,
            "✓ allowed, ✗ denied, ● used by the observed flows (✓ without ● : allowed and never \
             used)\n"
        )?;
    }
    for (pi, probe) in matrix.probes().iter().enumerate() {
        if pi > 0 {
            writeln!(out)?;
        }
        writeln!(out, "### probe {} {}\n", probe.port, probe.protocol)?;
        writeln!(out, "| from \\ to | {} |", names.join(" | "))?;
        writeln!(out, "|---|{}", "---|".repeat(names.len()))?;
        for (i, src) in names.iter().enumerate() {
            matrix.row_into(pi, i, &mut row);
            let cells: Vec<&str> = (row.iter().enumerate())
                .map(|(j, &c)| match (c, used(usage, pi, i, j)) {
                    (true, false) => "✓",
                    (false, false) => "✗",
                    (true, true) => "✓●",
                    (false, true) => "✗●",
                })
                .collect();
            writeln!(out, "| **{src}** | {} |", cells.join(" | "))?;
        }
    }
    if let Some(usage) = usage {
        writeln!(out)?;
        for line in usage.summary.lines("- ") {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

fn dot(matrix: &dyn Grid, usage: Option<&Usage>, out: &mut dyn Write) -> io::Result<()> {
    let names = matrix.names();
    let probes = matrix.probes();
    writeln!(out, "digraph connectivity {{")?;
    writeln!(out, "  rankdir=LR;\n  node [shape=box, style=rounded];")?;
    fn split(name: &str) -> (&str, &str) {
        name.split_once('/').unwrap_or(("", name))
    }
    let mut by_ns: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ns = split(name).0.to_string();
        match by_ns.last_mut() {
            Some((n, v)) if *n == ns => v.push(i),
            _ => by_ns.push((ns, vec![i])),
        }
    }
    for (ci, (ns, members)) in by_ns.iter().enumerate() {
        writeln!(out, "  subgraph cluster_{ci} {{\n    label={ns:?};")?;
        for &i in members {
            writeln!(out, "    {:?} [label={:?}];", names[i], split(&names[i]).1)?;
        }
        writeln!(out, "  }}")?;
    }
    let rows: Vec<Vec<Vec<bool>>> = (0..probes.len())
        .map(|pi| {
            (0..names.len())
                .map(|i| {
                    let mut row = Vec::new();
                    matrix.row_into(pi, i, &mut row);
                    row
                })
                .collect()
        })
        .collect();
    for i in 0..names.len() {
        for j in 0..names.len() {
            if i == j {
                continue;
            }
            let (mut labels, mut any_used) = (Vec::new(), false);
            for (pi, p) in probes.iter().enumerate() {
                let (allowed, used) = (rows[pi][i][j], used(usage, pi, i, j));
                any_used |= used;
                match (allowed, used) {
                    (true, false) => labels.push(p.to_string()),
                    (true, true) => labels.push(format!("{p} used")),
                    (false, true) => labels.push(format!("{p} used, denied")),
                    (false, false) => {}
                }
            }
            // Observed: used edges bold, allowed but never used ones dashed.
            let style = match (usage, any_used) {
                (None, _) => "",
                (Some(_), true) => ", style=bold",
                (Some(_), false) => ", style=dashed",
            };
            if !labels.is_empty() {
                writeln!(
                    out,
                    "  {:?} -> {:?} [label={:?}{style}];",
                    names[i],
                    names[j],
                    labels.join(",")
                )?;
            }
        }
    }
    writeln!(out, "}}")
}
