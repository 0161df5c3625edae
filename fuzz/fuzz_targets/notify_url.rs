//! The control plane's parsers of notification targets on arbitrary bytes: a Shoutrrr URL of
//! any of the 22 services (and, when it parses, the calls it would make for a message), and a
//! webhook URL's check. Must never panic.
#![no_main]

use wh_control_plane::notify::{self, message, Channel};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = wh_control_plane::webhooks::targets::check_events(&[text.to_owned()]);
    for scheme in ["", "discord://", "slack://", "generic://", "generic+https://", "smtp://", "matrix://", "teams://", "ntfy://"] {
        if let Ok(parsed) = notify::parse(&format!("{scheme}{text}")) {
            let msg = message::render("deployment.failed", &serde_json::json!({"app": text, "error": text}), "https://wh.example.com");
            if let Channel::Http(service) = &parsed.channel {
                let _ = service.calls(&msg);
            }
        }
    }
});
