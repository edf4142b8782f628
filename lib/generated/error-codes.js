// Generated from ErrorCode in src/error.rs by its tests. DO NOT EDIT.
// After changing ErrorCode: UPDATE_GENERATED=1 cargo test --release error
"use strict";

// The `code` of the errors the addon throws.
const ErrorCode = Object.freeze({
  FRAME_TOO_LARGE: "ERR_SOCKET_IO_CLUSTER_FRAME_TOO_LARGE",
  HUB_FRAME_TOO_LARGE: "ERR_SOCKET_IO_CLUSTER_HUB_FRAME_TOO_LARGE",
  QUEUE_FULL: "ERR_SOCKET_IO_CLUSTER_QUEUE_FULL",
  BAD_FRAME: "ERR_SOCKET_IO_CLUSTER_BAD_FRAME",
  ADDRESS: "ERR_SOCKET_IO_CLUSTER_ADDRESS",
  INTERNAL: "ERR_SOCKET_IO_CLUSTER_INTERNAL",
  LISTEN: "ERR_SOCKET_IO_CLUSTER_LISTEN",
});

module.exports = { ErrorCode };
