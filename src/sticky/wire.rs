//! The handoff channel between the balancer and a worker: small messages on a
//! Unix stream, some carrying a file descriptor (SCM_RIGHTS).
//!
//! A message is `[u32 LE length][u8 kind][payload]`, `length` counting the kind
//! and the payload. It is written with one `sendmsg()`, its descriptor (if
//! any) attached to that call: the kernel delivers the descriptor together
//! with the message's first bytes, never after them. The reader queues every
//! descriptor it receives and gives the next one to each message whose kind
//! carries one, so descriptors and messages pair up whatever the reads
//! coalesce.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Worker → balancer, first message: the worker's pid (u32 LE).
pub const HELLO: u8 = 1;
/// Balancer → worker: a client connection (the descriptor) and the bytes
/// already read from it.
pub const CONNECTION: u8 = 2;
/// Worker → balancer: how many Engine.IO clients it serves (u32 LE).
pub const LOAD: u8 = 3;
/// Worker → balancer: a connection whose last request belongs to another
/// worker's session (the descriptor) and that request's bytes.
pub const HAND_BACK: u8 = 4;

/// The largest message either side accepts: a handed-back request carries a
/// polling POST body, which Engine.IO bounds by `maxHttpBufferSize` (1 MB by
/// default).
pub const MAX_MESSAGE: usize = 64 << 20;

/// Connections the balancer sends with one `sendmsg()` at most.
pub const MAX_BATCH: usize = 32;

/// Descriptors one read can bring: a batch, with room to spare.
const FDS_PER_READ: usize = 2 * MAX_BATCH;

/// True for the kinds that carry a descriptor.
pub fn carries_fd(kind: u8) -> bool {
    kind == CONNECTION || kind == HAND_BACK
}

/// One decoded message.
#[derive(Debug)]
pub struct Message {
    pub kind: u8,
    pub payload: Vec<u8>,
    pub fd: Option<OwnedFd>,
}

/// Appends a message of `kind` with `payload` to `out`.
pub fn encode(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Sends what is left of `bytes` (whole messages), `sent` bytes of which went
/// already, with one `sendmsg()`; `fds` (one per message that carries one,
/// in order) ride on the call that sends the first byte. Returns how many
/// bytes this call sent; non-blocking sockets return `WouldBlock` as usual.
pub fn send_part(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    sent: usize,
) -> io::Result<usize> {
    let iov = [IoSlice::new(&bytes[sent..])];
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if sent == 0 && !raw.is_empty() {
        &rights
    } else {
        &[]
    };
    sendmsg::<()>(socket.as_raw_fd(), &iov, cmsgs, send_flags(), None).map_err(io::Error::from)
}

/// Sends one message on a blocking socket.
pub fn send_blocking(
    socket: BorrowedFd<'_>,
    kind: u8,
    payload: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(payload.len() + 5);
    encode(&mut bytes, kind, payload);
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    let mut sent = 0;
    while sent < bytes.len() {
        match send_part(socket, &bytes, &fds, sent) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_flags() -> MsgFlags {
    // A peer that went away is an error to handle, not a SIGPIPE.
    MsgFlags::MSG_NOSIGNAL
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_flags() -> MsgFlags {
    MsgFlags::empty()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv_flags() -> MsgFlags {
    MsgFlags::MSG_CMSG_CLOEXEC
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn recv_flags() -> MsgFlags {
    MsgFlags::empty()
}

/// Reads once from `socket` into `buf`, returning the byte count (0 at end of
/// stream) and queueing the descriptors that came with the bytes.
pub fn recv_part(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    let mut cmsg = nix::cmsg_space!([RawFd; FDS_PER_READ]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), recv_flags())
        .map_err(io::Error::from)?;
    let n = msg.bytes;
    let mut truncated = false;
    match msg.cmsgs() {
        Ok(iter) => {
            for c in iter {
                if let ControlMessageOwned::ScmRights(received) = c {
                    for raw in received {
                        // SAFETY: the kernel just installed `raw` in this
                        // process for us (SCM_RIGHTS); nothing else owns it.
                        fds.push_back(unsafe { OwnedFd::from_raw_fd(raw) });
                    }
                }
            }
        }
        Err(_) => truncated = true,
    }
    if truncated {
        // More descriptors than we made room for: the kernel closed the rest,
        // so descriptors and messages can no longer be paired.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptors truncated on the handoff channel",
        ));
    }
    Ok(n)
}

/// Gathers bytes and descriptors into messages.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    pub fds: VecDeque<OwnedFd>,
}

impl Decoder {
    /// Appends bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` while one is incomplete, an error
    /// for a length out of bounds or a message that should carry a descriptor
    /// and came without one (the channel cannot be trusted after either).
    pub fn next_message(&mut self) -> io::Result<Option<Message>> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len == 0 || len > MAX_MESSAGE {
            return Err(invalid(format!("message length {len} out of bounds")));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let kind = self.buf[4];
        let payload = self.buf[5..4 + len].to_vec();
        self.buf.drain(..4 + len);
        let fd = if carries_fd(kind) {
            match self.fds.pop_front() {
                Some(fd) => Some(fd),
                None => {
                    return Err(invalid(format!(
                        "message kind {kind} came without its descriptor"
                    )))
                }
            }
        } else {
            None
        };
        Ok(Some(Message { kind, payload, fd }))
    }
}

fn invalid(text: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, text)
}

/// The u32 of a HELLO or LOAD payload.
pub fn read_u32(payload: &[u8]) -> Option<u32> {
    let b: [u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn read_messages(rx: &UnixStream, want: usize) -> Vec<Message> {
        let mut dec = Decoder::default();
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        while out.len() < want {
            let n = recv_part(rx.as_fd(), &mut buf, &mut dec.fds).unwrap();
            assert!(n > 0, "end of stream before {want} messages");
            dec.push(&buf[..n]);
            while let Some(m) = dec.next_message().unwrap() {
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn descriptors_pair_with_their_messages_whatever_the_reads() {
        let (tx, rx) = UnixStream::pair().unwrap();
        let (mut a1, mut a2) = UnixStream::pair().unwrap();
        let (mut b1, mut b2) = UnixStream::pair().unwrap();
        send_blocking(tx.as_fd(), LOAD, &7u32.to_le_bytes(), None).unwrap();
        send_blocking(
            tx.as_fd(),
            CONNECTION,
            b"GET / HTTP/1.1\r\n",
            Some(a1.as_fd()),
        )
        .unwrap();
        // Two messages with their descriptors in one sendmsg(), as the balancer batches them.
        let mut batch = Vec::new();
        encode(&mut batch, HAND_BACK, b"");
        encode(&mut batch, LOAD, &9u32.to_le_bytes());
        send_part(tx.as_fd(), &batch, &[b1.as_fd()], 0).unwrap();
        // Reads of 3 bytes: a descriptor arrives with its message's first bytes.
        let mut msgs = read_messages(&rx, 4);
        assert_eq!(msgs[0].kind, LOAD);
        assert_eq!(read_u32(&msgs[0].payload), Some(7));
        assert!(msgs[0].fd.is_none());
        assert_eq!(msgs[1].payload, b"GET / HTTP/1.1\r\n");
        assert_eq!(read_u32(&msgs[3].payload), Some(9));
        // The descriptors are the streams sent: write through each.
        let mut s1 = UnixStream::from(msgs[1].fd.take().unwrap());
        let mut s2 = UnixStream::from(msgs[2].fd.take().unwrap());
        s1.write_all(b"one").unwrap();
        s2.write_all(b"two").unwrap();
        let mut got = [0u8; 3];
        a2.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one");
        b2.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"two");
        drop((a1.flush(), b1.flush()));
    }

    #[test]
    fn lengths_out_of_bounds_and_missing_descriptors_are_errors() {
        let mut dec = Decoder::default();
        dec.push(&[0, 0, 0, 0, LOAD]);
        assert!(dec.next_message().is_err());
        let mut dec = Decoder::default();
        dec.push(&((MAX_MESSAGE + 1) as u32).to_le_bytes());
        dec.push(&[LOAD]);
        assert!(dec.next_message().is_err());
        let mut dec = Decoder::default();
        let mut bytes = Vec::new();
        encode(&mut bytes, HAND_BACK, b"hi");
        dec.push(&bytes);
        assert!(dec.next_message().is_err());
        let mut dec = Decoder::default();
        let mut bytes = Vec::new();
        encode(&mut bytes, LOAD, &[0; 4]);
        dec.push(&bytes[..8]);
        assert!(dec.next_message().unwrap().is_none());
    }
}
