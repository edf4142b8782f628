//! The hub: a Unix-socket server on its own thread in the cluster primary.
//!
//! One connection per worker process. Each connection has a reader task that
//! feeds frames to the [`Router`] and a writer task that drains the
//! connection's outbox. The primary's JS event loop is never involved in moving
//! a message; it only hears about connections coming and going.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Notify};
use tracing::Instrument;

use crate::bridge::{BridgeOptions, BridgeStats, BridgeStatsSnapshot};
use crate::frame::{
    encode, encode_out, Frame, FrameBuffer, Header, NodeId, OutFrame, PROTOCOL_VERSION, SHARE_FROM,
};
use crate::log::{self, LogSink};
use crate::paths;
use crate::recovery::{RecoveryLimits, RecoveryStats};
use crate::router::{Class, Out, PeerInfo, Router, RouterStats};
use crate::serving::ServingThread;
use crate::sock::{self, Reader};

/// How long a new connection may take to say `Hello`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections that may wait for their handshake at once; more are refused
/// at once (a worker retries): idle connections cannot pile up.
const MAX_HANDSHAKING: usize = 64;

/// A connection with this much of a frame buffered counts as receiving a
/// large frame: it is the one that waits while the hub holds more than
/// `incoming_limit` bytes of frames still arriving.
const LARGE_PARTIAL: usize = 64 * 1024;

/// Something the primary's JS may want to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// A worker completed the handshake.
    Connected { node: NodeId, pid: u32 },
    /// A worker's connection ended; `reason` is set when the hub dropped it.
    Disconnected {
        node: NodeId,
        pid: u32,
        reason: Option<String>,
    },
    /// A connection was refused before the handshake completed.
    Refused { reason: String },
    /// The Redis bridge connected (`reason` None) or could not connect or
    /// lost its connection (`reason`: why); once per change of state.
    Redis { reason: Option<String> },
}

/// Callback through which the hub reports [`HubEvent`]s.
pub type EventSink = Box<dyn Fn(HubEvent) + Send + Sync>;

/// Settings of a hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Largest accepted frame body, in bytes.
    pub max_frame: usize,
    /// Bytes queued for one worker past which volatile broadcasts are dropped.
    pub queue_soft_limit: usize,
    /// Bytes queued for one worker past which everything but bookkeeping
    /// frames is dropped (and counted): a stopped worker cannot grow the
    /// primary's memory without bound.
    pub queue_hard_limit: usize,
    /// Connections served at once (handshake done or not); more are refused
    /// at once. At most a quarter of the process's descriptor limit (each
    /// connection takes two), so the primary keeps descriptors to fork and
    /// serve whatever connects.
    pub max_connections: usize,
    /// Bytes of frames still arriving, over all connections, past which a
    /// connection receiving a large frame waits before reading more.
    /// Raised to `max_frame` if lower (one frame must always fit).
    pub incoming_limit: usize,
    /// How long a frame may take to arrive whole once its first byte has:
    /// a connection that holds a partial frame longer is dropped.
    pub frame_timeout: Duration,
    /// Bounds of connection state recovery's log and sessions.
    pub recovery: RecoveryLimits,
    /// Bridge this host to others over Redis (`bridge/`), when set.
    pub bridge: Option<BridgeOptions>,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            max_frame: crate::frame::DEFAULT_MAX_FRAME,
            queue_soft_limit: 32 * 1024 * 1024,
            queue_hard_limit: 128 * 1024 * 1024,
            max_connections: 1024,
            incoming_limit: 128 * 1024 * 1024,
            frame_timeout: Duration::from_secs(10),
            recovery: RecoveryLimits::default(),
            bridge: None,
        }
    }
}

/// The soft limit on this process's open descriptors.
fn descriptor_limit() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    if rc != 0 {
        return 1024;
    }
    usize::try_from(rl.rlim_cur).unwrap_or(usize::MAX)
}

/// Bytes of frames still arriving, over every connection.
struct IncomingBudget {
    bytes: AtomicUsize,
    limit: usize,
    /// Wakes connections waiting for the budget when bytes are given back.
    freed: Notify,
}

/// One connection's part of the [`IncomingBudget`]; given back on drop.
struct Share<'a> {
    budget: &'a IncomingBudget,
    held: usize,
}

impl Share<'_> {
    /// This connection now holds `bytes` of frames still arriving.
    fn set(&mut self, bytes: usize) {
        if bytes > self.held {
            self.budget
                .bytes
                .fetch_add(bytes - self.held, Ordering::Relaxed);
        } else if bytes < self.held {
            self.budget
                .bytes
                .fetch_sub(self.held - bytes, Ordering::Relaxed);
            self.budget.freed.notify_waiters();
        }
        self.held = bytes;
    }

    /// True while others hold so much that this connection, receiving a
    /// large frame, must wait before reading more of it.
    fn must_wait(&self) -> bool {
        let all = self.budget.bytes.load(Ordering::Relaxed);
        self.held >= LARGE_PARTIAL && all > self.budget.limit && all > self.held
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// A connection's place in the hub's counts; given back on drop.
struct Slot {
    shared: Arc<Shared>,
    handshaking: bool,
}

impl Slot {
    fn handshake_done(&mut self) {
        if std::mem::replace(&mut self.handshaking, false) {
            self.shared.handshaking.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.handshake_done();
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Drops {
    volatile: u64,
    overflow: u64,
}

impl Drops {
    fn is_empty(&self) -> bool {
        self.volatile == 0 && self.overflow == 0
    }
}

struct Outbox {
    tx: mpsc::UnboundedSender<OutFrame>,
    queued: Arc<AtomicUsize>,
    dropped: Drops,
    /// Drops the worker has not been told about yet.
    unreported: Drops,
}

struct State {
    router: Router,
    outboxes: HashMap<NodeId, Outbox>,
    next_node: NodeId,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the timer task when a new deadline may be earlier than its sleep.
    timer: Notify,
    events: EventSink,
    options: HubOptions,
    /// Connections being served, and those of them still in their handshake.
    connections: AtomicUsize,
    handshaking: AtomicUsize,
    incoming: IncomingBudget,
    /// Wakes the Redis bridge when the namespaces or workers of this host
    /// changed (it subscribes and counts servers by them).
    served_changed: Notify,
    bridge_stats: Option<Arc<BridgeStats>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in the router; the
        // state is still consistent enough to keep routing, so don't cascade.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs `event` and hands it to the primary's JS.
    fn report(&self, event: HubEvent) {
        match &event {
            HubEvent::Connected { .. } => tracing::info!("worker connected"),
            HubEvent::Disconnected { reason: None, .. } => tracing::info!("worker disconnected"),
            HubEvent::Disconnected {
                reason: Some(reason),
                ..
            } => tracing::warn!(%reason, "worker dropped"),
            HubEvent::Refused { reason } => tracing::warn!(%reason, "connection refused"),
            HubEvent::Redis { reason: None } => tracing::info!("connected to Redis"),
            HubEvent::Redis {
                reason: Some(reason),
            } => tracing::warn!(%reason, "Redis unreachable: this host works alone"),
        }
        (self.events)(event);
    }
}

fn push(ob: &Outbox, frame: OutFrame) {
    ob.queued.fetch_add(frame.len(), Ordering::Relaxed);
    // A closed outbox means the writer already stopped; the reader will
    // notice the dead connection and clean up.
    let _ = ob.tx.send(frame);
}

/// Past this many bytes queued for a worker, large frames are queued in
/// memory of their own rather than sharing the buffer they were read into: a
/// worker that falls behind must not keep every read buffer alive for the
/// one frame of each it has not taken yet (memory the queue limits do not
/// count). Below it, that memory stays under ~32 MiB per worker (128 shared
/// payloads of 4 KiB, each in a read buffer of 256 KiB of its own).
const SHARE_WHILE_QUEUED_BELOW: usize = 512 * 1024;

/// Queues `outs`; returns true when a message was dropped for a worker that
/// had no unreported drops before (the timer must then start watching it).
fn dispatch(state: &mut State, outs: Vec<Out>, options: &HubOptions) -> bool {
    let mut first_drop = false;
    for o in outs {
        let Some(ob) = state.outboxes.get_mut(&o.to) else {
            continue;
        };
        let queued = ob.queued.load(Ordering::Relaxed);
        let full = match o.class {
            Class::Volatile => queued >= options.queue_soft_limit,
            Class::Data => queued >= options.queue_hard_limit,
            Class::Control => false,
        };
        if full {
            if ob.unreported.is_empty() {
                first_drop = true;
                tracing::warn!(
                    node = o.to,
                    queued_bytes = queued,
                    "worker too slow to read: dropping messages for it until it catches up"
                );
            }
            let counter = if o.class == Class::Volatile {
                &mut ob.unreported.volatile
            } else {
                &mut ob.unreported.overflow
            };
            *counter += 1;
            continue;
        }
        report_drops(ob, options);
        if queued >= SHARE_WHILE_QUEUED_BELOW {
            push(ob, o.bytes.detached());
        } else {
            push(ob, o.bytes);
        }
    }
    first_drop
}

/// Once a worker that lost messages is catching up (its queue is back under
/// the soft limit), tells it what it missed, once. Called before anything
/// else is queued for it, and by the timer while drops are unreported, so a
/// worker hears of its losses even when nothing else is sent to it.
fn report_drops(ob: &mut Outbox, options: &HubOptions) {
    let lost = ob.unreported;
    if lost.is_empty() || ob.queued.load(Ordering::Relaxed) >= options.queue_soft_limit {
        return;
    }
    ob.dropped.volatile += lost.volatile;
    ob.dropped.overflow += lost.overflow;
    tracing::info!(
        volatile = lost.volatile,
        overflow = lost.overflow,
        "worker caught up; told it how many messages it lost"
    );
    ob.unreported = Drops::default();
    let report = Header::Dropped {
        volatile: lost.volatile,
        overflow: lost.overflow,
    };
    push(ob, encode_out(&report, Bytes::new()));
}

/// How often the timer looks for workers that caught up after losing messages.
const DROP_REPORT_POLL: Duration = Duration::from_millis(100);

/// Snapshot of a hub for `stats()`.
#[derive(Debug, Clone)]
pub struct HubStats {
    pub router: RouterStats,
    pub recovery: RecoveryStats,
    pub peers: Vec<PeerInfo>,
    /// Per worker: node id, bytes waiting in its outbox, frames dropped for
    /// it (volatile, overflow) including drops not yet reported to it.
    pub queues: Vec<QueueStats>,
    /// The Redis bridge's counters, when it runs.
    pub bridge: Option<BridgeStatsSnapshot>,
    pub pending_requests: usize,
    /// Connections open now (handshake done or not).
    pub connections: usize,
    /// Bytes of frames still arriving, over all connections.
    pub incoming_bytes: usize,
}

/// Queue of one worker, for `stats()`.
#[derive(Debug, Clone, Copy)]
pub struct QueueStats {
    pub node: NodeId,
    pub queued_bytes: usize,
    pub dropped_volatile: u64,
    pub dropped_overflow: u64,
}

/// A running hub. Dropping it stops the thread and removes the socket file.
pub struct Hub {
    address: String,
    shared: Arc<Shared>,
    serving: ServingThread,
}

impl Hub {
    /// Binds `address` (see [`paths`]) synchronously, so that workers forked
    /// right after find it, and starts serving on a new thread.
    pub fn start(address: &str, options: HubOptions, events: EventSink) -> io::Result<Hub> {
        Hub::start_with_log(address, options, events, None)
    }

    /// [`Hub::start`], with the hub's `tracing` spans and events written as
    /// lines to `log` (see [`crate::log`]); nothing is logged without it.
    pub fn start_with_log(
        address: &str,
        mut options: HubOptions,
        events: EventSink,
        log: Option<LogSink>,
    ) -> io::Result<Hub> {
        let std_listener = paths::bind_listener(address)?;
        std_listener.set_nonblocking(true)?;
        options.max_connections = options.max_connections.min(descriptor_limit() / 4).max(1);
        options.incoming_limit = options.incoming_limit.max(options.max_frame);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                router: Router::with_deferred_limit(options.queue_hard_limit)
                    .with_recovery(options.recovery, options.max_frame),
                outboxes: HashMap::new(),
                next_node: 0,
            }),
            timer: Notify::new(),
            events,
            connections: AtomicUsize::new(0),
            handshaking: AtomicUsize::new(0),
            incoming: IncomingBudget {
                bytes: AtomicUsize::new(0),
                limit: options.incoming_limit,
                freed: Notify::new(),
            },
            served_changed: Notify::new(),
            bridge_stats: options.bridge.as_ref().map(|_| Arc::default()),
            options,
        });
        let thread_shared = shared.clone();
        let serving = ServingThread::spawn("sio-cluster-hub", address, move || async move {
            // Scoped to this thread, where all of the hub's work runs.
            let _log = log.map(|sink| tracing::dispatcher::set_default(&log::dispatch(sink)));
            let listener = match UnixListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    thread_shared.report(HubEvent::Refused {
                        reason: format!("hub cannot listen: {e}"),
                    });
                    return;
                }
            };
            tokio::spawn(timer_loop(thread_shared.clone()));
            let bridge = thread_shared.options.bridge.clone();
            if let (Some(bridge), Some(stats)) = (bridge, thread_shared.bridge_stats.clone()) {
                let (port, frames) = BridgePort::attach(thread_shared.clone(), stats);
                let bridge = crate::bridge::run(port, frames, bridge);
                tokio::spawn(bridge.instrument(tracing::info_span!("bridge")));
            }
            accept_loop(listener, thread_shared).await;
        })?;
        Ok(Hub {
            address: address.to_string(),
            shared,
            serving,
        })
    }

    /// The address workers connect to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Counters, peers and queue depths.
    pub fn stats(&self) -> HubStats {
        let state = self.shared.lock();
        HubStats {
            router: state.router.stats(),
            recovery: state.router.recovery_stats(),
            peers: state.router.peers(),
            queues: {
                let mut q: Vec<QueueStats> = state
                    .outboxes
                    .iter()
                    .map(|(n, o)| QueueStats {
                        node: *n,
                        queued_bytes: o.queued.load(Ordering::Relaxed),
                        dropped_volatile: o.dropped.volatile + o.unreported.volatile,
                        dropped_overflow: o.dropped.overflow + o.unreported.overflow,
                    })
                    .collect();
                q.sort_by_key(|q| q.node);
                q
            },
            pending_requests: state.router.pending_requests(),
            connections: self.shared.connections.load(Ordering::Relaxed),
            incoming_bytes: self.shared.incoming.bytes.load(Ordering::Relaxed),
            bridge: self.shared.bridge_stats.as_ref().map(|s| s.snapshot()),
        }
    }

    /// The primary's JS is about to send to workers: park what workers send
    /// until [`Hub::release`] (see the router's "Order with the primary").
    pub fn hold(&self) {
        self.shared.lock().router.hold(Instant::now());
    }

    /// The primary's stretch of sends to the workers of `pids` is over:
    /// returns each one's new fence number (0 when not connected) and lets
    /// the hub thread route what was parked.
    pub fn release(&self, pids: &[u32]) -> Vec<u64> {
        let fences = self.shared.lock().router.release_hold(pids);
        self.shared.timer.notify_one();
        fences
    }

    /// Stops serving, closes every connection and removes the socket file.
    pub fn close(&mut self) {
        self.serving.stop();
    }
}

/// The node id of the Redis bridge. Workers answer its requests in JSON
/// (`lib/adapter.js`, `BRIDGE_NODE`): it combines their answers for the
/// other hosts, which speak the stock Redis adapter's JSON and msgpack.
pub const BRIDGE_NODE: NodeId = NodeId::MAX;

/// The hub as the Redis bridge sees it: a peer of the router like a worker,
/// whose frames come and go through a channel instead of a socket.
pub(crate) struct BridgePort {
    shared: Arc<Shared>,
    queued: Arc<AtomicUsize>,
    /// The bridge's counters, which `Hub::stats()` reads.
    pub stats: Arc<BridgeStats>,
}

impl BridgePort {
    /// Adds the bridge to the router; what the router sends it comes out of
    /// the receiver, as out of a worker's outbox.
    fn attach(
        shared: Arc<Shared>,
        stats: Arc<BridgeStats>,
    ) -> (BridgePort, mpsc::UnboundedReceiver<OutFrame>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        {
            let state = &mut *shared.lock();
            state.router.add_bridge(BRIDGE_NODE, Instant::now());
            let outbox = Outbox {
                tx,
                queued: queued.clone(),
                dropped: Drops::default(),
                unreported: Drops::default(),
            };
            state.outboxes.insert(BRIDGE_NODE, outbox);
        }
        let port = BridgePort {
            shared,
            queued,
            stats,
        };
        (port, rx)
    }

    /// The bridge took `frame` from its outbox.
    pub fn taken(&self, frame: &OutFrame) {
        self.queued.fetch_sub(frame.len(), Ordering::Relaxed);
    }

    /// Hands the router a frame from the bridge, as if a worker sent it.
    pub fn send(&self, header: Header, payload: Bytes) {
        let is_request = matches!(header, Header::Request { .. });
        let state = &mut *self.shared.lock();
        match state
            .router
            .accept(BRIDGE_NODE, Frame { header, payload }, Instant::now())
        {
            Ok(outs) => {
                if dispatch(state, outs, &self.shared.options) || is_request {
                    self.shared.timer.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "bridge frame refused by the router"),
        }
    }

    /// Redis became reachable (`up`) or not.
    pub fn set_up(&self, up: bool) {
        let state = &mut *self.shared.lock();
        let outs = state.router.set_bridge_up(BRIDGE_NODE, up, Instant::now());
        if dispatch(state, outs, &self.shared.options) {
            self.shared.timer.notify_one();
        }
    }

    /// Namespace → live workers of this host serving it.
    pub fn served(&self) -> Vec<(String, usize)> {
        let state = self.shared.lock();
        state
            .router
            .served_namespaces()
            .into_iter()
            .map(|nsp| {
                let n = state.router.count(&nsp);
                (nsp, n)
            })
            .collect()
    }

    /// Servers of `nsp` on other hosts, for `serverCount()`.
    pub fn set_remote_servers(&self, nsp: &str, count: u32) {
        self.shared.lock().router.set_remote_servers(nsp, count);
    }

    /// Tells the primary Redis is reachable now (`None`) or why not.
    pub fn report_redis(&self, reason: Option<String>) {
        self.shared.report(HubEvent::Redis { reason });
    }

    /// Resolves when the namespaces or workers of this host may have changed.
    pub async fn served_changed(&self) {
        self.shared.served_changed.notified().await;
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let open = shared.connections.load(Ordering::Relaxed);
                let waiting = shared.handshaking.load(Ordering::Relaxed);
                let full = if open >= shared.options.max_connections {
                    Some(format!(
                        "too many connections ({open} open, maxConnections {})",
                        shared.options.max_connections
                    ))
                } else if waiting >= MAX_HANDSHAKING {
                    Some(format!(
                        "too many connections waiting for their handshake ({waiting})"
                    ))
                } else {
                    None
                };
                if let Some(reason) = full {
                    // Closed at once: its descriptor is back before the next accept.
                    drop(stream);
                    shared.report(HubEvent::Refused { reason });
                    continue;
                }
                shared.connections.fetch_add(1, Ordering::Relaxed);
                shared.handshaking.fetch_add(1, Ordering::Relaxed);
                let slot = Slot {
                    shared: shared.clone(),
                    handshaking: true,
                };
                let span = tracing::info_span!(
                    "worker",
                    pid = tracing::field::Empty,
                    node = tracing::field::Empty
                );
                tracing::debug!(parent: &span, "connection accepted");
                tokio::spawn(serve_connection(shared.clone(), stream, slot).instrument(span));
            }
            Err(e) => {
                // EMFILE and friends: report, back off, keep serving.
                shared.report(HubEvent::Refused {
                    reason: format!("accept failed: {e}"),
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn timer_loop(shared: Arc<Shared>) {
    // When to look again for workers that caught up after losing messages.
    // Kept across wake-ups: notifications (one per request, one per release
    // of the primary's hold) must not keep postponing it.
    let mut drop_poll: Option<Instant> = None;
    loop {
        let wake = {
            let state = &mut *shared.lock();
            let now = Instant::now();
            // Frames parked while the primary was sending, now that it is done.
            if state.router.can_unpark() {
                let outs = state.router.unpark(now);
                dispatch(state, outs, &shared.options);
            }
            let due = state
                .router
                .next_deadline()
                .into_iter()
                .chain(drop_poll)
                .min();
            if due.is_some_and(|d| now >= d) {
                let outs = state.router.tick(now);
                dispatch(state, outs, &shared.options);
                for ob in state.outboxes.values_mut() {
                    report_drops(ob, &shared.options);
                }
                drop_poll = None;
            }
            if state.outboxes.values().all(|ob| ob.unreported.is_empty()) {
                drop_poll = None;
            } else if drop_poll.is_none() {
                drop_poll = Some(now + DROP_REPORT_POLL);
            }
            let next = state
                .router
                .next_deadline()
                .into_iter()
                .chain(drop_poll)
                .min();
            next.unwrap_or(now + Duration::from_secs(3600))
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = shared.timer.notified() => {}
        }
    }
}

/// Reads the next frame; `Ok(None)` on a clean end of stream. Sets
/// `fresh_read` when it had to read from the socket to get it. A frame must
/// arrive whole within `frame_timeout` of its first byte, and while frames
/// still arriving hold more than the hub's `incoming_limit`, a connection
/// receiving a large one waits before reading more (its peer's writes then
/// wait in the kernel): a peer cannot make the primary hold memory for
/// frames it never finishes.
async fn read_frame(
    rd: &mut Reader,
    fb: &mut FrameBuffer,
    fresh_read: &mut bool,
    share: &mut Share<'_>,
    frame_timeout: Duration,
) -> Result<Option<Frame>, String> {
    let mut first_byte: Option<Instant> = None;
    let late = || {
        format!(
            "a frame did not arrive whole within {} ms",
            frame_timeout.as_millis()
        )
    };
    loop {
        let next = fb.next_frame();
        share.set(fb.buffered());
        if let Some(frame) = next.map_err(|e| e.to_string())? {
            return Ok(Some(frame));
        }
        let deadline = (fb.buffered() > 0)
            .then(|| *first_byte.get_or_insert_with(Instant::now) + frame_timeout);
        while share.must_wait() {
            let freed = share.budget.freed.notified();
            if !share.must_wait() {
                break;
            }
            match deadline {
                Some(d) => tokio::select! {
                    _ = freed => {}
                    _ = tokio::time::sleep_until(d.into()) => return Err(late()),
                },
                None => freed.await,
            }
        }
        let more = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), fb.read_more(rd))
                .await
                .map_err(|_| late())?,
            None => fb.read_more(rd).await,
        };
        match more {
            Ok(true) => *fresh_read = true,
            Ok(false) => return Ok(None),
            // A worker killed with unread data in its socket resets the
            // connection: that is a worker leaving, not a protocol problem.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// True for a frame routed by room membership.
fn targets_rooms(header: &Header) -> bool {
    match header {
        Header::Publish { rooms, .. } | Header::Request { rooms, .. } => !rooms.is_empty(),
        _ => false,
    }
}

async fn write_loop(
    wr: std::os::unix::net::UnixStream,
    mut rx: mpsc::UnboundedReceiver<OutFrame>,
    queued: Arc<AtomicUsize>,
) {
    // Heads and small payloads are copied together (one iovec for many);
    // large payloads are written from where they were read, shared by every
    // receiver of a broadcast: no copy of their bytes in the hub.
    let mut copied: Vec<u8> = Vec::new();
    let mut segs: Vec<Seg> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut total = 0;
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            total += frame.len();
            for piece in [frame.head, frame.payload] {
                if piece.len() < SHARE_FROM {
                    copy_into(&mut copied, &mut segs, &piece);
                } else {
                    segs.push(Seg::Shared(piece));
                }
            }
            if total < WRITE_BATCH && segs.len() < WRITE_SEGS {
                next = rx.try_recv().ok();
            }
        }
        let slices: Vec<&[u8]> = segs
            .iter()
            .map(|seg| match seg {
                Seg::Copied(start, end) => &copied[*start..*end],
                Seg::Shared(frame) => &frame[..],
            })
            .collect();
        if sock::write_all_slices(&wr, &slices).await.is_err() {
            return;
        }
        drop(slices);
        queued.fetch_sub(total, Ordering::Relaxed);
        segs.clear();
        copied.clear();
        if copied.capacity() > 4 * WRITE_BATCH {
            copied = Vec::new();
        }
    }
}

/// A piece of one write: a range of the copied bytes, or a large payload.
enum Seg {
    Copied(usize, usize),
    Shared(Bytes),
}

/// Appends `bytes` to `copied`, growing the last copied piece when it ends there.
fn copy_into(copied: &mut Vec<u8>, segs: &mut Vec<Seg>, bytes: &[u8]) {
    let start = copied.len();
    copied.extend_from_slice(bytes);
    match segs.last_mut() {
        Some(Seg::Copied(_, end)) if *end == start => *end = copied.len(),
        _ => segs.push(Seg::Copied(start, copied.len())),
    }
}

/// Bytes gathered from an outbox into one write.
const WRITE_BATCH: usize = 256 * 1024;
/// Pieces gathered into one write at most.
const WRITE_SEGS: usize = 64;

async fn refuse(stream: &std::os::unix::net::UnixStream, shared: &Shared, reason: String) {
    let refused = encode(
        &Header::Refused {
            reason: reason.clone(),
        },
        &[],
    );
    let _ = sock::write_all(stream, &refused).await;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    shared.report(HubEvent::Refused { reason });
}

async fn serve_connection(shared: Arc<Shared>, stream: UnixStream, mut slot: Slot) {
    // Only processes of our own user may talk to the hub. The 0700 directory
    // already keeps others out; this check also covers a socket path passed in
    // by hand.
    let cred = stream.peer_cred();
    // Reading registers read interest only, see `sock`.
    let Ok((mut rd, wr)) = stream.into_std().and_then(|std| {
        let rd = Reader::new(std.try_clone()?)?;
        // A smaller buffer only costs speed.
        let _ = sock::enlarge_send_buffer(&std);
        Ok((rd, std))
    }) else {
        return;
    };
    match cred {
        Ok(cred) if cred.uid() == paths::euid() => {}
        Ok(cred) => {
            let pid = cred
                .pid()
                .map_or_else(|| "unknown".into(), |p| p.to_string());
            let reason = format!(
                "connection from uid {} (pid {pid}) refused: only uid {} may connect",
                cred.uid(),
                paths::euid()
            );
            return refuse(&wr, &shared, reason).await;
        }
        Err(e) => {
            return refuse(&wr, &shared, format!("cannot read peer credentials: {e}")).await;
        }
    }
    let mut fb = FrameBuffer::new(shared.options.max_frame);
    let mut share = Share {
        budget: &shared.incoming,
        held: 0,
    };
    let frame_timeout = shared.options.frame_timeout;
    let hello = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        read_frame(&mut rd, &mut fb, &mut false, &mut share, frame_timeout),
    )
    .await;
    let (pid, heartbeat_timeout) = match hello {
        Ok(Ok(Some(Frame {
            header:
                Header::Hello {
                    version,
                    pid,
                    heartbeat_timeout_ms,
                },
            ..
        }))) => {
            if version != PROTOCOL_VERSION {
                let reason = format!(
                    "protocol version mismatch: worker (pid {pid}) speaks {version}, hub speaks {PROTOCOL_VERSION}; install the same socket.io-cluster-rs version in the primary and the workers"
                );
                return refuse(&wr, &shared, reason).await;
            }
            tracing::Span::current().record("pid", pid);
            (pid, Duration::from_millis(u64::from(heartbeat_timeout_ms)))
        }
        Ok(Ok(Some(f))) => {
            let reason = format!("expected a Hello frame first, got {:?}", f.header);
            return refuse(&wr, &shared, reason).await;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return refuse(&wr, &shared, format!("bad handshake: {e}")).await,
        Err(_) => return refuse(&wr, &shared, "handshake timed out".into()).await,
    };

    slot.handshake_done();
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let node = {
        let state = &mut *shared.lock();
        state.next_node += 1;
        let node = state.next_node;
        state
            .router
            .add_peer(node, pid, heartbeat_timeout, Instant::now());
        let outbox = Outbox {
            tx: tx.clone(),
            queued: queued.clone(),
            dropped: Drops::default(),
            unreported: Drops::default(),
        };
        let welcome = Header::Welcome {
            version: PROTOCOL_VERSION,
            node,
            max_frame: shared.options.max_frame as u64,
        };
        push(&outbox, encode_out(&welcome, Bytes::new()));
        // Emitters append offsets only for namespaces that run with recovery.
        for nsp in state.router.recovery_namespaces() {
            push(
                &outbox,
                encode_out(&Header::RecoveryOn { nsp }, Bytes::new()),
            );
        }
        state.outboxes.insert(node, outbox);
        node
    };
    drop(tx);
    shared.timer.notify_one();
    tracing::Span::current().record("node", node);
    shared.report(HubEvent::Connected { node, pid });
    let writer = tokio::spawn(write_loop(wr, rx, queued));

    let mut fresh_read = false;
    let reason = loop {
        match read_frame(&mut rd, &mut fb, &mut fresh_read, &mut share, frame_timeout).await {
            Ok(Some(frame)) => {
                let is_request = matches!(frame.header, Header::Request { .. });
                let serves = matches!(
                    frame.header,
                    Header::Register { .. } | Header::Unregister { .. }
                );
                if fresh_read && targets_rooms(&frame.header) {
                    // Routing by room reads the members other workers
                    // announced. A RoomAdd written before this frame was
                    // (e.g. by a worker whose client then told this worker
                    // about the socket) may still sit unread in its socket:
                    // let every connection with data ready be read first.
                    // Once per read, so a busy connection pays it rarely.
                    fresh_read = false;
                    tokio::task::yield_now().await;
                }
                let state = &mut *shared.lock();
                match state.router.accept(node, frame, Instant::now()) {
                    Ok(outs) => {
                        if dispatch(state, outs, &shared.options) {
                            shared.timer.notify_one();
                        }
                    }
                    Err(e) => break Some(e),
                }
                if is_request {
                    shared.timer.notify_one();
                }
                if serves {
                    shared.served_changed.notify_one();
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    {
        let state = &mut *shared.lock();
        let outs = state.router.remove_peer(node, Instant::now());
        state.outboxes.remove(&node);
        if dispatch(state, outs, &shared.options) {
            shared.timer.notify_one();
        }
    }
    shared.served_changed.notify_one();
    writer.abort();
    shared.report(HubEvent::Disconnected { node, pid, reason });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_body;

    fn state_with_outbox() -> (State, mpsc::UnboundedReceiver<OutFrame>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut outboxes = HashMap::new();
        outboxes.insert(
            1,
            Outbox {
                tx,
                queued: Arc::new(AtomicUsize::new(0)),
                dropped: Drops::default(),
                unreported: Drops::default(),
            },
        );
        let state = State {
            router: Router::new(),
            outboxes,
            next_node: 1,
        };
        (state, rx)
    }

    /// Soft limit 100 bytes, hard limit 200.
    fn small_limits() -> HubOptions {
        HubOptions {
            max_frame: 1 << 20,
            queue_soft_limit: 100,
            queue_hard_limit: 200,
            ..HubOptions::default()
        }
    }

    fn out(class: Class, len: usize) -> Out {
        Out {
            to: 1,
            bytes: OutFrame {
                head: Bytes::new(),
                payload: Bytes::from(vec![0u8; len]),
            },
            class,
        }
    }

    #[test]
    fn full_queues_drop_by_class_and_report_once_drained() {
        let options = small_limits();
        let (mut state, mut rx) = state_with_outbox();
        // 150 bytes queued: past the soft limit, below the hard one.
        dispatch(&mut state, vec![out(Class::Data, 150)], &options);
        dispatch(&mut state, vec![out(Class::Volatile, 10)], &options);
        dispatch(&mut state, vec![out(Class::Data, 60)], &options);
        // 210 bytes: past the hard limit; only control frames pass.
        dispatch(
            &mut state,
            vec![out(Class::Data, 10), out(Class::Control, 5)],
            &options,
        );
        let ob = &state.outboxes[&1];
        assert_eq!(ob.unreported.volatile, 1);
        assert_eq!(ob.unreported.overflow, 1);
        assert_eq!(ob.queued.load(Ordering::Relaxed), 215);

        // The writer drains everything; the next frame is preceded by a report.
        let mut n = 0;
        while let Ok(b) = rx.try_recv() {
            n += b.len();
        }
        state.outboxes[&1].queued.fetch_sub(n, Ordering::Relaxed);
        dispatch(&mut state, vec![out(Class::Data, 1)], &options);
        let report = rx.try_recv().unwrap();
        assert_eq!(
            decode_body(report.to_bytes().slice(4..)).unwrap().header,
            Header::Dropped {
                volatile: 1,
                overflow: 1
            }
        );
        assert_eq!(rx.try_recv().unwrap().len(), 1);
        let ob = &state.outboxes[&1];
        assert_eq!((ob.dropped.volatile, ob.dropped.overflow), (1, 1));
        assert_eq!((ob.unreported.volatile, ob.unreported.overflow), (0, 0));
    }

    #[test]
    fn a_worker_that_falls_behind_gets_frames_of_their_own() {
        let options = HubOptions::default();
        let (mut state, mut rx) = state_with_outbox();
        let shared = |len: usize| Out {
            to: 1,
            bytes: encode_out(
                &Header::Dropped {
                    volatile: 0,
                    overflow: 0,
                },
                Bytes::from(vec![1u8; len]),
            ),
            class: Class::Data,
        };
        // Within the backlog allowance the payload is still the one read.
        dispatch(&mut state, vec![shared(SHARE_WHILE_QUEUED_BELOW)], &options);
        let first = rx.try_recv().unwrap();
        assert_eq!(first.payload.len(), SHARE_WHILE_QUEUED_BELOW);
        // Past it (the first frame still counts as queued), frames are copied
        // out of the buffers they were read into, bytes unchanged.
        let late = shared(SHARE_FROM);
        let wire = late.bytes.to_bytes();
        dispatch(&mut state, vec![late], &options);
        let second = rx.try_recv().unwrap();
        assert!(second.payload.is_empty());
        assert_eq!(second.head, wire);
    }

    #[test]
    fn drops_are_reported_without_further_traffic_once_the_queue_drains() {
        let options = small_limits();
        let (mut state, mut rx) = state_with_outbox();
        assert!(!dispatch(&mut state, vec![out(Class::Data, 250)], &options));
        // The first drop asks the timer to watch; later ones do not.
        assert!(dispatch(&mut state, vec![out(Class::Data, 10)], &options));
        assert!(!dispatch(&mut state, vec![out(Class::Data, 10)], &options));
        let ob = state.outboxes.get_mut(&1).unwrap();
        // Still behind: nothing to report yet.
        report_drops(ob, &options);
        assert_eq!(ob.unreported.overflow, 2);
        while rx.try_recv().is_ok() {}
        ob.queued.store(0, Ordering::Relaxed);
        report_drops(ob, &options);
        let report = rx.try_recv().unwrap();
        assert_eq!(
            decode_body(report.to_bytes().slice(4..)).unwrap().header,
            Header::Dropped {
                volatile: 0,
                overflow: 2
            }
        );
        // Once.
        report_drops(ob, &options);
        assert!(rx.try_recv().is_err());
    }
}
