use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_790_000_000_000;

fn key() -> Key {
    Key::from_secret("wh_worker_key_for_tests")
}

const CONN: &str = "0123456789abcdef0123456789abcdef";

fn up() -> Binding {
    Binding::to_control_plane(CONN)
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap()
}

#[test]
fn sealed_envelopes_open_once() {
    let mut s = Signer::new(key(), up(), 1);
    let mut v = Verifier::new(key(), up());
    let text = s.seal_raw("heartbeat", &raw(r#"{"cpu": 0.5}"#), NOW);
    let ok = v.open(text.as_bytes(), NOW + 1000).unwrap();
    assert_eq!((ok.t.as_str(), ok.s, ok.ts, ok.p.get()), ("heartbeat", 1, NOW, r#"{"cpu": 0.5}"#));
    assert_eq!(v.open(text.as_bytes(), NOW).unwrap_err(), Error::Replay { seq: 1 });
}

#[test]
fn each_rejection_is_named() {
    let mut s = Signer::new(key(), up(), 1);
    let text = s.seal_raw("ping", &raw("{}"), NOW);
    assert_eq!(
        Verifier::new(Key::from_secret("other"), up()).open(text.as_bytes(), NOW).unwrap_err(),
        Error::BadMac
    );
    assert!(matches!(
        Verifier::new(key(), up()).open(text.as_bytes(), NOW + MAX_SKEW_MS + 1),
        Err(Error::Skew { .. })
    ));
    assert!(matches!(
        Verifier::new(key(), up()).open(text.as_bytes(), NOW - MAX_SKEW_MS - 1),
        Err(Error::Skew { .. })
    ));
    assert!(matches!(Verifier::new(key(), up()).open(b"not json", NOW), Err(Error::Malformed(_))));
    let tampered = text.replace(r#""p":{}"#, r#""p":{"x":1}"#);
    assert_eq!(
        Verifier::new(key(), up()).open(tampered.as_bytes(), NOW).unwrap_err(),
        Error::BadMac
    );
    let extra = text.replacen('{', r#"{"extra":1,"#, 1);
    assert!(matches!(
        Verifier::new(key(), up()).open(extra.as_bytes(), NOW),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn a_forged_envelope_does_not_poison_the_window() {
    let mut good = Signer::new(key(), up(), 7);
    let mut forger = Signer::new(Key::from_secret("attacker"), up(), 7);
    let mut v = Verifier::new(key(), up());
    assert_eq!(
        v.open(forger.seal_raw("ping", &raw("{}"), NOW).as_bytes(), NOW).unwrap_err(),
        Error::BadMac
    );
    assert!(
        v.open(good.seal_raw("ping", &raw("{}"), NOW).as_bytes(), NOW).is_ok(),
        "seq 7 was burnt by a forgery"
    );
}

#[test]
fn interoperates_with_a_hand_computed_mac() {
    // What a worker written from the architecture document would send.
    use hmac::Mac;
    let k = Key::from_secret("k");
    let (t, i, s, ts, p) =
        ("pong", "00112233445566778899aabbccddeeff", 42u64, NOW, r#"{"nonce":"n"}"#);
    let mut m = HmacSha256::new_from_slice(k.bytes()).unwrap();
    m.update(format!("wh2|to-cp|{CONN}|{t}|{i}|{s}|{ts}|{p}").as_bytes());
    let h = hex::encode(m.finalize().into_bytes());
    let text = format!(r#"{{"t":"{t}","i":"{i}","s":{s},"ts":{ts},"p":{p},"h":"{h}"}}"#);
    assert_eq!(Verifier::new(k, up()).open(text.as_bytes(), NOW).unwrap().s, 42);
}

#[test]
fn an_envelope_is_bound_to_its_direction_and_connection() {
    let mut worker = Signer::new(key(), up(), 1);
    let text = worker.seal_raw("log.lines", &raw("{}"), NOW);
    // Replayed on another connection of the same worker.
    let other = Binding::to_control_plane("fedcba9876543210fedcba9876543210");
    assert_eq!(Verifier::new(key(), other).open(text.as_bytes(), NOW).unwrap_err(), Error::BadMac);
    // Reflected: the control plane's own envelope sent back to it.
    let mut cp = Signer::new(key(), Binding::to_worker(CONN), 1);
    let reflected = cp.seal_raw("ping", &raw("{}"), NOW);
    assert_eq!(
        Verifier::new(key(), up()).open(reflected.as_bytes(), NOW).unwrap_err(),
        Error::BadMac
    );
    assert!(Verifier::new(key(), up()).open(text.as_bytes(), NOW).is_ok());
}

fn json_payload() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{}".to_owned()),
        "[a-z]{0,12}".prop_map(|s| format!(r#"{{"k":"{s}"}}"#)),
        (0i64..1_000_000).prop_map(|n| format!(r#"{{"n":{n},"list":[1,2,3]}}"#)),
        "[ -~]{0,40}".prop_map(|s| serde_json::json!({ "line": s }).to_string()),
    ]
}

proptest! {
    #[test]
    fn sign_then_verify_round_trips(t in "[a-z.]{1,20}", p in json_payload(), skew in -MAX_SKEW_MS..MAX_SKEW_MS, first in 0u64..u64::MAX / 2) {
        let mut s = Signer::new(key(), up(), first);
        let text = s.seal_raw(&t, &raw(&p), NOW);
        let ok = Verifier::new(key(), up()).open(text.as_bytes(), NOW + skew).unwrap();
        prop_assert_eq!(ok.t, t);
        prop_assert_eq!(ok.p.get(), p.as_str());
        prop_assert_eq!(ok.s, first);
    }

    /// Changing any single byte of a sealed envelope makes it fail (as bad MAC, malformed or skew),
    /// except changes JSON ignores (whitespace we never emit) — there are none in our output.
    #[test]
    fn any_byte_change_is_rejected(p in json_payload(), pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut s = Signer::new(key(), up(), 1);
        let text = s.seal_raw("heartbeat", &raw(&p), NOW).into_bytes();
        let mut bad = text.clone();
        let i = pos.index(bad.len());
        bad[i] ^= xor;
        let result = Verifier::new(key(), up()).open(&bad, NOW);
        prop_assert!(result.is_err(), "accepted after changing byte {} of {}", i, String::from_utf8_lossy(&text));
    }

    #[test]
    fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Verifier::new(key(), up()).open(&bytes, NOW);
    }
}
