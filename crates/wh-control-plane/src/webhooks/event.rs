//! The events targets can choose, and the body every delivery carries:
//! `{"type", "timestamp", "data"}`, at most [`MAX_BODY`] bytes.

use serde_json::{json, Value};

/// The events a target may choose.
pub const EVENTS: [&str; 9] = [
    "deployment.started",
    "deployment.succeeded",
    "deployment.failed",
    "app.crashed",
    "alert.fired",
    "alert.resolved",
    "domain.verified",
    "certificate.issued",
    "certificate.failed",
];

/// Sent to one target by "Send test", whatever it chose.
pub const TEST: &str = "webhook.test";
/// Sent to a user's other channels when one of their targets was disabled.
pub const DISABLED: &str = "target.disabled";

/// The largest body delivered.
pub const MAX_BODY: usize = 20 * 1024;

/// The body of an event: `data` cut down (long strings first, then to the app alone) until it
/// fits in [`MAX_BODY`].
pub fn body(kind: &str, timestamp: &str, data: Value) -> Value {
    let whole = json!({ "type": kind, "timestamp": timestamp, "data": data });
    if size(&whole) <= MAX_BODY {
        return whole;
    }
    let mut data = whole["data"].clone();
    if let Value::Object(map) = &mut data {
        for v in map.values_mut() {
            if let Value::String(s) = v {
                if s.len() > 1024 {
                    *s = super::super::notify::message::clip(s, 1024);
                }
            }
        }
    }
    let cut = json!({ "type": kind, "timestamp": timestamp, "data": data });
    if size(&cut) <= MAX_BODY {
        return cut;
    }
    let app = whole["data"].get("app").cloned().unwrap_or(Value::Null);
    json!({ "type": kind, "timestamp": timestamp, "data": { "app": app, "truncated": true } })
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_stay_under_the_limit() {
        let small = body("app.crashed", "2026-12-01T00:00:00Z", json!({"app": "a"}));
        assert_eq!(small["data"]["app"], "a");
        let long = body("deployment.failed", "t", json!({"app": "a", "error": "x".repeat(50_000)}));
        assert!(size(&long) <= MAX_BODY);
        assert_eq!(long["data"]["error"].as_str().unwrap().chars().count(), 1024);
        let many: serde_json::Map<String, Value> =
            (0..100).map(|i| (format!("k{i}"), json!("y".repeat(900)))).collect();
        let mut data = Value::Object(many);
        data["app"] = json!("a");
        let cut = body("x.y", "t", data);
        assert_eq!(cut["data"], json!({"app": "a", "truncated": true}));
    }
}
