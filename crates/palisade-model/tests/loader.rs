//! Integration tests of manifest loading: documents, lists, files and folders, workload templates,
//! namespaces, validation diagnostics, duplicates, pod IPs, named ports, and robustness on garbage.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_model::{
    ClusterState, Diagnostic, Loader, PodInfo, PodKey, Protocol, Severity, DEFAULT_POD_CIDR,
};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// helpers

fn load(text: &str) -> (ClusterState, Vec<Diagnostic>) {
    let mut loader = Loader::new();
    loader.load_str("t.yaml", text);
    loader.finish()
}

fn load_ok(text: &str) -> ClusterState {
    let (state, diags) = load(text);
    let bad: Vec<_> = diags
        .iter()
        .filter(|d| d.severity >= Severity::Warning)
        .collect();
    assert!(bad.is_empty(), "unexpected diagnostics: {bad:#?}");
    state
}

fn errors(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
    diags.iter().filter(|d| d.is_error()).collect()
}

fn pod<'a>(state: &'a ClusterState, ns: &str, name: &str) -> &'a PodInfo {
    let i = state
        .pod_id(ns, name)
        .unwrap_or_else(|| panic!("no pod {ns}/{name} in {:?}", pod_keys(state)));
    &state.pods[i]
}

fn pod_keys(state: &ClusterState) -> Vec<String> {
    state.pods.iter().map(|p| p.key().to_string()).collect()
}

fn pods_of<'a>(state: &'a ClusterState, owner_kind: &str, owner_prefix: &str) -> Vec<&'a PodInfo> {
    state
        .pods
        .iter()
        .filter(|p| {
            p.owner
                .as_ref()
                .is_some_and(|o| o.kind == owner_kind && o.name.starts_with(owner_prefix))
        })
        .map(|p| &**p)
        .collect()
}

fn ips(state: &ClusterState) -> BTreeMap<PodKey, Option<IpAddr>> {
    state.pods.iter().map(|p| (p.key(), p.ip)).collect()
}

fn pod_yaml(ns: &str, name: &str, labels: &str, ip: Option<&str>) -> String {
    let status = ip.map_or(String::new(), |ip| format!("status:\n  podIP: {ip}\n"));
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {labels}\n\
         spec:\n  containers:\n  - name: c\n    image: nginx\n{status}---\n"
    )
}

// ---------------------------------------------------------------------------------------------
// documents, lists, files and folders

const MIXED: &str = r#"# a comment before the first document
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    team: a
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  containers:
  - name: web
    image: nginx
    ports:
    - {name: http, containerPort: 8080}
status:
  podIP: 10.1.0.5
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80, targetPort: http}
  - {port: 53, protocol: UDP}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web
  namespace: shop
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{port: http}]
"#;

#[test]
fn multi_document_yaml_loads_every_kind() {
    let state = load_ok(MIXED);
    assert_eq!(state.namespaces.len(), 1);
    let ns = state.namespace("shop").unwrap();
    assert_eq!(ns.labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(ns.origin.as_ref().unwrap().line, Some(2));
    let web = pod(&state, "shop", "web");
    assert_eq!(web.ip, Some("10.1.0.5".parse().unwrap()));
    assert!(!web.ip_allocated && !web.from_template);
    assert_eq!(web.origin.file, "t.yaml");
    assert_eq!(web.origin.line, Some(9));
    assert_eq!(state.services.len(), 1);
    let svc = &state.services[0];
    assert_eq!(svc.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(svc.ports.len(), 2);
    assert_eq!(svc.ports[0].port, 80);
    assert_eq!(svc.ports[0].target_port, IntOrString::String("http".into()));
    assert_eq!(svc.ports[1].protocol, Protocol::Udp);
    assert_eq!(svc.ports[1].target_port, IntOrString::Int(53));
    assert_eq!(state.policies.len(), 1);
    assert_eq!(
        state.policies[0].key().to_string(),
        "NetworkPolicy shop/allow-web"
    );
    assert_eq!(state.policies[0].origin.line, Some(36));
}

#[test]
fn json_single_and_concatenated_documents() {
    let text = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}
{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "p", "namespace": "a"},
 "spec": {"containers": [{"name": "c", "image": "x"}]}}

{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
 "metadata": {"name": "deny", "namespace": "a"}, "spec": {"podSelector": {}}}
"#;
    let mut loader = Loader::new();
    loader.load_str("m.json", text);
    let (state, diags) = loader.finish();
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(state.namespaces.len(), 1);
    assert_eq!(pod(&state, "a", "p").origin.line, Some(2));
    assert_eq!(state.policies[0].origin.line, Some(6));
    assert_eq!(state.policies[0].origin.file, "m.json");
}

#[test]
fn kind_list_as_kubectl_prints_it() {
    let text = r#"apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: a
    namespace: x
    labels: {app: a}
  spec:
    containers: [{name: c, image: i}]
  status: {podIP: 10.0.0.1}
- apiVersion: v1
  kind: Service
  metadata: {name: s, namespace: x}
  spec: {selector: {app: a}, ports: [{port: 80}]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: p, namespace: x}
  spec: {podSelector: {}}
kind: List
metadata:
  resourceVersion: ""
"#;
    let state = load_ok(text);
    assert_eq!(pod_keys(&state), vec!["x/a"]);
    assert_eq!(state.services.len(), 1);
    assert_eq!(state.policies.len(), 1);
    // The same list as JSON (kubectl get -o json).
    let value: serde_json::Value = serde_yaml_ng::from_str(text).unwrap();
    let mut loader = Loader::new();
    loader.load_str("l.json", &serde_json::to_string_pretty(&value).unwrap());
    let (json_state, diags) = loader.finish();
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(pod_keys(&json_state), vec!["x/a"]);
    assert_eq!(json_state.policies.len(), 1);
}

#[test]
fn typed_lists_with_and_without_item_kinds() {
    // As the API server returns typed lists, items carry no apiVersion/kind.
    let text = r#"apiVersion: v1
kind: PodList
metadata: {resourceVersion: "1"}
items:
- metadata: {name: a, namespace: x}
  spec: {containers: [{name: c, image: i}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: b, namespace: x}
  spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicyList
items:
- metadata: {name: p, namespace: x}
  spec: {podSelector: {}}
---
apiVersion: apps/v1
kind: DeploymentList
items: []
"#;
    let state = load_ok(text);
    assert_eq!(pod_keys(&state), vec!["x/a", "x/b"]);
    assert_eq!(state.policies.len(), 1);
    assert_eq!(state.policies[0].key().to_string(), "NetworkPolicy x/p");
}

#[test]
fn list_items_must_be_a_list() {
    let (state, diags) = load(
        "apiVersion: v1\nkind: List\nitems: 5\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n",
    );
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1, "{diags:#?}");
    assert_eq!(errs[0].field.as_deref(), Some("items"));
    assert_eq!(errs[0].origin.line, Some(1));
    assert!(state.namespace("ok").is_some());
}

#[test]
fn invalid_item_in_a_list_is_rejected_alone() {
    let text = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: Bad_Name, namespace: x}
  spec: {containers: [{name: c, image: i}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: good, namespace: x}
  spec: {containers: [{name: c, image: i}]}
- just a string
"#;
    let (state, diags) = load(text);
    assert_eq!(pod_keys(&state), vec!["x/good"]);
    let errs = errors(&diags);
    assert!(errs
        .iter()
        .any(|d| d.object.as_deref() == Some("Pod x/Bad_Name")
            && d.field.as_deref() == Some("metadata.name")));
    assert!(errs
        .iter()
        .any(|d| d.message.contains("expected a Kubernetes object")));
}

#[test]
fn files_and_folders_recursive_sorted_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("b/deeper")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    let write = |rel: &str, text: &str| std::fs::write(root.join(rel), text).unwrap();
    // The same pod in three files: the first in sorted order wins, the others are duplicates.
    write("a.yaml", &pod_yaml("default", "dup", "{from: a}", None));
    write(
        "b/deeper/c.yml",
        &pod_yaml("default", "dup", "{from: c}", None),
    );
    write(
        "z.json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"from-json"}}"#,
    );
    write(
        "b/one.yml",
        &pod_yaml("default", "one", "{from: yml}", None),
    );
    write("notes.txt", "this is not yaml: [");
    write("README.md", "# nothing");
    write(".hidden.yaml", &pod_yaml("default", "hidden", "{}", None));
    write(".git/x.yaml", &pod_yaml("default", "git", "{}", None));
    write("empty.yaml", "");
    write("comments.yaml", "# only a comment\n---\n");

    let mut loader = Loader::new();
    loader.load_path(root);
    let (state, diags) = loader.finish();
    assert_eq!(pod_keys(&state), vec!["default/dup", "default/one"]);
    assert!(state.namespace("from-json").is_some());
    let dup = pod(&state, "default", "dup");
    assert_eq!(dup.labels["from"], "a");
    assert!(dup.origin.file.ends_with("a.yaml"), "{}", dup.origin.file);
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1, "{diags:#?}");
    assert!(errs[0].origin.file.ends_with("c.yml"), "{}", errs[0]);
    assert!(errs[0].message.contains("defined twice"));

    // A single file by path.
    let mut loader = Loader::new();
    loader.load_path(&root.join("b/one.yml"));
    let (state, diags) = loader.finish();
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(pod_keys(&state), vec!["default/one"]);
    assert!(state.pods.as_slice()[0].origin.file.ends_with("one.yml"));
}

#[test]
fn folder_order_is_by_name_not_creation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Created in reverse name order; a duplicate resolves to the first file by name.
    for name in ["c.yaml", "b.yaml", "a.yaml"] {
        let label = format!("{{file: {}}}", &name[..1]);
        std::fs::write(root.join(name), pod_yaml("default", "p", &label, None)).unwrap();
    }
    let mut loader = Loader::new().replace_duplicates(true);
    loader.load_path(root);
    let (state, diags) = loader.finish();
    assert!(errors(&diags).is_empty(), "{diags:#?}");
    assert_eq!(pod(&state, "default", "p").labels["file"], "c");
}

#[cfg(unix)]
#[test]
fn symlinked_folder_loops_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(
        root.join("sub/p.yaml"),
        pod_yaml("default", "p", "{}", None),
    )
    .unwrap();
    std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
    let mut loader = Loader::new();
    loader.load_path(root);
    let (state, diags) = loader.finish();
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(pod_keys(&state), vec!["default/p"]);
}

#[test]
fn missing_path_is_an_error_diagnostic() {
    let mut loader = Loader::new();
    loader.load_path(Path::new("/definitely/not/here.yaml"));
    loader.load_str(
        "ok.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n",
    );
    let (state, diags) = loader.finish();
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].origin.file, "/definitely/not/here.yaml");
    assert!(errs[0].message.contains("cannot read"), "{}", errs[0]);
    assert!(state.namespace("ok").is_some());
}

#[test]
fn yaml_flow_mapping_documents_are_yaml_not_broken_json() {
    let (state, diags) = load(
        "{apiVersion: v1, kind: Namespace, metadata: {name: flow}}\n---\n{apiVersion: v1, kind: Namespace, metadata: {name: flow2}}\n",
    );
    assert!(diags.is_empty(), "{diags:#?}");
    assert!(state.namespace("flow").is_some());
    assert!(state.namespace("flow2").is_some());
}

#[test]
fn crlf_line_endings_and_document_end_markers() {
    let text = "apiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: a\r\n...\r\n---\r\napiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: b\r\n";
    let state = load_ok(text);
    assert_eq!(state.namespaces.len(), 2);
    assert_eq!(
        state.namespace("b").unwrap().origin.as_ref().unwrap().line,
        Some(7)
    );
}

// ---------------------------------------------------------------------------------------------
// workloads

const WORKLOADS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: cache, namespace: app}
spec:
  replicas: 2
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec: {containers: [{name: c, image: redis}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: app}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: postgres}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: agent}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: app}
spec:
  template:
    metadata: {labels: {app: migrate}}
    spec: {restartPolicy: Never, containers: [{name: c, image: m}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup, namespace: app}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      parallelism: 2
      template:
        metadata: {labels: {app: backup}}
        spec: {restartPolicy: Never, containers: [{name: c, image: b}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: scaled-down, namespace: app}
spec:
  replicas: 0
  selector: {matchLabels: {app: off}}
  template:
    metadata: {labels: {app: off}}
    spec: {containers: [{name: c, image: x}]}
"#;

#[test]
fn workloads_become_template_pods() {
    let state = load_ok(WORKLOADS);
    assert!(state.pods.iter().all(|p| p.from_template));

    let web = pods_of(&state, "ReplicaSet", "web-");
    assert_eq!(web.len(), 3, "{:?}", pod_keys(&state));
    let rs = &web[0].owner.as_ref().unwrap().name;
    for p in &web {
        assert_eq!(p.namespace, "app");
        assert_eq!(&p.owner.as_ref().unwrap().name, rs, "one ReplicaSet");
        assert!(p.name.starts_with(&format!("{rs}-")), "{}", p.name);
        assert_eq!(p.labels["app"], "web");
        assert_eq!(
            p.labels["pod-template-hash"],
            rs.strip_prefix("web-").unwrap()
        );
        assert_eq!(p.named_port("http", Protocol::Tcp), Some(8080));
        assert_eq!(p.origin.line, Some(1), "origin is the workload document");
    }
    assert_eq!(web.iter().map(|p| &p.name).collect::<HashSet<_>>().len(), 3);

    let cache = pods_of(&state, "ReplicaSet", "cache");
    assert_eq!(cache.len(), 2);
    assert!(cache
        .iter()
        .all(|p| p.owner.as_ref().unwrap().name == "cache"));
    assert!(cache.iter().all(|p| p.name.starts_with("cache-")));

    let db: Vec<_> = pods_of(&state, "StatefulSet", "db")
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(db, vec!["db-0", "db-1", "db-2"]);
    assert_eq!(
        pod(&state, "app", "db-1").labels["statefulset.kubernetes.io/pod-name"],
        "db-1"
    );

    let agent = pods_of(&state, "DaemonSet", "agent");
    assert_eq!(agent.len(), 1);
    assert_eq!(agent[0].namespace, "kube-system");

    let migrate = pods_of(&state, "Job", "migrate");
    assert_eq!(migrate.len(), 1);
    assert_eq!(migrate[0].labels["job-name"], "migrate");

    let backup = pods_of(&state, "Job", "backup-");
    assert_eq!(backup.len(), 2, "parallelism honoured");
    let job = &backup[0].owner.as_ref().unwrap().name;
    assert!(backup.iter().all(|p| p.labels["job-name"] == *job));

    assert!(
        state
            .pods
            .iter()
            .all(|p| p.labels.get("app").map(String::as_str) != Some("off")),
        "replicas: 0 makes no pods"
    );
    assert_eq!(state.pods.len(), 3 + 2 + 3 + 1 + 1 + 2);

    // Every template pod got an address in the default pod CIDR, all different.
    let cidr: ipnet::IpNet = DEFAULT_POD_CIDR.parse().unwrap();
    let addrs: HashSet<_> = state.pods.iter().map(|p| p.ip.unwrap()).collect();
    assert_eq!(addrs.len(), state.pods.len());
    assert!(addrs.iter().all(|ip| cidr.contains(ip)));
    assert!(state.pods.iter().all(|p| p.ip_allocated));
}

#[test]
fn template_pods_are_deterministic() {
    let a = load_ok(WORKLOADS);
    let b = load_ok(WORKLOADS);
    assert_eq!(pod_keys(&a), pod_keys(&b));
    assert_eq!(ips(&a), ips(&b));
    assert_eq!(a.pods, b.pods);
    // Also independent of what else is loaded before it (other namespaces, other files).
    let mut loader = Loader::new();
    loader.load_str("first.yaml", &pod_yaml("other", "x", "{app: x}", None));
    loader.load_str("t.yaml", WORKLOADS);
    let (c, _) = loader.finish();
    let c_app: Vec<_> = c.pods.iter().filter(|p| p.namespace != "other").collect();
    let a_app: Vec<_> = a.pods.iter().collect();
    assert_eq!(
        c_app.iter().map(|p| (p.key(), p.ip)).collect::<Vec<_>>(),
        a_app.iter().map(|p| (p.key(), p.ip)).collect::<Vec<_>>()
    );
}

#[test]
fn workload_with_matching_pods_is_not_expanded() {
    let text = format!(
        "{}{}",
        pod_yaml("app", "web-abc", "{app: web, extra: x}", Some("10.9.0.1")),
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: elsewhere}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: x}]}
"#
    );
    let state = load_ok(&text);
    let app: Vec<_> = state.pods.iter().filter(|p| p.namespace == "app").collect();
    assert_eq!(app.len(), 1, "{:?}", pod_keys(&state));
    assert!(!app[0].from_template);
    // The pod in another namespace does not count: that Deployment expands.
    let other: Vec<_> = state
        .pods
        .iter()
        .filter(|p| p.namespace == "elsewhere")
        .collect();
    assert_eq!(other.len(), 1);
    assert!(other[0].from_template);
}

#[test]
fn workload_selector_with_expressions_matches_existing_pods() {
    let text = format!(
        "{}{}",
        pod_yaml("default", "db-0", "{app: db, tier: data}", None),
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  selector:
    matchExpressions: [{key: tier, operator: In, values: [data]}]
  template:
    metadata: {labels: {app: db, tier: data}}
    spec: {containers: [{name: c, image: x}]}
"#
    );
    let state = load_ok(&text);
    assert_eq!(pod_keys(&state), vec!["default/db-0"]);
    assert!(!state.pods.as_slice()[0].from_template);
}

#[test]
fn job_pods_given_explicitly_are_not_duplicated_by_the_template() {
    // Jobs usually have no selector in manifests (the API server generates one); their pods carry an
    // owner reference and the template's labels.
    let text = r#"apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: app}
spec:
  template:
    metadata: {labels: {app: migrate}}
    spec: {restartPolicy: Never, containers: [{name: c, image: m}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: migrate-x7k2p
  namespace: app
  labels: {app: migrate, job-name: migrate}
  ownerReferences:
  - {apiVersion: batch/v1, kind: Job, name: migrate, uid: "1", controller: true}
spec: {restartPolicy: Never, containers: [{name: c, image: m}]}
"#;
    let state = load_ok(text);
    assert_eq!(
        pod_keys(&state),
        vec!["app/migrate-x7k2p"],
        "no template pod"
    );
    let owner = state.pods.as_slice()[0].owner.as_ref().unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Job", "migrate")
    );
}

#[test]
fn deployment_and_its_replicaset_expand_once() {
    let text = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-5d8f7c9b6
  namespace: app
  ownerReferences:
  - {apiVersion: apps/v1, kind: Deployment, name: web, uid: "1", controller: true}
spec:
  replicas: 2
  selector: {matchLabels: {app: web, pod-template-hash: 5d8f7c9b6}}
  template:
    metadata: {labels: {app: web, pod-template-hash: 5d8f7c9b6}}
    spec: {containers: [{name: c, image: x}]}
"#;
    let state = load_ok(text);
    assert_eq!(state.pods.len(), 2, "{:?}", pod_keys(&state));
    for p in &state.pods {
        let owner = p.owner.as_ref().unwrap();
        assert_eq!(owner.kind, "ReplicaSet");
        assert_eq!(owner.name, "web-5d8f7c9b6");
        assert!(p.name.starts_with("web-5d8f7c9b6-"));
        assert_eq!(p.labels["pod-template-hash"], "5d8f7c9b6");
    }
    // The same with the ReplicaSet first.
    let docs: Vec<&str> = text.split("---\n").collect();
    let reversed = format!("{}---\n{}", docs[1], docs[0]);
    assert_eq!(pod_keys(&load_ok(&reversed)), pod_keys(&state));
}

#[test]
fn cronjob_and_its_job_expand_once() {
    let text = r#"apiVersion: batch/v1
kind: CronJob
metadata: {name: backup, namespace: app}
spec:
  schedule: "@hourly"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: backup}}
        spec: {restartPolicy: Never, containers: [{name: c, image: b}]}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: backup-29000001
  namespace: app
  ownerReferences:
  - {apiVersion: batch/v1, kind: CronJob, name: backup, uid: "1"}
spec:
  template:
    metadata: {labels: {app: backup}}
    spec: {restartPolicy: Never, containers: [{name: c, image: b}]}
"#;
    let state = load_ok(text);
    assert_eq!(state.pods.len(), 1, "{:?}", pod_keys(&state));
    assert_eq!(
        state.pods.as_slice()[0].owner.as_ref().unwrap().name,
        "backup-29000001"
    );
}

#[test]
fn same_named_workloads_of_different_kinds_get_distinct_pods() {
    let text = r#"apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: x}
spec:
  replicas: 1
  selector: {matchLabels: {app: rs}}
  template: {metadata: {labels: {app: rs}}, spec: {containers: [{name: c, image: x}]}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: x}
spec:
  selector: {matchLabels: {app: ds}}
  template: {metadata: {labels: {app: ds}}, spec: {containers: [{name: c, image: x}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: x}
spec:
  template: {metadata: {labels: {app: job}}, spec: {restartPolicy: Never, containers: [{name: c, image: x}]}}
"#;
    let state = load_ok(text);
    assert_eq!(state.pods.len(), 3, "{:?}", pod_keys(&state));
    let names: HashSet<_> = state.pods.iter().map(|p| p.name.clone()).collect();
    assert_eq!(names.len(), 3, "pod names collide: {names:?}");
    let apps: HashSet<_> = state.pods.iter().map(|p| p.labels["app"].clone()).collect();
    assert_eq!(apps.len(), 3);
    for p in &state.pods {
        assert_eq!(
            state.pod_id("default", &p.name).map(|i| &state.pods[i]),
            Some(p)
        );
    }
}

#[test]
fn template_pod_never_replaces_an_explicit_pod_of_the_same_name() {
    let text = format!(
        "{}{}",
        pod_yaml("default", "db-0", "{other: thing}", None),
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  selector: {matchLabels: {app: db}}
  template: {metadata: {labels: {app: db}}, spec: {containers: [{name: c, image: x}]}}
"#
    );
    let state = load_ok(&text);
    assert_eq!(pod_keys(&state), vec!["default/db-0", "default/db-1"]);
    assert!(!pod(&state, "default", "db-0").from_template);
    assert!(pod(&state, "default", "db-1").from_template);
}

#[test]
fn invalid_workload_template_is_reported_with_its_path() {
    let text = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: x
        ports: [{containerPort: 80, protocol: ICMP}]
"#;
    let (state, diags) = load(text);
    assert!(state.pods.is_empty());
    let errs = errors(&diags);
    assert!(errs
        .iter()
        .any(|d| d.object.as_deref() == Some("Deployment default/web")
            && d.field.as_deref() == Some("spec.template.spec.containers[0].ports[0].protocol")));
}

// ---------------------------------------------------------------------------------------------
// namespaces

#[test]
fn namespaces_implicit_labelled_and_defaulted() {
    let text = r#"apiVersion: v1
kind: Namespace
metadata:
  name: declared
  labels: {kubernetes.io/metadata.name: wrong, team: x}
---
apiVersion: v1
kind: Pod
metadata: {name: nodefault}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: svc-only}
spec: {ports: [{port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: pol-only}
spec: {podSelector: {}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: from-workload}
spec:
  selector: {matchLabels: {a: b}}
  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}
"#;
    let state = load_ok(text);
    let names: Vec<_> = state.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "declared",
            "default",
            "from-workload",
            "pol-only",
            "svc-only"
        ]
    );
    for ns in &state.namespaces {
        assert_eq!(
            ns.labels.get("kubernetes.io/metadata.name"),
            Some(&ns.name),
            "{ns:?}"
        );
        assert_eq!(ns.origin.is_some(), ns.name == "declared");
        assert_eq!(
            state.namespace_id(&ns.name).map(|i| &state.namespaces[i]),
            Some(ns)
        );
    }
    assert_eq!(state.namespace("declared").unwrap().labels["team"], "x");
    assert_eq!(pod(&state, "default", "nodefault").namespace, "default");
    assert_eq!(state.services[0].namespace, "svc-only");
    assert_eq!(state.policies[0].namespace, "pol-only");
}

#[test]
fn namespace_of_a_scaled_down_workload_still_exists() {
    let state = load_ok(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: idle}
spec:
  replicas: 0
  selector: {matchLabels: {a: b}}
  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}
"#,
    );
    assert!(state.pods.is_empty());
    assert!(state.namespace("idle").is_some(), "{:?}", state.namespaces);
}

#[test]
fn empty_namespace_field_means_default() {
    let state = load_ok(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: \"\"}\nspec: {containers: [{name: c, image: i}]}\n",
    );
    assert_eq!(pod_keys(&state), vec!["default/p"]);
}

// ---------------------------------------------------------------------------------------------
// kinds and API versions

#[test]
fn unknown_kinds_are_skipped_with_info() {
    let text = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {a: b}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: v1
kind: Namespace
metadata: {name: kept}
"#;
    let (state, diags) = load(text);
    assert!(state.namespace("kept").is_some());
    assert_eq!(diags.len(), 2, "{diags:#?}");
    assert!(diags.iter().all(|d| d.severity == Severity::Info));
    assert!(diags[0].message.contains("ConfigMap"));
    assert_eq!(diags[0].origin.line, Some(1));
    assert!(diags[1].message.contains("Widget"));
    assert_eq!(diags[1].origin.line, Some(6));
}

/// `kubectl get nodes -o yaml`, abridged: a `List` of Nodes with what the kubelet reports.
const NODES: &str = r#"apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: n2
    labels: {kubernetes.io/hostname: n2, topology.kubernetes.io/zone: b}
    annotations: {node.alpha.kubernetes.io/ttl: "0"}
  spec: {podCIDR: 10.244.2.0/24, taints: [{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}]}
  status:
    addresses:
    - {type: Hostname, address: n2}
    - {type: InternalIP, address: 10.128.0.5}
    - {type: ExternalIP, address: "2001:db8::5"}
    - {type: InternalIP, address: 10.128.0.5}
    conditions:
    - {type: Ready, status: "True", lastHeartbeatTime: "2026-12-06T12:00:00Z"}
    capacity: {cpu: "2", pods: "110"}
    nodeInfo: {architecture: amd64, bootID: b, containerRuntimeVersion: c, kernelVersion: k,
               kubeProxyVersion: v, kubeletVersion: v, machineID: m, operatingSystem: linux,
               osImage: o, systemUUID: u}
- apiVersion: v1
  kind: Node
  metadata: {name: n1, labels: {topology.kubernetes.io/zone: a}}
  status:
    addresses:
    - {type: InternalIP, address: 10.128.0.4}
"#;

#[test]
fn nodes_keep_their_labels_and_ip_addresses() {
    let state = load_ok(NODES);
    let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["n1", "n2"], "sorted by name");
    let n2 = state.node("n2").expect("n2");
    assert_eq!(n2.labels["topology.kubernetes.io/zone"], "b");
    // Of its addresses, the IP ones, each once, in the order given.
    let ips: Vec<IpAddr> = vec![
        "10.128.0.5".parse().unwrap(),
        "2001:db8::5".parse().unwrap(),
    ];
    assert_eq!(n2.addresses, ips);
    assert_eq!(n2.origin.file, "t.yaml");
    assert_eq!(state.node("n1").unwrap().addresses.len(), 1);
    assert!(state.node("n3").is_none());
    // Nodes make no namespace and no pod.
    assert!(state.namespaces.is_empty() && state.pods.is_empty());
}

#[test]
fn a_node_address_that_is_not_one_is_skipped_alone() {
    let text = NODES.replace("address: 10.128.0.4", "address: 10.128.0.999");
    let (state, diags) = load(&text);
    assert!(errors(&diags).is_empty(), "{diags:#?}");
    let [warning] = &diags[..] else {
        panic!("{diags:#?}")
    };
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.object.as_deref(), Some("Node n1"));
    assert_eq!(
        warning.field.as_deref(),
        Some("status.addresses[0].address")
    );
    assert!(
        warning
            .message
            .contains("\"10.128.0.999\" is not an IP address")
            && warning.message.contains("skipped"),
        "{warning}"
    );
    // The node stays, with its labels and without that address; the other node is untouched.
    let n1 = state.node("n1").expect("n1 kept");
    assert_eq!(n1.labels["topology.kubernetes.io/zone"], "a");
    assert!(n1.addresses.is_empty());
    assert_eq!(state.node("n2").unwrap().addresses.len(), 2);
    // A bad name or label rejects the node, as for any object.
    let (state, diags) = load(&NODES.replace("zone: a", "zone: -a-"));
    assert!(state.node("n1").is_none() && state.node("n2").is_some());
    assert!(
        errors(&diags)
            .iter()
            .any(|d| d.object.as_deref() == Some("Node n1")),
        "{diags:#?}"
    );
}

#[test]
fn unknown_kind_ending_in_list_is_skipped_with_info() {
    let (state, diags) = load(
        "apiVersion: example.com/v1\nkind: AllowList\nmetadata: {name: a}\nspec: {entries: [x]}\n",
    );
    assert!(state.pods.is_empty());
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].severity, Severity::Info);
    assert!(diags[0].message.contains("AllowList"));
}

/// A NetworkPolicy of a version no cluster serves any longer is enforced nowhere: skipped, with a
/// warning that the answer ignores it (not an error: the input is not wrong, it is not read).
#[test]
fn old_networkpolicy_api_version_is_skipped_with_a_warning() {
    let text = r#"apiVersion: extensions/v1beta1
kind: NetworkPolicy
metadata: {name: old, namespace: x}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: new, namespace: x}
spec: {podSelector: {}}
"#;
    let (state, diags) = load(text);
    assert_eq!(state.policies.len(), 1);
    assert_eq!(state.policies[0].name, "new");
    assert!(errors(&diags).is_empty(), "{diags:#?}");
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let w = &diags[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.object.as_deref(), Some("NetworkPolicy x/old"));
    assert_eq!(w.origin.line, Some(1));
    assert!(
        w.message.contains("extensions/v1beta1 NetworkPolicy"),
        "{w}"
    );
    assert!(w.message.contains("not enforced by Palisade"), "{w}");
    // A group that is no policy API's (a misspelling) is still an error on apiVersion.
    let (state, diags) = load(&text.replace("extensions/v1beta1", "networking.k8s.oi/v1"));
    assert_eq!(state.policies.len(), 1);
    let e = errors(&diags)[0];
    assert_eq!(e.field.as_deref(), Some("apiVersion"));
    assert_eq!(e.object.as_deref(), Some("NetworkPolicy x/old"));
    assert!(e.message.contains("use networking.k8s.io/v1"), "{e}");
}

#[test]
fn documents_without_kind_or_not_a_mapping_are_errors() {
    let (state, diags) = load(
        "metadata: {name: x}\n---\n- a\n- b\n---\n42\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n",
    );
    assert!(state.namespace("ok").is_some());
    let lines: Vec<_> = errors(&diags).iter().map(|d| d.origin.line).collect();
    assert_eq!(lines, vec![Some(1), Some(3), Some(6)], "{diags:#?}");
}

// ---------------------------------------------------------------------------------------------
// validation diagnostics

#[test]
fn invalid_policy_is_rejected_with_location_and_others_load() {
    let text = r#"apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: bad
  namespace: prod
spec:
  podSelector: {}
  ingress:
  - from:
    - podSelector: {}
    - ipBlock:
        cidr: 10.0.0.0/16
        except: [192.168.0.0/24]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: good, namespace: prod}
spec: {podSelector: {}}
"#;
    let (state, diags) = load(text);
    assert_eq!(state.policies.len(), 1);
    assert_eq!(state.policies[0].name, "good");
    assert!(state.namespace("prod").is_some());
    let errs = errors(&diags);
    let e = errs
        .iter()
        .find(|d| d.field.is_some())
        .expect("a field error");
    assert_eq!(e.origin.file, "t.yaml");
    assert_eq!(e.origin.line, Some(5));
    assert_eq!(e.object.as_deref(), Some("NetworkPolicy prod/bad"));
    assert_eq!(
        e.field.as_deref(),
        Some("spec.ingress[0].from[1].ipBlock.except[0]")
    );
    assert!(e.message.contains("inside cidr 10.0.0.0/16"), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "t.yaml:5: error: NetworkPolicy prod/bad: spec.ingress[0].from[1].ipBlock.except[0]: {}",
            e.message
        )
    );
    assert!(errs.iter().any(|d| d.message.contains("rejected")));
}

#[test]
fn policy_validation_covers_the_contract() {
    // One invalid policy per §5 rule; each must be rejected with the given field.
    let cases: &[(&str, &str)] = &[
        ("metadata: {name: Bad_Name}\nspec: {podSelector: {}}", "metadata.name"),
        (
            "metadata: {name: p}\nspec: {podSelector: {matchLabels: {\"bad key\": v}}}",
            "spec.podSelector.matchLabels[\"bad key\"]",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {matchExpressions: [{key: a, operator: In, values: []}]}}",
            "spec.podSelector.matchExpressions[0].values",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}",
            "spec.egress[0].to[0].ipBlock.cidr",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [\"fd00::/64\"]}}]}]}",
            "spec.egress[0].to[0].ipBlock.except[0]",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {}, ingress: [{ports: [{port: 90, endPort: 80}]}]}",
            "spec.ingress[0].ports[0].endPort",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {}, ingress: [{ports: [{port: http, endPort: 80}]}]}",
            "spec.ingress[0].ports[0].endPort",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {}, ingress: [{ports: [{port: 0}]}]}",
            "spec.ingress[0].ports[0].port",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {}, ingress: [{ports: [{port: http--x}]}]}",
            "spec.ingress[0].ports[0].port",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, namespaceSelector: {}}]}]}",
            "spec.ingress[0].from[0]",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {}, policyTypes: [Ingress, Sideways]}",
            "spec.policyTypes[1]",
        ),
        (
            "metadata: {name: p}\nspec: {podSelector: {}, ingress: [{ports: [{protocol: ICMP}]}]}",
            "spec.ingress[0].ports[0].protocol",
        ),
        ("metadata: {name: p}", "spec"),
        (
            "metadata: {name: p, namespace: Not_A_Namespace}\nspec: {podSelector: {}}",
            "metadata.namespace",
        ),
        (
            "metadata: {name: p, labels: {ok: \"-bad\"}}\nspec: {podSelector: {}}",
            "metadata.labels[\"ok\"]",
        ),
    ];
    for (body, field) in cases {
        let text = format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n{body}\n");
        let (state, diags) = load(&text);
        assert!(state.policies.is_empty(), "{body}: accepted");
        assert!(
            errors(&diags)
                .iter()
                .any(|d| d.field.as_deref() == Some(*field)),
            "{body}: expected an error on {field}, got {diags:#?}"
        );
    }
    // A non-canonical CIDR is a warning and the policy is used.
    let (state, diags) = load(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.1.2.3/8}}]}]}\n",
    );
    assert_eq!(state.policies.len(), 1);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].severity, Severity::Warning);
    assert_eq!(
        diags[0].field.as_deref(),
        Some("spec.egress[0].to[0].ipBlock.cidr")
    );
}

#[test]
fn wrong_field_types_report_the_serde_path() {
    let text = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: 5
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: x}
spec:
  containers:
  - name: c
    image: i
    ports:
    - containerPort: 80
    - containerPort: abc
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: x}
spec:
  replicas: many
---
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: [a, b]}
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: x}
spec: {selector: {app: web}}
"#;
    let (state, diags) = load(text);
    assert_eq!(state.services.len(), 1, "the valid object still loads");
    assert!(state.policies.is_empty() && state.pods.is_empty());
    let errs = errors(&diags);
    let at = |object: &str| {
        errs.iter()
            .find(|d| d.object.as_deref() == Some(object))
            .unwrap_or_else(|| panic!("no error for {object}: {diags:#?}"))
    };
    let np = at("NetworkPolicy x/p");
    assert_eq!(np.field.as_deref(), Some("spec.podSelector"));
    assert_eq!(np.origin.line, Some(1));
    assert!(np.message.contains("invalid type"), "{np}");
    let pod = at("Pod x/p");
    assert_eq!(
        pod.field.as_deref(),
        Some("spec.containers[0].ports[1].containerPort")
    );
    assert_eq!(pod.origin.line, Some(7));
    assert_eq!(at("Deployment x/d").field.as_deref(), Some("spec.replicas"));
    assert_eq!(at("Namespace x").field.as_deref(), Some("metadata.labels"));
}

#[test]
fn pod_service_and_namespace_validation() {
    let text = r#"apiVersion: v1
kind: Pod
metadata: {name: ip, namespace: x}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.300}
---
apiVersion: v1
kind: Pod
metadata: {name: port, namespace: x}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 70000}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: pname, namespace: x}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80, name: HTTP}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: dupname, namespace: x}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 80, name: web}, {containerPort: 81, name: web}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: nolabel, namespace: x, labels: {"a/b/c": x}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: x}
spec: {ports: [{port: 80, targetPort: Not_A_Name}, {port: 0}, {port: 5, protocol: tcp}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: Upper}
---
apiVersion: v1
kind: Pod
metadata: {namespace: x}
spec: {containers: [{name: c, image: i}]}
"#;
    let (state, diags) = load(text);
    assert!(state.pods.is_empty(), "{:?}", pod_keys(&state));
    assert!(state.services.is_empty());
    assert!(state.namespace("Upper").is_none());
    let fields: HashSet<(String, String)> = errors(&diags)
        .iter()
        .filter_map(|d| Some((d.object.clone()?, d.field.clone()?)))
        .collect();
    for (object, field) in [
        ("Pod x/ip", "status.podIP"),
        ("Pod x/port", "spec.containers[0].ports[0].containerPort"),
        ("Pod x/pname", "spec.containers[0].ports[0].name"),
        ("Pod x/dupname", "spec.containers[0].ports[1].name"),
        ("Pod x/nolabel", "metadata.labels[\"a/b/c\"]"),
        ("Service x/svc", "spec.ports[0].targetPort"),
        ("Service x/svc", "spec.ports[1].port"),
        ("Service x/svc", "spec.ports[2].protocol"),
        ("Namespace Upper", "metadata.name"),
        ("Pod x/<unnamed>", "metadata.name"),
    ] {
        assert!(
            fields.contains(&(object.to_string(), field.to_string())),
            "missing {object} {field} in {fields:#?}"
        );
    }
}

#[test]
fn same_port_name_in_two_containers_is_accepted() {
    // The API server checks port-name uniqueness per container, not per pod: the pod is used, with a
    // warning that the name resolves to the first container's port.
    let (state, diags) = load(
        r#"apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: app, image: a, ports: [{name: metrics, containerPort: 9090}]}
  - {name: sidecar, image: s, ports: [{name: metrics, containerPort: 15090}]}
"#,
    );
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].severity, Severity::Warning);
    assert_eq!(
        diags[0].field.as_deref(),
        Some("spec.containers[1].ports[0].name")
    );
    assert_eq!(
        pod(&state, "default", "p").named_port("metrics", Protocol::Tcp),
        Some(9090)
    );
}

// ---------------------------------------------------------------------------------------------
// malformed input

#[test]
fn malformed_yaml_reports_absolute_line_and_later_documents_load() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n# broken below\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: [b\n  labels: {}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n";
    let (state, diags) = load(text);
    let names: Vec<_> = state.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["a", "c"]);
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1, "{diags:#?}");
    let e = errs[0];
    assert_eq!(e.origin.file, "t.yaml");
    let line = e.origin.line.unwrap();
    assert!((9..=10).contains(&line), "line {line}: {e}");
    assert!(e.message.starts_with("invalid YAML"), "{e}");
    assert!(
        !e.message.contains(" at line "),
        "relative position leaked: {e}"
    );
    assert_eq!(
        state.namespace("c").unwrap().origin.as_ref().unwrap().line,
        Some(12)
    );
}

#[test]
fn bad_indentation_error_line_is_absolute() {
    let mut text = String::new();
    for i in 0..5 {
        text.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{i}\n---\n"
        ));
    }
    // Line 26 starts the broken document; the tab-indented key is on line 29.
    text.push_str("apiVersion: v1\nkind: Namespace\nmetadata:\n\tname: bad\n");
    let (state, diags) = load(&text);
    assert_eq!(state.namespaces.len(), 5);
    let e = errors(&diags)[0];
    let line = e.origin.line.unwrap();
    assert!((28..=29).contains(&line), "line {line}: {e}");
}

#[test]
fn malformed_json_reports_absolute_line() {
    let text = "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Namespace\",\n  \"metadata\": {\"name\": }\n}\n";
    let mut loader = Loader::new();
    loader.load_str("x.json", text);
    let (state, diags) = loader.finish();
    assert!(state.namespace("a").is_some());
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].origin.file, "x.json");
    assert_eq!(errs[0].origin.line, Some(5));
    assert!(errs[0].message.starts_with("invalid JSON"), "{}", errs[0]);
}

// ---------------------------------------------------------------------------------------------
// duplicates

const DUPS: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: p, labels: {v: one}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default, labels: {v: two}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec: {podSelector: {matchLabels: {v: one}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec: {podSelector: {matchLabels: {v: two}}}
---
apiVersion: v1
kind: Service
metadata: {name: p}
spec: {ports: [{port: 80}]}
"#;

#[test]
fn duplicates_keep_the_first_and_report_the_second() {
    let (state, diags) = load(DUPS);
    assert_eq!(pod(&state, "default", "p").labels["v"], "one");
    assert_eq!(state.policies.len(), 1);
    let sel = state.policies[0].policy.object().spec.as_ref().unwrap();
    assert_eq!(
        sel.pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["v"],
        "one"
    );
    assert_eq!(state.services.len(), 1, "a Service may share a Pod's name");
    let errs = errors(&diags);
    assert_eq!(errs.len(), 2, "{diags:#?}");
    assert_eq!(errs[0].object.as_deref(), Some("Pod default/p"));
    assert_eq!(errs[0].origin.line, Some(6));
    assert!(errs[0].message.contains("t.yaml:1"), "{}", errs[0]);
    assert_eq!(errs[1].object.as_deref(), Some("NetworkPolicy default/np"));
    assert_eq!(errs[1].origin.line, Some(16));
}

#[test]
fn replace_duplicates_lets_the_later_definition_win() {
    let mut loader = Loader::new().replace_duplicates(true);
    loader.load_str("t.yaml", DUPS);
    let (state, diags) = loader.finish();
    assert!(diags.is_empty(), "{diags:#?}");
    let p = pod(&state, "default", "p");
    assert_eq!(p.labels["v"], "two");
    assert_eq!(p.origin.line, Some(6));
    assert_eq!(state.pods.len(), 1);
    assert_eq!(state.policies.len(), 1);
    assert_eq!(
        state.policies[0]
            .policy
            .object()
            .spec
            .as_ref()
            .unwrap()
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["v"],
        "two"
    );
}

#[test]
fn duplicate_across_files_and_of_workloads() {
    let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: REPLICAS\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}\n";
    let mut loader = Loader::new();
    loader.load_str("one.yaml", &dep.replace("REPLICAS", "1"));
    loader.load_str("two.yaml", &dep.replace("REPLICAS", "4"));
    let (state, diags) = loader.finish();
    assert_eq!(state.pods.len(), 1);
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].origin.file, "two.yaml");
    assert!(errs[0].message.contains("one.yaml:1"));

    let mut loader = Loader::new().replace_duplicates(true);
    loader.load_str("one.yaml", &dep.replace("REPLICAS", "1"));
    loader.load_str("two.yaml", &dep.replace("REPLICAS", "4"));
    let (state, diags) = loader.finish();
    assert!(diags.is_empty());
    assert_eq!(state.pods.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// pod IPs

#[test]
fn pod_ips_given_allocated_and_host_network() {
    let text = format!(
        "{}{}{}{}",
        pod_yaml("a", "given", "{}", Some("10.244.0.10")),
        pod_yaml("a", "v6", "{}", Some("fd00::5")),
        pod_yaml("a", "noip", "{}", None),
        r#"apiVersion: v1
kind: Pod
metadata: {name: host, namespace: kube-system}
spec: {hostNetwork: true, containers: [{name: c, image: i}]}
status: {hostIP: 192.168.1.10, podIP: 192.168.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: host-noip, namespace: kube-system}
spec: {hostNetwork: true, containers: [{name: c, image: i}]}
"#
    );
    let state = load_ok(&text);
    let cidr: ipnet::IpNet = DEFAULT_POD_CIDR.parse().unwrap();

    let given = pod(&state, "a", "given");
    assert_eq!(given.ip, Some("10.244.0.10".parse().unwrap()));
    assert!(!given.ip_allocated);
    assert_eq!(
        state.pod_by_ip(given.ip.unwrap()),
        state.pod_id("a", "given")
    );
    assert_eq!(pod(&state, "a", "v6").ip, Some("fd00::5".parse().unwrap()));

    let noip = pod(&state, "a", "noip");
    assert!(noip.ip_allocated);
    let ip = noip.ip.unwrap();
    assert!(cidr.contains(&ip), "{ip}");
    assert_ne!(ip, cidr.network());
    assert_ne!(ip, cidr.broadcast());
    assert_ne!(Some(ip), given.ip);
    assert_eq!(state.pod_by_ip(ip), state.pod_id("a", "noip"));

    let host = pod(&state, "kube-system", "host");
    assert!(host.host_network && !host.ip_allocated);
    assert_eq!(host.ip, Some("192.168.1.10".parse().unwrap()));
    assert_eq!(state.pod_by_ip("192.168.1.10".parse().unwrap()), None);
    let host_noip = pod(&state, "kube-system", "host-noip");
    assert_eq!(host_noip.ip, None);
    assert!(!host_noip.ip_allocated);
}

#[test]
fn allocation_avoids_given_ips_and_is_stable_when_pods_are_added() {
    // Learn where a pod would be placed, then pin another pod to that address: the first must move.
    let alone = load_ok(&pod_yaml("a", "p", "{}", None));
    let natural = alone.pods.as_slice()[0].ip.unwrap();
    let mut text = pod_yaml("a", "p", "{}", None);
    text.push_str(&pod_yaml("b", "pinned", "{}", Some(&natural.to_string())));
    let state = load_ok(&text);
    let moved = pod(&state, "a", "p").ip.unwrap();
    assert_ne!(moved, natural);
    assert_eq!(pod(&state, "b", "pinned").ip, Some(natural));
    assert_eq!(state.pod_by_ip(natural), state.pod_id("b", "pinned"));

    // Adding pods (in the same file or another file, before or after) never moves earlier ones.
    let mut text = String::new();
    let mut previous: BTreeMap<PodKey, Option<IpAddr>> = BTreeMap::new();
    for i in 0..40 {
        text.push_str(&pod_yaml("default", &format!("pod-{i}"), "{}", None));
        let state = load_ok(&text);
        let now = ips(&state);
        for (k, ip) in &previous {
            assert_eq!(now[k], *ip, "{k} moved when pod-{i} was added");
        }
        let distinct: HashSet<_> = now.values().collect();
        assert_eq!(distinct.len(), now.len());
        previous = now;
    }
    let mut loader = Loader::new();
    loader.load_str("0-first.yaml", &pod_yaml("default", "newcomer", "{}", None));
    loader.load_str("t.yaml", &text);
    let (state, _) = loader.finish();
    for (k, ip) in &previous {
        assert_eq!(
            ips(&state)[k],
            *ip,
            "{k} moved when a pod was added in an earlier file"
        );
    }
}

#[test]
fn allocation_in_a_custom_and_tiny_cidr() {
    let v6: ipnet::IpNet = "fd00:10::/64".parse().unwrap();
    let mut loader = Loader::new().pod_cidr(v6);
    loader.load_str("t.yaml", &pod_yaml("a", "p", "{}", None));
    let (state, diags) = loader.finish();
    assert!(diags.is_empty());
    assert!(v6.contains(&state.pods.as_slice()[0].ip.unwrap()));

    // A /27 has 32 addresses, 21 of them usable: 21 pods fit, distinct; the 22nd gets an error.
    let small: ipnet::IpNet = "10.9.9.0/27".parse().unwrap();
    let mut text = String::new();
    for i in 0..22 {
        text.push_str(&pod_yaml("default", &format!("p{i}"), "{}", None));
    }
    let mut loader = Loader::new().pod_cidr(small);
    loader.load_str("t.yaml", &text);
    let (state, diags) = loader.finish();
    let got: Vec<_> = state.pods.iter().filter_map(|p| p.ip).collect();
    assert_eq!(got.len(), 21);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 21);
    assert!(got
        .iter()
        .all(|ip| small.contains(ip) && *ip != small.broadcast()));
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1, "{diags:#?}");
    assert!(errs[0].message.contains("no free address"));
    assert!(errs[0]
        .object
        .as_deref()
        .unwrap()
        .starts_with("Pod default/p"));

    // A CIDR too small to allocate from at all says so too.
    let mut loader = Loader::new().pod_cidr("10.0.0.0/30".parse().unwrap());
    loader.load_str("t.yaml", &pod_yaml("default", "p", "{}", None));
    let (state, diags) = loader.finish();
    assert_eq!(state.pods.as_slice()[0].ip, None);
    assert_eq!(errors(&diags).len(), 1, "{diags:#?}");
}

// ---------------------------------------------------------------------------------------------
// named ports

#[test]
fn named_ports_resolve_per_protocol() {
    let state = load_ok(
        r#"apiVersion: v1
kind: Pod
metadata: {name: dns, namespace: kube-system}
spec:
  containers:
  - name: coredns
    image: coredns
    ports:
    - {name: dns, containerPort: 53, protocol: UDP}
    - {name: dns-tcp, containerPort: 53, protocol: TCP}
    - {name: metrics, containerPort: 9153}
  - name: sctp
    image: s
    ports:
    - {name: sig, containerPort: 2905, protocol: SCTP}
    - {containerPort: 7000}
"#,
    );
    let p = pod(&state, "kube-system", "dns");
    assert_eq!(p.named_port("dns", Protocol::Udp), Some(53));
    assert_eq!(p.named_port("dns", Protocol::Tcp), None);
    assert_eq!(p.named_port("dns-tcp", Protocol::Tcp), Some(53));
    assert_eq!(p.named_port("dns-tcp", Protocol::Udp), None);
    assert_eq!(
        p.named_port("metrics", Protocol::Tcp),
        Some(9153),
        "TCP by default"
    );
    assert_eq!(p.named_port("sig", Protocol::Sctp), Some(2905));
    assert_eq!(p.named_port("sig", Protocol::Tcp), None);
    assert_eq!(p.named_port("missing", Protocol::Tcp), None);
    assert_eq!(p.ports.len(), 5);
    assert!(p.ports.iter().any(|c| c.name.is_none() && c.port == 7000));
}

// ---------------------------------------------------------------------------------------------
// robustness

/// A small deterministic generator (64-bit LCG, Knuth's constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn must_not_panic(name: &str, text: &str) {
    let result = std::panic::catch_unwind(|| {
        let mut loader = Loader::new();
        loader.load_str(name, text);
        let (state, diags) = loader.finish();
        for d in &diags {
            let _ = d.to_string();
        }
        state.pods.len()
    });
    assert!(result.is_ok(), "loader panicked on {text:?}");
}

#[test]
fn arbitrary_input_never_panics() {
    let mut rng = Lcg(0x5eed);
    let tokens: &[&str] = &[
        "\n",
        " ",
        "  ",
        "-",
        ":",
        "---",
        "...",
        "{",
        "}",
        "[",
        "]",
        ",",
        "\"",
        "'",
        "#",
        "&a",
        "*a",
        "!!str",
        "|",
        ">",
        "?",
        "%YAML 1.2",
        "\t",
        "\r\n",
        "apiVersion: v1",
        "kind: Pod",
        "kind: List",
        "kind: PodList",
        "kind: Deployment",
        "kind: NetworkPolicy",
        "items:",
        "metadata:",
        "name: x",
        "namespace: y",
        "spec:",
        "podSelector:",
        "ingress:",
        "- from:",
        "ipBlock:",
        "cidr: 10.0.0.0/8",
        "except:",
        "ports:",
        "port: 80",
        "endPort: 1",
        "containerPort:",
        "replicas: 3",
        "replicas: -5",
        "replicas: 99999999999",
        "template:",
        "status:",
        "podIP: 10.0.0.1",
        "hostNetwork: true",
        "0",
        "1e999",
        "null",
        "~",
        "é",
        "\u{feff}",
        "\0",
        "\u{10ffff}",
    ];
    for round in 0..400 {
        let text = if round % 2 == 0 {
            // Random bytes, made into text.
            let len = rng.below(200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            // Random token soup: much closer to YAML, reaches deeper into the loader.
            let n = rng.below(60);
            (0..n).map(|_| tokens[rng.below(tokens.len())]).collect()
        };
        must_not_panic("fuzz.yaml", &text);
    }
}

#[test]
fn truncated_and_mutated_manifests_never_panic() {
    let json = {
        let docs: Vec<serde_json::Value> = WORKLOADS
            .split("---\n")
            .map(|d| serde_yaml_ng::from_str(d).unwrap())
            .collect();
        docs.iter()
            .map(|d| serde_json::to_string_pretty(d).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let sources = [
        MIXED.to_string(),
        WORKLOADS.to_string(),
        DUPS.to_string(),
        json,
    ];
    let mut rng = Lcg(42);
    for source in &sources {
        // Every prefix at a character boundary (a cut-off file).
        for (i, _) in source.char_indices().step_by(3) {
            must_not_panic("cut.yaml", &source[..i]);
        }
        // Random single-byte mutations and deletions.
        for _ in 0..150 {
            let mut bytes = source.clone().into_bytes();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[at] = b"{}[]:-\n \"'#&*!|>0x"[rng.below(18)],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, rng.next() as u8),
                }
            }
            must_not_panic("mutated.yaml", &String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn pathological_yaml_is_bounded() {
    // Deep nesting and alias expansion ("billion laughs") end in a diagnostic, not a crash or a hang.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    must_not_panic("deep.yaml", &deep);
    let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let mut loader = Loader::new();
    loader.load_str("deep.json", &deep_json);
    assert!(!loader.finish().1.is_empty());
    let mut laughs =
        String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
        let prev = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
        laughs.push_str(&format!(
            "{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    let started = std::time::Instant::now();
    must_not_panic("laughs.yaml", &laughs);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Nested Lists recurse only as deep as the document (two levels each, within MAX_DEPTH).
    let mut nested =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "deep"}});
    for _ in 0..(palisade_model::MAX_DEPTH - 4) / 2 {
        nested = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [nested]});
    }
    let mut loader = Loader::new();
    loader.load_str("nested.json", &nested.to_string());
    let (state, _) = loader.finish();
    assert!(state.namespace("deep").is_some());
}

/// A misspelt or misplaced field of a NetworkPolicy changes what it allows (`port` for `ports`
/// allows every port; `matchExpressions` beside `podSelector` narrows nothing), and one in any
/// object's metadata changes what policies select (`lables`): such objects are rejected, as kubectl's
/// strict field validation rejects them. Elsewhere an unknown field is a warning.
#[test]
fn unknown_fields_reject_policies_and_metadata_and_are_warnings_elsewhere() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x, creationTimestamp: null}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {app: a}}\n      matchExpressions: [{key: tier, operator: In, values: [fe]}]\n    port: [{port: 80}]\n";
    let mut loader = Loader::new();
    loader.load_str("np.yaml", text);
    let (state, diags) = loader.finish();
    assert!(state.policies.is_empty(), "{diags:#?}");
    let fields = |severity| {
        diags
            .iter()
            .filter(|d| d.severity == severity)
            .map(|d| d.field.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        fields(Severity::Error),
        vec![
            "spec.ingress[0].from[0].matchExpressions",
            "spec.ingress[0].port",
            ""
        ]
    );
    assert!(
        diags[0].message.contains("kubectl rejects it too"),
        "{}",
        diags[0]
    );
    // In a pod's metadata: rejected; in its spec: a warning.
    let mut loader = Loader::new();
    loader.load_str(
        "pods.yaml",
        &(pod_yaml("x", "a", "{app: a}", None).replace("labels:", "lables:")
            + &pod_yaml("x", "b", "{app: b}", None).replace("spec:", "specc: {}\nspec:")),
    );
    let (state, diags) = loader.finish();
    assert_eq!(pod_keys(&state), ["x/b"]);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert_eq!(
        errors[0].field.as_deref(),
        Some("metadata.lables"),
        "{diags:#?}"
    );
    let warnings: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert_eq!(warnings.len(), 1, "{diags:#?}");
    assert_eq!(warnings[0].field.as_deref(), Some("specc"));
}

// ---------------------------------------------------------------------------------------------
// NetworkLogging

fn network_logging(name: &str, allow: &str, deny: &str) -> String {
    format!(
        "apiVersion: networking.gke.io/v1alpha1\nkind: NetworkLogging\nmetadata: {{name: {name}}}\n\
         spec:\n  cluster:\n    allow: {allow}\n    deny: {deny}\n"
    )
}

#[test]
fn network_logging_absent_valid_and_invalid() {
    use palisade_model::logging::{LogAction, LoggingConfig, LoggingSwitches};
    assert_eq!(load_ok("").network_logging, LoggingConfig::Absent);
    let on = network_logging(
        "default",
        "{log: true, delegate: true}",
        "{log: true, delegate: false}",
    );
    assert_eq!(
        load_ok(&on).network_logging,
        LoggingConfig::Valid(
            LoggingSwitches {
                allow: LogAction {
                    log: true,
                    delegate: true
                },
                deny: LogAction {
                    log: true,
                    delegate: false
                },
            },
            Default::default()
        )
    );
    // Unknown extra fields are accepted (and pointed out).
    let extra = format!("{on}  extra: {{x: 1}}\n");
    let (state, diags) = load(&extra);
    assert!(matches!(state.network_logging, LoggingConfig::Valid(..)));
    assert!(errors(&diags).is_empty(), "{diags:#?}");

    let cases = [
        (
            network_logging("other", "{log: true}", "{log: true}"),
            "metadata.name",
        ),
        (
            network_logging("default", "{log: false, delegate: true}", "{log: true}"),
            "spec.cluster.allow.delegate",
        ),
        (
            network_logging("default", "{log: \"yes\"}", "{log: true}"),
            "spec.cluster.allow.log",
        ),
        (
            "apiVersion: networking.gke.io/v1\nkind: NetworkLogging\nmetadata: {name: default}\n"
                .into(),
            "apiVersion",
        ),
    ];
    for (text, field) in cases {
        let (state, diags) = load(&text);
        let errs = errors(&diags);
        assert!(
            errs.iter().any(|d| d.field.as_deref() == Some(field)
                && d.object.as_deref()
                    == Some(if field == "metadata.name" {
                        "NetworkLogging other"
                    } else {
                        "NetworkLogging default"
                    })),
            "{field}: {errs:#?}"
        );
        if field != "apiVersion" {
            assert!(
                matches!(&state.network_logging, LoggingConfig::Invalid(r, _) if r.contains("t.yaml")),
                "{field}: {:?}",
                state.network_logging
            );
        }
    }
    // A valid default wins over a misnamed one.
    let both = format!(
        "{}---\n{on}",
        network_logging("other", "{log: true}", "{log: true}")
    );
    assert!(matches!(
        load(&both).0.network_logging,
        LoggingConfig::Valid(s, _) if s.allow.delegate
    ));
    // The object a configuration comes from (it names the Event telling it): valid, invalid, not
    // even decoded, or rejected for its name.
    let versioned = |name: &str, spec: &str| {
        format!("apiVersion: networking.gke.io/v1alpha1\nkind: NetworkLogging\nmetadata: {{name: {name}, uid: u1, generation: 7}}\nspec: {spec}\n")
    };
    let object = |name: &str| palisade_model::logging::LoggingObject {
        name: name.into(),
        uid: Some("u1".into()),
        generation: Some(7),
    };
    for (name, spec, valid) in [
        ("default", "{cluster: {allow: {log: true}}}", true),
        (
            "default",
            "{cluster: {allow: {log: false, delegate: true}}}",
            false,
        ),
        (
            "default",
            "{cluster: {allow: {log: [not, a, bool]}}}",
            false,
        ),
        ("other", "{cluster: {allow: {log: true}}}", false),
    ] {
        match load(&versioned(name, spec)).0.network_logging {
            LoggingConfig::Valid(_, v) if valid => assert_eq!(v, object(name), "{spec}"),
            LoggingConfig::Invalid(_, v) if !valid => assert_eq!(v, object(name), "{spec}"),
            other => panic!("{spec}: {other:?}"),
        }
    }
}

#[test]
fn a_pod_ip_taken_twice_is_reported_and_the_later_pod_left_out() {
    let text = format!(
        "{}{}{}",
        pod_yaml("a", "first", "{}", Some("10.244.0.10")),
        pod_yaml("b", "second", "{}", Some("10.244.0.10")),
        pod_yaml("b", "third", "{}", Some("10.244.0.11")),
    );
    let (state, diags) = load(&text);
    assert_eq!(pod_keys(&state), ["a/first", "b/third"]);
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].object.as_deref(), Some("Pod b/second"));
    assert_eq!(errs[0].field.as_deref(), Some("status.podIP"));
    assert!(
        errs[0]
            .message
            .contains("already the address of pod a/first (t.yaml:1)"),
        "{}",
        errs[0].message
    );
}

#[test]
fn the_document_cache_rereads_changed_files_only_and_forgets_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&a, pod_yaml("x", "one", "{app: one}", None)).unwrap();
    // A warning (unknown field) that must be reported on every load, cached or not.
    std::fs::write(
        &b,
        pod_yaml("x", "two", "{app: two}", None).replace("spec:", "specc: {}\nspec:"),
    )
    .unwrap();
    let load = |cache| {
        let mut loader = Loader::new().with_documents(cache);
        loader.load_path(dir.path());
        let load = loader.finish_with_cache();
        (load.state, load.diagnostics, load.cache)
    };
    let (state, diags, cache) = load(Default::default());
    assert_eq!(pod_keys(&state), ["x/one", "x/two"]);
    let warnings = |d: &[Diagnostic]| d.iter().filter(|d| d.severity == Severity::Warning).count();
    assert_eq!(warnings(&diags), 1);
    // Same again from the cache.
    let (state, diags, cache) = load(cache);
    assert_eq!(pod_keys(&state), ["x/one", "x/two"]);
    assert_eq!(warnings(&diags), 1);
    // An edit of the same length is seen (the modification time changes).
    std::thread::sleep(std::time::Duration::from_millis(10));
    std::fs::write(&a, pod_yaml("x", "one", "{app: uno}", None)).unwrap();
    let (state, _, cache) = load(cache);
    assert_eq!(pod(&state, "x", "one").labels["app"], "uno");
    // A removed file is gone, from the state and from the cache.
    std::fs::remove_file(&b).unwrap();
    let (state, diags, _) = load(cache);
    assert_eq!(pod_keys(&state), ["x/one"]);
    assert_eq!(warnings(&diags), 0);
}

#[test]
fn pinned_addresses_keep_pods_in_place_when_others_are_added() {
    // A small pod CIDR makes collisions common: find a new pod that moves an existing one.
    let cidr: ipnet::IpNet = "10.9.0.0/27".parse().unwrap();
    let base: String = (0..8)
        .map(|i| pod_yaml("x", &format!("p{i}"), "{}", None))
        .collect();
    let load = |text: &str, pins: Vec<(PodKey, IpAddr)>| {
        let mut loader = Loader::new().pod_cidr(cidr).pin_ips(pins);
        loader.load_str("t.yaml", text);
        ips(&loader.finish().0)
    };
    let before = load(&base, vec![]);
    let mover = (0..500)
        .map(|i| pod_yaml("a", &format!("new{i}"), "{}", None))
        .find(|new| {
            let after = load(&format!("{new}{base}"), vec![]);
            before.iter().any(|(k, ip)| after[k] != *ip)
        })
        .expect("some new pod takes an existing pod's address");
    let pins: Vec<(PodKey, IpAddr)> = before
        .iter()
        .map(|(k, ip)| (k.clone(), ip.unwrap()))
        .collect();
    let after = load(&format!("{mover}{base}"), pins);
    for (k, ip) in &before {
        assert_eq!(after[k], *ip, "{k} moved");
    }
    assert_eq!(after.len(), before.len() + 1);
    assert!(after.values().all(Option::is_some));
}

/// Pods made by an earlier load are reused while their object's file is unchanged: shared, not
/// rebuilt; and a cached load gives exactly the state a fresh load gives — allocated addresses,
/// left-out pods and their diagnostics included — as files change, pods collide and come back.
#[test]
fn cached_pods_are_shared_and_loads_equal_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = |name: &str, app: &str, replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: x}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n    spec: {{containers: [{{name: c, image: x, ports: [{{containerPort: 80, name: http}}]}}]}}\n---\n"
        )
    };
    let write = |file: &str, text: String| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(dir.path().join(file), text).unwrap();
    };
    let stay = deployment("stay", "stay", 2);
    write(
        "a.yaml",
        deployment("web", "web", 3) + &deployment("api", "api", 2) + &stay,
    );
    write(
        "b.yaml",
        pod_yaml("x", "given", "{app: db}", Some("10.244.1.1"))
            + &pod_yaml("x", "twin", "{app: db}", Some("10.244.1.1")),
    );
    write("c.yaml", deployment("jobs", "jobs", 2));
    let cached = |cache| {
        let mut loader = Loader::new().with_documents(cache);
        loader.load_path(dir.path());
        let load = loader.finish_with_cache();
        (load.state, load.diagnostics, load.cache)
    };
    let fresh = || {
        let mut loader = Loader::new();
        loader.load_path(dir.path());
        loader.finish()
    };
    let same = |(a, da): (&ClusterState, &[Diagnostic]),
                (b, db): (&ClusterState, &[Diagnostic])| {
        let pods = |s: &ClusterState| s.pods.iter().map(|p| (**p).clone()).collect::<Vec<_>>();
        assert_eq!(pods(a), pods(b));
        let texts = |d: &[Diagnostic]| d.iter().map(|d| d.to_string()).collect::<Vec<_>>();
        assert_eq!(texts(da), texts(db));
    };
    let (first, diags, cache) = cached(Default::default());
    same((&first, &diags), (&fresh().0, &fresh().1));
    assert!(
        diags
            .iter()
            .any(|d| d.to_string().contains("10.244.1.1 is already")),
        "the twin is left out: {diags:?}"
    );
    // Nothing changed: every pod is the previous one, shared.
    let (second, diags, cache) = cached(cache);
    same((&second, &diags), (&fresh().0, &fresh().1));
    assert!(first
        .pods
        .iter()
        .zip(&second.pods)
        .all(|(a, b)| Arc::ptr_eq(a, b)));
    // One file edited (the api Deployment relabelled, web scaled down): their pods are rebuilt; the
    // pods of the other files, and of the file's unchanged Deployment, are shared.
    write(
        "a.yaml",
        deployment("web", "web", 2) + &deployment("api", "api-v2", 2) + &stay,
    );
    let (third, diags, cache) = cached(cache);
    same((&third, &diags), (&fresh().0, &fresh().1));
    let shared = |s: &ClusterState, name: &str| {
        let pod = s.pods.iter().find(|p| p.name.starts_with(name)).unwrap();
        second.pods.iter().any(|p| Arc::ptr_eq(p, pod))
    };
    assert!(
        shared(&third, "jobs-"),
        "an unchanged file's pods are shared"
    );
    assert!(shared(&third, "given"));
    assert!(!shared(&third, "api-"), "an edited object's pods are new");
    assert!(
        shared(&third, "stay-"),
        "an unchanged object of an edited file keeps its pods"
    );
    // A line added on top moves every document of the file: all are read again (their origins
    // moved); a broken document reports its error, and the others still load, as in a fresh load.
    write(
        "a.yaml",
        "# moved\n".to_string()
            + &deployment("web", "web", 2)
            + "kind: [broken\n---\n"
            + &deployment("api", "api-v2", 2)
            + &stay,
    );
    let (moved, diags, cache) = cached(cache);
    same((&moved, &diags), (&fresh().0, &fresh().1));
    assert!(!shared(&moved, "stay-"), "a moved document is read again");
    assert!(diags.iter().any(|d| d.to_string().contains("invalid YAML")));
    write(
        "a.yaml",
        deployment("web", "web", 2) + &deployment("api", "api-v2", 2) + &stay,
    );
    let (third, diags, cache) = cached(cache);
    same((&third, &diags), (&fresh().0, &fresh().1));
    // The pod that held the address leaves: the twin that was left out comes in, with it.
    write(
        "b.yaml",
        pod_yaml("x", "twin", "{app: db}", Some("10.244.1.1")),
    );
    let (fourth, diags, cache) = cached(cache);
    same((&fourth, &diags), (&fresh().0, &fresh().1));
    assert_eq!(
        pod(&fourth, "x", "twin").ip,
        Some("10.244.1.1".parse().unwrap())
    );
    // A file removed and written back: its pods are allocated afresh, the same as a fresh load.
    std::fs::remove_file(dir.path().join("c.yaml")).unwrap();
    let (_, _, cache) = cached(cache);
    write("c.yaml", deployment("jobs", "jobs", 2));
    let (fifth, diags, cache) = cached(cache);
    same((&fifth, &diags), (&fresh().0, &fresh().1));
    // A new pod claims (status.podIP) the address a cached pod was allocated: the cached pod, from
    // an unchanged file, moves elsewhere, as in a fresh load.
    let jobs = fifth
        .pods
        .iter()
        .find(|p| p.name.starts_with("jobs-"))
        .unwrap();
    let taken = jobs.ip.unwrap().to_string();
    write("d.yaml", pod_yaml("x", "claims", "{app: c}", Some(&taken)));
    let (sixth, diags, _) = cached(cache);
    same((&sixth, &diags), (&fresh().0, &fresh().1));
    assert_eq!(pod(&sixth, "x", "claims").ip, jobs.ip);
    assert_ne!(pod(&sixth, "x", &jobs.name).ip, jobs.ip);
}

// ---------------------------------------------------------------------------------------------
// input fidelity (issue 15): keys written twice, merge keys, deep nesting

#[test]
fn a_key_written_twice_rejects_its_document_with_both_lines() {
    // kubectl refuses this policy; last-wins would enforce the second podSelector silently.
    let text = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  podSelector: {}
---
apiVersion: v1
kind: Namespace
metadata: {name: x}
";
    let (state, diags) = load(text);
    assert!(state.policies.is_empty());
    assert!(
        state.namespace("x").is_some(),
        "the other document still loads"
    );
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        errs[0].to_string(),
        "t.yaml:7: error: invalid YAML: mapping key \"podSelector\" already defined at line 5"
    );
    let json = r#"{"apiVersion": "v1", "kind": "Namespace",
 "metadata": {"name": "a", "name": "b"}}"#;
    let mut loader = Loader::new();
    loader.load_str("t.json", json);
    let (state, diags) = loader.finish();
    assert!(state.namespaces.is_empty());
    assert_eq!(errors(&diags)[0].origin.line, Some(2), "{diags:#?}");
    assert!(errors(&diags)[0]
        .message
        .contains("mapping key \"name\" already defined"));
}

#[test]
fn merge_keys_give_pods_their_labels_as_kubectl_does() {
    let text = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels:
    <<: &common {app: web, tier: frontend}
    tier: edge
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: api
  namespace: default
  labels: {<<: [{app: web, tier: frontend}, {team: a, app: other}]}
spec: {containers: [{name: c, image: i}]}
";
    let state = load_ok(text);
    let labels = |name| pod(&state, "default", name).labels.clone();
    assert_eq!(
        labels("web"),
        BTreeMap::from([("app".into(), "web".into()), ("tier".into(), "edge".into())])
    );
    assert_eq!(
        labels("api"),
        BTreeMap::from([
            ("app".into(), "web".into()),
            ("team".into(), "a".into()),
            ("tier".into(), "frontend".into())
        ])
    );
}

#[test]
fn deep_nesting_is_an_error_at_its_line_and_quick() {
    // 100k levels inside a block mapping took 36 s (quadratic in libyaml's scanner).
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\nspec: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let started = std::time::Instant::now();
    let (state, diags) = load(&text);
    let elapsed = started.elapsed();
    assert!(state.namespace("a").is_some());
    let errs = errors(&diags);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].origin.line, Some(5));
    assert!(
        errs[0].message.contains("nested more than 100 levels"),
        "{}",
        errs[0]
    );
    // A regression guard only (generous for a debug build); the measurement is in the report.
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}

/// A pod that has ended (`Succeeded`, `Failed`) holds no address: not its old `podIP` (which the
/// API server may have given to a running pod), and none allocated.
#[test]
fn finished_pods_hold_no_address() {
    let finished = |name: &str, phase: &str, ip: &str| {
        pod_yaml("x", name, "{}", Some(ip)).replace(
            &format!("  podIP: {ip}\n"),
            &format!("  podIP: {ip}\n  phase: {phase}\n"),
        )
    };
    let text = [
        finished("done", "Succeeded", "10.0.0.7"),
        finished("crashed", "Failed", "10.0.0.8"),
        pod_yaml("x", "running", "{}", Some("10.0.0.7")),
        // Still running: its phase keeps its address.
        finished("up", "Running", "10.0.0.9"),
    ]
    .concat();
    let state = load_ok(&text);
    let ip = |name: &str| pod(&state, "x", name).ip;
    assert_eq!(ip("done"), None, "no duplicate-address rejection either");
    assert_eq!(ip("crashed"), None, "and none allocated");
    assert!(pod(&state, "x", "done").finished && !pod(&state, "x", "up").finished);
    assert_eq!(ip("running"), Some("10.0.0.7".parse().unwrap()));
    assert_eq!(ip("up"), Some("10.0.0.9".parse().unwrap()));
    assert_eq!(
        state.pod_by_ip("10.0.0.7".parse().unwrap()),
        state.pod_id("x", "running")
    );
}

/// A real cluster's pod without `status.podIP` has no address yet: when allocation is off, it is
/// given none. An empty `nodeName` schedules a pod nowhere.
#[test]
fn pods_without_an_address_keep_none_when_allocation_is_off() {
    let text = [
        pod_yaml("x", "pending", "{}", None),
        pod_yaml("x", "running", "{}", Some("10.0.0.7")).replace(
            "spec:\n  containers:",
            "spec:\n  nodeName: \"\"\n  containers:",
        ),
    ]
    .concat();
    let mut loader = Loader::new().allocate_addresses(false);
    loader.load_str("t.yaml", &text);
    let (state, diagnostics) = loader.finish();
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(pod(&state, "x", "pending").ip, None);
    assert_eq!(pod(&state, "x", "running").node_name, None);
    assert!(
        load_ok(&text).pods.iter().all(|p| p.ip.is_some()),
        "allocated by default"
    );
}
