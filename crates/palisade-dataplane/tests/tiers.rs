//! The cluster-wide tiers as chains (no root: the rendered table is read, not applied; the kernel
//! conformance suite in palisade-lab sends the packets): audit mode — a namespace's annotation or
//! the node's `--policy-audit-mode` — never lifts an Admin-tier Deny.

use palisade_dataplane::render;
use palisade_model::Loader;
use palisade_policy::{Audit, CompiledTable, Engine};
use std::sync::Arc;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: x, annotations: {policy.palisade.dev/audit-mode: "true"}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {containers: [{name: m, image: i}]}
status: {podIP: 10.0.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec:
  tier: Admin
  priority: 1
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: b}}}}
  ingress: [{name: no-80, action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 80}}}]}]
"#;

/// The rule lines of the rendered table that drop (the base chain's `ct state invalid drop` aside).
fn drops(table: &CompiledTable) -> Vec<String> {
    (render(table).lines())
        .filter(|l| l.contains("log prefix") && l.contains(" drop"))
        .map(str::to_string)
        .collect()
}

#[test]
fn audit_mode_never_lifts_an_admin_deny() {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", CLUSTER);
    let (state, diagnostics) = loader.finish();
    assert!(
        diagnostics.iter().all(|d| !d.is_error()),
        "{diagnostics:#?}"
    );
    let engine = Engine::new(Arc::new(state));
    for audit in [Audit::Annotated, Audit::All] {
        let table = CompiledTable::of(&engine, audit);
        let drops = drops(&table);
        // The Admin Deny drops; the NetworkPolicy's default deny of the audited namespace does not
        // (it logs as audit and accepts).
        assert_eq!(drops.len(), 1, "{audit:?}: {drops:#?}\n{}", render(&table));
        assert!(
            drops[0].contains("th dport 80")
                && drops[0].contains("ClusterNetworkPolicy guard ingress rule 0"),
            "{}",
            drops[0]
        );
        let script = render(&table);
        assert!(
            script.lines().any(|l| l.contains("log prefix")
                && !l.contains("comment")
                && l.ends_with("accept")),
            "the audited default deny accepts:\n{script}"
        );
    }
}
