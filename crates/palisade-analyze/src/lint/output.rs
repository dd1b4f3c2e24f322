//! A lint report as text (one finding per paragraph, `file:line: severity[rule]: object: field:
//! message`, then the fix), as one JSON document, or as SARIF 2.1.0 for code-scanning tools.

use super::{Finding, Report, Rule, Severity};
use serde_json::{json, Map, Value};
use std::fmt::Write;

/// The report as text, findings first, then the counts.
pub fn to_text(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        if let Some(origin) = &f.origin {
            let _ = write!(out, "{origin}: ");
        }
        let _ = write!(out, "{}[{}]: {}: ", f.severity().as_str(), f.rule, f.object);
        if let Some(field) = &f.field {
            let _ = write!(out, "{field}: ");
        }
        let _ = writeln!(out, "{}\n  fix: {}\n", f.message, f.fix);
    }
    let c = report.counts();
    let _ = write!(
        out,
        "{} finding{}: {} error{}, {} warning{}, {} info",
        report.findings.len(),
        if report.findings.len() == 1 { "" } else { "s" },
        c.error,
        if c.error == 1 { "" } else { "s" },
        c.warning,
        if c.warning == 1 { "" } else { "s" },
        c.info
    );
    if report.silenced > 0 {
        let _ = write!(
            out,
            " ({} silenced by {})",
            report.silenced,
            super::DISABLE_ANNOTATION
        );
    }
    out.push('\n');
    out
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "rule": f.rule.id(),
        "severity": f.severity(),
        "object": f.object.to_string(),
        "kind": f.object.kind,
        "namespace": f.object.namespace,
        "name": f.object.name,
        "file": f.origin.as_ref().map(|o| &o.file),
        "line": f.origin.as_ref().and_then(|o| o.line),
        "field": f.field,
        "message": f.message,
        "fix": f.fix,
    })
}

/// The report as one JSON document: `findings` (rule, severity, object with its kind, namespace
/// and name, file, line, field, message, fix), `counts` by severity, and `silenced`.
pub fn to_json(report: &Report) -> Value {
    json!({
        "findings": report.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "counts": report.counts(),
        "silenced": report.silenced,
    })
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// `path` as a SARIF artifact URI: an API server's object URL as it is; a relative reference for
/// a relative path, `file://` for an absolute one, everything but unreserved characters and `/`
/// percent-encoded.
fn uri(path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_string();
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn result(f: &Finding) -> Value {
    let mut location = Map::new();
    // Standard input has no artifact to point at.
    if let Some(origin) = f.origin.as_ref().filter(|o| o.file != "-") {
        let mut physical = json!({"artifactLocation": {"uri": uri(&origin.file)}});
        if let Some(line) = origin.line {
            physical["region"] = json!({"startLine": line});
        }
        location.insert("physicalLocation".into(), physical);
    }
    location.insert(
        "logicalLocations".into(),
        json!([{"name": f.object.to_string(), "kind": "object"}]),
    );
    let rule_index = Rule::ALL.iter().position(|r| *r == f.rule);
    json!({
        "ruleId": f.rule.id(),
        "ruleIndex": rule_index,
        "level": level(f.severity()),
        "message": {"text": format!("{}: {}. Fix: {}", f.object, f.message, f.fix)},
        "locations": [location],
        "properties": {"field": f.field, "fix": f.fix},
    })
}

/// The report as a SARIF 2.1.0 log: one run, every rule in `tool.driver.rules`, one result per
/// finding.
pub fn to_sarif(report: &Report) -> Value {
    let rules: Vec<Value> = (Rule::ALL.iter())
        .map(|r| {
            json!({
                "id": r.id(),
                "shortDescription": {"text": r.summary()},
                "defaultConfiguration": {"level": level(r.severity())},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "palisade",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": report.findings.iter().map(result).collect::<Vec<_>>(),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(uri("manifests/web.yaml"), "manifests/web.yaml");
        assert_eq!(uri("/tmp/a b/x#1.yaml"), "file:///tmp/a%20b/x%231.yaml");
        assert_eq!(uri("ü.yaml"), "%C3%BC.yaml");
        let api = "https://10.0.0.1:6443/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/b";
        assert_eq!(uri(api), api);
    }
}
