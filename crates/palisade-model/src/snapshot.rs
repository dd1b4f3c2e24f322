//! The objects in force, written down so that a restarted agent starts from its last good state
//! rather than from nothing: without it, a file that is broken when the agent restarts would lose
//! its policies, which were in force until the restart.
//!
//! A snapshot holds every object of a load with where it was read, as a manifest that the loader
//! reads back through the same decoding and validation ([`DocumentCache::from_snapshot`]). The
//! cache it gives has no file: each is read again, and the snapshot's objects serve only as the
//! last good versions of what then does not read.

use crate::cache::DocumentCache;
use crate::diagnostic::Origin;
use crate::document::Document;
use crate::key::Kind;
use crate::objects::{Accepted, Objects, Typed, Workload};
use crate::Limits;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

/// The format's version: a snapshot of another version is not read.
const VERSION: u32 = 1;

/// The objects in force after a load, as manifests with their places.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    version: u32,
    /// What was loaded (the manifests folder): a snapshot of another source is not used.
    source: String,
    objects: Vec<Placed>,
}

/// One object and where it was read.
#[derive(Debug, Serialize, Deserialize)]
struct Placed {
    file: String,
    line: Option<usize>,
    object: Value,
}

impl Snapshot {
    /// The number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when it holds no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// The objects in force after a load, shared with it: cheap to take, to be written down elsewhere
/// ([`InForce::snapshot`]).
pub struct InForce {
    objects: Vec<Arc<Accepted>>,
}

impl InForce {
    /// The objects as manifests, for `source`.
    pub fn snapshot(&self, source: &str) -> Snapshot {
        let objects = (self.objects.iter())
            .map(|accepted| Placed {
                file: accepted.origin.file.clone(),
                line: accepted.origin.line,
                object: manifest(&accepted.object),
            })
            .collect();
        Snapshot {
            version: VERSION,
            source: source.to_string(),
            objects,
        }
    }
}

impl DocumentCache {
    /// The objects this cache holds in force (those of the load that made it).
    pub fn in_force(&self) -> InForce {
        InForce {
            objects: self.objects.all().cloned().collect(),
        }
    }

    /// True when it holds objects in force.
    pub fn holds_objects(&self) -> bool {
        !self.objects.is_empty()
    }

    /// [`DocumentCache::in_force`] as a snapshot, for `source`.
    pub fn snapshot(&self, source: &str) -> Snapshot {
        self.in_force().snapshot(source)
    }

    /// A cache whose last good versions are the snapshot's objects, for a load of `source` within
    /// `limits`; an error when the snapshot is of another version or source. Objects that no longer
    /// decode (say, under lower limits) are left out.
    pub fn from_snapshot(
        snapshot: Snapshot,
        source: &str,
        limits: Limits,
    ) -> Result<DocumentCache, String> {
        if snapshot.version != VERSION {
            return Err(format!(
                "version {} (this agent reads version {VERSION})",
                snapshot.version
            ));
        }
        if snapshot.source != source {
            return Err(format!("it is of {}, not of {source}", snapshot.source));
        }
        let limits = limits.decode_limits();
        let mut objects = Objects::default();
        let mut ignored = Vec::new();
        for placed in snapshot.objects {
            let origin = Origin {
                file: placed.file,
                line: placed.line,
            };
            let doc = Document {
                value: placed.object,
                origin,
            };
            objects.ingest(&doc, limits, &mut ignored);
        }
        objects.rejections.clear();
        Ok(DocumentCache {
            objects,
            ..DocumentCache::default()
        })
    }
}

/// An object as a manifest that decodes to it again.
fn manifest(typed: &Typed) -> Value {
    let value = match typed {
        Typed::Namespace(x) => serde_json::to_value(&**x),
        Typed::Pod(x) => serde_json::to_value(&**x),
        Typed::Service(x) => serde_json::to_value(&**x),
        Typed::Policy(x) => serde_json::to_value(x.object()),
        Typed::TierPolicy(x) => serde_json::to_value(x.object()),
        Typed::Node(x) => serde_json::to_value(&**x),
        Typed::NetworkLogging(x) => serde_json::to_value(&**x),
        Typed::Workload(w) => return workload_manifest(w),
    };
    value.unwrap_or(Value::Null)
}

/// A workload as the manifest of its kind, with what template expansion uses of it.
fn workload_manifest(w: &Workload) -> Value {
    let (selector, template) = (&w.selector, &w.template);
    let spec = match w.kind {
        Kind::Job => json!({"parallelism": w.replicas, "selector": selector, "template": template}),
        Kind::CronJob => json!({
            "schedule": "",
            "jobTemplate": {"spec": {"parallelism": w.replicas, "selector": selector, "template": template}},
        }),
        Kind::DaemonSet => json!({"selector": selector, "template": template}),
        _ => json!({"replicas": w.replicas, "selector": selector, "template": template}),
    };
    json!({
        "apiVersion": w.kind.api_version(),
        "kind": w.kind.as_str(),
        "metadata": w.metadata,
        "spec": spec,
    })
}
