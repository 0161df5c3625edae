//! Report ingestion: what workers say about their jobs. `hello` (the jobs it still runs, its
//! containers, then readiness), heartbeats (leases of the jobs listed, and `job.cancel` for
//! those that ended here), `job.ack` and `job.progress` (lease extended, deployment state),
//! `job.result` (the attempt completed, fenced; the deployment finished). A report on a job
//! that is not the worker's own changes nothing and is counted as `not_yours`.

use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use wh_wsproto::Message;

use super::SchedulerSettings;
use crate::hub::{Hub, Inbound};
use crate::queue::{self, CompleteError};

/// Applies the job family's messages in order until `stop`; wakes placement when a worker
/// became ready or a job finished.
pub(super) async fn run(
    pool: &PgPool,
    hub: &Hub,
    settings: &SchedulerSettings,
    queue: &mut mpsc::Receiver<Inbound>,
    wake: &Notify,
    stop: &CancellationToken,
) {
    while let Some(msg) = crate::hub::next(queue, stop).await {
        let worker = msg.worker_id;
        let frees_capacity = matches!(msg.message, Message::Hello(_) | Message::JobResult(_));
        hub.answer(worker, handle(pool, hub, settings, msg).await);
        if frees_capacity {
            wake.notify_one();
        }
    }
}

/// Applies one report of the job family; returns the answers to send back to that worker.
pub(super) async fn handle(
    pool: &PgPool,
    hub: &Hub,
    settings: &SchedulerSettings,
    msg: Inbound,
) -> Vec<Message> {
    let worker = msg.worker_id.to_string();
    let result = match &msg.message {
        Message::Hello(h) => {
            // Jobs it held and no longer runs (it restarted) fail now, not at lease expiry.
            match queue::fail_abandoned(pool, &worker, &h.running_jobs).await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::warn!(worker = %msg.worker_id, jobs = ?ids, "the worker came back without jobs it held; failed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot fail abandoned jobs"),
            }
            let unknown = crate::containers::adopt(pool, msg.worker_id, &h.containers).await;
            hub.mark_ready(msg.worker_id, msg.conn);
            return crate::containers::stop_message(
                unknown,
                msg.worker_id,
                "no deployment that should run on this worker",
            )
            .into_iter()
            .collect();
        }
        Message::Heartbeat(hb) => {
            if let Err(e) =
                queue::extend_running(pool, &worker, &hb.running_jobs, settings.lease).await
            {
                tracing::warn!(error = %e, "cannot extend leases from a heartbeat");
            }
            // Jobs it still runs that ended here (cancelled, timed out, lease lost): stop them.
            return match queue::not_held(pool, &worker, &hb.running_jobs).await {
                Ok(ended) => ended
                    .into_iter()
                    .map(|(job_id, attempt)| {
                        Message::JobCancel(wh_wsproto::messages::JobCancel {
                            job_id,
                            attempt,
                            reason: "the job ended on the control plane".into(),
                        })
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the jobs a worker runs");
                    Vec::new()
                }
            };
        }
        Message::JobAck(r) => {
            queue::extend(pool, r.job_id, r.attempt, &worker, settings.lease).await
        }
        Message::JobProgress(p) => {
            let extended = queue::extend(pool, p.job_id, p.attempt, &worker, settings.lease).await;
            if extended.is_ok() {
                if let Err(e) = crate::deployments::progress(pool, p.job_id, p.stage).await {
                    tracing::warn!(error = %e, "cannot record deployment progress");
                }
            }
            extended
        }
        Message::JobResult(r) => {
            let outcome = if r.ok {
                Ok(())
            } else {
                Err(r.error.as_deref().unwrap_or("failed without a reason"))
            };
            let completed = queue::complete(pool, r.job_id, r.attempt, &worker, outcome).await;
            if completed.is_ok() {
                let finished = crate::deployments::finish(
                    pool,
                    r.job_id,
                    msg.worker_id,
                    r.ok,
                    r.error.as_deref(),
                    r.output.as_ref(),
                    settings.drain,
                )
                .await;
                if let Err(e) = finished {
                    tracing::error!(error = %e, "cannot record the deployment outcome");
                }
            }
            completed
        }
        _ => Ok(()),
    };
    match result {
        Ok(()) => {}
        Err(CompleteError::Stale { job, attempt }) => {
            tracing::warn!(worker = %msg.worker_id, job, attempt, "report for a stale attempt refused")
        }
        Err(CompleteError::NotClaimant { job, .. }) => {
            hub.reject(msg.worker_id, "not_yours", &format!("report on job {job}"))
        }
        Err(CompleteError::Db(e)) => tracing::error!(error = %e, "cannot record a job report"),
    }
    Vec::new()
}
