//! The bridge's counters, which `Hub::stats()` reads while the bridge
//! writes them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters of the bridge, read by `Hub::stats()`.
#[derive(Debug, Default)]
pub struct BridgeStats {
    pub(super) connected: AtomicBool,
    pub(super) connects: AtomicU64,
    pub(super) disconnects: AtomicU64,
    pub(super) connect_failures: AtomicU64,
    pub(super) published: AtomicU64,
    pub(super) publish_errors: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) malformed: AtomicU64,
    pub(super) unconvertible: AtomicU64,
    pub(super) dropped_while_down: AtomicU64,
    pub(super) requests_out: AtomicU64,
    pub(super) requests_in: AtomicU64,
    pub(super) unsupported: AtomicU64,
}

/// What [`BridgeStats`] held at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeStatsSnapshot {
    /// Redis is reachable now.
    pub connected: bool,
    /// Connections made (the first and every reconnection).
    pub connects: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Attempts to connect that failed.
    pub connect_failures: u64,
    /// Messages published to Redis.
    pub published: u64,
    /// Messages whose publishing failed (the connection was lost).
    pub publish_errors: u64,
    /// Messages received from Redis (own ones included).
    pub received: u64,
    /// Messages from Redis ignored because they could not be read.
    pub malformed: u64,
    /// Messages of this host's workers that could not be turned into the
    /// stock format (a custom parser's packets, values JSON cannot carry).
    pub unconvertible: u64,
    /// Messages of this host's workers dropped while Redis was unreachable.
    pub dropped_while_down: u64,
    /// Requests of this host's workers sent to other hosts.
    pub requests_out: u64,
    /// Requests of other hosts answered here.
    pub requests_in: u64,
    /// Requests of other hosts of a kind the bridge does not serve.
    pub unsupported: u64,
}

impl BridgeStats {
    pub fn snapshot(&self) -> BridgeStatsSnapshot {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStatsSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            connects: n(&self.connects),
            disconnects: n(&self.disconnects),
            connect_failures: n(&self.connect_failures),
            published: n(&self.published),
            publish_errors: n(&self.publish_errors),
            received: n(&self.received),
            malformed: n(&self.malformed),
            unconvertible: n(&self.unconvertible),
            dropped_while_down: n(&self.dropped_while_down),
            requests_out: n(&self.requests_out),
            requests_in: n(&self.requests_in),
            unsupported: n(&self.unsupported),
        }
    }
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
