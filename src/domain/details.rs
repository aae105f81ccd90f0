//! The business's own details of an order (`"details": {"destination": …,
//! "guests": 3}`): kept with the order and shown in its status view, never
//! read by the engine.
//!
//! Stored as compact JSON text, because the store's codec (bincode) cannot
//! hold a free-form JSON value. Bounded in size, depth and keys, and its
//! text held to the free-text rules, because it is shown to other parties.

use super::text::free_text;
use super::Invalid;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Largest details object, as compact JSON.
pub const MAX_BYTES: usize = 4096;
/// Most keys at any level.
pub const MAX_KEYS: usize = 32;
/// Deepest nesting of objects and arrays.
pub const MAX_DEPTH: usize = 4;
/// Longest key.
const MAX_KEY_LEN: usize = 64;

/// Shown to clients as the JSON object it is, stored as its text: serde's
/// human-readable flag tells the two apart (JSON is, the store's bincode
/// is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details(String);

/// Any JSON object within the bounds above.
impl utoipa::PartialSchema for Details {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder};
        ObjectBuilder::new()
            .description(Some(format!(
                "The business's own details, shown back as sent: a JSON object of at most \
                 {MAX_BYTES} bytes, {MAX_KEYS} keys a level and {MAX_DEPTH} levels deep."
            )))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl utoipa::ToSchema for Details {
    fn name() -> std::borrow::Cow<'static, str> {
        "Details".into()
    }
}

impl Serialize for Details {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match serializer.is_human_readable() {
            true => self.to_json().serialize(serializer),
            false => self.0.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Details, D::Error> {
        match deserializer.is_human_readable() {
            true => {
                let object = Map::<String, Value>::deserialize(deserializer)?;
                Details::validate(&object).map_err(serde::de::Error::custom)
            }
            false => String::deserialize(deserializer).map(Details),
        }
    }
}

impl Details {
    /// Checks a request's details object.
    pub fn validate(object: &Map<String, Value>) -> Result<Details, Invalid> {
        check_object(object, 1)?;
        let text = serde_json::to_string(object).map_err(|e| Invalid::new(format!("details: {e}")))?;
        if text.len() > MAX_BYTES {
            return Err(Invalid::new(format!("details must be at most {MAX_BYTES} bytes of JSON")));
        }
        Ok(Details(text))
    }

    /// The details as JSON, for a client.
    pub fn to_json(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

fn check_object(object: &Map<String, Value>, depth: usize) -> Result<(), Invalid> {
    if object.len() > MAX_KEYS {
        return Err(Invalid::new(format!("details: an object holds at most {MAX_KEYS} keys")));
    }
    for (key, value) in object {
        if free_text("details key", key, MAX_KEY_LEN)? != *key {
            return Err(Invalid::new(format!("details key {key:?} has white space around it")));
        }
        check_value(key, value, depth)?;
    }
    Ok(())
}

fn check_value(key: &str, value: &Value, depth: usize) -> Result<(), Invalid> {
    let deeper = || match depth < MAX_DEPTH {
        true => Ok(depth + 1),
        false => Err(Invalid::new(format!("details: {key} is nested deeper than {MAX_DEPTH} levels"))),
    };
    match value {
        Value::String(s) => free_text(&format!("details.{key}"), s, MAX_BYTES).map(|_| ()),
        Value::Object(o) => check_object(o, deeper()?),
        Value::Array(items) => {
            let depth = deeper()?;
            items.iter().try_for_each(|item| check_value(key, item, depth))
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn details_are_kept_as_sent() {
        let sent = json!({"destination": "Gangnam station", "guests": 3, "extras": ["crib"]});
        let details = Details::validate(&object(sent.clone())).unwrap();
        assert_eq!(details.to_json(), sent);
        assert_eq!(serde_json::to_value(&details).unwrap(), sent, "shown as the object");
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&details, config).unwrap();
        let (stored, _): (Details, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(stored, details, "stored as its text");
    }

    #[test]
    fn too_big_too_deep_or_unprintable_details_are_refused() {
        let err = |v: Value| Details::validate(&object(v)).unwrap_err().0;
        assert!(err(json!({"note": "x".repeat(MAX_BYTES)})).contains("at most"));
        assert!(err(json!({"a": {"b": {"c": {"d": {"e": 1}}}}})).contains("deeper"));
        assert!(err(json!({"note": "a\u{1b}[31m"})).contains("control"));
        assert!(err(json!({"": 1})).contains("empty"));
        let many: Map<String, Value> = (0..=MAX_KEYS).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(Details::validate(&many).unwrap_err().0.contains("keys"));
    }
}
