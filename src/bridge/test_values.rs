//! Short names for msgpack values in the codec's tests.

use rmpv::Value;

pub fn s(v: &str) -> Value {
    Value::from(v)
}

pub fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

pub fn map(entries: Vec<(Value, Value)>) -> Value {
    Value::Map(entries)
}

pub fn bin(b: &[u8]) -> Value {
    Value::Binary(b.to_vec())
}
