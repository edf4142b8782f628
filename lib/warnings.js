"use strict";
// Warnings on stderr, rate-limited per kind: the first of a kind is printed
// at once, the next ones within WINDOW_MS are counted and summed up in one
// line when the window ends. Anything a peer or a client can trigger over and
// over (refused connections, a flapping hub connection) goes through here.

const WINDOW_MS = 10_000;

const windows = new Map(); // kind → { suppressed, timer }

/** Prints `text` unless a warning of the same `kind` was printed less than WINDOW_MS ago. */
function warn(text, kind = text) {
  const open = windows.get(kind);
  if (open) {
    open.suppressed++;
    return;
  }
  console.warn(text);
  const window = { suppressed: 0, timer: null };
  window.timer = setTimeout(() => {
    windows.delete(kind);
    if (window.suppressed > 0) {
      console.warn(`${text} (and ${window.suppressed} more like it in the last ${WINDOW_MS / 1000} s)`);
    }
  }, WINDOW_MS);
  // Never keeps a process alive.
  window.timer.unref();
  windows.set(kind, window);
}

module.exports = { warn, WINDOW_MS };
