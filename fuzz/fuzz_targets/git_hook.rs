//! Inbound git webhook deliveries on arbitrary bytes: every provider's signature check and
//! payload reader. Must never panic; a push or pull request it reads names valid refs and a
//! hex commit.
#![no_main]

use wh_control_plane::githooks::payload::{parse, Delivery};
use wh_control_plane::githooks::{verify, Provider};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (header, body) = data.split_at(data.len().min(80));
    for provider in Provider::ALL {
        let _ = verify::verify(provider, b"secret", Some(header), body);
        for event in [
            "push", "ping", "Push Hook", "Tag Push Hook", "repo:push", "other", "pull_request",
            "Merge Request Hook", "pullrequest:created", "pullrequest:fulfilled",
        ] {
            match parse(provider, event, body) {
                Ok(Delivery::Pushes(pushes)) => {
                    for p in pushes {
                        assert!(p.commit.bytes().all(|b| b.is_ascii_hexdigit()), "{}", p.commit);
                        assert!(!p.name.is_empty() && !p.name.starts_with('-'), "{}", p.name);
                    }
                }
                Ok(Delivery::PullRequest(pr)) => {
                    assert!(pr.number > 0 && pr.commit.bytes().all(|b| b.is_ascii_hexdigit()));
                    assert!(!pr.head_branch.starts_with('-') && !pr.base_branch.starts_with('-'));
                }
                _ => {}
            }
        }
    }
});
