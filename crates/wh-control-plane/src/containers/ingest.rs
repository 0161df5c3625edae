//! The containers task: applies `container.event` and `container.stats` from every worker in
//! the order each worker sent them, and answers with `container.stop` for what no deployment
//! accounts for. A report on another worker's deployment is counted as `not_yours`.

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wh_wsproto::messages::ContainerStop;
use wh_wsproto::Message;

use crate::hub::{Hub, Inbound};

/// Applies the container family's messages until `stop`.
pub async fn run(
    pool: &PgPool,
    hub: &Hub,
    queue: &mut mpsc::Receiver<Inbound>,
    stop: &CancellationToken,
) {
    while let Some(msg) = crate::hub::next(queue, stop).await {
        let worker = msg.worker_id;
        hub.answer(worker, handle(pool, hub, msg).await);
    }
}

/// Applies one message of the container family; returns the answers for its worker.
pub async fn handle(pool: &PgPool, hub: &Hub, msg: Inbound) -> Vec<Message> {
    match &msg.message {
        Message::ContainerEvent(e) => {
            match super::event(pool, msg.worker_id, e).await {
                Ok(true) => {}
                Ok(false) => hub.reject(
                    msg.worker_id,
                    "not_yours",
                    &format!("container event for deployment {}", e.deployment_id),
                ),
                Err(err) => tracing::warn!(error = %err, "cannot record a container event"),
            }
            Vec::new()
        }
        Message::ContainerStats(s) => {
            let orphans = super::stats(pool, msg.worker_id, s).await;
            stop_message(orphans, msg.worker_id, "the app was deleted").into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// `container.stop` for the containers `found`, if any (a failed lookup is logged, not answered).
pub fn stop_message(
    found: Result<Vec<String>, sqlx::Error>,
    worker: Uuid,
    reason: &str,
) -> Option<Message> {
    match found {
        Ok(ids) if ids.is_empty() => None,
        Ok(ids) => {
            tracing::info!(%worker, containers = ?ids, reason, "telling the worker to stop containers");
            Some(Message::ContainerStop(ContainerStop {
                container_ids: ids,
                reason: reason.into(),
            }))
        }
        Err(e) => {
            tracing::warn!(%worker, error = %e, "cannot record the worker's containers");
            None
        }
    }
}
