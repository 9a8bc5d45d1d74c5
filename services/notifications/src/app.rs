//! Wiring: the kernel's platform (database, NATS, outbox relay, consumers, job worker, server
//! bootstrap) with notifications' consumers, jobs and handlers on it.

use std::sync::Arc;

use keel_kernel::Error;
use keel_kernel::app::{Platform, Running};
use keel_kernel::auth::PublicPaths;
use keel_kernel::clock::{self, SharedClock};
use keel_kernel::config::Config;
use keel_proto::notifications::v1::notification_service_server::NotificationServiceServer;
use sqlx::migrate::Migrator;

use crate::events;
use crate::grpc::{Context, Notifications};
use crate::jobs::{self, Handler};
use crate::mail::Mailer;
use crate::ops::Deliverer;
use crate::peers::Peers;
use crate::render::Renderer;
use crate::settings::Settings;
use crate::webhooks;
use keel_proto::notifications::v1::webhook_service_server::WebhookServiceServer;

/// Notifications' migrations; the kernel runs its own first.
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Notifications on the system clock: what `main` runs.
pub async fn build(config: Config<Settings>) -> Result<Running, Error> {
    build_with_clock(config, clock::system()).await
}

/// Connect, migrate, start the relay, the consumers and the job worker, and serve notifications
/// on the configured ports (port 0 in tests, with a test clock).
pub async fn build_with_clock(
    config: Config<Settings>,
    clock: SharedClock,
) -> Result<Running, Error> {
    let settings = config.app.clone();
    let nats = config.nats.clone();
    let mut platform = Platform::start(config, &MIGRATIONS).await?;
    platform.set_clock(clock.clone());
    let deliverer = Deliverer {
        renderer: Arc::new(Renderer::new()?),
        peers: Peers::new(&settings)?,
        mailer: Mailer::new(&settings.smtp)?,
        outbox: platform.outbox.clone(),
        clock: clock.clone(),
        settings: Arc::new(settings.clone()),
    };
    for (name, subjects) in events::SOURCES {
        platform.consume(
            name,
            subjects,
            Arc::new(events::consumer::Sources {
                deliverer: deliverer.clone(),
            }),
        );
    }
    for kind in [jobs::SEND_EMAIL, jobs::DIGEST] {
        platform.job(
            kind,
            Arc::new(Handler {
                deliverer: deliverer.clone(),
                kind,
            }),
        );
    }
    let webhooks = webhooks::WebhookContext::new(
        platform.db.clone(),
        platform.outbox.clone(),
        clock.clone(),
        settings.webhooks.clone(),
    )?;
    webhooks::wire(&mut platform, &webhooks);
    let context = Arc::new(Context {
        db: platform.db.clone(),
        outbox: platform.outbox.clone(),
        settings,
        clock,
        js: platform.js.clone(),
        stream: nats.stream.clone(),
        notification_subject: keel_kernel::nats::subject_for(&nats, events::NOTIFICATION_SUBJECTS),
    });
    let server = platform
        .grpc_server(platform.jwt_verifier()?, PublicPaths::standard())
        .add_service(NotificationServiceServer::new(Notifications(context)))
        .add_service(WebhookServiceServer::new(webhooks::grpc::Webhooks(
            webhooks,
        )));
    platform.serve(server).await
}
