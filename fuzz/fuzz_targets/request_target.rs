//! wh-proxy's request-target parsers on arbitrary bytes: `Host` validation and path cleaning.
//! Must never panic; a cleaned path is clean and cleans to itself.
#![no_main]

use wh_proxy::target::{authority, clean_path, EncodedChars};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; 256];
    if let Some(a) = authority(data, &mut buf) {
        assert!(!a.name.is_empty() && !a.name.bytes().any(|b| b.is_ascii_uppercase()));
    }
    if let Ok(path) = std::str::from_utf8(data) {
        for allowed in [EncodedChars::default(), EncodedChars::ALL] {
            if let Ok(clean) = clean_path(path, &allowed) {
                assert!(clean.starts_with('/') && !clean.contains("//"), "{clean}");
                let again = clean_path(&clean, &EncodedChars::ALL).expect("a clean path is valid");
                assert_eq!(again, clean);
            }
        }
    }
});
