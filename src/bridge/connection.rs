//! The bridge's connection to Redis: connecting in the background with
//! backoff, the subscriptions of each namespace, publishing through a task
//! that pipelines, and what happens when the connection is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSub, PubSubSink, PubSubStream};
use redis::AsyncConnectionConfig;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::stats::{bump, BridgeStats};
use super::stock::Channels;
use super::Bridge;

/// How long connecting, and any command, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Reconnection backoff: from the first to the largest delay, doubling.
pub(super) const BACKOFF_FIRST: Duration = Duration::from_millis(100);

const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Messages one pipeline publishes at most.
const PUBLISH_BATCH: usize = 256;

/// Bytes that may wait to be published; past it messages are dropped (and
/// counted) rather than growing without bound behind a slow Redis.
const PUBLISH_QUEUE_LIMIT: usize = 64 * 1024 * 1024;

/// What the bridge's own tasks report to its loop. `generation` tells
/// reports of an earlier connection apart.
pub(super) enum Report {
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
pub(super) struct Connection {
    pub(super) generation: u64,
    pub(super) sink: PubSubSink,
    pub(super) commands: MultiplexedConnection,
    pub(super) publish: mpsc::UnboundedSender<(String, Bytes)>,
    pub(super) publish_queued: Arc<AtomicUsize>,
    /// Namespace → the servers channel subscribed for it.
    pub(super) servers_channels: HashMap<String, String>,
}

pub(super) async fn next_message(stream: &mut Option<PubSubStream>) -> Option<redis::Msg> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
    queued: Arc<AtomicUsize>,
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

impl Bridge {
    /// Starts connecting in the background.
    pub(super) fn connect(&mut self) {
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

    pub(super) async fn on_report(&mut self, report: Report) {
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

    pub(super) async fn connected(
        &mut self,
        pubsub: PubSub,
        commands: MultiplexedConnection,
        generation: u64,
    ) {
        let (sink, stream) = pubsub.split();
        let (publish, queue) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
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
    pub(super) fn lost(&mut self, error: &str) {
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

    pub(super) fn retry_later(&mut self) {
        self.reconnect_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Subscribes to `nsp`'s channels, and to its servers channel for the
    /// current worker count.
    pub(super) async fn subscribe(&mut self, nsp: &str) -> Result<(), String> {
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

    /// Moves to the servers channel of `nsp`'s current worker count:
    /// subscribing to the new one before leaving the old one keeps this host
    /// counted throughout.
    pub(super) async fn renew_servers_channel(&mut self, nsp: &str) -> Result<(), String> {
        let Some(served) = self.served.get(nsp) else {
            return Ok(());
        };
        let servers = served.channels.servers_channel(&self.uid, served.workers);
        let Some(conn) = self.connection.as_mut() else {
            return Ok(());
        };
        let old = conn
            .servers_channels
            .insert(nsp.to_owned(), servers.clone());
        let sink = &mut conn.sink;
        let steps = async {
            sink.subscribe(&servers).await?;
            match old.filter(|old| *old != servers) {
                Some(old) => sink.unsubscribe(&old).await,
                None => Ok(()),
            }
        };
        match timeout(COMMAND_TIMEOUT, steps).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("renewing the servers channel failed: {e}")),
            Err(_) => Err("renewing the servers channel timed out".into()),
        }
    }

    pub(super) async fn unsubscribe(&mut self, c: &Channels, nsp: &str) -> Result<(), String> {
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

    /// Asks Redis how many servers will answer a request, then reports.
    pub(super) fn ask_subscribers(&self, nsp: &str, request_id: String) {
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
    pub(super) fn publish(&self, channel: String, message: Vec<u8>) {
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

    pub(super) fn is_up(&self) -> bool {
        self.connection.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redacted("redis://u:secret@h:6379/0"), "redis://…@h:6379/0");
        assert_eq!(redacted("redis://h:6379"), "redis://h:6379");
    }
}
