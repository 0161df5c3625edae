//! HTTP-01 challenge responses of pending orders, answered from memory.
//!
//! Reads (one per validation request) are a lock-free `ArcSwap` load; the mutex serialises the
//! rare writers (an order starting or ending).

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::util::FastMap;

/// Tokens → key authorizations.
#[derive(Debug, Default)]
pub struct Challenges {
    map: ArcSwap<FastMap<Box<str>, Arc<str>>>,
    write: Mutex<()>,
}

/// The path prefix HTTP-01 validators request.
pub const PREFIX: &str = "/.well-known/acme-challenge/";

impl Challenges {
    /// The key authorization for `token`, if an order is waiting for it.
    pub fn get(&self, token: &str) -> Option<Arc<str>> {
        self.map.load().get(token).cloned()
    }

    pub fn insert(&self, token: &str, key_authorization: &str) {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = FastMap::clone(&self.map.load());
        next.insert(token.into(), key_authorization.into());
        self.map.store(Arc::new(next));
    }

    pub fn remove(&self, token: &str) {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = FastMap::clone(&self.map.load());
        next.remove(token);
        self.map.store(Arc::new(next));
    }
}
