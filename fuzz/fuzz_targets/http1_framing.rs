//! The HTTP/1 request-stream framer (`wh_http::framing`) on arbitrary bytes: pipelined heads,
//! bodies by Content-Length and by chunks, split at every point the input chooses. It must
//! never panic, and where the stream is split must never change what it finds.
#![no_main]

use wh_http::framing::{Finding, Framer};

fn scan(chunks: &[&[u8]]) -> Option<u32> {
    let mut f = Framer::default();
    chunks.iter().find_map(|c| match f.feed(c) {
        Finding::Conflicting(i) => Some(i),
        Finding::None => None,
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let at = usize::from(split).min(stream.len());
    let whole = scan(&[stream]);
    assert_eq!(scan(&[&stream[..at], &stream[at..]]), whole, "a split changed the finding");
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(scan(&bytes), whole, "byte-at-a-time changed the finding");
});
