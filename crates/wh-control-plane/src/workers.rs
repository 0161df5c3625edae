//! The worker registry. The raw API key is shown once, at creation or rotation; only its lookup
//! hash is stored ([`wh_wsproto::key::lookup_hash`]), which signs nothing: channel keys are
//! derived from the control plane's secret for the worker's id and key generation. Rotation
//! bumps the generation, revoking every token and channel key of the old key. Lookups compare
//! hashes in constant time.

use sqlx::PgPool;
use uuid::Uuid;
use wh_wsproto::key::{legacy_hash, lookup_hash};

/// A registered worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Worker {
    pub id: Uuid,
    pub name: String,
    pub mesh_ip: String,
    pub api_key_hash: String,
    pub enabled: bool,
    /// Bumped by every key rotation.
    pub key_generation: i32,
}

const COLUMNS: &str = "id, name, host(mesh_ip) AS mesh_ip, api_key_hash, enabled, key_generation";

/// A new random API key: `whk_` and 32 random bytes in hex.
fn new_key() -> String {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the OS random source is available");
    format!("whk_{}", hex::encode(raw))
}

/// Registers a worker; returns it and its raw API key (shown once).
pub async fn create(
    pool: &PgPool,
    name: &str,
    mesh_ip: &str,
) -> Result<(Worker, String), sqlx::Error> {
    let key = new_key();
    let worker = sqlx::query_as::<_, Worker>(&format!(
        "INSERT INTO workers (id, name, mesh_ip, api_key_hash) VALUES ($1, $2, $3::inet, $4) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(name)
    .bind(mesh_ip)
    .bind(lookup_hash(&key))
    .fetch_one(pool)
    .await?;
    Ok((worker, key))
}

/// Replaces a worker's key and bumps its key generation: the old key, the tokens issued for it
/// and its channel key stop working at once (open sockets close within seconds). Returns the
/// new raw key.
pub async fn rotate_key(pool: &PgPool, name: &str) -> Result<Option<String>, sqlx::Error> {
    let key = new_key();
    let done = sqlx::query(
        "UPDATE workers SET api_key_hash = $2, key_generation = key_generation + 1 WHERE name = $1",
    )
    .bind(name)
    .bind(lookup_hash(&key))
    .execute(pool)
    .await?;
    Ok((done.rows_affected() == 1).then_some(key))
}

/// Enables or disables a worker; returns whether it exists.
pub async fn set_enabled(pool: &PgPool, name: &str, enabled: bool) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE workers SET enabled = $2 WHERE name = $1")
        .bind(name)
        .bind(enabled)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The worker holding `raw_key`, if any (enabled or not). A row still holding the legacy hash
/// (which was the signing key) is rewritten to the lookup hash on the way.
pub async fn find_by_key(pool: &PgPool, raw_key: &str) -> Result<Option<Worker>, sqlx::Error> {
    let hash = lookup_hash(raw_key);
    let by = |hash: String| async move {
        let found = sqlx::query_as::<_, Worker>(&format!(
            "SELECT {COLUMNS} FROM workers WHERE api_key_hash = $1"
        ))
        .bind(&hash)
        .fetch_optional(pool)
        .await?;
        // The index lookup found a candidate; the final comparison is constant-time.
        Ok::<_, sqlx::Error>(
            found.filter(|w| crate::constant_time_eq(w.api_key_hash.as_bytes(), hash.as_bytes())),
        )
    };
    if let Some(w) = by(hash.clone()).await? {
        return Ok(Some(w));
    }
    let Some(mut legacy) = by(legacy_hash(raw_key)).await? else { return Ok(None) };
    sqlx::query("UPDATE workers SET api_key_hash = $2 WHERE id = $1 AND api_key_hash = $3")
        .bind(legacy.id)
        .bind(&hash)
        .bind(&legacy.api_key_hash)
        .execute(pool)
        .await?;
    tracing::info!(worker = %legacy.id, "rewrote a legacy key hash (it was the signing key)");
    legacy.api_key_hash = hash;
    Ok(Some(legacy))
}

/// The worker with `id`.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Worker>, sqlx::Error> {
    sqlx::query_as::<_, Worker>(&format!("SELECT {COLUMNS} FROM workers WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Records that the worker was heard from.
pub async fn touch(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE workers SET last_seen_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
}

/// Of the connections `(worker, key generation)`, the workers that are disabled or deleted or
/// whose key was rotated since.
pub async fn unusable(pool: &PgPool, conns: &[(Uuid, i32)]) -> Result<Vec<Uuid>, sqlx::Error> {
    let (ids, gens): (Vec<Uuid>, Vec<i32>) = conns.iter().copied().unzip();
    sqlx::query_scalar(
        "SELECT c.id FROM unnest($1::uuid[], $2::int4[]) AS c (id, gen)
         WHERE NOT EXISTS (SELECT 1 FROM workers w
                           WHERE w.id = c.id AND w.enabled AND w.key_generation = c.gen)",
    )
    .bind(ids)
    .bind(gens)
    .fetch_all(pool)
    .await
}
