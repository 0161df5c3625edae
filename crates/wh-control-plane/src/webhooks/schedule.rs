//! When a failed delivery is tried again: at once, then after 5 s, 5 min, 30 min, 2 h, 5 h,
//! 10 h and 10 h (eight attempts over about 28 hours), each delay ±10 % so that targets that
//! failed together do not come back together; a `Retry-After` (seconds or an HTTP date) pushes
//! the next attempt later, up to 24 h.

use std::time::Duration;

/// The most attempts of one delivery.
pub const ATTEMPTS: i32 = 8;

const DELAYS: [u64; 7] = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];

/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The delay after attempt `attempt` (1-based) failed, `None` when it was the last; `jitter`
/// in [-1, 1] scales the ±10 %.
pub fn next_delay(attempt: i32, jitter: f64, retry_after: Option<Duration>) -> Option<Duration> {
    if !(1..ATTEMPTS).contains(&attempt) {
        return None;
    }
    let base = DELAYS[(attempt - 1) as usize] as f64;
    let delay = Duration::from_secs_f64(base * (1.0 + 0.1 * jitter.clamp(-1.0, 1.0)));
    Some(match retry_after {
        Some(r) => delay.max(r.min(MAX_RETRY_AFTER)),
        None => delay,
    })
}

/// A random jitter in [-1, 1].
pub fn jitter() -> f64 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source is available");
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX) * 2.0 - 1.0
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (as a delay from `now`).
pub fn retry_after(
    value: &str,
    now: sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = sqlx::types::chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&sqlx::types::chrono::Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::types::chrono::{TimeZone, Utc};

    #[test]
    fn the_schedule_jitter_and_retry_after() {
        let secs = |a, j| next_delay(a, j, None).map(|d| d.as_secs_f64());
        assert_eq!(secs(1, 0.0), Some(5.0));
        assert_eq!(secs(2, 0.0), Some(300.0));
        assert_eq!(secs(7, 0.0), Some(36000.0));
        assert_eq!(secs(8, 0.0), None, "eight attempts in all");
        assert_eq!(secs(3, 1.0), Some(1980.0));
        assert_eq!(secs(3, -1.0), Some(1620.0));
        let total: f64 = (1..8).map(|a| secs(a, 0.0).unwrap()).sum();
        assert_eq!(total, 5.0 + 300.0 + 1800.0 + 7200.0 + 18000.0 + 36000.0 + 36000.0);
        let later = next_delay(1, 0.0, Some(Duration::from_secs(120))).unwrap();
        assert_eq!(later, Duration::from_secs(120));
        let capped = next_delay(1, 0.0, Some(Duration::from_secs(7 * 86400))).unwrap();
        assert_eq!(capped, MAX_RETRY_AFTER);
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        assert_eq!(retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            retry_after("Tue, 01 Dec 2026 12:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_after("soon", now), None);
        for _ in 0..100 {
            assert!((-1.0..=1.0).contains(&jitter()));
        }
    }
}
