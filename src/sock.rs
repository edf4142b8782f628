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

use std::io::{self, Read};
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
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|s| s.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
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

/// Writes all of `buf`. While the socket is full, waits for write readiness
/// on a registration that exists only for that wait.
pub async fn write_all(stream: &UnixStream, buf: &[u8]) -> io::Result<()> {
    let mut off = write_now(stream, buf)?;
    if off == buf.len() {
        return Ok(());
    }
    let full = register(stream.try_clone()?, Interest::WRITABLE)?;
    while off < buf.len() {
        let mut guard = full.writable().await?;
        match guard.try_io(|s| match write_now(s.get_ref(), &buf[off..])? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }) {
            Ok(n) => off += n?,
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn a_full_socket_is_written_once_the_peer_reads() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (a, b) = UnixStream::pair().expect("pair");
            a.set_nonblocking(true).expect("nonblocking");
            // Far more than a socket buffer holds.
            let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
            let mut reader = Reader::new(b).expect("reader");
            let read = async {
                let mut got = Vec::new();
                while got.len() < data.len() {
                    let mut chunk = vec![0u8; 65536];
                    let n = reader.read(&mut chunk).await.expect("read");
                    assert!(n > 0, "early end of stream");
                    got.extend_from_slice(&chunk[..n]);
                }
                got
            };
            let (written, got) = tokio::join!(write_all(&a, &data), read);
            written.expect("write_all");
            assert!(got == data, "bytes arrived changed or out of order");
            drop(a);
            let mut rest = [0u8; 1];
            assert_eq!(reader.read(&mut rest).await.expect("eof"), 0);
        });
    }
}
