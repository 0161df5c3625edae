//! Each provider's proof that a delivery comes from it, checked in constant time:
//! GitHub `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, Bitbucket the same in
//! `X-Hub-Signature`, Gitea `X-Gitea-Signature: <hex>` and Forgejo `X-Forgejo-Signature:
//! <hex>` (HMAC-SHA256 of the body), GitLab `X-Gitlab-Token: <the secret itself>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Provider;

/// Why a delivery was not accepted as the provider's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the signature does not match")]
    Mismatch,
}

/// The header carrying the provider's proof.
pub fn header(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "x-hub-signature-256",
        Provider::Bitbucket => "x-hub-signature",
        Provider::Gitea => "x-gitea-signature",
        Provider::Forgejo => "x-forgejo-signature",
        Provider::Gitlab => "x-gitlab-token",
    }
}

/// Checks `value` (the [`header`]'s value, if any) against `body` and the hook's `secret`.
pub fn verify(
    provider: Provider,
    secret: &[u8],
    value: Option<&[u8]>,
    body: &[u8],
) -> Result<(), VerifyError> {
    let name = header(provider);
    let value = value.ok_or(VerifyError::Missing(name))?;
    if provider == Provider::Gitlab {
        return if crate::constant_time_eq(value, secret) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        };
    }
    let hex_mac = match provider {
        Provider::Github | Provider::Bitbucket => {
            value.strip_prefix(b"sha256=").ok_or(VerifyError::Malformed(name))?
        }
        _ => value,
    };
    let given = hex::decode(hex_mac).map_err(|_| VerifyError::Malformed(name))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).map_err(|_| VerifyError::Mismatch)
}

/// The header value a provider would send for `body` (tests and the fake forge).
pub fn sign(provider: Provider, secret: &[u8], body: &[u8]) -> Vec<u8> {
    if provider == Provider::Gitlab {
        return secret.to_vec();
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(body);
    let hex = hex::encode(mac.finalize().into_bytes());
    match provider {
        Provider::Github | Provider::Bitbucket => format!("sha256={hex}").into_bytes(),
        _ => hex.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// GitHub's published example ("Validating webhook deliveries").
    #[test]
    fn githubs_test_vector() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let header = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(verify(Provider::Github, secret, Some(header), body), Ok(()));
        assert_eq!(sign(Provider::Github, secret, body), header.to_vec());
        assert_eq!(
            verify(Provider::Github, b"another secret", Some(header), body),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn each_provider_has_its_form() {
        let (secret, body) = (b"s3cret".as_slice(), b"{}".as_slice());
        for p in Provider::ALL {
            let good = sign(p, secret, body);
            assert_eq!(verify(p, secret, Some(&good), body), Ok(()), "{p:?}");
            assert_eq!(verify(p, secret, None, body), Err(VerifyError::Missing(header(p))));
        }
        let hex = sign(Provider::Gitea, secret, body);
        assert_eq!(
            verify(Provider::Github, secret, Some(&hex), body),
            Err(VerifyError::Malformed("x-hub-signature-256")),
            "GitHub's header has its sha256= prefix"
        );
        assert_eq!(
            verify(Provider::Gitea, secret, Some(b"zz"), body),
            Err(VerifyError::Malformed("x-gitea-signature"))
        );
        assert_eq!(
            verify(Provider::Gitlab, secret, Some(b"s3cre"), body),
            Err(VerifyError::Mismatch)
        );
    }

    proptest! {
        /// Any change to the body, the secret or the signature is refused.
        #[test]
        fn any_corruption_is_refused(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<usize>(),
            bit in 0u8..8,
        ) {
            for p in Provider::ALL {
                let sig = sign(p, &secret, &body);
                prop_assert_eq!(verify(p, &secret, Some(&sig), &body), Ok(()));
                if p != Provider::Gitlab {
                    let mut bad = body.clone();
                    if bad.is_empty() { bad.push(0) } else { let i = flip % bad.len(); bad[i] ^= 1 << bit; }
                    prop_assert!(verify(p, &secret, Some(&sig), &bad).is_err());
                }
                let mut other = secret.clone();
                let i = flip % other.len();
                other[i] ^= 1 << bit;
                prop_assert!(verify(p, &other, Some(&sig), &body).is_err());
            }
        }

        /// Whatever the header holds, checking it never panics.
        #[test]
        fn any_header_is_safe(value in proptest::collection::vec(any::<u8>(), 0..200)) {
            for p in Provider::ALL {
                let _ = verify(p, b"k", Some(&value), b"body");
            }
        }
    }
}
