//! Wiring: the kernel's platform (database, NATS, outbox relay, server bootstrap) with tenancy's
//! handlers on it.

use std::sync::Arc;

use keel_kernel::Error;
use keel_kernel::app::{Platform, Running};
use keel_kernel::auth::PublicPaths;
use keel_kernel::config::Config;
use keel_proto::tenancy::v1::membership_service_server::MembershipServiceServer;
use keel_proto::tenancy::v1::module_service_server::ModuleServiceServer;
use keel_proto::tenancy::v1::tenant_service_server::TenantServiceServer;
use sqlx::migrate::Migrator;

use crate::events;
use crate::grpc::{Context, Memberships, Modules, Tenants};
use crate::settings::Settings;

/// Tenancy's migrations; the kernel runs its own first.
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Connect, migrate, start the relay, and serve tenancy on the configured ports (port 0 in tests).
pub async fn build(config: Config<Settings>) -> Result<Running, Error> {
    let settings = config.app.clone();
    let mut platform = Platform::start(config, &MIGRATIONS).await?;
    let context = Arc::new(Context {
        db: platform.db.clone(),
        outbox: platform.outbox.clone(),
        settings,
    });
    // The plan in force (billing's entitlements) decides the tenant's modules.
    platform.consume(
        events::billing::CONSUMER,
        events::billing::SUBJECTS,
        Arc::new(events::billing::BillingEvents::new(platform.outbox.clone())),
    );
    // Every tenancy method needs a token: even the catalogue and "my tenants" are per caller.
    let server = platform
        .grpc_server(platform.jwt_verifier()?, PublicPaths::standard())
        .add_service(TenantServiceServer::new(Tenants(context.clone())))
        .add_service(MembershipServiceServer::new(Memberships(context.clone())))
        .add_service(ModuleServiceServer::new(Modules(context)));
    platform.serve(server).await
}
