//! Short-lived HS256 JSON Web Tokens for workers (claims `sub` = worker id, `gen` = its key
//! generation, `jti`, `iat`, `exp`). The same secret derives the workers' channel keys
//! ([`JwtKeys::channel_key`], domain-separated), so nothing in the database signs anything.
//!
//! Signed and checked with `jsonwebtoken`: only HS256 is accepted, whatever the header says (no
//! `alg: none`, no algorithm confusion); the signature is compared in constant time; an expired
//! token is rejected.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The signing secret and token lifetime.
pub struct JwtKeys {
    /// Also derives the channel keys.
    secret: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
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

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: std::time::Duration) -> JwtKeys {
        // HS256 only, whatever a token's header says; `exp` and `sub` required. Expiry is
        // checked against the caller's clock in `verify` (no leeway), not the library's.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys {
            secret: secret.to_vec(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs: ttl.as_secs() as i64,
        }
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
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signs any claims");
        (token, claims)
    }

    /// Verifies a token at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => JwtError::BadSignature,
                _ => JwtError::Malformed,
            })?
            .claims;
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
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
