//! Wiring: the kernel's platform (database, NATS, outbox relay, consumers, job worker, server
//! bootstrap) with billing's catalogue seeding, consumers, jobs and handlers on it.

use std::sync::Arc;

use keel_kernel::Error;
use keel_kernel::app::{Platform, Running};
use keel_kernel::auth::PublicPaths;
use keel_kernel::clock::{self, SharedClock};
use keel_kernel::config::Config;
use keel_kernel::db;
use keel_proto::billing::v1::billing_service_server::BillingServiceServer;
use sqlx::migrate::Migrator;

use crate::events::consumers::{self, Consumers};
use crate::grpc::{Billing, Context};
use crate::jobs::{DunningJob, Jobs, PeriodCloseJob};
use crate::repo;
use crate::settings::Settings;

/// Billing's migrations; the kernel runs its own first.
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Billing on the system clock: what `main` runs.
pub async fn build(config: Config<Settings>) -> Result<Running, Error> {
    build_with_clock(config, clock::system()).await
}

/// Connect, migrate, seed the catalogue, start the relay, the consumers and the job worker, and
/// serve billing on the configured ports (port 0 in tests, with a test clock).
pub async fn build_with_clock(
    config: Config<Settings>,
    clock: SharedClock,
) -> Result<Running, Error> {
    let settings = Arc::new(config.app.clone());
    let mut platform = Platform::start(config, &MIGRATIONS).await?;
    platform.set_clock(clock.clone());
    seed_catalogue(&platform.db, &settings).await?;

    let context = Arc::new(Context {
        db: platform.db.clone(),
        outbox: platform.outbox.clone(),
        settings: settings.clone(),
        clock: clock.clone(),
    });
    let handler = Arc::new(Consumers::new(
        platform.outbox.clone(),
        settings.clone(),
        clock.clone(),
    ));
    platform.consume(
        consumers::TENANCY_CONSUMER,
        consumers::TENANCY_SUBJECTS,
        handler.clone(),
    );
    platform.consume(
        consumers::AI_CONSUMER,
        consumers::AI_SUBJECTS,
        handler.clone(),
    );
    platform.consume(
        consumers::MARKETPLACE_CONSUMER,
        consumers::MARKETPLACE_SUBJECTS,
        handler,
    );
    let jobs = Jobs::new(platform.outbox.clone(), settings, clock);
    platform.job(PeriodCloseJob::KIND, Arc::new(PeriodCloseJob(jobs.clone())));
    platform.job(DunningJob::KIND, Arc::new(DunningJob(jobs)));

    // Which methods are public (IngestWebhook: its signature authenticates it) is declared in
    // billing.proto (`keel.v1.access`).
    let server = platform
        .grpc_server(platform.jwt_verifier()?, PublicPaths::standard())
        .add_service(BillingServiceServer::new(Billing(context)));
    platform.serve(server).await
}

/// Write the configured meters and plans; rows equal to their config are left untouched, so a
/// restart (or a second replica starting) changes nothing.
async fn seed_catalogue(pool: &sqlx::PgPool, settings: &Settings) -> Result<(), Error> {
    let plans = settings
        .plans()
        .map_err(|err| Error::internal(anyhow::anyhow!("catalogue: {err}")))?;
    let mut tx = db::unscoped_tx(pool).await?;
    repo::catalogue::seed_meters(&mut tx, &settings.meters()).await?;
    for (position, plan) in plans.iter().enumerate() {
        repo::catalogue::seed_plan(&mut tx, plan, position).await?;
    }
    tx.commit().await?;
    Ok(())
}
