//! BillingService: the catalogue, subscriptions, usage, invoices, entitlements and webhooks.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use keel_kernel::auth::PrincipalKind;
use keel_kernel::grpc::paging::{TimeId, page_in_memory, split_page};
use keel_kernel::grpc::{PageSize, PageToken, from_timestamp};
use keel_kernel::idempotency::{Claim, IdempotencyKey, Scope};
use keel_kernel::{Caller, Error, TenantId, Violations, db};
use keel_proto::billing::v1 as pb;
use keel_proto::billing::v1::billing_service_server::BillingService;
use tonic::{Request, Response, Status};

use super::Shared;
use super::convert::{self, invoice_state_filter};
use crate::domain::webhook::{self, WebhookEvent};
use crate::domain::{
    CancelReason, InvoiceId, PriceId, SubscriptionId, UsageSummary, meter_of_feature, permissions,
};
use crate::events::Cause;
use crate::{ops, repo};

pub struct Billing(pub Shared);

/// A tenant a read may see: the caller's own tenant holding `permission`, or any tenant for a
/// platform principal holding it.
fn readable(caller: &Caller, tenant: &str, permission: &str) -> Result<TenantId, Error> {
    let tenant = TenantId::parse_field("tenant_id", tenant)?;
    if caller.is_platform(permission) {
        return Ok(tenant);
    }
    caller.tenant_with(tenant, permission)
}

/// The start of the calendar month of `at`: the usage range of a tenant with no live
/// subscription.
fn month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(at)
}

impl Billing {
    // ----- Catalogue -----

    async fn list_plans(
        &self,
        request: pb::ListPlansRequest,
    ) -> Result<pb::ListPlansResponse, Error> {
        let size = PageSize::parse(request.page_size)?;
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        let plans = repo::catalogue::list_plans(&mut tx).await?;
        let (page, next_page_token) = page_in_memory(plans, &request.page_token, size)?;
        Ok(pb::ListPlansResponse {
            plans: page.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    async fn get_plan(&self, request: pb::GetPlanRequest) -> Result<pb::Plan, Error> {
        let id = crate::domain::parse_plan_id("plan_id", &request.plan_id)?;
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        let plan = repo::catalogue::get_plan(&mut tx, &id)
            .await?
            .ok_or_else(|| Error::not_found("plan", &id))?;
        Ok((&plan).into())
    }

    #[tracing::instrument(skip_all)]
    async fn create_plan(
        &self,
        caller: &Caller,
        request: pb::CreatePlanRequest,
    ) -> Result<pb::Plan, Error> {
        caller.platform(permissions::PLAN_CREATE)?;
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        let meters = repo::catalogue::list_meters(&mut tx).await?;
        let new = convert::new_plan(request.plan, &meters)?;
        repo::catalogue::insert_plan(&mut tx, &new).await?;
        let plan = repo::catalogue::get_plan(&mut tx, &new.id)
            .await?
            .ok_or_else(|| Error::not_found("plan", &new.id))?;
        tx.commit().await?;
        tracing::info!(plan_id = %plan.id, "plan created");
        Ok((&plan).into())
    }

    async fn list_meters(
        &self,
        request: pb::ListMetersRequest,
    ) -> Result<pb::ListMetersResponse, Error> {
        let size = PageSize::parse(request.page_size)?;
        let mut tx = db::unscoped_tx(&self.0.db).await?;
        let meters = repo::catalogue::list_meters(&mut tx).await?;
        let (page, next_page_token) = page_in_memory(meters, &request.page_token, size)?;
        Ok(pb::ListMetersResponse {
            meters: page.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    // ----- Subscriptions -----

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn create_subscription(
        &self,
        caller: &Caller,
        request: pb::CreateSubscriptionRequest,
    ) -> Result<pb::Subscription, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let tenant = caller.tenant_with(tenant, permissions::SUBSCRIPTION_UPDATE)?;
        let subscription = request
            .subscription
            .as_ref()
            .ok_or_else(|| Error::invalid("subscription", "is required"))?;
        let price_id = PriceId::parse_field("subscription.price_id", &subscription.price_id)?;
        let key = IdempotencyKey::from_request(
            "billing.CreateSubscription",
            Scope::Tenant(tenant),
            &request.request_id,
            &caller.meta,
            &request,
        )?;
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        if let Some(key) = &key
            && let Claim::Replay(done) = key.claim::<pb::Subscription>(&mut tx).await?
        {
            return Ok(done);
        }
        let env = ctx.env();
        let (plan, price) =
            ops::subscriptions::subscribable_price(&mut tx, price_id, "subscription.price_id")
                .await?;
        let subscription = ops::subscriptions::create(
            &mut tx,
            env,
            &plan,
            &price,
            env.now,
            &Cause::request(caller),
        )
        .await?;
        let answer = pb::Subscription::from(&subscription);
        if let Some(key) = &key {
            key.complete(&mut tx, &answer).await?;
        }
        tx.commit().await?;
        Ok(answer)
    }

    async fn get_subscription(
        &self,
        caller: &Caller,
        request: pb::GetSubscriptionRequest,
    ) -> Result<pb::Subscription, Error> {
        let tenant = readable(caller, &request.tenant_id, permissions::SUBSCRIPTION_READ)?;
        let id = SubscriptionId::parse_field("subscription_id", &request.subscription_id)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let subscription = repo::subscriptions::get(&mut tx, id)
            .await?
            .ok_or_else(|| Error::not_found("subscription", id))?;
        Ok((&subscription).into())
    }

    async fn list_subscriptions(
        &self,
        caller: &Caller,
        request: pb::ListSubscriptionsRequest,
    ) -> Result<pb::ListSubscriptionsResponse, Error> {
        let tenant = readable(caller, &request.tenant_id, permissions::SUBSCRIPTION_READ)?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows = repo::subscriptions::list(&mut tx, after, size.fetch_limit()).await?;
        let (page, next_page_token) = split_page(rows, size, |s| TimeId {
            at: s.created_at,
            id: s.id.as_uuid(),
        });
        Ok(pb::ListSubscriptionsResponse {
            subscriptions: page.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn update_subscription(
        &self,
        caller: &Caller,
        request: pb::UpdateSubscriptionRequest,
    ) -> Result<pb::Subscription, Error> {
        let mut violations = Violations::default();
        let tenant = violations.check(TenantId::parse_field("tenant_id", &request.tenant_id));
        let id = violations.check(SubscriptionId::parse_field(
            "subscription_id",
            &request.subscription_id,
        ));
        let mask = convert::subscription_mask(request.update_mask, &mut violations);
        let body = request.subscription.unwrap_or_default();
        let price = if mask.price_id {
            violations.check(PriceId::parse_field(
                "subscription.price_id",
                &body.price_id,
            ))
        } else {
            None
        };
        violations.finish()?;
        let (Some(tenant), Some(id)) = (tenant, id) else {
            return Err(Error::internal(anyhow::anyhow!("validated fields missing")));
        };
        let tenant = caller.tenant_with(tenant, permissions::SUBSCRIPTION_UPDATE)?;
        let ctx = &self.0;
        let env = ctx.env();
        let cause = Cause::request(caller);
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let mut subscription = repo::subscriptions::lock(&mut tx, id).await?;
        subscription.state.require_live()?;
        if let Some(price) = price {
            let (plan, price) =
                ops::subscriptions::subscribable_price(&mut tx, price, "subscription.price_id")
                    .await?;
            subscription =
                ops::subscriptions::change_price(&mut tx, env, subscription, &plan, &price, &cause)
                    .await?;
        }
        if mask.cancel_at_period_end
            && body.cancel_at_period_end != subscription.cancel_at_period_end
        {
            subscription.cancel_at_period_end = body.cancel_at_period_end;
            subscription = repo::subscriptions::save(&mut tx, &subscription, env.now).await?;
            ctx.outbox
                .enqueue(
                    &mut tx,
                    crate::events::subscription_changed(
                        &subscription,
                        subscription.price_id,
                        &cause,
                    )?,
                )
                .await?;
        }
        tx.commit().await?;
        Ok((&subscription).into())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn cancel_subscription(
        &self,
        caller: &Caller,
        request: pb::CancelSubscriptionRequest,
    ) -> Result<pb::Subscription, Error> {
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let id = SubscriptionId::parse_field("subscription_id", &request.subscription_id)?;
        let tenant = caller.tenant_with(tenant, permissions::SUBSCRIPTION_UPDATE)?;
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let subscription = repo::subscriptions::lock(&mut tx, id).await?;
        let subscription = ops::subscriptions::cancel(
            &mut tx,
            ctx.env(),
            subscription,
            request.immediately,
            CancelReason::Requested,
            &Cause::request(caller),
        )
        .await?;
        tx.commit().await?;
        Ok((&subscription).into())
    }

    // ----- Usage -----

    /// Services only: an owner's `*` covers the permission's name, but usage is what the platform
    /// measures, not what a tenant declares.
    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn record_usage(
        &self,
        caller: &Caller,
        request: pb::RecordUsageRequest,
    ) -> Result<pb::UsageRecord, Error> {
        if caller.claims.kind != PrincipalKind::Service {
            return Err(Error::forbidden("usage is recorded by services only"));
        }
        caller.require(permissions::USAGE_RECORD)?;
        let (tenant, usage) = convert::new_usage(request)?;
        if caller.claims.tid.is_some() {
            caller.tenant(tenant)?;
        }
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let record =
            ops::usage::record(&mut tx, &ctx.settings, &usage, "usage_record.meter_id").await?;
        tx.commit().await?;
        Ok((&record).into())
    }

    async fn list_usage_summaries(
        &self,
        caller: &Caller,
        request: pb::ListUsageSummariesRequest,
    ) -> Result<pb::ListUsageSummariesResponse, Error> {
        let tenant = readable(caller, &request.tenant_id, permissions::USAGE_READ)?;
        let size = PageSize::parse(request.page_size)?;
        let mut violations = Violations::default();
        let start = request
            .start_time
            .as_ref()
            .and_then(|t| violations.check(from_timestamp("start_time", t)));
        let end = request
            .end_time
            .as_ref()
            .and_then(|t| violations.check(from_timestamp("end_time", t)));
        let meter = if request.meter_id.is_empty() {
            None
        } else {
            violations.check(convert::meter_id("meter_id", &request.meter_id))
        };
        violations.finish()?;
        let now = self.0.clock.now();
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let start = match start {
            Some(start) => start,
            None => match repo::subscriptions::live(&mut tx).await? {
                Some(subscription) => subscription.current_period_start,
                None => month_start(now),
            },
        };
        let end = match end {
            Some(end) if end <= start => {
                return Err(Error::invalid("end_time", "must be after start_time"));
            }
            Some(end) => end,
            // Right at the start of a period the default range is empty, not an error.
            None => now.max(start),
        };
        let rows = repo::usage::summaries(&mut tx, start, end, meter.as_deref()).await?;
        let summaries: Vec<UsageSummary> = rows
            .into_iter()
            .map(|(meter_id, quantity)| UsageSummary {
                meter_id,
                quantity,
                start,
                end,
            })
            .collect();
        let (page, next_page_token) = page_in_memory(summaries, &request.page_token, size)?;
        Ok(pb::ListUsageSummariesResponse {
            usage_summaries: page.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    // ----- Invoices -----

    async fn list_invoices(
        &self,
        caller: &Caller,
        request: pb::ListInvoicesRequest,
    ) -> Result<pb::ListInvoicesResponse, Error> {
        let tenant = readable(caller, &request.tenant_id, permissions::INVOICE_READ)?;
        let size = PageSize::parse(request.page_size)?;
        let after = PageToken::decode::<TimeId>(&request.page_token)?;
        let state = invoice_state_filter("state", request.state)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let rows = repo::invoices::list(&mut tx, state, after, size.fetch_limit()).await?;
        let (page, next_page_token) = split_page(rows, size, |i| TimeId {
            at: i.created_at,
            id: i.id.as_uuid(),
        });
        Ok(pb::ListInvoicesResponse {
            invoices: page.iter().map(Into::into).collect(),
            next_page_token,
        })
    }

    async fn get_invoice(
        &self,
        caller: &Caller,
        request: pb::GetInvoiceRequest,
    ) -> Result<pb::Invoice, Error> {
        let tenant = readable(caller, &request.tenant_id, permissions::INVOICE_READ)?;
        let id = InvoiceId::parse_field("invoice_id", &request.invoice_id)?;
        let mut tx = db::tenant_tx(&self.0.db, tenant).await?;
        let invoice = repo::invoices::get(&mut tx, id)
            .await?
            .ok_or_else(|| Error::not_found("invoice", id))?;
        Ok((&invoice).into())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %request.tenant_id))]
    async fn void_invoice(
        &self,
        caller: &Caller,
        request: pb::VoidInvoiceRequest,
    ) -> Result<pb::Invoice, Error> {
        caller.platform(permissions::INVOICE_VOID)?;
        let tenant = TenantId::parse_field("tenant_id", &request.tenant_id)?;
        let id = InvoiceId::parse_field("invoice_id", &request.invoice_id)?;
        let ctx = &self.0;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let reason = request.reason.trim();
        let invoice =
            ops::invoicing::void(&mut tx, ctx.env(), id, reason, &Cause::request(caller)).await?;
        tx.commit().await?;
        Ok((&invoice).into())
    }

    // ----- Entitlements -----

    async fn entitlements(
        &self,
        caller: &Caller,
        request: pb::GetBillingEntitlementsRequest,
    ) -> Result<pb::BillingEntitlements, Error> {
        let tenant = readable(caller, &request.tenant_id, permissions::SUBSCRIPTION_READ)?;
        let ctx = &self.0;
        let env = ctx.env();
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let live = repo::subscriptions::live(&mut tx).await?;
        // Use over the whole current period: usage stamped by another service's clock a little
        // ahead of ours still counts.
        let (plan, state, (start, end)) = match &live {
            Some(subscription) => {
                let plan = repo::catalogue::get_plan(&mut tx, &subscription.plan_id)
                    .await?
                    .ok_or_else(|| Error::not_found("plan", &subscription.plan_id))?;
                (
                    plan,
                    pb::SubscriptionState::from(subscription.state),
                    (
                        subscription.current_period_start,
                        subscription.current_period_end,
                    ),
                )
            }
            None => (
                ops::subscriptions::default_plan(&mut tx, env).await?,
                pb::SubscriptionState::Unspecified,
                (
                    month_start(env.now),
                    crate::domain::period::add_months(month_start(env.now), 1),
                ),
            ),
        };
        let usage = repo::usage::summaries(&mut tx, start, end, None).await?;
        let entitlements = plan
            .limits
            .iter()
            .map(|(feature, limit)| pb::BillingEntitlement {
                feature: feature.clone(),
                limit: *limit,
                used: usage
                    .iter()
                    .find(|(meter, _)| meter == meter_of_feature(feature))
                    .map_or(0, |(_, quantity)| *quantity),
            })
            .collect();
        Ok(pb::BillingEntitlements {
            tenant_id: tenant.to_string(),
            plan_id: plan.id.clone(),
            subscription_state: state as i32,
            entitlements,
            modules: plan.modules.clone(),
        })
    }

    // ----- Webhooks -----

    /// Verify, deduplicate on the provider's event id, act. The record of the event and its
    /// effect commit together: a redelivery finds the record and does nothing.
    #[tracing::instrument(skip_all, fields(provider = %request.provider))]
    async fn ingest_webhook(
        &self,
        request: pb::IngestWebhookRequest,
    ) -> Result<pb::IngestWebhookResponse, Error> {
        let ctx = &self.0;
        let env = ctx.env();
        let provider = ctx
            .settings
            .webhook_providers
            .get(&request.provider)
            .ok_or_else(|| Error::invalid("provider", "is not a configured payment provider"))?;
        webhook::verify_signature(
            &request.signature,
            &request.payload,
            &provider.secrets(),
            env.now,
            i64::from(ctx.settings.webhook_tolerance_secs),
        )?;
        let event = WebhookEvent::parse(&request.payload)?;
        let acts = matches!(
            event.event_type.as_str(),
            webhook::INVOICE_PAID | webhook::INVOICE_PAYMENT_FAILED
        );
        let answer = |duplicate| pb::IngestWebhookResponse {
            event_id: event.id.clone(),
            duplicate,
        };
        if !acts {
            let mut tx = db::unscoped_tx(&ctx.db).await?;
            let first = repo::webhooks::record(
                &mut tx,
                &request.provider,
                &event.id,
                &event.event_type,
                env.now,
            )
            .await?;
            tx.commit().await?;
            return Ok(answer(!first));
        }
        let metadata = &event.data.object.metadata;
        let tenant = TenantId::parse_field(
            "data.object.metadata.keel_tenant_id",
            &metadata.keel_tenant_id,
        )?;
        let invoice = InvoiceId::parse_field(
            "data.object.metadata.keel_invoice_id",
            &metadata.keel_invoice_id,
        )?;
        let mut tx = db::tenant_tx(&ctx.db, tenant).await?;
        let first = repo::webhooks::record(
            &mut tx,
            &request.provider,
            &event.id,
            &event.event_type,
            env.now,
        )
        .await?;
        if !first {
            return Ok(answer(true));
        }
        let cause = Cause::system(&format!("billing.webhook.{}", request.provider), &event.id);
        if event.event_type == webhook::INVOICE_PAID {
            ops::invoicing::paid(&mut tx, env, invoice, event.data.object.amount_paid, &cause)
                .await?;
        } else {
            ops::invoicing::payment_failed(&mut tx, env, invoice, &cause).await?;
        }
        tx.commit().await?;
        tracing::info!(event_id = %event.id, event_type = %event.event_type, "webhook processed");
        Ok(answer(false))
    }
}

#[tonic::async_trait]
impl BillingService for Billing {
    async fn list_plans(
        &self,
        request: Request<pb::ListPlansRequest>,
    ) -> Result<Response<pb::ListPlansResponse>, Status> {
        Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::list_plans(self, request.into_inner()).await?,
        ))
    }

    async fn get_plan(
        &self,
        request: Request<pb::GetPlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::get_plan(self, request.into_inner()).await?,
        ))
    }

    async fn create_plan(
        &self,
        request: Request<pb::CreatePlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::create_plan(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn create_subscription(
        &self,
        request: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::create_subscription(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::get_subscription(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::list_subscriptions(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn update_subscription(
        &self,
        request: Request<pb::UpdateSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::update_subscription(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn cancel_subscription(
        &self,
        request: Request<pb::CancelSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::cancel_subscription(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn list_meters(
        &self,
        request: Request<pb::ListMetersRequest>,
    ) -> Result<Response<pb::ListMetersResponse>, Status> {
        Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::list_meters(self, request.into_inner()).await?,
        ))
    }

    async fn record_usage(
        &self,
        request: Request<pb::RecordUsageRequest>,
    ) -> Result<Response<pb::UsageRecord>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::record_usage(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn list_usage_summaries(
        &self,
        request: Request<pb::ListUsageSummariesRequest>,
    ) -> Result<Response<pb::ListUsageSummariesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::list_usage_summaries(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn list_invoices(
        &self,
        request: Request<pb::ListInvoicesRequest>,
    ) -> Result<Response<pb::ListInvoicesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::list_invoices(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn get_invoice(
        &self,
        request: Request<pb::GetInvoiceRequest>,
    ) -> Result<Response<pb::Invoice>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::get_invoice(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn void_invoice(
        &self,
        request: Request<pb::VoidInvoiceRequest>,
    ) -> Result<Response<pb::Invoice>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            Billing::void_invoice(self, &caller, request.into_inner()).await?,
        ))
    }

    async fn get_billing_entitlements(
        &self,
        request: Request<pb::GetBillingEntitlementsRequest>,
    ) -> Result<Response<pb::BillingEntitlements>, Status> {
        let caller = Caller::from_request(&request)?;
        Ok(Response::new(
            self.entitlements(&caller, request.into_inner()).await?,
        ))
    }

    /// Public: the signature is the authentication.
    async fn ingest_webhook(
        &self,
        request: Request<pb::IngestWebhookRequest>,
    ) -> Result<Response<pb::IngestWebhookResponse>, Status> {
        Ok(Response::new(
            Billing::ingest_webhook(self, request.into_inner()).await?,
        ))
    }
}
