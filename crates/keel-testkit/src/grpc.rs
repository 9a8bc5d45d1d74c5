//! Calling a service under test over gRPC with a bearer token.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;

/// Adds `authorization: Bearer <token>` to every call of a client; `Bearer(None)` calls
/// anonymously. `Client::with_interceptor(channel, Bearer::token(&token))`.
#[derive(Debug, Clone, Default)]
pub struct Bearer(pub Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn token(token: &str) -> Bearer {
        Bearer(Some(
            format!("Bearer {token}").parse().expect("an ASCII token"),
        ))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}
