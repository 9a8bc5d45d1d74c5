//! Assertions on what a service answered, in the platform's terms.

use std::future::Future;
use std::time::Duration;

use keel_kernel::{Error, ErrorCode};

/// Assert that `result` is a refusal with the platform code `code` (read from the status's
/// `ErrorInfo`, and checked against the gRPC code the kernel maps it to). Returns the status.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: ErrorCode,
) -> tonic::Status {
    match result {
        Ok(value) => panic!("expected {code}, got {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code.grpc_code(), "{status:?}");
            assert_eq!(Error::from_status(&status).code(), code, "{status:?}");
            status
        }
    }
}

/// The fields a VALIDATION status names, in order.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    Error::from_status(status)
        .violations()
        .iter()
        .map(|violation| violation.field.clone())
        .collect()
}

/// Poll `probe` until it returns `Some` (every 50 ms, for at most 10 s): for effects that arrive
/// through events. Panics when the time is up, so a missing effect fails the test.
pub async fn eventually<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
