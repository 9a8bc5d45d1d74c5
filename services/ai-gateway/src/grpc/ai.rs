//! AiService: completions (through `completion.rs`), quota, usage log, memory.

use std::pin::Pin;

use futures::Stream;
use keel_kernel::db::{self, TenantTx};
use keel_kernel::grpc::paging::TimeId;
use keel_kernel::grpc::{PageToken, from_timestamp};
use keel_kernel::{Caller, Error, TenantId, Violations};
use keel_proto::ai::v1 as pb;
use keel_proto::ai::v1::ai_service_server::AiService;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::completion::{self, Prepared};
use super::{Shared, convert};
use crate::domain::memory::parse_namespace;
use crate::domain::{Memory, MemoryId, SearchTerms, permissions};
use crate::repo;

pub struct Ai(pub Shared);

/// ListUsage pages: 50 by default, 500 at most.
const DEFAULT_USAGE_PAGE: i64 = 50;
const MAX_USAGE_PAGE: i64 = 500;
/// SearchMemories: 5 by default, 50 at most.
const DEFAULT_TOP_K: i64 = 5;
const MAX_TOP_K: i64 = 50;
/// Candidates read through the index before scoring.
const SEARCH_CANDIDATES: i64 = 200;

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::CompletionChunk, Status>> + Send>>;

/// The memories matching `query` that `caller` may read, best first, at most `top_k`, with their
/// scores. Used by SearchMemories and by retrieval into a completion, so both apply the same
/// permission rule.
pub(super) async fn search(
    tx: &mut TenantTx,
    caller: &Caller,
    query: &str,
    namespace: Option<&str>,
    top_k: i64,
) -> Result<Vec<(Memory, f64)>, Error> {
    let terms = SearchTerms::of(query);
    if terms.is_empty() || top_k <= 0 {
        return Ok(Vec::new());
    }
    let readable: Vec<String> = repo::memories::permissions_in_use(tx)
        .await?
        .into_iter()
        .filter(|permission| caller.claims.has_permission(permission))
        .collect();
    let candidates =
        repo::memories::candidates(tx, &terms, namespace, &readable, SEARCH_CANDIDATES).await?;
    let mut scored: Vec<(Memory, f64)> = candidates
        .into_iter()
        .map(|c| {
            let score = terms.score(&c.terms, &c.ngrams);
            (c.memory, score)
        })
        .filter(|(_, score)| *score > 0.0)
        .collect();
    scored.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.id.as_str().cmp(b.0.id.as_str()))
    });
    scored.truncate(usize::try_from(top_k).unwrap_or(0));
    Ok(scored)
}

/// A completion as a one-chunk stream (a replay or a guardrail refusal).
fn single_chunk(completion: pb::Completion) -> ChunkStream {
    let chunk = pb::CompletionChunk {
        id: completion.id.clone(),
        delta: completion.message.map(|m| m.content).unwrap_or_default(),
        finish_reason: completion.finish_reason,
        usage: completion.usage,
    };
    Box::pin(tokio_stream::once(Ok(chunk)))
}

impl Ai {
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, completion_id = tracing::field::Empty))]
    async fn complete(
        &self,
        caller: &Caller,
        request: pb::CompleteRequest,
    ) -> Result<pb::Completion, Error> {
        match completion::prepare(&self.0, caller, request).await? {
            Prepared::Answered(completion) => Ok(completion),
            Prepared::Ready(call) => {
                tracing::Span::current()
                    .record("completion_id", tracing::field::display(call.id()));
                // Its own task: a caller that goes away does not leave a reservation unsettled.
                tokio::spawn(call.run(None))
                    .await
                    .map_err(|err| Error::internal(anyhow::anyhow!("completion task: {err}")))?
            }
        }
    }

    /// Errors before the first streamed text (validation, quota, every provider down) are the
    /// RPC's status; after it, the stream ends with an error status instead of a last chunk.
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, completion_id = tracing::field::Empty))]
    async fn stream(
        &self,
        caller: &Caller,
        request: pb::CompleteRequest,
    ) -> Result<ChunkStream, Error> {
        let call = match completion::prepare(&self.0, caller, request).await? {
            Prepared::Answered(completion) => return Ok(single_chunk(completion)),
            Prepared::Ready(call) => call,
        };
        tracing::Span::current().record("completion_id", tracing::field::display(call.id()));
        let (sink, mut chunks) = mpsc::channel(64);
        let last = sink.clone();
        tokio::spawn(async move {
            let end = match call.run(Some(sink)).await {
                Ok(completion) => Ok(pb::CompletionChunk {
                    id: completion.id,
                    delta: String::new(),
                    finish_reason: completion.finish_reason,
                    usage: completion.usage,
                }),
                Err(err) => Err(Status::from(err)),
            };
            // Nobody listens any more when the client went away; that is fine.
            let _ = last.send(end).await;
        });
        match chunks.recv().await {
            Some(Err(status)) => Err(Error::from_status(&status)),
            Some(Ok(first)) => {
                let rest = ReceiverStream::new(chunks);
                Ok(Box::pin(tokio_stream::once(Ok(first)).chain(rest)))
            }
            None => Err(Error::internal(anyhow::anyhow!(
                "completion task ended silently"
            ))),
        }
    }

    async fn get_quota(
        &self,
        caller: &Caller,
        request: pb::GetQuotaRequest,
    ) -> Result<pb::Quota, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        caller.tenant_with(tenant, permissions::USAGE_READ)?;
        let ctx = &self.0;
        let now = ctx.now();
        let ttl = ctx.settings.reservation_ttl();
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        repo::quotas::release_expired(&mut tx, now - ttl).await?;
        let quota = repo::quotas::current(&mut tx, now, ctx.settings.default_period_tokens).await?;
        tx.commit().await?;
        Ok((&quota).into())
    }

    async fn list_usage(
        &self,
        caller: &Caller,
        request: pb::ListUsageRequest,
    ) -> Result<pb::ListUsageResponse, Error> {
        let mut violations = Violations::default();
        let tenant = violations.check(TenantId::parse_field("tenant_id", &request.tenant_id));
        let size = match i64::from(request.page_size) {
            n if n < 0 => {
                violations.add("page_size", "must not be negative");
                0
            }
            0 => DEFAULT_USAGE_PAGE,
            n => n.min(MAX_USAGE_PAGE),
        };
        let after = violations.check(PageToken::decode::<TimeId>(&request.page_token));
        let start = violations.check(
            request
                .start_time
                .as_ref()
                .map(|t| from_timestamp("start_time", t))
                .transpose(),
        );
        let end = violations.check(
            request
                .end_time
                .as_ref()
                .map(|t| from_timestamp("end_time", t))
                .transpose(),
        );
        violations.finish()?;
        let tenant = tenant.ok_or_else(|| Error::invalid("tenant_id", "is required"))?;
        caller.tenant_with(tenant, permissions::USAGE_READ)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let mut rows = repo::usage::list(
            &mut tx,
            after.flatten(),
            start.flatten(),
            end.flatten(),
            size + 1,
        )
        .await?;
        tx.commit().await?;
        let next_page_token = if rows.len() as i64 > size {
            rows.truncate(usize::try_from(size).unwrap_or(0));
            rows.last()
                .map(|r| {
                    PageToken::encode(&TimeId {
                        at: r.created_at,
                        id: r.id.as_uuid(),
                    })
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListUsageResponse {
            usage_records: rows.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, memory_id = %request.memory_id))]
    async fn put_memory(
        &self,
        caller: &Caller,
        request: pb::PutMemoryRequest,
    ) -> Result<pb::Memory, Error> {
        let new = convert::new_memory(request)?;
        caller.tenant_with(new.tenant, permissions::MEMORY_WRITE)?;
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, new.tenant).await?;
        let memory = repo::memories::upsert(&mut tx, &new, ctx.now()).await?;
        tx.commit().await?;
        Ok((&memory).into())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id, memory_id = %request.memory_id))]
    async fn delete_memory(
        &self,
        caller: &Caller,
        request: pb::DeleteMemoryRequest,
    ) -> Result<(), Error> {
        let mut violations = Violations::default();
        let tenant = violations.check(TenantId::parse_field("tenant_id", &request.tenant_id));
        let id = violations.check(MemoryId::parse("memory_id", &request.memory_id));
        violations.finish()?;
        let (tenant, id) = tenant
            .zip(id)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("validated fields missing")))?;
        caller.tenant_with(tenant, permissions::MEMORY_WRITE)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        if !repo::memories::delete(&mut tx, &id).await? {
            return Err(Error::not_found("memory", &id));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn search_memories(
        &self,
        caller: &Caller,
        request: pb::SearchMemoriesRequest,
    ) -> Result<pb::SearchMemoriesResponse, Error> {
        let mut violations = Violations::default();
        let tenant = violations.check(TenantId::parse_field("tenant_id", &request.tenant_id));
        if request.query.trim().is_empty() {
            violations.add("query", "is required");
        }
        let namespace = violations.check(parse_namespace("namespace", &request.namespace));
        let top_k = match i64::from(request.top_k) {
            n if n < 0 => {
                violations.add("top_k", "must not be negative");
                0
            }
            0 => DEFAULT_TOP_K,
            n => n.min(MAX_TOP_K),
        };
        violations.finish()?;
        let tenant = tenant.ok_or_else(|| Error::invalid("tenant_id", "is required"))?;
        caller.tenant_with(tenant, permissions::MEMORY_READ)?;
        let namespace = namespace.filter(|n| !n.is_empty());
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let found = search(&mut tx, caller, &request.query, namespace.as_deref(), top_k).await?;
        tx.commit().await?;
        Ok(pb::SearchMemoriesResponse {
            matches: found
                .iter()
                .map(|(memory, score)| pb::MemoryMatch {
                    memory: Some(memory.into()),
                    score: *score,
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl AiService for Ai {
    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<pb::Completion>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Ai::complete(self, &caller, request.into_inner()).await?,
        ))
    }

    type StreamCompleteStream = ChunkStream;

    async fn stream_complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<Self::StreamCompleteStream>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.stream(&caller, request.into_inner()).await?,
        ))
    }

    async fn get_quota(
        &self,
        request: Request<pb::GetQuotaRequest>,
    ) -> Result<Response<pb::Quota>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Ai::get_quota(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn list_usage(
        &self,
        request: Request<pb::ListUsageRequest>,
    ) -> Result<Response<pb::ListUsageResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Ai::list_usage(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn put_memory(
        &self,
        request: Request<pb::PutMemoryRequest>,
    ) -> Result<Response<pb::Memory>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Ai::put_memory(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn delete_memory(
        &self,
        request: Request<pb::DeleteMemoryRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        Ai::delete_memory(self, &caller, request.into_inner()).await?;
        Ok(Response::new(()))
    }

    async fn search_memories(
        &self,
        request: Request<pb::SearchMemoriesRequest>,
    ) -> Result<Response<pb::SearchMemoriesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Ai::search_memories(self, &caller, request.into_inner()).await?,
        ))
    }
}
