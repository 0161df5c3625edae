//! Upload archives: checking any bytes as a tar.gz never panics, and whatever `walk` accepts
//! has only safe relative paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wh_wsproto::archive::{self, Entry, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_compressed: 1 << 20,
        max_unpacked: 4 << 20,
        max_entries: 1000,
        ..Limits::default()
    };
    let _ = archive::check(data, &limits);
    let _ = archive::walk(data, &limits, |e, _| {
        let path = match &e {
            Entry::Dir(p) | Entry::File { path: p, .. } | Entry::Symlink { path: p, .. } => p,
        };
        assert!(archive::safe_path(path).as_deref() == Some(path.as_path()));
        Ok(())
    });
});
