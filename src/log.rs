//! The hub's log: `tracing` spans and events (connections, handshakes,
//! refusals, drops, slow workers), written as lines to a sink that the
//! binding hands to the primary's `DEBUG=socket.io-cluster-rs:hub` logger.
//!
//! Off unless JS asks for it: without a sink no subscriber is installed, and
//! every `tracing` macro in the hub is one load and compare of a static level.
//! With one, the subscriber is scoped to the hub's thread
//! ([`tracing::dispatcher::set_default`]), so an application's own global
//! subscriber is neither replaced nor fed.

use std::io;
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

/// Where log lines go (one call per event, without the trailing newline).
pub type LogSink = Arc<dyn Fn(String) + Send + Sync>;

/// A dispatcher that formats events (with their span's fields, e.g.
/// `worker{pid=123 node=2}: worker connected`) and hands each line to `sink`.
pub fn dispatch(sink: LogSink) -> tracing::Dispatch {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(Lines(sink))
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::Dispatch::new(subscriber)
}

/// Makes one [`Line`] per event.
struct Lines(LogSink);

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            sink: self.0.clone(),
            text: Vec::new(),
        }
    }
}

/// The text of one event, handed to the sink when the formatter is done.
struct Line {
    sink: LogSink,
    text: Vec<u8>,
}

impl io::Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.text);
        let line = line.trim_end();
        if !line.is_empty() {
            (self.sink)(line.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn events_become_lines_with_their_span_fields() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink_lines = lines.clone();
        let sink: LogSink = Arc::new(move |l| sink_lines.lock().expect("lock").push(l));
        tracing::dispatcher::with_default(&dispatch(sink), || {
            let span = tracing::info_span!("worker", pid = 42, node = tracing::field::Empty);
            let _entered = span.enter();
            span.record("node", 3);
            tracing::warn!(reason = "too slow", "worker dropped");
            tracing::trace!("below the level: not written");
        });
        let lines = lines.lock().expect("lock");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
        assert!(lines[0].contains("pid=42"), "{}", lines[0]);
        assert!(lines[0].contains("node=3"), "{}", lines[0]);
        assert!(lines[0].contains("worker dropped"), "{}", lines[0]);
        assert!(lines[0].contains("too slow"), "{}", lines[0]);
    }

    #[test]
    fn nothing_is_written_without_a_sink() {
        // No dispatcher on this thread: the macros are disabled.
        assert!(!tracing::enabled!(tracing::Level::ERROR));
    }
}
