//! The hub's brain, free of I/O: who is connected, which namespaces each
//! worker serves, who is alive, which requests still wait for whom, and the
//! order between the hub's traffic and the primary's own IPC messages.
//!
//! Every input (a frame from a worker, a worker leaving, the clock, the
//! primary) returns the frames to send as `(destination, bytes)`. The I/O
//! layer in `hub.rs` only moves those bytes, which keeps every rule here
//! unit-testable.
//!
//! ## Order with the primary's `worker.send()`
//!
//! With the stock adapter everything a worker receives comes through its one
//! IPC pipe, relayed by the primary's JS thread, so a worker always handles
//! what the primary sent it before any adapter message the primary's messages
//! caused. Over the hub that takes two rules:
//!
//! - **Hold.** While the primary's JS runs a stretch of code that sends to
//!   workers ([`Router::hold`] at the first send, [`Router::release_hold`] once
//!   the stretch is over), frames from workers are parked, not routed: one of
//!   them may be the reaction of a worker that already got its message to a
//!   message the primary is still about to send to another.
//! - **Fences.** At the end of such a stretch every worker the primary sent
//!   to gets a fence number (sent after its messages, through the same IPC
//!   pipe). Until it acknowledges that fence ([`Header::FenceAck`], written
//!   after it handled everything before it), frames for it wait here, and
//!   whether it should get a room broadcast or a request at all is decided
//!   only then, from the rooms it has announced by that time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::frame::{encode_out, Frame, Header, NodeId, OutFrame};
use crate::recovery::{RecoveryLimits, RecoveryStats, RecoveryStore};

/// The message kind of a broadcast (socket.io-adapter's `MessageType.BROADCAST`).
const BROADCAST: u8 = 3;

/// The bridge's heartbeat timeout: it is never silent (see `Peer::bridge`).
const BRIDGE_HEARTBEAT: Duration = Duration::from_secs(365 * 24 * 3600);

/// How long a hold may last: a primary that stays in one synchronous stretch
/// longer than this after sending no longer delays the cluster's traffic.
pub const MAX_HOLD: Duration = Duration::from_millis(250);

/// Bytes that may wait for one worker's fence before its gate is forced open.
pub const DEFAULT_DEFERRED_LIMIT: usize = 128 * 1024 * 1024;

/// How a frame may be treated when its receiver's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A volatile broadcast: the first thing to drop.
    Volatile,
    /// Ordinary traffic: dropped (and counted) only past the hard limit.
    Data,
    /// Small bookkeeping frames (request outcomes, counts): never dropped.
    Control,
}

/// A frame to deliver to one worker.
#[derive(Debug, Clone)]
pub struct Out {
    pub to: NodeId,
    pub bytes: OutFrame,
    pub class: Class,
}

fn control(to: NodeId, header: &Header) -> Out {
    Out {
        to,
        bytes: encode_out(header, Bytes::new()),
        class: Class::Control,
    }
}

/// Counters the hub exposes through `stats()`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouterStats {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    pub requests: u64,
    pub requests_timed_out: u64,
    pub departures: u64,
    pub late_responses: u64,
    /// Frames that waited for a worker to handle the primary's IPC messages.
    pub fenced_frames: u64,
    /// Gates opened without the worker's acknowledgement (it stayed silent
    /// past its heartbeat timeout, or too much waited for it).
    pub fence_timeouts: u64,
}

/// A frame that waits until its receiver has handled the primary's messages.
#[derive(Debug)]
enum Deferred {
    /// Goes out as it is (answers and outcomes of the receiver's requests).
    Frame(Out),
    /// A broadcast or room operation: sent if the receiver serves `nsp` (and
    /// has a member in one of `rooms`) once released.
    Publish {
        nsp: String,
        rooms: Vec<String>,
        out: Out,
    },
    /// Request `id`, in which the receiver is counted tentatively: forwarded
    /// if it serves `nsp` (and `rooms`) and is alive once released, otherwise
    /// the request stops waiting for it.
    Request {
        id: u64,
        nsp: String,
        rooms: Vec<String>,
        out: Out,
    },
}

impl Deferred {
    fn len(&self) -> usize {
        match self {
            Deferred::Frame(out)
            | Deferred::Publish { out, .. }
            | Deferred::Request { out, .. } => out.bytes.len(),
        }
    }
}

#[derive(Debug)]
struct Gated {
    /// The fence the receiver must have acknowledged first.
    fence: u64,
    since: Instant,
    item: Deferred,
}

#[derive(Debug)]
struct Peer {
    pid: u32,
    /// Namespace name → number of adapters of that namespace in this worker.
    nsps: HashMap<String, u32>,
    /// Namespace name → rooms with at least one local member in this worker.
    rooms: HashMap<String, HashSet<String>>,
    last_seen: Instant,
    heartbeat_timeout: Duration,
    /// False while the worker has been silent for longer than its heartbeat
    /// timeout: it is not counted and not waited for, until it speaks again.
    alive: bool,
    /// The last fence given to this worker, and the last it acknowledged.
    fence_sent: u64,
    fence_acked: u64,
    /// Frames for it that wait for a fence, in order.
    deferred: VecDeque<Gated>,
    deferred_bytes: usize,
    /// Namespace → restores answered to this worker whose socket does not
    /// exist there yet: until then it gets everything of the namespace,
    /// whatever its rooms (the restored socket's rooms are not announced yet).
    restoring: HashMap<String, u32>,
    /// The Redis bridge (`bridge.rs`): it stands for the other hosts, so it
    /// gets every broadcast and room operation of the namespaces it serves,
    /// whatever the rooms, is not a server of this host in counts, and is
    /// alive while Redis is reachable rather than by heartbeats.
    bridge: bool,
}

impl Peer {
    /// True while frames for this worker must wait (behind a fence, or behind
    /// frames that do).
    fn gated(&self) -> bool {
        self.fence_acked < self.fence_sent || !self.deferred.is_empty()
    }

    /// Serves `nsp` and, when `rooms` is not empty, has a member in one of them.
    fn wants(&self, nsp: &str, rooms: &[String]) -> bool {
        self.nsps.contains_key(nsp)
            && (rooms.is_empty()
                || self.bridge
                || self.restoring.contains_key(nsp)
                || self
                    .rooms
                    .get(nsp)
                    .is_some_and(|set| rooms.iter().any(|r| set.contains(r))))
    }
}

#[derive(Debug)]
struct Pending {
    requester: NodeId,
    req: u32,
    nsp: String,
    waiting: HashSet<NodeId>,
    deadline: Instant,
    keep: bool,
}

/// Routing table, membership, request bookkeeping and order with the primary.
#[derive(Debug)]
pub struct Router {
    peers: HashMap<NodeId, Peer>,
    requests: HashMap<u64, Pending>,
    next_request: u64,
    stats: RouterStats,
    /// Set while the primary's JS is in a stretch of code that sends to workers.
    held_since: Option<Instant>,
    /// Frames that arrived during a hold (or behind frames that did), in order.
    parked: VecDeque<(NodeId, Frame)>,
    deferred_limit: usize,
    /// Broadcast logs and sessions of the namespaces with recovery.
    recovery: RecoveryStore,
    /// The largest answer to a `Restore` (the hub's frame limit).
    max_answer: usize,
    /// Namespace → servers on other hosts, as the Redis bridge last counted.
    remote_servers: HashMap<String, u32>,
}

impl Default for Router {
    fn default() -> Self {
        Router::with_deferred_limit(DEFAULT_DEFERRED_LIMIT)
    }
}

/// Summary of one connected worker, for `stats()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub node: NodeId,
    pub pid: u32,
    pub alive: bool,
    pub namespaces: Vec<String>,
}

/// True for the frames a worker may send once connected.
fn from_worker(header: &Header) -> bool {
    matches!(
        header,
        Header::Register { .. }
            | Header::Unregister { .. }
            | Header::Publish { .. }
            | Header::Request { .. }
            | Header::Respond { .. }
            | Header::Heartbeat
            | Header::CountQuery { .. }
            | Header::RoomAdd { .. }
            | Header::RoomDel { .. }
            | Header::FenceAck { .. }
            | Header::Recovery { .. }
            | Header::Record { .. }
            | Header::SessionSave { .. }
            | Header::SessionSync { .. }
            | Header::SessionEnd { .. }
            | Header::Restore { .. }
            | Header::RestoreDone { .. }
    )
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty router that lets at most `limit` bytes wait for one worker's
    /// fence; past it the worker's gate opens (its order is then lost, its
    /// memory bounded).
    pub fn with_deferred_limit(limit: usize) -> Self {
        Router {
            peers: HashMap::new(),
            requests: HashMap::new(),
            next_request: 0,
            stats: RouterStats::default(),
            held_since: None,
            parked: VecDeque::new(),
            deferred_limit: limit,
            recovery: RecoveryStore::new(RecoveryLimits::default()),
            max_answer: crate::frame::DEFAULT_MAX_FRAME,
            remote_servers: HashMap::new(),
        }
    }

    /// Sets the bounds of connection state recovery, and the largest frame a
    /// restore may answer with.
    pub fn with_recovery(mut self, limits: RecoveryLimits, max_answer: usize) -> Self {
        self.recovery = RecoveryStore::new(limits);
        self.max_answer = max_answer;
        self
    }

    /// Counters of connection state recovery.
    pub fn recovery_stats(&self) -> RecoveryStats {
        self.recovery.stats()
    }

    /// The namespaces that run with connection state recovery.
    pub fn recovery_namespaces(&self) -> Vec<String> {
        self.recovery.namespaces()
    }

    /// Registers a worker that completed the handshake.
    pub fn add_peer(&mut self, node: NodeId, pid: u32, heartbeat_timeout: Duration, now: Instant) {
        self.peers.insert(
            node,
            Peer {
                pid,
                nsps: HashMap::new(),
                rooms: HashMap::new(),
                last_seen: now,
                heartbeat_timeout,
                alive: true,
                fence_sent: 0,
                fence_acked: 0,
                deferred: VecDeque::new(),
                deferred_bytes: 0,
                restoring: HashMap::new(),
                bridge: false,
            },
        );
    }

    /// Adds the Redis bridge as peer `node` (see `Peer::bridge`), down until
    /// [`Router::set_bridge_up`].
    pub fn add_bridge(&mut self, node: NodeId, now: Instant) {
        // Never silent by heartbeats: a year is "never" for a primary.
        self.add_peer(node, 0, BRIDGE_HEARTBEAT, now);
        if let Some(p) = self.peers.get_mut(&node) {
            p.bridge = true;
            p.alive = false;
        }
    }

    /// Redis is reachable (`up`) or not. While down the bridge is not
    /// waited for: pending requests stop waiting for it at once, and new
    /// ones complete with this host's workers.
    pub fn set_bridge_up(&mut self, node: NodeId, up: bool, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        let Some(p) = self.peers.get_mut(&node).filter(|p| p.bridge) else {
            return out;
        };
        p.alive = up;
        if !up {
            self.remote_servers.clear();
            self.depart(node, None, now, &mut out);
            self.count_out(&out);
        }
        out
    }

    /// Servers of `nsp` on other hosts, as the bridge counted them.
    pub fn set_remote_servers(&mut self, nsp: &str, count: u32) {
        self.remote_servers.insert(nsp.to_owned(), count);
    }

    /// The namespaces some worker of this host serves.
    pub fn served_namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .peers
            .values()
            .filter(|p| !p.bridge)
            .flat_map(|p| p.nsps.keys().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// A worker's connection closed: it leaves every pending request at once.
    pub fn remove_peer(&mut self, node: NodeId, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        if self.peers.remove(&node).is_none() {
            return out;
        }
        // Requests this worker made have nobody left to answer to.
        self.requests.retain(|_, p| p.requester != node);
        // Its connected sockets may come back to another worker.
        self.recovery.orphan(node, now);
        self.depart(node, None, now, &mut out);
        self.count_out(&out);
        out
    }

    /// The primary's JS started a stretch of code that sends to workers:
    /// frames from workers are parked until [`Router::release_hold`].
    pub fn hold(&mut self, now: Instant) {
        self.held_since.get_or_insert(now);
    }

    /// The stretch is over and sent to the workers of `pids`: each connected
    /// one gets a new fence, whose number is returned (0 for a pid that is
    /// not connected: nothing to order it against). The parked frames are
    /// routed by [`Router::unpark`], behind the new fences.
    pub fn release_hold(&mut self, pids: &[u32]) -> Vec<u64> {
        self.held_since = None;
        pids.iter()
            .map(|pid| {
                // The newest connection of that process.
                let node = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.pid == *pid)
                    .map(|(n, _)| *n)
                    .max();
                match node.and_then(|n| self.peers.get_mut(&n)) {
                    Some(p) => {
                        p.fence_sent += 1;
                        p.fence_sent
                    }
                    None => 0,
                }
            })
            .collect()
    }

    /// True when parked frames can be routed now.
    pub fn can_unpark(&self) -> bool {
        self.held_since.is_none() && !self.parked.is_empty()
    }

    /// Routes the frames parked during a hold, in the order they arrived.
    pub fn unpark(&mut self, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        if self.held_since.is_some() {
            return out;
        }
        while let Some((from, frame)) = self.parked.pop_front() {
            out.extend(self.on_frame(from, frame, now));
        }
        out
    }

    /// Takes one frame from `from`: routed now, or parked while the primary
    /// holds (and behind frames that were). An `Err` is a protocol violation:
    /// the caller drops the connection with that reason.
    pub fn accept(&mut self, from: NodeId, frame: Frame, now: Instant) -> Result<Vec<Out>, String> {
        if !from_worker(&frame.header) {
            return Err(format!(
                "unexpected frame from a worker: {:?}",
                frame.header
            ));
        }
        if self.held_since.is_some() || !self.parked.is_empty() {
            // Alive is alive, whenever its frame gets routed.
            self.touch(from, now);
            self.parked.push_back((from, frame));
            return Ok(Vec::new());
        }
        Ok(self.on_frame(from, frame, now))
    }

    /// Routes one frame from `from` (checked by [`Router::accept`]).
    fn on_frame(&mut self, from: NodeId, frame: Frame, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        self.stats.frames_in += 1;
        self.stats.bytes_in += frame.payload.len() as u64;
        self.touch(from, now);
        match frame.header {
            Header::Register { nsp } => {
                if let Some(p) = self.peers.get_mut(&from) {
                    *p.nsps.entry(nsp).or_insert(0) += 1;
                }
            }
            Header::Unregister { nsp } => {
                let gone = match self.peers.get_mut(&from) {
                    Some(p) => match p.nsps.get_mut(&nsp) {
                        Some(n) if *n > 1 => {
                            *n -= 1;
                            false
                        }
                        Some(_) => {
                            p.nsps.remove(&nsp);
                            p.rooms.remove(&nsp);
                            true
                        }
                        None => false,
                    },
                    None => false,
                };
                if gone {
                    self.depart(from, Some(&nsp), now, &mut out);
                }
            }
            Header::Publish {
                nsp,
                kind,
                rooms,
                volatile,
            } => {
                let class = if volatile {
                    Class::Volatile
                } else {
                    Class::Data
                };
                self.fan_out(
                    from,
                    false,
                    &nsp,
                    kind,
                    &rooms,
                    class,
                    frame.payload,
                    now,
                    &mut out,
                );
            }
            Header::Recovery {
                nsp,
                max_disconnection_ms,
            } => {
                let age = Duration::from_millis(u64::from(max_disconnection_ms));
                let first = !self.recovery.enabled(&nsp);
                self.recovery.enable(&nsp, age);
                if first {
                    // Emitters (which serve no namespace) learn it from this.
                    let on = Header::RecoveryOn { nsp };
                    let peers: Vec<NodeId> = self.peers.keys().copied().collect();
                    for to in peers {
                        self.send(control(to, &on), now, &mut out);
                    }
                }
            }
            Header::Record { nsp, rooms, offset } => {
                // Logged first, so that a client restored by any worker from
                // now on gets it; then sent on, and echoed to the sender,
                // which delivers it to its own sockets only then: every
                // worker delivers in the order of the log.
                self.recovery
                    .record(&nsp, offset.clone(), frame.payload.clone(), now);
                self.fan_out(
                    from,
                    false,
                    &nsp,
                    BROADCAST,
                    &rooms,
                    Class::Data,
                    frame.payload,
                    now,
                    &mut out,
                );
                self.send(control(from, &Header::Echo { nsp, offset }), now, &mut out);
            }
            Header::SessionSave { nsp, pid } => {
                self.recovery.save_session(&nsp, pid, frame.payload, now);
            }
            Header::RestoreDone { nsp } => {
                if let Some(p) = self.peers.get_mut(&from) {
                    if let Some(n) = p.restoring.get_mut(&nsp) {
                        *n -= 1;
                        if *n == 0 {
                            p.restoring.remove(&nsp);
                        }
                    }
                }
            }
            Header::SessionSync { nsp, pid } => {
                self.recovery.sync_session(&nsp, pid, from, frame.payload);
            }
            Header::SessionEnd { nsp, pid } => {
                self.recovery.end_session(&nsp, &pid);
            }
            Header::Restore {
                req,
                nsp,
                pid,
                offset,
            } => {
                let answer = match self
                    .recovery
                    .restore(&nsp, &pid, &offset, now, self.max_answer)
                {
                    Ok((session, missed)) => {
                        // Whatever is logged from now on must reach the
                        // restored socket: see `Peer::restoring`.
                        if let Some(p) = self.peers.get_mut(&from) {
                            *p.restoring.entry(nsp.clone()).or_insert(0) += 1;
                        }
                        let mut parts: Vec<u8> = Vec::new();
                        parts.extend_from_slice(&(1 + missed.len() as u32).to_le_bytes());
                        for part in std::iter::once(&session).chain(&missed) {
                            parts.extend_from_slice(&(part.len() as u32).to_le_bytes());
                            parts.extend_from_slice(part);
                        }
                        Out {
                            to: from,
                            bytes: encode_out(
                                &Header::Restored { req, outcome: 0 },
                                Bytes::from(parts),
                            ),
                            class: Class::Control,
                        }
                    }
                    Err(refusal) => control(
                        from,
                        &Header::Restored {
                            req,
                            outcome: refusal as u8,
                        },
                    ),
                };
                self.send(answer, now, &mut out);
            }
            Header::Request {
                req,
                nsp,
                kind,
                timeout_ms,
                keep,
                rooms,
            } => {
                // A request parked behind its requester's departure.
                if !self.peers.contains_key(&from) {
                    return out;
                }
                self.stats.requests += 1;
                // Workers behind a fence are counted tentatively: whether
                // they serve the namespace and rooms is known once they
                // handled the primary's messages.
                let mut ready = Vec::new();
                let mut tentative = Vec::new();
                for (n, p) in &self.peers {
                    if *n == from || !p.alive {
                        continue;
                    }
                    if p.gated() {
                        tentative.push(*n);
                    } else if p.wants(&nsp, &rooms) {
                        ready.push(*n);
                    }
                }
                let waiting: HashSet<NodeId> = ready.iter().chain(&tentative).copied().collect();
                // Only broadcasts with acks need the count up front (for
                // socket.io's serverCount()); others save the frame.
                if keep {
                    let accepted = Header::Accepted {
                        req,
                        expected: waiting.len() as u32,
                    };
                    self.send(control(from, &accepted), now, &mut out);
                }
                if waiting.is_empty() {
                    self.send(control(from, &Header::Done { req }), now, &mut out);
                } else {
                    self.next_request += 1;
                    let id = self.next_request;
                    let bytes = encode_out(
                        &Header::Incoming {
                            id,
                            nsp: nsp.clone(),
                            from,
                            kind,
                        },
                        frame.payload,
                    );
                    self.requests.insert(
                        id,
                        Pending {
                            requester: from,
                            req,
                            nsp: nsp.clone(),
                            waiting,
                            deadline: now + Duration::from_millis(u64::from(timeout_ms)),
                            keep,
                        },
                    );
                    for to in ready {
                        out.push(Out {
                            to,
                            bytes: bytes.clone(),
                            class: Class::Data,
                        });
                    }
                    for to in tentative {
                        let item = Deferred::Request {
                            id,
                            nsp: nsp.clone(),
                            rooms: rooms.clone(),
                            out: Out {
                                to,
                                bytes: bytes.clone(),
                                class: Class::Data,
                            },
                        };
                        self.defer(to, item, now, &mut out);
                    }
                }
            }
            Header::Respond { id, last } => {
                let known = self.peers.contains_key(&from);
                let Some(p) = self.requests.get_mut(&id).filter(|_| known) else {
                    self.stats.late_responses += 1;
                    return out;
                };
                // The answer that completes the request says so itself: one
                // frame back to the requester instead of two.
                let done = last && p.waiting.remove(&from) && p.waiting.is_empty();
                let reply = Out {
                    to: p.requester,
                    bytes: encode_out(
                        &Header::Reply {
                            req: p.req,
                            from,
                            last,
                            done,
                        },
                        frame.payload,
                    ),
                    // Never drop the frame that completes a request.
                    class: if done { Class::Control } else { Class::Data },
                };
                if done && !p.keep {
                    self.requests.remove(&id);
                }
                self.send(reply, now, &mut out);
            }
            Header::Heartbeat => {}
            Header::CountQuery { req, nsp } => {
                // The asker counts itself when it serves `nsp` (a worker); an
                // emitter, which serves none, counts only the workers.
                let own = self
                    .peers
                    .get(&from)
                    .is_some_and(|p| p.nsps.contains_key(&nsp));
                let count = u32::from(own) + self.count_servers(&nsp, from);
                self.send(control(from, &Header::Count { req, count }), now, &mut out);
            }
            Header::RoomAdd { nsp, room } => {
                if let Some(p) = self.peers.get_mut(&from) {
                    p.rooms.entry(nsp).or_default().insert(room);
                }
            }
            Header::RoomDel { nsp, room } => {
                if let Some(p) = self.peers.get_mut(&from) {
                    if let Some(set) = p.rooms.get_mut(&nsp) {
                        set.remove(&room);
                    }
                }
            }
            Header::FenceAck { seq } => {
                if let Some(p) = self.peers.get_mut(&from) {
                    p.fence_acked = p.fence_acked.max(seq.min(p.fence_sent));
                }
                self.release(from, now, &mut out);
            }
            // Refused by accept().
            _ => {}
        }
        self.count_out(&out);
        out
    }

    /// Applies deadlines, heartbeat timeouts and overdue holds and fences at `now`.
    pub fn tick(&mut self, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        if self.held_since.is_some_and(|t| now >= t + MAX_HOLD) {
            self.held_since = None;
        }
        let expired: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.requests.remove(&id) {
                // A kept request (broadcast with acks) whose nodes all answered
                // just ends; the others report how many nodes never answered.
                if !(p.keep && p.waiting.is_empty()) {
                    self.stats.requests_timed_out += 1;
                    let mut pids: Vec<u32> = p
                        .waiting
                        .iter()
                        .filter_map(|n| self.peers.get(n).map(|peer| peer.pid))
                        .collect();
                    pids.sort_unstable();
                    let timed_out = Header::TimedOut {
                        req: p.req,
                        missing: p.waiting.len() as u32,
                        pids,
                    };
                    self.send(control(p.requester, &timed_out), now, &mut out);
                }
            }
        }
        let silent: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.alive && now.duration_since(p.last_seen) > p.heartbeat_timeout)
            .map(|(n, _)| *n)
            .collect();
        for node in silent {
            if let Some(p) = self.peers.get_mut(&node) {
                p.alive = false;
                tracing::warn!(
                    node,
                    pid = p.pid,
                    "no heartbeat within heartbeatTimeout: left out until it is heard from again"
                );
            }
            self.depart(node, None, now, &mut out);
        }
        // A worker that has not handled the primary's messages within its
        // heartbeat timeout is as good as down: stop holding its frames.
        let overdue: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.deferred
                    .front()
                    .is_some_and(|g| now >= g.since + p.heartbeat_timeout)
            })
            .map(|(n, _)| *n)
            .collect();
        for node in overdue {
            self.open_gate(node, now, &mut out);
        }
        self.recovery.expire(now);
        self.count_out(&out);
        out
    }

    /// The earliest instant at which [`Router::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let requests = self.requests.values().map(|p| p.deadline);
        let peers = self.peers.values().flat_map(|p| {
            let silent = p
                .alive
                .then(|| p.last_seen + p.heartbeat_timeout + Duration::from_millis(1));
            let fence = p.deferred.front().map(|g| g.since + p.heartbeat_timeout);
            silent.into_iter().chain(fence)
        });
        let hold = self.held_since.map(|t| t + MAX_HOLD);
        let expiry = self.recovery.next_expiry();
        requests.chain(peers).chain(hold).chain(expiry).min()
    }

    /// Live workers that serve `nsp`, for `serverCount()`.
    pub fn count(&self, nsp: &str) -> usize {
        self.peers
            .values()
            .filter(|p| p.alive && !p.bridge && p.nsps.contains_key(nsp))
            .count()
    }

    /// Servers of `nsp` but `except`: live workers of this host and, with
    /// the bridge up, those of other hosts.
    fn count_servers(&self, nsp: &str, except: NodeId) -> u32 {
        let mut n = 0;
        for (node, p) in &self.peers {
            if *node == except || !p.alive || !p.nsps.contains_key(nsp) {
                continue;
            }
            n += if p.bridge {
                self.remote_servers.get(nsp).copied().unwrap_or(0)
            } else {
                1
            };
        }
        n
    }

    /// Counters since start.
    pub fn stats(&self) -> RouterStats {
        self.stats.clone()
    }

    /// Number of requests still open.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// One line per connected worker.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(node, p)| {
                let mut namespaces: Vec<String> = p.nsps.keys().cloned().collect();
                namespaces.sort();
                PeerInfo {
                    node: *node,
                    pid: p.pid,
                    alive: p.alive,
                    namespaces,
                }
            })
            .collect();
        v.sort_by_key(|p| p.node);
        v
    }

    fn touch(&mut self, node: NodeId, now: Instant) {
        if let Some(p) = self.peers.get_mut(&node) {
            p.last_seen = now;
            // The bridge is alive while Redis is, whatever it sends.
            p.alive |= !p.bridge;
        }
    }

    /// Sends a published message of `from` to every worker that serves
    /// `nsp` (and has a member in one of `rooms`), `from` itself only when
    /// `to_sender`; workers behind a fence get it (or not) once released.
    #[allow(clippy::too_many_arguments)]
    fn fan_out(
        &mut self,
        from: NodeId,
        to_sender: bool,
        nsp: &str,
        kind: u8,
        rooms: &[String],
        class: Class,
        payload: Bytes,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        let bytes = encode_out(
            &Header::Message {
                nsp: nsp.to_owned(),
                from,
                kind,
            },
            payload,
        );
        let targets: Vec<(NodeId, bool)> = self
            .peers
            .iter()
            .filter(|(n, _)| to_sender || **n != from)
            .filter_map(|(n, p)| {
                if p.gated() {
                    Some((*n, true))
                } else {
                    p.wants(nsp, rooms).then_some((*n, false))
                }
            })
            .collect();
        for (to, gated) in targets {
            let o = Out {
                to,
                bytes: bytes.clone(),
                class,
            };
            if gated {
                let item = Deferred::Publish {
                    nsp: nsp.to_owned(),
                    rooms: rooms.to_vec(),
                    out: o,
                };
                self.defer(to, item, now, out);
            } else {
                out.push(o);
            }
        }
    }

    /// Queues `o` for its receiver: out now, or behind the receiver's fence.
    fn send(&mut self, o: Out, now: Instant, out: &mut Vec<Out>) {
        if self.peers.get(&o.to).is_some_and(Peer::gated) {
            let to = o.to;
            self.defer(to, Deferred::Frame(o), now, out);
        } else {
            out.push(o);
        }
    }

    /// Makes `item` wait for `node`'s current fence.
    fn defer(&mut self, node: NodeId, item: Deferred, now: Instant, out: &mut Vec<Out>) {
        let Some(p) = self.peers.get_mut(&node) else {
            return;
        };
        self.stats.fenced_frames += 1;
        p.deferred_bytes += item.len();
        p.deferred.push_back(Gated {
            fence: p.fence_sent,
            since: now,
            item,
        });
        if p.deferred_bytes > self.deferred_limit {
            self.open_gate(node, now, out);
        }
    }

    /// Releases everything waiting for `node` without its acknowledgement.
    fn open_gate(&mut self, node: NodeId, now: Instant, out: &mut Vec<Out>) {
        if let Some(p) = self.peers.get_mut(&node) {
            self.stats.fence_timeouts += 1;
            tracing::debug!(
                node,
                pid = p.pid,
                waiting_bytes = p.deferred_bytes,
                "fence not acknowledged in time: its frames go out without waiting"
            );
            p.fence_acked = p.fence_sent;
        }
        self.release(node, now, out);
    }

    /// Sends what waited for fences `node` has acknowledged, in order,
    /// deciding room and namespace membership from its state now.
    fn release(&mut self, node: NodeId, now: Instant, out: &mut Vec<Out>) {
        let mut ready = Vec::new();
        if let Some(p) = self.peers.get_mut(&node) {
            while p.deferred.front().is_some_and(|g| g.fence <= p.fence_acked) {
                if let Some(g) = p.deferred.pop_front() {
                    p.deferred_bytes -= g.item.len();
                    ready.push(g.item);
                }
            }
        }
        for item in ready {
            let Some(p) = self.peers.get(&node) else {
                return;
            };
            match item {
                Deferred::Frame(o) => out.push(o),
                Deferred::Publish { nsp, rooms, out: o } => {
                    if p.wants(&nsp, &rooms) {
                        out.push(o);
                    }
                }
                Deferred::Request {
                    id,
                    nsp,
                    rooms,
                    out: o,
                } => {
                    let asked = self
                        .requests
                        .get(&id)
                        .is_some_and(|r| r.waiting.contains(&node));
                    if !asked {
                        continue;
                    }
                    if p.alive && p.wants(&nsp, &rooms) {
                        out.push(o);
                    } else {
                        // Not a member after all: one fewer to wait for.
                        self.leave_request(id, node, now, out);
                    }
                }
            }
        }
    }

    /// `node` stops being waited for by request `id`.
    fn leave_request(&mut self, id: u64, node: NodeId, now: Instant, out: &mut Vec<Out>) {
        let Some(p) = self.requests.get_mut(&id) else {
            return;
        };
        if !p.waiting.remove(&node) {
            return;
        }
        let (requester, req) = (p.requester, p.req);
        let finished = p.waiting.is_empty();
        if finished && !p.keep {
            self.requests.remove(&id);
        }
        self.send(
            control(requester, &Header::Departed { req, node }),
            now,
            out,
        );
        if finished {
            self.send(control(requester, &Header::Done { req }), now, out);
        }
    }

    /// `node` stops being waited for, by every request (or only those of `nsp`).
    fn depart(&mut self, node: NodeId, nsp: Option<&str>, now: Instant, out: &mut Vec<Out>) {
        let ids: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, p)| nsp.is_none_or(|n| n == p.nsp) && p.waiting.contains(&node))
            .map(|(id, _)| *id)
            .collect();
        self.stats.departures += ids.len() as u64;
        for id in ids {
            self.leave_request(id, node, now, out);
        }
    }

    fn count_out(&mut self, out: &[Out]) {
        self.stats.frames_out += out.len() as u64;
        self.stats.bytes_out += out.iter().map(|o| o.bytes.len() as u64).sum::<u64>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_body;

    const HB: Duration = Duration::from_secs(10);

    fn frame(header: Header) -> Frame {
        Frame {
            header,
            payload: Bytes::from_static(b"p"),
        }
    }

    fn headers(out: &[Out]) -> Vec<(NodeId, Header)> {
        out.iter()
            .map(|o| {
                (
                    o.to,
                    decode_body(o.bytes.to_bytes().slice(4..)).unwrap().header,
                )
            })
            .collect()
    }

    /// Three workers, all serving "/".
    fn three(now: Instant) -> Router {
        let mut r = Router::new();
        for n in 1..=3 {
            r.add_peer(n, 100 + n, HB, now);
            r.accept(n, frame(Header::Register { nsp: "/".into() }), now)
                .unwrap();
        }
        r
    }

    fn request(r: &mut Router, from: NodeId, keep: bool, now: Instant) -> Vec<(NodeId, Header)> {
        headers(
            &r.accept(
                from,
                frame(Header::Request {
                    req: 9,
                    nsp: "/".into(),
                    kind: 7,
                    timeout_ms: 1000,
                    keep,
                    rooms: vec![],
                }),
                now,
            )
            .unwrap(),
        )
    }

    /// What `from` gets for its `CountQuery { req }` of "/".
    fn count_query(r: &mut Router, from: NodeId, req: u32, now: Instant) -> Vec<(NodeId, Header)> {
        let query = Header::CountQuery {
            req,
            nsp: "/".into(),
        };
        headers(&r.accept(from, frame(query), now).unwrap())
    }

    fn incoming_id(out: &[(NodeId, Header)]) -> u64 {
        out.iter()
            .find_map(|(_, h)| match h {
                Header::Incoming { id, .. } => Some(*id),
                _ => None,
            })
            .unwrap()
    }

    /// `three()` plus the Redis bridge as node 99, serving "/" and up.
    fn three_and_bridge(now: Instant) -> Router {
        let mut r = three(now);
        r.add_bridge(99, now);
        r.accept(99, frame(Header::Register { nsp: "/".into() }), now)
            .unwrap();
        assert!(r.set_bridge_up(99, true, now).is_empty());
        r
    }

    #[test]
    fn the_bridge_gets_room_broadcasts_whatever_the_rooms_and_counts_remote_servers() {
        let now = Instant::now();
        let mut r = three_and_bridge(now);
        let to_room = Header::Publish {
            nsp: "/".into(),
            kind: 3,
            volatile: false,
            rooms: vec!["\"nobody\"".into()],
        };
        let out = headers(&r.accept(1, frame(to_room), now).unwrap());
        assert_eq!(out.iter().map(|(to, _)| *to).collect::<Vec<_>>(), vec![99]);
        // Workers count themselves, not the bridge; the bridge adds other hosts.
        assert_eq!(r.count("/"), 3);
        r.set_remote_servers("/", 4);
        let out = count_query(&mut r, 1, 1, now);
        assert_eq!(out, vec![(1, Header::Count { req: 1, count: 7 })]);
        assert_eq!(r.served_namespaces(), vec!["/".to_owned()]);
    }

    #[test]
    fn a_bridge_that_goes_down_is_not_waited_for_and_not_counted() {
        let now = Instant::now();
        let mut r = three_and_bridge(now);
        r.set_remote_servers("/", 4);
        let out = request(&mut r, 1, false, now);
        assert!(out.iter().any(|(to, _)| *to == 99), "the bridge is asked");
        let out = headers(&r.set_bridge_up(99, false, now));
        assert!(out.contains(&(1, Header::Departed { req: 9, node: 99 })));
        let out = count_query(&mut r, 1, 2, now);
        assert_eq!(out, vec![(1, Header::Count { req: 2, count: 3 })]);
        // Down, it is asked nothing; heartbeats of nobody revive it.
        let out = request(&mut r, 1, false, now);
        assert!(out.iter().all(|(to, _)| *to != 99));
    }

    #[test]
    fn large_payloads_are_forwarded_without_a_copy_small_ones_in_one_piece() {
        let now = Instant::now();
        let mut r = three(now);
        let publish = |payload: Bytes| Frame {
            header: Header::Publish {
                nsp: "/".into(),
                kind: 3,
                volatile: false,
                rooms: vec![],
            },
            payload,
        };
        let large = Bytes::from(vec![7u8; crate::frame::SHARE_FROM]);
        let out = r.accept(1, publish(large.clone()), now).unwrap();
        assert_eq!(out.len(), 2);
        for o in &out {
            // The very bytes that were read, not a copy.
            assert_eq!(o.bytes.payload.as_ptr(), large.as_ptr());
            let body = decode_body(o.bytes.to_bytes().slice(4..)).unwrap();
            assert_eq!(body.payload, large);
        }
        let small = Bytes::from(vec![7u8; crate::frame::SHARE_FROM - 1]);
        let out = r.accept(1, publish(small.clone()), now).unwrap();
        for o in &out {
            assert!(o.bytes.payload.is_empty());
            assert_eq!(decode_body(o.bytes.head.slice(4..)).unwrap().payload, small);
        }
    }

    #[test]
    fn publish_fans_out_to_other_members_of_the_namespace() {
        let now = Instant::now();
        let mut r = three(now);
        r.add_peer(4, 104, HB, now); // no namespace: must not receive
        let out = headers(
            &r.accept(
                1,
                frame(Header::Publish {
                    nsp: "/".into(),
                    kind: 3,
                    volatile: false,
                    rooms: vec![],
                }),
                now,
            )
            .unwrap(),
        );
        let mut to: Vec<NodeId> = out.iter().map(|(n, _)| *n).collect();
        to.sort();
        assert_eq!(to, vec![2, 3]);
        assert!(out.iter().all(|(_, h)| *h
            == Header::Message {
                nsp: "/".into(),
                from: 1,
                kind: 3
            }));
    }

    #[test]
    fn room_broadcasts_reach_only_workers_with_a_member() {
        let now = Instant::now();
        let mut r = three(now);
        let add = |r: &mut Router, n: NodeId, room: &str| {
            r.accept(
                n,
                frame(Header::RoomAdd {
                    nsp: "/".into(),
                    room: room.into(),
                }),
                now,
            )
            .unwrap();
        };
        add(&mut r, 2, "\"a\"");
        add(&mut r, 3, "1");
        add(&mut r, 3, "\"a\"");
        r.accept(
            3,
            frame(Header::RoomDel {
                nsp: "/".into(),
                room: "\"a\"".into(),
            }),
            now,
        )
        .unwrap();
        let publish = |r: &mut Router, rooms: Vec<String>| -> Vec<NodeId> {
            let out = r
                .accept(
                    1,
                    frame(Header::Publish {
                        nsp: "/".into(),
                        kind: 3,
                        volatile: false,
                        rooms,
                    }),
                    now,
                )
                .unwrap();
            let mut v: Vec<NodeId> = out.iter().map(|o| o.to).collect();
            v.sort();
            v
        };
        assert_eq!(publish(&mut r, vec!["\"a\"".into()]), vec![2]);
        // The number room 1 is not the string room "1".
        assert_eq!(publish(&mut r, vec!["\"1\"".into()]), Vec::<NodeId>::new());
        assert_eq!(
            publish(&mut r, vec!["1".into(), "\"a\"".into()]),
            vec![2, 3]
        );
        assert_eq!(publish(&mut r, vec![]), vec![2, 3]);
    }

    #[test]
    fn request_completes_when_every_node_answered_and_replies_are_unicast() {
        let now = Instant::now();
        let mut r = three(now);
        let out = request(&mut r, 1, false, now);
        // No Accepted frame for ordinary requests: only the forwarded requests.
        assert!(out
            .iter()
            .all(|(to, h)| *to != 1 && matches!(h, Header::Incoming { .. })));
        let id = incoming_id(&out);
        let a = headers(
            &r.accept(2, frame(Header::Respond { id, last: true }), now)
                .unwrap(),
        );
        assert_eq!(
            a,
            vec![(
                1,
                Header::Reply {
                    req: 9,
                    from: 2,
                    last: true,
                    done: false
                }
            )]
        );
        let b = headers(
            &r.accept(3, frame(Header::Respond { id, last: true }), now)
                .unwrap(),
        );
        // The last answer carries the completion itself.
        assert_eq!(
            b,
            vec![(
                1,
                Header::Reply {
                    req: 9,
                    from: 3,
                    last: true,
                    done: true
                }
            )]
        );
        assert_eq!(r.pending_requests(), 0);
    }

    #[test]
    fn broadcasts_with_acks_learn_how_many_nodes_were_asked() {
        let now = Instant::now();
        let mut r = three(now);
        let out = request(&mut r, 1, true, now);
        assert_eq!(
            out[0],
            (
                1,
                Header::Accepted {
                    req: 9,
                    expected: 2
                }
            )
        );
    }

    #[test]
    fn a_worker_leaving_settles_pending_requests_at_once() {
        let now = Instant::now();
        let mut r = three(now);
        let id = incoming_id(&request(&mut r, 1, false, now));
        r.accept(2, frame(Header::Respond { id, last: true }), now)
            .unwrap();
        let out = headers(&r.remove_peer(3, now));
        assert_eq!(
            out,
            vec![
                (1, Header::Departed { req: 9, node: 3 }),
                (1, Header::Done { req: 9 })
            ]
        );
        assert_eq!(r.pending_requests(), 0);
        assert_eq!(r.count("/"), 2);
    }

    #[test]
    fn requests_of_a_departed_requester_are_dropped() {
        let now = Instant::now();
        let mut r = three(now);
        request(&mut r, 1, false, now);
        r.remove_peer(1, now);
        assert_eq!(r.pending_requests(), 0);
    }

    #[test]
    fn unregister_leaves_only_that_namespace() {
        let now = Instant::now();
        let mut r = three(now);
        r.accept(3, frame(Header::Register { nsp: "/b".into() }), now)
            .unwrap();
        request(&mut r, 1, false, now);
        let out = headers(
            &r.accept(3, frame(Header::Unregister { nsp: "/b".into() }), now)
                .unwrap(),
        );
        assert!(out.is_empty(), "request on / must still wait for 3");
        let out = headers(
            &r.accept(3, frame(Header::Unregister { nsp: "/".into() }), now)
                .unwrap(),
        );
        assert_eq!(out, vec![(1, Header::Departed { req: 9, node: 3 })]);
    }

    #[test]
    fn deadline_reports_missing_nodes() {
        let now = Instant::now();
        let mut r = three(now);
        let id = incoming_id(&request(&mut r, 1, false, now));
        r.accept(2, frame(Header::Respond { id, last: true }), now)
            .unwrap();
        assert!(r.tick(now + Duration::from_millis(999)).is_empty());
        let out = headers(&r.tick(now + Duration::from_millis(1000)));
        assert_eq!(
            out,
            vec![(
                1,
                Header::TimedOut {
                    req: 9,
                    missing: 1,
                    pids: vec![103]
                }
            )]
        );
        // A late answer is counted and dropped, never forwarded.
        assert!(r
            .accept(3, frame(Header::Respond { id, last: true }), now)
            .unwrap()
            .is_empty());
        assert_eq!(r.stats().late_responses, 1);
    }

    #[test]
    fn kept_requests_forward_late_acks_until_their_deadline() {
        let now = Instant::now();
        let mut r = three(now);
        let id = incoming_id(&request(&mut r, 1, true, now));
        for _ in 0..3 {
            let out = r
                .accept(2, frame(Header::Respond { id, last: false }), now)
                .unwrap();
            assert_eq!(out.len(), 1);
        }
        let out = headers(&r.remove_peer(3, now));
        assert_eq!(out[0], (1, Header::Departed { req: 9, node: 3 }));
        // Node 2 never said "last", so the kept request times out at its deadline.
        let out = headers(&r.tick(now + Duration::from_secs(2)));
        assert_eq!(
            out,
            vec![(
                1,
                Header::TimedOut {
                    req: 9,
                    missing: 1,
                    pids: vec![102]
                }
            )]
        );
    }

    #[test]
    fn silent_workers_are_not_counted_until_they_speak_again() {
        let now = Instant::now();
        let mut r = three(now);
        let later = now + Duration::from_millis(9_500);
        for n in [1, 2] {
            r.accept(n, frame(Header::Heartbeat), later).unwrap();
        }
        let id = incoming_id(&request(&mut r, 1, false, later));
        r.accept(2, frame(Header::Respond { id, last: true }), later)
            .unwrap();
        let t = now + HB + Duration::from_millis(2);
        assert!(r.next_deadline().unwrap() <= t);
        let out = headers(&r.tick(t));
        assert_eq!(
            out,
            vec![
                (1, Header::Departed { req: 9, node: 3 }),
                (1, Header::Done { req: 9 })
            ]
        );
        assert_eq!(r.count("/"), 2);
        r.accept(3, frame(Header::Heartbeat), t).unwrap();
        assert_eq!(r.count("/"), 3);
    }

    #[test]
    fn request_with_nobody_else_is_done_immediately() {
        let now = Instant::now();
        let mut r = Router::new();
        r.add_peer(1, 1, HB, now);
        r.accept(1, frame(Header::Register { nsp: "/".into() }), now)
            .unwrap();
        let out = request(&mut r, 1, false, now);
        assert_eq!(out, vec![(1, Header::Done { req: 9 })]);
        let out = count_query(&mut r, 1, 2, now);
        assert_eq!(out, vec![(1, Header::Count { req: 2, count: 1 })]);
    }

    #[test]
    fn an_emitter_serving_no_namespace_is_not_counted_as_a_server() {
        let now = Instant::now();
        let mut r = Router::new();
        r.add_peer(1, 1, HB, now);
        r.add_peer(2, 2, HB, now);
        r.accept(1, frame(Header::Register { nsp: "/".into() }), now)
            .unwrap();
        let ask = |r: &mut Router, from| count_query(r, from, 2, now);
        assert_eq!(
            ask(&mut r, 2),
            vec![(2, Header::Count { req: 2, count: 1 })]
        );
        assert_eq!(
            ask(&mut r, 1),
            vec![(1, Header::Count { req: 2, count: 1 })]
        );
    }

    #[test]
    fn a_worker_restoring_a_socket_gets_every_recoverable_broadcast_until_it_is_done() {
        let now = Instant::now();
        let mut r = Router::new();
        for n in [1, 2] {
            r.add_peer(n, n, HB, now);
            r.accept(n, frame(Header::Register { nsp: "/".into() }), now)
                .unwrap();
            r.accept(
                n,
                frame(Header::Recovery {
                    nsp: "/".into(),
                    max_disconnection_ms: 60_000,
                }),
                now,
            )
            .unwrap();
        }
        let record = |r: &mut Router, offset: &str| {
            headers(
                &r.accept(
                    1,
                    frame(Header::Record {
                        nsp: "/".into(),
                        rooms: vec!["\"room\"".into()],
                        offset: offset.into(),
                    }),
                    now,
                )
                .unwrap(),
            )
        };
        let to_two = |out: &[(NodeId, Header)]| {
            out.iter()
                .any(|(n, h)| *n == 2 && matches!(h, Header::Message { .. }))
        };
        assert!(!to_two(&record(&mut r, "a")), "no member of the room at 2");
        r.accept(
            2,
            Frame {
                header: Header::SessionSave {
                    nsp: "/".into(),
                    pid: "p".into(),
                },
                payload: Bytes::from_static(b"session"),
            },
            now,
        )
        .unwrap();
        let restore = Header::Restore {
            req: 1,
            nsp: "/".into(),
            pid: "p".into(),
            offset: "a".into(),
        };
        let out = headers(&r.accept(2, frame(restore), now).unwrap());
        assert_eq!(out, vec![(2, Header::Restored { req: 1, outcome: 0 })]);
        assert!(
            to_two(&record(&mut r, "b")),
            "restoring: everything goes to 2"
        );
        r.accept(2, frame(Header::RestoreDone { nsp: "/".into() }), now)
            .unwrap();
        assert!(!to_two(&record(&mut r, "c")), "done: rooms decide again");
    }

    #[test]
    fn hub_frames_from_a_worker_are_a_protocol_error() {
        let now = Instant::now();
        let mut r = three(now);
        assert!(r.accept(1, frame(Header::Done { req: 1 }), now).is_err());
    }

    fn publish_to(rooms: &[&str]) -> Frame {
        frame(Header::Publish {
            nsp: "/".into(),
            kind: 3,
            volatile: false,
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        })
    }

    fn room_add(room: &str) -> Frame {
        frame(Header::RoomAdd {
            nsp: "/".into(),
            room: room.into(),
        })
    }

    fn sorted_targets(out: &[Out]) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = out.iter().map(|o| o.to).collect();
        v.sort();
        v
    }

    #[test]
    fn frames_sent_during_a_hold_are_parked_then_routed_behind_the_new_fences() {
        let now = Instant::now();
        let mut r = three(now);
        r.hold(now);
        // Worker 1 reacts to its message before the primary has sent worker
        // 2 the one telling it to join the room.
        assert!(r.accept(1, publish_to(&["\"x\""]), now).unwrap().is_empty());
        assert_eq!(r.release_hold(&[102, 101, 999]), vec![1, 1, 0]);
        // Parked: nothing goes out yet, and worker 2 is behind its fence.
        assert!(r.unpark(now).is_empty());
        // Worker 2 handles the message (joins), then acknowledges the fence.
        assert!(r.accept(2, room_add("\"x\""), now).unwrap().is_empty());
        let out = r
            .accept(2, frame(Header::FenceAck { seq: 1 }), now)
            .unwrap();
        assert_eq!(sorted_targets(&out), vec![2]);
        assert!(r.stats().fenced_frames >= 1);
        // Worker 1's own fence does not hold up the others.
        let out = r.accept(2, publish_to(&[]), now).unwrap();
        assert_eq!(sorted_targets(&out), vec![3]);
        let out = r
            .accept(1, frame(Header::FenceAck { seq: 1 }), now)
            .unwrap();
        assert_eq!(sorted_targets(&out), vec![1]);
    }

    #[test]
    fn frames_arriving_while_parked_frames_wait_keep_their_order() {
        let now = Instant::now();
        let mut r = three(now);
        r.hold(now);
        r.accept(1, publish_to(&[]), now).unwrap();
        r.release_hold(&[]);
        // The hub thread has not unparked yet: this one queues behind.
        assert!(r.accept(2, publish_to(&[]), now).unwrap().is_empty());
        assert!(r.can_unpark());
        let out = headers(&r.unpark(now));
        let from: Vec<NodeId> = out
            .iter()
            .map(|(_, h)| match h {
                Header::Message { from, .. } => *from,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(from, vec![1, 1, 2, 2]);
        assert!(!r.can_unpark());
    }

    #[test]
    fn a_worker_behind_a_fence_is_asked_only_if_it_joined_the_room_by_then() {
        let now = Instant::now();
        let mut r = three(now);
        r.hold(now);
        r.release_hold(&[102, 103]);
        let out = headers(
            &r.accept(
                1,
                frame(Header::Request {
                    req: 9,
                    nsp: "/".into(),
                    kind: 7,
                    timeout_ms: 1000,
                    keep: true,
                    rooms: vec!["\"x\"".into()],
                }),
                now,
            )
            .unwrap(),
        );
        // Both are counted (tentatively) for socket.io's serverCount().
        assert_eq!(
            out,
            vec![(
                1,
                Header::Accepted {
                    req: 9,
                    expected: 2
                }
            )]
        );
        r.accept(2, room_add("\"x\""), now).unwrap();
        let out = headers(
            &r.accept(2, frame(Header::FenceAck { seq: 1 }), now)
                .unwrap(),
        );
        assert!(matches!(out[..], [(2, Header::Incoming { .. })]), "{out:?}");
        let id = incoming_id(&out);
        // Worker 3 never joined: the request stops waiting for it.
        let out = headers(
            &r.accept(3, frame(Header::FenceAck { seq: 1 }), now)
                .unwrap(),
        );
        assert_eq!(out, vec![(1, Header::Departed { req: 9, node: 3 })]);
        let out = headers(
            &r.accept(2, frame(Header::Respond { id, last: true }), now)
                .unwrap(),
        );
        assert!(
            matches!(out[..], [(1, Header::Reply { done: true, .. })]),
            "{out:?}"
        );
    }

    #[test]
    fn answers_to_a_worker_behind_a_fence_wait_for_it_too() {
        let now = Instant::now();
        let mut r = three(now);
        let id = incoming_id(&request(&mut r, 1, false, now));
        r.hold(now);
        r.release_hold(&[101]);
        assert!(r
            .accept(2, frame(Header::Respond { id, last: true }), now)
            .unwrap()
            .is_empty());
        assert!(r.unpark(now).is_empty());
        let out = headers(
            &r.accept(1, frame(Header::FenceAck { seq: 1 }), now)
                .unwrap(),
        );
        assert!(
            matches!(out[..], [(1, Header::Reply { from: 2, .. })]),
            "{out:?}"
        );
    }

    #[test]
    fn a_fence_never_acknowledged_opens_after_the_heartbeat_timeout() {
        let now = Instant::now();
        let mut r = three(now);
        r.hold(now);
        r.release_hold(&[102]);
        r.accept(1, publish_to(&[]), now).unwrap();
        let wait = now + Duration::from_secs(1);
        let out = r.accept(1, publish_to(&[]), wait).unwrap();
        assert_eq!(sorted_targets(&out), vec![3]);
        assert_eq!(r.next_deadline(), Some(now + HB));
        let out = r.tick(now + HB);
        assert_eq!(sorted_targets(&out), vec![2, 2]);
        assert_eq!(r.stats().fence_timeouts, 1);
        // A hold the primary never releases ends too.
        for n in 1..=3 {
            r.accept(n, frame(Header::Heartbeat), now + HB).unwrap();
        }
        r.hold(now + HB);
        assert_eq!(r.next_deadline(), Some(now + HB + MAX_HOLD));
        r.accept(1, publish_to(&[]), now + HB).unwrap();
        r.tick(now + HB + MAX_HOLD);
        assert_eq!(sorted_targets(&r.unpark(now + HB + MAX_HOLD)), vec![2, 3]);
    }

    #[test]
    fn too_much_waiting_for_one_worker_opens_its_gate() {
        let now = Instant::now();
        let mut r = Router::with_deferred_limit(1000);
        for n in 1..=2 {
            r.add_peer(n, 100 + n, HB, now);
            r.accept(n, frame(Header::Register { nsp: "/".into() }), now)
                .unwrap();
        }
        r.hold(now);
        r.release_hold(&[102]);
        let big = |len: usize| Frame {
            header: Header::Publish {
                nsp: "/".into(),
                kind: 3,
                volatile: false,
                rooms: vec![],
            },
            payload: Bytes::from(vec![0u8; len]),
        };
        assert!(r.accept(1, big(600), now).unwrap().is_empty());
        let out = r.accept(1, big(600), now).unwrap();
        assert_eq!(sorted_targets(&out), vec![2, 2]);
        assert_eq!(r.stats().fence_timeouts, 1);
    }

    #[test]
    fn parked_frames_of_a_worker_that_left_do_not_start_requests() {
        let now = Instant::now();
        let mut r = three(now);
        r.hold(now);
        request(&mut r, 1, false, now);
        r.remove_peer(1, now);
        r.release_hold(&[]);
        assert!(r.unpark(now).is_empty());
        assert_eq!(r.pending_requests(), 0);
    }
}
