//! The Redis bridge: the hub of each host as that host's only Redis client,
//! speaking the stock Redis adapter's protocol (`@socket.io/redis-adapter`
//! 8.x, classic pub/sub) for all of its workers.
//!
//! To the router the bridge is one more peer (`hub::BRIDGE_NODE`) that serves
//! every namespace a worker of this host serves and is in every room: it gets
//! what the workers publish and ask, and turns it into the stock adapter's
//! messages (`outbound.rs`); what other hosts publish and ask arrives on Redis
//! and becomes hub frames for the workers (`inbound.rs`). Broadcasts leave and
//! enter a host once, whatever its worker count; workers never see Redis.
//!
//! The other files: `connection.rs` (the connection to Redis), `served.rs`
//! (the namespaces served, the servers counted), `stats.rs`; the formats of the
//! workers (`workers.rs`) and of the stock adapter (`stock.rs`); Socket.IO
//! packets (`packet.rs`) with their msgpack (`msgpack.rs`), values and JSON as
//! JS sees them (`js.rs`, `json.rs`) and WebSocket frames (`ws.rs`).
//!
//! Redis is optional for the host: while it is unreachable the bridge is
//! down in the router (requests do not wait for it), retries with backoff,
//! and says so once per change of state.

mod connection;
mod inbound;
mod js;
mod json;
mod msgpack;
mod outbound;
mod packet;
mod served;
mod stats;
pub mod stock;
#[cfg(test)]
mod test_values;
mod workers;
mod ws;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::PubSubStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::frame::{decode_header, FrameError, Header, OutFrame};
use crate::hub::BridgePort;
use connection::{next_message, sleep_until, Connection, Report, BACKOFF_FIRST};
use served::Served;
pub use stats::{BridgeStats, BridgeStatsSnapshot};
use stock::Channels;
use workers::parts_payload;

/// How the hub reaches Redis (`setupPrimary({ redis })`).
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// A `redis://` or `unix://` URL.
    pub url: String,
    /// The channels' prefix, as the stock adapter's `key` option.
    pub key: String,
    /// How long requests of other hosts may take here, and ours there.
    pub requests_timeout: Duration,
}

/// How often servers are counted and late requests swept.
const TICK: Duration = Duration::from_secs(1);

pub(crate) struct Bridge {
    port: BridgePort,
    options: BridgeOptions,
    stats: Arc<BridgeStats>,
    uid: String,
    client: redis::Client,
    reports: mpsc::UnboundedSender<Report>,
    served: HashMap<String, Served>,
    /// Namespaces with connection state recovery (`Header::RecoveryOn`).
    recovering: std::collections::HashSet<String>,
    connection: Option<Connection>,
    stream: Option<PubSubStream>,
    generation: u64,
    connecting: bool,
    reconnect_at: Option<Instant>,
    backoff: Duration,
    /// The state last logged: a change of state is logged once.
    logged_up: Option<bool>,
    outbound: outbound::Requests,
    inbound: inbound::Requests,
    /// Recovery offsets given to other hosts' broadcasts so far.
    offsets: u64,
}

/// Runs the bridge until the hub stops.
pub(crate) async fn run(
    port: BridgePort,
    mut frames: mpsc::UnboundedReceiver<OutFrame>,
    options: BridgeOptions,
) {
    let client = match redis::Client::open(options.url.as_str()) {
        Ok(c) => c,
        Err(e) => {
            // setupPrimary() validated the URL: this is not expected.
            tracing::error!(error = %e, "bad Redis URL; the bridge does not run");
            return;
        }
    };
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let stats = port.stats.clone();
    let mut b = Bridge {
        port,
        stats,
        uid: stock::random_id(),
        client,
        reports: reports_tx,
        served: HashMap::new(),
        recovering: Default::default(),
        connection: None,
        stream: None,
        generation: 0,
        connecting: false,
        reconnect_at: None,
        backoff: BACKOFF_FIRST,
        logged_up: None,
        outbound: outbound::Requests::default(),
        inbound: inbound::Requests::default(),
        offsets: 0,
        options,
    };
    b.sync_served().await;
    b.connect();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        enum Event {
            Frame(OutFrame),
            Redis(Option<redis::Msg>),
            Report(Report),
            Served,
            Reconnect,
            Tick,
        }
        let reconnect_at = b.reconnect_at;
        let event = tokio::select! {
            f = frames.recv() => match f {
                Some(f) => Event::Frame(f),
                None => return,
            },
            m = next_message(&mut b.stream) => Event::Redis(m),
            r = reports.recv() => match r {
                Some(r) => Event::Report(r),
                None => return,
            },
            () = b.port.served_changed() => Event::Served,
            () = sleep_until(reconnect_at) => Event::Reconnect,
            _ = tick.tick() => Event::Tick,
        };
        match event {
            Event::Frame(f) => {
                b.port.taken(&f);
                match read_out_frame(&f) {
                    Ok((header, payload)) => b.on_frame(header, payload),
                    Err(e) => tracing::warn!(error = ?e, "unreadable hub frame"),
                }
            }
            Event::Redis(Some(msg)) => b.on_redis(&msg),
            Event::Redis(None) => b.lost("the subscriber connection closed"),
            Event::Report(r) => b.on_report(r).await,
            Event::Served => b.sync_served().await,
            Event::Reconnect => {
                b.reconnect_at = None;
                b.connect();
            }
            Event::Tick => {
                b.sync_served().await;
                b.count_servers();
                b.sweep();
            }
        }
    }
}

/// The header and payload of a frame the router queued for the bridge,
/// without copying a large payload (see `OutFrame`).
fn read_out_frame(f: &OutFrame) -> Result<(Header, Bytes), FrameError> {
    if f.head.len() < 4 {
        return Err(FrameError::Truncated);
    }
    let body = f.head.slice(4..);
    let (header, at) = decode_header(&body)?;
    let payload = if f.payload.is_empty() {
        body.slice(at.min(body.len())..)
    } else {
        f.payload.clone()
    };
    Ok((header, payload))
}

impl Bridge {
    fn channels(&self, nsp: &str) -> Option<&Channels> {
        self.served.get(nsp).map(|s| &s.channels)
    }

    /// A frame the router sent the bridge.
    fn on_frame(&mut self, header: Header, payload: Bytes) {
        match header {
            Header::Message { nsp, kind, .. } => self.on_message(&nsp, kind, payload),
            Header::Incoming { id, nsp, kind, .. } => self.on_incoming(id, &nsp, kind, payload),
            Header::Accepted { req, expected } => self.inbound_accepted(req, expected),
            Header::Reply {
                req, from, done, ..
            } => {
                self.inbound_reply(req, from, payload);
                // The last answer: no `Done` follows.
                if done {
                    self.inbound_done(req);
                }
            }
            Header::Departed { req, node } => self.inbound_departed(req, node),
            Header::Done { req } | Header::TimedOut { req, .. } => self.inbound_done(req),
            Header::RecoveryOn { nsp } => {
                self.recovering.insert(nsp);
            }
            _ => {}
        }
    }

    /// Forgets requests whose time is long past.
    fn sweep(&mut self) {
        let now = Instant::now();
        self.outbound.sweep(now);
        self.inbound.sweep(now);
    }

    /// Sends the router a request of another host; `req` identifies it in
    /// the router's answers.
    fn request(
        &mut self,
        nsp: &str,
        kind: u8,
        keep: bool,
        rooms: Vec<String>,
        parts: &[&[u8]],
        timeout: Duration,
    ) -> u32 {
        let req = self.inbound.next_req();
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        self.port.send(
            Header::Request {
                req,
                nsp: nsp.to_owned(),
                kind,
                timeout_ms,
                keep,
                rooms,
            },
            parts_payload(parts),
        );
        req
    }

    fn respond(&self, id: u64, last: bool, parts: &[&[u8]]) {
        self.port
            .send(Header::Respond { id, last }, parts_payload(parts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_out;

    #[test]
    fn frames_queued_for_the_bridge_read_back_small_and_large() {
        let header = Header::Message {
            nsp: "/".into(),
            from: 3,
            kind: 3,
        };
        for len in [0, 10, crate::frame::SHARE_FROM, 100_000] {
            let payload = Bytes::from(vec![7u8; len]);
            let f = encode_out(&header, payload.clone());
            let (h, p) = read_out_frame(&f).unwrap();
            assert_eq!((h, p), (header.clone(), payload));
        }
        let cut = OutFrame {
            head: Bytes::from_static(&[1, 0]),
            payload: Bytes::new(),
        };
        assert!(read_out_frame(&cut).is_err());
    }
}
