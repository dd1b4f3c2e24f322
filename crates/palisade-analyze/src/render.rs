//! Matrix renderers: `txt` truth tables, `json`, `csv`, `md` and `dot`. All stream row by row, so a
//! 10,000-pod matrix never exists in memory as pods × pods.

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
    match format {
        Format::Txt => txt(matrix, out),
        Format::Json => json(matrix, out),
        Format::Csv => csv(matrix, out),
        Format::Md => md(matrix, out),
        Format::Dot => dot(matrix, out),
    }
}

fn txt(matrix: &dyn Grid, out: &mut dyn Write) -> io::Result<()> {
    let names = matrix.names();
    let mut row = Vec::new();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(1).max(1);
    let mut line = Vec::new();
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
            for &cell in &row {
                line.push(b' ');
                line.push(if cell { b'.' } else { b'X' });
                line.resize(line.len() + width - 1, b' ');
            }
            trim_end(&mut line);
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

fn trim_end(line: &mut Vec<u8>) {
    while line.last() == Some(&b' ') {
        line.pop();
    }
}

fn json(matrix: &dyn Grid, out: &mut dyn Write) -> io::Result<()> {
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
        out.write_all(b"]}")?;
    }
    out.write_all(b"]}\n")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(matrix: &dyn Grid, out: &mut dyn Write) -> io::Result<()> {
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
            for &cell in &row {
                line.extend_from_slice(if cell { b",1" } else { b",0" });
            }
            line.push(b'\n');
            out.write_all(&line)?;
        }
    }
    Ok(())
}

fn md(matrix: &dyn Grid, out: &mut dyn Write) -> io::Result<()> {
    let names = matrix.names();
    let mut row = Vec::new();
    for (pi, probe) in matrix.probes().iter().enumerate() {
        if pi > 0 {
            writeln!(out)?;
        }
        writeln!(out, "### probe {} {}\n", probe.port, probe.protocol)?;
        writeln!(out, "| from \\ to | {} |", names.join(" | "))?;
        writeln!(out, "|---|{}", "---|".repeat(names.len()))?;
        for (i, src) in names.iter().enumerate() {
            matrix.row_into(pi, i, &mut row);
            let cells: Vec<&str> = row.iter().map(|&c| if c { "✓" } else { "✗" }).collect();
            writeln!(out, "| **{src}** | {} |", cells.join(" | "))?;
        }
    }
    Ok(())
}

fn dot(matrix: &dyn Grid, out: &mut dyn Write) -> io::Result<()> {
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
            let labels: Vec<String> = probes
                .iter()
                .enumerate()
                .filter(|(pi, _)| rows[*pi][i][j])
                .map(|(_, p)| p.to_string())
                .collect();
            if !labels.is_empty() {
                writeln!(
                    out,
                    "  {:?} -> {:?} [label={:?}];",
                    names[i],
                    names[j],
                    labels.join(",")
                )?;
            }
        }
    }
    writeln!(out, "}}")
}
