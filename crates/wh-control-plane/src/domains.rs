//! Custom domains: a user's own hostname on an app, proven by a TXT record.
//!
//! - [`normalize`]: lowercase, trailing dot dropped, Unicode → punycode (IDNA/UTS 46), then the
//!   hostname rules (labels of 1–63 `[a-z0-9-]` without a leading or trailing hyphen, at most 253
//!   in all, at least two labels, not an IP address, punycode labels that decode canonically,
//!   not under the platform's route domain).
//! - [`Verifier`]: looks up `TXT _wisehosting.<hostname>` against the configured resolvers with
//!   no cache and an overall deadline (8 s); a record matches when its character-strings joined
//!   equal the token. The outcome says which of verified / no such name / no matching TXT /
//!   timeout / server failure it was.
//! - [`recheck_due`]: the background pass: pending domains every 5 minutes for 72 hours (then
//!   failed), verified ones daily (a vanished record flags the domain; it keeps serving).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveErrorKind, TokioResolver};
use sqlx::PgPool;

/// Why a hostname is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHostname(pub String);

/// The canonical (ASCII, lowercase, no trailing dot) form of `input`, or why it is refused.
pub fn normalize(input: &str, route_domain: &str) -> Result<String, InvalidHostname> {
    let bad = |m: &str| Err(InvalidHostname(m.to_owned()));
    let trimmed = input.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return bad("is empty");
    }
    if trimmed.parse::<std::net::IpAddr>().is_ok()
        || trimmed.trim_matches(['[', ']']).parse::<std::net::Ipv6Addr>().is_ok()
    {
        return bad("is an IP address; use a domain name");
    }
    if trimmed.contains('_') {
        return bad("contains `_`; hostnames allow only a-z, 0-9, - and dots");
    }
    let ascii = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(trimmed)
            .map_err(|_| InvalidHostname("is not a valid internationalised domain name".into()))?
    };
    if ascii.len() > 253 {
        return bad("is longer than 253 characters");
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return bad("needs at least two labels (like example.com)");
    }
    for label in &labels {
        if label.is_empty() {
            return bad("has an empty label");
        }
        if label.len() > 63 {
            return bad(&format!("has a label longer than 63 characters ({})", label.len()));
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return bad("may contain only a-z, 0-9, - and dots");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("has a label starting or ending with -");
        }
    }
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return bad("is an IP address; use a domain name");
    }
    // Punycode labels must decode, and be the canonical encoding of what they decode to.
    if labels.iter().any(|l| l.starts_with("xn--")) {
        let (unicode, decoded) = idna::domain_to_unicode(&ascii);
        let canonical = idna::domain_to_ascii(&unicode).ok();
        if decoded.is_err() || canonical.as_deref() != Some(ascii.as_str()) {
            return bad("has a label that is not valid punycode (xn--)");
        }
    }
    let route = route_domain.trim_matches('.').to_ascii_lowercase();
    if !route.is_empty() && (ascii == route || ascii.ends_with(&format!(".{route}"))) {
        return bad(&format!("is under the platform's own domain {route}"));
    }
    Ok(ascii)
}

/// The name whose TXT record proves ownership of `hostname`.
pub fn txt_name(hostname: &str) -> String {
    format!("_wisehosting.{hostname}")
}

/// A new random token: 32 bytes, hex.
pub fn new_token() -> String {
    crate::auth::random_hex(32)
}

/// What a TXT lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Verified,
    NoSuchName,
    NoMatchingTxt,
    Timeout,
    ServerFailure(String),
}

impl Outcome {
    /// The stable code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::NoSuchName => "no_such_name",
            Outcome::NoMatchingTxt => "no_matching_txt",
            Outcome::Timeout => "timeout",
            Outcome::ServerFailure(_) => "server_failure",
        }
    }

    /// A sentence for the user.
    pub fn reason(&self, hostname: &str) -> String {
        let name = txt_name(hostname);
        match self {
            Outcome::Verified => format!("TXT {name} matches"),
            Outcome::NoSuchName => {
                format!("{name} does not exist (NXDOMAIN): create the TXT record")
            }
            Outcome::NoMatchingTxt => format!("no TXT record at {name} carries the token"),
            Outcome::Timeout => format!("the DNS servers did not answer for {name} in time"),
            Outcome::ServerFailure(why) => format!("the DNS lookup of {name} failed: {why}"),
        }
    }
}

/// DNS settings for verification.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Resolvers to ask (UDP, falling back to TCP); default: public resolvers.
    pub servers: Vec<SocketAddr>,
    /// Overall deadline of one verification.
    pub timeout: Duration,
}

impl Default for DnsSettings {
    /// Cloudflare's and Google's public resolvers, 8 s.
    fn default() -> Self {
        DnsSettings {
            servers: ["1.1.1.1:53", "8.8.8.8:53", "1.0.0.1:53", "8.8.4.4:53"]
                .iter()
                .map(|s| s.parse().expect("valid address"))
                .collect(),
            timeout: Duration::from_secs(8),
        }
    }
}

/// Looks up verification records, uncached.
#[derive(Clone)]
pub struct Verifier {
    resolver: TokioResolver,
    timeout: Duration,
}

impl Verifier {
    pub fn new(settings: &DnsSettings) -> Verifier {
        let mut group = NameServerConfigGroup::new();
        for addr in &settings.servers {
            group.merge(NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true));
        }
        let config = ResolverConfig::from_parts(None, vec![], group);
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        opts.attempts = 1;
        // Servers are asked two at a time, each for up to the whole deadline: a dead server
        // never makes us give up before the deadline, and the deadline is never exceeded.
        opts.timeout = settings.timeout;
        opts.num_concurrent_reqs = 2;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Verifier { resolver, timeout: settings.timeout }
    }

    /// Whether `TXT _wisehosting.<hostname>` carries `token`; never takes longer than the
    /// configured deadline.
    pub async fn check(&self, hostname: &str, token: &str) -> Outcome {
        let name = format!("{}.", txt_name(hostname));
        let lookup = tokio::time::timeout(self.timeout, self.resolver.txt_lookup(name)).await;
        let found = match lookup {
            Err(_) => return Outcome::Timeout,
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return classify(&e),
        };
        let matches = found.iter().any(|txt| {
            let joined: Vec<u8> = txt.txt_data().iter().flat_map(|s| s.iter().copied()).collect();
            crate::constant_time_eq(&joined, token.as_bytes())
        });
        if matches {
            Outcome::Verified
        } else {
            Outcome::NoMatchingTxt
        }
    }
}

fn classify(e: &hickory_resolver::ResolveError) -> Outcome {
    let Some(proto) = e.proto() else {
        return match e.kind() {
            ResolveErrorKind::Message(m) if m.contains("timed out") => Outcome::Timeout,
            _ => Outcome::ServerFailure(e.to_string()),
        };
    };
    match proto.kind() {
        ProtoErrorKind::NoRecordsFound { response_code: ResponseCode::NXDomain, .. } => {
            Outcome::NoSuchName
        }
        ProtoErrorKind::NoRecordsFound { response_code: ResponseCode::NoError, .. } => {
            Outcome::NoMatchingTxt
        }
        ProtoErrorKind::NoRecordsFound { response_code, .. } => {
            Outcome::ServerFailure(format!("the server answered {response_code}"))
        }
        ProtoErrorKind::Timeout => Outcome::Timeout,
        _ => Outcome::ServerFailure(proto.to_string()),
    }
}

/// Records a check's outcome on domain `id` and returns the new status. A pending domain
/// becomes verified, or stays pending (failed after 72 h); a verified one stays verified, and
/// is flagged when its record is gone (and unflagged when it is back).
pub async fn record(
    pool: &PgPool,
    id: i64,
    outcome: &Outcome,
    hostname: &str,
) -> Result<String, sqlx::Error> {
    let ok = *outcome == Outcome::Verified;
    let mut tx = pool.begin().await?;
    // Another claim verified first: this one lost the name.
    let taken: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM domains WHERE hostname = $1 AND status = 'verified' AND id <> $2)",
    )
    .bind(hostname)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let (ok, code, reason) = if taken {
        (false, "taken", format!("{hostname} was verified by another account first"))
    } else {
        (ok, outcome.code(), outcome.reason(hostname))
    };
    let status: String = sqlx::query_scalar(
        "UPDATE domains SET
            status = CASE
                WHEN $5 THEN 'failed'::domain_status
                WHEN $2 THEN 'verified'::domain_status
                WHEN status = 'verified' THEN 'verified'::domain_status
                WHEN created_at < now() - interval '72 hours' THEN 'failed'::domain_status
                ELSE status END,
            verified_at = CASE WHEN $2 AND verified_at IS NULL THEN now() ELSE verified_at END,
            record_missing = (status = 'verified' AND NOT $2),
            last_outcome = $3, reason = $4, last_checked_at = now(),
            next_check_at = CASE
                WHEN $5 THEN NULL
                WHEN $2 OR status = 'verified' THEN now() + interval '1 day'
                ELSE now() + interval '5 minutes' END
         WHERE id = $1 RETURNING status::text",
    )
    .bind(id)
    .bind(ok)
    .bind(code)
    .bind(reason)
    .bind(taken)
    .fetch_one(&mut *tx)
    .await?;
    if status == "verified" {
        // The name is proven: every other claim on it goes.
        sqlx::query(
            "DELETE FROM domains WHERE hostname = $1 AND id <> $2 AND status <> 'verified'",
        )
        .bind(hostname)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(status)
}

/// Re-checks every domain whose check is due; returns how many were checked.
pub async fn recheck_due(pool: &PgPool, verifier: &Verifier) -> Result<usize, sqlx::Error> {
    // Pending domains past 72 h fail without another lookup.
    sqlx::query(
        "UPDATE domains SET status = 'failed', reason = 'not verified within 72 hours', next_check_at = NULL
         WHERE status = 'pending' AND created_at < now() - interval '72 hours'",
    )
    .execute(pool)
    .await?;
    let due: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT id, hostname, token, status::text FROM domains
         WHERE status IN ('pending', 'verified') AND next_check_at <= now()
         ORDER BY next_check_at LIMIT 100",
    )
    .fetch_all(pool)
    .await?;
    for (id, hostname, token, before) in &due {
        let outcome = verifier.check(hostname, token).await;
        let after = record(pool, *id, &outcome, hostname).await?;
        if before == "verified" && outcome != Outcome::Verified {
            tracing::warn!(domain = %hostname, reason = %outcome.reason(hostname), "a verified domain's TXT record is gone; it keeps serving, flagged");
        }
        if before != &after {
            tracing::info!(domain = %hostname, status = %after, "domain status changed");
        }
    }
    Ok(due.len())
}

/// Runs [`recheck_due`] every `every` until `stop`.
pub async fn run_rechecks(
    pool: PgPool,
    verifier: Verifier,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = recheck_due(&pool, &verifier).await {
            tracing::warn!(error = %e, "domain rechecks failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_normalised_or_refused_with_the_reason() {
        let n = |s: &str| normalize(s, "route.example.com");
        assert_eq!(n("WWW.Customer.COM."), Ok("www.customer.com".into()));
        assert_eq!(n("bücher.example"), Ok("xn--bcher-kva.example".into()));
        assert_eq!(n("münchen.de"), Ok("xn--mnchen-3ya.de".into()));
        let refused = |s: &str, why: &str| {
            let e = n(s).unwrap_err().0;
            assert!(e.contains(why), "{s}: {e}");
        };
        refused("192.168.1.1", "IP address");
        refused("::1", "IP address");
        refused("1.2.3.4.5", "IP address");
        refused("localhost", "two labels");
        refused(&format!("{}.com", "a".repeat(64)), "longer than 63");
        refused("my_app.example.com", "`_`");
        refused("-bad.example.com", "starting or ending with -");
        refused("bad-.example.com", "starting or ending with -");
        refused("foo.route.example.com", "platform's own domain");
        refused("route.example.com", "platform's own domain");
        refused("a..b.com", "empty label");
        refused("", "empty");
        refused("xn--zz.com", "punycode");
        refused("xn--a.com", "punycode");
        refused("www.xn--ab-c.example", "punycode");
        assert_eq!(n("xn--bcher-kva.example"), Ok("xn--bcher-kva.example".into()));
        refused(&format!("{}.com", vec!["a".repeat(60); 5].join(".")), "253");
        assert_eq!(n(&format!("{}.com", "a".repeat(63))).map(|s| s.len()), Ok(67));
    }

    proptest::proptest! {
        #[test]
        fn normalize_never_panics_and_its_output_is_stable(s in "\\PC{0,300}") {
            if let Ok(ascii) = normalize(&s, "route.example.com") {
                proptest::prop_assert_eq!(normalize(&ascii, "route.example.com"), Ok(ascii.clone()));
                proptest::prop_assert!(ascii.len() <= 253 && ascii.is_ascii());
            }
        }
    }
}
