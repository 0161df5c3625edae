//! Connections in the database: OAuth authorizations under way (a `state` used once, within 10
//! minutes, by the user who started it), and the connected accounts with their tokens sealed
//! (`wh/oauth/v1`, the row id as associated data). [`access_token`] hands out a token that is
//! good for at least five more minutes, refreshing it first when it is not; [`run_refresher`]
//! refreshes the ones about to expire, so a refresh token never goes unused long enough to
//! lapse. A refresh holds the connection's row lock: two control planes never spend one
//! refresh token twice.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::oauth::{self, Grant};
use super::{Account, ForgeError, Forges, Provider};

/// A connection as its owner sees it (never a token).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct ConnectionInfo {
    pub id: i64,
    pub provider: Provider,
    pub base_url: String,
    /// The account's name at the provider.
    pub account: String,
    pub created_at: String,
    /// When the access token expires (it is refreshed before); None: it does not.
    pub expires_at: Option<String>,
    /// Set for a connection through the GitHub App: the installation's id.
    pub installation_id: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Connection {
    pub id: i64,
    pub user_id: i64,
    pub provider: Provider,
    pub base_url: String,
    pub account: String,
    /// A GitHub App installation: its tokens are minted per use.
    pub installation_id: Option<i64>,
    tokens_sealed: Vec<u8>,
    /// Whether the access token expires within five minutes.
    due: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Tokens {
    access: String,
    refresh: Option<String>,
}

const INFO: &str = "id, provider, base_url, account,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at,
    to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS expires_at,
    installation_id";

const ROW: &str = "id, user_id, provider, base_url, account, installation_id, tokens_sealed,
    coalesce(expires_at < now() + interval '5 minutes', false) AS due";

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// What an authorization under way is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "oauth_purpose", rename_all = "snake_case")]
pub enum Purpose {
    /// Connecting an account by OAuth.
    Connect,
    /// An administrator creating the GitHub App.
    AppManifest,
    /// Installing the GitHub App.
    AppInstall,
}

/// Starts an authorization for `user`: the `state` to send the provider (32 random bytes, hex).
pub async fn begin(
    pool: &PgPool,
    user: i64,
    provider: Provider,
    purpose: Purpose,
) -> Result<String, sqlx::Error> {
    sqlx::query("DELETE FROM git_oauth_states WHERE created_at < now() - interval '10 minutes'")
        .execute(pool)
        .await?;
    let state = crate::auth::random_hex(32);
    sqlx::query(
        "INSERT INTO git_oauth_states (state_hash, user_id, provider, purpose) VALUES ($1, $2, $3, $4)",
    )
    .bind(sha256_hex(&state))
    .bind(user)
    .bind(provider)
    .bind(purpose)
    .execute(pool)
    .await?;
    Ok(state)
}

/// The user who started the authorization `state` for `provider` and `purpose` in the last 10
/// minutes; the state is spent whatever the outcome.
pub async fn take_state(
    pool: &PgPool,
    provider: Provider,
    purpose: Purpose,
    state: &str,
) -> Result<Option<i64>, sqlx::Error> {
    if state.len() != 64 || !state.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "DELETE FROM git_oauth_states WHERE state_hash = $1 AND provider = $2 AND purpose = $3
         AND created_at > now() - interval '10 minutes' RETURNING user_id",
    )
    .bind(sha256_hex(state))
    .bind(provider)
    .bind(purpose)
    .fetch_optional(pool)
    .await
}

fn seal(forges: &Forges, id: i64, grant: &Grant) -> Vec<u8> {
    let tokens = Tokens { access: grant.access.clone(), refresh: grant.refresh.clone() };
    let json = serde_json::to_vec(&tokens).expect("tokens serialize");
    forges.sealer.seal(&json, id)
}

/// Stores `user`'s connection to `account` (replacing the tokens of an earlier connection to
/// the same account); returns its id.
pub async fn save(
    pool: &PgPool,
    forges: &Forges,
    user: i64,
    provider: Provider,
    account: &Account,
    grant: &Grant,
) -> Result<i64, ForgeError> {
    let base_url = forges.get(provider)?.web_url.clone();
    let mut tx = pool.begin().await?;
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM git_connections WHERE user_id = $1 AND provider = $2 AND base_url = $3
         AND account_id = $4 FOR UPDATE",
    )
    .bind(user)
    .bind(provider)
    .bind(&base_url)
    .bind(&account.id)
    .fetch_optional(&mut *tx)
    .await?;
    let id = match existing {
        Some(id) => id,
        None => {
            sqlx::query_scalar("SELECT nextval('git_connections_id_seq')")
                .fetch_one(&mut *tx)
                .await?
        }
    };
    sqlx::query(
        "INSERT INTO git_connections (id, user_id, provider, base_url, account, account_id, tokens_sealed, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
         ON CONFLICT (id) DO UPDATE SET account = excluded.account, tokens_sealed = excluded.tokens_sealed,
             expires_at = excluded.expires_at, refreshed_at = now()",
    )
    .bind(id)
    .bind(user)
    .bind(provider)
    .bind(&base_url)
    .bind(&account.login)
    .bind(&account.id)
    .bind(seal(forges, id, grant))
    .bind(grant.expires_in.map(|s| s as f64))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// `user`'s connections.
pub async fn list(pool: &PgPool, user: i64) -> Result<Vec<ConnectionInfo>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {INFO} FROM git_connections WHERE user_id = $1 ORDER BY provider, account, id"
    ))
    .bind(user)
    .fetch_all(pool)
    .await
}

/// `user`'s connection `id`.
pub async fn find(pool: &PgPool, user: i64, id: i64) -> Result<Option<Connection>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {ROW} FROM git_connections WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user)
        .fetch_optional(pool)
        .await
}

/// `user`'s only connection to `provider`: None when there is none, an error naming the
/// choice when there are several.
pub async fn only(
    pool: &PgPool,
    user: i64,
    provider: Provider,
) -> Result<Result<Option<i64>, usize>, sqlx::Error> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM git_connections WHERE user_id = $1 AND provider = $2")
            .bind(user)
            .bind(provider)
            .fetch_all(pool)
            .await?;
    Ok(match ids.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(many.len()),
    })
}

fn open(forges: &Forges, c: &Connection) -> Result<Tokens, ForgeError> {
    let json = forges.sealer.open(&c.tokens_sealed, c.id)?;
    serde_json::from_slice(&json)
        .map_err(|_| ForgeError::Sealed(crate::secrets::SecretError::Format))
}

/// An access token of connection `id` good for at least five more minutes (refreshed first if
/// it was not), with the connection.
pub async fn access_token(
    pool: &PgPool,
    forges: &Forges,
    id: i64,
) -> Result<(Connection, String), ForgeError> {
    token_for(pool, forges, id, None).await
}

/// [`access_token`], narrowed to reading repository `only` where the provider can (a GitHub
/// App installation); an OAuth token carries the scopes the user granted.
pub async fn token_for(
    pool: &PgPool,
    forges: &Forges,
    id: i64,
    only: Option<&str>,
) -> Result<(Connection, String), ForgeError> {
    let c: Connection = sqlx::query_as(&format!("SELECT {ROW} FROM git_connections WHERE id = $1"))
        .bind(id)
        .fetch_one(pool)
        .await?;
    if let Some(installation) = c.installation_id {
        let app = super::github_app::load(pool, forges)
            .await?
            .ok_or(ForgeError::NotConfigured(Provider::Github))?;
        let token = super::github_app::installation_token(forges, &app, installation, only).await?;
        return Ok((c, token));
    }
    if !c.due {
        let tokens = open(forges, &c)?;
        return Ok((c, tokens.access));
    }
    refresh(pool, forges, id).await
}

/// Stores `user`'s connection through GitHub App `installation` on `account` (nothing to seal:
/// its tokens are minted per use); returns its id.
pub async fn save_installation(
    pool: &PgPool,
    forges: &Forges,
    user: i64,
    installation: i64,
    account: &str,
) -> Result<i64, ForgeError> {
    let mut tx = pool.begin().await?;
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM git_connections WHERE user_id = $1 AND installation_id = $2 FOR UPDATE",
    )
    .bind(user)
    .bind(installation)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = existing {
        tx.commit().await?;
        return Ok(id);
    }
    let id: i64 =
        sqlx::query_scalar("SELECT nextval('git_connections_id_seq')").fetch_one(&mut *tx).await?;
    let none = Grant { access: String::new(), refresh: None, expires_in: None };
    sqlx::query(
        "INSERT INTO git_connections (id, user_id, provider, base_url, account, account_id, tokens_sealed, installation_id)
         VALUES ($1, $2, 'github', $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(user)
    .bind(&forges.github_web)
    .bind(account)
    .bind(format!("installation:{installation}"))
    .bind(seal(forges, id, &none))
    .bind(installation)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Refreshes connection `id` under its row lock (unless another refresh got there first).
async fn refresh(
    pool: &PgPool,
    forges: &Forges,
    id: i64,
) -> Result<(Connection, String), ForgeError> {
    let mut tx = pool.begin().await?;
    let c: Connection =
        sqlx::query_as(&format!("SELECT {ROW} FROM git_connections WHERE id = $1 FOR UPDATE"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let tokens = open(forges, &c)?;
    let (true, Some(refresh_token)) = (c.due, tokens.refresh.as_deref()) else {
        // Refreshed meanwhile, or a token that cannot be refreshed (it is used until refused).
        return Ok((c, tokens.access));
    };
    let forge = forges.get(c.provider)?;
    let grant = oauth::refresh(&forges.client, forge, refresh_token).await?;
    // A provider that does not rotate refresh tokens keeps the old one working.
    let grant = Grant { refresh: grant.refresh.or(tokens.refresh.clone()), ..grant };
    sqlx::query(
        "UPDATE git_connections SET tokens_sealed = $2, expires_at = now() + make_interval(secs => $3),
             refreshed_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(seal(forges, id, &grant))
    .bind(grant.expires_in.map(|s| s as f64))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(connection = id, provider = c.provider.as_str(), "git provider token refreshed");
    Ok((Connection { due: false, ..c }, grant.access))
}

/// Removes connection `id` (its apps keep their repository URL, without a connection) after
/// revoking its grant where the provider can; whether it was revoked.
pub async fn remove(pool: &PgPool, forges: &Forges, c: &Connection) -> Result<bool, ForgeError> {
    // An installation is uninstalled at GitHub (the App's settings there); it has no grant.
    let revoked = match (c.installation_id, forges.get(c.provider), open(forges, c)) {
        (None, Ok(forge), Ok(tokens)) => {
            oauth::revoke(&forges.client, forge, &tokens.access).await?
        }
        _ => false,
    };
    sqlx::query("DELETE FROM git_connections WHERE id = $1").bind(c.id).execute(pool).await?;
    Ok(revoked)
}

/// Refreshes the connections whose tokens expire within five minutes; how many were. One that
/// fails is logged and tried again next time.
pub async fn refresh_due(pool: &PgPool, forges: &Forges) -> Result<usize, sqlx::Error> {
    let due: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM git_connections WHERE expires_at < now() + interval '5 minutes'
         ORDER BY expires_at LIMIT 100",
    )
    .fetch_all(pool)
    .await?;
    let mut refreshed = 0;
    for id in due {
        match refresh(pool, forges, id).await {
            Ok(_) => refreshed += 1,
            Err(e) => {
                tracing::warn!(connection = id, error = %e, "git provider token not refreshed")
            }
        }
    }
    Ok(refreshed)
}

/// Every `every`, [`refresh_due`]. Returns (to its supervisor, which restarts it) only when
/// the database fails.
pub async fn run_refresher(
    pool: PgPool,
    forges: std::sync::Arc<Forges>,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = refresh_due(&pool, &forges).await {
            tracing::warn!(error = %e, "cannot refresh git connections");
            return;
        }
    }
}
