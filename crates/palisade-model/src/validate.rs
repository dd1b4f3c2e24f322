//! Validation of the objects we read, following the apiserver's rules for names, labels, selectors,
//! ports and NetworkPolicy (`shared/reference/networkpolicy.md` §5). Every check returns field issues with
//! paths relative to the object root, so the loader can report `file:line: Kind ns/name: field: message`.

use crate::diagnostic::FieldIssue;
use crate::netpol::{
    effective_types, IpBlock, PolicyPeer, PolicyRule, PolicySpec, PortMatch, PortSpec,
};
use crate::selector::{Expression, LabelOperator, SelectorSpec};
use crate::Protocol;
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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

fn policy_port(port: &NetworkPolicyPort, path: &str, issues: &mut Issues) -> Option<PortSpec> {
    let protocol = issues.check(
        format!("{path}.protocol"),
        protocol(port.protocol.as_deref()),
    );
    let end_path = format!("{path}.endPort");
    let matched = match &port.port {
        Some(IntOrString::Int(n)) => {
            let lo = issues.check(format!("{path}.port"), port_number(*n));
            let hi = match port.end_port {
                None => lo,
                Some(end) => {
                    let end = port_number(end).and_then(|end| {
                        if i32::from(end) < *n {
                            Err(format!(
                                "endPort {end} must be greater than or equal to port {n}"
                            ))
                        } else {
                            Ok(end)
                        }
                    });
                    issues.check(end_path, end)
                }
            };
            lo.zip(hi).map(|(lo, hi)| PortMatch::Range(lo, hi))
        }
        Some(IntOrString::String(name)) => {
            let name = issues.check(format!("{path}.port"), port_name(name).map(|()| name));
            if port.end_port.is_some() {
                issues.error(
                    end_path,
                    "endPort may not be used with a named port; use a numeric port",
                );
                None
            } else {
                name.map(|name| PortMatch::Named(name.clone()))
            }
        }
        None => {
            if port.end_port.is_some() {
                issues.error(end_path, "endPort requires a numeric port");
                None
            } else {
                Some(PortMatch::Any)
            }
        }
    };
    Some(PortSpec {
        protocol: protocol?,
        port: matched?,
    })
}

fn peer(peer: &NetworkPolicyPeer, path: &str, issues: &mut Issues) -> Option<PolicyPeer> {
    let selectors = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
    let shape = match &peer.ip_block {
        Some(_) if selectors => Err(
            "ipBlock may not be combined with podSelector or namespaceSelector in one peer; use separate peers",
        ),
        None if !selectors => Err("a peer must set podSelector, namespaceSelector or ipBlock"),
        _ => Ok(()),
    };
    let shape = issues.check(path, shape.map_err(String::from));
    let any = LabelSelector::default();
    let pods = peer.pod_selector.as_ref().unwrap_or(&any);
    let pods = selector(pods, &format!("{path}.podSelector"), issues);
    let namespaces = (peer.namespace_selector.as_ref())
        .map(|sel| selector(sel, &format!("{path}.namespaceSelector"), issues));
    let decoded = match &peer.ip_block {
        Some(block) => ip_block(block, path, issues).map(PolicyPeer::IpBlock),
        None => Some(PolicyPeer::Pods {
            namespaces: namespaces.map_or(Some(None), |n| n.map(Some))?,
            pods: pods?,
        }),
    };
    shape.and(decoded)
}

fn ip_block(block: &IPBlock, path: &str, issues: &mut Issues) -> Option<IpBlock> {
    let cidr_path = format!("{path}.ipBlock.cidr");
    let outer = match cidr(&block.cidr) {
        Ok((net, canonical)) => {
            if !canonical {
                issues.warning(
                    &cidr_path,
                    format!(
                        "{:?} is not in canonical form; it is read as {net}",
                        block.cidr
                    ),
                );
            }
            Some(net)
        }
        Err(e) => {
            issues.error(&cidr_path, e);
            None
        }
    };
    let except: Vec<Option<IpNet>> = (block.except.iter().flatten().enumerate())
        .map(|(i, text)| {
            let p = format!("{path}.ipBlock.except[{i}]");
            let (net, canonical) = issues.check(&p, cidr(text))?;
            // Without a valid cidr (its error is reported) there is nothing to check against.
            let outer = outer?;
            let same_family = matches!(
                (net, outer),
                (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
            );
            if !same_family {
                issues.error(
                    p,
                    format!("{text:?} is not of the same address family as cidr {outer}"),
                );
                return None;
            }
            if !(outer.contains(&net) && net.prefix_len() > outer.prefix_len()) {
                issues.error(
                    p,
                    format!(
                        "{text:?} must be strictly inside cidr {outer} (a smaller block within it)"
                    ),
                );
                return None;
            }
            if !canonical {
                issues.warning(
                    p,
                    format!("{text:?} is not in canonical form; it is read as {net}"),
                );
            }
            Some(net)
        })
        .collect();
    Some(IpBlock {
        cidr: outer?,
        except: except.into_iter().collect::<Option<_>>()?,
    })
}

/// `None` for an empty list: in a rule, the same as an omitted one.
fn non_empty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

/// Validates and decodes one rule (`field` is `from` or `to`): `None` when it has an error.
fn rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    path: &str,
    field: &str,
    issues: &mut Issues,
) -> Option<PolicyRule> {
    let peers: Vec<_> = (peers.into_iter().flatten().enumerate())
        .map(|(j, p)| peer(p, &format!("{path}.{field}[{j}]"), issues))
        .collect();
    let ports: Vec<_> = (ports.into_iter().flatten().enumerate())
        .map(|(j, p)| policy_port(p, &format!("{path}.ports[{j}]"), issues))
        .collect();
    Some(PolicyRule {
        peers: non_empty(peers.into_iter().collect::<Option<_>>()?),
        ports: non_empty(ports.into_iter().collect::<Option<_>>()?),
    })
}

/// Validates a NetworkPolicy (§5 of the reference): name, selectors, peers, ipBlocks, ports,
/// policyTypes. Errors reject the object; warnings are reported and the object is used. Decodes it
/// in the same walk: the spec is there exactly when no issue is an error ([`ValidPolicy::new`]).
///
/// [`ValidPolicy::new`]: crate::ValidPolicy::new
pub(crate) fn network_policy(np: &NetworkPolicy) -> (Issues, Option<PolicySpec>) {
    let mut issues = Issues::default();
    match np.metadata.name.as_deref() {
        None => issues.error("metadata.name", "a NetworkPolicy needs a name"),
        Some(name) => {
            if let Err(e) = dns1123_subdomain(name) {
                issues.error("metadata.name", e);
            }
        }
    }
    if let Some(ns) = np.metadata.namespace.as_deref() {
        if let Err(e) = dns1123_label(ns) {
            issues.error("metadata.namespace", e);
        }
    }
    if let Some(map) = &np.metadata.labels {
        labels(map, "metadata.labels", &mut issues);
    }
    let Some(spec) = &np.spec else {
        issues.error(
            "spec",
            "a NetworkPolicy needs a spec (at least `podSelector: {}`)",
        );
        return (issues, None);
    };
    let pod_selector = selector(
        spec.pod_selector
            .as_ref()
            .unwrap_or(&LabelSelector::default()),
        "spec.podSelector",
        &mut issues,
    );
    let mut seen = Vec::new();
    for (i, t) in spec.policy_types.iter().flatten().enumerate() {
        if t != "Ingress" && t != "Egress" {
            issues.error(
                format!("spec.policyTypes[{i}]"),
                format!("unknown policy type {t:?}; valid: Ingress, Egress"),
            );
        } else if seen.contains(&t) {
            issues.error(
                format!("spec.policyTypes[{i}]"),
                format!("duplicate policy type {t:?}"),
            );
        }
        seen.push(t);
    }
    let ingress: Vec<_> = (spec.ingress.iter().flatten().enumerate())
        .map(|(i, r)| {
            let (peers, ports) = (r.from.as_deref(), r.ports.as_deref());
            rule(
                peers,
                ports,
                &format!("spec.ingress[{i}]"),
                "from",
                &mut issues,
            )
        })
        .collect();
    let egress: Vec<_> = (spec.egress.iter().flatten().enumerate())
        .map(|(i, r)| {
            let (peers, ports) = (r.to.as_deref(), r.ports.as_deref());
            rule(
                peers,
                ports,
                &format!("spec.egress[{i}]"),
                "to",
                &mut issues,
            )
        })
        .collect();
    if issues.has_errors() {
        return (issues, None);
    }
    // Every part that failed to decode reported an error: all are there.
    let (has_ingress, has_egress) = effective_types(spec);
    // `Some(None)` for a direction the policy does not govern.
    let rules = |has: bool, rules: Vec<Option<PolicyRule>>| match has {
        true => rules.into_iter().collect::<Option<Vec<_>>>().map(Some),
        false => Some(None),
    };
    let decoded = (|| {
        Some(PolicySpec {
            pod_selector: pod_selector?,
            ingress: rules(has_ingress, ingress)?,
            egress: rules(has_egress, egress)?,
        })
    })();
    debug_assert!(decoded.is_some(), "a part failed without an error");
    (issues, decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn np(spec: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "x"}, "spec": spec
        }))
        .unwrap()
    }

    fn errors(spec: serde_json::Value) -> Vec<String> {
        network_policy(&np(spec))
            .0
             .0
            .into_iter()
            .filter(|i| i.severity == crate::Severity::Error)
            .map(|i| i.field)
            .collect()
    }

    #[test]
    fn valid_policy_has_no_issues() {
        let (issues, spec) = network_policy(&np(json!({
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [
                {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]},
                 "podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                "ports": [{"port": 80}, {"port": "http", "protocol": "TCP"}, {"port": 1000, "endPort": 2000, "protocol": "UDP"}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/8", "except": ["fd00:1::/32"]}}], "ports": [{"protocol": "SCTP"}]}]
        })));
        assert!(issues.0.is_empty(), "{issues:?}");
        assert!(spec.is_some());
    }

    #[test]
    fn in_operator_needs_values() {
        assert_eq!(
            errors(
                json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}})
            ),
            vec!["spec.podSelector.matchExpressions[0].values"]
        );
        assert_eq!(
            errors(
                json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}})
            ),
            vec!["spec.podSelector.matchExpressions[0].values"]
        );
        assert_eq!(
            errors(json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}})),
            vec!["spec.podSelector.matchExpressions[0].operator"]
        );
    }

    #[test]
    fn except_must_be_strictly_inside_and_same_family() {
        let e = errors(
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16",
            "except": ["10.0.0.0/16", "10.1.0.0/24", "fd00::/64", "10.0.1.0/24", "bogus"]}}]}]}),
        );
        assert_eq!(
            e,
            vec![
                "spec.ingress[0].from[0].ipBlock.except[0]",
                "spec.ingress[0].from[0].ipBlock.except[1]",
                "spec.ingress[0].from[0].ipBlock.except[2]",
                "spec.ingress[0].from[0].ipBlock.except[4]",
            ]
        );
    }

    #[test]
    fn non_canonical_cidr_is_a_warning() {
        let (issues, spec) = network_policy(&np(
            json!({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.1/8"}}]}]}),
        ));
        assert!(spec.is_some(), "a warning does not reject");
        assert_eq!(issues.0.len(), 1);
        assert_eq!(issues.0[0].severity, crate::Severity::Warning);
        assert!(issues.0[0].message.contains("10.0.0.0/8"));
    }

    #[test]
    fn end_port_rules() {
        let e = errors(json!({"podSelector": {}, "ingress": [{"ports": [
            {"port": 100, "endPort": 99}, {"port": "http", "endPort": 100}, {"endPort": 5}, {"port": 0}, {"port": 70000},
            {"port": "Http"}, {"port": "a--b"}, {"port": "1234"}, {"port": 53, "protocol": "ICMP"}, {"port": 53, "protocol": "udp"}]}]}));
        assert_eq!(
            e,
            vec![
                "spec.ingress[0].ports[0].endPort",
                "spec.ingress[0].ports[1].endPort",
                "spec.ingress[0].ports[2].endPort",
                "spec.ingress[0].ports[3].port",
                "spec.ingress[0].ports[4].port",
                "spec.ingress[0].ports[5].port",
                "spec.ingress[0].ports[6].port",
                "spec.ingress[0].ports[7].port",
                "spec.ingress[0].ports[8].protocol",
                "spec.ingress[0].ports[9].protocol",
            ]
        );
    }

    #[test]
    fn peer_shape_rules() {
        let e = errors(json!({"podSelector": {}, "egress": [{"to": [
            {}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}));
        assert_eq!(e, vec!["spec.egress[0].to[0]", "spec.egress[0].to[1]"]);
    }

    #[test]
    fn names_types_and_labels() {
        let mut p = np(
            json!({"podSelector": {"matchLabels": {"bad key!": "v", "ok": "-bad"}}, "policyTypes": ["Ingress", "Ingress", "Foo"]}),
        );
        p.metadata.name = Some("Bad_Name".into());
        let fields: Vec<_> = network_policy(&p)
            .0
             .0
            .into_iter()
            .map(|i| i.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "metadata.name",
                "spec.podSelector.matchLabels[\"bad key!\"]",
                "spec.podSelector.matchLabels[\"ok\"]",
                "spec.policyTypes[1]",
                "spec.policyTypes[2]",
            ]
        );
    }

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
