//! The platform's error taxonomy and its one mapping to gRPC.
//!
//! Every handler returns [`Error`]. It leaves the process as a `tonic::Status` whose details carry a
//! `google.rpc.ErrorInfo` (reason = the platform code) and, for validation errors, a
//! `google.rpc.BadRequest` with one violation per field, so the edge gateway can render RFC 7807
//! bodies without knowing the service. Internal causes are logged here, once, and never sent.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use tonic_types::{ErrorDetails, StatusExt};

/// The platform's public error codes. Stable: clients switch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Validation,
    Authn,
    Authz,
    NotFound,
    /// Something with this identity already exists (a duplicate slug, email, key).
    Conflict,
    /// The request is valid but the resource is not in a state that allows it (an expired
    /// invitation, the last owner, a task that is not assigned). Retrying the same request will
    /// not help until the state changes.
    FailedPrecondition,
    /// A concurrent change won (a serialization failure, a lock timeout, a stale etag): retrying
    /// the whole read-modify-write may succeed.
    Aborted,
    RateLimit,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::Validation,
        ErrorCode::Authn,
        ErrorCode::Authz,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::FailedPrecondition,
        ErrorCode::Aborted,
        ErrorCode::RateLimit,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::Authn => "AUTHN",
            ErrorCode::Authz => "AUTHZ",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::Aborted => "ABORTED",
            ErrorCode::RateLimit => "RATE_LIMIT",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == name)
    }

    /// The gRPC code for each platform code. Exhaustive on purpose: a new code must choose.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::Validation => tonic::Code::InvalidArgument,
            ErrorCode::Authn => tonic::Code::Unauthenticated,
            ErrorCode::Authz => tonic::Code::PermissionDenied,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::Conflict => tonic::Code::AlreadyExists,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorCode::Aborted => tonic::Code::Aborted,
            ErrorCode::RateLimit => tonic::Code::ResourceExhausted,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// The platform code a bare gRPC status maps to when it carries no `ErrorInfo` (for example one
    /// produced by tonic itself, or by a service in another language).
    pub fn from_grpc_code(code: tonic::Code) -> ErrorCode {
        use tonic::Code;
        match code {
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::Validation,
            Code::FailedPrecondition => ErrorCode::FailedPrecondition,
            Code::Aborted => ErrorCode::Aborted,
            Code::Unauthenticated => ErrorCode::Authn,
            Code::PermissionDenied => ErrorCode::Authz,
            Code::NotFound => ErrorCode::NotFound,
            Code::AlreadyExists => ErrorCode::Conflict,
            Code::ResourceExhausted => ErrorCode::RateLimit,
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => ErrorCode::Unavailable,
            Code::Ok | Code::Unknown | Code::Internal | Code::Unimplemented | Code::DataLoss => {
                ErrorCode::Internal
            }
        }
    }

    /// The HTTP status of this code, by the canonical gRPC table (so FAILED_PRECONDITION is 400
    /// and ABORTED 409). The gateway's problem+json and the admin port both answer with it.
    pub fn http_status(self) -> http::StatusCode {
        http_status(self.grpc_code())
    }
}

/// The canonical gRPC → HTTP table (google.rpc.Code's documented mapping).
pub fn http_status(code: tonic::Code) -> http::StatusCode {
    use http::StatusCode;
    use tonic::Code;
    match code {
        Code::Ok => StatusCode::OK,
        // 499 is nginx's "client closed request"; it is a valid status code.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
    }
}

/// The error domain (`google.rpc.ErrorInfo.domain`) of every status this process sends: its
/// service name, set once at start-up by the platform bootstrap.
static DOMAIN: OnceLock<String> = OnceLock::new();

/// Name the service whose errors this process reports. The first call wins; later calls (tests
/// that start several services in one process) keep it, which only affects the `domain` label.
pub fn set_domain(service: &str) {
    let _ = DOMAIN.set(service.to_owned());
}

fn domain() -> &'static str {
    DOMAIN.get().map(String::as_str).unwrap_or("keel")
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid field: `field` is the request path (`tenant.slug`), `description` says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// A platform error: a public code and message, optional field violations, and an optional
/// internal cause that is logged but never shown to a client.
pub struct Error {
    code: ErrorCode,
    message: String,
    violations: Vec<FieldViolation>,
    retry_after: Option<Duration>,
    /// The database constraint behind a CONFLICT, for the repository to reword in domain terms.
    /// Never sent to a client.
    constraint: Option<String>,
    cause: Option<anyhow::Error>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            violations: Vec::new(),
            retry_after: None,
            constraint: None,
            cause: None,
        }
    }

    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::invalid_fields(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// Several invalid fields, reported together so a client can fix a form in one round trip.
    pub fn invalid_fields(violations: Vec<FieldViolation>) -> Self {
        let message = match violations.as_slice() {
            [only] => format!("{}: {}", only.field, only.description),
            _ => format!("{} fields are invalid", violations.len()),
        };
        Error {
            violations,
            ..Error::new(ErrorCode::Validation, message)
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Authn, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Authz, message)
    }

    pub fn not_found(resource: &str, id: impl fmt::Display) -> Self {
        Error::new(ErrorCode::NotFound, format!("{resource} {id} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Conflict, message)
    }

    /// The resource's state does not allow this (FAILED_PRECONDITION); the message should name the
    /// state and, where there are some, the moves that are allowed.
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::FailedPrecondition, message)
    }

    /// A concurrent change won (ABORTED): the client may retry the whole operation.
    pub fn aborted(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Aborted, message)
    }

    pub fn rate_limited(retry_after: Duration) -> Self {
        Error {
            retry_after: Some(retry_after),
            ..Error::new(ErrorCode::RateLimit, "too many requests")
        }
    }

    /// A budget for the period is spent (AI tokens, seats): RESOURCE_EXHAUSTED / 429 like a rate
    /// limit, but with no `Retry-After`, since waiting seconds does not help.
    pub fn quota_exhausted(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::RateLimit, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Unavailable, message)
    }

    /// An unexpected failure. The cause is logged when the error leaves the service; the client
    /// sees only "internal error".
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Error {
            cause: Some(cause.into()),
            ..Error::new(ErrorCode::Internal, "internal error")
        }
    }

    /// Tell the client when to retry (google.rpc.RetryInfo; the gateway's `Retry-After`).
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Attach an internal cause to any error (e.g. the database error behind UNAVAILABLE).
    pub fn with_cause(mut self, cause: impl Into<anyhow::Error>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The database constraint a CONFLICT came from, if it came from one.
    pub fn constraint(&self) -> Option<&str> {
        self.constraint.as_deref()
    }

    /// Reword the unique violation of `constraint` in domain terms ("a tenant with this slug
    /// already exists"), so that no constraint name reaches a client. Any other error passes.
    pub fn on_constraint(mut self, constraint: &str, message: impl Into<String>) -> Self {
        if self.constraint.as_deref() == Some(constraint) {
            self.message = message.into();
        }
        self
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Convert to a gRPC status with google.rpc details, in the domain set by [`set_domain`].
    /// Handlers just use `?`: this runs through `From<Error> for tonic::Status`.
    pub fn into_status(self) -> tonic::Status {
        self.into_status_in(domain())
    }

    /// [`Self::into_status`] with an explicit domain (a process that speaks for several services).
    pub fn into_status_in(self, domain: &str) -> tonic::Status {
        if let Some(cause) = &self.cause {
            // Logged once, here, at the edge of the service; never part of the status.
            match self.code {
                ErrorCode::Internal => {
                    tracing::error!(error.code = %self.code, error.cause = ?cause, "request failed")
                }
                _ => {
                    tracing::warn!(error.code = %self.code, error.cause = ?cause, "request failed")
                }
            }
        }
        let mut details = ErrorDetails::with_error_info(
            self.code.as_str(),
            domain,
            std::collections::HashMap::new(),
        );
        if !self.violations.is_empty() {
            for violation in &self.violations {
                details.add_bad_request_violation(
                    violation.field.clone(),
                    violation.description.clone(),
                );
            }
        }
        if let Some(retry_after) = self.retry_after {
            details.set_retry_info(Some(retry_after));
        }
        tonic::Status::with_error_details(self.code.grpc_code(), self.message, details)
    }

    /// Read a platform error back out of a status (used by clients and the gateway).
    pub fn from_status(status: &tonic::Status) -> Error {
        let details = status.get_error_details();
        let code = details
            .error_info()
            .and_then(|info| ErrorCode::parse(&info.reason))
            .unwrap_or_else(|| ErrorCode::from_grpc_code(status.code()));
        let violations = details
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|v| FieldViolation {
                        field: v.field.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let retry_after = details.retry_info().and_then(|info| info.retry_delay);
        Error {
            code,
            message: status.message().to_owned(),
            violations,
            retry_after,
            constraint: None,
            cause: None,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        err.into_status()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("violations", &self.violations)
            .field("cause", &self.cause)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// Database errors become platform errors by kind. Unique and exclusion violations are CONFLICT
/// named by their constraint, so a handler can say which field collided without parsing text.
/// What a client is told to wait when the database is away (a restart takes seconds).
const DATABASE_RETRY_AFTER: Duration = Duration::from_secs(1);

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => Error::new(ErrorCode::NotFound, "not found"),
            sqlx::Error::Database(db) => match db.kind() {
                // The constraint name stays inside: the repository rewords it with
                // `on_constraint`, and the default says nothing about the schema.
                sqlx::error::ErrorKind::UniqueViolation => Error {
                    constraint: db.constraint().map(str::to_owned),
                    ..Error::conflict("already exists")
                }
                .with_cause(err),
                sqlx::error::ErrorKind::ForeignKeyViolation => Error {
                    constraint: db.constraint().map(str::to_owned),
                    ..Error::failed_precondition("refers to something that does not exist")
                }
                .with_cause(err),
                sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::NotNullViolation => Error::internal(err),
                // NUL and other characters Postgres text cannot hold: the client's input, not a
                // fault of ours. Handlers should reject them first; this keeps a miss from being a 500.
                _ if matches!(db.code().as_deref(), Some("22021" | "22P05")) => Error::invalid(
                    "(text field)",
                    "contains a character that cannot be stored (e.g. NUL)",
                )
                .with_cause(err),
                // Serialization failure, deadlock, lock timeout: another transaction won.
                _ if matches!(db.code().as_deref(), Some("40001" | "40P01" | "55P03")) => {
                    Error::aborted("a concurrent change won; retry").with_cause(err)
                }
                // The server is shutting down, starting up or dropped the connection (class 08,
                // 57P0x): the database is away for a moment, not the request at fault.
                _ if db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")) =>
                {
                    Error::unavailable("database unavailable")
                        .with_retry_after(DATABASE_RETRY_AFTER)
                        .with_cause(err)
                }
                _ => Error::internal(err),
            },
            // Fail fast with a retry delay (the gateway's 503 + Retry-After) rather than hang.
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Error::unavailable("database unavailable")
                    .with_retry_after(DATABASE_RETRY_AFTER)
                    .with_cause(err)
            }
            _ => Error::internal(err),
        }
    }
}

impl From<async_nats::Error> for Error {
    fn from(err: async_nats::Error) -> Self {
        Error::unavailable("message broker unavailable").with_cause(anyhow::anyhow!(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_a_grpc_status() {
        for code in ErrorCode::ALL {
            let status = Error::new(code, "boom").into_status_in("test");
            assert_eq!(status.code(), code.grpc_code());
            assert_eq!(Error::from_status(&status).code(), code);
        }
    }

    #[test]
    fn field_violations_travel_as_bad_request_details() {
        let status = Error::invalid_fields(vec![
            FieldViolation {
                field: "email".into(),
                description: "must contain @".into(),
            },
            FieldViolation {
                field: "password".into(),
                description: "too short".into(),
            },
        ])
        .into_status_in("identity");
        let back = Error::from_status(&status);
        assert_eq!(back.code(), ErrorCode::Validation);
        assert_eq!(back.violations().len(), 2);
        assert_eq!(back.violations()[0].field, "email");
    }

    #[test]
    fn internal_causes_never_reach_the_client() {
        let status = Error::internal(anyhow::anyhow!("password=hunter2 at 10.0.0.1"))
            .into_status_in("identity");
        assert_eq!(status.message(), "internal error");
        assert!(!format!("{status:?}").contains("hunter2"));
    }

    #[test]
    fn a_status_without_details_maps_by_grpc_code() {
        let back = Error::from_status(&tonic::Status::permission_denied("no"));
        assert_eq!(back.code(), ErrorCode::Authz);
    }

    #[test]
    fn rate_limits_carry_their_retry_delay() {
        let status = Error::rate_limited(Duration::from_secs(3)).into_status_in("gateway");
        assert_eq!(
            Error::from_status(&status).retry_after(),
            Some(Duration::from_secs(3))
        );
    }
}
