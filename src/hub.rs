//! The hub: a Unix-socket server on its own thread in the cluster primary.
//!
//! One connection per worker process. Each connection has a reader task that
//! feeds frames to the [`Router`] and a writer task that drains the
//! connection's outbox. The primary's JS event loop is never involved in moving
//! a message; it only hears about connections coming and going.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::frame::{encode, Frame, FrameBuffer, FrameError, Header, NodeId, PROTOCOL_VERSION};
use crate::paths;
use crate::router::{Out, PeerInfo, Router, RouterStats};

/// How long a new connection may take to say `Hello`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// Callback through which the hub reports [`HubEvent`]s.
pub type EventSink = Box<dyn Fn(HubEvent) + Send + Sync>;

/// Settings of a hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Largest accepted frame body, in bytes.
    pub max_frame: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            max_frame: crate::frame::DEFAULT_MAX_FRAME,
        }
    }
}

struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
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
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in the router; the
        // state is still consistent enough to keep routing, so don't cascade.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn dispatch(state: &State, outs: Vec<Out>) {
    for (node, bytes) in outs {
        if let Some(ob) = state.outboxes.get(&node) {
            ob.queued.fetch_add(bytes.len(), Ordering::Relaxed);
            // A closed outbox means the writer already stopped; the reader
            // will notice the dead connection and clean up.
            let _ = ob.tx.send(bytes);
        }
    }
}

/// Snapshot of a hub for `stats()`.
#[derive(Debug, Clone)]
pub struct HubStats {
    pub router: RouterStats,
    pub peers: Vec<PeerInfo>,
    /// Bytes waiting in each worker's outbox, by node id.
    pub queued: Vec<(NodeId, usize)>,
    pub pending_requests: usize,
}

/// A running hub. Dropping it stops the thread and removes the socket file.
pub struct Hub {
    path: PathBuf,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    /// Binds `path` synchronously (so that workers forked right after find it)
    /// and starts serving on a new thread.
    pub fn start(path: &Path, options: HubOptions, events: EventSink) -> io::Result<Hub> {
        if let Some(dir) = path.parent() {
            paths::ensure_private_dir(dir)?;
        }
        paths::remove_stale_socket(path)?;
        let std_listener = std::os::unix::net::UnixListener::bind(path)?;
        std_listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                router: Router::new(),
                outboxes: HashMap::new(),
                next_node: 0,
            }),
            timer: Notify::new(),
            events,
            options,
        });
        let (shutdown, shutdown_rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sio-cluster-hub".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match UnixListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            (thread_shared.events)(HubEvent::Refused {
                                reason: format!("hub cannot listen: {e}"),
                            });
                            return;
                        }
                    };
                    tokio::spawn(timer_loop(thread_shared.clone()));
                    tokio::select! {
                        _ = accept_loop(listener, thread_shared) => {}
                        _ = shutdown_rx => {}
                    }
                });
                // Dropping the runtime here cancels every connection task,
                // which closes every worker socket.
            })?;
        Ok(Hub {
            path: path.to_path_buf(),
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters, peers and queue depths.
    pub fn stats(&self) -> HubStats {
        let state = self.shared.lock();
        HubStats {
            router: state.router.stats(),
            peers: state.router.peers(),
            queued: {
                let mut q: Vec<(NodeId, usize)> = state
                    .outboxes
                    .iter()
                    .map(|(n, o)| (*n, o.queued.load(Ordering::Relaxed)))
                    .collect();
                q.sort();
                q
            },
            pending_requests: state.router.pending_requests(),
        }
    }

    /// Stops serving, closes every connection and removes the socket file.
    pub fn close(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.close();
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(shared.clone(), stream));
            }
            Err(e) => {
                // EMFILE and friends: report, back off, keep serving.
                (shared.events)(HubEvent::Refused {
                    reason: format!("accept failed: {e}"),
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn timer_loop(shared: Arc<Shared>) {
    loop {
        let next = shared.lock().router.next_deadline();
        let sleep = match next {
            Some(t) => tokio::time::sleep_until(t.into()),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            _ = sleep => {
                let state = &mut *shared.lock();
                let outs = state.router.tick(Instant::now());
                dispatch(state, outs);
            }
            _ = shared.timer.notified() => {}
        }
    }
}

/// Reads the next frame; `Ok(None)` on a clean end of stream.
async fn read_frame(rd: &mut OwnedReadHalf, fb: &mut FrameBuffer) -> Result<Option<Frame>, String> {
    loop {
        match fb.next_frame() {
            Ok(Some(f)) => return Ok(Some(f)),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let buf = fb.buf_mut();
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        match rd.read_buf(buf).await {
            Ok(0) => {
                return if fb.buf_mut().is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated.to_string())
                }
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn write_loop(
    wr: tokio::net::unix::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
) {
    let mut w = BufWriter::with_capacity(256 * 1024, wr);
    while let Some(first) = rx.recv().await {
        let mut n = first.len();
        if w.write_all(&first).await.is_err() {
            return;
        }
        // Coalesce whatever else is already queued into the same flush.
        while let Ok(more) = rx.try_recv() {
            n += more.len();
            if w.write_all(&more).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
        queued.fetch_sub(n, Ordering::Relaxed);
    }
}

async fn refuse(mut stream: UnixStream, shared: &Shared, reason: String) {
    let _ = stream
        .write_all(&encode(
            &Header::Refused {
                reason: reason.clone(),
            },
            &[],
        ))
        .await;
    let _ = stream.shutdown().await;
    (shared.events)(HubEvent::Refused { reason });
}

async fn serve_connection(shared: Arc<Shared>, stream: UnixStream) {
    // Only processes of our own user may talk to the hub. The 0700 directory
    // already keeps others out; this check also covers a socket path passed in
    // by hand.
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == paths::euid() => {}
        Ok(cred) => {
            let reason = format!(
                "connection from uid {} (pid {:?}) refused: only uid {} may connect",
                cred.uid(),
                cred.pid(),
                paths::euid()
            );
            return refuse(stream, &shared, reason).await;
        }
        Err(e) => {
            return refuse(
                stream,
                &shared,
                format!("cannot read peer credentials: {e}"),
            )
            .await
        }
    }
    let (mut rd, wr) = stream.into_split();
    let mut fb = FrameBuffer::new(shared.options.max_frame);
    let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut rd, &mut fb)).await;
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
                let Ok(stream) = rd.reunite(wr) else { return };
                return refuse(stream, &shared, reason).await;
            }
            (pid, Duration::from_millis(u64::from(heartbeat_timeout_ms)))
        }
        Ok(Ok(Some(f))) => {
            let reason = format!("expected a Hello frame first, got {:?}", f.header);
            let Ok(stream) = rd.reunite(wr) else { return };
            return refuse(stream, &shared, reason).await;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            let Ok(stream) = rd.reunite(wr) else { return };
            return refuse(stream, &shared, format!("bad handshake: {e}")).await;
        }
        Err(_) => {
            let Ok(stream) = rd.reunite(wr) else { return };
            return refuse(stream, &shared, "handshake timed out".into()).await;
        }
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let node = {
        let state = &mut *shared.lock();
        state.next_node += 1;
        let node = state.next_node;
        state
            .router
            .add_peer(node, pid, heartbeat_timeout, Instant::now());
        state.outboxes.insert(
            node,
            Outbox {
                tx: tx.clone(),
                queued: queued.clone(),
            },
        );
        dispatch(
            state,
            vec![(
                node,
                encode(
                    &Header::Welcome {
                        version: PROTOCOL_VERSION,
                        node,
                    },
                    &[],
                ),
            )],
        );
        node
    };
    drop(tx);
    shared.timer.notify_one();
    (shared.events)(HubEvent::Connected { node, pid });
    let writer = tokio::spawn(write_loop(wr, rx, queued));

    let reason = loop {
        match read_frame(&mut rd, &mut fb).await {
            Ok(Some(frame)) => {
                let is_request = matches!(frame.header, Header::Request { .. });
                let state = &mut *shared.lock();
                match state.router.on_frame(node, frame, Instant::now()) {
                    Ok(outs) => dispatch(state, outs),
                    Err(e) => break Some(e),
                }
                if is_request {
                    shared.timer.notify_one();
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    {
        let state = &mut *shared.lock();
        let outs = state.router.remove_peer(node);
        state.outboxes.remove(&node);
        dispatch(state, outs);
    }
    writer.abort();
    (shared.events)(HubEvent::Disconnected { node, pid, reason });
}
