//! Sending one prepared request to a tenant's endpoint, safely.
//!
//! The host is resolved once, by a resolver plugged into the HTTP client, which refuses the whole
//! name if any address it resolves to is forbidden by the [`AddressPolicy`]; the client then
//! connects to those very addresses. There is no second lookup between the check and the
//! connection, so a name that answers "public" to the check and "127.0.0.1" to the connect (DNS
//! rebinding) gets nowhere. URLs with an IP literal are checked before sending. Proxies from the
//! environment are ignored (a proxy would resolve the name itself), redirects are never followed
//! (a public endpoint could redirect to a private one), every request has a deadline, and only
//! the first `max_excerpt_bytes` of an answer are read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::address::{AddressPolicy, AddressRefusal};
use crate::channel::PreparedRequest;

#[derive(Clone, Debug)]
pub struct SenderConfig {
    pub policy: AddressPolicy,
    /// The whole attempt: connect, send, response headers and the excerpt.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// How much of a response body is kept for the delivery log.
    pub max_excerpt_bytes: usize,
    pub user_agent: String,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            policy: AddressPolicy::public_only(),
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_excerpt_bytes: 2048,
            user_agent: "keel-webhooks/1".to_owned(),
        }
    }
}

/// Why an attempt did not succeed. The text is what the delivery log shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttemptFailure {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("{host} resolves to {address}, {reason}, which webhooks may not reach")]
    Refused {
        host: String,
        address: IpAddr,
        reason: AddressRefusal,
    },
    #[error("cannot resolve {host}: {detail}")]
    Dns { host: String, detail: String },
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within the deadline")]
    Timeout,
    #[error("redirect ({status}) to {location:?} not followed")]
    Redirect { status: u16, location: String },
    #[error("answered with status {0}")]
    Status(u16),
    #[error("request failed: {0}")]
    Other(String),
}

impl AttemptFailure {
    /// A refusal by the address policy (as opposed to the endpoint failing).
    pub fn is_refusal(&self) -> bool {
        matches!(self, AttemptFailure::Refused { .. })
    }
}

/// What one attempt did, for the delivery log.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<u16>,
    /// From the start of the attempt to the response headers (or the failure).
    pub latency: Duration,
    /// The start of the response body, lossily decoded as UTF-8.
    pub response_excerpt: String,
    /// The address connected to.
    pub remote_addr: Option<SocketAddr>,
    /// `None` when the endpoint answered 2xx.
    pub failure: Option<AttemptFailure>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    fn failed(started: Instant, failure: AttemptFailure) -> Attempt {
        Attempt {
            status: None,
            latency: started.elapsed(),
            response_excerpt: String::new(),
            remote_addr: None,
            failure: Some(failure),
        }
    }
}

/// Resolves `host` and checks every address; one forbidden address refuses the name (a host
/// that mixes public and private answers is either misconfigured or an attack).
pub async fn resolve_checked(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, AttemptFailure> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|err| AttemptFailure::Dns {
            host: host.to_owned(),
            detail: err.to_string(),
        })?
        .collect();
    if addresses.is_empty() {
        return Err(AttemptFailure::Dns {
            host: host.to_owned(),
            detail: "no addresses".to_owned(),
        });
    }
    for address in &addresses {
        policy
            .check(address.ip())
            .map_err(|reason| AttemptFailure::Refused {
                host: host.to_owned(),
                address: address.ip(),
                reason,
            })?;
    }
    Ok(addresses)
}

/// The IP address in a URL's host, if it is a literal (`[::1]` included).
fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The resolver the HTTP client connects through.
struct CheckingResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is replaced by the URL's when connecting.
            let addresses = resolve_checked(&policy, &host, 0).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client for tenant endpoints; cheap to clone, meant to be shared.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    max_excerpt_bytes: usize,
}

impl Sender {
    pub fn new(config: SenderConfig) -> Result<Sender, reqwest::Error> {
        let policy = Arc::new(config.policy);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckingResolver {
                policy: policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent)
            .build()?;
        Ok(Sender {
            client,
            policy,
            max_excerpt_bytes: config.max_excerpt_bytes,
        })
    }

    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// The check made when an endpoint is created or changed: the URL's host must resolve, and
    /// only to allowed addresses. (Sending checks again: DNS may have changed since.)
    pub async fn check_url(&self, url: &str) -> Result<Vec<SocketAddr>, AttemptFailure> {
        let parsed =
            reqwest::Url::parse(url).map_err(|err| AttemptFailure::InvalidUrl(err.to_string()))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        if let Some(ip) = literal_ip(&parsed) {
            self.check_literal(&parsed, ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| AttemptFailure::InvalidUrl("no host".to_owned()))?;
        resolve_checked(&self.policy, host, port).await
    }

    fn check_literal(&self, url: &reqwest::Url, ip: IpAddr) -> Result<(), AttemptFailure> {
        self.policy
            .check(ip)
            .map_err(|reason| AttemptFailure::Refused {
                host: url.host_str().unwrap_or_default().to_owned(),
                address: ip,
                reason,
            })
    }

    /// Makes one attempt. Never panics and never returns early without a record: every outcome,
    /// refusals included, is an [`Attempt`].
    pub async fn send(&self, request: &PreparedRequest) -> Attempt {
        let started = Instant::now();
        let url = match reqwest::Url::parse(&request.url) {
            Ok(url) => url,
            Err(err) => {
                return Attempt::failed(started, AttemptFailure::InvalidUrl(err.to_string()));
            }
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Attempt::failed(
                started,
                AttemptFailure::InvalidUrl("only http and https are allowed".to_owned()),
            );
        }
        if let Some(ip) = literal_ip(&url)
            && let Err(failure) = self.check_literal(&url, ip)
        {
            return Attempt::failed(started, failure);
        }
        let mut builder = self.client.post(url).body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let mut response = match builder.send().await {
            Ok(response) => response,
            Err(err) => return Attempt::failed(started, classify(&err)),
        };
        let latency = started.elapsed();
        let status = response.status();
        let remote_addr = response.remote_addr();
        let mut excerpt = Vec::new();
        while excerpt.len() < self.max_excerpt_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_excerpt_bytes - excerpt.len();
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                // The status is the outcome; a body cut short only shortens the excerpt.
                Ok(None) | Err(_) => break,
            }
        }
        let failure = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(AttemptFailure::Redirect {
                status: status.as_u16(),
                location: response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            })
        } else {
            Some(AttemptFailure::Status(status.as_u16()))
        };
        Attempt {
            status: Some(status.as_u16()),
            latency,
            response_excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
            remote_addr,
            failure,
        }
    }
}

/// Finds our own refusal inside the client's error chain, or names the failure.
fn classify(err: &reqwest::Error) -> AttemptFailure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(ours) = current.downcast_ref::<AttemptFailure>() {
            return ours.clone();
        }
        source = current.source();
    }
    if err.is_timeout() {
        return AttemptFailure::Timeout;
    }
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(current) = source {
        detail.push_str(": ");
        detail.push_str(&current.to_string());
        source = current.source();
    }
    if err.is_connect() {
        AttemptFailure::Connect(detail)
    } else {
        AttemptFailure::Other(detail)
    }
}
