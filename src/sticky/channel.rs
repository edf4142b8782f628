//! The worker's end of its handoff channel to the balancer.
//!
//! A thread blocks on the channel and passes each connection handed over
//! (descriptor and bytes already read) to a callback, which gives it to the
//! worker's HTTP server on the JS thread. The JS thread itself sends the load
//! reports and the connections it hands back; those sends are small and
//! bounded by a write timeout, so a stuck balancer cannot stall it for long.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Duration;

use super::wire;
use crate::paths;

/// The longest the JS thread waits to send on the channel.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

pub type OnConnection = Box<dyn Fn(OwnedFd, Vec<u8>) + Send>;
pub type OnClose = Box<dyn FnOnce(String) + Send>;

pub struct WorkerChannel {
    stream: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl WorkerChannel {
    /// Connects to the balancer of the hub at `hub_address` (an error when
    /// the primary runs none) and says this worker is `pid`.
    pub fn connect(
        hub_address: &str,
        pid: u32,
        on_connection: OnConnection,
        on_close: OnClose,
    ) -> io::Result<WorkerChannel> {
        let stream = paths::connect_hub(&paths::sticky_address(hub_address))?;
        stream.set_write_timeout(Some(SEND_TIMEOUT))?;
        wire::send_blocking(stream.as_fd(), wire::HELLO, &pid.to_le_bytes(), None)?;
        let reader = stream.try_clone()?;
        let thread = std::thread::Builder::new()
            .name("sio-cluster-sticky".into())
            .spawn(move || on_close(read_connections(&reader, &on_connection)))?;
        Ok(WorkerChannel {
            stream,
            thread: Some(thread),
        })
    }

    /// Tells the balancer how many Engine.IO clients this worker serves.
    pub fn report_load(&self, clients: u32) -> io::Result<()> {
        wire::send_blocking(
            self.stream.as_fd(),
            wire::LOAD,
            &clients.to_le_bytes(),
            None,
        )
    }

    /// Gives the connection `fd` back to the balancer with the request read
    /// from it; the caller then closes its own descriptor.
    pub fn hand_back(&self, fd: BorrowedFd<'_>, request: &[u8]) -> io::Result<()> {
        wire::send_blocking(self.stream.as_fd(), wire::HAND_BACK, request, Some(fd))
    }

    /// Closes the channel and waits for its thread.
    pub fn close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WorkerChannel {
    fn drop(&mut self) {
        self.close();
    }
}

/// Hands every connection that arrives to `on_connection` until the channel
/// ends; returns why it ended.
fn read_connections(stream: &UnixStream, on_connection: &OnConnection) -> String {
    let mut dec = wire::Decoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        loop {
            match dec.next_message() {
                Ok(Some(wire::Message {
                    kind: wire::CONNECTION,
                    payload,
                    fd: Some(fd),
                })) => on_connection(fd, payload),
                // Kinds of a newer balancer: ignored.
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return format!("bad message from the balancer: {e}"),
            }
        }
        match wire::recv_part(stream.as_fd(), &mut buf, &mut dec.fds) {
            Ok(0) => return "the balancer closed the channel".into(),
            Ok(n) => dec.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return format!("lost the balancer: {e}"),
        }
    }
}
