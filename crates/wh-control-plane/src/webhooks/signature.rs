//! Signing a webhook delivery, as Standard Webhooks (<https://www.standardwebhooks.com>)
//! specifies: `webhook-id` (the event's id, the same on every retry), `webhook-timestamp`
//! (seconds since the epoch) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">` with the secret `whsec_<base64 of 32 random bytes>`; and a Stripe-style
//! `X-WiseHosting-Signature: t=<timestamp>,v1=<hex HMAC-SHA256 of "timestamp.body">` for
//! receivers built for that shape. During a rotation a delivery carries a signature per secret
//! (space-separated in `webhook-signature`, repeated `v1=` in the other), so receivers on either
//! secret verify it. [`verify`] checks in constant time, within a tolerance.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A secret's prefix.
pub const PREFIX: &str = "whsec_";
/// How far a timestamp may be from now for [`verify`] (the scheme's recommendation).
pub const TOLERANCE_SECS: i64 = 300;

/// Why a secret or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("a secret is whsec_ and the base64 of 24 to 64 bytes")]
    Secret,
    #[error("the timestamp is too far from now")]
    Timestamp,
    #[error("no signature matches")]
    Mismatch,
    #[error("the {0} header is missing or malformed")]
    Header(&'static str),
}

/// A new secret: `whsec_` + the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS random source is available");
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The key bytes of a `whsec_…` secret.
pub fn key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let raw = secret.strip_prefix(PREFIX).ok_or(SignatureError::Secret)?;
    let key = STANDARD.decode(raw).map_err(|_| SignatureError::Secret)?;
    if (24..=64).contains(&key.len()) {
        Ok(key)
    } else {
        Err(SignatureError::Secret)
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(b".");
        }
        mac.update(p);
    }
    mac
}

/// The headers of a delivery of `body` as event `id` at `timestamp`, signed with each of
/// `keys` (one, or two while rotating): `webhook-id`, `webhook-timestamp`, `webhook-signature`
/// and `x-wisehosting-signature`.
pub fn headers(
    id: &str,
    timestamp: i64,
    body: &[u8],
    keys: &[&[u8]],
) -> [(&'static str, String); 4] {
    let ts = timestamp.to_string();
    let standard: Vec<String> = keys
        .iter()
        .map(|k| {
            format!(
                "v1,{}",
                STANDARD
                    .encode(mac(k, &[id.as_bytes(), ts.as_bytes(), body]).finalize().into_bytes())
            )
        })
        .collect();
    let stripe: Vec<String> = keys
        .iter()
        .map(|k| {
            format!("v1={}", hex::encode(mac(k, &[ts.as_bytes(), body]).finalize().into_bytes()))
        })
        .collect();
    [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.clone()),
        ("webhook-signature", standard.join(" ")),
        ("x-wisehosting-signature", format!("t={ts},{}", stripe.join(","))),
    ]
}

/// Checks a Standard Webhooks delivery against `key` at `now`: the timestamp within
/// [`TOLERANCE_SECS`], and one of the `v1,` signatures matching, compared in constant time.
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::Header("webhook-timestamp"))?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Timestamp);
    }
    for sig in signatures.split(' ') {
        let Some(b64) = sig.strip_prefix("v1,") else { continue };
        let Ok(given) = STANDARD.decode(b64) else { continue };
        if mac(key, &[id.as_bytes(), timestamp.as_bytes(), body]).verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The test vector the Standard Webhooks libraries share.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn the_published_test_vector() {
        let k = key(SECRET).unwrap();
        let h = headers(ID, TS, BODY, &[&k]);
        assert_eq!(h[2].1, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!((h[0].1.as_str(), h[1].1.as_str()), (ID, "1614265330"));
        verify(&k, ID, "1614265330", &h[2].1, BODY, TS + 10).unwrap();
        assert_eq!(
            verify(&k, ID, "1614265330", &h[2].1, BODY, TS + 301),
            Err(SignatureError::Timestamp)
        );
        assert_eq!(verify(&k, ID, "1614265330", &h[2].1, b"{}", TS), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let (old, new) = (key(&new_secret()).unwrap(), key(&new_secret()).unwrap());
        let h = headers("evt_1", TS, BODY, &[&old, &new]);
        assert_eq!(h[2].1.split(' ').count(), 2);
        for k in [&old, &new] {
            verify(k, "evt_1", &h[1].1, &h[2].1, BODY, TS).unwrap();
        }
        let stripe = &h[3].1;
        assert!(
            stripe.starts_with(&format!("t={TS},v1=")) && stripe.matches(",v1=").count() == 2,
            "{stripe}"
        );
        let expected =
            hex::encode(mac(&new, &[TS.to_string().as_bytes(), BODY]).finalize().into_bytes());
        assert!(stripe.ends_with(&expected));
    }

    #[test]
    fn secrets_are_whsec_and_enough_random_bytes() {
        let s = new_secret();
        assert!(s.starts_with(PREFIX));
        assert_eq!(key(&s).unwrap().len(), 32);
        for bad in ["whsec_", "sk_abc", "whsec_!!!", "whsec_c2hvcnQ="] {
            assert_eq!(key(bad), Err(SignatureError::Secret), "{bad}");
        }
    }

    proptest! {
        /// Any change to the id, the timestamp or the body fails verification.
        #[test]
        fn any_tampering_is_refused(body in proptest::collection::vec(any::<u8>(), 0..200), flip in 0usize..200) {
            let k = key(SECRET).unwrap();
            let h = headers(ID, TS, &body, &[&k]);
            prop_assert!(verify(&k, ID, &h[1].1, &h[2].1, &body, TS).is_ok());
            if !body.is_empty() {
                let mut tampered = body.clone();
                tampered[flip % body.len()] ^= 1;
                prop_assert_eq!(verify(&k, ID, &h[1].1, &h[2].1, &tampered, TS), Err(SignatureError::Mismatch));
            }
            prop_assert!(verify(&k, "msg_other", &h[1].1, &h[2].1, &body, TS).is_err());
        }
    }
}
