//! Calling another service of the mesh as a service: a token of one's own from identity (the
//! client-credentials grant, `AuthService.IssueServiceToken`), cached and renewed before it
//! expires, put on outbound calls; and lazily connected channels to configured addresses.
//!
//! ```ignore
//! // app settings: `identity_client: ServiceClientConfig` (see config/notifications.yaml)
//! let tokens = ServiceTokens::new(&settings.identity_client)?;
//! let _refresher = tokens.keep_fresh(shutdown.clone());        // optional, for `interceptor()`
//! let channel = service_client::lazy_channel("tenancy", &settings.tenancy_url)?;
//! // async: fetches (once, for every concurrent caller) when there is no fresh token
//! let request = tokens.authorized(pb::IssueInvitationTokenRequest { .. }).await?;
//! MembershipServiceClient::new(channel).issue_invitation_token(request).await?;
//! // or sync, from the cache (after `tokens.token().await` or with `keep_fresh` running):
//! let client = AuthServiceClient::with_interceptor(channel, tokens.interceptor());
//! ```
//!
//! A token is renewed once three quarters of its lifetime have passed, so callers never present
//! one about to expire; if identity cannot be reached then, the old token is used while it is
//! still valid. Concurrent callers that find no fresh token wait for one fetch (single flight).

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::config::ConfigError;
use crate::error::Error;

/// How a service authenticates to identity: a section of its `app:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceClientConfig {
    /// identity's gRPC address, e.g. `http://127.0.0.1:50051`.
    pub identity_url: String,
    /// The client id identity lists in `app.service_clients`, e.g. `notifications`.
    pub client_id: String,
    /// The secret itself (local development only; real deployments use `client_secret_file`).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// A file holding the secret (a mounted Kubernetes Secret); trailing whitespace is trimmed.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// The permissions to ask for; empty asks for all the client is configured with.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Connecting to identity gives up after this long.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// One token request gives up after this long.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_connect_timeout_ms() -> u64 {
    2_000
}

fn default_request_timeout_ms() -> u64 {
    5_000
}

impl ServiceClientConfig {
    /// Check the section, naming keys under `prefix` (e.g. `app.identity_client`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if normalized_address(&self.identity_url).is_none() {
            return Err(ConfigError::invalid(
                format!("{prefix}.identity_url"),
                "must be an http(s) address such as http://127.0.0.1:50051",
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("{prefix}.client_id"),
                "must not be empty",
            ));
        }
        match (&self.client_secret, &self.client_secret_file) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(ConfigError::invalid(
                format!("{prefix}.client_secret"),
                "exactly one of client_secret and client_secret_file must be set",
            )),
        }
    }

    /// The secret, read from its file if that is how it is given.
    pub fn secret(&self) -> Result<SecretString, Error> {
        if let Some(secret) = &self.client_secret {
            return Ok(secret.clone());
        }
        let path = self.client_secret_file.as_ref().ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "service client {}: no client_secret or client_secret_file",
                self.client_id
            ))
        })?;
        let text = std::fs::read_to_string(path).map_err(|err| {
            Error::internal(anyhow::anyhow!(
                "service client {}: cannot read client_secret_file {}: {err}",
                self.client_id,
                path.display()
            ))
        })?;
        Ok(SecretString::from(text.trim_end().to_owned()))
    }
}

/// `host:port` becomes `http://host:port`; anything that is not an http(s) URI is `None`.
fn normalized_address(address: &str) -> Option<String> {
    let address = address.trim();
    if address.is_empty() {
        return None;
    }
    let full = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let uri: http::Uri = full.parse().ok()?;
    matches!(uri.scheme_str(), Some("http" | "https"))
        .then_some(())
        .and(uri.authority().map(|_| full))
}

/// A channel to `address` that connects on first use (and reconnects by itself), so a service
/// starts even while the one it calls is not up yet. `name` is only for the error message.
pub fn lazy_channel(name: &str, address: &str) -> Result<Channel, Error> {
    lazy_channel_with(
        name,
        address,
        Duration::from_millis(default_connect_timeout_ms()),
        Duration::from_millis(default_request_timeout_ms()),
    )
}

/// [`lazy_channel`] with explicit connect and per-request timeouts.
pub fn lazy_channel_with(
    name: &str,
    address: &str,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<Channel, Error> {
    let full = normalized_address(address).ok_or_else(|| {
        Error::internal(anyhow::anyhow!(
            "the address of {name} ({address}) is not an http(s) address"
        ))
    })?;
    let endpoint = Endpoint::from_shared(full).map_err(|err| {
        Error::internal(anyhow::anyhow!("the address of {name} ({address}): {err}"))
    })?;
    Ok(endpoint
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .connect_lazy())
}

/// A token in hand: what to send, when to renew it, and when it stops working.
#[derive(Clone)]
struct Cached {
    bearer: MetadataValue<Ascii>,
    token: Arc<str>,
    refresh_at: Instant,
    expires_at: Instant,
}

/// Kept this far from a token's end: a call made just before expiry may reach its callee after.
const EXPIRY_SAFETY: Duration = Duration::from_secs(5);

struct Inner {
    identity: AuthServiceClient<Channel>,
    client_id: String,
    secret: SecretString,
    permissions: Vec<String>,
    current: RwLock<Option<Cached>>,
    /// Held by the one caller fetching a token; the others wait on it, then read `current`.
    fetching: tokio::sync::Mutex<()>,
}

/// This service's own token, from identity: cached, renewed before expiry, fetched once for any
/// number of concurrent callers. Cheap to clone (one shared cache).
#[derive(Clone)]
pub struct ServiceTokens {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens")
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl ServiceTokens {
    /// Tokens for the client `config` describes, from the identity at `config.identity_url`
    /// (connected lazily: nothing is contacted until the first token is needed).
    pub fn new(config: &ServiceClientConfig) -> Result<ServiceTokens, Error> {
        let channel = lazy_channel_with(
            "identity",
            &config.identity_url,
            Duration::from_millis(config.connect_timeout_ms),
            Duration::from_millis(config.request_timeout_ms),
        )?;
        Ok(ServiceTokens::with_channel(
            channel,
            &config.client_id,
            config.secret()?,
            config.permissions.clone(),
        ))
    }

    /// Tokens for `client_id` from the identity behind `channel`.
    pub fn with_channel(
        channel: Channel,
        client_id: &str,
        secret: SecretString,
        permissions: Vec<String>,
    ) -> ServiceTokens {
        ServiceTokens {
            inner: Arc::new(Inner {
                identity: AuthServiceClient::new(channel),
                client_id: client_id.to_owned(),
                secret,
                permissions,
                current: RwLock::new(None),
                fetching: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    fn cached(&self) -> Option<Cached> {
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The cached token if it does not need renewing yet.
    fn fresh(&self, now: Instant) -> Option<Cached> {
        self.cached().filter(|cached| now < cached.refresh_at)
    }

    /// The cached token if it still works, renewal due or not.
    fn usable(&self, now: Instant) -> Option<Cached> {
        self.cached()
            .filter(|cached| now + EXPIRY_SAFETY < cached.expires_at)
    }

    /// A token to present now: the cached one while fresh, else a new one from identity. Fails
    /// (UNAVAILABLE when identity cannot be reached, INTERNAL when it refuses this client) only
    /// when no usable token is left.
    pub async fn token(&self) -> Result<String, Error> {
        Ok(self.current().await?.token.to_string())
    }

    async fn current(&self) -> Result<Cached, Error> {
        if let Some(cached) = self.fresh(Instant::now()) {
            return Ok(cached);
        }
        let _only_fetcher = self.inner.fetching.lock().await;
        // Whoever held the lock before may have fetched one meanwhile.
        if let Some(cached) = self.fresh(Instant::now()) {
            return Ok(cached);
        }
        match self.fetch().await {
            Ok(cached) => {
                *self
                    .inner
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(cached.clone());
                Ok(cached)
            }
            Err(err) => match self.usable(Instant::now()) {
                Some(cached) => {
                    tracing::warn!(
                        client_id = %self.inner.client_id,
                        error = %err,
                        "renewing the service token failed; the current one is still valid"
                    );
                    Ok(cached)
                }
                None => Err(err),
            },
        }
    }

    async fn fetch(&self) -> Result<Cached, Error> {
        let started = Instant::now();
        let request = pb::IssueServiceTokenRequest {
            client_id: self.inner.client_id.clone(),
            client_secret: self.inner.secret.expose_secret().to_owned(),
            permissions: self.inner.permissions.clone(),
        };
        let mut identity = self.inner.identity.clone();
        let mut request = tonic::Request::new(request);
        crate::telemetry::inject_grpc(request.metadata_mut());
        let response = identity
            .issue_service_token(request)
            .await
            .map_err(|status| self.refused(&status))?
            .into_inner();
        let lifetime = Duration::from_secs(u64::try_from(response.expires_in).unwrap_or(0));
        if lifetime.is_zero() {
            return Err(Error::internal(anyhow::anyhow!(
                "identity issued service client {} a token without a lifetime",
                self.inner.client_id
            )));
        }
        let bearer = format!("Bearer {}", response.access_token)
            .parse()
            .map_err(|_| {
                Error::internal(anyhow::anyhow!(
                    "identity issued a service token that is not ASCII"
                ))
            })?;
        tracing::debug!(client_id = %self.inner.client_id, ?lifetime, "service token fetched");
        // Measured from before the request: the token was issued no earlier than that.
        Ok(Cached {
            bearer,
            token: response.access_token.into(),
            refresh_at: started + lifetime * 3 / 4,
            expires_at: started + lifetime,
        })
    }

    /// What a failed fetch means to this service's own callers: identity being away is
    /// UNAVAILABLE (retry later); identity refusing this client is a deployment fault, INTERNAL.
    fn refused(&self, status: &tonic::Status) -> Error {
        let client = &self.inner.client_id;
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                Error::unavailable(format!(
                    "identity is unavailable for a service token: {}",
                    status.message()
                ))
            }
            tonic::Code::ResourceExhausted => Error::from_status(status),
            code => Error::internal(anyhow::anyhow!(
                "identity refused a service token to client {client}: {code:?} {}",
                status.message()
            )),
        }
    }

    /// Forget the cached token, e.g. after a callee answered UNAUTHENTICATED to it (the signing
    /// key was rotated away): the next call fetches a new one.
    pub fn invalidate(&self) {
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// `message` as a request carrying this service's bearer token and the current trace.
    pub async fn authorized<T>(&self, message: T) -> Result<tonic::Request<T>, Error> {
        let mut request = tonic::Request::new(message);
        self.authorize(&mut request).await?;
        Ok(request)
    }

    /// Put this service's bearer token and the current trace on `request`.
    pub async fn authorize<T>(&self, request: &mut tonic::Request<T>) -> Result<(), Error> {
        let cached = self.current().await?;
        request
            .metadata_mut()
            .insert("authorization", cached.bearer);
        crate::telemetry::inject_grpc(request.metadata_mut());
        Ok(())
    }

    /// A synchronous client interceptor that adds the cached token (and the trace). It cannot
    /// fetch: use it after [`Self::token`] or with [`Self::keep_fresh`] running; without a usable
    /// token a call fails UNAVAILABLE before leaving the process.
    pub fn interceptor(&self) -> ServiceAuth {
        ServiceAuth {
            tokens: self.clone(),
        }
    }

    /// Renew the token in the background, a little before each renewal falls due, until
    /// `shutdown`; failures are retried after a pause. For clients built with
    /// [`Self::interceptor`].
    pub fn keep_fresh(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let tokens = self.clone();
        tokio::spawn(async move {
            loop {
                let pause = match tokens.current().await {
                    Ok(cached) => cached
                        .refresh_at
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(100)),
                    Err(err) => {
                        tracing::warn!(error = %err, "fetching the service token failed; retrying");
                        Duration::from_secs(1)
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        })
    }
}

/// See [`ServiceTokens::interceptor`].
#[derive(Clone, Debug)]
pub struct ServiceAuth {
    tokens: ServiceTokens,
}

impl tonic::service::Interceptor for ServiceAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let cached = self.tokens.usable(Instant::now()).ok_or_else(|| {
            tonic::Status::unavailable(format!(
                "no service token for {} yet",
                self.tokens.client_id()
            ))
        })?;
        request
            .metadata_mut()
            .insert("authorization", cached.bearer);
        crate::telemetry::inject_grpc(request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_without_a_scheme_are_http() {
        assert_eq!(
            normalized_address("127.0.0.1:50051").as_deref(),
            Some("http://127.0.0.1:50051")
        );
        assert_eq!(
            normalized_address("https://identity:443").as_deref(),
            Some("https://identity:443")
        );
        assert_eq!(normalized_address(""), None);
        assert_eq!(normalized_address("ftp://identity:21"), None);
    }

    fn config(secret: Option<&str>, file: Option<&str>) -> ServiceClientConfig {
        ServiceClientConfig {
            identity_url: "http://127.0.0.1:1".into(),
            client_id: "notifications".into(),
            client_secret: secret.map(|s| SecretString::from(s.to_owned())),
            client_secret_file: file.map(PathBuf::from),
            permissions: Vec::new(),
            connect_timeout_ms: 100,
            request_timeout_ms: 100,
        }
    }

    #[test]
    fn exactly_one_secret_source_is_required() {
        assert!(config(Some("s"), None).validate("app.identity").is_ok());
        assert!(config(None, Some("/x")).validate("app.identity").is_ok());
        let both = config(Some("s"), Some("/x")).validate("app.identity");
        assert!(format!("{:?}", both.unwrap_err()).contains("app.identity.client_secret"));
        assert!(config(None, None).validate("app.identity").is_err());
    }

    #[tokio::test]
    async fn an_unreachable_identity_is_unavailable_and_the_interceptor_refuses_without_a_token() {
        let tokens = ServiceTokens::new(&config(Some("secret"), None)).unwrap();
        let err = tokens.token().await.unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::Unavailable, "{err:?}");
        let mut interceptor = tokens.interceptor();
        let status = tonic::service::Interceptor::call(&mut interceptor, tonic::Request::new(()))
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
    }
}
