//! Rejected input as data: what a load could not use, why, and whether an earlier good version of
//! it stays in force. The diagnostics say the same in words; this is what metrics, readiness and
//! status count.

use crate::diagnostic::Origin;
use crate::key::{Kind, ObjectKey};

/// Why input was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// A file or folder could not be read (missing, permissions, not a regular file, a symlink
    /// leading outside the folder).
    Unreadable,
    /// A document is not valid YAML or JSON, or not an object with a kind and a name.
    Syntax,
    /// A field has the wrong type, or the kind or apiVersion is wrong.
    Decode,
    /// The object breaks a validation rule of its kind.
    Invalid,
    /// The same object is defined twice.
    Duplicate,
    /// Its pod address is another pod's, or no address is left to allocate.
    Address,
    /// It exceeds a resource limit (file size, pods per workload, pods in all).
    Limit,
}

impl RejectReason {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Unreadable => "unreadable",
            RejectReason::Syntax => "syntax",
            RejectReason::Decode => "decode",
            RejectReason::Invalid => "invalid",
            RejectReason::Duplicate => "duplicate",
            RejectReason::Address => "address",
            RejectReason::Limit => "limit",
        }
    }
}

/// One rejected file, document or object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The object, when it could be told which one it is.
    pub object: Option<ObjectKey>,
    /// Where.
    pub origin: Origin,
    /// Why.
    pub reason: RejectReason,
    /// Where the last good version that stays in force instead was read, if one does.
    pub kept: Option<Origin>,
}

impl Rejection {
    /// The kind of the rejected object, if known.
    pub fn kind(&self) -> Option<Kind> {
        self.object.as_ref().map(ObjectKey::kind)
    }
}

/// Why an object is in force at an earlier version than the one the source now has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeldReason {
    /// Its current version was rejected, or part of its file was (a syntax error, a document that
    /// is not an object, an object rejected under another name): what became of it is unknown.
    Rejected,
    /// Its file or folder cannot be read, or the folder holds no manifest at all.
    Unreadable,
    /// Its file was removed or emptied moments ago: the removal takes effect after a grace
    /// period, in case the file is being rewritten.
    Removed,
}

impl HeldReason {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HeldReason::Rejected => "rejected",
            HeldReason::Unreadable => "unreadable",
            HeldReason::Removed => "removed",
        }
    }
}

/// An object in force at its last good version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The object.
    pub object: ObjectKey,
    /// Where the version in force was read.
    pub origin: Origin,
    /// Why it is held.
    pub why: HeldReason,
}
