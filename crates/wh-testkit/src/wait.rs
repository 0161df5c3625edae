//! Waiting for an observable outcome, bounded: the one way tests wait.
//!
//! [`eventually`] polls a probe until it yields a value and fails the test with a message that
//! says what never happened; [`within`] is the same wait for a test that reports the failure
//! itself (with more detail than a probe can give). Neither ever waits without a bound.

use std::time::Duration;

/// How often a probe runs.
pub const POLL: Duration = Duration::from_millis(100);

/// Runs `probe` every [`POLL`] until it returns `Some`, for at most `limit`; `None` when it
/// never did. The probe runs at least once, however short `limit` is.
pub async fn within<T>(limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `probe` until it returns `Some`, for at most `limit`, and returns its value; panics
/// with "`what` did not happen within `limit`" otherwise.
pub async fn eventually<T>(
    limit: Duration,
    what: &str,
    probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    match within(limit, probe).await {
        Some(v) => v,
        None => panic!("{what} did not happen within {limit:?}"),
    }
}

/// [`within`] for a condition: true once `cond` holds, false if it never did within `limit`.
pub async fn until(limit: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    within(limit, async || cond().await.then_some(())).await.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_probe_is_polled_until_it_answers_and_the_wait_is_bounded() {
        let mut calls = 0;
        let got = within(Duration::from_secs(1), async || {
            calls += 1;
            (calls == 3).then_some(calls)
        })
        .await;
        assert_eq!(got, Some(3));
        let started = tokio::time::Instant::now();
        assert_eq!(within(Duration::from_secs(2), async || None::<()>).await, None);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(3), "{waited:?}");
        assert!(!until(Duration::ZERO, async || false).await, "the probe still runs once");
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "the sky falling did not happen within 1s")]
    async fn a_probe_that_never_answers_fails_with_what_it_waited_for() {
        eventually(Duration::from_secs(1), "the sky falling", async || None::<()>).await;
    }
}
