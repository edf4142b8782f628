//! Sticky balancing: one TCP port for the whole cluster, served in Rust.
//!
//! The balancer runs in the primary on its own thread. It accepts client
//! connections, reads the head of each connection's first request and hands
//! the connection (its descriptor, over SCM_RIGHTS) and the bytes read so far
//! to a worker through that worker's handoff channel, a Unix socket next to
//! the hub's ([`paths::sticky_address`]). The primary's JS never sees a
//! connection.
//!
//! - A request of an Engine.IO session goes to the worker whose pid the
//!   session id ends with (workers make their ids so, see lib/sticky.js):
//!   nothing has to be registered before the first request of a session can
//!   be routed, so there is no race. A session of a worker that is gone gets
//!   Engine.IO's own "Session ID unknown" (400), and the client reconnects.
//! - Anything else goes to the least-loaded worker ([`pick`]).
//! - A keep-alive connection stays with its worker, which checks every later
//!   request: one of another worker's session comes back here with its
//!   bytes (`HAND_BACK`) and is routed again, so a reused connection never
//!   crosses sessions.
//! - Every connection is bounded until handed over: its head must arrive
//!   within `headers_timeout` and fit in `max_header_size`, and at most
//!   `max_pending` connections may wait for theirs. Garbage gets a 400, a
//!   head too large a 431, a timeout a 408; each closes that connection only.

pub mod channel;
pub mod http;
pub mod pick;
pub mod wire;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpListener as StdTcpListener};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, timeout_at, Instant};

use crate::paths;
use crate::serving::ServingThread;
pub use pick::Balance;
use pick::Workers;

/// A worker has this long after connecting its channel to say who it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer of the balancer's own may take to leave, and how long
/// the rest of that request is read and discarded before closing (so that the
/// client reads the answer rather than a reset).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
const DISCARD_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct StickyOptions {
    /// Address to listen on; empty: every interface (IPv6 and IPv4, or IPv4
    /// only where there is no IPv6).
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    pub balance: Balance,
    /// Lower-case header whose first address stands for the client's with
    /// `Balance::IpHash` (for a balancer behind a proxy).
    pub ip_header: Option<String>,
    pub max_header_size: usize,
    pub headers_timeout: Duration,
    /// Connections accepted whose first request head has not arrived yet.
    pub max_pending: usize,
}

impl Default for StickyOptions {
    fn default() -> Self {
        StickyOptions {
            host: String::new(),
            port: 0,
            balance: Balance::LeastConnections,
            ip_header: None,
            max_header_size: 16 * 1024,
            headers_timeout: Duration::from_secs(10),
            max_pending: 1024,
        }
    }
}

/// What the balancer did, since it started.
#[derive(Debug, Default, Clone)]
pub struct StickyStats {
    /// Client connections accepted.
    pub connections: u64,
    /// Connections handed to a worker (handed-back ones included).
    pub handed: u64,
    /// Connections a worker handed back (a later request of another session).
    pub handed_back: u64,
    /// Requests of a session whose worker is gone: answered 400.
    pub unknown_sessions: u64,
    /// Connections that came while no worker was ready: answered 503.
    pub no_worker: u64,
    pub bad_requests: u64,
    pub too_large: u64,
    pub header_timeouts: u64,
    /// Connections closed at once because `max_pending` others waited.
    pub over_capacity: u64,
    /// Connections closed by the client before their first request head.
    pub closed_early: u64,
    /// Connections lost because their worker's channel broke while handing
    /// them over (the client sees the connection close, and reconnects).
    pub lost: u64,
    /// (pid, load) of each worker with a channel open.
    pub workers: Vec<(u32, u64)>,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    handed: AtomicU64,
    handed_back: AtomicU64,
    unknown_sessions: AtomicU64,
    no_worker: AtomicU64,
    bad_requests: AtomicU64,
    too_large: AtomicU64,
    header_timeouts: AtomicU64,
    over_capacity: AtomicU64,
    closed_early: AtomicU64,
    lost: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A connection on its way to a worker.
struct Handoff {
    fd: OwnedFd,
    bytes: Vec<u8>,
}

type Sink = mpsc::UnboundedSender<Handoff>;

struct Shared {
    options: StickyOptions,
    workers: Mutex<Workers<Sink>>,
    counters: Counters,
    pending: AtomicUsize,
}

impl Shared {
    fn workers(&self) -> MutexGuard<'_, Workers<Sink>> {
        // A panic while holding the lock cannot leave the table half-changed
        // in a way that matters more than stopping would.
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running balancer. Dropping it stops it.
pub struct Balancer {
    local: SocketAddr,
    shared: Arc<Shared>,
    serving: ServingThread,
}

impl Balancer {
    /// Binds the TCP port and the handoff channel of the hub at
    /// `hub_address` now (errors such as a port in use are returned here),
    /// and serves on a new thread.
    pub fn start(hub_address: &str, options: StickyOptions) -> io::Result<Balancer> {
        let tcp = bind_tcp(&options.host, options.port)?;
        tcp.set_nonblocking(true)?;
        let local = tcp.local_addr()?;
        let channel_address = paths::sticky_address(hub_address);
        let channels = paths::bind_listener(&channel_address)?;
        channels.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            options,
            workers: Mutex::new(Workers::default()),
            counters: Counters::default(),
            pending: AtomicUsize::new(0),
        });
        let thread_shared = shared.clone();
        let serving =
            ServingThread::spawn("sio-cluster-sticky", &channel_address, move || async move {
                // SAFETY: a std listener owns its fd: it stays open and is the same
                // fd for as long as the listener lives, which is as long as the
                // `AsyncFd`; nothing swaps it out via `get_mut`.
                let clients = unsafe { AsyncFd::register(tcp) }.map_err(|_| ());
                let (Ok(clients), Ok(channels)) = (clients, UnixListener::from_std(channels))
                else {
                    return;
                };
                // Ending cancels every task: connections not handed over yet
                // and the workers' channels close.
                tokio::select! {
                    _ = accept_clients(clients, thread_shared.clone()) => {}
                    _ = accept_workers(channels, thread_shared) => {}
                }
            })?;
        Ok(Balancer {
            local,
            shared,
            serving,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn stats(&self) -> StickyStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StickyStats {
            connections: get(&c.connections),
            handed: get(&c.handed),
            handed_back: get(&c.handed_back),
            unknown_sessions: get(&c.unknown_sessions),
            no_worker: get(&c.no_worker),
            bad_requests: get(&c.bad_requests),
            too_large: get(&c.too_large),
            header_timeouts: get(&c.header_timeouts),
            over_capacity: get(&c.over_capacity),
            closed_early: get(&c.closed_early),
            lost: get(&c.lost),
            workers: self.shared.workers().loads(),
        }
    }

    /// Stops accepting, closes what is not handed over yet and the workers'
    /// channels (connections already handed over stay with their workers).
    pub fn close(&mut self) {
        self.serving.stop();
    }
}

/// Binds `host:port`; an empty host is every interface, as Node.js's
/// `listen(port)`: `::` (which takes IPv4 too), else `0.0.0.0`.
fn bind_tcp(host: &str, port: u16) -> io::Result<StdTcpListener> {
    let listener = if host.is_empty() {
        StdTcpListener::bind(("::", port)).or_else(|_| StdTcpListener::bind(("0.0.0.0", port)))?
    } else {
        StdTcpListener::bind((host, port))?
    };
    defer_accept(&listener);
    Ok(listener)
}

/// Linux: the kernel hands over a connection only once its first bytes have
/// arrived (or after about a second without any), so that the balancer can
/// usually read and route a connection right after accepting it, without
/// ever watching the socket: no registration, no second wake-up. A client
/// that stays silent is accepted after that second and then meets
/// `headers_timeout`. Best effort: without it, such connections take the
/// watched path.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn defer_accept(listener: &StdTcpListener) {
    use std::os::fd::AsRawFd;
    let seconds: libc::c_int = 1;
    // SAFETY: the fd is open (borrowed from `listener`), and the option value
    // is a c_int whose size is passed along, as TCP_DEFER_ACCEPT requires.
    unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&seconds as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn defer_accept(_listener: &StdTcpListener) {}

async fn accept_clients(listener: AsyncFd<StdTcpListener>, shared: Arc<Shared>) {
    loop {
        let Ok(mut ready) = listener.readable().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Every connection that is ready, for one wake-up.
        loop {
            match listener.get_ref().accept() {
                Ok((stream, peer)) => accept_one(&shared, stream, peer.ip()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EMFILE and friends: back off, keep serving.
                Err(_) => {
                    drop(ready);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
            }
        }
    }
}

/// A new connection. When its first read brings a whole request head that
/// goes to a worker (the common case), it is handed over at once, never
/// registered with the event loop; otherwise a task reads on within the
/// bounds, or answers.
fn accept_one(shared: &Arc<Shared>, stream: std::net::TcpStream, peer: IpAddr) {
    let c = &shared.counters;
    bump(&c.connections);
    if stream.set_nonblocking(true).is_err() {
        return bump(&c.closed_early);
    }
    let mut chunk = [0u8; 4096];
    let first = match (&stream).read(&mut chunk) {
        Ok(0) => return bump(&c.closed_early),
        Ok(n) => chunk[..n].to_vec(),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
        Err(_) => return bump(&c.closed_early),
    };
    let options = &shared.options;
    if let http::Parsed::Complete(head) = http::parse(
        &first,
        options.max_header_size,
        options.ip_header.as_deref(),
    ) {
        if let Decision::To(sink) = decide(shared, &head, Some(peer), None) {
            if sink
                .send(Handoff {
                    fd: OwnedFd::from(stream),
                    bytes: first,
                })
                .is_err()
            {
                bump(&c.lost);
            }
            return;
        }
    }
    if shared.pending.load(Ordering::Relaxed) >= options.max_pending {
        return bump(&c.over_capacity);
    }
    shared.pending.fetch_add(1, Ordering::Relaxed);
    let slot = PendingSlot(shared.clone());
    if let Ok(stream) = TcpStream::from_std(stream) {
        tokio::spawn(serve_client(slot, stream, peer, first));
    }
}

/// Counts a connection out of `pending` however its task ends.
struct PendingSlot(Arc<Shared>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads the rest of the first request head of a new connection (`buf` holds
/// what came so far) and routes it.
async fn serve_client(slot: PendingSlot, mut stream: TcpStream, peer: IpAddr, mut buf: Vec<u8>) {
    let shared = slot.0.clone();
    let options = &shared.options;
    let deadline = Instant::now() + options.headers_timeout;
    let mut chunk = [0u8; 4096];
    let c = &shared.counters;
    loop {
        if !buf.is_empty() {
            match http::parse(&buf, options.max_header_size, options.ip_header.as_deref()) {
                http::Parsed::Partial => {}
                http::Parsed::TooLarge => {
                    bump(&c.too_large);
                    let answer =
                        http::response(431, "Request Header Fields Too Large", "text/plain", "");
                    return answer_and_close(stream, &answer).await;
                }
                http::Parsed::Bad => {
                    bump(&c.bad_requests);
                    let answer = http::response(400, "Bad Request", "text/plain", "");
                    return answer_and_close(stream, &answer).await;
                }
                http::Parsed::Complete(head) => {
                    drop(slot);
                    return route(&shared, stream, buf, head, Some(peer), None).await;
                }
            }
        }
        match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => {
                bump(&c.header_timeouts);
                let answer = http::response(408, "Request Timeout", "text/plain", "");
                return answer_and_close(stream, &answer).await;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return bump(&c.closed_early),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Where a request goes.
enum Decision {
    To(Sink),
    UnknownSession,
    NoWorker,
}

fn decide(shared: &Shared, head: &http::Head, peer: Option<IpAddr>, from: Option<u32>) -> Decision {
    let mut workers = shared.workers();
    if let Some(owner) = head.sid.as_deref().and_then(http::sid_owner) {
        return match workers.sink(owner) {
            // A worker hands back only sessions of others; its own coming
            // back would loop.
            Some(sink) if from != Some(owner) => Decision::To(sink.clone()),
            _ => Decision::UnknownSession,
        };
    }
    let hash = match (&head.forwarded_for, peer) {
        (Some(a), _) => http::address_hash(a),
        (None, Some(ip)) => http::address_hash(&ip.to_string()),
        (None, None) => 0,
    };
    match workers.pick_new(shared.options.balance, hash) {
        Some((_, sink)) => Decision::To(sink.clone()),
        None => Decision::NoWorker,
    }
}

/// Hands `stream` with the bytes read from it to the worker `head` calls
/// for, or answers it here. `from` is the worker that handed it back.
async fn route(
    shared: &Shared,
    stream: TcpStream,
    bytes: Vec<u8>,
    head: http::Head,
    peer: Option<IpAddr>,
    from: Option<u32>,
) {
    let c = &shared.counters;
    match decide(shared, &head, peer, from) {
        Decision::To(sink) => {
            let fd = match stream.into_std() {
                Ok(s) => OwnedFd::from(s),
                Err(_) => return bump(&c.lost),
            };
            if sink.send(Handoff { fd, bytes }).is_err() {
                bump(&c.lost);
            }
        }
        Decision::UnknownSession => {
            bump(&c.unknown_sessions);
            answer_and_close(stream, &http::unknown_session()).await;
        }
        Decision::NoWorker => {
            bump(&c.no_worker);
            let answer = http::response(
                503,
                "Service Unavailable",
                "text/plain",
                "no worker is ready",
            );
            answer_and_close(stream, &answer).await;
        }
    }
}

/// Writes `answer`, then reads and discards what the client still sends
/// until it closes (bounded), so that it reads the answer, not a reset.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) {
    let written = timeout(ANSWER_TIMEOUT, async {
        stream.write_all(answer).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    let _ = timeout(ANSWER_TIMEOUT, async {
        let mut sink = [0u8; 4096];
        let mut discarded = 0;
        while discarded < DISCARD_LIMIT {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

async fn accept_workers(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // The same rule as the hub's: only our own user's processes.
                if paths::peer_uid(&stream).ok() != Some(paths::euid()) {
                    continue;
                }
                tokio::spawn(serve_worker(shared.clone(), stream));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Reads one message of a worker's channel.
async fn next_message(
    stream: &UnixStream,
    dec: &mut wire::Decoder,
    buf: &mut [u8],
) -> io::Result<Option<wire::Message>> {
    loop {
        if let Some(m) = dec.next_message()? {
            return Ok(Some(m));
        }
        let fds: &mut VecDeque<OwnedFd> = &mut dec.fds;
        let n = stream
            .async_io(Interest::READABLE, || {
                wire::recv_part(stream.as_fd(), buf, fds)
            })
            .await?;
        if n == 0 {
            return Ok(None);
        }
        dec.push(&buf[..n]);
    }
}

/// A worker's channel: its hello, then its load reports and the connections
/// it hands back; meanwhile a task writes the connections handed to it.
async fn serve_worker(shared: Arc<Shared>, stream: UnixStream) {
    let stream = Arc::new(stream);
    let mut dec = wire::Decoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    let pid = match timeout(HELLO_TIMEOUT, next_message(&stream, &mut dec, &mut buf)).await {
        Ok(Ok(Some(m))) if m.kind == wire::HELLO => match wire::read_u32(&m.payload) {
            Some(pid) => pid,
            None => return,
        },
        _ => return,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let generation = shared.workers().add(pid, tx);
    let writer = tokio::spawn(write_handoffs(shared.clone(), stream.clone(), rx));
    while let Ok(Some(m)) = next_message(&stream, &mut dec, &mut buf).await {
        match (m.kind, m.fd) {
            (wire::LOAD, _) => {
                if let Some(clients) = wire::read_u32(&m.payload) {
                    shared.workers().report_load(pid, u64::from(clients));
                }
            }
            (wire::HAND_BACK, Some(fd)) => {
                bump(&shared.counters.handed_back);
                tokio::spawn(reroute(shared.clone(), fd, m.payload, pid));
            }
            // Kinds of a newer worker: ignored.
            _ => {}
        }
    }
    // Its sink goes with its entry; the writer ends once what was queued
    // before is written (or fails).
    shared.workers().remove(pid, generation);
    drop(writer);
}

/// Routes a connection a worker handed back, by the request it carries.
async fn reroute(shared: Arc<Shared>, fd: OwnedFd, bytes: Vec<u8>, from: u32) {
    let std_stream = std::net::TcpStream::from(fd);
    let stream = match std_stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(std_stream))
    {
        Ok(s) => s,
        Err(_) => return bump(&shared.counters.lost),
    };
    let options = &shared.options;
    match http::parse(
        &bytes,
        options.max_header_size,
        options.ip_header.as_deref(),
    ) {
        http::Parsed::Complete(head) => {
            let peer = stream.peer_addr().ok().map(|a| a.ip());
            route(&shared, stream, bytes, head, peer, Some(from)).await
        }
        _ => {
            bump(&shared.counters.bad_requests);
            let answer = http::response(400, "Bad Request", "text/plain", "");
            answer_and_close(stream, &answer).await;
        }
    }
}

/// Writes the connections handed to this worker, with their descriptors:
/// those waiting together go in one `sendmsg()` (up to `wire::MAX_BATCH`).
async fn write_handoffs(
    shared: Arc<Shared>,
    stream: Arc<UnixStream>,
    mut rx: mpsc::UnboundedReceiver<Handoff>,
) {
    let c = &shared.counters;
    let mut batch: Vec<Handoff> = Vec::with_capacity(wire::MAX_BATCH);
    let mut bytes = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < wire::MAX_BATCH {
            match rx.try_recv() {
                Ok(h) => batch.push(h),
                Err(_) => break,
            }
        }
        bytes.clear();
        for h in &batch {
            wire::encode(&mut bytes, wire::CONNECTION, &h.bytes);
        }
        let fds: Vec<BorrowedFd<'_>> = batch.iter().map(|h| h.fd.as_fd()).collect();
        let mut sent = 0;
        while sent < bytes.len() {
            let part = stream
                .async_io(Interest::WRITABLE, || {
                    wire::send_part(stream.as_fd(), &bytes, &fds, sent)
                })
                .await;
            match part {
                Ok(n) if n > 0 => sent += n,
                _ => {
                    // The worker is gone: these connections and those queued
                    // behind them close with this task.
                    c.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    rx.close();
                    while rx.try_recv().is_ok() {
                        bump(&c.lost);
                    }
                    return;
                }
            }
        }
        c.handed.fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Our descriptors close here: the worker has its own now.
        drop(fds);
        batch.clear();
    }
}
