//! What the copies on a worker's receive path cost, measured apart from
//! everything else the worker does with a message.
//!
//! Until 2026-12 a message from the hub was copied three times after the
//! kernel handed it to JS: into the link's frame buffer, into the batch of
//! records (`batch::encode`), and into the Buffer Node allocates for JS
//! (`BufferSlice::copy_from`) ("before" below). `Link::feed` now reads the
//! frames wholly inside a read where they are (`FrameBuffer::feed`), so only a
//! frame that straddles two reads is gathered first ("in place": 2 copies).
//! A third path hands the batch to Node without the last copy ("shared": 1
//! copy; what Node's finalizer of an external buffer costs is not counted,
//! so it is not used). Same bytes, interleaved, medians of 9 rounds.
//!
//! Run: `cargo run --release --example receive_path`.

use std::time::Instant;

use socket_io_cluster_rs::batch;
use socket_io_cluster_rs::frame::{encode, FrameBuffer, Header};
use socket_io_cluster_rs::link::LinkEvent;

/// What JS reads from the hub socket at once (lib/link.js READ_BUFFER).
const CHUNK: usize = 256 * 1024;
const ROUNDS: usize = 9;

/// A stream of `n` hub → worker Message frames with `size`-byte payloads.
fn stream(size: usize, n: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let header = Header::Message {
        nsp: "/".into(),
        from: 2,
        kind: 3,
    };
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend_from_slice(&encode(&header, &payload));
    }
    out
}

/// The path before: returns the bytes handed to JS, as a checksum.
fn current(bytes: &[u8]) -> usize {
    let mut fb = FrameBuffer::new(usize::MAX);
    let mut handed = 0;
    for chunk in bytes.chunks(CHUNK) {
        fb.extend(chunk);
        let mut events = Vec::new();
        while let Some(frame) = fb.next_frame().expect("frames") {
            events.push(LinkEvent::Frame(frame));
        }
        let mut out = Vec::with_capacity(batch::size_hint(&events));
        batch::encode(events, &mut out);
        // BufferSlice::copy_from: the batch copied into memory Node allocates.
        let for_js = out.clone();
        handed += std::hint::black_box(for_js).len();
    }
    handed
}

/// The path of `Link::feed` now: frames read where they are in the chunk
/// (`FrameBuffer::feed`), records written from there, and the batch copied
/// for Node unless `final_copy` is false.
fn in_place(bytes: &[u8], final_copy: bool) -> usize {
    let mut fb = FrameBuffer::new(usize::MAX);
    let mut handed = 0;
    for chunk in bytes.chunks(CHUNK) {
        let mut out = Vec::with_capacity(chunk.len() + 1024);
        fb.feed(chunk, |header, payload| {
            batch::encode_frame(header, payload, &mut out)
        })
        .expect("frames");
        let for_js = if final_copy { out.clone() } else { out };
        handed += std::hint::black_box(for_js).len();
    }
    handed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    println!("| payload | messages | before (3 copies) ns/msg | in place (2) ns/msg | ratio | shared (1) ns/msg | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for (size, n) in [
        (100, 200_000),
        (1024, 100_000),
        (10 * 1024, 20_000),
        (100 * 1024, 2_000),
    ] {
        let bytes = stream(size, n);
        let want = current(&bytes);
        assert_eq!(in_place(&bytes, true), want, "same records");
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let t = Instant::now();
            current(&bytes);
            a.push(t.elapsed().as_nanos() as f64 / n as f64);
            let t = Instant::now();
            in_place(&bytes, true);
            b.push(t.elapsed().as_nanos() as f64 / n as f64);
            let t = Instant::now();
            in_place(&bytes, false);
            c.push(t.elapsed().as_nanos() as f64 / n as f64);
        }
        let (a, b, c) = (median(a), median(b), median(c));
        println!(
            "| {size} B | {n} | {a:.0} | {b:.0} | ×{:.2} | {c:.0} | ×{:.2} |",
            b / a,
            c / a
        );
    }
}
