//! `palisade report`: one self-contained HTML page — the connectivity matrix as a heatmap of
//! workload (or namespace) groups, a graph of those groups, the lint findings, and per cell the
//! explanation of a representative pod pair.
//!
//! The page is bounded whatever the cluster: at most [`Limits::groups`] rows and columns (pods are
//! grouped by workload, by namespace when there are too many workloads, and the namespaces past the
//! cap are aggregated into one row), cells are counted on the engine's endpoint classes (never pod
//! pairs), at most one explanation per cell, each cut at [`Limits::explanation_bytes`] and all of
//! them within [`Limits::explanations_bytes`], and at most [`Limits::findings`] lint rows.
//! [`html`] writes it; everything from manifests is escaped there.

mod html;

pub use html::{escape_html, script_json, to_html};

use crate::diff::Workload;
use crate::explain::{explain, to_text};
use crate::lint;
use crate::Matrix;
use palisade_policy::{ClassId, Endpoint, Flow};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The page's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Rows (and columns) of the heatmap.
    pub groups: usize,
    /// Bytes of one explanation's text.
    pub explanation_bytes: usize,
    /// Bytes of all explanations' texts together; cells past it get only the command to run.
    pub explanations_bytes: usize,
    /// Lint findings listed.
    pub findings: usize,
    /// Pod names listed per group.
    pub pod_names: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            groups: 50,
            explanation_bytes: 4 << 10,
            explanations_bytes: 4 << 20,
            findings: 1000,
            pod_names: 20,
        }
    }
}

/// What a row (and column) stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One workload (a pod without owner stands alone).
    Workload,
    /// One namespace.
    Namespace,
}

/// A row and column of the heatmap: pods treated as one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    /// `ns/workload`, `ns`, or `N other namespaces`.
    pub label: String,
    /// Its namespace (empty for the aggregate of several).
    pub namespace: String,
    /// The owner's kind (`ReplicaSet`…), `Pod` for a pod alone, `Namespace(s)` otherwise.
    pub kind: String,
    /// How many pods.
    pub pods: usize,
    /// The first pods' `ns/name`, at most [`Limits::pod_names`].
    pub sample: Vec<String>,
    /// Matrix positions of its pods.
    #[serde(skip)]
    members: Vec<usize>,
}

/// How a group pair's pod pairs are decided over every probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Every pod pair on every probe.
    Allowed,
    /// None.
    Denied,
    /// Some.
    Partial,
    /// No pod pair (a group of one pod with itself).
    Empty,
}

/// One cell: sources of row `from`, destinations of column `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Allowed, denied or partial.
    pub state: State,
    /// Allowed (pod pair, probe) combinations.
    pub allowed: u64,
    /// All (pod pair, probe) combinations; a pod with itself is not counted.
    pub total: u64,
    /// Index into [`Page::explanations`] of its representative pair, if any.
    pub explanation: Option<usize>,
}

/// The explanation of one representative flow of a cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explained {
    /// Source `ns/pod`.
    pub from: String,
    /// Destination `ns/pod`.
    pub to: String,
    /// `80/TCP`.
    pub probe: String,
    /// Allowed?
    pub allowed: bool,
    /// `palisade explain`'s text, cut at [`Limits::explanation_bytes`]; `None` past the page's
    /// budget.
    pub text: Option<String>,
}

/// Everything the page shows.
#[derive(Debug, Serialize)]
pub struct Page {
    /// Where the cluster was read from, as its command-line arguments (`-f k8s/`): the page's
    /// subtitle, and the start of the `palisade explain` command it shows. Empty from [`build`].
    pub source: String,
    /// What rows stand for.
    pub level: Level,
    /// Rows and columns.
    pub groups: Vec<Group>,
    /// `cells[from][to]`.
    pub cells: Vec<Vec<Cell>>,
    /// The probes every cell is decided on, `80/TCP`.
    pub probes: Vec<String>,
    /// Pods in the matrix.
    pub pods: usize,
    /// Endpoint classes of the engine.
    pub classes: usize,
    /// What was aggregated or cut, in words.
    pub notes: Vec<String>,
    /// Representative flows, explained.
    pub explanations: Vec<Explained>,
    /// The lint findings (not serialized into the script: rendered as an escaped table).
    #[serde(skip)]
    pub findings: Vec<lint::Finding>,
    /// Per finding listed, the groups holding pods its object concerns: those a policy selects
    /// (a cluster-wide policy's subject), a Service's pods, a Namespace's. The table links to
    /// their rows; a cell's explanation lists the findings on its two groups.
    pub finding_groups: Vec<Vec<usize>>,
    /// Findings by severity.
    pub counts: lint::Counts,
    /// Findings left out of the table.
    pub findings_omitted: usize,
}

/// Builds the page of `matrix` and the lint `report`.
pub fn build(matrix: &Matrix, report: &lint::Report, limits: Limits) -> Page {
    let limits = Limits {
        groups: limits.groups.max(2),
        ..limits
    };
    let mut notes = Vec::new();
    let (level, groups) = group(matrix, limits, &mut notes);
    let (cells, reps) = count(matrix, &groups);
    let mut explanations = Vec::new();
    let mut budget = limits.explanations_bytes;
    let mut omitted = 0;
    let cells = cells
        .into_iter()
        .zip(reps)
        .map(|(row, reps)| {
            row.into_iter()
                .zip(reps)
                .map(|(mut cell, rep)| {
                    if let Some(rep) = rep {
                        let e = explained(matrix, rep, limits.explanation_bytes, &mut budget);
                        omitted += usize::from(e.text.is_none());
                        cell.explanation = Some(explanations.len());
                        explanations.push(e);
                    }
                    cell
                })
                .collect()
        })
        .collect();
    if omitted > 0 {
        notes.push(format!(
            "{omitted} cells have no explanation text: the page holds at most {} KiB of them; run the command shown",
            limits.explanations_bytes >> 10
        ));
    }
    let findings_omitted = report.findings.len().saturating_sub(limits.findings);
    let findings: Vec<lint::Finding> = (report.findings.iter())
        .take(limits.findings)
        .cloned()
        .collect();
    let finding_groups = concerned(matrix, &groups, &findings);
    Page {
        source: String::new(),
        level,
        groups,
        cells,
        probes: matrix.probes.iter().map(|(p, _)| p.to_string()).collect(),
        pods: matrix.pods.len(),
        classes: matrix.engine().class_count(),
        notes,
        explanations,
        findings,
        finding_groups,
        counts: report.counts(),
        findings_omitted,
    }
}

/// Per finding, the groups holding pods its object concerns (see [`Page::finding_groups`]): one
/// pass over each group's classes, asking the engine which policies select each.
fn concerned(matrix: &Matrix, groups: &[Group], findings: &[lint::Finding]) -> Vec<Vec<usize>> {
    let engine = matrix.engine();
    let state = engine.state();
    let wanted: BTreeSet<&lint::ObjectRef> = findings.iter().map(|f| &f.object).collect();
    let services = wanted.iter().any(|o| o.kind == "Service");
    let mut by_object: BTreeMap<lint::ObjectRef, BTreeSet<usize>> = BTreeMap::new();
    let mut add = |object: lint::ObjectRef, g: usize| {
        if wanted.contains(&object) {
            by_object.entry(object).or_default().insert(g);
        }
    };
    for (g, group) in groups.iter().enumerate() {
        let classes: BTreeSet<ClassId> = group.members.iter().map(|&i| matrix.class(i)).collect();
        for class in classes {
            let pod = &state.pods[engine.class_pods(class)[0]];
            add(object("Namespace", None, &pod.namespace), g);
            for p in engine.policies_selecting(class) {
                let meta = &p.object().metadata;
                let name = meta.name.as_deref().unwrap_or_default();
                add(object("NetworkPolicy", Some(&pod.namespace), name), g);
            }
            for t in engine.tier_policies_selecting(class) {
                add(object(t.kind().as_str(), None, t.name()), g);
            }
            let of_pod = (state.services.iter().filter(|_| services))
                .filter(|s| lint::service_selects(s, pod));
            for service in of_pod {
                add(
                    object("Service", Some(&service.namespace), &service.name),
                    g,
                );
            }
        }
    }
    (findings.iter())
        .map(|f| (by_object.get(&f.object).into_iter().flatten().copied()).collect())
        .collect()
}

fn object(kind: &str, namespace: Option<&str>, name: &str) -> lint::ObjectRef {
    lint::ObjectRef {
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: Some(name.into()),
    }
}

/// Groups the matrix's pods by workload, or by namespace when there are more workloads than
/// `limits.groups`; namespaces past the cap (in name order) become one group.
fn group(matrix: &Matrix, limits: Limits, notes: &mut Vec<String>) -> (Level, Vec<Group>) {
    let state = matrix.engine().state();
    let mut by_workload: BTreeMap<Workload, Vec<usize>> = BTreeMap::new();
    for (i, &p) in matrix.pods.iter().enumerate() {
        by_workload
            .entry(Workload::of(&state.pods[p]))
            .or_default()
            .push(i);
    }
    if by_workload.len() <= limits.groups {
        let groups = by_workload
            .into_iter()
            .map(|(w, members)| {
                let label = format!("{}/{}", w.namespace, w.name);
                let kind = w.kind.unwrap_or_else(|| "Pod".into());
                new_group(matrix, label, w.namespace, kind, members, limits)
            })
            .collect();
        return (Level::Workload, groups);
    }
    let mut by_ns: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, &p) in matrix.pods.iter().enumerate() {
        by_ns.entry(&state.pods[p].namespace).or_default().push(i);
    }
    notes.push(format!(
        "{} workloads are more than {} rows: pods are grouped by namespace",
        by_workload.len(),
        limits.groups
    ));
    let namespace_group = |(ns, members): (&str, Vec<usize>)| {
        new_group(
            matrix,
            ns.into(),
            ns.into(),
            "Namespace".into(),
            members,
            limits,
        )
    };
    let mut namespaces = by_ns.into_iter();
    let mut groups: Vec<Group> = (namespaces.by_ref().take(limits.groups - 1))
        .map(namespace_group)
        .collect();
    let rest: Vec<(&str, Vec<usize>)> = namespaces.collect();
    match rest.len() {
        0 => {}
        1 => groups.extend(rest.into_iter().map(namespace_group)),
        n => {
            let (first, last) = (rest[0].0, rest[n - 1].0);
            notes.push(format!(
                "{n} namespaces ({first} … {last}) are more than {} rows: they are one group; narrow with -n",
                limits.groups
            ));
            let members = rest.into_iter().flat_map(|(_, m)| m).collect();
            groups.push(new_group(
                matrix,
                format!("{n} other namespaces"),
                String::new(),
                "Namespaces".into(),
                members,
                limits,
            ));
        }
    }
    (Level::Namespace, groups)
}

fn new_group(
    matrix: &Matrix,
    label: String,
    namespace: String,
    kind: String,
    members: Vec<usize>,
    limits: Limits,
) -> Group {
    Group {
        label,
        namespace,
        kind,
        pods: members.len(),
        sample: (members.iter().take(limits.pod_names))
            .map(|&i| matrix.pod_name(i))
            .collect(),
        members,
    }
}

/// A representative flow: matrix positions and probe index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rep {
    src: usize,
    dst: usize,
    probe: usize,
}

/// Pods of one class in a group: how many, and the first few positions (to pick a pair from).
struct ClassMembers {
    class: ClassId,
    count: u64,
    first: Vec<usize>,
}

/// How many candidates per class a representative pair is looked for among.
const CANDIDATES: usize = 3;

fn class_members(matrix: &Matrix, group: &Group) -> Vec<ClassMembers> {
    let mut by_class: BTreeMap<ClassId, ClassMembers> = BTreeMap::new();
    for &i in &group.members {
        let class = matrix.class(i);
        let m = by_class.entry(class).or_insert(ClassMembers {
            class,
            count: 0,
            first: Vec::new(),
        });
        m.count += 1;
        if m.first.len() < CANDIDATES {
            m.first.push(i);
        }
    }
    by_class.into_values().collect()
}

/// The cells, counted on class pairs per probe (a pod with itself left out; the pairs always
/// allowed with a node added), and per cell a representative flow: a denied one if any, else an
/// allowed one.
#[allow(clippy::type_complexity)]
fn count(matrix: &Matrix, groups: &[Group]) -> (Vec<Vec<Cell>>, Vec<Vec<Option<Rep>>>) {
    let n = groups.len();
    let members: Vec<Vec<ClassMembers>> = groups.iter().map(|g| class_members(matrix, g)).collect();
    let mut group_of = vec![0; matrix.pods.len()];
    for (g, group) in groups.iter().enumerate() {
        for &i in &group.members {
            group_of[i] = g;
        }
    }
    let probes = matrix.probes.len() as u64;
    let mut cells = vec![vec![(0u64, 0u64); n]; n];
    let mut denied: Vec<Vec<Option<Rep>>> = vec![vec![None; n]; n];
    let mut allowed: Vec<Vec<Option<Rep>>> = vec![vec![None; n]; n];
    for (probe, (_, reach)) in matrix.probes.iter().enumerate() {
        for a in 0..n {
            for b in 0..n {
                for ca in &members[a] {
                    for cb in &members[b] {
                        let self_pairs = if a == b && ca.class == cb.class {
                            ca.count
                        } else {
                            0
                        };
                        let pairs = ca.count * cb.count - self_pairs;
                        if pairs == 0 {
                            continue;
                        }
                        let rep = if reach.allowed(ca.class, cb.class) {
                            cells[a][b].0 += pairs;
                            &mut allowed[a][b]
                        } else {
                            &mut denied[a][b]
                        };
                        if rep.is_none() {
                            *rep = pick(matrix, ca, cb, probe);
                        }
                    }
                }
            }
        }
    }
    for i in 0..matrix.pods.len() {
        let mut always = matrix.always(i).to_vec();
        always.sort_unstable();
        always.dedup();
        for j in always {
            for (probe, (_, reach)) in matrix.probes.iter().enumerate() {
                if !reach.allowed(matrix.class(i), matrix.class(j)) {
                    cells[group_of[i]][group_of[j]].0 += 1;
                    allowed[group_of[i]][group_of[j]].get_or_insert(Rep {
                        src: i,
                        dst: j,
                        probe,
                    });
                }
            }
        }
    }
    let cells = (0..n)
        .map(|a| {
            (0..n)
                .map(|b| {
                    let (size_a, size_b) = (groups[a].pods as u64, groups[b].pods as u64);
                    let total = (size_a * size_b - if a == b { size_a } else { 0 }) * probes;
                    let ok = cells[a][b].0;
                    let state = match ok {
                        _ if total == 0 => State::Empty,
                        0 => State::Denied,
                        x if x == total => State::Allowed,
                        _ => State::Partial,
                    };
                    Cell {
                        state,
                        allowed: ok,
                        total,
                        explanation: None,
                    }
                })
                .collect()
        })
        .collect();
    let reps = (0..n)
        .map(|a| (0..n).map(|b| denied[a][b].or(allowed[a][b])).collect())
        .collect();
    (cells, reps)
}

/// A pod pair of classes `ca` × `cb` (two different pods) that the matrix decides as the class
/// pair is decided; `None` when every candidate pair is decided otherwise (a pod and its node).
fn pick(matrix: &Matrix, ca: &ClassMembers, cb: &ClassMembers, probe: usize) -> Option<Rep> {
    let class_allowed = matrix.probes[probe].1.allowed(ca.class, cb.class);
    ca.first
        .iter()
        .flat_map(|&src| cb.first.iter().map(move |&dst| (src, dst)))
        .find(|&(src, dst)| src != dst && matrix.allowed(probe, src, dst) == class_allowed)
        .map(|(src, dst)| Rep { src, dst, probe })
}

/// Explains `rep`, its text cut at `max` bytes and charged to `budget` (none once it is spent).
fn explained(matrix: &Matrix, rep: Rep, max: usize, budget: &mut usize) -> Explained {
    let engine = matrix.engine();
    let probe = matrix.probes[rep.probe].0;
    let flow = Flow {
        src: Endpoint::Pod(matrix.pods[rep.src]),
        dst: Endpoint::Pod(matrix.pods[rep.dst]),
        port: probe.port,
        protocol: probe.protocol,
    };
    let e = explain(engine, flow);
    let text = Some(truncate(to_text(&e), max)).filter(|t| t.len() <= *budget);
    if let Some(t) = &text {
        *budget -= t.len();
    }
    Explained {
        from: matrix.pod_name(rep.src),
        to: matrix.pod_name(rep.dst),
        probe: probe.to_string(),
        allowed: matrix.allowed(rep.probe, rep.src, rep.dst),
        text,
    }
}

/// `text` cut to at most `max` bytes at a character boundary, saying so.
fn truncate(mut text: String, max: usize) -> String {
    const CUT: &str = "\n… (cut; run the command for all of it)\n";
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(CUT.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(CUT);
    text
}

#[cfg(test)]
mod tests;
