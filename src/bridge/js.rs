//! Msgpack values as JS sees them once `notepack.decode` has read them: their
//! type ([`Js`]), `Date`s, property keys and their order, number strings.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use rmpv::Value;

/// Beyond this nesting JSON writing ([`JsonWriter`](super::json::JsonWriter))
/// writes `null` and [`js_string`] stops recursing: values from the bridge's
/// decoders never get there, and a deeper value built elsewhere must not
/// overflow the stack.
pub(super) const ENCODE_MAX_DEPTH: usize = 512;

/// The largest time value a JS `Date` holds (ms from the epoch, either sign).
const MAX_TIME_MS: f64 = 8.64e15;

/// What `notepack.decode` turns a [`Value`] into, as far as `JSON.stringify`,
/// socket.io-parser and property keys can tell.
pub(super) enum Js<'a> {
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

pub(super) fn js(v: &Value) -> Js<'_> {
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
pub(super) fn iso_date(ms: i64) -> String {
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
pub(super) fn date_string(ms: Option<i64>) -> String {
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

pub(super) fn js_key(k: &Value) -> Cow<'_, str> {
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
pub(super) fn js_order<K: AsRef<str>, V>(entries: Vec<(K, V)>) -> Vec<(K, V)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
}
