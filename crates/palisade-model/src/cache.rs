//! What one load of a folder keeps for the next: each file's documents decoded (so an unchanged
//! file, or an unchanged document of an edited one, is not parsed again), the pods made from each
//! object, and every object accepted — the last good versions that a file or object which no
//! longer reads falls back to.

use crate::diagnostic::{Diagnostic, Severity};
use crate::document;
use crate::key::ObjectKey;
use crate::objects::{self, DecodeLimits, Decoded, Objects, Workload};
use crate::read::Stamp;
use crate::state::PodInfo;
use foldhash::{HashMap, HashMapExt, HashSet};
use k8s_openapi::api::core::v1::Pod;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Decoded manifest files, kept from one load to the next ([`crate::Loader::with_documents`]).
#[derive(Default)]
pub struct DocumentCache {
    pub(crate) files: HashMap<PathBuf, CachedFile>,
    /// The pods made from each Pod or workload object by the last load, by the object's address.
    pub(crate) pods: HashMap<usize, ObjectPods>,
    /// Every object the last load accepted (or kept at its last good version).
    pub(crate) objects: Objects,
}

/// The pods one object (a Pod, or a workload's template) stood for in the last load, addresses
/// allocated: reused, shared, while the object is the same (same `Arc`: its file is unchanged), so
/// that unchanged pods are neither rebuilt nor copied.
pub(crate) struct ObjectPods {
    /// Holds the object, so that its address cannot be reused by another while it is a key.
    pub _object: Source,
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

/// One file as last read.
pub(crate) struct CachedFile {
    pub stamp: Stamp,
    /// Diagnostics of parsing the file (and of keeping its last good version).
    pub diagnostics: Vec<Diagnostic>,
    /// Its documents, decoded and validated, in order.
    pub documents: Vec<CachedDocument>,
    /// Since when the file has been removed or emptied while its objects stay in force.
    pub gone_since: Option<Instant>,
}

/// One document of a cached file.
pub(crate) struct CachedDocument {
    /// Its first line and its text, for a YAML document that parsed: when its file changes, a
    /// document with the same text on the same line is not parsed or decoded again, and its objects
    /// stay shared (with what was made from them: pods, classes).
    pub source: Option<(usize, String)>,
    /// Its objects (every item of a `List`), decoded and validated.
    pub decoded: Arc<Vec<Decoded>>,
    /// Objects of the file's last good version, in force while part of the file cannot be read.
    pub held: bool,
}

impl CachedFile {
    /// Every decoded object of the file, in order.
    pub fn decoded(&self) -> impl Iterator<Item = &Decoded> {
        self.documents.iter().flat_map(|d| d.decoded.iter())
    }

    /// True when the file holds no object.
    pub fn is_empty(&self) -> bool {
        self.decoded().all(|d| d.key().is_none())
    }

    /// The file read anew as `text`, reusing what `earlier` (its cached version) decoded from
    /// documents that kept their text and line. Two states of a file that is being rewritten are
    /// never taken at their word:
    /// - part of it cannot be read (a syntax error, or a document that is not an object with a
    ///   kind and a name): which objects that part defined is unknown, so every object of the
    ///   earlier version that the readable part does not define stays in force;
    /// - it holds no document at all (emptied, say truncated before being written again): its
    ///   earlier objects stay, and the caller decides when the removal takes effect
    ///   ([`CachedFile::gone_since`]).
    pub fn parse(
        file: &str,
        stamp: Stamp,
        text: &str,
        earlier: Option<CachedFile>,
        limits: DecodeLimits,
        now: Instant,
    ) -> CachedFile {
        let mut diagnostics = Vec::new();
        let documents = match document::yaml_documents(text) {
            Some(sources) => decode_yaml(file, sources, earlier.as_ref(), &mut diagnostics, limits),
            None => vec![CachedDocument {
                source: None,
                decoded: Arc::new(
                    document::parse(file, text, &mut diagnostics)
                        .iter()
                        .flat_map(|d| objects::decode(d, limits))
                        .collect(),
                ),
                held: false,
            }],
        };
        let mut parsed = CachedFile {
            stamp,
            diagnostics,
            documents,
            gone_since: None,
        };
        let Some(earlier) = earlier.filter(|e| !e.is_empty()) else {
            return parsed;
        };
        let unreadable = parsed.diagnostics.iter().any(Diagnostic::is_error)
            || parsed.decoded().any(Decoded::unidentified);
        if unreadable {
            parsed.keep_from(&earlier, file);
        } else if parsed.decoded().next().is_none() && parsed.diagnostics.is_empty() {
            return CachedFile {
                stamp,
                gone_since: Some(earlier.gone_since.unwrap_or(now)),
                ..earlier
            };
        }
        parsed
    }

    /// Adds the objects of `earlier` that this version does not define (accepted or rejected) as
    /// a held document.
    fn keep_from(&mut self, earlier: &CachedFile, file: &str) {
        let defined: HashSet<&ObjectKey> = self.decoded().filter_map(Decoded::identity).collect();
        let kept: Vec<Decoded> = earlier
            .decoded()
            .filter(|d| d.key().is_some_and(|k| !defined.contains(k)))
            .map(Decoded::without_diagnostics)
            .collect();
        drop(defined);
        if kept.is_empty() {
            return;
        }
        let names: Vec<String> = kept
            .iter()
            .filter_map(|d| d.key())
            .map(ToString::to_string)
            .collect();
        self.diagnostics.push(Diagnostic::new(
            Severity::Warning,
            crate::Origin {
                file: file.to_string(),
                line: None,
            },
            format!(
                "part of this file cannot be read: the last good version of {} stays in force until it can ({})",
                plural(names.len(), "object"),
                names.join(", ")
            ),
        ));
        self.documents.push(CachedDocument {
            source: None,
            decoded: Arc::new(kept),
            held: true,
        });
    }

    /// Drops the objects of a removed or emptied file whose grace period is over.
    pub fn forget(&mut self) {
        self.documents.clear();
        self.gone_since = None;
    }
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
    for d in earlier.iter().filter(|d| !d.held) {
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
                    held: false,
                });
            }
            match document::parse_yaml_document(file, line, &text) {
                Ok(doc) => Some(CachedDocument {
                    decoded: Arc::new(
                        doc.iter()
                            .flat_map(|d| objects::decode(d, limits))
                            .collect(),
                    ),
                    source: Some((line, text)),
                    held: false,
                }),
                Err(d) => {
                    diagnostics.push(d);
                    None
                }
            }
        })
        .collect()
}
