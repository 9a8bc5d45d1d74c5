//! [`AuthLayer`]: the tower layer every gRPC server runs, which turns `authorization: Bearer <jwt>`
//! into verified [`Claims`] in the request extensions or answers UNAUTHENTICATED itself, and
//! refuses with PERMISSION_DENIED a caller lacking the permission the method's contract declares
//! (`keel.v1.access`, see [`crate::contract`]) before the handler runs.
//!
//! It sits innermost in the server stack (see `server.rs`): inside the trace and request-id layers,
//! so refusals are traced and carry a request id, and inside the deadline, so a slow JWKS fetch is
//! bounded by the request timeout like any other work.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderMap;
use tower::{Layer, Service};

use super::{Claims, JwtVerifier, PrincipalKind};
use crate::contract::{self, Contract};
use crate::error::Error;

/// gRPC methods that answer without a token.
///
/// Holds full method paths (`/identity.v1.AuthService/Login`) and whole services
/// (`/grpc.health.v1.Health/`). A valid token sent to a public method is still verified and its
/// claims inserted (a handler may personalise its answer); an invalid one is ignored there.
#[derive(Debug, Clone, Default)]
pub struct PublicPaths {
    methods: HashSet<String>,
    services: Vec<String>,
}

impl PublicPaths {
    /// Nothing public.
    pub fn none() -> Self {
        PublicPaths::default()
    }

    /// Health checks (probed by Kubernetes without credentials), reflection (used by grpcurl
    /// and the gateway's tooling; the schema is no secret inside the mesh), and every method the
    /// protos declare public (`keel.v1.access`), so no service lists its own.
    pub fn standard() -> Self {
        let standard = PublicPaths::none()
            .service("grpc.health.v1.Health")
            .service("grpc.reflection.v1.ServerReflection")
            .service("grpc.reflection.v1alpha.ServerReflection");
        contract::public_methods().fold(standard, PublicPaths::method)
    }

    /// One method, by its full path: `/identity.v1.AuthService/Login`.
    pub fn method(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        self.methods.insert(path);
        self
    }

    /// Every method of a service: `grpc.health.v1.Health` or `/grpc.health.v1.Health/`.
    pub fn service(mut self, name: &str) -> Self {
        // Normalised to `/name/` so `/pkg.Svc/` never matches `/pkg.SvcAdmin/Delete`.
        self.services.push(format!("/{}/", name.trim_matches('/')));
        self
    }

    pub fn is_public(&self, path: &str) -> bool {
        self.methods.contains(path)
            || self
                .services
                .iter()
                .any(|prefix| path.starts_with(prefix.as_str()))
    }
}

/// Verifies bearer tokens for the wrapped gRPC service. See the module docs for where it goes.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: JwtVerifier,
    public: Arc<PublicPaths>,
    /// The permissions the methods declare; read when the layer is built, that is at start-up.
    contract: &'static Contract,
    domain: Arc<str>,
}

impl AuthLayer {
    /// `domain` is the service name, reported in the refusal's `ErrorInfo`. Health, reflection and
    /// the methods the protos declare public are public ([`PublicPaths::standard`]); add more
    /// with [`AuthLayer::public_method`].
    pub fn new(verifier: JwtVerifier, domain: impl Into<String>) -> Self {
        AuthLayer::with_public_paths(verifier, domain, PublicPaths::standard())
    }

    pub fn with_public_paths(
        verifier: JwtVerifier,
        domain: impl Into<String>,
        public: PublicPaths,
    ) -> Self {
        AuthLayer {
            verifier,
            public: Arc::new(public),
            contract: contract::embedded(),
            domain: Arc::from(domain.into()),
        }
    }

    pub fn public_method(mut self, path: impl Into<String>) -> Self {
        self.public = Arc::new((*self.public).clone().method(path));
        self
    }

    pub fn public_service(mut self, name: &str) -> Self {
        self.public = Arc::new((*self.public).clone().service(name));
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        // Read what we need from the request now: holding a borrow of it across the verifier's
        // await would make the future require a `Sync` body, which gRPC bodies are not.
        let path = request.uri().path();
        let required = layer.contract.permission(path);
        // A method that declares a permission needs a caller to hold it, so it is never public,
        // whatever the public paths say.
        let public = required.is_none() && layer.public.is_public(path);
        let token = bearer_token(request.headers()).map(|token| token.map(str::to_owned));
        Box::pin(async move {
            match authenticate(&layer.verifier, public, token).await {
                Ok(Some(claims)) => {
                    record_identity(&claims);
                    if let Some(permission) = required
                        && let Err(err) = claims.require(permission)
                    {
                        tracing::debug!(
                            permission,
                            path = request.uri().path(),
                            "request not authorised"
                        );
                        return Ok(err.into_status_in(&layer.domain).into_http());
                    }
                    request.extensions_mut().insert(claims);
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(
                        reason = err.message(),
                        path = request.uri().path(),
                        "request not authenticated"
                    );
                    return Ok(err.into_status_in(&layer.domain).into_http());
                }
            }
            inner.call(request).await
        })
    }
}

/// The verified claims, `None` for a public method called without a valid token, or the error
/// to answer with.
async fn authenticate(
    verifier: &JwtVerifier,
    public: bool,
    token: Result<Option<String>, Error>,
) -> Result<Option<Claims>, Error> {
    let verified = match token {
        Ok(Some(token)) => verifier.verify(&token).await,
        Ok(None) if public => return Ok(None),
        Ok(None) => return Err(Error::unauthenticated("missing bearer token")),
        Err(err) => Err(err),
    };
    match verified {
        Ok(claims) => Ok(Some(claims)),
        // A public method must work for a caller whose old token expired.
        Err(_) if public => Ok(None),
        Err(err) => Err(err),
    }
}

/// The token of the one `authorization: Bearer ...` header, `None` if there is no such header.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let malformed = || Error::unauthenticated("malformed authorization header");
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    // Two credentials is ambiguous; intermediaries might each read a different one.
    if values.next().is_some() {
        return Err(malformed());
    }
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

/// Fill the request span's `tenant_id` and `user_id` (no-ops if the span lacks those fields).
fn record_identity(claims: &Claims) {
    let span = tracing::Span::current();
    if let Some(tenant) = &claims.tid {
        span.record("tenant_id", tracing::field::display(tenant));
    }
    // API keys and services act for no user; their `sub` would only mislead a reader of the logs.
    if claims.kind == PrincipalKind::User {
        span.record("user_id", claims.sub.as_str());
    }
}
