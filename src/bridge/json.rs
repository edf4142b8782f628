//! JSON text as JS handles it: written as `JSON.stringify` writes it (with
//! socket.io-parser's binary placeholders), read as `JSON.parse` reads it.

use std::fmt::Write as _;

use rmpv::Value;

use super::js::{iso_date, js, js_key, js_number, js_order, Js, ENCODE_MAX_DEPTH};

// ---------------------------------------------------------------------------
// Writing

/// `JSON.stringify` of the data with socket.io-parser's deconstruction folded
/// in: binaries become placeholders numbered in the order JSON writes them,
/// which is the order `deconstructPacket` walks them.
pub(super) struct JsonWriter<'a> {
    pub(super) out: String,
    pub(super) bins: Vec<&'a [u8]>,
}

impl<'a> JsonWriter<'a> {
    pub(super) fn value(&mut self, v: Js<'a>, depth: usize) {
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

// ---------------------------------------------------------------------------
// Reading

/// How many ASCII digits `b` holds from `from` on.
pub(super) fn digits(b: &[u8], from: usize) -> usize {
    b.get(from..)
        .map_or(0, |t| t.iter().take_while(|c| c.is_ascii_digit()).count())
}

/// `JSON.parse` into msgpack values: integers that fit i64/u64 stay
/// integers, other numbers are doubles (correctly rounded, as in JS), object
/// members in the order JS gives them. Arrays and objects nest at most
/// `max_depth` deep. Errors are messages about the packet whose data this
/// reads.
pub(super) struct JsonParser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
    max_depth: usize,
}

impl<'a> JsonParser<'a> {
    pub(super) fn new(src: &'a str, max_depth: usize) -> Self {
        JsonParser {
            s: src.as_bytes(),
            src,
            i: 0,
            max_depth,
        }
    }

    pub(super) fn parse(&mut self) -> Result<Value, &'static str> {
        let v = self.value(0)?;
        self.ws();
        if self.i != self.s.len() {
            return Err("packet: bad JSON (trailing characters)");
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

    fn value(&mut self, depth: usize) -> Result<Value, &'static str> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err("packet: bad JSON (unexpected end)");
        };
        if matches!(c, b'[' | b'{') && depth >= self.max_depth {
            return Err("packet: data nested too deeply");
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
                            return Err("packet: bad JSON (array)");
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
                            return Err("packet: bad JSON (object key)");
                        }
                        let k = self.string()?;
                        if !self.eat(b':') {
                            return Err("packet: bad JSON (object)");
                        }
                        entries.push((k, self.value(depth + 1)?));
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err("packet: bad JSON (object)");
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
            _ => Err("packet: bad JSON (unexpected character)"),
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, &'static str> {
        if self.s.get(self.i..self.i + word.len()) == Some(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err("packet: bad JSON (literal)")
        }
    }

    fn number(&mut self) -> Result<Value, &'static str> {
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.i += digits(self.s, self.i),
            _ => return Err("packet: bad JSON (number)"),
        }
        let mut integral = true;
        if self.s.get(self.i) == Some(&b'.') {
            integral = false;
            let n = digits(self.s, self.i + 1);
            if n == 0 {
                return Err("packet: bad JSON (number)");
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
                return Err("packet: bad JSON (number)");
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
            .map_err(|_| "packet: bad JSON (number)")
    }

    /// A string; `self.i` is on its opening quote.
    fn string(&mut self) -> Result<String, &'static str> {
        self.i += 1;
        let mut out = String::new();
        let mut start = self.i;
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("packet: bad JSON (unterminated string)");
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
                0..=0x1f => return Err("packet: bad JSON (control character in string)"),
                _ => self.i += 1,
            }
        }
    }

    /// One escape after its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), &'static str> {
        let Some(&c) = self.s.get(self.i) else {
            return Err("packet: bad JSON (escape)");
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
            _ => return Err("packet: bad JSON (escape)"),
        };
        out.push(ch);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
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
            None => Err("packet: bad JSON (\\u escape)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::js::date_string;
    use super::super::test_values::{arr, map, s};
    use super::*;

    /// What [`JsonWriter`] makes of `data`, which holds no binary.
    fn stringify(data: &Value) -> String {
        let mut json = JsonWriter {
            out: String::new(),
            bins: Vec::new(),
        };
        json.value(js(data), 0);
        assert!(json.bins.is_empty(), "binaries in {data:?}");
        json.out
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
            stringify(&data),
            concat!(
                r#"[2,null,null,0,1e+21,0.5,18446744073709552000,-9223372036854776000,null,false,"#,
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
            stringify(&arr(vec![obj])),
            r#"[{"2":4,"10":2,"4294967294":8,"b":5,"a":3,"01":6,"4294967295":7}]"#
        );
        // Many keys take the hashed path.
        let many: Vec<_> = (0..40)
            .rev()
            .map(|i| (s(&format!("k{}", i % 20)), i.into()))
            .collect();
        let text = stringify(&arr(vec![map(many)]));
        // Last value, first place.
        assert!(text.starts_with(r#"[{"k19":19,"k18":18,"#), "{text}");
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
            stringify(&data),
            concat!(
                r#"["2024-01-02T03:04:05.000Z","2024-01-02T03:04:05.678Z","1969-12-31T23:59:59.000Z","#,
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
}
