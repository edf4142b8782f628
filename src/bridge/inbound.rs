//! What other hosts send this one: broadcasts and room operations become hub
//! messages for this host's workers; requests become hub requests, whose
//! answers the bridge combines into one answer for the host (the stock
//! adapter counts this host as one server: one subscriber).

use std::collections::HashMap;

use bytes::Bytes;
use rmpv::Value;
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use super::msgpack::{from_msgpack, to_msgpack};
use super::packet::{self, Part};
use super::stats::bump;
use super::stock::{self, kind};
use super::workers::{hub_kind, parts_payload, worker_json};
use super::ws::to_ws_frames;
use super::Bridge;
use crate::frame::{split_parts, Header, NodeId};

/// What a request of another host collects from this host's workers.
enum Asked {
    /// Answers do not matter (a join: the stock adapter expects none).
    Nothing,
    Fetch {
        sockets: Vec<Json>,
    },
    AllRooms {
        rooms: Vec<Json>,
    },
    /// `serverSideEmit()` with an ack. A stock server counts this host as
    /// one server, so the first answer is the host's; another bridge counts
    /// its workers and gets every answer (`every`).
    ServerSide {
        answered: bool,
        every: bool,
    },
    /// `broadcastWithAck()`: acks go on as they come, the client count once
    /// every worker's is known (a departed worker counts its acks so far).
    Ack {
        expected: Option<u32>,
        counts: HashMap<NodeId, u64>,
        acks: HashMap<NodeId, u64>,
        count_sent: bool,
    },
}

/// A request of another host as it goes to this host's workers.
struct Ask {
    asked: Asked,
    /// The hub request's kind, rooms and parts.
    kind: u8,
    rooms: Vec<Value>,
    parts: Vec<Vec<u8>>,
    keep: bool,
    /// Milliseconds, when the request says (else `requestsTimeout`).
    timeout: Option<u64>,
}

impl Ask {
    fn new(asked: Asked, kind: u8, rooms: Vec<Value>, part: Vec<u8>) -> Ask {
        Ask {
            asked,
            kind,
            rooms,
            parts: vec![part],
            keep: false,
            timeout: None,
        }
    }
}

struct Inbound {
    nsp: String,
    request_id: String,
    asked: Asked,
    deadline: Instant,
}

/// Requests of other hosts that this host's workers answer, by hub `req`.
#[derive(Default)]
pub(super) struct Requests {
    by_req: HashMap<u32, Inbound>,
    next: u32,
}

impl Requests {
    pub(super) fn clear(&mut self) {
        self.by_req.clear();
    }

    pub(super) fn sweep(&mut self, now: Instant) {
        // The router ends every request by its deadline; this is a backstop.
        self.by_req.retain(|_, i| i.deadline > now);
    }

    pub(super) fn next_req(&mut self) -> u32 {
        self.next = self.next.wrapping_add(1);
        self.next
    }
}

/// The hub's options of a room operation (lib/codec.js `encodeOptions`)
/// from the stock adapter's.
fn hub_opts(opts: &Value) -> Json {
    let list = |name| stock::get(opts, name).map_or_else(|| json!([]), stock::to_json);
    json!({ "rooms": list("rooms"), "except": list("except"), "flags": {} })
}

/// Options the stock adapter would not throw on: a map, whose rooms and
/// except, when present, are lists.
fn valid_opts(opts: &Value) -> bool {
    opts.is_map()
        && ["rooms", "except"]
            .iter()
            .filter_map(|k| stock::get(opts, k))
            .all(Value::is_array)
}

fn rooms_of(opts: &Value) -> Vec<Value> {
    stock::get(opts, "rooms")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn kinds_of(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|p| match p {
            Part::Text(_) => 's',
            Part::Binary(_) => 'b',
        })
        .collect()
}

impl Bridge {
    /// A message from Redis.
    pub(super) fn on_redis(&mut self, msg: &redis::Msg) {
        bump(&self.stats.received);
        let channel = msg.get_channel_name();
        let payload = msg.get_payload_bytes();
        let mut target = None;
        for (nsp, s) in &self.served {
            let c = &s.channels;
            if msg.from_pattern() {
                if channel.starts_with(&c.broadcast) {
                    // The longest prefix wins ("/a" and "/a#b" both match "k#/a#b#").
                    if target
                        .as_ref()
                        .is_none_or(|(n, _): &(String, bool)| n.len() < nsp.len())
                    {
                        target = Some((nsp.clone(), true));
                    }
                }
            } else if channel == c.request {
                target = Some((nsp.clone(), false));
                break;
            } else if channel == c.response || channel == c.own_response {
                return self.on_response(payload);
            }
        }
        match target {
            Some((nsp, true)) => self.on_broadcast(&nsp, payload),
            Some((nsp, false)) => self.on_request(&nsp, payload),
            None => {} // a servers channel, or a namespace just left
        }
    }

    /// A broadcast of another host (msgpack `[uid, packet, opts]`).
    fn on_broadcast(&mut self, nsp: &str, payload: &[u8]) {
        let Some((uid, p, opts)) = from_msgpack(payload).ok().and_then(|v| {
            let a = v.as_array()?;
            let uid = a.first()?.as_str()?.to_owned();
            let p = packet::packet_from_value(a.get(1)?).ok()?;
            let opts = a.get(2).filter(|o| valid_opts(o))?;
            Some((uid, p, opts.clone()))
        }) else {
            bump(&self.stats.malformed);
            return;
        };
        if uid == self.uid || p.nsp != nsp {
            return;
        }
        let flags = stock::get(&opts, "flags").cloned().unwrap_or(Value::Nil);
        let volatile = stock::get(&flags, "volatile").and_then(Value::as_bool) == Some(true);
        let compress = stock::get(&flags, "compress").and_then(Value::as_bool);
        let mut p = p;
        // In a namespace with connection state recovery a broadcast (an
        // event, not volatile) gets an offset of this host and is logged, so
        // that a client that missed it gets it on reconnection, as from a
        // worker of this host.
        let offset = (self.recovering.contains(nsp) && p.kind == 2 && p.id.is_none() && !volatile)
            .then(|| self.next_offset());
        if let (Some(offset), Value::Array(data)) = (&offset, &mut p.data) {
            data.push(Value::from(offset.as_str()));
        }
        let parts = packet::encode(&p);
        let mut hub_opts = hub_opts(&opts);
        hub_opts["flags"] = stock::to_json(&flags);
        if !hub_opts["flags"].is_object() {
            hub_opts["flags"] = json!({});
        }
        let meta = json!([hub_opts, u8::from(volatile), compress, kinds_of(&parts)]);
        let meta = stock::json_bytes(&meta);
        let frames = to_ws_frames(&parts);
        let mut all: Vec<&[u8]> = vec![&meta];
        all.extend(frames.iter().map(|f| f.as_ref()));
        let rooms = stock::room_keys(&rooms_of(&opts));
        let nsp = nsp.to_owned();
        let header = match offset {
            Some(offset) => Header::Record { nsp, rooms, offset },
            None => Header::Publish {
                nsp,
                kind: hub_kind::BROADCAST,
                volatile,
                rooms,
            },
        };
        self.port.send(header, parts_payload(&all));
    }

    /// A recovery offset no other server makes: this bridge's uid and a
    /// sequence number (workers use their adapter's uid the same way).
    fn next_offset(&mut self) -> String {
        self.offsets += 1;
        format!("{}-{:x}", self.uid, self.offsets)
    }

    /// A request of another host (JSON, or msgpack for broadcasts with acks).
    fn on_request(&mut self, nsp: &str, payload: &[u8]) {
        let Ok(r) = stock::decode(payload) else {
            bump(&self.stats.malformed);
            return;
        };
        let field = |name| stock::get(&r, name);
        if field("uid").and_then(Value::as_str) == Some(self.uid.as_str()) {
            return;
        }
        let Some(t) = field("type").and_then(Value::as_u64) else {
            bump(&self.stats.malformed);
            return;
        };
        let request_id = field("requestId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let opts = field("opts");
        if opts.is_some_and(|o| !valid_opts(o)) {
            bump(&self.stats.malformed);
            return;
        }
        let publish = |b: &mut Bridge, kind, rooms: &[Value], part: Json| {
            let header = Header::Publish {
                nsp: nsp.to_owned(),
                kind,
                volatile: false,
                rooms: stock::room_keys(rooms),
            };
            b.port
                .send(header, parts_payload(&[&stock::json_bytes(&part)]));
        };
        let rooms_json = field("rooms").map_or(Json::Null, stock::to_json);
        let joins_or_leaves =
            t == u64::from(kind::REMOTE_JOIN) || t == u64::from(kind::REMOTE_LEAVE);
        if joins_or_leaves && opts.is_some() && !rooms_json.is_array() {
            bump(&self.stats.malformed);
            return;
        }
        let t = u8::try_from(t).unwrap_or(u8::MAX);
        let ask = match (t, opts, &request_id) {
            (kind::REMOTE_LEAVE, Some(o), _) => {
                let m = json!({ "opts": hub_opts(o), "rooms": rooms_json });
                return publish(self, hub_kind::SOCKETS_LEAVE, &rooms_of(o), m);
            }
            (kind::REMOTE_DISCONNECT, Some(o), _) => {
                let close = field("close").map_or(Json::Bool(false), stock::to_json);
                let m = json!({ "opts": hub_opts(o), "close": close });
                return publish(self, hub_kind::DISCONNECT_SOCKETS, &rooms_of(o), m);
            }
            (kind::SERVER_SIDE_EMIT, _, None) => {
                let data = field("data").map_or(Json::Null, stock::to_json);
                if !data.is_array() {
                    bump(&self.stats.malformed);
                    return;
                }
                return publish(self, hub_kind::SERVER_SIDE_EMIT, &[], data);
            }
            (kind::REMOTE_JOIN, Some(o), _) => {
                let m = json!({ "opts": hub_opts(o), "rooms": rooms_json });
                let part = stock::json_bytes(&m);
                Ask::new(Asked::Nothing, hub_kind::SOCKETS_JOIN, rooms_of(o), part)
            }
            (kind::SERVER_SIDE_EMIT, _, Some(_)) => {
                let data = field("data").map_or(Json::Null, stock::to_json);
                if !data.is_array() {
                    bump(&self.stats.malformed);
                    return;
                }
                let uid = field("uid").and_then(Value::as_str).unwrap_or_default();
                let asked = Asked::ServerSide {
                    answered: false,
                    every: self.is_bridge(nsp, uid),
                };
                Ask::new(
                    asked,
                    hub_kind::SERVER_SIDE_EMIT,
                    vec![],
                    stock::json_bytes(&data),
                )
            }
            (kind::REMOTE_FETCH, Some(o), Some(_)) => {
                let asked = Asked::Fetch { sockets: vec![] };
                let part = stock::json_bytes(&hub_opts(o));
                Ask::new(asked, hub_kind::FETCH_SOCKETS, rooms_of(o), part)
            }
            (kind::ALL_ROOMS, _, Some(_)) => {
                let asked = Asked::AllRooms { rooms: vec![] };
                Ask::new(asked, hub_kind::ROOM_QUERY, vec![], b"{}".to_vec())
            }
            (kind::BROADCAST, Some(o), Some(_)) => {
                let Some(p) = field("packet").and_then(|p| packet::packet_from_value(p).ok())
                else {
                    bump(&self.stats.malformed);
                    return;
                };
                let encoded = packet::encode(&p);
                let flags = stock::get(o, "flags").map_or(json!({}), stock::to_json);
                let timeout = flags.get("timeout").and_then(Json::as_u64);
                let mut hub_opts = hub_opts(o);
                hub_opts["flags"] = flags;
                let meta = stock::json_bytes(&json!([hub_opts, kinds_of(&encoded)]));
                let asked = Asked::Ack {
                    expected: None,
                    counts: HashMap::new(),
                    acks: HashMap::new(),
                    count_sent: false,
                };
                let mut ask = Ask::new(asked, hub_kind::BROADCAST, rooms_of(o), meta);
                ask.parts.extend(encoded.into_iter().map(|p| match p {
                    Part::Text(s) => s.into_bytes(),
                    Part::Binary(b) => b.to_vec(),
                }));
                // Open until the deadline: clients' acks trickle in.
                ask.keep = true;
                ask.timeout = timeout;
                ask
            }
            _ => {
                // Per-socket operations (`sid`), and SOCKETS, which the stock
                // adapter does not answer either.
                bump(&self.stats.unsupported);
                return;
            }
        };
        bump(&self.stats.requests_in);
        let timeout = ask.timeout.map_or(
            self.options.requests_timeout,
            std::time::Duration::from_millis,
        );
        let parts: Vec<&[u8]> = ask.parts.iter().map(Vec::as_slice).collect();
        let rooms = stock::room_keys(&ask.rooms);
        let req = self.request(nsp, ask.kind, ask.keep, rooms, &parts, timeout);
        self.inbound.by_req.insert(
            req,
            Inbound {
                nsp: nsp.to_owned(),
                request_id: request_id.unwrap_or_default(),
                asked: ask.asked,
                deadline: Instant::now() + timeout + super::TICK,
            },
        );
    }

    fn inbound_publish(&self, nsp: &str, message: Vec<u8>) {
        if let Some(c) = self.channels(nsp) {
            self.publish(c.response.clone(), message);
        }
    }

    pub(super) fn inbound_accepted(&mut self, req: u32, n: u32) {
        if let Some(Inbound {
            asked: Asked::Ack { expected, .. },
            ..
        }) = self.inbound.by_req.get_mut(&req)
        {
            *expected = Some(n);
        }
        self.ack_count(req, false);
    }

    pub(super) fn inbound_reply(&mut self, req: u32, from: NodeId, payload: Bytes) {
        let Some(i) = self.inbound.by_req.get_mut(&req) else {
            return;
        };
        let parts = split_parts(payload).unwrap_or_default();
        let Some(answer) = parts.first().and_then(|p| worker_json(p)) else {
            if !parts.is_empty() {
                bump(&self.stats.unconvertible);
            }
            return;
        };
        let (nsp, request_id) = (i.nsp.clone(), i.request_id.clone());
        match &mut i.asked {
            Asked::Nothing => {}
            Asked::Fetch { sockets } => {
                sockets.extend(answer.as_array().cloned().unwrap_or_default())
            }
            Asked::AllRooms { rooms } => {
                rooms.extend(answer.as_array().cloned().unwrap_or_default())
            }
            Asked::ServerSide { answered, every } => {
                if !*answered || *every {
                    *answered = true;
                    let r = json!({"type": kind::SERVER_SIDE_EMIT, "requestId": request_id, "data": answer});
                    self.inbound_publish(&nsp, stock::json_bytes(&r));
                }
            }
            Asked::Ack { counts, acks, .. } => {
                if let Some(c) = answer.get("c").and_then(Json::as_u64) {
                    counts.insert(from, c);
                    self.ack_count(req, false);
                } else if let Some(a) = answer.get("a") {
                    *acks.entry(from).or_default() += 1;
                    let r = stock::map(vec![
                        ("type", Value::from(kind::BROADCAST_ACK)),
                        ("requestId", Value::from(request_id.as_str())),
                        ("packet", stock::from_json(a)),
                    ]);
                    self.inbound_publish(&nsp, to_msgpack(&r));
                }
            }
        }
    }

    pub(super) fn inbound_departed(&mut self, req: u32, node: NodeId) {
        if let Some(Inbound {
            asked: Asked::Ack { counts, acks, .. },
            ..
        }) = self.inbound.by_req.get_mut(&req)
        {
            let delivered = acks.get(&node).copied().unwrap_or(0);
            counts.entry(node).or_insert(delivered);
        }
        self.ack_count(req, false);
    }

    /// Publishes the host's client count of a broadcast with acks once every
    /// worker's is known (or `now`, at the end of the request).
    fn ack_count(&mut self, req: u32, now: bool) {
        let Some(i) = self.inbound.by_req.get_mut(&req) else {
            return;
        };
        let Asked::Ack {
            expected,
            counts,
            count_sent,
            ..
        } = &mut i.asked
        else {
            return;
        };
        let complete = expected.is_some_and(|n| counts.len() >= n as usize);
        if *count_sent || !(complete || now) {
            return;
        }
        *count_sent = true;
        let r = json!({"type": kind::BROADCAST_CLIENT_COUNT, "requestId": i.request_id,
            "clientCount": counts.values().sum::<u64>()});
        let nsp = i.nsp.clone();
        self.inbound_publish(&nsp, stock::json_bytes(&r));
    }

    /// Every worker answered, or the deadline passed: the host's answer.
    pub(super) fn inbound_done(&mut self, req: u32) {
        self.ack_count(req, true);
        let Some(i) = self.inbound.by_req.remove(&req) else {
            return;
        };
        let r = match i.asked {
            Asked::Fetch { sockets } => json!({"requestId": i.request_id, "sockets": sockets}),
            Asked::AllRooms { mut rooms } => {
                rooms.sort_by_key(Json::to_string);
                rooms.dedup();
                json!({"requestId": i.request_id, "rooms": rooms})
            }
            _ => return,
        };
        self.inbound_publish(&i.nsp, stock::json_bytes(&r));
    }
}
