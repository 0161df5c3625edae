//! The control-plane/worker envelope decoder on arbitrary bytes: parsing, checks, MAC, replay
//! window, and payload decoding for every message type. Must never panic.
#![no_main]

use serde_json::value::RawValue;
use wh_wsproto::{Key, Message, Verifier};


libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut verifier = Verifier::new(Key::from_secret("fuzz"), wh_wsproto::Binding::to_control_plane("00000000000000000000000000000000"));
    if let Ok(ok) = verifier.open(data, 1_790_000_000_000) {
        let _ = ok.message();
    }
    // The MAC stops most inputs early; decode payloads directly too.
    if let Ok(raw) = serde_json::from_slice::<Box<RawValue>>(data) {
        for t in wh_wsproto::messages::TYPE_NAMES.iter().chain(&["unknown"]) {
            let _ = Message::decode(t, &raw);
        }
    }
});
