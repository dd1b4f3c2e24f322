//! Reading manifest text into JSON values, one per document, with the line each document starts on.
//! YAML streams (`---` separated, `...` terminated) and JSON (one or more concatenated values) are both
//! accepted; a syntax error is reported with its absolute file line and the other documents still load.
//! Both are read within the same limits and with kubectl's strictness: nesting at most
//! [`MAX_DEPTH`] levels deep, and a key written twice in one mapping or object rejects its document
//! (YAML documents are composed by [`crate::yaml`], which also honours merge keys and bounds aliases).

use crate::diagnostic::{Diagnostic, Origin, Severity};
use crate::yaml;
pub use crate::yaml::MAX_DEPTH;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

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
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Strict>();
    loop {
        let start = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(Strict(value))) => {
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
    let origin = |line| Origin {
        file: file.to_string(),
        line: Some(line),
    };
    match yaml::parse(doc, first_line) {
        Ok(Value::Null) => Ok(None),
        Ok(value) => Ok(Some(Document {
            value,
            origin: origin(first_line),
        })),
        Err(e) => Err(Diagnostic::new(
            Severity::Error,
            origin(e.line),
            format!("invalid YAML: {}", e.message),
        )),
    }
}

/// `bytes` (the contents of `file`) as text: manifests are UTF-8. The error names the line and the
/// byte column of the first invalid byte, never the bytes themselves (the file may not be ours).
pub fn decode_utf8<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let origin = Origin {
            file: file.to_string(),
            line: Some(valid.iter().filter(|&&b| b == b'\n').count() + 1),
        };
        let column = valid.len() - line_start + 1;
        Diagnostic::new(
            Severity::Error,
            origin,
            format!(
                "not UTF-8 text: invalid byte at byte column {column}; save manifests as UTF-8"
            ),
        )
    })
}

/// True when `text` holds no document at all: empty, blank, or only comments and `---`/`...`
/// markers.
pub fn is_blank(text: &str) -> bool {
    !looks_like_json(text) && split_yaml(text).is_empty()
}

/// A JSON value read as `serde_json::Value` is, except that a key written twice in one object is an
/// error (serde_json keeps the last) and so is nesting deeper than [`MAX_DEPTH`].
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Level(1).deserialize(deserializer).map(Strict)
    }
}

/// A JSON value at nesting level `.0` (the document itself is level 1).
#[derive(Clone, Copy)]
struct Level(usize);

impl<'de> DeserializeSeed<'de> for Level {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Level {
    fn nested<E: serde::de::Error>(self) -> Result<Level, E> {
        if self.0 > MAX_DEPTH {
            return Err(E::custom(yaml::too_deep()));
        }
        Ok(Level(self.0 + 1))
    }
}

impl<'de> Visitor<'de> for Level {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!(
                    "mapping key {key:?} already defined"
                )));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
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

    #[test]
    fn json_duplicate_keys_and_depth_are_errors_with_their_line() {
        let (l, d) = lines("{\"kind\": \"A\"}\n{\"spec\": {\"a\": 1,\n \"a\": 2}}\n");
        assert_eq!(l, vec![1]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].origin.line, Some(3));
        assert!(
            d[0].message.contains("mapping key \"a\" already defined"),
            "{}",
            d[0]
        );
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let (_, d) = lines(&deep);
        assert!(
            d[0].message.contains("nested more than 100 levels"),
            "{}",
            d[0]
        );
        let at_limit = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(lines(&at_limit), (vec![1], vec![]));
    }

    #[test]
    fn deep_json_is_rejected_quickly() {
        // 100k levels took 73 s: JSON failed at serde_json's limit, then YAML scanned it all.
        for text in [
            format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000)),
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        ] {
            let started = std::time::Instant::now();
            let (l, d) = lines(&text);
            assert!(l.is_empty() && d.len() == 1, "{d:?}");
            assert!(d[0].is_error());
            // Regression guard, generous for a debug build.
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
    }

    #[test]
    fn invalid_utf8_is_located_without_echoing_it() {
        let bytes = b"kind: A\nmetadata:\n  name: caf\xe9\n";
        let d = decode_utf8("f.yaml", bytes).unwrap_err();
        assert_eq!(d.origin.line, Some(3));
        assert!(d.message.contains("byte column 12"), "{d}");
        assert!(!d.message.contains("caf"), "{d}");
        assert_eq!(
            decode_utf8("f.yaml", b"\xff").unwrap_err().origin.line,
            Some(1)
        );
        assert_eq!(decode_utf8("f.yaml", "é\n".as_bytes()), Ok("é\n"));
    }

    #[test]
    fn blank_streams() {
        for blank in ["", " \n\t\n", "# only\n---\n...\n"] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for not_blank in ["kind: A", "{}", "---\n~\n"] {
            assert!(!is_blank(not_blank), "{not_blank:?}");
        }
    }
}
