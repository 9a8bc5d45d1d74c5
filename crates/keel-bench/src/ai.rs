//! The ai-gateway's overhead over calling a provider directly, and memory search latency.
//!
//! The provider is the test kit's fake (OpenAI wire format, streamed, no think time), so what is
//! measured is the gateway's own work: authentication, validation, guardrails (redaction scans),
//! tokenizer counting, the reserve transaction, routing, SSE parsing, and the settle transaction
//! (usage row, outbox row, quota update).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_ai_gateway::Settings;
use keel_ai_gateway::domain::SearchTerms;
use keel_ai_gateway::settings::{
    DeploymentSettings, ModelSettings, ProviderKind, ProviderSettings,
};
use keel_kernel::auth::roles;
use keel_kernel::{TenantId, UserId};
use keel_proto::ai::v1 as pb;
use keel_proto::ai::v1::ai_service_client::AiServiceClient;
use keel_testkit::fake_llm::FakeLlm;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::report::{Report, micros, quantile};

/// Concurrent clients of the loaded run.
const LOAD_CLIENTS: usize = 32;
const MEMORIES: usize = 10_000;
const PROMPT: &str =
    "Summarise the attached notes about the quarterly planning meeting in two sentences.";

struct Gateway {
    client: AiServiceClient<Channel>,
    bearer: MetadataValue<tonic::metadata::Ascii>,
    tenant: TenantId,
}

impl Gateway {
    async fn complete(&self) -> anyhow::Result<Duration> {
        let mut request = tonic::Request::new(pb::CompleteRequest {
            tenant_id: self.tenant.to_string(),
            model: "fake".into(),
            prompt: PROMPT.into(),
            max_tokens: 64,
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", self.bearer.clone());
        let started = Instant::now();
        self.client.clone().complete(request).await?;
        Ok(started.elapsed())
    }

    async fn search(&self, query: &str) -> anyhow::Result<Duration> {
        let mut request = tonic::Request::new(pb::SearchMemoriesRequest {
            tenant_id: self.tenant.to_string(),
            query: query.into(),
            top_k: 5,
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", self.bearer.clone());
        let started = Instant::now();
        self.client.clone().search_memories(request).await?;
        Ok(started.elapsed())
    }
}

struct Direct {
    http: reqwest::Client,
    url: String,
}

impl Direct {
    /// The same call straight to the provider: a streamed chat completion read to its end.
    async fn complete(&self) -> anyhow::Result<Duration> {
        let body = serde_json::json!({
            "model": "fake-1",
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 64,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        let started = Instant::now();
        let response = self.http.post(&self.url).json(&body).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "fake answered {}",
            response.status()
        );
        response.bytes().await?;
        Ok(started.elapsed())
    }
}

fn settings(fake: &FakeLlm) -> Settings {
    let mut settings = Settings::default();
    settings.providers.insert(
        "fake".into(),
        ProviderSettings {
            kind: ProviderKind::Openai,
            base_url: fake.base_url(),
            api_key_env: String::new(),
            connect_timeout_ms: 1_000,
        },
    );
    settings.models.insert(
        "fake".into(),
        ModelSettings {
            deployments: vec![DeploymentSettings {
                provider: "fake".into(),
                model: "fake-1".into(),
                input_micros_per_million: 150_000,
                output_micros_per_million: 600_000,
                first_byte_timeout_ms: 10_000,
                idle_timeout_ms: 10_000,
            }],
        },
    );
    // A limit (not unlimited), so every call runs the conditional reservation.
    settings.default_period_tokens = i64::MAX / 4;
    settings
}

/// `LOAD_CLIENTS` concurrent clients; `call(client)` makes one call for client number `client`.
async fn loaded<F, Fut>(per_client: usize, call: F) -> anyhow::Result<(Vec<Duration>, f64)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Duration>> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(LOAD_CLIENTS);
    for client in 0..LOAD_CLIENTS {
        let call = call.clone();
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                latencies.push(call(client).await?);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.await??);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    Ok((all, rate))
}

/// Memories in the platform's four languages, with a distinct word each so queries vary.
fn memory_text(i: usize) -> String {
    let topics = [
        "invoice",
        "refund",
        "shipping",
        "warranty",
        "onboarding",
        "security",
        "pricing",
    ];
    match i % 4 {
        0 => format!(
            "Note {i}: the {} policy for customer account {} was reviewed by the support team.",
            topics[i % topics.len()],
            i * 7
        ),
        1 => format!("ملاحظة {i}: تمت مراجعة سياسة الاسترداد للحساب رقم {}.", i * 7),
        2 => format!("笔记{i}：客户账户{}的退款政策已由支持团队审核。", i * 7),
        _ => format!(
            "메모 {i}: 고객 계정 {}의 환불 정책은 지원팀이 검토했습니다.",
            i * 7
        ),
    }
}

async fn seed_memories(db: &TestDatabase, tenant: TenantId) -> anyhow::Result<()> {
    let admin = db.admin_pool().await;
    for batch in (0..MEMORIES).collect::<Vec<_>>().chunks(1_000) {
        let mut ids = Vec::new();
        let mut contents = Vec::new();
        let mut terms = Vec::new();
        let mut ngrams = Vec::new();
        for &i in batch {
            let content = memory_text(i);
            let search = SearchTerms::of(&content);
            ids.push(format!("memory-{i}"));
            terms.push(search.words_text());
            ngrams.push(search.ngrams_text());
            contents.push(content);
        }
        sqlx::query(
            "INSERT INTO ai_gateway.memories (tenant_id, id, namespace, content, metadata, terms, ngrams, created_at, updated_at) \
             SELECT $1, id, 'bench', content, '{}', terms, ngrams, now(), now() \
               FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS m(id, content, terms, ngrams)",
        )
        .bind(tenant.as_uuid())
        .bind(&ids)
        .bind(&contents)
        .bind(&terms)
        .bind(&ngrams)
        .execute(&admin)
        .await?;
    }
    sqlx::query("ANALYZE ai_gateway.memories")
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(())
}

pub async fn gateway_overhead(
    report: &mut Report,
    sequential: usize,
    per_client: usize,
    searches: usize,
) -> anyhow::Result<()> {
    let fake = FakeLlm::start().await;
    let issuer = TestIssuer::start().await;
    let nats = TestNats::start().await;
    let db = TestDatabase::create().await;
    let db_config = db.provision("ai_gateway").await;
    let mut config = stack::config_with(
        "ai-gateway",
        db_config,
        stack::nats_config(&nats.url()),
        settings(&fake),
    );
    config.auth = issuer.auth_config();
    config.database.max_connections = 16;
    let running = keel_ai_gateway::build(config).await?;
    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))?
        .connect()
        .await?;
    let member_of = |tenant: TenantId| -> anyhow::Result<Arc<Gateway>> {
        let token = issuer.token(
            TokenSpec::user(UserId::new())
                .tenant(tenant)
                .role(roles::MEMBER)
                .perms(roles::built_in(roles::MEMBER).unwrap_or_default()),
        );
        Ok(Arc::new(Gateway {
            client: AiServiceClient::new(channel.clone()),
            bearer: format!("Bearer {token}").parse()?,
            tenant,
        }))
    };
    let tenant = TenantId::new();
    let gateway = member_of(tenant)?;
    // One tenant per client: no two calls wait on the same quota row.
    let tenants: Vec<Arc<Gateway>> = (0..LOAD_CLIENTS)
        .map(|_| member_of(TenantId::new()))
        .collect::<anyhow::Result<_>>()?;
    let direct = Arc::new(Direct {
        http: reqwest::Client::builder().no_proxy().build()?,
        url: format!("{}/chat/completions", fake.base_url()),
    });
    for _ in 0..50 {
        gateway.complete().await?;
        direct.complete().await?;
    }

    let (mut through, mut straight) = (Vec::new(), Vec::new());
    for _ in 0..sequential {
        through.push(gateway.complete().await?);
        straight.push(direct.complete().await?);
    }
    through.sort();
    straight.sort();
    let g = gateway.clone();
    let (through_loaded, gateway_rate) = loaded(per_client, move |_| {
        let g = g.clone();
        async move { g.complete().await }
    })
    .await?;
    let spread = Arc::new(tenants);
    let (through_spread, spread_rate) = loaded(per_client, move |client| {
        let g = spread[client].clone();
        async move { g.complete().await }
    })
    .await?;
    let d = direct.clone();
    let (straight_loaded, direct_rate) = loaded(per_client, move |_| {
        let d = d.clone();
        async move { d.complete().await }
    })
    .await?;

    seed_memories(&db, tenant).await?;
    let queries = [
        "refund policy review",
        "invoice account",
        "الاسترداد للحساب",
        "退款政策",
        "환불 정책",
        "security team",
    ];
    for query in queries {
        gateway.search(query).await?;
    }
    let mut search_latency = Vec::with_capacity(searches);
    for i in 0..searches {
        search_latency.push(gateway.search(queries[i % queries.len()]).await?);
    }
    search_latency.sort();
    running.stop().await?;

    let added = |g: &[Duration], d: &[Duration], q: f64| {
        let (d, g) = (quantile(d, q), quantile(g, q));
        format!(
            "{} (direct {} → gateway {})",
            micros(g.saturating_sub(d)),
            micros(d),
            micros(g)
        )
    };
    let memory_rows: BTreeMap<&str, String> = BTreeMap::from([
        ("p50", micros(quantile(&search_latency, 0.50))),
        ("p99", micros(quantile(&search_latency, 0.99))),
    ]);
    report.section(
        "AI gateway overhead",
        &format!(
            "A completion (a 12-word prompt, 14 streamed chunks back, usage in the stream) from the test \
             kit's fake OpenAI-compatible provider (no think time), called directly (HTTP POST, SSE read to \
             its end) and through the ai-gateway's `Complete` over gRPC: token verification, \
             validation, guardrail scans, tokenizer count, the reserve transaction (one statement: the \
             conditional UPDATE of the tenant's quota row and its reservation row; the tenant's sweep job), streaming and SSE parsing, and the \
             settle transaction (quota, usage row, outbox row). One sequential client: {sequential} calls \
             per side, interleaved. Under load: {LOAD_CLIENTS} concurrent clients × {per_client} calls, \
             all for ONE tenant (every call serialises on that tenant's quota row: the worst case), and \
             again with one tenant per client. \
             Memory search: SearchMemories (top 5) over {MEMORIES} memories of one tenant in four \
             languages, {searches} queries in English, Arabic, Chinese and Korean, one client. \
             Everything shares the machine's cores."
        ),
        vec![
            ("added latency p50, 1 client".into(), added(&through, &straight, 0.50)),
            ("added latency p99, 1 client".into(), added(&through, &straight, 0.99)),
            (
                format!("added latency p50, {LOAD_CLIENTS} clients"),
                added(&through_loaded, &straight_loaded, 0.50),
            ),
            (
                format!("added latency p99, {LOAD_CLIENTS} clients"),
                added(&through_loaded, &straight_loaded, 0.99),
            ),
            (
                format!("added latency p50, {LOAD_CLIENTS} clients, one tenant each"),
                added(&through_spread, &straight_loaded, 0.50),
            ),
            (
                format!("added latency p99, {LOAD_CLIENTS} clients, one tenant each"),
                added(&through_spread, &straight_loaded, 0.99),
            ),
            ("throughput direct".into(), format!("{direct_rate:.0} calls/s")),
            ("throughput via ai-gateway, one tenant".into(), format!("{gateway_rate:.0} calls/s")),
            (
                format!("throughput via ai-gateway, {LOAD_CLIENTS} tenants"),
                format!("{spread_rate:.0} calls/s"),
            ),
            (
                format!("memory search p50 ({MEMORIES} memories)"),
                memory_rows["p50"].clone(),
            ),
            (
                format!("memory search p99 ({MEMORIES} memories)"),
                memory_rows["p99"].clone(),
            ),
        ],
    );
    Ok(())
}
