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
    /// Node's API failed (for example while the process exits).
    Internal,
    /// The sticky balancer cannot listen on its host and port.
    Listen,
}

impl ErrorCode {
    /// Every code, for the generated JS constants.
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::FrameTooLarge,
        ErrorCode::HubFrameTooLarge,
        ErrorCode::QueueFull,
        ErrorCode::BadFrame,
        ErrorCode::Address,
        ErrorCode::Internal,
        ErrorCode::Listen,
    ];

    /// The code's name in lib/generated/error-codes.js.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::HubFrameTooLarge => "HUB_FRAME_TOO_LARGE",
            ErrorCode::QueueFull => "QUEUE_FULL",
            ErrorCode::BadFrame => "BAD_FRAME",
            ErrorCode::Address => "ADDRESS",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Listen => "LISTEN",
        }
    }
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        match self {
            ErrorCode::FrameTooLarge => "ERR_SOCKET_IO_CLUSTER_FRAME_TOO_LARGE",
            ErrorCode::HubFrameTooLarge => "ERR_SOCKET_IO_CLUSTER_HUB_FRAME_TOO_LARGE",
            ErrorCode::QueueFull => "ERR_SOCKET_IO_CLUSTER_QUEUE_FULL",
            ErrorCode::BadFrame => "ERR_SOCKET_IO_CLUSTER_BAD_FRAME",
            ErrorCode::Address => "ERR_SOCKET_IO_CLUSTER_ADDRESS",
            ErrorCode::Internal => "ERR_SOCKET_IO_CLUSTER_INTERNAL",
            ErrorCode::Listen => "ERR_SOCKET_IO_CLUSTER_LISTEN",
        }
    }
}

/// A JS error with `code` and `message`.
#[cfg(feature = "addon")]
pub fn js_error(code: ErrorCode, message: impl Into<String>) -> napi::Error<ErrorCode> {
    napi::Error::new(code, message.into())
}

/// The text of `lib/generated/error-codes.js`.
pub fn render_js() -> String {
    let mut js = String::from(
        "// Generated from ErrorCode in src/error.rs by its tests. DO NOT EDIT.\n\
         // After changing ErrorCode: UPDATE_GENERATED=1 cargo test --release error\n\
         \"use strict\";\n\n\
         // The `code` of the errors the addon throws.\n\
         const ErrorCode = Object.freeze({\n",
    );
    for code in ErrorCode::ALL {
        js.push_str(&format!("  {}: \"{}\",\n", code.name(), code.as_ref()));
    }
    js.push_str("});\n\nmodule.exports = { ErrorCode };\n");
    js
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_prefixed() {
        for (i, a) in ErrorCode::ALL.iter().enumerate() {
            assert!(a.as_ref().starts_with("ERR_SOCKET_IO_CLUSTER_"));
            assert!(a.as_ref().ends_with(a.name()));
            for b in &ErrorCode::ALL[i + 1..] {
                assert_ne!(a.as_ref(), b.as_ref());
            }
        }
    }

    #[test]
    fn generated_js_is_current() {
        crate::generated::check("lib/generated/error-codes.js", &render_js());
    }
}
