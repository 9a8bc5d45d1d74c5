//! The same unary RPC, identity's `UserService.GetMe`, called directly over gRPC and through the
//! edge gateway over REST (`GET /v1/me`), side by side in one run.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_edge_gateway::config::{GatewayConfig, parse};
use keel_edge_gateway::{Application, Loaded, descriptors};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::user_service_client::UserServiceClient;
use tonic::metadata::MetadataValue;

use crate::identity::IdentityUnderTest;
use crate::report::{Report, micros, quantile};

/// Concurrent clients for the throughput run: enough to keep both cores busy.
const LOAD_CLIENTS: usize = 16;

pub async fn direct_vs_gateway(
    report: &mut Report,
    sequential: usize,
    per_client: usize,
) -> anyhow::Result<()> {
    let mut identity = IdentityUnderTest::start(true).await?;
    let token = identity.access_token().await?;
    let config: GatewayConfig = parse(
        &format!(
            "http:\n  listen: 127.0.0.1:0\nauth:\n  jwks_url: http://{}/.well-known/jwks.json\n  issuer: keel\n  audience: keel\ntelemetry:\n  log_level: error\nroutes: routes.yaml\n",
            identity.running.admin_addr
        ),
        Path::new("edge-gateway.yaml"),
    )?;
    // No rate limits: the figure is the transcoding path, not the limiter's refusals.
    let routes = format!(
        "upstreams:\n  identity: {{ address: \"{}\", timeout_ms: 10000 }}\nservices:\n  identity.v1.UserService: {{ upstream: identity }}\n",
        identity.running.grpc_addr
    );
    let loaded = Loaded::from_parts(config, &routes, Path::new("routes.yaml"))?;
    let gateway = Application::build(loaded, descriptors::pool(&[])?).await?;
    let url = format!("http://{}/v1/me", gateway.addr);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let bearer: MetadataValue<_> = format!("Bearer {token}").parse()?;
    let grpc = UserServiceClient::new(identity.channel.clone());

    let direct = Arc::new(Caller::Grpc {
        client: grpc,
        bearer,
    });
    let rest = Arc::new(Caller::Rest { http, url, token });
    for caller in [&direct, &rest] {
        for _ in 0..50 {
            caller.call().await?; // warm connections, the gateway's token cache and the JIT of Postgres plans
        }
    }

    // Interleaved, so a noisy neighbour hurts both sides alike.
    let (mut direct_latency, mut rest_latency) = (Vec::new(), Vec::new());
    for _ in 0..sequential {
        direct_latency.push(direct.timed().await?);
        rest_latency.push(rest.timed().await?);
    }
    direct_latency.sort();
    rest_latency.sort();

    let direct_rate = throughput(&direct, per_client).await?;
    let rest_rate = throughput(&rest, per_client).await?;
    let direct_rate_2 = throughput(&direct, per_client).await?;
    let rest_rate_2 = throughput(&rest, per_client).await?;
    let (direct_rate, rest_rate) = (
        (direct_rate + direct_rate_2) / 2.0,
        (rest_rate + rest_rate_2) / 2.0,
    );

    gateway.stop().await;
    identity.stop().await?;
    let added = |q: f64| {
        let (d, r) = (quantile(&direct_latency, q), quantile(&rest_latency, q));
        format!(
            "{} (direct {} → gateway {})",
            micros(r.saturating_sub(d)),
            micros(d),
            micros(r)
        )
    };
    report.section(
        "Edge gateway overhead",
        &format!(
            "The same unary RPC, identity's `UserService.GetMe` (bearer JWT verified by identity, one \
             Postgres read), called directly over gRPC and through the edge gateway as `GET /v1/me` \
             (JWT verified at the edge too, JSON transcoding, HTTP/1.1 keep-alive). Latency: {sequential} \
             calls each, one sequential client, direct and gateway calls interleaved. Throughput: \
             {LOAD_CLIENTS} concurrent clients × {per_client} calls, two rounds per side, alternating. \
             Load generator, gateway, identity and Postgres share the machine's cores."
        ),
        vec![
            ("added latency p50".into(), added(0.50)),
            ("added latency p99".into(), added(0.99)),
            ("throughput direct gRPC".into(), format!("{direct_rate:.0} calls/s")),
            ("throughput via gateway".into(), format!("{rest_rate:.0} calls/s")),
            ("gateway / direct throughput".into(), format!("{:.2}", rest_rate / direct_rate)),
        ],
    );
    Ok(())
}

enum Caller {
    Grpc {
        client: UserServiceClient<tonic::transport::Channel>,
        bearer: MetadataValue<tonic::metadata::Ascii>,
    },
    Rest {
        http: reqwest::Client,
        url: String,
        token: String,
    },
}

impl Caller {
    async fn call(&self) -> anyhow::Result<()> {
        match self {
            Caller::Grpc { client, bearer } => {
                let mut request = tonic::Request::new(pb::GetMeRequest {});
                request
                    .metadata_mut()
                    .insert("authorization", bearer.clone());
                client.clone().get_me(request).await?;
            }
            Caller::Rest { http, url, token } => {
                let response = http.get(url).bearer_auth(token).send().await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "gateway answered {}",
                    response.status()
                );
                response.bytes().await?;
            }
        }
        Ok(())
    }

    async fn timed(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.call().await?;
        Ok(started.elapsed())
    }
}

async fn throughput(caller: &Arc<Caller>, per_client: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut clients = Vec::with_capacity(LOAD_CLIENTS);
    for _ in 0..LOAD_CLIENTS {
        let caller = caller.clone();
        clients.push(tokio::spawn(async move {
            for _ in 0..per_client {
                caller.call().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for client in clients {
        client.await??;
    }
    Ok((LOAD_CLIENTS * per_client) as f64 / started.elapsed().as_secs_f64())
}
