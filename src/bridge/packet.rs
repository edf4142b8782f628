//! Socket.IO packets as the Redis bridge moves them.
//!
//! Stock `@socket.io/redis-adapter` nodes publish a broadcast's packet as
//! msgpack (written by `notepack.io`); on receipt they `notepack.decode` it and
//! hand it to socket.io-parser's default `Encoder`. Our workers exchange that
//! encoder's output as WebSocket frames. The bridge converts between the
//! three forms, byte for byte as the JS side does, so clients cannot tell
//! which side of the bridge a packet came from:
//!
//! - [`from_msgpack`] / [`to_msgpack`] (`msgpack.rs`): msgpack bytes and
//!   [`Value`]s;
//! - [`packet_from_value`] / [`packet_to_value`] (here): the packet object
//!   inside the adapter's message and a [`Packet`];
//! - [`encode`] / [`decode`] (here): a [`Packet`] and the encoder's output,
//!   read as JS would read what notepack decoded (numbers are doubles, `Date`s
//!   are timestamps, map keys are strings ordered as JS orders own
//!   properties: `js.rs`; JSON as JS writes and parses it: `json.rs`);
//! - [`to_ws_frames`] / [`from_ws_frames`] (`ws.rs`): that output and
//!   WebSocket frames.
//!
//! [`from_msgpack`]: super::msgpack::from_msgpack
//! [`to_msgpack`]: super::msgpack::to_msgpack
//! [`to_ws_frames`]: super::ws::to_ws_frames
//! [`from_ws_frames`]: super::ws::from_ws_frames

use std::fmt::{self, Write as _};

use bytes::Bytes;
use rmpv::Value;

use super::js::{js, js_key, Js};
use super::json::{digits, JsonParser, JsonWriter};

/// Packet types of the Socket.IO protocol (v5) that a broadcast can carry.
pub const EVENT: u8 = 2;
pub const ACK: u8 = 3;
pub const BINARY_EVENT: u8 = 5;
pub const BINARY_ACK: u8 = 6;

/// Deepest nesting of arrays and maps [`from_msgpack`](super::msgpack::from_msgpack) accepts.
pub const MAX_DEPTH: usize = 64;

/// Deepest nesting [`decode`] accepts in a packet's data: two less than
/// [`MAX_DEPTH`], so the adapter's `[uid, packet, opts]` message holding that
/// data still decodes.
const MAX_DATA_DEPTH: usize = MAX_DEPTH - 2;

/// One part of socket.io-parser's encoder output: a string, or a binary attachment.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Binary(Bytes),
}

/// A Socket.IO packet as adapters broadcast it: EVENT (2) or ACK (3).
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub kind: u8,
    pub nsp: String,
    pub id: Option<u64>,
    pub data: Value,
}

/// Why input could not be read as a packet (or its msgpack, or its frames).
#[derive(Debug)]
pub struct PacketError(pub String);

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PacketError {}

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, PacketError> {
    Err(PacketError(msg.into()))
}

// ---------------------------------------------------------------------------
// Encoder

/// The parts socket.io-parser's default `Encoder` makes of the packet the
/// adapter decoded: `<type>[<attachments>-][<nsp>,][<id>]<json data>`, then
/// the binary attachments.
pub fn encode(p: &Packet) -> Vec<Part> {
    let mut json = JsonWriter {
        out: String::new(),
        bins: Vec::new(),
    };
    // `if (null != obj.data)`: no data, no JSON.
    match js(&p.data) {
        Js::Null | Js::Undefined => {}
        data => json.value(data, 0),
    }
    let mut head = String::with_capacity(json.out.len() + p.nsp.len() + 24);
    let kind = match p.kind {
        BINARY_EVENT => EVENT,
        BINARY_ACK => ACK,
        k => k,
    };
    if json.bins.is_empty() {
        let _ = write!(head, "{kind}");
    } else {
        let kind = match kind {
            EVENT => BINARY_EVENT,
            ACK => BINARY_ACK,
            k => k,
        };
        let _ = write!(head, "{kind}{}-", json.bins.len());
    }
    if !p.nsp.is_empty() && p.nsp != "/" {
        head.push_str(&p.nsp);
        head.push(',');
    }
    if let Some(id) = p.id {
        let _ = write!(head, "{id}");
    }
    head.push_str(&json.out);
    let mut parts = Vec::with_capacity(1 + json.bins.len());
    parts.push(Part::Text(head));
    parts.extend(
        json.bins
            .into_iter()
            .map(|b| Part::Binary(Bytes::copy_from_slice(b))),
    );
    parts
}

// ---------------------------------------------------------------------------
// Decoder

/// The packet the encoder's parts carry, as socket.io-parser's `Decoder`
/// reads it (binary types become EVENT/ACK with their attachments in place).
pub fn decode(parts: &[Part]) -> Result<Packet, PacketError> {
    let Some((Part::Text(s), rest)) = parts.split_first() else {
        return err("packet: the first part must be a string");
    };
    let mut bins = Vec::with_capacity(rest.len());
    for part in rest {
        match part {
            Part::Binary(b) => bins.push(b),
            Part::Text(_) => return err("packet: a string part after the first"),
        }
    }
    let b = s.as_bytes();
    let (kind, binary) = match b.first() {
        Some(b'2') => (EVENT, false),
        Some(b'3') => (ACK, false),
        Some(b'5') => (EVENT, true),
        Some(b'6') => (ACK, true),
        _ => return err("packet: not an EVENT or ACK"),
    };
    let mut i = 1;
    let attachments = if binary {
        let n = digits(b, i);
        if b.get(i + n) != Some(&b'-') {
            return err("packet: illegal attachments");
        }
        let count = s.get(i..i + n).and_then(|d| d.parse::<usize>().ok());
        i += n + 1;
        match count {
            Some(c) if c >= 1 => c,
            _ => return err("packet: illegal attachments"),
        }
    } else {
        0
    };
    if attachments != bins.len() {
        return err(format!(
            "packet: {attachments} attachments announced, {} given",
            bins.len()
        ));
    }
    let mut nsp = "/";
    if b.get(i) == Some(&b'/') {
        let end = b[i..]
            .iter()
            .position(|&c| c == b',')
            .map_or(b.len(), |p| i + p);
        nsp = s.get(i..end).unwrap_or("/");
        i = (end + 1).min(b.len());
    }
    let n = digits(b, i);
    let id = if n > 0 {
        match s.get(i..i + n).and_then(|d| d.parse::<u64>().ok()) {
            Some(id) => Some(id),
            None => return err("packet: id out of range"),
        }
    } else {
        None
    };
    i += n;
    let json = s.get(i..).unwrap_or_default();
    if json.is_empty() {
        return err("packet: no data");
    }
    let mut data = JsonParser::new(json, MAX_DATA_DEPTH).parse().or_else(err)?;
    if !matches!(data, Value::Array(_)) {
        return err("packet: data is not an array");
    }
    if binary {
        data = reconstruct(data, &bins)?;
    }
    Ok(Packet {
        kind,
        nsp: nsp.to_owned(),
        id,
        data,
    })
}

/// socket.io-parser's `reconstructPacket`: every object whose `_placeholder`
/// is `true` becomes the attachment its `num` names.
fn reconstruct(v: Value, bins: &[&Bytes]) -> Result<Value, PacketError> {
    match v {
        Value::Array(items) => Ok(Value::Array(
            items
                .into_iter()
                .map(|x| reconstruct(x, bins))
                .collect::<Result<_, _>>()?,
        )),
        Value::Map(entries) => {
            let is_placeholder = entries
                .iter()
                .any(|(k, v)| k.as_str() == Some("_placeholder") && *v == Value::Boolean(true));
            if !is_placeholder {
                return Ok(Value::Map(
                    entries
                        .into_iter()
                        .map(|(k, v)| Ok((k, reconstruct(v, bins)?)))
                        .collect::<Result<_, PacketError>>()?,
                ));
            }
            let num = entries
                .iter()
                .find(|(k, _)| k.as_str() == Some("num"))
                .and_then(|(_, n)| match n {
                    Value::Integer(i) => i.as_u64(),
                    Value::F64(f) if f.fract() == 0.0 && *f >= 0.0 => Some(*f as u64),
                    _ => None,
                });
            match num
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| bins.get(n))
            {
                Some(b) => Ok(Value::Binary(b.to_vec())),
                None => err("packet: illegal attachments (placeholder without its attachment)"),
            }
        }
        other => Ok(other),
    }
}

// ---------------------------------------------------------------------------
// The packet object of the adapter's message

/// The packet as the server built it and the adapter publishes it:
/// `{ type, data, nsp }`, plus `id` when the in-memory adapter set one.
pub fn packet_to_value(p: &Packet) -> Value {
    let mut m = Vec::with_capacity(4);
    m.push((Value::from("type"), Value::from(p.kind)));
    m.push((Value::from("data"), p.data.clone()));
    m.push((Value::from("nsp"), Value::from(p.nsp.as_str())));
    if let Some(id) = p.id {
        m.push((Value::from("id"), Value::from(id)));
    }
    Value::Map(m)
}

/// A [`Packet`] from the adapter's packet object (the adapter itself treats
/// a missing `nsp` as `"/"`).
pub fn packet_from_value(v: &Value) -> Result<Packet, PacketError> {
    let Value::Map(entries) = v else {
        return err("packet: not a map");
    };
    let (mut kind, mut data, mut nsp, mut id) = (None, None, None, None);
    // A repeated key: the last one wins, as in the object notepack builds.
    for (k, v) in entries {
        match js_key(k).as_ref() {
            "type" => kind = Some(v),
            "data" => data = Some(v),
            "nsp" => nsp = Some(v),
            "id" => id = Some(v),
            _ => {}
        }
    }
    let kind = match kind.map(js) {
        Some(Js::Num(t)) if t == 2.0 || t == 5.0 => EVENT,
        Some(Js::Num(t)) if t == 3.0 || t == 6.0 => ACK,
        Some(_) => return err("packet: type is not EVENT or ACK"),
        None => return err("packet: no type"),
    };
    let nsp = match nsp.map(js) {
        None | Some(Js::Undefined) => "/".to_owned(),
        Some(Js::Str(s)) => s.into_owned(),
        Some(_) => return err("packet: nsp is not a string"),
    };
    let id = match id {
        None | Some(Value::Nil) => None,
        Some(Value::Integer(i)) => match i.as_u64() {
            Some(id) => Some(id),
            None => return err("packet: negative id"),
        },
        Some(v) => match js(v) {
            Js::Undefined => None,
            Js::Num(f) if f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0 => {
                Some(f as u64)
            }
            _ => return err("packet: id is not a non-negative integer"),
        },
    };
    let data = match data {
        Some(d @ Value::Array(_)) => d.clone(),
        _ => return err("packet: data is not an array"),
    };
    Ok(Packet {
        kind,
        nsp,
        id,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::super::js::js_order;
    use super::super::msgpack::{from_msgpack, to_msgpack};
    use super::super::test_values::{arr, bin, map, s};
    use super::super::ws::{from_ws_frames, to_ws_frames};
    use super::*;
    use proptest::prelude::*;

    fn event(data: Value) -> Packet {
        Packet {
            kind: EVENT,
            nsp: "/".into(),
            id: None,
            data,
        }
    }

    fn text(s: &str) -> Part {
        Part::Text(s.into())
    }

    fn binary(b: &[u8]) -> Part {
        Part::Binary(Bytes::copy_from_slice(b))
    }

    fn one_text(p: &Packet) -> String {
        match encode(p).as_slice() {
            [Part::Text(t)] => t.clone(),
            other => panic!("expected one string part, got {other:?}"),
        }
    }

    /// Equal as JS sees them: numbers as doubles (NaN equal to NaN), dates
    /// by time value whatever their timestamp format.
    fn js_eq(a: &Value, b: &Value) -> bool {
        if let (Js::Date(x), Js::Date(y)) = (js(a), js(b)) {
            return x == y;
        }
        let num = |v: &Value| match v {
            Value::Integer(i) => i.as_f64(),
            Value::F32(f) => Some(f64::from(*f)),
            Value::F64(f) => Some(*f),
            _ => None,
        };
        match (a, b) {
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| js_eq(a, b))
            }
            (Value::Map(x), Value::Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|((ka, va), (kb, vb))| js_eq(ka, kb) && js_eq(va, vb))
            }
            _ => match (num(a), num(b)) {
                (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
                (None, None) => a == b,
                _ => false,
            },
        }
    }

    /// A value as notepack writes back what it decoded: objects with string
    /// keys in JS order, no `__proto__` and no undefined members, undefined
    /// items as nil, exts as what notepack made of them.
    fn js_view(v: &Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| {
                        if matches!(js(v), Js::Undefined) {
                            Value::Nil
                        } else {
                            js_view(v)
                        }
                    })
                    .collect(),
            ),
            Value::Map(entries) => Value::Map(
                js_order(
                    entries
                        .iter()
                        .map(|(k, v)| (js_key(k).into_owned(), v))
                        .collect(),
                )
                .into_iter()
                .filter(|(k, v)| k != "__proto__" && !matches!(js(v), Js::Undefined))
                .map(|(k, v)| (Value::from(k), js_view(v)))
                .collect(),
            ),
            other => match js(other) {
                Js::Num(f) => Value::F64(notepack_number(f)),
                Js::ArrayBuffer(b) => bin(b),
                Js::ExtPair(t, d) => arr(vec![t.into(), bin(d)]),
                // notepack writes an invalid Date as timestamp 96 zero.
                Js::Date(None) => Value::Ext(-1, vec![0; 4]),
                _ => other.clone(),
            },
        }
    }

    /// The number notepack reads back after writing `f`: an integral double
    /// beyond the 64-bit range wraps (it writes `(f / 2 ** 32) >> 0` as the
    /// high word).
    fn notepack_number(f: f64) -> f64 {
        const TWO32: f64 = 4_294_967_296.0;
        let uint32 = |x: f64| x.trunc().rem_euclid(TWO32);
        if !f.is_finite() || f.fract() != 0.0 || (-2_147_483_648.0..TWO32).contains(&f) {
            return f;
        }
        if f >= 0.0 {
            uint32(f / TWO32) * TWO32 + uint32(f)
        } else {
            let hi = uint32((f / TWO32).floor());
            let hi = if hi >= 2_147_483_648.0 {
                hi - TWO32
            } else {
                hi
            };
            hi * TWO32 + uint32(f)
        }
    }

    fn packets_js_eq(a: &Packet, b: &Packet) -> bool {
        a.kind == b.kind
            && a.nsp == b.nsp
            && a.id == b.id
            && js_eq(&js_view(&a.data), &js_view(&b.data))
    }

    #[test]
    fn encodes_as_the_default_encoder() {
        assert_eq!(
            one_text(&event(arr(vec![s("hello"), 1.into()]))),
            r#"2["hello",1]"#
        );
        let mut p = event(arr(vec![s("a")]));
        p.nsp = "/chat".into();
        assert_eq!(one_text(&p), r#"2/chat,["a"]"#);
        p.nsp = String::new();
        assert_eq!(one_text(&p), r#"2["a"]"#, "an empty nsp is omitted too");
        p.id = Some(12);
        p.kind = ACK;
        assert_eq!(one_text(&p), r#"312["a"]"#);
        p.nsp = "/x".into();
        assert_eq!(one_text(&p), r#"3/x,12["a"]"#);
        p.data = Value::Nil;
        assert_eq!(one_text(&p), "3/x,12", "no data, no JSON");
    }

    #[test]
    fn binaries_become_placeholders_in_depth_first_order() {
        let data = arr(vec![
            s("ev"),
            bin(b"zero"),
            map(vec![
                (s("x"), arr(vec![bin(b"one"), 1.into()])),
                (s("y"), map(vec![(s("z"), bin(b"two"))])),
                // Index keys come first in JS, and so does their binary.
                (s("5"), bin(b"index")),
            ]),
            Value::Ext(7, vec![1, 2]),
            Value::Ext(0, vec![9, 9, 9]),
            bin(b""),
        ]);
        let mut p = event(data);
        p.nsp = "/chat".into();
        p.id = Some(3);
        let parts = encode(&p);
        let ph = |n: usize| format!(r#"{{"_placeholder":true,"num":{n}}}"#);
        assert_eq!(
            parts,
            vec![
                Part::Text(format!(
                    r#"57-/chat,3["ev",{},{{"5":{},"x":[{},1],"y":{{"z":{}}}}},[7,{}],{},{}]"#,
                    ph(0),
                    ph(1),
                    ph(2),
                    ph(3),
                    ph(4),
                    ph(5),
                    ph(6)
                )),
                binary(b"zero"),
                binary(b"index"),
                binary(b"one"),
                binary(b"two"),
                binary(&[1, 2]),
                binary(&[9, 9, 9]),
                binary(b""),
            ]
        );
        p.kind = ACK;
        assert!(matches!(&encode(&p)[0], Part::Text(t) if t.starts_with("67-/chat,3[")));
        // And back: ext pairs and ArrayBuffers come back as JS would read them.
        let back = decode(&parts).expect("decodes");
        assert_eq!(back.kind, EVENT);
        assert_eq!(back.id, Some(3));
        assert_eq!(back.nsp, "/chat");
        assert_eq!(
            back.data,
            arr(vec![
                s("ev"),
                bin(b"zero"),
                map(vec![
                    (s("5"), bin(b"index")),
                    (s("x"), arr(vec![bin(b"one"), 1.into()])),
                    (s("y"), map(vec![(s("z"), bin(b"two"))])),
                ]),
                arr(vec![7.into(), bin(&[1, 2])]),
                bin(&[9, 9, 9]),
                bin(b""),
            ])
        );
    }

    #[test]
    fn decodes_the_encoders_strings() {
        let p = decode(&[text(r#"2/chat,17["a",{"b":[1,-2,1.5,1e3,18446744073709551616,-0]},null,true,"\u00e9\ud83d\ude00\ud800\/"]"#)])
            .expect("decodes");
        assert_eq!(p.kind, EVENT);
        assert_eq!(p.nsp, "/chat");
        assert_eq!(p.id, Some(17));
        assert_eq!(
            p.data,
            arr(vec![
                s("a"),
                map(vec![(
                    s("b"),
                    arr(vec![
                        1.into(),
                        (-2).into(),
                        Value::F64(1.5),
                        Value::F64(1000.0),
                        Value::F64(18446744073709551616.0),
                        0.into(),
                    ])
                )]),
                Value::Nil,
                Value::Boolean(true),
                s("é😀\u{fffd}/"),
            ])
        );
        let p = decode(&[text(r#"3[]"#)]).expect("decodes");
        assert_eq!((p.kind, p.nsp.as_str(), p.id), (ACK, "/", None));
        // JSON.parse's object: last value of a repeated key, index keys first.
        let p = decode(&[text(r#"2[{"b":1,"3":2,"b":3}]"#)]).expect("decodes");
        assert_eq!(
            p.data,
            arr(vec![map(vec![(s("3"), 2.into()), (s("b"), 3.into())])])
        );
        // Placeholders are only read in binary packets, as socket.io-parser does.
        let p = decode(&[text(r#"2[{"_placeholder":true,"num":0}]"#)]).expect("decodes");
        assert_eq!(
            p.data,
            arr(vec![map(vec![
                (s("_placeholder"), Value::Boolean(true)),
                (s("num"), 0.into())
            ])])
        );
        let p = decode(&[
            text(r#"61-/a,5[{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]"#),
            binary(b"x"),
        ])
        .expect("decodes");
        assert_eq!((p.kind, p.id), (ACK, Some(5)));
        assert_eq!(p.data, arr(vec![bin(b"x"), bin(b"x")]));
    }

    #[test]
    fn decode_rejects_malformed_input() {
        let ph = r#"["a",{"_placeholder":true,"num":0}]"#;
        let cases: Vec<Vec<Part>> = vec![
            vec![],
            vec![binary(b"x")],
            vec![text("")],
            vec![text(r#"0{"sid":"x"}"#)],
            vec![text(r#"4"nope""#)],
            vec![text(r#"1"#)],
            vec![text(r#"7["a"]"#)],
            vec![text(r#"x["a"]"#)],
            vec![text(r#"2"#)],
            vec![text(r#"2/chat"#)],
            vec![text(r#"2/chat,"#)],
            vec![text(r#"2{"a":1}"#)],
            vec![text(r#"2"a""#)],
            vec![text(r#"2["a""#)],
            vec![text(r#"2["a",]"#)],
            vec![text(r#"2["a"] x"#)],
            vec![text(r#"2[01]"#)],
            vec![text(r#"2[1.]"#)],
            vec![text(r#"2[.5]"#)],
            vec![text(r#"2[1e]"#)],
            vec![text(r#"2[-]"#)],
            vec![text(r#"2[tru]"#)],
            vec![text(r#"2["\x"]"#)],
            vec![text(r#"2["\u12"]"#)],
            vec![text("2[\"\u{1}\"]")],
            vec![text(r#"2[{1:2}]"#)],
            vec![text(r#"2[{"a" 1}]"#)],
            vec![text(r#"2[NaN]"#)],
            vec![text(r#"218446744073709551616["a"]"#)],
            vec![text(&format!("2{}", "[".repeat(1000)))],
            vec![text(&format!("2{}{}", "[".repeat(63), "]".repeat(63)))],
            // Attachments: missing, wrong count, zero, not a number, out of range.
            vec![text(&format!("51-{ph}"))],
            vec![text(&format!("52-{ph}")), binary(b"x")],
            vec![text(&format!("50-{ph}"))],
            vec![text(&format!("5-{ph}")), binary(b"x")],
            vec![text(&format!("5x-{ph}")), binary(b"x")],
            vec![text(&format!("51{ph}")), binary(b"x")],
            vec![text(&format!("2{ph}")), binary(b"x")],
            vec![
                text(r#"51-["a",{"_placeholder":true,"num":1}]"#),
                binary(b"x"),
            ],
            vec![
                text(r#"51-["a",{"_placeholder":true,"num":-1}]"#),
                binary(b"x"),
            ],
            vec![
                text(r#"51-["a",{"_placeholder":true,"num":"0"}]"#),
                binary(b"x"),
            ],
            vec![text(r#"51-["a",{"_placeholder":true}]"#), binary(b"x")],
            vec![text(&format!("51-{ph}")), text("x")],
        ];
        for parts in cases {
            assert!(decode(&parts).is_err(), "accepted {parts:?}");
        }
        // The deepest data accepted: 62 levels.
        let deep = format!("2{}{}", "[".repeat(62), "]".repeat(62));
        assert!(decode(&[text(&deep)]).is_ok());
    }

    /// JSON-like values with binaries, as events carry them.
    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<bool>().prop_map(Value::Boolean),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::F64),
            ".*".prop_map(|s: String| Value::from(s)),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Binary),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                // Distinct keys that are not array indices keep their order.
                prop::collection::btree_map("k.*", inner, 0..6).prop_map(|m| Value::Map(
                    m.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            data in prop::collection::vec(arb_value(), 0..5),
            ack in any::<bool>(),
            nsp in prop_oneof![Just("/".to_owned()), "/[a-z0-9é]{1,8}"],
            id in proptest::option::of(any::<u64>()),
        ) {
            let p = Packet { kind: if ack { ACK } else { EVENT }, nsp, id, data: Value::Array(data) };
            let parts = encode(&p);
            let back = decode(&parts).expect("decodes");
            prop_assert!(packets_js_eq(&p, &back), "{:?}\n{:?}\n{:?}", p, parts, back);
            prop_assert_eq!(encode(&back), parts.clone());
            let frames = to_ws_frames(&parts);
            let frames: Vec<&[u8]> = frames.iter().map(|f| f.as_ref()).collect();
            prop_assert_eq!(from_ws_frames(&frames).expect("frames"), parts);
        }
    }

    proptest! {
        #[test]
        fn garbage_is_an_error_not_a_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
            text in "[0-9/,\\-\\[\\]{}\":a-z_]{0,40}",
        ) {
            if let Ok(v) = from_msgpack(&bytes) {
                // Compared as bytes: NaN != NaN.
                let own = to_msgpack(&v);
                prop_assert_eq!(to_msgpack(&from_msgpack(&own).expect("own msgpack")), own);
                if let Ok(p) = packet_from_value(&v) {
                    let _ = encode(&p);
                }
            }
            let _ = from_ws_frames(&[&bytes]);
            let _ = decode(&[Part::Text(text), Part::Binary(Bytes::from(bytes))]);
        }
    }

    #[test]
    fn packet_values_have_the_adapters_shape() {
        let p = Packet {
            kind: EVENT,
            nsp: "/".into(),
            id: None,
            data: arr(vec![s("e")]),
        };
        assert_eq!(
            packet_to_value(&p),
            map(vec![
                (s("type"), 2.into()),
                (s("data"), arr(vec![s("e")])),
                (s("nsp"), s("/"))
            ])
        );
        let with_id = Packet {
            kind: ACK,
            id: Some(4),
            ..p.clone()
        };
        assert_eq!(
            packet_to_value(&with_id),
            map(vec![
                (s("type"), 3.into()),
                (s("data"), arr(vec![s("e")])),
                (s("nsp"), s("/")),
                (s("id"), 4.into()),
            ])
        );
        assert_eq!(
            packet_from_value(&packet_to_value(&with_id)).expect("reads"),
            with_id
        );

        let read = |entries: Vec<(Value, Value)>| packet_from_value(&map(entries));
        let data = || (s("data"), arr(vec![s("e")]));
        assert_eq!(
            read(vec![(s("type"), 2.into()), data()])
                .expect("no nsp")
                .nsp,
            "/"
        );
        assert_eq!(
            read(vec![(s("type"), 5.into()), data()])
                .expect("type 5")
                .kind,
            EVENT
        );
        assert_eq!(
            read(vec![(s("type"), 6.into()), data()])
                .expect("type 6")
                .kind,
            ACK
        );
        assert_eq!(
            read(vec![(s("type"), Value::F64(3.0)), data()])
                .expect("float type")
                .kind,
            ACK
        );
        let ok = read(vec![
            (s("nsp"), s("/a")),
            data(),
            (s("type"), 2.into()),
            (s("id"), Value::F64(8.0)),
        ])
        .expect("any order");
        assert_eq!((ok.nsp.as_str(), ok.id), ("/a", Some(8)));
        assert_eq!(
            read(vec![(s("type"), 2.into()), data(), (s("id"), Value::Nil)])
                .expect("nil id")
                .id,
            None
        );

        for bad in [
            vec![data()],
            vec![(s("type"), 0.into()), data()],
            vec![(s("type"), 4.into()), data()],
            vec![(s("type"), s("2")), data()],
            vec![(s("type"), 2.into())],
            vec![(s("type"), 2.into()), (s("data"), s("e"))],
            vec![(s("type"), 2.into()), (s("data"), map(vec![]))],
            vec![(s("type"), 2.into()), data(), (s("nsp"), 1.into())],
            vec![(s("type"), 2.into()), data(), (s("id"), (-1).into())],
            vec![(s("type"), 2.into()), data(), (s("id"), Value::F64(1.5))],
            vec![(s("type"), 2.into()), data(), (s("id"), s("1"))],
        ] {
            assert!(read(bad.clone()).is_err(), "accepted {bad:?}");
        }
        assert!(packet_from_value(&arr(vec![])).is_err());
    }

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn fixture_parts(parts: &serde_json::Value) -> Vec<Part> {
        parts
            .as_array()
            .expect("parts")
            .iter()
            .map(|p| match (p.get("text"), p.get("binary")) {
                (Some(t), None) => Part::Text(t.as_str().expect("text").to_owned()),
                (None, Some(b)) => Part::Binary(Bytes::from(unhex(b.as_str().expect("hex")))),
                _ => panic!("bad part {p}"),
            })
            .collect()
    }

    /// tests/fixtures/socketio-packets.json: what notepack.io and
    /// socket.io-parser make of each packet (scripts/gen-packet-fixtures.js).
    #[test]
    fn matches_the_js_fixtures() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/socketio-packets.json"
        );
        let text = std::fs::read_to_string(path).expect("fixtures");
        let fixtures: Vec<serde_json::Value> = serde_json::from_str(&text).expect("JSON");
        assert!(fixtures.len() >= 30);
        let hex_of =
            |f: &serde_json::Value, k: &str| unhex(f[k].as_str().unwrap_or_else(|| panic!("{k}")));
        let mut decoded_checked = 0;
        for f in &fixtures {
            let name = f["name"].as_str().expect("name");
            let parts = fixture_parts(&f["parts"]);

            // Redis -> clients: msgpack to the encoder's parts, byte for byte.
            let v = from_msgpack(&hex_of(f, "msgpack")).expect(name);
            let p = packet_from_value(&v).expect(name);
            assert_eq!(encode(&p), parts, "{name}: encode");

            // The packet value survives packet_to_value and rmpv's msgpack.
            let expected =
                packet_from_value(&from_msgpack(&hex_of(f, "packet_msgpack")).expect(name))
                    .expect(name);
            let again =
                packet_from_value(&from_msgpack(&to_msgpack(&packet_to_value(&p))).expect(name))
                    .expect(name);
            assert!(
                packets_js_eq(&again, &expected),
                "{name}: packet value\n{again:?}\n{expected:?}"
            );

            // Clients' parts -> Redis: what socket.io-parser's Decoder reads.
            let back = decode(&parts);
            if let Some(h) = f["decoded_msgpack"].as_str() {
                let back = back.expect(name);
                let js = packet_from_value(&from_msgpack(&unhex(h)).expect(name)).expect(name);
                assert!(
                    packets_js_eq(&back, &js),
                    "{name}: decode\n{back:?}\n{js:?}"
                );
                let relayed = packet_from_value(
                    &from_msgpack(&to_msgpack(&packet_to_value(&back))).expect(name),
                )
                .expect(name);
                assert_eq!(encode(&relayed), parts, "{name}: relayed");
                decoded_checked += 1;
            }

            // WebSocket frames as lib/frames.js writes them.
            let frames = to_ws_frames(&parts);
            assert_eq!(frames.concat(), hex_of(f, "ws_frames"), "{name}: frames");
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_ref()).collect();
            assert_eq!(
                from_ws_frames(&refs).expect(name),
                parts,
                "{name}: from frames"
            );
        }
        assert!(decoded_checked + 2 >= fixtures.len());
    }
}
