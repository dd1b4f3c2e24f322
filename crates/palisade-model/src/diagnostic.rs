//! Diagnostics: what is wrong with an input object, and exactly where.

use std::collections::HashMap;
use std::fmt;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// One line of a summarised report ([`summarize`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summary<'a> {
    /// A diagnostic shown as it is.
    Shown(&'a Diagnostic),
    /// `count` more diagnostics of the same shape as those shown, `like` the first of them.
    More {
        /// The first diagnostic left out.
        like: &'a Diagnostic,
        /// How many were left out.
        count: usize,
    },
}

impl Summary<'_> {
    /// The severity of the line.
    pub fn severity(&self) -> Severity {
        match self {
            Summary::Shown(d) | Summary::More { like: d, .. } => d.severity,
        }
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Summary::Shown(d) => d.fmt(f),
            Summary::More { like, count } => write!(
                f,
                "{}: \u{2026} and {} more like this",
                like.severity,
                thousands(*count)
            ),
        }
    }
}

/// `diagnostics` in order, with at most `per_kind` of each shape shown and one [`Summary::More`]
/// line in place of the rest, so that one mistake repeated 100,000 times (a workload's replicas
/// without addresses) does not bury the others. Two diagnostics have the same shape when their
/// severity, field and message are the same once numbers and quoted names are masked; the object
/// is not part of it.
pub fn summarize<'a>(
    diagnostics: impl IntoIterator<Item = &'a Diagnostic>,
    per_kind: usize,
) -> Vec<Summary<'a>> {
    let all: Vec<(&Diagnostic, Shape)> = diagnostics.into_iter().map(|d| (d, shape(d))).collect();
    let mut total: HashMap<&Shape, usize> = HashMap::new();
    for (_, s) in &all {
        *total.entry(s).or_default() += 1;
    }
    let mut seen: HashMap<&Shape, usize> = HashMap::new();
    let mut out = Vec::new();
    for (d, s) in &all {
        let n = seen.entry(s).or_default();
        *n += 1;
        if *n <= per_kind {
            out.push(Summary::Shown(d));
        } else if *n == per_kind + 1 {
            out.push(Summary::More {
                like: d,
                count: total[s] - per_kind,
            });
        }
    }
    out
}

type Shape = (Severity, String, String);

fn shape(d: &Diagnostic) -> Shape {
    let field = d.field.as_deref().map(mask).unwrap_or_default();
    (d.severity, field, mask(&d.message))
}

/// `text` with every run of digits as `#` and every double-quoted part as `"…"`.
fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else if c == '"' {
            let mut escaped = false;
            for q in chars.by_ref() {
                if q == '"' && !escaped {
                    break;
                }
                escaped = q == '\\' && !escaped;
            }
            out.push_str("\"\u{2026}\"");
        } else {
            out.push(c);
        }
    }
    out
}

/// `n` with thousands separated by commas: 33,831.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(severity: Severity, object: &str, message: &str) -> Diagnostic {
        Diagnostic {
            object: Some(object.into()),
            ..Diagnostic::new(severity, Origin::default(), message)
        }
    }

    #[test]
    fn repeats_are_folded_after_the_first_few_of_each_shape() {
        let mut diags: Vec<Diagnostic> = (0..33_841)
            .map(|i| {
                diag(
                    Severity::Error,
                    &format!("Pod ns/web-{i}"),
                    "no free address left in pod CIDR 10.244.0.0/16",
                )
            })
            .collect();
        diags.insert(
            5,
            diag(Severity::Warning, "Pod ns/x", "unknown field \"foo\""),
        );
        diags.push(diag(Severity::Warning, "Pod ns/y", "unknown field \"bar\""));
        diags.push(diag(Severity::Error, "Pod ns/z", "something else"));
        let lines: Vec<String> = summarize(&diags, 10)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(lines.len(), 14, "{lines:#?}");
        assert_eq!(lines[5], ": warning: Pod ns/x: unknown field \"foo\"");
        assert!(lines[10].ends_with("web-9: no free address left in pod CIDR 10.244.0.0/16"));
        assert_eq!(lines[11], "error: \u{2026} and 33,831 more like this");
        assert_eq!(lines[12], ": warning: Pod ns/y: unknown field \"bar\"");
        assert_eq!(lines[13], ": error: Pod ns/z: something else");
    }

    #[test]
    fn shapes_mask_numbers_and_quoted_names_only() {
        let d = |m: &str| diag(Severity::Error, "o", m);
        assert_eq!(
            shape(&d("port 80 \"a\\\"b\" x")),
            shape(&d("port 8080 \"c\" x"))
        );
        assert_ne!(shape(&d("pod a is bad")), shape(&d("pod b is bad")));
        assert_ne!(
            shape(&d("x")),
            shape(&Diagnostic::new(Severity::Warning, Origin::default(), "x"))
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        // Nothing is folded below the limit.
        let few = vec![d("same"), d("same")];
        assert_eq!(
            summarize(&few, 2),
            vec![Summary::Shown(&few[0]), Summary::Shown(&few[1])]
        );
    }
}
