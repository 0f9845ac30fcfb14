//! Closed to other sites by default.
//!
//! - `/ws` accepts a browser only from the server's own origin (the `Origin` whose
//!   host and port are the request's `Host`) or one listed in
//!   `security.allowed_origins`: without this, any page anyone on the network opens
//!   could read every live number (cross-site WebSocket hijacking). A request with no
//!   `Origin` is not a browser's and passes: the same-origin policy protects browsers'
//!   users, not the server, and tools (the load client, curl) send none.
//! - Every response carries a Content-Security-Policy under which the dashboard runs
//!   (wasm needs `'wasm-unsafe-eval'`; the one inline module script Trunk writes into
//!   `index.html` is allowed by its SHA-256, read from the built file at start, so no
//!   `'unsafe-inline'` for scripts), `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: no-referrer` (photo links lead off-site) and the configured
//!   `frame-ancestors`.
//! - Caching: Trunk's hashed assets never change under their name, so they are
//!   `immutable` for a year; HTML (`index.html` and the client-side routes that fall
//!   back to it) is `no-store`, so a wall screen picks up a new build on reload.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::config::SecurityConfig;

/// The headers every response gets, built once at start.
#[derive(Clone)]
pub struct Headers {
    csp: HeaderValue,
    frame_options: Option<HeaderValue>,
    immutable: HeaderValue,
}

impl Headers {
    pub fn new(cfg: &SecurityConfig, static_dir: &Path) -> Headers {
        let index = std::fs::read_to_string(static_dir.join("index.html")).unwrap_or_default();
        let csp = content_security_policy(&inline_script_hashes(&index), &cfg.frame_ancestors);
        let frame_options = match cfg.frame_ancestors.trim() {
            "'none'" => Some(HeaderValue::from_static("DENY")),
            "'self'" => Some(HeaderValue::from_static("SAMEORIGIN")),
            // Anything else is a list X-Frame-Options cannot say; CSP alone governs.
            _ => None,
        };
        Headers {
            csp: HeaderValue::from_str(&csp).unwrap_or_else(|_| {
                tracing::warn!(
                    frame_ancestors = cfg.frame_ancestors,
                    "frame_ancestors is not a valid header value; using 'none'"
                );
                HeaderValue::from_str(&content_security_policy(
                    &inline_script_hashes(&index),
                    "'none'",
                ))
                .expect("a policy of ASCII sources is a valid header")
            }),
            frame_options,
            immutable: HeaderValue::from_str(&format!(
                "public, max-age={}, immutable",
                cfg.asset_max_age_secs
            ))
            .expect("digits are a valid header"),
        }
    }
}

/// The policy the dashboard runs under. Images may come from any http(s) URL: a
/// photo's `photo_link` is shown as an image when it is one.
pub fn content_security_policy(script_hashes: &[String], frame_ancestors: &str) -> String {
    let mut script = String::from("'self' 'wasm-unsafe-eval'");
    for h in script_hashes {
        script.push_str(&format!(" 'sha256-{h}'"));
    }
    format!(
        "default-src 'self'; script-src {script}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: https: http:; connect-src 'self'; font-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors {frame_ancestors}"
    )
}

/// Base64 SHA-256 of every inline `<script>` body in `html` (those without `src`).
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let tag = &after[..tag_end];
        let body_and_more = &after[tag_end + 1..];
        let Some(close) = body_and_more.find("</script>") else {
            break;
        };
        if !tag.contains(" src=") {
            let body = &body_and_more[..close];
            out.push(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body)));
        }
        rest = &body_and_more[close..];
    }
    out
}

/// Adds the security and cache headers to every response.
pub async fn headers(State(h): State<Arc<Headers>>, req: Request, next: Next) -> Response {
    let hashed = is_hashed_asset(req.uri().path());
    let mut res = next.run(req).await;
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let ok = res.status().is_success();
    let out = res.headers_mut();
    out.insert(header::CONTENT_SECURITY_POLICY, h.csp.clone());
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(v) = &h.frame_options {
        out.insert(header::X_FRAME_OPTIONS, v.clone());
    }
    if is_html {
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else if hashed && ok {
        out.insert(header::CACHE_CONTROL, h.immutable.clone());
    }
    res
}

/// Whether the last path segment carries Trunk's content hash: `-` then 16 lower-case
/// hex digits, then `.` or `_` (`app-0123456789abcdef_bg.wasm`, `style-….css`).
pub fn is_hashed_asset(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    name.match_indices('-').any(|(i, _)| {
        let tail = &name.as_bytes()[i + 1..];
        tail.len() > 16
            && tail[..16]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            && matches!(tail[16], b'.' | b'_')
    })
}

/// Whether a WebSocket upgrade may proceed: no `Origin` (not a browser), the
/// server's own origin, or a configured one.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // "null" and other opaque origins
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let strip = |s: &str| -> String {
        let s = s.to_ascii_lowercase();
        s.strip_suffix(default_port)
            .map(str::to_string)
            .unwrap_or(s)
    };
    strip(authority) == strip(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_own_origin_or_a_listed_one_may_open_the_socket() {
        let none: &[String] = &[];
        assert!(origin_allowed(
            &req(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"),
            none
        ));
        assert!(origin_allowed(
            &req(Some("https://Wall.Example"), "wall.example:443"),
            none
        ));
        assert!(!origin_allowed(
            &req(Some("http://evil.example"), "127.0.0.1:8080"),
            none
        ));
        assert!(!origin_allowed(
            &req(Some("http://127.0.0.1:9999"), "127.0.0.1:8080"),
            none
        ));
        assert!(!origin_allowed(&req(Some("null"), "127.0.0.1:8080"), none));
        assert!(origin_allowed(&req(None, "127.0.0.1:8080"), none));
        let listed = ["https://intranet.example/".to_string()];
        assert!(origin_allowed(
            &req(Some("https://intranet.example"), "127.0.0.1:8080"),
            &listed
        ));
    }

    #[test]
    fn trunk_hashed_names_are_recognised_and_others_are_not() {
        assert!(is_hashed_asset(
            "/instabrand-frontend-0123456789abcdef_bg.wasm"
        ));
        assert!(is_hashed_asset("/style-fedcba9876543210.css"));
        assert!(!is_hashed_asset("/land-110m.json"));
        assert!(!is_hashed_asset("/index.html"));
        assert!(!is_hashed_asset("/brands/some-brand-name"));
    }

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_are_not() {
        let html = r#"<script type="module">init()</script><script src="/a.js"></script>"#;
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 1);
        // printf 'init()' | openssl dgst -sha256 -binary | base64
        assert_eq!(hashes[0], "w4ujnOpjBoH2vcasx+reJRUwYivG8Q3afx/XevGJod8=");
        let csp = content_security_policy(&hashes, "'none'");
        assert!(csp.contains(&format!("'sha256-{}'", hashes[0])));
        assert!(csp.contains("'wasm-unsafe-eval'"));
        assert!(csp.ends_with("frame-ancestors 'none'"));
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
    }
}
