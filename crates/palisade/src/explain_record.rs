//! `palisade explain --record`: recorded flows (`policy_action.log` lines, or `observe -o json`
//! events, which are the same records) explained against the manifests, with the minimal fix for
//! each denied one.

use crate::exit;
use palisade_agent::record::Record;
use palisade_analyze::diff::{to_json, to_text as diff_text};
use palisade_analyze::explain::{explain, resolve_endpoint, to_text};
use palisade_analyze::fix::{propose, Fix};
use palisade_model::ClusterState;
use palisade_policy::{Endpoint, Engine, Flow};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A record is a few hundred bytes; a longer line is not one (and is not held whole).
const MAX_LINE_BYTES: u64 = 64 * 1024;
/// More records than this are not read: filter the log first (`grep`, `observe --file`).
const MAX_RECORDS: usize = 100_000;

/// What the records were read from, for messages (`file:line`).
struct Source {
    name: String,
    records: Vec<(usize, Record)>,
    bad: usize,
}

/// Reads records from `reader`, reporting each bad line (`name:line: why`) on stderr and skipping
/// it; lines are bounded in length and count.
fn read_records(mut reader: impl BufRead, name: &str) -> io::Result<Source> {
    let mut source = Source {
        name: name.to_string(),
        records: Vec::new(),
        bad: 0,
    };
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if line.last() != Some(&b'\n') && read as u64 > MAX_LINE_BYTES {
            // Skip the rest of the line without holding it.
            let mut rest = Vec::new();
            while (&mut reader)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut rest)?
                > 0
            {
                if rest.last() == Some(&b'\n') {
                    break;
                }
                rest.clear();
            }
            bad(
                &mut source,
                number,
                "line longer than 64 KiB: not a policy action record",
            );
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        if source.records.len() == MAX_RECORDS {
            eprintln!(
                "error: {name}:{number}: more than {MAX_RECORDS} records; the rest is not read \
                 (select the records of interest first, e.g. with grep)"
            );
            source.bad += 1;
            break;
        }
        match serde_json::from_str::<Record>(text.trim()) {
            Ok(record) => source.records.push((number, record)),
            Err(e) => bad(
                &mut source,
                number,
                &format!("not a policy action record: {e}"),
            ),
        }
    }
    Ok(source)
}

fn bad(source: &mut Source, number: usize, why: &str) {
    eprintln!("warning: {}:{number}: {why}; line skipped", source.name);
    source.bad += 1;
}

/// Opens `path` (`-` for standard input) and reads its records.
fn read_path(path: &Path) -> Result<Source, String> {
    let result = if path == Path::new("-") {
        read_records(io::stdin().lock(), "-")
    } else {
        File::open(path).and_then(|f| read_records(BufReader::new(f), &path.display().to_string()))
    };
    result.map_err(|e| format!("--record {}: {e}", path.display()))
}

/// One recorded flow (records of the same 5-tuple but the source port are told once).
struct Recorded {
    line: usize,
    records: usize,
    attempts: u64,
    record: Record,
}

fn group(records: Vec<(usize, Record)>) -> Vec<Recorded> {
    let mut flows: Vec<Recorded> = Vec::new();
    let mut index = HashMap::new();
    for (line, record) in records {
        let c = &record.connection;
        let key = (
            c.src_ip,
            c.dest_ip,
            c.dest_port,
            c.protocol,
            record.disposition,
        );
        let i = *index.entry(key).or_insert_with(|| {
            flows.push(Recorded {
                line,
                records: 0,
                attempts: 0,
                record: record.clone(),
            });
            flows.len() - 1
        });
        flows[i].records += 1;
        flows[i].attempts = flows[i].attempts.saturating_add(record.count);
    }
    flows
}

/// How `explain --record` prints and what it writes.
pub struct Options<'a> {
    /// `text` or `json`.
    pub output: &'a str,
    /// Where fixes are written, if anywhere.
    pub apply_fix: Option<&'a Path>,
}

/// Explains every record of `path` against `engine`'s cluster: exit 1 if a recorded flow is denied
/// now, 2 if a line, a manifest or a fix could not be used.
pub fn run(engine: &Engine, path: &Path, options: &Options, rejected: bool) -> u8 {
    let source = match read_path(path) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    if source.records.is_empty() {
        eprintln!("error: {}: no policy action records", source.name);
        return exit::INVALID;
    }
    if let Some(dir) = options.apply_fix {
        if let Err(e) = check_dir(dir) {
            eprintln!("error: --apply-fix {}: {e}", dir.display());
            return exit::INVALID;
        }
    }
    let (mut denied, mut failed) = (false, source.bad > 0 || rejected);
    for recorded in group(source.records) {
        match one(engine, &source.name, &recorded, options) {
            Ok(allowed) => denied |= !allowed,
            Err(e) => {
                eprintln!("error: {}:{}: {e}", source.name, recorded.line);
                failed = true;
            }
        }
    }
    if failed {
        exit::INVALID
    } else if denied {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

/// The record's endpoint: a pod of the manifests, or an address no pod has (said in `unknown`).
fn endpoint(state: &ClusterState, ip: IpAddr, unknown: &mut Vec<String>) -> Endpoint {
    let e = resolve_endpoint(state, &ip.to_string(), "").unwrap_or(Endpoint::Ip(ip));
    if matches!(e, Endpoint::Ip(_)) {
        unknown.push(format!("address {ip} matches no pod in the manifests"));
    }
    e
}

/// Explains one recorded flow; `Ok(allowed now)`.
fn one(engine: &Engine, name: &str, r: &Recorded, options: &Options) -> Result<bool, String> {
    let state = engine.state();
    let c = &r.record.connection;
    let mut unknown = Vec::new();
    let src = endpoint(state, c.src_ip, &mut unknown);
    let dst = endpoint(state, c.dest_ip, &mut unknown);
    let headline = format!(
        "{name}:{}: {} -> {} {}/{}: recorded {} at {}{}",
        r.line,
        c.src_ip,
        c.dest_ip,
        c.protocol.as_str().to_ascii_lowercase(),
        c.dest_port,
        r.record.disposition.as_str(),
        c.direction.as_str(),
        if r.records > 1 || r.attempts > 1 {
            format!(" ({} records, {} attempts)", r.records, r.attempts)
        } else {
            String::new()
        }
    );
    if unknown.len() == 2 {
        print(options, &headline, &unknown, None, None)?;
        // Nothing of the cluster to explain: neither address is a pod of these manifests.
        return Ok(true);
    }
    let flow = Flow {
        src,
        dst,
        port: c.dest_port,
        protocol: c.protocol,
    };
    let explanation = explain(engine, flow);
    let allowed = explanation.verdict.allowed;
    let fix = propose(engine, &flow)?;
    print(
        options,
        &headline,
        &unknown,
        Some(&explanation),
        fix.as_ref(),
    )?;
    if let (Some(fix), Some(dir)) = (&fix, options.apply_fix) {
        let written = write_fix(dir, fix)?;
        eprintln!("wrote {}", written.display());
    }
    Ok(allowed)
}

fn print(
    options: &Options,
    headline: &str,
    unknown: &[String],
    explanation: Option<&palisade_analyze::explain::Explanation>,
    fix: Option<&Fix>,
) -> Result<(), String> {
    let text = if options.output == "json" {
        let fix = fix.map(|f| {
            serde_json::json!({"yaml": f.to_yaml(), "exact": f.exact, "allows": to_json(&f.report)})
        });
        let json = serde_json::json!({
            "record": headline, "unmatched": unknown, "explanation": explanation, "fix": fix,
        });
        json.to_string()
    } else {
        let mut text = format!("{headline}\n");
        for u in unknown {
            text += &format!("  {u}\n");
        }
        if let Some(e) = explanation {
            text += &to_text(e);
        }
        if let Some(f) = fix {
            text += &fix_text(f);
        }
        text
    };
    if crate::print_text(&text) {
        Ok(())
    } else {
        Err("cannot write the output".into())
    }
}

fn fix_text(fix: &Fix) -> String {
    let mut text = String::from("Minimal fix: add\n---\n");
    text += &fix.to_yaml();
    text += "---\n";
    if fix.exact {
        text += "It allows this flow's workload pair on this port, nothing else:\n";
    } else {
        text += "WARNING: it allows more than this flow's workload pair on this port:\n";
    }
    text += &diff_text(&fix.report);
    text
}

/// `dir` must be a directory, not a symbolic link to one.
fn check_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if meta.file_type().is_symlink() {
        return Err("is a symbolic link; give the directory itself".into());
    }
    if !meta.is_dir() {
        return Err("is not a directory".into());
    }
    Ok(())
}

/// Writes `fix` as a new file `DIR/<ns>-<policy>.yaml`, mode 0644: never over an existing file
/// (or through a symbolic link: creating exclusively does not follow one).
fn write_fix(dir: &Path, fix: &Fix) -> Result<PathBuf, String> {
    let first = &fix.policies[0].metadata;
    let file = format!(
        "{}-{}.yaml",
        first.namespace.as_deref().unwrap_or_default(),
        first.name.as_deref().unwrap_or_default()
    );
    let path = dir.join(file);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(fix.to_yaml().as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => format!(
            "--apply-fix: {} exists; not overwritten (remove it, or apply the fix shown)",
            path.display()
        ),
        _ => format!("--apply-fix: writing {}: {e}", path.display()),
    })?;
    Ok(path)
}
