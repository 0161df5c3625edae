//! `compress`: a response body compressed with zstd, brotli or gzip, whichever the client's
//! `Accept-Encoding` accepts first in the middleware's order (Traefik's default: zstd, br,
//! gzip), streamed chunk by chunk. Never an already encoded response, a range (206 or
//! `Content-Range`), a HEAD, a bodiless status, a body known to be smaller than
//! `minResponseBodyBytes` (1024), or an excluded (or not included) content type.

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

pub use crate::body::encoder::Encoding;
use crate::config::dynamic;

/// Why a `compress` definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressError {
    #[error("compress.encodings: `{0}` is not zstd, br or gzip")]
    Encoding(String),
    #[error("compress: excludedContentTypes and includedContentTypes exclude each other")]
    Both,
}

/// A compiled `compress`.
#[derive(Debug)]
pub struct Compress {
    min_bytes: u64,
    /// Lower-case media types (no parameters).
    excluded: Box<[Box<str>]>,
    included: Box<[Box<str>]>,
    encodings: Box<[Encoding]>,
}

fn media_type(v: &str) -> String {
    v.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

impl Compress {
    pub fn new(c: &dynamic::Compress) -> Result<Compress, CompressError> {
        if !c.excluded_content_types.is_empty() && !c.included_content_types.is_empty() {
            return Err(CompressError::Both);
        }
        let encodings = if c.encodings.is_empty() {
            vec![Encoding::Zstd, Encoding::Brotli, Encoding::Gzip]
        } else {
            c.encodings
                .iter()
                .map(|e| Encoding::parse(e).ok_or_else(|| CompressError::Encoding(e.clone())))
                .collect::<Result<_, _>>()?
        };
        Ok(Compress {
            min_bytes: c.min_response_body_bytes.unwrap_or(1024),
            excluded: c.excluded_content_types.iter().map(|t| media_type(t).into()).collect(),
            included: c.included_content_types.iter().map(|t| media_type(t).into()).collect(),
            encodings: encodings.into_boxed_slice(),
        })
    }

    /// The coding for a response to a request that accepts `accept`, if it is to be
    /// compressed.
    pub fn choose(
        &self,
        accept: Option<&HeaderValue>,
        method: &Method,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Encoding> {
        if *method == Method::HEAD
            || status == StatusCode::PARTIAL_CONTENT
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status.is_informational()
            || headers.contains_key(header::CONTENT_ENCODING)
            || headers.contains_key(header::CONTENT_RANGE)
        {
            return None;
        }
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if length.is_some_and(|n| n < self.min_bytes) {
            return None;
        }
        let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(media_type);
        if let Some(kind) = &kind {
            if self.excluded.iter().any(|e| **e == **kind) {
                return None;
            }
        }
        if !self.included.is_empty()
            && !kind.is_some_and(|k| self.included.iter().any(|i| **i == *k))
        {
            return None;
        }
        negotiate(accept?.to_str().ok()?, &self.encodings)
    }
}

/// The first of `ours` the client accepts with the highest q-value (`*` stands for any).
fn negotiate(accept: &str, ours: &[Encoding]) -> Option<Encoding> {
    let mut best: Option<(Encoding, f32, usize)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let token = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        let candidates: Vec<Encoding> = if token == "*" {
            ours.to_vec()
        } else {
            Encoding::parse(&token).filter(|e| ours.contains(e)).into_iter().collect()
        };
        for e in candidates {
            let rank = ours.iter().position(|o| *o == e).unwrap_or(usize::MAX);
            let better = match best {
                None => true,
                Some((_, bq, br)) => q > bq || (q == bq && rank < br),
            };
            if better {
                best = Some((e, q, rank));
            }
        }
    }
    best.map(|(e, _, _)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values_then_our_order() {
        let ours = [Encoding::Zstd, Encoding::Brotli, Encoding::Gzip];
        assert_eq!(negotiate("gzip, deflate, br", &ours), Some(Encoding::Brotli));
        assert_eq!(negotiate("gzip;q=1, br;q=0.5", &ours), Some(Encoding::Gzip));
        assert_eq!(negotiate("br;q=0, gzip", &ours), Some(Encoding::Gzip));
        assert_eq!(negotiate("*", &ours), Some(Encoding::Zstd));
        assert_eq!(negotiate("identity", &ours), None);
        assert_eq!(negotiate("zstd", &[Encoding::Gzip]), None);
    }
}
