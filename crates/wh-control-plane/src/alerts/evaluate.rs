//! One evaluation of every enabled rule at a given time (the loop passes the clock; tests pass
//! a simulated one): what each app's containers, restarts and deployments say now, each rule's
//! [`machine::step`], and its effects. Every write is guarded by the rule's `version`, and a
//! firing inserts the alert under the one-open-alert-per-rule index in the same transaction as
//! the outbox event: an evaluator that lost a race changes nothing. Messages for people
//! (`alert_notices`, which the notification channels deliver) group an app's alerts that fire
//! within 30 s of each other, and remind of alerts still firing every `remind_secs`.

use sqlx::PgPool;

use super::machine::{self, Change, Rule, State, Status};
use super::Kind;

/// Stats older than this are no data (and, for an app that should run, offline).
pub const STALE_SECS: f64 = 90.0;

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: i64,
    app_id: i64,
    slug: String,
    owner_id: i64,
    kind: Kind,
    threshold: f64,
    for_secs: i32,
    keep_firing_secs: i32,
    state: State,
    pending_since: Option<f64>,
    clear_since: Option<f64>,
    muted: bool,
    last_counter: Option<i64>,
    last_counter_at: Option<f64>,
    version: i64,
    cpu_millis: i32,
    memory_mb: i32,
    disk_mb: i32,
}

/// What an app's containers and deployments say at the evaluation.
#[derive(sqlx::FromRow)]
struct Observed {
    app_id: i64,
    should_run: bool,
    running: i64,
    stats_at: Option<f64>,
    cpu: Option<f64>,
    memory: Option<f64>,
    counter: Option<i64>,
    disk: Option<f64>,
    restarts: i64,
    last_outcome: Option<String>,
}

const RULES: &str = "SELECT r.id, r.app_id, a.slug, a.owner_id, r.kind, r.threshold, r.for_secs, r.keep_firing_secs,
        r.state, extract(epoch FROM r.pending_since)::float8 AS pending_since,
        extract(epoch FROM r.clear_since)::float8 AS clear_since,
        coalesce(r.muted_until > to_timestamp($1), false) AS muted, r.last_counter,
        extract(epoch FROM r.last_counter_at)::float8 AS last_counter_at, r.version,
        p.cpu_millis, p.memory_mb, p.disk_mb
    FROM alert_rules r JOIN apps a ON a.id = r.app_id JOIN plans p ON p.id = a.plan_id
    WHERE r.enabled
    ORDER BY r.app_id, r.kind IN ('cpu', 'memory', 'network', 'disk'), r.kind";

const OBSERVED: &str = "SELECT a.id AS app_id,
        EXISTS (SELECT 1 FROM deployments d WHERE d.app_id = a.id AND d.state = 'live') AS should_run,
        c.running, c.stats_at, c.cpu, c.memory, c.counter, c.disk,
        (SELECT count(*) FROM container_restarts x WHERE x.app_id = a.id AND x.at > to_timestamp($1) - interval '10 minutes') AS restarts,
        (SELECT d.state::text FROM deployments d WHERE d.app_id = a.id AND d.state IN ('live', 'failed')
         ORDER BY d.id DESC LIMIT 1) AS last_outcome
    FROM apps a
    LEFT JOIN LATERAL (
        SELECT count(*) AS running, max(extract(epoch FROM stats_at))::float8 AS stats_at,
               max(cpu_percent) AS cpu, max(memory_bytes)::float8 AS memory,
               sum(coalesce(net_rx_bytes, 0) + coalesce(net_tx_bytes, 0))::int8 AS counter,
               max(disk_bytes)::float8 AS disk
        FROM containers WHERE app_id = a.id AND state = 'running'
    ) c ON true";

/// Evaluates every enabled rule at `now` (seconds since the epoch); how many alerts fired or
/// resolved.
pub async fn evaluate(pool: &PgPool, now: f64) -> Result<usize, sqlx::Error> {
    sqlx::query("DELETE FROM container_restarts WHERE at < to_timestamp($1) - interval '1 day'")
        .bind(now)
        .execute(pool)
        .await?;
    let rules: Vec<RuleRow> = sqlx::query_as(RULES).bind(now).fetch_all(pool).await?;
    let observed: Vec<Observed> = sqlx::query_as(OBSERVED).bind(now).fetch_all(pool).await?;
    let by_app: std::collections::HashMap<i64, &Observed> =
        observed.iter().map(|o| (o.app_id, o)).collect();
    let mut changed = 0;
    // Apps whose offline or crashloop rule fires (evaluated first, by the query's order).
    let mut troubled = std::collections::HashSet::new();
    let mut unchanged = Vec::new();
    for r in &rules {
        let Some(o) = by_app.get(&r.app_id) else { continue };
        let (value, counter) = value_of(r, o, now);
        let rule = Rule {
            kind: r.kind,
            threshold: r.threshold,
            for_secs: f64::from(r.for_secs),
            keep_firing_secs: f64::from(r.keep_firing_secs),
        };
        let status =
            Status { state: r.state, pending_since: r.pending_since, clear_since: r.clear_since };
        let (next, change) = machine::step(&rule, status, value, now);
        if matches!(r.kind, Kind::Offline | Kind::Crashloop) && next.state == State::Firing {
            troubled.insert(r.app_id);
        }
        let held_back = r.muted || (r.kind.is_resource() && troubled.contains(&r.app_id));
        if next == status && change.is_none() {
            // Most rules, most of the time: only the value seen changes, written below in one go.
            unchanged.push((r.id, value, counter));
            continue;
        }
        if apply(pool, r, next, change, value, counter, now, held_back).await? && change.is_some() {
            changed += 1;
        }
    }
    seen(pool, &unchanged, now).await?;
    remind(pool, now).await?;
    Ok(changed)
}

/// The rule's value now (None: no data), and the network counter to remember.
fn value_of(r: &RuleRow, o: &Observed, now: f64) -> (Option<f64>, Option<(i64, f64)>) {
    let fresh = o.running > 0 && o.stats_at.is_some_and(|at| now - at <= STALE_SECS);
    let mib = 1024.0 * 1024.0;
    let percent = |v: Option<f64>, of: f64| v.filter(|_| fresh && of > 0.0).map(|v| v / of * 100.0);
    match r.kind {
        // cpu_percent is of one core; the plan's limit is in thousandths of one.
        Kind::Cpu => {
            (percent(o.cpu, f64::from(r.cpu_millis) / 10.0).map(|v| v / 100.0 * 100.0), None)
        }
        Kind::Memory => (percent(o.memory, f64::from(r.memory_mb) * mib), None),
        Kind::Disk => (percent(o.disk, f64::from(r.disk_mb) * mib), None),
        Kind::Network => {
            let Some(counter) = o.counter.filter(|_| fresh) else { return (None, None) };
            let rate = match (r.last_counter, r.last_counter_at) {
                // A counter that went down was reset (a new container): no rate this time.
                (Some(last), Some(at)) if counter >= last && now > at => {
                    Some((counter - last) as f64 / (now - at))
                }
                _ => None,
            };
            (rate, Some((counter, now)))
        }
        Kind::Offline => {
            let offline = o.should_run && !fresh;
            (Some(if offline { 1.0 } else { 0.0 }), None)
        }
        Kind::Crashloop => (Some(o.restarts as f64), None),
        Kind::DeploymentFailed => {
            (Some(if o.last_outcome.as_deref() == Some("failed") { 1.0 } else { 0.0 }), None)
        }
    }
}

/// A rule's value seen at an evaluation, and the network counter to remember (count, when).
type Seen = (i64, Option<f64>, Option<(i64, f64)>);

/// Records the values (and network counters) of rules whose state did not change, in one
/// statement. Unguarded: it touches no state, so racing another evaluator costs nothing.
async fn seen(pool: &PgPool, rules: &[Seen], now: f64) -> Result<(), sqlx::Error> {
    if rules.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE alert_rules r SET last_value = coalesce(s.value, r.last_value), evaluated_at = to_timestamp($5),
             last_counter = coalesce(s.counter, r.last_counter),
             last_counter_at = coalesce(to_timestamp(s.counter_at), r.last_counter_at)
         FROM unnest($1::int8[], $2::float8[], $3::int8[], $4::float8[]) AS s(id, value, counter, counter_at)
         WHERE r.id = s.id",
    )
    .bind(rules.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(rules.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(rules.iter().map(|r| r.2.map(|c| c.0)).collect::<Vec<_>>())
    .bind(rules.iter().map(|r| r.2.map(|c| c.1)).collect::<Vec<_>>())
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Writes a step's outcome under the rule's version; false when another evaluator got there.
#[allow(clippy::too_many_arguments)]
async fn apply(
    pool: &PgPool,
    r: &RuleRow,
    next: Status,
    change: Option<Change>,
    value: Option<f64>,
    counter: Option<(i64, f64)>,
    now: f64,
    held_back: bool,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE alert_rules SET state = $3, pending_since = to_timestamp($4), clear_since = to_timestamp($5),
             last_value = coalesce($6, last_value), evaluated_at = to_timestamp($7),
             last_counter = coalesce($8, last_counter), last_counter_at = coalesce(to_timestamp($9), last_counter_at),
             version = version + 1
         WHERE id = $1 AND version = $2",
    )
    .bind(r.id)
    .bind(r.version)
    .bind(next.state)
    .bind(next.pending_since)
    .bind(next.clear_since)
    .bind(value)
    .bind(now)
    .bind(counter.map(|c| c.0))
    .bind(counter.map(|c| c.1))
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    match change {
        Some(Change::Fired { started_at }) => {
            let alert: Option<i64> = sqlx::query_scalar(
                "INSERT INTO alerts (rule_id, app_id, kind, value, threshold, started_at, held_back)
                 VALUES ($1, $2, $3, $4, $5, to_timestamp($6), $7)
                 ON CONFLICT (rule_id) WHERE resolved_at IS NULL DO NOTHING RETURNING id",
            )
            .bind(r.id)
            .bind(r.app_id)
            .bind(r.kind)
            .bind(value.unwrap_or_default())
            .bind(r.threshold)
            .bind(started_at)
            .bind(held_back)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(alert) = alert else {
                // An open alert of this rule exists: someone fired it already.
                return Ok(false);
            };
            if !held_back {
                outbox(&mut tx, "alert.fired", alert, r).await?;
                notice(&mut tx, r.app_id, "fired", alert, now).await?;
            }
        }
        Some(Change::Resolved) => {
            let resolved: Option<(i64, bool)> = sqlx::query_as(
                "UPDATE alerts SET resolved_at = to_timestamp($2) WHERE rule_id = $1 AND resolved_at IS NULL
                 RETURNING id, held_back",
            )
            .bind(r.id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((alert, false)) = resolved {
                outbox(&mut tx, "alert.resolved", alert, r).await?;
                notice(&mut tx, r.app_id, "resolved", alert, now).await?;
            }
        }
        None => {}
    }
    tx.commit().await?;
    Ok(true)
}

/// How long alerts of one app that fire (or resolve) together wait to share one message.
pub const GROUP_SECS: f64 = 30.0;

/// Adds `alert` to the app's message of `kind` still open for grouping (made within the last
/// [`GROUP_SECS`]), or starts one.
async fn notice(
    tx: &mut sqlx::PgConnection,
    app: i64,
    kind: &str,
    alert: i64,
    now: f64,
) -> Result<(), sqlx::Error> {
    let joined = sqlx::query(
        "UPDATE alert_notices SET alert_ids = array_append(alert_ids, $3)
         WHERE id = (SELECT id FROM alert_notices WHERE app_id = $1 AND kind = $2::notice_kind AND sent_at IS NULL
                     AND created_at > to_timestamp($4) - make_interval(secs => $5) ORDER BY id DESC LIMIT 1)",
    )
    .bind(app)
    .bind(kind)
    .bind(alert)
    .bind(now)
    .bind(GROUP_SECS)
    .execute(&mut *tx)
    .await?;
    if joined.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO alert_notices (app_id, kind, alert_ids, created_at, send_after)
             VALUES ($1, $2::notice_kind, ARRAY[$3::bigint], to_timestamp($4), to_timestamp($4) + make_interval(secs => $5))",
        )
        .bind(app)
        .bind(kind)
        .bind(alert)
        .bind(now)
        .bind(if kind == "reminder" { 0.0 } else { GROUP_SECS })
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Reminders of alerts still firing, every rule's `remind_secs` (0: never) since the alert
/// fired or was last reminded of; none for held-back alerts, nor for resource alerts while the
/// app is offline or crash-looping. Guarded by `last_notified_at`.
async fn remind(pool: &PgPool, now: f64) -> Result<usize, sqlx::Error> {
    let due: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT al.id, al.app_id FROM alerts al JOIN alert_rules r ON r.id = al.rule_id
         WHERE al.resolved_at IS NULL AND NOT al.held_back AND r.remind_secs > 0
           -- While the app is offline or crash-looping, its resource alerts stay quiet.
           AND NOT (al.kind IN ('cpu', 'memory', 'network', 'disk') AND EXISTS (
               SELECT 1 FROM alert_rules t WHERE t.app_id = al.app_id AND t.kind IN ('offline', 'crashloop')
               AND t.state = 'firing'))
           AND NOT coalesce(r.muted_until > to_timestamp($1), false)
           AND coalesce(al.last_notified_at, al.started_at) <= to_timestamp($1) - make_interval(secs => r.remind_secs)",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut sent = 0;
    for (alert, app) in due {
        let mut tx = pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE alerts al SET last_notified_at = to_timestamp($2) FROM alert_rules r
             WHERE al.id = $1 AND r.id = al.rule_id AND al.resolved_at IS NULL
               AND coalesce(al.last_notified_at, al.started_at) <= to_timestamp($2) - make_interval(secs => r.remind_secs)",
        )
        .bind(alert)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 1 {
            notice(&mut tx, app, "reminder", alert, now).await?;
            sent += 1;
        }
        tx.commit().await?;
    }
    Ok(sent)
}

/// The event for `alert` in the outbox: `{alert_id, app, kind, value, threshold, started_at,
/// resolved_at}`.
async fn outbox(
    tx: &mut sqlx::PgConnection,
    event: &str,
    alert: i64,
    r: &RuleRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_outbox (event_type, app_id, user_id, payload)
         SELECT $1, a.app_id, $3, jsonb_build_object('alert_id', a.id, 'app', $4::text, 'kind', a.kind,
                'value', a.value, 'threshold', a.threshold, 'started_at', a.started_at, 'resolved_at', a.resolved_at)
         FROM alerts a WHERE a.id = $2",
    )
    .bind(event)
    .bind(alert)
    .bind(r.owner_id)
    .bind(&r.slug)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
