//! Wiring: the kernel's platform (database, NATS, outbox relay, consumers, job worker, server
//! bootstrap) with delivery's consumer, jobs and handlers on it.

use std::sync::Arc;

use keel_kernel::Error;
use keel_kernel::app::{Platform, Running};
use keel_kernel::auth::PublicPaths;
use keel_kernel::clock::{self, SharedClock};
use keel_kernel::config::Config;
use keel_proto::delivery::v1::delivery_service_server::DeliveryServiceServer;
use sqlx::migrate::Migrator;

use crate::events;
use crate::grpc::{Context, Delivery};
use crate::jobs::{self, Handler, Jobs};
use crate::settings::Settings;

/// Delivery's migrations; the kernel runs its own first.
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Delivery on the system clock: what `main` runs.
pub async fn build(config: Config<Settings>) -> Result<Running, Error> {
    build_with_clock(config, clock::system()).await
}

/// Connect, migrate, start the relay, the member consumer and the job worker, and serve delivery
/// on the configured ports (port 0 in tests, with a test clock).
pub async fn build_with_clock(
    config: Config<Settings>,
    clock: SharedClock,
) -> Result<Running, Error> {
    let settings = config.app.clone();
    let nats = config.nats.clone();
    let mut platform = Platform::start(config, &MIGRATIONS).await?;
    platform.set_clock(clock.clone());
    let context = Arc::new(Context {
        db: platform.db.clone(),
        outbox: platform.outbox.clone(),
        settings,
        clock: clock.clone(),
        js: platform.js.clone(),
        stream: nats.stream.clone(),
        task_subject: keel_kernel::nats::subject_for(&nats, events::TASK_SUBJECTS),
    });
    platform.consume(
        events::tenancy::CONSUMER,
        events::tenancy::SUBJECTS,
        Arc::new(events::tenancy::TenancyEvents::new(
            platform.outbox.clone(),
            clock.clone(),
        )),
    );
    let jobs = Jobs::new(platform.outbox.clone(), clock);
    for kind in [jobs::OVERDUE, jobs::ESCALATION, jobs::PURGE] {
        platform.job(
            kind,
            Arc::new(Handler {
                jobs: jobs.clone(),
                kind,
            }),
        );
    }
    let server = platform
        .grpc_server(platform.jwt_verifier()?, PublicPaths::standard())
        .add_service(DeliveryServiceServer::new(Delivery(context)));
    platform.serve(server).await
}
