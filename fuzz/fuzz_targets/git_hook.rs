//! Inbound git webhook deliveries on arbitrary bytes: every provider's signature check and
//! payload reader. Must never panic; a push it reads names a valid ref and a hex commit.
#![no_main]

use wh_control_plane::githooks::payload::{parse, Delivery};
use wh_control_plane::githooks::{verify, Provider};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (header, body) = data.split_at(data.len().min(80));
    for provider in Provider::ALL {
        let _ = verify::verify(provider, b"secret", Some(header), body);
        for event in ["push", "ping", "Push Hook", "Tag Push Hook", "repo:push", "other"] {
            if let Ok(Delivery::Pushes(pushes)) = parse(provider, event, body) {
                for p in pushes {
                    assert!(p.commit.bytes().all(|b| b.is_ascii_hexdigit()), "{}", p.commit);
                    assert!(!p.name.is_empty() && !p.name.starts_with('-'), "{}", p.name);
                }
            }
        }
    }
});
