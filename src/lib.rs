//! Native core of socket.io-cluster-rs.
//!
//! Module map:
//! - [`frame`]: the wire codec (length-prefixed frames, msgpack header, opaque payload).
//! - [`router`]: routing table, membership and request bookkeeping, free of I/O.
//! - [`recovery`]: the broadcast log and session store of connection state recovery, free of I/O.
//! - [`paths`]: the per-user socket directory and its security checks.
//! - [`sock`]: Unix stream I/O on tokio without write-readiness wake-ups.
//! - [`serving`]: a server on its own thread and tokio runtime, stopped on demand (hub, balancer).
//! - [`hub`]: the Unix-socket server that runs in the cluster primary.
//! - [`link`]: the worker's connection to the hub.
//! - [`bridge`]: the Redis bridge between hosts, in the stock Redis adapter's protocol (a router peer).
//! - [`sticky`]: the sticky balancer: one TCP port, connections handed to workers by session.
//! - [`log`]: the hub's `tracing` events as lines for the primary's `DEBUG` logger.
//! - [`batch`]: the flat buffer in which the link hands its events to JS.
//! - [`batch_js`]: that buffer's layout as JS constants (lib/generated/), and samples both sides decode.
//! - [`error`]: the codes of the errors JS sees.
//! - `generated` (tests only): keeps lib/generated/*.js in step with [`batch`] and [`error`].
//! - `binding` (feature `addon`): the thin `#[napi]` layer that exposes `Hub` and `Link` to JS;
//!   `binding_sticky` exposes the sticky `Balancer` and the worker's `StickyChannel`.

// Input from other processes must never panic the hub: no unwrap outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod batch;
pub mod batch_js;
pub mod bridge;
pub mod error;
pub mod frame;
#[cfg(test)]
mod generated;
pub mod hub;
pub mod link;
pub mod log;
pub mod paths;
pub mod recovery;
pub mod router;
pub mod serving;
pub mod sock;
pub mod sticky;

// The #[napi] items are only reachable from JS (built with the `addon` feature).
#[cfg(feature = "addon")]
mod binding;
#[cfg(feature = "addon")]
mod binding_sticky;
