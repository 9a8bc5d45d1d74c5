//! Routing: a model name maps to its ordered deployments. A deployment whose circuit is open is
//! skipped; a deployment that fails before its first generated text (connect error, timeout, 429,
//! 5xx, a broken stream) is recorded as a failure and the next one is tried. Once text has
//! arrived the call is committed to that deployment: a later failure ends the call with an error
//! (the caller must never see a cut answer that looks complete).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use keel_kernel::Error;

use super::breaker::{Admission, Breaker};
use super::{EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest};
use crate::domain::Prices;
use crate::settings::{ProviderKind, Settings};

/// One way to serve a model: a provider, its model name, prices and timeouts, and its breaker.
pub struct Deployment {
    /// `<provider>/<upstream model>`, for logs.
    pub name: String,
    /// The provider's configured name (`local`, `openai`, ...), recorded on usage.
    pub provider_name: String,
    pub upstream_model: String,
    pub prices: Prices,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    provider: Arc<dyn Provider>,
    pub breaker: Breaker,
}

pub struct Router {
    models: HashMap<String, Vec<Arc<Deployment>>>,
}

/// The service's clock, as the router needs it.
pub type Now<'a> = &'a (dyn Fn() -> DateTime<Utc> + Sync);

impl Router {
    pub fn from_settings(settings: &Settings) -> Result<Router, Error> {
        let mut providers: HashMap<String, Arc<dyn Provider>> = HashMap::new();
        for (name, config) in &settings.providers {
            let connect = Duration::from_millis(config.connect_timeout_ms);
            let key = super::api_key(&config.api_key_env);
            let provider: Arc<dyn Provider> = match config.kind {
                ProviderKind::Local => Arc::new(super::local::Local),
                ProviderKind::Openai => Arc::new(
                    super::openai::OpenAi::new(&config.base_url, key, connect)
                        .map_err(Error::internal)?,
                ),
                ProviderKind::Anthropic => Arc::new(
                    super::anthropic::Anthropic::new(&config.base_url, key, connect)
                        .map_err(Error::internal)?,
                ),
            };
            providers.insert(name.clone(), provider);
        }
        let cooldown = chrono::Duration::milliseconds(
            i64::try_from(settings.breaker.cooldown_ms).unwrap_or(i64::MAX),
        );
        let mut models = HashMap::new();
        for (model, config) in &settings.models {
            let mut deployments = Vec::new();
            for deployment in &config.deployments {
                let provider = providers
                    .get(&deployment.provider)
                    .cloned()
                    .ok_or_else(|| {
                        Error::internal(anyhow::anyhow!("unknown provider {}", deployment.provider))
                    })?;
                deployments.push(Arc::new(Deployment {
                    name: format!("{}/{}", deployment.provider, deployment.model),
                    provider_name: deployment.provider.clone(),
                    upstream_model: deployment.model.clone(),
                    prices: Prices {
                        input_micros_per_million: deployment.input_micros_per_million,
                        output_micros_per_million: deployment.output_micros_per_million,
                    },
                    first_byte_timeout: Duration::from_millis(deployment.first_byte_timeout_ms),
                    idle_timeout: Duration::from_millis(deployment.idle_timeout_ms),
                    provider,
                    breaker: Breaker::new(settings.breaker.failure_threshold, cooldown),
                }));
            }
            models.insert(model.clone(), deployments);
        }
        Ok(Router { models })
    }

    pub fn has_model(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    /// The first deployment of `model` (what a call that never reaches a provider is recorded
    /// against).
    pub fn primary(&self, model: &str) -> Option<Arc<Deployment>> {
        self.models.get(model).and_then(|d| d.first().cloned())
    }

    /// Start `request` on the first deployment of `model` that produces text. The error is the
    /// last deployment's, or `NoDeployment` when every circuit was open.
    pub async fn start(
        &self,
        model: &str,
        request: &ProviderRequest,
        now: Now<'_>,
    ) -> Result<Started, ProviderError> {
        let deployments = self.models.get(model).ok_or(ProviderError::NoDeployment)?;
        let mut last_error = ProviderError::NoDeployment;
        for deployment in deployments {
            if deployment.breaker.admit(now()) == Admission::Refused {
                tracing::debug!(deployment = %deployment.name, "circuit open, skipped");
                continue;
            }
            let request = ProviderRequest {
                model: deployment.upstream_model.clone(),
                ..request.clone()
            };
            match first_text(deployment, request).await {
                Ok((buffered, stream)) => {
                    deployment.breaker.succeeded();
                    return Ok(Started {
                        deployment: deployment.clone(),
                        buffered,
                        stream,
                    });
                }
                Err(err) => {
                    deployment.breaker.failed(now());
                    tracing::warn!(deployment = %deployment.name, error = %err, "deployment failed before its first byte");
                    let falls_back = err.falls_back();
                    last_error = err;
                    if !falls_back {
                        return Err(last_error);
                    }
                }
            }
        }
        Err(last_error)
    }
}

/// Start the call and read until its first text (or its end, for an empty answer), within the
/// deployment's first-byte timeout.
async fn first_text(
    deployment: &Deployment,
    request: ProviderRequest,
) -> Result<(VecDeque<ProviderEvent>, EventStream), ProviderError> {
    let deadline = tokio::time::Instant::now() + deployment.first_byte_timeout;
    let mut stream = tokio::time::timeout_at(deadline, deployment.provider.start(request))
        .await
        .map_err(|_| ProviderError::Timeout)??;
    let mut buffered = VecDeque::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(ProviderError::Timeout),
            Ok(None)
                if buffered
                    .iter()
                    .any(|e| matches!(e, ProviderEvent::Finish(_))) =>
            {
                return Ok((buffered, futures::stream::empty().boxed()));
            }
            Ok(None) => {
                return Err(ProviderError::Stream(
                    "the stream ended before any answer".into(),
                ));
            }
            Ok(Some(Err(err))) => return Err(err),
            Ok(Some(Ok(event))) => {
                let is_text = matches!(event, ProviderEvent::Delta(_));
                buffered.push_back(event);
                if is_text {
                    return Ok((buffered, stream));
                }
            }
        }
    }
}

/// A call that has produced text on `deployment`.
pub struct Started {
    pub deployment: Arc<Deployment>,
    buffered: VecDeque<ProviderEvent>,
    stream: EventStream,
}

impl Started {
    /// The next event; a stall longer than the deployment's idle timeout is an error.
    pub async fn next(&mut self) -> Option<Result<ProviderEvent, ProviderError>> {
        if let Some(event) = self.buffered.pop_front() {
            return Some(Ok(event));
        }
        match tokio::time::timeout(self.deployment.idle_timeout, self.stream.next()).await {
            Err(_) => Some(Err(ProviderError::Timeout)),
            Ok(next) => next,
        }
    }
}
