//! Streaming compression of a response body (for the `compress` middleware): data in,
//! whatever compressed output is ready out, the rest when the body ends.

use std::io::Write as _;

use bytes::Bytes;
use http::HeaderValue;

/// A content coding wh-proxy can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Zstd,
    Brotli,
    Gzip,
}

impl Encoding {
    pub fn parse(token: &str) -> Option<Encoding> {
        match token.trim().to_ascii_lowercase().as_str() {
            "zstd" => Some(Encoding::Zstd),
            "br" => Some(Encoding::Brotli),
            "gzip" => Some(Encoding::Gzip),
            _ => None,
        }
    }

    pub fn token(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Encoding::Zstd => "zstd",
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        })
    }
}

/// A streaming compressor: data in, whatever compressed output is ready out.
pub enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encoder")
    }
}

impl Encoder {
    pub fn new(e: Encoding) -> std::io::Result<Encoder> {
        Ok(match e {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(5),
            )),
            // Quality 5 and a 4 MiB window: fast enough to stream, most of brotli's gain.
            Encoding::Brotli => {
                Encoder::Brotli(Box::new(brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22)))
            }
            Encoding::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        })
    }

    /// Compresses `data`; the output produced so far.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                std::mem::take(e.get_mut())
            }
            Encoder::Brotli(e) => {
                e.write_all(data)?;
                std::mem::take(e.get_mut())
            }
            Encoder::Zstd(e) => {
                e.write_all(data)?;
                std::mem::take(e.get_mut())
            }
        };
        Ok(Bytes::from(out))
    }

    /// Ends the stream; the rest of the output.
    pub fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Brotli(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish()?,
        };
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn every_encoder_round_trips() {
        let text = "WiseHosting ".repeat(5000);
        for e in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd] {
            let mut enc = Encoder::new(e).unwrap();
            let mut out = Vec::new();
            for chunk in text.as_bytes().chunks(7000) {
                out.extend_from_slice(&enc.write(chunk).unwrap());
            }
            out.extend_from_slice(&enc.finish().unwrap());
            assert!(out.len() < text.len() / 10, "{e:?}: {}", out.len());
            let mut back = Vec::new();
            match e {
                Encoding::Gzip => {
                    flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).map(drop).unwrap()
                }
                Encoding::Brotli => brotli::Decompressor::new(&out[..], 4096)
                    .read_to_end(&mut back)
                    .map(drop)
                    .unwrap(),
                Encoding::Zstd => back = zstd::stream::decode_all(&out[..]).unwrap(),
            }
            assert_eq!(back, text.as_bytes(), "{e:?}");
        }
    }
}
