//! Where a lab keeps its state, logs and sockets, and which names belong to it: `lab down` removes
//! exactly what these say lab `name` owns, and nothing of a lab whose name merely starts alike.

use std::path::PathBuf;

/// Where lab state and logs live.
pub fn state_dir() -> PathBuf {
    PathBuf::from("/run/palisade")
}

/// The recorded state of lab `name`.
pub(crate) fn state_file(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}.json"))
}

/// The file the lab's responder process creates once every port is bound.
pub fn ready_file(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}.ready"))
}

/// The log of lab `name`'s background `process` (`agent` or `serve`).
pub fn process_log(name: &str, process: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}-{process}.log"))
}

/// Lab `name`'s policy action log unless `--policy-log` says otherwise (removed by `lab down`).
pub fn policy_log(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}-policy_action.log"))
}

/// Lab `name`'s observe socket unless `--observe-socket` says otherwise.
pub fn observe_socket(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}-observe.sock"))
}

/// The agent's last good state (its state file) of lab `name`.
pub fn last_good(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}-last-good.json"))
}

/// What the agent of lab `name` says of itself (`palisade status --lab`), renewed every 10 s.
pub fn agent_status(name: &str) -> PathBuf {
    state_dir().join(format!("lab-{name}-status.json"))
}

/// `path` for node `node` of a lab of several: `-<node>` before the extension
/// (`lab-L-policy_action.log` → `lab-L-policy_action-node-1.log`), as each node's agent keeps its
/// own log, socket and last good state.
pub fn per_node(path: &std::path::Path, node: &str) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{node}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{node}"),
    };
    path.with_file_name(name)
}

/// True for a non-empty string of ASCII digits.
fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// True for the network namespaces (and `/etc/netns` folders) lab `name` creates: `pal-<name>-node`,
/// `pal-<name>-node-<N>`, `pal-<name>-fabric` and `pal-<name>-p<N>` — and not those of a lab whose
/// name merely starts with `<name>-`.
pub(crate) fn owns_netns(name: &str, ns: &str) -> bool {
    ns.strip_prefix(&format!("pal-{name}-"))
        .is_some_and(|rest| {
            matches!(rest, "node" | "fabric")
                || rest.strip_prefix("node-").is_some_and(digits)
                || rest.strip_prefix('p').is_some_and(digits)
        })
}

/// True for the files of lab `name` in the state folder: its state and readiness files, the logs
/// of its processes, its policy action log (rotated ones too) and its observe socket, and those of
/// each node's agent ([`per_node`]).
pub(crate) fn owns_file(name: &str, file: &str) -> bool {
    let Some(rest) = file.strip_prefix(&format!("lab-{name}")) else {
        return false;
    };
    owned_suffix(rest) || without_node(rest).is_some_and(|rest| owned_suffix(&rest))
}

/// `rest` without the `-node-<N>` that [`per_node`] puts after the stem of an agent's file.
fn without_node(rest: &str) -> Option<String> {
    [
        "-agent",
        "-observe",
        "-policy_action",
        "-last-good",
        "-status",
    ]
    .iter()
    .find_map(|stem| {
        let after = rest.strip_prefix(stem)?.strip_prefix("-node-")?;
        let end = after.find(|c: char| !c.is_ascii_digit())?;
        (end > 0).then(|| format!("{stem}{}", &after[end..]))
    })
}

/// True for what follows `lab-<name>` in the name of a file of a lab's (or its one node's).
fn owned_suffix(rest: &str) -> bool {
    matches!(
        rest,
        ".json"
            | ".json.tmp"
            | ".ready"
            | "-agent.log"
            | "-serve.log"
            | "-observe.sock"
            | "-policy_action.log"
            | "-last-good.json"
            | "-status.json"
    ) || rest
        .strip_prefix("-policy_action-")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()) && r.ends_with(".log"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_lab_owns_its_names_and_not_those_of_a_lab_named_like_it() {
        for ns in [
            "pal-a-node",
            "pal-a-p0",
            "pal-a-p12",
            "pal-a-fabric",
            "pal-a-node-0",
            "pal-a-node-15",
        ] {
            assert!(owns_netns("a", ns), "{ns}");
        }
        for ns in [
            "pal-a-b-node",
            "pal-a-b-p0",
            "pal-a-p",
            "pal-a-px",
            "pal-ab-node",
            "pal-a-node-",
            "pal-a-node-x",
            "pal-a-node-1-p0",
            "pal-a-fabric-p0",
            "other",
        ] {
            assert!(!owns_netns("a", ns), "{ns}");
        }
        for f in [
            "lab-a.json",
            "lab-a.ready",
            "lab-a-agent.log",
            "lab-a-serve.log",
            "lab-a-observe.sock",
            "lab-a-policy_action.log",
            "lab-a-policy_action-2026-11-30T10-00-00.123.log",
            "lab-a-agent-node-2.log",
            "lab-a-observe-node-0.sock",
            "lab-a-policy_action-node-1.log",
            "lab-a-policy_action-node-1-2026-11-30T10-00-00.123.log",
            "lab-a-last-good-node-12.json",
        ] {
            assert!(owns_file("a", f), "{f}");
        }
        for f in [
            "lab-a-b.json",
            "lab-a-b-agent.log",
            "lab-a-b-policy_action.log",
            "lab-ab.json",
            "lab-a-notes.log",
            // Lab a-node-1's, not lab a's node-1's.
            "lab-a-node-1.json",
            "lab-a-node-1-agent.log",
            "lab-a-agent-node-.log",
            "lab-a-agent-node-1-x.log",
            "lab-a-serve-node-1.log",
        ] {
            assert!(!owns_file("a", f), "{f}");
        }
    }

    #[test]
    fn a_nodes_files_carry_its_name_and_belong_to_its_lab() {
        let policy_log = per_node(&policy_log("a"), "node-1");
        assert_eq!(
            policy_log,
            Path::new("/run/palisade/lab-a-policy_action-node-1.log")
        );
        for path in [
            policy_log,
            per_node(&observe_socket("a"), "node-0"),
            per_node(&last_good("a"), "node-2"),
            per_node(&agent_status("a"), "node-1"),
            agent_status("a"),
            per_node(&process_log("a", "agent"), "node-15"),
        ] {
            let file = path.file_name().unwrap().to_string_lossy();
            assert!(owns_file("a", &file), "{file}");
            assert!(!owns_file("a-node-1", &file), "{file}");
        }
    }
}
