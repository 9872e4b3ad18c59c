//! [`Field`]: a JSON property that is absent, `null`, or has a value.
//!
//! Graph documents distinguish the three (the seed's responses list many properties as
//! `null`; its requests omit them). Keeping the distinction lets every document
//! re-serialize equal to what was read.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A JSON object property: [`Field::Absent`], [`Field::Null`] or [`Field::Value`].
///
/// Use it with `#[serde(default, skip_serializing_if = "Field::is_absent")]`:
/// an absent property stays absent, `null` stays `null`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Field<T> {
    /// The property is not in the object.
    #[default]
    Absent,
    /// The property is present and `null`.
    Null,
    /// The property is present with a value.
    Value(T),
}

impl<T> Field<T> {
    /// True when the property is not in the object.
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// True when the property is present and `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Field::Null)
    }

    /// True when the property has a value.
    pub fn is_value(&self) -> bool {
        matches!(self, Field::Value(_))
    }

    /// The value, if any (absent and `null` both give `None`).
    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Value(v) => Some(v),
            Field::Absent | Field::Null => None,
        }
    }

    /// The value mutably, if any.
    pub fn value_mut(&mut self) -> Option<&mut T> {
        match self {
            Field::Value(v) => Some(v),
            Field::Absent | Field::Null => None,
        }
    }

    /// The value, consuming the field.
    pub fn into_value(self) -> Option<T> {
        match self {
            Field::Value(v) => Some(v),
            Field::Absent | Field::Null => None,
        }
    }

    /// A `Field` of a reference to the value.
    pub fn as_ref(&self) -> Field<&T> {
        match self {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Value(v) => Field::Value(v),
        }
    }

    /// Map the value, keeping absent and `null`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        match self {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Value(v) => Field::Value(f(v)),
        }
    }
}

impl<T> From<T> for Field<T> {
    fn from(v: T) -> Self {
        Field::Value(v)
    }
}

impl<T> From<Option<T>> for Field<T> {
    /// `None` becomes [`Field::Absent`] (the canonical choice when sending).
    fn from(v: Option<T>) -> Self {
        match v {
            Some(v) => Field::Value(v),
            None => Field::Absent,
        }
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // Only reached without `skip_serializing_if`; `null` is the closest form.
            Field::Absent | Field::Null => serializer.serialize_none(),
            Field::Value(v) => serializer.serialize_some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Called only when the property is present; `#[serde(default)]` covers absence.
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(v) => Field::Value(v),
            None => Field::Null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct S {
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        a: Field<u32>,
    }

    #[test]
    fn tri_state_round_trips() {
        for v in [json!({}), json!({"a": null}), json!({"a": 7})] {
            let s: S = serde_json::from_value(v.clone()).expect("parse");
            assert_eq!(serde_json::to_value(&s).expect("ser"), v);
        }
        let s: S = serde_json::from_value(json!({"a": null})).expect("parse");
        assert!(s.a.is_null());
    }
}
