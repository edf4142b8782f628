//! The errors the addon throws to JS. Each carries a stable `code` (the JS
//! error's `code` property), so that lib/ switches on codes instead of
//! matching messages.

/// Codes of the errors the addon throws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A message larger than this worker's own `maxFrameSize`.
    FrameTooLarge,
    /// A message larger than the hub's `maxFrameSize` (setupPrimary()'s option).
    HubFrameTooLarge,
    /// This worker's queue toward the hub is past its hard limit (or, for a
    /// volatile message, its soft limit): the hub is not reading.
    QueueFull,
    /// Bytes from the hub that are not frames of this protocol.
    BadFrame,
    /// The hub's address cannot be used, or the hub cannot start.
    Address,
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        match self {
            ErrorCode::FrameTooLarge => "ERR_SOCKET_IO_CLUSTER_FRAME_TOO_LARGE",
            ErrorCode::HubFrameTooLarge => "ERR_SOCKET_IO_CLUSTER_HUB_FRAME_TOO_LARGE",
            ErrorCode::QueueFull => "ERR_SOCKET_IO_CLUSTER_QUEUE_FULL",
            ErrorCode::BadFrame => "ERR_SOCKET_IO_CLUSTER_BAD_FRAME",
            ErrorCode::Address => "ERR_SOCKET_IO_CLUSTER_ADDRESS",
        }
    }
}

/// A JS error with `code` and `message`.
pub fn js_error(code: ErrorCode, message: impl Into<String>) -> napi::Error<ErrorCode> {
    napi::Error::new(code, message.into())
}
