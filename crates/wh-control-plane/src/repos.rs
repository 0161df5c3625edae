//! Repository URLs of apps. Credentials in a URL (`https://user:token@host/…`) are split off
//! and sealed (the env key, the app id as associated data): `apps.repo_url`, the jobs, the audit
//! trail and every API answer hold the URL without them, and only a deploy job's assignment,
//! over the signed channel, carries them to the worker. A URL must be https or ssh; one that
//! names a loopback or private address as a literal (or `localhost`) is refused unless the
//! operator allows private repositories. Names are resolved, and pinned, by the worker that
//! clones, where the connection is made (`wh_worker::git`).

use sqlx::PgPool;
use wh_wsproto::repo::{self, RepoUrl, Transport};

use crate::api::ApiError;
use crate::secrets::Sealer;

/// A repository URL ready to store: the URL to keep and the credentials to seal.
#[derive(Debug)]
pub struct Checked {
    pub public: String,
    pub credentials: Option<String>,
}

/// Checks a repository URL an app is given (empty: uploads only).
pub fn check(url: &str, allow_private: bool) -> Result<Checked, ApiError> {
    if url.is_empty() {
        return Ok(Checked { public: String::new(), credentials: None });
    }
    let invalid = |message: String| ApiError::Validation { field: "repo_url", message };
    let parsed = RepoUrl::parse(url).map_err(|e| invalid(e.to_string()))?;
    if parsed.transport == Transport::Local {
        return Err(invalid("must be an https://, ssh:// or git@host:path URL".into()));
    }
    let private =
        parsed.is_localhost() || parsed.literal_ip().is_some_and(|ip| !repo::is_public(ip));
    if private && !allow_private {
        return Err(invalid(format!(
            "`{}` is a loopback or private address; repositories must be on public hosts",
            parsed.host
        )));
    }
    Ok(Checked { public: parsed.public, credentials: parsed.credentials })
}

/// The credentials of the repository `deployment`'s app deploys from, opened (for a deploy
/// job's assignment).
pub async fn credentials(
    pool: &PgPool,
    sealer: &Sealer,
    deployment: i64,
) -> Result<Option<String>, crate::scheduler::PrepareError> {
    let row: Option<(i64, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT a.id, a.repo_auth_sealed FROM deployments d JOIN apps a ON a.id = d.app_id
         WHERE d.id = $1",
    )
    .bind(deployment)
    .fetch_optional(pool)
    .await?;
    let Some((app, Some(sealed))) = row else { return Ok(None) };
    let opened = sealer.open(&sealed, app).map_err(|why| crate::scheduler::PrepareError::Open {
        what: "repository credentials".into(),
        why,
    })?;
    Ok(Some(String::from_utf8_lossy(&opened).into_owned()))
}

/// Seals credentials that an older version stored in clear in `apps.repo_url` and, when there
/// were any, scrubs the copies jobs and audit details made since; returns how many apps had
/// some. Runs at every start: without such URLs it is one scan of apps (migration 0014 scrubbed
/// the history once).
pub async fn seal_stored_credentials(pool: &PgPool, sealer: &Sealer) -> Result<u64, sqlx::Error> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, repo_url FROM apps WHERE repo_url LIKE '%@%'")
            .fetch_all(pool)
            .await?;
    let mut sealed = 0;
    for (id, url) in rows {
        let Ok(parsed) = RepoUrl::parse(&url) else { continue };
        let Some(credentials) = parsed.credentials else { continue };
        sqlx::query("UPDATE apps SET repo_url = $2, repo_auth_sealed = $3 WHERE id = $1")
            .bind(id)
            .bind(&parsed.public)
            .bind(sealer.seal(credentials.as_bytes(), id))
            .execute(pool)
            .await?;
        sealed += 1;
    }
    if sealed == 0 {
        return Ok(0);
    }
    // Whatever copies the old URLs left: `https://<anything>@` loses the part before `@`.
    for (table, column) in [("jobs", "payload"), ("audit_events", "details")] {
        sqlx::query(&format!(
            r"UPDATE {table} SET {column} = jsonb_set({column}, '{{repo_url}}',
                  to_jsonb(regexp_replace({column}->>'repo_url', '^https://[^/@]*@', 'https://')))
              WHERE {column}->>'repo_url' ~ '^https://[^/@]*@'"
        ))
        .execute(pool)
        .await?;
    }
    Ok(sealed)
}

/// Whether `name` is a ref name git accepts for a branch or tag (`git check-ref-format`), and
/// one that cannot read as an option: 1 to 200 bytes, no leading `-`, no `..`, `@{`, `//`,
/// control characters, space or `~^:?*[\`, no component starting with `.` or ending with
/// `.lock`, not starting or ending with `/`, not ending with `.`, and not `@`.
pub fn valid_ref_name(name: &str) -> bool {
    let bad_char = |c: char| c.is_ascii_control() || " ~^:?*[\\".contains(c);
    !(name.is_empty()
        || name.len() > 200
        || name == "@"
        || name.starts_with('-')
        || name.starts_with('/')
        || name.ends_with('/')
        || name.ends_with('.')
        || name.contains("..")
        || name.contains("@{")
        || name.contains("//")
        || name.chars().any(bad_char)
        || name.split('/').any(|c| c.starts_with('.') || c.ends_with(".lock")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_follow_gits_rules() {
        for ok in ["main", "feature/x-1", "v1.2.3", "release_2026", "a.b", "0123abcdef", "ü"] {
            assert!(valid_ref_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "--upload-pack=evil",
            "a..b",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "/a",
            "a/",
            "a//b",
            ".a",
            "a/.b",
            "a.lock",
            "a/b.lock/c",
            "a.",
            "@",
            "a@{1}",
            "a\u{7f}",
            "tab\tx",
            "nul\0",
        ] {
            assert!(!valid_ref_name(bad), "{bad:?}");
        }
        assert!(!valid_ref_name(&"a".repeat(201)));
    }

    #[test]
    fn credentials_are_split_off_and_private_literals_refused() {
        let c = check("https://me:tok@git.example.com/o/r.git", false).unwrap();
        assert_eq!(
            (c.public.as_str(), c.credentials.as_deref()),
            ("https://git.example.com/o/r.git", Some("tok").map(|_| "me:tok"))
        );
        for bad in [
            "/srv/repo",
            "file:///etc",
            "https://127.0.0.1/r",
            "https://localhost/r",
            "ssh://git@10.50.0.3/r",
            "https://[::1]/r",
            "http://x.example/r",
        ] {
            assert!(check(bad, false).is_err(), "{bad}");
        }
        assert!(check("https://127.0.0.1/r", true).is_ok());
        assert_eq!(check("", false).unwrap().public, "");
    }
}
