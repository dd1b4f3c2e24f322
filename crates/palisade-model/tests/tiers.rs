//! The cluster-wide tiers read and validated: ClusterNetworkPolicy (v1alpha2) and the v1alpha1
//! AdminNetworkPolicy and BaselineAdminNetworkPolicy decode to the typed spec with the API's
//! defaults, every validation rule of the API rejects with the field's path and what is valid, a
//! peer or port entry of no known field fails closed with a warning, and loads carry them into
//! `ClusterState::tier_policies`.

use palisade_model::selector::SelectorSpec;
use palisade_model::validate::Issues;
use palisade_model::{
    ClusterState, Diagnostic, Kind, Loader, NamespacedPods, Protocol, Severity, Subject, Tier,
    TierAction, TierObject, TierPeer, TierPolicySpec, TierPort, TierRule, ValidTierPolicy,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// helpers

fn object(kind: Kind, name: &str, spec: Value) -> TierObject {
    serde_json::from_value(json!({
        "apiVersion": kind.api_version(), "kind": kind.as_str(),
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

fn decode(kind: Kind, spec: Value) -> Result<(ValidTierPolicy, Issues), Issues> {
    let name = if kind == Kind::BaselineAdminNetworkPolicy {
        "default"
    } else {
        "p"
    };
    ValidTierPolicy::new(kind, object(kind, name, spec))
}

/// The decoded spec of a valid policy that says nothing.
fn spec(kind: Kind, spec: Value) -> TierPolicySpec {
    let (policy, issues) = decode(kind, spec.clone()).unwrap_or_else(|i| panic!("{spec}: {i:?}"));
    assert!(issues.0.is_empty(), "{spec}: {issues:?}");
    policy.spec().clone()
}

/// The errors rejecting `spec`, as (field, message).
fn errors(kind: Kind, spec: Value) -> Vec<(String, String)> {
    let issues = decode(kind, spec.clone()).expect_err(&spec.to_string());
    (issues.0.into_iter())
        .filter(|i| i.severity == Severity::Error)
        .map(|i| (i.field, i.message))
        .collect()
}

/// Asserts `spec` is rejected with exactly one error, at `field`, whose message says `valid`.
fn rejected_at(kind: Kind, spec: Value, field: &str, valid: &str) {
    let errors = errors(kind, spec.clone());
    assert_eq!(errors.len(), 1, "{spec}: {errors:#?}");
    let (at, message) = &errors[0];
    assert_eq!(at, field, "{spec}: {message}");
    assert!(
        message.contains(valid),
        "{spec}: {message:?} lacks {valid:?}"
    );
}

const CNP: Kind = Kind::ClusterNetworkPolicy;
const ANP: Kind = Kind::AdminNetworkPolicy;
const BANP: Kind = Kind::BaselineAdminNetworkPolicy;

fn labels(pairs: &[(&str, &str)]) -> SelectorSpec {
    SelectorSpec {
        match_labels: (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        match_expressions: Vec::new(),
    }
}

fn net(text: &str) -> ipnet::IpNet {
    text.parse().unwrap()
}

/// A valid v1alpha2 CNP with `rule` as its only egress rule.
fn cnp_egress(rule: Value) -> Value {
    json!({"tier": "Admin", "priority": 10, "subject": {"namespaces": {}}, "egress": [rule]})
}

fn cnp_ingress(rule: Value) -> Value {
    json!({"tier": "Admin", "priority": 10, "subject": {"namespaces": {}}, "ingress": [rule]})
}

fn anp_egress(rule: Value) -> Value {
    json!({"priority": 10, "subject": {"namespaces": {}}, "egress": [rule]})
}

fn all_namespaces() -> Value {
    json!({"namespaces": {}})
}

// ---------------------------------------------------------------------------------------------
// decoding

#[test]
fn every_shape_of_a_cluster_network_policy_is_typed() {
    let (policy, issues) = decode(
        CNP,
        json!({
            "tier": "Admin", "priority": 10,
            "subject": {"pods": {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {"matchLabels": {"app": "web"}}}},
            "ingress": [{"name": "from-monitoring", "action": "Accept",
                "from": [{"namespaces": {"matchLabels": {"team": "mon"}}}, {"pods": {"podSelector": {}}}],
                "protocols": [{"tcp": {"destinationPort": {"number": 8080}}},
                              {"udp": {"destinationPort": {"range": {"start": 5000, "end": 5010}}}},
                              {"sctp": {"destinationPort": {"number": 9}}},
                              {"destinationNamedPort": "metrics"}]}],
            "egress": [
                {"name": "block-metadata", "action": "Deny", "to": [{"networks": ["169.254.169.254/32", "fd00::/8"]}]},
                {"action": "Pass", "to": [{"nodes": {"matchLabels": {"role": "infra"}}}]},
                {"name": "", "action": "Accept", "to": [{"domainNames": ["example.com", "*.example.org."]}]}]
        }),
    )
    .expect("valid");
    assert_eq!(policy.kind(), CNP);
    assert_eq!(policy.name(), "p");
    let expected = TierPolicySpec {
        tier: Tier::Admin,
        priority: Some(10),
        subject: Subject::Pods(NamespacedPods {
            namespaces: labels(&[("team", "a")]),
            pods: labels(&[("app", "web")]),
        }),
        ingress: vec![TierRule {
            name: Some("from-monitoring".into()),
            action: TierAction::Accept,
            peers: vec![
                TierPeer::Namespaces(labels(&[("team", "mon")])),
                TierPeer::Pods(NamespacedPods {
                    namespaces: SelectorSpec::default(),
                    pods: SelectorSpec::default(),
                }),
            ],
            ports: Some(vec![
                TierPort::Range {
                    protocol: Protocol::Tcp,
                    first: 8080,
                    last: 8080,
                },
                TierPort::Range {
                    protocol: Protocol::Udp,
                    first: 5000,
                    last: 5010,
                },
                TierPort::Range {
                    protocol: Protocol::Sctp,
                    first: 9,
                    last: 9,
                },
                TierPort::Named("metrics".into()),
            ]),
        }],
        egress: vec![
            TierRule {
                name: Some("block-metadata".into()),
                action: TierAction::Deny,
                peers: vec![TierPeer::Networks(vec![
                    net("169.254.169.254/32"),
                    net("fd00::/8"),
                ])],
                ports: None,
            },
            TierRule {
                name: None,
                action: TierAction::Pass,
                peers: vec![TierPeer::Nodes(labels(&[("role", "infra")]))],
                ports: None,
            },
            TierRule {
                name: None,
                action: TierAction::Accept,
                peers: vec![TierPeer::DomainNames(vec![
                    "example.com".into(),
                    "*.example.org.".into(),
                ])],
                ports: None,
            },
        ],
    };
    assert_eq!(policy.spec(), &expected);
    // The only thing said: domain names are not enforced.
    let said: Vec<_> = issues
        .0
        .iter()
        .map(|i| (i.severity, i.field.as_str()))
        .collect();
    assert_eq!(
        said,
        vec![(Severity::Warning, "spec.egress[2].to[0].domainNames")]
    );
    assert!(issues.0[0]
        .message
        .contains("does not enforce domain names"));
}

#[test]
fn a_baseline_cluster_network_policy_with_a_namespace_subject() {
    let s = spec(
        CNP,
        json!({"tier": "Baseline", "priority": 0, "subject": {"namespaces": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}},
               "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}),
    );
    assert_eq!(s.tier, Tier::Baseline);
    assert_eq!(s.priority, Some(0));
    let Subject::Namespaces(selector) = &s.subject else {
        panic!("{:?}", s.subject)
    };
    assert_eq!(
        selector.match_expressions[0].values,
        vec!["prod".to_string()]
    );
    assert!(s.egress.is_empty());
    assert_eq!(s.ingress[0].action, TierAction::Deny);
    assert_eq!(s.ingress[0].ports, None);
}

#[test]
fn an_admin_network_policy_decodes_allow_as_accept_and_ports_with_tcp_by_default() {
    let s = spec(
        ANP,
        json!({"priority": 1000, "subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}}},
               "ingress": [{"name": "allow-app", "action": "Allow", "from": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}}],
                            "ports": [{"portNumber": {"port": 5432}}, {"portNumber": {"protocol": "UDP", "port": 53}},
                                      {"portRange": {"protocol": "SCTP", "start": 1000, "end": 2000}}, {"portRange": {"start": 1, "end": 2}},
                                      {"namedPort": "pg"}]}],
               "egress": [{"action": "Pass", "to": [{"networks": ["10.0.0.0/8"]}, {"nodes": {}}]},
                          {"action": "Deny", "to": [{"namespaces": {}}]}]}),
    );
    assert_eq!((s.tier, s.priority), (Tier::Admin, Some(1000)));
    let rule = &s.ingress[0];
    assert_eq!(rule.action, TierAction::Accept);
    assert_eq!(
        rule.ports,
        Some(vec![
            TierPort::Range {
                protocol: Protocol::Tcp,
                first: 5432,
                last: 5432
            },
            TierPort::Range {
                protocol: Protocol::Udp,
                first: 53,
                last: 53
            },
            TierPort::Range {
                protocol: Protocol::Sctp,
                first: 1000,
                last: 2000
            },
            TierPort::Range {
                protocol: Protocol::Tcp,
                first: 1,
                last: 2
            },
            TierPort::Named("pg".into()),
        ])
    );
    assert_eq!(
        s.egress[0].peers,
        vec![
            TierPeer::Networks(vec![net("10.0.0.0/8")]),
            TierPeer::Nodes(SelectorSpec::default())
        ]
    );
    assert_eq!(s.egress[1].action, TierAction::Deny);
}

#[test]
fn a_baseline_admin_network_policy_has_no_priority() {
    let s = spec(
        BANP,
        json!({"subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}],
               "egress": [{"action": "Allow", "to": [{"pods": {"namespaceSelector": {}, "podSelector": {}}}]}]}),
    );
    assert_eq!((s.tier, s.priority), (Tier::Baseline, None));
    assert_eq!(s.egress[0].action, TierAction::Accept);
    assert_eq!(s.ingress[0].action, TierAction::Deny);
}

#[test]
fn a_non_canonical_network_is_read_as_its_block_with_a_warning() {
    let (policy, issues) = decode(
        CNP,
        cnp_egress(json!({"action": "Deny", "to": [{"networks": ["10.1.2.3/8"]}]})),
    )
    .expect("a warning does not reject");
    assert_eq!(
        policy.spec().egress[0].peers,
        vec![TierPeer::Networks(vec![net("10.0.0.0/8")])]
    );
    assert_eq!(issues.0.len(), 1);
    assert_eq!(issues.0[0].severity, Severity::Warning);
    assert_eq!(issues.0[0].field, "spec.egress[0].to[0].networks[0]");
    assert!(issues.0[0].message.contains("10.0.0.0/8"));
}

// ---------------------------------------------------------------------------------------------
// failing closed

#[test]
fn a_peer_of_no_known_field_fails_closed_with_a_warning() {
    for (action, effect) in [
        ("Accept", "matches nothing"),
        ("Deny", "matches all traffic"),
        ("Pass", "matches all traffic"),
    ] {
        let (policy, issues) = decode(
            CNP,
            cnp_egress(json!({"action": action, "to": [{"namespaces": {}}, {"serviceAccounts": {"name": "x"}}]})),
        )
        .expect("an unknown peer is not an error");
        assert_eq!(
            policy.spec().egress[0].peers,
            vec![
                TierPeer::Namespaces(SelectorSpec::default()),
                TierPeer::Unknown
            ]
        );
        assert_eq!(issues.0.len(), 1, "{issues:?}");
        let warning = &issues.0[0];
        assert_eq!(warning.severity, Severity::Warning);
        assert_eq!(warning.field, "spec.egress[0].to[1]");
        assert!(
            warning.message.contains("fails closed"),
            "{}",
            warning.message
        );
        assert!(warning.message.contains(effect), "{}", warning.message);
        assert!(
            warning.message.contains("serviceAccounts"),
            "{}",
            warning.message
        );
    }
}

#[test]
fn a_port_entry_of_no_known_field_fails_closed_with_a_warning() {
    let (policy, issues) = decode(
        CNP,
        cnp_ingress(json!({"action": "Deny", "from": [all_namespaces()], "protocols": [{"icmp": {"type": 8}}]})),
    )
    .expect("an unknown protocol entry is not an error");
    assert_eq!(
        policy.spec().ingress[0].ports,
        Some(vec![TierPort::Unknown])
    );
    assert_eq!(issues.0[0].severity, Severity::Warning);
    assert_eq!(issues.0[0].field, "spec.ingress[0].protocols[0]");
    assert!(issues.0[0].message.contains("fails closed"));
    let (policy, _) = decode(
        ANP,
        json!({"priority": 1, "subject": {"namespaces": {}}, "ingress": [{"action": "Allow", "from": [all_namespaces()], "ports": [{"future": 1}]}]}),
    )
    .expect("v1alpha1 too");
    assert_eq!(
        policy.spec().ingress[0].ports,
        Some(vec![TierPort::Unknown])
    );
}

// ---------------------------------------------------------------------------------------------
// validation: one test per rule

#[test]
fn priority_is_required_and_from_0_to_1000() {
    for bad in [json!(1001), json!(-1), json!("10"), json!(1.5)] {
        rejected_at(
            CNP,
            json!({"tier": "Admin", "priority": bad, "subject": {"namespaces": {}}}),
            "spec.priority",
            "0 to 1000",
        );
        rejected_at(
            ANP,
            json!({"priority": bad, "subject": {"namespaces": {}}}),
            "spec.priority",
            "0 to 1000",
        );
    }
    rejected_at(
        CNP,
        json!({"tier": "Admin", "subject": {"namespaces": {}}}),
        "spec.priority",
        "0 to 1000",
    );
}

#[test]
fn tier_is_admin_or_baseline() {
    rejected_at(
        CNP,
        json!({"tier": "admin", "priority": 1, "subject": {"namespaces": {}}}),
        "spec.tier",
        "valid: Admin",
    );
    rejected_at(
        CNP,
        json!({"priority": 1, "subject": {"namespaces": {}}}),
        "spec.tier",
        "required",
    );
}

#[test]
fn at_most_25_rules_per_direction_and_100_for_v1alpha1() {
    let rule = json!({"action": "Deny", "from": [all_namespaces()]});
    let cnp = |n: usize| json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}}, "ingress": vec![rule.clone(); n]});
    assert_eq!(spec(CNP, cnp(25)).ingress.len(), 25);
    rejected_at(CNP, cnp(26), "spec.ingress", "at most 25 rules");
    let v1 = json!({"action": "Deny", "to": [all_namespaces()]});
    let anp = |n: usize| json!({"priority": 1, "subject": {"namespaces": {}}, "egress": vec![v1.clone(); n]});
    assert_eq!(spec(ANP, anp(100)).egress.len(), 100);
    rejected_at(ANP, anp(101), "spec.egress", "at most 100 rules");
}

#[test]
fn a_rule_has_1_to_25_peers() {
    let peers = |n: usize| cnp_egress(json!({"action": "Deny", "to": vec![all_namespaces(); n]}));
    assert_eq!(spec(CNP, peers(25)).egress[0].peers.len(), 25);
    rejected_at(CNP, peers(26), "spec.egress[0].to", "at most 25 peers");
    rejected_at(CNP, peers(0), "spec.egress[0].to", "at least 1");
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Deny"})),
        "spec.egress[0].to",
        "required",
    );
}

#[test]
fn the_subject_sets_exactly_one_field() {
    rejected_at(
        CNP,
        json!({"tier": "Admin", "priority": 1, "subject": {}}),
        "spec.subject",
        "exactly one of: namespaces, pods",
    );
    rejected_at(
        CNP,
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}, "pods": {"podSelector": {}}}}),
        "spec.subject",
        "exactly one of namespaces, pods",
    );
    rejected_at(
        CNP,
        json!({"tier": "Admin", "priority": 1}),
        "spec.subject",
        "exactly one of namespaces",
    );
    rejected_at(
        CNP,
        json!({"tier": "Admin", "priority": 1, "subject": {"pods": {"namespaceSelector": {}}}}),
        "spec.subject.pods.podSelector",
        "required",
    );
}

#[test]
fn a_peer_sets_exactly_one_field() {
    rejected_at(
        CNP,
        cnp_egress(
            json!({"action": "Deny", "to": [{"namespaces": {}, "networks": ["10.0.0.0/8"]}]}),
        ),
        "spec.egress[0].to[0]",
        "exactly one of namespaces, pods, networks, nodes, domainNames",
    );
    // An empty peer is an error (the API's MinProperties=1), not a peer of unknown fields.
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Deny", "to": [{}]})),
        "spec.egress[0].to[0]",
        "exactly one of",
    );
    // Ingress peers know no addresses.
    rejected_at(
        CNP,
        cnp_ingress(
            json!({"action": "Deny", "from": [{"namespaces": {}, "pods": {"podSelector": {}}}]}),
        ),
        "spec.ingress[0].from[0]",
        "exactly one of namespaces, pods",
    );
    // A known field beside an unknown one: the unknown one is a misspelling, not a newer API.
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Deny", "to": [{"namespaces": {}, "namspaces": {}}]})),
        "spec.egress[0].to[0].namspaces",
        "valid here: namespaces, pods",
    );
}

#[test]
fn a_protocols_entry_sets_exactly_one_field() {
    rejected_at(
        CNP,
        cnp_ingress(json!({"action": "Deny", "from": [all_namespaces()],
            "protocols": [{"tcp": {"destinationPort": {"number": 80}}, "udp": {"destinationPort": {"number": 80}}}]})),
        "spec.ingress[0].protocols[0]",
        "exactly one of tcp, udp, sctp, destinationNamedPort",
    );
    rejected_at(
        CNP,
        cnp_ingress(json!({"action": "Deny", "from": [all_namespaces()],
            "protocols": [{"tcp": {"destinationPort": {"number": 80, "range": {"start": 1, "end": 2}}}}]})),
        "spec.ingress[0].protocols[0].tcp.destinationPort",
        "exactly one of number, range",
    );
    rejected_at(
        CNP,
        cnp_ingress(
            json!({"action": "Deny", "from": [all_namespaces()], "protocols": [{"tcp": {}}]}),
        ),
        "spec.ingress[0].protocols[0].tcp.destinationPort",
        "required",
    );
    rejected_at(
        CNP,
        cnp_ingress(json!({"action": "Deny", "from": [all_namespaces()], "protocols": []})),
        "spec.ingress[0].protocols",
        "at least 1",
    );
    rejected_at(
        ANP,
        json!({"priority": 1, "subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": [all_namespaces()],
               "ports": [{"portNumber": {"port": 80}, "namedPort": "http"}]}]}),
        "spec.ingress[0].ports[0]",
        "exactly one of portNumber, namedPort, portRange",
    );
}

#[test]
fn a_range_starts_below_its_end() {
    for (start, end) in [(80, 80), (90, 80)] {
        rejected_at(
            CNP,
            cnp_ingress(json!({"action": "Deny", "from": [all_namespaces()],
                "protocols": [{"udp": {"destinationPort": {"range": {"start": start, "end": end}}}}]})),
            "spec.ingress[0].protocols[0].udp.destinationPort.range.end",
            "must be greater than start",
        );
    }
    rejected_at(
        ANP,
        json!({"priority": 1, "subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": [all_namespaces()],
               "ports": [{"portRange": {"start": 100, "end": 10}}]}]}),
        "spec.ingress[0].ports[0].portRange.end",
        "must be greater than start",
    );
}

#[test]
fn ports_are_1_to_65535() {
    for bad in [0, 65536, -5] {
        rejected_at(
            CNP,
            cnp_ingress(json!({"action": "Deny", "from": [all_namespaces()],
                "protocols": [{"tcp": {"destinationPort": {"number": bad}}}]})),
            "spec.ingress[0].protocols[0].tcp.destinationPort.number",
            "must be 1-65535",
        );
    }
    rejected_at(
        CNP,
        cnp_ingress(json!({"action": "Deny", "from": [all_namespaces()],
            "protocols": [{"tcp": {"destinationPort": {"range": {"start": 0, "end": 10}}}}]})),
        "spec.ingress[0].protocols[0].tcp.destinationPort.range.start",
        "must be 1-65535",
    );
    rejected_at(
        ANP,
        json!({"priority": 1, "subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": [all_namespaces()],
               "ports": [{"portNumber": {"port": 0}}]}]}),
        "spec.ingress[0].ports[0].portNumber.port",
        "must be 1-65535",
    );
    rejected_at(
        ANP,
        json!({"priority": 1, "subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": [all_namespaces()],
               "ports": [{"portNumber": {"port": 80, "protocol": "ICMP"}}]}]}),
        "spec.ingress[0].ports[0].portNumber.protocol",
        "valid: TCP, UDP, SCTP",
    );
}

#[test]
fn a_named_port_is_not_allowed_with_address_peers() {
    for peer in [
        json!({"networks": ["10.0.0.0/8"]}),
        json!({"nodes": {}}),
        json!({"domainNames": ["example.com"]}),
    ] {
        rejected_at(
            CNP,
            cnp_egress(json!({"action": "Accept", "to": [all_namespaces(), peer],
                "protocols": [{"tcp": {"destinationPort": {"number": 80}}}, {"destinationNamedPort": "http"}]})),
            "spec.egress[0].protocols[1].destinationNamedPort",
            "use a port number or range",
        );
    }
    rejected_at(
        ANP,
        anp_egress(
            json!({"action": "Deny", "to": [{"networks": ["10.0.0.0/8"]}], "ports": [{"namedPort": "http"}]}),
        ),
        "spec.egress[0].ports[0].namedPort",
        "use a port number or range",
    );
    // With pods it resolves on the destination pod: valid.
    let s = spec(
        CNP,
        cnp_egress(
            json!({"action": "Deny", "to": [all_namespaces()], "protocols": [{"destinationNamedPort": "http"}]}),
        ),
    );
    assert_eq!(
        s.egress[0].ports,
        Some(vec![TierPort::Named("http".into())])
    );
    rejected_at(
        CNP,
        cnp_egress(
            json!({"action": "Deny", "to": [all_namespaces()], "protocols": [{"destinationNamedPort": "HTTP"}]}),
        ),
        "spec.egress[0].protocols[0].destinationNamedPort",
        "IANA_SVC_NAME",
    );
}

#[test]
fn domain_names_only_in_accept_rules() {
    for action in ["Deny", "Pass"] {
        rejected_at(
            CNP,
            cnp_egress(json!({"action": action, "to": [{"domainNames": ["example.com"]}]})),
            "spec.egress[0].to[0].domainNames",
            "only be used in Accept rules",
        );
    }
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Accept", "to": [{"domainNames": ["-bad.com"]}]})),
        "spec.egress[0].to[0].domainNames[0]",
        "e.g. 'example.com'",
    );
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Accept", "to": [{"domainNames": ["localhost"]}]})),
        "spec.egress[0].to[0].domainNames[0]",
        "e.g. 'example.com'",
    );
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Accept", "to": [{"domainNames": vec!["example.com"; 26]}]})),
        "spec.egress[0].to[0].domainNames",
        "at most 25",
    );
}

#[test]
fn a_baseline_admin_network_policy_is_named_default() {
    let object = object(BANP, "other", json!({"subject": {"namespaces": {}}}));
    let issues = ValidTierPolicy::new(BANP, object).expect_err("not default");
    let errors: Vec<_> = issues
        .0
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "metadata.name");
    assert!(errors[0].message.contains("\"default\""));
}

#[test]
fn a_baseline_admin_network_policy_allows_or_denies_only() {
    rejected_at(
        BANP,
        json!({"subject": {"namespaces": {}}, "ingress": [{"action": "Pass", "from": [all_namespaces()]}]}),
        "spec.ingress[0].action",
        "valid for BaselineAdminNetworkPolicy: Allow, Deny",
    );
    rejected_at(
        BANP,
        json!({"priority": 5, "subject": {"namespaces": {}}}),
        "spec.priority",
        "valid here: subject, ingress, egress",
    );
    // v1alpha2 spelling in v1alpha1 and back.
    rejected_at(
        ANP,
        anp_egress(json!({"action": "Accept", "to": [all_namespaces()]})),
        "spec.egress[0].action",
        "Allow, Deny, Pass",
    );
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Allow", "to": [all_namespaces()]})),
        "spec.egress[0].action",
        "Accept, Deny, Pass",
    );
}

#[test]
fn a_rule_name_is_at_most_100_characters() {
    let name = |n: usize| {
        cnp_egress(json!({"name": "é".repeat(n), "action": "Deny", "to": [all_namespaces()]}))
    };
    assert_eq!(
        spec(CNP, name(100)).egress[0].name.as_deref(),
        Some("é".repeat(100).as_str())
    );
    rejected_at(
        CNP,
        name(101),
        "spec.egress[0].name",
        "at most 100 characters",
    );
}

#[test]
fn networks_are_1_to_25_valid_cidrs() {
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Deny", "to": [{"networks": ["10.0.0.0/8", "10.0.0.0/33"]}]})),
        "spec.egress[0].to[0].networks[1]",
        "expected e.g. '10.0.0.0/16'",
    );
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Deny", "to": [{"networks": []}]})),
        "spec.egress[0].to[0].networks",
        "at least 1",
    );
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Deny", "to": [{"networks": vec!["10.0.0.0/8"; 26]}]})),
        "spec.egress[0].to[0].networks",
        "at most 25",
    );
}

#[test]
fn selectors_are_validated_with_their_paths() {
    rejected_at(
        CNP,
        cnp_egress(
            json!({"action": "Deny", "to": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}}}]}),
        ),
        "spec.egress[0].to[0].pods.podSelector.matchExpressions[0].values",
        "at least one value",
    );
    rejected_at(
        CNP,
        cnp_egress(
            json!({"action": "Deny", "to": [{"nodes": {"matchLabels": {"bad key!": "x"}}}]}),
        ),
        "spec.egress[0].to[0].nodes.matchLabels[\"bad key!\"]",
        "label key",
    );
    rejected_at(
        CNP,
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {"matchLabel": {"a": "b"}}}}),
        "spec.subject.namespaces.matchLabel",
        "valid: matchLabels, matchExpressions",
    );
}

#[test]
fn unknown_fields_elsewhere_reject_the_object() {
    rejected_at(
        CNP,
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}}, "egres": []}),
        "spec.egres",
        "valid here: tier, priority, subject, ingress, egress",
    );
    rejected_at(
        CNP,
        cnp_egress(json!({"action": "Deny", "too": [all_namespaces()], "to": [all_namespaces()]})),
        "spec.egress[0].too",
        "valid here: name, action, to, protocols",
    );
    // `spec` must be there.
    let issues = ValidTierPolicy::new(CNP, object(CNP, "p", Value::Null)).unwrap_err();
    assert_eq!(issues.0[0].field, "spec");
}

// ---------------------------------------------------------------------------------------------
// loading

fn load(text: &str) -> (ClusterState, Vec<Diagnostic>) {
    let mut loader = Loader::new();
    loader.load_str("t.yaml", text);
    loader.finish()
}

const POLICIES: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata:
  name: deny-imds
spec:
  tier: Admin
  priority: 10
  subject:
    namespaces: {}
  egress:
  - name: block-metadata
    action: Deny
    to:
    - networks: ["169.254.169.254/32"]
status:
  conditions: []
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: allow-dns
spec:
  priority: 5
  subject:
    namespaces: {}
  egress:
  - action: Allow
    to:
    - pods:
        namespaceSelector:
          matchLabels:
            kubernetes.io/metadata.name: kube-system
        podSelector:
          matchLabels:
            k8s-app: kube-dns
    ports:
    - portNumber: {protocol: UDP, port: 53}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata:
  name: default
spec:
  subject:
    namespaces: {}
  ingress:
  - action: Deny
    from:
    - namespaces: {}
"#;

#[test]
fn loads_put_them_in_the_state_by_kind_then_name() {
    let (state, diags) = load(POLICIES);
    assert!(
        diags.iter().all(|d| d.severity < Severity::Warning),
        "{diags:#?}"
    );
    let names: Vec<_> = (state.tier_policies.iter())
        .map(|p| (p.kind(), p.name.as_str(), p.origin.line))
        .collect();
    assert_eq!(
        names,
        vec![
            (CNP, "deny-imds", Some(2)),
            (ANP, "allow-dns", Some(19)),
            (BANP, "default", Some(40)),
        ]
    );
    let anp = &state.tier_policies[1].policy.spec();
    assert_eq!(
        anp.egress[0].ports,
        Some(vec![TierPort::Range {
            protocol: Protocol::Udp,
            first: 53,
            last: 53
        }])
    );
}

#[test]
fn a_rejected_policy_names_file_object_and_field() {
    let text = POLICIES.replace("priority: 10", "priority: 1001");
    let (state, diags) = load(&text);
    assert_eq!(state.tier_policies.len(), 2);
    let error = diags.iter().find(|d| d.is_error()).expect("an error");
    assert_eq!(
        error.object.as_deref(),
        Some("ClusterNetworkPolicy deny-imds")
    );
    assert_eq!(error.field.as_deref(), Some("spec.priority"));
    assert_eq!(error.origin.file, "t.yaml");
}

#[test]
fn metadata_and_top_level_unknown_fields_reject() {
    let text = POLICIES.replace("  name: deny-imds", "  name: deny-imds\n  lables: {a: b}");
    let (state, diags) = load(&text);
    assert_eq!(state.tier_policies.len(), 2);
    assert!(diags
        .iter()
        .any(|d| d.is_error() && d.field.as_deref() == Some("metadata.lables")));
    let text = POLICIES.replace("status:\n", "statuz:\n");
    let (state, diags) = load(&text);
    assert_eq!(state.tier_policies.len(), 2, "{diags:#?}");
}

#[test]
fn a_second_definition_is_a_duplicate() {
    let first = POLICIES.split("---").next().unwrap();
    let (state, diags) = load(&format!("{first}---{first}"));
    assert_eq!(state.tier_policies.len(), 1);
    assert!(diags
        .iter()
        .any(|d| d.is_error() && d.message.contains("defined twice")));
}

/// Network policies Palisade does not enforce — other plugins', other versions — are skipped with
/// a warning that says so, whatever else is in the input; the kinds it reads are not.
#[test]
fn policy_kinds_palisade_does_not_enforce_are_skipped_with_a_warning() {
    for (api_version, kind) in [
        ("cilium.io/v2", "CiliumNetworkPolicy"),
        ("cilium.io/v2", "CiliumClusterwideNetworkPolicy"),
        ("projectcalico.org/v3", "NetworkPolicy"),
        ("projectcalico.org/v3", "GlobalNetworkPolicy"),
        ("crd.projectcalico.org/v1", "StagedNetworkPolicy"),
        ("crd.antrea.io/v1beta1", "NetworkPolicy"),
        ("crd.antrea.io/v1beta1", "ClusterNetworkPolicy"),
        ("networking.gke.io/v1alpha3", "FQDNNetworkPolicy"),
        ("policy.networking.k8s.io/v1alpha1", "ClusterNetworkPolicy"),
        ("policy.networking.k8s.io/v1beta1", "ClusterNetworkPolicy"),
    ] {
        let text = format!(
            "apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x, namespace: shop}}\nspec: {{anything: 1}}\n---\n{POLICIES}"
        );
        let (state, diags) = load(&text);
        assert_eq!(state.tier_policies.len(), 3, "{kind}: the others are read");
        let said: Vec<_> = diags
            .iter()
            .filter(|d| d.severity >= Severity::Warning)
            .collect();
        assert_eq!(said.len(), 1, "{api_version} {kind}: {said:#?}");
        let w = said[0];
        assert_eq!(w.severity, Severity::Warning);
        assert_eq!(w.object.as_deref(), Some(format!("{kind} shop/x").as_str()));
        assert_eq!(w.origin.line, Some(1));
        assert!(
            w.message.contains(&format!("{api_version} {kind}"))
                && w.message.contains("not enforced by Palisade")
                && w.message
                    .contains("matrix, explain and enforcement ignore it"),
            "{w}"
        );
    }
}
