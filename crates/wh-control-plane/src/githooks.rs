//! Inbound git webhooks (push-to-deploy): the providers ([`Provider`]), how each signs a
//! delivery ([`verify`]), what a delivery says ([`payload`]: a push of a branch or tag to a
//! commit, a ping, or something we ignore), and the hooks themselves in the database
//! ([`store`]: one per app and provider, each with its own 32-byte secret, sealed).
//!
//! `POST /api/v1/hooks/{provider}/{hook_id}` (`api/hooks.rs`) checks the signature before it
//! reads anything else, and must never deploy what it could not verify.

pub mod payload;
pub mod store;
pub mod verify;

/// A git forge that sends webhooks. Codeberg is Forgejo.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "git_provider", rename_all = "lowercase")]
pub enum Provider {
    Github,
    Gitlab,
    Bitbucket,
    Gitea,
    Forgejo,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Github,
        Provider::Gitlab,
        Provider::Bitbucket,
        Provider::Gitea,
        Provider::Forgejo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Bitbucket => "bitbucket",
            Provider::Gitea => "gitea",
            Provider::Forgejo => "forgejo",
        }
    }

    /// The name in a URL (`codeberg` is Forgejo's preset).
    pub fn parse(name: &str) -> Option<Provider> {
        match name {
            "codeberg" => Some(Provider::Forgejo),
            _ => Provider::ALL.into_iter().find(|p| p.as_str() == name),
        }
    }
}
