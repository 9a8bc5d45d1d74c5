//! keel-load: drives the real mesh through the edge gateway (REST) with tenants and users doing
//! the platform's work, records every write the mesh acknowledged, and afterwards checks, per
//! tenant, that each acknowledged write exists exactly once, that its downstream effect happened
//! exactly once (billing's `ai.tokens` usage equals the AI usage log), and that no tenant ever
//! read another's data.
//!
//! ```text
//! keel-load --gateway http://127.0.0.1:8080 --tenants 20 --clients 200 --duration-secs 30
//! keel-load --mode reads --clients 1000 --duration-secs 20      # GET /v1/me only (issue 16.3)
//! keel-load ... --write BENCHMARKS.md --section "chaos: NATS killed 20 s"
//! ```
//!
//! Exit status 1 when anything acknowledged was lost or doubled, or a cross-tenant read succeeded.

#![forbid(unsafe_code)]

mod ledger;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::ledger::{Ledger, Tenant};

const PASSWORD: &str = "Correct-horse-9-battery";

#[derive(Debug, Clone)]
struct Args {
    gateway: String,
    tenants: usize,
    clients: usize,
    duration: Duration,
    /// `mixed` (the platform's work) or `reads` (GET /v1/me only).
    mode: String,
    /// How long verification waits for events to reach their consumers.
    settle: Duration,
    write: Option<String>,
    section: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        gateway: "http://127.0.0.1:8080".into(),
        tenants: 10,
        clients: 50,
        duration: Duration::from_secs(20),
        mode: "mixed".into(),
        settle: Duration::from_secs(60),
        write: None,
        section: "load".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--gateway" => args.gateway = value()?,
            "--tenants" => args.tenants = value()?.parse().context("--tenants: a number")?,
            "--clients" => args.clients = value()?.parse().context("--clients: a number")?,
            "--duration-secs" => {
                args.duration = Duration::from_secs(value()?.parse().context("--duration-secs")?)
            }
            "--settle-secs" => {
                args.settle = Duration::from_secs(value()?.parse().context("--settle-secs")?)
            }
            "--mode" => args.mode = value()?,
            "--write" => args.write = Some(value()?),
            "--section" => args.section = value()?,
            "-h" | "--help" => {
                println!(
                    "keel-load [--gateway URL] [--tenants N] [--clients N] [--duration-secs S] \
                     [--settle-secs S] [--mode mixed|reads] [--write FILE --section TITLE]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    if !matches!(args.mode.as_str(), "mixed" | "reads") {
        bail!("--mode: mixed or reads, not {}", args.mode);
    }
    if args.tenants < 2 {
        bail!("--tenants: at least 2 (cross-tenant reads need another tenant)");
    }
    Ok(args)
}

/// One HTTP client for every simulated user (its pool holds a connection per concurrent client).
#[derive(Clone)]
struct Gateway {
    http: reqwest::Client,
    base: String,
    ledger: Arc<Ledger>,
}

struct Answer {
    status: StatusCode,
    body: Value,
    retry_after: Option<Duration>,
}

impl Gateway {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let started = Instant::now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .map(Duration::from_secs);
                let body = response.json().await.unwrap_or(Value::Null);
                Answer {
                    status,
                    body,
                    retry_after,
                }
            }
            // No answer at all (connection refused, reset, client timeout): recorded as 599.
            Err(_) => Answer {
                status: StatusCode::from_u16(599).expect("a valid code"),
                body: Value::Null,
                retry_after: None,
            },
        };
        self.ledger
            .observe(answer.status.as_u16(), started.elapsed());
        answer
    }

    /// A write that may be retried: the same idempotency key on every attempt, after the delay the
    /// mesh asked for, so a retry can never do the work twice.
    async fn write_with_retries(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        key: &str,
    ) -> Option<Value> {
        for _ in 0..4 {
            let answer = self
                .call(Method::POST, path, Some(token), Some(body), Some(key))
                .await;
            if answer.status.is_success() {
                return Some(answer.body);
            }
            let retryable = matches!(answer.status.as_u16(), 429 | 502 | 503 | 504 | 599);
            if !retryable {
                return None;
            }
            let wait = answer.retry_after.unwrap_or(Duration::from_millis(500));
            tokio::time::sleep(wait.min(Duration::from_secs(2))).await;
        }
        None
    }
}

fn int(value: &Value) -> i64 {
    // proto3 JSON writes int64 as a string.
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// Register an owner, sign in, create a tenant, switch into it: the token the tenant's users use.
async fn set_up_tenant(gateway: &Gateway, run: &str, index: usize) -> anyhow::Result<Tenant> {
    let email = format!("load-{run}-{index}@example.com");
    let registered = gateway
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(&json!({"email": email, "password": PASSWORD, "displayName": "Load"})),
            None,
        )
        .await;
    if !registered.status.is_success() {
        bail!(
            "register {email}: {} {}",
            registered.status,
            registered.body
        );
    }
    let login = gateway
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(&json!({"email": email, "password": PASSWORD})),
            None,
        )
        .await;
    let user_token = login.body["accessToken"]
        .as_str()
        .with_context(|| format!("login {email}: {} {}", login.status, login.body))?
        .to_owned();
    let created = gateway
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&user_token),
            Some(&json!({"name": format!("Load {index}"), "slug": format!("load-{run}-{index}")})),
            None,
        )
        .await;
    let id = created.body["id"]
        .as_str()
        .with_context(|| format!("create tenant: {} {}", created.status, created.body))?
        .to_owned();
    // Identity learns of the owner's membership from tenancy's event: eventually, not at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let switched = gateway
            .call(
                Method::POST,
                "/v1/auth/switch-tenant",
                Some(&user_token),
                Some(&json!({"tenantId": id})),
                None,
            )
            .await;
        if let Some(token) = switched.body["accessToken"].as_str() {
            return Ok(Tenant {
                id,
                token: token.to_owned(),
            });
        }
        if Instant::now() > deadline {
            bail!("switch tenant: {} {}", switched.status, switched.body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One simulated client: works for its tenant until `until`.
async fn client_loop(
    gateway: Gateway,
    tenants: Arc<Vec<Tenant>>,
    index: usize,
    mode: String,
    until: Instant,
) {
    let own = &tenants[index % tenants.len()];
    let other = &tenants[(index + 1) % tenants.len()];
    let mut step: u64 = index as u64;
    while Instant::now() < until {
        step = step.wrapping_add(1);
        if mode == "reads" {
            gateway
                .call(Method::GET, "/v1/me", Some(&own.token), None, None)
                .await;
            continue;
        }
        match step % 20 {
            // Tenant reads: the bulk of real traffic.
            0..=7 => {
                let path = format!("/v1/tenants/{}", own.id);
                let answer = gateway
                    .call(Method::GET, &path, Some(&own.token), None, None)
                    .await;
                if answer.status.is_success() && answer.body["id"].as_str() != Some(&own.id) {
                    gateway.ledger.cross_tenant_read();
                }
            }
            8..=10 => {
                gateway
                    .call(Method::GET, "/v1/me", Some(&own.token), None, None)
                    .await;
            }
            // AI completions on the development provider, usage flowing to billing.
            11..=14 => {
                let key = uuid::Uuid::new_v4().to_string();
                let path = format!("/v1/tenants/{}/ai/completions", own.id);
                let body = json!({"prompt": format!("load {step}"), "maxTokens": 16});
                if let Some(done) = gateway
                    .write_with_retries(&path, &own.token, &body, &key)
                    .await
                    && let Some(id) = done["id"].as_str()
                {
                    gateway
                        .ledger
                        .completion(&own.id, id, int(&done["usage"]["totalTokens"]));
                }
            }
            // Invitations.
            15..=16 => {
                let email = format!("invitee-{}@example.com", uuid::Uuid::new_v4().simple());
                let path = format!("/v1/tenants/{}/invitations", own.id);
                let body = json!({"email": email, "role": "member"});
                let key = uuid::Uuid::new_v4().to_string();
                if let Some(done) = gateway
                    .write_with_retries(&path, &own.token, &body, &key)
                    .await
                    && let Some(id) = done["id"].as_str()
                {
                    gateway.ledger.invitation(&own.id, id);
                }
            }
            // Another tenant's data with this tenant's token: must always be refused.
            _ => {
                let path = if step.is_multiple_of(2) {
                    format!("/v1/tenants/{}", other.id)
                } else {
                    format!("/v1/tenants/{}/ai/usage", other.id)
                };
                let answer = gateway
                    .call(Method::GET, &path, Some(&own.token), None, None)
                    .await;
                if answer.status.is_success() {
                    gateway.ledger.cross_tenant_read();
                }
            }
        }
    }
}

/// Every page of a tenant's AI usage log: (record id, total tokens) of succeeded calls.
async fn usage_log(gateway: &Gateway, tenant: &Tenant) -> Option<Vec<(String, i64)>> {
    let mut records = Vec::new();
    let mut page_token = String::new();
    loop {
        let path = format!(
            "/v1/tenants/{}/ai/usage?pageSize=200&pageToken={page_token}",
            tenant.id
        );
        let answer = gateway
            .call(Method::GET, &path, Some(&tenant.token), None, None)
            .await;
        if !answer.status.is_success() {
            return None;
        }
        for record in answer.body["usageRecords"].as_array().into_iter().flatten() {
            if record["status"].as_str() == Some("CALL_STATUS_SUCCEEDED") {
                records.push((
                    record["id"].as_str().unwrap_or_default().to_owned(),
                    int(&record["usage"]["totalTokens"]),
                ));
            }
        }
        match answer.body["nextPageToken"].as_str() {
            Some(next) if !next.is_empty() => page_token = next.to_owned(),
            _ => return Some(records),
        }
    }
}

/// Billing's `ai.tokens` usage for the tenant in the current period.
async fn billed_tokens(gateway: &Gateway, tenant: &Tenant) -> Option<i64> {
    let path = format!(
        "/v1/tenants/{}/usage-summaries?meterId=ai.tokens",
        tenant.id
    );
    let answer = gateway
        .call(Method::GET, &path, Some(&tenant.token), None, None)
        .await;
    if !answer.status.is_success() {
        return None;
    }
    Some(
        answer.body["usageSummaries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| int(&s["quantity"]))
            .sum(),
    )
}

/// After the load: every acknowledged write exists once; billing counted each completion once.
async fn verify(gateway: &Gateway, tenants: &[Tenant], settle: Duration) -> report::Verification {
    let mut verification = report::Verification::default();
    for tenant in tenants {
        let answer = gateway
            .call(
                Method::GET,
                &format!("/v1/tenants/{}", tenant.id),
                Some(&tenant.token),
                None,
                None,
            )
            .await;
        if !answer.status.is_success() {
            verification.lost += 1;
        }
        let acknowledged = gateway.ledger.completions_of(&tenant.id);
        let deadline = Instant::now() + settle;
        loop {
            let log = usage_log(gateway, tenant).await;
            let billed = billed_tokens(gateway, tenant).await;
            let (Some(log), Some(billed)) = (log, billed) else {
                if Instant::now() > deadline {
                    verification.unverifiable += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let check = ledger::compare(&acknowledged, &log, billed);
            if check.settled() || Instant::now() > deadline {
                verification.add(&check);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    verification
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let ledger = Arc::new(Ledger::default());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .tcp_nodelay(true)
        .build()?;
    let gateway = Gateway {
        http,
        base: args.gateway.trim_end_matches('/').to_owned(),
        ledger: ledger.clone(),
    };
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    eprintln!("==> setting up {} tenants", args.tenants);
    let mut tenants = Vec::new();
    for index in 0..args.tenants {
        tenants.push(set_up_tenant(&gateway, &run, index).await?);
    }
    let tenants = Arc::new(tenants);
    ledger.reset_latencies();

    eprintln!(
        "==> {} clients, mode {}, for {:?}",
        args.clients, args.mode, args.duration
    );
    let started = Instant::now();
    let until = started + args.duration;
    let clients: Vec<_> = (0..args.clients)
        .map(|index| {
            tokio::spawn(client_loop(
                gateway.clone(),
                tenants.clone(),
                index,
                args.mode.clone(),
                until,
            ))
        })
        .collect();
    for client in clients {
        client.await?;
    }
    let elapsed = started.elapsed();
    let load = ledger.load_figures(elapsed);

    eprintln!("==> verifying (waiting up to {:?} for events)", args.settle);
    let verification = if args.mode == "mixed" {
        Some(verify(&gateway, &tenants, args.settle).await)
    } else {
        None
    };
    let cross_tenant = ledger.cross_tenant_reads();
    let text = report::render(
        &args_summary(&args),
        &load,
        verification.as_ref(),
        cross_tenant,
    );
    println!("{text}");
    if let Some(path) = &args.write {
        report::write_section(path, &args.section, &text)?;
        eprintln!("==> wrote section {:?} of {path}", args.section);
    }
    let failed = cross_tenant > 0
        || verification
            .as_ref()
            .is_some_and(|v| v.lost > 0 || v.duplicated > 0);
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

fn args_summary(args: &Args) -> String {
    format!(
        "`keel-load --mode {} --tenants {} --clients {} --duration-secs {}`",
        args.mode,
        args.tenants,
        args.clients,
        args.duration.as_secs()
    )
}
