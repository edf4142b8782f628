//! Packs the link's events into one flat buffer for JS.
//!
//! Handing JS one buffer per drain, instead of one object and one Buffer per
//! event, keeps the per-message cost on the worker's JS thread to a few
//! integer reads. Each record is `[u8 type][u32 LE body length][body]`, so JS
//! can skip a record it does not know. Numbers are little-endian; strings are
//! `[u32 length][utf8]`; a list is `[u32 count][u32 …]`; a payload is the rest
//! of the record body.
//!
//! [`RECORDS`] describes every record; the encoder below writes exactly those
//! fields (the tests decode every kind by the table), and JS reads them with
//! the constants generated from the table into `lib/generated/batch-layout.js`
//! (a test fails when that file is stale; `UPDATE_GENERATED=1 cargo test`
//! rewrites it).

use crate::frame::Header;
use crate::link::LinkEvent;

/// The type of one field of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    U32,
    /// An integer sent as f64: exact up to 2^53, and one read in JS.
    F64,
    Str,
    U32List,
    /// The rest of the record; always the last field.
    Payload,
}

/// A field of a record: its name in JS and its type.
pub type Field = (&'static str, FieldType);

/// A record type: its name in JS, its type byte and its fields in order.
pub struct RecordLayout {
    pub name: &'static str,
    pub code: u8,
    pub fields: &'static [Field],
}

use FieldType::{Payload, Str, U32List, F64, U32};

/// Every record the link writes for JS.
pub const RECORDS: &[RecordLayout] = &[
    RecordLayout {
        name: "UP",
        code: ev::UP,
        fields: &[("node", U32)],
    },
    RecordLayout {
        name: "DOWN",
        code: ev::DOWN,
        fields: &[("reason", Str)],
    },
    RecordLayout {
        name: "MESSAGE",
        code: ev::MESSAGE,
        fields: &[
            ("from", U32),
            ("kind", U32),
            ("nsp", Str),
            ("payload", Payload),
        ],
    },
    RecordLayout {
        name: "INCOMING",
        code: ev::INCOMING,
        fields: &[
            ("id", F64),
            ("from", U32),
            ("kind", U32),
            ("nsp", Str),
            ("payload", Payload),
        ],
    },
    RecordLayout {
        name: "ACCEPTED",
        code: ev::ACCEPTED,
        fields: &[("req", U32), ("expected", U32)],
    },
    RecordLayout {
        name: "REPLY",
        code: ev::REPLY,
        fields: &[
            ("req", U32),
            ("from", U32),
            ("last", U32),
            ("done", U32),
            ("payload", Payload),
        ],
    },
    RecordLayout {
        name: "DEPARTED",
        code: ev::DEPARTED,
        fields: &[("req", U32), ("node", U32)],
    },
    RecordLayout {
        name: "DONE",
        code: ev::DONE,
        fields: &[("req", U32)],
    },
    RecordLayout {
        name: "TIMED_OUT",
        code: ev::TIMED_OUT,
        fields: &[("req", U32), ("missing", U32), ("pids", U32List)],
    },
    RecordLayout {
        name: "COUNT",
        code: ev::COUNT,
        fields: &[("req", U32), ("count", U32)],
    },
    RecordLayout {
        name: "DROPPED",
        code: ev::DROPPED,
        fields: &[("volatile", F64), ("overflow", F64)],
    },
    RecordLayout {
        name: "TOO_LARGE",
        code: ev::TOO_LARGE,
        fields: &[("count", F64), ("limit", F64)],
    },
];

/// Record types (the `code`s of [`RECORDS`]).
pub mod ev {
    pub const UP: u8 = 1;
    pub const DOWN: u8 = 2;
    pub const MESSAGE: u8 = 3;
    pub const INCOMING: u8 = 4;
    pub const ACCEPTED: u8 = 5;
    pub const REPLY: u8 = 6;
    pub const DEPARTED: u8 = 7;
    pub const DONE: u8 = 8;
    pub const TIMED_OUT: u8 = 9;
    pub const COUNT: u8 = 10;
    pub const DROPPED: u8 = 11;
    pub const TOO_LARGE: u8 = 12;
}

/// Bytes before a record's body: its type and its body length.
pub const RECORD_HEADER: usize = 5;

struct Record<'a> {
    out: &'a mut Vec<u8>,
    len_at: usize,
}

impl<'a> Record<'a> {
    fn start(out: &'a mut Vec<u8>, t: u8) -> Self {
        out.push(t);
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        Record { out, len_at }
    }
    fn u32(self, v: u32) -> Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f64(self, v: f64) -> Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(self, s: &str) -> Self {
        let r = self.u32(s.len() as u32);
        r.out.extend_from_slice(s.as_bytes());
        r
    }
    fn bytes(self, b: &[u8]) -> Self {
        self.out.extend_from_slice(b);
        self
    }
    fn end(self) {
        let len = (self.out.len() - self.len_at - 4) as u32;
        self.out[self.len_at..self.len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// About the bytes [`encode`] writes for `events`: enough for every record
/// but those with long strings, so that the buffer is allocated once.
pub fn size_hint(events: &[LinkEvent]) -> usize {
    events
        .iter()
        .map(|e| match e {
            LinkEvent::Frame(f) => RECORD_OVERHEAD + f.payload.len(),
            _ => RECORD_OVERHEAD,
        })
        .sum()
}

/// Type, length and the fixed fields of a record, plus a short namespace.
const RECORD_OVERHEAD: usize = 64;

/// Appends the records of `events` to `out`.
pub fn encode(events: Vec<LinkEvent>, out: &mut Vec<u8>) {
    for event in events {
        match event {
            LinkEvent::Up { node } => Record::start(out, ev::UP).u32(node).end(),
            LinkEvent::Down { reason } => Record::start(out, ev::DOWN).str(&reason).end(),
            LinkEvent::TooLarge { count, limit } => Record::start(out, ev::TOO_LARGE)
                .f64(count as f64)
                .f64(limit as f64)
                .end(),
            LinkEvent::Frame(f) => encode_frame(f.header, &f.payload, out),
        }
    }
}

/// Appends the record of a frame from the hub to `out`.
pub fn encode_frame(header: Header, payload: &[u8], out: &mut Vec<u8>) {
    match header {
        Header::Message { nsp, from, kind } => Record::start(out, ev::MESSAGE)
            .u32(from)
            .u32(u32::from(kind))
            .str(&nsp)
            .bytes(payload)
            .end(),
        Header::Incoming {
            id,
            nsp,
            from,
            kind,
        } => Record::start(out, ev::INCOMING)
            // Hub request ids count up from 1: exact as f64 far beyond any uptime.
            .f64(id as f64)
            .u32(from)
            .u32(u32::from(kind))
            .str(&nsp)
            .bytes(payload)
            .end(),
        Header::Accepted { req, expected } => Record::start(out, ev::ACCEPTED)
            .u32(req)
            .u32(expected)
            .end(),
        Header::Reply {
            req,
            from,
            last,
            done,
        } => Record::start(out, ev::REPLY)
            .u32(req)
            .u32(from)
            .u32(u32::from(last))
            .u32(u32::from(done))
            .bytes(payload)
            .end(),
        Header::Departed { req, node } => Record::start(out, ev::DEPARTED).u32(req).u32(node).end(),
        Header::Done { req } => Record::start(out, ev::DONE).u32(req).end(),
        Header::TimedOut { req, missing, pids } => {
            let mut r = Record::start(out, ev::TIMED_OUT)
                .u32(req)
                .u32(missing)
                .u32(pids.len() as u32);
            for pid in pids {
                r = r.u32(pid);
            }
            r.end()
        }
        Header::Count { req, count } => Record::start(out, ev::COUNT).u32(req).u32(count).end(),
        Header::Dropped { volatile, overflow } => Record::start(out, ev::DROPPED)
            .f64(volatile as f64)
            .f64(overflow as f64)
            .end(),
        other => Record::start(out, ev::DOWN)
            .str(&format!("unexpected frame from the hub: {other:?}"))
            .end(),
    }
}

/// Where each field of `layout` starts in the record body, for the fields
/// before (and including) the first one of variable size.
pub fn fixed_offsets(layout: &RecordLayout) -> Vec<(&'static str, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    for &(name, ty) in layout.fields {
        out.push((name, at));
        match ty {
            FieldType::U32 => at += 4,
            FieldType::F64 => at += 8,
            FieldType::Str | FieldType::U32List | FieldType::Payload => break,
        }
    }
    out
}

/// The text of `lib/generated/batch-layout.js`.
pub fn render_js() -> String {
    let mut js = String::from(
        "// Generated from RECORDS in src/batch.rs by its tests. DO NOT EDIT.\n\
         // After changing RECORDS: UPDATE_GENERATED=1 cargo test --release batch\n\
         \"use strict\";\n\n\
         // Each record: [u8 type][u32 LE body length][body]; offsets are into the body.\n\
         // Strings are [u32 length][utf8], lists [u32 count][u32 ...], a payload is the rest.\n\
         module.exports = Object.freeze({\n",
    );
    js.push_str(&format!("  RECORD_HEADER: {RECORD_HEADER},\n"));
    js.push_str(&format!("  LAYOUT_DIGEST: {},\n", layout_digest()));
    for layout in RECORDS {
        let fields: Vec<String> = layout
            .fields
            .iter()
            .map(|(name, ty)| format!("{name} {ty:?}"))
            .collect();
        js.push_str(&format!("  // {}: {}\n", layout.name, fields.join(", ")));
        js.push_str(&format!("  {}: {},\n", layout.name, layout.code));
        for (field, at) in fixed_offsets(layout) {
            js.push_str(&format!(
                "  {}_{}: {at},\n",
                layout.name,
                field.to_ascii_uppercase()
            ));
        }
    }
    js.push_str("  RECORDS: Object.freeze([\n");
    for layout in RECORDS {
        let fields: Vec<String> = layout
            .fields
            .iter()
            .map(|(name, ty)| format!("[\"{name}\", \"{ty:?}\"]"))
            .collect();
        js.push_str(&format!(
            "    {{ name: \"{}\", code: {}, fields: [{}] }},\n",
            layout.name,
            layout.code,
            fields.join(", ")
        ));
    }
    js.push_str("  ]),\n});\n");
    js
}

/// A digest of [`RECORDS`] (FNV-1a, 32 bits): the generated JS carries it,
/// and lib/ refuses an addon whose layout has another.
pub fn layout_digest() -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u32::from(b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    for layout in RECORDS {
        eat(layout.name.as_bytes());
        eat(&[layout.code]);
        for (name, ty) in layout.fields {
            eat(name.as_bytes());
            eat(format!("{ty:?}").as_bytes());
        }
    }
    hash
}

/// One event of every record type, with distinct values: what the tests on
/// both sides decode (`sampleBatch()` in the binding).
pub fn sample_events() -> Vec<LinkEvent> {
    use crate::frame::Frame;
    use bytes::Bytes;
    let frame = |header, payload: &'static [u8]| {
        LinkEvent::Frame(Frame {
            header,
            payload: Bytes::from_static(payload),
        })
    };
    vec![
        LinkEvent::Up { node: 7 },
        frame(
            Header::Message {
                nsp: "/chat".into(),
                from: 3,
                kind: 2,
            },
            b"message payload",
        ),
        frame(
            Header::Incoming {
                id: 9_007_199_254_740_000,
                nsp: "/".into(),
                from: 4,
                kind: 5,
            },
            b"request payload",
        ),
        frame(
            Header::Accepted {
                req: 11,
                expected: 2,
            },
            b"",
        ),
        frame(
            Header::Reply {
                req: 11,
                from: 4,
                last: true,
                done: false,
            },
            b"reply payload",
        ),
        frame(Header::Departed { req: 11, node: 5 }, b""),
        frame(Header::Done { req: 11 }, b""),
        frame(
            Header::TimedOut {
                req: 12,
                missing: 2,
                pids: vec![4001, 4002],
            },
            b"",
        ),
        frame(Header::Count { req: 13, count: 3 }, b""),
        frame(
            Header::Dropped {
                volatile: 6,
                overflow: 1 << 40,
            },
            b"",
        ),
        LinkEvent::TooLarge {
            count: 2,
            limit: 65_536,
        },
        LinkEvent::Down {
            reason: "the hub closed the connection".into(),
        },
    ]
}

/// Decodes a buffer of records by [`RECORDS`] into JSON text:
/// `[["NAME", {"field": value, ...}], ...]`, payloads as UTF-8 text.
pub fn describe(buf: &[u8]) -> Result<String, String> {
    let mut records = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        let end_of_header = off + RECORD_HEADER;
        let header = buf
            .get(off..end_of_header)
            .ok_or("truncated record header")?;
        let layout = RECORDS
            .iter()
            .find(|l| l.code == header[0])
            .ok_or_else(|| format!("unknown record type {}", header[0]))?;
        let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let body = buf
            .get(end_of_header..end_of_header + len)
            .ok_or("truncated record body")?;
        let mut fields = serde_json::Map::new();
        let mut at = 0;
        let u32_at = |at: usize| -> Result<u32, String> {
            let b = body.get(at..at + 4).ok_or("truncated u32")?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        for &(name, ty) in layout.fields {
            let value = match ty {
                FieldType::U32 => {
                    at += 4;
                    serde_json::Value::from(u32_at(at - 4)?)
                }
                FieldType::F64 => {
                    let b = body.get(at..at + 8).ok_or("truncated f64")?;
                    at += 8;
                    let mut raw = [0; 8];
                    raw.copy_from_slice(b);
                    serde_json::Value::from(f64::from_le_bytes(raw))
                }
                FieldType::Str => {
                    let n = u32_at(at)? as usize;
                    let text = body.get(at + 4..at + 4 + n).ok_or("truncated string")?;
                    at += 4 + n;
                    serde_json::Value::from(String::from_utf8_lossy(text).into_owned())
                }
                FieldType::U32List => {
                    let n = u32_at(at)? as usize;
                    let list = (0..n)
                        .map(|i| u32_at(at + 4 + 4 * i))
                        .collect::<Result<Vec<_>, _>>()?;
                    at += 4 + 4 * n;
                    serde_json::Value::from(list)
                }
                FieldType::Payload => {
                    let rest = &body[at..];
                    at = body.len();
                    serde_json::Value::from(String::from_utf8_lossy(rest).into_owned())
                }
            };
            fields.insert(name.into(), value);
        }
        if at != body.len() {
            return Err(format!(
                "{}: {} bytes of body left after its fields",
                layout.name,
                body.len() - at
            ));
        }
        records.push(serde_json::json!([layout.name, fields]));
        off = end_of_header + len;
    }
    serde_json::to_string(&records).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_decodes_by_its_layout() {
        let mut out = Vec::new();
        encode(sample_events(), &mut out);
        let text = describe(&out).expect("decodes");
        let got: serde_json::Value = serde_json::from_str(&text).expect("json");
        let want = serde_json::json!([
            ["UP", {"node": 7}],
            ["MESSAGE", {"from": 3, "kind": 2, "nsp": "/chat", "payload": "message payload"}],
            ["INCOMING", {"id": 9_007_199_254_740_000_f64, "from": 4, "kind": 5, "nsp": "/", "payload": "request payload"}],
            ["ACCEPTED", {"req": 11, "expected": 2}],
            ["REPLY", {"req": 11, "from": 4, "last": 1, "done": 0, "payload": "reply payload"}],
            ["DEPARTED", {"req": 11, "node": 5}],
            ["DONE", {"req": 11}],
            ["TIMED_OUT", {"req": 12, "missing": 2, "pids": [4001, 4002]}],
            ["COUNT", {"req": 13, "count": 3}],
            ["DROPPED", {"volatile": 6.0, "overflow": 1_099_511_627_776_f64}],
            ["TOO_LARGE", {"count": 2.0, "limit": 65_536.0}],
            ["DOWN", {"reason": "the hub closed the connection"}],
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn samples_cover_every_record_type() {
        let mut out = Vec::new();
        encode(sample_events(), &mut out);
        let text = describe(&out).expect("decodes");
        for layout in RECORDS {
            assert!(
                text.contains(&format!("[\"{}\",", layout.name)),
                "{}",
                layout.name
            );
        }
        let codes: Vec<u8> = RECORDS.iter().map(|l| l.code).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(codes.len(), unique.len(), "record codes are distinct");
    }

    #[test]
    fn payload_is_last_and_only_last() {
        for layout in RECORDS {
            for (i, (name, ty)) in layout.fields.iter().enumerate() {
                if *ty == FieldType::Payload {
                    assert_eq!(i + 1, layout.fields.len(), "{}.{name}", layout.name);
                }
            }
        }
    }

    /// The layout assertion: JS reads records with the constants of the
    /// generated file, which must be what this table renders.
    #[test]
    fn generated_js_is_current() {
        crate::generated::check("lib/generated/batch-layout.js", &render_js());
    }
}
