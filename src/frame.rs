//! The frame codec shared by the hub and the worker link.
//!
//! On the wire every frame is `[u32 LE body length][body]`, and a body is
//! `[u32 LE header length][msgpack header][payload]`. The header is the only part
//! the hub decodes; the payload is opaque bytes that belong to the JS adapters
//! (socket.io packets already encoded by the emitter, v8-serialized control data),
//! so the hub forwards it without parsing or copying it per receiver.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Version of this frame protocol. A hub and a link with different versions
/// refuse each other at the handshake with a clear error.
pub const PROTOCOL_VERSION: u32 = 4;

/// Default upper bound of one frame body, in bytes.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// Node id assigned by the hub to each worker connection.
pub type NodeId = u32;

/// The routing header of a frame. Variants are grouped by direction.
///
/// `Hello` must stay the first variant with this exact shape forever, so that a
/// peer speaking another protocol version can still be refused with a reason.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Header {
    // ---- worker → hub ----
    /// First frame of a connection.
    Hello {
        version: u32,
        pid: u32,
        heartbeat_timeout_ms: u32,
    },
    /// A namespace adapter started in this worker.
    Register { nsp: String },
    /// A namespace adapter closed in this worker.
    Unregister { nsp: String },
    /// Fan-out to every other worker that has `nsp` and, when `rooms` is not
    /// empty, a local member of one of those rooms. `kind` is the JS message type.
    Publish {
        nsp: String,
        kind: u8,
        volatile: bool,
        rooms: Vec<String>,
    },
    /// A request that every other live worker with `nsp` must answer.
    /// `keep` keeps the request open until its deadline even after every node
    /// answered (broadcasts with acks, whose client acks trickle in later).
    Request {
        req: u32,
        nsp: String,
        kind: u8,
        timeout_ms: u32,
        keep: bool,
        rooms: Vec<String>,
    },
    /// An answer to the hub request `id`. `last` means this node is done with it.
    Respond { id: u64, last: bool },
    /// Proof that the worker's JS event loop is alive.
    Heartbeat,
    /// How many live workers have `nsp` (including the sender)?
    CountQuery { req: u32, nsp: String },
    /// A room of `nsp` got its first local member in this worker.
    RoomAdd { nsp: String, room: String },
    /// A room of `nsp` lost its last local member in this worker.
    RoomDel { nsp: String, room: String },
    /// The worker has handled every IPC message the primary sent it up to
    /// its fence `seq` (see `Router::release_hold`).
    FenceAck { seq: u64 },
    /// `nsp` runs with connection state recovery in this worker: the hub logs
    /// its recoverable broadcasts and keeps its sessions for
    /// `max_disconnection_ms` (see `recovery.rs`).
    Recovery {
        nsp: String,
        max_disconnection_ms: u32,
    },
    /// A recoverable broadcast (the payload of a `Publish` of kind 3) whose
    /// packet already ends with `offset`: logged, then sent to every worker
    /// with `nsp` (and a member in one of `rooms`), the sender included, so
    /// that every worker delivers it in the hub's order.
    Record {
        nsp: String,
        rooms: Vec<String>,
        offset: String,
    },
    /// A socket of `nsp` with private session id `pid` disconnected and may
    /// come back: the payload (its id, rooms and data) is kept until then.
    SessionSave { nsp: String, pid: String },
    /// The state of a connected socket of `nsp` (payload as for
    /// `SessionSave`), sent when it connects and when its rooms change: if
    /// its worker dies, the hub keeps it as a saved session.
    SessionSync { nsp: String, pid: String },
    /// A connected socket of `nsp` is gone for good (a disconnect Socket.IO
    /// does not recover): the hub forgets its state.
    SessionEnd { nsp: String, pid: String },
    /// A client came back to this worker with session `pid` and the offset
    /// of the last broadcast it got; answered by `Restored`.
    Restore {
        req: u32,
        nsp: String,
        pid: String,
        offset: String,
    },
    /// The socket restored by this worker's `Restore` on `nsp` exists now,
    /// in its rooms (announced before this frame): until then the hub sent
    /// this worker everything of `nsp`, whatever its rooms.
    RestoreDone { nsp: String },

    // ---- hub → worker ----
    /// Handshake accepted. `max_frame`: the largest frame body the hub
    /// accepts; a larger one would cost the worker its connection.
    Welcome {
        version: u32,
        node: NodeId,
        max_frame: u64,
    },
    /// Handshake refused; the hub closes the connection after this frame.
    Refused { reason: String },
    /// A published message from node `from`.
    Message { nsp: String, from: NodeId, kind: u8 },
    /// A request from node `from` to answer with `Respond { id }`.
    Incoming {
        id: u64,
        nsp: String,
        from: NodeId,
        kind: u8,
    },
    /// The hub took request `req` and waits for `expected` nodes.
    Accepted { req: u32, expected: u32 },
    /// An answer from node `from` to request `req`; `done` when it was the
    /// last one expected (no separate `Done` follows).
    Reply {
        req: u32,
        from: NodeId,
        last: bool,
        done: bool,
    },
    /// Node `node` left (closed, crashed or went silent) before finishing `req`.
    Departed { req: u32, node: NodeId },
    /// Every expected node finished (or departed).
    Done { req: u32 },
    /// The deadline passed with `missing` nodes still expected; `pids` are
    /// their process ids (for partial results that say who is missing).
    TimedOut {
        req: u32,
        missing: u32,
        pids: Vec<u32>,
    },
    /// Answer to `CountQuery`.
    Count { req: u32, count: u32 },
    /// Frames for this worker the hub dropped because its queue was full,
    /// since the last such report: `volatile` broadcasts past the soft limit,
    /// `overflow` frames of any other kind past the hard limit.
    Dropped { volatile: u64, overflow: u64 },
    /// The answer to `Restore`: `outcome` 0 restored (payload: the session,
    /// then every broadcast logged after the offset, as parts), otherwise a
    /// `recovery::Refusal` code and no payload.
    Restored { req: u32, outcome: u8 },
    /// `nsp` runs with connection state recovery: an emitter appends offsets
    /// to its broadcasts there and sends them as `Record`s. Sent to every
    /// peer when a namespace first announces it, and after `Welcome`.
    RecoveryOn { nsp: String },
    /// To the sender of a `Record`: the hub logged broadcast `offset` and
    /// sent it on; the sender now delivers it to its own sockets (it still
    /// has the packet, so the payload does not come back).
    Echo { nsp: String, offset: String },
}

/// Errors of the codec. All of them mean "drop this connection".
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than the allowed maximum.
    TooLarge { len: usize, max: usize },
    /// The body is shorter than its own header length says.
    Truncated,
    /// The header is not valid msgpack for [`Header`].
    BadHeader(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max} bytes")
            }
            FrameError::Truncated => write!(f, "truncated frame"),
            FrameError::BadHeader(e) => write!(f, "malformed frame header: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A decoded frame: the header and the untouched payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub payload: Bytes,
}

/// The msgpack bytes of `header`.
pub fn encode_header(header: &Header) -> Vec<u8> {
    // Serializing our own enum into a Vec cannot fail: every field is a plain
    // integer, bool or string.
    rmp_serde::to_vec(header).unwrap_or_default()
}

/// Encodes a whole frame (length prefix included) with `payload` copied once.
pub fn encode(header: &Header, payload: &[u8]) -> Bytes {
    let h = encode_header(header);
    let body_len = 4 + h.len() + payload.len();
    let mut out = BytesMut::with_capacity(4 + body_len);
    out.put_u32_le(body_len as u32);
    out.put_u32_le(h.len() as u32);
    out.put_slice(&h);
    out.put_slice(payload);
    out.freeze()
}

/// Payloads from this size on are shared, not copied, by the hub.
pub const SHARE_FROM: usize = 4096;

/// A frame on its way out of the hub: a head (length prefix and header) and
/// a payload of [`SHARE_FROM`] bytes or more that shares the memory of the
/// frame it was read from, so forwarding a large message never copies it.
#[derive(Debug, Clone)]
pub struct OutFrame {
    pub head: Bytes,
    /// Empty when the payload is small: it is then copied into `head`.
    pub payload: Bytes,
}

impl OutFrame {
    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// True for a frame of no bytes (never produced by [`encode_out`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same frame in one allocation of its own. A shared payload keeps
    /// the whole buffer it was read into alive (up to 256 KiB more); a frame
    /// that may wait long in a queue must not.
    pub fn detached(self) -> OutFrame {
        if self.payload.is_empty() {
            return self;
        }
        OutFrame {
            head: concat(&self.head, &self.payload),
            payload: Bytes::new(),
        }
    }

    /// The whole frame as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        concat(&self.head, &self.payload)
    }
}

fn concat(a: &[u8], b: &[u8]) -> Bytes {
    let mut all = BytesMut::with_capacity(a.len() + b.len());
    all.put_slice(a);
    all.put_slice(b);
    all.freeze()
}

/// Encodes a frame around `payload`, sharing it when it is large (see
/// [`OutFrame`]) and copying it otherwise.
pub fn encode_out(header: &Header, payload: Bytes) -> OutFrame {
    if payload.len() < SHARE_FROM {
        return OutFrame {
            head: encode(header, &payload),
            payload: Bytes::new(),
        };
    }
    let h = encode_header(header);
    let body_len = 4 + h.len() + payload.len();
    let mut head = BytesMut::with_capacity(8 + h.len());
    head.put_u32_le(body_len as u32);
    head.put_u32_le(h.len() as u32);
    head.put_slice(&h);
    OutFrame {
        head: head.freeze(),
        payload,
    }
}

/// Encodes a frame whose payload is a list of parts, each prefixed by its
/// length: `[u32 count]([u32 len][bytes])*`. This is the payload layout the JS
/// adapters use; the hub never looks inside it.
pub fn encode_parts<P: AsRef<[u8]>>(header: &Header, parts: &[P]) -> Bytes {
    let mut out = Vec::new();
    encode_parts_with_header_into(&mut out, &encode_header(header), parts);
    Bytes::from(out)
}

/// [`encode_parts`] with the header already encoded (see [`encode_header`]: a
/// sender that sends many frames with the same header encodes it once),
/// appending to `out`: the frame is written once, straight into the buffer it
/// leaves the process from.
pub fn encode_parts_with_header_into<P: AsRef<[u8]>>(out: &mut Vec<u8>, h: &[u8], parts: &[P]) {
    let body_len = 4 + h.len() + parts_len(parts);
    out.reserve(4 + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(h);
    write_parts(out, parts);
}

/// Appends the payload of `parts`, `[u32 count]([u32 len][bytes])*`, to `out`.
pub fn write_parts<P: AsRef<[u8]>>(out: &mut Vec<u8>, parts: &[P]) {
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for p in parts {
        out.extend_from_slice(&(p.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(p.as_ref());
    }
}

/// Length of the payload that [`encode_parts`] would produce for `parts`.
pub fn parts_len<P: AsRef<[u8]>>(parts: &[P]) -> usize {
    4 + parts.iter().map(|p| 4 + p.as_ref().len()).sum::<usize>()
}

/// Decodes one frame body (without its length prefix).
pub fn decode_body(body: Bytes) -> Result<Frame, FrameError> {
    let (header, at) = decode_header(&body)?;
    Ok(Frame {
        header,
        payload: body.slice(at..),
    })
}

/// The header of the frame body `body`, and where its payload starts.
pub fn decode_header(body: &[u8]) -> Result<(Header, usize), FrameError> {
    let Some(prefix) = body.get(..4) else {
        return Err(FrameError::Truncated);
    };
    let hlen = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let Some(hbytes) = body.get(4..4 + hlen) else {
        return Err(FrameError::Truncated);
    };
    let header: Header =
        rmp_serde::from_slice(hbytes).map_err(|e| FrameError::BadHeader(e.to_string()))?;
    Ok((header, 4 + hlen))
}

/// A read asks for at least this much room.
const READ_MIN: usize = 64 * 1024;
/// A buffer no frame shares any more is reused when it has this much room.
const READ_REUSE: usize = 128 * 1024;
/// A new read buffer has room for this much.
const READ_CHUNK: usize = 256 * 1024;

/// Incremental splitter of a byte stream into frame bodies.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: BytesMut,
    max: usize,
}

impl FrameBuffer {
    /// A buffer that refuses bodies larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameBuffer {
            buf: BytesMut::with_capacity(READ_CHUNK),
            max,
        }
    }

    /// Changes the largest accepted body (for frames not yet taken out).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Space to read more bytes into.
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Body length of the frame at the front, once its length prefix is in.
    fn front_len(&self) -> Result<Option<usize>, FrameError> {
        body_len(&self.buf, self.max)
    }

    /// Bytes the frame at the front still lacks (a large one is then
    /// reserved at once, not grown in steps).
    fn missing(&self) -> usize {
        match self.front_len() {
            Ok(Some(len)) => (4 + len).saturating_sub(self.buf.len()),
            _ => 4usize.saturating_sub(self.buf.len()),
        }
    }

    /// Takes the next complete frame body out of the buffer, if any.
    pub fn next_body(&mut self) -> Result<Option<Bytes>, FrameError> {
        match self.front_len()? {
            Some(len) if self.buf.len() >= 4 + len => {
                self.buf.advance(4);
                let body = self.buf.split_to(len).freeze();
                if len > READ_CHUNK {
                    // The buffer was sized for this frame. Move what follows
                    // it to a buffer of the usual size, so that its memory
                    // goes with the frame instead of staying with the
                    // connection for good.
                    let rest = self.buf.split();
                    self.buf = BytesMut::with_capacity(READ_CHUNK.max(rest.len()));
                    self.buf.extend_from_slice(&rest);
                }
                Ok(Some(body))
            }
            _ => Ok(None),
        }
    }

    /// The next frame, reading from `rd` as needed; `Ok(None)` on a clean end
    /// of stream. Sets `fresh_read` when it had to read from `rd`.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        fresh_read: &mut bool,
    ) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.next_frame().map_err(invalid_data)? {
                return Ok(Some(frame));
            }
            if !self.read_more(rd).await? {
                return Ok(None);
            }
            *fresh_read = true;
        }
    }

    /// Reads once from `rd` into the buffer; false on a clean end of stream.
    /// Call it when [`FrameBuffer::next_frame`] has nothing.
    pub async fn read_more<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> io::Result<bool> {
        // Room for all the frame at the front still lacks, and for a good read.
        let want = self.missing().max(READ_MIN);
        if self.buf.capacity() - self.buf.len() < want
            && !self.buf.try_reclaim(want.max(READ_REUSE))
        {
            // Frames taken out of this buffer still share its memory. Let the
            // tasks that write them out finish with them first: then the
            // buffer is reused, not a new one allocated (which cost page
            // faults and cache misses on every read).
            tokio::task::yield_now().await;
            if !self.buf.try_reclaim(want.max(READ_REUSE)) {
                self.buf.reserve(want.max(READ_CHUNK));
            }
        }
        // At most READ_CHUNK per read, even into the room reserved for a
        // large frame: the hub bounds the bytes of frames still arriving
        // between reads, so one read must not be able to bring in megabytes.
        if rd.read_buf(&mut (&mut self.buf).limit(READ_CHUNK)).await? == 0 {
            return if self.buf.is_empty() {
                Ok(false)
            } else {
                Err(invalid_data(FrameError::Truncated))
            };
        }
        Ok(true)
    }

    /// Bytes read but not taken out as frames yet: the part of a frame still
    /// arriving (once [`FrameBuffer::next_frame`] has nothing).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes bytes read elsewhere (by the worker's JS thread) and calls
    /// `on_frame` with the header and payload of each frame they complete,
    /// in order. Frames wholly inside `bytes` are read from it where they
    /// are; only a frame that straddles two reads is gathered in the buffer
    /// first, so most payloads are not copied here at all.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut on_frame: impl FnMut(Header, &[u8]),
    ) -> Result<(), FrameError> {
        let mut at = 0;
        if !self.buf.is_empty() {
            // Frames already whole in the buffer (the link thread read them
            // in right behind the handshake) go first.
            while let Some(body) = self.next_body()? {
                let (header, payload) = decode_header(&body)?;
                on_frame(header, &body[payload..]);
            }
        }
        if !self.buf.is_empty() {
            // Complete the frame begun in an earlier read: its length first,
            // then exactly the rest of its body.
            at = 4usize.saturating_sub(self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..at]);
            if let Some(len) = self.front_len()? {
                let take = (4 + len)
                    .saturating_sub(self.buf.len())
                    .min(bytes.len() - at);
                self.buf.extend_from_slice(&bytes[at..at + take]);
                at += take;
                if let Some(body) = self.next_body()? {
                    let (header, payload) = decode_header(&body)?;
                    on_frame(header, &body[payload..]);
                }
            }
            if !self.buf.is_empty() {
                // Still incomplete: every byte went into it.
                self.buf.reserve(self.missing());
                return Ok(());
            }
        }
        while let Some(len) = body_len(&bytes[at..], self.max)? {
            let Some(body) = bytes.get(at + 4..at + 4 + len) else {
                break;
            };
            let (header, payload) = decode_header(body)?;
            on_frame(header, &body[payload..]);
            at += 4 + len;
        }
        self.extend(&bytes[at..]);
        Ok(())
    }

    /// Appends bytes read elsewhere.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf.reserve(self.missing());
    }

    /// Takes and decodes the next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match self.next_body()? {
            Some(body) => decode_body(body).map(Some),
            None => Ok(None),
        }
    }
}

/// Body length of the frame `bytes` starts with, once its length prefix is
/// in; an error past `max`.
fn body_len(bytes: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = bytes.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(Some(len))
}

fn invalid_data(e: FrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Splits a payload made by [`encode_parts`] back into its parts.
pub fn split_parts(mut payload: Bytes) -> Result<Vec<Bytes>, FrameError> {
    if payload.len() < 4 {
        return Err(FrameError::Truncated);
    }
    let n = payload.get_u32_le() as usize;
    // Each part needs at least its 4-byte length: bound the allocation by what
    // the bytes can actually hold, not by what the count claims.
    if n > payload.len() / 4 {
        return Err(FrameError::Truncated);
    }
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        if payload.len() < 4 {
            return Err(FrameError::Truncated);
        }
        let len = payload.get_u32_le() as usize;
        if len > payload.len() {
            return Err(FrameError::Truncated);
        }
        parts.push(payload.split_to(len));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(h: Header, payload: &[u8]) {
        let bytes = encode(&h, payload);
        let mut fb = FrameBuffer::new(DEFAULT_MAX_FRAME);
        fb.buf_mut().extend_from_slice(&bytes);
        let f = fb.next_frame().unwrap().unwrap();
        assert_eq!(f.header, h);
        assert_eq!(&f.payload[..], payload);
        assert_eq!(fb.next_frame().unwrap(), None);
    }

    #[test]
    fn every_header_roundtrips() {
        let headers = vec![
            Header::Hello {
                version: 1,
                pid: 42,
                heartbeat_timeout_ms: 10_000,
            },
            Header::Register { nsp: "/".into() },
            Header::Unregister {
                nsp: "/chat".into(),
            },
            Header::Publish {
                nsp: "/".into(),
                kind: 3,
                volatile: true,
                rooms: vec!["\"r\"".into(), "1".into()],
            },
            Header::Request {
                req: 7,
                nsp: "/".into(),
                kind: 7,
                timeout_ms: 5000,
                keep: false,
                rooms: vec![],
            },
            Header::RoomAdd {
                nsp: "/".into(),
                room: "\"a\"".into(),
            },
            Header::RoomDel {
                nsp: "/".into(),
                room: "\"a\"".into(),
            },
            Header::Respond {
                id: u64::MAX,
                last: true,
            },
            Header::Heartbeat,
            Header::FenceAck { seq: u64::MAX },
            Header::CountQuery {
                req: 1,
                nsp: "/x".into(),
            },
            Header::Welcome {
                version: 1,
                node: 3,
                max_frame: 1 << 20,
            },
            Header::Refused {
                reason: "nope".into(),
            },
            Header::Message {
                nsp: "/".into(),
                from: 1,
                kind: 3,
            },
            Header::Incoming {
                id: 9,
                nsp: "/".into(),
                from: 2,
                kind: 9,
            },
            Header::Accepted {
                req: 1,
                expected: 2,
            },
            Header::Reply {
                req: 1,
                from: 2,
                last: false,
                done: false,
            },
            Header::Departed { req: 1, node: 2 },
            Header::Done { req: 1 },
            Header::TimedOut {
                req: 1,
                missing: 1,
                pids: vec![42],
            },
            Header::Count { req: 1, count: 3 },
            Header::Dropped {
                volatile: 1,
                overflow: 2,
            },
        ];
        for h in headers {
            roundtrip(h, b"payload \x00\xff bytes");
        }
    }

    #[test]
    fn parts_roundtrip() {
        let parts: Vec<&[u8]> = vec![b"meta", b"", b"\x00\x01\x02"];
        let bytes = encode_parts(&Header::Heartbeat, &parts);
        let body = bytes.slice(4..);
        let f = decode_body(body).unwrap();
        assert_eq!(f.payload.len(), parts_len(&parts));
        let got = split_parts(f.payload).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(&got[0][..], b"meta");
        assert_eq!(&got[1][..], b"");
        assert_eq!(&got[2][..], b"\x00\x01\x02");
    }

    #[test]
    fn a_frame_with_a_header_encoded_once_is_the_same_frame() {
        let header = Header::Publish {
            nsp: "/chat".into(),
            kind: 3,
            volatile: false,
            rooms: vec!["\"r1\"".into()],
        };
        let parts: Vec<&[u8]> = vec![b"meta", b"\x81\x05", b"4hello"];
        let encoded_once = encode_header(&header);
        let mut b = Vec::new();
        for _ in 0..2 {
            encode_parts_with_header_into(&mut b, &encoded_once, &parts);
        }
        let once = encode_parts(&header, &parts);
        assert_eq!(b, [&once[..], &once[..]].concat());
        let mut fb = FrameBuffer::new(1 << 20);
        fb.extend(&b);
        for _ in 0..2 {
            let f = fb.next_frame().unwrap().unwrap();
            assert_eq!(f.header, header);
            assert_eq!(split_parts(f.payload).unwrap().len(), 3);
        }
    }

    #[test]
    fn frames_split_across_reads() {
        let a = encode(&Header::Heartbeat, b"a");
        let b = encode(&Header::Register { nsp: "/b".into() }, b"bb");
        let all = [a.as_ref(), b.as_ref()].concat();
        let mut fb = FrameBuffer::new(1024);
        let mut got = vec![];
        for byte in all {
            fb.buf_mut().put_u8(byte);
            while let Some(f) = fb.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].header, Header::Register { nsp: "/b".into() });
    }

    /// 40 frames of 10 KiB, each payload filled with its index.
    fn stream_of_large_frames() -> Vec<u8> {
        (0..40u8)
            .flat_map(|i| encode(&Header::Heartbeat, &[i; 10 * 1024]).to_vec())
            .collect()
    }

    #[tokio::test]
    async fn a_read_buffer_is_reused_once_the_frames_read_into_it_are_written() {
        let stream = stream_of_large_frames();
        let mut rd = &stream[..];
        let mut fb = FrameBuffer::new(1 << 20);
        // A stand-in for the hub's writer task: it holds each frame until
        // it gets to run, then lets it go.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
        let writer = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let first = fb.read_frame(&mut rd, &mut false).await.unwrap().unwrap();
        let start = first.payload.as_ptr() as usize;
        tx.send(first).unwrap();
        for i in 1..40u8 {
            let f = fb.read_frame(&mut rd, &mut false).await.unwrap().unwrap();
            assert!(f.payload.iter().all(|b| *b == i));
            // Within the first buffer: no other was allocated.
            let at = f.payload.as_ptr() as usize;
            assert!(at >= start - 8 && at < start + READ_CHUNK, "frame {i}");
            tx.send(f).unwrap();
        }
        drop(tx);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn frames_still_held_keep_their_bytes_while_reading_goes_on() {
        let stream = stream_of_large_frames();
        let mut rd = &stream[..];
        let mut fb = FrameBuffer::new(1 << 20);
        let mut held = Vec::new();
        while let Some(f) = fb.read_frame(&mut rd, &mut false).await.unwrap() {
            held.push(f);
        }
        assert_eq!(held.len(), 40);
        for (i, f) in held.iter().enumerate() {
            assert!(f.payload.iter().all(|b| usize::from(*b) == i));
        }
    }

    #[tokio::test]
    async fn a_frame_larger_than_a_read_buffer_is_reserved_at_once() {
        let frame = encode(&Header::Heartbeat, &vec![1u8; 4 * READ_CHUNK]);
        let mut rd = &frame[..];
        let mut fb = FrameBuffer::new(1 << 24);
        let f = fb.read_frame(&mut rd, &mut false).await.unwrap().unwrap();
        assert_eq!(f.payload.len(), 4 * READ_CHUNK);
        // One allocation for the frame, then back to a buffer of the usual size.
        assert_eq!(fb.buf.capacity(), READ_CHUNK);
    }

    #[test]
    fn a_large_frame_fed_in_pieces_is_reserved_at_once() {
        let frame = encode(&Header::Heartbeat, &vec![3u8; 4 * READ_CHUNK]);
        let mut fb = FrameBuffer::new(1 << 24);
        let mut pieces = frame.chunks(64 * 1024);
        fb.extend(pieces.next().unwrap());
        // Room for the whole frame after its first piece: no growing in steps.
        assert!(fb.buf.capacity() >= frame.len());
        for piece in pieces {
            assert!(fb.next_frame().unwrap().is_none());
            fb.extend(piece);
        }
        let f = fb.next_frame().unwrap().unwrap();
        assert_eq!(f.payload.len(), 4 * READ_CHUNK);
        assert!(f.payload.is_unique());
    }

    #[tokio::test]
    async fn the_memory_of_a_large_frame_goes_with_it() {
        let large = encode(&Header::Heartbeat, &vec![1u8; 4 * READ_CHUNK]);
        let small = encode(&Header::Register { nsp: "/".into() }, b"after");
        let stream = [large.as_ref(), small.as_ref()].concat();
        let mut rd = &stream[..];
        let mut fb = FrameBuffer::new(1 << 24);
        let f = fb.read_frame(&mut rd, &mut false).await.unwrap().unwrap();
        // The large frame is the only one left holding its memory.
        assert!(f.payload.is_unique());
        assert!(fb.buf.capacity() <= READ_CHUNK + small.len());
        let next = fb.read_frame(&mut rd, &mut false).await.unwrap().unwrap();
        assert_eq!(next.header, Header::Register { nsp: "/".into() });
        assert_eq!(next.payload, Bytes::from_static(b"after"));
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut fb = FrameBuffer::new(16);
        fb.buf_mut().put_u32_le(17);
        assert_eq!(
            fb.next_body(),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        );
    }

    #[test]
    fn lying_header_length_is_truncated() {
        let mut body = BytesMut::new();
        body.put_u32_le(1000);
        body.put_slice(b"xx");
        assert_eq!(decode_body(body.freeze()), Err(FrameError::Truncated));
    }

    #[test]
    fn lying_part_count_is_truncated() {
        let mut p = BytesMut::new();
        p.put_u32_le(u32::MAX);
        assert_eq!(split_parts(p.freeze()), Err(FrameError::Truncated));
    }

    /// Frames the link thread buffered before JS took over reading (more
    /// than one, and a partial one) all come out of the next feed().
    #[test]
    fn feed_first_hands_out_every_frame_already_buffered() {
        let frame = |i: u32| {
            encode(
                &Header::Message {
                    nsp: "/".into(),
                    from: i,
                    kind: 3,
                },
                &[i as u8; 10],
            )
        };
        let mut fb = FrameBuffer::new(1024);
        let third = frame(3);
        fb.extend(&frame(1));
        fb.extend(&frame(2));
        fb.extend(&third[..7]);
        let mut got = Vec::new();
        fb.feed(&[], |h, p| got.push((h, p.to_vec()))).unwrap();
        assert_eq!(got.len(), 2, "both whole frames at once");
        fb.feed(&third[7..], |h, p| got.push((h, p.to_vec())))
            .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].1, vec![3u8; 10]);
        assert_eq!(fb.buffered(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Random bytes never panic the decoder: each call ends in a frame,
        /// "need more bytes", or an error.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut fb = FrameBuffer::new(256);
            fb.buf_mut().extend_from_slice(&data);
            for _ in 0..64 {
                match fb.next_frame() {
                    Ok(Some(f)) => { let _ = split_parts(f.payload); }
                    Ok(None) | Err(_) => break,
                }
            }
        }

        /// Mutating valid frames (flipped bytes, truncation) never panics.
        #[test]
        fn mutated_frames_never_panic(
            nsp in "[a-z/]{0,12}",
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 0..4),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let h = Header::Publish { nsp, kind: 3, volatile: false, rooms: vec![] };
            let mut bytes = encode_parts(&h, &parts).to_vec();
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] ^= b;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let mut fb = FrameBuffer::new(4096);
            fb.buf_mut().extend_from_slice(&bytes);
            while let Ok(Some(f)) = fb.next_frame() {
                let _ = split_parts(f.payload);
            }
        }

        /// Valid part lists always round-trip.
        #[test]
        fn parts_always_roundtrip(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let bytes = encode_parts(&Header::Heartbeat, &parts);
            let f = decode_body(bytes.slice(4..)).unwrap();
            let got = split_parts(f.payload).unwrap();
            prop_assert_eq!(got.len(), parts.len());
            for (g, p) in got.iter().zip(parts.iter()) {
                prop_assert_eq!(&g[..], &p[..]);
            }
        }

        /// However a stream of frames is cut into reads, feed() yields the
        /// same frames in the same order, and the same error for a frame
        /// over the limit, wherever it lies.
        #[test]
        fn feed_gives_the_same_frames_however_reads_are_cut(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..12),
            cuts in proptest::collection::vec(1usize..700, 1..40),
            max in 200usize..400,
        ) {
            let mut stream = Vec::new();
            for (i, p) in payloads.iter().enumerate() {
                let h = Header::Message { nsp: "/".into(), from: i as u32, kind: 3 };
                stream.extend_from_slice(&encode(&h, p));
            }
            // What next_frame() makes of the whole stream at once.
            let mut whole = FrameBuffer::new(max);
            whole.extend(&stream);
            let mut want = Vec::new();
            let want_err = loop {
                match whole.next_frame() {
                    Ok(Some(f)) => want.push((f.header, f.payload.to_vec())),
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            let mut fb = FrameBuffer::new(max);
            let mut got = Vec::new();
            let mut got_err = None;
            let mut at = 0;
            for cut in cuts.iter().cycle() {
                if at >= stream.len() {
                    break;
                }
                let end = (at + cut).min(stream.len());
                if let Err(e) = fb.feed(&stream[at..end], |h, p| got.push((h, p.to_vec()))) {
                    got_err = Some(e);
                    break;
                }
                at = end;
            }
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(&got_err, &want_err);
            if want_err.is_none() {
                prop_assert_eq!(fb.buffered(), 0);
            }
        }
    }
}
