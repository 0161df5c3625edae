//! Users, passwords, sessions and personal API tokens.
//!
//! Passwords are argon2id hashes. A session is a random cookie value whose SHA-256 is stored
//! with a CSRF token; an API token (`wht_…`) is shown once and stored as its SHA-256. Lookups by
//! hash are followed by a constant-time comparison.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// Sessions last this long.
pub const SESSION_DAYS: i32 = 14;

/// A signed-in user.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
}

/// `bytes` random bytes from the OS, hex-encoded (tokens, passwords, secrets).
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS random source is available");
    hex::encode(b)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// An argon2id hash of `password`.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS random source is available");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// Whether `password` matches `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Creates a user; the email is normalised to lower case.
pub async fn create_user(
    pool: &PgPool,
    email: &str,
    password: &str,
    admin: bool,
) -> Result<User, sqlx::Error> {
    sqlx::query_as("INSERT INTO users (email, password_hash, is_admin) VALUES (lower($1), $2, $3) RETURNING id, email, is_admin")
        .bind(email.trim())
        .bind(hash_password(password))
        .bind(admin)
        .fetch_one(pool)
        .await
}

/// Password checks run at once at most (argon2id takes a core for tens of milliseconds).
static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Why a password could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("too many sign-ins at once; try again")]
    Busy,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// [`verify_password`] on a blocking thread, at most two at a time, waiting at most 10 s for
/// a turn: sign-ins never stall the async threads that serve everything else.
pub async fn verify_password_off_thread(password: &str, hash: &str) -> Result<bool, CheckError> {
    let turn = tokio::time::timeout(std::time::Duration::from_secs(10), ARGON2_SLOTS.acquire())
        .await
        .map_err(|_| CheckError::Busy)?
        .map_err(|_| CheckError::Busy)?;
    let (password, hash) = (password.to_owned(), hash.to_owned());
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    drop(turn);
    Ok(ok)
}

/// Sessions a user keeps at most; signing in again ends the oldest beyond it.
pub const MAX_SESSIONS: i64 = 10;

/// Checks the password and opens a session: (user, cookie value, CSRF token).
pub async fn login(
    pool: &PgPool,
    email: &str,
    password: &str,
) -> Result<Option<(User, String, String)>, CheckError> {
    let row: Option<(i64, String, bool, String)> = sqlx::query_as(
        "SELECT id, email, is_admin, password_hash FROM users WHERE email = lower($1)",
    )
    .bind(email.trim())
    .fetch_optional(pool)
    .await?;
    let Some((id, email, is_admin, hash)) = row else {
        // Spend the same time as a real check, so timing does not reveal which emails exist.
        let _ = verify_password_off_thread(password, "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Y8cQw7h1Q0S5a3jEwXc0Qe7sKqYwzYw0Jm6qUe0k2c").await?;
        return Ok(None);
    };
    if !verify_password_off_thread(password, &hash).await? {
        return Ok(None);
    }
    let (token, csrf) = (random_hex(32), random_hex(16));
    sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, now() + make_interval(days => $4))")
        .bind(sha256_hex(&token))
        .bind(id)
        .bind(&csrf)
        .bind(SESSION_DAYS)
        .execute(pool)
        .await?;
    // At most MAX_SESSIONS per user: the oldest go.
    sqlx::query(
        "DELETE FROM sessions WHERE user_id = $1 AND token_hash IN (
             SELECT token_hash FROM sessions WHERE user_id = $1
             ORDER BY created_at DESC, token_hash OFFSET $2)",
    )
    .bind(id)
    .bind(MAX_SESSIONS)
    .execute(pool)
    .await?;
    Ok(Some((User { id, email, is_admin }, token, csrf)))
}

/// The user and CSRF token of a live session.
pub async fn session_user(
    pool: &PgPool,
    token: &str,
) -> Result<Option<(User, String)>, sqlx::Error> {
    let hash = sha256_hex(token);
    let row: Option<(i64, String, bool, String, String)> = sqlx::query_as(
        "SELECT u.id, u.email, u.is_admin, s.csrf_token, s.token_hash FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > now()",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    Ok(row
        .filter(|r| crate::constant_time_eq(r.4.as_bytes(), hash.as_bytes()))
        .map(|(id, email, is_admin, csrf, _)| (User { id, email, is_admin }, csrf)))
}

/// Ends a session.
pub async fn logout(pool: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(sha256_hex(token))
        .execute(pool)
        .await
        .map(drop)
}

/// Creates a personal API token; returns the raw token (shown once).
pub async fn create_api_token(pool: &PgPool, user: i64, name: &str) -> Result<String, sqlx::Error> {
    create_expiring_token(pool, user, name, None).await.map(|(_, t)| t)
}

/// Creates a personal API token valid for `days` (forever without); returns its id and the raw
/// token (shown once).
pub async fn create_expiring_token(
    pool: &PgPool,
    user: i64,
    name: &str,
    days: Option<i32>,
) -> Result<(i64, String), sqlx::Error> {
    let token = format!("wht_{}", random_hex(32));
    let id = sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, name, token_hash, expires_at)
         VALUES ($1, $2, $3, CASE WHEN $4::int IS NULL THEN NULL ELSE now() + make_interval(days => $4::int) END)
         RETURNING id",
    )
    .bind(user)
    .bind(name)
    .bind(sha256_hex(&token))
    .bind(days)
    .fetch_one(pool)
    .await?;
    Ok((id, token))
}

/// A personal API token as its owner sees it: never its secret.
#[derive(Debug, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
}

/// `user`'s tokens, newest first.
pub async fn list_tokens(pool: &PgPool, user: i64) -> Result<Vec<TokenInfo>, sqlx::Error> {
    sqlx::query_as(
        r#"SELECT id, name,
                  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_at,
                  to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_used_at,
                  to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS expires_at
           FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC"#,
    )
    .bind(user)
    .fetch_all(pool)
    .await
}

/// Revokes `user`'s token `id`; false when they have no such token.
pub async fn revoke_token(pool: &PgPool, user: i64, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The user an API token belongs to.
pub async fn token_user(pool: &PgPool, token: &str) -> Result<Option<User>, sqlx::Error> {
    let hash = sha256_hex(token);
    let row: Option<(i64, String, bool, String)> = sqlx::query_as(
        "UPDATE api_tokens t SET last_used_at = now() FROM users u
         WHERE t.token_hash = $1 AND u.id = t.user_id AND (t.expires_at IS NULL OR t.expires_at > now())
         RETURNING u.id, u.email, u.is_admin, t.token_hash",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    Ok(row
        .filter(|r| crate::constant_time_eq(r.3.as_bytes(), hash.as_bytes()))
        .map(|(id, email, is_admin, _)| User { id, email, is_admin }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_differ() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert_ne!(hash_password("correct horse"), h, "salts must be random");
        assert!(!verify_password("x", "not a hash"));
    }
}
