//! The hub's brain, free of I/O: who is connected, which namespaces each
//! worker serves, who is alive, and which requests still wait for whom.
//!
//! Every input (a frame from a worker, a worker leaving, the clock) returns the
//! frames to send as `(destination, bytes)`. The I/O layer in `hub.rs` only
//! moves those bytes, which keeps every rule here unit-testable.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::frame::{encode_out, Frame, Header, NodeId, OutFrame};

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

/// Routing table, membership and request bookkeeping.
#[derive(Debug, Default)]
pub struct Router {
    peers: HashMap<NodeId, Peer>,
    requests: HashMap<u64, Pending>,
    next_request: u64,
    stats: RouterStats,
}

/// Summary of one connected worker, for `stats()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub node: NodeId,
    pub pid: u32,
    pub alive: bool,
    pub namespaces: Vec<String>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
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
            },
        );
    }

    /// A worker's connection closed: it leaves every pending request at once.
    pub fn remove_peer(&mut self, node: NodeId) -> Vec<Out> {
        let mut out = Vec::new();
        if self.peers.remove(&node).is_none() {
            return out;
        }
        // Requests this worker made have nobody left to answer to.
        self.requests.retain(|_, p| p.requester != node);
        self.depart(node, None, &mut out);
        out
    }

    /// Handles one frame from `from`. An `Err` is a protocol violation: the
    /// caller drops the connection with that reason.
    pub fn on_frame(
        &mut self,
        from: NodeId,
        frame: Frame,
        now: Instant,
    ) -> Result<Vec<Out>, String> {
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
                    self.depart(from, Some(&nsp), &mut out);
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
                let bytes = encode_out(
                    &Header::Message {
                        nsp: nsp.clone(),
                        from,
                        kind,
                    },
                    frame.payload.clone(),
                );
                for to in self.members(&nsp, from, false, &rooms) {
                    out.push(Out {
                        to,
                        bytes: bytes.clone(),
                        class,
                    });
                }
            }
            Header::Request {
                req,
                nsp,
                kind,
                timeout_ms,
                keep,
                rooms,
            } => {
                self.stats.requests += 1;
                let waiting: HashSet<NodeId> =
                    self.members(&nsp, from, true, &rooms).into_iter().collect();
                // Only broadcasts with acks need the count up front (for
                // socket.io's serverCount()); others save the frame.
                if keep {
                    out.push(control(
                        from,
                        &Header::Accepted {
                            req,
                            expected: waiting.len() as u32,
                        },
                    ));
                }
                if waiting.is_empty() {
                    out.push(control(from, &Header::Done { req }));
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
                        frame.payload.clone(),
                    );
                    for to in &waiting {
                        out.push(Out {
                            to: *to,
                            bytes: bytes.clone(),
                            class: Class::Data,
                        });
                    }
                    self.requests.insert(
                        id,
                        Pending {
                            requester: from,
                            req,
                            nsp,
                            waiting,
                            deadline: now + Duration::from_millis(u64::from(timeout_ms)),
                            keep,
                        },
                    );
                }
            }
            Header::Respond { id, last } => {
                let Some(p) = self.requests.get_mut(&id) else {
                    self.stats.late_responses += 1;
                    return Ok(out);
                };
                // The answer that completes the request says so itself: one
                // frame back to the requester instead of two.
                let done = last && p.waiting.remove(&from) && p.waiting.is_empty();
                out.push(Out {
                    to: p.requester,
                    bytes: encode_out(
                        &Header::Reply {
                            req: p.req,
                            from,
                            last,
                            done,
                        },
                        frame.payload.clone(),
                    ),
                    // Never drop the frame that completes a request.
                    class: if done { Class::Control } else { Class::Data },
                });
                if done && !p.keep {
                    self.requests.remove(&id);
                }
            }
            Header::Heartbeat => {}
            Header::CountQuery { req, nsp } => {
                let count = 1 + self.members(&nsp, from, true, &[]).len() as u32;
                out.push(control(from, &Header::Count { req, count }));
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
            other => return Err(format!("unexpected frame from a worker: {other:?}")),
        }
        self.count_out(&out);
        Ok(out)
    }

    /// Applies deadlines and heartbeat timeouts that passed at `now`.
    pub fn tick(&mut self, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
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
                    out.push(control(
                        p.requester,
                        &Header::TimedOut {
                            req: p.req,
                            missing: p.waiting.len() as u32,
                            pids,
                        },
                    ));
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
            }
            self.depart(node, None, &mut out);
        }
        self.count_out(&out);
        out
    }

    /// The earliest instant at which [`Router::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let requests = self.requests.values().map(|p| p.deadline);
        let peers = self
            .peers
            .values()
            .filter(|p| p.alive)
            .map(|p| p.last_seen + p.heartbeat_timeout + Duration::from_millis(1));
        requests.chain(peers).min()
    }

    /// Live workers that serve `nsp`, for `serverCount()`.
    pub fn count(&self, nsp: &str) -> usize {
        self.peers
            .values()
            .filter(|p| p.alive && p.nsps.contains_key(nsp))
            .count()
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
            p.alive = true;
        }
    }

    /// Other workers serving `nsp`; with `alive_only`, only those not silent;
    /// with `rooms`, only those with a local member in one of them.
    fn members(
        &self,
        nsp: &str,
        except: NodeId,
        alive_only: bool,
        rooms: &[String],
    ) -> Vec<NodeId> {
        self.peers
            .iter()
            .filter(|(n, p)| {
                **n != except
                    && (p.alive || !alive_only)
                    && p.nsps.contains_key(nsp)
                    && (rooms.is_empty()
                        || p.rooms
                            .get(nsp)
                            .is_some_and(|set| rooms.iter().any(|r| set.contains(r))))
            })
            .map(|(n, _)| *n)
            .collect()
    }

    /// `node` stops being waited for, by every request (or only those of `nsp`).
    fn depart(&mut self, node: NodeId, nsp: Option<&str>, out: &mut Vec<Out>) {
        let mut finished = Vec::new();
        for (id, p) in self.requests.iter_mut() {
            if nsp.is_some_and(|n| n != p.nsp) || !p.waiting.remove(&node) {
                continue;
            }
            self.stats.departures += 1;
            out.push(control(p.requester, &Header::Departed { req: p.req, node }));
            if p.waiting.is_empty() {
                out.push(control(p.requester, &Header::Done { req: p.req }));
                if !p.keep {
                    finished.push(*id);
                }
            }
        }
        for id in finished {
            self.requests.remove(&id);
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
            r.on_frame(n, frame(Header::Register { nsp: "/".into() }), now)
                .unwrap();
        }
        r
    }

    fn request(r: &mut Router, from: NodeId, keep: bool, now: Instant) -> Vec<(NodeId, Header)> {
        headers(
            &r.on_frame(
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

    fn incoming_id(out: &[(NodeId, Header)]) -> u64 {
        out.iter()
            .find_map(|(_, h)| match h {
                Header::Incoming { id, .. } => Some(*id),
                _ => None,
            })
            .unwrap()
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
        let out = r.on_frame(1, publish(large.clone()), now).unwrap();
        assert_eq!(out.len(), 2);
        for o in &out {
            // The very bytes that were read, not a copy.
            assert_eq!(o.bytes.payload.as_ptr(), large.as_ptr());
            let body = decode_body(o.bytes.to_bytes().slice(4..)).unwrap();
            assert_eq!(body.payload, large);
        }
        let small = Bytes::from(vec![7u8; crate::frame::SHARE_FROM - 1]);
        let out = r.on_frame(1, publish(small.clone()), now).unwrap();
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
            &r.on_frame(
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
            r.on_frame(
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
        r.on_frame(
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
                .on_frame(
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
            &r.on_frame(2, frame(Header::Respond { id, last: true }), now)
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
            &r.on_frame(3, frame(Header::Respond { id, last: true }), now)
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
        r.on_frame(2, frame(Header::Respond { id, last: true }), now)
            .unwrap();
        let out = headers(&r.remove_peer(3));
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
        r.remove_peer(1);
        assert_eq!(r.pending_requests(), 0);
    }

    #[test]
    fn unregister_leaves_only_that_namespace() {
        let now = Instant::now();
        let mut r = three(now);
        r.on_frame(3, frame(Header::Register { nsp: "/b".into() }), now)
            .unwrap();
        request(&mut r, 1, false, now);
        let out = headers(
            &r.on_frame(3, frame(Header::Unregister { nsp: "/b".into() }), now)
                .unwrap(),
        );
        assert!(out.is_empty(), "request on / must still wait for 3");
        let out = headers(
            &r.on_frame(3, frame(Header::Unregister { nsp: "/".into() }), now)
                .unwrap(),
        );
        assert_eq!(out, vec![(1, Header::Departed { req: 9, node: 3 })]);
    }

    #[test]
    fn deadline_reports_missing_nodes() {
        let now = Instant::now();
        let mut r = three(now);
        let id = incoming_id(&request(&mut r, 1, false, now));
        r.on_frame(2, frame(Header::Respond { id, last: true }), now)
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
            .on_frame(3, frame(Header::Respond { id, last: true }), now)
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
                .on_frame(2, frame(Header::Respond { id, last: false }), now)
                .unwrap();
            assert_eq!(out.len(), 1);
        }
        let out = headers(&r.remove_peer(3));
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
            r.on_frame(n, frame(Header::Heartbeat), later).unwrap();
        }
        let id = incoming_id(&request(&mut r, 1, false, later));
        r.on_frame(2, frame(Header::Respond { id, last: true }), later)
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
        r.on_frame(3, frame(Header::Heartbeat), t).unwrap();
        assert_eq!(r.count("/"), 3);
    }

    #[test]
    fn request_with_nobody_else_is_done_immediately() {
        let now = Instant::now();
        let mut r = Router::new();
        r.add_peer(1, 1, HB, now);
        r.on_frame(1, frame(Header::Register { nsp: "/".into() }), now)
            .unwrap();
        let out = request(&mut r, 1, false, now);
        assert_eq!(out, vec![(1, Header::Done { req: 9 })]);
        let out = headers(
            &r.on_frame(
                1,
                frame(Header::CountQuery {
                    req: 2,
                    nsp: "/".into(),
                }),
                now,
            )
            .unwrap(),
        );
        assert_eq!(out, vec![(1, Header::Count { req: 2, count: 1 })]);
    }

    #[test]
    fn hub_frames_from_a_worker_are_a_protocol_error() {
        let now = Instant::now();
        let mut r = three(now);
        assert!(r.on_frame(1, frame(Header::Done { req: 1 }), now).is_err());
    }
}
