//! Supervised long-running tasks: a subsystem that panics or ends on its own is logged with its
//! cause and started again (with a backoff), so no subsystem is ever silently dead. How often
//! each restarted is counted ([`restarts`]; the tests read it).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

static RESTARTS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// How often each supervised task was restarted in this process.
pub fn restarts() -> BTreeMap<&'static str, u64> {
    RESTARTS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs the task `make` builds until `stop`. When it panics or returns before `stop`, the
/// cause is logged at error level and `make` builds it again after a backoff (0.5 s doubling to
/// 30 s; back to 0.5 s once a run lasted a minute). Dropping the returned future aborts the task.
pub async fn supervise<F, Fut>(name: &'static str, stop: CancellationToken, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    const FIRST: Duration = Duration::from_millis(500);
    let mut backoff = FIRST;
    loop {
        let started = tokio::time::Instant::now();
        let mut task = AbortOnDrop(tokio::spawn(make()));
        let outcome = tokio::select! {
            joined = &mut task.0 => joined,
            _ = stop.cancelled() => {
                // The task sees `stop` too; give it a moment to finish its own way.
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut task.0).await;
                return;
            }
        };
        if stop.is_cancelled() {
            return;
        }
        match outcome {
            Ok(()) => tracing::error!(task = name, "task ended on its own; restarting it"),
            Err(e) if e.is_panic() => {
                let why = panic_message(e.into_panic().as_ref());
                tracing::error!(task = name, panic = %why, "task panicked; restarting it");
            }
            Err(e) => tracing::error!(task = name, error = %e, "task was cancelled; restarting it"),
        }
        *RESTARTS.lock().unwrap_or_else(|e| e.into_inner()).entry(name).or_default() += 1;
        if started.elapsed() >= Duration::from_secs(60) {
            backoff = FIRST;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// A task panicked (or was cancelled); the panic's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Panicked(pub String);

/// Runs `task` once; a panic is logged with `name` and its message and becomes `Err` with
/// that message, for callers that must answer for the work (a job that panicked still fails
/// with a reason).
pub async fn supervise_panics<T: Send + 'static>(
    name: &'static str,
    task: impl Future<Output = T> + Send + 'static,
) -> Result<T, Panicked> {
    match AbortOnDrop(tokio::spawn(task)).join().await {
        Ok(v) => Ok(v),
        Err(e) => {
            let why =
                if e.is_panic() { panic_message(e.into_panic().as_ref()) } else { e.to_string() };
            tracing::error!(task = name, panic = %why, "task panicked");
            Err(Panicked(why))
        }
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_until_stop() {
        let runs = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let counted = runs.clone();
        let supervisor = tokio::spawn(supervise("test-panics", stop.clone(), move || {
            let runs = counted.clone();
            async move {
                if runs.fetch_add(1, SeqCst) < 3 {
                    panic!("injected");
                }
                std::future::pending::<()>().await
            }
        }));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(runs.load(SeqCst), 4, "three panics, three restarts, then it stays up");
        assert_eq!(restarts().get("test-panics"), Some(&3));
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), supervisor)
            .await
            .expect("the supervisor ends at stop")
            .unwrap();
    }

    #[tokio::test]
    async fn a_panic_becomes_an_error_with_its_message() {
        let r = supervise_panics("test-once", async { panic!("boom {}", 7) }).await;
        assert_eq!(r, Err::<(), _>(Panicked("boom 7".into())));
        assert_eq!(supervise_panics("test-once", async { 5 }).await, Ok(5));
    }
}
