//! The crate's one error type: which field is wrong, and what is wrong with it.

use std::fmt;

/// What kind of problem a [`BlobError`] reports.
///
/// Lets callers branch on the class of fault without parsing the message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobErrorKind {
    /// The text is not well-formed JSON, or not a well-formed escaped JSON string.
    Syntax,
    /// A required field is absent.
    Missing,
    /// A field has the wrong JSON type (e.g. a number where a string belongs).
    WrongType,
    /// A field has the right type but an unacceptable value (bad GUID, bad URI, ...).
    Invalid,
}

impl fmt::Display for BlobErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlobErrorKind::Syntax => "syntax error",
            BlobErrorKind::Missing => "missing field",
            BlobErrorKind::WrongType => "wrong type",
            BlobErrorKind::Invalid => "invalid value",
        })
    }
}

/// A media session configuration (or one of its parts) was rejected.
///
/// Carries the offending field path in the blob's own (camelCase) names, e.g.
/// `audioSourceContexts[0]`, `mpUri` or `blob` for the document as a whole, and
/// a description of the problem. Displays as `path: problem`, for example
/// `audioSourceContexts[0]: not a GUID (expected 8-4-4-4-12 hex digits)`.
///
/// The fault is always in the input (the blob text, or a value set on a
/// configuration); fix the named field and retry.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct BlobError {
    kind: BlobErrorKind,
    path: String,
    problem: String,
}

impl BlobError {
    /// Creates an error for the field at `path` with a `problem` description.
    pub fn new(kind: BlobErrorKind, path: impl Into<String>, problem: impl Into<String>) -> Self {
        BlobError {
            kind,
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// The offending field path, e.g. `audioSourceContexts[0]`, or `blob` for the whole document.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong with the field, e.g. `not a GUID (expected 8-4-4-4-12 hex digits)`.
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// The class of problem.
    pub fn kind(&self) -> BlobErrorKind {
        self.kind
    }

    pub(crate) fn missing(path: impl Into<String>) -> Self {
        Self::new(BlobErrorKind::Missing, path, "missing")
    }

    pub(crate) fn invalid(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::new(BlobErrorKind::Invalid, path, problem)
    }

    pub(crate) fn wrong_type(
        path: impl Into<String>,
        expected: &str,
        found: &serde_json::Value,
    ) -> Self {
        Self::new(
            BlobErrorKind::WrongType,
            path,
            format!("expected {expected}, found {}", json_type_name(found)),
        )
    }

    /// Wraps a serde_json syntax error as `blob: invalid JSON at line L column C: message`.
    ///
    /// `column_shift` is subtracted from columns on line 1 (used when the text was
    /// wrapped in quotes before parsing).
    pub(crate) fn from_json(what: &str, err: &serde_json::Error, column_shift: usize) -> Self {
        let full = err.to_string();
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full);
        let column = if err.line() == 1 {
            err.column().saturating_sub(column_shift)
        } else {
            err.column()
        };
        Self::new(
            BlobErrorKind::Syntax,
            "blob",
            format!("{what} at line {} column {column}: {message}", err.line()),
        )
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_colon_problem() {
        let e = BlobError::invalid("audioSourceContexts[0]", "not a GUID");
        assert_eq!(e.to_string(), "audioSourceContexts[0]: not a GUID");
        assert_eq!(e.path(), "audioSourceContexts[0]");
        assert_eq!(e.problem(), "not a GUID");
        assert_eq!(e.kind(), BlobErrorKind::Invalid);
    }

    #[test]
    fn missing_reads_naturally() {
        assert_eq!(BlobError::missing("callId").to_string(), "callId: missing");
    }

    #[test]
    fn json_error_names_position() {
        let err =
            serde_json::from_str::<serde_json::Value>("{\"mpUri\":\"x\",}").expect_err("bad json");
        let e = BlobError::from_json("invalid JSON", &err, 0);
        assert_eq!(e.path(), "blob");
        assert!(
            e.problem()
                .starts_with("invalid JSON at line 1 column 14: "),
            "{e}"
        );
        assert!(!e.problem().ends_with("column 14"), "{e}");
        assert_eq!(e.kind(), BlobErrorKind::Syntax);
    }

    #[test]
    fn is_std_error() {
        fn takes(_: &dyn std::error::Error) {}
        takes(&BlobError::missing("x"));
    }
}
