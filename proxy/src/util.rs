//! The bottom layer: what every other module may use and which uses none of them.
//!
//! - [`FastMap`]: the hash map of the request path's lookups (foldhash, seeded per process).
//! - [`monotonic_ms`]: a cheap monotonic clock for ejection windows and ages.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

/// A `HashMap` with foldhash: a fast hasher, randomly seeded so a hostile host name cannot be
/// chosen to collide.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Milliseconds since the process started (monotonic; never Unix time).
pub(crate) fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
