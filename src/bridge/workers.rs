//! The workers' side of the bridge: the kinds of the hub's messages and
//! requests, and the parts the workers' adapters put in their payloads
//! (lib/codec.js, lib/broadcast-wire.js).

use bytes::Bytes;
use serde_json::Value as Json;

/// The kinds of hub messages and requests (lib/stock-protocol.js `Kind`).
pub mod hub_kind {
    pub const BROADCAST: u8 = 3;
    pub const SOCKETS_JOIN: u8 = 4;
    pub const SOCKETS_LEAVE: u8 = 5;
    pub const DISCONNECT_SOCKETS: u8 = 6;
    pub const FETCH_SOCKETS: u8 = 7;
    pub const SERVER_SIDE_EMIT: u8 = 9;
    pub const ROOM_QUERY: u8 = 100;
}

/// A part a worker packed (lib/codec.js `pack`) as JSON; `None` for one
/// packed with v8, which only Node.js reads.
pub fn worker_json(part: &[u8]) -> Option<Json> {
    if part.first() == Some(&0xff) {
        return None;
    }
    serde_json::from_slice(part).ok()
}

/// The payload of parts `[u32 n]([u32 len][bytes])*` (see `frame::encode_parts`).
pub fn parts_payload(parts: &[&[u8]]) -> Bytes {
    let mut out = Vec::with_capacity(crate::frame::parts_len(parts));
    crate::frame::write_parts(&mut out, parts);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_payloads_are_what_the_workers_split() {
        let p = parts_payload(&[b"ab", b"", b"c"]);
        let parts = crate::frame::split_parts(p).unwrap();
        assert_eq!(parts, vec![&b"ab"[..], &b""[..], &b"c"[..]]);
    }

    #[test]
    fn only_json_parts_are_read() {
        assert_eq!(
            worker_json(br#"{"a":1}"#),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(worker_json(&[0xff, 0x0f, 0x22]), None);
        assert_eq!(worker_json(b"{oops"), None);
    }
}
