//! Rendering the `inet palisade` table as an `nft -f` script.

use crate::events::log_statement;
use palisade_policy::{AddrCache, AddrSet, Allow, ClassRules, Direction, Engine, Peers};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

/// The table Palisade owns: `inet palisade`.
pub const TABLE: &str = "palisade";

/// Names the shared peer sets, one per distinct address set and family.
#[derive(Default)]
struct Sets {
    names: HashMap<*const AddrSet, usize>,
    defs: String,
}

impl Sets {
    /// The set names (IPv4, IPv6) for `set`; `None` for a family it has no address of.
    fn name(&mut self, set: &Arc<AddrSet>) -> (Option<String>, Option<String>) {
        let id = match self.names.get(&Arc::as_ptr(set)) {
            Some(&id) => id,
            None => {
                let id = self.names.len();
                self.names.insert(Arc::as_ptr(set), id);
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

/// The match on ports of an entry: empty for every port of every protocol.
fn ports_match(allow: &Allow) -> String {
    match &allow.ports {
        None => String::new(),
        Some(ports) => {
            let elements: Vec<String> = ports
                .iter()
                .map(|p| {
                    let proto = p.protocol.as_str().to_ascii_lowercase();
                    if p.first == p.last {
                        format!("{proto} . {}", p.first)
                    } else {
                        format!("{proto} . {}-{}", p.first, p.last)
                    }
                })
                .collect();
            format!(" meta l4proto . th dport {{ {} }}", elements.join(", "))
        }
    }
}

/// Rules of one direction's chain; `peer_field` is `saddr` (ingress) or `daddr` (egress).
fn chain_rules(
    entries: &[Allow],
    peer_field: &str,
    verdict: &str,
    sets: &mut Sets,
    out: &mut String,
) {
    for allow in entries {
        let ports = ports_match(allow);
        let comment = format!(" comment \"policy {} rule {}\"", allow.policy, allow.rule);
        match &allow.peers {
            Peers::Any => {
                let _ = writeln!(out, "   {ports} {verdict}{comment}");
            }
            Peers::Addrs(set) => {
                let (v4, v6) = sets.name(set);
                if let Some(v4) = v4 {
                    let _ = writeln!(out, "    ip {peer_field} {v4}{ports} {verdict}{comment}");
                }
                if let Some(v6) = v6 {
                    let _ = writeln!(out, "    ip6 {peer_field} {v6}{ports} {verdict}{comment}");
                }
            }
        }
    }
}

/// Renders the whole table for `engine`'s state as one `nft -f` script that replaces any previous
/// `inet palisade` table atomically.
pub fn render(engine: &Engine) -> String {
    let state = engine.state();
    let mut cache = AddrCache::default();
    let mut sets = Sets::default();
    let mut chains = String::new();
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
        for (direction, entries, field, verdict, map_base) in [
            (Direction::Ingress, &rules.ingress, "saddr", "accept", 0),
            (Direction::Egress, &rules.egress, "daddr", "return", 2),
        ] {
            let Some(entries) = entries else { continue };
            let chain = format!("{}_{class}", direction.as_str());
            let _ = writeln!(chains, "  chain {chain} {{");
            let verdict = format!("{} {verdict}", log_statement(direction, true));
            chain_rules(entries, field, &verdict, &mut sets, &mut chains);
            let _ = writeln!(chains, "    {} drop\n  }}", log_statement(direction, false));
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
