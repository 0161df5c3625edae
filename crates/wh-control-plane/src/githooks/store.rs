//! Hooks and their deliveries in the database. A hook's secret is 32 random bytes written as
//! 64 hex digits (what the user pastes into the provider, and the HMAC key the provider
//! uses), sealed at rest; it is shown once, when the hook is made.

use sqlx::PgPool;

use super::Provider;
use crate::secrets::Sealer;

/// A hook as the inbound endpoint needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hook {
    pub id: i64,
    pub app_id: i64,
    pub provider: Provider,
    pub secret_sealed: Vec<u8>,
}

/// A hook as its app's owner sees it (never its secret).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct HookInfo {
    pub id: String,
    pub provider: Provider,
    pub created_at: String,
    pub last_delivery_at: Option<String>,
}

/// Makes `app_id`'s hook for `provider`; returns its public id and secret (the only time the
/// secret exists in clear outside a delivery check). None when the app already has one.
pub async fn create(
    pool: &PgPool,
    sealer: &Sealer,
    app_id: i64,
    provider: Provider,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let public_id = crate::auth::random_hex(16);
    let secret = crate::auth::random_hex(32);
    let mut tx = pool.begin().await?;
    let id: i64 =
        sqlx::query_scalar("SELECT nextval('git_hooks_id_seq')").fetch_one(&mut *tx).await?;
    let inserted = sqlx::query(
        "INSERT INTO git_hooks (id, public_id, app_id, provider, secret_sealed) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (app_id, provider) DO NOTHING",
    )
    .bind(id)
    .bind(&public_id)
    .bind(app_id)
    .bind(provider)
    .bind(sealer.seal(secret.as_bytes(), id))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some((public_id, secret)))
}

/// The hook with `public_id` for `provider`, if there is one.
pub async fn find(
    pool: &PgPool,
    provider: Provider,
    public_id: &str,
) -> Result<Option<Hook>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, app_id, provider, secret_sealed FROM git_hooks WHERE public_id = $1 AND provider = $2",
    )
    .bind(public_id)
    .bind(provider)
    .fetch_optional(pool)
    .await
}

/// `app_id`'s hooks.
pub async fn list(pool: &PgPool, app_id: i64) -> Result<Vec<HookInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT public_id AS id, provider,
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at,
                to_char(last_delivery_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS last_delivery_at
         FROM git_hooks WHERE app_id = $1 ORDER BY provider",
    )
    .bind(app_id)
    .fetch_all(pool)
    .await
}

/// Removes `app_id`'s hook `public_id`; false when there was none.
pub async fn remove(pool: &PgPool, app_id: i64, public_id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM git_hooks WHERE app_id = $1 AND public_id = $2")
        .bind(app_id)
        .bind(public_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records delivery `delivery` of hook `hook`: true the first time within 24 h, false for a
/// replay. Forgets the hook's deliveries older than that on the way. In the transaction that
/// acts on the delivery: if acting fails, the delivery is not remembered, and the provider's
/// retry is not refused as a replay.
pub async fn first_delivery(
    tx: &mut sqlx::PgConnection,
    hook: i64,
    delivery: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query("DELETE FROM git_hook_deliveries WHERE hook_id = $1 AND received_at < now() - interval '24 hours'")
        .bind(hook)
        .execute(&mut *tx)
        .await?;
    let fresh: Option<i32> = sqlx::query_scalar(
        "INSERT INTO git_hook_deliveries (hook_id, delivery_id) VALUES ($1, $2)
         ON CONFLICT (hook_id, delivery_id) DO NOTHING RETURNING 1",
    )
    .bind(hook)
    .bind(delivery)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query("UPDATE git_hooks SET last_delivery_at = now() WHERE id = $1")
        .bind(hook)
        .execute(&mut *tx)
        .await?;
    Ok(fresh.is_some())
}
