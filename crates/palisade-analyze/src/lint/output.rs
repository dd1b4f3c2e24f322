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

/// The `uriBaseId` of objects read from an API server: their artifact URIs are their API paths
/// relative to it (`apis/networking.k8s.io/v1/namespaces/NS/networkpolicies/NAME`), the same in
/// every run whatever address the server was reached at, so code-scanning tools track a finding
/// across runs; the run's `originalUriBaseIds` says which server that was.
const CLUSTER_BASE: &str = "CLUSTER";

/// `path` as a SARIF artifact URI: a relative reference for a relative path, `file://` for an
/// absolute one, everything but unreserved characters and `/` percent-encoded.
fn file_uri(path: &str) -> String {
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

/// An API server's object URL split into the server (up to and with the `/` before the API root)
/// and the object's path from its API root (`api/v1/…` or `apis/GROUP/VERSION/…`): the last two
/// segments name a cluster-scoped object, the last four (`namespaces/NS/PLURAL/NAME`) a namespaced
/// one. Counted from the end, so that neither a server's path prefix nor a namespace named `apis`
/// is taken for the root. `None` for anything else.
fn api_object(url: &str, namespaced: bool) -> Option<(&str, &str)> {
    let after_scheme = (["https://", "http://"].iter())
        .find_map(|scheme| url.starts_with(scheme).then_some(scheme.len()))?;
    let slashes: Vec<usize> = (url.match_indices('/').map(|(i, _)| i))
        .filter(|&i| i >= after_scheme)
        .collect();
    // The segment `k` places from the end (1: the last), and the slash before it.
    let segment = |k: usize| -> Option<(usize, &str)> {
        let at = slashes.len().checked_sub(k)?;
        let end = slashes.get(at + 1).copied().unwrap_or(url.len());
        Some((slashes[at], &url[slashes[at] + 1..end]))
    };
    let object = if namespaced { 4 } else { 2 };
    let root = match (segment(object + 2)?, segment(object + 3)) {
        ((at, "api"), _) if segment(object + 1)?.1 == "v1" => at,
        (_, Some((at, "apis"))) => at,
        _ => return None,
    };
    Some((&url[..=root], &url[root + 1..]))
}

/// Where a finding's object is: its file, or its API path relative to the server it was read
/// from (added to `bases`).
fn artifact(f: &Finding, file: &str, bases: &mut Vec<String>) -> Value {
    let is_url = file.starts_with("http://") || file.starts_with("https://");
    let Some((server, path)) = api_object(file, f.object.namespace.is_some()) else {
        // A URL that names no object (never made so): as it is.
        return json!({"uri": if is_url { file.to_string() } else { file_uri(file) }});
    };
    let index = (bases.iter().position(|b| b == server)).unwrap_or_else(|| {
        bases.push(server.to_string());
        bases.len() - 1
    });
    json!({"uri": path, "uriBaseId": base_id(index)})
}

/// [`CLUSTER_BASE`], then `CLUSTER2`… should findings come from several servers.
fn base_id(index: usize) -> String {
    match index {
        0 => CLUSTER_BASE.to_string(),
        i => format!("{CLUSTER_BASE}{}", i + 1),
    }
}

fn result(f: &Finding, bases: &mut Vec<String>) -> Value {
    let mut location = Map::new();
    // Standard input has no artifact to point at.
    if let Some(origin) = f.origin.as_ref().filter(|o| o.file != "-") {
        let mut physical = json!({"artifactLocation": artifact(f, &origin.file, bases)});
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
        // The same rule on the same object's field is the same finding, run after run.
        "partialFingerprints": {
            "palisadeFinding/v1": format!("{} {} {}", f.rule.id(), f.object, f.field.as_deref().unwrap_or("")),
        },
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
    let mut bases = Vec::new();
    let results: Vec<Value> = (report.findings.iter())
        .map(|f| result(f, &mut bases))
        .collect();
    let mut log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "palisade",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    if !bases.is_empty() {
        let bases: Map<String, Value> = (bases.into_iter().enumerate())
            .map(|(i, server)| {
                let about = "The API server the cluster was read from";
                (
                    base_id(i),
                    json!({"uri": server, "description": {"text": about}}),
                )
            })
            .collect();
        log["runs"][0]["originalUriBaseIds"] = Value::Object(bases);
    }
    log
}

#[cfg(test)]
mod tests {
    use super::{api_object, file_uri};

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(file_uri("manifests/web.yaml"), "manifests/web.yaml");
        assert_eq!(
            file_uri("/tmp/a b/x#1.yaml"),
            "file:///tmp/a%20b/x%231.yaml"
        );
        assert_eq!(file_uri("ü.yaml"), "%C3%BC.yaml");
    }

    #[test]
    fn api_urls_split_into_server_and_object_path() {
        let policy =
            "https://10.0.0.1:6443/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/b";
        assert_eq!(
            api_object(policy, true),
            Some((
                "https://10.0.0.1:6443/",
                "apis/networking.k8s.io/v1/namespaces/a/networkpolicies/b"
            ))
        );
        // A server behind a path prefix, and a namespace named like an API root.
        let service = "https://rancher/k8s/clusters/c-1/api/v1/namespaces/apis/services/api";
        assert_eq!(
            api_object(service, true),
            Some((
                "https://rancher/k8s/clusters/c-1/",
                "api/v1/namespaces/apis/services/api"
            ))
        );
        let cluster_wide =
            "http://api/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies/deny-imds";
        assert_eq!(
            api_object(cluster_wide, false),
            Some((
                "http://api/",
                "apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies/deny-imds"
            ))
        );
        assert_eq!(
            api_object("https://api/api/v1/namespaces/a", false),
            Some(("https://api/", "api/v1/namespaces/a"))
        );
        for not_an_object in [
            "https://api/",
            "https://api/v1/nodes/n1",
            "https://api/healthz/a/b/c/d",
            "manifests/web.yaml",
            "",
        ] {
            assert_eq!(api_object(not_an_object, true), None, "{not_an_object}");
            assert_eq!(api_object(not_an_object, false), None, "{not_an_object}");
        }
    }
}
