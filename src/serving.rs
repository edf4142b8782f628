//! A server on a thread of its own: a current-thread tokio runtime that runs
//! until the server's future ends or [`ServingThread::stop`] is called. The
//! hub and the sticky balancer each run as one.

use std::future::Future;
use std::io;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::paths;

pub struct ServingThread {
    /// The Unix socket address the server listens on (a socket file is
    /// removed when it stops).
    address: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServingThread {
    /// Starts a thread named `name` that runs the future `serve()` makes
    /// (made on that thread, so it may hold thread-local guards).
    pub fn spawn<F, Fut>(name: &str, address: &str, serve: F) -> io::Result<ServingThread>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = serve() => {}
                        _ = shutdown_rx => {}
                    }
                });
                // Dropping the runtime here cancels every task the server
                // spawned, which closes every connection it still holds.
            })?;
        Ok(ServingThread {
            address: address.to_string(),
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Stops the server, waits for its thread and removes its socket file.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !paths::is_abstract(&self.address) {
            let _ = std::fs::remove_file(&self.address);
        }
    }
}

impl Drop for ServingThread {
    fn drop(&mut self) {
        self.stop();
    }
}
