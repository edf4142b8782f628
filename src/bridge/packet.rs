//! Socket.IO packets as the Redis bridge moves them.
//!
//! Stock `@socket.io/redis-adapter` nodes publish a broadcast's packet as
//! msgpack (written by `notepack.io`); on receipt they `notepack.decode` it and
//! hand it to socket.io-parser's default `Encoder`. Our workers exchange that
//! encoder's output as WebSocket frames. This module converts between the
//! three forms, byte for byte as the JS side does, so clients cannot tell
//! which side of the bridge a packet came from:
//!
//! - [`from_msgpack`] / [`to_msgpack`]: msgpack bytes and [`Value`]s;
//! - [`packet_from_value`] / [`packet_to_value`]: the packet object inside the
//!   adapter's message and a [`Packet`];
//! - [`encode`] / [`decode`]: a [`Packet`] and the encoder's output, read as JS
//!   would read what notepack decoded (numbers are doubles, `Date`s are
//!   timestamps, map keys are strings ordered as JS orders own properties);
//! - [`to_ws_frames`] / [`from_ws_frames`]: that output and WebSocket frames.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};

use bytes::Bytes;
use rmpv::Value;

/// Packet types of the Socket.IO protocol (v5) that a broadcast can carry.
pub const EVENT: u8 = 2;
pub const ACK: u8 = 3;
pub const BINARY_EVENT: u8 = 5;
pub const BINARY_ACK: u8 = 6;

/// Deepest nesting of arrays and maps [`from_msgpack`] accepts.
pub const MAX_DEPTH: usize = 64;

/// Deepest nesting [`decode`] accepts in a packet's data: two less than
/// [`MAX_DEPTH`], so the adapter's `[uid, packet, opts]` message holding that
/// data still decodes.
const MAX_DATA_DEPTH: usize = MAX_DEPTH - 2;

/// rmpv spends two units of depth per array or map level and three on a leaf
/// string, bin or ext: room for [`MAX_DEPTH`] levels (checked exactly before).
const RMPV_MAX_DEPTH: usize = 2 * MAX_DEPTH + 4;

/// Beyond this nesting [`encode`] writes `null` instead of recursing: values
/// from this module's decoders never get there, and a deeper value built
/// elsewhere must not overflow the stack.
const ENCODE_MAX_DEPTH: usize = 512;

/// The largest time value a JS `Date` holds (ms from the epoch, either sign).
const MAX_TIME_MS: f64 = 8.64e15;

const WS_FIN: u8 = 0x80;
const WS_TEXT: u8 = 0x1;
const WS_BINARY: u8 = 0x2;

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

fn err<T>(msg: impl Into<String>) -> Result<T, PacketError> {
    Err(PacketError(msg.into()))
}

// ---------------------------------------------------------------------------
// The JS value notepack.decode makes of a msgpack value

/// What `notepack.decode` turns a [`Value`] into, as far as `JSON.stringify`,
/// socket.io-parser and property keys can tell.
enum Js<'a> {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// bin: a Node.js `Buffer`.
    Buffer(&'a [u8]),
    /// notepack's legacy ext 0 of a length no fixext has.
    ArrayBuffer(&'a [u8]),
    /// A `Date`: its time value, `None` for an invalid date.
    Date(Option<i64>),
    Array(&'a [Value]),
    /// Any other ext: notepack returns `[type, Buffer]`.
    ExtPair(i8, &'a [u8]),
    Object(&'a [(Value, Value)]),
}

fn js(v: &Value) -> Js<'_> {
    match v {
        Value::Nil => Js::Null,
        Value::Boolean(b) => Js::Bool(*b),
        Value::Integer(i) => Js::Num(int_f64(i)),
        Value::F32(f) => Js::Num(f64::from(*f)),
        Value::F64(f) => Js::Num(*f),
        Value::String(s) => Js::Str(match s.as_str() {
            Some(s) => Cow::Borrowed(s),
            // Buffer#toString("utf8") replaces invalid sequences with U+FFFD too.
            None => String::from_utf8_lossy(s.as_bytes()),
        }),
        Value::Binary(b) => Js::Buffer(b),
        Value::Array(a) => Js::Array(a),
        Value::Map(m) => Js::Object(m),
        Value::Ext(t, d) => js_ext(*t, d),
    }
}

/// A msgpack integer as the double notepack computes (`hi * 2 ** 32 + lo`,
/// one rounding, like Rust's `as`).
fn int_f64(i: &rmpv::Integer) -> f64 {
    i.as_f64().unwrap_or(0.0)
}

/// notepack.decode's reading of an ext. rmpv forgets which marker carried it,
/// so this assumes the shortest one (what notepack and rmpv both write):
/// fixext for lengths 1, 2, 4, 8 and 16, ext 8/16/32 otherwise.
fn js_ext(t: i8, d: &[u8]) -> Js<'_> {
    match (t, d.len()) {
        // fixext 1, type 0: notepack's `undefined`.
        (0, 1) => Js::Undefined,
        // fixext 8, type 0: notepack's legacy Date (signed ms).
        (0, 8) => Js::Date(time_clip(
            f64::from(be_i32(d, 0)) * 4_294_967_296.0 + f64::from(be_u32(d, 4)),
        )),
        (0, 2 | 4 | 16) => Js::ExtPair(0, d),
        // ext 8/16/32, type 0: notepack's legacy ArrayBuffer.
        (0, _) => Js::ArrayBuffer(d),
        // The msgpack timestamps, computed in the order notepack does.
        (-1, 4) => Js::Date(time_clip(f64::from(be_u32(d, 0)) * 1e3)),
        (-1, 8) => {
            let hi = be_u32(d, 0);
            let s = f64::from(hi & 0x3) * 4_294_967_296.0 + f64::from(be_u32(d, 4));
            Js::Date(time_clip(s * 1e3 + f64::from(hi >> 2) / 1e6))
        }
        (-1, 12) => {
            let s = f64::from(be_i32(d, 4)) * 4_294_967_296.0 + f64::from(be_u32(d, 8));
            Js::Date(time_clip(s * 1e3 + f64::from(be_u32(d, 0)) / 1e6))
        }
        _ => Js::ExtPair(t, d),
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    be_u32(b, at) as i32
}

/// `new Date(t)`'s TimeClip: out of range is an invalid date, else truncated.
fn time_clip(t: f64) -> Option<i64> {
    (t.is_finite() && t.abs() <= MAX_TIME_MS).then(|| t.trunc() as i64)
}

/// Year, month (1-12), day of a day count from 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    // Shift to 0000-03-01 so leap days end each 400-year era's years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `Date.prototype.toISOString`, with its six-digit signed years outside 0-9999.
fn iso_date(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, mo, d) = civil(days);
    let mut s = String::with_capacity(27);
    if (0..=9999).contains(&y) {
        let _ = write!(s, "{y:04}");
    } else {
        let _ = write!(s, "{}{:06}", if y < 0 { '-' } else { '+' }, y.abs());
    }
    let _ = write!(
        s,
        "-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    );
    s
}

/// `Date.prototype.toString` as a process in UTC writes it (a Date used as a
/// map key; the JS result depends on the process's time zone).
fn date_string(ms: Option<i64>) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(ms) = ms else {
        return "Invalid Date".to_owned();
    };
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, mo, d) = civil(days);
    // 1970-01-01 was a Thursday.
    let wd = DAYS.get((days + 4).rem_euclid(7) as usize).unwrap_or(&"");
    let mon = MONTHS.get(mo as usize - 1).unwrap_or(&"");
    format!(
        "{wd} {mon} {d:02} {}{:04} {:02}:{:02}:{:02} GMT+0000 (Coordinated Universal Time)",
        if y < 0 { "-" } else { "" },
        y.abs(),
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60
    )
}

/// JS `String(value)`: what a value becomes as a property key.
fn js_string(v: &Js<'_>, depth: usize) -> String {
    match v {
        Js::Undefined => "undefined".to_owned(),
        Js::Null => "null".to_owned(),
        Js::Bool(b) => b.to_string(),
        Js::Num(f) => js_number(*f),
        Js::Str(s) => s.to_string(),
        Js::Buffer(b) => String::from_utf8_lossy(b).into_owned(),
        Js::ArrayBuffer(_) => "[object ArrayBuffer]".to_owned(),
        Js::Date(ms) => date_string(*ms),
        Js::Object(_) => "[object Object]".to_owned(),
        Js::ExtPair(t, d) => format!("{t},{}", String::from_utf8_lossy(d)),
        Js::Array(items) => {
            // Array#join: null and undefined become "".
            let mut s = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                match js(item) {
                    Js::Null | Js::Undefined => {}
                    j if depth < ENCODE_MAX_DEPTH => s.push_str(&js_string(&j, depth + 1)),
                    _ => {}
                }
            }
            s
        }
    }
}

fn js_key(k: &Value) -> Cow<'_, str> {
    match js(k) {
        Js::Str(s) => s,
        other => Cow::Owned(js_string(&other, 0)),
    }
}

/// The array index (`"0"` to `"4294967294"`, canonical) a key names, if any.
fn array_index(key: &str) -> Option<u32> {
    let b = key.as_bytes();
    if b.is_empty()
        || b.len() > 10
        || !b.iter().all(u8::is_ascii_digit)
        || (b[0] == b'0' && b.len() > 1)
    {
        return None;
    }
    key.parse::<u32>().ok().filter(|&i| i < u32::MAX)
}

/// A JS object's own properties in the order JS lists them: a repeated key
/// keeps its first place and its last value; array indices come first, in
/// numeric order, then the other keys as inserted.
fn js_order<K: AsRef<str>, V>(entries: Vec<(K, V)>) -> Vec<(K, V)> {
    let mut out: Vec<(K, V)> = Vec::with_capacity(entries.len());
    // A linear search is cheaper for the small objects events carry.
    let mut seen: Option<HashMap<String, usize>> = (entries.len() > 16).then(HashMap::new);
    for (k, v) in entries {
        let at = match &seen {
            Some(seen) => seen.get(k.as_ref()).copied(),
            None => out.iter().position(|(e, _)| e.as_ref() == k.as_ref()),
        };
        match at.and_then(|at| out.get_mut(at)) {
            Some(slot) => slot.1 = v,
            None => {
                if let Some(seen) = &mut seen {
                    seen.insert(k.as_ref().to_owned(), out.len());
                }
                out.push((k, v));
            }
        }
    }
    if out.iter().any(|(k, _)| array_index(k.as_ref()).is_some()) {
        // Stable: keys that are not indices keep their insertion order.
        out.sort_by_cached_key(|(k, _)| array_index(k.as_ref()).map_or((1, 0), |i| (0, i)));
    }
    out
}

// ---------------------------------------------------------------------------
// Numbers

/// JS `Number.prototype.toString()` of `f`.
pub fn js_number(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if f == 0.0 {
        // Both zeros.
        return "0".to_owned();
    }
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        return (f as i64).to_string();
    }
    // `{:e}` gives the shortest round-trip digits; JS writes them with its
    // own rules for where the point goes (Number::toString).
    let abs = f.abs();
    let mut sci = format!("{abs:e}");
    let digit_count = |s: &str| {
        s.split('e')
            .next()
            .map_or(0, |m| m.bytes().filter(u8::is_ascii_digit).count())
    };
    let k = digit_count(&sci);
    if k >= 16 {
        // When two k-digit forms are equally close, JS takes the even one,
        // Rust's shortest form not always; formatting to k digits rounds half
        // to even. Below 16 digits two forms that far apart cannot both
        // round-trip.
        let even = format!("{abs:.*e}", k - 1);
        if even != sci && even.parse::<f64>() == Ok(abs) {
            sci = even;
        }
    }
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return f.to_string();
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return f.to_string();
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i32;
    // The value is 0.digits * 10^n.
    let n = exp + 1;
    let mut s = String::with_capacity(k as usize + 8);
    if f < 0.0 {
        s.push('-');
    }
    if k <= n && n <= 21 {
        s.push_str(&digits);
        s.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        s.push_str(int);
        s.push('.');
        s.push_str(frac);
    } else if -6 < n && n <= 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', (-n) as usize));
        s.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        s.push_str(first);
        if !rest.is_empty() {
            s.push('.');
            s.push_str(rest);
        }
        let _ = write!(s, "e{}{}", if n > 0 { '+' } else { '-' }, (n - 1).abs());
    }
    s
}

// ---------------------------------------------------------------------------
// Encoder

/// `JSON.stringify` of the data with socket.io-parser's deconstruction folded
/// in: binaries become placeholders numbered in the order JSON writes them,
/// which is the order `deconstructPacket` walks them.
struct JsonWriter<'a> {
    out: String,
    bins: Vec<&'a [u8]>,
}

impl<'a> JsonWriter<'a> {
    fn value(&mut self, v: Js<'a>, depth: usize) {
        if depth > ENCODE_MAX_DEPTH {
            self.out.push_str("null");
            return;
        }
        match v {
            // JSON.stringify writes undefined (and NaN, ±Infinity) as null in
            // arrays; object members holding undefined are skipped by the caller.
            Js::Undefined | Js::Null => self.out.push_str("null"),
            Js::Bool(b) => self.out.push_str(if b { "true" } else { "false" }),
            Js::Num(f) if f.is_finite() => self.out.push_str(&js_number(f)),
            Js::Num(_) => self.out.push_str("null"),
            Js::Str(s) => json_string(&mut self.out, &s),
            Js::Buffer(b) | Js::ArrayBuffer(b) => self.placeholder(b),
            Js::Date(Some(ms)) => json_string(&mut self.out, &iso_date(ms)),
            // Date#toJSON of an invalid date.
            Js::Date(None) => self.out.push_str("null"),
            Js::ExtPair(t, d) => {
                let _ = write!(self.out, "[{t},");
                self.placeholder(d);
                self.out.push(']');
            }
            Js::Array(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.value(js(item), depth + 1);
                }
                self.out.push(']');
            }
            Js::Object(entries) => {
                let props = js_order(
                    entries
                        .iter()
                        .map(|(k, v)| (js_key(k), v))
                        // notepack's `value["__proto__"] = x` sets the prototype, no own property.
                        .filter(|(k, _)| k != "__proto__")
                        .collect(),
                );
                self.out.push('{');
                let mut first = true;
                for (k, v) in props {
                    let v = js(v);
                    if matches!(v, Js::Undefined) {
                        continue;
                    }
                    if !first {
                        self.out.push(',');
                    }
                    first = false;
                    json_string(&mut self.out, &k);
                    self.out.push(':');
                    self.value(v, depth + 1);
                }
                self.out.push('}');
            }
        }
    }

    fn placeholder(&mut self, b: &'a [u8]) {
        let _ = write!(
            self.out,
            "{{\"_placeholder\":true,\"num\":{}}}",
            self.bins.len()
        );
        self.bins.push(b);
    }
}

/// A JSON string as `JSON.stringify` writes it (a Rust string has no lone
/// surrogates, the one other thing JS escapes).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

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
    let mut data = JsonParser {
        s: json.as_bytes(),
        src: json,
        i: 0,
    }
    .parse()?;
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

fn digits(b: &[u8], from: usize) -> usize {
    b.get(from..)
        .map_or(0, |t| t.iter().take_while(|c| c.is_ascii_digit()).count())
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

/// `JSON.parse` into msgpack values: integers that fit i64/u64 stay
/// integers, other numbers are doubles (correctly rounded, as in JS), object
/// members in the order JS gives them.
struct JsonParser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

impl JsonParser<'_> {
    fn parse(&mut self) -> Result<Value, PacketError> {
        let v = self.value(0)?;
        self.ws();
        if self.i != self.s.len() {
            return err("packet: bad JSON (trailing characters)");
        }
        Ok(v)
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        let hit = self.s.get(self.i) == Some(&c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn value(&mut self, depth: usize) -> Result<Value, PacketError> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return err("packet: bad JSON (unexpected end)");
        };
        if matches!(c, b'[' | b'{') && depth >= MAX_DATA_DEPTH {
            return err("packet: data nested too deeply");
        }
        match c {
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return err("packet: bad JSON (array)");
                        }
                    }
                }
                Ok(Value::Array(items))
            }
            b'{' => {
                self.i += 1;
                let mut entries = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.ws();
                        if self.s.get(self.i) != Some(&b'"') {
                            return err("packet: bad JSON (object key)");
                        }
                        let k = self.string()?;
                        if !self.eat(b':') {
                            return err("packet: bad JSON (object)");
                        }
                        entries.push((k, self.value(depth + 1)?));
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return err("packet: bad JSON (object)");
                        }
                    }
                }
                Ok(Value::Map(
                    js_order(entries)
                        .into_iter()
                        .map(|(k, v)| (Value::from(k), v))
                        .collect(),
                ))
            }
            b'"' => Ok(Value::from(self.string()?)),
            b't' => self.literal("true", Value::Boolean(true)),
            b'f' => self.literal("false", Value::Boolean(false)),
            b'n' => self.literal("null", Value::Nil),
            b'-' | b'0'..=b'9' => self.number(),
            _ => err("packet: bad JSON (unexpected character)"),
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, PacketError> {
        if self.s.get(self.i..self.i + word.len()) == Some(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            err("packet: bad JSON (literal)")
        }
    }

    fn number(&mut self) -> Result<Value, PacketError> {
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.i += digits(self.s, self.i),
            _ => return err("packet: bad JSON (number)"),
        }
        let mut integral = true;
        if self.s.get(self.i) == Some(&b'.') {
            integral = false;
            let n = digits(self.s, self.i + 1);
            if n == 0 {
                return err("packet: bad JSON (number)");
            }
            self.i += 1 + n;
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            integral = false;
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let n = digits(self.s, self.i);
            if n == 0 {
                return err("packet: bad JSON (number)");
            }
            self.i += n;
        }
        let text = self.src.get(start..self.i).unwrap_or_default();
        if integral {
            if let Ok(u) = text.parse::<u64>() {
                return Ok(Value::from(u));
            }
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::from(i));
            }
        }
        // Rust's parse rounds correctly and overflows to ±Infinity, as JSON.parse.
        text.parse::<f64>()
            .map(Value::F64)
            .or_else(|_| err("packet: bad JSON (number)"))
    }

    /// A string; `self.i` is on its opening quote.
    fn string(&mut self) -> Result<String, PacketError> {
        self.i += 1;
        let mut out = String::new();
        let mut start = self.i;
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return err("packet: bad JSON (unterminated string)");
            };
            match c {
                b'"' | b'\\' => {
                    // Both are ASCII, so the slice ends on a char boundary.
                    out.push_str(self.src.get(start..self.i).unwrap_or_default());
                    self.i += 1;
                    if c == b'"' {
                        return Ok(out);
                    }
                    self.escape(&mut out)?;
                    start = self.i;
                }
                0..=0x1f => return err("packet: bad JSON (control character in string)"),
                _ => self.i += 1,
            }
        }
    }

    /// One escape after its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), PacketError> {
        let Some(&c) = self.s.get(self.i) else {
            return err("packet: bad JSON (escape)");
        };
        self.i += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if (0xd800..0xdc00).contains(&hi) && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                {
                    let save = self.i;
                    self.i += 2;
                    let lo = self.hex4()?;
                    if (0xdc00..0xe000).contains(&lo) {
                        let cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                        out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                        return Ok(());
                    }
                    self.i = save;
                }
                // A lone surrogate has no Rust (or UTF-8) form.
                char::from_u32(hi).unwrap_or('\u{fffd}')
            }
            _ => return err("packet: bad JSON (escape)"),
        };
        out.push(ch);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, PacketError> {
        let h = self
            .src
            .get(self.i..self.i + 4)
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match h {
            Some(h) => {
                self.i += 4;
                Ok(h)
            }
            None => err("packet: bad JSON (\\u escape)"),
        }
    }
}

// ---------------------------------------------------------------------------
// msgpack

/// msgpack bytes of a value (rmpv's encoding: the shortest forms).
pub fn to_msgpack(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // io::Write for Vec<u8> never fails, and nor does rmpv's writing into it.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

/// The value msgpack bytes hold: exactly one value, nested at most
/// [`MAX_DEPTH`] arrays/maps deep, without the reserved marker 0xc1 (rmpv
/// reads it as nil, notepack refuses it). Strings that are not UTF-8 come
/// back as notepack reads them, with U+FFFD for each bad sequence (rmpv
/// would write them back as bin).
pub fn from_msgpack(b: &[u8]) -> Result<Value, PacketError> {
    // Checked before rmpv recurses into it.
    check_msgpack(b)?;
    let mut rd = b;
    let mut v = rmpv::decode::read_value_with_max_depth(&mut rd, RMPV_MAX_DEPTH)
        .map_err(|e| PacketError(format!("msgpack: {e}")))?;
    if !rd.is_empty() {
        return err(format!("msgpack: {} trailing bytes", rd.len()));
    }
    make_utf8(&mut v);
    Ok(v)
}

/// Walks msgpack without building it (no recursion): one complete value,
/// nothing after it, every length within the data, no reserved marker, no
/// nesting deeper than [`MAX_DEPTH`].
fn check_msgpack(b: &[u8]) -> Result<(), PacketError> {
    let mut at = 0usize;
    // Items still to read in each open array/map, under one for the value itself.
    let mut open: Vec<u64> = vec![1];
    let be = |at: usize, n: usize| -> Result<u64, PacketError> {
        match b.get(at..at + n) {
            Some(s) => Ok(s.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x))),
            None => err("msgpack: truncated"),
        }
    };
    while let Some(left) = open.last_mut() {
        if *left == 0 {
            open.pop();
            continue;
        }
        *left -= 1;
        let Some(&m) = b.get(at) else {
            return err("msgpack: truncated");
        };
        at += 1;
        // (bytes to skip, items the value holds)
        let (skip, items): (u64, u64) = match m {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
            0x90..=0x9f => (0, u64::from(m & 0x0f)),
            0xa0..=0xbf => (u64::from(m & 0x1f), 0),
            0xc1 => return err("msgpack: reserved marker 0xc1"),
            0xc4 | 0xd9 => (1 + be(at, 1)?, 0),
            0xc5 | 0xda => (2 + be(at, 2)?, 0),
            0xc6 | 0xdb => (4 + be(at, 4)?, 0),
            0xc7 => (1 + 1 + be(at, 1)?, 0),
            0xc8 => (2 + 1 + be(at, 2)?, 0),
            0xc9 => (4 + 1 + be(at, 4)?, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4..=0xd8 => (1 + (1u64 << (m - 0xd4)), 0),
            0xdc => (2, be(at, 2)?),
            0xdd => (4, be(at, 4)?),
            0xde => (2, 2 * be(at, 2)?),
            0xdf => (4, 2 * be(at, 4)?),
        };
        at = match usize::try_from(skip).ok().and_then(|s| at.checked_add(s)) {
            Some(end) if end <= b.len() => end,
            _ => return err("msgpack: truncated"),
        };
        if matches!(m, 0x80..=0x9f | 0xdc..=0xdf) {
            // The value itself sits on the stack, so containers are len - 1 deep.
            if open.len() > MAX_DEPTH {
                return err("msgpack: nested too deeply");
            }
            open.push(items);
        }
    }
    if at != b.len() {
        return err(format!("msgpack: {} trailing bytes", b.len() - at));
    }
    Ok(())
}

/// Replaces strings that are not UTF-8 by their lossy form (recursion
/// bounded by [`MAX_DEPTH`], checked before).
fn make_utf8(v: &mut Value) {
    match v {
        Value::String(s) if s.is_err() => {
            *s = String::from_utf8_lossy(s.as_bytes()).into_owned().into();
        }
        Value::Array(items) => items.iter_mut().for_each(make_utf8),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            make_utf8(k);
            make_utf8(v);
        }),
        _ => {}
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

// ---------------------------------------------------------------------------
// WebSocket frames

/// Each part as the WebSocket frame a client gets (lib/frames.js): a text
/// frame holding `"4"` (Engine.IO "message") + the string, or a binary frame.
/// Two buffers per part: header, payload.
pub fn to_ws_frames(parts: &[Part]) -> Vec<Bytes> {
    let mut frames = Vec::with_capacity(2 * parts.len());
    for part in parts {
        let (opcode, payload) = match part {
            Part::Text(s) => {
                let mut p = Vec::with_capacity(1 + s.len());
                p.push(b'4');
                p.extend_from_slice(s.as_bytes());
                (WS_TEXT, Bytes::from(p))
            }
            Part::Binary(b) => (WS_BINARY, b.clone()),
        };
        frames.push(ws_header(opcode, payload.len()));
        frames.push(payload);
    }
    frames
}

/// An unmasked, final, uncompressed frame header (RFC 6455, 5.2).
fn ws_header(opcode: u8, len: usize) -> Bytes {
    let mut h = Vec::with_capacity(10);
    h.push(WS_FIN | opcode);
    if len < 126 {
        h.push(len as u8);
    } else if len < 65536 {
        h.push(126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    Bytes::from(h)
}

/// The parts back from frames as [`to_ws_frames`] makes them, in buffers
/// split anywhere (read as one byte stream).
pub fn from_ws_frames(frames: &[&[u8]]) -> Result<Vec<Part>, PacketError> {
    let mut rd = Chunks {
        bufs: frames,
        idx: 0,
        off: 0,
        left: frames.iter().map(|f| f.len()).sum(),
    };
    let mut parts = Vec::new();
    while rd.left > 0 {
        let b0 = rd.byte()?;
        let b1 = rd.byte()?;
        if b0 & WS_FIN == 0 {
            return err("ws: fragmented frame");
        }
        if b0 & 0x70 != 0 {
            return err("ws: reserved bits set (compressed frame?)");
        }
        if b1 & 0x80 != 0 {
            return err("ws: masked frame");
        }
        let len = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([rd.byte()?, rd.byte()?])),
            127 => {
                let mut l = [0u8; 8];
                for b in &mut l {
                    *b = rd.byte()?;
                }
                u64::from_be_bytes(l)
            }
            n => u64::from(n),
        };
        let len = match usize::try_from(len) {
            Ok(len) if len <= rd.left => len,
            _ => return err("ws: frame longer than the data"),
        };
        match b0 & 0x0f {
            WS_TEXT => {
                if len == 0 || rd.byte()? != b'4' {
                    return err("ws: text frame is not an Engine.IO message");
                }
                let text = String::from_utf8(rd.take(len - 1)?)
                    .or_else(|_| err("ws: text frame is not UTF-8"))?;
                parts.push(Part::Text(text));
            }
            WS_BINARY => parts.push(Part::Binary(Bytes::from(rd.take(len)?))),
            op => return err(format!("ws: unexpected opcode {op}")),
        }
    }
    Ok(parts)
}

/// A byte reader over buffers read back to back.
struct Chunks<'a> {
    bufs: &'a [&'a [u8]],
    idx: usize,
    off: usize,
    left: usize,
}

impl Chunks<'_> {
    fn byte(&mut self) -> Result<u8, PacketError> {
        loop {
            let Some(buf) = self.bufs.get(self.idx) else {
                return err("ws: truncated frame");
            };
            if let Some(&b) = buf.get(self.off) {
                self.off += 1;
                self.left -= 1;
                return Ok(b);
            }
            self.idx += 1;
            self.off = 0;
        }
    }

    fn take(&mut self, mut n: usize) -> Result<Vec<u8>, PacketError> {
        if n > self.left {
            return err("ws: truncated frame");
        }
        let mut out = Vec::with_capacity(n);
        while n > 0 {
            let Some(buf) = self.bufs.get(self.idx) else {
                return err("ws: truncated frame");
            };
            let avail = buf.get(self.off..).unwrap_or_default();
            let k = avail.len().min(n);
            out.extend_from_slice(&avail[..k]);
            self.off += k;
            self.left -= k;
            n -= k;
            if self.off >= buf.len() {
                self.idx += 1;
                self.off = 0;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(v: &str) -> Value {
        Value::from(v)
    }

    fn arr(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    fn map(entries: Vec<(Value, Value)>) -> Value {
        Value::Map(entries)
    }

    fn bin(b: &[u8]) -> Value {
        Value::Binary(b.to_vec())
    }

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
    fn js_number_matches_js_string() {
        for (f, js) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (1.5, "1.5"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (-1e21, "-1e+21"),
            (1e20, "100000000000000000000"),
            (999999999999999900000.0, "999999999999999900000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1e-6, "0.000001"),
            (1.234e-6, "0.000001234"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (123.456, "123.456"),
            (9007199254740992.0, "9007199254740992"),
            (18446744073709552000.0, "18446744073709552000"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (5e-324, "5e-324"),
            (-5e-324, "-5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (1.2345e25, "1.2345e+25"),
            // Two closest 17-digit forms: JS takes the even one.
            (-1_414_213_562_373_095.0 - 0.25, "-1414213562373095.2"),
        ] {
            assert_eq!(js_number(f), js, "{f:e}");
        }
    }

    proptest! {
        #[test]
        fn js_number_round_trips(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            let s = js_number(f);
            if f.is_finite() {
                let back: f64 = s.parse().expect("a JS number string parses");
                prop_assert_eq!(back, f);
            }
        }
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
    fn encodes_json_as_json_stringify() {
        let data = arr(vec![
            Value::F64(2.0),
            Value::F64(f64::NAN),
            Value::F64(f64::NEG_INFINITY),
            Value::F64(-0.0),
            Value::F64(1e21),
            Value::F32(0.5),
            Value::from(u64::MAX),
            Value::from(i64::MIN),
            Value::Nil,
            Value::Boolean(false),
            s("q\"b\\c\u{1}\u{7f}\u{2028}é😀\n"),
            // Invalid UTF-8 reads as Buffer#toString does.
            Value::String(rmpv::Utf8String::from(
                String::from_utf8_lossy(b"a\xffb").as_ref(),
            )),
            map(vec![
                (1.into(), s("int key")),
                (Value::F64(1.5), s("float key")),
                (Value::Nil, s("nil key")),
                (Value::Boolean(true), s("bool key")),
                (arr(vec![1.into(), Value::Nil, s("x")]), s("array key")),
                (map(vec![]), s("map key")),
            ]),
            // undefined: null in an array, absent from an object.
            Value::Ext(0, vec![0]),
            map(vec![(s("u"), Value::Ext(0, vec![0])), (s("v"), 1.into())]),
            // Other exts: [type, Buffer], hence binary.
        ]);
        assert_eq!(
            one_text(&event(data)),
            concat!(
                r#"2[2,null,null,0,1e+21,0.5,18446744073709552000,-9223372036854776000,null,false,"#,
                r#""q\"b\\c\u0001"#,
                "\u{7f}\u{2028}é😀",
                r#"\n","a�b",{"1":"int key","1.5":"float key","null":"nil key","true":"bool key","1,,x":"array key","[object Object]":"map key"},null,{"v":1}]"#
            )
        );
    }

    #[test]
    fn object_keys_in_js_order() {
        let obj = map(vec![
            (s("b"), 1.into()),
            (s("10"), 2.into()),
            (s("a"), 3.into()),
            (2.into(), 4.into()),
            (s("b"), 5.into()),
            (s("01"), 6.into()),
            (s("4294967295"), 7.into()),
            (s("4294967294"), 8.into()),
            (s("__proto__"), map(vec![(s("x"), 1.into())])),
        ]);
        assert_eq!(
            one_text(&event(arr(vec![obj]))),
            r#"2[{"2":4,"10":2,"4294967294":8,"b":5,"a":3,"01":6,"4294967295":7}]"#
        );
        // Many keys take the hashed path.
        let many: Vec<_> = (0..40)
            .rev()
            .map(|i| (s(&format!("k{}", i % 20)), i.into()))
            .collect();
        let text = one_text(&event(arr(vec![map(many)])));
        // Last value, first place.
        assert!(text.starts_with(r#"2[{"k19":19,"k18":18,"#), "{text}");
        assert_eq!(text.matches(':').count(), 20);
    }

    #[test]
    fn encodes_dates_as_to_json() {
        // notepack writes a Date as ext -1: timestamp 32, 64 or 96.
        let ts96 = |ns: u32, s: i64| {
            let mut d = ns.to_be_bytes().to_vec();
            d.extend_from_slice(&s.to_be_bytes());
            Value::Ext(-1, d)
        };
        let ts64 =
            |ns: u32, s: u64| Value::Ext(-1, ((u64::from(ns) << 34) | s).to_be_bytes().to_vec());
        let data = arr(vec![
            Value::Ext(-1, 1_704_164_645u32.to_be_bytes().to_vec()),
            ts64(678_000_000, 1_704_164_645),
            ts96(0, -1),
            ts96(999_000_000, -62_198_755_201),
            ts96(0, 253_402_300_800),
            ts96(0, 8_640_000_000_000),
            ts96(0, 8_640_000_000_001),
            ts96(0, -8_640_000_000_000),
            Value::Ext(0, 1_000i64.to_be_bytes().to_vec()),
        ]);
        assert_eq!(
            one_text(&event(data)),
            concat!(
                r#"2["2024-01-02T03:04:05.000Z","2024-01-02T03:04:05.678Z","1969-12-31T23:59:59.000Z","#,
                r#""-000002-12-31T23:59:59.999Z","+010000-01-01T00:00:00.000Z","+275760-09-13T00:00:00.000Z","#,
                r#"null,"-271821-04-20T00:00:00.000Z","1970-01-01T00:00:01.000Z"]"#
            )
        );
        assert_eq!(
            date_string(Some(1_704_164_645_678)),
            "Tue Jan 02 2024 03:04:05 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(
            date_string(Some(-62_198_755_200_000)),
            "Fri Jan 01 -0001 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(date_string(None), "Invalid Date");
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

    #[test]
    fn msgpack_round_trips_and_refuses_garbage() {
        let v = packet_to_value(&Packet {
            kind: ACK,
            nsp: "/chat".into(),
            id: Some(9),
            data: arr(vec![
                s("x"),
                bin(b"y"),
                Value::F64(0.5),
                (-7).into(),
                Value::Ext(-1, vec![0; 4]),
            ]),
        });
        let b = to_msgpack(&v);
        assert_eq!(from_msgpack(&b).expect("decodes"), v);

        for bad in [
            &[][..],
            &[0x92, 0x01],                   // array missing an item
            &[0xc4, 0x05, 0x01],             // bin shorter than its length
            &[0xdb, 0xff, 0xff, 0xff, 0xff], // str of 4 GiB, not there
            &[0xdd, 0xff, 0xff, 0xff, 0xff], // array of 4 G items, not there
            &[0x01, 0x02],                   // trailing bytes
            &[0xd7, 0xff, 0x00],             // truncated ext
            &[0xc1],                         // reserved
            &[0x92, 0x01, 0xc1],             // reserved, nested
            &[0xc7, 0x02, 0x05, 0x00],       // ext 8 shorter than its length
            &[0xde, 0x00, 0x01, 0x01],       // map missing a value
            &[0xdf, 0xff, 0xff, 0xff, 0xff], // map of 4 G entries, not there
        ] {
            assert!(from_msgpack(bad).is_err(), "accepted {bad:02x?}");
        }
        // Deep nesting is refused while reading, without exhausting the stack.
        let mut deep = vec![0x91u8; 1000];
        deep.push(0xc0);
        assert!(from_msgpack(&deep).is_err());
        let mut deep = [0x81u8, 0xc0].repeat(1000);
        deep.push(0xc0);
        assert!(from_msgpack(&deep).is_err());
        let nested = |levels: usize| {
            let mut b = vec![0x91u8; levels - 1];
            b.push(0x90);
            b
        };
        assert!(from_msgpack(&nested(MAX_DEPTH)).is_ok());
        assert!(from_msgpack(&nested(MAX_DEPTH + 1)).is_err());
        let mut leaf = vec![0x91u8; MAX_DEPTH];
        leaf.extend_from_slice(&[0xd6, 0xff, 0, 0, 0, 0]);
        assert!(from_msgpack(&leaf).is_ok(), "an ext at the deepest level");
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

    #[test]
    fn ws_frames_carry_the_parts() {
        for len in [0usize, 125, 126, 65_535, 65_536] {
            let parts = vec![
                Part::Text("a".repeat(len.saturating_sub(1))),
                Part::Binary(Bytes::from(vec![7u8; len])),
            ];
            let frames = to_ws_frames(&parts);
            assert_eq!(frames.len(), 4);
            let header_len = |n: usize| match n {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            let text_len = len.saturating_sub(1) + 1;
            assert_eq!(frames[0].len(), header_len(text_len));
            assert_eq!(frames[0][0], 0x81);
            assert_eq!(frames[1][0], b'4');
            assert_eq!(frames[2].len(), header_len(len));
            assert_eq!(frames[2][0], 0x82);
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_ref()).collect();
            assert_eq!(from_ws_frames(&refs).expect("frames"), parts);
            // The same bytes, split differently.
            let all: Vec<u8> = frames.concat();
            assert_eq!(from_ws_frames(&[&all]).expect("one buffer"), parts);
            let pieces: Vec<&[u8]> = all.chunks(3).collect();
            assert_eq!(from_ws_frames(&pieces).expect("3-byte pieces"), parts);
        }
        assert_eq!(from_ws_frames(&[]).expect("nothing"), vec![]);

        let good = to_ws_frames(&[text("2[\"a\"]"), binary(b"xyz")]).concat();
        let bad: Vec<Vec<u8>> = vec![
            good[..good.len() - 1].to_vec(),    // truncated payload
            vec![0x81],                         // header alone
            vec![0x82, 126, 0x00],              // truncated length
            vec![0x82, 0x85, 1, 2, 3, 4, 5],    // masked
            vec![0x02, 0x01, 0x00],             // not FIN
            vec![0xc2, 0x01, 0x00],             // RSV1 (compressed)
            vec![0x88, 0x00],                   // close
            vec![0x80, 0x01, 0x00],             // continuation
            vec![0x81, 0x02, b'3', b'x'],       // not an Engine.IO message
            vec![0x81, 0x00],                   // empty text
            vec![0x81, 0x03, b'4', 0xff, 0xfe], // not UTF-8
            vec![0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // longer than any data
            vec![0x82, 127, 0, 0, 0, 0, 0, 0, 0, 9, 1], // longer than the data
        ];
        for b in bad {
            assert!(from_ws_frames(&[&b]).is_err(), "accepted {b:02x?}");
        }
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
