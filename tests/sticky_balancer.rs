//! A real balancer and real worker channels: TCP clients connect to the
//! balancer's port, and the connections arrive at the worker the request
//! calls for, with the bytes already read, as descriptors the "worker" then
//! answers through. Covers routing by session id, a connection handed back,
//! the session of a worker that is gone, and garbage.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

use socket_io_cluster_rs::sticky::channel::WorkerChannel;
use socket_io_cluster_rs::sticky::{Balancer, StickyOptions};

const WAIT: Duration = Duration::from_secs(5);

struct Worker {
    channel: WorkerChannel,
    arrived: mpsc::Receiver<(OwnedFd, Vec<u8>)>,
}

fn worker(hub: &str, pid: u32) -> Worker {
    let (tx, arrived) = mpsc::channel();
    let channel = WorkerChannel::connect(
        hub,
        pid,
        Box::new(move |fd, bytes| {
            let _ = tx.send((fd, bytes));
        }),
        Box::new(|_| {}),
    )
    .unwrap();
    Worker { channel, arrived }
}

fn hub_address(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("sio-rs-sticky-{}-{name}", std::process::id()));
    dir.join("hub.sock").to_string_lossy().into_owned()
}

fn start(name: &str) -> (Balancer, String) {
    let hub = hub_address(name);
    let options = StickyOptions {
        host: "127.0.0.1".into(),
        headers_timeout: Duration::from_millis(300),
        ..StickyOptions::default()
    };
    (Balancer::start(&hub, options).unwrap(), hub)
}

fn request(sid: Option<&str>) -> String {
    let q = sid.map_or(String::new(), |s| format!("&sid={s}"));
    format!("GET /socket.io/?EIO=4&transport=polling{q} HTTP/1.1\r\nHost: x\r\n\r\n")
}

fn sid_of(pid: u32) -> String {
    let mut digits = Vec::new();
    let mut n = pid;
    while n > 0 {
        digits.push(std::char::from_digit(n % 36, 36).unwrap());
        n /= 36;
    }
    format!("abcdefghij.{}", digits.iter().rev().collect::<String>())
}

fn wait_for_workers(b: &Balancer, n: usize) {
    let until = std::time::Instant::now() + WAIT;
    while b.stats().workers.len() < n {
        assert!(
            std::time::Instant::now() < until,
            "workers never registered"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_all(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn sessions_reach_their_worker_and_a_handed_back_connection_reaches_the_other() {
    let (balancer, hub) = start("route");
    let a = worker(&hub, 4001);
    let b = worker(&hub, 4002);
    wait_for_workers(&balancer, 2);
    let port = balancer.local_addr().port();

    for (w, pid) in [(&a, 4001), (&b, 4002), (&a, 4001)] {
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let req = request(Some(&sid_of(pid)));
        client.write_all(req.as_bytes()).unwrap();
        let (fd, bytes) = w.arrived.recv_timeout(WAIT).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), req);
        let mut conn = TcpStream::from(fd);
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        drop(conn);
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(read_all(client).ends_with("ok"));
    }

    // A keep-alive connection of A's carries a request of B's session: A
    // hands it back, and it arrives at B with that request.
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .write_all(request(Some(&sid_of(4001))).as_bytes())
        .unwrap();
    let (fd, _) = a.arrived.recv_timeout(WAIT).unwrap();
    let second = request(Some(&sid_of(4002)));
    a.channel.hand_back(fd.as_fd(), second.as_bytes()).unwrap();
    drop(fd);
    let (fd, bytes) = b.arrived.recv_timeout(WAIT).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), second);
    TcpStream::from(fd)
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nby")
        .unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(read_all(client).ends_with("by"));

    let stats = balancer.stats();
    assert_eq!((stats.handed, stats.handed_back), (5, 1));
}

#[test]
fn gone_sessions_garbage_and_silence_are_answered_and_closed() {
    let (balancer, hub) = start("refuse");
    let a = worker(&hub, 5001);
    wait_for_workers(&balancer, 1);
    let port = balancer.local_addr().port();

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .write_all(request(Some(&sid_of(5002))).as_bytes())
        .unwrap();
    let answer = read_all(client);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.ends_with(r#"{"code":1,"message":"Session ID unknown"}"#));

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
    assert!(read_all(client).starts_with("HTTP/1.1 400 "));

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(&vec![b'a'; 20_000]).unwrap();
    assert!(read_all(client).starts_with("HTTP/1.1 431 "));

    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(read_all(client).starts_with("HTTP/1.1 408 "));

    // None of it reached the worker; a good request still does.
    assert!(a.arrived.try_recv().is_err());
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(request(None).as_bytes()).unwrap();
    assert!(a.arrived.recv_timeout(WAIT).is_ok());

    let s = balancer.stats();
    assert_eq!(
        (
            s.unknown_sessions,
            s.bad_requests,
            s.too_large,
            s.header_timeouts
        ),
        (1, 1, 1, 1)
    );
    drop(a);
    // Without workers: 503.
    let until = std::time::Instant::now() + WAIT;
    while !balancer.stats().workers.is_empty() {
        assert!(std::time::Instant::now() < until);
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(request(None).as_bytes()).unwrap();
    assert!(read_all(client).starts_with("HTTP/1.1 503 "));
}
