//! Which worker gets a connection. Free of I/O.
//!
//! The workers are those with a handoff channel open, keyed by pid. A request
//! of a session goes to the worker whose pid its session id carries (see
//! [`super::http::sid_owner`]); anything else to the least-loaded worker, or,
//! with `balance: "ip-hash"`, to the worker the client's address hashes to.

use std::collections::BTreeMap;

/// How new sessions are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// The worker with the fewest Engine.IO clients (as last reported, plus
    /// connections handed to it since), ties in turn.
    LeastConnections,
    /// The same worker for the same client address while the set of workers
    /// stays the same.
    IpHash,
}

struct Entry<S> {
    sink: S,
    /// Distinguishes a worker's channel from a later one of the same pid.
    generation: u64,
    /// Engine.IO clients the worker last reported.
    reported: u64,
    /// Connections without a session handed to it since that report.
    handed_since: u64,
}

/// The live workers and their load.
pub struct Workers<S> {
    by_pid: BTreeMap<u32, Entry<S>>,
    generations: u64,
    /// Where the next tie-break starts.
    turn: usize,
}

impl<S> Default for Workers<S> {
    fn default() -> Self {
        Workers {
            by_pid: BTreeMap::new(),
            generations: 0,
            turn: 0,
        }
    }
}

impl<S> Workers<S> {
    /// Adds (or replaces) the worker `pid`; returns the generation that
    /// [`Workers::remove`] must name.
    pub fn add(&mut self, pid: u32, sink: S) -> u64 {
        self.generations += 1;
        self.by_pid.insert(
            pid,
            Entry {
                sink,
                generation: self.generations,
                reported: 0,
                handed_since: 0,
            },
        );
        self.generations
    }

    /// Removes `pid` if its entry is still of `generation`.
    pub fn remove(&mut self, pid: u32, generation: u64) {
        if self
            .by_pid
            .get(&pid)
            .is_some_and(|e| e.generation == generation)
        {
            self.by_pid.remove(&pid);
        }
    }

    pub fn report_load(&mut self, pid: u32, clients: u64) {
        if let Some(e) = self.by_pid.get_mut(&pid) {
            e.reported = clients;
            e.handed_since = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    /// The sink of worker `pid`, if it is live.
    pub fn sink(&self, pid: u32) -> Option<&S> {
        self.by_pid.get(&pid).map(|e| &e.sink)
    }

    /// Picks a worker for a connection without a session (counted against
    /// its load until its next report).
    pub fn pick_new(&mut self, balance: Balance, address_hash: u64) -> Option<(u32, &S)> {
        let n = self.by_pid.len();
        if n == 0 {
            return None;
        }
        let index = match balance {
            Balance::IpHash => (address_hash % n as u64) as usize,
            Balance::LeastConnections => {
                let load = |e: &Entry<S>| e.reported + e.handed_since;
                let min = self.by_pid.values().map(load).min()?;
                let start = self.turn % n;
                let found = (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&i| self.by_pid.values().nth(i).is_some_and(|e| load(e) == min))?;
                self.turn = found + 1;
                found
            }
        };
        let (pid, entry) = self.by_pid.iter_mut().nth(index)?;
        entry.handed_since += 1;
        Some((*pid, &entry.sink))
    }

    /// `(pid, reported clients + handed since)` of every worker.
    pub fn loads(&self) -> Vec<(u32, u64)> {
        self.by_pid
            .iter()
            .map(|(pid, e)| (*pid, e.reported + e.handed_since))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sessions_go_to_the_least_loaded_worker_ties_in_turn() {
        let mut w = Workers::default();
        w.add(10, ());
        w.add(20, ());
        w.add(30, ());
        let picks: Vec<u32> = (0..6)
            .map(|_| w.pick_new(Balance::LeastConnections, 0).unwrap().0)
            .collect();
        assert_eq!(picks, [10, 20, 30, 10, 20, 30]);
        w.report_load(10, 0);
        w.report_load(20, 50);
        w.report_load(30, 50);
        for _ in 0..5 {
            assert_eq!(w.pick_new(Balance::LeastConnections, 0).unwrap().0, 10);
        }
    }

    #[test]
    fn ip_hash_is_stable_and_a_replaced_channel_is_not_removed_by_the_old_one() {
        let mut w = Workers::default();
        let old = w.add(1, "a");
        w.add(2, "b");
        let first = w.pick_new(Balance::IpHash, 12345).unwrap().0;
        assert_eq!(w.pick_new(Balance::IpHash, 12345).unwrap().0, first);
        let new = w.add(1, "c");
        w.remove(1, old);
        assert_eq!(w.sink(1), Some(&"c"));
        w.remove(1, new);
        assert_eq!(w.sink(1), None);
        assert_eq!(w.len(), 1);
        w.remove(2, 2);
        assert!(w.is_empty());
        assert!(w.pick_new(Balance::LeastConnections, 0).is_none());
    }
}
