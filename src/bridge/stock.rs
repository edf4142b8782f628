//! What the stock Redis adapter (`@socket.io/redis-adapter` 8.x, classic
//! pub/sub) puts on Redis: channel names and the shape of its messages. Our
//! own reading of its source; the tests pin the byte-level details.
//!
//! - Broadcasts: msgpack `[uid, packet, { rooms, except, flags }]` on
//!   `<key>#<nsp>#`, or `<key>#<nsp>#<room>#` when they target exactly one
//!   room; every server pattern-subscribes `<key>#<nsp>#*`.
//! - Requests: `{ uid, requestId?, type, ... }` on `<key>-request#<nsp>#`,
//!   JSON except broadcasts with acks (msgpack, the packet may hold binary).
//! - Responses: `{ requestId, ... }` on `<key>-response#<nsp>#`, JSON except
//!   acks of broadcasts (msgpack).
//! - `serverCount()`: `PUBSUB NUMSUB <key>-request#<nsp>#`, one per subscriber.

use rmpv::Value;

use super::js::{iso_date, js, js_key, js_order, Js};
use super::json::JsonParser;

/// `RequestType` of the stock adapter.
pub mod kind {
    pub const SOCKETS: u8 = 0;
    pub const ALL_ROOMS: u8 = 1;
    pub const REMOTE_JOIN: u8 = 2;
    pub const REMOTE_LEAVE: u8 = 3;
    pub const REMOTE_DISCONNECT: u8 = 4;
    pub const REMOTE_FETCH: u8 = 5;
    pub const SERVER_SIDE_EMIT: u8 = 6;
    pub const BROADCAST: u8 = 7;
    pub const BROADCAST_CLIENT_COUNT: u8 = 8;
    pub const BROADCAST_ACK: u8 = 9;
}

/// The channels of one namespace under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    /// `<key>#<nsp>#`: broadcasts to everyone; `+ room + "#"` for one room.
    pub broadcast: String,
    /// The pattern matching every broadcast channel of the namespace.
    pub broadcast_pattern: String,
    pub request: String,
    pub response: String,
    /// Responses meant for this server only (`publishOnSpecificResponseChannel`).
    pub own_response: String,
    /// Our own: `<key>-cluster-rs#<nsp>#`, prefix of the channels through which
    /// each bridge says how many servers it stands for (see `servers_channel`).
    pub servers_prefix: String,
}

impl Channels {
    pub fn new(key: &str, nsp: &str, uid: &str) -> Channels {
        let response = format!("{key}-response#{nsp}#");
        Channels {
            broadcast: format!("{key}#{nsp}#"),
            broadcast_pattern: format!("{}*", glob_escape(&format!("{key}#{nsp}#"))),
            request: format!("{key}-request#{nsp}#"),
            own_response: format!("{response}{uid}#"),
            response,
            servers_prefix: format!("{key}-cluster-rs#{nsp}#"),
        }
    }

    /// The channel of a broadcast to `rooms`, as the stock adapter picks it.
    pub fn broadcast_to(&self, rooms: &[Value]) -> String {
        match rooms {
            [room] => format!("{}{}#", self.broadcast, js_string(room)),
            _ => self.broadcast.clone(),
        }
    }

    /// The channel a bridge subscribes to while it stands for `count` servers
    /// of this namespace. Subscriptions end with their connection, so a host
    /// that vanishes stops being counted by itself.
    pub fn servers_channel(&self, uid: &str, count: usize) -> String {
        format!("{}{uid}#{count}", self.servers_prefix)
    }

    pub fn servers_pattern(&self) -> String {
        format!("{}*", glob_escape(&self.servers_prefix))
    }

    /// `(uid, count)` of a channel matched by [`Channels::servers_pattern`].
    pub fn parse_servers_channel<'a>(&self, channel: &'a str) -> Option<(&'a str, u32)> {
        let rest = channel.strip_prefix(&self.servers_prefix)?;
        let (uid, count) = rest.rsplit_once('#')?;
        Some((uid, count.parse().ok()?))
    }
}

/// `pattern` with Redis glob characters escaped, so a namespace named
/// `/a*` matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A room as JS's `String(room)` writes it (rooms are strings or numbers).
fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().unwrap_or_default().to_owned(),
        Value::Integer(i) => i.to_string(),
        Value::F64(f) => super::js::js_number(*f),
        other => other.to_string(),
    }
}

/// The entry `key` of msgpack map `v`.
pub fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// A msgpack map from string keys.
pub fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// Deepest nesting accepted from another process.
const MAX_DEPTH: usize = 64;

/// A request or response: JSON when it starts with `{`, msgpack otherwise
/// (as the stock adapter tells them apart). JSON is read as its
/// `JSON.parse(buffer.toString())` reads it.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    if bytes.first() == Some(&b'{') {
        let text = String::from_utf8_lossy(bytes);
        JsonParser::new(&text, MAX_DEPTH)
            .parse()
            .map_err(str::to_owned)
    } else {
        super::msgpack::from_msgpack(bytes).map_err(|e| e.to_string())
    }
}

/// JSON as msgpack: integers stay integers.
pub fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), from_json(v)))
                .collect(),
        ),
    }
}

/// msgpack as JSON, as `JSON.stringify` writes what notepack decoded (the
/// value model of `js.rs`): a Buffer as `{"type":"Buffer","data":[...]}`, a
/// Date as its ISO string, NaN and the infinities as null, `undefined`
/// members left out; keys in JS's order.
pub fn to_json(v: &Value) -> serde_json::Value {
    json_of(&js(v)).unwrap_or(serde_json::Value::Null)
}

/// `None` for what `JSON.stringify` leaves out of an object (`undefined`).
fn json_of(v: &Js<'_>) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    let buffer = |b: &[u8]| {
        let mut o = serde_json::Map::new();
        o.insert("type".into(), J::from("Buffer"));
        o.insert(
            "data".into(),
            J::Array(b.iter().map(|x| J::from(*x)).collect()),
        );
        J::Object(o)
    };
    Some(match v {
        Js::Undefined => return None,
        Js::Null => J::Null,
        Js::Bool(b) => J::Bool(*b),
        Js::Num(f) => number_json(*f),
        Js::Str(s) => J::String(s.to_string()),
        Js::Buffer(b) => buffer(b),
        // An ArrayBuffer has no enumerable properties.
        Js::ArrayBuffer(_) => J::Object(serde_json::Map::new()),
        Js::Date(ms) => ms.map_or(J::Null, |ms| J::String(iso_date(ms))),
        Js::ExtPair(t, d) => J::Array(vec![J::from(*t), buffer(d)]),
        Js::Array(items) => J::Array(
            items
                .iter()
                .map(|i| json_of(&js(i)).unwrap_or(J::Null))
                .collect(),
        ),
        Js::Object(entries) => {
            let ordered = js_order(entries.iter().map(|(k, v)| (js_key(k), v)).collect());
            J::Object(
                ordered
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.into_owned(), json_of(&js(v))?)))
                    .collect(),
            )
        }
    })
}

fn number_json(f: f64) -> serde_json::Value {
    // An integral double is written by JS without a fraction; keep it an integer.
    if f.fract() == 0.0 && f.abs() < 9.2e18 {
        return serde_json::Value::from(f as i64);
    }
    serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// JSON text of `v` (for the workers' payloads and JSON requests).
pub fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec())
}

/// A random id for this bridge and its requests: 6 characters of the
/// base64url alphabet (36 bits), as the stock adapter's `uid2(6)`. It starts
/// every message the bridge publishes, so it is kept as short as theirs.
pub fn random_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    let bits = h.finish();
    (0..6)
        .map(|i| char::from(ALPHABET[((bits >> (6 * i)) & 63) as usize]))
        .collect()
}

/// The hub's key of a room (`lib/keys.js`): its JSON text. `None` when the
/// room cannot be keyed exactly here (very long, or not a string or an
/// integer): the message then goes to every worker of the namespace, which
/// picks its sockets by the rooms themselves.
pub fn room_key(room: &Value) -> Option<String> {
    let key = match room {
        Value::String(s) => serde_json::to_string(s.as_str()?).ok()?,
        Value::Integer(i) => i.to_string(),
        _ => return None,
    };
    // lib/keys.js digests keys over 256 UTF-16 units.
    (key.encode_utf16().count() <= 256).then_some(key)
}

/// Hub keys of `rooms`, or none (everyone) when one cannot be keyed.
pub fn room_keys(rooms: &[Value]) -> Vec<String> {
    rooms
        .iter()
        .map(room_key)
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_named_as_the_stock_adapter_names_them() {
        let c = Channels::new("socket.io", "/chat", "abc");
        assert_eq!(c.broadcast, "socket.io#/chat#");
        assert_eq!(c.broadcast_pattern, "socket.io#/chat#*");
        assert_eq!(c.request, "socket.io-request#/chat#");
        assert_eq!(c.response, "socket.io-response#/chat#");
        assert_eq!(c.own_response, "socket.io-response#/chat#abc#");
        assert_eq!(c.broadcast_to(&[Value::from("r1")]), "socket.io#/chat#r1#");
        assert_eq!(c.broadcast_to(&[Value::from(7)]), "socket.io#/chat#7#");
        assert_eq!(
            c.broadcast_to(&[Value::from("a"), Value::from("b")]),
            "socket.io#/chat#"
        );
        assert_eq!(c.broadcast_to(&[]), "socket.io#/chat#");
        let s = c.servers_channel("abc", 2);
        assert_eq!(c.parse_servers_channel(&s), Some(("abc", 2)));
        assert_eq!(c.parse_servers_channel("socket.io#/chat#"), None);
    }

    #[test]
    fn glob_characters_of_a_namespace_match_only_themselves() {
        let c = Channels::new("k", "/a*[b]", "u");
        assert_eq!(c.broadcast_pattern, "k#/a\\*\\[b\\]#*");
    }

    #[test]
    fn requests_decode_from_json_and_msgpack_and_garbage_is_an_error() {
        let v = decode(br#"{"uid":"x","type":5,"opts":{"rooms":["a"],"except":[]}}"#).unwrap();
        assert_eq!(get(&v, "type").and_then(Value::as_u64), Some(5));
        let mp = super::super::msgpack::to_msgpack(&map(vec![("type", Value::from(7))]));
        assert_eq!(
            get(&decode(&mp).unwrap(), "type").and_then(Value::as_u64),
            Some(7)
        );
        assert!(decode(b"{not json").is_err());
        assert!(decode(&[0xc1]).is_err());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(decode(deep.as_bytes()).is_err());
    }

    #[test]
    fn json_conversion_keeps_what_js_would() {
        let v = map(vec![
            ("i", Value::from(3)),
            ("f", Value::F64(2.0)),
            ("h", Value::F64(0.5)),
            ("n", Value::F64(f64::NAN)),
            ("b", Value::Binary(vec![1, 2])),
        ]);
        assert_eq!(
            serde_json::to_string(&to_json(&v)).unwrap(),
            r#"{"i":3,"f":2,"h":0.5,"n":null,"b":{"type":"Buffer","data":[1,2]}}"#
        );
        // A Date (notepack's timestamp ext) as its ISO string, `undefined`
        // left out of objects and null in arrays, JS's key order.
        let date = Value::Ext(-1, vec![0, 0, 0, 0]);
        let undefined = Value::Ext(0, vec![0]);
        let v = Value::Map(vec![
            (Value::from("z"), date),
            (Value::from("u"), undefined.clone()),
            (Value::from(1), Value::Array(vec![undefined])),
        ]);
        assert_eq!(
            serde_json::to_string(&to_json(&v)).unwrap(),
            r#"{"1":[null],"z":"1970-01-01T00:00:00.000Z"}"#
        );
    }

    #[test]
    fn rooms_are_keyed_as_lib_keys_js_keys_them() {
        assert_eq!(room_key(&Value::from("r")).as_deref(), Some("\"r\""));
        assert_eq!(room_key(&Value::from(1)).as_deref(), Some("1"));
        assert_eq!(room_key(&Value::from("x".repeat(300))), None);
        assert_eq!(
            room_keys(&[Value::from("a"), Value::F64(0.5)]),
            Vec::<String>::new()
        );
        assert_ne!(random_id(), random_id());
    }
}
