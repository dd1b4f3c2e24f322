//! One YAML document composed into a JSON value, event by event, as kubectl reads it and within
//! limits: at most [`MAX_DEPTH`] levels of nesting (checked as the parser goes, which keeps parsing
//! linear in the text), at most [`MAX_ALIAS_BYTES`] added by aliases (no "billion laughs"), a key
//! written twice in a mapping rejected (`mapping key "x" already defined at line N`, go-yaml v3's
//! words), and merge keys (`<<: *base`, `<<: [*a, *b]`) honoured: a key written in the mapping wins
//! over a merged one, and earlier maps of a merge list over later ones.
//!
//! Scalars resolve as `serde_yaml_ng` resolves them into a `serde_json::Value` (YAML 1.2 core
//! schema: `null`/`~`/empty, `true`/`false`, decimal, `0x`, `0o` and `0b` integers, floats, `.inf`),
//! so documents read the same as before; local tags (`!foo`) are rejected as they were.

mod events;

use events::{Event, Parser};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::num::ParseIntError;

/// The deepest nesting of mappings and sequences a document may have, aliases expanded. Kubernetes
/// objects are a dozen levels deep (a `List` adds two); a CRD's schema a few dozen.
pub const MAX_DEPTH: usize = 100;

/// The error of a document nested deeper than [`MAX_DEPTH`] (YAML or JSON).
pub(crate) fn too_deep() -> String {
    format!("nested more than {MAX_DEPTH} levels deep; Kubernetes objects are far shallower")
}

/// The most that aliases may add to a document, in bytes of values (estimated): enough for any
/// sharing of labels or templates, far below what a "billion laughs" document expands to.
pub const MAX_ALIAS_BYTES: usize = 16 << 20;

/// What one value costs beyond its text, for [`MAX_ALIAS_BYTES`].
const NODE_BYTES: usize = std::mem::size_of::<Value>();

const TAG_BOOL: &[u8] = b"tag:yaml.org,2002:bool";
const TAG_INT: &[u8] = b"tag:yaml.org,2002:int";
const TAG_FLOAT: &[u8] = b"tag:yaml.org,2002:float";
const TAG_NULL: &[u8] = b"tag:yaml.org,2002:null";
const TAG_MERGE: &[u8] = b"tag:yaml.org,2002:merge";

/// Why a document was not read, and the 1-based line in the file.
#[derive(Debug)]
pub(crate) struct Error {
    pub line: usize,
    pub message: String,
}

/// The document `text`, whose first line is line `first_line` of its file, as a JSON value (`null`
/// for an empty document).
pub(crate) fn parse(text: &str, first_line: usize) -> Result<Value, Error> {
    let mut parser = Parser::new(text);
    let mut composer = Composer::default();
    loop {
        let (event, line) = parser.next().map_err(|e| Error {
            line: first_line + e.line,
            message: e.message,
        })?;
        let line = first_line + line;
        match composer.event(event, line) {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(message) => return Err(Error { line, message }),
        }
    }
}

/// A composed node.
#[derive(Clone)]
struct Node {
    value: Value,
    /// The text of a scalar: what it stands for as a mapping key.
    text: Option<String>,
    /// A plain `<<` key.
    merge: bool,
    /// Levels of nesting in it: 0 for a scalar.
    height: usize,
    /// Estimated bytes.
    bytes: usize,
}

/// A mapping or sequence being composed.
struct Frame {
    anchor: Option<Vec<u8>>,
    height: usize,
    bytes: usize,
    items: Items,
}

enum Items {
    Sequence(Vec<Value>),
    Mapping(Mapping),
}

#[derive(Default)]
struct Mapping {
    entries: Map<String, Value>,
    /// The line of each key written in this mapping.
    lines: HashMap<String, usize>,
    /// The key whose value comes next.
    key: Option<Key>,
    /// The maps of `<<`, in order.
    merge: Vec<Map<String, Value>>,
}

enum Key {
    Name(String),
    Merge,
}

#[derive(Default)]
struct Composer {
    anchors: HashMap<Vec<u8>, Node>,
    alias_bytes: usize,
    stack: Vec<Frame>,
    root: Option<Value>,
    documents: usize,
}

impl Composer {
    /// Takes one event at `line`; the document's value once the stream ends.
    fn event(&mut self, event: Event, line: usize) -> Result<Option<Value>, String> {
        match event {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::DocumentStart if self.documents > 0 => {
                return Err("more than one document: separate documents with ---".into())
            }
            Event::DocumentStart => self.documents += 1,
            Event::StreamEnd => return Ok(Some(self.root.take().unwrap_or(Value::Null))),
            Event::Alias { anchor } => {
                let node = self.anchors.get(&anchor).ok_or_else(|| {
                    format!("unknown anchor *{}", String::from_utf8_lossy(&anchor))
                })?;
                let (bytes, height) = (node.bytes, node.height);
                // Counted before the copy is made: a rejected expansion costs nothing.
                self.copied(bytes)?;
                self.check_depth(height)?;
                let node = Node {
                    merge: false,
                    ..self.anchors[&anchor].clone()
                };
                self.attach(node, line)?;
            }
            Event::Scalar {
                anchor,
                tag,
                value,
                plain,
            } => {
                let text = String::from_utf8(value).map_err(|_| "a scalar is not UTF-8")?;
                let merge = plain && text == "<<" && tag.as_deref().is_none_or(|t| t == TAG_MERGE);
                let node = Node {
                    value: scalar(&text, tag.as_deref(), plain)?,
                    bytes: NODE_BYTES + text.len(),
                    text: Some(text),
                    merge,
                    height: 0,
                };
                self.anchor(anchor, &node)?;
                self.attach(node, line)?;
            }
            Event::SequenceStart { anchor, tag } => {
                self.start(anchor, tag, Items::Sequence(Vec::new()))?
            }
            Event::MappingStart { anchor, tag } => {
                self.start(anchor, tag, Items::Mapping(Mapping::default()))?
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = self.stack.pop().ok_or("unbalanced collection end")?;
                let value = match frame.items {
                    Items::Sequence(items) => Value::Array(items),
                    Items::Mapping(mapping) => Value::Object(merged(mapping)),
                };
                let node = Node {
                    value,
                    text: None,
                    merge: false,
                    height: frame.height + 1,
                    bytes: frame.bytes + NODE_BYTES,
                };
                self.anchor(frame.anchor, &node)?;
                self.attach(node, line)?;
            }
        }
        Ok(None)
    }

    fn start(
        &mut self,
        anchor: Option<Vec<u8>>,
        tag: Option<Vec<u8>>,
        items: Items,
    ) -> Result<(), String> {
        check_tag(tag.as_deref())?;
        if self.key_expected() {
            return Err(
                "a mapping key must be a scalar (a name), not a mapping or sequence".into(),
            );
        }
        self.check_depth(1)?;
        self.stack.push(Frame {
            anchor,
            height: 0,
            bytes: 0,
            items,
        });
        Ok(())
    }

    /// Fails when a node `height` levels deep does not fit below the open collections.
    fn check_depth(&self, height: usize) -> Result<(), String> {
        if self.stack.len() + height > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(())
    }

    fn key_expected(&self) -> bool {
        matches!(self.stack.last(), Some(Frame { items: Items::Mapping(m), .. }) if m.key.is_none())
    }

    /// Keeps a copy of `node` for the aliases of `anchor`. The copy counts against the alias
    /// budget: anchors nested around one value would otherwise copy it once per level.
    fn anchor(&mut self, anchor: Option<Vec<u8>>, node: &Node) -> Result<(), String> {
        if let Some(anchor) = anchor {
            self.copied(node.bytes)?;
            self.anchors.insert(anchor, node.clone());
        }
        Ok(())
    }

    /// Counts `bytes` copied by an anchor or an alias; an error past [`MAX_ALIAS_BYTES`].
    fn copied(&mut self, bytes: usize) -> Result<(), String> {
        self.alias_bytes += bytes;
        if self.alias_bytes > MAX_ALIAS_BYTES {
            return Err(format!(
                "anchors and aliases copy more than {} MiB of this document; write the shared values out or alias less",
                MAX_ALIAS_BYTES >> 20
            ));
        }
        Ok(())
    }

    /// Places a finished node in the open collection (or as the root).
    fn attach(&mut self, node: Node, line: usize) -> Result<(), String> {
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(node.value);
            return Ok(());
        };
        frame.height = frame.height.max(node.height);
        frame.bytes += node.bytes;
        match &mut frame.items {
            Items::Sequence(items) => items.push(node.value),
            Items::Mapping(mapping) => match mapping.key.take() {
                None => {
                    let name = node.text.ok_or(
                        "a mapping key must be a scalar (a name), not a mapping or sequence",
                    )?;
                    // As go-yaml v3 (kubectl): keys compare by their text, `<<` included.
                    if let Some(first) = mapping.lines.get(&name) {
                        return Err(format!(
                            "mapping key {name:?} already defined at line {first}"
                        ));
                    }
                    mapping.lines.insert(name.clone(), line);
                    mapping.key = Some(if node.merge {
                        Key::Merge
                    } else {
                        Key::Name(name)
                    });
                }
                Some(Key::Name(name)) => {
                    mapping.entries.insert(name, node.value);
                }
                Some(Key::Merge) => mapping.merge = merge_sources(node.value)?,
            },
        }
        Ok(())
    }
}

/// The maps a `<<` value merges: one map, or a sequence of maps (go-yaml's rule and words).
fn merge_sources(value: Value) -> Result<Vec<Map<String, Value>>, String> {
    const WANTS_MAPS: &str = "map merge requires map or sequence of maps as the value";
    match value {
        Value::Object(map) => Ok(vec![map]),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                _ => Err(WANTS_MAPS.to_string()),
            })
            .collect(),
        _ => Err(WANTS_MAPS.into()),
    }
}

/// The mapping's entries with its `<<` maps merged in: an entry written in the mapping wins, and
/// of the merged maps the earlier one (go-yaml, hence kubectl, and the YAML merge key spec).
fn merged(mapping: Mapping) -> Map<String, Value> {
    let mut entries = mapping.entries;
    for source in mapping.merge {
        for (key, value) in source {
            entries.entry(key).or_insert(value);
        }
    }
    entries
}

/// Only the YAML core tags are read (`!!str`, `!!int`, ...); a local tag was an error before too.
fn check_tag(tag: Option<&[u8]>) -> Result<(), String> {
    match tag {
        Some(tag) if tag.starts_with(b"!") => Err(format!(
            "unsupported tag {}: Kubernetes manifests have no custom tags",
            String::from_utf8_lossy(tag)
        )),
        _ => Ok(()),
    }
}

/// A scalar's value, resolved as `serde_yaml_ng` resolves it into a `serde_json::Value`.
fn scalar(text: &str, tag: Option<&[u8]>, plain: bool) -> Result<Value, String> {
    check_tag(tag)?;
    let invalid = |expected: &str| format!("invalid value: string {text:?}, expected {expected}");
    match tag {
        Some(TAG_BOOL) => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| invalid("a boolean")),
        Some(TAG_INT) => integer(text)?.ok_or_else(|| invalid("an integer")),
        Some(TAG_FLOAT) => parse_f64(text).map(float).ok_or_else(|| invalid("a float")),
        Some(TAG_NULL) => is_null(text)
            .then_some(Value::Null)
            .ok_or_else(|| invalid("null")),
        None if plain => untagged(text),
        _ => Ok(Value::String(text.to_string())),
    }
}

fn untagged(text: &str) -> Result<Value, String> {
    if text.is_empty() || is_null(text) {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(int) = integer(text)? {
        return Ok(int);
    }
    if !digits_but_not_number(text) {
        if let Some(f) = parse_f64(text) {
            return Ok(float(f));
        }
    }
    Ok(Value::String(text.to_string()))
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn is_null(text: &str) -> bool {
    matches!(text, "null" | "Null" | "NULL" | "~")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// An integer that fits 64 bits; an error for a longer one (JSON numbers have 64 bits here).
fn integer(text: &str) -> Result<Option<Value>, String> {
    if let Some(u) = parse_unsigned(text, u64::from_str_radix) {
        return Ok(Some(u.into()));
    }
    if let Some(i) = parse_negative(text, i64::from_str_radix) {
        return Ok(Some(i.into()));
    }
    let wide = parse_unsigned(text, u128::from_str_radix).is_some()
        || parse_negative(text, i128::from_str_radix).is_some();
    if wide {
        return Err(format!("integer {text} does not fit in 64 bits"));
    }
    Ok(None)
}

fn radix_prefixed<T>(text: &str, parse: fn(&str, u32) -> Result<T, ParseIntError>) -> Option<T> {
    [("0x", 16), ("0o", 8), ("0b", 2)]
        .into_iter()
        .find_map(|(prefix, radix)| {
            let rest = text.strip_prefix(prefix)?;
            if rest.starts_with(['+', '-']) {
                return None;
            }
            parse(rest, radix).ok()
        })
}

fn parse_unsigned<T>(text: &str, parse: fn(&str, u32) -> Result<T, ParseIntError>) -> Option<T> {
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    if let Some(n) = radix_prefixed(unsigned, parse) {
        return Some(n);
    }
    if unsigned.starts_with(['+', '-']) || digits_but_not_number(text) {
        return None;
    }
    parse(unsigned, 10).ok()
}

fn parse_negative<T>(text: &str, parse: fn(&str, u32) -> Result<T, ParseIntError>) -> Option<T> {
    let prefixed = [("-0x", 16), ("-0o", 8), ("-0b", 2)]
        .into_iter()
        .find_map(|(prefix, radix)| {
            let rest = text.strip_prefix(prefix)?;
            parse(&format!("-{rest}"), radix).ok()
        });
    if prefixed.is_some() {
        return prefixed;
    }
    if digits_but_not_number(text) {
        return None;
    }
    parse(text, 10).ok()
}

fn parse_f64(text: &str) -> Option<f64> {
    let unsigned = match text.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => text,
    };
    if let ".inf" | ".Inf" | ".INF" = unsigned {
        return Some(f64::INFINITY);
    }
    if let "-.inf" | "-.Inf" | "-.INF" = text {
        return Some(f64::NEG_INFINITY);
    }
    if let ".nan" | ".NaN" | ".NAN" = text {
        return Some(f64::NAN);
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Leading zeros followed by digits are a string in YAML 1.2 (`0755`), not a number.
fn digits_but_not_number(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Result<Value, Error> {
        parse(text, 1)
    }

    fn error(text: &str) -> (usize, String) {
        let e = read(text).expect_err("must be rejected");
        (e.line, e.message)
    }

    #[test]
    fn scalars_resolve_as_serde_yaml_ng_resolves_them() {
        let scalars = [
            "",
            "~",
            "null",
            "NULL",
            "true",
            "False",
            "yes",
            "off",
            "0",
            "12",
            "+12",
            "-12",
            "0x1F",
            "-0x1F",
            "0o17",
            "-0o17",
            "0b101",
            "-0b101",
            "+-5",
            "0x-5",
            "0755",
            "-0755",
            "1.5",
            "1e3",
            "-1.5e-3",
            ".inf",
            "+.inf",
            "-.INF",
            ".nan",
            "inf",
            "NaN",
            "1_000",
            "12:30",
            "-",
            "18446744073709551615",
            "-9223372036854775808",
            "9223372036854775808",
            "'quoted'",
            "\"12\"",
            "'true'",
            "!!str 12",
            "!!int '12'",
            "!!int 0x10",
            "!!float 1",
            "!!float '.inf'",
            "!!bool 'true'",
            "!!null ''",
            "!!str",
            "|\n  block 12\n",
            ">-\n  folded\n  text\n",
            "x # comment",
            "a b  c",
            "!!binary aGk=",
        ];
        for s in scalars {
            let text = format!("v: {s}\n");
            let ours = read(&text).map_err(|e| e.message);
            let theirs = serde_yaml_ng::from_str::<Value>(&text).map_err(|e| e.to_string());
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{s:?}: {ours:?} vs {theirs:?}"
            );
            if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                assert_eq!(ours, theirs, "{s:?}");
            }
        }
    }

    #[test]
    fn documents_read_as_before() {
        // Every example manifest, document by document, reads as serde_yaml_ng reads it.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        let mut files = vec![std::path::PathBuf::from(root)];
        let mut documents = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (line, doc) in crate::document::yaml_documents(&text).unwrap() {
                let theirs: Value = serde_yaml_ng::from_str(&doc).unwrap();
                let ours = parse(&doc, line).unwrap();
                assert_eq!(ours, theirs, "{}:{line}", path.display());
                documents += 1;
            }
        }
        assert!(
            documents >= 40,
            "only {documents} documents found under {root}"
        );
    }

    #[test]
    fn duplicate_keys_are_rejected_with_both_lines() {
        let text =
            "spec:\n  podSelector: {}\n  ingress: []\n  podSelector:\n    matchLabels: {a: b}\n";
        assert_eq!(
            error(text),
            (
                4,
                "mapping key \"podSelector\" already defined at line 2".into()
            )
        );
        // Keys compare by their text, as in go-yaml v3: "1" and 1 are the same key.
        assert_eq!(
            error("{1: a, '1': b}").1,
            "mapping key \"1\" already defined at line 1"
        );
        assert!(error("a: 1\n<<: {b: 1}\n<<: {c: 1}\n")
            .1
            .contains("\"<<\" already defined"));
        // The same key in different mappings is fine.
        assert_eq!(
            read("a: {x: 1}\nb: {x: 2}\n").unwrap(),
            json!({"a": {"x": 1}, "b": {"x": 2}})
        );
    }

    #[test]
    fn merge_keys_are_honoured_as_kubectl_does() {
        let text = "\
base: &base {app: web, tier: fe}
extra: &extra {tier: be, team: a}
one:
  <<: *base
  tier: db
two:
  tier: db
  <<: [*base, *extra]
inline:
  <<: {x: 1}
";
        let v = read(text).unwrap();
        // A key written in the mapping wins wherever it is written; the first merged map wins.
        assert_eq!(v["one"], json!({"app": "web", "tier": "db"}));
        assert_eq!(v["two"], json!({"app": "web", "tier": "db", "team": "a"}));
        assert_eq!(v["inline"], json!({"x": 1}));
        // A merged key overridden by a written one is not a duplicate; `"<<"` quoted is a key.
        assert_eq!(read("'<<': 1\n").unwrap(), json!({"<<": 1}));
        // Merges nest: a merged map's own merges are already applied.
        let chain = "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n";
        assert_eq!(read(chain).unwrap()["c"], json!({"x": 1, "y": 2, "z": 3}));
        assert_eq!(
            error("a: 1\nb:\n  <<: [{x: 1}, 2]\n"),
            (
                3,
                "map merge requires map or sequence of maps as the value".into()
            )
        );
        assert!(error("<<: 5\n").1.starts_with("map merge requires"));
    }

    #[test]
    fn nesting_is_limited_and_checked_as_it_is_read() {
        let at_limit = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(read(&at_limit).is_ok());
        for deep in [
            format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1)),
            format!("a: {}", "[".repeat(100_000)),
            format!("{}1", "{a: ".repeat(100_000)),
            (0..MAX_DEPTH + 1)
                .map(|i| format!("{}a:\n", " ".repeat(i)))
                .collect(),
            format!("{}x", "- ".repeat(100_000)),
        ] {
            let started = std::time::Instant::now();
            let (line, message) = error(&deep);
            assert!(
                message.starts_with("nested more than 100 levels"),
                "{message}"
            );
            assert!(line >= 1);
            // Regression guard, generous for a debug build: 100k levels took 36 s before.
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
        // Aliases count with the depth they are expanded at.
        let text = format!("a: &a {}{}\nb: [[*a]]\n", "[".repeat(98), "]".repeat(98));
        assert_eq!(error(&text).0, 2);
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut laughs = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        for w in names.windows(2) {
            let (p, n) = (w[0], w[1]);
            laughs.push_str(&format!(
                "{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let (_, message) = error(&laughs);
        assert!(
            message.starts_with("anchors and aliases copy more than 16 MiB"),
            "{message}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Anchors nested around one large value copy it once per level, with no alias at all:
        // counted too (90 levels around 300 KB made gigabytes).
        let payload = vec!["xxxxxxxxxx"; 30_000].join(",");
        let opened: String = (0..90).map(|i| format!("&a{i} [")).collect();
        let nested = format!("v: {opened}{payload}{}\n", "]".repeat(90));
        let (_, message) = error(&nested);
        assert!(
            message.starts_with("anchors and aliases copy more than 16 MiB"),
            "{message}"
        );
        // Ordinary sharing is fine.
        let v = read("l: &l {app: web}\np: {labels: *l}\nq: {labels: *l}\n").unwrap();
        assert_eq!(v["q"]["labels"], json!({"app": "web"}));
        assert!(error("a: *nope\n").1.starts_with("unknown anchor"));
    }

    #[test]
    fn keys_must_be_scalars_and_tags_core() {
        assert!(error("[a]: 1\n")
            .1
            .starts_with("a mapping key must be a scalar"));
        assert!(error("a: !foo 1\n").1.starts_with("unsupported tag !foo"));
        assert!(error("a: !!int x\n").1.contains("expected an integer"));
        let (line, message) = error("a: 1\nb: [x\n");
        assert_eq!(line, 3, "{message}");
    }
}
