//! Wiring: the kernel's platform (database, NATS, outbox relay, server bootstrap) with the
//! ai-gateway's handlers, its providers and its billing consumer on it.

use std::sync::Arc;

use keel_kernel::Error;
use keel_kernel::app::{Platform, Running};
use keel_kernel::auth::PublicPaths;
use keel_kernel::config::Config;
use keel_proto::ai::v1::ai_service_server::AiServiceServer;
use sqlx::migrate::Migrator;

use crate::events::entitlements::{self, Entitlements};
use crate::grpc::{Ai, AiMetrics, Context};
use crate::jobs::{self, SweepReservations};
use crate::providers::Router;
use crate::settings::Settings;
use keel_kernel::clock::{self, SharedClock};

/// The ai-gateway's migrations; the kernel runs its own first.
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Connect, migrate, start the relay and the billing consumer, and serve on the configured ports
/// (port 0 in tests), on the system clock.
pub async fn build(config: Config<Settings>) -> Result<Running, Error> {
    build_with_clock(config, clock::system()).await
}

/// [`build`] on a given clock (tests move a test clock instead of sleeping).
pub async fn build_with_clock(
    config: Config<Settings>,
    clock: SharedClock,
) -> Result<Running, Error> {
    let settings = config.app.clone();
    let router = Router::from_settings(&settings)?;
    // The tokenizer's vocabulary loads once, before the first request needs it.
    tokio::task::spawn_blocking(crate::domain::tokens::warm_up)
        .await
        .map_err(|err| Error::internal(anyhow::anyhow!("tokenizer: {err}")))?;
    let mut platform = Platform::start(config, &MIGRATIONS).await?;
    platform.set_clock(clock.clone());
    platform.job(
        jobs::SWEEP_RESERVATIONS,
        Arc::new(SweepReservations {
            clock: clock.clone(),
            ttl: settings.reservation_ttl(),
        }),
    );
    let metrics = AiMetrics::register(&platform.metrics.registry());
    let context = Arc::new(Context {
        db: platform.db.clone(),
        outbox: platform.outbox.clone(),
        settings,
        router,
        clock: clock.clone(),
        metrics,
        sweeps: Default::default(),
    });
    platform.consume(
        entitlements::CONSUMER,
        entitlements::SUBJECTS,
        Arc::new(Entitlements { clock }),
    );
    let server = platform
        .grpc_server(platform.jwt_verifier()?, PublicPaths::standard())
        .add_service(AiServiceServer::new(Ai(context)));
    platform.serve(server).await
}
