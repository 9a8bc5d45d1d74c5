//! What can go wrong, and the exit status each kind gives, so scripts can tell a refused token
//! from a service that is down.

use std::fmt;

/// Exit statuses (clap's usage errors exit 2).
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_REFUSED: u8 = 3;
pub const EXIT_UNREACHABLE: u8 = 4;

#[derive(Debug)]
pub enum Failure {
    /// The token is missing, invalid, or lacks the rights the call needs.
    Refused(String),
    /// The service could not be reached at all.
    Unreachable(String),
    /// Anything else: a bad argument, a rejected request, a local file problem.
    Failed(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused(_) => EXIT_REFUSED,
            Failure::Unreachable(_) => EXIT_UNREACHABLE,
            Failure::Failed(_) => EXIT_FAILED,
        }
    }

    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::Failed(message.into())
    }

    /// A gRPC error from `target` (e.g. `tenancy at http://...`).
    pub fn from_status(target: &str, status: &tonic::Status) -> Failure {
        use tonic::Code;
        let detail = format!("{} ({:?})", status.message(), status.code());
        match status.code() {
            Code::Unauthenticated => Failure::Refused(format!(
                "{target} refused the token: {detail}; pass a platform admin's token with --token or KEELCTL_TOKEN"
            )),
            Code::PermissionDenied => Failure::Refused(format!(
                "{target} refused the call for this token: {detail}; it needs a platform admin's token"
            )),
            Code::Unavailable => Failure::Unreachable(format!("cannot reach {target}: {detail}")),
            _ => Failure::Failed(format!("{target}: {detail}")),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(m) | Failure::Unreachable(m) | Failure::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Failure {}

pub type Outcome<T> = Result<T, Failure>;
