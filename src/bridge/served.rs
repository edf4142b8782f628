//! What this host serves, as the other hosts must see it: the namespaces of
//! its workers (registered with the router, subscribed on Redis) and how
//! many servers the other hosts have, for `serverCount()`.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::time::timeout;

use super::connection::{Report, COMMAND_TIMEOUT};
use super::stock::Channels;
use super::Bridge;
use crate::frame::Header;

/// A namespace this host serves.
pub(super) struct Served {
    pub(super) channels: Channels,
    pub(super) workers: usize,
    /// Other bridges serving the namespace: uid → the servers each stands
    /// for, as last counted (see `Bridge::counted`).
    pub(super) bridges: HashMap<String, u64>,
}

impl Bridge {
    /// Serves (and subscribes for) the namespaces this host's workers serve,
    /// and says how many workers stand behind each.
    pub(super) async fn sync_served(&mut self) {
        let now: HashMap<String, usize> = self.port.served().into_iter().collect();
        let gone: Vec<String> = self
            .served
            .keys()
            .filter(|n| !now.contains_key(*n))
            .cloned()
            .collect();
        for nsp in gone {
            self.port
                .send(Header::Unregister { nsp: nsp.clone() }, Bytes::new());
            if let Some(s) = self.served.remove(&nsp) {
                if let Err(e) = self.unsubscribe(&s.channels, &nsp).await {
                    self.lost(&e);
                }
            }
        }
        for (nsp, workers) in now {
            let result = match self.served.get_mut(&nsp) {
                Some(s) if s.workers == workers => continue,
                Some(s) => {
                    s.workers = workers;
                    self.renew_servers_channel(&nsp).await
                }
                None => {
                    self.port
                        .send(Header::Register { nsp: nsp.clone() }, Bytes::new());
                    let channels = Channels::new(&self.options.key, &nsp, &self.uid);
                    let served = Served {
                        channels,
                        workers,
                        bridges: HashMap::new(),
                    };
                    self.served.insert(nsp.clone(), served);
                    self.subscribe(&nsp).await
                }
            };
            if let Err(e) = result {
                self.lost(&e);
            }
        }
    }

    /// Counts the servers of other hosts, per namespace, for `serverCount()`.
    pub(super) fn count_servers(&self) {
        let Some(conn) = &self.connection else {
            return;
        };
        for (nsp, s) in &self.served {
            let mut commands = conn.commands.clone();
            let reports = self.reports.clone();
            let generation = conn.generation;
            let nsp = nsp.clone();
            let request = s.channels.request.clone();
            let pattern = s.channels.servers_pattern();
            tokio::spawn(async move {
                let mut pipe = redis::pipe();
                pipe.cmd("PUBSUB").arg("NUMSUB").arg(&request);
                pipe.cmd("PUBSUB").arg("CHANNELS").arg(&pattern);
                let asked = pipe.query_async::<(Vec<(String, u64)>, Vec<String>)>(&mut commands);
                if let Ok(Ok((numsub, bridges))) = timeout(COMMAND_TIMEOUT, asked).await {
                    let subscribers = numsub.first().map_or(0, |(_, n)| *n);
                    let _ = reports.send(Report::Counted {
                        generation,
                        nsp,
                        subscribers,
                        bridges,
                    });
                }
            });
        }
    }

    /// Servers of other hosts: every subscriber of the request channel is
    /// one server, but a bridge stands for as many as its channel says.
    pub(super) fn counted(&mut self, nsp: &str, subscribers: u64, bridges: &[String]) {
        let Some(served) = self.served.get_mut(nsp) else {
            return;
        };
        let c = &served.channels;
        served.bridges = bridges
            .iter()
            .filter_map(|ch| c.parse_servers_channel(ch))
            .filter(|(uid, _)| *uid != self.uid)
            .map(|(uid, workers)| (uid.to_owned(), u64::from(workers)))
            .collect();
        let remote = self.servers_behind(nsp, subscribers.saturating_sub(1));
        self.port
            .set_remote_servers(nsp, u32::try_from(remote).unwrap_or(u32::MAX));
    }

    /// Servers behind `subscribers` other subscribers of `nsp`'s request
    /// channel: one each, but a bridge stands for its workers.
    pub(super) fn servers_behind(&self, nsp: &str, subscribers: u64) -> u64 {
        let Some(served) = self.served.get(nsp) else {
            return subscribers;
        };
        let bridges = served.bridges.len() as u64;
        subscribers.saturating_sub(bridges) + served.bridges.values().sum::<u64>()
    }

    /// True when `uid` is another bridge serving `nsp`.
    pub(super) fn is_bridge(&self, nsp: &str, uid: &str) -> bool {
        self.served
            .get(nsp)
            .is_some_and(|s| s.bridges.contains_key(uid))
    }
}
