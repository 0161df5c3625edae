//! The ACME account and single-host orders over HTTP-01, with instant-acme.
//!
//! The account is created once and its credentials (including the private key) kept in
//! `<state>/acme/account.json`, mode 0600, next to the directory URL they belong to; a different
//! directory gets a new account. Challenge responses are published in [`Challenges`] for exactly
//! as long as the order waits for them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, LetsEncrypt,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use super::challenges::Challenges;
use super::store::write_private;

/// Where and how to order.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// Directory URL (`production`, `staging` or any URL are resolved by [`directory_url`]).
    pub directory: String,
    /// PEM file of the root to trust for the directory (tests, private CAs).
    pub ca_bundle: Option<PathBuf>,
    pub email: Option<String>,
    pub state_dir: PathBuf,
}

/// `production`/`staging` → Let's Encrypt's URLs; anything else is taken as a URL.
pub fn directory_url(word: &str) -> String {
    match word {
        "" | "production" | "letsencrypt" => LetsEncrypt::Production.url().to_owned(),
        "staging" => LetsEncrypt::Staging.url().to_owned(),
        url => url.to_owned(),
    }
}

/// Why the ACME account could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    #[error("--acme-ca-bundle {}: {source}", path.display())]
    CaBundle { path: std::path::PathBuf, source: instant_acme::Error },
    #[error("ACME client: {0}")]
    Client(instant_acme::Error),
    #[error("restoring the ACME account: {0}")]
    Restore(instant_acme::Error),
    #[error("creating the ACME account at {directory}: {source}")]
    Create { directory: String, source: instant_acme::Error },
    #[error("{}: {source}", path.display())]
    Store { path: std::path::PathBuf, source: std::io::Error },
}

/// Why an order failed, classified for backoff and budgets.
#[derive(Debug, Clone)]
pub struct OrderError {
    pub message: String,
    /// The CA said `rateLimited`.
    pub rate_limited: bool,
    /// The CA tried to validate and failed (counts against the failed-validation limit).
    pub validation_failed: bool,
}

impl OrderError {
    fn other(message: impl Into<String>) -> Self {
        OrderError { message: message.into(), rate_limited: false, validation_failed: false }
    }
}

/// ACME problem types that mean the CA tried to validate and could not (RFC 8555 §6.7).
const VALIDATION_PROBLEMS: &[&str] =
    &[":connection", ":dns", ":unauthorized", ":incorrectResponse", ":tls", ":caa"];

impl From<instant_acme::Error> for OrderError {
    fn from(e: instant_acme::Error) -> Self {
        let kind = match &e {
            instant_acme::Error::Api(p) => p.r#type.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let rate_limited = kind.ends_with(":rateLimited");
        let validation_failed = VALIDATION_PROBLEMS.iter().any(|v| kind.ends_with(v));
        let message =
            if validation_failed { format!("validation failed: {e}") } else { e.to_string() };
        OrderError { message, rate_limited, validation_failed }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// A logged-in ACME account.
pub struct AcmeClient {
    account: Account,
    challenges: Arc<Challenges>,
}

impl AcmeClient {
    /// Loads the stored account for this directory, or creates (and stores) one.
    pub async fn connect(
        settings: &AcmeSettings,
        challenges: Arc<Challenges>,
    ) -> Result<AcmeClient, AccountError> {
        let directory = directory_url(&settings.directory);
        let builder = || match &settings.ca_bundle {
            Some(path) => Account::builder_with_root(path)
                .map_err(|source| AccountError::CaBundle { path: path.clone(), source }),
            None => Account::builder().map_err(AccountError::Client),
        };
        let path = settings.state_dir.join("acme").join("account.json");
        if let Ok(bytes) = std::fs::read(&path) {
            match serde_json::from_slice::<StoredAccount>(&bytes) {
                Ok(stored) if stored.directory == directory => {
                    let account = builder()?
                        .from_credentials(stored.credentials)
                        .await
                        .map_err(AccountError::Restore)?;
                    return Ok(AcmeClient { account, challenges });
                }
                Ok(_) => {
                    tracing::info!("stored ACME account belongs to another directory; creating one")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stored ACME account unreadable; creating one")
                }
            }
        }
        let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.clone(),
                None,
            )
            .await
            .map_err(|source| AccountError::Create { directory: directory.clone(), source })?;
        let store = |source| AccountError::Store { path: path.clone(), source };
        std::fs::create_dir_all(path.parent().unwrap_or(&settings.state_dir)).map_err(store)?;
        let stored = serde_json::to_vec(&StoredAccount { directory, credentials })
            .map_err(|e| store(std::io::Error::other(e)))?;
        write_private(&path, &stored).map_err(store)?;
        tracing::info!(account = account.id(), "ACME account created");
        Ok(AcmeClient { account, challenges })
    }

    /// Orders a certificate for `host` over HTTP-01; returns (chain PEM, key PEM).
    pub async fn issue(&self, host: &str) -> Result<(String, String), OrderError> {
        let identifiers = [Identifier::Dns(host.to_owned())];
        let mut order = self.account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut published = TokenGuard { challenges: &self.challenges, tokens: Vec::new() };
        {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => return Err(OrderError::other(format!("authorization is {other:?}"))),
                }
                let mut challenge = authz
                    .challenge(ChallengeType::Http01)
                    .ok_or_else(|| OrderError::other("the CA offered no http-01 challenge"))?;
                self.challenges.insert(&challenge.token, challenge.key_authorization().as_str());
                published.tokens.push(challenge.token.clone());
                challenge.set_ready().await?;
            }
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(90));
        let status = order.poll_ready(&retry).await?;
        drop(published);
        if status != OrderStatus::Ready {
            let mut reason = format!("order is {status:?}");
            let mut authorizations = order.authorizations();
            while let Some(Ok(authz)) = authorizations.next().await {
                if let Some(detail) = authz
                    .challenges
                    .iter()
                    .find_map(|c| c.error.as_ref().and_then(|p| p.detail.clone()))
                {
                    reason = format!("validation failed: {detail}");
                }
            }
            return Err(OrderError {
                message: reason,
                rate_limited: false,
                validation_failed: true,
            });
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&retry).await?;
        Ok((chain_pem, key_pem))
    }
}

impl AcmeClient {
    /// ARI: the start of the suggested renewal window (Unix seconds) and when to ask again;
    /// `None` when the CA does not offer renewal information or the query failed.
    pub async fn renewal_info(
        &self,
        id: &instant_acme::CertificateIdentifier<'_>,
    ) -> Option<(i64, Duration)> {
        match self.account.renewal_info(id).await {
            Ok((info, retry_after)) => {
                Some((info.suggested_window.start.unix_timestamp(), retry_after))
            }
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(e) => {
                tracing::debug!(error = %e, "renewal information unavailable");
                None
            }
        }
    }
}

/// Unpublishes an order's tokens however the order ends.
struct TokenGuard<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
}

impl Drop for TokenGuard<'_> {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.challenges.remove(t);
        }
    }
}
