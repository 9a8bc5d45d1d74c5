//! RFC 7807 `application/problem+json`: the one shape of every error leaving the gateway, its own
//! and the upstreams'.
//!
//! ```json
//! { "type": "/docs#error-validation", "title": "Bad Request", "status": 400,
//!   "detail": "tenant.slug: must be lowercase", "code": "VALIDATION",
//!   "requestId": "0190...", "violations": [{ "field": "tenant.slug", "description": "..." }] }
//! ```
//!
//! Upstream statuses map to HTTP by the canonical gRPC table; the platform code comes from the
//! status's `google.rpc.ErrorInfo` (what the kernel attaches), else from the gRPC code.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderName, HeaderValue, StatusCode, header};
use keel_kernel::error::http_status;
use keel_kernel::{Error, ErrorCode, FieldViolation};
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: String,
    pub violations: Vec<FieldViolation>,
    pub retry_after: Option<Duration>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
            violations: Vec::new(),
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// 400 VALIDATION about the request as a whole.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, ErrorCode::Validation, detail)
    }

    /// 400 VALIDATION naming one field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Problem {
        let field = field.into();
        let description = description.into();
        Problem {
            violations: vec![FieldViolation {
                field: field.clone(),
                description: description.clone(),
            }],
            ..Problem::bad_request(format!("{field}: {description}"))
        }
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, ErrorCode::Authn, detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, ErrorCode::Authz, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            detail,
        )
    }

    pub fn timeout(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::GATEWAY_TIMEOUT, ErrorCode::Unavailable, detail)
    }

    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        )
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Problem {
        self.headers.push((name, value));
        self
    }

    /// A kernel error raised in the gateway itself (the JWT verifier's, say).
    pub fn from_error(error: &Error) -> Problem {
        let problem = Problem {
            violations: error.violations().to_vec(),
            retry_after: error.retry_after(),
            ..Problem::new(error.code().http_status(), error.code(), error.message())
        };
        match error.code() {
            ErrorCode::Authn => {
                problem.with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
            }
            _ => problem,
        }
    }

    /// An upstream's gRPC status. `upstream` names the service for errors the gateway words itself.
    pub fn from_status(status: &tonic::Status, upstream: &str) -> Problem {
        let error = Error::from_status(status);
        let code = status.code();
        let transport = std::error::Error::source(status).is_some();
        // A call cut mid-flight (the upstream process died, its connection was reset) comes back
        // from the client as UNKNOWN or INTERNAL carrying the transport error: the service is
        // away, not broken, and a retry will find it (or a replica) again.
        if transport && matches!(code, tonic::Code::Unknown | tonic::Code::Internal) {
            tracing::warn!(upstream, error = %status.message(), "upstream call cut off");
            return Problem {
                retry_after: Some(Duration::from_secs(1)),
                ..Problem::unavailable(format!("the {upstream} service is unavailable"))
            };
        }
        let detail = match code {
            // Whatever a service says about its own failure stays in its logs.
            tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::DataLoss => {
                tracing::warn!(upstream, grpc.code = ?code, grpc.message = status.message(), "upstream failed");
                "internal error".to_owned()
            }
            tonic::Code::Unavailable if transport => {
                tracing::warn!(upstream, error = %status.message(), "upstream unreachable");
                format!("the {upstream} service is unavailable")
            }
            tonic::Code::DeadlineExceeded if transport || status.message().is_empty() => {
                format!("the {upstream} service did not answer in time")
            }
            tonic::Code::Unimplemented if status.message().is_empty() => {
                "the service does not implement this method".to_owned()
            }
            _ if status.message().is_empty() => http_status(code)
                .canonical_reason()
                .unwrap_or("error")
                .to_owned(),
            _ => error.message().to_owned(),
        };
        Problem {
            violations: error.violations().to_vec(),
            retry_after: error.retry_after(),
            ..Problem::new(http_status(code), error.code(), detail)
        }
    }

    /// Render with the request's id.
    pub fn into_response(self, request_id: &HeaderValue) -> Response {
        let body = Body::from(self.to_json(request_id));
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(retry_after) = self.retry_after {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }

    /// The problem document.
    pub fn to_json(&self, request_id: &HeaderValue) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Doc<'a> {
            #[serde(rename = "type")]
            kind: String,
            title: &'a str,
            status: u16,
            detail: &'a str,
            code: &'a str,
            request_id: &'a str,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            violations: Vec<Violation<'a>>,
        }
        #[derive(Serialize)]
        struct Violation<'a> {
            field: &'a str,
            description: &'a str,
        }
        let doc = Doc {
            kind: type_uri(self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code.as_str(),
            request_id: request_id.to_str().unwrap_or(""),
            violations: self
                .violations
                .iter()
                .map(|v| Violation {
                    field: &v.field,
                    description: &v.description,
                })
                .collect(),
        };
        // Plain structs of strings and numbers always serialise.
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

/// Where each code is explained: the docs page's section on errors.
pub fn type_uri(code: ErrorCode) -> String {
    format!(
        "/docs#error-{}",
        code.as_str().to_ascii_lowercase().replace('_', "-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_cut_off_by_the_transport_is_unavailable_not_internal() {
        let cut = tonic::Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert_eq!(cut.code(), tonic::Code::Unknown);
        let problem = Problem::from_status(&cut, "ai-gateway");
        assert_eq!(problem.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem.code, ErrorCode::Unavailable);
        assert_eq!(problem.retry_after, Some(Duration::from_secs(1)));
        // The upstream's own UNKNOWN (no transport error under it) stays an internal error.
        let own = tonic::Status::unknown("boom");
        assert_eq!(
            Problem::from_status(&own, "ai-gateway").status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn the_document_carries_every_member() {
        let problem = Problem::invalid_field("tenant.slug", "must be lowercase");
        let json: serde_json::Value =
            serde_json::from_slice(&problem.to_json(&HeaderValue::from_static("req-1")))
                .expect("json");
        assert_eq!(json["type"], "/docs#error-validation");
        assert_eq!(json["title"], "Bad Request");
        assert_eq!(json["status"], 400);
        assert_eq!(json["code"], "VALIDATION");
        assert_eq!(json["requestId"], "req-1");
        assert_eq!(json["violations"][0]["field"], "tenant.slug");
    }

    #[test]
    fn internal_messages_from_upstreams_are_not_shown() {
        let problem = Problem::from_status(&tonic::Status::internal("db password=x"), "identity");
        assert_eq!(problem.detail, "internal error");
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn error_info_decides_the_code_and_grpc_the_status() {
        let status = Error::conflict("slug taken").into_status_in("tenancy");
        let problem = Problem::from_status(&status, "tenancy");
        assert_eq!(problem.status, StatusCode::CONFLICT);
        assert_eq!(problem.code, ErrorCode::Conflict);
        assert_eq!(problem.detail, "slug taken");
    }
}
