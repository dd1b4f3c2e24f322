//! Loading manifests from files, folders and standard input into a [`ClusterState`].

mod delta;

use delta::StoreMark;

pub(crate) use delta::LastLoad;

use crate::cache::{decode_all, plural, CachedFile, DocumentCache, ObjectPods, Source, Version};
use crate::diagnostic::{Diagnostic, Origin, Severity};
use crate::info::{node_info, pod_info, service_info};
use crate::key::{Kind, ObjectKey, PodKey};
use crate::logging::{LoggingConfig, LoggingObject};
use crate::objects::{labels_of, Accepted, DecodeLimits, Decoded, Loaded, Objects, Workload};
use crate::read::{self, Entry, ReadError, Stamp, Symlinks};
use crate::rejection::{Held, HeldReason, RejectReason, Rejection};
use crate::state::{ClusterState, NamespaceInfo, PodInfo, PolicyInfo, TierPolicyInfo};
use crate::store::ObjectStore;
use crate::{document, workload};
use foldhash::{HashMap, HashMapExt, HashSet};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The range pod IPs are allocated from when a manifest gives none.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";

/// Bounds on what input may make the loader read and build: hostile input gets an error, not the
/// host's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes read from one file (or standard input) at most.
    pub max_file_bytes: u64,
    /// Bytes of all the files of one load at most; the files past it are not read.
    pub max_total_bytes: u64,
    /// Pods one workload's template may stand for (its replicas or parallelism).
    pub max_workload_pods: usize,
    /// Pods in all; the objects whose pods would exceed it are left out.
    pub max_pods: usize,
}

impl Default for Limits {
    /// 128 MiB per file (a `kubectl get -A -o yaml` dump of 10,000 pods is about 60 MiB), 1 GiB in
    /// all; 10,000 pods per workload; 150,000 pods in all, the largest cluster Kubernetes supports.
    fn default() -> Self {
        Limits {
            max_file_bytes: 128 << 20,
            max_total_bytes: 1 << 30,
            max_workload_pods: 10_000,
            max_pods: 150_000,
        }
    }
}

impl Limits {
    /// What these limits allow one document to make the loader build.
    pub(crate) fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_workload_pods: self.max_workload_pods,
        }
    }
}

/// What a load gives besides the state: every finding, the same as data, and what the next load
/// starts from.
pub struct Load {
    /// The snapshot.
    pub state: ClusterState,
    /// Every diagnostic, in reading order.
    pub diagnostics: Vec<Diagnostic>,
    /// What was rejected.
    pub rejections: Vec<Rejection>,
    /// Objects in force at their last good version.
    pub held: Vec<Held>,
    /// When a removed or emptied file's grace period ends: a load then makes the removal take
    /// effect, even if nothing else changes.
    pub revisit: Option<Instant>,
    /// Some file was read anew (it changed, or is new), removed, or could not be read: what the
    /// load gives may differ from the last load's.
    pub changed: bool,
    /// Files and API objects this load looked at: every file of a folder; of a store loaded
    /// before, only the objects changed since ([`Loader::incremental`]).
    pub examined: usize,
    /// When the state was made from the last load's (the objects changed since put in place),
    /// how many objects changed; `None` when it was built afresh.
    pub patched: Option<usize>,
    /// The cache for the next load ([`Loader::with_documents`]).
    pub cache: DocumentCache,
}

/// Reads manifests and builds a [`ClusterState`]. Problems are collected as diagnostics; a rejected
/// object never stops the others from loading. Loading from the cache of an earlier load keeps the
/// last good version of what no longer reads (see [`Loader::with_documents`]).
pub struct Loader {
    objects: Objects,
    diagnostics: Vec<Diagnostic>,
    pod_cidr: IpNet,
    /// Files parsed by earlier loads, taken from as files are read again.
    documents: DocumentCache,
    /// Files read by this load.
    visited: DocumentCache,
    /// Addresses to give pods without `status.podIP`, by `ns/name`, before allocating.
    pinned: HashMap<PodKey, IpAddr>,
    /// Pods without `status.podIP` are given one (pinned, else from `pod_cidr`).
    allocate: bool,
    limits: Limits,
    symlinks: Symlinks,
    removal_grace: Duration,
    now: Instant,
    /// Files and folders that could not be read: what was read from them before stays.
    unreadable: Vec<PathBuf>,
    /// Rejections found by the loader itself (files, addresses, limits).
    rejections: Vec<Rejection>,
    held: Vec<Held>,
    revisit: Option<Instant>,
    changed: bool,
    /// Folders loaded.
    roots: Vec<PathBuf>,
    /// An API server's objects were loaded ([`Loader::load_store`]): deletions take effect at once.
    from_store: bool,
    /// The source cannot be read at all ([`Loader::source_unavailable`]): everything stays.
    unavailable: bool,
    /// Kinds the store could not list ([`ObjectStore::mark_unknown`]): their objects stay.
    unknown: Vec<Kind>,
    /// Manifest files listed (read, or taken from the cache), and their bytes.
    listed: usize,
    total_bytes: u64,
    /// The objects in force after the last load: first in line for the pod limit.
    previous: Objects,
    /// A load of the store the last load read may apply only what changed since
    /// ([`Loader::incremental`]).
    incremental: bool,
    /// The store loaded and its revision, while nothing else is loaded: what the next load of it
    /// starts from.
    store_at: Option<(u64, u64)>,
    /// The store's objects whose decoding said something.
    noisy: BTreeSet<ObjectKey>,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// A loader with the default pod CIDR and limits that rejects duplicate objects.
    pub fn new() -> Self {
        Loader {
            objects: Objects::default(),
            diagnostics: Vec::new(),
            pod_cidr: DEFAULT_POD_CIDR.parse().expect("valid constant"),
            documents: DocumentCache::default(),
            visited: DocumentCache::default(),
            pinned: HashMap::new(),
            allocate: true,
            limits: Limits::default(),
            symlinks: Symlinks::default(),
            removal_grace: Duration::ZERO,
            now: Instant::now(),
            unreadable: Vec::new(),
            rejections: Vec::new(),
            held: Vec::new(),
            revisit: None,
            changed: false,
            roots: Vec::new(),
            from_store: false,
            unavailable: false,
            unknown: Vec::new(),
            listed: 0,
            total_bytes: 0,
            previous: Objects::default(),
            incremental: true,
            store_at: None,
            noisy: BTreeSet::new(),
        }
    }

    /// Gives these pods (by `ns/name`) these addresses when they have no `status.podIP`, instead of
    /// allocating: a running lab pins the addresses its pods were created with, so that pods added
    /// to the manifests later cannot move them.
    pub fn pin_ips(mut self, pinned: impl IntoIterator<Item = (PodKey, IpAddr)>) -> Self {
        self.pinned = pinned.into_iter().collect();
        self
    }

    /// Whether pods without `status.podIP` are given an address (default: yes — manifests
    /// written by hand and the lab's pods have none). Not for a real cluster's pods: there, a pod
    /// without an IP has none yet, and an invented one could be another pod's.
    pub fn allocate_addresses(mut self, allocate: bool) -> Self {
        self.allocate = allocate;
        self
    }

    /// Starts from an earlier load ([`Load::cache`]): unchanged files are not read again, and what
    /// no longer reads keeps its last good version in force —
    /// - a file or folder that cannot be read (missing, unreadable, refused) keeps what was read
    ///   from it;
    /// - a file with a document that cannot be parsed keeps the objects of its last good version
    ///   that the rest of the file does not define;
    /// - a rejected object keeps its last good version;
    /// - a file removed or emptied keeps its objects for the [removal grace](Self::removal_grace).
    pub fn with_documents(mut self, cache: DocumentCache) -> Self {
        self.documents = cache;
        self
    }

    /// How long a file removed from a folder, or emptied, keeps its objects in force (default:
    /// none): a file rewritten in place (truncated, then written) must not lift its policies while
    /// it is empty.
    pub fn removal_grace(mut self, grace: Duration) -> Self {
        self.removal_grace = grace;
        self
    }

    /// Sets the limits on what input may make the loader read and build.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Which symlinks inside a folder are followed (default: those leading inside it).
    pub fn symlinks(mut self, symlinks: Symlinks) -> Self {
        self.symlinks = symlinks;
        self
    }

    /// Later definitions of an object (same kind, namespace and name) replace earlier ones, as
    /// `kubectl apply` of a second file would, instead of being rejected.
    pub fn replace_duplicates(mut self, replace: bool) -> Self {
        self.objects.replace_duplicates = replace;
        self
    }

    /// Sets the range allocated pod IPs come from.
    pub fn pod_cidr(mut self, cidr: IpNet) -> Self {
        self.pod_cidr = cidr;
        self
    }

    /// Whether a load may make its state from the last load's and the objects changed since
    /// (default: yes): a folder's objects compared with the last load's, a store's changes taken
    /// from its journal ([`Loader::finish_with_store`]). Off, the state is built from every object:
    /// the same result, as the tests compare.
    pub fn incremental(mut self, incremental: bool) -> Self {
        self.incremental = incremental;
        self
    }

    /// Says the source cannot be read at all (the API server has not given the cluster yet):
    /// every object of the cache this load starts from stays in force, held as unreadable. What a
    /// restart with the kernel's table gone (a reboot) enforces until the source is back.
    pub fn source_unavailable(mut self) -> Self {
        self.unavailable = true;
        self
    }

    /// Loads a file or a folder (recursively: `*.yaml`, `*.yml`, `*.json`, in name order; hidden
    /// entries and symlinked sub-folders skipped; inside a folder, regular files only, and symlinks
    /// only as [`Loader::symlinks`] allows). A file named directly may be a pipe. (Standard input is
    /// the caller's to read: give its text to [`Loader::load_str`].)
    pub fn load_path(&mut self, path: &Path) {
        self.store_at = None;
        match std::fs::metadata(path) {
            Err(e) => self.refused(path, ReadError::Io(e)),
            Ok(meta) if meta.is_dir() => {
                let root = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                self.roots.push(path.to_path_buf());
                self.load_dir(path, &root);
            }
            Ok(meta) if meta.is_file() => {
                let read_at = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                self.load_file(path, &read_at, read::stamp(&meta));
            }
            Ok(_) => match read::named(path, self.limits.max_file_bytes) {
                Ok(bytes) => {
                    let display = path.display().to_string();
                    match document::decode_utf8(&display, &bytes) {
                        Ok(text) => self.load_str(&display, text),
                        Err(d) => self.unusable(path, d, RejectReason::Syntax),
                    }
                }
                Err(e) => self.refused(path, e),
            },
        }
    }

    fn load_dir(&mut self, dir: &Path, root: &Path) {
        let entries = match read::list(dir, root, self.symlinks) {
            Ok(entries) => entries,
            Err(e) => return self.refused(dir, ReadError::Io(e)),
        };
        for entry in entries {
            match entry {
                Entry::Folder(path) => self.load_dir(&path, root),
                Entry::File {
                    path,
                    read_at,
                    stamp,
                } => self.load_file(&path, &read_at, stamp),
                Entry::Refused(path, e) => self.refused(&path, e),
            }
        }
    }

    /// Reports a file or folder that cannot be read; what was read from it before stays.
    fn refused(&mut self, path: &Path, e: ReadError) {
        let (diagnostic, reason) = read_failure(path, &e);
        self.unusable(path, diagnostic, reason);
    }

    /// Reports a file or folder that cannot be used, as `diagnostic` says; what was read from it
    /// before stays.
    fn unusable(&mut self, path: &Path, diagnostic: Diagnostic, reason: RejectReason) {
        self.changed = true;
        self.rejections.push(Rejection {
            object: None,
            origin: diagnostic.origin.clone(),
            reason,
            kept: None,
        });
        self.diagnostics.push(diagnostic);
        self.unreadable.push(path.to_path_buf());
    }

    /// Says that the source holds objects of `kind` (`api_version`), a network policy kind Palisade
    /// does not enforce, at `origin` (a list's URL): the warning a manifest of that kind gets. With
    /// `maybe`, the source serves the kind but would not say whether it holds any.
    pub fn note_unenforced(&mut self, api_version: &str, kind: &str, origin: &str, maybe: bool) {
        let holds = match maybe {
            true => {
                "the cluster serves this kind (whether it holds any could not be read: 403); it"
            }
            false => "this kind",
        };
        let message = format!(
            "skipped {api_version} {kind}: {holds} {}",
            crate::UNENFORCED
        );
        let origin = Origin {
            file: origin.to_string(),
            line: None,
        };
        self.diagnostics.push(Diagnostic {
            field: Some("kind".into()),
            ..Diagnostic::new(Severity::Warning, origin, message)
        });
    }

    /// Loads manifest text; `file` names it in diagnostics.
    pub fn load_str(&mut self, file: &str, text: &str) {
        self.store_at = None;
        let mut diagnostics = Vec::new();
        let documents = document::parse(file, text, &mut diagnostics);
        let decoded = decode_all(&documents, self.limits.decode_limits());
        self.add_parsed(&diagnostics, &decoded);
    }

    /// Adds what parsing a file gave: its diagnostics (errors counted as rejections), then its
    /// decoded objects.
    fn add_parsed<'a>(
        &mut self,
        diagnostics: &[Diagnostic],
        decoded: impl IntoIterator<Item = &'a Decoded>,
    ) {
        for d in diagnostics.iter().filter(|d| d.is_error()) {
            self.rejections.push(Rejection {
                object: None,
                origin: d.origin.clone(),
                reason: RejectReason::Syntax,
                kept: None,
            });
        }
        self.diagnostics.extend(diagnostics.iter().cloned());
        for d in decoded {
            self.objects.add(d, &mut self.diagnostics);
        }
    }

    /// Loads the file listed at `path` (read at `read_at`) through the document cache: read and
    /// decoded again only when it changed.
    fn load_file(&mut self, path: &Path, read_at: &Path, stamp: Stamp) {
        self.listed += 1;
        self.total_bytes += stamp.length();
        if self.total_bytes > self.limits.max_total_bytes {
            let e = ReadError::TooLarge {
                limit: self.limits.max_total_bytes,
                all: true,
            };
            return self.refused(path, e);
        }
        let file = match self.documents.files.remove(path) {
            Some(file) if file.version == Version::File(stamp) => file,
            earlier => {
                self.changed = true;
                let display = path.display().to_string();
                let text = match read::listed(read_at, stamp, self.limits.max_file_bytes) {
                    Ok((bytes, stamp)) => document::decode_utf8(&display, &bytes)
                        .map(|text| (text.to_owned(), stamp))
                        .map_err(|d| (d, RejectReason::Syntax)),
                    Err(e) => Err(read_failure(path, &e)),
                };
                match text {
                    Ok((text, stamp)) => {
                        let limits = self.limits.decode_limits();
                        CachedFile::parse(&display, stamp, &text, earlier, limits)
                    }
                    Err((diagnostic, reason)) => return self.unusable(path, diagnostic, reason),
                }
            }
        };
        self.add_parsed(&file.diagnostics, file.decoded());
        self.visited.files.insert(path.to_path_buf(), file);
    }

    /// Loads the objects of `store` (a watched API server), each as one document named by its
    /// URL: an object whose resource version is the one the last load read is taken from the
    /// cache, not decoded again. An object gone from the store is gone at once (no removal grace:
    /// the API server says it was deleted); a rejected one keeps its last good version.
    pub fn load_store(&mut self, store: &ObjectStore) {
        let limits = self.limits.decode_limits();
        self.unknown = (Kind::ALL.into_iter())
            .filter(|&k| store.unknown(k))
            .collect();
        self.store_at = self.nothing_loaded().then(|| store.revision());
        self.from_store = true;
        for (key, stored) in store.objects() {
            self.listed += 1;
            let (key, file) = match self.documents.api.remove_entry(key) {
                Some((key, file)) if matches!(&file.version, Version::Resource(v) if *v == stored.version) => {
                    (key, file)
                }
                _ => {
                    self.changed = true;
                    let (version, value) = (stored.version.clone(), stored.value.clone());
                    let file = CachedFile::object(&store.url(key), version, value, limits);
                    (key.clone(), file)
                }
            };
            match delta::single(&file) {
                // The next load can take this object alone only if it is one object of its key.
                Some(d) if d.accepted().is_none_or(|a| a.key == key) => {
                    if !d.is_quiet() {
                        self.noisy.insert(key.clone());
                    }
                }
                _ => self.store_at = None,
            }
            self.add_parsed(&file.diagnostics, file.decoded());
            self.visited.api.insert(key, file);
        }
    }

    /// The objects in force after the last load that this one did not give (fresh objects always
    /// win) stay in force at their last good version when what became of them is unclear:
    /// - rejected, under the same key;
    /// - their file (or a folder above it) cannot be read, or the folder holds no manifest at all
    ///   (an unmounted volume shows an empty folder);
    /// - their file has a rejected part: a syntax error, a document that is not an object, an
    ///   object rejected under another key (a misspelt name or namespace) — which objects that
    ///   part defined is unknown;
    /// - their file was removed or emptied, for the removal grace (it may be being rewritten).
    ///
    /// Otherwise (their file reads cleanly and no longer defines them) they are gone.
    fn hold_last_good(&mut self) {
        let previous = std::mem::take(&mut self.documents.objects);
        // Files held as removed by the last load, and since when: their removal taking effect is
        // worth a warning.
        let gone = std::mem::take(&mut self.documents.gone);
        let mut still_gone: HashMap<PathBuf, Instant> = HashMap::new();
        // Files of the last load not seen in this one: removed, or under what cannot be read.
        self.changed |= !self.documents.files.is_empty() || !self.documents.api.is_empty();
        let rejections = self.objects.rejections.iter().chain(&self.rejections);
        let mut dirty: HashSet<PathBuf> = HashSet::default();
        let mut rejected: HashSet<ObjectKey> = HashSet::default();
        for r in rejections {
            if matches!(
                r.reason,
                RejectReason::Decode | RejectReason::Invalid | RejectReason::Syntax
            ) {
                dirty.insert(PathBuf::from(&r.origin.file));
                rejected.extend(r.object.clone());
            }
        }
        // Only a folder can hold no manifest (an API server's empty kinds are real).
        let no_manifest = !self.roots.is_empty()
            && self.listed == 0
            && !previous.is_empty()
            && self.unreadable.is_empty();
        if no_manifest {
            self.folder_without_manifests();
        }
        // The objects held, and those whose removal takes effect now.
        let mut held: Vec<(Arc<Accepted>, HeldReason)> = Vec::new();
        let mut removed: Vec<(ObjectKey, Origin)> = Vec::new();
        for accepted in previous.all() {
            let (key, origin) = (&accepted.key, &accepted.origin);
            if self.objects.contains(key) {
                continue;
            }
            let file = Path::new(&origin.file);
            // Its source holds nothing now: the file is gone or blank, the API object deleted.
            let emptied = if self.from_store {
                !self.visited.api.contains_key(key)
            } else {
                (self.visited.files.get(file)).is_none_or(CachedFile::is_blank)
            };
            let why = if rejected.contains(key) {
                // NetworkLogging keeps its last good switches in the agent, which must see it
                // rejected (GKE's InvalidNetworkLogging event).
                (key.kind() != Kind::NetworkLogging).then_some(HeldReason::Rejected)
            } else if no_manifest
                || self.unavailable
                || self.unknown.contains(&key.kind())
                || self.unreadable.iter().any(|u| file.starts_with(u))
            {
                Some(HeldReason::Unreadable)
            } else if dirty.contains(file) {
                Some(HeldReason::Rejected)
            } else if emptied {
                let since = gone.get(file).copied().unwrap_or(self.now);
                let grace = if self.from_store {
                    Duration::ZERO
                } else {
                    self.removal_grace
                };
                let ends = since + grace;
                (self.now < ends).then(|| {
                    self.revisit = Some(self.revisit.map_or(ends, |r| r.min(ends)));
                    still_gone.insert(file.to_path_buf(), since);
                    HeldReason::Removed
                })
            } else {
                None
            };
            match why {
                Some(why) => held.push((accepted.clone(), why)),
                None if gone.contains_key(file) => removed.push((key.clone(), origin.clone())),
                None => {}
            }
        }
        for (key, origin) in removed {
            self.removed(&key, &origin);
        }
        self.visited.gone = still_gone;
        self.previous = previous;
        self.hold(held);
    }

    /// Adds `held` objects to this load, reports them (the rejections they stand in for, one
    /// warning per file and why) and lists them in [`Load::held`].
    fn hold(&mut self, held: Vec<(Arc<Accepted>, HeldReason)>) {
        // The names held per file and reason, in the order the groups first appear.
        let mut by_file: Vec<((&str, HeldReason), Vec<String>)> = Vec::new();
        let mut group_of: HashMap<(&str, HeldReason), usize> = HashMap::new();
        for (accepted, why) in &held {
            let (key, origin, why) = (&accepted.key, &accepted.origin, *why);
            if why == HeldReason::Rejected {
                for r in self.objects.rejections.iter_mut() {
                    if r.object.as_ref() == Some(key) {
                        r.kept = Some(origin.clone());
                    }
                }
            }
            let group = (origin.file.as_str(), why);
            let at = *group_of.entry(group).or_insert_with(|| {
                by_file.push((group, Vec::new()));
                by_file.len() - 1
            });
            by_file[at].1.push(format!("{key} ({origin})"));
            self.objects.add_object(accepted, &mut self.diagnostics);
            self.held.push(Held {
                object: key.clone(),
                origin: origin.clone(),
                why,
            });
        }
        for ((file, why), names) in by_file {
            let what = match why {
                HeldReason::Rejected => "part of it was rejected",
                HeldReason::Unreadable => "it cannot be read",
                HeldReason::Removed => "it was removed or emptied, maybe to be written again",
            };
            let until = match why {
                HeldReason::Removed => format!(
                    "for {} ms more (write files elsewhere and rename them into the folder to replace them at once)",
                    self.removal_grace.as_millis()
                ),
                _ => "until it is fixed".into(),
            };
            self.diagnostics.push(Diagnostic::new(
                Severity::Warning,
                Origin {
                    file: file.to_string(),
                    line: None,
                },
                format!(
                    "{what}: the last good version of {} {} in force {until}: {}",
                    plural(names.len(), "object"),
                    if names.len() == 1 { "stays" } else { "stay" },
                    names.join(", ")
                ),
            ));
        }
    }

    /// Reports an object whose removal took effect (its file's grace period is over).
    fn removed(&mut self, key: &ObjectKey, origin: &Origin) {
        self.diagnostics.push(Diagnostic {
            object: Some(key.to_string()),
            ..Diagnostic::new(
                Severity::Warning,
                origin.clone(),
                "removed: its file was removed or emptied and stayed so; no longer in force",
            )
        });
    }

    /// Reports a folder that holds no manifest while objects were in force: probably a volume not
    /// (yet) mounted; a folder meant to enforce nothing keeps an empty `.yaml` file.
    fn folder_without_manifests(&mut self) {
        let folder = self.roots.first().cloned().unwrap_or_default();
        let diagnostic = Diagnostic::new(
            Severity::Error,
            Origin {
                file: folder.display().to_string(),
                line: None,
            },
            "holds no manifest file: the last good state stays in force (to enforce nothing, leave an empty .yaml file in it)",
        );
        self.unusable(&folder, diagnostic, RejectReason::Unreadable);
    }

    /// Expands workload templates, allocates missing pod IPs and returns the snapshot and every
    /// diagnostic collected.
    pub fn finish(self) -> (ClusterState, Vec<Diagnostic>) {
        let load = self.finish_with_cache();
        (load.state, load.diagnostics)
    }

    /// [`Loader::finish`], with the findings as data and the cache for the next load
    /// ([`Loader::with_documents`]): the files read by this one, the pods made from their objects,
    /// and every object in force.
    pub fn finish_with_cache(mut self) -> Load {
        self.hold_last_good();
        let (state, patched) = match self.state_from_changes() {
            Some((state, changes)) => (state, Some(changes)),
            None => (self.state(), None),
        };
        let mut rejections = std::mem::take(&mut self.visited.objects.rejections);
        rejections.append(&mut self.rejections);
        self.remember(&state, &rejections);
        Load {
            state,
            diagnostics: self.diagnostics,
            rejections,
            held: self.held,
            revisit: self.revisit,
            changed: self.changed,
            examined: self.listed,
            patched,
            cache: self.visited,
        }
    }

    /// Loads `store` and finishes, as [`Loader::load_store`] then [`Loader::finish_with_cache`]
    /// would; when the load the cache comes from read this same store, and nothing else is
    /// loaded, only the objects its journal says changed since are decoded and put in place in
    /// that load's state ([`Loader::incremental`]).
    pub fn finish_with_store(mut self, store: &ObjectStore) -> Load {
        match self.load_changes(store) {
            Some(load) => load,
            None => {
                self.load_store(store);
                self.finish_with_cache()
            }
        }
    }

    /// True while nothing has been loaded.
    fn nothing_loaded(&self) -> bool {
        self.objects.is_empty() && self.diagnostics.is_empty() && self.roots.is_empty()
    }

    /// Keeps what this load made for the next load to start from, unless it decided something
    /// for many pods at once (two pods with one address, the pod limit), which only a full load
    /// decides again. For a store's next load to take only its journal's changes, also what its
    /// objects said — unless a kind was unknown, or the source unavailable.
    fn remember(&mut self, state: &ClusterState, rejections: &[Rejection]) {
        let whole = |r: &Rejection| matches!(r.reason, RejectReason::Address | RejectReason::Limit);
        if rejections.iter().any(whole) {
            return;
        }
        let clean = !self.unavailable
            && self.unknown.is_empty()
            && self.held.iter().all(|h| h.why == HeldReason::Rejected);
        let store = (self.store_at.filter(|_| clean)).map(|at| StoreMark {
            at,
            noisy: std::mem::take(&mut self.noisy),
            held: self.held.iter().map(|h| h.object.clone()).collect(),
        });
        self.visited.last_load = Some(LastLoad {
            state: state.clone(),
            allocation: self.allocation(&self.visited.objects),
            store,
        });
    }

    fn state(&mut self) -> ClusterState {
        let objects = std::mem::take(&mut self.objects);
        let pods = self.pods(&objects);
        let services = objects.services.iter().map(service_info).collect();
        let policies = (objects.policies.iter())
            .map(|p| PolicyInfo::new(p.object.clone(), p.origin().clone()))
            .collect();
        let nodes = objects.nodes.iter().map(node_info).collect();
        let tier_policies = (objects.tier_policies.iter())
            .map(|p| TierPolicyInfo::new(p.object.clone(), p.origin().clone()))
            .collect();
        let mut state = ClusterState::new(namespaces(&objects), pods, services, policies)
            .with_nodes(nodes)
            .with_tier_policies(tier_policies);
        let invalid = objects.invalid_network_logging.clone();
        state.network_logging = logging_config(&objects, invalid);
        self.visited.objects = objects;
        state
    }

    /// The pods of `objects` (Pods, and the pods podless workloads' templates stand for), taken
    /// from the last load where their object is the same, each name once, addresses unique and
    /// allocated; every object's pods cached for the next load.
    fn pods(&mut self, objects: &Objects) -> Vec<Arc<PodInfo>> {
        let mut previous = std::mem::take(&mut self.documents.pods);
        // Every object's pods, with the object each pod came from.
        let mut pods: Vec<Arc<PodInfo>> = Vec::new();
        let mut made_by: Vec<usize> = Vec::new();
        let mut sources: Vec<Source> = Vec::new();
        let candidates: Vec<Maker> = (objects.pods.iter().map(Maker::Pod))
            .chain(
                workload::podless(&objects.workloads, &objects.pods)
                    .into_iter()
                    .map(Maker::Workload),
            )
            .collect();
        let admitted = self.admit(&candidates);
        for (maker, _) in candidates.iter().zip(&admitted).filter(|(_, a)| **a) {
            let source = maker.source();
            let list = match previous.remove(&source.address()) {
                Some(cached) => cached.pods,
                None => maker.make().into_iter().map(Arc::new).collect(),
            };
            made_by.extend(std::iter::repeat_n(sources.len(), list.len()));
            sources.push(source);
            pods.extend(list);
        }
        // The first pod of a name wins: a template pod never replaces a Pod object, nor another
        // template pod.
        let mut taken: HashSet<(&str, &str)> = HashSet::default();
        let mut kept: Vec<bool> = pods
            .iter()
            .map(|p| taken.insert((&p.namespace, &p.name)))
            .collect();
        drop(taken);
        self.reject_duplicate_ips(&pods, &mut kept);
        if self.allocate {
            self.allocate_ips(&mut pods, &kept);
        }
        // Left-out pods are cached too (unallocated): an object's pods are all or nothing.
        for (pod, &source) in pods.iter().zip(&made_by) {
            let source = &sources[source];
            let entry = self.visited.pods.entry(source.address());
            entry
                .or_insert_with(|| ObjectPods {
                    object: source.clone(),
                    pods: Vec::new(),
                })
                .pods
                .push(pod.clone());
        }
        (pods.into_iter().zip(kept))
            .filter_map(|(pod, kept)| kept.then_some(pod))
            .collect()
    }

    /// Which objects may make their pods: all, unless their pods would exceed the limit in all;
    /// then the objects in force before come first (a new object never pushes them out), and the
    /// others are reported, left out before a pod of theirs is made.
    fn admit(&mut self, candidates: &[Maker]) -> Vec<bool> {
        let max = self.limits.max_pods;
        let total: usize = candidates.iter().map(Maker::count).sum();
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        if total > max {
            order.sort_by_key(|&i| !self.previous.contains(candidates[i].key()));
        }
        let mut admitted = vec![false; candidates.len()];
        let mut used = 0;
        for i in order {
            let (maker, count) = (&candidates[i], candidates[i].count());
            if used + count <= max {
                used += count;
                admitted[i] = true;
                continue;
            }
            self.diagnostics.push(Diagnostic {
                object: Some(maker.key().to_string()),
                ..Diagnostic::new(
                    Severity::Error,
                    maker.origin().clone(),
                    format!(
                        "left out: its {} would exceed the limit of {max} pods in all (--max-pods)",
                        plural(count, "pod"),
                    ),
                )
            });
            self.rejections.push(Rejection {
                object: Some(maker.key().clone()),
                origin: maker.origin().clone(),
                reason: RejectReason::Limit,
                kept: None,
            });
        }
        admitted
    }

    /// Two pods cannot have one address (`status.podIP`): the later one is reported and left out, so
    /// that what is enforced for that address is never a silent pick.
    fn reject_duplicate_ips(&mut self, pods: &[Arc<PodInfo>], kept: &mut [bool]) {
        let mut owner: HashMap<IpAddr, (PodKey, Origin)> = HashMap::new();
        for (pod, kept) in pods.iter().zip(kept) {
            let given = pod.ip.filter(|_| !pod.host_network && !pod.ip_allocated);
            let Some(ip) = given.filter(|_| *kept) else {
                continue;
            };
            match owner.get(&ip) {
                None => {
                    owner.insert(ip, (pod.key(), pod.origin.clone()));
                }
                Some((first, origin)) => {
                    *kept = false;
                    self.rejections.push(Rejection {
                        object: Some(pod_key(pod)),
                        origin: pod.origin.clone(),
                        reason: RejectReason::Address,
                        kept: None,
                    });
                    self.diagnostics.push(Diagnostic {
                        object: Some(pod_key(pod).to_string()),
                        field: Some("status.podIP".into()),
                        ..Diagnostic::new(
                            Severity::Error,
                            pod.origin.clone(),
                            format!(
                                "{ip} is already the address of pod {first} ({origin}); pod addresses are unique, so this pod is left out"
                            ),
                        )
                    });
                }
            }
        }
    }

    /// Gives every kept pod without an address of its own (`status.podIP`) one: its pinned address
    /// if free, else one from the pod CIDR, picked by hashing its name and probing. Pods carrying
    /// an address allocated by an earlier load get it again (the same object, shared) when the
    /// allocation gives the same.
    fn allocate_ips(&mut self, pods: &mut [Arc<PodInfo>], kept: &[bool]) {
        let given = |p: &PodInfo| p.ip.filter(|_| !p.ip_allocated);
        let mut used: HashSet<IpAddr> = pods
            .iter()
            .zip(kept)
            .filter(|(_, kept)| **kept)
            .filter_map(|(p, _)| given(p))
            .collect();
        let mut pending: Vec<usize> = (0..pods.len())
            .filter(|&i| kept[i] && given(&pods[i]).is_none())
            .filter(|&i| !pods[i].host_network && !pods[i].finished)
            .collect();
        let (base, size) = match self.pod_cidr {
            IpNet::V4(n) => (
                u32::from(n.network()) as u128,
                1u128 << (32 - n.prefix_len()),
            ),
            IpNet::V6(n) => (
                u128::from(n.network()),
                1u128
                    .checked_shl(128 - n.prefix_len() as u32)
                    .unwrap_or(u128::MAX),
            ),
        };
        let to_ip = |offset: u128| -> IpAddr {
            match self.pod_cidr {
                IpNet::V4(_) => IpAddr::V4(((base + offset) as u32).into()),
                IpNet::V6(_) => IpAddr::V6((base + offset).into()),
            }
        };
        if !self.pinned.is_empty() {
            pending.retain(|&i| {
                let pinned = self.pinned.get(&pods[i].key()).copied();
                match pinned.filter(|ip| used.insert(*ip)) {
                    Some(ip) => {
                        allocated(&mut pods[i], Some(ip));
                        false
                    }
                    None => true,
                }
            });
        }
        // Skip the network address and the first few (gateway-style) addresses and the last one.
        let usable = size.saturating_sub(11);
        // Probing `used + 1` addresses finds a free one unless every usable one is taken: after
        // one miss, the CIDR is full for every pod after it (no probing: it would be quadratic).
        let mut full = false;
        for i in pending {
            let pod = &mut pods[i];
            // A CIDR with no usable address reports every pod below, like a full one.
            let start =
                crate::workload::fnv1a(&[&pod.namespace, &pod.name]) as u128 % usable.max(1);
            let free = (0..usable.min(used.len() as u128 + 1))
                .take_while(|_| !full)
                .map(|i| to_ip(10 + (start + i) % usable))
                .find(|ip| !used.contains(ip));
            if let Some(ip) = free {
                used.insert(ip);
            } else {
                full = true;
                self.rejections.push(Rejection {
                    object: Some(pod_key(pod)),
                    origin: pod.origin.clone(),
                    reason: RejectReason::Address,
                    kept: None,
                });
                self.diagnostics.push(Diagnostic {
                    object: Some(pod_key(pod).to_string()),
                    ..Diagnostic::new(
                        Severity::Error,
                        pod.origin.clone(),
                        format!("no free address left in pod CIDR {}", self.pod_cidr),
                    )
                });
            }
            allocated(pod, free);
        }
    }
}

/// An object that pods are made from: a Pod, or a workload whose template stands in for its pods.
enum Maker<'a> {
    Pod(&'a Loaded<Pod>),
    Workload(&'a Loaded<Workload>),
}

impl Maker<'_> {
    fn key(&self) -> &ObjectKey {
        match self {
            Maker::Pod(p) => p.key(),
            Maker::Workload(w) => w.key(),
        }
    }

    fn origin(&self) -> &Origin {
        match self {
            Maker::Pod(p) => p.origin(),
            Maker::Workload(w) => w.origin(),
        }
    }

    fn count(&self) -> usize {
        match self {
            Maker::Pod(_) => 1,
            Maker::Workload(w) => w.object.replicas,
        }
    }

    fn source(&self) -> Source {
        match self {
            Maker::Pod(p) => Source::Pod(p.object.clone()),
            Maker::Workload(w) => Source::Workload(w.object.clone()),
        }
    }

    fn make(&self) -> Vec<PodInfo> {
        match self {
            Maker::Pod(p) => vec![pod_info(p)],
            Maker::Workload(w) => workload::template_pods(w).collect(),
        }
    }
}

/// The logging configuration of `objects` (`invalid`: why the first rejected `NetworkLogging`
/// was rejected, and its version).
fn logging_config(objects: &Objects, invalid: Option<(String, LoggingObject)>) -> LoggingConfig {
    match (objects.network_logging.first(), invalid) {
        // A valid `default` wins over rejected objects of other names.
        (Some(nl), _) => {
            let version = LoggingObject::of(&nl.object.metadata);
            LoggingConfig::Valid(nl.object.spec.cluster, version)
        }
        (None, Some((reason, version))) => LoggingConfig::Invalid(reason, version),
        (None, None) => LoggingConfig::Absent,
    }
}

/// Namespace `ns`, read at `origin`.
fn namespace_info(ns: &Namespace, origin: &Origin) -> NamespaceInfo {
    NamespaceInfo {
        name: ns.metadata.name.clone().unwrap_or_default(),
        labels: labels_of(&ns.metadata),
        annotations: ns.metadata.annotations.clone().unwrap_or_default(),
        origin: Some(origin.clone()),
    }
}

/// The namespaces of `objects`, and those of workloads that declare none (a workload's namespace
/// exists even when it has no pods, `replicas: 0`).
fn namespaces(objects: &Objects) -> Vec<NamespaceInfo> {
    let mut namespaces: Vec<NamespaceInfo> = (objects.namespaces.iter())
        .map(|n| namespace_info(&n.object, n.origin()))
        .collect();
    let mut known: HashSet<String> = namespaces.iter().map(|n| n.name.clone()).collect();
    for w in &objects.workloads {
        let ns = w.object.namespace();
        if known.insert(ns.to_string()) {
            namespaces.push(NamespaceInfo {
                name: ns.to_string(),
                labels: Default::default(),
                annotations: Default::default(),
                origin: None,
            });
        }
    }
    namespaces
}

/// What to report of a file or folder at `path` that could not be read.
fn read_failure(path: &Path, e: &ReadError) -> (Diagnostic, RejectReason) {
    let origin = Origin {
        file: path.display().to_string(),
        line: None,
    };
    let reason = match e {
        ReadError::TooLarge { .. } => RejectReason::Limit,
        _ => RejectReason::Unreadable,
    };
    (
        Diagnostic::new(Severity::Error, origin, e.to_string()),
        reason,
    )
}

/// The key of the Pod object `pod` is (or stands for, for a template pod).
fn pod_key(pod: &PodInfo) -> ObjectKey {
    ObjectKey::new(Kind::Pod, Some(&pod.namespace), &pod.name)
}

/// Sets an allocated address (or none), copying the pod only if that changes it.
fn allocated(pod: &mut Arc<PodInfo>, ip: Option<IpAddr>) {
    if pod.ip != ip || pod.ip_allocated != ip.is_some() {
        let pod = Arc::make_mut(pod);
        pod.ip = ip;
        pod.ip_allocated = ip.is_some();
    }
}
