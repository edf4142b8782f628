//! The JS side of the batch layout: the constants generated from
//! [`RECORDS`] into `lib/generated/batch-layout.js`, the layout's digest (which
//! lib/ checks against the addon's at load), and one record of every type
//! decoded by the table, which the tests of both sides compare with what the
//! encoder wrote.

use crate::batch::{FieldType, RecordLayout, RECORDS, RECORD_HEADER};
use crate::frame::Header;
use crate::link::LinkEvent;

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
        "// Generated from RECORDS in src/batch.rs by the tests of src/batch_js.rs. DO NOT EDIT.\n\
         // After changing RECORDS: UPDATE_GENERATED=1 cargo test --release batch_js\n\
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
        frame(
            Header::Restored {
                req: 14,
                outcome: 0,
            },
            b"restored payload",
        ),
        frame(
            Header::RecoveryOn {
                nsp: "/chat".into(),
            },
            b"",
        ),
        frame(
            Header::Echo {
                nsp: "/".into(),
                offset: "abc1".into(),
            },
            b"",
        ),
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
    use crate::batch::encode;

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
            ["RESTORED", {"req": 14, "outcome": 0, "payload": "restored payload"}],
            ["RECOVERY_ON", {"nsp": "/chat"}],
            ["ECHO", {"nsp": "/", "offset": "abc1"}],
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
