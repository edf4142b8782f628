//! The Redis bridge: the hub of each host as that host's only Redis client,
//! speaking the stock Redis adapter's protocol (`@socket.io/redis-adapter`
//! 8.x, classic pub/sub) for all of its workers.
//!
//! To the router the bridge is one more peer (`hub::BRIDGE_NODE`) that serves
//! every namespace a worker of this host serves and is in every room: it gets
//! what the workers publish and ask, and turns it into the stock adapter's
//! messages (`outbound.rs`); what other hosts publish and ask arrives on Redis
//! and becomes hub frames for the workers (`inbound.rs`; the workers' formats:
//! `workers.rs`, the stock adapter's: `stock.rs`, packets: `packet.rs`, with
//! their msgpack: `msgpack.rs`, values and JSON as JS sees them: `js.rs`,
//! `json.rs`, WebSocket frames: `ws.rs`). Broadcasts leave and enter a host
//! once, whatever its worker count; workers never see Redis.
//!
//! Redis is optional for the host: while it is unreachable the bridge is
//! down in the router (requests do not wait for it), retries with backoff,
//! and says so once per change of state.

mod inbound;
mod js;
mod json;
mod msgpack;
mod outbound;
mod packet;
pub mod stock;
mod workers;
mod ws;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSub, PubSubSink, PubSubStream};
use redis::AsyncConnectionConfig;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use crate::frame::{decode_header, FrameError, Header, NodeId, OutFrame};
use crate::hub::BridgePort;
use stock::Channels;
use workers::parts_payload;

/// How the hub reaches Redis (`setupPrimary({ redis })`).
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// A `redis://` (or `rediss://`, `unix://`) URL.
    pub url: String,
    /// The channels' prefix, as the stock adapter's `key` option.
    pub key: String,
    /// How long requests of other hosts may take here, and ours there.
    pub requests_timeout: Duration,
}

/// Counters of the bridge, read by `Hub::stats()`.
#[derive(Debug, Default)]
pub struct BridgeStats {
    connected: AtomicBool,
    connects: AtomicU64,
    disconnects: AtomicU64,
    connect_failures: AtomicU64,
    published: AtomicU64,
    publish_errors: AtomicU64,
    received: AtomicU64,
    malformed: AtomicU64,
    unconvertible: AtomicU64,
    dropped_while_down: AtomicU64,
    requests_out: AtomicU64,
    requests_in: AtomicU64,
    unsupported: AtomicU64,
}

/// What [`BridgeStats`] held at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeStatsSnapshot {
    /// Redis is reachable now.
    pub connected: bool,
    /// Connections made (the first and every reconnection).
    pub connects: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Attempts to connect that failed.
    pub connect_failures: u64,
    /// Messages published to Redis.
    pub published: u64,
    /// Messages whose publishing failed (the connection was lost).
    pub publish_errors: u64,
    /// Messages received from Redis (own ones included).
    pub received: u64,
    /// Messages from Redis ignored because they could not be read.
    pub malformed: u64,
    /// Messages of this host's workers that could not be turned into the
    /// stock format (a custom parser's packets, values JSON cannot carry).
    pub unconvertible: u64,
    /// Messages of this host's workers dropped while Redis was unreachable.
    pub dropped_while_down: u64,
    /// Requests of this host's workers sent to other hosts.
    pub requests_out: u64,
    /// Requests of other hosts answered here.
    pub requests_in: u64,
    /// Requests of other hosts of a kind the bridge does not serve.
    pub unsupported: u64,
}

impl BridgeStats {
    pub fn snapshot(&self) -> BridgeStatsSnapshot {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStatsSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            connects: n(&self.connects),
            disconnects: n(&self.disconnects),
            connect_failures: n(&self.connect_failures),
            published: n(&self.published),
            publish_errors: n(&self.publish_errors),
            received: n(&self.received),
            malformed: n(&self.malformed),
            unconvertible: n(&self.unconvertible),
            dropped_while_down: n(&self.dropped_while_down),
            requests_out: n(&self.requests_out),
            requests_in: n(&self.requests_in),
            unsupported: n(&self.unsupported),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// How long connecting, and any command, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection backoff: from the first to the largest delay, doubling.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often servers are counted and late requests swept.
const TICK: Duration = Duration::from_secs(1);
/// Messages one pipeline publishes at most.
const PUBLISH_BATCH: usize = 256;
/// Bytes that may wait to be published; past it messages are dropped (and
/// counted) rather than growing without bound behind a slow Redis.
const PUBLISH_QUEUE_LIMIT: usize = 64 * 1024 * 1024;

/// What the bridge's own tasks report to its loop. `generation` tells
/// reports of an earlier connection apart.
enum Report {
    Connected {
        generation: u64,
        pubsub: Box<PubSub>,
        commands: MultiplexedConnection,
    },
    ConnectFailed {
        generation: u64,
        error: String,
    },
    Lost {
        generation: u64,
        error: String,
    },
    /// `PUBSUB NUMSUB` of `nsp`'s request channel and the servers channels
    /// of the bridges (see `Channels::servers_channel`).
    Counted {
        generation: u64,
        nsp: String,
        subscribers: u64,
        bridges: Vec<String>,
    },
    /// The subscribers of the request channel, asked before publishing
    /// outbound request `request_id` (as the stock adapter does).
    Subscribers {
        generation: u64,
        request_id: String,
        subscribers: Option<u64>,
    },
}

/// A live connection to Redis: a subscriber and a multiplexed connection
/// for commands, whose publishing goes through a task that pipelines.
struct Connection {
    generation: u64,
    sink: PubSubSink,
    commands: MultiplexedConnection,
    publish: mpsc::UnboundedSender<(String, Bytes)>,
    publish_queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Namespace → the servers channel subscribed for it.
    servers_channels: HashMap<String, String>,
}

/// A namespace this host serves.
struct Served {
    channels: Channels,
    workers: usize,
    /// Other bridges serving the namespace: uid → the servers each stands
    /// for, as last counted (see `Bridge::counted`).
    bridges: HashMap<String, u64>,
}

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

async fn next_message(stream: &mut Option<PubSubStream>) -> Option<redis::Msg> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Bridge {
    fn channels(&self, nsp: &str) -> Option<&Channels> {
        self.served.get(nsp).map(|s| &s.channels)
    }

    /// Starts connecting in the background.
    fn connect(&mut self) {
        if self.connecting || self.connection.is_some() {
            return;
        }
        self.connecting = true;
        self.generation += 1;
        let generation = self.generation;
        let client = self.client.clone();
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let report = match connect(&client).await {
                Ok((pubsub, commands)) => Report::Connected {
                    generation,
                    pubsub: Box::new(pubsub),
                    commands,
                },
                Err(error) => Report::ConnectFailed { generation, error },
            };
            let _ = reports.send(report);
        });
    }

    async fn on_report(&mut self, report: Report) {
        match report {
            Report::Connected {
                generation,
                pubsub,
                commands,
            } if generation == self.generation => {
                self.connecting = false;
                self.connected(*pubsub, commands, generation).await;
            }
            Report::ConnectFailed { generation, error } if generation == self.generation => {
                self.connecting = false;
                bump(&self.stats.connect_failures);
                if self.logged_up != Some(false) {
                    self.logged_up = Some(false);
                    let url = redacted(&self.options.url);
                    self.port
                        .report_redis(Some(format!("cannot reach {url}: {error}")));
                }
                self.retry_later();
            }
            Report::Lost { generation, error }
                if self.connection.as_ref().map(|c| c.generation) == Some(generation) =>
            {
                self.lost(&error);
            }
            Report::Counted {
                generation,
                nsp,
                subscribers,
                bridges,
            } if generation == self.generation => self.counted(&nsp, subscribers, &bridges),
            Report::Subscribers {
                generation,
                request_id,
                subscribers,
            } if generation == self.generation => self.outbound_counted(&request_id, subscribers),
            _ => {} // about an earlier connection
        }
    }

    async fn connected(
        &mut self,
        pubsub: PubSub,
        commands: MultiplexedConnection,
        generation: u64,
    ) {
        let (sink, stream) = pubsub.split();
        let (publish, queue) = mpsc::unbounded_channel();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(publisher(
            commands.clone(),
            queue,
            queued.clone(),
            self.stats.clone(),
            self.reports.clone(),
            generation,
        ));
        self.connection = Some(Connection {
            generation,
            sink,
            commands,
            publish,
            publish_queued: queued,
            servers_channels: HashMap::new(),
        });
        self.stream = Some(stream);
        let nsps: Vec<String> = self.served.keys().cloned().collect();
        for nsp in nsps {
            if let Err(e) = self.subscribe(&nsp).await {
                self.lost(&e);
                return;
            }
        }
        self.backoff = BACKOFF_FIRST;
        self.stats.connected.store(true, Ordering::Relaxed);
        bump(&self.stats.connects);
        self.port.set_up(true);
        if self.logged_up != Some(true) {
            self.logged_up = Some(true);
            tracing::debug!(uid = %self.uid, "bridge uid");
            self.port.report_redis(None);
        }
        self.count_servers();
    }

    /// The connection failed: this host works alone until it is back.
    fn lost(&mut self, error: &str) {
        if self.connection.take().is_none() {
            return;
        }
        self.stream = None;
        self.stats.connected.store(false, Ordering::Relaxed);
        bump(&self.stats.disconnects);
        // Requests waiting for other hosts end now (the router stops
        // waiting for the bridge); theirs cannot be answered any more.
        self.port.set_up(false);
        self.outbound.clear();
        self.inbound.clear();
        if self.logged_up != Some(false) {
            self.logged_up = Some(false);
            self.port
                .report_redis(Some(format!("lost the connection: {error}")));
        }
        self.retry_later();
    }

    fn retry_later(&mut self) {
        self.reconnect_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Subscribes to `nsp`'s channels, and to its servers channel for the
    /// current worker count.
    async fn subscribe(&mut self, nsp: &str) -> Result<(), String> {
        let Some(served) = self.served.get(nsp) else {
            return Ok(());
        };
        let c = served.channels.clone();
        let servers = c.servers_channel(&self.uid, served.workers);
        let Some(conn) = self.connection.as_mut() else {
            return Ok(());
        };
        let sink = &mut conn.sink;
        let steps = async {
            sink.psubscribe(&c.broadcast_pattern).await?;
            sink.subscribe(&c.request).await?;
            sink.subscribe(&c.response).await?;
            sink.subscribe(&c.own_response).await?;
            sink.subscribe(&servers).await
        };
        match timeout(COMMAND_TIMEOUT, steps).await {
            Ok(Ok(())) => {
                conn.servers_channels.insert(nsp.to_owned(), servers);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("subscribing failed: {e}")),
            Err(_) => Err("subscribing timed out".into()),
        }
    }

    async fn unsubscribe(&mut self, c: &Channels, nsp: &str) -> Result<(), String> {
        let Some(conn) = self.connection.as_mut() else {
            return Ok(());
        };
        let servers = conn.servers_channels.remove(nsp);
        let sink = &mut conn.sink;
        let steps = async {
            sink.punsubscribe(&c.broadcast_pattern).await?;
            sink.unsubscribe(&c.request).await?;
            sink.unsubscribe(&c.response).await?;
            sink.unsubscribe(&c.own_response).await?;
            if let Some(s) = servers {
                sink.unsubscribe(&s).await?;
            }
            Ok::<(), redis::RedisError>(())
        };
        match timeout(COMMAND_TIMEOUT, steps).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("unsubscribing failed: {e}")),
            Err(_) => Err("unsubscribing timed out".into()),
        }
    }

    /// Serves (and subscribes for) the namespaces this host's workers serve,
    /// and says how many workers stand behind each.
    async fn sync_served(&mut self) {
        let now: HashMap<String, usize> = self.port.served().into_iter().collect();
        let gone: Vec<String> = self
            .served
            .keys()
            .filter(|n| !now.contains_key(*n))
            .cloned()
            .collect();
        for nsp in gone {
            self.port
                .send(Header::Unregister { nsp: nsp.clone() }, Bytes::new());
            if let Some(s) = self.served.remove(&nsp) {
                if let Err(e) = self.unsubscribe(&s.channels, &nsp).await {
                    self.lost(&e);
                }
            }
        }
        for (nsp, workers) in now {
            let changed = match self.served.get_mut(&nsp) {
                Some(s) if s.workers == workers => false,
                Some(s) => {
                    s.workers = workers;
                    true
                }
                None => {
                    self.port
                        .send(Header::Register { nsp: nsp.clone() }, Bytes::new());
                    let channels = Channels::new(&self.options.key, &nsp, &self.uid);
                    self.served.insert(
                        nsp.clone(),
                        Served {
                            channels,
                            workers,
                            bridges: HashMap::new(),
                        },
                    );
                    true
                }
            };
            if changed {
                // Subscribing to the new servers channel before leaving the
                // old one keeps this host counted throughout.
                let old = self
                    .connection
                    .as_ref()
                    .and_then(|c| c.servers_channels.get(&nsp).cloned());
                let mut result = self.subscribe(&nsp).await;
                if let (Ok(()), Some(old), Some(conn)) = (&result, old, self.connection.as_mut()) {
                    if conn.servers_channels.get(&nsp) != Some(&old) {
                        result = match timeout(COMMAND_TIMEOUT, conn.sink.unsubscribe(&old)).await {
                            Ok(Ok(())) => Ok(()),
                            _ => Err("unsubscribing failed".into()),
                        };
                    }
                }
                if let Err(e) = result {
                    self.lost(&e);
                }
            }
        }
    }

    /// Counts the servers of other hosts, per namespace, for `serverCount()`.
    fn count_servers(&self) {
        let Some(conn) = &self.connection else {
            return;
        };
        for (nsp, s) in &self.served {
            let mut commands = conn.commands.clone();
            let reports = self.reports.clone();
            let generation = conn.generation;
            let nsp = nsp.clone();
            let request = s.channels.request.clone();
            let pattern = s.channels.servers_pattern();
            tokio::spawn(async move {
                let mut pipe = redis::pipe();
                pipe.cmd("PUBSUB").arg("NUMSUB").arg(&request);
                pipe.cmd("PUBSUB").arg("CHANNELS").arg(&pattern);
                let asked = pipe.query_async::<(Vec<(String, u64)>, Vec<String>)>(&mut commands);
                if let Ok(Ok((numsub, bridges))) = timeout(COMMAND_TIMEOUT, asked).await {
                    let subscribers = numsub.first().map_or(0, |(_, n)| *n);
                    let _ = reports.send(Report::Counted {
                        generation,
                        nsp,
                        subscribers,
                        bridges,
                    });
                }
            });
        }
    }

    /// Servers of other hosts: every subscriber of the request channel is
    /// one server, but a bridge stands for as many as its channel says.
    fn counted(&mut self, nsp: &str, subscribers: u64, bridges: &[String]) {
        let Some(served) = self.served.get_mut(nsp) else {
            return;
        };
        let c = &served.channels;
        served.bridges = bridges
            .iter()
            .filter_map(|ch| c.parse_servers_channel(ch))
            .filter(|(uid, _)| *uid != self.uid)
            .map(|(uid, workers)| (uid.to_owned(), u64::from(workers)))
            .collect();
        let remote = self.servers_behind(nsp, subscribers.saturating_sub(1));
        self.port
            .set_remote_servers(nsp, u32::try_from(remote).unwrap_or(u32::MAX));
    }

    /// Servers behind `subscribers` other subscribers of `nsp`'s request
    /// channel: one each, but a bridge stands for its workers.
    fn servers_behind(&self, nsp: &str, subscribers: u64) -> u64 {
        let Some(served) = self.served.get(nsp) else {
            return subscribers;
        };
        let bridges = served.bridges.len() as u64;
        subscribers.saturating_sub(bridges) + served.bridges.values().sum::<u64>()
    }

    /// True when `uid` is another bridge serving `nsp`.
    fn is_bridge(&self, nsp: &str, uid: &str) -> bool {
        self.served
            .get(nsp)
            .is_some_and(|s| s.bridges.contains_key(uid))
    }

    /// Asks Redis how many servers will answer a request, then reports.
    fn ask_subscribers(&self, nsp: &str, request_id: String) {
        let (Some(conn), Some(c)) = (&self.connection, self.channels(nsp)) else {
            return;
        };
        let mut commands = conn.commands.clone();
        let reports = self.reports.clone();
        let generation = conn.generation;
        let request = c.request.clone();
        tokio::spawn(async move {
            let mut numsub = redis::cmd("PUBSUB");
            numsub.arg("NUMSUB").arg(&request);
            let asked = numsub.query_async::<Vec<(String, u64)>>(&mut commands);
            let subscribers = match timeout(COMMAND_TIMEOUT, asked).await {
                Ok(Ok(v)) => v.first().map(|(_, n)| *n),
                _ => None,
            };
            let _ = reports.send(Report::Subscribers {
                generation,
                request_id,
                subscribers,
            });
        });
    }

    /// Publishes `message` on `channel`, or drops it (counted) without Redis.
    fn publish(&self, channel: String, message: Vec<u8>) {
        let Some(conn) = &self.connection else {
            bump(&self.stats.dropped_while_down);
            return;
        };
        let len = message.len();
        if conn.publish_queued.load(Ordering::Relaxed) + len > PUBLISH_QUEUE_LIMIT {
            bump(&self.stats.dropped_while_down);
            return;
        }
        conn.publish_queued.fetch_add(len, Ordering::Relaxed);
        if conn.publish.send((channel, Bytes::from(message))).is_err() {
            bump(&self.stats.dropped_while_down);
        }
    }

    fn is_up(&self) -> bool {
        self.connection.is_some()
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

/// `url` without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

async fn connect(client: &redis::Client) -> Result<(PubSub, MultiplexedConnection), String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(COMMAND_TIMEOUT);
    let commands = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let pubsub = timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok((pubsub, commands))
}

/// Publishes what the bridge queues, pipelining what is waiting (up to
/// [`PUBLISH_BATCH`] messages per round trip).
async fn publisher(
    mut commands: MultiplexedConnection,
    mut queue: mpsc::UnboundedReceiver<(String, Bytes)>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    stats: Arc<BridgeStats>,
    reports: mpsc::UnboundedSender<Report>,
    generation: u64,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queue.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let n = batch.len() as u64;
        let mut pipe = redis::pipe();
        let mut bytes = 0;
        for (channel, message) in batch.drain(..) {
            bytes += message.len();
            pipe.publish(channel, message.as_ref()).ignore();
        }
        let sent = timeout(COMMAND_TIMEOUT, pipe.query_async::<()>(&mut commands)).await;
        queued.fetch_sub(bytes, Ordering::Relaxed);
        match sent {
            Ok(Ok(())) => {
                stats.published.fetch_add(n, Ordering::Relaxed);
            }
            failed => {
                stats.publish_errors.fetch_add(n, Ordering::Relaxed);
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "publishing timed out".into(),
                };
                let _ = reports.send(Report::Lost { generation, error });
                return;
            }
        }
    }
}

/// The node id type, for the inbound tables.
type Node = NodeId;

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

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redacted("redis://u:secret@h:6379/0"), "redis://…@h:6379/0");
        assert_eq!(redacted("redis://h:6379"), "redis://h:6379");
    }
}
