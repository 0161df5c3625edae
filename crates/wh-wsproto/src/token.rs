//! The answer to a worker's register and refresh calls (`POST /v1/workers/register`,
//! `/v1/workers/refresh`): its bearer token, its id, the channel key that signs its envelopes,
//! and the settings the control plane hands it. Both sides use this type; nothing reads it by
//! key.

use serde::{Deserialize, Serialize};

use crate::Key;

/// What a worker gets back from register and refresh. Its `Debug` prints neither the token nor
/// the key.
#[derive(Clone, Serialize, Deserialize)]
pub struct WorkerToken {
    /// The bearer token (a JWT) for the WebSocket and the worker's HTTP calls.
    pub token: String,
    /// When `token` expires, in Unix seconds.
    pub expires_at: i64,
    pub worker_id: String,
    /// Signs this worker's envelopes (64 hex digits on the wire; sent only here).
    #[serde(with = "key_hex")]
    pub channel_key: Key,
    pub settings: ChannelSettings,
}

/// Settings the control plane hands its workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSettings {
    pub name: String,
    pub mesh_ip: String,
    pub heartbeat_interval_secs: u64,
}

impl std::fmt::Debug for WorkerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("worker_id", &self.worker_id)
            .field("channel_key", &self.channel_key)
            .field("settings", &self.settings)
            .finish()
    }
}

mod key_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::Key;

    pub(super) fn serialize<S: Serializer>(key: &Key, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&key.to_hex())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Key::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("channel_key is not 32 bytes of hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_its_secrets_out_of_debug() {
        let t = WorkerToken {
            token: "eyJ.secret.jwt".into(),
            expires_at: 1_900_000_000,
            worker_id: "w1".into(),
            channel_key: Key::from_secret("k"),
            settings: ChannelSettings {
                name: "worker-1".into(),
                mesh_ip: "10.50.0.11".into(),
                heartbeat_interval_secs: 10,
            },
        };
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains(&format!("\"channel_key\":\"{}\"", Key::from_secret("k").to_hex())));
        let back: WorkerToken = serde_json::from_str(&json).unwrap();
        assert_eq!(back.channel_key, t.channel_key);
        assert_eq!(back.settings, t.settings);
        let debug = format!("{t:?}");
        assert!(!debug.contains("secret.jwt") && !debug.contains(&t.channel_key.to_hex()));
        let bad = json.replace(&t.channel_key.to_hex(), "zz");
        let err = serde_json::from_str::<WorkerToken>(&bad).unwrap_err().to_string();
        assert!(err.contains("channel_key is not 32 bytes of hex"), "{err}");
    }
}
