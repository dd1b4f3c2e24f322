//! Text from input shown on a terminal: names read from files or the API are data, never
//! terminal control (an escape sequence in a pod name must not reach the screen as one).

use std::borrow::Cow;

/// `text` with every control character written as its escape (`\u{1b}`, `\n`); unchanged (not
/// copied) when it has none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c.is_control() {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert!(matches!(printable("shop/web-1"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}]0;x\u{7}b\n"), "a\\u{1b}]0;x\\u{7}b\\n");
        assert_eq!(printable("ünïcode"), "ünïcode");
    }
}
