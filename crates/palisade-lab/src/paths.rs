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

/// True for the network namespaces (and `/etc/netns` folders) lab `name` creates: `pal-<name>-node`
/// and `pal-<name>-p<N>` — and not those of a lab whose name merely starts with `<name>-`.
pub(crate) fn owns_netns(name: &str, ns: &str) -> bool {
    ns.strip_prefix(&format!("pal-{name}-"))
        .is_some_and(|rest| {
            rest == "node"
                || rest
                    .strip_prefix('p')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// True for the files of lab `name` in the state folder: its state and readiness files, the logs
/// of its processes, its policy action log (rotated ones too) and its observe socket.
pub(crate) fn owns_file(name: &str, file: &str) -> bool {
    let Some(rest) = file.strip_prefix(&format!("lab-{name}")) else {
        return false;
    };
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
    ) || rest
        .strip_prefix("-policy_action-")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()) && r.ends_with(".log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_owns_its_names_and_not_those_of_a_lab_named_like_it() {
        for ns in ["pal-a-node", "pal-a-p0", "pal-a-p12"] {
            assert!(owns_netns("a", ns), "{ns}");
        }
        for ns in [
            "pal-a-b-node",
            "pal-a-b-p0",
            "pal-a-p",
            "pal-a-px",
            "pal-ab-node",
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
        ] {
            assert!(owns_file("a", f), "{f}");
        }
        for f in [
            "lab-a-b.json",
            "lab-a-b-agent.log",
            "lab-a-b-policy_action.log",
            "lab-ab.json",
            "lab-a-notes.log",
        ] {
            assert!(!owns_file("a", f), "{f}");
        }
    }
}
