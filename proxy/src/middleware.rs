//! Compiled middlewares: `redirectScheme`, `headers` (custom request/response headers),
//! `stripPrefix`. Header names and values are validated at compile time, never per request;
//! [`apply`] runs them on the request path.

use http::{HeaderName, HeaderValue};

use crate::config::dynamic;

mod apply;
pub(crate) use apply::{on_request, on_response, redirect};

/// A middleware definition that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MiddlewareError {
    #[error("not defined")]
    NotDefined,
    #[error("a middleware needs exactly one of redirectScheme, headers, stripPrefix")]
    Kinds,
    #[error("redirectScheme.scheme must be http or https, not `{0}`")]
    Scheme(String),
    #[error("invalid header name `{0}`")]
    HeaderName(String),
    #[error("invalid value for header `{0}`")]
    HeaderValue(String),
    #[error("stripPrefix.prefixes must start with `/`")]
    Prefix,
}

/// One compiled middleware.
#[derive(Debug)]
pub enum Middleware {
    RedirectScheme {
        scheme: Box<str>,
        port: Option<Box<str>>,
        permanent: bool,
    },
    /// `None` as a value removes the header (Traefik: an empty value deletes it).
    Headers {
        request: Box<[(HeaderName, Option<HeaderValue>)]>,
        response: Box<[(HeaderName, Option<HeaderValue>)]>,
    },
    StripPrefix {
        prefixes: Box<[Box<str>]>,
    },
}

impl Middleware {
    /// Compiles a middleware definition; the error names the problem.
    pub fn compile(def: &dynamic::Middleware) -> Result<Middleware, MiddlewareError> {
        let kinds =
            [def.redirect_scheme.is_some(), def.headers.is_some(), def.strip_prefix.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(MiddlewareError::Kinds);
        }
        if let Some(r) = &def.redirect_scheme {
            if !matches!(r.scheme.as_str(), "http" | "https") {
                return Err(MiddlewareError::Scheme(r.scheme.clone()));
            }
            return Ok(Middleware::RedirectScheme {
                scheme: r.scheme.as_str().into(),
                port: r.port.as_deref().filter(|p| !p.is_empty()).map(Into::into),
                permanent: r.permanent.unwrap_or(false),
            });
        }
        if let Some(h) = &def.headers {
            let conv = |m: &std::collections::BTreeMap<String, String>| {
                m.iter()
                    .map(|(k, v)| {
                        let name = HeaderName::from_bytes(k.as_bytes())
                            .map_err(|_| MiddlewareError::HeaderName(k.clone()))?;
                        let value = if v.is_empty() {
                            None
                        } else {
                            Some(
                                HeaderValue::from_str(v)
                                    .map_err(|_| MiddlewareError::HeaderValue(k.clone()))?,
                            )
                        };
                        Ok((name, value))
                    })
                    .collect::<Result<Box<[_]>, MiddlewareError>>()
            };
            return Ok(Middleware::Headers {
                request: conv(&h.custom_request_headers)?,
                response: conv(&h.custom_response_headers)?,
            });
        }
        let prefixes = def.strip_prefix.as_ref().map(|s| s.prefixes.clone()).unwrap_or_default();
        if prefixes.iter().any(|p| !p.starts_with('/')) {
            return Err(MiddlewareError::Prefix);
        }
        Ok(Middleware::StripPrefix { prefixes: prefixes.into_iter().map(Into::into).collect() })
    }
}
