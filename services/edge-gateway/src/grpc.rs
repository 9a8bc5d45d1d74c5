//! Native gRPC and gRPC-Web on the public port, through the same checks as REST.
//!
//! A request whose `Content-Type` is `application/grpc*` is a gRPC call: its path
//! (`/identity.v1.UserService/GetMe`) names the method, which must be one the route table exposes
//! (the same [`Route`] its REST binding uses). It is authenticated, tenant-checked, rate-limited
//! and entitlement-checked exactly as the REST call would be ([`Gateway::authenticate`],
//! [`Gateway::authorize`]); the tenant a REST call names in its path is read from the same field
//! of the request message. Then the message is passed to the upstream untouched (no transcoding)
//! over the upstream's HTTP/2 channel, and the answer streamed back with its trailers.
//!
//! gRPC-Web (`application/grpc-web`, `+proto`, and the base64 `-text` variants, over HTTP/1.1 or
//! HTTP/2) is translated on the way: the request frames go upstream as plain gRPC, and the
//! upstream's trailers come back as the final frame of the body (flag `0x80`), as browsers cannot
//! read HTTP trailers. CORS applies as for REST ([`crate::cors`]).
//!
//! Refusals are gRPC statuses (trailers-only responses) with the platform's `ErrorInfo`, so a
//! gRPC client sees UNAUTHENTICATED, PERMISSION_DENIED or RESOURCE_EXHAUSTED where a REST client
//! sees 401, 403 or 429.
//!
//! Server reflection (`grpc.reflection.v1` and `v1alpha`) is answered here, for the services the
//! route table exposes, from the descriptors the transcoder uses: `grpcurl <edge> list` shows the
//! public API and nothing else.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use keel_kernel::ErrorCode;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, MessageDescriptor, Value};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::gateway::{Gateway, presents_credential, read_body};
use crate::problem::Problem;
use crate::ratelimit::{self, Decision};
use crate::router::{Binding, Router};

const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
const GRPC_STATUS: &str = "grpc-status";

/// The flag of a gRPC-Web frame holding the trailers.
const TRAILER_FLAG: u8 = 0x80;

/// How a gRPC call reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    /// gRPC-Web; `text` when the frames are base64 (`application/grpc-web-text`).
    Web {
        text: bool,
    },
}

impl Protocol {
    /// The protocol a `Content-Type` announces, if it is a gRPC one.
    pub fn of(headers: &HeaderMap) -> Option<Protocol> {
        let value = headers.get(header::CONTENT_TYPE)?.as_bytes();
        let rest = value.strip_prefix(b"application/grpc")?;
        let ends = |rest: &[u8]| rest.is_empty() || rest[0] == b'+' || rest[0] == b';';
        if let Some(web) = rest.strip_prefix(b"-web") {
            if let Some(text) = web.strip_prefix(b"-text") {
                return ends(text).then_some(Protocol::Web { text: true });
            }
            return ends(web).then_some(Protocol::Web { text: false });
        }
        ends(rest).then_some(Protocol::Grpc)
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Protocol::Grpc => "application/grpc",
            Protocol::Web { text: false } => "application/grpc-web+proto",
            Protocol::Web { text: true } => "application/grpc-web-text+proto",
        })
    }

    fn text(self) -> bool {
        matches!(self, Protocol::Web { text: true })
    }
}

type Upstream = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    Infallible,
>;

/// The gRPC face of the route table: methods by path, and reflection over them.
pub struct GrpcSurface {
    /// `/pkg.Service/Method` -> the index of the method's own binding in the router.
    methods: HashMap<String, usize>,
    reflection_v1: Upstream,
    reflection_v1alpha: Upstream,
}

const REFLECTION_V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const REFLECTION_V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

impl GrpcSurface {
    pub fn new(router: &Router, pool: &DescriptorPool) -> Result<GrpcSurface, String> {
        let mut methods = HashMap::new();
        let mut services = BTreeSet::new();
        for (index, binding) in router.bindings().iter().enumerate() {
            let route = &binding.route;
            methods
                .entry(route.grpc_path.path().to_owned())
                .or_insert(index);
            services.insert(route.method.parent_service().full_name().to_owned());
        }
        let files = exposed_files(pool, &services).encode_to_vec();
        let builder = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(&files);
            for name in services.iter().map(String::as_str).chain([
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ]) {
                builder = builder.with_service_name(name);
            }
            builder
        };
        let v1 = builder().build_v1().map_err(|err| err.to_string())?;
        let v1alpha = builder().build_v1alpha().map_err(|err| err.to_string())?;
        Ok(GrpcSurface {
            methods,
            reflection_v1: BoxCloneSyncService::new(v1),
            reflection_v1alpha: BoxCloneSyncService::new(v1alpha),
        })
    }

    fn reflection(&self, path: &str) -> Option<Upstream> {
        match path {
            REFLECTION_V1 => Some(self.reflection_v1.clone()),
            REFLECTION_V1ALPHA => Some(self.reflection_v1alpha.clone()),
            _ => None,
        }
    }
}

/// The files declaring `services` and everything they import, imports first.
fn exposed_files(
    pool: &DescriptorPool,
    services: &BTreeSet<String>,
) -> prost_types::FileDescriptorSet {
    fn visit(
        file: prost_reflect::FileDescriptor,
        seen: &mut HashSet<String>,
        out: &mut Vec<prost_types::FileDescriptorProto>,
    ) {
        if !seen.insert(file.name().to_owned()) {
            return;
        }
        for dependency in file.dependencies() {
            visit(dependency, seen, out);
        }
        out.push(file.file_descriptor_proto().clone());
    }
    let mut seen = HashSet::new();
    let mut file = Vec::new();
    for name in services {
        if let Some(service) = pool.get_service_by_name(name) {
            visit(service.parent_file(), &mut seen, &mut file);
        }
    }
    prost_types::FileDescriptorSet { file }
}

impl Gateway {
    /// A gRPC or gRPC-Web call; the label for the metrics, and the answer.
    pub(crate) async fn grpc<'g>(
        &'g self,
        protocol: Protocol,
        parts: Parts,
        body: Body,
        client: IpAddr,
        request_id: &HeaderValue,
    ) -> (&'g str, Response) {
        let path = parts.uri.path();
        if parts.method != Method::POST {
            let refusal = Problem::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Validation,
                "gRPC calls are POST requests",
            );
            return ("grpc", self.status_response(protocol, &refusal));
        }
        if let Some(reflection) = self.grpc.reflection(path) {
            let answer = match self.read_frames(protocol, body, self.max_body).await {
                Ok(frames) => {
                    let request = upstream_request(&parts, frames, HeaderMap::new());
                    let response = reflection.oneshot(request).await;
                    relay(protocol, response.unwrap_or_else(|never| match never {}))
                }
                Err(problem) => self.status_response(protocol, &problem),
            };
            return ("grpc_reflection", answer);
        }
        let Some(binding) = self
            .grpc
            .methods
            .get(path)
            .and_then(|index| self.router().bindings().get(*index))
        else {
            let unknown = tonic::Status::unimplemented(format!(
                "no method {} is exposed here",
                truncate(path, 200)
            ));
            return ("no_route", status_http(protocol, unknown));
        };
        let route = &binding.route;
        tracing::Span::current().record("route", route.id.as_str());
        let mut limit = None;
        let outcome = self
            .grpc_forward(
                protocol, binding, &parts, body, client, request_id, &mut limit,
            )
            .await;
        if let Err(problem) = &outcome
            && problem.code == ErrorCode::Authn
            && (route.public || presents_credential(&parts.headers))
        {
            self.rate_limits.record_failed_auth(client);
        }
        let mut response =
            outcome.unwrap_or_else(|problem| self.status_response(protocol, &problem));
        if let Some(decision) = limit {
            ratelimit::set_headers(response.headers_mut(), &decision);
        }
        (route.id.as_str(), response)
    }

    #[allow(clippy::too_many_arguments)]
    async fn grpc_forward(
        &self,
        protocol: Protocol,
        binding: &Binding,
        parts: &Parts,
        body: Body,
        client: IpAddr,
        request_id: &HeaderValue,
        limit: &mut Option<Decision>,
    ) -> Result<Response, Problem> {
        let route = &binding.route;
        let principal = self
            .authenticate(route, &parts.headers, client, request_id, limit)
            .await?;
        let max_body = route.max_body.unwrap_or(self.max_body);
        let frames = self.read_frames(protocol, body, max_body).await?;
        let tenant = match (route.tenant_match, binding.tenant_var, &principal) {
            (true, Some(index), Some(_)) => Some(tenant_in_message(
                &frames,
                &route.method.input(),
                &binding.path_fields[index],
            )?),
            _ => None,
        };
        self.authorize(
            route,
            principal.as_ref(),
            tenant.as_deref(),
            client,
            request_id,
            limit,
        )
        .await?;
        let upstream = self
            .upstreams
            .get(&route.upstream)
            .ok_or_else(|| Problem::unavailable(format!("no upstream `{}`", route.upstream)))?;
        let metadata =
            self.forwarding
                .metadata(&parts.headers, principal.as_ref(), request_id, client);
        let mut headers = metadata.into_headers();
        for name in [GRPC_ENCODING, GRPC_ACCEPT_ENCODING] {
            if let Some(value) = parts.headers.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        // The client's deadline, never longer than the upstream's for a unary call; a stream
        // keeps the client's own (a watch may last).
        let asked = parts.headers.get(GRPC_TIMEOUT).and_then(parse_grpc_timeout);
        let deadline = if route.streaming() {
            asked
        } else {
            Some(asked.map_or(upstream.timeout, |asked| asked.min(upstream.timeout)))
        };
        if let Some(deadline) = deadline {
            headers.insert(GRPC_TIMEOUT, grpc_timeout_value(deadline));
        }
        let request = upstream_request(parts, frames, headers);
        let waiting = deadline.unwrap_or(upstream.timeout).min(upstream.timeout);
        let response = upstream
            .send(request, waiting, !route.streaming())
            .await
            .map_err(|err| {
                self.metrics.observe_upstream(&upstream.name, err.label());
                err.problem(&upstream.name, upstream.timeout)
            })?;
        let code = response
            .headers()
            .get(GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0");
        self.metrics.observe_upstream(&upstream.name, code);
        Ok(relay(protocol, response))
    }

    /// The request's frames, whole (the exposed methods take one message), base64-decoded for
    /// gRPC-Web text.
    async fn read_frames(
        &self,
        protocol: Protocol,
        body: Body,
        max_body: usize,
    ) -> Result<Bytes, Problem> {
        if !protocol.text() {
            return read_body(body, max_body).await;
        }
        let encoded = read_body(body, max_body.saturating_mul(4) / 3 + 4).await?;
        decode_text(&encoded)
            .ok_or_else(|| Problem::bad_request("the gRPC-Web text body is not base64"))
    }

    /// A refusal as a trailers-only gRPC answer, with the platform's `ErrorInfo`.
    fn status_response(&self, protocol: Protocol, problem: &Problem) -> Response {
        let error = if problem.violations.is_empty() {
            keel_kernel::Error::new(problem.code, problem.detail.clone())
        } else {
            keel_kernel::Error::invalid_fields(problem.violations.clone())
        };
        let error = match problem.retry_after {
            Some(after) => error.with_retry_after(after),
            None => error,
        };
        status_http(protocol, error.into_status_in(&self.service))
    }
}

fn status_http(protocol: Protocol, status: tonic::Status) -> Response {
    let mut response: Response = status.into_http();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, protocol.content_type());
    response
}

fn upstream_request(
    parts: &Parts,
    frames: Bytes,
    mut headers: HeaderMap,
) -> http::Request<tonic::body::Body> {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    let mut request = http::Request::new(tonic::body::Body::new(Full::new(frames)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = http::Uri::from(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    *request.headers_mut() = headers;
    request
}

/// The upstream's answer for the client: as it is for gRPC; for gRPC-Web with the trailers as
/// the last frame of the body, base64 for the text variant.
fn relay(protocol: Protocol, upstream: http::Response<tonic::body::Body>) -> Response {
    let (mut head, body) = upstream.into_parts();
    match protocol {
        Protocol::Grpc => Response::from_parts(head, Body::new(body)),
        Protocol::Web { text } => {
            head.headers
                .insert(header::CONTENT_TYPE, protocol.content_type());
            let body = body.map_frame(move |frame| {
                let bytes = match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => trailer_frame(&trailers),
                        Err(_) => Bytes::new(),
                    },
                };
                if text {
                    Frame::data(Bytes::from(
                        base64::engine::general_purpose::STANDARD.encode(&bytes),
                    ))
                } else {
                    Frame::data(bytes)
                }
            });
            Response::from_parts(head, Body::new(body))
        }
    }
}

/// A gRPC-Web trailer frame: flag 0x80, length, `name: value\r\n` lines.
pub fn trailer_frame(trailers: &HeaderMap) -> Bytes {
    let mut block = Vec::with_capacity(64);
    for (name, value) in trailers {
        block.extend_from_slice(name.as_str().as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value.as_bytes());
        block.extend_from_slice(b"\r\n");
    }
    let mut frame = BytesMut::with_capacity(5 + block.len());
    frame.put_u8(TRAILER_FLAG);
    frame.put_u32(block.len() as u32);
    frame.extend_from_slice(&block);
    frame.freeze()
}

/// gRPC-Web text bodies may be several base64 chunks, each padded: decoded four characters at a
/// time, so a padding in the middle is the end of one chunk, not an error.
fn decode_text(encoded: &[u8]) -> Option<Bytes> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let clean: Vec<u8> = encoded
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3 + 3);
    for quad in clean.chunks(4) {
        LENIENT.decode_vec(quad, &mut out).ok()?;
    }
    Some(Bytes::from(out))
}

/// The tenant a call names, from the field its REST binding's `{tenant_id}` sets.
fn tenant_in_message(
    frames: &Bytes,
    input: &MessageDescriptor,
    chain: &[FieldDescriptor],
) -> Result<String, Problem> {
    let payload = match frames.first() {
        None => Bytes::new(),
        Some(0) if frames.len() >= 5 => {
            let length = u32::from_be_bytes([frames[1], frames[2], frames[3], frames[4]]) as usize;
            if frames.len() < 5 + length {
                return Err(Problem::bad_request(
                    "the gRPC frame is shorter than it says",
                ));
            }
            frames.slice(5..5 + length)
        }
        Some(1) => {
            return Err(Problem::bad_request(
                "this method names a tenant: send its request uncompressed (no grpc-encoding)",
            ));
        }
        Some(_) => return Err(Problem::bad_request("the request is not a gRPC frame")),
    };
    let message = DynamicMessage::decode(input.clone(), payload).map_err(|_| {
        Problem::bad_request(format!(
            "the request does not decode as {}",
            input.full_name()
        ))
    })?;
    let mut current = message;
    let Some((last, path)) = chain.split_last() else {
        return Ok(String::new());
    };
    for field in path {
        let Value::Message(next) = current.get_field(field).into_owned() else {
            return Ok(String::new());
        };
        current = next;
    }
    Ok(match current.get_field(last).as_ref() {
        Value::String(text) => text.clone(),
        _ => String::new(),
    })
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

fn grpc_timeout_value(timeout: Duration) -> HeaderValue {
    // Milliseconds fit 8 digits up to 27 hours; longer is said in seconds.
    let millis = timeout.as_millis();
    let text = if millis < 100_000_000 {
        format!("{}m", millis.max(1))
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    };
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("1S"))
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(content_type: &'static str) -> Option<Protocol> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        Protocol::of(&headers)
    }

    #[test]
    fn content_types_name_the_protocol() {
        assert_eq!(protocol("application/grpc"), Some(Protocol::Grpc));
        assert_eq!(protocol("application/grpc+proto"), Some(Protocol::Grpc));
        assert_eq!(
            protocol("application/grpc-web"),
            Some(Protocol::Web { text: false })
        );
        assert_eq!(
            protocol("application/grpc-web+proto"),
            Some(Protocol::Web { text: false })
        );
        assert_eq!(
            protocol("application/grpc-web-text"),
            Some(Protocol::Web { text: true })
        );
        assert_eq!(
            protocol("application/grpc-web-text+proto"),
            Some(Protocol::Web { text: true })
        );
        assert_eq!(protocol("application/grpcx"), None);
        assert_eq!(protocol("application/json"), None);
    }

    #[test]
    fn text_bodies_may_be_several_padded_chunks() {
        let engine = &base64::engine::general_purpose::STANDARD;
        let (a, b) = (b"ab".as_slice(), b"cde".as_slice());
        let joined = format!("{}{}", engine.encode(a), engine.encode(b));
        assert_eq!(
            decode_text(joined.as_bytes()).as_deref(),
            Some(b"abcde".as_slice())
        );
        let one = engine.encode(b"a");
        let two = format!("{one}{one}");
        assert_eq!(
            decode_text(two.as_bytes()).as_deref(),
            Some(b"aa".as_slice())
        );
        assert!(decode_text(b"!!!!").is_none());
    }

    #[test]
    fn grpc_timeouts_round_trip() {
        let parse = |s: &'static str| parse_grpc_timeout(&HeaderValue::from_static(s));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("5x"), None);
        assert_eq!(parse("123456789m"), None);
        assert_eq!(grpc_timeout_value(Duration::from_millis(1500)), "1500m");
    }

    #[test]
    fn trailers_become_the_last_frame() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let frame = trailer_frame(&trailers);
        assert_eq!(frame[0], TRAILER_FLAG);
        assert_eq!(&frame[5..], b"grpc-status: 0\r\n");
        assert_eq!(
            u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]),
            16
        );
    }
}
