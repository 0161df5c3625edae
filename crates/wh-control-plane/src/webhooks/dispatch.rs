//! The dispatcher: fans events out ([`super::fanout`]), claims due deliveries with SKIP
//! LOCKED under a lease (several control planes may run), sends each through the SSRF guard,
//! and records the attempt. Success is a 2xx within the client's 15 s (5 s to connect); a
//! failure is tried again on [`super::schedule`]'s schedule; a 410 disables the target, and so
//! do 100 failed attempts in a row or 5 days of failing, after which its owner's other channels
//! are told. An attempt whose process died is claimed again once its lease ends: nothing is
//! lost across a restart, and the event id stays the same.
//!
//! It never logs a target's URL, secret, or a request's headers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::event::{self, DISABLED, TEST};
use super::schedule;
use super::signature;
use super::targets::{Keys, TargetKind};
use crate::notify;
use crate::outbound::{self, guard::Guard};

/// The first bytes of an answer kept with its attempt.
pub const KEPT_RESPONSE: usize = 64 * 1024;
/// A target failing this many attempts in a row, or for [`FAILING_DAYS`], is disabled.
pub const MAX_FAILURES: i32 = 100;
pub const FAILING_DAYS: i32 = 5;
/// Deliveries claimed at once (and sent concurrently).
const BATCH: i64 = 32;

/// What the dispatcher needs besides the database.
pub struct Settings {
    pub client: outbound::Client,
    pub guard: Guard,
    pub keys: Arc<Keys>,
    /// The dashboard's base URL for links in messages (empty: none).
    pub dashboard: String,
    /// How long a claimed delivery is held before another dispatcher may take it.
    pub lease: Duration,
}

pub struct Dispatcher {
    pool: PgPool,
    settings: Settings,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

/// A delivery claimed for one attempt.
#[derive(Debug, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub target_id: i64,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub body: Value,
    pub attempts: i32,
}

/// What one attempt came to.
#[derive(Debug, Default)]
struct Attempt {
    ok: bool,
    status: Option<u16>,
    error: Option<String>,
    response: Option<String>,
    retry_after: Option<Duration>,
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    kind: TargetKind,
    url_sealed: Vec<u8>,
    secret_sealed: Option<Vec<u8>>,
    previous_secret_sealed: Option<Vec<u8>>,
    rotating: bool,
}

fn kept(body: &[u8]) -> String {
    let cut = &body[..body.len().min(KEPT_RESPONSE)];
    String::from_utf8_lossy(cut).replace('\0', "")
}

impl Dispatcher {
    pub fn new(pool: PgPool, settings: Settings) -> Dispatcher {
        Dispatcher { pool, settings, wake: tokio::sync::Notify::new() }
    }

    pub fn guard(&self) -> &Guard {
        &self.settings.guard
    }

    pub fn keys(&self) -> &Keys {
        &self.settings.keys
    }

    /// Runs the next round now rather than within a second.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Fans out and delivers until `stop`, a round at least every second.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut pruned = Instant::now();
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "webhook dispatch round failed");
            }
            if pruned.elapsed() > Duration::from_secs(600) {
                pruned = Instant::now();
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "pruning old deliveries failed");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// One round: fan out, then deliver everything due; returns the attempts made.
    pub async fn tick(&self) -> Result<usize, sqlx::Error> {
        super::fanout::events(&self.pool).await?;
        super::fanout::notices(&self.pool).await?;
        let mut made = 0;
        loop {
            let claimed = self.claim().await?;
            if claimed.is_empty() {
                return Ok(made);
            }
            made += claimed.len();
            let results =
                futures_util::future::join_all(claimed.into_iter().map(|c| self.deliver(c))).await;
            for r in results {
                r?;
            }
        }
    }

    /// Claims up to a batch of due deliveries for one attempt each.
    pub async fn claim(&self) -> Result<Vec<Claimed>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE deliveries d SET attempts = d.attempts + 1, lease_until = now() + make_interval(secs => $2)
             WHERE d.id IN (SELECT id FROM deliveries
                            WHERE state = 'pending' AND next_attempt_at <= now()
                              AND (lease_until IS NULL OR lease_until < now())
                            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING d.id, d.target_id, d.event_id, d.event_type, d.body, d.attempts",
        )
        .bind(BATCH)
        .bind(self.settings.lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await
    }

    /// Makes the claimed attempt and records it.
    pub async fn deliver(&self, c: Claimed) -> Result<(), sqlx::Error> {
        let target: Option<TargetRow> = sqlx::query_as(
            "SELECT kind, url_sealed, secret_sealed, previous_secret_sealed,
                    coalesce(previous_until > now(), false) AS rotating
             FROM notify_targets WHERE id = $1 AND enabled",
        )
        .bind(c.target_id)
        .fetch_optional(&self.pool)
        .await?;
        let started = sqlx::types::chrono::Utc::now();
        let clock = Instant::now();
        let attempt = match target {
            None => Attempt { error: Some("the target is disabled".into()), ..Attempt::default() },
            Some(t) => self.attempt(&c, &t).await,
        };
        let elapsed = clock.elapsed();
        self.record(&c, started, elapsed, attempt).await
    }

    async fn attempt(&self, c: &Claimed, t: &TargetRow) -> Attempt {
        let keys = &self.settings.keys;
        let Ok(url) = keys.urls.open(&t.url_sealed, c.target_id) else {
            return Attempt {
                error: Some("the target's URL does not open".into()),
                ..Attempt::default()
            };
        };
        let url = String::from_utf8_lossy(&url).into_owned();
        match t.kind {
            TargetKind::Webhook => self.webhook(c, t, &url).await,
            TargetKind::Channel => self.channel(c, &url).await,
        }
    }

    async fn webhook(&self, c: &Claimed, t: &TargetRow, url: &str) -> Attempt {
        let keys = &self.settings.keys;
        let mut secrets = Vec::new();
        for sealed in [Some(&t.secret_sealed), t.rotating.then_some(&t.previous_secret_sealed)]
            .into_iter()
            .flatten()
            .flatten()
        {
            let opened = keys.secrets.open(sealed, c.target_id).ok();
            if let Some(key) =
                opened.and_then(|s| signature::key(&String::from_utf8_lossy(&s)).ok())
            {
                secrets.push(key);
            }
        }
        if secrets.is_empty() {
            return Attempt {
                error: Some("the signing secret does not open".into()),
                ..Attempt::default()
            };
        }
        let body = serde_json::to_vec(&c.body).expect("a JSON value serialises");
        let id = c.event_id.to_string();
        let refs: Vec<&[u8]> = secrets.iter().map(|k| k.as_slice()).collect();
        let signed = signature::headers(&id, crate::now_ms() / 1000, &body, &refs);
        let mut headers: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push(("content-type", "application/json"));
        headers.push(("x-wisehosting-event", &c.event_type));
        let answer = self
            .settings
            .client
            .send_for_user(
                &self.settings.guard,
                http::Method::POST,
                url,
                &headers,
                Bytes::from(body),
            )
            .await;
        match answer {
            Ok(a) => Attempt {
                ok: a.is_success(),
                status: Some(a.status),
                error: None,
                response: Some(kept(&a.body)),
                retry_after: a
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| schedule::retry_after(v, sqlx::types::chrono::Utc::now())),
            },
            Err(e) => Attempt { error: Some(e.to_string()), ..Attempt::default() },
        }
    }

    async fn channel(&self, c: &Claimed, url: &str) -> Attempt {
        let parsed = match notify::parse(url) {
            Ok(p) => p,
            Err(e) => return Attempt { error: Some(e.to_string()), ..Attempt::default() },
        };
        let kind = c.body.get("type").and_then(Value::as_str).unwrap_or(&c.event_type);
        let data = c.body.get("data").cloned().unwrap_or(Value::Null);
        let mut msg = notify::message::render(kind, &data, &self.settings.dashboard);
        msg.id = c.event_id.to_string();
        let sent =
            notify::send(&parsed.channel, &self.settings.client, &self.settings.guard, &msg).await;
        match sent {
            Ok(o) => Attempt {
                ok: o.ok,
                status: Some(o.status),
                error: None,
                response: Some(kept(&o.body)),
                retry_after: o
                    .retry_after
                    .as_deref()
                    .and_then(|v| schedule::retry_after(v, sqlx::types::chrono::Utc::now())),
            },
            Err(e) => Attempt { error: Some(e.to_string()), ..Attempt::default() },
        }
    }

    async fn record(
        &self,
        c: &Claimed,
        started: sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>,
        elapsed: Duration,
        a: Attempt,
    ) -> Result<(), sqlx::Error> {
        let gone = a.status == Some(410);
        let delay = if a.ok || gone {
            None
        } else {
            schedule::next_delay(c.attempts, schedule::jitter(), a.retry_after)
        };
        let state = match (a.ok, delay) {
            (true, _) => "succeeded",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        let mut tx = self.pool.begin().await?;
        // Guarded by the attempt number: a stale dispatcher (its lease ran out and another
        // took the delivery) records nothing.
        let done = sqlx::query(
            "UPDATE deliveries SET state = $3::delivery_state, lease_until = NULL,
                    next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at ELSE now() + make_interval(secs => $4::float8) END,
                    finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
             WHERE id = $1 AND attempts = $2 AND state = 'pending'",
        )
        .bind(c.id)
        .bind(c.attempts)
        .bind(state)
        .bind(delay.map(|d| d.as_secs_f64()))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status, error, response)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(c.id)
        .bind(c.attempts)
        .bind(started)
        .bind(i32::try_from(elapsed.as_millis()).unwrap_or(i32::MAX))
        .bind(a.status.map(i32::from))
        .bind(&a.error)
        .bind(&a.response)
        .execute(&mut *tx)
        .await?;
        // A test says nothing about the target's health.
        if c.event_type != TEST {
            self.target_health(&mut tx, c.target_id, a.ok, gone).await?;
        }
        tx.commit().await
    }

    async fn target_health(
        &self,
        tx: &mut sqlx::PgConnection,
        target: i64,
        ok: bool,
        gone: bool,
    ) -> Result<(), sqlx::Error> {
        if ok {
            sqlx::query("UPDATE notify_targets SET consecutive_failures = 0, failing_since = NULL WHERE id = $1")
                .bind(target)
                .execute(&mut *tx)
                .await?;
            return Ok(());
        }
        let (failures, old): (i32, bool) = sqlx::query_as(
            "UPDATE notify_targets SET consecutive_failures = consecutive_failures + 1,
                    failing_since = coalesce(failing_since, now())
             WHERE id = $1
             RETURNING consecutive_failures, failing_since < now() - make_interval(days => $2)",
        )
        .bind(target)
        .bind(FAILING_DAYS)
        .fetch_one(&mut *tx)
        .await?;
        let reason = if gone {
            "the endpoint answered 410 Gone".to_owned()
        } else if failures >= MAX_FAILURES {
            format!("{failures} deliveries in a row failed")
        } else if old {
            format!("deliveries failed for {FAILING_DAYS} days")
        } else {
            return Ok(());
        };
        let disabled: Option<(i64, String)> = sqlx::query_as(
            "UPDATE notify_targets SET enabled = false, disabled_reason = $2 WHERE id = $1 AND enabled
             RETURNING user_id, display",
        )
        .bind(target)
        .bind(&reason)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user, display)) = disabled else { return Ok(()) };
        sqlx::query(
            "UPDATE deliveries SET state = 'failed', lease_until = NULL, finished_at = now()
             WHERE target_id = $1 AND state = 'pending'",
        )
        .bind(target)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO event_outbox (event_type, user_id, payload) VALUES ($1, $2, $3)")
            .bind(DISABLED)
            .bind(user)
            .bind(json!({ "target_id": target, "target": display, "reason": reason }))
            .execute(&mut *tx)
            .await?;
        crate::audit::record(
            tx,
            None,
            "notify_target.disabled",
            &format!("notify_target:{target}"),
            None,
            json!({ "reason": reason }),
        )
        .await?;
        tracing::info!(target, %reason, "notification target disabled");
        Ok(())
    }

    /// Queues a test delivery to `target` (the same path as any event); returns its id.
    pub async fn send_test(&self, target: i64) -> Result<i64, sqlx::Error> {
        let now = sqlx::types::chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let body = event::body(TEST, &now, json!({ "target_id": target }));
        let id = sqlx::query_scalar(
            "INSERT INTO deliveries (target_id, event_id, event_type, body)
             VALUES ($1, gen_random_uuid(), $2, $3) RETURNING id",
        )
        .bind(target)
        .bind(TEST)
        .bind(body)
        .fetch_one(&self.pool)
        .await?;
        self.wake();
        Ok(id)
    }

    /// Deletes deliveries finished more than 30 days ago and outbox events fanned out as long.
    pub async fn prune(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM deliveries WHERE finished_at < now() - interval '30 days'")
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM event_outbox WHERE fanned_out_at < now() - interval '30 days'")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
