//! Strict reading of untrusted JSON documents: a repeated key is an error.
//!
//! `serde_json` keeps the last of two equal keys of an object, so
//! `{"callbackUri":"https://a","callbackUri":"https://b"}` reads as `https://b` here
//! while another reader (a proxy, a log, a validator in front) may have used `https://a`.
//! Graph refuses such a body; so do the emulator and the callback server, through
//! [`from_slice_strict`]. The error names the key and where it is (its JSON path, line
//! and column), quoting the key only as a bounded, escaped excerpt.
//!
//! Keys `serde_json` reserves for itself (`$serde_json::private::...`) are refused too:
//! with its `raw_value` feature (on in this workspace) every later `Value` reading of
//! `{"$serde_json::private::RawValue":"<text>"}` replaces the object with `<text>`
//! parsed as JSON, which would carry a repeated key past this check.
//!
//! ```
//! let v = signaling::json::from_slice_strict(br#"{"a":[{"b":1}]}"#).unwrap();
//! assert_eq!(v["a"][0]["b"], 1);
//! let e = signaling::json::from_slice_strict(br#"{"a":[{"b":1,"b":2}]}"#).unwrap_err();
//! assert_eq!(e.to_string(), r#"duplicate key "b" in a[0] at line 1 column 16"#);
//! ```

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Most characters of the path quoted in an error: a path may be 128 levels deep,
/// each key already cut to 40 characters.
const MAX_PATH_CHARS: usize = 200;

/// The prefix of the keys `serde_json` gives a meaning of its own.
const SERDE_JSON_PRIVATE: &str = "$serde_json::private::";

/// Parse `bytes` as one JSON document, refusing any object with a repeated key or a
/// key reserved by `serde_json`.
///
/// Otherwise it reads exactly as `serde_json::from_slice::<Value>` (same nesting
/// limit, trailing characters refused, object order kept).
pub fn from_slice_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { at: &Path::Root }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Where a value sits, as a chain to the root (no allocation while parsing).
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("the document"),
            Path::Key(Path::Root, k) => f.write_str(&media_blob::bounded(k, 40)),
            Path::Key(parent, k) => write!(f, "{parent}.{}", media_blob::bounded(k, 40)),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// A value read at `at`.
struct Strict<'a> {
    at: &'a Path<'a>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        // serde_json never hands a non-finite number to a visitor.
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict {
            at: &Path::Index(self.at, items.len()),
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.starts_with(SERDE_JSON_PRIVATE) {
                return Err(de::Error::custom(format_args!(
                    "reserved key {} in {} (serde_json reads an object with it as JSON text)",
                    media_blob::excerpt(&key),
                    media_blob::bounded(&self.at.to_string(), MAX_PATH_CHARS)
                )));
            }
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {} in {}",
                    media_blob::excerpt(&key),
                    media_blob::bounded(&self.at.to_string(), MAX_PATH_CHARS)
                )));
            }
            let value = map.next_value_seed(Strict {
                at: &Path::Key(self.at, &key),
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_serde_json_without_duplicates() {
        let docs: [&[u8]; 6] = [
            br#"{"a":1,"b":[true,null,-1.5e3,18446744073709551615,"x\u0000"],"c":{}}"#,
            b"[]",
            b"  \"s\" ",
            b"-0",
            br#"{"a":{"a":{"a":1}}}"#,
            br#"[{"k":1},{"k":2}]"#,
        ];
        for doc in docs {
            let strict = from_slice_strict(doc).unwrap();
            let plain: Value = serde_json::from_slice(doc).unwrap();
            assert_eq!(strict, plain, "{}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        let docs: [&[u8]; 5] = [b"", b"{", b"[1,]", b"{} {}", b"\"\xff\""];
        for doc in docs {
            assert!(from_slice_strict(doc).is_err());
            assert!(serde_json::from_slice::<Value>(doc).is_err());
        }
        // The same nesting limit: deep documents are an error, not a stack overflow.
        let deep = "[".repeat(100_000);
        let e = from_slice_strict(deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }

    #[test]
    fn duplicates_are_named_with_their_path() {
        let e = from_slice_strict(br#"{"callbackUri":"https://a","callbackUri":"https://b"}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"duplicate key "callbackUri" in the document at line 1 column 40"#
        );
        let e = from_slice_strict(br#"{"targets":[{},{"identity":{"user":{"id":1,"id":2}}}]}"#)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(r#"duplicate key "id" in targets[1].identity.user at line 1"#),
            "{e}"
        );
        // Hostile keys are quoted bounded and escaped, in the path too.
        let long = "k\u{1b}".repeat(100_000);
        let doc = format!(r#"{{"{long}":{{"a":1,"a":2}}}}"#);
        let e = from_slice_strict(doc.as_bytes()).unwrap_err().to_string();
        assert!(e.len() < 300 && !e.contains('\u{1b}'), "{e}");
    }

    /// Found by fuzzing: the strict reader kept serde_json's raw-value key as a plain
    /// key while `serde_json::from_slice::<Value>` parsed the string after it, so the
    /// two readers disagreed and a repeated key could hide inside the string.
    #[test]
    fn serde_json_private_keys_are_refused() {
        let smuggled = br#"{"value":[{"$serde_json::private::RawValue":"{\"a\":1,\"a\":2}"}]}"#;
        let text = std::str::from_utf8(smuggled).unwrap();
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(plain["value"][0], serde_json::json!({"a": 2}));
        let e = from_slice_strict(smuggled).unwrap_err();
        assert!(
            e.to_string().starts_with(
                r#"reserved key "$serde_json::private::RawValue" in value[0] (serde_json reads"#
            ),
            "{e}"
        );
        assert!(from_slice_strict(br#"{"k":{"x":1,"$serde_json::private::Number":"1"}}"#).is_err());
        // As a value, or as part of another key, it is plain text.
        let v = from_slice_strict(
            br#"{"k":"$serde_json::private::RawValue","x$serde_json::private::":1}"#,
        );
        assert!(v.is_ok());
    }

    /// Found by fuzzing: the path of a duplicate deep in the document was quoted whole
    /// (126 keys of 40 escaped characters: a 30 KB message from a 31 KB document).
    #[test]
    fn deep_paths_are_bounded() {
        let key = "\\u001b".repeat(40);
        let depth = 126;
        let doc = format!(
            "{}{{\"a\":1,\"a\":2}}{}",
            format!("{{\"{key}\":").repeat(depth),
            "}".repeat(depth)
        );
        let e = from_slice_strict(doc.as_bytes()).unwrap_err().to_string();
        assert!(e.chars().count() < 400, "{} chars: {e}", e.chars().count());
        assert!(e.starts_with(r#"duplicate key "a" in \u001b\u001b"#), "{e}");
        // The whole path's length is named: each key as shown (bounded itself), dots.
        let shown = media_blob::bounded(&"\u{1b}".repeat(40), 40);
        assert!(
            e.contains(&format!("({} bytes)", depth * (shown.len() + 1) - 1)),
            "{e}"
        );
    }
}
