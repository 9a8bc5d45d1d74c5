//! `/docs`: a human-readable rendering of `/openapi.json` that works offline. The page, its script
//! and its stylesheet are compiled into the binary; the script fetches the spec from the same
//! origin and renders it with plain DOM calls (no CDN, no framework).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

pub const SCRIPT_PATH: &str = "/docs/docs.js";
pub const STYLE_PATH: &str = "/docs/docs.css";

const PAGE: &str = include_str!("../assets/docs.html");
const SCRIPT: &str = include_str!("../assets/docs.js");
const STYLE: &str = include_str!("../assets/docs.css");

/// The page allows only its own script, style and the spec fetch.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `/docs`, `/docs/` or one of its assets.
pub fn asset(path: &str) -> Response {
    let (content_type, body) = match path {
        SCRIPT_PATH => ("text/javascript; charset=utf-8", SCRIPT),
        STYLE_PATH => ("text/css; charset=utf-8", STYLE),
        _ => ("text/html; charset=utf-8", PAGE),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
