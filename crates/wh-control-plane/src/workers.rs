//! The worker registry. The raw API key is shown once, at creation or rotation, and only its
//! SHA-256 (hex) is stored; lookups compare hashes in constant time.

use sqlx::PgPool;
use uuid::Uuid;
use wh_wsproto::Key;

/// A registered worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Worker {
    pub id: Uuid,
    pub name: String,
    pub mesh_ip: String,
    pub api_key_hash: String,
    pub enabled: bool,
}

const COLUMNS: &str = "id, name, host(mesh_ip) AS mesh_ip, api_key_hash, enabled";

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
    .bind(Key::from_api_key(&key).hash_hex())
    .fetch_one(pool)
    .await?;
    Ok((worker, key))
}

/// Replaces a worker's key; the old one stops working at once. Returns the new raw key.
pub async fn rotate_key(pool: &PgPool, name: &str) -> Result<Option<String>, sqlx::Error> {
    let key = new_key();
    let done = sqlx::query("UPDATE workers SET api_key_hash = $2 WHERE name = $1")
        .bind(name)
        .bind(Key::from_api_key(&key).hash_hex())
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

/// The worker holding `raw_key`, if any (enabled or not).
pub async fn find_by_key(pool: &PgPool, raw_key: &str) -> Result<Option<Worker>, sqlx::Error> {
    let hash = Key::from_api_key(raw_key).hash_hex();
    let found = sqlx::query_as::<_, Worker>(&format!(
        "SELECT {COLUMNS} FROM workers WHERE api_key_hash = $1"
    ))
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    // The index lookup found a candidate; the final comparison is constant-time.
    Ok(found.filter(|w| crate::constant_time_eq(w.api_key_hash.as_bytes(), hash.as_bytes())))
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

/// Ids among `ids` that are disabled or deleted.
pub async fn unusable(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT x FROM unnest($1::uuid[]) AS x WHERE NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = x AND w.enabled)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}
