//! Unix stream sockets on tokio without write-readiness wake-ups.
//!
//! tokio's `UnixStream` registers with edge-triggered epoll for readable *and*
//! writable readiness. On a Unix stream socket the kernel signals "writable"
//! to the writer every time its peer reads, so each frame the hub read woke the
//! sending worker's link thread, and each frame a worker read woke the hub,
//! for nothing: one useless context switch per message in each direction
//! (seen with `perf sched`). Here the reading side registers read interest
//! only; writes go straight to the socket, and only a writer that finds the
//! socket full registers for write readiness, until its backlog is written.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, Interest, ReadBuf};

/// The reading side of a connection: registered for read readiness only.
pub struct Reader(AsyncFd<UnixStream>);

impl Reader {
    /// Reads from `stream` (a handle of its own; see [`UnixStream::try_clone`]).
    /// Must be called inside a tokio runtime.
    pub fn new(stream: UnixStream) -> io::Result<Reader> {
        stream.set_nonblocking(true)?;
        Ok(Reader(register(stream, Interest::READABLE)?))
    }
}

/// Registers `stream` with the current runtime's reactor for `interest`.
fn register(stream: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
    // SAFETY: a `UnixStream` owns its fd: it stays open and is the same fd
    // for as long as the stream lives, which is as long as the `AsyncFd`, and
    // nothing here swaps the stream out through `get_mut`.
    Ok(unsafe { AsyncFd::register_with_interest(stream, interest) }?)
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            // Read into the spare capacity as it is: zeroing it first (what
            // `initialize_unfilled` does) cost a memset of up to the whole
            // read buffer per read.
            // SAFETY: the slice is only handed to recv(2), which writes bytes
            // into it and never reads it; nothing de-initializes it.
            let unfilled = unsafe { buf.unfilled_mut() };
            let room = unfilled.len();
            match guard.try_io(|s| recv_into(s.get_ref(), unfilled)) {
                Ok(Ok(n)) => {
                    // Less than asked for: the socket is drained (a stream
                    // socket hands over all it has). Wait for the next event
                    // instead of finding out with a recv(2) that fails with
                    // EAGAIN: one syscall less per wake-up. Data that came in
                    // meanwhile has raised a new event, which this does not
                    // clear, nor does it clear the end of the stream.
                    if n > 0 && n < room {
                        guard.clear_ready();
                    }
                    // SAFETY: recv(2) initialized the first `n` bytes of the
                    // unfilled part, and `n` is at most its length.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Readiness was stale and has been cleared: wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

/// One recv(2) into possibly uninitialized memory; returns the bytes read.
fn recv_into(stream: &UnixStream, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration
    // of the call, and the fd belongs to `stream`, which outlives it.
    let n = unsafe { libc::recv(stream.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Send buffer asked for on every hub connection, in both directions.
///
/// With the default (`net.core.wmem_default`, 208 KiB) a burst of large
/// broadcasts fills the socket many times over: the writer stops, the reader
/// drains a little and wakes it, and each round costs both sides a context
/// switch. A larger buffer lets a tick's frames go out in one write (the
/// measurement is in docs/benchmarks.md). The kernel caps it at
/// `net.core.wmem_max`.
pub const SEND_BUFFER: usize = 1 << 20;

/// Asks the kernel for a send buffer of [`SEND_BUFFER`] bytes on `stream`.
pub fn enlarge_send_buffer(stream: &UnixStream) -> io::Result<()> {
    let val = SEND_BUFFER as libc::c_int;
    // SAFETY: `val` lives across the call and its size is passed with it; the
    // fd belongs to `stream`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes as much of `buf` as the socket takes now, without blocking.
/// `Ok(n)` with `n < buf.len()` means the socket is full.
pub fn write_now(stream: &UnixStream, buf: &[u8]) -> io::Result<usize> {
    let mut off = 0;
    while off < buf.len() {
        let rest = &buf[off..];
        // SAFETY: `rest` is a valid, initialized byte slice for the duration of
        // the call and the fd belongs to `stream`, which outlives it.
        // MSG_NOSIGNAL: a closed peer gives EPIPE instead of SIGPIPE.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            off += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => break,
            _ => return Err(err),
        }
    }
    Ok(off)
}

/// Writes all of `buf`; see [`write_all_slices`].
pub async fn write_all(stream: &UnixStream, buf: &[u8]) -> io::Result<()> {
    write_all_slices(stream, &[buf]).await
}

/// Sends as much of `slices` from `pos` on as the socket takes now, with one
/// sendmsg(2), without blocking. Returns the bytes sent, 0 when the socket is
/// full.
fn send_slices_now(stream: &UnixStream, slices: &[&[u8]], pos: SlicePos) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOV];
    let mut n_iov = 0;
    for (i, slice) in slices.iter().enumerate().skip(pos.idx) {
        if n_iov == MAX_IOV {
            break;
        }
        let part = if i == pos.idx {
            &slice[pos.off..]
        } else {
            slice
        };
        if part.is_empty() {
            continue;
        }
        iov[n_iov] = libc::iovec {
            iov_base: part.as_ptr() as *mut libc::c_void,
            iov_len: part.len(),
        };
        n_iov += 1;
    }
    if n_iov == 0 {
        return Ok(0);
    }
    // SAFETY: a zeroed msghdr is a valid empty header; only the iovec fields
    // are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n_iov as _;
    loop {
        // SAFETY: every iovec points into a slice borrowed for the duration of
        // the call (sendmsg only reads them), and the fd belongs to `stream`.
        // MSG_NOSIGNAL: a closed peer gives EPIPE instead of SIGPIPE.
        let n = unsafe {
            libc::sendmsg(
                stream.as_raw_fd(),
                &msg,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(err),
        }
    }
}

/// At most this many slices go into one sendmsg(2) (IOV_MAX is 1024).
const MAX_IOV: usize = 64;

/// How far [`write_all_slices`] got: slice index and offset in that slice.
#[derive(Clone, Copy, Debug, Default)]
struct SlicePos {
    idx: usize,
    off: usize,
}

impl SlicePos {
    fn advance(&mut self, slices: &[&[u8]], mut n: usize) {
        while n > 0 && self.idx < slices.len() {
            let left = slices[self.idx].len() - self.off;
            if n < left {
                self.off += n;
                return;
            }
            n -= left;
            self.idx += 1;
            self.off = 0;
        }
    }

    /// True when nothing is left to send (empty slices count as sent).
    fn done(&self, slices: &[&[u8]]) -> bool {
        slices
            .iter()
            .skip(self.idx)
            .enumerate()
            .all(|(i, s)| s.len() == if i == 0 { self.off } else { 0 })
    }
}

/// Writes all of `slices`, in order, as if they were one buffer (gathered by
/// the kernel: nothing is copied into a contiguous buffer first). While the
/// socket is full, waits for write readiness on a registration that exists
/// only for that wait.
pub async fn write_all_slices(stream: &UnixStream, slices: &[&[u8]]) -> io::Result<()> {
    let mut pos = SlicePos::default();
    loop {
        let n = send_slices_now(stream, slices, pos)?;
        if n == 0 {
            break;
        }
        pos.advance(slices, n);
    }
    if pos.done(slices) {
        return Ok(());
    }
    let full = register(stream.try_clone()?, Interest::WRITABLE)?;
    while !pos.done(slices) {
        let mut guard = full.writable().await?;
        match guard.try_io(|s| match send_slices_now(s.get_ref(), slices, pos)? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }) {
            Ok(n) => pos.advance(slices, n?),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// Reads until `len` bytes arrived; fails on an early end of stream.
    async fn read_len(reader: &mut Reader, len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < len {
            let mut chunk = vec![0u8; 65536];
            let n = reader.read(&mut chunk).await.expect("read");
            assert!(n > 0, "early end of stream");
            got.extend_from_slice(&chunk[..n]);
        }
        got
    }

    /// Runs `test` on a runtime with a connected pair: a non-blocking writer
    /// and a [`Reader`].
    fn with_pair<F: std::future::Future<Output = ()>>(test: impl FnOnce(UnixStream, Reader) -> F) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (a, b) = UnixStream::pair().expect("pair");
            a.set_nonblocking(true).expect("nonblocking");
            test(a, Reader::new(b).expect("reader")).await
        });
    }

    fn send_buffer(stream: &UnixStream) -> usize {
        let mut val: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `val` and `len` outlive the call and `len` is `val`'s size.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&mut val as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
        val as usize
    }

    #[test]
    fn the_send_buffer_grows_as_far_as_the_kernel_allows() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let before = send_buffer(&a);
        enlarge_send_buffer(&a).expect("setsockopt");
        let cap = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok());
        let after = send_buffer(&a);
        match cap {
            // Linux doubles what it grants, for its bookkeeping.
            Some(max) => assert_eq!(after, 2 * SEND_BUFFER.min(max)),
            None => assert!(after >= before),
        }
    }

    #[test]
    fn a_full_socket_is_written_once_the_peer_reads() {
        with_pair(|a, mut reader| async move {
            // Far more than a socket buffer holds.
            let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
            let (written, got) =
                tokio::join!(write_all(&a, &data), read_len(&mut reader, data.len()));
            written.expect("write_all");
            assert!(got == data, "bytes arrived changed or out of order");
            drop(a);
            let mut rest = [0u8; 1];
            assert_eq!(reader.read(&mut rest).await.expect("eof"), 0);
        });
    }

    #[test]
    fn slices_are_written_in_order_through_a_full_socket() {
        with_pair(|a, mut reader| async move {
            // Sizes from empty to larger than a socket buffer, more slices
            // than one sendmsg takes.
            let owned: Vec<Vec<u8>> = (0..300u32)
                .map(|i| {
                    let len = match i % 7 {
                        0 => 0,
                        1 => 1,
                        2 => 300_000,
                        _ => (i as usize * 37) % 5000,
                    };
                    (0..len).map(|j| ((i as usize + j) % 251) as u8).collect()
                })
                .collect();
            let slices: Vec<&[u8]> = owned.iter().map(|v| v.as_slice()).collect();
            let expected: Vec<u8> = owned.concat();
            let (written, got) = tokio::join!(
                write_all_slices(&a, &slices),
                read_len(&mut reader, expected.len())
            );
            written.expect("write_all_slices");
            assert!(got == expected, "bytes arrived changed or out of order");
        });
    }

    #[test]
    fn a_drained_socket_still_wakes_its_reader_for_what_comes_later() {
        with_pair(|a, mut reader| async move {
            use std::io::Write;
            let mut buf = vec![0u8; 1024];
            (&a).write_all(b"one").expect("write");
            // Fewer bytes than asked for: the reader stops watching until
            // the next event.
            assert_eq!(reader.read(&mut buf).await.expect("read"), 3);
            let later = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                (&a).write_all(b"two").expect("write");
                a
            });
            let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf))
                .await
                .expect("woken for data written after the socket was drained")
                .expect("read");
            assert_eq!(&buf[..n], b"two");
            // Data and the end of the stream arriving together: the end is
            // still seen after the data was read.
            let a = later.join().expect("writer");
            (&a).write_all(b"x").expect("write");
            drop(a);
            assert_eq!(reader.read(&mut buf).await.expect("read"), 1);
            let end = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf))
                .await
                .expect("woken for the end of the stream");
            assert_eq!(end.expect("eof"), 0);
        });
    }
}
