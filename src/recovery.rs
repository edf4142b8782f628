//! Connection state recovery across workers: the hub's broadcast log and
//! session store, free of I/O (the router feeds it).
//!
//! The hub sees every recoverable broadcast of a namespace in one order, so it
//! is the one place that can replay what a client missed in the order the
//! others saw it, whichever worker the client comes back to. Each broadcast
//! carries the offset its emitter gave it (the last argument of the packet,
//! which is what Socket.IO clients send back when they reconnect); the log
//! keeps the already-encoded payloads in arrival order with an index from
//! offset to position, so a restore finds its place in O(1), never by
//! scanning. Everything is bounded: entries and bytes per namespace log,
//! age (the namespace's `maxDisconnectionDuration`), and the number of
//! sessions, each eviction counted.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::frame::NodeId;

/// Bounds of the store (`setupPrimary()` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryLimits {
    /// Broadcasts kept per namespace.
    pub max_packets: usize,
    /// Payload bytes kept per namespace.
    pub max_bytes: usize,
    /// Sessions kept (all namespaces); the oldest goes first.
    pub max_sessions: usize,
}

impl Default for RecoveryLimits {
    fn default() -> Self {
        RecoveryLimits {
            max_packets: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_sessions: 100_000,
        }
    }
}

/// Counters for `stats()`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryStats {
    pub sessions: u64,
    pub log_entries: u64,
    pub log_bytes: u64,
    pub restored: u64,
    /// Restores refused: no such session (never saved, expired, or restored already).
    pub refused_session: u64,
    /// Restores refused: the offset is no longer (or never was) in the log.
    pub refused_offset: u64,
    /// Restores refused: the answer would not fit in a frame.
    pub refused_too_large: u64,
    /// Broadcasts dropped from a log by its bounds (entries, bytes, age).
    pub log_evictions: u64,
    /// Sessions dropped unrestored (expired, or the oldest past `max_sessions`).
    pub session_evictions: u64,
    /// Connected sockets whose state the hub holds (kept as sessions if
    /// their worker dies).
    pub live_sessions: u64,
    /// Sessions saved because their worker died with the socket connected.
    pub orphaned: u64,
}

/// Why a restore was refused; the client then gets a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoSession = 1,
    OffsetGone = 2,
    TooLarge = 3,
}

#[derive(Debug)]
struct Entry {
    offset: String,
    payload: Bytes,
    at: Instant,
}

#[derive(Debug)]
struct Log {
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`; numbers never repeat.
    first_seq: u64,
    /// Offset → sequence number, for every entry in `entries`.
    index: HashMap<String, u64>,
    bytes: usize,
    max_age: Duration,
}

impl Log {
    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.index.remove(&e.offset);
            self.bytes -= e.payload.len();
            self.first_seq += 1;
        }
    }
}

#[derive(Debug)]
struct Session {
    payload: Bytes,
    at: Instant,
    max_age: Duration,
}

/// The broadcast logs of the namespaces that run with recovery, and the
/// sessions of their disconnected sockets.
#[derive(Debug, Default)]
pub struct RecoveryStore {
    limits: RecoveryLimits,
    logs: HashMap<String, Log>,
    /// (namespace, private session id) → session.
    sessions: HashMap<(String, String), Session>,
    /// Sessions in the order they were saved, for oldest-first eviction
    /// (entries whose session is gone or newer are skipped).
    session_order: VecDeque<((String, String), Instant)>,
    /// (namespace, private session id) → the worker that has the socket, and
    /// its state as last synced.
    live: HashMap<(String, String), (NodeId, Bytes)>,
    stats: RecoveryStats,
}

impl RecoveryStore {
    pub fn new(limits: RecoveryLimits) -> Self {
        RecoveryStore {
            limits,
            ..Default::default()
        }
    }

    /// `nsp` runs with recovery, keeping sessions and broadcasts for
    /// `max_age` (the longest any worker announced).
    pub fn enable(&mut self, nsp: &str, max_age: Duration) {
        let log = self.logs.entry(nsp.to_owned()).or_insert_with(|| Log {
            entries: VecDeque::new(),
            first_seq: 0,
            index: HashMap::new(),
            bytes: 0,
            max_age,
        });
        log.max_age = log.max_age.max(max_age);
    }

    pub fn enabled(&self, nsp: &str) -> bool {
        self.logs.contains_key(nsp)
    }

    /// The namespaces that run with recovery.
    pub fn namespaces(&self) -> Vec<String> {
        self.logs.keys().cloned().collect()
    }

    /// Logs a recoverable broadcast of `nsp`; false when `nsp` does not run
    /// with recovery or `offset` is already logged (a duplicate is not
    /// logged twice).
    pub fn record(&mut self, nsp: &str, offset: String, payload: Bytes, now: Instant) -> bool {
        let limits = self.limits;
        let Some(log) = self.logs.get_mut(nsp) else {
            return false;
        };
        if log.index.contains_key(&offset) {
            return false;
        }
        let seq = log.first_seq + log.entries.len() as u64;
        log.bytes += payload.len();
        log.index.insert(offset.clone(), seq);
        log.entries.push_back(Entry {
            offset,
            payload,
            at: now,
        });
        while log.entries.len() > limits.max_packets
            || (log.bytes > limits.max_bytes && log.entries.len() > 1)
            || log
                .entries
                .front()
                .is_some_and(|e| now.duration_since(e.at) > log.max_age)
        {
            log.pop_front();
            self.stats.log_evictions += 1;
        }
        true
    }

    /// Keeps the session of a socket that disconnected and may come back.
    pub fn save_session(&mut self, nsp: &str, pid: String, payload: Bytes, now: Instant) {
        let Some(max_age) = self.logs.get(nsp).map(|l| l.max_age) else {
            return;
        };
        let key = (nsp.to_owned(), pid);
        self.live.remove(&key);
        self.session_order.push_back((key.clone(), now));
        self.sessions.insert(
            key,
            Session {
                payload,
                at: now,
                max_age,
            },
        );
        while self.sessions.len() > self.limits.max_sessions {
            let Some((key, at)) = self.session_order.pop_front() else {
                break;
            };
            if self.sessions.get(&key).is_some_and(|s| s.at == at) {
                self.sessions.remove(&key);
                self.stats.session_evictions += 1;
            }
        }
        if self.session_order.len() > 2 * self.sessions.len() + 64 {
            let sessions = &self.sessions;
            self.session_order
                .retain(|(key, at)| sessions.get(key).is_some_and(|s| s.at == *at));
        }
    }

    /// The state of a connected socket, as of now (see `Header::SessionSync`).
    /// Past `max_sessions` connected sockets, new ones are not held (counted
    /// as evictions): their sessions would not survive their worker's death.
    pub fn sync_session(&mut self, nsp: &str, pid: String, node: NodeId, payload: Bytes) {
        if !self.logs.contains_key(nsp) {
            return;
        }
        let key = (nsp.to_owned(), pid);
        if !self.live.contains_key(&key) && self.live.len() >= self.limits.max_sessions {
            self.stats.session_evictions += 1;
            return;
        }
        self.live.insert(key, (node, payload));
    }

    /// A connected socket is gone for good.
    pub fn end_session(&mut self, nsp: &str, pid: &str) {
        self.live.remove(&(nsp.to_owned(), pid.to_owned()));
    }

    /// Worker `node` is gone: the sockets it had become sessions that may be
    /// restored on another worker, as if each had disconnected now.
    pub fn orphan(&mut self, node: NodeId, now: Instant) {
        let keys: Vec<(String, String)> = self
            .live
            .iter()
            .filter(|(_, (n, _))| *n == node)
            .map(|(k, _)| k.clone())
            .collect();
        for (nsp, pid) in keys {
            if let Some((_, payload)) = self.live.remove(&(nsp.clone(), pid.clone())) {
                self.stats.orphaned += 1;
                self.save_session(&nsp, pid, payload, now);
            }
        }
    }

    /// Takes session `pid` of `nsp` with every broadcast logged after
    /// `offset`, in log order. The session is consumed either way unless it
    /// does not exist; `max_answer` bounds the bytes handed back.
    pub fn restore(
        &mut self,
        nsp: &str,
        pid: &str,
        offset: &str,
        now: Instant,
        max_answer: usize,
    ) -> Result<(Bytes, Vec<Bytes>), Refusal> {
        self.expire(now);
        let key = (nsp.to_owned(), pid.to_owned());
        let Some(session) = self.sessions.remove(&key) else {
            self.stats.refused_session += 1;
            return Err(Refusal::NoSession);
        };
        if now.duration_since(session.at) > session.max_age {
            self.stats.session_evictions += 1;
            self.stats.refused_session += 1;
            return Err(Refusal::NoSession);
        }
        let log = self.logs.get(nsp);
        let Some((log, seq)) = log.and_then(|l| l.index.get(offset).map(|s| (l, *s))) else {
            self.stats.refused_offset += 1;
            return Err(Refusal::OffsetGone);
        };
        let start = (seq - log.first_seq + 1) as usize;
        let mut size = session.payload.len();
        let mut missed = Vec::with_capacity(log.entries.len().saturating_sub(start));
        for e in log.entries.iter().skip(start) {
            size += e.payload.len() + 4;
            if size > max_answer {
                self.stats.refused_too_large += 1;
                return Err(Refusal::TooLarge);
            }
            missed.push(e.payload.clone());
        }
        self.stats.restored += 1;
        Ok((session.payload, missed))
    }

    /// Drops what is older than its namespace's `maxDisconnectionDuration`:
    /// the oldest broadcasts of each log, and sessions oldest first (a cost
    /// in what expires, never a sweep of everything).
    pub fn expire(&mut self, now: Instant) {
        for log in self.logs.values_mut() {
            while log
                .entries
                .front()
                .is_some_and(|e| now.duration_since(e.at) > log.max_age)
            {
                log.pop_front();
                self.stats.log_evictions += 1;
            }
        }
        while let Some((key, at)) = self.session_order.front() {
            match self.sessions.get(key) {
                Some(s) if s.at == *at => {
                    if now.duration_since(s.at) <= s.max_age {
                        break;
                    }
                    self.sessions.remove(key);
                    self.stats.session_evictions += 1;
                }
                // Restored, or saved again since: nothing to expire here.
                _ => {}
            }
            self.session_order.pop_front();
        }
    }

    /// When [`expire`](Self::expire) next has something to drop.
    pub fn next_expiry(&self) -> Option<Instant> {
        let logs = self
            .logs
            .values()
            .filter_map(|l| l.entries.front().map(|e| e.at + l.max_age));
        let sessions = self
            .session_order
            .front()
            .and_then(|(key, _)| self.sessions.get(key))
            .map(|s| s.at + s.max_age);
        logs.chain(sessions)
            .min()
            .map(|t| t + Duration::from_millis(1))
    }

    pub fn stats(&self) -> RecoveryStats {
        RecoveryStats {
            sessions: self.sessions.len() as u64,
            log_entries: self.logs.values().map(|l| l.entries.len() as u64).sum(),
            log_bytes: self.logs.values().map(|l| l.bytes as u64).sum(),
            live_sessions: self.live.len() as u64,
            ..self.stats.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: Duration = Duration::from_secs(120);

    fn store(max_packets: usize, max_bytes: usize, max_sessions: usize) -> RecoveryStore {
        let mut s = RecoveryStore::new(RecoveryLimits {
            max_packets,
            max_bytes,
            max_sessions,
        });
        s.enable("/", AGE);
        s
    }

    fn payloads(v: &[Bytes]) -> Vec<&[u8]> {
        v.iter().map(|b| b.as_ref()).collect()
    }

    #[test]
    fn restores_what_came_after_the_offset_in_log_order_and_consumes_the_session() {
        let now = Instant::now();
        let mut s = store(100, 1 << 20, 100);
        for (o, p) in [("a", "1"), ("b", "2"), ("c", "3")] {
            assert!(s.record("/", o.into(), Bytes::from(p), now));
        }
        assert!(
            !s.record("/", "b".into(), Bytes::from("dup"), now),
            "an offset is logged once"
        );
        assert!(
            !s.record("/other", "x".into(), Bytes::from("x"), now),
            "no recovery there"
        );
        s.save_session("/", "pid1".into(), Bytes::from("session"), now);
        let (session, missed) = s.restore("/", "pid1", "a", now, 1 << 20).unwrap();
        assert_eq!(session, Bytes::from("session"));
        assert_eq!(payloads(&missed), vec![b"2".as_ref(), b"3".as_ref()]);
        assert_eq!(
            s.restore("/", "pid1", "a", now, 1 << 20),
            Err(Refusal::NoSession)
        );
        let st = s.stats();
        assert_eq!((st.restored, st.refused_session, st.sessions), (1, 1, 0));
    }

    #[test]
    fn the_last_offset_restores_nothing_missed() {
        let now = Instant::now();
        let mut s = store(100, 1 << 20, 100);
        s.record("/", "a".into(), Bytes::from("1"), now);
        s.save_session("/", "p".into(), Bytes::from("s"), now);
        assert_eq!(s.restore("/", "p", "a", now, 1 << 20).unwrap().1.len(), 0);
    }

    #[test]
    fn bounds_evict_the_oldest_broadcasts_and_then_their_offsets_are_refused() {
        let now = Instant::now();
        let mut s = store(3, 1 << 20, 100);
        for i in 0..5 {
            s.record("/", format!("o{i}"), Bytes::from(vec![0u8; 10]), now);
        }
        let st = s.stats();
        assert_eq!((st.log_entries, st.log_evictions, st.log_bytes), (3, 2, 30));
        s.save_session("/", "p".into(), Bytes::new(), now);
        assert_eq!(
            s.restore("/", "p", "o1", now, 1 << 20),
            Err(Refusal::OffsetGone)
        );
        s.save_session("/", "p".into(), Bytes::new(), now);
        assert_eq!(s.restore("/", "p", "o2", now, 1 << 20).unwrap().1.len(), 2);

        let mut s = store(100, 25, 100);
        for i in 0..5 {
            s.record("/", format!("o{i}"), Bytes::from(vec![0u8; 10]), now);
        }
        assert_eq!(s.stats().log_bytes, 20, "the byte bound holds");
    }

    #[test]
    fn sessions_and_broadcasts_expire_with_max_disconnection_duration() {
        let t0 = Instant::now();
        let mut s = store(100, 1 << 20, 100);
        s.record("/", "a".into(), Bytes::from("1"), t0);
        s.save_session("/", "p".into(), Bytes::from("s"), t0);
        let later = t0 + AGE + Duration::from_secs(1);
        assert_eq!(
            s.restore("/", "p", "a", later, 1 << 20),
            Err(Refusal::NoSession)
        );
        let st = s.stats();
        assert_eq!(
            (st.log_entries, st.log_evictions, st.session_evictions),
            (0, 1, 1)
        );
    }

    #[test]
    fn the_oldest_session_goes_past_max_sessions() {
        let now = Instant::now();
        let mut s = store(100, 1 << 20, 2);
        s.record("/", "a".into(), Bytes::from("1"), now);
        for p in ["p1", "p2", "p3"] {
            s.save_session("/", p.into(), Bytes::from(p), now);
        }
        assert_eq!(s.stats().sessions, 2);
        assert_eq!(s.stats().session_evictions, 1);
        assert_eq!(
            s.restore("/", "p1", "a", now, 1 << 20),
            Err(Refusal::NoSession)
        );
        assert!(s.restore("/", "p3", "a", now, 1 << 20).is_ok());
    }

    #[test]
    fn the_sockets_of_a_dead_worker_become_sessions() {
        let now = Instant::now();
        let mut s = store(100, 1 << 20, 100);
        s.record("/", "a".into(), Bytes::from("1"), now);
        s.sync_session("/", "p1".into(), 1, Bytes::from("old"));
        s.sync_session("/", "p1".into(), 1, Bytes::from("new"));
        s.sync_session("/", "p2".into(), 2, Bytes::from("other worker"));
        s.sync_session("/", "p3".into(), 1, Bytes::from("gone"));
        s.end_session("/", "p3");
        s.orphan(1, now);
        let st = s.stats();
        assert_eq!((st.live_sessions, st.sessions, st.orphaned), (1, 1, 1));
        assert_eq!(
            s.restore("/", "p1", "a", now, 1 << 20).unwrap().0,
            Bytes::from("new")
        );
        assert_eq!(
            s.restore("/", "p3", "a", now, 1 << 20),
            Err(Refusal::NoSession)
        );
        assert_eq!(
            s.restore("/", "p2", "a", now, 1 << 20),
            Err(Refusal::NoSession),
            "still connected"
        );
    }

    #[test]
    fn an_answer_larger_than_a_frame_is_refused() {
        let now = Instant::now();
        let mut s = store(100, 1 << 20, 100);
        s.record("/", "a".into(), Bytes::from("1"), now);
        s.record("/", "b".into(), Bytes::from(vec![0u8; 1000]), now);
        s.save_session("/", "p".into(), Bytes::from("s"), now);
        assert_eq!(s.restore("/", "p", "a", now, 500), Err(Refusal::TooLarge));
        assert_eq!(s.stats().refused_too_large, 1);
    }
}
