//! Rate limits: a fixed window per key (a client IP, or an account for failed sign-ins),
//! answered with 429 and `Retry-After` (seconds until the window resets). Memory is bounded:
//! stale windows are dropped when the table grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before stale windows are swept.
const SWEEP_AT: usize = 100_000;

/// A limiter allowing `limit` events per `window` per key (by default a client IP).
#[derive(Debug)]
pub struct RateLimiter<K = IpAddr> {
    limit: u32,
    window: Duration,
    buckets: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: std::hash::Hash + Eq + Clone> RateLimiter<K> {
    pub fn per_minute(limit: u32) -> RateLimiter<K> {
        Self::per(limit, Duration::from_secs(60))
    }

    pub fn per(limit: u32, window: Duration) -> RateLimiter<K> {
        RateLimiter { limit, window, buckets: Mutex::new(HashMap::new()) }
    }

    /// `Err(retry_after)` when `key` is over its limit now; counts nothing.
    pub fn peek(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get(key) {
            Some((start, count))
                if now.duration_since(*start) < self.window && *count >= self.limit =>
            {
                Err(self
                    .window
                    .saturating_sub(now.duration_since(*start))
                    .max(Duration::from_secs(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one event of `key`: `Ok` to go ahead, or `Err(retry_after)`.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        let ip = key;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_AT {
            let window = self.window;
            buckets.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let (start, count) = buckets.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= self.limit {
            return Err(self
                .window
                .saturating_sub(now.duration_since(*start))
                .max(Duration::from_secs(1)));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip_and_resets_with_the_window() {
        let l = RateLimiter::per_minute(3);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check(a, t).is_ok());
        }
        let retry = l.check(a, t + Duration::from_secs(20)).unwrap_err();
        assert_eq!(retry, Duration::from_secs(40));
        assert!(l.check(b, t).is_ok(), "another IP has its own budget");
        assert!(l.check(a, t + Duration::from_secs(61)).is_ok(), "a new window");
    }
}
