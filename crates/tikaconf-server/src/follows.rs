//! The roots the API follows, kept in a bounded map.
//!
//! One [`Client`] serves every request; a request for a root follows it (one
//! load from storage) and keeps the [`Config`] so that the next request reads
//! the document from memory, kept current by the bus like any follower's.
//! Following costs memory per root (its document) and a subscription, so the
//! map is bounded: past `capacity` roots, the one used longest ago is dropped
//! (unfollowed, unless an SSE stream still holds it) and followed again when
//! asked. A linear scan finds it: the bound is small (1,024 by default) and
//! eviction happens only on a miss, which costs a storage round trip anyway.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tikaconf::{Client, Config, Error, Hash, Root};

/// The API's followed roots.
#[derive(Debug)]
pub(crate) struct Follows {
    client: Client,
    capacity: usize,
    map: Mutex<HashMap<Hash, (Config, Instant)>>,
}

impl Follows {
    pub(crate) fn new(client: Client, capacity: usize) -> Follows {
        Follows {
            client,
            capacity: capacity.max(1),
            map: Mutex::default(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The followed configuration of `root`, following it if needed (which
    /// registers it when `root` is a root configuration).
    pub(crate) async fn get(&self, root: impl Into<Root>) -> Result<Config, Error> {
        let root = root.into();
        let hash = root.hash();
        if let Some((config, used)) = self.lock().get_mut(&hash) {
            *used = Instant::now();
            return Ok(config.clone());
        }
        // Not under the lock: a load takes a storage round trip. Two requests
        // racing here both follow; the client shares one follower per root.
        let config = self.client.follow(root).await?;
        let mut map = self.lock();
        map.insert(hash, (config.clone(), Instant::now()));
        if map.len() > self.capacity
            && let Some(oldest) = map
                .iter()
                .filter(|(h, _)| **h != hash)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(h, _)| *h)
        {
            map.remove(&oldest);
        }
        Ok(config)
    }

    /// Whether `root` is followed now (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn contains(&self, root: Hash) -> bool {
        self.lock().contains_key(&root)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, (Config, Instant)>> {
        // Every update is one insert or remove: a poisoned map is consistent.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tikaconf::testing::Fleet;

    use super::*;

    #[tokio::test]
    async fn keeps_at_most_capacity_roots_dropping_the_least_recently_used() {
        let fleet = Fleet::start().await;
        let follows = Follows::new(fleet.connect(), 2);
        let a = fleet.config(json!({"a": 1})).await.root();
        let b = fleet.config(json!({"b": 1})).await.root();
        let c = fleet.config(json!({"c": 1})).await.root();
        follows.get(a).await.unwrap();
        follows.get(b).await.unwrap();
        follows.get(a).await.unwrap(); // b is now the least recently used
        follows.get(c).await.unwrap();
        assert!(follows.contains(a) && follows.contains(c));
        assert!(!follows.contains(b));
        assert_eq!(follows.get(b).await.unwrap().document()["b"], 1);
    }
}
