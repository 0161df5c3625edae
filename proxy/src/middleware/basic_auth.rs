//! `basicAuth`: users from the configuration (`users`) or an htpasswd file (`usersFile`, read
//! when the configuration is compiled), each with a bcrypt (`$2a$`/`$2b$`/`$2y$`), Apache MD5
//! (`$apr1$`) or SHA-1 (`{SHA}`) hash, as Apache's htpasswd writes them and Traefik reads
//! them. A request without valid credentials gets 401 with `WWW-Authenticate: Basic
//! realm="…"`.
//!
//! bcrypt is slow by design (tens of milliseconds); a credential that verified once is
//! remembered, lock-free, as a 64-bit keyed fingerprint in a fixed table, so a signed-in client
//! costs one SHA-256 per request afterwards. A fingerprint never reveals a password (keyed with
//! a random per-process key) and a miss only costs a verification.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::util::FastMap;

/// The most bytes of a `usersFile` read.
const MAX_FILE: u64 = 1 << 20;
/// Remembered credentials (a slot per fingerprint, overwritten on collision).
const CACHE_SLOTS: usize = 1024;

/// A stored password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hash {
    Bcrypt(String),
    /// `$apr1$salt$digest`: (salt, the whole string).
    Apr1 {
        salt: String,
        whole: String,
    },
    /// `{SHA}base64`: the 20-byte digest.
    Sha1(Vec<u8>),
}

/// Why a `basicAuth` definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BasicAuthError {
    #[error("basicAuth: user entry `{0}` is not user:hash")]
    Entry(String),
    #[error(
        "basicAuth: the hash of `{0}` is not bcrypt ($2y$…), apr1 ($apr1$…) or SHA-1 ({{SHA}}…)"
    )]
    Hash(String),
    #[error("basicAuth.usersFile {path}: {why}")]
    File { path: String, why: String },
    #[error("basicAuth: no users")]
    NoUsers,
    #[error("basicAuth.realm contains a `\"` or a control character")]
    Realm,
}

/// A compiled `basicAuth`.
pub struct BasicAuth {
    users: FastMap<Box<str>, Hash>,
    /// `WWW-Authenticate` of a refusal.
    pub challenge: http::HeaderValue,
    pub remove_header: bool,
    /// Set to the user name on the forwarded request.
    pub header_field: Option<http::HeaderName>,
    key: [u8; 16],
    seen: Box<[AtomicU64]>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth").field("users", &self.users.len()).finish_non_exhaustive()
    }
}

impl Hash {
    /// The stored form's bytes (what a fingerprint binds to, so a changed hash forgets it).
    fn stored(&self) -> &[u8] {
        match self {
            Hash::Bcrypt(h) => h.as_bytes(),
            Hash::Apr1 { whole, .. } => whole.as_bytes(),
            Hash::Sha1(d) => d,
        }
    }
}

fn parse_hash(user: &str, hash: &str) -> Result<Hash, BasicAuthError> {
    if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        return Ok(Hash::Bcrypt(hash.to_owned()));
    }
    if let Some(rest) = hash.strip_prefix("$apr1$") {
        let (salt, digest) =
            rest.split_once('$').ok_or_else(|| BasicAuthError::Hash(user.into()))?;
        if salt.len() > 8 || digest.len() != 22 {
            return Err(BasicAuthError::Hash(user.into()));
        }
        return Ok(Hash::Apr1 { salt: salt.into(), whole: hash.into() });
    }
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let digest = STANDARD.decode(b64).map_err(|_| BasicAuthError::Hash(user.into()))?;
        if digest.len() != 20 {
            return Err(BasicAuthError::Hash(user.into()));
        }
        return Ok(Hash::Sha1(digest));
    }
    Err(BasicAuthError::Hash(user.into()))
}

impl BasicAuth {
    /// From `users` entries and an optional htpasswd file (whose entries come first, as in
    /// Traefik: a user in both keeps the file's hash).
    pub fn new(
        entries: &[String],
        users_file: Option<&str>,
        realm: Option<&str>,
        remove_header: bool,
        header_field: Option<&str>,
    ) -> Result<BasicAuth, BasicAuthError> {
        let mut lines: Vec<String> = Vec::new();
        if let Some(path) = users_file.filter(|p| !p.is_empty()) {
            let file = |why: String| BasicAuthError::File { path: path.into(), why };
            let meta = std::fs::metadata(path).map_err(|e| file(e.to_string()))?;
            if meta.len() > MAX_FILE {
                return Err(file(format!("larger than {MAX_FILE} bytes")));
            }
            let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
            lines.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        lines.extend(entries.iter().cloned());
        let mut users = FastMap::default();
        for line in &lines {
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| BasicAuthError::Entry(line.chars().take(40).collect()))?;
            if user.is_empty() {
                return Err(BasicAuthError::Entry(line.chars().take(40).collect()));
            }
            let hash = parse_hash(user, hash.trim())?;
            users.entry(user.into()).or_insert(hash);
        }
        if users.is_empty() {
            return Err(BasicAuthError::NoUsers);
        }
        let realm = realm.filter(|r| !r.is_empty()).unwrap_or("traefik");
        if realm.chars().any(|c| c == '"' || c.is_control()) {
            return Err(BasicAuthError::Realm);
        }
        let challenge = http::HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
            .map_err(|_| BasicAuthError::Realm)?;
        let header_field = match header_field.filter(|h| !h.is_empty()) {
            Some(h) => Some(
                http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map_err(|_| BasicAuthError::Entry(h.into()))?,
            ),
            None => None,
        };
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).expect("the OS random source is available");
        Ok(BasicAuth {
            users,
            challenge,
            remove_header,
            header_field,
            key,
            seen: (0..CACHE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The user an `Authorization` header value signs in, when its credentials are valid.
    pub fn check(&self, authorization: Option<&http::HeaderValue>) -> Option<String> {
        let value = authorization?.to_str().ok()?;
        let (scheme, b64) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") || b64.len() > 4096 {
            return None;
        }
        let decoded = STANDARD.decode(b64.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let hash = self.users.get(user)?;
        let print = self.fingerprint(user, password, hash);
        let slot = &self.seen[(print % CACHE_SLOTS as u64) as usize];
        if print != 0 && slot.load(Ordering::Relaxed) == print {
            return Some(user.to_owned());
        }
        if !verify(hash, password) {
            return None;
        }
        slot.store(print, Ordering::Relaxed);
        Some(user.to_owned())
    }

    fn fingerprint(&self, user: &str, password: &str, hash: &Hash) -> u64 {
        let mut h = Sha256::new();
        h.update(self.key);
        for part in [user.as_bytes(), password.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(hash.stored());
        let out = h.finalize();
        u64::from_le_bytes(out[..8].try_into().expect("8 bytes"))
    }
}

/// Whether `password` matches `hash` (digests compared in constant time).
pub fn verify(hash: &Hash, password: &str) -> bool {
    match hash {
        Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        Hash::Apr1 { salt, whole } => {
            let computed = apr1(password.as_bytes(), salt.as_bytes());
            computed.as_bytes().ct_eq(whole.as_bytes()).into()
        }
        Hash::Sha1(digest) => {
            let computed = <sha1::Sha1 as sha1::Digest>::digest(password.as_bytes());
            computed.as_slice().ct_eq(digest).into()
        }
    }
}

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Apache's MD5-crypt (`$apr1$`): the md5crypt algorithm with the `$apr1$` magic.
pub fn apr1(password: &[u8], salt: &[u8]) -> String {
    let salt = &salt[..salt.len().min(8)];
    let magic = b"$apr1$";
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic);
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        ctx.update(&alt[..left.min(16)]);
        left = left.saturating_sub(16);
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(digest);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(digest);
        } else {
            c.update(password);
        }
        digest = c.finalize();
    }
    let mut out = String::from("$apr1$");
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut push = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let d = |i: usize| u32::from(digest[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push((d(a) << 16) | (d(b) << 8) | d(c), 4);
    }
    push(d(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_of_every_kind_verify() {
        // OpenBSD's bcrypt test vector.
        let bcrypt =
            parse_hash("u", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")
                .unwrap();
        assert!(verify(&bcrypt, "U*U"));
        assert!(!verify(&bcrypt, "U*V"));
        // `openssl passwd -apr1 -salt saltsalt password`.
        assert_eq!(apr1(b"password", b"saltsalt"), "$apr1$saltsalt$yAAkm4libquA.ZWLHbSBq/");
        let sha = parse_hash("u", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=").unwrap();
        assert!(verify(&sha, "password") && !verify(&sha, "Password"));
        assert!(parse_hash("u", "plaintext").is_err());
        assert!(parse_hash("u", "$apr1$toolongsalt$x").is_err());
    }

    #[test]
    fn credentials_are_checked_and_remembered() {
        let auth = BasicAuth::new(
            &["alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=".into()],
            None,
            Some("shop"),
            true,
            Some("X-User"),
        )
        .unwrap();
        let header = |s: &str| {
            http::HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(s))).unwrap()
        };
        assert_eq!(auth.check(Some(&header("alice:password"))).as_deref(), Some("alice"));
        assert_eq!(auth.check(Some(&header("alice:password"))).as_deref(), Some("alice"), "cached");
        assert_eq!(auth.check(Some(&header("alice:wrong"))), None);
        assert_eq!(auth.check(Some(&header("bob:password"))), None);
        assert_eq!(auth.check(Some(&http::HeaderValue::from_static("Bearer x"))), None);
        assert_eq!(auth.check(None), None);
        assert_eq!(auth.challenge, "Basic realm=\"shop\"");
        assert!(BasicAuth::new(&[], None, None, false, None).is_err());
        assert!(BasicAuth::new(&["a:{SHA}x".into()], None, Some("a\"b"), false, None).is_err());
    }
}
