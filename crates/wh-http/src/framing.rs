//! The HTTP/1 request stream as a framer sees it: where each request head starts and ends,
//! including pipelined heads that arrive in the same read as the one before, and which heads
//! carry both `Content-Length` and `Transfer-Encoding` (which hyper accepts silently, framing
//! the body as chunked; we answer 400).
//!
//! [`Framer`] is fed every byte a client sends, in whatever pieces the socket returns, and
//! skips bodies by their framing (a Content-Length, or chunks and trailers) to find the next
//! head. It never buffers: one small state machine, byte at a time. When the stream stops
//! making sense (an invalid length, a chunk size that overflows) it stops looking: hyper
//! refuses such a request itself and closes the connection.

/// What the framer found in the bytes fed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// Nothing new.
    None,
    /// The head with this index (0 for the connection's first) ended, with both
    /// `Content-Length` and `Transfer-Encoding`.
    Conflicting(u32),
}

const CL: &[u8] = b"content-length:";
const TE: &[u8] = b"transfer-encoding:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Blank lines a client may send before a request line.
    Leading,
    /// Inside a head.
    Head,
    /// `n` body bytes left.
    Body(u64),
    ChunkSize {
        digits: u8,
    },
    /// After a chunk size: an extension, up to the line's end.
    ChunkExt,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines; an empty line ends the message.
    Trailer,
    /// Lost track: look no further.
    Stopped,
}

/// Finds request heads and their framing in an HTTP/1 byte stream.
#[derive(Debug, Clone)]
pub struct Framer {
    state: State,
    /// Heads that ended so far.
    heads: u32,
    // The current line of a head (or trailer).
    line_len: u32,
    first_line: bool,
    cl_match: Option<u8>,
    te_match: Option<u8>,
    /// After `content-length:` on this line: the value so far.
    cl_value: Option<u64>,
    cl_seen_digit: bool,
    cl_digits_done: bool,
    // The current head.
    content_length: Option<u64>,
    chunked: bool,
    invalid: bool,
    chunk_size: u64,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            state: State::Leading,
            heads: 0,
            line_len: 0,
            first_line: true,
            cl_match: Some(0),
            te_match: Some(0),
            cl_value: None,
            cl_seen_digit: false,
            cl_digits_done: false,
            content_length: None,
            chunked: false,
            invalid: false,
            chunk_size: 0,
        }
    }
}

impl Framer {
    /// Feeds the next bytes of the stream; returns the first conflicting head that ended in
    /// them (the connection closes after answering it, so later ones do not matter).
    pub fn feed(&mut self, bytes: &[u8]) -> Finding {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Stopped => return Finding::None,
                State::Body(n) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len() - i);
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 { self.next_head() } else { State::Body(left) };
                }
                State::ChunkData(n) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len() - i);
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 { State::ChunkEnd } else { State::ChunkData(left) };
                }
                _ => {
                    let b = bytes[i];
                    i += 1;
                    if let Some(found) = self.byte(b) {
                        return found;
                    }
                }
            }
        }
        Finding::None
    }

    /// Ready for the next head (the count of heads is kept).
    fn next_head(&mut self) -> State {
        let heads = self.heads;
        *self = Framer::default();
        self.heads = heads;
        State::Leading
    }

    fn byte(&mut self, b: u8) -> Option<Finding> {
        match self.state {
            State::Leading => {
                if b != b'\r' && b != b'\n' {
                    self.state = State::Head;
                    return self.head_byte(b);
                }
            }
            State::Head => return self.head_byte(b),
            State::ChunkSize { digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let d = u64::from((b as char).to_digit(16).unwrap_or(0));
                    match self.chunk_size.checked_mul(16).and_then(|s| s.checked_add(d)) {
                        Some(s) if digits < 16 => {
                            self.chunk_size = s;
                            self.state = State::ChunkSize { digits: digits + 1 };
                        }
                        _ => self.state = State::Stopped,
                    }
                }
                b';' | b' ' | b'\t' | b'\r' if digits > 0 => self.state = State::ChunkExt,
                b'\n' if digits > 0 => self.end_chunk_size(),
                _ => self.state = State::Stopped,
            },
            State::ChunkExt => {
                if b == b'\n' {
                    self.end_chunk_size();
                }
            }
            State::ChunkEnd => match b {
                b'\r' => {}
                b'\n' => self.state = State::ChunkSize { digits: 0 },
                _ => self.state = State::Stopped,
            },
            State::Trailer => match b {
                b'\r' => {}
                b'\n' if self.line_len == 0 => self.state = self.next_head(),
                b'\n' => self.line_len = 0,
                _ => self.line_len = self.line_len.saturating_add(1),
            },
            State::Body(_) | State::ChunkData(_) | State::Stopped => {}
        }
        None
    }

    fn end_chunk_size(&mut self) {
        let size = std::mem::take(&mut self.chunk_size);
        self.state = if size == 0 {
            self.line_len = 0;
            State::Trailer
        } else {
            State::ChunkData(size)
        };
    }

    fn head_byte(&mut self, b: u8) -> Option<Finding> {
        if b == b'\n' {
            if self.line_len == 0 && !self.first_line {
                return self.end_head();
            }
            self.end_line();
            return None;
        }
        if b == b'\r' {
            return None;
        }
        self.line_len = self.line_len.saturating_add(1);
        if self.first_line {
            return None;
        }
        if let Some(v) = self.cl_value.as_mut() {
            // The value of a Content-Length line.
            match b {
                b'0'..=b'9' if !self.cl_digits_done => {
                    self.cl_seen_digit = true;
                    match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))) {
                        Some(n) => *v = n,
                        None => self.invalid = true,
                    }
                }
                b' ' | b'\t' => self.cl_digits_done = self.cl_seen_digit,
                _ => self.invalid = true,
            }
            return None;
        }
        let lower = b.to_ascii_lowercase();
        for (state, name) in [(&mut self.cl_match, CL), (&mut self.te_match, TE)] {
            if let Some(i) = *state {
                let i = usize::from(i);
                *state = (i < name.len() && name[i] == lower).then_some(i as u8 + 1);
            }
        }
        if self.cl_match == Some(CL.len() as u8) {
            self.cl_value = Some(0);
            self.cl_match = None;
        }
        if self.te_match == Some(TE.len() as u8) {
            self.chunked = true;
            self.te_match = None;
        }
        None
    }

    /// A head line (not the last, empty one) ended.
    fn end_line(&mut self) {
        if let Some(v) = self.cl_value.take() {
            if !self.cl_seen_digit {
                self.invalid = true;
            }
            match self.content_length {
                Some(prior) if prior != v => self.invalid = true,
                _ => self.content_length = Some(v),
            }
        }
        self.first_line = false;
        self.line_len = 0;
        self.cl_match = Some(0);
        self.te_match = Some(0);
        self.cl_seen_digit = false;
        self.cl_digits_done = false;
    }

    fn end_head(&mut self) -> Option<Finding> {
        let index = self.heads;
        self.heads = self.heads.saturating_add(1);
        let conflicting = self.chunked && self.content_length.is_some();
        self.state = if conflicting || self.invalid {
            State::Stopped
        } else if self.chunked {
            State::ChunkSize { digits: 0 }
        } else {
            match self.content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => self.next_head(),
            }
        };
        conflicting.then_some(Finding::Conflicting(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(chunks: &[&[u8]]) -> Vec<u32> {
        let mut f = Framer::default();
        chunks
            .iter()
            .filter_map(|c| match f.feed(c) {
                Finding::Conflicting(i) => Some(i),
                Finding::None => None,
            })
            .collect()
    }

    #[test]
    fn finds_both_framing_headers_in_any_order_and_split() {
        let both = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(scan(&[both]), [0]);
        assert_eq!(
            scan(&[b"POST / HTTP/1.1\r\ntransfer-ENCODING: chunked\r\nHost: x\r\ncontent-length: 5\r\n\r\n"]),
            [0]
        );
        assert_eq!(
            scan(&[
                b"POST / HTTP/1.1\r\nContent-Le",
                b"ngth: 5\r\nTransfer-Enc",
                b"oding: chunked\r\n",
                b"\r\n"
            ]),
            [0]
        );
    }

    #[test]
    fn ordinary_heads_pass() {
        assert!(scan(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"]).is_empty());
        assert!(scan(&[
            b"GET / HTTP/1.1\r\nX-Content-Length: 5\r\nX-Transfer-Encoding: chunked\r\n\r\n"
        ])
        .is_empty());
        assert!(scan(&[
            b"GET /content-length: HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ])
        .is_empty());
        assert!(scan(&[b"GET / HTTP/1.1\nHost: a\n\n"]).is_empty());
    }

    /// Issue 13, item 11: only the first head after an idle pause was scanned.
    #[test]
    fn pipelined_heads_are_each_scanned_past_any_body() {
        let stream = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world\
            POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
            POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(scan(&[stream]), [3]);
        // The same, one byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(scan(&bytes), [3]);
        // A body that looks like a conflicting head is a body.
        let body = b"POST / HTTP/1.1\r\nContent-Length: 59\r\n\r\n\
            GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\n";
        assert!(scan(&[body]).is_empty());
    }

    #[test]
    fn an_invalid_length_stops_the_scan() {
        let stream = b"POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n\
            POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(scan(&[stream]).is_empty());
    }

    proptest! {
        #[test]
        fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..8)) {
            let mut f = Framer::default();
            for c in &chunks {
                let _ = f.feed(c);
            }
        }

        #[test]
        fn splitting_the_stream_never_changes_the_finding(split in 0usize..200) {
            let stream: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiPOST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n";
            let at = split.min(stream.len());
            prop_assert_eq!(scan(&[&stream[..at], &stream[at..]]), vec![2]);
        }
    }
}
