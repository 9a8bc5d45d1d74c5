//! The same unary RPC, identity's `UserService.GetMe`, called directly over gRPC and through the
//! edge gateway, over REST (`GET /v1/me`) and as native gRPC, side by side in one run; plus the
//! public JWKS route (`GET /.well-known/jwks.json`, no token).
//!
//! The gateway runs in a child process (this binary again, with `KEEL_BENCH_SERVE_GATEWAY` naming
//! its configuration), so its CPU time can be read from `/proc/<pid>/stat` over each run and
//! divided by the calls: the proxy's CPU per request, apart from the load generator's and
//! identity's. No tracing subscriber is installed in the child (as in the in-process runs
//! before): spans are created but not recorded.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_edge_gateway::{Application, Loaded, descriptors};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::user_service_client::UserServiceClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::metadata::MetadataValue;

use crate::identity::IdentityUnderTest;
use crate::report::{Report, micros, quantile};

/// Concurrent clients for the throughput run: enough to keep both cores busy.
const LOAD_CLIENTS: usize = 16;

/// The environment variable that turns this binary into the gateway under test.
pub const SERVE_GATEWAY: &str = "KEEL_BENCH_SERVE_GATEWAY";

/// The child's side: serve the gateway configured at `path`, print its address, and stop when
/// the parent closes stdin.
pub async fn serve_child(path: PathBuf) -> anyhow::Result<()> {
    let loaded = Loaded::load(&path)?;
    let app = Application::build(loaded, descriptors::pool(&[])?).await?;
    println!("{}", app.addr);
    tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut sink = [0u8; 64];
        while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await?;
    app.stop().await;
    Ok(())
}

/// The gateway child process.
struct GatewayProcess {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
    ticks_per_sec: f64,
    dir: PathBuf,
}

impl GatewayProcess {
    async fn start(identity: &IdentityUnderTest) -> anyhow::Result<GatewayProcess> {
        let dir = std::env::temp_dir().join(format!("keel-bench-gateway-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("edge-gateway.yaml"),
            format!(
                "http:\n  listen: 127.0.0.1:0\nauth:\n  jwks_url: http://{}/.well-known/jwks.json\n  issuer: keel\n  audience: keel\ntelemetry:\n  log_level: error\nroutes: routes.yaml\n",
                identity.running.admin_addr
            ),
        )?;
        // No rate limits: the figure is the proxy path, not the limiter's refusals.
        std::fs::write(
            dir.join("routes.yaml"),
            format!(
                "upstreams:\n  identity: {{ address: \"{}\", timeout_ms: 10000 }}\nservices:\n  identity.v1.UserService: {{ upstream: identity }}\n  identity.v1.AuthService: {{ upstream: identity }}\n",
                identity.running.grpc_addr
            ),
        )?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .env(SERVE_GATEWAY, dir.join("edge-gateway.yaml"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        let addr = line.trim().parse()?;
        let ticks = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0);
        Ok(GatewayProcess {
            child,
            addr,
            ticks_per_sec: ticks,
            dir,
        })
    }

    /// User plus system CPU time of the gateway process so far.
    fn cpu(&self) -> anyhow::Result<Duration> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| anyhow::anyhow!("the gateway exited"))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // After the command name (which may hold spaces): state, ppid, ... utime is field 14.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| anyhow::anyhow!("odd /proc stat"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(Duration::from_secs_f64(ticks / self.ticks_per_sec))
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn direct_vs_gateway(
    report: &mut Report,
    sequential: usize,
    per_client: usize,
) -> anyhow::Result<()> {
    let mut identity = IdentityUnderTest::start(true).await?;
    let token = identity.access_token().await?;
    let gateway = GatewayProcess::start(&identity).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let bearer: MetadataValue<_> = format!("Bearer {token}").parse()?;
    let direct = Arc::new(Caller::Grpc {
        client: UserServiceClient::new(identity.channel.clone()),
        bearer: bearer.clone(),
    });
    let edge_channel = tonic::transport::Endpoint::from_shared(format!("http://{}", gateway.addr))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let via_edge = Arc::new(Caller::Grpc {
        client: UserServiceClient::new(edge_channel),
        bearer,
    });
    let rest = Arc::new(Caller::Rest {
        http: http.clone(),
        url: format!("http://{}/v1/me", gateway.addr),
        token: Some(token.clone()),
    });
    let jwks = Arc::new(Caller::Rest {
        http,
        url: format!("http://{}/.well-known/jwks.json", gateway.addr),
        token: None,
    });
    for caller in [&direct, &rest, &via_edge, &jwks] {
        for _ in 0..50 {
            caller.call().await?; // warm connections, the gateway's token cache and the JIT of Postgres plans
        }
    }

    // Interleaved, so a noisy neighbour hurts every side alike.
    let (mut direct_latency, mut rest_latency, mut edge_latency) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..sequential {
        direct_latency.push(direct.timed().await?);
        rest_latency.push(rest.timed().await?);
        edge_latency.push(via_edge.timed().await?);
    }
    direct_latency.sort();
    rest_latency.sort();
    edge_latency.sort();

    fn rate(r: f64, slot: &mut (f64, u32)) {
        slot.0 += r;
        slot.1 += 1;
    }
    let (mut direct_rate, mut rest_rate, mut edge_rate, mut jwks_rate) =
        ((0.0, 0), (0.0, 0), (0.0, 0), (0.0, 0));
    let (mut rest_cpu, mut edge_cpu, mut jwks_cpu) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..2 {
        rate(throughput(&direct, per_client).await?, &mut direct_rate);
        let before = gateway.cpu()?;
        rate(throughput(&rest, per_client).await?, &mut rest_rate);
        let after = gateway.cpu()?;
        rest_cpu += after.saturating_sub(before);
        rate(throughput(&via_edge, per_client).await?, &mut edge_rate);
        let later = gateway.cpu()?;
        edge_cpu += later.saturating_sub(after);
        rate(throughput(&jwks, per_client).await?, &mut jwks_rate);
        jwks_cpu += gateway.cpu()?.saturating_sub(later);
    }
    let calls = (2 * LOAD_CLIENTS * per_client) as f64;
    let per_call = |cpu: Duration| format!("{:.0} µs", cpu.as_secs_f64() * 1e6 / calls);
    let mean = |slot: (f64, u32)| slot.0 / f64::from(slot.1.max(1));
    let (direct_rate, rest_rate, edge_rate, jwks_rate) = (
        mean(direct_rate),
        mean(rest_rate),
        mean(edge_rate),
        mean(jwks_rate),
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
    let ratio = |sorted: &[Duration]| {
        quantile(sorted, 0.5).as_secs_f64() / quantile(&direct_latency, 0.5).as_secs_f64()
    };
    report.section(
        "Edge gateway overhead",
        &format!(
            "The same unary RPC, identity's `UserService.GetMe` (bearer JWT verified by identity, one \
             Postgres read), called directly over gRPC and through the edge gateway as `GET /v1/me` \
             (JWT verified at the edge too, JSON transcoding, HTTP/1.1 keep-alive) and as native gRPC \
             through the edge (same checks, no transcoding). Latency: {sequential} calls each, one \
             sequential client, the three kinds interleaved. Throughput: {LOAD_CLIENTS} concurrent \
             clients × {per_client} calls, two rounds per kind, alternating; the public JWKS route \
             (`GET /.well-known/jwks.json`, no token) too. Proxy CPU: the gateway runs in its own \
             process; its user + system CPU time (`/proc/<pid>/stat`) over the throughput rounds, \
             divided by the calls. Load generator, gateway, identity and Postgres share the \
             machine's cores."
        ),
        vec![
            ("added latency p50 (REST)".into(), added(0.50)),
            ("added latency p99 (REST)".into(), added(0.99)),
            ("p50 gateway REST / direct gRPC".into(), format!("{:.2}", ratio(&rest_latency))),
            (
                "p50 gateway native gRPC / direct gRPC".into(),
                format!("{:.2} ({})", ratio(&edge_latency), micros(quantile(&edge_latency, 0.5))),
            ),
            ("throughput direct gRPC".into(), format!("{direct_rate:.0} calls/s")),
            ("throughput via gateway (REST /v1/me)".into(), format!("{rest_rate:.0} calls/s")),
            ("throughput via gateway (native gRPC)".into(), format!("{edge_rate:.0} calls/s")),
            ("throughput via gateway (public JWKS)".into(), format!("{jwks_rate:.0} calls/s")),
            ("gateway / direct throughput".into(), format!("{:.2}", rest_rate / direct_rate)),
            ("proxy CPU per request, REST /v1/me (JWT)".into(), per_call(rest_cpu)),
            ("proxy CPU per request, native gRPC GetMe".into(), per_call(edge_cpu)),
            ("proxy CPU per request, public JWKS".into(), per_call(jwks_cpu)),
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
        token: Option<String>,
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
                let mut request = http.get(url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await?;
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
