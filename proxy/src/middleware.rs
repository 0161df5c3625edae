//! Compiled middlewares: `redirectScheme`, `redirectRegex`, `basicAuth` ([`basic_auth`]),
//! `compress` ([`compress`]), `headers` (custom request and response headers, the security
//! headers, CORS),
//! `stripPrefix`, `stripPrefixRegex`,
//! `addPrefix`, `replacePath`, `replacePathRegex`, `ipAllowList` and `chain`. Everything is
//! validated and compiled (regexps, header names and values, ranges) when the configuration is,
//! never per request; [`apply`] runs them on the request path.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, StatusCode};
use regex::Regex;

use crate::config::dynamic;
use crate::config::rule::{go_regex, Cidr};

mod apply;
pub mod basic_auth;
pub mod compress;
pub mod rate_limit;
pub(crate) use apply::{compression, on_request, on_response, redirect};

/// Chains nest at most this deep (and never loop).
const MAX_CHAIN_DEPTH: usize = 8;

/// A middleware definition that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MiddlewareError {
    #[error("not defined")]
    NotDefined,
    #[error("a middleware is exactly one kind (redirectScheme, headers, stripPrefix, …); this one has {0}")]
    Kinds(usize),
    #[error("`{0}` is not supported by wh-proxy")]
    Unsupported(String),
    #[error("redirectScheme.scheme must be http or https, not `{0}`")]
    Scheme(String),
    #[error("invalid header name `{0}`")]
    HeaderName(String),
    #[error("invalid value for header `{0}`")]
    HeaderValue(String),
    #[error("{0} must start with `/`")]
    Prefix(&'static str),
    #[error("{field}: {why}")]
    Regex { field: &'static str, why: String },
    #[error("ipAllowList: `{0}` is not an IP address or CIDR")]
    Range(String),
    #[error("ipAllowList.sourceRange is empty")]
    NoRange,
    #[error("ipAllowList.rejectStatusCode {0} is not an HTTP status")]
    Status(u16),
    #[error("chain: `{0}` refers back to itself or nests deeper than 8")]
    ChainDepth(String),
    #[error(transparent)]
    BasicAuth(#[from] basic_auth::BasicAuthError),
    #[error("{0}")]
    Compress(String),
    #[error("rateLimit.{field}: {why}")]
    RateLimit { field: &'static str, why: String },
    #[error("chain: `{name}`: {source}")]
    Chained { name: String, source: Box<MiddlewareError> },
}

/// The CORS settings of a `headers` middleware.
#[derive(Debug)]
pub struct Cors {
    /// `*` allows any origin.
    pub origins: Box<[Box<str>]>,
    pub origin_regexes: Box<[Regex]>,
    pub methods: Option<HeaderValue>,
    pub headers: Option<HeaderValue>,
    pub expose: Option<HeaderValue>,
    pub credentials: bool,
    pub max_age: Option<HeaderValue>,
    pub vary: bool,
}

/// One compiled middleware.
#[derive(Debug)]
pub enum Middleware {
    RedirectScheme {
        scheme: Box<str>,
        port: Option<Box<str>>,
        permanent: bool,
    },
    /// The request URL (`scheme://host/path?query`) matched and replaced.
    RedirectRegex {
        regex: Regex,
        replacement: Box<str>,
        permanent: bool,
    },
    /// `None` as a value removes the header (Traefik: an empty value deletes it).
    Headers {
        request: Box<[(HeaderName, Option<HeaderValue>)]>,
        response: Box<[(HeaderName, Option<HeaderValue>)]>,
        /// Security headers set on every response (`frameDeny`, `contentTypeNosniff`, …).
        security: Box<[(HeaderName, HeaderValue)]>,
        /// `Strict-Transport-Security`: on HTTPS responses, and on all if forced.
        sts: Option<(HeaderValue, bool)>,
        cors: Option<Box<Cors>>,
    },
    StripPrefix {
        prefixes: Box<[Box<str>]>,
    },
    StripPrefixRegex {
        regexes: Box<[Regex]>,
    },
    AddPrefix {
        prefix: Box<str>,
    },
    ReplacePath {
        path: Box<str>,
    },
    ReplacePathRegex {
        regex: Regex,
        replacement: Box<str>,
    },
    IpAllowList {
        ranges: Box<[Cidr]>,
        /// 0: the connection's address; n: the n-th address from the right of
        /// `X-Forwarded-For` as the client sent it.
        depth: usize,
        excluded: Box<[Cidr]>,
        reject: StatusCode,
    },
    Chain {
        middlewares: Box<[Arc<Middleware>]>,
    },
    BasicAuth(Box<basic_auth::BasicAuth>),
    Compress(compress::Compress),
    /// With the ipStrategy of its source criterion (depth, excluded), when by client address.
    RateLimit {
        limit: Box<rate_limit::RateLimit>,
        depth: usize,
        excluded: Box<[Cidr]>,
    },
    /// `rateLimit` with `average: 0`: no limit.
    Nothing,
}

fn regex(field: &'static str, pattern: &str) -> Result<Regex, MiddlewareError> {
    let source = go_regex(pattern).map_err(|why| MiddlewareError::Regex { field, why })?;
    regex::RegexBuilder::new(&source)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| MiddlewareError::Regex { field, why: e.to_string() })
}

fn value(name: &str, v: &str) -> Result<HeaderValue, MiddlewareError> {
    HeaderValue::from_str(v).map_err(|_| MiddlewareError::HeaderValue(name.to_owned()))
}

fn list(name: &str, items: &[String]) -> Result<Option<HeaderValue>, MiddlewareError> {
    if items.is_empty() {
        Ok(None)
    } else {
        value(name, &items.join(",")).map(Some)
    }
}

fn ranges(items: &[String]) -> Result<Box<[Cidr]>, MiddlewareError> {
    items
        .iter()
        .map(|r| Cidr::parse(r.trim()).ok_or_else(|| MiddlewareError::Range(r.clone())))
        .collect()
}

impl Middleware {
    /// Compiles a middleware definition without chains (tests and simple callers).
    pub fn compile(def: &dynamic::Middleware) -> Result<Middleware, MiddlewareError> {
        Middleware::compile_in(def, &Default::default(), &mut Vec::new())
    }

    /// Compiles `def`, resolving a chain's members among `all`; `path` is the chain being
    /// resolved (to refuse loops).
    pub fn compile_in(
        def: &dynamic::Middleware,
        all: &std::collections::BTreeMap<String, dynamic::Middleware>,
        path: &mut Vec<String>,
    ) -> Result<Middleware, MiddlewareError> {
        let kinds = [
            def.redirect_scheme.is_some(),
            def.redirect_regex.is_some(),
            def.headers.is_some(),
            def.strip_prefix.is_some(),
            def.strip_prefix_regex.is_some(),
            def.add_prefix.is_some(),
            def.replace_path.is_some(),
            def.replace_path_regex.is_some(),
            def.ip_allow_list.is_some(),
            def.chain.is_some(),
            def.basic_auth.is_some(),
            def.compress.is_some(),
            def.rate_limit.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if let Some(other) = def.other.keys().next() {
            return Err(MiddlewareError::Unsupported(other.clone()));
        }
        if kinds != 1 {
            return Err(MiddlewareError::Kinds(kinds));
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
        if let Some(r) = &def.redirect_regex {
            return Ok(Middleware::RedirectRegex {
                regex: regex("redirectRegex.regex", &r.regex)?,
                replacement: r.replacement.as_str().into(),
                permanent: r.permanent.unwrap_or(false),
            });
        }
        if let Some(h) = &def.headers {
            return headers(h);
        }
        if let Some(r) = &def.rate_limit {
            return rate_limit(r);
        }
        if let Some(c) = &def.compress {
            return compress::Compress::new(c)
                .map(Middleware::Compress)
                .map_err(|e| MiddlewareError::Compress(e.to_string()));
        }
        if let Some(b) = &def.basic_auth {
            return Ok(Middleware::BasicAuth(Box::new(basic_auth::BasicAuth::new(
                &b.users,
                b.users_file.as_deref(),
                b.realm.as_deref(),
                b.remove_header,
                b.header_field.as_deref(),
            )?)));
        }
        if let Some(sp) = &def.strip_prefix {
            if sp.prefixes.iter().any(|p| !p.starts_with('/')) {
                return Err(MiddlewareError::Prefix("stripPrefix.prefixes"));
            }
            return Ok(Middleware::StripPrefix {
                prefixes: sp.prefixes.iter().map(|p| p.as_str().into()).collect(),
            });
        }
        if let Some(sp) = &def.strip_prefix_regex {
            let regexes = sp
                .regex
                .iter()
                .map(|r| regex("stripPrefixRegex.regex", r))
                .collect::<Result<_, _>>()?;
            return Ok(Middleware::StripPrefixRegex { regexes });
        }
        if let Some(a) = &def.add_prefix {
            if !a.prefix.starts_with('/') {
                return Err(MiddlewareError::Prefix("addPrefix.prefix"));
            }
            return Ok(Middleware::AddPrefix { prefix: a.prefix.as_str().into() });
        }
        if let Some(r) = &def.replace_path {
            if !r.path.starts_with('/') {
                return Err(MiddlewareError::Prefix("replacePath.path"));
            }
            return Ok(Middleware::ReplacePath { path: r.path.as_str().into() });
        }
        if let Some(r) = &def.replace_path_regex {
            return Ok(Middleware::ReplacePathRegex {
                regex: regex("replacePathRegex.regex", &r.regex)?,
                replacement: r.replacement.as_str().into(),
            });
        }
        if let Some(ip) = &def.ip_allow_list {
            if ip.source_range.is_empty() {
                return Err(MiddlewareError::NoRange);
            }
            let strategy = ip.ip_strategy.clone().unwrap_or_default();
            let reject = match ip.reject_status_code {
                None => StatusCode::FORBIDDEN,
                Some(code) => StatusCode::from_u16(code)
                    .ok()
                    .filter(|s| s.as_u16() >= 100)
                    .ok_or(MiddlewareError::Status(code))?,
            };
            return Ok(Middleware::IpAllowList {
                ranges: ranges(&ip.source_range)?,
                depth: strategy.depth.unwrap_or(0),
                excluded: ranges(&strategy.excluded_ips)?,
                reject,
            });
        }
        let chain = def.chain.as_ref().expect("one kind is set");
        let mut members = Vec::with_capacity(chain.middlewares.len());
        for reference in &chain.middlewares {
            let name = dynamic::local_name(reference).to_owned();
            if path.contains(&name) || path.len() >= MAX_CHAIN_DEPTH {
                return Err(MiddlewareError::ChainDepth(name));
            }
            let member = all.get(&name).ok_or_else(|| MiddlewareError::Chained {
                name: name.clone(),
                source: Box::new(MiddlewareError::NotDefined),
            })?;
            path.push(name.clone());
            let compiled = Middleware::compile_in(member, all, path)
                .map_err(|e| MiddlewareError::Chained { name: name.clone(), source: Box::new(e) });
            path.pop();
            members.push(Arc::new(compiled?));
        }
        Ok(Middleware::Chain { middlewares: members.into_boxed_slice() })
    }
}

fn rate_limit(r: &dynamic::RateLimit) -> Result<Middleware, MiddlewareError> {
    let bad =
        |field: &'static str, why: &str| MiddlewareError::RateLimit { field, why: why.into() };
    let period = match &r.period {
        None => std::time::Duration::from_secs(1),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .filter(|s| *s > 0)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| bad("period", "a positive number of seconds"))?,
        Some(serde_json::Value::String(s)) => crate::config::duration::parse(s)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| bad("period", "a duration such as 1s or 1m"))?,
        Some(_) => return Err(bad("period", "a duration such as 1s or 1m")),
    };
    let criterion = r.source_criterion.clone().unwrap_or_default();
    let source = match (&criterion.request_header_name, criterion.request_host) {
        (Some(h), _) if !h.is_empty() => rate_limit::Source::Header(
            HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                .map_err(|_| bad("sourceCriterion.requestHeaderName", "not a header name"))?,
        ),
        (_, true) => rate_limit::Source::Host,
        _ => rate_limit::Source::ClientIp,
    };
    let strategy = criterion.ip_strategy.unwrap_or_default();
    let burst = r.burst.unwrap_or(1);
    Ok(match rate_limit::RateLimit::new(r.average.unwrap_or(0), period, burst, source) {
        None => Middleware::Nothing,
        Some(limit) => Middleware::RateLimit {
            limit: Box::new(limit),
            depth: strategy.depth.unwrap_or(0),
            excluded: ranges(&strategy.excluded_ips)?,
        },
    })
}

fn headers(h: &dynamic::Headers) -> Result<Middleware, MiddlewareError> {
    let conv = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| MiddlewareError::HeaderName(k.clone()))?;
                let v = if v.is_empty() { None } else { Some(value(k, v)?) };
                Ok((name, v))
            })
            .collect::<Result<Box<[_]>, MiddlewareError>>()
    };
    let mut security = Vec::new();
    let mut set = |name: &'static str, v: &str| -> Result<(), MiddlewareError> {
        security.push((HeaderName::from_static(name), value(name, v)?));
        Ok(())
    };
    if !h.custom_frame_options_value.is_empty() {
        set("x-frame-options", &h.custom_frame_options_value)?;
    } else if h.frame_deny {
        set("x-frame-options", "DENY")?;
    }
    if h.content_type_nosniff {
        set("x-content-type-options", "nosniff")?;
    }
    if !h.custom_browser_xss_value.is_empty() {
        set("x-xss-protection", &h.custom_browser_xss_value)?;
    } else if h.browser_xss_filter {
        set("x-xss-protection", "1; mode=block")?;
    }
    if !h.referrer_policy.is_empty() {
        set("referrer-policy", &h.referrer_policy)?;
    }
    if !h.permissions_policy.is_empty() {
        set("permissions-policy", &h.permissions_policy)?;
    }
    if !h.content_security_policy.is_empty() {
        set("content-security-policy", &h.content_security_policy)?;
    }
    let sts = match h.sts_seconds {
        Some(secs) if secs > 0 => {
            let mut v = format!("max-age={secs}");
            if h.sts_include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if h.sts_preload {
                v.push_str("; preload");
            }
            Some((value("strict-transport-security", &v)?, h.force_sts_header))
        }
        _ => None,
    };
    let wants_cors = !h.access_control_allow_origin_list.is_empty()
        || !h.access_control_allow_origin_list_regex.is_empty();
    let cors = if wants_cors {
        Some(Box::new(Cors {
            origins: h.access_control_allow_origin_list.iter().map(|o| o.as_str().into()).collect(),
            origin_regexes: h
                .access_control_allow_origin_list_regex
                .iter()
                .map(|r| regex("accessControlAllowOriginListRegex", r))
                .collect::<Result<_, _>>()?,
            methods: list("access-control-allow-methods", &h.access_control_allow_methods)?,
            headers: list("access-control-allow-headers", &h.access_control_allow_headers)?,
            expose: list("access-control-expose-headers", &h.access_control_expose_headers)?,
            credentials: h.access_control_allow_credentials,
            max_age: h
                .access_control_max_age
                .map(|a| value("access-control-max-age", &a.to_string()))
                .transpose()?,
            vary: h.add_vary_header,
        }))
    } else {
        None
    };
    Ok(Middleware::Headers {
        request: conv(&h.custom_request_headers)?,
        response: conv(&h.custom_response_headers)?,
        security: security.into_boxed_slice(),
        sts,
        cors,
    })
}
