//! The log ingest task: `log.lines` from every worker. Runtime lines go to the log bus; build
//! lines also to their deployment's `build_log` (the last MiB kept, the total counted).
//!
//! Lines are taken in batches: whatever is queued when the task wakes, up to [`MAX_BATCH`]
//! messages. A batch checks each (worker, app, deployment) once, and writes each deployment's
//! build output in one statement, so a chatty build costs one `UPDATE` per batch rather than
//! one per message; a quiet one is written at once. Lines for a deployment the worker does not
//! run are refused (counted as `not_yours`).

use std::collections::{BTreeMap, HashMap};

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wh_wsproto::messages::{LogLines, Stream};
use wh_wsproto::Message;

use crate::hub::{Hub, Inbound};
use crate::logbus::{self, LogBus};

/// The most messages one batch takes from the queue.
pub const MAX_BATCH: usize = 256;

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// `log.lines` messages applied (refused ones not counted).
    pub messages: usize,
    /// `UPDATE`s of `build_log`: one per deployment with build output in the batch.
    pub build_writes: usize,
}

/// Ingests batches until `stop`.
pub async fn run(
    pool: &PgPool,
    hub: &Hub,
    bus: Option<&LogBus>,
    queue: &mut mpsc::Receiver<Inbound>,
    stop: &CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = crate::hub::next(queue, stop).await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        ingest(pool, hub, bus, &batch).await;
        batch.clear();
    }
}

/// Applies one batch, in order.
pub async fn ingest(pool: &PgPool, hub: &Hub, bus: Option<&LogBus>, batch: &[Inbound]) -> Ingested {
    let mut owners: HashMap<(Uuid, &str, i64), Option<i64>> = HashMap::new();
    let mut build: BTreeMap<i64, String> = BTreeMap::new();
    let mut done = Ingested::default();
    for msg in batch {
        let Message::LogLines(l) = &msg.message else { continue };
        let worker = msg.worker_id;
        let Some(deployment) = l.deployment_id else {
            hub.reject(worker, "not_yours", "log lines without a deployment");
            continue;
        };
        let key = (worker, l.app.as_str(), deployment);
        let app = match owners.get(&key) {
            Some(known) => *known,
            None => match log_owner(pool, worker, &l.app, deployment).await {
                Ok(found) => *owners.entry(key).or_insert(found),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check whose log lines these are");
                    continue;
                }
            },
        };
        let Some(app) = app else {
            hub.reject(worker, "not_yours", &format!("log lines for deployment {deployment}"));
            continue;
        };
        done.messages += 1;
        if let Some(bus) = bus {
            bus.push(app, entries(l));
        }
        append_build_lines(build.entry(deployment).or_default(), l);
    }
    for (deployment, text) in build.into_iter().filter(|(_, t)| !t.is_empty()) {
        let appended = sqlx::query(
            "UPDATE deployments SET build_log = right(build_log || $2, 1048576), \
             build_log_total = build_log_total + octet_length($2) WHERE id = $1",
        )
        .bind(deployment)
        .bind(text)
        .execute(pool)
        .await;
        match appended {
            Ok(_) => done.build_writes += 1,
            Err(e) => tracing::warn!(error = %e, "cannot store build output"),
        }
    }
    done
}

/// The app whose log lines `worker` may send for `deployment`: the deployment must be of the
/// app named, and the worker must run it (live or superseded there) or hold its job.
async fn log_owner(
    pool: &PgPool,
    worker: Uuid,
    app: &str,
    deployment: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT d.app_id FROM deployments d JOIN apps a ON a.id = d.app_id
         WHERE d.id = $1 AND a.slug = $2
           AND (d.worker_id = $3 OR EXISTS (SELECT 1 FROM jobs j
                                            WHERE j.deployment_id = d.id AND j.claimed_by = $4))",
    )
    .bind(deployment)
    .bind(app)
    .bind(worker)
    .bind(worker.to_string())
    .fetch_optional(pool)
    .await
}

/// The bus entries of one message, a note of what the worker dropped first.
fn entries(l: &LogLines) -> Vec<logbus::Entry> {
    let stream = |s: Stream| match s {
        Stream::Build => "build",
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    let mut entries = Vec::with_capacity(l.lines.len() + 1);
    if l.dropped > 0 {
        entries.push(logbus::Entry {
            ts_ms: crate::now_ms(),
            stream: "system",
            line: format!("[{} lines dropped by the worker]", l.dropped),
            deployment_id: l.deployment_id,
        });
    }
    entries.extend(l.lines.iter().map(|x| logbus::Entry {
        ts_ms: x.ts_ms,
        stream: stream(x.stream),
        line: x.line.clone(),
        deployment_id: l.deployment_id,
    }));
    entries
}

/// Appends the message's build lines (each clipped, newline-terminated) to `out`.
fn append_build_lines(out: &mut String, l: &LogLines) {
    for x in l.lines.iter().filter(|x| x.stream == Stream::Build) {
        let mut line = x.line.clone();
        logbus::clip(&mut line);
        out.push_str(&line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wh_wsproto::messages::LogLine;

    #[test]
    fn build_lines_are_clipped_and_kept_in_order_runtime_lines_are_not() {
        let l = LogLines {
            app: "a".into(),
            deployment_id: Some(1),
            lines: vec![
                LogLine { ts_ms: 1, stream: Stream::Build, line: "step 1".into() },
                LogLine { ts_ms: 2, stream: Stream::Stdout, line: "listening".into() },
                LogLine { ts_ms: 3, stream: Stream::Build, line: "x".repeat(100_000) },
            ],
            dropped: 2,
        };
        let mut out = String::new();
        append_build_lines(&mut out, &l);
        append_build_lines(&mut out, &l);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "step 1");
        assert!(lines[1].len() < 100_000, "an overlong line is clipped");
        let e = entries(&l);
        assert_eq!(e.len(), 4, "the dropped note and the three lines");
        assert_eq!((e[0].stream, e[2].stream), ("system", "stdout"));
    }
}
