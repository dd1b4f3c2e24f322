//! Diagnostics: what is wrong with an input object, and exactly where.

use std::fmt;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Informational (shown with `-v`): e.g. a skipped unknown kind.
    Info,
    /// Accepted, but probably not what the author meant.
    Warning,
    /// The object (or document) was rejected.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// Where an object came from: a file (or `-` for stdin) and the 1-based line where known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    /// File path as given, `-` for standard input.
    pub file: String,
    /// 1-based line of the document or error, when the parser knows it.
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.file, line),
            None => f.write_str(&self.file),
        }
    }
}

/// One finding about the input: file, object (`Kind ns/name`), field path and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error, warning or info.
    pub severity: Severity,
    /// File and line.
    pub origin: Origin,
    /// `Kind namespace/name` (or `Kind name` for cluster-scoped objects), when known.
    pub object: Option<String>,
    /// Field path such as `spec.ingress[0].from[1].ipBlock.except[0]`, when known.
    pub field: Option<String>,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl Diagnostic {
    /// A new diagnostic without object or field.
    pub fn new(severity: Severity, origin: Origin, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            origin,
            object: None,
            field: None,
            message: message.into(),
        }
    }

    /// True for errors (rejected input).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.origin, self.severity)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A field-level problem found by validation, before it is placed in a file and object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldIssue {
    /// Error or warning.
    pub severity: Severity,
    /// Field path relative to the object root.
    pub field: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl FieldIssue {
    /// An error at `field`.
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldIssue {
            severity: Severity::Error,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A warning at `field`.
    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldIssue {
            severity: Severity::Warning,
            field: field.into(),
            message: message.into(),
        }
    }
}
