//! What this host's workers send other hosts: their broadcasts and room
//! operations become the stock adapter's messages on Redis, their requests
//! the stock adapter's requests, whose answers come back to the worker that
//! asked as if one more worker answered (with the other hosts' combined
//! answers, see `Asked`).

use std::collections::HashMap;

use bytes::Bytes;
use rmpv::Value;
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use super::msgpack::to_msgpack;
use super::packet::{self, Part};
use super::stats::bump;
use super::stock::{self, kind};
use super::workers::{hub_kind, worker_json};
use super::ws::from_ws_frames;
use super::Bridge;
use crate::frame::split_parts;

/// What a worker asked the other hosts, which shapes their answers for it.
enum Asked {
    /// `fetchSockets()`: each host's sockets.
    Fetch,
    /// `roomSize(room)`: asked as a fetch of the room's sockets (hosts of
    /// the stock adapter answer no room queries), answered with the count.
    RoomSize,
    /// `allRooms()`.
    AllRooms,
    /// `serverSideEmit()` with an acknowledgement: each server's answer.
    ServerSide,
    /// `broadcastWithAck()`: each host's client count, then each ack. The
    /// worker hears one client count, the sum, once every host's is in.
    Ack {
        counted: u64,
        clients: u64,
        acks: u64,
    },
}

struct Outbound {
    /// The hub request to answer.
    id: u64,
    nsp: String,
    asked: Asked,
    /// The request, published once the answering servers are counted.
    message: Option<Vec<u8>>,
    expected: Option<u64>,
    answered: u64,
    deadline: Instant,
}

/// Requests of this host's workers waiting for other hosts, by request id.
#[derive(Default)]
pub(super) struct Requests {
    by_id: HashMap<String, Outbound>,
}

impl Requests {
    pub(super) fn clear(&mut self) {
        self.by_id.clear();
    }

    pub(super) fn sweep(&mut self, now: Instant) {
        // Past its deadline the worker's own timeout settled the request.
        self.by_id.retain(|_, o| o.deadline > now);
    }
}

/// The stock adapter's `opts` of a room operation from ours (lib/codec.js
/// `encodeOptions`): rooms and except, no flags.
fn stock_opts(opts: &Json) -> Json {
    json!({
        "rooms": opts.get("rooms").cloned().unwrap_or_else(|| json!([])),
        "except": opts.get("except").cloned().unwrap_or_else(|| json!([])),
    })
}

fn rooms_of(opts: &Json) -> Vec<Value> {
    opts.get("rooms")
        .and_then(Json::as_array)
        .map(|a| a.iter().map(stock::from_json).collect())
        .unwrap_or_default()
}

impl Bridge {
    /// A message a worker published: sent on to the other hosts.
    pub(super) fn on_message(&mut self, nsp: &str, kind: u8, payload: Bytes) {
        let Some(c) = self.channels(nsp).cloned() else {
            return;
        };
        if !self.is_up() {
            bump(&self.stats.dropped_while_down);
            return;
        }
        let Ok(parts) = split_parts(payload) else {
            bump(&self.stats.unconvertible);
            return;
        };
        let first = parts.first().map(|p| p.as_ref()).unwrap_or_default();
        let request = match kind {
            hub_kind::BROADCAST => {
                match self.stock_broadcast(nsp, &parts) {
                    Some((rooms, message)) => self.publish(c.broadcast_to(&rooms), message),
                    None => bump(&self.stats.unconvertible),
                }
                return;
            }
            hub_kind::SOCKETS_LEAVE => worker_json(first).map(|m| {
                json!({"uid": self.uid, "type": kind::REMOTE_LEAVE,
                    "opts": stock_opts(&m["opts"]), "rooms": m["rooms"]})
            }),
            hub_kind::DISCONNECT_SOCKETS => worker_json(first).map(|m| {
                json!({"uid": self.uid, "type": kind::REMOTE_DISCONNECT,
                    "opts": stock_opts(&m["opts"]), "close": m["close"]})
            }),
            hub_kind::SERVER_SIDE_EMIT => worker_json(first)
                .map(|data| json!({"uid": self.uid, "type": kind::SERVER_SIDE_EMIT, "data": data})),
            _ => return,
        };
        match request {
            Some(r) => self.publish(c.request.clone(), stock::json_bytes(&r)),
            None => bump(&self.stats.unconvertible),
        }
    }

    /// The stock broadcast message of a worker's broadcast (meta part,
    /// then the packet's WebSocket frames), and its rooms.
    fn stock_broadcast(&self, nsp: &str, parts: &[Bytes]) -> Option<(Vec<Value>, Vec<u8>)> {
        let (meta, frames) = parts.split_first()?;
        let meta: Json = serde_json::from_slice(meta).ok()?;
        let opts = meta.get(0)?;
        let frames: Vec<&[u8]> = frames.iter().map(|f| f.as_ref()).collect();
        let mut p = packet::decode(&from_ws_frames(&frames).ok()?).ok()?;
        // A recoverable broadcast (lib/recovery.js `isRecoverable`: an event
        // without ack id, not volatile) ends with an offset of connection
        // state recovery, this host's own: the stock adapter sends packets
        // without it.
        let volatile = meta.get(1).and_then(Json::as_u64) == Some(1);
        if self.recovering.contains(nsp) && p.kind == 2 && p.id.is_none() && !volatile {
            if let Value::Array(data) = &mut p.data {
                data.pop();
            }
        }
        let rooms = rooms_of(opts);
        let stock_opts = stock::map(vec![
            ("rooms", Value::Array(rooms.clone())),
            (
                "except",
                stock::from_json(opts.get("except").unwrap_or(&json!([]))),
            ),
            (
                "flags",
                stock::from_json(opts.get("flags").unwrap_or(&json!({}))),
            ),
        ]);
        let message = Value::Array(vec![
            Value::from(self.uid.as_str()),
            packet::packet_to_value(&p),
            stock_opts,
        ]);
        Some((rooms, to_msgpack(&message)))
    }

    /// A request of a worker (or a `socketsJoin()`, sent as a request): to
    /// the other hosts.
    pub(super) fn on_incoming(&mut self, id: u64, nsp: &str, kind: u8, payload: Bytes) {
        let parts = split_parts(payload).unwrap_or_default();
        let first = parts.first().map(|p| p.as_ref()).unwrap_or_default();
        let request_id = stock::random_id();
        let mut deadline = self.options.requests_timeout;
        let asked = match (kind, worker_json(first)) {
            (hub_kind::SOCKETS_JOIN, Some(m)) => {
                // The stock adapter's joins are not answered: done once sent.
                if let Some(c) = self.channels(nsp) {
                    let r = json!({"uid": self.uid, "type": kind::REMOTE_JOIN,
                        "opts": stock_opts(&m["opts"]), "rooms": m["rooms"]});
                    self.publish(c.request.clone(), stock::json_bytes(&r));
                }
                return self.respond(id, true, &[]);
            }
            (hub_kind::FETCH_SOCKETS, Some(opts)) => Some((
                Asked::Fetch,
                json!({"uid": self.uid, "requestId": request_id, "type": kind::REMOTE_FETCH,
                    "opts": stock_opts(&opts)}),
            )),
            (hub_kind::ROOM_QUERY, Some(q)) => Some(match q.get("room") {
                Some(room) => (
                    Asked::RoomSize,
                    json!({"uid": self.uid, "requestId": request_id, "type": kind::REMOTE_FETCH,
                        "opts": {"rooms": [room], "except": []}}),
                ),
                None => (
                    Asked::AllRooms,
                    json!({"uid": self.uid, "requestId": request_id, "type": kind::ALL_ROOMS}),
                ),
            }),
            (hub_kind::SERVER_SIDE_EMIT, Some(data)) => Some((
                Asked::ServerSide,
                json!({"uid": self.uid, "requestId": request_id,
                    "type": kind::SERVER_SIDE_EMIT, "data": data}),
            )),
            (hub_kind::BROADCAST, _) => {
                let Some((message, timeout)) = self.stock_ack_request(&parts, &request_id) else {
                    bump(&self.stats.unconvertible);
                    return self.respond(id, true, &[br#"{"c":0}"#]);
                };
                if let Some(t) = timeout {
                    deadline = deadline.max(t);
                }
                let asked = Asked::Ack {
                    counted: 0,
                    clients: 0,
                    acks: 0,
                };
                self.wait_for_hosts(id, nsp, &request_id, asked, message, deadline);
                return;
            }
            _ => None,
        };
        match asked {
            Some((asked, r)) => {
                let message = stock::json_bytes(&r);
                self.wait_for_hosts(id, nsp, &request_id, asked, message, deadline);
            }
            None => {
                bump(&self.stats.unconvertible);
                self.respond(id, true, &[]);
            }
        }
    }

    /// The stock request of a worker's `broadcastWithAck()` (parts: JSON
    /// `[opts, kinds]`, then the encoder's output), and its timeout.
    fn stock_ack_request(
        &self,
        parts: &[Bytes],
        request_id: &str,
    ) -> Option<(Vec<u8>, Option<std::time::Duration>)> {
        let (meta, encoded) = parts.split_first()?;
        let meta: Json = serde_json::from_slice(meta).ok()?;
        let opts = meta.get(0)?;
        let kinds = meta.get(1)?.as_str()?;
        if kinds.len() != encoded.len() {
            return None;
        }
        let encoded = kinds
            .bytes()
            .zip(encoded)
            .map(|(k, b)| match k {
                b's' => std::str::from_utf8(b)
                    .ok()
                    .map(|s| Part::Text(s.to_owned())),
                _ => Some(Part::Binary(b.clone())),
            })
            .collect::<Option<Vec<_>>>()?;
        let p = packet::decode(&encoded).ok()?;
        let flags = opts.get("flags").cloned().unwrap_or_else(|| json!({}));
        let timeout = flags
            .get("timeout")
            .and_then(Json::as_f64)
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(|t| std::time::Duration::from_millis(t as u64));
        let request = stock::map(vec![
            ("uid", Value::from(self.uid.as_str())),
            ("requestId", Value::from(request_id)),
            ("type", Value::from(kind::BROADCAST)),
            ("packet", packet::packet_to_value(&p)),
            (
                "opts",
                stock::map(vec![
                    ("rooms", Value::Array(rooms_of(opts))),
                    (
                        "except",
                        stock::from_json(opts.get("except").unwrap_or(&json!([]))),
                    ),
                    ("flags", stock::from_json(&flags)),
                ]),
            ),
        ]);
        Some((to_msgpack(&request), timeout))
    }

    fn wait_for_hosts(
        &mut self,
        id: u64,
        nsp: &str,
        request_id: &str,
        asked: Asked,
        message: Vec<u8>,
        timeout: std::time::Duration,
    ) {
        bump(&self.stats.requests_out);
        self.outbound.by_id.insert(
            request_id.to_owned(),
            Outbound {
                id,
                nsp: nsp.to_owned(),
                asked,
                message: Some(message),
                expected: None,
                answered: 0,
                deadline: Instant::now() + timeout + super::TICK,
            },
        );
        self.ask_subscribers(nsp, request_id.to_owned());
    }

    /// The request channel's subscribers are counted: every one but this
    /// bridge answers (as the stock adapter counts them).
    pub(super) fn outbound_counted(&mut self, request_id: &str, subscribers: Option<u64>) {
        let Some(o) = self.outbound.by_id.get_mut(request_id) else {
            return;
        };
        let Some(subscribers) = subscribers else {
            // Redis did not answer: the worker's request times out by itself.
            self.outbound.by_id.remove(request_id);
            return;
        };
        // Other bridges answer a server-side emit once per worker (a stock
        // server would count them as one: see inbound.rs).
        let others = subscribers.saturating_sub(1);
        let expected = match o.asked {
            Asked::ServerSide => {
                let nsp = o.nsp.clone();
                self.servers_behind(&nsp, others)
            }
            _ => others,
        };
        let Some(o) = self.outbound.by_id.get_mut(request_id) else {
            return;
        };
        o.expected = Some(expected);
        if expected == 0 {
            let (id, ack) = (o.id, matches!(o.asked, Asked::Ack { .. }));
            self.outbound.by_id.remove(request_id);
            let none: &[&[u8]] = if ack { &[br#"{"c":0}"#] } else { &[] };
            return self.respond(id, true, none);
        }
        let nsp = o.nsp.clone();
        let message = o.message.take().unwrap_or_default();
        if let Some(c) = self.channels(&nsp) {
            self.publish(c.request.clone(), message);
        }
    }

    /// An answer of another host to one of this host's requests (or to
    /// someone else's: the response channel is shared).
    pub(super) fn on_response(&mut self, payload: &[u8]) {
        let Ok(r) = stock::decode(payload) else {
            bump(&self.stats.malformed);
            return;
        };
        let Some(request_id) = stock::get(&r, "requestId").and_then(Value::as_str) else {
            return;
        };
        let Some(o) = self.outbound.by_id.get_mut(request_id) else {
            return;
        };
        let expected = o.expected.unwrap_or(u64::MAX);
        let field = |name: &str| stock::get(&r, name).map(stock::to_json);
        let (answer, done) = match &mut o.asked {
            Asked::Fetch | Asked::RoomSize | Asked::AllRooms | Asked::ServerSide => {
                let answer = match o.asked {
                    Asked::Fetch => field("sockets").filter(Json::is_array),
                    Asked::RoomSize => {
                        field("sockets").and_then(|s| s.as_array().map(|a| json!(a.len())))
                    }
                    Asked::AllRooms => field("rooms").filter(Json::is_array),
                    _ => Some(field("data").unwrap_or(Json::Null)),
                };
                let Some(answer) = answer else {
                    bump(&self.stats.malformed);
                    return;
                };
                o.answered += 1;
                (answer, o.answered >= expected)
            }
            Asked::Ack {
                counted,
                clients,
                acks,
            } => match stock::get(&r, "type").and_then(Value::as_u64) {
                Some(t) if t == u64::from(kind::BROADCAST_CLIENT_COUNT) => {
                    *counted += 1;
                    *clients += stock::get(&r, "clientCount")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    if *counted < expected {
                        return;
                    }
                    (json!({ "c": *clients }), *acks >= *clients)
                }
                Some(t) if t == u64::from(kind::BROADCAST_ACK) => {
                    *acks += 1;
                    let a = field("packet").unwrap_or(Json::Null);
                    (json!({ "a": a }), *counted >= expected && *acks >= *clients)
                }
                _ => {
                    bump(&self.stats.malformed);
                    return;
                }
            },
        };
        let id = o.id;
        if done {
            self.outbound.by_id.remove(request_id);
        }
        self.respond(id, done, &[&stock::json_bytes(&answer)]);
    }
}
