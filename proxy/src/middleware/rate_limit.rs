//! `rateLimit`: at most `average` requests per `period` (1 s by default) from one source, with
//! bursts of `burst` (1 by default), as Traefik's token bucket; past it, 429 with `Retry-After`.
//! The source is the client's address (or, by `sourceCriterion`, a request header or the
//! host).
//!
//! Lock-free and bounded: sources hash into a fixed table of 64-bit slots, each holding the
//! generic cell rate algorithm's "theoretical arrival time", updated with compare-and-swap.
//! Two sources sharing a slot share a limit (a collision only ever limits more), and the table
//! never grows, whatever the number of clients.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Slots of a limiter (64 K × 8 bytes: 512 KiB).
const SLOTS: usize = 1 << 16;

/// What a request is counted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    ClientIp,
    Header(http::HeaderName),
    Host,
}

/// A compiled `rateLimit`.
pub struct RateLimit {
    /// Microseconds between requests at the average rate.
    interval: u64,
    /// How far ahead of now a source's arrival time may run (the burst).
    tolerance: u64,
    pub source: Source,
    epoch: Instant,
    hasher: foldhash::quality::RandomState,
    slots: Box<[AtomicU64]>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("interval_us", &self.interval)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// `average` requests per `period`, bursts of `burst`; `None` when `average` is 0 (Traefik:
    /// no limit).
    pub fn new(average: u64, period: Duration, burst: u64, source: Source) -> Option<RateLimit> {
        if average == 0 {
            return None;
        }
        let interval = (period.as_micros() as u64 / average).max(1);
        Some(RateLimit {
            interval,
            tolerance: interval.saturating_mul(burst.max(1).saturating_sub(1)),
            source,
            epoch: Instant::now(),
            hasher: foldhash::quality::RandomState::default(),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Takes a request from `key`'s budget at `now`: `Ok`, or how long until one would fit.
    pub fn take(&self, key: &[u8], now: Instant) -> Result<(), Duration> {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        let slot = &self.slots[(h.finish() as usize) & (SLOTS - 1)];
        let now = now.saturating_duration_since(self.epoch).as_micros() as u64 + self.interval;
        let mut tat = slot.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start > now + self.tolerance {
                return Err(Duration::from_micros(start - now - self.tolerance));
            }
            match slot.compare_exchange_weak(
                tat,
                start + self.interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_and_the_burst_hold_per_source() {
        let rl = RateLimit::new(10, Duration::from_secs(1), 3, Source::ClientIp).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rl.take(b"a", t0).is_ok(), "the burst");
        }
        let wait = rl.take(b"a", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO, "{wait:?}");
        assert!(rl.take(b"b", t0).is_ok(), "another source has its own budget");
        assert!(rl.take(b"a", t0 + Duration::from_millis(100)).is_ok(), "refilled at 10/s");
        assert!(rl.take(b"a", t0 + Duration::from_millis(100)).is_err());
        // Over a long run, about the average gets through.
        let ok =
            (0..1000).filter(|i| rl.take(b"c", t0 + Duration::from_millis(*i)).is_ok()).count();
        assert!((11..=14).contains(&ok), "{ok} in a second at 10/s with a burst of 3");
        assert!(RateLimit::new(0, Duration::from_secs(1), 1, Source::Host).is_none());
    }
}
