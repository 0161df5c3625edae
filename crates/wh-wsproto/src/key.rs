//! Keys of the channel. Three values come from a worker's raw API key, none of which the
//! database can use to sign anything:
//! - the raw key itself, held only by the worker, presented to register;
//! - [`lookup_hash`], what the control plane stores to find the worker at register: a
//!   domain-separated SHA-256, not a key;
//! - the channel [`Key`] that signs envelopes: derived by the control plane from a secret of its
//!   own (never stored) for the worker's id and key generation ([`Key::derive`]), and handed to
//!   the worker in the register answer. Rotating the key bumps the generation, so every key of
//!   the old one stops working.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A 32-byte signing key. Its `Debug` never prints the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

/// `hex(SHA-256("wh/worker-lookup/v1" 0x00 raw))`: what the control plane stores to look a worker
/// up by its raw API key.
pub fn lookup_hash(raw: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"wh/worker-lookup/v1\0");
    h.update(raw.as_bytes());
    hex::encode(h.finalize())
}

/// `hex(SHA-256(raw))`: what versions before the key split stored, which was also their signing
/// key. Only used to find (and then rewrite) such a row once.
pub fn legacy_hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

impl Key {
    /// The channel key of worker `worker_id` at key generation `generation`, from the control
    /// plane's `secret`: `HMAC-SHA256(secret, "wh/channel/v1" 0 worker_id 0 generation)`.
    pub fn derive(secret: &[u8], worker_id: &str, generation: i32) -> Key {
        let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
        m.update(b"wh/channel/v1\0");
        m.update(worker_id.as_bytes());
        m.update(b"\0");
        m.update(generation.to_string().as_bytes());
        Key(m.finalize().into_bytes().into())
    }

    /// A key from any secret text: SHA-256 of it (tests and tools).
    pub fn from_secret(secret: &str) -> Key {
        Key(Sha256::digest(secret.as_bytes()).into())
    }

    /// The key from 64 hex digits (as the register answer carries it).
    pub fn from_hex(hex_key: &str) -> Option<Key> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut out).ok()?;
        Some(Key(out))
    }

    /// The key as 64 hex digits, for the register answer only (a secret: never logged).
    pub fn to_hex(&self) -> String {
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
    fn hex_round_trips_never_prints_and_the_lookup_hash_is_no_key() {
        let k = Key::derive(b"control plane secret", "w1", 1);
        assert_eq!(Key::from_hex(&k.to_hex()), Some(k.clone()));
        assert!(!format!("{k:?}").contains(&k.to_hex()[..8]));
        assert_eq!(Key::from_hex("zz"), None);
        assert_ne!(Key::derive(b"control plane secret", "w1", 2), k, "rotation changes the key");
        assert_ne!(Key::derive(b"control plane secret", "w2", 1), k);
        let raw = "whk_abc";
        assert_ne!(lookup_hash(raw), legacy_hash(raw));
        assert_ne!(Key::from_hex(&lookup_hash(raw)), Some(Key::from_secret(raw)));
        // SHA-256("abc")
        assert_eq!(
            legacy_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
