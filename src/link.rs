//! The worker side: one connection to the hub per worker process, on its own
//! thread, shared by every namespace adapter of the process.
//!
//! The link thread connects, does the handshake, and writes what the JS
//! thread could not write at once (see [`Outgoing`]). After the handshake the
//! JS thread reads the socket itself (a libuv handle on a duplicate of the fd,
//! see lib/link.js) and hands the bytes to [`Link::feed`]: a frame from the
//! hub then wakes one thread, not the link thread and then JS. Reading only as
//! fast as JS handles the frames pushes back on the hub instead of growing
//! memory. The link thread tells JS about the connection coming up or going
//! down through a small [`Inbox`].

use std::collections::VecDeque;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::frame::{
    encode, Frame, FrameBuffer, FrameError, Header, NodeId, DEFAULT_MAX_FRAME, PROTOCOL_VERSION,
};
use crate::router::Class;
use crate::sock::{self, write_now, Reader};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// More than the hub's header on a forwarded message can add to the
/// sender's (a node id or request id in place of flags and rooms).
const FORWARD_HEADER_SLACK: usize = 1024;

/// Largest frame accepted from the hub. `max_frame` bounds what this worker
/// sends; what it receives is bounded by the hub's limit (`hub_max_frame`,
/// from its Welcome), which other workers' own limits may reach, plus the
/// slack of a forwarded header. Refusing such a frame would cost this worker
/// its connection to the hub.
fn incoming_limit(max_frame: usize, hub_max_frame: usize) -> usize {
    max_frame
        .max(hub_max_frame)
        .saturating_add(FORWARD_HEADER_SLACK)
}

/// What the link tells JS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Handshake done; the hub calls this worker `node`.
    Up { node: NodeId },
    /// A frame from the hub.
    Frame(Frame),
    /// The connection is gone (or never came up); nothing more will arrive.
    Down { reason: String },
    /// `count` messages queued before the handshake were larger than the
    /// hub's limit (`limit` bytes, unknown until then) and were not sent.
    TooLarge { count: u64, limit: u64 },
}

struct InboxState {
    events: VecDeque<LinkEvent>,
    /// True while JS has been told to drain and has not emptied the inbox yet.
    scheduled: bool,
}

/// Queue of the link thread's events for JS, with a "please drain" signal.
pub struct Inbox {
    state: Mutex<InboxState>,
    wake_js: Box<dyn Fn() + Send + Sync>,
}

impl Inbox {
    /// An inbox that asks JS to drain through `wake_js`.
    pub fn new(wake_js: Box<dyn Fn() + Send + Sync>) -> Self {
        Inbox {
            state: Mutex::new(InboxState {
                events: VecDeque::new(),
                scheduled: false,
            }),
            wake_js,
        }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an event and wakes JS unless a drain is already scheduled.
    pub fn push(&self, ev: LinkEvent) {
        let wake = {
            let mut s = self.lock();
            s.events.push_back(ev);
            !std::mem::replace(&mut s.scheduled, true)
        };
        if wake {
            (self.wake_js)();
        }
    }

    /// Takes up to `max` events. If more remain, JS is woken again (after
    /// this call returns) so other work on the event loop can run in between.
    pub fn drain(&self, max: usize) -> Vec<LinkEvent> {
        let (out, again) = {
            let mut s = self.lock();
            let n = max.min(s.events.len());
            let out: Vec<LinkEvent> = s.events.drain(..n).collect();
            let again = !s.events.is_empty();
            s.scheduled = again;
            (out, again)
        };
        if again {
            (self.wake_js)();
        }
        out
    }
}

/// The receiving side, handed from the link thread to the JS thread once the
/// handshake is done.
struct Incoming {
    /// A duplicate of the socket's fd for JS to read, until JS takes it.
    fd: Option<OwnedFd>,
    /// Frames read so far; holds what arrived right behind the Welcome.
    frames: Option<FrameBuffer>,
    /// The largest frame body the hub accepts (from its Welcome; unbounded
    /// until then).
    hub_max_frame: usize,
}

/// Settings of a link.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// The hub's address (see [`crate::paths`]).
    pub address: String,
    pub pid: u32,
    pub heartbeat_timeout_ms: u32,
    pub max_frame: usize,
    /// Bytes queued toward the hub past which volatile messages are refused.
    pub queue_soft_limit: usize,
    /// Bytes queued toward the hub past which every message but small
    /// bookkeeping frames is refused.
    pub queue_hard_limit: usize,
}

/// A message refused because the queue toward the hub is full: the hub is
/// not reading (a stopped or blocked primary), and memory must stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// Bytes queued when it was refused.
    pub queued: usize,
    /// The limit it would have passed.
    pub limit: usize,
}

/// Queues `bytes` for the link thread, counting them in `queued`.
fn enqueue(tx: &mpsc::UnboundedSender<Bytes>, queued: &AtomicUsize, bytes: Bytes) {
    queued.fetch_add(bytes.len(), Ordering::Relaxed);
    if let Err(e) = tx.send(bytes) {
        queued.fetch_sub(e.0.len(), Ordering::Relaxed);
    }
}

/// Counts `bytes` taken out of the queue.
fn dequeued(queued: &AtomicUsize, bytes: &Bytes) {
    queued.fetch_sub(bytes.len(), Ordering::Relaxed);
}

/// How frames from the JS thread reach the socket.
///
/// While nothing is queued, the JS thread collects the frames of the current
/// tick in `pending` and writes them with one non-blocking `send` when JS
/// calls `flush()` (from a microtask): no thread wake-up and one syscall per
/// tick instead of one per message. Whatever cannot be written at once — the
/// socket is full, or the connection is not up yet — goes to the queue served
/// by the link thread, and from then on everything queues behind it until the
/// link thread has written it all, so frames never overtake each other.
struct Outgoing {
    /// Queue served by the link thread; `None` once JS closed the link.
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    /// A second handle on the connected socket, for direct writes.
    direct: Option<std::os::unix::net::UnixStream>,
    /// True while frames wait in the queue: JS must queue too. `pending` is
    /// always empty while this is true.
    backlog: bool,
    /// Frames of the current tick, written by the next `flush()`.
    pending: Vec<u8>,
    /// Bytes waiting in the queue (shared with the link thread).
    queued: Arc<AtomicUsize>,
    soft_limit: usize,
    hard_limit: usize,
}

/// `pending` is written at once past this size, without waiting for `flush()`.
const FLUSH_AT: usize = 256 * 1024;

impl Outgoing {
    /// Writes `pending` now, or hands what the socket does not take to the
    /// link thread.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut written = 0;
        if let Some(stream) = self.direct.as_ref() {
            match write_now(stream, &self.pending) {
                Ok(n) => written = n,
                // The link thread sees the broken connection and reports it.
                Err(_) => self.direct = None,
            }
        }
        if written < self.pending.len() {
            let rest = Bytes::copy_from_slice(&self.pending[written..]);
            if let Some(tx) = self.tx.as_ref() {
                enqueue(tx, &self.queued, rest);
            }
            self.backlog = true;
        }
        self.pending.clear();
        if self.pending.capacity() > 4 * FLUSH_AT {
            self.pending = Vec::new();
        }
    }
}

impl Outgoing {
    /// Whether a frame of `len` bytes and class `class` may join the queue.
    fn admit(&self, class: Class, len: usize) -> Result<(), QueueFull> {
        let queued = self.queued.load(Ordering::Relaxed);
        let limit = match class {
            Class::Control => return Ok(()),
            Class::Volatile => self.soft_limit.min(self.hard_limit),
            Class::Data => self.hard_limit,
        };
        if queued + len > limit {
            return Err(QueueFull { queued, limit });
        }
        Ok(())
    }
}

struct Sender(Mutex<Outgoing>);

impl Sender {
    fn lock(&self) -> MutexGuard<'_, Outgoing> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection to the hub.
pub struct Link {
    sender: Arc<Sender>,
    inbox: Arc<Inbox>,
    incoming: Arc<Mutex<Incoming>>,
    close: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    /// Starts connecting in the background; events arrive in the inbox.
    pub fn start(
        options: LinkOptions,
        wake_js: Box<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Link> {
        let inbox = Arc::new(Inbox::new(wake_js));
        let incoming = Arc::new(Mutex::new(Incoming {
            fd: None,
            frames: None,
            hub_max_frame: usize::MAX,
        }));
        let thread_incoming = incoming.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let (close, close_rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_inbox = inbox.clone();
        let sender = Arc::new(Sender(Mutex::new(Outgoing {
            tx: Some(tx),
            direct: None,
            backlog: true,
            pending: Vec::new(),
            queued: Arc::new(AtomicUsize::new(0)),
            soft_limit: options.queue_soft_limit,
            hard_limit: options.queue_hard_limit,
        })));
        let thread_sender = sender.clone();
        let thread = std::thread::Builder::new()
            .name("sio-cluster-link".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let result = run(
                        options,
                        rx,
                        close_rx,
                        &thread_inbox,
                        &thread_sender,
                        &thread_incoming,
                    )
                    .await;
                    // Nothing can be written any more: stop direct writes.
                    thread_sender.lock().direct = None;
                    if let Err(reason) = result {
                        thread_inbox.push(LinkEvent::Down { reason });
                    }
                });
            })?;
        Ok(Link {
            sender,
            inbox,
            incoming,
            close: Some(close),
            thread: Some(thread),
        })
    }

    /// Sends a small bookkeeping frame (never refused for a full queue).
    /// False once the link is closed.
    pub fn send(&self, frame: &[u8]) -> bool {
        matches!(
            self.send_with(Class::Control, |out| out.extend_from_slice(frame)),
            Ok(true)
        )
    }

    /// Sends the frame `write` appends to the buffer it is given: the
    /// current tick's buffer, or, while frames wait for the link thread, a
    /// new one for its queue, if the queue has room for a frame of `class`.
    /// `Ok(false)` once the link is closed.
    pub fn send_with(
        &self,
        class: Class,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<bool, QueueFull> {
        let mut out = self.sender.lock();
        let Some(tx) = out.tx.as_ref() else {
            return Ok(false);
        };
        if out.backlog {
            let mut frame = Vec::new();
            write(&mut frame);
            out.admit(class, frame.len())?;
            enqueue(tx, &out.queued, Bytes::from(frame));
            return Ok(true);
        }
        write(&mut out.pending);
        if out.pending.len() >= FLUSH_AT {
            out.flush();
        }
        Ok(true)
    }

    /// Bytes waiting for the link thread to write them.
    pub fn queued_bytes(&self) -> usize {
        self.sender.lock().queued.load(Ordering::Relaxed)
    }

    /// Writes the frames collected since the last flush.
    pub fn flush(&self) {
        self.sender.lock().flush();
    }

    /// Takes up to `max` events of the link thread for JS.
    pub fn drain(&self, max: usize) -> Vec<LinkEvent> {
        self.inbox.drain(max)
    }

    fn incoming(&self) -> MutexGuard<'_, Incoming> {
        self.incoming.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fd JS reads from once the link is up (once; the caller owns it).
    pub fn take_reader(&self) -> Option<RawFd> {
        self.incoming().fd.take().map(IntoRawFd::into_raw_fd)
    }

    /// The largest frame body the hub accepts (`usize::MAX` until it said).
    pub fn hub_max_frame(&self) -> usize {
        self.incoming().hub_max_frame
    }

    /// Takes bytes JS read from the socket and calls `on_frame` with the
    /// header and payload of each frame completed (see [`FrameBuffer::feed`]).
    pub fn feed(
        &self,
        bytes: &[u8],
        on_frame: impl FnMut(Header, &[u8]),
    ) -> Result<(), FrameError> {
        let mut incoming = self.incoming();
        match incoming.frames.as_mut() {
            Some(fb) => fb.feed(bytes, on_frame),
            None => Ok(()),
        }
    }

    /// Sends everything queued so far, then closes the connection. Returns
    /// at once; the thread finishes the flush on its own.
    pub fn close(&mut self) {
        {
            let mut out = self.sender.lock();
            out.flush();
            out.tx = None;
            out.direct = None;
        }
        if let Some(c) = self.close.take() {
            let _ = c.send(());
        }
        // Detach: joining would block the JS thread on a slow flush.
        self.thread.take();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close();
    }
}

async fn run(
    options: LinkOptions,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    mut close_rx: oneshot::Receiver<()>,
    inbox: &Inbox,
    sender: &Sender,
    incoming: &Mutex<Incoming>,
) -> Result<(), String> {
    let address = options.address.clone();
    // A connect blocks while the hub's backlog is full: off this thread.
    let connect = tokio::task::spawn_blocking(move || crate::paths::connect_hub(&address));
    let address = &options.address;
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(Ok(s))) => s,
        Ok(Ok(Err(e))) => return Err(format!("cannot connect to the hub at {address}: {e}")),
        Ok(Err(e)) => return Err(format!("cannot connect to the hub at {address}: {e}")),
        Err(_) => return Err(format!("timed out connecting to the hub at {address}")),
    };
    // Four handles on the socket: the handshake's reader, the link thread's
    // writer, the JS thread's direct writes, and the JS thread's reader.
    let (mut rd, wr, direct, js_reader) = stream
        .set_nonblocking(true)
        .map(|()| stream)
        .and_then(|std| {
            let rd = Reader::new(std.try_clone()?)?;
            // A smaller buffer only costs speed.
            let _ = sock::enlarge_send_buffer(&std);
            let direct = std.try_clone()?;
            let js_reader = OwnedFd::from(std.try_clone()?);
            Ok((rd, std, direct, js_reader))
        })
        .map_err(|e| format!("cannot set up the hub connection: {e}"))?;
    let hello = encode(
        &Header::Hello {
            version: PROTOCOL_VERSION,
            pid: options.pid,
            heartbeat_timeout_ms: options.heartbeat_timeout_ms,
        },
        &[],
    );
    sock::write_all(&wr, &hello)
        .await
        .map_err(|e| format!("cannot greet the hub: {e}"))?;

    // Until the Welcome says otherwise, the hub's default limit.
    let mut fb = FrameBuffer::new(incoming_limit(options.max_frame, DEFAULT_MAX_FRAME));
    let welcome = tokio::time::timeout(CONNECT_TIMEOUT, next_frame(&mut rd, &mut fb)).await;
    match welcome {
        Ok(Ok(Some(Frame {
            header: Header::Welcome {
                node, max_frame, ..
            },
            ..
        }))) => {
            // From here on JS reads: this thread stops watching the socket.
            drop(rd);
            let hub_max_frame = usize::try_from(max_frame).unwrap_or(usize::MAX);
            fb.set_max(incoming_limit(options.max_frame, hub_max_frame));
            *incoming.lock().unwrap_or_else(|e| e.into_inner()) = Incoming {
                fd: Some(js_reader),
                frames: Some(fb),
                hub_max_frame,
            };
            inbox.push(LinkEvent::Up { node });
            let mut out = sender.lock();
            // What JS queued so far was checked against this worker's own
            // limit only: a frame over the hub's would cost the connection.
            let refused = drop_oversized(&mut rx, out.tx.as_ref(), &out.queued, hub_max_frame);
            if refused > 0 {
                inbox.push(LinkEvent::TooLarge {
                    count: refused,
                    limit: max_frame,
                });
            }
            out.direct = Some(direct);
            // Frames JS queued before the connection was up go first.
            out.backlog = !rx.is_empty();
        }
        Ok(Ok(Some(Frame {
            header: Header::Refused { reason },
            ..
        }))) => return Err(format!("the hub refused this worker: {reason}")),
        Ok(Ok(Some(f))) => return Err(format!("unexpected handshake answer: {:?}", f.header)),
        Ok(Ok(None)) => return Err("the hub closed the connection during the handshake".into()),
        Ok(Err(e)) => return Err(format!("bad handshake answer: {e}")),
        Err(_) => return Err("the hub did not answer the handshake".into()),
    }

    let queued = sender.lock().queued.clone();
    let writer = async move {
        let mut buf = Vec::new();
        loop {
            tokio::select! {
                biased;
                frame = rx.recv() => match frame {
                    Some(f) => {
                        dequeued(&queued, &f);
                        buf.extend_from_slice(&f);
                        while let Ok(more) = rx.try_recv() {
                            dequeued(&queued, &more);
                            buf.extend_from_slice(&more);
                        }
                        sock::write_all(&wr, &buf).await.map_err(|e| e.to_string())?;
                        buf.clear();
                        // Queue empty and written: JS may write directly again.
                        let mut out = sender.lock();
                        if rx.is_empty() {
                            out.backlog = false;
                        }
                    }
                    // Every sender is gone: JS closed the link.
                    None => break,
                },
                _ = &mut close_rx => break,
            }
        }
        // Flush what JS queued before closing (e.g. its Unregister frames).
        while let Ok(more) = rx.try_recv() {
            dequeued(&queued, &more);
            buf.extend_from_slice(&more);
        }
        sock::write_all(&wr, &buf)
            .await
            .map_err(|e| e.to_string())?;
        let _ = wr.shutdown(std::net::Shutdown::Write);
        Ok::<(), String>(())
    };
    writer
        .await
        .map_err(|e| format!("lost the hub connection: {e}"))
}

/// Takes the frames queued before the handshake out of `rx`, and queues back
/// (on `tx`, in order) those whose body is at most `max` bytes. Returns how
/// many were left out. Until the link is up nothing is written directly, so
/// the queue holds whole frames (`[u32 LE length][body]`).
fn drop_oversized(
    rx: &mut mpsc::UnboundedReceiver<Bytes>,
    tx: Option<&mpsc::UnboundedSender<Bytes>>,
    queued_bytes: &AtomicUsize,
    max: usize,
) -> u64 {
    let mut queued = Vec::new();
    while let Ok(chunk) = rx.try_recv() {
        dequeued(queued_bytes, &chunk);
        queued.extend_from_slice(&chunk);
    }
    let mut kept = Vec::with_capacity(queued.len());
    let mut refused = 0;
    let mut at = 0;
    while at + 4 <= queued.len() {
        let mut len = [0u8; 4];
        len.copy_from_slice(&queued[at..at + 4]);
        let end = (at + 4).saturating_add(u32::from_le_bytes(len) as usize);
        if end > queued.len() {
            // Cannot happen (whole frames only); keep the bytes as they are.
            kept.extend_from_slice(&queued[at..]);
            at = queued.len();
            break;
        }
        if end - at - 4 <= max {
            kept.extend_from_slice(&queued[at..end]);
        } else {
            refused += 1;
        }
        at = end;
    }
    kept.extend_from_slice(&queued[at..]);
    if let (false, Some(tx)) = (kept.is_empty(), tx) {
        enqueue(tx, queued_bytes, Bytes::from(kept));
    }
    refused
}

async fn next_frame(rd: &mut Reader, fb: &mut FrameBuffer) -> Result<Option<Frame>, String> {
    fb.read_frame(rd, &mut false)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn frames_queued_before_the_handshake_over_the_hub_limit_are_left_out_in_order() {
        let frame = |len: usize, fill: u8| {
            let mut f = (len as u32).to_le_bytes().to_vec();
            f.extend(std::iter::repeat_n(fill, len));
            f
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Two chunks, as two ticks would queue them; the big frame is in the middle.
        let first = [frame(10, 1), frame(100, 2)].concat();
        let second = [frame(20, 3), frame(50, 4)].concat();
        tx.send(Bytes::from(first)).unwrap();
        tx.send(Bytes::from(second)).unwrap();
        let queued = AtomicUsize::new(0);
        assert_eq!(drop_oversized(&mut rx, Some(&tx), &queued, 50), 1);
        let kept = rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err(), "one chunk queued back");
        assert_eq!(
            &kept[..],
            &[frame(10, 1), frame(20, 3), frame(50, 4)].concat()[..]
        );
        // Nothing over the limit: everything goes back as it was.
        tx.send(Bytes::from(frame(5, 9))).unwrap();
        assert_eq!(drop_oversized(&mut rx, Some(&tx), &queued, 50), 0);
        assert_eq!(&rx.try_recv().unwrap()[..], &frame(5, 9)[..]);
    }

    #[test]
    fn a_full_queue_refuses_volatile_first_then_data_never_control() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let out = Outgoing {
            tx: Some(tx),
            direct: None,
            backlog: true,
            pending: Vec::new(),
            queued: Arc::new(AtomicUsize::new(0)),
            soft_limit: 100,
            hard_limit: 200,
        };
        assert!(out.admit(Class::Volatile, 100).is_ok());
        out.queued.store(150, Ordering::Relaxed);
        assert_eq!(
            out.admit(Class::Volatile, 1),
            Err(QueueFull {
                queued: 150,
                limit: 100
            })
        );
        assert!(out.admit(Class::Data, 50).is_ok());
        assert!(out.admit(Class::Data, 51).is_err());
        assert!(out.admit(Class::Control, 10_000).is_ok());
    }

    #[test]
    fn a_worker_accepts_what_the_hub_accepts_whatever_its_own_limit() {
        const MIB: usize = 1 << 20;
        // A worker with a small limit, a hub with a large one: other workers may send up to the hub's.
        assert!(incoming_limit(MIB / 64, 128 * MIB) > 128 * MIB);
        // A worker with a large limit under a default hub: its own limit stands.
        assert!(incoming_limit(128 * MIB, DEFAULT_MAX_FRAME) > 128 * MIB);
        // A forwarded header may be a little longer than the sender's.
        assert!(incoming_limit(MIB, MIB) >= MIB + 64);
        assert_eq!(incoming_limit(usize::MAX, 1), usize::MAX);
    }

    #[test]
    fn inbox_wakes_js_once_per_drain_cycle() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        let inbox = Inbox::new(Box::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        for _ in 0..5 {
            inbox.push(LinkEvent::Up { node: 1 });
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(inbox.drain(2).len(), 2);
        // Three left: JS is asked to come back.
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        assert_eq!(inbox.drain(10).len(), 3);
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        inbox.push(LinkEvent::Up { node: 1 });
        assert_eq!(wakes.load(Ordering::SeqCst), 3);
    }
}
