//! The properties every target checks, in one place: messages that quote input are
//! bounded and safe to print, and documents survive a round trip.

use std::fmt::{self, Write as _};

use serde_json::Value;

/// Most characters of any error message or ignore reason built from input.
///
/// The project quotes input only through `media_blob::excerpt` (80 characters, each
/// escaped to at most 6) or `media_blob::bounded` (240 for call events, 200 for JWT
/// library errors): with the surrounding words a message stays far below this.
pub const MAX_MESSAGE_CHARS: usize = 2048;

/// True for characters that must not reach a log or terminal raw: control characters
/// and the Unicode bidirectional overrides and isolates (the set `media_blob::excerpt`
/// escapes).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Panics unless `message` (what `what` produced) has at most `max_chars` characters
/// and no character [`is_unsafe_char`].
pub fn check_message(what: &str, message: &str, max_chars: usize) {
    let chars = message.chars().count();
    assert!(
        chars <= max_chars,
        "{what}: message of {chars} characters (at most {max_chars} allowed): {}",
        media_blob::bounded(message, 300)
    );
    if let Some(c) = message.chars().find(|c| is_unsafe_char(*c)) {
        panic!(
            "{what}: message carries the raw character U+{:04X}: {}",
            u32::from(c),
            media_blob::bounded(message, 300)
        );
    }
}

/// [`check_message`] on what `value` displays, without allocating unless the check
/// fails (for targets whose parser must not allocate at all).
pub fn check_display(what: &str, value: &dyn fmt::Display, max_chars: usize) {
    /// Counts characters and spots unsafe ones as the text is written.
    struct Scan {
        chars: usize,
        unsafe_char: bool,
    }
    impl fmt::Write for Scan {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.chars += s.chars().count();
            self.unsafe_char |= s.chars().any(is_unsafe_char);
            Ok(())
        }
    }
    let mut scan = Scan {
        chars: 0,
        unsafe_char: false,
    };
    let _ = write!(scan, "{value}");
    if scan.chars > max_chars || scan.unsafe_char {
        check_message(what, &value.to_string(), max_chars);
    }
}

/// Equality of JSON values where numbers that are not integers may differ by a few
/// units in the last place: serde_json's default float parsing (the workspace does not
/// enable `float_roundtrip`) may read the shortest text of an `f64` one ULP off.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || (x.is_f64() || y.is_f64())
                    && match (x.as_f64(), y.as_f64()) {
                        (Some(x), Some(y)) => {
                            (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                        }
                        _ => false,
                    }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Panics unless `after` is [`json_eq`] to `before` (the value `what` round-tripped).
pub fn check_round_trip(what: &str, before: &Value, after: &Value) {
    assert!(
        json_eq(before, after),
        "{what}: round trip changed the document\n before: {}\n after:  {}",
        media_blob::bounded(&before.to_string(), 600),
        media_blob::bounded(&after.to_string(), 600)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_may_differ_in_the_last_place_integers_may_not() {
        assert!(json_eq(&json!({"a": [0.1]}), &json!({"a": [0.1 + 1e-17]})));
        assert!(json_eq(&json!(1e300), &json!(1e300 * (1.0 + f64::EPSILON))));
        assert!(!json_eq(&json!(0.1), &json!(0.2)));
        assert!(!json_eq(&json!(1), &json!(2)));
        assert!(!json_eq(&json!(u64::MAX), &json!(u64::MAX - 1)));
        assert!(!json_eq(&json!({"a": 1}), &json!({"b": 1})));
        assert!(!json_eq(&json!([1]), &json!([1, 1])));
    }

    #[test]
    fn messages_are_checked() {
        check_message("ok", "mpUri: \"quic://h\\u001b\"", 100);
        let long = std::panic::catch_unwind(|| check_message("long", &"x".repeat(101), 100));
        assert!(long.is_err());
        let raw = std::panic::catch_unwind(|| check_message("raw", "a\u{1b}[2J", 100));
        assert!(raw.is_err());
        let bidi = std::panic::catch_unwind(|| check_message("bidi", "a\u{202e}b", 100));
        assert!(bidi.is_err());
    }
}
