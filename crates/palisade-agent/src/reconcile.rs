//! One reconcile pass: source (a manifests folder, or the API server's objects as watched) →
//! cluster state → engine → ruleset → kernel.

use crate::health::{Health, Part};
use crate::metrics::{Metrics, ReasonLabel, RejectionLabels};
use crate::policy_log::PolicyLogger;
use crate::state_file::StateFile;
use crate::status_out::StatusOut;
use crate::strict::{Judge, Strict};
use palisade_dataplane::drift::{TableInfo, TableProbe};
use palisade_dataplane::{build, ApplyError, Ruleset, TABLE};
use palisade_kube::{SourceHealth, Watch};
use palisade_model::{
    AgentStatus, ClusterState, DocumentCache, Limits, Load, Loader, PodKey, RejectReason, Severity,
    Symlinks, Tier,
};
use palisade_policy::{CompiledTable, Enforcement, Engine, Engines};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a rebooted node waits for the API server before it enforces its state file's objects
/// (unless a kind fails to list before that).
const RESTORE_AFTER: Duration = Duration::from_secs(10);

/// Diagnostics of one shape logged before the rest are only counted.
const SHOWN_PER_KIND: usize = 10;

/// How the manifests folder is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceOptions {
    /// Bounds on what the folder may make the agent read and build.
    pub limits: Limits,
    /// Which symlinks inside the folder are followed.
    pub symlinks: Symlinks,
    /// How long a removed or emptied file keeps its objects in force.
    pub removal_grace: Duration,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            limits: Limits::default(),
            symlinks: Symlinks::default(),
            removal_grace: Duration::from_secs(1),
        }
    }
}

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
    /// Nothing was read, nothing applied: the source has not given the whole cluster yet (the
    /// first list of every kind from the API server); the kernel keeps what it holds.
    Waiting(String),
}

/// Where a reconciler reads the objects to enforce.
pub enum Source {
    /// A manifests folder, read on every pass (unchanged files from the cache).
    Folder(PathBuf),
    /// An API server, followed by a watch: a pass loads the objects it holds.
    Cluster(Watch),
}

/// Keeps one network namespace's `inet palisade` table in step with a source.
pub struct Reconciler {
    input: Source,
    netns: Option<String>,
    applied: Option<Ruleset>,
    /// The engines of the last pass (the enforced one, and the one with the staged policies in
    /// force) and the enforced one's table, which the next pass compiles from
    /// ([`Engines::new_from`], [`Engine::compile_classes`]) and patches the kernel's from.
    compiled: Option<(Engines, CompiledTable)>,
    documents: DocumentCache,
    pinned: Vec<(PodKey, IpAddr)>,
    logger: Option<Arc<Mutex<PolicyLogger>>>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    enforcement: Enforcement,
    options: SourceOptions,
    /// When the next pass is due even if nothing changes (a removal's grace period ends).
    revisit: Option<Instant>,
    /// A digest of the last pass's diagnostics: the same findings are not logged again each pass.
    reported: u64,
    /// Why changes to the folder are not being seen, if they are not (set by the watch loop).
    unwatched: Option<String>,
    /// The API server's health as last reported (logged and counted when it changes).
    cluster_health: Option<SourceHealth>,
    /// The last warning that no pod is scheduled on this node (logged once, until it changes).
    stray_node: Option<String>,
    /// The last warning about a bridge that may carry pods unseen (logged once, until it changes).
    bridge_warning: Option<String>,
    /// The kernel's table may not be what was applied last (changed by someone else).
    kernel_unknown: bool,
    /// The table as the kernel described it after the last apply.
    kernel_table: Option<TableInfo>,
    /// Asks the kernel about the table (opened when first needed, again after an error).
    probe: Option<TableProbe>,
    /// Where the objects in force are written, for a restart to start from.
    state_file: Option<StateFile>,
    /// Where this agent says what it enforces, and what it says (the errors are added when it
    /// is published).
    lease: Option<(StatusOut, AgentStatus)>,
    /// When it was made: a restore waits [`RESTORE_AFTER`] for the API server.
    created: Instant,
    /// Whether a rebooted node may enforce the state file's objects while the API server does
    /// not answer ([`Reconciler::restoring_last_good`]).
    restore: bool,
    /// It did.
    restored: bool,
    /// Strict mode: established connections a new ruleset denies are cut.
    strict: Option<Strict>,
}

impl Reconciler {
    /// A reconciler for `manifests`, enforcing in `netns` (or the current namespace).
    pub fn new(manifests: PathBuf, netns: Option<String>) -> Self {
        Self::reading(Source::Folder(manifests), netns)
    }

    /// A reconciler for `input`, enforcing in `netns` (or the current namespace).
    pub fn reading(input: Source, netns: Option<String>) -> Self {
        Reconciler {
            input,
            netns,
            applied: None,
            compiled: None,
            documents: DocumentCache::default(),
            pinned: Vec::new(),
            logger: None,
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
            enforcement: Enforcement::default(),
            options: SourceOptions::default(),
            revisit: None,
            reported: 0,
            unwatched: None,
            cluster_health: None,
            stray_node: None,
            bridge_warning: None,
            kernel_unknown: false,
            kernel_table: None,
            probe: None,
            state_file: None,
            lease: None,
            created: Instant::now(),
            restore: false,
            restored: false,
            strict: None,
        }
    }

    /// After a reboot (the kernel holds no table), enforces the state file's objects while the API
    /// server does not answer, rather than nothing (the daemon; not `--once`, which applies the
    /// cluster or nothing).
    pub fn restoring_last_good(mut self) -> Self {
        self.restore = true;
        self
    }

    /// Cuts the established connections each new ruleset denies (`--strict`), rather than letting
    /// them run until they close.
    pub fn strict(mut self) -> Self {
        self.strict = Some(Strict::new(self.netns.clone()));
        self
    }

    /// Keeps this node's Lease, or status file (`palisade status` reads it), saying what is
    /// enforced here: the pods, the policies and the generation of each, when the kernel last
    /// took a ruleset, and what is degraded.
    pub(crate) fn with_status(mut self, keeper: StatusOut, node: &str) -> Self {
        let status = AgentStatus {
            node: node.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..AgentStatus::default()
        };
        self.lease = Some((keeper, status));
        self.publish_status();
        self
    }

    /// Hands the Lease keeper what this agent says now.
    fn publish_status(&self) {
        if let Some((keeper, status)) = &self.lease {
            let errors = self.health.problems();
            keeper.publish(AgentStatus {
                errors,
                ..status.clone()
            });
        }
    }

    /// Records in the status what `table` (compiled from `engine`), now in the kernel, enforces
    /// on this node: the pods, and the policies selecting them with their generations — apart,
    /// those of audited classes, which drop nothing. `changed`: the kernel took it just now.
    fn enforced(&mut self, engine: &Engine, table: &CompiledTable, changed: bool) {
        let Some((_, status)) = &mut self.lease else {
            return;
        };
        let state = engine.state();
        let mut classes = std::collections::BTreeSet::new();
        let mut pods = 0;
        for (id, pod) in state.pods.iter_enumerated() {
            if self.enforcement.enforces(pod) && pod.enforceable() {
                pods += 1;
                classes.insert(engine.class_of(id));
            }
        }
        let (mut applied, mut audited) = (BTreeMap::new(), BTreeMap::new());
        for class in classes {
            let audit = table.classes[class].audited;
            for policy in engine.policies_selecting(class) {
                let into = if audit { &mut audited } else { &mut applied };
                into.insert(policy.namespaced_name(), policy.generation());
            }
            for policy in engine.tier_policies_selecting(class) {
                // Audit mode never lifts an Admin policy's Deny: it is enforced there.
                let into = match (audit, policy.spec().tier) {
                    (true, Tier::Baseline) => &mut audited,
                    _ => &mut applied,
                };
                into.insert(policy.qualified_name(), policy.generation());
            }
        }
        if changed || status.last_applied.is_none() {
            let now = time::OffsetDateTime::now_utc();
            status.last_applied = (now.replace_nanosecond(0).ok()).and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        }
        status.pods = pods;
        status.set_policies(applied, audited);
    }

    /// Writes the objects in force to `path` after passes that applied them, and starts from the
    /// last good state written there by an earlier run (so that a file broken meanwhile keeps the
    /// versions that were in force). Call after [`Reconciler::with_source`]: its limits apply.
    pub fn with_state_file(mut self, path: PathBuf) -> Self {
        let state = StateFile::new(path, self.source_name());
        if let Some(cache) = state.read(self.options.limits) {
            self.documents = cache;
        }
        self.state_file = Some(state);
        self
    }

    /// The source as the state file names it: the folder's path, or the API server's URL.
    fn source_name(&self) -> String {
        match &self.input {
            Source::Folder(folder) => {
                let folder = std::fs::canonicalize(folder).unwrap_or(folder.clone());
                folder.display().to_string()
            }
            Source::Cluster(watch) => watch.server(),
        }
    }

    /// When the objects in force are due to be written to the state file.
    pub fn state_due(&self) -> Option<Instant> {
        self.state_file.as_ref()?.due()
    }

    /// Writes the objects in force to the state file if they are due ([`Reconciler::state_due`]),
    /// or now and waiting for it with `now`.
    pub fn write_state(&mut self, now: bool) {
        if let Some(state) = &mut self.state_file {
            if now {
                state.flush(&self.documents);
            } else {
                state.write_if_due(&self.documents);
            }
        }
    }

    /// Records whether changes to the folder are seen (`None`) or why not: part of the source's
    /// health.
    pub fn set_unwatched(&mut self, why: Option<String>) {
        self.unwatched = why;
    }

    /// Why changes to the folder are not seen, if they are not ([`Reconciler::set_unwatched`]).
    pub fn unwatched(&self) -> Option<&str> {
        self.unwatched.as_deref()
    }

    /// Reads the source with these options.
    pub fn with_source(mut self, options: SourceOptions) -> Self {
        self.options = options;
        self
    }

    /// The health this reconciler reports degraded states to (input rejected, folder unreadable,
    /// kernel behind).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The metrics this reconciler records (apply latency and failures, input, drift).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// When a pass is due even if the folder does not change: a removed or emptied file's grace
    /// period ends then.
    pub fn revisit(&self) -> Option<Instant> {
        self.revisit
    }

    /// The manifests folder, when that is the source.
    pub fn folder(&self) -> Option<&Path> {
        match &self.input {
            Source::Folder(folder) => Some(folder),
            Source::Cluster(_) => None,
        }
    }

    /// Calls `wake` whenever the API server's objects change (a folder's changes are watched by
    /// the loop itself).
    pub fn on_source_change(&self, wake: impl Fn() + Send + Sync + 'static) {
        if let Source::Cluster(watch) = &self.input {
            watch.on_change(wake);
        }
    }

    /// Whether the source has given the whole cluster: a folder always has; the API server once
    /// every kind has been listed.
    pub fn source_synced(&self) -> bool {
        match &self.input {
            Source::Folder(_) => true,
            Source::Cluster(watch) => watch.health().synced(),
        }
    }

    /// Reports the API server's health (readiness, `palisade_source_up`, the time of its last
    /// event) and logs what changed; nothing to do for a folder, which each pass reports on.
    pub fn check_source(&mut self) {
        let Source::Cluster(watch) = &self.input else {
            return;
        };
        let health = watch.health();
        let m = &self.metrics;
        let problem = health.problem();
        // Current as long as every kind is followed, events or not.
        if health.synced() && problem.is_none() {
            m.source_last_read
                .set(unix_seconds(std::time::SystemTime::now()));
        }
        if self.cluster_health.as_ref() == Some(&health) {
            return;
        }
        m.source_up.set(i64::from(problem.is_none()));
        if let Some(at) = health.last_event {
            m.source_last_event.set(unix_seconds(at));
        }
        let held: Vec<usize> =
            watch.with_store(|store| health.kinds.iter().map(|k| store.count(k.kind)).collect());
        for (k, held) in health.kinds.iter().zip(held) {
            let label = crate::metrics::KindLabel {
                kind: k.kind.as_str().to_string(),
            };
            m.source_objects.get_or_create(&label).set(held as i64);
            m.source_relists.get_or_create(&label).set(k.relists as i64);
        }
        self.cluster_health = Some(health);
        self.degraded(Part::Source, problem);
    }

    /// Whose pods are enforced and where audit mode applies (default: every pod; audit mode in
    /// annotated namespaces only).
    pub fn with_enforcement(mut self, enforcement: Enforcement) -> Self {
        self.enforcement = enforcement;
        self
    }

    /// Gives these pods (by `ns/name`) these addresses when the manifests give none
    /// ([`Loader::pin_ips`]).
    pub fn with_pinned_ips(mut self, pinned: Vec<(PodKey, IpAddr)>) -> Self {
        self.pinned = pinned;
        self
    }

    /// Hands every engine whose ruleset the kernel holds (and its `NetworkLogging` configuration)
    /// to `logger`, which attributes verdict events with it.
    pub fn with_logger(mut self, logger: Arc<Mutex<PolicyLogger>>) -> Self {
        self.logger = Some(logger);
        self
    }

    /// The last pass's ruleset is in the kernel — `changed`: it was just sent there —: the
    /// logger attributes with its engine, the status says what it enforces.
    fn publish(&mut self, changed: bool) {
        let Some((engines, table)) = self.compiled.take() else {
            return;
        };
        if let Some(logger) = &self.logger {
            let mut logger = logger.lock().unwrap_or_else(|e| e.into_inner());
            logger.set_engine(engines.clone());
        }
        self.enforced(&engines.enforced, &table, changed);
        self.compiled = Some((engines, table));
    }

    /// In strict mode, cuts the established connections the ruleset the kernel just took denies.
    fn cut_denied(&mut self) {
        let (Some(strict), Some((engines, table))) = (&mut self.strict, &self.compiled) else {
            return;
        };
        let judge = Judge {
            engine: &engines.enforced,
            table,
            enforcement: &self.enforcement,
        };
        strict.sweep(&judge, &self.metrics, self.logger.as_ref());
    }

    /// Brings the kernel's table to `table`; false when it holds it already. Where `table` was
    /// compiled from the last pass's, the applied ruleset is patched from the classes that changed;
    /// otherwise a new ruleset is built and only what differs is applied. The first time, and
    /// whenever an update is refused (say, the table was altered behind the agent's back), the
    /// whole table is replaced, atomically.
    fn enforce(&mut self, table: &CompiledTable) -> Result<bool, ApplyError> {
        let netns = self.netns.as_deref();
        // A table altered behind the agent's back is replaced whole: an update assumes the kernel
        // holds what was applied last.
        let applied = self.applied.as_mut().filter(|_| !self.kernel_unknown);
        let patch = match (&applied, &self.compiled) {
            (Some(applied), Some((_, old))) => applied.patch(old, table),
            _ => None,
        };
        // What could not be applied as an update (and why), and the ruleset built, if any.
        let (refused, built) = match (patch, applied) {
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
                let ruleset = build(table, Some(applied));
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
        let ruleset = built.unwrap_or_else(|| build(table, self.applied.as_ref()));
        ruleset.apply(netns)?;
        self.kernel_unknown = false;
        crate::drop_later(self.applied.replace(ruleset));
        Ok(true)
    }

    /// The kernel's table was changed by someone else (`what`; `reason` labels the
    /// `palisade_drift_repairs_total` count): the next pass, or [`Reconciler::repair`], replaces it
    /// whole.
    pub fn kernel_drifted(&mut self, what: &str, reason: &str) {
        tracing::warn!("{what}; the table is replaced whole");
        Metrics::inc(&self.metrics.drift_repairs, reason);
        self.kernel_unknown = true;
    }

    /// Whether the kernel still holds the table the last pass left (a cheap check: present, not
    /// replaced, as many chains and sets, not dormant); what differs when it does not.
    /// Notifications ([`palisade_dataplane::drift::DriftMonitor`]) see every change as it happens;
    /// this check sees what they cannot: a monitor that is down, or changes made while it was.
    pub fn check_kernel(&mut self) -> Option<String> {
        let expected = self.kernel_table?;
        let found = match self.table_info() {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("cannot read table inet {TABLE} to check it: {e}");
                return None;
            }
        };
        match found {
            None => Some(format!("table inet {TABLE} is missing")),
            Some(t) if t.dormant() => Some(format!("table inet {TABLE} is dormant")),
            Some(t) if t.handle != expected.handle => {
                Some(format!("table inet {TABLE} was replaced by another"))
            }
            Some(t) if t.use_count != expected.use_count => Some(format!(
                "table inet {TABLE} holds {} chains and sets, {} expected",
                t.use_count, expected.use_count
            )),
            Some(_) => None,
        }
    }

    /// Puts the last pass's ruleset back in the kernel, whole, after a drift; false when the
    /// kernel refused it (then the next pass tries again, whole).
    pub fn repair(&mut self) -> bool {
        let Some(applied) = self.applied.as_ref().filter(|_| self.kernel_unknown) else {
            return true;
        };
        match applied.apply(self.netns.as_deref()) {
            Ok(()) => {
                self.kernel_unknown = false;
                self.record_table();
                self.kernel_ok();
                true
            }
            Err(e) => {
                tracing::error!("{e}; the table could not be put back");
                self.metrics.apply_failures.inc();
                self.degraded(
                    Part::Kernel,
                    Some(format!(
                        "the table was altered and could not be put back: {e}"
                    )),
                );
                false
            }
        }
    }

    /// Whether this host lets the forward hook see pod traffic (pods on a Linux bridge need
    /// `br_netfilter`); a problem is logged, and readiness says it, until it is fixed. Only for
    /// the agent's own namespace: `--netns` enforces in a namespace whose links the agent's sysfs
    /// does not show.
    pub fn check_host(&mut self) {
        if self.netns.is_some() {
            return;
        }
        let found = crate::host::bridge_problem(Path::new("/sys"), Path::new("/proc"));
        let (pods, other) = match found {
            Some(p) if p.pods => (Some(p.message), None),
            Some(p) => (None, Some(format!("{} (if pods use it)", p.message))),
            None => (None, None),
        };
        warn_on_change(&mut self.bridge_warning, other);
        self.degraded(Part::Host, pods);
    }

    /// Records the table as the kernel describes it now, for [`Reconciler::check_kernel`].
    fn record_table(&mut self) {
        self.kernel_table = self.table_info().ok().flatten();
    }

    /// The table as the kernel describes it now.
    fn table_info(&mut self) -> std::io::Result<Option<TableInfo>> {
        let probe = match &mut self.probe {
            Some(probe) => probe,
            None => self.probe.insert(TableProbe::open(self.netns.as_deref())?),
        };
        let info = probe.table();
        if info.is_err() {
            self.probe = None;
        }
        info
    }

    /// Warns (once, until it changes) when this node is named and no pod is scheduled on it while
    /// pods are scheduled on others: a misspelt `--node-name` would otherwise enforce nothing
    /// without a word.
    fn check_node(&mut self, state: &ClusterState) {
        let Some(node) = &self.enforcement.node else {
            return;
        };
        let nodes = || (state.pods.iter()).filter_map(|p| p.node_name.as_deref());
        let here = nodes().any(|n| n == node);
        let mut others: Vec<&str> = if here { Vec::new() } else { nodes().collect() };
        let warning = (!others.is_empty()).then(|| {
            others.sort_unstable();
            others.dedup();
            let shown = others.iter().take(5).copied().collect::<Vec<_>>().join(", ");
            format!(
                "no pod is scheduled on node {node:?}, so none is enforced here; pods are on {} node(s) ({shown}{}): check --node-name",
                others.len(),
                if others.len() > 5 { ", ..." } else { "" }
            )
        });
        warn_on_change(&mut self.stray_node, warning);
    }

    /// The network namespace enforced in (`None`: the agent's own).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Reads, compiles and applies. Rejected input is logged (once, until it changes), counted and
    /// keeps its last good version in force; an apply failure is logged as an error and the
    /// previous kernel state stays.
    pub fn reconcile(&mut self) -> Outcome {
        let started = Instant::now();
        let mut unavailable = false;
        if let Source::Cluster(watch) = &self.input {
            let health = watch.health();
            if !health.synced() {
                self.check_source();
                let why = health.problem().unwrap_or_default();
                if !self.restore_last_good(&health) {
                    let meanwhile = if self.restored {
                        "; the state file's last good state is enforced meanwhile"
                    } else {
                        ""
                    };
                    return Outcome::Waiting(format!("nothing new applied: {why}{meanwhile}"));
                }
                unavailable = true;
            }
        }
        // A node's name, or an API server, means a real cluster: a pod without an address has
        // none yet.
        let allocate = self.enforcement.node.is_none() && matches!(self.input, Source::Folder(_));
        let mut loader = Loader::new()
            .with_documents(std::mem::take(&mut self.documents))
            .pin_ips(self.pinned.iter().cloned())
            .limits(self.options.limits)
            .symlinks(self.options.symlinks)
            .removal_grace(self.options.removal_grace)
            .allocate_addresses(allocate);
        let load = match &self.input {
            _ if unavailable => loader.source_unavailable().finish_with_cache(),
            Source::Folder(folder) => {
                loader.load_path(folder);
                loader.finish_with_cache()
            }
            Source::Cluster(watch) => watch.with_store(|store| loader.finish_with_store(store)),
        };
        let rejected = self.report_input(&load);
        let Load {
            state,
            cache,
            revisit,
            changed,
            patched,
            ..
        } = load;
        self.documents = cache;
        self.revisit = revisit;
        if rejected > 0 && state.pods.is_empty() && state.policies.is_empty() {
            let reason = format!(
                "{}: nothing could be read ({rejected} errors); keeping the previous ruleset",
                self.source_name()
            );
            tracing::error!("{reason}");
            self.metrics.apply_failures.inc();
            // A table altered meanwhile is still put back.
            self.repair();
            return Outcome::Failed(reason);
        }
        self.check_node(&state);
        let state = Arc::new(state);
        let previous = self.compiled.as_ref();
        let engines = Engines::new_from(previous.map(|(engines, _)| engines), state);
        let engine = engines.enforced.clone();
        let previous = previous.map(|(old, table)| (&*old.enforced, table));
        let table = CompiledTable::compile(&engine, previous, self.enforcement.clone());
        let table = engines.mark_staged(table);
        let result = self.enforce(&table);
        crate::drop_later(self.compiled.replace((engines, table)));
        if let (Ok(applied), Some(state)) = (&result, &mut self.state_file) {
            if *applied || changed {
                state.applied();
            }
        }
        match result {
            Ok(false) => {
                // Annotations and NetworkLogging do not change the ruleset but may change logging.
                self.publish(false);
                self.kernel_ok();
                Outcome::Unchanged
            }
            Ok(true) => {
                let elapsed = started.elapsed();
                tracing::info!(
                    pods = engine.state().pods.len(),
                    policies = engine.state().policies.len(),
                    classes = engine.class_count(),
                    rejected,
                    // How many objects changed, when the state was made from the last one (none
                    // said when it was built afresh).
                    objects_changed = patched,
                    elapsed_ms = elapsed.as_secs_f64() * 1e3,
                    "ruleset applied"
                );
                self.metrics.apply_seconds.observe(elapsed.as_secs_f64());
                self.publish(true);
                self.record_table();
                self.kernel_ok();
                self.cut_denied();
                Outcome::Applied { rejected, elapsed }
            }
            Err(e) => {
                tracing::error!("{e}; the kernel keeps the previous ruleset");
                self.metrics.apply_failures.inc();
                self.degraded(
                    Part::Kernel,
                    Some(format!("the last ruleset could not be applied: {e}")),
                );
                Outcome::Failed(e.to_string())
            }
        }
    }

    /// Whether to enforce the last good state from the state file while the API server has not
    /// given the cluster (`why`): only when this agent has applied nothing yet and the kernel
    /// holds no table — a reboot, or a table deleted — so that enforcement is not left open until
    /// the API server answers. A table the kernel still holds (a restart) is kept as it is.
    /// Not before the API server has had its chance: a required kind has failed to list, or
    /// [`RESTORE_AFTER`] has passed — a state days old may isolate a pod by an address now
    /// another's. Only where enabled ([`Reconciler::restoring_last_good`]: the daemon, not
    /// `--once`).
    fn restore_last_good(&mut self, health: &SourceHealth) -> bool {
        if !self.restore || self.applied.is_some() || !self.documents.holds_objects() {
            return false;
        }
        let failed = (health.kinds.iter()).any(|k| !k.synced && k.error.is_some());
        if !failed && self.created.elapsed() < RESTORE_AFTER {
            return false;
        }
        if !matches!(self.table_info(), Ok(None)) {
            return false;
        }
        let why = health.problem().unwrap_or_default();
        tracing::warn!(
            "{why}; the kernel holds no table (a reboot?): enforcing the last good state from the state file until then"
        );
        self.restored = true;
        true
    }

    /// The kernel holds this pass's ruleset.
    fn kernel_ok(&mut self) {
        self.health.applied();
        self.degraded(Part::Kernel, None);
        self.publish_status();
    }

    /// Records `part`'s problem (or its end) in health and the `degraded` gauge, and logs the change.
    fn degraded(&self, part: Part, problem: Option<String>) {
        let changed = self.health.set(part, problem.clone());
        self.metrics.degraded.set(i64::from(self.health.degraded()));
        if changed {
            match problem {
                Some(p) => tracing::error!(?part, "degraded: {p}"),
                None => tracing::info!(?part, "recovered"),
            }
            self.publish_status();
        }
    }

    /// What is wrong with reading `folder`, if anything: unreadable, or not watched.
    fn folder_problem(&self, folder: &Path, load: &Load) -> Option<String> {
        let unreadable = load
            .rejections
            .iter()
            .any(|r| r.reason == RejectReason::Unreadable && Path::new(&r.origin.file) == folder);
        if unreadable {
            Some(format!(
                "{} cannot be read; the last good state stays in force",
                folder.display()
            ))
        } else {
            self.unwatched.clone()
        }
    }

    /// Logs the load's diagnostics (unless they are the last pass's), sets the rejection and
    /// held-object gauges and the source's health; returns the number of rejections.
    fn report_input(&mut self, load: &Load) -> usize {
        let mut digest = std::hash::DefaultHasher::new();
        for d in &load.diagnostics {
            (d.severity as u8, &d.origin, &d.object, &d.field, &d.message).hash(&mut digest);
        }
        let digest = digest.finish();
        if digest != self.reported {
            self.reported = digest;
            for line in palisade_model::summarize(&load.diagnostics, SHOWN_PER_KIND) {
                match line.severity() {
                    Severity::Error => tracing::error!("{line}"),
                    Severity::Warning => tracing::warn!("{line}"),
                    Severity::Info => tracing::debug!("{line}"),
                }
            }
        }
        let m = &self.metrics;
        m.objects_rejected.clear();
        for r in &load.rejections {
            let labels = RejectionLabels {
                kind: r.kind().map_or("", |k| k.as_str()).to_string(),
                reason: r.reason.as_str().to_string(),
            };
            m.objects_rejected.get_or_create(&labels).inc();
        }
        m.objects_held.clear();
        for h in &load.held {
            let labels = ReasonLabel {
                reason: h.why.as_str().to_string(),
            };
            m.objects_held.get_or_create(&labels).inc();
        }
        match &self.input {
            Source::Folder(folder) => {
                let problem = self.folder_problem(folder, load);
                let now = std::time::SystemTime::now();
                if load.changed {
                    m.source_last_event.set(unix_seconds(now));
                }
                if problem.is_none() {
                    m.source_last_read.set(unix_seconds(now));
                }
                m.source_up.set(i64::from(problem.is_none()));
                self.degraded(Part::Source, problem);
            }
            Source::Cluster(_) => self.check_source(),
        }
        let rejected = load.rejections.len();
        let problem = (rejected > 0).then(|| {
            format!(
                "{rejected} rejected (files, documents or objects; see the log); {} objects held at their last good version",
                load.held.len()
            )
        });
        self.degraded(Part::Input, problem);
        rejected
    }
}

/// Logs `now` as a warning when it differs from `last` (a warning is said once, until it
/// changes), and keeps it.
fn warn_on_change(last: &mut Option<String>, now: Option<String>) {
    if now != *last {
        if let Some(warning) = &now {
            tracing::warn!("{warning}");
        }
        *last = now;
    }
}

/// `at` in seconds since the Unix epoch.
fn unix_seconds(at: std::time::SystemTime) -> f64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(nodes: &[Option<&str>]) -> ClusterState {
        let mut loader = Loader::new();
        let pods: String = (nodes.iter().enumerate())
            .map(|(i, node)| {
                let node = node.map_or(String::new(), |n| format!("nodeName: {n}, "));
                format!(
                    "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: x}}\n\
                     spec: {{{node}containers: [{{name: c, image: i}}]}}\n"
                )
            })
            .collect();
        loader.load_str("pods.yaml", &pods);
        loader.finish().0
    }

    /// A node name no pod is scheduled on, while pods are on other nodes, is warned about (once,
    /// until it changes); a node of its own, or pods scheduled nowhere, are not.
    #[test]
    fn a_node_name_no_pod_is_on_is_warned_about() {
        let mut reconciler = Reconciler::new("m".into(), None).with_enforcement(Enforcement {
            node: Some("n1".into()),
            ..Enforcement::default()
        });
        reconciler.check_node(&state(&[Some("n2"), Some("n3"), Some("n2"), None]));
        let warning = reconciler.stray_node.clone().expect("warned");
        assert!(warning.contains("on 2 node(s) (n2, n3)"), "{warning}");
        for fine in [vec![Some("n2"), Some("n1")], vec![None, None]] {
            reconciler.check_node(&state(&fine));
            assert_eq!(reconciler.stray_node, None, "{fine:?}");
        }
    }
}
