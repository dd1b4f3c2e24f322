//! Rendering the `inet palisade` table as an `nft -f` script.

use crate::events::{log_statement, Action};
use palisade_model::logging::{annotation_enabled, AUDIT_ANNOTATION};
use palisade_policy::{AddrCache, AddrSet, Allow, ClassRules, Direction, Engine, Peers};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

/// The table Palisade owns: `inet palisade`.
pub const TABLE: &str = "palisade";

/// Names the shared peer sets, one per distinct address set (by content) and family.
#[derive(Default)]
struct Sets {
    names: HashMap<Arc<AddrSet>, usize>,
    defs: String,
}

impl Sets {
    /// The set names (IPv4, IPv6) for `set`; `None` for a family it has no address of.
    fn name(&mut self, set: &Arc<AddrSet>) -> (Option<String>, Option<String>) {
        let id = match self.names.get(set) {
            Some(&id) => id,
            None => {
                let id = self.names.len();
                self.names.insert(set.clone(), id);
                for (family, v6) in [("ipv4_addr", false), ("ipv6_addr", true)] {
                    let elements: Vec<String> = set
                        .ranges
                        .iter()
                        .filter(|r| r.first.is_ipv6() == v6)
                        .map(|r| {
                            if r.first == r.last {
                                r.first.to_string()
                            } else {
                                format!("{}-{}", r.first, r.last)
                            }
                        })
                        .collect();
                    if elements.is_empty() {
                        continue;
                    }
                    let tag = if v6 { 6 } else { 4 };
                    let _ = writeln!(
                        self.defs,
                        "  set peers{tag}_{id} {{\n    type {family}; flags interval; auto-merge;\n    elements = {{ {} }}\n  }}",
                        elements.join(", ")
                    );
                }
                id
            }
        };
        let has = |v6: bool| set.ranges.iter().any(|r| r.first.is_ipv6() == v6);
        (
            has(false).then(|| format!("@peers4_{id}")),
            has(true).then(|| format!("@peers6_{id}")),
        )
    }
}

/// The port matches of an entry, one per protocol (a rule is emitted for each); a single empty match
/// for every port of every protocol. Each is a one-dimension match (`meta l4proto tcp th dport
/// { 80, 8000-8080 }`): concatenated `l4proto . port` interval sets cost the kernel seconds to build
/// at this scale (measured: 20 s for 10,000 of them, against 2 s for the per-protocol form).
fn ports_matches(allow: &Allow) -> Vec<String> {
    let Some(ports) = &allow.ports else {
        return vec![String::new()];
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let protocol = ports[i].protocol;
        let same: Vec<String> = ports[i..]
            .iter()
            .take_while(|p| p.protocol == protocol)
            .map(|p| {
                if p.first == p.last {
                    p.first.to_string()
                } else {
                    format!("{}-{}", p.first, p.last)
                }
            })
            .collect();
        i += same.len();
        let proto = protocol.as_str().to_ascii_lowercase();
        let ports = if same.len() == 1 {
            same[0].clone()
        } else {
            format!("{{ {} }}", same.join(", "))
        };
        out.push(format!(" meta l4proto {proto} th dport {ports}"));
    }
    out
}

/// The body of one direction's chain; `peer_field` is `saddr` (ingress) or `daddr` (egress).
fn chain_body(entries: &[Allow], peer_field: &str, verdict: &str, sets: &mut Sets) -> String {
    let mut out = String::new();
    for allow in entries {
        let comment = format!(" comment \"policy {} rule {}\"", allow.policy, allow.rule);
        let peers: Vec<String> = match &allow.peers {
            Peers::Any => vec![String::new()],
            Peers::Addrs(set) => {
                let (v4, v6) = sets.name(set);
                v4.map(|n| format!(" ip {peer_field} {n}"))
                    .into_iter()
                    .chain(v6.map(|n| format!(" ip6 {peer_field} {n}")))
                    .collect()
            }
        };
        for peer in &peers {
            for ports in ports_matches(allow) {
                let _ = writeln!(out, "   {peer}{ports} {verdict}{comment}");
            }
        }
    }
    out
}

/// Where audit mode applies: for those pods nothing is dropped; what policy would deny is let through
/// and logged as an audit event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Audit {
    /// Only in namespaces annotated `policy.palisade.dev/audit-mode: "true"`.
    #[default]
    Annotated,
    /// Everywhere on this node (`--policy-audit-mode`).
    All,
}

/// Renders the whole table for `engine`'s state as one `nft -f` script that replaces any previous
/// `inet palisade` table atomically; audit mode only in annotated namespaces.
pub fn render(engine: &Engine) -> String {
    render_with(engine, Audit::Annotated)
}

/// [`render`] with audit mode applied as `audit` says.
pub fn render_with(engine: &Engine, audit: Audit) -> String {
    let state = engine.state();
    let mut cache = AddrCache::default();
    let mut sets = Sets::default();
    let mut chains = String::new();
    // Classes with the same rules share one chain (labels no policy reads split classes, not rules).
    let mut chain_of_body: HashMap<String, String> = HashMap::new();
    // pod IP → verdict per map.
    let mut maps: [Vec<String>; 4] = Default::default(); // ingress4, ingress6, egress4, egress6
    for class in 0..engine.class_count() {
        let rules: ClassRules = engine.compile_class(class, &mut cache);
        let ips: Vec<IpAddr> = engine
            .class_pods(class)
            .iter()
            .filter(|&&p| !state.pods[p].host_network)
            .filter_map(|&p| state.pods[p].ip)
            .collect();
        if ips.is_empty() {
            continue;
        }
        // A class never spans namespaces, so one pod's namespace decides for all.
        let namespace = &state.pods[engine.class_pods(class)[0]].namespace;
        let audited = audit == Audit::All
            || state
                .namespace(namespace)
                .is_some_and(|ns| annotation_enabled(&ns.annotations, AUDIT_ANNOTATION));
        for (direction, entries, field, verdict, map_base) in [
            (Direction::Ingress, &rules.ingress, "saddr", "accept", 0),
            (Direction::Egress, &rules.egress, "daddr", "return", 2),
        ] {
            let Some(entries) = entries else { continue };
            let verdict = format!("{} {verdict}", log_statement(direction, Action::Allow));
            let mut body = chain_body(entries, field, &verdict, &mut sets);
            let (action, last) = match (audited, direction) {
                (false, _) => (Action::Deny, "drop"),
                (true, Direction::Ingress) => (Action::Audit, "accept"),
                // Audited egress returns, so that the destination's ingress is still evaluated.
                (true, Direction::Egress) => (Action::Audit, "return"),
            };
            let _ = writeln!(body, "    {} {last}", log_statement(direction, action));
            let next = chain_of_body.len();
            let chain = chain_of_body
                .entry(body)
                .or_insert_with_key(|body| {
                    let name = format!("{}_{next}", direction.as_str());
                    let _ = write!(chains, "  chain {name} {{\n{body}  }}\n");
                    name
                })
                .clone();
            for ip in &ips {
                maps[map_base + usize::from(ip.is_ipv6())].push(format!("{ip} : jump {chain}"));
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{"
    );
    out.push_str(&sets.defs);
    for (i, (name, key)) in [
        ("ingress4", "ipv4_addr"),
        ("ingress6", "ipv6_addr"),
        ("egress4", "ipv4_addr"),
        ("egress6", "ipv6_addr"),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = write!(out, "  map {name} {{\n    type {key} : verdict;\n");
        if !maps[i].is_empty() {
            let _ = writeln!(out, "    elements = {{ {} }}", maps[i].join(", "));
        }
        let _ = writeln!(out, "  }}");
    }
    out.push_str(&chains);
    out.push_str(
        "  chain forward {\n    type filter hook forward priority filter; policy accept;\n    ct state established,related accept\n    ct state invalid drop\n    ip saddr vmap @egress4\n    ip6 saddr vmap @egress6\n    ip daddr vmap @ingress4\n    ip6 daddr vmap @ingress6\n  }\n}\n",
    );
    out
}
