//! gRPC upstreams: one lazily connected tonic `Channel` (one HTTP/2 connection, multiplexed) per
//! configured upstream, and generic unary and server-streaming calls over it with the
//! [`DynamicCodec`].
//!
//! Each call carries the upstream's timeout as its gRPC deadline and is abandoned locally when it
//! passes (504). Only idempotent calls (GET bindings) are retried, only on UNAVAILABLE, and only
//! within the same deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost_reflect::DynamicMessage;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tonic::codec::Streaming;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use crate::codec::DynamicCodec;
use crate::config::UpstreamConfig;
use crate::router::Route;

/// Pause before a retry; doubled each attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(25);

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: Arc<str>,
    pub channel: Channel,
    pub timeout: Duration,
    pub retries: u32,
    pub admission: Arc<Admission>,
}

/// The in-flight limit of one upstream, with a bounded wait for a turn.
///
/// A burst larger than the service should take at once queues here, at the edge, where waiting
/// costs a parked future and no database connection. A call waits at most `queue_timeout`, and
/// never past its own deadline: what would miss it anyway is shed (503 with `Retry-After`)
/// instead of being sent to time out at the service.
#[derive(Debug)]
pub struct Admission {
    permits: Semaphore,
    waiting: AtomicUsize,
    max_queue: usize,
    queue_timeout: Duration,
}

/// A call refused a turn.
#[derive(Debug, Clone, Copy)]
pub enum Shed {
    /// Too many already waiting.
    QueueFull,
    /// No turn within the wait allowed.
    WaitedTooLong,
}

impl Admission {
    pub fn new(config: &UpstreamConfig) -> Admission {
        Admission {
            permits: Semaphore::new(config.max_in_flight.get() as usize),
            waiting: AtomicUsize::new(0),
            max_queue: config.max_queue,
            queue_timeout: Duration::from_millis(config.queue_timeout_ms),
        }
    }

    /// A turn, held until the permit is dropped; waits (in arrival order) until `deadline` at most.
    pub async fn admit(&self, deadline: Instant) -> Result<SemaphorePermit<'_>, Shed> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Shed::QueueFull);
        }
        let until = deadline.min(Instant::now() + self.queue_timeout);
        let turn = tokio::time::timeout_at(until, self.permits.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match turn {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Shed::WaitedTooLong),
        }
    }

    /// Calls waiting for a turn now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// Why a call produced no response.
#[derive(Debug)]
pub enum CallError {
    /// The upstream (or the transport to it) answered with this status.
    Status(tonic::Status),
    /// The deadline passed first.
    Timeout,
    /// No turn at the edge in time (the upstream's in-flight limit).
    Shed(Shed),
}

impl Upstream {
    /// Connects on first use, so the gateway starts (and serves its other upstreams) while this
    /// one is down.
    /// With several addresses, a balanced channel (tower's power of two choices over the
    /// replicas' in-flight counts); it must be built inside a Tokio runtime.
    pub fn new(name: &str, config: &UpstreamConfig) -> Upstream {
        let endpoint = |address: &crate::config::UpstreamAddress| {
            Endpoint::from(address.0.clone())
                .connect_timeout(config.connect_timeout())
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10))
        };
        let addresses = config.all_addresses();
        let channel = match addresses.as_slice() {
            [one] => endpoint(one).connect_lazy(),
            many => Channel::balance_list(many.iter().map(|address| endpoint(address))),
        };
        Upstream {
            name: Arc::from(name),
            channel,
            timeout: config.timeout(),
            retries: config.retries,
            admission: Arc::new(Admission::new(config)),
        }
    }

    /// One unary call. `idempotent` allows retries on UNAVAILABLE.
    pub async fn unary(
        &self,
        route: &Route,
        message: DynamicMessage,
        metadata: MetadataMap,
        idempotent: bool,
    ) -> Result<DynamicMessage, CallError> {
        let deadline = Instant::now() + self.timeout;
        let _turn = self
            .admission
            .admit(deadline)
            .await
            .map_err(CallError::Shed)?;
        let retries = if idempotent { self.retries } else { 0 };
        let mut attempt = 0;
        let mut backoff = RETRY_BACKOFF;
        // Keep a copy only when a retry may need it.
        let spare = (retries > 0).then(|| message.clone());
        let mut message = Some(message);
        loop {
            let Some(body) = message.take().or_else(|| spare.clone()) else {
                return Err(CallError::Timeout);
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut request = tonic::Request::new(body);
            *request.metadata_mut() = metadata.clone();
            request.set_timeout(remaining);
            let mut grpc = tonic::client::Grpc::new(self.channel.clone());
            let codec = DynamicCodec::new(route.method.output());
            let call = async {
                grpc.ready()
                    .await
                    .map_err(|err| tonic::Status::from_error(Box::new(err)))?;
                grpc.unary(request, route.grpc_path.clone(), codec).await
            };
            match tokio::time::timeout_at(deadline, call).await {
                Err(_) => return Err(CallError::Timeout),
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status))
                    if status.code() == tonic::Code::Unavailable && attempt < retries =>
                {
                    attempt += 1;
                    if Instant::now() + backoff >= deadline {
                        return Err(CallError::Status(status));
                    }
                    tracing::debug!(upstream = %self.name, attempt, "retrying an idempotent call");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    if spare.is_none() {
                        return Err(CallError::Status(status));
                    }
                }
                // The service may give up at the deadline we sent it a moment before we do.
                Ok(Err(status)) if Instant::now() >= deadline && gave_up(&status) => {
                    return Err(CallError::Timeout);
                }
                Ok(Err(status)) => return Err(CallError::Status(status)),
            }
        }
    }

    /// Open a server stream: resolves once the upstream has answered with its headers.
    pub async fn server_streaming(
        &self,
        route: &Route,
        message: DynamicMessage,
        metadata: MetadataMap,
    ) -> Result<Streaming<DynamicMessage>, CallError> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = metadata;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let codec = DynamicCodec::new(route.method.output());
        let call = async {
            grpc.ready()
                .await
                .map_err(|err| tonic::Status::from_error(Box::new(err)))?;
            grpc.server_streaming(request, route.grpc_path.clone(), codec)
                .await
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(CallError::Timeout),
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(CallError::Status(status)),
        }
    }
}

/// Why a passed-through request got no answer.
#[derive(Debug)]
pub enum SendError {
    Unavailable(String),
    Timeout,
    Shed(Shed),
}

impl SendError {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            SendError::Unavailable(_) => "unavailable",
            SendError::Timeout => "timeout",
            SendError::Shed(_) => "shed",
        }
    }

    pub fn problem(&self, upstream: &str, timeout: Duration) -> crate::problem::Problem {
        match self {
            SendError::Unavailable(reason) => crate::problem::Problem::unavailable(format!(
                "the {upstream} service is unavailable: {reason}"
            )),
            SendError::Timeout => crate::problem::Problem::timeout(format!(
                "the {upstream} service did not answer within {} ms",
                timeout.as_millis()
            )),
            SendError::Shed(shed) => shed.problem(upstream),
        }
    }
}

impl Upstream {
    /// Pass an HTTP/2 gRPC request through (native gRPC and gRPC-Web clients): resolves with the
    /// upstream's response head, its body still streaming; `wait` bounds the wait for the head.
    /// `limited`: a unary call, which takes a turn under the in-flight limit until its answer's
    /// head arrives.
    pub async fn send(
        &self,
        request: http::Request<tonic::body::Body>,
        wait: Duration,
        limited: bool,
    ) -> Result<http::Response<tonic::body::Body>, SendError> {
        use tower::ServiceExt;
        let _turn = if limited {
            Some(
                self.admission
                    .admit(Instant::now() + wait)
                    .await
                    .map_err(SendError::Shed)?,
            )
        } else {
            None
        };
        let call = self.channel.clone().oneshot(request);
        match tokio::time::timeout(wait, call).await {
            Err(_) => Err(SendError::Timeout),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(SendError::Unavailable(err.to_string())),
        }
    }
}

impl Shed {
    /// 503 with `Retry-After`: the service is busy, not broken.
    pub fn problem(self, upstream: &str) -> crate::problem::Problem {
        let mut problem = crate::problem::Problem::unavailable(format!(
            "the {upstream} service is busy; retry in 1 s"
        ));
        problem.retry_after = Some(Duration::from_secs(1));
        problem
    }
}

fn gave_up(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
    )
}
