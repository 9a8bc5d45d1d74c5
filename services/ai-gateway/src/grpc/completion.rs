//! The completion path, shared by Complete and StreamComplete:
//!
//! 1. `prepare`, in one transaction: authorise, validate, claim the idempotency key (a retry with
//!    the same `request_id` gets the first answer back and is not charged again), draw on memory
//!    (only memories the caller may read), apply the guardrails (a refusal is recorded as BLOCKED,
//!    costs nothing and answers CONTENT_FILTER), count the prompt with the tokenizer and reserve
//!    `prompt + max_tokens` against the quota (RESOURCE_EXHAUSTED when it cannot be covered). The
//!    transaction commits the reservation (and the claim) before any provider is called.
//! 2. `Call::run`: route to a deployment (fallback before the first byte), forward the text,
//!    check the output when configured, and stop the provider when the client goes away.
//! 3. `Call::settle`, in one transaction: charge what was produced (the provider's usage report
//!    if it sent one, else the tokenizer's count), release the rest of the reservation, write the
//!    usage record and its `ai.usage.recorded` event, and complete (or release) the idempotency
//!    key.

use chrono::{DateTime, Utc};
use keel_kernel::auth::PrincipalKind;
use keel_kernel::db::{self, TenantTx};
use keel_kernel::grpc::timestamp;
use keel_kernel::idempotency::{Claim, IdempotencyKey, Scope};
use keel_kernel::{Caller, Error, ErrorCode};
use keel_proto::ai::v1 as pb;
use tokio::sync::mpsc;
use tonic::Status;

use super::{CallLabels, ModelLabels, RuleLabels, Shared, convert};
use crate::domain::{
    CallStatus, ChatMessage, ChatRole, CompletionId, CompletionInput, CountedBy, FinishReason,
    Guardrails, Quota, Rule, TokenCounts, UsageRecord, permissions, tokens,
};
use crate::providers::{ProviderError, ProviderEvent, ProviderRequest};
use crate::{events, repo};

/// The idempotency method both RPCs share: a stream retried as a unary call replays the same
/// completion.
const METHOD: &str = "ai.v1.AiService/Complete";

/// Where streamed chunks go.
pub type Sink = mpsc::Sender<Result<pb::CompletionChunk, Status>>;

pub enum Prepared {
    /// Answered without a provider: a replay, or a refusal by a guardrail.
    Answered(pb::Completion),
    /// Reserved and ready to call a provider.
    Ready(Box<Call>),
}

/// A call whose tokens are reserved.
pub struct Call {
    ctx: Shared,
    caller: Caller,
    id: CompletionId,
    input: CompletionInput,
    messages: Vec<ChatMessage>,
    prompt_tokens: i64,
    guardrails: Guardrails,
    key: Option<IdempotencyKey>,
    created_at: DateTime<Utc>,
}

/// How the provider part of a call ended.
enum Outcome {
    Finished(FinishReason),
    Blocked(Rule),
    Failed(ProviderError),
    /// The client went away: the provider call is dropped (cancelled).
    Cancelled,
}

/// The principal recorded on usage: a user id, `apikey:<id>`, `service:<name>`.
fn principal(caller: &Caller) -> String {
    match caller.claims.kind {
        PrincipalKind::User => caller.claims.sub.clone(),
        PrincipalKind::ApiKey => format!("apikey:{}", caller.claims.sub),
        PrincipalKind::Service => format!("service:{}", caller.claims.sub),
    }
}

fn quota_exhausted(quota: &Quota, needed: i64) -> Error {
    let message = format!(
        "the tenant's token quota cannot cover this call: it needs {needed} tokens (prompt + \
         max_tokens) and {} remain until {}",
        quota.remaining(),
        quota.period.end.to_rfc3339()
    );
    Error::quota_exhausted(message)
}

pub async fn prepare(
    ctx: &Shared,
    caller: &Caller,
    request: pb::CompleteRequest,
) -> Result<Prepared, Error> {
    let tenant = caller.tenant_field("tenant_id", &request.tenant_id)?;
    caller.require(permissions::COMPLETION_CREATE)?;
    let input = convert::completion_input(&request, tenant, &ctx.settings, &ctx.router)?;
    let key = IdempotencyKey::from_request(
        METHOD,
        Scope::Tenant(tenant),
        &request.request_id,
        &caller.meta,
        &request,
    )?;
    let now = ctx.now();
    let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
    if let Some(key) = &key
        && let Claim::Replay(done) = key.claim::<pb::Completion>(&mut tx).await?
    {
        return Ok(Prepared::Answered(done));
    }

    let guardrails = Guardrails::new(ctx.settings.guardrails.for_tenant(tenant));
    let mut hits = Vec::new();
    let mut blocked = input
        .messages
        .iter()
        .any(|m| guardrails.blocked_term(&m.content).is_some())
        .then_some(Rule::BlockedTerm);
    let mut messages = input.messages.clone();
    let mut prompt_tokens = 0;
    if blocked.is_some() {
        hits.push(Rule::BlockedTerm);
    } else {
        if let Some(namespace) = &input.memory_namespace {
            let top_k = i64::from(ctx.settings.memory_top_k);
            let query = input.last_user_message().to_owned();
            let found = super::ai::search(&mut tx, caller, &query, Some(namespace), top_k).await?;
            if !found.is_empty() {
                let mut context = String::from("Relevant memories:");
                for (memory, _) in &found {
                    context.push_str("\n- ");
                    context.push_str(&memory.content);
                }
                let at = messages
                    .iter()
                    .position(|m| m.role != ChatRole::System)
                    .unwrap_or(messages.len());
                messages.insert(at, ChatMessage::new(ChatRole::System, context));
            }
        }
        for message in &mut messages {
            guardrails.redact(&mut message.content, &mut hits);
        }
        prompt_tokens = tokens::count_prompt(&messages);
        if prompt_tokens > guardrails.max_prompt_tokens() {
            hits.push(Rule::PromptSize);
            blocked = Some(Rule::PromptSize);
        }
    }
    for rule in &hits {
        ctx.metrics
            .guardrail_hits
            .get_or_create(&RuleLabels {
                rule: rule.as_str().to_owned(),
            })
            .inc();
    }

    let call = Call {
        ctx: ctx.clone(),
        caller: caller.clone(),
        id: CompletionId::new(),
        input,
        messages,
        prompt_tokens,
        guardrails,
        key,
        created_at: now,
    };
    if let Some(rule) = blocked {
        tracing::info!(rule = rule.as_str(), "completion blocked by a guardrail");
        let provider = call.primary_provider();
        let completion = call.record_blocked(&mut tx, &provider).await?;
        tx.commit().await?;
        call.count_call(&provider, CallStatus::Blocked);
        return Ok(Prepared::Answered(completion));
    }

    let needed = call.prompt_tokens + i64::from(call.input.max_tokens);
    if repo::quotas::try_reserve(&mut tx, call.id, needed, now)
        .await?
        .is_none()
    {
        // Slow path: create or roll the period, drop reservations of crashed calls, try again.
        let ttl = ctx.settings.reservation_ttl();
        let quota = repo::quotas::current(&mut tx, now, ctx.settings.default_period_tokens).await?;
        repo::quotas::release_expired(&mut tx, now - ttl).await?;
        if repo::quotas::try_reserve(&mut tx, call.id, needed, now)
            .await?
            .is_none()
        {
            let quota = repo::quotas::current(&mut tx, now, ctx.settings.default_period_tokens)
                .await
                .unwrap_or(quota);
            return Err(quota_exhausted(&quota, needed));
        }
    }
    // The sweeper releases the reservation if this call never settles (a crash).
    let ttl = ctx.settings.reservation_ttl();
    let bucket = crate::jobs::bucket(now, ttl);
    let scheduled = ctx.sweep_scheduled(tenant, bucket);
    if !scheduled {
        let sweep = crate::jobs::sweep_reservations(tenant, now, ttl);
        keel_kernel::jobs::schedule(&mut tx, sweep).await?;
    }
    tx.commit().await?;
    if !scheduled {
        ctx.sweep_committed(tenant, bucket);
    }
    Ok(Prepared::Ready(Box::new(call)))
}

impl Call {
    pub fn id(&self) -> CompletionId {
        self.id
    }

    fn primary_provider(&self) -> String {
        self.ctx
            .router
            .primary(&self.input.model)
            .map(|d| d.provider_name.clone())
            .unwrap_or_default()
    }

    /// Call the provider and settle. With a `sink`, text is forwarded as it arrives and the call
    /// is cancelled when the sink's receiver goes away.
    pub async fn run(self, sink: Option<Sink>) -> Result<pb::Completion, Error> {
        let ctx = self.ctx.clone();
        let request = ProviderRequest {
            model: String::new(),
            messages: self.messages.clone(),
            max_tokens: self.input.max_tokens,
            temperature: self.input.temperature,
        };
        let clock = ctx.clock.clone();
        let now = move || clock.now();
        let mut started = match ctx.router.start(&self.input.model, &request, &now).await {
            Ok(started) => started,
            Err(err) => return self.fail_before_output(err).await,
        };
        let mut text = String::new();
        let mut reported_prompt = None;
        let mut reported_completion = None;
        let mut finish = None;
        let outcome = loop {
            let next = match &sink {
                Some(sink) => tokio::select! {
                    biased;
                    () = sink.closed() => break Outcome::Cancelled,
                    next = started.next() => next,
                },
                None => started.next().await,
            };
            match next {
                None => {
                    break match finish {
                        Some(reason) => Outcome::Finished(reason),
                        None => Outcome::Failed(ProviderError::Stream(
                            "the stream ended without finishing".into(),
                        )),
                    };
                }
                Some(Err(err)) => break Outcome::Failed(err),
                Some(Ok(ProviderEvent::Delta(delta))) => {
                    text.push_str(&delta);
                    if self.guardrails.checks_output()
                        && let Some(rule) = self.guardrails.inspect_output(&text).blocked
                    {
                        ctx.metrics
                            .guardrail_hits
                            .get_or_create(&RuleLabels {
                                rule: rule.as_str().to_owned(),
                            })
                            .inc();
                        break Outcome::Blocked(rule);
                    }
                    if let Some(sink) = &sink {
                        let chunk = pb::CompletionChunk {
                            id: self.id.to_string(),
                            delta,
                            finish_reason: 0,
                            usage: None,
                        };
                        if sink.send(Ok(chunk)).await.is_err() {
                            break Outcome::Cancelled;
                        }
                    }
                }
                Some(Ok(ProviderEvent::Usage {
                    prompt_tokens,
                    completion_tokens,
                })) => {
                    reported_prompt = prompt_tokens.or(reported_prompt);
                    reported_completion = completion_tokens.or(reported_completion);
                }
                Some(Ok(ProviderEvent::Finish(reason))) => finish = Some(reason),
            }
        };
        // Dropping the stream closes the provider's connection: a cancelled call stops there.
        let deployment = started.deployment.clone();
        drop(started);
        let prices = deployment.prices;
        let prompt = reported_prompt.unwrap_or(self.prompt_tokens);
        // Counted only when the provider's own report does not settle it (the tokenizer is the
        // costliest step of the gateway's own work).
        let produced = || tokens::count(&text);
        let counts = |completion: i64| TokenCounts {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cost_micros: prices.cost_micros(prompt, completion),
        };
        let provider = deployment.provider_name.clone();
        let mut tx = db::tenant_tx(&ctx.db, self.input.tenant).await?;
        let (result, status) = match outcome {
            Outcome::Finished(reason) => {
                let (completion, counted_by) = match reported_completion {
                    Some(n) => (n, CountedBy::Provider),
                    None => (produced(), CountedBy::Tokenizer),
                };
                let completion = self
                    .record(
                        &mut tx,
                        CallStatus::Succeeded,
                        &provider,
                        counts(completion),
                        counted_by,
                        reason,
                        text,
                    )
                    .await?;
                (Ok(completion), CallStatus::Succeeded)
            }
            Outcome::Blocked(rule) => {
                tracing::info!(rule = rule.as_str(), "output blocked by a guardrail");
                let completion = self.record_blocked(&mut tx, &provider).await?;
                (Ok(completion), CallStatus::Blocked)
            }
            Outcome::Failed(err) => {
                let produced = produced();
                deployment.breaker.failed(ctx.now());
                tracing::warn!(deployment = %deployment.name, error = %err, produced, "provider failed mid-stream");
                self.record_failed(&mut tx, &provider, counts(produced))
                    .await?;
                let error = Error::unavailable(format!(
                    "the provider failed after {produced} generated tokens ({err}); the answer is incomplete"
                ));
                (Err(error), CallStatus::Failed)
            }
            Outcome::Cancelled => {
                let produced = produced();
                tracing::info!(produced, "client went away; provider call cancelled");
                self.record_failed(&mut tx, &provider, counts(produced))
                    .await?;
                (
                    Err(Error::new(
                        ErrorCode::Unavailable,
                        "the client cancelled the call",
                    )),
                    CallStatus::Failed,
                )
            }
        };
        tx.commit().await?;
        self.count_call(&provider, status);
        result
    }

    fn count_call(&self, provider: &str, status: CallStatus) {
        let status = match status {
            CallStatus::Succeeded => "succeeded",
            CallStatus::Failed => "failed",
            CallStatus::Blocked => "blocked",
        };
        self.ctx
            .metrics
            .calls
            .get_or_create(&CallLabels {
                model: self.input.model.clone(),
                provider: provider.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    /// Every deployment failed (or was open) before producing text: nothing is charged.
    async fn fail_before_output(self, err: ProviderError) -> Result<pb::Completion, Error> {
        let provider = self.primary_provider();
        let mut tx = db::tenant_tx(&self.ctx.db, self.input.tenant).await?;
        self.record_failed(&mut tx, &provider, TokenCounts::default())
            .await?;
        tx.commit().await?;
        self.count_call(&provider, CallStatus::Failed);
        let error = match &err {
            ProviderError::NoDeployment => Error::unavailable(format!(
                "every deployment of model `{}` is unavailable (circuits open); try again later",
                self.input.model
            )),
            ProviderError::RateLimited {
                retry_after: Some(wait),
            } => Error::unavailable(format!(
                "the providers of model `{}` are rate limiting: {err}",
                self.input.model
            ))
            .with_retry_after(*wait),
            _ => Error::unavailable(format!(
                "the providers of model `{}` failed: {err}",
                self.input.model
            )),
        };
        Err(error)
    }

    /// A guardrail refused the call: nothing charged, CONTENT_FILTER.
    async fn record_blocked(
        &self,
        tx: &mut TenantTx,
        provider: &str,
    ) -> Result<pb::Completion, Error> {
        let nothing = TokenCounts::default();
        let (status, counted_by) = (CallStatus::Blocked, CountedBy::Tokenizer);
        let finish = FinishReason::ContentFilter;
        self.record(
            tx,
            status,
            provider,
            nothing,
            counted_by,
            finish,
            String::new(),
        )
        .await
    }

    /// The provider failed: `counts` is what was produced (nothing before the first byte), counted
    /// with the tokenizer.
    async fn record_failed(
        &self,
        tx: &mut TenantTx,
        provider: &str,
        counts: TokenCounts,
    ) -> Result<(), Error> {
        let (status, counted_by) = (CallStatus::Failed, CountedBy::Tokenizer);
        self.record(
            tx,
            status,
            provider,
            counts,
            counted_by,
            FinishReason::Stop,
            String::new(),
        )
        .await
        .map(|_| ())
    }

    /// Charge, log and publish the call in `tx`, and complete (or, for a failure, release) its
    /// idempotency key. Returns the completion a client gets.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        tx: &mut TenantTx,
        status: CallStatus,
        provider: &str,
        counts: TokenCounts,
        counted_by: CountedBy,
        finish: FinishReason,
        text: String,
    ) -> Result<pb::Completion, Error> {
        let ctx = &self.ctx;
        let now = ctx.now();
        repo::quotas::settle(tx, self.id, counts.total(), now).await?;
        let record = UsageRecord {
            id: self.id,
            tenant: self.input.tenant,
            principal: principal(&self.caller),
            model: self.input.model.clone(),
            provider: provider.to_owned(),
            tokens: counts,
            currency: ctx.settings.currency.clone(),
            status,
            counted_by,
            request_id: self.caller.request_id().to_owned(),
            created_at: self.created_at,
        };
        repo::usage::insert(tx, &record).await?;
        ctx.outbox
            .enqueue(
                tx,
                events::usage_recorded(&record, counted_by, &self.caller)?,
            )
            .await?;
        if counts.total() > 0 {
            ctx.metrics
                .tokens
                .get_or_create(&ModelLabels {
                    model: record.model.clone(),
                    provider: record.provider.clone(),
                })
                .inc_by(u64::try_from(counts.total()).unwrap_or(0));
        }
        let completion = pb::Completion {
            id: self.id.to_string(),
            model: self.input.model.clone(),
            message: Some(pb::ChatMessage {
                role: pb::ChatRole::Assistant as i32,
                content: text,
            }),
            finish_reason: pb::FinishReason::from(finish) as i32,
            usage: Some(pb::TokenUsage {
                prompt_tokens: counts.prompt_tokens,
                completion_tokens: counts.completion_tokens,
                total_tokens: counts.total(),
                cost_micros: counts.cost_micros,
                currency: ctx.settings.currency.clone(),
            }),
            create_time: Some(timestamp(self.created_at)),
        };
        if let Some(key) = &self.key {
            if status == CallStatus::Failed {
                // A failed call may be retried under the same key and do the work.
                key.release(tx).await?;
            } else {
                key.complete(tx, &completion).await?;
            }
        }
        Ok(completion)
    }
}
