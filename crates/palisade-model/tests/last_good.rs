//! Loading from the cache of an earlier load never lets bad input lift what was in force: a file
//! with a syntax error, a rejected object, a removed or emptied file, a folder that cannot be read
//! keep their last good version (and say so, as diagnostics and as data); and hostile files are
//! refused with bounded work.

use palisade_model::{
    DocumentCache, HeldReason, Kind, Limits, Load, Loader, ObjectKey, RejectReason, Severity,
    Symlinks, TierAction,
};
use std::path::Path;
use std::time::{Duration, Instant};

fn policy(name: &str, cidr: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  podSelector: {{matchLabels: {{app: redis}}}}\n  ingress:\n  - from:\n    - ipBlock: {{cidr: {cidr}}}\n---\n"
    )
}

/// The Admin ClusterNetworkPolicy `deny-imds`: `action` to `cidr`.
fn cluster_policy(action: &str, cidr: &str) -> String {
    format!(
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: deny-imds}}\nspec:\n  tier: Admin\n  priority: 10\n  subject: {{namespaces: {{}}}}\n  egress:\n  - name: block-metadata\n    action: {action}\n    to: [{{networks: [{cidr}]}}]\n---\n"
    )
}

/// The egress rules of the cluster-wide policies in force, as (name, action, networks).
fn tier_rules(load: &Load) -> Vec<(String, TierAction, String)> {
    let mut rules = Vec::new();
    for p in &load.state.tier_policies {
        for rule in &p.policy.spec().egress {
            let peers = format!("{:?}", rule.peers);
            rules.push((p.name.clone(), rule.action, peers));
        }
    }
    rules
}

fn deployment(name: &str, replicas: u64) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: x}}]}}\n---\n"
    )
}

/// Loads `dir` from `cache` with `configure` applied to the loader.
fn load_with(dir: &Path, cache: DocumentCache, configure: impl FnOnce(Loader) -> Loader) -> Load {
    let mut loader = configure(Loader::new().with_documents(cache));
    loader.load_path(dir);
    loader.finish_with_cache()
}

fn load(dir: &Path, cache: DocumentCache) -> Load {
    load_with(dir, cache, |l| l)
}

/// Writes `text` to `path` so that the cache sees a new version (modification times are coarse).
fn write(path: &Path, text: &str) {
    std::thread::sleep(Duration::from_millis(5));
    std::fs::write(path, text).unwrap();
}

fn policies(load: &Load) -> Vec<String> {
    (load.state.policies.iter())
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect()
}

fn cidr(load: &Load, name: &str) -> String {
    let p = load.state.policies.iter().find(|p| p.name == name).unwrap();
    let spec = p.policy.object().spec.as_ref().unwrap();
    let ingress = spec.ingress.as_ref().unwrap();
    let from = ingress[0].from.as_ref().unwrap();
    from[0].ip_block.as_ref().unwrap().cidr.clone()
}

fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey::new(kind, Some("shop"), name)
}

#[test]
fn a_rejected_object_keeps_its_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    write(
        &file,
        &(policy("a", "10.0.0.0/8") + &policy("b", "10.1.0.0/16")),
    );
    let first = load(dir.path(), DocumentCache::default());
    assert_eq!(policies(&first), ["shop/a", "shop/b"]);
    assert!(first.rejections.is_empty() && first.held.is_empty());

    // A typo in b's CIDR: b stays as it was, a takes its edit.
    write(
        &file,
        &(policy("a", "10.2.0.0/16") + &policy("b", "10.1.0.0/166")),
    );
    let second = load(dir.path(), first.cache);
    assert_eq!(policies(&second), ["shop/a", "shop/b"]);
    assert_eq!(cidr(&second, "a"), "10.2.0.0/16");
    assert_eq!(cidr(&second, "b"), "10.1.0.0/16");
    assert_eq!(second.rejections.len(), 1, "{:#?}", second.rejections);
    let r = &second.rejections[0];
    assert_eq!(r.object, Some(key(Kind::NetworkPolicy, "b")));
    assert_eq!(r.reason, RejectReason::Invalid);
    let kept = r.kept.as_ref().expect("the last good version is kept");
    assert_eq!(kept.line, Some(10));
    assert_eq!(second.held.len(), 1);
    assert_eq!(second.held[0].why, HeldReason::Rejected);
    assert!(second
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Warning
            && d.message.contains("last good version")
            && d.message.contains("p.yaml:10")));

    // Still broken on the next pass (the file unchanged, from the cache): still held.
    let third = load(dir.path(), second.cache);
    assert_eq!(cidr(&third, "b"), "10.1.0.0/16");
    assert_eq!(third.held.len(), 1);

    // Fixed: the new version.
    write(
        &file,
        &(policy("a", "10.2.0.0/16") + &policy("b", "10.3.0.0/16")),
    );
    let fourth = load(dir.path(), third.cache);
    assert_eq!(cidr(&fourth, "b"), "10.3.0.0/16");
    assert!(fourth.rejections.is_empty() && fourth.held.is_empty());

    // Without an earlier load there is no last good version: b is left out, and rejected.
    write(
        &file,
        &(policy("a", "10.2.0.0/16") + &policy("b", "10.3.0.0/166")),
    );
    let fresh = load(dir.path(), DocumentCache::default());
    assert_eq!(policies(&fresh), ["shop/a"]);
    assert_eq!(fresh.rejections.len(), 1);
    assert_eq!(fresh.rejections[0].kept, None);
}

#[test]
fn a_syntax_error_keeps_the_objects_the_rest_of_the_file_does_not_define() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    write(
        &file,
        &(policy("a", "10.0.0.0/8") + &policy("b", "10.1.0.0/16") + &policy("c", "10.9.0.0/16")),
    );
    let first = load(dir.path(), DocumentCache::default());
    assert_eq!(policies(&first), ["shop/a", "shop/b", "shop/c"]);

    // b's document broken, a edited, c removed, d added: which objects b's document held is
    // unknown, so b and c stay; a and d are read.
    let broken = policy("b", "10.1.0.0/16").replace("podSelector: {", "podSelector: [{");
    write(
        &file,
        &(policy("a", "10.2.0.0/16") + &broken + &policy("d", "10.4.0.0/16")),
    );
    let second = load(dir.path(), first.cache);
    assert_eq!(
        policies(&second),
        ["shop/a", "shop/b", "shop/c", "shop/d"],
        "{:#?}",
        second.diagnostics
    );
    assert_eq!(cidr(&second, "a"), "10.2.0.0/16");
    let held: Vec<_> = second
        .held
        .iter()
        .map(|h| (h.object.name(), h.why))
        .collect();
    assert_eq!(
        held,
        [("b", HeldReason::Rejected), ("c", HeldReason::Rejected)]
    );
    assert_eq!(second.rejections.len(), 1);
    assert_eq!(second.rejections[0].reason, RejectReason::Syntax);
    assert!(second.diagnostics.iter().any(|d| d
        .message
        .contains("last good version of 2 objects")
        && d.message.contains("NetworkPolicy shop/b (")
        && d.message.contains("NetworkPolicy shop/c (")));

    // A document that is not an object (an indentation slip) is as unreadable as a syntax error.
    write(&file, &(policy("a", "10.2.0.0/16") + "just text\n---\n"));
    let third = load(dir.path(), second.cache);
    assert_eq!(policies(&third), ["shop/a", "shop/b", "shop/c", "shop/d"]);

    // Readable again: exactly what the file says.
    write(&file, &policy("a", "10.2.0.0/16"));
    let fourth = load(dir.path(), third.cache);
    assert_eq!(policies(&fourth), ["shop/a"]);
    assert!(fourth.held.is_empty() && fourth.rejections.is_empty());
}

#[test]
fn removed_and_emptied_files_keep_their_objects_for_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    write(&a, &policy("a", "10.0.0.0/8"));
    write(&b, &policy("b", "10.1.0.0/16"));
    let grace = Duration::from_millis(300);
    let with_grace = |l: Loader| l.removal_grace(grace);
    let first = load_with(dir.path(), DocumentCache::default(), with_grace);
    assert_eq!(policies(&first), ["shop/a", "shop/b"]);
    assert_eq!(first.revisit, None);

    // a emptied (truncated before being rewritten), b removed: both stay, and a revisit is due
    // when the grace period ends.
    let started = Instant::now();
    write(&a, "");
    std::fs::remove_file(&b).unwrap();
    let second = load_with(dir.path(), first.cache, with_grace);
    assert_eq!(policies(&second), ["shop/a", "shop/b"]);
    let held: Vec<_> = second
        .held
        .iter()
        .map(|h| (h.object.name(), h.why))
        .collect();
    assert_eq!(
        held,
        [("a", HeldReason::Removed), ("b", HeldReason::Removed)]
    );
    let revisit = second.revisit.expect("a revisit when the grace ends");
    assert!(revisit <= started + grace + Duration::from_millis(50));
    assert!(revisit >= started + grace - Duration::from_millis(50));

    // a written again within the grace period: its new version; b still held.
    write(&a, &policy("a", "10.5.0.0/16"));
    let third = load_with(dir.path(), second.cache, with_grace);
    assert_eq!(policies(&third), ["shop/a", "shop/b"]);
    assert_eq!(cidr(&third, "a"), "10.5.0.0/16");
    assert_eq!(third.held.len(), 1);

    // After the grace period, b's removal takes effect.
    std::thread::sleep(grace);
    let fourth = load_with(dir.path(), third.cache, with_grace);
    assert_eq!(policies(&fourth), ["shop/a"]);
    assert!(fourth.held.is_empty());
    assert_eq!(fourth.revisit, None);
    let warned: Vec<_> = (fourth.diagnostics.iter())
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert_eq!(warned[0].object.as_deref(), Some("NetworkPolicy shop/b"));
    assert!(warned[0]
        .message
        .starts_with("removed: its file was removed or emptied"));

    // Emptied and left empty: removed after the grace period too.
    write(&a, "# nothing here\n");
    let fifth = load_with(dir.path(), fourth.cache, with_grace);
    assert_eq!(policies(&fifth), ["shop/a"]);
    std::thread::sleep(grace);
    let sixth = load_with(dir.path(), fifth.cache, with_grace);
    assert!(policies(&sixth).is_empty());
    // Without a grace period (the default) a removal takes effect at once.
    write(&a, &policy("a", "10.0.0.0/8"));
    write(&b, &policy("b", "10.1.0.0/16"));
    let seventh = load(dir.path(), sixth.cache);
    std::fs::remove_file(&b).unwrap();
    let eighth = load(dir.path(), seventh.cache);
    assert_eq!(policies(&eighth), ["shop/a"]);
    // A folder left without any manifest (say, a volume not mounted) lifts nothing: it is an
    // error, and the last good state stays, until a file (even an empty one) is there.
    std::fs::remove_file(&a).unwrap();
    let ninth = load(dir.path(), eighth.cache);
    assert_eq!(policies(&ninth), ["shop/a"]);
    assert_eq!(ninth.rejections[0].reason, RejectReason::Unreadable);
    assert!(ninth.diagnostics[0]
        .message
        .contains("holds no manifest file"));
    write(&dir.path().join("keep.yaml"), "");
    assert!(policies(&load(dir.path(), ninth.cache)).is_empty());
}

#[test]
fn a_folder_or_file_that_cannot_be_read_keeps_what_was_read_from_it() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("manifests");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    write(&dir.join("a.yaml"), &policy("a", "10.0.0.0/8"));
    write(&dir.join("sub/b.yaml"), &policy("b", "10.1.0.0/16"));
    let first = load(&dir, DocumentCache::default());
    assert_eq!(policies(&first), ["shop/a", "shop/b"]);

    // The whole folder gone (say, being replaced): nothing is lifted.
    let aside = parent.path().join("aside");
    std::fs::rename(&dir, &aside).unwrap();
    let second = load(&dir, first.cache);
    assert_eq!(policies(&second), ["shop/a", "shop/b"]);
    assert!(second.held.iter().all(|h| h.why == HeldReason::Unreadable));
    assert_eq!(second.held.len(), 2);
    assert_eq!(second.rejections.len(), 1);
    assert_eq!(second.rejections[0].reason, RejectReason::Unreadable);
    assert!(
        second.diagnostics[0].message.starts_with("cannot read"),
        "{:#?}",
        second.diagnostics
    );

    // Back, with b removed: b goes.
    std::fs::rename(&aside, &dir).unwrap();
    std::fs::remove_file(dir.join("sub/b.yaml")).unwrap();
    let third = load(&dir, second.cache);
    assert_eq!(policies(&third), ["shop/a"]);

    // A file replaced by a FIFO: refused without blocking, and its objects stay.
    std::fs::remove_file(dir.join("a.yaml")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("a.yaml").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in our own temporary folder.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let fourth = load(&dir, third.cache);
    assert_eq!(policies(&fourth), ["shop/a"]);
    assert_eq!(fourth.held.len(), 1);
    assert!(
        fourth.diagnostics[0].message.contains("a FIFO"),
        "{:#?}",
        fourth.diagnostics
    );
}

#[test]
fn symlinks_are_followed_inside_the_folder_only() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.yaml");
    std::fs::write(
        &secret,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: 'TOP SECRET'}\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("..data")).unwrap();
    write(
        &dir.path().join("..data/p.yaml"),
        &policy("a", "10.0.0.0/8"),
    );
    // A ConfigMap volume's layout: links into a hidden folder of the same volume.
    std::os::unix::fs::symlink("..data/p.yaml", dir.path().join("p.yaml")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("s.yaml")).unwrap();
    let loaded = load(dir.path(), DocumentCache::default());
    assert_eq!(policies(&loaded), ["shop/a"]);
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("s.yaml: error: not read: a symlink leading out"),
        "{}",
        errors[0]
    );
    assert!(!errors.iter().any(|e| e.contains("SECRET")));
    // Allowed anywhere, the link is read.
    let anywhere = load_with(dir.path(), DocumentCache::default(), |l| {
        l.symlinks(Symlinks::Anywhere)
    });
    assert!(anywhere
        .diagnostics
        .iter()
        .any(|d| d.to_string().contains("SECRET")));
}

#[test]
fn limits_reject_with_clear_errors_and_bounded_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.yaml");
    write(&file, &deployment("web", 3));
    let first = load(dir.path(), DocumentCache::default());
    assert_eq!(first.state.pods.len(), 3, "{:#?}", first.diagnostics);

    // replicas: 2147483647 is rejected before a pod is made; the last good version stays.
    let started = Instant::now();
    write(&file, &deployment("web", 2_147_483_647));
    let second = load(dir.path(), first.cache);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(second.state.pods.len(), 3);
    let r = &second.rejections[0];
    assert_eq!(
        (r.object.clone(), r.reason),
        (Some(key(Kind::Deployment, "web")), RejectReason::Invalid)
    );
    let error = second.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(error.field.as_deref(), Some("spec.replicas"));
    assert!(
        error
            .message
            .contains("2147483647 pods exceed the limit of 10000 pods per workload"),
        "{error}"
    );

    // Pods in all: the workloads whose pods would exceed the limit are left out, whole.
    write(
        &file,
        &(deployment("a", 40) + &deployment("b", 40) + &deployment("c", 10)),
    );
    let limits = Limits {
        max_pods: 60,
        ..Limits::default()
    };
    let capped = load_with(dir.path(), DocumentCache::default(), |l| l.limits(limits));
    let owners: std::collections::BTreeSet<String> = capped
        .state
        .pods
        .iter()
        .map(|p| p.owner.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(capped.state.pods.len(), 50, "{owners:?}");
    assert_eq!(capped.rejections.len(), 1);
    assert_eq!(capped.rejections[0].reason, RejectReason::Limit);
    assert_eq!(
        capped.rejections[0].object,
        Some(key(Kind::Deployment, "b"))
    );

    // Files past the limit in all are not read (their objects stay, as for any unreadable file).
    write(&dir.path().join("e.yaml"), &deployment("late", 1));
    let total = std::fs::metadata(&file).unwrap().len() + 10;
    let limits = Limits {
        max_total_bytes: total,
        ..Limits::default()
    };
    let capped = load_with(dir.path(), DocumentCache::default(), |l| l.limits(limits));
    assert!(capped
        .state
        .pods
        .iter()
        .all(|p| !p.name.starts_with("late")));
    assert_eq!(
        capped.rejections.last().unwrap().reason,
        RejectReason::Limit
    );
    assert!(capped
        .diagnostics
        .iter()
        .any(|d| d.message.contains("(--max-total-size)")));
    std::fs::remove_file(dir.path().join("e.yaml")).unwrap();

    // A file over the size limit is not read.
    let limits = Limits {
        max_file_bytes: 100,
        ..Limits::default()
    };
    let small = load_with(dir.path(), DocumentCache::default(), |l| l.limits(limits));
    assert!(small.state.pods.is_empty());
    assert_eq!(small.rejections[0].reason, RejectReason::Limit);
    assert!(small.diagnostics[0]
        .message
        .contains("larger than the limit of 100 bytes"));

    // A CIDR too small for the pods: every pod past the last address is reported, without
    // probing the full CIDR once per pod.
    write(&file, &deployment("many", 10_000));
    let started = Instant::now();
    let full = load_with(dir.path(), DocumentCache::default(), |l| {
        l.pod_cidr("10.9.0.0/20".parse().unwrap())
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let unaddressed = full
        .rejections
        .iter()
        .filter(|r| r.reason == RejectReason::Address)
        .count();
    assert_eq!(unaddressed, 10_000 - (4096 - 11));
}

#[test]
fn a_misspelt_kind_is_an_error_that_keeps_the_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    write(&file, &policy("a", "10.0.0.0/8"));
    let first = load(dir.path(), DocumentCache::default());
    write(
        &file,
        &policy("a", "10.7.0.0/16").replace("kind: NetworkPolicy", "kind: NetworkPolicyy"),
    );
    let second = load(dir.path(), first.cache);
    assert_eq!(
        policies(&second),
        ["shop/a"],
        "{:#?} {:#?}",
        second.diagnostics,
        second.rejections
    );
    assert_eq!(cidr(&second, "a"), "10.0.0.0/8");
    let error = second.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(error.field.as_deref(), Some("kind"));
    assert!(
        error.message.contains("did you mean NetworkPolicy?"),
        "{error}"
    );
    // A kind Palisade does not read is skipped, as before.
    write(
        &file,
        &policy("a", "10.7.0.0/16").replace("kind: NetworkPolicy", "kind: CiliumNetworkPolicy"),
    );
    let third = load(dir.path(), second.cache);
    assert!(policies(&third).is_empty());
    assert!(third.rejections.is_empty());
}

/// Every kind the loader reads, workloads of each kind among them.
fn every_kind() -> String {
    let workload = |kind: &str, api: &str, spec: &str| {
        format!("apiVersion: {api}\nkind: {kind}\nmetadata: {{name: w-{}, namespace: shop, labels: {{tier: x}}}}\nspec:\n{spec}\n---\n", kind.to_lowercase())
    };
    let template = "    metadata: {labels: {app: w}}\n    spec: {containers: [{name: c, image: x, ports: [{containerPort: 80, name: http}]}]}";
    let sel = "  selector: {matchLabels: {app: w}}";
    [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}, annotations: {policy.network.gke.io/enable-deny-logging: 'true'}}\n---\n".to_string(),
        "apiVersion: networking.gke.io/v1alpha1\nkind: NetworkLogging\nmetadata: {name: default}\nspec: {cluster: {allow: {log: true}, deny: {log: true, delegate: true}}}\n---\n".to_string(),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop, labels: {app: p}}\nspec: {containers: [{name: c, image: x}]}\nstatus: {podIP: 10.244.9.9, hostIP: 192.168.1.1}\n---\n".to_string(),
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {zone: a}, annotations: {ttl: '0'}}\nspec: {podCIDR: 10.244.1.0/24}\nstatus: {addresses: [{type: Hostname, address: n1}, {type: ExternalIP, address: '2001:db8::4'}, {type: InternalIP, address: 10.128.0.4}], conditions: [{type: Ready, status: 'True'}]}\n---\n".to_string(),
        "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec: {selector: {app: w}, ports: [{port: 80, targetPort: http}]}\n---\n".to_string(),
        policy("a", "10.0.0.0/8"),
        cluster_policy("Deny", "169.254.169.254/32"),
        workload("Deployment", "apps/v1", &format!("  replicas: 2\n{sel}\n  template:\n{template}")),
        workload("ReplicaSet", "apps/v1", &format!("  replicas: 1\n{sel}\n  template:\n{template}")),
        workload("StatefulSet", "apps/v1", &format!("  replicas: 3\n  serviceName: s\n{sel}\n  template:\n{template}")),
        workload("DaemonSet", "apps/v1", &format!("{sel}\n  template:\n{template}")),
        workload("Job", "batch/v1", &format!("  parallelism: 2\n  template:\n{template}")),
        workload("CronJob", "batch/v1", &format!("  schedule: '*/5 * * * *'\n  jobTemplate:\n    spec:\n      parallelism: 2\n      template:\n    {}", template.replace("\n", "\n    "))),
    ]
    .concat()
}

/// A snapshot written after a load and read back gives the same state, and stands in for the last
/// good versions when the agent restarts with a broken file.
#[test]
fn a_snapshot_restores_the_last_good_state_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.yaml");
    write(&file, &every_kind());
    let first = load(dir.path(), DocumentCache::default());
    assert!(first.diagnostics.is_empty(), "{:#?}", first.diagnostics);
    assert_eq!(first.state.pods.len(), 1 + 2 + 1 + 3 + 1 + 2 + 2);
    let source = dir.path().display().to_string();
    let text = serde_json::to_string(&first.cache.snapshot(&source)).unwrap();
    let snapshot: palisade_model::Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(snapshot.len(), 13);
    let restored = DocumentCache::from_snapshot(snapshot, &source, Limits::default()).unwrap();
    let again = load(dir.path(), restored);
    let pods = |l: &Load| {
        l.state
            .pods
            .iter()
            .map(|p| (**p).clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(pods(&again), pods(&first));
    assert_eq!(again.state.policies, first.state.policies);
    assert_eq!(again.state.services, first.state.services);
    assert_eq!(again.state.namespaces, first.state.namespaces);
    assert_eq!(again.state.network_logging, first.state.network_logging);
    assert_eq!(again.state.nodes, first.state.nodes);
    assert_eq!(first.state.nodes[0].addresses.len(), 2);
    assert_eq!(again.state.tier_policies, first.state.tier_policies);
    assert_eq!(first.state.tier_policies.len(), 1);
    assert!(again.held.is_empty() && again.rejections.is_empty());

    // Restarted with the policy and the node broken: their snapshot versions stay in force.
    let snapshot = again.cache.snapshot(&source);
    write(
        &file,
        &every_kind()
            .replace("cidr: 10.0.0.0/8", "cidr: 10.0.0.0/88")
            .replace("zone: a", "zone: -a-")
            .replace("priority: 10", "priority: 1001"),
    );
    let restored = DocumentCache::from_snapshot(snapshot, &source, Limits::default()).unwrap();
    let broken = load(dir.path(), restored);
    assert_eq!(policies(&broken), ["shop/a"]);
    assert_eq!(cidr(&broken, "a"), "10.0.0.0/8");
    assert_eq!(broken.state.nodes, first.state.nodes);
    assert_eq!(broken.state.tier_policies, first.state.tier_policies);
    assert_eq!(broken.held.len(), 3);
    // Not for another folder, nor another version.
    let other = serde_json::from_str(&text).unwrap();
    let e = DocumentCache::from_snapshot(other, "/elsewhere", Limits::default())
        .err()
        .unwrap();
    assert!(e.contains("not of /elsewhere"), "{e}");
    let old = serde_json::from_str(&text.replacen("\"version\":1", "\"version\":0", 1)).unwrap();
    assert!(DocumentCache::from_snapshot(old, &source, Limits::default()).is_err());
}

// Regressions found in review: each failed before the last good state was decided in one place.

fn grace(l: Loader) -> Loader {
    l.removal_grace(Duration::from_secs(1))
}

/// `mv a.yaml b.yaml` is no error and no duplicate, during the grace or after.
#[test]
fn a_renamed_file_is_no_error() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.yaml"), &policy("p", "10.0.0.0/8"));
    let first = load_with(dir.path(), DocumentCache::default(), grace);
    std::fs::rename(dir.path().join("a.yaml"), dir.path().join("b.yaml")).unwrap();
    let second = load_with(dir.path(), first.cache, grace);
    let errors: Vec<String> = second
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "a rename is reported as an error");
}

/// An object held at its last good version (its edit rejected) keeps the removal grace when its
/// file is then emptied (rewritten in place) or removed (`git checkout`, `rm` then create).
#[test]
fn a_held_object_keeps_the_grace_when_its_file_is_emptied_or_removed() {
    let empty = |f: &Path| write(f, "");
    let remove = |f: &Path| std::fs::remove_file(f).unwrap();
    for (how, gone) in [("emptied", &empty as &dyn Fn(&Path)), ("removed", &remove)] {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.yaml");
        // Another file, so that the folder does not end up without manifests.
        write(&dir.path().join("other.yaml"), "");
        write(&f, &policy("p", "10.0.0.0/8"));
        let first = load_with(dir.path(), DocumentCache::default(), grace);
        write(&f, &policy("p", "10.0.0.0/88"));
        let second = load_with(dir.path(), first.cache, grace);
        assert_eq!(policies(&second), ["shop/p"]);
        gone(&f);
        let third = load_with(dir.path(), second.cache, grace);
        assert_eq!(
            policies(&third),
            ["shop/p"],
            "{how}: lifted at once: {:#?}",
            third.diagnostics
        );
        assert_eq!(third.held[0].why, HeldReason::Removed, "{how}");
    }
}

/// A definition that moved to another file wins over the held version its old file (now broken)
/// had, whatever the files' order.
#[test]
fn a_fresh_definition_wins_over_a_held_one() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    write(&a, &policy("p", "10.0.0.0/8"));
    let first = load_with(dir.path(), DocumentCache::default(), grace);
    // a.yaml now broken; p moved (new version) to b.yaml.
    write(&a, "foo: [\n");
    write(&dir.path().join("b.yaml"), &policy("p", "10.9.0.0/16"));
    let second = load_with(dir.path(), first.cache, grace);
    assert_eq!(
        cidr(&second, "p"),
        "10.9.0.0/16",
        "stale held version in force"
    );
}

/// Under the pod limit in all, a new file sorted first does not push out a workload in force (its
/// pods would lose isolation).
#[test]
fn objects_in_force_come_first_under_the_pod_limit() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("b.yaml"), &deployment("redis", 2));
    let limits = Limits {
        max_pods: 10,
        ..Limits::default()
    };
    let first = load_with(dir.path(), DocumentCache::default(), |l| l.limits(limits));
    assert_eq!(first.state.pods.len(), 2);
    write(&dir.path().join("a.yaml"), &deployment("big", 9));
    let second = load_with(dir.path(), first.cache, |l| l.limits(limits));
    let owners: Vec<String> = second.state.pods.iter().map(|p| p.name.clone()).collect();
    assert!(
        owners.iter().any(|n| n.starts_with("redis")),
        "redis pods left out: {owners:?}"
    );
}

/// A typo that makes the name or namespace invalid rejects the object under another key: the
/// policy in force stays, as its file has a rejected part.
#[test]
fn a_misspelt_namespace_keeps_the_policy() {
    for (from, to) in [
        ("namespace: shop", "namespace: Shop"),
        ("name: p,", "name: p_,"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.yaml");
        write(&f, &policy("p", "10.0.0.0/8"));
        let first = load_with(dir.path(), DocumentCache::default(), |l| l);
        write(&f, &policy("p", "10.0.0.0/8").replace(from, to));
        let second = load_with(dir.path(), first.cache, |l| l);
        assert_eq!(policies(&second), ["shop/p"], "{from} -> {to}: lifted");
    }
}

/// API objects (a watched API server's store) follow the same rules per object: a rejected update
/// keeps the last good version; a deletion takes effect at once (the server said so: no removal
/// grace); an object whose resource version did not change is not decoded again (the same `Arc`).
#[test]
fn api_objects_keep_their_last_good_version_and_are_decoded_once() {
    use palisade_model::{ObjectEvent, ObjectStore};
    let object = |name: &str, version: &str, cidr: &str| {
        let text = policy(name, cidr).replace("---\n", "");
        let mut value: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        value["metadata"]["resourceVersion"] = version.into();
        value
    };
    let pod = serde_json::json!({"metadata": {"name": "redis", "namespace": "shop",
        "resourceVersion": "1"}, "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": {"podIP": "10.1.0.5"}});
    let mut store = ObjectStore::new("https://api", 100);
    store.apply(ObjectEvent::Listed(Kind::Pod, vec![pod]));
    let policies_of = |list| ObjectEvent::Listed(Kind::NetworkPolicy, list);
    store.apply(policies_of(vec![object("p", "1", "10.0.0.0/8")]));
    let load_store = |store: &ObjectStore, cache| {
        let mut loader = Loader::new()
            .with_documents(cache)
            .removal_grace(Duration::from_secs(60))
            .allocate_addresses(false);
        loader.load_store(store);
        loader.finish_with_cache()
    };
    let first = load_store(&store, DocumentCache::default());
    assert_eq!(policies(&first), ["shop/p"]);
    assert!(first.changed);

    // Nothing changed: nothing decoded, the same objects.
    let pod = |load: &Load| load.state.pods.iter().next().unwrap().clone();
    let policy = |load: &Load| load.state.policies[0].policy.clone();
    let (first_pod, first_policy) = (pod(&first), policy(&first));
    let same = load_store(&store, first.cache);
    assert!(!same.changed);
    assert!(std::sync::Arc::ptr_eq(&first_pod, &pod(&same)));
    assert!(std::sync::Arc::ptr_eq(&first_policy, &policy(&same)));

    // An invalid update: rejected, with its URL, kind, name and field; the last good one stays.
    store.apply(ObjectEvent::Applied(
        Kind::NetworkPolicy,
        object("p", "2", "10.0.0.0/33"),
    ));
    let bad = load_store(&store, same.cache);
    assert_eq!(policies(&bad), ["shop/p"]);
    assert_eq!(cidr(&bad, "p"), "10.0.0.0/8");
    assert_eq!(bad.held[0].why, HeldReason::Rejected);
    let error = bad.diagnostics.iter().find(|d| d.is_error()).unwrap();
    let text = error.to_string();
    assert!(
        text.starts_with("https://api/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/p")
            && text.contains("NetworkPolicy shop/p")
            && text.contains("ipBlock.cidr"),
        "{text}"
    );

    // Fixed, then deleted: gone at once, whatever the removal grace.
    store.apply(ObjectEvent::Applied(
        Kind::NetworkPolicy,
        object("p", "3", "10.2.0.0/16"),
    ));
    let fixed = load_store(&store, bad.cache);
    assert_eq!(cidr(&fixed, "p"), "10.2.0.0/16");
    assert!(fixed.held.is_empty());
    store.apply(ObjectEvent::Deleted(
        Kind::NetworkPolicy,
        object("p", "4", "10.2.0.0/16"),
    ));
    let deleted = load_store(&store, fixed.cache);
    assert!(policies(&deleted).is_empty(), "{:?}", deleted.held);
    assert!(deleted.held.is_empty());
    assert_eq!(deleted.revisit, None);
    // An empty store is a cluster without objects, not a folder that lost its manifests.
    let empty = load_store(&ObjectStore::new("https://api", 100), deleted.cache);
    assert!(empty.state.pods.is_empty());
    assert!(empty.diagnostics.iter().all(|d| !d.is_error()));
}

/// A kind the API server could not list (an optional one failing: `mark_unknown`) keeps the last
/// good versions of its objects — a NetworkLogging from the state file stays in force — until a
/// list of it arrives.
#[test]
fn objects_of_a_kind_the_store_could_not_list_stay_in_force() {
    use palisade_model::logging::LoggingConfig;
    use palisade_model::{ObjectEvent, ObjectStore};
    let logging = serde_json::json!({"metadata": {"name": "default", "resourceVersion": "1"},
        "spec": {"cluster": {"allow": {"log": true, "delegate": false},
                             "deny": {"log": true, "delegate": false}}}});
    let mut store = ObjectStore::new("https://api", 100);
    store.apply(ObjectEvent::Listed(Kind::NetworkLogging, vec![logging]));
    let load = |store: &ObjectStore, cache| {
        let mut loader = Loader::new().with_documents(cache);
        loader.load_store(store);
        loader.finish_with_cache()
    };
    let first = load(&store, DocumentCache::default());
    assert!(matches!(
        first.state.network_logging,
        LoggingConfig::Valid(..)
    ));
    // Restarted: the kind cannot be listed this time.
    let mut failing = ObjectStore::new("https://api", 100);
    failing.mark_unknown(Kind::NetworkLogging);
    let held = load(&failing, first.cache);
    assert!(
        matches!(held.state.network_logging, LoggingConfig::Valid(..)),
        "{:?}",
        held.state.network_logging
    );
    assert_eq!(held.held[0].why, HeldReason::Unreadable);
    // Listed (empty): gone.
    failing.apply(ObjectEvent::Listed(Kind::NetworkLogging, vec![]));
    let listed = load(&failing, held.cache);
    assert_eq!(listed.state.network_logging, LoggingConfig::Absent);
}

/// A typo in an Admin Deny policy must not lift it: a rejected edit (from a file, or from the API
/// server, whether the load takes only the changes or every object) keeps the last good version
/// in force, and says so.
#[test]
fn a_broken_edit_of_an_admin_deny_policy_keeps_it_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cnp.yaml");
    write(&file, &cluster_policy("Deny", "169.254.169.254/32"));
    let first = load(dir.path(), DocumentCache::default());
    let deny = tier_rules(&first);
    assert_eq!(deny.len(), 1);
    assert_eq!(deny[0].1, TierAction::Deny);
    for typo in [
        cluster_policy("Deny", "169.254.169.254/33"),
        cluster_policy("Deny", "169.254.169.254/32").replace("priority: 10", "priority: 1O"),
        cluster_policy("Deny", "169.254.169.254/32").replace("tier: Admin", "tier: admin"),
        cluster_policy("Denny", "169.254.169.254/32"),
        cluster_policy("Deny", "169.254.169.254/32").replace("    to:", "    too:"),
    ] {
        write(&file, &typo);
        let broken = load(dir.path(), DocumentCache::default());
        assert!(
            broken.state.tier_policies.is_empty(),
            "no last good: {typo}"
        );
        write(&file, &cluster_policy("Deny", "169.254.169.254/32"));
        let good = load(dir.path(), DocumentCache::default());
        write(&file, &typo);
        let held = load(dir.path(), good.cache);
        assert_eq!(tier_rules(&held), deny, "{typo}");
        assert_eq!(held.held.len(), 1, "{typo}");
        assert_eq!(held.held[0].why, HeldReason::Rejected);
        assert_eq!(
            held.held[0].object,
            ObjectKey::new(Kind::ClusterNetworkPolicy, None, "deny-imds")
        );
        assert_eq!(held.rejections[0].reason, RejectReason::Invalid, "{typo}");
    }

    // From the API server, loads of the changes and of everything alike.
    use palisade_model::{ObjectEvent, ObjectStore};
    let object = |version: &str, text: &str| {
        let mut value: serde_json::Value =
            serde_yaml_ng::from_str(&text.replace("---\n", "")).unwrap();
        value["metadata"]["resourceVersion"] = version.into();
        value
    };
    for incremental in [true, false] {
        let mut store = ObjectStore::new("https://api", 100);
        let good = object("1", &cluster_policy("Deny", "169.254.169.254/32"));
        store.apply(ObjectEvent::Listed(Kind::ClusterNetworkPolicy, vec![good]));
        let load_store = |store: &ObjectStore, cache| {
            (Loader::new().with_documents(cache))
                .incremental(incremental)
                .finish_with_store(store)
        };
        let first = load_store(&store, DocumentCache::default());
        assert_eq!(tier_rules(&first), deny);
        let typo = object("2", &cluster_policy("Deny", "169.254.169.254/33"));
        store.apply(ObjectEvent::Applied(Kind::ClusterNetworkPolicy, typo));
        let held = load_store(&store, first.cache);
        assert_eq!(tier_rules(&held), deny, "incremental: {incremental}");
        assert_eq!(held.held[0].why, HeldReason::Rejected);
        let error = held.diagnostics.iter().find(|d| d.is_error()).unwrap();
        assert!(
            error
                .to_string()
                .contains("clusternetworkpolicies/deny-imds")
                && error.field.as_deref() == Some("spec.egress[0].to[0].networks[0]"),
            "{error}"
        );
        // Fixed to Accept: the new version.
        let accept = object("3", &cluster_policy("Accept", "169.254.169.254/32"));
        store.apply(ObjectEvent::Applied(Kind::ClusterNetworkPolicy, accept));
        let fixed = load_store(&store, held.cache);
        assert_eq!(tier_rules(&fixed)[0].1, TierAction::Accept);
        assert!(fixed.held.is_empty());
        // Deleted: gone.
        let gone = object("4", &cluster_policy("Accept", "169.254.169.254/32"));
        store.apply(ObjectEvent::Deleted(Kind::ClusterNetworkPolicy, gone));
        assert!(load_store(&store, fixed.cache)
            .state
            .tier_policies
            .is_empty());
    }
}
