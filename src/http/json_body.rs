//! How a request body is read as JSON, stricter than serde's defaults: the body must be an
//! object (serde would fill a struct from an array of its fields' values, `[null]` and all),
//! and a key may appear once (serde_json's `Value` keeps the last of two, while the structs
//! refuse the second: one body must not mean two things to two readers, a proxy and us). Bodies
//! read through a `Value` (optional ones, and those under an idempotency key) also take a whole
//! number written with a fraction as the integer it is.

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// `T`, read only from a JSON object (or from `null`, which `T` decides on).
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectVisitor(std::marker::PhantomData)).map(JsonObject)
    }
}

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        T::deserialize(().into_deserializer())
    }
}

/// Any JSON value, refused when an object names a key twice.
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    /// A whole number written with a fraction (`1606.0`, `1e3`) is an integer, as JSON Schema
    /// has it; only below 2^53, where a double holds every integer exactly.
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if value.fract() == 0.0 && value.abs() < EXACT {
            // Exact: the value is whole and within ±2^53.
            return Ok(Value::Number((value as i64).into()));
        }
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some((key, StrictValue(value))) = map.next_entry::<String, StrictValue>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(text: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str::<StrictValue>(text).map(|v| v.0)
    }

    #[test]
    fn a_key_named_twice_is_refused_at_any_depth() {
        assert!(strict(r#"{"amount": 1, "amount": 1000000}"#).is_err());
        assert!(strict(r#"{"a": [{"b": 1, "b": 2}]}"#).is_err());
        assert_eq!(strict("[1606.0, 1e3, 2.5, 1e300]").unwrap(), serde_json::json!([1606, 1000, 2.5, 1e300]));
        assert_eq!(
            strict(r#"{"a": [1, 2.5, null, "x", true], "b": {}}"#).unwrap(),
            serde_json::json!({"a": [1, 2.5, null, "x", true], "b": {}})
        );
    }

    #[test]
    fn only_objects_and_null_are_read_as_bodies() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Body {
            a: Option<u8>,
        }
        let read = |text: &str| serde_json::from_str::<JsonObject<Body>>(text).map(|b| b.0);
        assert_eq!(read(r#"{"a": 1}"#).unwrap(), Body { a: Some(1) });
        assert!(read("null").is_err() && read("[1]").is_err() && read("[null]").is_err() && read("\"a\"").is_err());
        let optional = |text: &str| serde_json::from_str::<JsonObject<StrictValue>>(text).map(|b| b.0.0);
        assert_eq!(optional("null").unwrap(), Value::Null);
        assert!(optional("[{}]").is_err());
    }
}
