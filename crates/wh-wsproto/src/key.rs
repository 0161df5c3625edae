//! The HMAC key: SHA-256 of the worker's raw API key, derived independently on both sides and
//! never sent over the wire. The control plane stores only `hex(SHA-256(raw key))` as
//! `api_key_hash`, which is the same 32 bytes: it can verify without ever holding the raw key.

use sha2::{Digest, Sha256};

/// A 32-byte signing key. Its `Debug` never prints the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    /// The key for a raw API key.
    pub fn from_api_key(raw: &str) -> Key {
        Key(Sha256::digest(raw.as_bytes()).into())
    }

    /// The key from a stored `api_key_hash` (64 hex digits).
    pub fn from_hash_hex(hash: &str) -> Option<Key> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hash, &mut out).ok()?;
        Some(Key(out))
    }

    /// `hex(SHA-256(raw key))`, what the control plane stores.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_and_never_prints() {
        let k = Key::from_api_key("wh_live_secret");
        assert_eq!(Key::from_hash_hex(&k.hash_hex()), Some(k.clone()));
        assert!(!format!("{k:?}").contains(&k.hash_hex()[..8]));
        assert_eq!(Key::from_hash_hex("zz"), None);
        // SHA-256("abc")
        assert_eq!(
            Key::from_api_key("abc").hash_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
