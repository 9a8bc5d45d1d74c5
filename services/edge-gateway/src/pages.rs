//! The pages behind the links in the platform's emails (`/verify-email`, `/reset-password`,
//! `/invitations/accept`, each with `?token=`): the notifications service points its links at the
//! gateway (`app.web_url`), so a person who opens a mail can finish what it asks without a web
//! app. Opening a page changes nothing, because mail scanners fetch links: the person confirms, and
//! the page's script POSTs the token to this gateway's own REST API, through every usual check.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

pub const SCRIPT_PATH: &str = "/actions/actions.js";

/// The paths the emails link to.
pub const PAGE_PATHS: [&str; 3] = ["/verify-email", "/reset-password", "/invitations/accept"];

const PAGE: &str = include_str!("../assets/actions.html");
const SCRIPT: &str = include_str!("../assets/actions.js");

/// Only the page's own script and style, and calls to this origin's API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Whether `path` is one of these pages or their script.
pub fn serves(path: &str) -> bool {
    path == SCRIPT_PATH || PAGE_PATHS.contains(&path)
}

/// A page or its script.
pub fn asset(path: &str) -> Response {
    let (content_type, body) = if path == SCRIPT_PATH {
        ("text/javascript; charset=utf-8", SCRIPT)
    } else {
        ("text/html; charset=utf-8", PAGE)
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // The token is in the page's URL: no referrer carries it elsewhere, no cache keeps it.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_the_emails_carry_has_a_page_and_nothing_else_does() {
        for path in PAGE_PATHS {
            assert!(serves(path));
            assert!(
                SCRIPT.contains(&format!("\"{path}\"")),
                "{path} has no handler in the script"
            );
        }
        assert!(serves(SCRIPT_PATH));
        assert!(!serves("/verify-email/x"));
        assert!(!serves("/v1/auth/verify-email"));
    }

    #[test]
    fn a_page_keeps_its_token_to_itself() {
        let response = asset("/verify-email");
        let headers = response.headers();
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
    }
}
