//! What the agent says of itself: ready (enforcing exactly what its source says), and alive (its
//! loop still turning). Every degraded state is a named problem here, so that readiness, the log
//! and `/readyz` say why.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The loop is considered stuck when it has not turned for this long.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// A part of the agent that can be degraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The source (the manifests folder, or the API server): readable and followed.
    Source,
    /// The input: every object accepted.
    Input,
    /// The kernel: holds the ruleset of the last pass.
    Kernel,
    /// The host: the forward hook sees the pods' traffic (see `host.rs`).
    Host,
    /// The flow log (when on): conntrack listed, its endings heard, its counters on.
    FlowLog,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Source => "source",
            Part::Input => "input",
            Part::Kernel => "kernel",
            Part::Host => "host",
            Part::FlowLog => "flow_log",
        }
    }

    /// A problem of this part means the kernel may not enforce what the source says (so the agent
    /// is not ready); the others (the flow log) are degraded observability only.
    fn enforcing(self) -> bool {
        self != Part::FlowLog
    }
}

/// The agent's health, shared between its loop and the metrics endpoint.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    applied_once: bool,
    problems: BTreeMap<Part, String>,
    last_turn: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: Mutex::new(State {
                applied_once: false,
                problems: BTreeMap::new(),
                last_turn: Instant::now(),
            }),
        }
    }
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `part`'s problem, or that it has none; true when that changed it.
    pub fn set(&self, part: Part, problem: Option<String>) -> bool {
        let mut state = self.lock();
        match problem {
            Some(p) => state.problems.insert(part, p.clone()).as_ref() != Some(&p),
            None => state.problems.remove(&part).is_some(),
        }
    }

    /// True while some part has a problem.
    pub fn degraded(&self) -> bool {
        !self.lock().problems.is_empty()
    }

    /// The kernel holds a ruleset of this agent's.
    pub fn applied(&self) {
        self.lock().applied_once = true;
    }

    /// The loop turned.
    pub fn turned(&self) {
        self.lock().last_turn = Instant::now();
    }

    /// Ready: a ruleset applied and no problem of enforcement (a flow log's problem degrades the
    /// agent, but its enforcement is whole); otherwise why not, one line per problem.
    pub fn ready(&self) -> Result<(), Vec<String>> {
        let why = self.lines(Part::enforcing);
        if why.is_empty() {
            Ok(())
        } else {
            Err(why)
        }
    }

    /// Every problem, one line each (what the node's status says is degraded).
    pub fn problems(&self) -> Vec<String> {
        self.lines(|_| true)
    }

    /// The lines of the problems of the parts `counted` keeps, after a missing first ruleset.
    fn lines(&self, counted: impl Fn(Part) -> bool) -> Vec<String> {
        let state = self.lock();
        let mut lines: Vec<String> = (state.problems.iter())
            .filter(|(part, _)| counted(**part))
            .map(|(part, p)| format!("{}: {p}", part.as_str()))
            .collect();
        if !state.applied_once {
            lines.insert(0, "kernel: no ruleset applied yet".into());
        }
        lines
    }

    /// Alive: the loop turned recently (within 60 s); otherwise for how long it has not.
    pub fn alive(&self) -> Result<(), Duration> {
        let idle = self.lock().last_turn.elapsed();
        if idle > STUCK_AFTER {
            Err(idle)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_applied_and_without_problems() {
        let h = Health::default();
        assert_eq!(
            h.ready(),
            Err(vec!["kernel: no ruleset applied yet".to_string()])
        );
        h.applied();
        assert_eq!(h.ready(), Ok(()));
        assert!(h.set(Part::Input, Some("2 objects rejected".into())));
        assert!(!h.set(Part::Input, Some("2 objects rejected".into())));
        assert!(h.set(Part::Source, Some("k8s: missing".into())));
        assert_eq!(
            h.ready(),
            Err(vec![
                "source: k8s: missing".to_string(),
                "input: 2 objects rejected".to_string()
            ])
        );
        assert!(h.set(Part::Input, None));
        assert!(!h.set(Part::Input, None));
        assert!(h.set(Part::Source, None));
        assert_eq!(h.ready(), Ok(()));
        assert_eq!(h.alive(), Ok(()));
        // The flow log's problem degrades the agent; enforcement is whole, so it stays ready.
        assert!(h.set(Part::FlowLog, Some("cannot list".into())));
        assert!(h.degraded());
        assert_eq!(h.ready(), Ok(()));
        assert_eq!(h.problems(), ["flow_log: cannot list"]);
    }
}
