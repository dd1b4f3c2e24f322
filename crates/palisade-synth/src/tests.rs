//! Unit tests: determinism, exact counts, validity of every object, the policy mix, edge cases.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

/// Every document of every file, parsed back with a standard YAML parser.
fn docs(cluster: &SynthCluster) -> Vec<Value> {
    cluster
        .files
        .iter()
        .flat_map(|f| {
            serde_yaml_ng::Deserializer::from_str(&f.contents)
                .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn config(namespaces: usize, pods_per_ns: usize, policies: usize, seed: u64) -> SynthConfig {
    SynthConfig {
        namespaces,
        pods_per_ns,
        policies,
        seed,
    }
}

fn of_kind<'a>(docs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    docs.iter().filter(move |d| d["kind"] == kind)
}

// ---------------------------------------------------------------------------------------------
// Validation helpers (reference §5), written independently of the generator.

fn dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns1123_label)
}

fn label_name(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && alnum(s.as_bytes()[0])
        && alnum(s.as_bytes()[s.len() - 1])
        && s.bytes()
            .all(|b| alnum(b) || b == b'-' || b == b'_' || b == b'.')
}

fn label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => dns1123_subdomain(prefix) && label_name(name),
        None => label_name(k),
    }
}

fn label_value(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.is_empty() || label_name(s))
}

/// IANA_SVC_NAME.
fn port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn check_labels(map: &Value, what: &str) {
    let map = map
        .as_object()
        .unwrap_or_else(|| panic!("{what}: labels must be a map"));
    for (k, v) in map {
        assert!(label_key(k), "{what}: bad label key {k:?}");
        assert!(label_value(v), "{what}: bad label value {v:?} for {k}");
    }
}

fn check_selector(sel: &Value, what: &str) {
    let obj = sel
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not a map"));
    for key in obj.keys() {
        assert!(
            key == "matchLabels" || key == "matchExpressions",
            "{what}: field {key}"
        );
    }
    if let Some(m) = obj.get("matchLabels") {
        check_labels(m, what);
    }
    if let Some(exprs) = obj.get("matchExpressions") {
        for e in exprs.as_array().unwrap() {
            assert!(label_key(e["key"].as_str().unwrap()), "{what}: {e}");
            let values = e.get("values").and_then(Value::as_array);
            match e["operator"].as_str().unwrap() {
                "In" | "NotIn" => {
                    let values = values.unwrap_or_else(|| panic!("{what}: {e} needs values"));
                    assert!(!values.is_empty(), "{what}: {e} needs values");
                    values
                        .iter()
                        .for_each(|v| assert!(label_value(v), "{what}: {e}"));
                }
                "Exists" | "DoesNotExist" => {
                    assert!(values.is_none_or(|v| v.is_empty()), "{what}: {e}")
                }
                op => panic!("{what}: operator {op}"),
            }
        }
    }
}

fn check_ip_block(block: &Value, what: &str) {
    let cidr: ipnet::IpNet = block["cidr"].as_str().unwrap().parse().unwrap();
    assert_eq!(cidr, cidr.trunc(), "{what}: {cidr} is not canonical");
    for e in block
        .get("except")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let e: ipnet::IpNet = e.as_str().unwrap().parse().unwrap();
        assert_eq!(e, e.trunc(), "{what}: {e} is not canonical");
        assert!(
            cidr.contains(&e) && e.prefix_len() > cidr.prefix_len(),
            "{what}: except {e} not strictly inside {cidr}"
        );
        assert_eq!(
            matches!(cidr, ipnet::IpNet::V4(_)),
            matches!(e, ipnet::IpNet::V4(_)),
            "{what}: families differ"
        );
    }
}

fn check_peer(peer: &Value, what: &str) {
    let obj = peer.as_object().unwrap();
    assert!(!obj.is_empty(), "{what}: empty peer");
    if let Some(block) = obj.get("ipBlock") {
        assert_eq!(obj.len(), 1, "{what}: ipBlock with a selector");
        check_ip_block(block, what);
    }
    for key in obj.keys() {
        assert!(
            matches!(
                key.as_str(),
                "ipBlock" | "podSelector" | "namespaceSelector"
            ),
            "{what}: {key}"
        );
    }
    if let Some(s) = obj.get("podSelector") {
        check_selector(s, what);
    }
    if let Some(s) = obj.get("namespaceSelector") {
        check_selector(s, what);
    }
}

fn check_policy_port(port: &Value, what: &str) {
    let protocol = port.get("protocol").map(|p| p.as_str().unwrap());
    assert!(
        matches!(protocol, None | Some("TCP" | "UDP" | "SCTP")),
        "{what}: {port}"
    );
    match port.get("port") {
        Some(Value::Number(n)) => {
            let n = n.as_u64().unwrap();
            assert!((1..=65535).contains(&n), "{what}: {port}");
            if let Some(end) = port.get("endPort") {
                let end = end.as_u64().unwrap();
                assert!(end >= n && end <= 65535, "{what}: {port}");
            }
        }
        Some(Value::String(name)) => {
            assert!(port_name(name), "{what}: {port}");
            assert!(port.get("endPort").is_none(), "{what}: {port}");
        }
        None => assert!(port.get("endPort").is_none(), "{what}: {port}"),
        Some(other) => panic!("{what}: port {other}"),
    }
}

/// Checks a NetworkPolicy against reference §5.
fn check_policy(p: &Value) {
    let what = format!(
        "{}/{}",
        p["metadata"]["namespace"].as_str().unwrap(),
        p["metadata"]["name"].as_str().unwrap()
    );
    assert_eq!(p["apiVersion"], "networking.k8s.io/v1");
    assert!(dns1123_subdomain(p["metadata"]["name"].as_str().unwrap()));
    let spec = &p["spec"];
    check_selector(&spec["podSelector"], &what);
    for t in spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        assert!(t == "Ingress" || t == "Egress", "{what}: {t}");
    }
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        for rule in spec
            .get(dir)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for peer in rule
                .get(peers)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check_peer(peer, &what);
            }
            for port in rule
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check_policy_port(port, &what);
            }
        }
    }
}

/// Every `ipBlock` anywhere inside `v`.
fn ip_blocks(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "ipBlock" {
                    out.push(v.clone());
                } else {
                    ip_blocks(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| ip_blocks(v, out)),
        _ => {}
    }
}

/// Checks a workload and returns its pod's (port name, protocol) pairs.
fn check_workload(w: &Value) -> BTreeSet<(String, String)> {
    let what = w["metadata"]["name"].as_str().unwrap().to_string();
    assert!(dns1123_label(&what), "{what}");
    assert!(w["kind"] == "Deployment" || w["kind"] == "StatefulSet");
    assert_eq!(w["apiVersion"], "apps/v1");
    check_labels(&w["metadata"]["labels"], &what);
    let template_labels = &w["spec"]["template"]["metadata"]["labels"];
    check_labels(template_labels, &what);
    assert!(template_labels.get("app").is_some(), "{what}: app label");
    assert!(template_labels.get("tier").is_some(), "{what}: tier label");
    // The selector selects the template.
    for (k, v) in w["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&template_labels[k], v, "{what}: selector {k}");
    }
    if w["kind"] == "StatefulSet" {
        assert!(w["spec"]["serviceName"].is_string());
    }
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for c in w["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
    {
        assert!(dns1123_label(c["name"].as_str().unwrap()));
        for p in c["ports"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let protocol = p
                .get("protocol")
                .map_or("TCP", |p| p.as_str().unwrap())
                .to_string();
            assert!(port_name(name), "{what}: {name}");
            assert!(
                names.insert((name.to_string(), protocol.clone())),
                "{what}: duplicate {name}"
            );
            assert!(
                numbers.insert((p["containerPort"].as_u64().unwrap(), protocol)),
                "{what}: duplicate port {p}"
            );
        }
    }
    assert!(
        names.iter().map(|(n, _)| n).collect::<BTreeSet<_>>().len() == names.len(),
        "{what}: a port name is used twice"
    );
    names
}

// ---------------------------------------------------------------------------------------------

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let a = generate(&config(20, 10, 60, 7));
    assert_eq!(a, generate(&config(20, 10, 60, 7)));
    let b = generate(&config(20, 10, 60, 8));
    assert_ne!(a.files, b.files);
    // Every kind of file changes with the seed, not just one of them.
    for (fa, fb) in a.files.iter().zip(&b.files) {
        assert_ne!(fa.contents, fb.contents, "{}", fa.name);
    }
}

#[test]
fn the_policy_count_does_not_change_the_workloads() {
    let a = generate(&config(30, 12, 40, 5));
    let b = generate(&config(30, 12, 400, 5));
    let without_policies = |c: &SynthCluster| -> Vec<SynthFile> {
        c.files
            .iter()
            .filter(|f| !f.name.starts_with("policies-"))
            .cloned()
            .collect()
    };
    assert_eq!(without_policies(&a), without_policies(&b));
}

#[test]
fn counts_are_exact() {
    for (n, p, k) in [
        (20, 10, 60),
        (120, 7, 500),
        (3, 1, 0),
        (1, 1, 5),
        (1, 4, 0),
        (2, 3, 1),
        (7, 2, 13),
        (60, 20, 1000),
        (10, 50, 7),
        (5, 0, 10),
    ] {
        let cluster = generate(&config(n, p, k, 1));
        let docs = docs(&cluster);
        let count = |kind| of_kind(&docs, kind).count();
        assert_eq!(count("Namespace"), n);
        assert_eq!(count("NetworkPolicy"), k, "{n} {p} {k}");
        assert_eq!(count("DaemonSet"), 0);
        let replicas: u64 = docs
            .iter()
            .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
            .map(|d| d["spec"]["replicas"].as_u64().unwrap())
            .sum();
        assert_eq!(replicas as usize, n * p, "{n} {p} {k}");
        let workloads = count("Deployment") + count("StatefulSet");
        assert_eq!(
            cluster.summary,
            SynthSummary {
                namespaces: n,
                workloads,
                pods: n * p,
                services: count("Service"),
                policies: k,
            }
        );
        assert_eq!(workloads, count("Service"));
        // Names are unique per kind and namespace.
        let mut keys: Vec<String> = docs
            .iter()
            .map(|d| {
                format!(
                    "{}/{}/{}",
                    d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]
                )
            })
            .collect();
        let total = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), total);
    }
}

#[test]
fn kube_system_runs_coredns() {
    for (n, p) in [(1, 1), (1, 5), (4, 3), (50, 20)] {
        let docs = docs(&generate(&config(n, p, 3, 2)));
        let ns = of_kind(&docs, "Namespace").next().unwrap();
        assert_eq!(ns["metadata"]["name"], "kube-system");
        let dns = of_kind(&docs, "Deployment")
            .find(|d| d["metadata"]["name"] == "coredns")
            .expect("coredns");
        assert_eq!(dns["metadata"]["namespace"], "kube-system");
        let template = &dns["spec"]["template"];
        assert_eq!(template["metadata"]["labels"]["k8s-app"], "kube-dns");
        let ports = &template["spec"]["containers"][0]["ports"];
        assert!(ports
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "dns" && p["containerPort"] == 53 && p["protocol"] == "UDP"));
        assert!(ports
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "dns-tcp"
                && p["containerPort"] == 53
                && p.get("protocol").is_none_or(|p| p == "TCP")));
        assert!(dns["spec"]["replicas"].as_u64().unwrap() >= 1);
        let svc = of_kind(&docs, "Service")
            .find(|d| d["metadata"]["name"] == "kube-dns")
            .expect("kube-dns service");
        assert_eq!(svc["spec"]["selector"]["k8s-app"], "kube-dns");
    }
}

#[test]
fn every_object_is_valid() {
    for (n, p, k, seed) in [(60, 12, 720, 3), (8, 4, 200, 9), (1, 3, 30, 4)] {
        let docs = docs(&generate(&config(n, p, k, seed)));
        let mut namespaces = BTreeSet::new();
        for ns in of_kind(&docs, "Namespace") {
            let name = ns["metadata"]["name"].as_str().unwrap();
            assert!(dns1123_label(name), "{name}");
            check_labels(&ns["metadata"]["labels"], name);
            for key in ["team", "env", "role"] {
                assert!(ns["metadata"]["labels"][key].is_string(), "{name}: {key}");
            }
            namespaces.insert(name.to_string());
        }
        // Pod port names per (namespace, app), to check Services and policies against.
        let mut pods: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
        let mut all_port_names = BTreeSet::new();
        for w in docs
            .iter()
            .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
        {
            let ns = w["metadata"]["namespace"].as_str().unwrap().to_string();
            assert!(namespaces.contains(&ns));
            let names = check_workload(w);
            all_port_names.extend(names.iter().cloned());
            let selector = w["spec"]["selector"]["matchLabels"].to_string();
            pods.insert((ns, selector), names);
        }
        for s in of_kind(&docs, "Service") {
            let ns = s["metadata"]["namespace"].as_str().unwrap().to_string();
            let what = format!("{ns}/{}", s["metadata"]["name"]);
            let selector = s["spec"]["selector"].to_string();
            let names = pods
                .get(&(ns, selector))
                .unwrap_or_else(|| panic!("{what}: selects no workload"));
            let ports = s["spec"]["ports"].as_array().unwrap();
            assert!(!ports.is_empty(), "{what}: no ports");
            let mut seen = BTreeSet::new();
            for port in ports {
                assert!(port_name(port["name"].as_str().unwrap()), "{what}");
                assert!(
                    seen.insert(port["name"].to_string()),
                    "{what}: duplicate name"
                );
                let protocol = port["protocol"].as_str().unwrap().to_string();
                if let Some(target) = port["targetPort"].as_str() {
                    assert!(
                        names.contains(&(target.to_string(), protocol)),
                        "{what}: targetPort {target} is not a pod port"
                    );
                }
            }
        }
        for policy in of_kind(&docs, "NetworkPolicy") {
            check_policy(policy);
            assert!(namespaces.contains(policy["metadata"]["namespace"].as_str().unwrap()));
            // Every named port exists on some pod of the cluster, with that protocol.
            let mut ports = Vec::new();
            for dir in ["ingress", "egress"] {
                for rule in policy["spec"]
                    .get(dir)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    ports.extend(
                        rule.get("ports")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .cloned(),
                    );
                }
            }
            // (Small clusters may lack the tier a name belongs to; a pod without the name simply
            // does not match, which is valid.)
            for port in ports.iter().filter(|_| n >= 20) {
                if let Some(name) = port["port"].as_str() {
                    let protocol = port.get("protocol").map_or("TCP", |p| p.as_str().unwrap());
                    assert!(
                        all_port_names.contains(&(name.to_string(), protocol.to_string())),
                        "{}: named port {name}/{protocol} exists nowhere",
                        policy["metadata"]["name"]
                    );
                }
            }
        }
    }
}

#[test]
fn every_except_is_inside_its_cidr() {
    let cluster = generate(&config(60, 5, 720, 3));
    let mut blocks = Vec::new();
    for d in of_kind(&docs(&cluster), "NetworkPolicy") {
        ip_blocks(d, &mut blocks);
    }
    assert!(blocks.len() > 20);
    let mut with_except = 0;
    for b in &blocks {
        check_ip_block(b, "ipBlock");
        with_except += usize::from(b.get("except").is_some_and(|e| e != &Value::Array(vec![])));
    }
    assert!(with_except > 10);
}

/// At the benchmark scale the mix holds every shape the engine must handle, several times over.
#[test]
fn the_mix_is_realistic_at_benchmark_scale() {
    let cluster = generate(&config(500, 20, 2000, 1));
    assert_eq!(cluster.summary.pods, 10_000);
    let docs = docs(&cluster);
    let policies: Vec<&Value> = of_kind(&docs, "NetworkPolicy").collect();
    assert_eq!(policies.len(), 2000);
    let mut features: BTreeMap<&str, usize> = BTreeMap::new();
    let mut note = |f: &'static str, yes: bool| *features.entry(f).or_default() += usize::from(yes);
    let mut namespaces_with_policies = BTreeSet::new();
    for p in &policies {
        namespaces_with_policies.insert(p["metadata"]["namespace"].as_str().unwrap());
        let spec = &p["spec"];
        let text = spec.to_string();
        let types = spec.get("policyTypes").map(|t| t.to_string());
        let all_pods = spec["podSelector"] == serde_json::json!({});
        note(
            "default-deny-ingress",
            all_pods && spec.get("ingress").is_none() && types.as_deref() == Some("[\"Ingress\"]"),
        );
        note(
            "default-deny-egress-dns",
            all_pods
                && types.as_deref() == Some("[\"Egress\"]")
                && text.contains("kube-dns")
                && spec["egress"].as_array().unwrap().len() == 1,
        );
        note(
            "both-directions",
            types.as_deref() == Some("[\"Ingress\",\"Egress\"]"),
        );
        note(
            "defaulted-both-directions",
            types.is_none()
                && spec
                    .get("egress")
                    .is_some_and(|e| e != &serde_json::json!([])),
        );
        note("defaulted-ingress-only", types.is_none());
        note(
            "ingress-empty-list",
            spec.get("ingress") == Some(&serde_json::json!([])),
        );
        note("allow-all-rule", text.contains("\"ingress\":[{}]"));
        note("In", text.contains("\"operator\":\"In\""));
        note("NotIn", text.contains("\"operator\":\"NotIn\""));
        note("Exists", text.contains("\"operator\":\"Exists\""));
        note(
            "DoesNotExist",
            text.contains("\"operator\":\"DoesNotExist\""),
        );
        note("named-port", text.contains("\"port\":\""));
        note("endPort", text.contains("endPort"));
        note("UDP", text.contains("UDP"));
        note("SCTP", text.contains("SCTP"));
        note("ipv4-except", text.contains("\"except\":[\"1"));
        note("ipv6", text.contains("2001:db8") || text.contains("::/0"));
        note(
            "prefixed-label-key",
            text.contains("app.kubernetes.io/name"),
        );
        let mut and_peer = false;
        let mut ns_alone = false;
        let mut or_peers = false;
        for dir in ["ingress", "egress"] {
            for rule in spec
                .get(dir)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let peers: Vec<&Value> = rule
                    .get("from")
                    .or(rule.get("to"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .collect();
                for peer in &peers {
                    and_peer |= peer.get("namespaceSelector").is_some()
                        && peer.get("podSelector").is_some();
                    ns_alone |= peer.get("namespaceSelector").is_some()
                        && peer.get("podSelector").is_none();
                }
                or_peers |= peers.len() > 1
                    && peers.iter().any(|p| p.get("namespaceSelector").is_some())
                    && peers.iter().any(|p| {
                        p.get("podSelector").is_some() && p.get("namespaceSelector").is_none()
                    });
            }
        }
        note("namespaceSelector-AND-podSelector", and_peer);
        note("namespaceSelector-alone", ns_alone);
        note("OR-ed-peers", or_peers);
    }
    for (feature, count) in &features {
        assert!(*count >= 5, "{feature} appears {count} times: {features:?}");
    }
    // Every namespace but kube-system has policies; the baseline is in nearly all of them.
    assert_eq!(namespaces_with_policies.len(), 499);
    assert!(features["default-deny-ingress"] > 350, "{features:?}");
    // Named ports resolve to different numbers in different workloads.
    let mut http_ports = BTreeSet::new();
    for w in of_kind(&docs, "Deployment") {
        for c in w["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            for p in c["ports"].as_array().unwrap() {
                if p["name"] == "http" {
                    http_ports.insert(p["containerPort"].as_u64().unwrap());
                }
            }
        }
    }
    assert!(http_ports.len() >= 4, "{http_ports:?}");
    assert!(of_kind(&docs, "StatefulSet").count() > 100);
}

#[test]
fn few_policies_go_to_distinct_namespaces() {
    let docs = docs(&generate(&config(100, 5, 30, 6)));
    let namespaces: BTreeSet<&str> = of_kind(&docs, "NetworkPolicy")
        .map(|p| p["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces.len(), 30);
    assert!(!namespaces.contains("kube-system"));
}

#[test]
fn edge_cases_do_not_panic() {
    for n in [0, 1, 2, 5, 6] {
        for p in [0, 1, 2, 7] {
            for k in [0, 1, 2, 3, 17] {
                let cluster = generate(&config(n, p, k, 11));
                assert_eq!(cluster.summary.namespaces, n);
                assert_eq!(cluster.summary.pods, n * p);
                // With no namespace there is nowhere to put a policy.
                assert_eq!(cluster.summary.policies, if n == 0 { 0 } else { k });
                assert_eq!(
                    docs(&cluster).len(),
                    n + 2 * cluster.summary.workloads + cluster.summary.policies
                );
            }
        }
    }
    let one = docs(&generate(&config(1, 1, 4, 0)));
    assert!(of_kind(&one, "NetworkPolicy").all(|p| p["metadata"]["namespace"] == "kube-system"));
}

#[test]
fn file_layout() {
    let cluster = generate(&config(120, 3, 40, 1));
    let names: Vec<&str> = cluster.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[0], "namespaces.yaml");
    for chunk in ["0001", "0002", "0003"] {
        assert!(names.contains(&format!("workloads-{chunk}.yaml").as_str()));
        assert!(names.contains(&format!("services-{chunk}.yaml").as_str()));
    }
    assert!(!names.iter().any(|n| n.ends_with("0004.yaml")));
    assert!(names.iter().all(|n| is_generated_name(n)));
    for f in &cluster.files {
        assert!(
            f.contents.is_empty() || f.contents.starts_with("---\n"),
            "{}",
            f.name
        );
    }
}

#[test]
fn write_to_creates_the_files_and_removes_stale_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested").join("out");
    let big = generate(&config(120, 2, 300, 1));
    big.write_to(&out).unwrap();
    std::fs::write(out.join("README.md"), "mine").unwrap();
    std::fs::write(out.join("policies-extra.yaml"), "mine").unwrap();
    let small = generate(&config(5, 3, 10, 1));
    small.write_to(&out).unwrap();
    let mut on_disk: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = small.files.iter().map(|f| f.name.clone()).collect();
    expected.extend(["README.md".to_string(), "policies-extra.yaml".to_string()]);
    expected.sort();
    assert_eq!(on_disk, expected);
    for f in &small.files {
        assert_eq!(
            std::fs::read_to_string(out.join(&f.name)).unwrap(),
            f.contents
        );
    }
}

#[test]
fn generated_names_are_recognised() {
    assert!(is_generated_name("namespaces.yaml"));
    assert!(is_generated_name("policies-0001.yaml"));
    assert!(is_generated_name("workloads-12345.yaml"));
    assert!(!is_generated_name("policies-1.yaml"));
    assert!(!is_generated_name("policies-extra.yaml"));
    assert!(!is_generated_name("services-0001.yml"));
    assert!(!is_generated_name("my-namespaces.yaml"));
}
