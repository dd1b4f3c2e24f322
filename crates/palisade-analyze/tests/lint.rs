//! `palisade lint`, rule by rule: a manifest that makes the mistake (the finding's rule, object,
//! field and line asserted) and the same manifest fixed as the finding says (no finding of that
//! rule); then `--disable`, the annotation, and the rules' ids.

use palisade_analyze::lint::{lint, Finding, Input, Report, Rule, Severity};
use palisade_model::Loader;
use palisade_policy::Engines;
use std::sync::Arc;

/// A namespace `shop` with two `web` pods behind Service `web` (port 80 → `http`, 8080) and a
/// `client` pod; a namespace `ops` with one pod; the DNS pods in `kube-system`.
const BASE: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops, labels: {team: ops}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, version: v1}}
spec: {containers: [{name: m, image: i, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.244.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web, version: v2}}
spec: {containers: [{name: m, image: i, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.244.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.244.1.3}
---
apiVersion: v1
kind: Pod
metadata: {name: tool, namespace: ops, labels: {app: tool}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.244.2.1}
---
apiVersion: v1
kind: Pod
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec: {containers: [{name: m, image: i, ports: [{name: dns, containerPort: 53, protocol: UDP}]}]}
status: {podIP: 10.244.9.1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, clusterIP: 10.96.0.20, ports: [{port: 80, targetPort: http}]}
"#;

/// Every namespace with pods isolated for ingress, so that `namespace-not-isolated` stays quiet
/// where a test is about something else.
const DENY_ALL: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: ops}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: kube-system}
spec: {podSelector: {}, policyTypes: [Ingress]}
"#;

/// Lints `BASE`, `DENY_ALL` and `extra` as manifests; they must load without errors.
fn run(extra: &str) -> (String, Report) {
    run_as(Input::Manifests, extra)
}

/// Lints `BASE`, `DENY_ALL` and `extra` as read from `input`.
fn run_as(input: Input, extra: &str) -> (String, Report) {
    let text = format!("{BASE}{DENY_ALL}{extra}");
    let mut loader = Loader::new();
    loader.load_str("t.yaml", &text);
    let (state, diagnostics) = loader.finish();
    assert!(
        diagnostics.iter().all(|d| !d.is_error()),
        "{diagnostics:#?}"
    );
    let engines = Engines::new(Arc::new(state));
    let report = lint(&engines, &diagnostics, &[], input);
    (text, report)
}

/// The findings of `rule`.
fn of(report: &Report, rule: Rule) -> Vec<&Finding> {
    report.findings.iter().filter(|f| f.rule == rule).collect()
}

/// The line of the document holding `marker` (its first line, after `---`).
fn line_of(text: &str, marker: &str) -> usize {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in the input"));
    let before = &text[..at];
    let start = before.rfind("---\n").map_or(0, |i| i + 4);
    text[..start].lines().count() + 1
}

/// Asserts exactly one finding of `rule`, on `object`, at `field`, in the document of `marker`;
/// returns it.
#[track_caller]
fn one<'r>(
    text: &str,
    report: &'r Report,
    rule: Rule,
    object: &str,
    field: Option<&str>,
    marker: &str,
) -> &'r Finding {
    let found = of(report, rule);
    assert_eq!(found.len(), 1, "{rule}: {:#?}", report.findings);
    let f = found[0];
    assert_eq!(f.object.to_string(), object);
    assert_eq!(f.field.as_deref(), field);
    let origin = f.origin.as_ref().expect("an origin");
    assert_eq!(
        (origin.file.as_str(), origin.line),
        ("t.yaml", Some(line_of(text, marker)))
    );
    assert!(!f.message.is_empty() && !f.fix.is_empty());
    f
}

const WEB_INGRESS_80: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 80}]}]
"#;

#[test]
fn a_policy_port_that_is_the_service_port_not_the_target_port() {
    let (text, report) = run(WEB_INGRESS_80);
    let f = one(
        &text,
        &report,
        Rule::ServicePortNotTargetPort,
        "NetworkPolicy shop/web-in",
        Some("spec.ingress[0].ports[0].port"),
        "name: web-in",
    );
    assert_eq!(f.severity(), Severity::Error);
    assert!(
        f.message.contains("Service shop/web") && f.message.contains("targetPort 8080"),
        "{}",
        f.message
    );
    assert!(
        f.fix.contains("`port: 8080`") && f.fix.contains("`port: http`"),
        "{}",
        f.fix
    );
    assert!(report.has_errors());

    let (_, fixed) = run(&WEB_INGRESS_80.replace("port: 80}", "port: 8080}"));
    assert!(
        of(&fixed, Rule::ServicePortNotTargetPort).is_empty(),
        "{:#?}",
        fixed.findings
    );
    let (_, named) = run(&WEB_INGRESS_80.replace("port: 80}", "port: http}"));
    assert!(of(&named, Rule::ServicePortNotTargetPort).is_empty());
    assert!(!named.has_errors(), "{:#?}", named.findings);
}

/// Port 80 allowed where it is not wrong: another rule allows the target port to the same
/// peers, or another Service forwards 80 to 80 on the same pods.
#[test]
fn a_service_port_allowed_for_another_reason_is_no_error() {
    let both_rules = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080}]
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80}]
"#;
    let (_, report) = run(both_rules);
    assert!(
        of(&report, Rule::ServicePortNotTargetPort).is_empty(),
        "{:#?}",
        report.findings
    );
    let admin = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web-admin, namespace: shop}\n\
                 spec: {selector: {app: web}, clusterIP: 10.96.0.21, ports: [{port: 80, targetPort: 80}]}\n";
    let (_, report) = run(&format!("{WEB_INGRESS_80}{admin}"));
    assert!(
        of(&report, Rule::ServicePortNotTargetPort).is_empty(),
        "{:#?}",
        report.findings
    );
    // Pods that declare no port may listen on 80 too: a warning, not an error.
    let undeclared = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop, labels: {app: api}}\n\
                      spec: {containers: [{name: m, image: i}]}\nstatus: {podIP: 10.244.1.5}\n---\n\
                      apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\n\
                      spec: {selector: {app: api}, clusterIP: 10.96.0.22, ports: [{port: 80, targetPort: 8080}]}\n";
    let policy = WEB_INGRESS_80
        .replace("{app: web}", "{app: api}")
        .replace("web-in", "api-in");
    let (text, report) = run(&format!("{undeclared}{policy}"));
    let f = one(
        &text,
        &report,
        Rule::ServicePortNotTargetPort,
        "NetworkPolicy shop/api-in",
        Some("spec.ingress[0].ports[0].port"),
        "name: api-in",
    );
    assert_eq!(f.severity(), Severity::Warning);
    assert!(!report.has_errors(), "{:#?}", report.findings);
}

#[test]
fn an_egress_port_that_is_the_service_port_not_the_target_port() {
    let client = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-out, namespace: shop}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 80}]
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
"#;
    let (text, report) = run(client);
    one(
        &text,
        &report,
        Rule::ServicePortNotTargetPort,
        "NetworkPolicy shop/client-out",
        Some("spec.egress[0].ports[0].port"),
        "name: client-out",
    );
    let (_, fixed) = run(&client.replace("ports: [{port: 80}]", "ports: [{port: 8080}]"));
    assert!(
        of(&fixed, Rule::ServicePortNotTargetPort).is_empty(),
        "{:#?}",
        fixed.findings
    );
}

const WEB_V1_ONLY: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-v1, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web, version: v1}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: http}]}]
"#;

#[test]
fn a_policy_that_selects_part_of_a_service_and_the_pods_it_leaves_out() {
    let (text, report) = run(WEB_V1_ONLY);
    let split = one(
        &text,
        &report,
        Rule::PolicySplitsService,
        "NetworkPolicy shop/web-v1",
        Some("spec.podSelector"),
        "name: web-v1",
    );
    assert!(split.message.contains("shop/web-2"), "{}", split.message);
    assert!(
        split.fix.contains("{matchLabels: {app: web}}"),
        "{}",
        split.fix
    );
    let left = one(
        &text,
        &report,
        Rule::ServicePodsUncovered,
        "Service shop/web",
        Some("spec.selector"),
        "name: web, namespace: shop}\nspec: {selector",
    );
    assert!(
        left.message.contains("shop/web-2") && left.message.contains("ingress"),
        "{}",
        left.message
    );

    let (_, fixed) = run(&WEB_V1_ONLY.replace("{app: web, version: v1}", "{app: web}"));
    assert!(
        of(&fixed, Rule::PolicySplitsService).is_empty(),
        "{:#?}",
        fixed.findings
    );
    assert!(
        of(&fixed, Rule::ServicePodsUncovered).is_empty(),
        "{:#?}",
        fixed.findings
    );
}

const EGRESS_LOCKDOWN: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: lockdown, namespace: ops}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: tool}}}]
"#;

const DNS_RULE: &str = r#"
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
"#;

#[test]
fn egress_isolation_without_dns() {
    let (text, report) = run(EGRESS_LOCKDOWN);
    let f = one(
        &text,
        &report,
        Rule::EgressWithoutDns,
        "NetworkPolicy ops/lockdown",
        Some("spec.egress"),
        "name: lockdown",
    );
    assert!(
        f.message.contains("UDP 53 or TCP 53") && f.message.contains("ops/tool"),
        "{}",
        f.message
    );
    let (_, fixed) = run(&format!("{}{}", EGRESS_LOCKDOWN.trim_end(), DNS_RULE));
    assert!(
        of(&fixed, Rule::EgressWithoutDns).is_empty(),
        "{:#?}",
        fixed.findings
    );
    // Only UDP allowed: TCP is what is missing.
    let udp = DNS_RULE.replace(", {port: 53, protocol: TCP}", "");
    let (_, half) = run(&format!("{}{udp}", EGRESS_LOCKDOWN.trim_end()));
    let found = of(&half, Rule::EgressWithoutDns);
    assert_eq!(found.len(), 1, "{:#?}", half.findings);
    assert!(
        found[0].message.contains("no TCP 53 ")
            && found[0].fix.contains("{protocol: TCP, port: 53}")
    );
    // To anywhere on 53 is enough.
    let anywhere = "\n  - ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]\n";
    let (_, open) = run(&format!("{}{anywhere}", EGRESS_LOCKDOWN.trim_end()));
    assert!(
        of(&open, Rule::EgressWithoutDns).is_empty(),
        "{:#?}",
        open.findings
    );
    // So is a node-local cache (an ipBlock).
    let node_local = "\n  - to: [{ipBlock: {cidr: 169.254.20.10/32}}]\n    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]\n";
    let (_, cache) = run(&format!("{}{node_local}", EGRESS_LOCKDOWN.trim_end()));
    assert!(
        of(&cache, Rule::EgressWithoutDns).is_empty(),
        "{:#?}",
        cache.findings
    );
    // Without the DNS pods in the input, a peer that would match them is enough; another is not.
    let no_dns = |extra: &str| {
        let base = BASE.replace("k8s-app: kube-dns", "k8s-app: gone");
        let text = format!("{base}{DENY_ALL}{}{extra}", EGRESS_LOCKDOWN.trim_end());
        let mut loader = Loader::new();
        loader.load_str("t.yaml", &text);
        let (state, diagnostics) = loader.finish();
        lint(
            &Engines::new(Arc::new(state)),
            &diagnostics,
            &[],
            Input::Manifests,
        )
    };
    assert_eq!(of(&no_dns(""), Rule::EgressWithoutDns).len(), 1);
    assert!(of(&no_dns(DNS_RULE), Rule::EgressWithoutDns).is_empty());
    let elsewhere = DNS_RULE.replace("k8s-app: kube-dns", "k8s-app: resolver");
    assert_eq!(of(&no_dns(&elsewhere), Rule::EgressWithoutDns).len(), 1);
    // The kube-dns Service without its pods: its address alone says nothing of the pods behind
    // it, so a peer that would match them is still enough.
    let service = "---\napiVersion: v1\nkind: Service\nmetadata: {name: kube-dns, namespace: kube-system}\n\
                   spec: {selector: {k8s-app: kube-dns}, clusterIP: 10.96.0.10, ports: [{port: 53, protocol: UDP}]}\n";
    let with_service = no_dns(&format!("{DNS_RULE}{service}"));
    assert!(
        of(&with_service, Rule::EgressWithoutDns).is_empty(),
        "{:#?}",
        with_service.findings
    );
}

const SELECTORS: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: typos, namespace: shop}
spec:
  podSelector: {matchLabels: {app: wbe}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: opps}}
      podSelector: {matchLabels: {app: tool}}
    - podSelector: {matchLabels: {app: clinet}}
"#;

#[test]
fn selectors_that_match_nothing() {
    // From manifests, namespaces (and so their pods) may be missing: only the own namespace's pods
    // are judged.
    let (_, report) = run(SELECTORS);
    let fields: Vec<&str> = (of(&report, Rule::SelectorMatchesNothing).iter())
        .filter_map(|f| f.field.as_deref())
        .collect();
    assert_eq!(
        fields,
        ["spec.ingress[0].from[1].podSelector", "spec.podSelector"],
        "{:#?}",
        report.findings
    );
    let (text, report) = run_as(Input::Cluster, SELECTORS);
    let found = of(&report, Rule::SelectorMatchesNothing);
    let fields: Vec<&str> = found.iter().filter_map(|f| f.field.as_deref()).collect();
    assert_eq!(
        fields,
        [
            "spec.ingress[0].from[0].namespaceSelector",
            "spec.ingress[0].from[1].podSelector",
            "spec.podSelector"
        ],
        "{:#?}",
        report.findings
    );
    let line = line_of(&text, "name: typos");
    for f in &found {
        assert_eq!(f.object.to_string(), "NetworkPolicy shop/typos");
        assert_eq!(f.origin.as_ref().and_then(|o| o.line), Some(line));
    }
    // The fix names the values in use.
    assert!(
        found[0].fix.contains("ops") && found[2].fix.contains("web"),
        "{:#?}",
        found
    );
    let fixed = SELECTORS
        .replace("wbe", "web")
        .replace("opps", "ops")
        .replace("clinet", "client");
    let (_, fixed) = run_as(Input::Cluster, &fixed);
    assert!(
        of(&fixed, Rule::SelectorMatchesNothing).is_empty(),
        "{:#?}",
        fixed.findings
    );
}

/// Manifests may hold part of a cluster: a namespaceSelector is judged only on a live cluster's
/// namespaces, and a podSelector only where every namespace it looks in has pods in the input.
#[test]
fn namespace_selectors_are_judged_only_on_a_whole_cluster() {
    let peer = |peer: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: a, namespace: shop, labels: {{app: a}}}}\nspec: {{containers: [{{name: m, image: i}}]}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: shop}}\n\
             spec: {{podSelector: {{}}, egress: [{{to: [{peer}]}}]}}\n"
        )
    };
    let findings = |text: &str, input: Input| {
        let mut loader = Loader::new();
        loader.load_str("t.yaml", text);
        let (state, diagnostics) = loader.finish();
        let report = lint(&Engines::new(Arc::new(state)), &diagnostics, &[], input);
        of(&report, Rule::SelectorMatchesNothing).len()
    };
    // lint's own DNS fix, and the same with every namespace, in a folder holding shop alone.
    let dns = peer("{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}");
    let any_namespace =
        peer("{namespaceSelector: {}, podSelector: {matchLabels: {k8s-app: kube-dns}}}");
    let declared = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n{}",
        peer("{namespaceSelector: {matchLabels: {team: front}}}")
    );
    for text in [&dns, &any_namespace, &declared] {
        assert_eq!(findings(text, Input::Manifests), 0, "{text}");
    }
    // A live cluster has every namespace: kube-system missing is a finding; a namespace with no
    // pod listed says nothing of the pods a podSelector would match.
    assert_eq!(findings(&dns, Input::Cluster), 1);
    assert_eq!(findings(&declared, Input::Cluster), 1);
    assert_eq!(findings(&any_namespace, Input::Cluster), 1);
    let empty_namespace = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: kube-system}}\n---\n{any_namespace}"
    );
    assert_eq!(findings(&empty_namespace, Input::Cluster), 0);
    let name = peer("{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}}");
    assert_eq!(findings(&name, Input::Cluster), 0);
}

#[test]
fn named_ports_that_no_destination_declares() {
    let policy = WEB_INGRESS_80.replace("port: 80}", "port: htp}");
    let (text, report) = run(&policy);
    let f = one(
        &text,
        &report,
        Rule::NamedPortUnresolved,
        "NetworkPolicy shop/web-in",
        Some("spec.ingress[0].ports[0].port"),
        "name: web-in",
    );
    assert!(f.fix.contains("http (8080/TCP)"), "{}", f.fix);
    let (_, fixed) = run(&WEB_INGRESS_80.replace("port: 80}", "port: http}"));
    assert!(of(&fixed, Rule::NamedPortUnresolved).is_empty());
}

const OR_PEERS: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-ops-tools, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: ops}}
    - podSelector: {matchLabels: {app: client}}
    ports: [{port: http}]
"#;

#[test]
fn a_namespace_selector_and_a_pod_selector_as_two_peers() {
    let (text, report) = run(OR_PEERS);
    let f = one(
        &text,
        &report,
        Rule::PeersLookLikeAnd,
        "NetworkPolicy shop/from-ops-tools",
        Some("spec.ingress[0].from[1]"),
        "name: from-ops-tools",
    );
    assert!(
        f.fix.contains("{namespaceSelector: {matchLabels: {team: ops}}, podSelector: {matchLabels: {app: client}}}"),
        "{}",
        f.fix
    );
    let one_peer = OR_PEERS.replace(
        "    - namespaceSelector: {matchLabels: {team: ops}}\n    - podSelector",
        "    - namespaceSelector: {matchLabels: {team: ops}}\n      podSelector",
    );
    let (_, fixed) = run(&one_peer);
    assert!(
        of(&fixed, Rule::PeersLookLikeAnd).is_empty(),
        "{:#?}",
        fixed.findings
    );
    // "Every pod of this namespace, or of those namespaces" is an OR as meant.
    let own_namespace = OR_PEERS.replace(
        "podSelector: {matchLabels: {app: client}}",
        "podSelector: {}",
    );
    let (_, or) = run(&own_namespace);
    assert!(
        of(&or, Rule::PeersLookLikeAnd).is_empty(),
        "{:#?}",
        or.findings
    );
}

const TWO_POLICIES: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-a, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080}, {port: 9090}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-b, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
"#;

#[test]
fn a_policy_that_allows_nothing_the_others_do_not() {
    let (text, report) = run(TWO_POLICIES);
    let f = one(
        &text,
        &report,
        Rule::RedundantPolicy,
        "NetworkPolicy shop/web-b",
        None,
        "name: web-b",
    );
    assert!(f.message.contains("shop/web-a"), "{}", f.message);
    assert!(
        of(&report, Rule::RedundantRule).is_empty(),
        "{:#?}",
        report.findings
    );
    // web-b allows one port more: both are needed.
    let (_, fixed) = run(&TWO_POLICIES.replace("[{port: http}]", "[{port: http}, {port: 7070}]"));
    assert!(
        of(&fixed, Rule::RedundantPolicy).is_empty(),
        "{:#?}",
        fixed.findings
    );
    // A deny-all policy is never redundant, even twice: it is kept for pods to come.
    let twice = DENY_ALL.replace("name: deny,", "name: deny-again,");
    assert!(of(&run(&twice).1, Rule::RedundantPolicy).is_empty());
}

/// Address ranges that touch cover what spans them: two halves of a /24 cover a rule allowing the
/// whole /24, while they allow one more port, so that they are needed.
#[test]
fn adjacent_blocks_together_cover_the_block_they_span() {
    let policies = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: halves, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{ipBlock: {cidr: 10.9.0.0/25}}]
    ports: [{port: 80}, {port: 81}]
  - from: [{ipBlock: {cidr: 10.9.0.128/25}}]
    ports: [{port: 80}, {port: 81}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: whole, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{ipBlock: {cidr: 10.9.0.0/24}}]
    ports: [{port: 80}]
"#;
    let (_, report) = run(policies);
    let redundant: Vec<String> = (of(&report, Rule::RedundantPolicy).iter())
        .map(|f| f.object.to_string())
        .collect();
    assert_eq!(
        redundant,
        ["NetworkPolicy shop/whole"],
        "{:#?}",
        report.findings
    );
}

/// Policies whose redundancy holds only for the pods in the input: a peer that selects no pod
/// here (a namespace not in the folder) and a policy selecting more pods than the others do as
/// written may matter for pods that are not in the input.
const DB: &str = r#"---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.244.1.9}
"#;

#[test]
fn redundancy_is_not_judged_on_the_pods_in_the_input_alone() {
    // (A) db-monitoring also allows port 9187 from namespace monitoring, not in the input.
    let monitoring = format!(
        r#"{DB}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: db-from-web, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: db}}}}
  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: web}}}}}}]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: db-monitoring, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: db}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: web}}}}}}]
  - from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: monitoring}}}}}}]
    ports: [{{port: 9187}}]
"#
    );
    let (text, report) = run(&monitoring);
    // db-from-web allows a part of db-monitoring: it is the one to delete, never db-monitoring.
    one(
        &text,
        &report,
        Rule::RedundantPolicy,
        "NetworkPolicy shop/db-from-web",
        None,
        "name: db-from-web",
    );
    // (B) `{}` isolates every pod to come in store (which has only the db pod); `db` only those
    // labelled app=db.
    let same_namespace = r#"---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: store, labels: {app: db}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.244.3.1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: store}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-namespace-only, namespace: store}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}]}]
"#;
    let (_, report) = run(same_namespace);
    assert!(
        !(of(&report, Rule::RedundantPolicy).iter())
            .any(|f| f.object.to_string() == "NetworkPolicy store/same-namespace-only"),
        "{:#?}",
        report.findings
    );
    // (C) a rule with a peer that selects no pod here is no rule to delete.
    let observability = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-metrics, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
  - from: [{podSelector: {matchLabels: {app: client}}}, {namespaceSelector: {matchLabels: {team: observability}}}]
    ports: [{port: 9187}]
"#;
    let (_, report) = run(observability);
    assert!(
        of(&report, Rule::RedundantRule).is_empty(),
        "{:#?}",
        report.findings
    );
}

const RULES: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-rules, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {}}]
    ports: [{port: 8000, endPort: 8100}]
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
"#;

#[test]
fn a_rule_that_allows_nothing_the_others_do_not() {
    let (text, report) = run(RULES);
    one(
        &text,
        &report,
        Rule::RedundantRule,
        "NetworkPolicy shop/web-rules",
        Some("spec.ingress[1]"),
        "name: web-rules",
    );
    let (_, fixed) = run(&RULES.replace("endPort: 8100", "endPort: 8079"));
    assert!(
        of(&fixed, Rule::RedundantRule).is_empty(),
        "{:#?}",
        fixed.findings
    );
}

const IP_BLOCK: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-network, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]
"#;

#[test]
fn an_ip_block_over_pod_and_service_addresses() {
    let (text, report) = run(IP_BLOCK);
    let f = one(
        &text,
        &report,
        Rule::IpBlockCoversPods,
        "NetworkPolicy shop/from-network",
        Some("spec.ingress[0].from[0].ipBlock.cidr"),
        "name: from-network",
    );
    assert!(
        f.message.contains("5 pods") && f.message.contains("shop/web 10.96.0.20"),
        "{}",
        f.message
    );
    assert!(
        f.fix.contains("except: [10.244.0.0/20, 10.96.0.20/32]"),
        "{}",
        f.fix
    );
    // A pod without status.podIP gets an address from the loader, which the cluster may not give
    // it: no finding names it, no `except` is written for it.
    let unscheduled = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: pending, namespace: ops, labels: {app: p}}\n\
                       spec: {containers: [{name: m, image: i}]}\n";
    let only_allocated = format!(
        "{}{unscheduled}",
        IP_BLOCK.replace("10.0.0.0/8", "10.244.0.0/16, except: [10.244.0.0/20]")
    );
    let (_, allocated) = run(&only_allocated);
    assert!(
        of(&allocated, Rule::IpBlockCoversPods).is_empty(),
        "{:#?}",
        allocated.findings
    );
    let (_, fixed) = run(&IP_BLOCK.replace("10.0.0.0/8", "192.168.0.0/16"));
    assert!(of(&fixed, Rule::IpBlockCoversPods).is_empty());
    let (_, excepted) = run(&IP_BLOCK.replace(
        "10.0.0.0/8}",
        "10.0.0.0/8, except: [10.244.0.0/20, 10.96.0.20/32]}",
    ));
    assert!(
        of(&excepted, Rule::IpBlockCoversPods).is_empty(),
        "{:#?}",
        excepted.findings
    );
}

#[test]
fn a_namespace_left_open_while_others_are_isolated() {
    let (text, report) = run("");
    one(
        &text,
        &report,
        Rule::NamespaceNotIsolated,
        "Namespace shop",
        None,
        "name: shop, labels",
    );
    let deny_shop = DENY_ALL
        .replace("namespace: ops", "namespace: shop")
        .replace("name: deny,", "name: deny-shop,");
    let (_, fixed) = run(&deny_shop);
    assert!(
        of(&fixed, Rule::NamespaceNotIsolated).is_empty(),
        "{:#?}",
        fixed.findings
    );
    // kube-system left open is no finding: a default deny there would block the cluster DNS.
    let deny = |ns: &str| {
        format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny, namespace: {ns}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress]}}\n")
    };
    let system_open = format!("{BASE}{}{}", deny("shop"), deny("ops"));
    let mut loader = Loader::new();
    loader.load_str("t.yaml", &system_open);
    let (state, diagnostics) = loader.finish();
    let report = lint(
        &Engines::new(Arc::new(state)),
        &diagnostics,
        &[],
        Input::Manifests,
    );
    assert!(
        of(&report, Rule::NamespaceNotIsolated).is_empty(),
        "{:#?}",
        report.findings
    );
}

/// `text` with the policy `{name: NAME, namespace: NS}` staged (annotated audit-mode "true").
fn stage(text: &str, name_and_namespace: &str) -> String {
    let meta = format!("{{name: {name_and_namespace}}}");
    assert!(text.contains(&meta), "{meta} not in {text}");
    text.replace(
        &meta,
        &format!(
            "{{name: {name_and_namespace}, annotations: {{policy.palisade.dev/audit-mode: \"true\"}}}}"
        ),
    )
}

/// Staged policies are logged, not enforced: connectivity (isolation, DNS, redundancy) is judged
/// without them, as `matrix` answers; each object's own mistakes are still found on them, and
/// those findings say the policy is staged.
#[test]
fn staged_policies_are_judged_as_written_but_enforce_nothing() {
    // A staged egress lockdown isolates nothing: no DNS finding.
    let (_, report) = run(&stage(EGRESS_LOCKDOWN, "lockdown, namespace: ops"));
    assert!(
        of(&report, Rule::EgressWithoutDns).is_empty(),
        "{:#?}",
        report.findings
    );
    // A staged default deny leaves its namespace open.
    let deny_shop = DENY_ALL
        .replace("namespace: ops", "namespace: shop")
        .replace("name: deny,", "name: deny-shop,");
    let (_, report) = run(&stage(&deny_shop, "deny-shop, namespace: shop"));
    let open: Vec<String> = (of(&report, Rule::NamespaceNotIsolated).iter())
        .map(|f| f.object.to_string())
        .collect();
    assert_eq!(open, ["Namespace shop"], "{:#?}", report.findings);
    // A staged policy neither is redundant nor makes an enforced one redundant.
    for staged in ["web-a", "web-b"] {
        let (_, report) = run(&stage(TWO_POLICIES, &format!("{staged}, namespace: shop")));
        assert!(
            of(&report, Rule::RedundantPolicy).is_empty(),
            "{staged}: {:#?}",
            report.findings
        );
    }
    // Selectors matching nothing are found on a staged policy, which the finding says.
    let (text, report) = run(&stage(SELECTORS, "typos, namespace: shop"));
    let found = of(&report, Rule::SelectorMatchesNothing);
    assert_eq!(found.len(), 2, "{:#?}", report.findings);
    for f in found {
        assert!(f.message.contains("this policy is staged"), "{}", f.message);
        let line = f.origin.as_ref().and_then(|o| o.line);
        assert_eq!(line, Some(line_of(&text, "name: typos")));
    }
    // Nothing staged: no finding says so.
    let (_, report) = run(SELECTORS);
    assert!(report
        .findings
        .iter()
        .all(|f| !f.message.contains("staged")));
}

#[test]
fn policy_kinds_palisade_does_not_enforce() {
    let cilium = "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c, namespace: shop}\nspec: {}\n";
    let (text, report) = run(cilium);
    one(
        &text,
        &report,
        Rule::UnenforcedPolicyKind,
        "CiliumNetworkPolicy",
        Some("kind"),
        "kind: CiliumNetworkPolicy",
    );
    let config = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n";
    assert!(of(&run(config).1, Rule::UnenforcedPolicyKind).is_empty());
    // Policies of other things than the network are none of lint's business.
    for (api_version, kind) in [
        ("kyverno.io/v1", "ClusterPolicy"),
        ("policy/v1beta1", "PodSecurityPolicy"),
        ("security.istio.io/v1", "AuthorizationPolicy"),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicy",
        ),
    ] {
        let other = format!(
            "---\napiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: o}}\nspec: {{}}\n"
        );
        let (_, report) = run(&other);
        assert!(
            of(&report, Rule::UnenforcedPolicyKind).is_empty(),
            "{kind}: {:#?}",
            report.findings
        );
    }
    // Network policies of other plugins, by kind and group.
    for (api_version, kind) in [
        ("cilium.io/v2", "CiliumClusterwideNetworkPolicy"),
        ("crd.projectcalico.org/v1", "GlobalNetworkPolicy"),
        ("projectcalico.org/v3", "StagedNetworkPolicy"),
        ("projectcalico.org/v3", "GlobalNetworkPolicy"),
        ("policy.networking.k8s.io/v1beta1", "ClusterNetworkPolicy"),
        ("projectcalico.org/v3", "NetworkPolicy"),
        ("extensions/v1beta1", "NetworkPolicy"),
        ("networking.gke.io/v1alpha3", "FQDNNetworkPolicy"),
        ("crd.antrea.io/v1beta1", "ClusterNetworkPolicy"),
    ] {
        let other = format!(
            "---\napiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: o}}\nspec: {{}}\n"
        );
        let (_, report) = run(&other);
        assert_eq!(
            of(&report, Rule::UnenforcedPolicyKind).len(),
            1,
            "{kind}: {:#?}",
            report.findings
        );
    }
}

#[test]
fn disabled_rules_and_the_annotation_silence_findings() {
    let text = format!("{BASE}{DENY_ALL}{WEB_INGRESS_80}");
    let mut loader = Loader::new();
    loader.load_str("t.yaml", &text);
    let (state, diagnostics) = loader.finish();
    let engines = Engines::new(Arc::new(state));
    let all = lint(&engines, &diagnostics, &[], Input::Manifests);
    assert!(!of(&all, Rule::ServicePortNotTargetPort).is_empty());
    let disabled = lint(
        &engines,
        &diagnostics,
        &[Rule::ServicePortNotTargetPort],
        Input::Manifests,
    );
    assert!(of(&disabled, Rule::ServicePortNotTargetPort).is_empty());
    assert_eq!(disabled.findings.len(), all.findings.len() - 1);
    assert_eq!(disabled.silenced, 0);

    // On the policy.
    let annotated = WEB_INGRESS_80.replace(
        "{name: web-in, namespace: shop}",
        "{name: web-in, namespace: shop, annotations: {policy.palisade.dev/lint-disable: \"named-port-unresolved, service-port-not-target-port\"}}",
    );
    let (_, report) = run(&annotated);
    assert!(
        of(&report, Rule::ServicePortNotTargetPort).is_empty(),
        "{:#?}",
        report.findings
    );
    assert_eq!(report.silenced, 1);
    // On the namespace: for every object in it (the Service here).
    let (_, split) = run(WEB_V1_ONLY);
    assert_eq!(of(&split, Rule::ServicePodsUncovered).len(), 1);
    let quiet_shop = BASE.replace(
        "{name: shop, labels: {team: shop}}",
        "{name: shop, labels: {team: shop}, annotations: {policy.palisade.dev/lint-disable: service-pods-uncovered}}",
    );
    let text = format!("{quiet_shop}{DENY_ALL}{WEB_V1_ONLY}");
    let mut loader = Loader::new();
    loader.load_str("t.yaml", &text);
    let (state, diagnostics) = loader.finish();
    let report = lint(
        &Engines::new(Arc::new(state)),
        &diagnostics,
        &[],
        Input::Manifests,
    );
    assert!(
        of(&report, Rule::ServicePodsUncovered).is_empty(),
        "{:#?}",
        report.findings
    );
    assert_eq!(of(&report, Rule::PolicySplitsService).len(), 1);
    assert_eq!(report.silenced, 1);
}

#[test]
fn rule_ids_are_stable_and_unknown_ones_list_the_valid() {
    let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        [
            "service-port-not-target-port",
            "policy-splits-service",
            "service-pods-uncovered",
            "egress-without-dns",
            "selector-matches-nothing",
            "named-port-unresolved",
            "peers-look-like-and",
            "redundant-policy",
            "redundant-rule",
            "ipblock-covers-pods",
            "namespace-not-isolated",
            "unenforced-policy-kind",
            "tier-priority-tie",
            "tier-versions-mixed",
            "tier-rule-matches-everything",
            "tier-rule-shadowed",
            "tier-pass-to-nothing",
        ]
    );
    for r in Rule::ALL {
        assert_eq!(Rule::parse(r.id()), Ok(*r));
    }
    let err = Rule::parse("no-such-rule").unwrap_err();
    assert!(
        err.contains("\"no-such-rule\"") && err.contains("egress-without-dns, "),
        "{err}"
    );
}

/// A clean cluster has no findings at all.
#[test]
fn a_cluster_without_mistakes_has_no_findings() {
    let fine = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: http}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
"#;
    let (_, report) = run(fine);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

/// Redundancy is worked out only up to a bound of rules per pod class: past it, no finding (never
/// a wrong one) and bounded time.
#[test]
fn redundancy_past_the_bound_is_left_alone_quickly_and_said_so() {
    let policies: String = (0..300)
        .map(|i| {
            format!(
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: same-{i}, namespace: shop}}\n\
                 spec: {{podSelector: {{matchLabels: {{app: web}}}}, ingress: [{{ports: [{{port: http}}]}}]}}\n"
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let (_, report) = run(&policies);
    // Not judged, and said so: one info finding per rule naming the policies left.
    for rule in [Rule::RedundantPolicy, Rule::RedundantRule] {
        let found = of(&report, rule);
        assert_eq!(found.len(), 1, "{rule}: {:#?}", found);
        assert_eq!(found[0].severity, Severity::Info);
        assert!(
            found[0].message.contains(&format!(
                "not checked for {rule}, nor the 299 other policies of namespace shop"
            )) && found[0]
                .message
                .contains("ingress is allowed by 300 entries"),
            "{}",
            found[0].message
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Under the bound, the copies are found (all but one).
    let (_, few) = run(&policies[..policies.match_indices("---").nth(20).unwrap().0]);
    assert_eq!(
        of(&few, Rule::RedundantPolicy).len(),
        19,
        "{:#?}",
        few.findings
    );
}

/// Two Admin policies at one priority holding the same pods: their order is undefined (reported
/// on the one evaluated first, by name); distinct priorities, or subjects apart, are fine. A
/// v1alpha1 AdminNetworkPolicy beside a ClusterNetworkPolicy holding the same pods: mixed versions.
#[test]
fn cluster_wide_policies_of_one_priority_or_two_versions_holding_the_same_pods() {
    let cnp = |name: &str, priority: u32, namespaces: &str| {
        format!(
            "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\n\
             spec: {{tier: Admin, priority: {priority}, subject: {{namespaces: {namespaces}}}, ingress: [{{action: Deny, from: [{{namespaces: {{}}}}]}}]}}\n"
        )
    };
    let everything = "{}";
    let shop = "{matchLabels: {team: shop}}";
    let ops = "{matchLabels: {team: ops}}";
    let tie = [cnp("b-deny", 5, everything), cnp("a-deny", 5, shop)].concat();
    let (text, report) = run(&tie);
    let f = one(
        &text,
        &report,
        Rule::TierPriorityTie,
        "ClusterNetworkPolicy a-deny",
        Some("spec.priority"),
        "name: a-deny",
    );
    assert!(
        f.message.contains("ClusterNetworkPolicy/a-deny and ClusterNetworkPolicy/b-deny are both in the Admin tier at priority 5"),
        "{}",
        f.message
    );
    for fixed in [
        [cnp("b-deny", 6, everything), cnp("a-deny", 5, shop)].concat(),
        [cnp("b-deny", 5, ops), cnp("a-deny", 5, shop)].concat(),
    ] {
        let (_, report) = run(&fixed);
        assert!(
            of(&report, Rule::TierPriorityTie).is_empty(),
            "{:#?}",
            report.findings
        );
    }
    let anp = "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: old}\n\
               spec: {priority: 9, subject: {namespaces: {}}, ingress: [{action: Allow, from: [{namespaces: {}}]}]}\n";
    let (text, report) = run(&[cnp("new", 1, shop), anp.to_string()].concat());
    one(
        &text,
        &report,
        Rule::TierVersionsMixed,
        "ClusterNetworkPolicy new",
        Some("spec.priority"),
        "name: new",
    );
}

/// A policy covered at one of the classes it selects but not at the other is not redundant,
/// whichever class is judged first: classes are judged once per list of entries, and the two
/// lists differ.
#[test]
fn redundancy_holds_at_every_class_or_not_at_all() {
    let policies = |web_80: &str| {
        format!(
            r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: all-81, namespace: shop}}
spec:
  podSelector: {{}}
  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: client}}}}}}], ports: [{{port: 81}}]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: some-web-80, namespace: shop}}
spec:
  podSelector: {{matchLabels: {web_80}}}
  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: client}}}}}}], ports: [{{port: 80}}]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: z-web-80, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: client}}}}}}], ports: [{{port: 80}}]}}]
"#
        )
    };
    let z = |report: &Report| {
        (of(report, Rule::RedundantPolicy).iter())
            .filter(|f| f.object.to_string() == "NetworkPolicy shop/z-web-80")
            .count()
    };
    for one in ["{app: web, version: v1}", "{app: web, version: v2}"] {
        let (_, report) = run(&policies(one));
        assert_eq!(z(&report), 0, "{one}: {:#?}", report.findings);
    }
    // Covered at both: redundant.
    let (_, report) = run(&policies("{app: web}"));
    assert_eq!(z(&report), 1, "{:#?}", report.findings);
}

/// A Deny or Pass rule with a peer Palisade cannot read matches everything (failing closed), which
/// hides every later rule of its tier: named at the entry. An Accept rule's fails to nothing: no
/// finding; nor once the peer is spelt right.
#[test]
fn a_tier_rule_that_fails_closed_to_everything_is_named() {
    let cnp = |action: &str, peer: &str| {
        format!(
            "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: guard}}\n\
             spec: {{tier: Admin, priority: 1, subject: {{namespaces: {{}}}}, ingress: [{{action: {action}, from: [{{namespaces: {{}}}}, {peer}]}}, {{action: Deny, from: [{{namespaces: {{}}}}]}}]}}\n"
        )
    };
    let (text, report) = run(&cnp("Pass", "{namespaceSelectr: {}}"));
    let f = one(
        &text,
        &report,
        Rule::TierRuleMatchesEverything,
        "ClusterNetworkPolicy guard",
        Some("spec.ingress[0].from[1]"),
        "name: guard",
    );
    assert!(f.message.contains("this Pass rule"), "{}", f.message);
    for fine in [
        cnp("Accept", "{namespaceSelectr: {}}"),
        cnp("Pass", "{namespaces: {}}"),
    ] {
        let (_, report) = run(&fine);
        assert!(
            of(&report, Rule::TierRuleMatchesEverything).is_empty(),
            "{:#?}",
            report.findings
        );
    }
}

/// A ClusterNetworkPolicy `name` of `tier` at `priority` holding the pods of the namespaces
/// `subject` selects, with ingress rules `rules` (flow style), and `extra` metadata.
fn cnp(name: &str, extra: &str, tier: &str, priority: u32, subject: &str, rules: &str) -> String {
    format!(
        "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}{extra}}}\n\
         spec: {{tier: {tier}, priority: {priority}, subject: {{namespaces: {subject}}}, ingress: [{rules}]}}\n"
    )
}

const FROM_OPS: &str = "from: [{namespaces: {matchLabels: {team: ops}}}]";
const STAGED: &str = ", annotations: {policy.palisade.dev/audit-mode: \"true\"}";

/// An Admin Deny of ingress from `ops` everywhere, first: an Admin Accept of the same traffic
/// later, a NetworkPolicy rule allowing only it and a Baseline Deny of it never decide anything,
/// each named with the rule that decides first. Near misses: the Accept reaching further than the
/// Deny (partly shadowed), a NetworkPolicy rule for other peers, the Deny evaluated after the
/// Accept (it still decides in the namespaces the Accept does not hold), a Baseline rule after
/// an Admin Pass. A staged Deny shadows nothing (judged on what is enforced); the annotation
/// silences the finding.
#[test]
fn rules_decided_first_by_earlier_rules_are_shadowed() {
    let guard = |priority: u32, extra: &str| {
        cnp(
            "guard",
            extra,
            "Admin",
            priority,
            "{}",
            &format!("{{action: Deny, {FROM_OPS}}}"),
        )
    };
    let shop = "{matchLabels: {team: shop}}";
    let allow_ops = |from: &str, extra: &str| {
        cnp(
            "allow-ops",
            extra,
            "Admin",
            5,
            shop,
            &format!("{{action: Accept, {from}}}"),
        )
    };
    let (text, report) = run(&[guard(1, ""), allow_ops(FROM_OPS, "")].concat());
    let f = one(
        &text,
        &report,
        Rule::TierRuleShadowed,
        "ClusterNetworkPolicy allow-ops",
        Some("spec.ingress[0]"),
        "name: allow-ops",
    );
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.message.contains("never decides anything: at the 3 pods it applies to (shop/client, shop/web-1, shop/web-2), everything it matches is decided first by ClusterNetworkPolicy guard spec.ingress[0]"),
        "{}",
        f.message
    );
    assert!(
        f.fix.contains("delete spec.ingress[0]") && f.fix.contains("lower spec.priority"),
        "{}",
        f.fix
    );
    for fine in [
        [guard(1, ""), allow_ops("from: [{namespaces: {}}]", "")].concat(),
        [guard(9, ""), allow_ops(FROM_OPS, "")].concat(),
        [guard(1, STAGED), allow_ops(FROM_OPS, "")].concat(),
    ] {
        let (_, report) = run(&fine);
        assert!(
            of(&report, Rule::TierRuleShadowed).is_empty(),
            "{fine}\n{:#?}",
            report.findings
        );
    }
    let silenced = allow_ops(
        FROM_OPS,
        ", annotations: {policy.palisade.dev/lint-disable: tier-rule-shadowed}",
    );
    let (_, report) = run(&[guard(1, ""), silenced].concat());
    assert!(of(&report, Rule::TierRuleShadowed).is_empty());
    assert_eq!(report.silenced, 1, "{:#?}", report.findings);

    // A NetworkPolicy rule: the Admin Deny decides before NetworkPolicy.
    let web_in = |from: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: web-in, namespace: shop}}\n\
             spec: {{podSelector: {{matchLabels: {{app: web}}}}, ingress: [{{from: [{from}]}}]}}\n"
        )
    };
    let from_ops = "{namespaceSelector: {matchLabels: {team: ops}}}";
    let (text, report) = run(&[guard(1, ""), web_in(from_ops)].concat());
    let f = one(
        &text,
        &report,
        Rule::TierRuleShadowed,
        "NetworkPolicy shop/web-in",
        Some("spec.ingress[0]"),
        "name: web-in",
    );
    assert!(
        f.message
            .contains("the 2 pods it applies to (shop/web-1, shop/web-2)")
            && f.message
                .contains("by ClusterNetworkPolicy guard spec.ingress[0]"),
        "{}",
        f.message
    );
    assert!(!f.fix.contains("priority"), "{}", f.fix);
    // A rule shadowed itself (the Admin Accept of the same traffic, after the Deny) is not named
    // as deciding.
    let (_, report) = run(&[guard(1, ""), allow_ops(FROM_OPS, ""), web_in(from_ops)].concat());
    let found = of(&report, Rule::TierRuleShadowed);
    let web = (found.iter())
        .find(|f| f.object.to_string() == "NetworkPolicy shop/web-in")
        .expect("web-in shadowed");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        web.message
            .ends_with("decided first by ClusterNetworkPolicy guard spec.ingress[0]"),
        "{}",
        web.message
    );
    let (_, report) = run(&[
        guard(1, ""),
        web_in("{podSelector: {matchLabels: {app: client}}}"),
    ]
    .concat());
    assert!(
        of(&report, Rule::TierRuleShadowed).is_empty(),
        "{:#?}",
        report.findings
    );

    // A Baseline rule, judged where the Baseline tier is reached (shop: ops and kube-system are
    // isolated by NetworkPolicies).
    let base = cnp(
        "base",
        "",
        "Baseline",
        1,
        "{}",
        &format!("{{action: Deny, {FROM_OPS}}}"),
    );
    let (text, report) = run(&[guard(1, ""), base.clone()].concat());
    let f = one(
        &text,
        &report,
        Rule::TierRuleShadowed,
        "ClusterNetworkPolicy base",
        Some("spec.ingress[0]"),
        "name: base",
    );
    assert!(
        f.message.contains("the 3 pods it applies to"),
        "{}",
        f.message
    );
    let pass = cnp(
        "guard",
        "",
        "Admin",
        1,
        "{}",
        &format!("{{action: Pass, {FROM_OPS}}}"),
    );
    let (_, report) = run(&[pass, base].concat());
    assert!(
        of(&report, Rule::TierRuleShadowed).is_empty(),
        "{:#?}",
        report.findings
    );
}

/// An Admin Pass holding `shop`, where no NetworkPolicy isolates ingress and no Baseline rule
/// matches, allows what it passes: named with the namespace. Near misses: a NetworkPolicy
/// isolating `shop` below it, a Baseline rule matching the traffic; a staged NetworkPolicy does
/// not count (judged on what is enforced).
#[test]
fn an_admin_pass_with_nothing_below_it_acts_as_an_accept() {
    let pass = cnp(
        "delegate",
        "",
        "Admin",
        1,
        "{}",
        "{action: Pass, from: [{namespaces: {}}]}",
    );
    let isolate = |extra: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny, namespace: shop{extra}}}\n\
             spec: {{podSelector: {{}}, policyTypes: [Ingress]}}\n"
        )
    };
    for open in [pass.clone(), [pass.clone(), isolate(STAGED)].concat()] {
        let (text, report) = run(&open);
        let f = one(
            &text,
            &report,
            Rule::TierPassToNothing,
            "ClusterNetworkPolicy delegate",
            Some("spec.ingress[0]"),
            "name: delegate",
        );
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.message.contains("at 3 pods of its subject (namespace shop): no NetworkPolicy isolates their ingress"),
            "{}",
            f.message
        );
        assert!(f.fix.contains("action: Accept"), "{}", f.fix);
    }
    let baseline = cnp(
        "base",
        "",
        "Baseline",
        1,
        "{}",
        &format!("{{action: Deny, {FROM_OPS}}}"),
    );
    for fine in [
        [pass.clone(), isolate("")].concat(),
        [pass, baseline].concat(),
    ] {
        let (_, report) = run(&fine);
        assert!(
            of(&report, Rule::TierPassToNothing).is_empty(),
            "{fine}\n{:#?}",
            report.findings
        );
    }
}
