//! Short-lived HS256 JSON Web Tokens for workers (claims `sub` = worker id, `gen` = its key
//! generation, `jti`, `iat`, `exp`). The same secret derives the workers' channel keys
//! ([`JwtKeys::channel_key`], domain-separated), so nothing in the database signs anything.
//!
//! Only HS256 is accepted, whatever the header says (no `alg: none`, no algorithm confusion);
//! the signature is compared in constant time; an expired token is rejected.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signing secret and token lifetime.
pub struct JwtKeys {
    secret: Vec<u8>,
    ttl_secs: i64,
}

/// A worker token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// The worker's key generation when the token was issued: a rotation revokes the token.
    #[serde(default)]
    pub gen: i32,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: std::time::Duration) -> JwtKeys {
        JwtKeys { secret: secret.to_vec(), ttl_secs: ttl.as_secs() as i64 }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key length")
    }

    /// The channel key of worker `subject` at key generation `gen`.
    pub fn channel_key(&self, subject: &str, gen: i32) -> wh_wsproto::Key {
        wh_wsproto::Key::derive(&self.secret, subject, gen)
    }

    /// A token for `subject` at key generation `gen`, valid from `now` (Unix seconds) for the
    /// configured lifetime.
    pub fn issue(&self, subject: &str, gen: i32, now: i64) -> (String, Claims) {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).expect("the OS random source is available");
        let claims = Claims {
            sub: subject.to_owned(),
            gen,
            jti: hex::encode(jti),
            iat: now,
            exp: now + self.ttl_secs,
        };
        let body = serde_json::to_vec(&claims).expect("claims serialise");
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(body));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        (format!("{signing_input}.{sig}"), claims)
    }

    /// Verifies a token at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?)
                .map_err(|_| JwtError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(JwtError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..h.len() + 1 + c.len()]);
        mac.verify_slice(&sig).map_err(|_| JwtError::BadSignature)?;
        let claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).map_err(|_| JwtError::Malformed)?)
                .map_err(|_| JwtError::Malformed)?;
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }

    /// Lifetime of issued tokens in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn issue_verify_expire_tamper() {
        let keys = JwtKeys::new(&[7u8; 32], Duration::from_secs(900));
        let (token, claims) = keys.issue("worker-1", 1, 1000);
        assert_eq!(keys.verify(&token, 1000).unwrap(), claims);
        assert_eq!(claims.exp, 1900);
        assert_eq!(keys.verify(&token, 1900), Err(JwtError::Expired));
        let other = JwtKeys::new(&[8u8; 32], Duration::from_secs(900));
        assert_eq!(other.verify(&token, 1000), Err(JwtError::BadSignature));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_claims =
            URL_SAFE_NO_PAD.encode(r#"{"sub":"worker-2","jti":"x","iat":1000,"exp":9999}"#);
        parts[1] = &forged_claims;
        assert_eq!(keys.verify(&parts.join("."), 1000), Err(JwtError::BadSignature));
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            token.split('.').nth(1).unwrap()
        );
        assert_eq!(keys.verify(&none_alg, 1000), Err(JwtError::Malformed));
        assert_eq!(keys.verify("a.b", 1000), Err(JwtError::Malformed));
    }
}
