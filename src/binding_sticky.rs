//! The `#[napi]` surface of sticky balancing: `Balancer` for the primary,
//! `StickyChannel` for workers. Conversions only; the logic is in `sticky`.

use std::os::fd::{BorrowedFd, IntoRawFd};
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Function};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::Error;
use napi_derive::napi;

use crate::binding::weak_callback;
use crate::error::{js_error, ErrorCode};
use crate::sticky::channel::WorkerChannel;
use crate::sticky::{self, Balance, StickyOptions};

/// `setupPrimary({ sticky })`, resolved by lib/options.js.
#[napi(object)]
pub struct StickyOptionsJs {
    /// Empty: every interface.
    pub host: String,
    pub port: u32,
    /// "least-connections" or "ip-hash".
    pub balance: String,
    /// Lower-case header name, or empty for the connection's own address.
    pub ip_header: String,
    pub max_header_size: u32,
    /// Milliseconds.
    pub headers_timeout: u32,
    pub max_pending_connections: u32,
}

/// One worker in `Balancer.stats()`.
#[napi(object)]
pub struct StickyWorkerJs {
    pub pid: u32,
    /// Engine.IO clients it reported, plus connections handed to it since.
    pub load: f64,
}

/// `Balancer.stats()` (see `sticky::StickyStats`).
#[napi(object)]
pub struct StickyStatsJs {
    pub connections: f64,
    pub handed: f64,
    pub handed_back: f64,
    pub unknown_sessions: f64,
    pub no_worker: f64,
    pub bad_requests: f64,
    pub too_large: f64,
    pub header_timeouts: f64,
    pub over_capacity: f64,
    pub closed_early: f64,
    pub lost: f64,
    pub workers: Vec<StickyWorkerJs>,
}

/// The sticky balancer, on its own thread in the primary.
#[napi(js_name = "Balancer")]
pub struct JsBalancer {
    inner: Option<sticky::Balancer>,
}

#[napi]
impl JsBalancer {
    /// Listens now (a port in use throws here) next to the hub at `hubPath`.
    #[napi(constructor)]
    pub fn new(
        hub_path: String,
        options: StickyOptionsJs,
    ) -> std::result::Result<Self, Error<ErrorCode>> {
        let balance = match options.balance.as_str() {
            "ip-hash" => Balance::IpHash,
            _ => Balance::LeastConnections,
        };
        let opts = StickyOptions {
            host: options.host,
            port: u16::try_from(options.port).map_err(|_| {
                js_error(
                    ErrorCode::Listen,
                    format!("port {} out of range", options.port),
                )
            })?,
            balance,
            ip_header: Some(options.ip_header.to_ascii_lowercase()).filter(|h| !h.is_empty()),
            max_header_size: options.max_header_size as usize,
            headers_timeout: Duration::from_millis(u64::from(options.headers_timeout)),
            max_pending: options.max_pending_connections as usize,
        };
        let where_ = format!(
            "{}:{}",
            if opts.host.is_empty() {
                "*"
            } else {
                &opts.host
            },
            opts.port
        );
        let inner = sticky::Balancer::start(&hub_path, opts)
            .map_err(|e| js_error(ErrorCode::Listen, format!("cannot listen on {where_}: {e}")))?;
        Ok(JsBalancer { inner: Some(inner) })
    }

    /// The port it listens on (the one picked, when asked for 0).
    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        self.inner
            .as_ref()
            .map(|b| u32::from(b.local_addr().port()))
    }

    /// The address it listens on.
    #[napi(getter)]
    pub fn host(&self) -> Option<String> {
        self.inner.as_ref().map(|b| b.local_addr().ip().to_string())
    }

    #[napi]
    pub fn stats(&self) -> Option<StickyStatsJs> {
        let s = self.inner.as_ref()?.stats();
        Some(StickyStatsJs {
            connections: s.connections as f64,
            handed: s.handed as f64,
            handed_back: s.handed_back as f64,
            unknown_sessions: s.unknown_sessions as f64,
            no_worker: s.no_worker as f64,
            bad_requests: s.bad_requests as f64,
            too_large: s.too_large as f64,
            header_timeouts: s.header_timeouts as f64,
            over_capacity: s.over_capacity as f64,
            closed_early: s.closed_early as f64,
            lost: s.lost as f64,
            workers: s
                .workers
                .into_iter()
                .map(|(pid, load)| StickyWorkerJs {
                    pid,
                    load: load as f64,
                })
                .collect(),
        })
    }

    #[napi]
    pub fn close(&mut self) {
        if let Some(mut b) = self.inner.take() {
            b.close();
        }
    }
}

/// A connection handed to this worker: its descriptor (now the caller's to
/// close) and the bytes the balancer read from it.
#[napi(object)]
pub struct HandedConnection {
    pub fd: i32,
    pub bytes: Buffer,
}

/// A worker's handoff channel to the balancer.
#[napi(js_name = "StickyChannel")]
pub struct JsStickyChannel {
    inner: Option<WorkerChannel>,
}

#[napi]
impl JsStickyChannel {
    /// Connects to the balancer next to the hub at `hubPath`; throws when
    /// there is none. `onConnection` receives each connection handed over,
    /// `onClose` why the channel ended; neither keeps the process alive.
    #[napi(constructor)]
    pub fn new(
        hub_path: String,
        on_connection: Function<HandedConnection, ()>,
        on_close: Function<String, ()>,
    ) -> std::result::Result<Self, Error<ErrorCode>> {
        let connection = weak_callback(&on_connection)?;
        let close = weak_callback(&on_close)?;
        let inner = WorkerChannel::connect(
            &hub_path,
            std::process::id(),
            Box::new(move |fd, bytes| {
                let handed = HandedConnection {
                    fd: fd.into_raw_fd(),
                    bytes: bytes.into(),
                };
                connection.call(handed, ThreadsafeFunctionCallMode::NonBlocking);
            }),
            Box::new(move |reason| {
                close.call(reason, ThreadsafeFunctionCallMode::NonBlocking);
            }),
        )
        .map_err(|e| js_error(ErrorCode::Address, e.to_string()))?;
        Ok(JsStickyChannel { inner: Some(inner) })
    }

    /// Reports how many Engine.IO clients this worker serves; false once
    /// the channel is closed or broken.
    #[napi]
    pub fn report_load(&self, clients: u32) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|c| c.report_load(clients).is_ok())
    }

    /// Hands the connection `fd` back to the balancer with `request`, the
    /// request read from it that belongs to another worker's session. The
    /// caller closes its own descriptor afterwards.
    #[napi]
    pub fn hand_back(&self, fd: i32, request: Buffer) -> std::result::Result<(), Error<ErrorCode>> {
        let channel = self
            .inner
            .as_ref()
            .ok_or_else(|| js_error(ErrorCode::Address, "the sticky channel is closed"))?;
        if fd < 0 {
            return Err(js_error(
                ErrorCode::Internal,
                format!("bad descriptor {fd}"),
            ));
        }
        // SAFETY: `fd` is the descriptor of a socket lib/sticky.js holds
        // open (a net.Socket's handle) for the whole of this synchronous
        // call; it is only borrowed to be sent.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        channel.hand_back(fd, &request).map_err(|e| {
            js_error(
                ErrorCode::Address,
                format!("cannot hand the connection back: {e}"),
            )
        })
    }

    #[napi]
    pub fn close(&mut self) {
        if let Some(mut c) = self.inner.take() {
            c.close();
        }
    }
}
