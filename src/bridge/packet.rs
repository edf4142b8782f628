//! TEMPORARY STUB (replaced by helper's codec).
#![allow(dead_code, unused_variables)]
use bytes::Bytes;
use rmpv::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Binary(Bytes),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: u8,
    pub nsp: String,
    pub id: Option<u64>,
    pub data: Value,
}

#[derive(Debug)]
pub struct PacketError(pub String);
impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for PacketError {}

pub fn encode(p: &Packet) -> Vec<Part> {
    Vec::new()
}
pub fn decode(parts: &[Part]) -> Result<Packet, PacketError> {
    Err(PacketError("stub".into()))
}
pub fn to_msgpack(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}
pub fn from_msgpack(b: &[u8]) -> Result<Value, PacketError> {
    let mut r = b;
    rmpv::decode::read_value(&mut r).map_err(|e| PacketError(e.to_string()))
}
pub fn packet_to_value(p: &Packet) -> Value {
    Value::Nil
}
pub fn packet_from_value(v: &Value) -> Result<Packet, PacketError> {
    Err(PacketError("stub".into()))
}
pub fn to_ws_frames(parts: &[Part]) -> Vec<Bytes> {
    Vec::new()
}
pub fn from_ws_frames(frames: &[&[u8]]) -> Result<Vec<Part>, PacketError> {
    Err(PacketError("stub".into()))
}
pub fn js_number(f: f64) -> String {
    f.to_string()
}
