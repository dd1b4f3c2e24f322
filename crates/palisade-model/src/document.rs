//! Reading manifest text into JSON values, one per document, with the line each document starts on.
//! YAML streams (`---` separated, `...` terminated) and JSON (one or more concatenated values) are both
//! accepted; a syntax error is reported with its absolute file line and the other documents still load.

use crate::diagnostic::{Diagnostic, Origin, Severity};

/// One parsed document: its value and where it starts.
#[derive(Debug)]
pub struct Document {
    /// The document as a JSON value (`null` documents are dropped before this point).
    pub value: serde_json::Value,
    /// File and first line of the document.
    pub origin: Origin,
}

/// Splits `text` (the contents of `file`) into documents. Errors become diagnostics; parsing
/// continues with the next document.
pub fn parse(file: &str, text: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<Document> {
    if looks_like_json(text) {
        let mut json_diagnostics = Vec::new();
        let docs = parse_json(file, text, &mut json_diagnostics);
        if json_diagnostics.is_empty() {
            return docs;
        }
        // YAML in flow style (`{kind: Pod, ...}`) starts like JSON: use it if it reads as YAML.
        let mut yaml_diagnostics = Vec::new();
        let yaml_docs = parse_yaml(file, text, &mut yaml_diagnostics);
        if yaml_diagnostics.is_empty() {
            return yaml_docs;
        }
        diagnostics.extend(json_diagnostics);
        docs
    } else {
        parse_yaml(file, text, diagnostics)
    }
}

/// True when `text` starts like JSON (`{` or `[`): it is read as JSON first, then as YAML.
fn looks_like_json(text: &str) -> bool {
    let trimmed = text.trim_start();
    trimmed.starts_with('{') || trimmed.starts_with('[')
}

/// The documents of a YAML file, each as its first content line and its text, in order; `None`
/// when `text` starts like JSON. [`parse_yaml_document`] reads one: together they are [`parse`]
/// for YAML, document by document, so that a reader can skip the documents it already has.
pub fn yaml_documents(text: &str) -> Option<Vec<(usize, String)>> {
    (!looks_like_json(text)).then(|| split_yaml(text))
}

fn parse_json(file: &str, text: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                let skipped = text[start..].len() - text[start..].trim_start().len();
                let line = line_of(text, start + skipped);
                if !value.is_null() {
                    docs.push(Document {
                        value,
                        origin: Origin {
                            file: file.to_string(),
                            line: Some(line),
                        },
                    });
                }
            }
            Some(Err(e)) => {
                let origin = Origin {
                    file: file.to_string(),
                    line: Some(e.line()),
                };
                let message = format!("invalid JSON: {}", strip_position(&e.to_string()));
                diagnostics.push(Diagnostic::new(Severity::Error, origin, message));
                break; // the stream cannot resynchronise after a syntax error
            }
        }
    }
    docs
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

/// Removes every " at line L column C" from a parser message: those lines are relative to the
/// document, and we report the absolute line ourselves. (YAML messages may hold two, e.g.
/// "did not find expected ',' at line 5 column 9, while parsing a flow sequence at line 4 column 9".)
fn strip_position(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let tail = &after[digits..];
        match tail.strip_prefix(" column ") {
            Some(col) if digits > 0 => {
                rest = col.trim_start_matches(|c: char| c.is_ascii_digit());
            }
            _ => {
                // Not a position after all: keep the text.
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The YAML documents in `text`, each with the line of its first content line.
fn split_yaml(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut start_line = 1;
    let mut current = String::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_start = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "..." || bare.starts_with("... ");
        if is_start || is_end {
            docs.push((start_line, std::mem::take(&mut current)));
            start_line = i + 2;
            // Content after `--- ` on the same line belongs to the new document.
            let rest = bare[3..].trim_start();
            if is_start && !rest.is_empty() && !rest.starts_with('#') {
                current.push_str(rest);
                current.push('\n');
                start_line = i + 1;
            }
        } else if current.is_empty()
            && (bare.trim().is_empty() || bare.trim_start().starts_with('#'))
        {
            start_line = i + 2; // report the first line with content
        } else {
            current.push_str(line);
        }
    }
    docs.push((start_line, current));
    docs.retain(|(_, doc)| !doc.trim().is_empty());
    docs
}

fn parse_yaml(file: &str, text: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<Document> {
    split_yaml(text)
        .into_iter()
        .filter_map(|(line, doc)| {
            parse_yaml_document(file, line, &doc).unwrap_or_else(|d| {
                diagnostics.push(d);
                None
            })
        })
        .collect()
}

/// Parses one YAML document of `file` that starts on `first_line` ([`yaml_documents`]): `None`
/// for a `null` document, an error with its absolute line for invalid YAML.
pub fn parse_yaml_document(
    file: &str,
    first_line: usize,
    doc: &str,
) -> Result<Option<Document>, Diagnostic> {
    match serde_yaml_ng::from_str::<serde_json::Value>(doc) {
        Ok(serde_json::Value::Null) => Ok(None),
        Ok(value) => Ok(Some(Document {
            value,
            origin: Origin {
                file: file.to_string(),
                line: Some(first_line),
            },
        })),
        Err(e) => {
            let line = e
                .location()
                .map_or(first_line, |l| first_line + l.line() - 1);
            let origin = Origin {
                file: file.to_string(),
                line: Some(line),
            };
            let message = format!("invalid YAML: {}", strip_position(&e.to_string()));
            Err(Diagnostic::new(Severity::Error, origin, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(file_text: &str) -> (Vec<usize>, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let docs = parse("f.yaml", file_text, &mut diags);
        (docs.iter().map(|d| d.origin.line.unwrap()).collect(), diags)
    }

    #[test]
    fn yaml_documents_and_their_lines() {
        let text = "# comment\n\napiVersion: v1\nkind: A\n---\n---\n# c\nkind: B\n...\nkind: C\n";
        let (l, d) = lines(text);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(l, vec![3, 8, 10]);
    }

    #[test]
    fn yaml_error_has_absolute_line_and_other_documents_survive() {
        let text = "kind: A\n---\nkind: B\nmetadata:\n  name: [x\n---\nkind: C\n";
        let (l, d) = lines(text);
        assert_eq!(l, vec![1, 7]);
        assert_eq!(d.len(), 1);
        assert!(d[0].message.starts_with("invalid YAML"), "{}", d[0]);
        let line = d[0].origin.line.unwrap();
        assert!((5..=6).contains(&line), "reported line {line}");
    }

    #[test]
    fn json_values_concatenated() {
        let (l, d) = lines("{\"kind\": \"A\"}\n\n{\"kind\":\n \"B\"}");
        assert!(d.is_empty());
        assert_eq!(l, vec![1, 3]);
        let (_, d) = lines("{\"kind\": \"A\"}\n{\"kind\": }");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].origin.line, Some(2));
    }

    #[test]
    fn document_marker_with_inline_content() {
        let (l, d) = lines("--- {kind: A}\n--- # comment\nkind: B\n");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(l, vec![1, 3]);
    }
}
