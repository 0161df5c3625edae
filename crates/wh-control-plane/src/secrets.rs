//! Secrets at rest: AES-256-GCM under a key derived per purpose from one master key.
//!
//! `key = HKDF-SHA256(master, info = "wh/<purpose>/v1")`; a sealed value is
//! `version (1) || nonce (12 random bytes) || ciphertext+tag`, and the owning row's id is bound
//! as associated data, so a ciphertext copied to another app (or used for another purpose)
//! fails to open. Plaintext never goes to the database, the logs or `Debug` output.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// What a secret is for; each purpose has its own derived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// App environment variables (owner: the app id).
    Env,
    /// Outbound webhook signing secrets (owner: the webhook id).
    Webhook,
    /// Git provider OAuth tokens (owner: the user id).
    OAuth,
    /// Inbound git webhook secrets (owner: the hook id).
    GitHook,
    /// Outbound webhook and notification channel URLs (owner: the target id).
    TargetUrl,
}

impl Purpose {
    fn info(self) -> &'static str {
        match self {
            Purpose::Env => "wh/env/v1",
            Purpose::Webhook => "wh/webhook/v1",
            Purpose::OAuth => "wh/oauth/v1",
            Purpose::GitHook => "wh/githook/v1",
            Purpose::TargetUrl => "wh/target-url/v1",
        }
    }
}

/// The 32-byte master key (`WH_MASTER_KEY`, base64). Never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

/// Why a master key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error("WH_MASTER_KEY is not valid base64")]
    NotBase64,
    #[error("WH_MASTER_KEY must decode to exactly 32 bytes")]
    Length,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Decodes standard base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<MasterKey, MasterKeyError> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::NotBase64)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::Length)?;
        Ok(MasterKey(key))
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// The sealer for one purpose.
    pub fn sealer(&self, purpose: Purpose) -> Sealer {
        let mut derived = [0u8; 32];
        Hkdf::<Sha256>::new(None, &self.0)
            .expand(purpose.info().as_bytes(), &mut derived)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Sealer { cipher: Aes256Gcm::new(&derived.into()), purpose }
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("sealed value is truncated or of an unknown version")]
    Format,
    #[error("sealed value does not open (wrong key, owner or purpose, or tampered)")]
    Open,
}

/// Seals and opens values of one purpose.
pub struct Sealer {
    cipher: Aes256Gcm,
    purpose: Purpose,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("purpose", &self.purpose).finish_non_exhaustive()
    }
}

impl Sealer {
    fn aad(&self, owner: i64) -> Vec<u8> {
        let mut aad = self.purpose.info().as_bytes().to_vec();
        aad.push(0);
        aad.extend_from_slice(&owner.to_be_bytes());
        aad
    }

    /// Encrypts `plaintext` for the row `owner`.
    pub fn seal(&self, plaintext: &[u8], owner: i64) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &self.aad(owner) })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts a value sealed for the row `owner`.
    pub fn open(&self, sealed: &[u8], owner: i64) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(SecretError::Format);
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &self.aad(owner) })
            .map_err(|_| SecretError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey([42u8; 32])
    }

    #[test]
    fn seals_open_only_for_the_same_owner_purpose_and_key() {
        let env = master().sealer(Purpose::Env);
        let sealed = env.seal(b"postgres://user:hunter2@db/app", 7);
        assert_eq!(env.open(&sealed, 7).unwrap(), b"postgres://user:hunter2@db/app");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "plaintext visible in the ciphertext");
        assert_eq!(env.open(&sealed, 8), Err(SecretError::Open), "moved to another app");
        assert_eq!(
            master().sealer(Purpose::Webhook).open(&sealed, 7),
            Err(SecretError::Open),
            "other purpose"
        );
        assert_eq!(
            MasterKey([1u8; 32]).sealer(Purpose::Env).open(&sealed, 7),
            Err(SecretError::Open),
            "other master key"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(env.open(&tampered, 7), Err(SecretError::Open));
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert_eq!(env.open(&v2, 7), Err(SecretError::Format));
        assert_eq!(env.open(&sealed[..10], 7), Err(SecretError::Format));
        assert_ne!(env.seal(b"x", 7), env.seal(b"x", 7), "nonces must be random");
    }

    #[test]
    fn master_key_parsing_names_the_variable_and_never_prints() {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let key = MasterKey::from_base64(&text).unwrap();
        assert!(!format!("{key:?}").contains('9'));
        assert_eq!(MasterKey::from_base64("not base64!").unwrap_err(), MasterKeyError::NotBase64);
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert_eq!(MasterKey::from_base64(&short).unwrap_err(), MasterKeyError::Length);
        assert!(MasterKeyError::Length.to_string().contains("32 bytes"));
    }
}
