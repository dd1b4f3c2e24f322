//! Listing a cluster through kube-rs, against an in-process API server that answers in the API's
//! format: pages followed, objects validated like files, a missing CRD tolerated, errors named.

mod support;

use palisade_kube::{list_into, Connection, Listed, SourceError};
use palisade_model::logging::LoggingConfig;
use palisade_model::{Kind, Loader, PodKey};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use support::fake_api::{self, list, FakeApi, Reply};

fn pod(name: &str, node: &str, ip: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x",
                 "ports": [{"containerPort": 6379}]}]},
        "status": {"phase": "Running", "podIP": ip},
    })
}

fn policy(name: &str, cidr: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "redis"}},
                 "ingress": [{"from": [{"ipBlock": {"cidr": cidr}}]}]},
    })
}

/// A cluster of two pages of pods, a valid and an invalid policy, a node, and no NetworkLogging
/// CRD.
fn cluster() -> HashMap<String, Reply> {
    let namespace = json!({"metadata": {"name": "shop", "labels": {"team": "a"}}});
    let policies = vec![policy("good", "10.0.0.0/8"), policy("bad", "10.0.0.0/33")];
    let mut routes = fake_api::cluster(vec![namespace], vec![], policies);
    let pods = |items, next| list("v1", "PodList", items, next);
    routes.insert(
        "/api/v1/pods".into(),
        pods(vec![pod("redis", "n1", "10.1.0.5")], Some("p2")),
    );
    routes.insert(
        "/api/v1/pods#p2".into(),
        pods(vec![pod("cart", "n2", "10.1.0.6")], None),
    );
    let node = json!({"metadata": {"name": "n1", "labels": {"zone": "a"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.128.0.4"}]}});
    routes.insert(
        "/api/v1/nodes".into(),
        list("v1", "NodeList", vec![node], None),
    );
    routes
}

fn connect(api: &FakeApi, dir: &std::path::Path) -> Connection {
    Connection {
        kubeconfig: Some(api.kubeconfig(dir)),
        ..Connection::default()
    }
}

/// What `routes` list into a fresh loader, with `bounds` applied to the connection.
fn read(
    routes: HashMap<String, Reply>,
    bounds: impl FnOnce(&mut Connection),
) -> Result<
    (
        Listed,
        palisade_model::ClusterState,
        Vec<palisade_model::Diagnostic>,
    ),
    SourceError,
> {
    let api = FakeApi::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let mut connection = connect(&api, dir.path());
    bounds(&mut connection);
    let mut loader = Loader::new();
    let listed = list_into(&connection, &mut loader)?;
    let (state, diagnostics) = loader.finish();
    Ok((listed, state, diagnostics))
}

#[test]
fn a_cluster_is_listed_page_by_page_and_validated_like_files() {
    let api = FakeApi::start(cluster());
    let dir = tempfile::tempdir().unwrap();
    let mut loader = Loader::new();
    let listed = list_into(&connect(&api, dir.path()), &mut loader).expect("listed");
    assert_eq!(
        listed.counts,
        [
            ("Namespace", 1),
            ("Pod", 2),
            ("Service", 0),
            ("NetworkPolicy", 2),
            ("Node", 1),
            ("ClusterNetworkPolicy", 0),
            ("AdminNetworkPolicy", 0),
            ("BaselineAdminNetworkPolicy", 0),
            ("NetworkLogging", 0),
        ]
    );
    assert_eq!(listed.server, format!("http://{}", api.addr));
    assert_eq!(listed.skipped.len(), 1, "no NetworkLogging CRD: {listed:?}");
    let (state, diagnostics) = loader.finish();
    let redis = &state.pods[state.pod_id("shop", "redis").expect("redis")];
    assert_eq!(redis.ip, Some("10.1.0.5".parse().unwrap()));
    assert_eq!(redis.node_name.as_deref(), Some("n1"));
    assert_eq!(redis.key(), PodKey::new("shop", "redis"));
    assert!(state.pod_id("shop", "cart").is_some(), "the second page");
    assert_eq!(state.namespace("shop").unwrap().labels["team"], "a");
    let n1 = state.node("n1").expect("the node");
    assert_eq!(
        n1.addresses,
        ["10.128.0.4".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        n1.origin.file,
        format!("http://{}/api/v1/nodes/n1", api.addr)
    );
    // The invalid policy is rejected with its kind, name and field, the valid one kept.
    let names: Vec<&str> = state.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["good"]);
    let error = diagnostics.iter().find(|d| d.is_error()).expect("an error");
    let text = error.to_string();
    assert!(
        text.contains("NetworkPolicy shop/bad")
            && text.contains("ipBlock.cidr")
            && text.contains("/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/bad"),
        "{text}"
    );
    // Paginated with the API's parameters.
    let requests = api.requests.lock().unwrap().clone();
    let pods: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("/api/v1/pods"))
        .collect();
    assert_eq!(pods.len(), 2, "{requests:?}");
    assert!(pods.iter().all(|r| r.contains("limit=500")), "{pods:?}");
    assert!(pods[1].contains("continue=p2"), "{pods:?}");
}

#[test]
fn network_logging_is_read_when_the_cluster_has_it() {
    let mut routes = cluster();
    let logging = json!({"metadata": {"name": "default", "uid": "nl-uid", "generation": 4},
        "spec": {"cluster": {"allow": {"log": true, "delegate": false},
                             "deny": {"log": true, "delegate": false}}}});
    routes.insert(
        "/apis/networking.gke.io/v1alpha1/networkloggings".into(),
        list(
            "networking.gke.io/v1alpha1",
            "NetworkLoggingList",
            vec![logging],
            None,
        ),
    );
    let api = FakeApi::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let mut loader = Loader::new();
    let listed = list_into(&connect(&api, dir.path()), &mut loader).expect("listed");
    assert_eq!(listed.counts.last(), Some(&("NetworkLogging", 1)));
    let (state, _) = loader.finish();
    let LoggingConfig::Valid(switches, version) = &state.network_logging else {
        panic!("{:?}", state.network_logging);
    };
    assert!(switches.allow.log && switches.deny.log && !switches.deny.delegate);
    // Its uid and generation name the Event that tells the change.
    assert_eq!(version.uid.as_deref(), Some("nl-uid"));
    assert_eq!(version.generation, Some(4));
}

#[test]
fn a_failed_list_names_the_kind_and_the_server() {
    let mut routes = cluster();
    routes.insert(
        "/api/v1/pods".into(),
        Reply::status(
            403,
            "Forbidden",
            "pods is forbidden: User \"nobody\" cannot list",
        ),
    );
    let api = FakeApi::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let error = list_into(&connect(&api, dir.path()), &mut Loader::new()).unwrap_err();
    assert!(
        matches!(
            error,
            SourceError::List {
                kind: Kind::Pod,
                ..
            }
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("cannot list Pod from http://") && text.contains("forbidden"),
        "{text}"
    );
}

#[test]
fn an_unreadable_kubeconfig_is_named() {
    let connection = Connection {
        kubeconfig: Some("/nonexistent/kubeconfig".into()),
        ..Connection::default()
    };
    let error = list_into(&connection, &mut Loader::new()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("kubeconfig /nonexistent/kubeconfig: "),
        "{error}"
    );
}

/// One malformed object (a wrong type, an unknown NetworkPolicy field) is rejected with its kind,
/// name and field, as in a file; the rest of its list is kept.
#[test]
fn a_malformed_object_is_rejected_alone() {
    let mut routes = cluster();
    let mut broken = pod("broken", "n1", "10.1.0.9");
    broken["spec"]["containers"] = json!(5);
    routes.insert(
        "/api/v1/pods".into(),
        list(
            "v1",
            "PodList",
            vec![pod("redis", "n1", "10.1.0.5"), broken],
            None,
        ),
    );
    let mut strict = policy("strict", "10.0.0.0/8");
    strict["spec"]["podSelectr"] = json!({});
    routes.insert(
        "/apis/networking.k8s.io/v1/networkpolicies".into(),
        list(
            "networking.k8s.io/v1",
            "NetworkPolicyList",
            vec![strict],
            None,
        ),
    );
    let (_, state, diagnostics) = read(routes, |_| {}).expect("listed");
    assert!(state.pod_id("shop", "redis").is_some());
    assert!(state.pod_id("shop", "broken").is_none());
    assert!(
        state.policies.is_empty(),
        "an unknown field rejects a NetworkPolicy"
    );
    let errors: Vec<String> = (diagnostics.iter())
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Pod shop/broken") && e.contains("containers")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("NetworkPolicy shop/strict") && e.contains("podSelectr")),
        "{errors:#?}"
    );
}

/// Optional kinds the user may not read, or that the server does not have (a plain-text 404,
/// as an API server answers for an unknown group), are left out and said so.
#[test]
fn an_optional_kind_forbidden_or_missing_is_left_out() {
    let path = "/apis/networking.gke.io/v1alpha1/networkloggings";
    for reply in [
        Reply::status(403, "Forbidden", "networkloggings is forbidden"),
        Reply::plain(404, "404 page not found"),
    ] {
        let mut routes = cluster();
        routes.insert(path.into(), reply);
        let (listed, state, _) = read(routes, |_| {}).expect("listed");
        assert_eq!(state.network_logging, LoggingConfig::Absent);
        assert!(
            listed.skipped[0].starts_with("NetworkLogging: 40"),
            "{listed:?}"
        );
    }
    // A required kind is not optional.
    let mut routes = cluster();
    routes.insert(
        "/api/v1/services".into(),
        Reply::plain(404, "404 page not found"),
    );
    assert!(matches!(
        read(routes, |_| {}),
        Err(SourceError::List {
            kind: Kind::Service,
            ..
        })
    ));
}

/// The cluster-wide policies are read into the state; a cluster without their CRD (404) has none
/// of them, said; a user who may not read them (403) gets an error, not an answer without them.
#[test]
fn cluster_wide_policies_are_read_none_without_their_crd_and_a_refusal_is_an_error() {
    let path = "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies";
    let anp = json!({"metadata": {"name": "allow-dns"},
        "spec": {"priority": 5, "subject": {"namespaces": {}},
                 "egress": [{"action": "Allow", "to": [{"namespaces": {}}],
                             "ports": [{"portNumber": {"protocol": "UDP", "port": 53}}]}]}});
    let mut routes = cluster();
    let api_version = "policy.networking.k8s.io/v1alpha1";
    routes.insert(
        path.into(),
        list(api_version, "AdminNetworkPolicyList", vec![anp], None),
    );
    let (listed, state, diagnostics) = read(routes, |_| {}).expect("listed");
    assert!(listed.counts.contains(&("AdminNetworkPolicy", 1)));
    let about = |d: &&palisade_model::Diagnostic| {
        (d.object.as_deref()).is_some_and(|o| o.starts_with("AdminNetworkPolicy"))
    };
    assert_eq!(
        diagnostics.iter().filter(about).count(),
        0,
        "{diagnostics:#?}"
    );
    let policy = &state.tier_policies[0];
    assert_eq!(
        (policy.kind(), policy.name.as_str()),
        (Kind::AdminNetworkPolicy, "allow-dns")
    );
    assert!(policy
        .origin
        .file
        .ends_with("/adminnetworkpolicies/allow-dns"));

    let mut routes = cluster();
    routes.insert(path.into(), Reply::plain(404, "404 page not found"));
    let (listed, state, _) = read(routes, |_| {}).expect("listed");
    assert!(state.tier_policies.is_empty());
    assert!(
        listed
            .skipped
            .iter()
            .any(|s| s.starts_with("AdminNetworkPolicy: 404")),
        "{listed:?}"
    );

    let mut routes = cluster();
    let forbidden = "adminnetworkpolicies.policy.networking.k8s.io is forbidden";
    routes.insert(path.into(), Reply::status(403, "Forbidden", forbidden));
    assert!(matches!(
        read(routes, |_| {}),
        Err(SourceError::List {
            kind: Kind::AdminNetworkPolicy,
            code: Some(403),
            ..
        })
    ));
}

/// A hostile or broken server cannot hold the reader forever or fill its memory.
#[test]
fn a_list_is_bounded_in_time_pages_and_objects() {
    let mut hung = cluster();
    hung.insert("/api/v1/pods".into(), Reply::hang());
    let started = std::time::Instant::now();
    let error = read(hung, |c| c.request_timeout = Duration::from_millis(500)).unwrap_err();
    assert!(
        matches!(
            error,
            SourceError::Timeout {
                kind: Kind::Pod,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.to_string().contains("--request-timeout"), "{error}");

    let mut looping = cluster();
    looping.insert(
        "/api/v1/pods#p2".into(),
        list(
            "v1",
            "PodList",
            vec![pod("cart", "n2", "10.1.0.6")],
            Some("p2"),
        ),
    );
    let error = read(looping, |_| {}).unwrap_err();
    assert!(
        error.to_string().contains("repeated page token \"p2\""),
        "{error}"
    );

    let error = read(cluster(), |c| c.max_page_bytes = 100).unwrap_err();
    assert!(
        matches!(&error, SourceError::List { kind: Kind::Namespace, why, .. }
            if why.contains("larger than 100 bytes") && why.contains("--max-file-size")),
        "{error:?}"
    );

    let error = read(cluster(), |c| c.max_objects = 1).unwrap_err();
    assert!(
        matches!(&error, SourceError::Unbounded { kind: Kind::Pod, why, .. } if why == "more than 1 objects"),
        "{error:?}"
    );
}

/// Policies of other plugins the cluster holds are named on every answer read from it, as in
/// manifests: a group not installed says nothing, a kind with no object says nothing, a group
/// that cannot be read (403) says nothing and fails nothing.
#[test]
fn policies_of_other_plugins_in_the_cluster_are_warned_about() {
    let mut routes = cluster();
    let group = |version: &str| {
        Reply::ok(
            json!({"kind": "APIGroup", "apiVersion": "v1", "name": "cilium.io",
            "versions": [{"groupVersion": version, "version": "v2"}],
            "preferredVersion": {"groupVersion": version, "version": "v2"}}),
        )
    };
    routes.insert("/apis/cilium.io".into(), group("cilium.io/v2"));
    routes.insert(
        "/apis/cilium.io/v2".into(),
        Reply::ok(json!({"kind": "APIResourceList", "groupVersion": "cilium.io/v2", "resources": [
            {"name": "ciliumnetworkpolicies", "kind": "CiliumNetworkPolicy", "namespaced": true, "verbs": ["list"]},
            {"name": "ciliumnetworkpolicies/status", "kind": "CiliumNetworkPolicy", "namespaced": true, "verbs": ["get"]},
            {"name": "ciliumclusterwidenetworkpolicies", "kind": "CiliumClusterwideNetworkPolicy", "namespaced": false, "verbs": ["list"]},
            {"name": "ciliumendpoints", "kind": "CiliumEndpoint", "namespaced": true, "verbs": ["list"]}]})),
    );
    let item = json!({"metadata": {"name": "l7", "namespace": "shop"}, "spec": {}});
    routes.insert(
        "/apis/cilium.io/v2/ciliumnetworkpolicies".into(),
        list(
            "cilium.io/v2",
            "CiliumNetworkPolicyList",
            vec![item.clone()],
            None,
        ),
    );
    routes.insert(
        "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies".into(),
        list(
            "cilium.io/v2",
            "CiliumClusterwideNetworkPolicyList",
            vec![],
            None,
        ),
    );
    routes.insert(
        "/apis/cilium.io/v2/ciliumendpoints".into(),
        list("cilium.io/v2", "CiliumEndpointList", vec![item], None),
    );
    routes.insert(
        "/apis/crd.projectcalico.org".into(),
        Reply::status(403, "Forbidden", "cannot get"),
    );
    // Antrea's kinds are served, but the reader may not list them.
    routes.insert(
        "/apis/crd.antrea.io".into(),
        Reply::ok(json!({"kind": "APIGroup", "name": "crd.antrea.io",
            "preferredVersion": {"groupVersion": "crd.antrea.io/v1beta1", "version": "v1beta1"}})),
    );
    routes.insert(
        "/apis/crd.antrea.io/v1beta1".into(),
        Reply::ok(json!({"kind": "APIResourceList", "resources": [
            {"name": "clusternetworkpolicies", "kind": "ClusterNetworkPolicy", "namespaced": false}]})),
    );
    routes.insert(
        "/apis/crd.antrea.io/v1beta1/clusternetworkpolicies".into(),
        Reply::status(403, "Forbidden", "cannot list"),
    );
    let (_, _, diagnostics) = read(routes, |_| {}).expect("listed");
    let warned: Vec<&str> = (diagnostics.iter())
        .filter(|d| d.message.contains("not enforced by Palisade"))
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        warned,
        [
            "skipped cilium.io/v2 CiliumNetworkPolicy: this kind is not enforced by Palisade; matrix, explain and enforcement ignore it",
            "skipped crd.antrea.io/v1beta1 ClusterNetworkPolicy: the cluster serves this kind (whether it holds any could not be read: 403); it is not enforced by Palisade; matrix, explain and enforcement ignore it",
        ],
        "{diagnostics:#?}"
    );
    let d = diagnostics
        .iter()
        .find(|d| d.message.contains("CiliumNetworkPolicy"))
        .unwrap();
    assert!(
        d.origin
            .file
            .ends_with("/apis/cilium.io/v2/ciliumnetworkpolicies"),
        "{d:?}"
    );
}
