//! A real hub and three real links over a Unix socket: the handshake,
//! broadcasts, room routing, a request answered end to end, and a worker
//! leaving. Each link is driven the way lib/link.js drives it through the
//! binding: frames are sent with `send_with()` and `flush()`, the link's events
//! are drained, and once it is up its frames are read from the fd it hands
//! over and fed back to it.

use std::io::{ErrorKind, Read};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket_io_cluster_rs::frame::{encode, Frame, Header};
use socket_io_cluster_rs::hub::{Hub, HubEvent, HubOptions};
use socket_io_cluster_rs::link::{Link, LinkEvent, LinkOptions};
use socket_io_cluster_rs::router::Class;

/// Every wait in this file ends by then.
const WAIT: Duration = Duration::from_secs(5);

/// A private directory for one test's hub socket, removed at the end.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new(name: &str) -> SocketDir {
        let dir = std::env::temp_dir().join(format!("sio-rs-it-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        SocketDir(dir)
    }

    fn address(&self) -> String {
        self.0.join("hub.sock").to_string_lossy().into_owned()
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A hub whose events are recorded.
fn start_hub(address: &str) -> (Hub, Arc<Mutex<Vec<HubEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let hub = Hub::start(
        address,
        HubOptions::default(),
        Box::new(move |e| sink.lock().expect("events").push(e)),
    )
    .expect("hub starts");
    (hub, events)
}

fn wait_for_hub_event(
    events: &Mutex<Vec<HubEvent>>,
    what: &str,
    found: impl Fn(&HubEvent) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if events.lock().expect("events").iter().any(&found) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no hub event {what}: {:?}", events.lock().expect("events"));
}

/// One worker's link, read like lib/link.js reads it.
struct Worker {
    link: Link,
    node: u32,
    pid: u32,
    reader: UnixStream,
    frames: Vec<Frame>,
}

impl Worker {
    fn connect(address: &str, pid: u32) -> Worker {
        let link = Link::start(
            LinkOptions {
                address: address.to_string(),
                pid,
                heartbeat_timeout_ms: 10_000,
                max_frame: 1 << 20,
                queue_soft_limit: 1 << 24,
                queue_hard_limit: 1 << 26,
            },
            Box::new(|| {}),
        )
        .expect("link starts");
        let deadline = Instant::now() + WAIT;
        let node = loop {
            assert!(Instant::now() < deadline, "link of pid {pid} never came up");
            match link.drain(64).into_iter().find_map(|e| match e {
                LinkEvent::Up { node } => Some(Ok(node)),
                LinkEvent::Down { reason } => Some(Err(reason)),
                _ => None,
            }) {
                Some(Ok(node)) => break node,
                Some(Err(reason)) => panic!("link of pid {pid} went down: {reason}"),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let fd = link
            .take_reader()
            .expect("the reader fd, once the link is up");
        // SAFETY: take_reader() hands over a descriptor that nothing else owns
        // or closes (the caller owns it from then on); this stream is its only owner.
        let reader = unsafe { UnixStream::from_raw_fd(fd) };
        reader
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("read timeout");
        let mut worker = Worker {
            link,
            node,
            pid,
            reader,
            frames: Vec::new(),
        };
        // Frames that arrived right behind the handshake.
        worker.feed(&[]);
        worker
    }

    fn send(&self, header: &Header, payload: &[u8]) {
        let frame = encode(header, payload);
        let sent = self
            .link
            .send_with(Class::Data, |out| out.extend_from_slice(&frame));
        assert_eq!(sent, Ok(true), "frame {header:?} accepted by the link");
        self.link.flush();
    }

    fn feed(&mut self, bytes: &[u8]) {
        let frames = &mut self.frames;
        self.link
            .feed(bytes, |header, payload| {
                frames.push(Frame {
                    header,
                    payload: payload.to_vec().into(),
                })
            })
            .expect("frames from the hub");
    }

    /// Reads from the hub for `window`, keeping the frames that arrive.
    fn read_for(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        let mut buf = vec![0; 256 * 1024];
        while Instant::now() < deadline {
            match self.reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => self.feed(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("reading from the hub: {e}"),
            }
        }
    }

    /// Takes the first frame (in arrival order) that `pick` accepts, reading
    /// until one arrives.
    fn expect<T>(&mut self, what: &str, pick: impl Fn(&Frame) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.frames.iter().position(|f| pick(f).is_some()) {
                let frame = self.frames.remove(i);
                return pick(&frame).expect("picked");
            }
            assert!(
                Instant::now() < deadline,
                "node {} never got {what}; got {:?}",
                self.node,
                self.frames
            );
            self.read_for(Duration::from_millis(20));
        }
    }

    /// Registers namespace `nsp` and waits until the hub counts `workers` in it.
    fn register_and_count(&mut self, nsp: &str, workers: u32) {
        self.send(&Header::Register { nsp: nsp.into() }, &[]);
        self.wait_count(nsp, workers);
    }

    /// Asks the hub how many workers serve `nsp` until it says `workers`.
    /// Also proves the hub has handled what this link sent before.
    fn wait_count(&mut self, nsp: &str, workers: u32) {
        let deadline = Instant::now() + WAIT;
        for req in 1000.. {
            self.send(
                &Header::CountQuery {
                    req,
                    nsp: nsp.into(),
                },
                &[],
            );
            let count = self.expect("a Count answer", |f| match f.header {
                Header::Count { req: r, count } if r == req => Some(count),
                _ => None,
            });
            if count == workers {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{nsp} has {count} workers, not {workers}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn messages(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| matches!(f.header, Header::Message { .. }))
            .count()
    }
}

fn message_payload(f: &Frame, nsp: &str, from: u32) -> Option<Vec<u8>> {
    match &f.header {
        Header::Message {
            nsp: n, from: s, ..
        } if n == nsp && *s == from => Some(f.payload.to_vec()),
        _ => None,
    }
}

#[test]
fn workers_handshake_and_broadcasts_reach_every_other_worker() {
    let dir = SocketDir::new("broadcast");
    let (_hub, events) = start_hub(&dir.address());
    let mut a = Worker::connect(&dir.address(), 4001);
    let mut b = Worker::connect(&dir.address(), 4002);
    assert_ne!(a.node, b.node, "each worker has its own node id");
    for w in [&a, &b] {
        let (node, pid) = (w.node, w.pid);
        wait_for_hub_event(&events, "Connected", |e| {
            *e == HubEvent::Connected { node, pid }
        });
    }
    a.register_and_count("/", 1);
    b.register_and_count("/", 2);

    a.send(
        &Header::Publish {
            nsp: "/".into(),
            kind: 3,
            volatile: false,
            rooms: vec![],
        },
        b"hello from a",
    );
    let got = b.expect("A's broadcast", |f| message_payload(f, "/", a.node));
    assert_eq!(got, b"hello from a");
    a.read_for(Duration::from_millis(100));
    assert_eq!(
        a.messages(),
        0,
        "a broadcast does not come back to its sender"
    );
}

#[test]
fn room_broadcasts_reach_only_workers_with_a_member() {
    let dir = SocketDir::new("rooms");
    let (_hub, _events) = start_hub(&dir.address());
    let mut a = Worker::connect(&dir.address(), 4101);
    let mut b = Worker::connect(&dir.address(), 4102);
    let mut c = Worker::connect(&dir.address(), 4103);
    a.register_and_count("/", 1);
    b.register_and_count("/", 2);
    c.register_and_count("/", 3);
    b.send(
        &Header::RoomAdd {
            nsp: "/".into(),
            room: "\"lobby\"".into(),
        },
        &[],
    );
    // The round trip proves the hub has B's room.
    b.wait_count("/", 3);

    a.send(
        &Header::Publish {
            nsp: "/".into(),
            kind: 3,
            volatile: false,
            rooms: vec!["\"lobby\"".into()],
        },
        b"to the lobby",
    );
    let got = b.expect("the room broadcast", |f| message_payload(f, "/", a.node));
    assert_eq!(got, b"to the lobby");
    c.read_for(Duration::from_millis(150));
    assert_eq!(
        c.messages(),
        0,
        "a worker without a member in the room gets nothing"
    );
}

#[test]
fn a_request_is_answered_end_to_end_and_a_closed_worker_is_reported() {
    let dir = SocketDir::new("request");
    let (_hub, events) = start_hub(&dir.address());
    let mut a = Worker::connect(&dir.address(), 4201);
    let mut b = Worker::connect(&dir.address(), 4202);
    a.register_and_count("/", 1);
    b.register_and_count("/", 2);

    a.send(
        &Header::Request {
            req: 7,
            nsp: "/".into(),
            kind: 9,
            timeout_ms: 3000,
            keep: false,
            rooms: vec![],
        },
        b"question",
    );
    let a_node = a.node;
    let (id, payload) = b.expect("the Incoming request", |f| match &f.header {
        Header::Incoming {
            id,
            nsp,
            from,
            kind: 9,
        } if nsp == "/" && *from == a_node => Some((*id, f.payload.to_vec())),
        _ => None,
    });
    assert_eq!(payload, b"question");
    b.send(&Header::Respond { id, last: true }, b"answer");
    let b_node = b.node;
    let (answer, done) = a.expect("B's Reply", |f| match f.header {
        Header::Reply {
            req: 7,
            from,
            last: true,
            done,
        } if from == b_node => Some((f.payload.to_vec(), done)),
        _ => None,
    });
    assert_eq!(answer, b"answer");
    if !done {
        a.expect("Done", |f| {
            matches!(f.header, Header::Done { req: 7 }).then_some(())
        });
    }

    let (node, pid) = (b.node, b.pid);
    b.link.close();
    wait_for_hub_event(
        &events,
        "Disconnected for the closed worker",
        |e| matches!(e, HubEvent::Disconnected { node: n, pid: p, .. } if *n == node && *p == pid),
    );
    a.wait_count("/", 1);
}
