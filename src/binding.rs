//! The `#[napi]` surface: `Hub` for the primary, `Link` for workers, and the
//! socket path helper. Everything here converts types and delegates; the logic
//! lives in the napi-free modules.

use std::path::PathBuf;

use napi::bindgen_prelude::{Buffer, BufferSlice, Function, JsValuesTupleIntoVec};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Error, Result, Status};
use napi_derive::napi;

use crate::batch;
use crate::batch_js;
use crate::error::{js_error, ErrorCode};
use crate::frame::{self, encode, Header};
use crate::hub::{self, HubEvent};
use crate::link;
use crate::paths;
use crate::recovery::RecoveryLimits;
use crate::router::Class;

/// Version of the hub/link frame protocol.
#[napi]
pub fn protocol_version() -> u32 {
    frame::PROTOCOL_VERSION
}

/// Digest of the layout of the records `Link.drain()`/`Link.feed()` return;
/// lib/generated/batch-layout.js carries the one it was generated for.
#[napi]
pub fn batch_layout_digest() -> u32 {
    batch_js::layout_digest()
}

/// One record of every type (for the tests of lib/'s decoder): the packed
/// records, and the same decoded by the Rust table, as JSON text.
#[napi(object)]
pub struct SampleBatch {
    pub batch: Buffer,
    pub expected: String,
}

#[napi]
pub fn sample_batch() -> Result<SampleBatch> {
    let mut out = Vec::new();
    batch::encode(batch_js::sample_events(), &mut out);
    let expected = batch_js::describe(&out).map_err(|e| Error::new(Status::GenericFailure, e))?;
    Ok(SampleBatch {
        batch: out.into(),
        expected,
    })
}

/// The encoded header of a publish to `nsp` (see `Link.publishWith`):
/// `rooms` are JSON room names, empty for every worker serving `nsp`.
#[napi]
pub fn publish_header(nsp: String, kind: u32, volatile: bool, rooms: Vec<String>) -> Buffer {
    frame::encode_header(&Header::Publish {
        nsp,
        kind: kind as u8,
        volatile,
        rooms,
    })
    .into()
}

/// The hub address of the primary `pid`: `@socket.io-cluster-rs-<uid>-<pid>`
/// (abstract namespace) on Linux, `<base>/socket.io-cluster-rs-<uid>/<pid>.sock`
/// elsewhere. With `create`, that directory is created with mode 0700; in
/// every case it must be a directory of ours that no other user can enter,
/// or this throws. Null when that directory does not exist (so no hub does).
#[napi]
pub fn hub_address(
    base: String,
    pid: u32,
    create: bool,
) -> std::result::Result<Option<String>, Error<ErrorCode>> {
    match paths::hub_address(&PathBuf::from(base), pid, create) {
        Ok(address) => Ok(Some(address)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(js_error(ErrorCode::Address, e.to_string())),
    }
}

/// Whether a hub of ours listens at `address`: "up", "absent" (nothing
/// listens there), or another string that says why it cannot be used (for
/// example another user took the address).
#[napi]
pub fn probe_hub(address: String) -> String {
    match paths::connect_hub(&address) {
        Ok(_) => "up".into(),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            "absent".into()
        }
        Err(e) => e.to_string(),
    }
}

/// A hub event as JS sees it.
#[napi(object)]
pub struct HubEventJs {
    /// "connected", "disconnected", "refused" or "redis" (the bridge's state).
    pub kind: String,
    pub node: Option<u32>,
    pub pid: Option<u32>,
    pub reason: Option<String>,
}

impl From<HubEvent> for HubEventJs {
    fn from(e: HubEvent) -> Self {
        match e {
            HubEvent::Connected { node, pid } => HubEventJs {
                kind: "connected".into(),
                node: Some(node),
                pid: Some(pid),
                reason: None,
            },
            HubEvent::Disconnected { node, pid, reason } => HubEventJs {
                kind: "disconnected".into(),
                node: Some(node),
                pid: Some(pid),
                reason,
            },
            HubEvent::Refused { reason } => HubEventJs {
                kind: "refused".into(),
                node: None,
                pid: None,
                reason: Some(reason),
            },
            HubEvent::Redis { reason } => HubEventJs {
                kind: "redis".into(),
                node: None,
                pid: None,
                reason,
            },
        }
    }
}

/// One connected worker, in `Hub.stats()`.
#[napi(object)]
pub struct PeerStatsJs {
    pub node: u32,
    pub pid: u32,
    pub alive: bool,
    pub namespaces: Vec<String>,
    pub queued_bytes: f64,
    /// Volatile broadcasts dropped because this worker's queue passed the soft limit.
    pub dropped_volatile: f64,
    /// Other frames dropped because its queue passed the hard limit.
    pub dropped_overflow: f64,
}

/// `Hub.stats()`.
#[napi(object)]
pub struct HubStatsJs {
    pub frames_in: f64,
    pub bytes_in: f64,
    pub frames_out: f64,
    pub bytes_out: f64,
    pub requests: f64,
    pub requests_timed_out: f64,
    pub departures: f64,
    pub late_responses: f64,
    /// Frames that waited for a worker to handle the primary's IPC messages.
    pub fenced_frames: f64,
    /// Workers no longer waited for (silent past their heartbeat timeout, or
    /// past `queueHardLimit` bytes waiting) before they handled them.
    pub fence_timeouts: f64,
    pub pending_requests: u32,
    /// Connections open now, handshake done or not.
    pub connections: u32,
    /// Bytes of frames still arriving, over all connections.
    pub incoming_bytes: f64,
    pub peers: Vec<PeerStatsJs>,
    /// Connection state recovery's log and sessions.
    pub recovery: RecoveryStatsJs,
    /// The Redis bridge's counters, with `setupPrimary({ redis })`.
    pub redis: Option<RedisStatsJs>,
}

/// `Hub.stats().recovery` (see `recovery::RecoveryStats`).
#[napi(object)]
pub struct RecoveryStatsJs {
    pub sessions: f64,
    pub log_entries: f64,
    pub log_bytes: f64,
    pub restored: f64,
    pub refused_session: f64,
    pub refused_offset: f64,
    pub refused_too_large: f64,
    pub log_evictions: f64,
    pub session_evictions: f64,
    pub live_sessions: f64,
    pub orphaned: f64,
}

/// Limits of a hub (see `hub::HubOptions`).
#[napi(object)]
pub struct HubLimits {
    pub max_frame_size: f64,
    pub queue_soft_limit: f64,
    pub queue_hard_limit: f64,
    pub max_connections: u32,
    pub incoming_limit: f64,
    /// Milliseconds.
    pub frame_timeout: u32,
    /// Broadcasts kept per namespace for connection state recovery.
    pub recovery_max_packets: Option<f64>,
    /// Bytes of broadcasts kept per namespace.
    pub recovery_max_bytes: Option<f64>,
    /// Sessions of disconnected sockets kept.
    pub recovery_max_sessions: Option<f64>,
    /// Bridge to other hosts over Redis (`bridge/`).
    pub redis: Option<RedisOptionsJs>,
}

/// `setupPrimary({ redis })`, as lib/options.js resolved it.
#[napi(object)]
pub struct RedisOptionsJs {
    pub url: String,
    pub key: String,
    /// Milliseconds.
    pub requests_timeout: u32,
}

/// Why `url` is not a Redis URL the hub can use, or null when it is.
#[napi]
pub fn redis_url_error(url: String) -> Option<String> {
    redis::Client::open(url.as_str())
        .err()
        .map(|e| e.to_string())
}

/// `Hub.stats().redis` (see `bridge::BridgeStatsSnapshot`).
#[napi(object)]
pub struct RedisStatsJs {
    pub connected: bool,
    pub connects: f64,
    pub disconnects: f64,
    pub connect_failures: f64,
    pub published: f64,
    pub publish_errors: f64,
    pub received: f64,
    pub malformed: f64,
    pub unconvertible: f64,
    pub dropped_while_down: f64,
    pub requests_out: f64,
    pub requests_in: f64,
    pub unsupported: f64,
}

impl From<crate::bridge::BridgeStatsSnapshot> for RedisStatsJs {
    fn from(s: crate::bridge::BridgeStatsSnapshot) -> Self {
        RedisStatsJs {
            connected: s.connected,
            connects: s.connects as f64,
            disconnects: s.disconnects as f64,
            connect_failures: s.connect_failures as f64,
            published: s.published as f64,
            publish_errors: s.publish_errors as f64,
            received: s.received as f64,
            malformed: s.malformed as f64,
            unconvertible: s.unconvertible as f64,
            dropped_while_down: s.dropped_while_down as f64,
            requests_out: s.requests_out as f64,
            requests_in: s.requests_in as f64,
            unsupported: s.unsupported as f64,
        }
    }
}

/// The hub, running on its own thread in the cluster primary.
#[napi(js_name = "Hub")]
pub struct JsHub {
    inner: Option<hub::Hub>,
}

#[napi]
impl JsHub {
    /// Binds `path` now and serves on a new thread. `onEvent` receives
    /// connection events; `onLog`, when given, the hub's log lines (see
    /// `log.rs`). Neither keeps the process alive.
    #[napi(constructor)]
    pub fn new(
        path: String,
        limits: HubLimits,
        on_event: Function<HubEventJs, ()>,
        on_log: Option<Function<String, ()>>,
    ) -> std::result::Result<Self, Error<ErrorCode>> {
        let tsfn = weak_callback(&on_event)?;
        let sink: hub::EventSink = Box::new(move |e: HubEvent| {
            tsfn.call(e.into(), ThreadsafeFunctionCallMode::NonBlocking);
        });
        let options = hub::HubOptions {
            max_frame: limits.max_frame_size as usize,
            queue_soft_limit: limits.queue_soft_limit as usize,
            queue_hard_limit: limits.queue_hard_limit as usize,
            max_connections: limits.max_connections as usize,
            incoming_limit: limits.incoming_limit as usize,
            frame_timeout: std::time::Duration::from_millis(u64::from(limits.frame_timeout)),
            recovery: {
                let d = RecoveryLimits::default();
                let or = |v: Option<f64>, def: usize| v.map_or(def, |v| v as usize);
                RecoveryLimits {
                    max_packets: or(limits.recovery_max_packets, d.max_packets),
                    max_bytes: or(limits.recovery_max_bytes, d.max_bytes),
                    max_sessions: or(limits.recovery_max_sessions, d.max_sessions),
                }
            },
            bridge: limits.redis.map(|r| crate::bridge::BridgeOptions {
                url: r.url,
                key: r.key,
                requests_timeout: std::time::Duration::from_millis(u64::from(r.requests_timeout)),
            }),
        };
        let log = match on_log {
            Some(f) => {
                let tsfn = weak_callback(&f)?;
                let sink: crate::log::LogSink = std::sync::Arc::new(move |line: String| {
                    tsfn.call(line, ThreadsafeFunctionCallMode::NonBlocking);
                });
                Some(sink)
            }
            None => None,
        };
        let h = hub::Hub::start_with_log(&path, options, sink, log)
            .map_err(|e| js_error(ErrorCode::Address, e.to_string()))?;
        Ok(JsHub { inner: Some(h) })
    }

    /// The socket path, or null once closed.
    #[napi(getter)]
    pub fn path(&self) -> Option<String> {
        self.inner.as_ref().map(|h| h.address().to_string())
    }

    /// Counters, peers and queue depths.
    #[napi]
    pub fn stats(&self) -> Option<HubStatsJs> {
        let s = self.inner.as_ref()?.stats();
        let queue = |node: u32| s.queues.iter().find(|q| q.node == node).copied();
        Some(HubStatsJs {
            frames_in: s.router.frames_in as f64,
            bytes_in: s.router.bytes_in as f64,
            frames_out: s.router.frames_out as f64,
            bytes_out: s.router.bytes_out as f64,
            requests: s.router.requests as f64,
            requests_timed_out: s.router.requests_timed_out as f64,
            departures: s.router.departures as f64,
            late_responses: s.router.late_responses as f64,
            fenced_frames: s.router.fenced_frames as f64,
            fence_timeouts: s.router.fence_timeouts as f64,
            pending_requests: s.pending_requests as u32,
            connections: s.connections as u32,
            incoming_bytes: s.incoming_bytes as f64,
            recovery: RecoveryStatsJs {
                sessions: s.recovery.sessions as f64,
                log_entries: s.recovery.log_entries as f64,
                log_bytes: s.recovery.log_bytes as f64,
                restored: s.recovery.restored as f64,
                refused_session: s.recovery.refused_session as f64,
                refused_offset: s.recovery.refused_offset as f64,
                refused_too_large: s.recovery.refused_too_large as f64,
                log_evictions: s.recovery.log_evictions as f64,
                session_evictions: s.recovery.session_evictions as f64,
                live_sessions: s.recovery.live_sessions as f64,
                orphaned: s.recovery.orphaned as f64,
            },
            redis: s.bridge.clone().map(RedisStatsJs::from),
            peers: s
                .peers
                .iter()
                .filter(|p| p.node != hub::BRIDGE_NODE)
                .map(|p| {
                    let q = queue(p.node);
                    PeerStatsJs {
                        node: p.node,
                        pid: p.pid,
                        alive: p.alive,
                        namespaces: p.namespaces.clone(),
                        queued_bytes: q.map_or(0.0, |q| q.queued_bytes as f64),
                        dropped_volatile: q.map_or(0.0, |q| q.dropped_volatile as f64),
                        dropped_overflow: q.map_or(0.0, |q| q.dropped_overflow as f64),
                    }
                })
                .collect(),
        })
    }

    /// The primary's JS is about to send IPC messages to workers: the hub
    /// parks what workers send until `release()`.
    #[napi]
    pub fn hold(&self) {
        if let Some(h) = self.inner.as_ref() {
            h.hold();
        }
    }

    /// The primary's stretch of IPC sends to the workers of `pids` is over:
    /// returns each one's fence number to send it (0: not connected, none).
    #[napi]
    pub fn release(&self, pids: Vec<u32>) -> Vec<f64> {
        match self.inner.as_ref() {
            Some(h) => h.release(&pids).into_iter().map(|f| f as f64).collect(),
            None => vec![0.0; pids.len()],
        }
    }

    /// Closes every worker connection and removes the socket file.
    #[napi]
    pub fn close(&mut self) {
        if let Some(mut h) = self.inner.take() {
            h.close();
        }
    }
}

/// What `Link.request()` asks for.
#[napi(object)]
pub struct RequestSpec {
    /// Requester-side id, echoed in every answer.
    pub req: u32,
    pub nsp: String,
    /// JS message kind.
    pub kind: u32,
    pub timeout_ms: u32,
    /// Keep the request open until its deadline even once everyone answered.
    pub keep: bool,
    /// JSON-encoded room names; empty means every worker serving `nsp`.
    pub rooms: Vec<String>,
}

/// Settings of a worker's connection to the hub.
#[napi(object)]
pub struct LinkLimits {
    /// Milliseconds of silence after which the hub stops counting the worker.
    pub heartbeat_timeout: u32,
    /// Largest frame body this worker sends.
    pub max_frame_size: f64,
    /// Bytes queued toward the hub past which volatile messages are refused.
    pub queue_soft_limit: f64,
    /// Bytes queued toward the hub past which other messages are refused.
    pub queue_hard_limit: f64,
}

/// A worker's connection to the hub.
#[napi(js_name = "Link")]
pub struct JsLink {
    inner: link::Link,
    max_frame: usize,
}

#[napi]
impl JsLink {
    /// Starts connecting to the hub at `address`. `wake` is called (with no
    /// arguments) whenever events are waiting in `drain()`; it never keeps the
    /// process alive.
    #[napi(constructor)]
    pub fn new(
        address: String,
        limits: LinkLimits,
        wake: Function<(), ()>,
    ) -> std::result::Result<Self, Error<ErrorCode>> {
        let max_frame = limits.max_frame_size as usize;
        let tsfn = weak_callback(&wake)?;
        let options = link::LinkOptions {
            address,
            pid: std::process::id(),
            heartbeat_timeout_ms: limits.heartbeat_timeout,
            max_frame,
            queue_soft_limit: limits.queue_soft_limit as usize,
            queue_hard_limit: limits.queue_hard_limit as usize,
        };
        let inner = link::Link::start(
            options,
            Box::new(move || {
                tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }),
        )
        .map_err(|e| js_error(ErrorCode::Address, e.to_string()))?;
        Ok(JsLink { inner, max_frame })
    }

    /// The largest frame body both this worker and the hub accept.
    fn frame_limit(&self) -> usize {
        self.max_frame.min(self.inner.hub_max_frame())
    }

    /// Refuses a frame the hub would refuse (and drop this connection for):
    /// its body is the header's length, the header and the parts.
    fn check_size(&self, header: &[u8], parts: &[BufferSlice]) -> Result<(), ErrorCode> {
        let size = 4 + header.len() + frame::parts_len(parts);
        let (limit, code, whose) = if size > self.max_frame {
            (self.max_frame, ErrorCode::FrameTooLarge, "maxFrameSize")
        } else {
            let hub = self.inner.hub_max_frame();
            (hub, ErrorCode::HubFrameTooLarge, "the hub's maxFrameSize")
        };
        if size > limit {
            return Err(js_error(
                code,
                format!("message of {size} bytes exceeds {whose} ({limit} bytes)"),
            ));
        }
        Ok(())
    }

    /// Writes a frame of `class` whose body `write` appends; refused when
    /// the queue toward the hub is full.
    fn send_frame(
        &self,
        class: Class,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<bool, ErrorCode> {
        self.inner.send_with(class, write).map_err(|full| {
            js_error(
                ErrorCode::QueueFull,
                format!(
                    "{} bytes are waiting to be sent to the hub (limit {}): the hub is not reading",
                    full.queued, full.limit
                ),
            )
        })
    }

    /// Sends a frame without payload (registrations, room announcements,
    /// heartbeats...). These are small (long names travel as digests, see
    /// lib/link.js), but one the hub would refuse must not cost the
    /// connection: it is not sent, and this returns false.
    fn send_control(&self, header: Header) -> bool {
        let frame = encode(&header, &[]);
        frame.len() - 4 <= self.frame_limit() && self.inner.send(&frame)
    }

    fn send_parts(
        &self,
        class: Class,
        header: &Header,
        parts: &[BufferSlice],
    ) -> Result<bool, ErrorCode> {
        let header = frame::encode_header(header);
        self.check_size(&header, parts)?;
        self.send_frame(class, |out| {
            frame::encode_parts_with_header_into(out, &header, parts)
        })
    }

    /// Announces that an adapter for `nsp` started in this worker.
    #[napi]
    pub fn register(&self, nsp: String) -> bool {
        self.send_control(Header::Register { nsp })
    }

    /// Announces that an adapter for `nsp` closed in this worker.
    #[napi]
    pub fn unregister(&self, nsp: String) -> bool {
        self.send_control(Header::Unregister { nsp })
    }

    /// Fans `parts` out to every other worker serving `nsp` (and, when
    /// `rooms` is not empty, having a local member in one of those rooms).
    #[napi]
    pub fn publish(
        &self,
        nsp: String,
        kind: u32,
        volatile: bool,
        rooms: Vec<String>,
        parts: Vec<BufferSlice>,
    ) -> Result<bool, ErrorCode> {
        let class = if volatile {
            Class::Volatile
        } else {
            Class::Data
        };
        let header = Header::Publish {
            nsp,
            kind: kind as u8,
            volatile,
            rooms,
        };
        self.send_parts(class, &header, &parts)
    }

    /// [`publish`](Self::publish) with a header made by
    /// [`publish_header`]: a worker publishing to the same targets over and
    /// over converts and encodes them once. The hub checks every header it
    /// receives, so a wrong one only costs this worker its connection.
    #[napi]
    pub fn publish_with(
        &self,
        header: BufferSlice,
        parts: Vec<BufferSlice>,
    ) -> Result<bool, ErrorCode> {
        self.check_size(&header, &parts)?;
        self.send_frame(Class::Data, |out| {
            frame::encode_parts_with_header_into(out, &header, &parts)
        })
    }

    /// Sends a request that every other live worker serving `spec.nsp` (with
    /// a member in one of `spec.rooms`, when not empty) must answer.
    #[napi]
    pub fn request(&self, spec: RequestSpec, parts: Vec<BufferSlice>) -> Result<bool, ErrorCode> {
        let header = Header::Request {
            req: spec.req,
            nsp: spec.nsp,
            kind: spec.kind as u8,
            timeout_ms: spec.timeout_ms,
            keep: spec.keep,
            rooms: spec.rooms,
        };
        self.send_parts(Class::Data, &header, &parts)
    }

    /// `nsp` runs with connection state recovery in this worker.
    #[napi]
    pub fn recovery(&self, nsp: String, max_disconnection_ms: u32) -> bool {
        self.send_control(Header::Recovery {
            nsp,
            max_disconnection_ms,
        })
    }

    /// A recoverable broadcast whose packet ends with `offset`: the hub logs
    /// it and delivers it to every worker serving `nsp`, this one included.
    #[napi]
    pub fn record(
        &self,
        nsp: String,
        rooms: Vec<String>,
        offset: String,
        parts: Vec<BufferSlice>,
    ) -> Result<bool, ErrorCode> {
        let header = Header::Record { nsp, rooms, offset };
        self.send_parts(Class::Data, &header, &parts)
    }

    /// Hands the hub the session of a socket that disconnected and may come back.
    #[napi]
    pub fn session_save(
        &self,
        nsp: String,
        pid: String,
        parts: Vec<BufferSlice>,
    ) -> Result<bool, ErrorCode> {
        self.send_parts(Class::Control, &Header::SessionSave { nsp, pid }, &parts)
    }

    /// The socket of a restore exists now, in its rooms.
    #[napi]
    pub fn restore_done(&self, nsp: String) -> bool {
        self.send_control(Header::RestoreDone { nsp })
    }

    /// The state of a connected socket (sent when it connects and when its
    /// rooms change), kept by the hub as a session if this worker dies.
    #[napi]
    pub fn session_sync(
        &self,
        nsp: String,
        pid: String,
        parts: Vec<BufferSlice>,
    ) -> Result<bool, ErrorCode> {
        self.send_parts(Class::Control, &Header::SessionSync { nsp, pid }, &parts)
    }

    /// A connected socket is gone for good (not recoverable).
    #[napi]
    pub fn session_end(&self, nsp: String, pid: String) -> bool {
        self.send_control(Header::SessionEnd { nsp, pid })
    }

    /// Asks the hub for session `pid` and the broadcasts after `offset`;
    /// answered by a RESTORED record with `req`.
    #[napi]
    pub fn restore(
        &self,
        req: u32,
        nsp: String,
        pid: String,
        offset: String,
    ) -> Result<bool, ErrorCode> {
        self.send_parts(
            Class::Control,
            &Header::Restore {
                req,
                nsp,
                pid,
                offset,
            },
            &[],
        )
    }

    /// The largest payload part an answer (`respond()` with one or two
    /// small parts) may carry and still fit in a frame both this worker and
    /// the hub accept.
    #[napi]
    pub fn max_payload(&self) -> u32 {
        const ALLOWANCE: usize = 512;
        u32::try_from(self.frame_limit().saturating_sub(ALLOWANCE)).unwrap_or(u32::MAX)
    }

    /// Answers the hub request `id`.
    #[napi]
    pub fn respond(&self, id: f64, last: bool, parts: Vec<BufferSlice>) -> Result<bool, ErrorCode> {
        let header = Header::Respond {
            id: id as u64,
            last,
        };
        self.send_parts(Class::Data, &header, &parts)
    }

    /// Bytes waiting to be sent to the hub (queued while the hub is not reading).
    #[napi]
    pub fn queued_bytes(&self) -> f64 {
        self.inner.queued_bytes() as f64
    }

    /// A room of `nsp` got its first local member (`room` is the JSON of its name).
    #[napi]
    pub fn room_add(&self, nsp: String, room: String) -> bool {
        self.send_control(Header::RoomAdd { nsp, room })
    }

    /// A room of `nsp` lost its last local member.
    #[napi]
    pub fn room_del(&self, nsp: String, room: String) -> bool {
        self.send_control(Header::RoomDel { nsp, room })
    }

    /// Tells the hub this worker has handled the primary's IPC messages up to
    /// its fence `seq`.
    #[napi]
    pub fn fence_ack(&self, seq: f64) -> bool {
        self.send_control(Header::FenceAck { seq: seq as u64 })
    }

    /// Tells the hub this worker's event loop is alive.
    #[napi]
    pub fn heartbeat(&self) -> bool {
        self.send_control(Header::Heartbeat)
    }

    /// Asks how many live workers serve `nsp`; answered by a Count event.
    #[napi]
    pub fn count_query(&self, req: u32, nsp: String) -> bool {
        self.send_control(Header::CountQuery { req, nsp })
    }

    /// Takes up to `max` pending events of the link thread (the connection
    /// coming up or going down), packed into one buffer (see `batch.rs` for
    /// the record layout); null when there are none.
    #[napi]
    pub fn drain<'env>(&self, env: &'env Env, max: u32) -> Result<Option<BufferSlice<'env>>> {
        packed(env, self.inner.drain(max as usize))
    }

    /// Once the link is up: the fd for JS to read the hub's frames from
    /// (JS owns it from then on); null after the first call.
    #[napi]
    pub fn take_reader(&self) -> Option<i32> {
        self.inner.take_reader()
    }

    /// Takes bytes JS read from the hub and returns the completed frames as
    /// records, packed like `drain()`'s. Throws on bytes that are not frames.
    #[napi]
    pub fn feed<'env>(
        &self,
        env: &'env Env,
        bytes: &[u8],
    ) -> Result<Option<BufferSlice<'env>>, ErrorCode> {
        let mut out = Vec::with_capacity(bytes.len() + RECORD_SLACK);
        self.inner
            .feed(bytes, |header, payload| {
                batch::encode_frame(header, payload, &mut out)
            })
            .map_err(|e| js_error(ErrorCode::BadFrame, format!("bad frame from the hub: {e}")))?;
        if out.is_empty() {
            return Ok(None);
        }
        BufferSlice::copy_from(env, &out)
            .map(Some)
            .map_err(|e| js_error(ErrorCode::Internal, e.reason))
    }

    /// Writes the frames sent since the last flush (JS calls this once per
    /// tick, from a microtask).
    #[napi]
    pub fn flush(&self) {
        self.inner.flush();
    }

    /// Flushes what is queued and closes the connection.
    #[napi]
    pub fn close(&mut self) {
        self.inner.close();
    }
}

/// A JS callback the addon's threads may call, which never keeps the process alive.
pub(crate) type Callback<T> = ThreadsafeFunction<T, (), T, Status, false, true>;

pub(crate) fn weak_callback<T: 'static + JsValuesTupleIntoVec>(
    f: &Function<T, ()>,
) -> std::result::Result<Callback<T>, Error<ErrorCode>> {
    f.build_threadsafe_function::<T>()
        .weak::<true>()
        .callee_handled::<false>()
        .build()
        // A failure of Node's API itself (no input of ours causes it).
        .map_err(|e| js_error(ErrorCode::Internal, e.reason))
}

/// Room for the records of one read beyond its own size (a record's fixed
/// fields are about as long as the frame header they replace).
const RECORD_SLACK: usize = 1024;

/// Packs `events` into a buffer for JS. Copied into memory Node allocates:
/// handing over the Vec would make an external buffer whose finalizer costs
/// the garbage collector more than the copy costs (one per batch).
fn packed<'env>(env: &'env Env, events: Vec<link::LinkEvent>) -> Result<Option<BufferSlice<'env>>> {
    if events.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(batch::size_hint(&events));
    batch::encode(events, &mut out);
    BufferSlice::copy_from(env, &out).map(Some)
}
