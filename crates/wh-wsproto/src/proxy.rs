//! What wh-proxy tells the control plane, over the mesh with its config token: the outcome of
//! every certificate order (`POST` [`CERTIFICATES_PATH`], one [`CertificateReport`] as JSON).
//! The control plane turns them into `certificate.issued` and `certificate.failed` events.

use serde::{Deserialize, Serialize};

/// Where reports go on the control plane's internal listener.
pub const CERTIFICATES_PATH: &str = "/v1/traefik/certificates";

/// The longest error text a report carries.
pub const MAX_ERROR: usize = 2048;

/// One order's outcome for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateReport {
    /// The host, lower-case ASCII, as routed.
    pub host: String,
    pub outcome: CertificateOutcome,
}

/// Issued (with the certificate's expiry) or failed (with the CA's or the proxy's reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CertificateOutcome {
    Issued {
        /// Unix seconds.
        not_after: i64,
    },
    Failed {
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_unknown_fields_are_refused() {
        let r = CertificateReport {
            host: "shop.example.com".into(),
            outcome: CertificateOutcome::Issued { not_after: 1_900_000_000 },
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"host":"shop.example.com","outcome":{"issued":{"not_after":1900000000}}}"#
        );
        assert_eq!(serde_json::from_str::<CertificateReport>(&text).unwrap(), r);
        assert!(serde_json::from_str::<CertificateReport>(
            r#"{"host":"a","outcome":{"failed":{"error":"x"}},"extra":1}"#
        )
        .is_err());
    }
}
