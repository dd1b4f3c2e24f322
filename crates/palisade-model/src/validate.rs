//! Validation of the fields of the objects we read, following the apiserver's rules for names,
//! labels, selectors, ports, protocols and CIDRs (`shared/reference/networkpolicy.md` §5; a
//! NetworkPolicy's own rules are in `netpol.rs`). Every check returns field issues with paths
//! relative to the object root, so the loader can report `file:line: Kind ns/name: field: message`.

use crate::diagnostic::FieldIssue;
use crate::selector::{Expression, LabelOperator, SelectorSpec};
use crate::Protocol;
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Collects field issues while walking an object.
#[derive(Default, Debug)]
pub struct Issues(pub Vec<FieldIssue>);

impl Issues {
    pub(crate) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldIssue::error(field, message));
    }

    /// `Some(value)`, or `None` with the error reported at `field`.
    pub(crate) fn check<T>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, String>,
    ) -> Option<T> {
        result.map_err(|e| self.error(field, e)).ok()
    }

    pub(crate) fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldIssue::warning(field, message));
    }

    /// How many issues are errors.
    fn errors(&self) -> usize {
        (self.0.iter())
            .filter(|i| i.severity == crate::Severity::Error)
            .count()
    }

    /// True when at least one issue is an error.
    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Lowercase alphanumerics or '-', starting and ending with an alphanumeric.
fn label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| is_alnum(c) || c == '-')
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
}

/// DNS-1123 label: at most 63 lowercase alphanumerics or '-', starting and ending alphanumeric.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.len() <= 63 && label_chars(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS-1123 label: 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. 'my-name')"
        ))
    }
}

/// DNS-1123 subdomain: at most 253 characters, dot-separated parts that each start and end with a
/// lowercase alphanumeric.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() <= 253 && s.split('.').all(label_chars) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS-1123 subdomain: at most 253 lowercase letters, digits, '-' or '.', each dot-separated part starting and ending with a letter or digit (e.g. 'example.com')"
        ))
    }
}

fn qualified_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// A label key: optional DNS-subdomain prefix and '/', then a name of at most 63 characters
/// (alphanumerics, '-', '_', '.', starting and ending alphanumeric).
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if dns1123_subdomain(prefix).is_err() {
            return Err(format!(
                "label key {key:?} has an invalid prefix {prefix:?}: it must be a DNS-1123 subdomain (e.g. 'example.com/name')"
            ));
        }
    }
    if qualified_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "label key {key:?} is invalid: the name part must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric (e.g. 'app' or 'example.com/app')"
        ))
    }
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_', '.', starting and ending alphanumeric.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || qualified_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} is invalid: at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric, or empty"
        ))
    }
}

/// Validates a label map (object labels or `matchLabels`).
pub fn labels(map: &BTreeMap<String, String>, path: &str, issues: &mut Issues) {
    for (key, value) in map {
        if let Err(e) = label_key(key) {
            issues.error(format!("{path}[{key:?}]"), e);
        }
        if let Err(e) = label_value(value) {
            issues.error(format!("{path}[{key:?}]"), e);
        }
    }
}

/// Validates a label selector: keys, values and `matchExpressions` operator/values rules. Decodes it
/// in the same walk: `None` exactly when it has an error.
pub fn selector(sel: &LabelSelector, path: &str, issues: &mut Issues) -> Option<SelectorSpec> {
    let errors = issues.errors();
    let match_labels = sel.match_labels.clone().unwrap_or_default();
    labels(&match_labels, &format!("{path}.matchLabels"), issues);
    let mut match_expressions = Vec::new();
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        if let Err(e) = label_key(&expr.key) {
            issues.error(format!("{p}.key"), e);
        }
        let values = expr.values.as_deref().unwrap_or_default();
        let operator = LabelOperator::parse(&expr.operator);
        match operator {
            Some(LabelOperator::In | LabelOperator::NotIn) => {
                if values.is_empty() {
                    issues.error(
                        format!("{p}.values"),
                        format!("operator {} needs at least one value", expr.operator),
                    );
                }
                for (j, v) in values.iter().enumerate() {
                    if let Err(e) = label_value(v) {
                        issues.error(format!("{p}.values[{j}]"), e);
                    }
                }
            }
            Some(LabelOperator::Exists | LabelOperator::DoesNotExist) => {
                if !values.is_empty() {
                    issues.error(
                        format!("{p}.values"),
                        format!("operator {} takes no values", expr.operator),
                    );
                }
            }
            None => issues.error(
                format!("{p}.operator"),
                format!(
                    "unknown operator {:?}; valid: In, NotIn, Exists, DoesNotExist",
                    expr.operator
                ),
            ),
        }
        if let Some(operator) = operator {
            match_expressions.push(Expression {
                key: expr.key.clone(),
                operator,
                values: values.to_vec(),
            });
        }
    }
    (issues.errors() == errors).then_some(SelectorSpec {
        match_labels,
        match_expressions,
    })
}

/// IANA_SVC_NAME (a named port): at most 15 lowercase alphanumerics or '-', at least one letter,
/// no leading, trailing or double '-'.
pub fn port_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name.chars().all(|c| is_alnum(c) || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid port name (IANA_SVC_NAME): 1-15 lowercase letters, digits or '-', at least one letter, no leading, trailing or double '-' (e.g. 'http')"
        ))
    }
}

/// Parses a Kubernetes protocol name (`TCP` when absent). Case-sensitive, as the apiserver.
pub fn protocol(value: Option<&str>) -> Result<Protocol, String> {
    match value {
        None | Some("TCP") => Ok(Protocol::Tcp),
        Some("UDP") => Ok(Protocol::Udp),
        Some("SCTP") => Ok(Protocol::Sctp),
        Some(other) => Err(format!(
            "unsupported protocol {other:?}; valid: TCP, UDP, SCTP (case-sensitive)"
        )),
    }
}

/// Validates a port number (1-65535).
pub fn port_number(n: i32) -> Result<u16, String> {
    if (1..=65535).contains(&n) {
        Ok(n as u16)
    } else {
        Err(format!("port {n} is out of range: must be 1-65535"))
    }
}

/// Parses a CIDR. Returns the network (host bits cleared) and whether the text was canonical.
pub fn cidr(text: &str) -> Result<(IpNet, bool), String> {
    let net: IpNet = text.parse().map_err(|_| {
        format!("{text:?} is not a valid CIDR; expected e.g. '10.0.0.0/16' or 'fd00::/64'")
    })?;
    let canonical = net.trunc();
    Ok((canonical, canonical == net && canonical.to_string() == text))
}

/// The CIDR `text` at `path`, read with host bits cleared: an error when it is not one, a warning
/// when it is not canonical (it is read as its network, as the API server's ipBlock validation
/// allows).
pub(crate) fn cidr_at(text: &str, path: &str, issues: &mut Issues) -> Option<IpNet> {
    let (net, canonical) = issues.check(path, cidr(text))?;
    if !canonical {
        issues.warning(
            path,
            format!("{text:?} is not in canonical form; it is read as {net}"),
        );
    }
    Some(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_key_and_value_syntax() {
        assert!(label_key("app").is_ok());
        assert!(label_key("kubernetes.io/metadata.name").is_ok());
        assert!(label_key("a/b/c").is_err());
        assert!(label_key("Example.com/x").is_err());
        assert!(label_key(&"a".repeat(64)).is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x-Y").is_ok());
        assert!(label_value("-x").is_err());
        assert!(dns1123_label("x").is_ok());
        assert!(dns1123_subdomain("a.b-c.d").is_ok());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("a.-b").is_err());
        assert!(dns1123_subdomain("").is_err());
        assert!(dns1123_subdomain(&"a".repeat(254)).is_err());
        assert!(dns1123_label("x.y").is_err());
        assert!(port_name("serve-80-tcp").is_ok());
        assert!(port_name(&"a".repeat(16)).is_err());
    }
}
