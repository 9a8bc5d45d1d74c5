//! Wiring: the kernel's platform with identity's handlers, its tenancy consumer and its JWKS.

use std::sync::Arc;

use axum::routing::get;
use keel_kernel::Error;
use keel_kernel::app::{Platform, Running};
use keel_kernel::auth::{JwtVerifier, PublicPaths};
use keel_kernel::config::Config;
use keel_proto::identity::v1::access_service_server::AccessServiceServer;
use keel_proto::identity::v1::auth_service_server::AuthServiceServer;
use keel_proto::identity::v1::user_service_server::UserServiceServer;
use sqlx::migrate::Migrator;

use crate::domain::{PasswordHasherConfig, ServiceClients, secrets};
use crate::events::tenancy::{self as tenancy_events, TenancyEvents};
use crate::grpc::{Access, Auth, Context, Users};
use crate::keys::KeyRing;
use crate::settings::IdentitySettings;
use crate::tokens::TokenIssuer;

/// Identity's migrations; the kernel runs its own first.
pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Where identity serves its JWKS over plain HTTP, on the admin port.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Load the signing keys, connect, migrate, start the relay and the tenancy consumer, and serve
/// identity on the configured ports (port 0 in tests).
pub async fn build(config: Config<IdentitySettings>) -> Result<Running, Error> {
    let settings = config.app.clone();
    // Keys first: a missing key file should stop start-up before anything connects.
    let keys = Arc::new(KeyRing::load(&settings.signing)?);
    let service_clients = ServiceClients::load(&settings.service_clients)?;
    let hasher = PasswordHasherConfig::new(&settings.password_hashing)?;
    let dummy_hash = hasher.hash_async(secrets::random_token()).await?;

    let mut platform = Platform::start(config, &MIGRATIONS).await?;
    hasher.register_metrics(&platform.metrics.registry());
    let auth = &platform.config.auth;
    let tokens = TokenIssuer::new(
        keys.clone(),
        &auth.issuer,
        &auth.audience,
        settings.tokens.access_ttl_secs,
        settings.tokens.api_key_token_ttl_secs,
        settings.tokens.service_token_ttl_secs,
    );
    // Identity verifies its own tokens with its own keys, in process: no HTTP round trip to itself.
    let verifier = JwtVerifier::from_jwks(auth, &keys.jwks());
    let context = Arc::new(Context {
        db: platform.db.clone(),
        outbox: platform.outbox.clone(),
        settings,
        tokens,
        hasher,
        dummy_hash,
        service_clients,
    });

    platform.consume(
        tenancy_events::CONSUMER,
        tenancy_events::SUBJECTS,
        Arc::new(TenancyEvents::new(platform.outbox.clone())),
    );
    let jwks = keys.jwks();
    platform.admin_routes(axum::Router::new().route(
        JWKS_PATH,
        get(move || std::future::ready(axum::Json(jwks.clone()))),
    ));

    // Which methods are public is declared in identity.proto (`keel.v1.access`).
    let public = PublicPaths::standard();
    let server = platform
        .grpc_server(verifier, public)
        .add_service(AuthServiceServer::new(Auth(context.clone())))
        .add_service(UserServiceServer::new(Users(context.clone())))
        .add_service(AccessServiceServer::new(Access(context)));
    platform.serve(server).await
}
