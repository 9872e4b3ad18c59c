//! Safe quoting of untrusted text in messages: bounded excerpts, escaped control
//! characters.
//!
//! Every error that quotes input (a blob field, a URI, a document value) goes
//! through [`excerpt`], so a hostile document can neither make a message as long as
//! itself nor write terminal escape sequences, carriage returns or line breaks to
//! whoever reads the message. Report lines that print document values in full use
//! [`escape_controls`].

use std::fmt::Write;

/// At most this many characters of the input appear in an [`excerpt`].
pub const EXCERPT_CHARS: usize = 80;

/// The input as a quoted, escaped, bounded excerpt for an error message.
///
/// The first [`EXCERPT_CHARS`] characters between double quotes, with `"` and `\`
/// escaped and control characters (C0, DEL, C1) and bidirectional-override
/// characters written as JSON-style escapes (`\n`, `\r`, `\t`, `\u001b`, ...). A
/// longer input ends in `…"` followed by its total length: `"aaaa…" (10485760 bytes)`.
/// Short, clean inputs read exactly as their JSON string literal.
///
/// ```
/// use media_blob::excerpt;
/// assert_eq!(excerpt("quic://h"), r#""quic://h""#);
/// assert_eq!(excerpt("a\x1b[2J\r\n"), r#""a\u001b[2J\r\n""#);
/// let long = "x".repeat(10_000_000);
/// let e = excerpt(&long);
/// assert!(e.ends_with("…\" (10000000 bytes)"), "{e}");
/// assert!(e.len() < 110);
/// ```
pub fn excerpt(input: &str) -> String {
    let cut = input
        .char_indices()
        .nth(EXCERPT_CHARS)
        .map_or(input.len(), |(i, _)| i);
    let head = &input[..cut];
    let mut out = String::with_capacity(head.len() + 24);
    out.push('"');
    push_escaped(&mut out, head, true);
    if cut < input.len() {
        let _ = write!(out, "…\" ({} bytes)", input.len());
    } else {
        out.push('"');
    }
    out
}

/// The input with control characters (C0, DEL, C1) and bidirectional-override
/// characters written as escapes (`\n`, `\r`, `\t`, `\u001b`, ...), for printing a
/// document's values to a terminal. Nothing is cut and nothing else changes.
///
/// ```
/// use media_blob::escape_controls;
/// assert_eq!(escape_controls("call \x1b[2J\rover"), r"call \u001b[2J\rover");
/// assert_eq!(escape_controls("plain \"text\" é"), "plain \"text\" é");
/// ```
pub fn escape_controls(input: &str) -> String {
    if !input.chars().any(needs_escape) {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len() + 16);
    push_escaped(&mut out, input, false);
    out
}

/// A message that may carry input (e.g. a serde error quoting a value) made safe to
/// print: control characters escaped as by [`escape_controls`], and at most
/// `max_chars` characters of the escaped text kept, with `… (N bytes)` appended when
/// cut (N: the message's own length). An escape cut at the end stays harmless text.
///
/// ```
/// use media_blob::bounded;
/// assert_eq!(bounded("bad\r\nvalue", 80), r"bad\r\nvalue");
/// assert_eq!(bounded(&"x".repeat(100), 4), "xxxx… (100 bytes)");
/// // Escapes count: 1,000 ESC characters stay within the bound.
/// let b = bounded(&"\u{1b}".repeat(1000), 240);
/// assert!(b.chars().count() <= 240 + 20 && !b.contains('\u{1b}'), "{b}");
/// ```
pub fn bounded(message: &str, max_chars: usize) -> String {
    // Escaping writes at most 6 characters for one; no more input than that is read.
    let head = message
        .char_indices()
        .nth(max_chars)
        .map_or(message.len(), |(i, _)| i);
    let escaped = escape_controls(&message[..head]);
    let cut = escaped
        .char_indices()
        .nth(max_chars)
        .map_or(escaped.len(), |(i, _)| i);
    let mut out = escaped[..cut].to_owned();
    if cut < escaped.len() || head < message.len() {
        let _ = write!(out, "… ({} bytes)", message.len());
    }
    out
}

/// True for characters that must not reach a terminal as they are: control
/// characters and the Unicode bidirectional overrides and isolates.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, s: &str, quotes: bool) {
    for c in s.chars() {
        match c {
            '"' if quotes => out.push_str("\\\""),
            '\\' if quotes => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_clean_input_is_its_json_literal() {
        for s in ["", "quic://h:1/x", "é ü 日本", "a\"b\\c"] {
            assert_eq!(excerpt(s), serde_json::Value::from(s).to_string(), "{s}");
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let e = excerpt("a\x1b[2J\r\n\t\u{7f}\u{9b}\u{202e}b");
        assert_eq!(e, r#""a\u001b[2J\r\n\t\u007f\u009b\u202eb""#);
        assert!(!e.chars().any(needs_escape), "{e}");
    }

    #[test]
    fn long_input_is_cut_with_its_length() {
        let s = "é".repeat(1_000);
        let e = excerpt(&s);
        assert_eq!(
            e,
            format!("\"{}…\" (2000 bytes)", "é".repeat(EXCERPT_CHARS))
        );
        let exact = "x".repeat(EXCERPT_CHARS);
        assert_eq!(excerpt(&exact), format!("\"{exact}\""));
        let ten_mb = "\x1b".repeat(10 << 20);
        let e = excerpt(&ten_mb);
        assert!(e.len() < 6 * EXCERPT_CHARS + 30, "{} bytes", e.len());
        assert!(!e.contains('\x1b'));
    }

    #[test]
    fn bounded_escapes_and_cuts() {
        let msg = format!("unknown variant `{}`", "\x1b".repeat(1 << 20));
        let b = bounded(&msg, 200);
        assert!(b.len() < 1300 && !b.contains('\x1b'), "{b}");
        assert!(b.ends_with(&format!("… ({} bytes)", msg.len())), "{b}");
        assert_eq!(bounded("short", 200), "short");
    }

    #[test]
    fn escape_controls_keeps_the_rest() {
        assert_eq!(escape_controls("x\r\ny"), r"x\r\ny");
        assert_eq!(escape_controls("\u{2066}"), r"\u2066");
        let clean = "mpUri: quic://h:1/MediaProcessor \"q\" \\";
        assert_eq!(escape_controls(clean), clean);
    }
}
