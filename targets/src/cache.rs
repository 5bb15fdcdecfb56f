//! The cache behind `GET /cache/{key}` and gRPC Get/Put.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;

/// Unbounded (the leak) or LRU with TTL (the fix).
pub enum Cache {
    /// No eviction, no TTL: every new key stays forever.
    Unbounded(Mutex<HashMap<String, Bytes>>),
    /// Capacity and TTL bound the memory.
    Lru {
        /// Entries with their insertion time.
        map: Mutex<LruCache<String, (Bytes, Instant)>>,
        /// Time to live.
        ttl: Duration,
    },
}

impl Cache {
    /// A cache for the given mode.
    pub fn new(unbounded: bool, capacity: usize, ttl: Duration) -> Self {
        if unbounded {
            Cache::Unbounded(Mutex::default())
        } else {
            let cap = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
            Cache::Lru {
                map: Mutex::new(LruCache::new(cap)),
                ttl,
            }
        }
    }

    /// Looks `key` up; on a miss stores `make()` under it. Returns the value.
    pub fn get_or_insert(&self, key: &str, make: impl FnOnce() -> Bytes) -> Bytes {
        match self {
            Cache::Unbounded(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                m.entry(key.to_string()).or_insert_with(make).clone()
            }
            Cache::Lru { map, ttl } => {
                let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((v, at)) = m.get(key)
                    && at.elapsed() < *ttl
                {
                    return v.clone();
                }
                let v = make();
                m.put(key.to_string(), (v.clone(), Instant::now()));
                v
            }
        }
    }

    /// Stores `value` under `key`.
    pub fn put(&self, key: &str, value: Bytes) {
        match self {
            Cache::Unbounded(m) => {
                m.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.to_string(), value);
            }
            Cache::Lru { map, .. } => {
                map.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(key.to_string(), (value, Instant::now()));
            }
        }
    }

    /// Current number of entries.
    pub fn len(&self) -> usize {
        match self {
            Cache::Unbounded(m) => m.lock().map(|m| m.len()).unwrap_or(0),
            Cache::Lru { map, .. } => map.lock().map(|m| m.len()).unwrap_or(0),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A fresh value of `n` bytes (distinct allocation per call, like a real computed value).
pub fn make_value(n: usize) -> Bytes {
    Bytes::from(vec![0x5a; n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_is_bounded_unbounded_is_not() {
        let lru = Cache::new(false, 10, Duration::from_secs(60));
        let unb = Cache::new(true, 10, Duration::from_secs(60));
        for i in 0..100 {
            lru.get_or_insert(&i.to_string(), || make_value(8));
            unb.get_or_insert(&i.to_string(), || make_value(8));
        }
        assert_eq!(lru.len(), 10);
        assert_eq!(unb.len(), 100);
    }
}
