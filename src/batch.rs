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
//! fields, and JS reads them with the constants generated from the table into
//! `lib/generated/batch-layout.js` ([`crate::batch_js`], whose tests decode
//! every kind by the table and fail while the generated file is stale).

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
    RecordLayout {
        name: "RESTORED",
        code: ev::RESTORED,
        fields: &[("req", U32), ("outcome", U32), ("payload", Payload)],
    },
    RecordLayout {
        name: "RECOVERY_ON",
        code: ev::RECOVERY_ON,
        fields: &[("nsp", Str)],
    },
    RecordLayout {
        name: "ECHO",
        code: ev::ECHO,
        fields: &[("nsp", Str), ("offset", Str)],
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
    pub const RESTORED: u8 = 13;
    pub const RECOVERY_ON: u8 = 14;
    pub const ECHO: u8 = 15;
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
        Header::RecoveryOn { nsp } => Record::start(out, ev::RECOVERY_ON).str(&nsp).end(),
        Header::Echo { nsp, offset } => Record::start(out, ev::ECHO).str(&nsp).str(&offset).end(),
        Header::Restored { req, outcome } => Record::start(out, ev::RESTORED)
            .u32(req)
            .u32(u32::from(outcome))
            .bytes(payload)
            .end(),
        other => Record::start(out, ev::DOWN)
            .str(&format!("unexpected frame from the hub: {other:?}"))
            .end(),
    }
}
