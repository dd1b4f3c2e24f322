//! What one load of a folder keeps for the next: each file's documents decoded (so an unchanged
//! file, or an unchanged document of an edited one, is not parsed again), the pods made from each
//! object, and every object in force — the last good versions that what no longer reads falls back
//! to ([`crate::Loader::with_documents`]).

use crate::diagnostic::{Diagnostic, Origin};
use crate::document::{self, Document};
use crate::key::ObjectKey;
use crate::loader::LastLoad;
use crate::objects::{self, DecodeLimits, Decoded, Objects, Workload};
use crate::read::Stamp;
use crate::state::PodInfo;
use foldhash::{HashMap, HashMapExt};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Decoded manifest files, kept from one load to the next ([`crate::Loader::with_documents`]).
#[derive(Default)]
pub struct DocumentCache {
    pub(crate) files: HashMap<PathBuf, CachedFile>,
    /// API objects ([`crate::Loader::load_store`]), each a one-document file, by key.
    pub(crate) api: HashMap<ObjectKey, CachedFile>,
    /// The pods made from each Pod or workload object by the last load, by the object's address.
    pub(crate) pods: HashMap<usize, ObjectPods>,
    /// Every object in force after the last load: accepted, or held at its last good version.
    pub(crate) objects: Objects,
    /// Files removed or emptied whose objects are held for the removal grace, and since when.
    pub(crate) gone: HashMap<PathBuf, Instant>,
    /// What the last load made, for the next one to apply only what changed since.
    pub(crate) last_load: Option<LastLoad>,
}

/// The pods one object (a Pod, or a workload's template) stood for in the last load, addresses
/// allocated: reused, shared, while the object is the same (same `Arc`: its file is unchanged), so
/// that unchanged pods are neither rebuilt nor copied.
pub(crate) struct ObjectPods {
    /// Holds the object, so that its address cannot be reused by another while it is a key.
    pub object: Source,
    pub pods: Vec<Arc<PodInfo>>,
}

/// An object that pods are made from.
#[derive(Clone)]
pub(crate) enum Source {
    Pod(Arc<Pod>),
    Workload(Arc<Workload>),
}

impl Source {
    pub fn address(&self) -> usize {
        match self {
            Source::Pod(p) => Arc::as_ptr(p) as usize,
            Source::Workload(w) => Arc::as_ptr(w) as usize,
        }
    }
}

/// What tells a version of a document's source unchanged without reading it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// A file's metadata.
    File(Stamp),
    /// An API object's `metadata.resourceVersion`.
    Resource(String),
}

/// One file (or API object) as last read: what it says, nothing kept from earlier versions.
pub(crate) struct CachedFile {
    pub version: Version,
    /// Diagnostics of parsing the file.
    pub diagnostics: Vec<Diagnostic>,
    /// Its documents, decoded and validated, in order.
    pub documents: Vec<CachedDocument>,
}

/// One document of a cached file.
pub(crate) struct CachedDocument {
    /// Its first line and its text, for a YAML document that parsed: when its file changes, a
    /// document with the same text on the same line is not parsed or decoded again, and its objects
    /// stay shared (with what was made from them: pods, classes).
    pub source: Option<(usize, String)>,
    /// Its objects (every item of a `List`), decoded and validated.
    pub decoded: Arc<Vec<Decoded>>,
}

impl CachedFile {
    /// Every decoded object of the file, in order.
    pub fn decoded(&self) -> impl Iterator<Item = &Decoded> {
        self.documents.iter().flat_map(|d| d.decoded.iter())
    }

    /// True when the file holds no document at all (empty, blank, only comments).
    pub fn is_blank(&self) -> bool {
        self.diagnostics.is_empty() && self.decoded().next().is_none()
    }

    /// The file read anew as `text`, reusing what `earlier` (its cached version) decoded from
    /// documents that kept their text and line.
    pub fn parse(
        file: &str,
        stamp: Stamp,
        text: &str,
        earlier: Option<CachedFile>,
        limits: DecodeLimits,
    ) -> CachedFile {
        let mut diagnostics = Vec::new();
        let documents = match document::yaml_documents(text) {
            Some(sources) => decode_yaml(file, sources, earlier.as_ref(), &mut diagnostics, limits),
            None => vec![CachedDocument {
                source: None,
                decoded: Arc::new(decode_all(
                    &document::parse(file, text, &mut diagnostics),
                    limits,
                )),
            }],
        };
        CachedFile {
            version: Version::File(stamp),
            diagnostics,
            documents,
        }
    }

    /// An API object (`value`, at its URL `file`) decoded: one document without lines.
    pub fn object(file: &str, version: String, value: Value, limits: DecodeLimits) -> CachedFile {
        let document = Document {
            value,
            origin: Origin {
                file: file.to_string(),
                line: None,
            },
        };
        CachedFile {
            version: Version::Resource(version),
            diagnostics: Vec::new(),
            documents: vec![CachedDocument {
                source: None,
                decoded: Arc::new(decode_all(&[document], limits)),
            }],
        }
    }
}

/// Every object of `documents` (every item of a `List`), decoded and validated, in order.
pub(crate) fn decode_all(documents: &[Document], limits: DecodeLimits) -> Vec<Decoded> {
    (documents.iter())
        .flat_map(|d| objects::decode(d, limits))
        .collect()
}

/// `1 object`, `3 objects`.
pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The documents of a YAML file (`sources`: first line and text), parsed, decoded and validated;
/// those with the text and line they had in `earlier` (the file's cached version) are taken from it.
fn decode_yaml(
    file: &str,
    sources: Vec<(usize, String)>,
    earlier: Option<&CachedFile>,
    diagnostics: &mut Vec<Diagnostic>,
    limits: DecodeLimits,
) -> Vec<CachedDocument> {
    let earlier = earlier.map_or(&[][..], |f| &f.documents[..]);
    let mut index: HashMap<(usize, &str), &Arc<Vec<Decoded>>> =
        HashMap::with_capacity(earlier.len());
    for d in earlier {
        if let Some((line, text)) = &d.source {
            index.insert((*line, text.as_str()), &d.decoded);
        }
    }
    (sources.into_iter())
        .filter_map(|(line, text)| {
            if let Some(&decoded) = index.get(&(line, text.as_str())) {
                return Some(CachedDocument {
                    decoded: decoded.clone(),
                    source: Some((line, text)),
                });
            }
            match document::parse_yaml_document(file, line, &text) {
                Ok(doc) => Some(CachedDocument {
                    decoded: Arc::new(decode_all(doc.as_slice(), limits)),
                    source: Some((line, text)),
                }),
                Err(d) => {
                    diagnostics.push(d);
                    None
                }
            }
        })
        .collect()
}
