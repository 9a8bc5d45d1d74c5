//! Wiring: the kernel's platform (database, NATS, outbox relay, job worker, server bootstrap)
//! with marketplace's consumer, jobs and handlers on it.

use std::sync::Arc;

use keel_kernel::Error;
use keel_kernel::app::{Platform, Running};
use keel_kernel::auth::PublicPaths;
use keel_kernel::clock::{self, SharedClock};
use keel_kernel::config::Config;
use keel_kernel::{db, jobs};
use keel_proto::marketplace::v1::marketplace_service_server::MarketplaceServiceServer;
use sqlx::migrate::Migrator;

use crate::events;
use crate::grpc::{Context, Marketplace};
use crate::jobs::{
    DISPUTE_ESCALATION, DisputeEscalationJob, IDEMPOTENCY_PURGE, IdempotencyPurgeJob, Jobs,
    OFFER_EXPIRY, OfferExpiryJob, next_purge,
};
use crate::settings::Settings;

/// Marketplace's migrations; the kernel runs its own first.
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Marketplace on the system clock: what `main` runs.
pub async fn build(config: Config<Settings>) -> Result<Running, Error> {
    build_with_clock(config, clock::system()).await
}

/// Connect, migrate, start the relay and the job worker, and serve marketplace on the
/// configured ports (port 0 in tests, with a test clock).
pub async fn build_with_clock(
    config: Config<Settings>,
    clock: SharedClock,
) -> Result<Running, Error> {
    let settings = Arc::new(config.app.clone());
    let mut platform = Platform::start(config, &MIGRATIONS).await?;
    platform.set_clock(clock.clone());

    // The purge chain: scheduling the same hour twice is a no-op, so restarts add nothing.
    let mut tx = db::unscoped_tx(&platform.db).await?;
    jobs::schedule(&mut tx, next_purge(clock.now())).await?;
    tx.commit().await?;

    let context = Arc::new(Context {
        db: platform.db.clone(),
        outbox: platform.outbox.clone(),
        settings: settings.clone(),
        clock: clock.clone(),
    });
    // The tenant's plan (billing's entitlements) picks the commission rule.
    platform.consume(
        events::billing::CONSUMER,
        events::billing::SUBJECTS,
        Arc::new(events::billing::BillingEvents),
    );
    let jobs = Jobs::new(platform.outbox.clone(), settings, clock);
    platform.job(OFFER_EXPIRY, Arc::new(OfferExpiryJob(jobs.clone())));
    platform.job(
        DISPUTE_ESCALATION,
        Arc::new(DisputeEscalationJob(jobs.clone())),
    );
    platform.job(IDEMPOTENCY_PURGE, Arc::new(IdempotencyPurgeJob(jobs)));

    // Every method needs a user's token (declared per method in marketplace.proto).
    let server = platform
        .grpc_server(platform.jwt_verifier()?, PublicPaths::standard())
        .add_service(MarketplaceServiceServer::new(Marketplace(context)));
    platform.serve(server).await
}
