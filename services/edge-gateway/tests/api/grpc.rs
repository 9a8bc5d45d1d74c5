//! Native gRPC (a tonic client), gRPC-Web (hand-built frames, binary and text, over HTTP/1.1) and
//! server reflection through the edge: the same authentication, tenant, module and rate-limit
//! rules as REST, the message passed through untouched.

use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use keel_edge_gateway::DynamicCodec;
use keel_kernel::TenantId;
use keel_proto::ai::v1 as ai;
use keel_proto::tenancy::v1 as tenancy;
use prost::Message;
use prost_reflect::DynamicMessage;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::support::{ECHO, Harness, pool};

async fn channel(h: &Harness) -> Channel {
    Channel::from_shared(h.base.clone())
        .expect("a URI")
        .connect()
        .await
        .expect("the edge accepts gRPC")
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}

#[tokio::test]
async fn a_tonic_client_calls_through_the_edge_with_the_same_auth_and_tenant_rules() {
    let h = Harness::start().await;
    let mut client = ai::ai_service_client::AiServiceClient::new(channel(&h).await);
    let mine = ai::GetQuotaRequest {
        tenant_id: h.tenant.to_string(),
    };
    let quota = client
        .get_quota(with_token(mine.clone(), &h.token))
        .await
        .expect("allowed")
        .into_inner();
    assert_eq!(quota.tenant_id, h.tenant.to_string());

    let other = ai::GetQuotaRequest {
        tenant_id: TenantId::new().to_string(),
    };
    let refused = client
        .get_quota(with_token(other, &h.token))
        .await
        .expect_err("another tenant is refused");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("scoped to tenant"),
        "{refused:?}"
    );

    let anonymous = client
        .get_quota(tonic::Request::new(mine.clone()))
        .await
        .expect_err("no token is refused");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");

    let forged = client
        .get_quota(with_token(mine.clone(), "not.a.jwt"))
        .await
        .expect_err("a bad token is refused");
    assert_eq!(forged.code(), Code::Unauthenticated, "{forged:?}");

    // The tenant's modules are checked as for REST (a tenant tenancy has not answered for yet:
    // entitlements are cached per tenant).
    let mut fresh = ai::ai_service_client::AiServiceClient::new(channel(&h).await);
    let tenant = TenantId::new();
    h.tenancy.tenants.lock().expect("lock").insert(
        tenant.to_string(),
        (tenancy::TenantState::Active, vec!["billing".into()]),
    );
    let token = h.issuer.token(
        keel_testkit::tokens::TokenSpec::any_user()
            .tenant(tenant)
            .perm("*"),
    );
    let without_module = fresh
        .get_quota(with_token(
            ai::GetQuotaRequest {
                tenant_id: tenant.to_string(),
            },
            &token,
        ))
        .await
        .expect_err("a tenant without the module is refused");
    assert_eq!(
        without_module.code(),
        Code::PermissionDenied,
        "{without_module:?}"
    );

    // An API key works as for REST.
    let mut request = tonic::Request::new(mine);
    request.metadata_mut().insert(
        "x-api-key",
        crate::support::GOOD_KEY.parse().expect("ASCII"),
    );
    client
        .get_quota(request)
        .await
        .expect("an API key is exchanged");
    h.stop().await;
}

#[tokio::test]
async fn server_streams_and_upstream_statuses_pass_through_with_their_trailers() {
    let h = Harness::start().await;
    let mut client = ai::ai_service_client::AiServiceClient::new(channel(&h).await);
    let request = |prompt: &str| {
        with_token(
            ai::CompleteRequest {
                tenant_id: h.tenant.to_string(),
                prompt: prompt.into(),
                ..Default::default()
            },
            &h.token,
        )
    };
    let mut stream = client
        .stream_complete(request("one two three"))
        .await
        .expect("a stream")
        .into_inner();
    let mut words = Vec::new();
    while let Some(chunk) = stream.message().await.expect("a chunk") {
        words.push(chunk.delta);
    }
    assert_eq!(words, ["one", "two", "three", ""]);

    let mut failing = client
        .stream_complete(request("one fail"))
        .await
        .expect("a stream")
        .into_inner();
    assert_eq!(
        failing
            .message()
            .await
            .expect("a chunk")
            .expect("one")
            .delta,
        "one"
    );
    let status = failing
        .message()
        .await
        .expect_err("the trailers carry the error");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "the model went away");

    // A dynamic call to the echo service: a public method needs no token, and what the service
    // receives is what the gateway vouches for, not what the client claims.
    let pool = pool();
    let ping = pool
        .get_service_by_name(ECHO)
        .and_then(|s| s.methods().find(|m| m.name() == "Ping"))
        .expect("Ping");
    let mut grpc = tonic::client::Grpc::new(channel(&h).await);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(DynamicMessage::new(ping.input()));
    request
        .metadata_mut()
        .insert("x-tenant-id", "forged".parse().expect("ASCII"));
    request
        .metadata_mut()
        .insert("accept-language", "fr".parse().expect("ASCII"));
    let reply = grpc
        .unary(
            request,
            http::uri::PathAndQuery::from_static("/keel.test.v1.EchoService/Ping"),
            DynamicCodec::new(ping.output()),
        )
        .await
        .expect("a public method needs no token")
        .into_inner();
    let metadata = format!("{:?}", reply.get_field_by_name("metadata"));
    assert!(metadata.contains("x-keel-client-ip"), "{metadata}");
    assert!(metadata.contains("accept-language"), "{metadata}");
    assert!(!metadata.contains("forged"), "{metadata}");

    // A method the route table does not expose is not reachable, even on an exposed service.
    let internal = pool
        .get_service_by_name(ECHO)
        .and_then(|s| s.methods().find(|m| m.name() == "Internal"))
        .expect("Internal");
    grpc.ready().await.expect("ready");
    let unexposed = grpc
        .unary(
            with_token(DynamicMessage::new(internal.input()), &h.token),
            http::uri::PathAndQuery::from_static("/keel.test.v1.EchoService/Internal"),
            DynamicCodec::new(internal.output()),
        )
        .await
        .expect_err("not exposed");
    assert_eq!(unexposed.code(), Code::Unimplemented);
    h.stop().await;
}

/// One uncompressed gRPC frame.
fn frame(message: &impl Message) -> Bytes {
    let payload = message.encode_to_vec();
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(0);
    out.put_u32(payload.len() as u32);
    out.extend_from_slice(&payload);
    out.freeze()
}

/// The data frames and the trailer block of a gRPC-Web body.
fn split_web_body(mut body: Bytes) -> (Vec<Bytes>, String) {
    let mut messages = Vec::new();
    let mut trailers = String::new();
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let length = body.get_u32() as usize;
        let content = body.split_to(length);
        if flag & 0x80 != 0 {
            trailers = String::from_utf8(content.to_vec()).expect("ASCII trailers");
        } else {
            messages.push(content);
        }
    }
    assert!(body.is_empty(), "a truncated frame");
    (messages, trailers)
}

#[tokio::test]
async fn grpc_web_binary_and_text_over_http1_with_trailers_in_the_body_and_cors() {
    let h = Harness::start().await;
    let url = h.url("/ai.v1.AiService/GetQuota");
    let request = ai::GetQuotaRequest {
        tenant_id: h.tenant.to_string(),
    };
    let response = h
        .http
        .post(&url)
        .bearer_auth(&h.token)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "https://app.example.com")
        .body(frame(&request))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/grpc-web+proto");
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        headers["access-control-expose-headers"]
            .to_str()
            .expect("ASCII")
            .contains("grpc-status")
    );
    let (messages, trailers) = split_web_body(response.bytes().await.expect("a body"));
    assert_eq!(messages.len(), 1);
    let quota = ai::Quota::decode(messages[0].clone()).expect("a Quota");
    assert_eq!(quota.tenant_id, h.tenant.to_string());
    assert!(trailers.contains("grpc-status: 0\r\n"), "{trailers:?}");

    // The text variant: base64 both ways.
    let engine = &base64::engine::general_purpose::STANDARD;
    let response = h
        .http
        .post(&url)
        .bearer_auth(&h.token)
        .header("content-type", "application/grpc-web-text")
        .body(engine.encode(frame(&request)))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/grpc-web-text+proto"
    );
    let text = response.text().await.expect("a body");
    let mut decoded = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        engine.decode_vec(quad, &mut decoded).expect("base64");
    }
    let (messages, trailers) = split_web_body(Bytes::from(decoded));
    assert_eq!(
        ai::Quota::decode(messages[0].clone())
            .expect("a Quota")
            .tenant_id,
        h.tenant.to_string()
    );
    assert!(trailers.contains("grpc-status: 0"), "{trailers:?}");

    // Another tenant: a trailers-only refusal, readable by a browser.
    let other = ai::GetQuotaRequest {
        tenant_id: TenantId::new().to_string(),
    };
    let refused = h
        .http
        .post(&url)
        .bearer_auth(&h.token)
        .header("content-type", "application/grpc-web+proto")
        .body(frame(&other))
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 200);
    assert_eq!(refused.headers()["grpc-status"], "7");
    // No token on a protected method.
    let anonymous = h
        .http
        .post(&url)
        .header("content-type", "application/grpc-web+proto")
        .body(frame(&request))
        .send()
        .await
        .expect("answers");
    assert_eq!(anonymous.headers()["grpc-status"], "16");
    // Not base64.
    let garbled = h
        .http
        .post(&url)
        .bearer_auth(&h.token)
        .header("content-type", "application/grpc-web-text")
        .body("%%%%")
        .send()
        .await
        .expect("answers");
    assert_eq!(garbled.headers()["grpc-status"], "3");

    // The browser's preflight allows the gRPC-Web headers.
    let preflight = h
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, x-grpc-web, x-user-agent",
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(preflight.status(), 204);
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("x-user-agent"),
        "{allowed}"
    );
    h.stop().await;
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_at_the_edge_list_only_the_exposed_services() {
    let h = Harness::start().await;
    let expected = [
        "ai.v1.AiService",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "keel.test.v1.EchoService",
    ];
    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(channel(&h).await);
        let requests = [
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileContainingSymbol("ai.v1.AiService".into()),
            MessageRequest::FileContainingSymbol("tenancy.v1.ModuleService".into()),
        ]
        .map(|message| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(message),
        });
        let mut replies = client
            .server_reflection_info(futures::stream::iter(requests))
            .await
            .expect("reflection at the edge, no token needed")
            .into_inner();
        let reply = replies.message().await.expect("a reply").expect("one");
        let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
            panic!("{reply:?}");
        };
        let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        assert_eq!(names, expected);
        let reply = replies.message().await.expect("a reply").expect("one");
        let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
            panic!("{reply:?}");
        };
        let file =
            prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
                .expect("a file");
        assert_eq!(file.name(), "ai/v1/ai.proto");
        let unexposed = replies
            .message()
            .await
            .expect_err("an internal service is not described");
        assert_eq!(unexposed.code(), Code::NotFound, "{unexposed:?}");
    }
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(channel(&h).await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .expect("v1alpha reflection at the edge")
            .into_inner();
        let reply = replies.message().await.expect("a reply").expect("one");
        let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
            panic!("{reply:?}");
        };
        let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        assert_eq!(names, expected);
    }
    h.stop().await;
}
