//! A line reader for output the worker does not control (builds, apps, Podman's events): every
//! line is at most `max` bytes, whatever arrives. `tokio::io::Lines` grows its buffer until a
//! newline comes, so an app printing without newlines would grow the worker without bound.
//!
//! A longer line is cut at `max` bytes (on a character boundary) and marked; the rest of it, up
//! to its newline, is read and dropped in chunks, never held. Bytes that are not UTF-8 become
//! U+FFFD, NUL becomes U+FFFD too (Postgres text cannot hold it), and a trailing `\r` goes.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What a cut line ends with.
pub const TRUNCATED: &str = " [line truncated]";

/// The longest line the worker forwards by default (the control plane keeps the same bound).
pub const MAX_LINE: usize = 16 * 1024;

/// Bounded lines of `reader`.
#[derive(Debug)]
pub struct BoundedLines<R> {
    reader: R,
    max: usize,
    buf: Vec<u8>,
    /// The line being read has already been cut and handed out; drop up to its newline.
    discarding: bool,
}

impl<R: AsyncBufRead + Unpin> BoundedLines<R> {
    pub fn new(reader: R, max: usize) -> Self {
        BoundedLines { reader, max: max.max(4), buf: Vec::new(), discarding: false }
    }

    /// The next line, without its newline; `None` at the end of input.
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                self.discarding = false;
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.take(false)));
            }
            let (end, newline) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if !self.discarding {
                let room = self.max - self.buf.len();
                let keep = end.min(room);
                self.buf.extend_from_slice(&chunk[..keep]);
                if end > room {
                    // Over the bound: hand out what fits, drop the rest of this line.
                    self.reader.consume(if newline { end + 1 } else { end });
                    self.discarding = !newline;
                    return Ok(Some(self.take(true)));
                }
            }
            self.reader.consume(if newline { end + 1 } else { end });
            if newline {
                if self.discarding {
                    self.discarding = false;
                    continue;
                }
                return Ok(Some(self.take(false)));
            }
        }
    }

    fn take(&mut self, cut: bool) -> String {
        let mut bytes = std::mem::take(&mut self.buf);
        if !cut && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let mut line = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                let bytes = e.into_bytes();
                // A cut inside a multi-byte character is not an encoding error of the app's.
                let valid = if cut { trim_partial_char(&bytes) } else { &bytes[..] };
                String::from_utf8_lossy(valid).into_owned()
            }
        };
        if line.contains('\0') {
            line = line.replace('\0', "\u{FFFD}");
        }
        if cut {
            line.push_str(TRUNCATED);
        }
        line
    }
}

/// `bytes` without an incomplete UTF-8 sequence at its end.
fn trim_partial_char(bytes: &[u8]) -> &[u8] {
    let start = bytes.len().saturating_sub(3);
    for i in (start..bytes.len()).rev() {
        let b = bytes[i];
        if b & 0xC0 != 0x80 {
            let need = match b {
                0x00..=0x7F => 1,
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            return if bytes.len() - i < need { &bytes[..i] } else { bytes };
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    async fn all(input: &[u8], max: usize, chunk: usize) -> Vec<String> {
        let reader = tokio::io::BufReader::with_capacity(chunk.max(1), input);
        let mut lines = BoundedLines::new(reader, max);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_and_long_ones_cut_on_a_character_boundary() {
        assert_eq!(all(b"a\nb\r\n\nc", 16, 3).await, ["a", "b", "", "c"]);
        let long = format!("a{}\nnext\n", "é".repeat(9000));
        let got = all(long.as_bytes(), 16 * 1024, 8192).await;
        assert_eq!(got.len(), 2);
        assert!(got[0].ends_with(TRUNCATED));
        assert!(got[0].len() <= 16 * 1024 + TRUNCATED.len());
        assert!(!got[0].contains('\u{FFFD}'), "cut inside a character");
        assert_eq!(got[1], "next");
        assert_eq!(all(b"x\0y\xff\n", 16, 4).await, ["x\u{FFFD}y\u{FFFD}"]);
    }

    #[tokio::test]
    async fn output_without_newlines_never_grows_the_buffer() {
        // 64 MiB of one line through a reader that never holds more than its 8 KiB buffer.
        struct Endless(u64);
        impl tokio::io::AsyncRead for Endless {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let n = (buf.remaining() as u64).min(self.0) as usize;
                buf.put_slice(&vec![b'x'; n]);
                self.0 -= n as u64;
                std::task::Poll::Ready(Ok(()))
            }
        }
        let mut lines = BoundedLines::new(tokio::io::BufReader::new(Endless(64 << 20)), 1024);
        let first = lines.next_line().await.unwrap().unwrap();
        assert_eq!(first.len(), 1024 + TRUNCATED.len());
        assert!(lines.buf.capacity() <= 1024 * 2);
        assert_eq!(lines.next_line().await.unwrap(), None);
    }

    proptest! {
        #[test]
        fn every_line_is_bounded_and_short_lines_survive(
            input in proptest::collection::vec(any::<u8>(), 0..2000),
            max in 4usize..64,
            chunk in 1usize..50,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(all(&input, max, chunk));
            for l in &got {
                // U+FFFD is 3 bytes for one bad byte: bound by characters' worth.
                prop_assert!(l.len() <= max * 3 + TRUNCATED.len());
            }
            let expected: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
            let trailing = input.last() == Some(&b'\n') || input.is_empty();
            let n = expected.len() - usize::from(trailing);
            prop_assert_eq!(got.len(), n);
            for (g, e) in got.iter().zip(&expected) {
                let e = e.strip_suffix(b"\r").unwrap_or(e);
                if e.len() <= max && std::str::from_utf8(e).is_ok_and(|s| !s.contains('\0')) {
                    prop_assert_eq!(g.as_bytes(), e);
                }
            }
        }
    }
}
