//! One reconcile pass: manifests → cluster state → engine → ruleset → kernel.

use crate::metrics::Metrics;
use crate::policy_log::PolicyLogger;
use palisade_dataplane::{build_compiled, ApplyError, Audit, Ruleset};
use palisade_model::{DocumentCache, Loader, Severity};
use palisade_policy::{ClassRules, Engine};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a pass did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new ruleset is in the kernel.
    Applied {
        /// Objects rejected as invalid (the rest was applied).
        rejected: usize,
        /// Time from reading the manifests to the kernel holding the new rules.
        elapsed: Duration,
    },
    /// The ruleset did not change: nothing was sent to the kernel.
    Unchanged,
    /// The new ruleset could not be applied; the kernel keeps the previous one.
    Failed(String),
}

/// Keeps one network namespace's `inet palisade` table in step with a manifests folder.
pub struct Reconciler {
    manifests: PathBuf,
    netns: Option<String>,
    applied: Option<Ruleset>,
    /// The engine of the last pass and the rules of its classes, which the next pass compiles
    /// from ([`Engine::new_from`], [`Engine::compile_classes`]).
    compiled: Option<(Arc<Engine>, Vec<Arc<ClassRules>>)>,
    documents: DocumentCache,
    pinned: Vec<(String, IpAddr)>,
    logger: Option<Arc<Mutex<PolicyLogger>>>,
    metrics: Arc<Metrics>,
    audit: Audit,
}

impl Reconciler {
    /// A reconciler for `manifests`, enforcing in `netns` (or the current namespace).
    pub fn new(manifests: PathBuf, netns: Option<String>) -> Self {
        Reconciler {
            manifests,
            netns,
            applied: None,
            compiled: None,
            documents: DocumentCache::default(),
            pinned: Vec::new(),
            logger: None,
            metrics: Arc::new(Metrics::new()),
            audit: Audit::Annotated,
        }
    }

    /// Where audit mode applies (default: annotated namespaces only).
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// Gives these pods (by `ns/name`) these addresses when the manifests give none
    /// ([`Loader::pin_ips`]).
    pub fn with_pinned_ips(mut self, pinned: Vec<(String, IpAddr)>) -> Self {
        self.pinned = pinned;
        self
    }

    /// Records apply latency and failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Hands every engine whose ruleset the kernel holds (and its `NetworkLogging` configuration)
    /// to `logger`, which attributes verdict events with it.
    pub fn with_logger(mut self, logger: Arc<Mutex<PolicyLogger>>) -> Self {
        self.logger = Some(logger);
        self
    }

    fn publish(&self, engine: &Arc<Engine>) {
        if let Some(logger) = &self.logger {
            let mut logger = logger.lock().unwrap_or_else(|e| e.into_inner());
            logger.set_engine(engine.clone());
        }
    }

    /// Brings the kernel's table to `engine`'s (whose classes compiled to `rules`); false when it
    /// holds it already. Where `engine` was compiled from the last pass's, the applied ruleset is
    /// patched from the classes that changed; otherwise a new ruleset is built and only what
    /// differs is applied. The first time, and whenever an update is refused (say, the table was
    /// altered behind the agent's back), the whole table is replaced, atomically.
    fn enforce(&mut self, engine: &Engine, rules: &[Arc<ClassRules>]) -> Result<bool, ApplyError> {
        let netns = self.netns.as_deref();
        let patch = match (&self.applied, &self.compiled) {
            (Some(applied), Some((old, old_rules))) => {
                applied.patch((old, old_rules), (engine, rules), self.audit)
            }
            _ => None,
        };
        // What could not be applied as an update (and why), and the ruleset built, if any.
        let (refused, built) = match (patch, self.applied.as_mut()) {
            (Some(patch), Some(applied)) => {
                let changed = !patch.update().is_empty();
                match patch.update().apply(netns) {
                    Ok(()) => {
                        applied.absorb(patch);
                        return Ok(changed);
                    }
                    Err(e) => (Some(e), None),
                }
            }
            (_, Some(applied)) => {
                let ruleset = build_compiled(engine, rules, self.audit, Some(applied));
                if *applied == ruleset {
                    return Ok(false);
                }
                match ruleset.update_from(applied).apply(netns) {
                    Ok(()) => {
                        crate::drop_later(self.applied.replace(ruleset));
                        return Ok(true);
                    }
                    Err(e) => (Some(e), Some(ruleset)),
                }
            }
            (_, None) => (None, None),
        };
        if let Some(e) = refused {
            tracing::warn!("{e}; replacing the whole table instead");
        }
        let ruleset = built
            .unwrap_or_else(|| build_compiled(engine, rules, self.audit, self.applied.as_ref()));
        ruleset.apply(netns)?;
        crate::drop_later(self.applied.replace(ruleset));
        Ok(true)
    }

    /// Reads, compiles and applies. Invalid objects are logged and left out; an apply failure is
    /// logged as an error and the previous kernel state stays.
    pub fn reconcile(&mut self) -> Outcome {
        let started = Instant::now();
        let mut loader = Loader::new()
            .with_documents(std::mem::take(&mut self.documents))
            .pin_ips(self.pinned.iter().cloned());
        loader.load_path(&self.manifests);
        let (state, diagnostics, documents) = loader.finish_with_cache();
        self.documents = documents;
        let mut rejected = 0;
        for d in &diagnostics {
            match d.severity {
                Severity::Error => {
                    rejected += 1;
                    tracing::warn!("{d}");
                }
                Severity::Warning => tracing::warn!("{d}"),
                Severity::Info => tracing::debug!("{d}"),
            }
        }
        if rejected > 0 && state.pods.is_empty() && state.policies.is_empty() {
            let reason = format!(
                "{}: nothing could be read ({rejected} errors); keeping the previous ruleset",
                self.manifests.display()
            );
            tracing::error!("{reason}");
            self.metrics.apply_failures.inc();
            return Outcome::Failed(reason);
        }
        let state = Arc::new(state);
        let previous = self.compiled.as_ref();
        let engine = Arc::new(match previous {
            Some((engine, _)) => Engine::new_from(engine, state),
            None => Engine::new(state),
        });
        let rules = engine.compile_classes(previous.map(|(e, r)| (&**e, r.as_slice())));
        let result = self.enforce(&engine, &rules);
        crate::drop_later(self.compiled.replace((engine.clone(), rules)));
        match result {
            Ok(false) => {
                // Annotations and NetworkLogging do not change the ruleset but may change logging.
                self.publish(&engine);
                Outcome::Unchanged
            }
            Ok(true) => {
                let elapsed = started.elapsed();
                tracing::info!(
                    pods = engine.state().pods.len(),
                    policies = engine.state().policies.len(),
                    classes = engine.class_count(),
                    rejected,
                    elapsed_ms = elapsed.as_secs_f64() * 1e3,
                    "ruleset applied"
                );
                self.metrics.apply_seconds.observe(elapsed.as_secs_f64());
                self.publish(&engine);
                Outcome::Applied { rejected, elapsed }
            }
            Err(e) => {
                tracing::error!("{e}; the kernel keeps the previous ruleset");
                self.metrics.apply_failures.inc();
                Outcome::Failed(e.to_string())
            }
        }
    }
}
