//! The service bootstrap every service shares: connect, migrate, start the outbox relay and the
//! consumers, serve gRPC and the admin port, and shut down in order.
//!
//! A service's `app.rs` builds its handlers on a [`Platform`] and calls [`Platform::serve`]; its
//! `main.rs` only loads config, starts telemetry and waits for a signal. Tests call the same
//! `build` with port 0, so what is tested is what runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminServer, OperatorAccess, ReadinessCheck};
use crate::auth::{AuthLayer, JwtVerifier, PublicPaths};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::consumer::{Consumer, EventHandler};
use crate::error::Error;
use crate::jobs::{JobHandler, JobRunner};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, Relay};
use crate::server::GrpcServer;
use crate::{db, nats};

/// How long a starting service waits for its database before giving up.
const DATABASE_STARTUP_WAIT: Duration = Duration::from_secs(30);

/// How long start-up waits for the broker to confirm the event stream before serving anyway.
const STREAM_CHECK_WAIT: Duration = Duration::from_secs(2);

/// How long shutdown waits for the relay, consumers and jobs to finish their current batch.
/// A relay stuck on a broker that does not answer is abandoned after it: what it had claimed is
/// rolled back and published by the next relay (JetStream de-duplicates a re-publish).
const BACKGROUND_STOP_WAIT: Duration = Duration::from_secs(5);

/// How often the broker-connection and outbox-age gauges are refreshed.
const BROKER_GAUGES_INTERVAL: Duration = Duration::from_secs(2);

/// A service's connections and shared handles, built once at start.
pub struct Platform<S = crate::config::NoSettings> {
    pub config: Arc<Config<S>>,
    pub db: PgPool,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub outbox: Outbox,
    pub metrics: Arc<Metrics>,
    /// The time domain code and the job worker go by: the system clock unless a test set one.
    pub clock: SharedClock,
    job_handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
    /// The newest migration this build needs; readiness waits for the schema to have it.
    expected_migration_version: i64,
    /// Cancelled after the gRPC server has drained: stops the relay and the consumers.
    background_shutdown: CancellationToken,
    background: Vec<JoinHandle<()>>,
    admin_routes: axum::Router,
    /// The verifier the gRPC server authenticates with; the admin port's operator endpoints
    /// accept platform-admin tokens through it too.
    verifier: Option<JwtVerifier>,
}

impl<S> Platform<S> {
    /// Connect to Postgres (migrating the kernel's and the service's tables), connect to NATS and
    /// make sure the event stream exists, and start this service's outbox relay.
    pub async fn start(config: Config<S>, migrations: &Migrator) -> Result<Platform<S>, Error> {
        let service = config.service.clone();
        crate::error::set_domain(&service);
        let metrics = Arc::new(Metrics::new(&service));
        let db = db::connect(&service, &config.database, DATABASE_STARTUP_WAIT).await?;
        if config.database.migrate {
            db::migrate(&db, migrations).await?;
        }
        let client = nats::connect(&service, &config.nats).await?;
        let js = jetstream::new(client.clone());
        // Bounded: with the broker away its requests only time out, and a service that cannot
        // reach the broker must still start and serve (writes go to the outbox; the relay
        // creates the stream when it can).
        match tokio::time::timeout(STREAM_CHECK_WAIT, nats::ensure_stream(&js, &config.nats)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "event stream not ready yet"),
            Err(_) => tracing::warn!("event stream not ready yet: the broker did not answer"),
        }
        let background_shutdown = CancellationToken::new();
        let relay = Relay::new(
            db.clone(),
            js.clone(),
            config.nats.clone(),
            config.outbox.clone(),
            metrics.clone(),
        );
        let background = vec![
            tokio::spawn(relay.run(background_shutdown.clone())),
            tokio::spawn(refresh_broker_gauges(
                db.clone(),
                client.clone(),
                metrics.clone(),
                background_shutdown.clone(),
            )),
            tokio::spawn(sample_db_pool(
                db.clone(),
                metrics.clone(),
                background_shutdown.clone(),
            )),
        ];
        Ok(Platform {
            outbox: Outbox::new(&service),
            config: Arc::new(config),
            db,
            nats: client,
            js,
            metrics,
            clock: crate::clock::system(),
            job_handlers: HashMap::new(),
            expected_migration_version: db::expected_migration_version(migrations),
            background_shutdown,
            background,
            admin_routes: axum::Router::new(),
            verifier: None,
        })
    }

    /// Start a durable consumer named `<service>-<name>` on `source` (an event-type pattern such as
    /// `tenancy.>`; the stream's subject prefix is added).
    pub fn consume(&mut self, name: &str, source: &str, handler: Arc<dyn EventHandler>) {
        let consumer = Consumer::new(
            &format!("{}-{name}", self.config.service),
            &nats::subject_for(&self.config.nats, source),
            self.db.clone(),
            self.js.clone(),
            &self.config.nats,
            self.config.consumer.clone(),
            handler,
            self.metrics.clone(),
        );
        self.background
            .push(tokio::spawn(consumer.run(self.background_shutdown.clone())));
    }

    /// Run the service on `clock` (tests: a [`crate::clock::TestClock`]). Set it before anything
    /// that reads `platform.clock` is built.
    pub fn set_clock(&mut self, clock: SharedClock) {
        self.clock = clock;
    }

    /// Run jobs of `kind` with `handler` (see [`crate::jobs`]). The worker starts with `serve`.
    pub fn job(&mut self, kind: &'static str, handler: Arc<dyn JobHandler>) {
        self.job_handlers.insert(kind, handler);
    }

    /// Serve plain-HTTP routes of the service's own on the admin port (identity's JWKS).
    pub fn admin_routes(&mut self, router: axum::Router) {
        self.admin_routes = std::mem::take(&mut self.admin_routes).merge(router);
    }

    /// A verifier for tokens issued by identity, from the JWKS at `auth.jwks_url`.
    pub fn jwt_verifier(&self) -> Result<JwtVerifier, Error> {
        JwtVerifier::new(&self.config.auth)
            .map_err(|err| Error::internal(anyhow::anyhow!("auth config: {err}")))
    }

    /// A gRPC server for this service with the standard layers and `verifier` as its authenticator;
    /// `public` lists the methods callable without a token (health and reflection always are).
    pub fn grpc_server(&mut self, verifier: JwtVerifier, public: PublicPaths) -> GrpcServer {
        self.verifier = Some(verifier.clone());
        GrpcServer::new(
            &self.config.service,
            &self.config.grpc,
            self.metrics.clone(),
        )
        .auth(AuthLayer::with_public_paths(
            verifier,
            self.config.service.clone(),
            public,
        ))
    }

    /// Bind the gRPC and admin ports and serve until [`Running::stop`] (or a signal, in `main`).
    /// Shutdown order: readiness turns false, gRPC drains its requests, then the relay and the
    /// consumers finish their current batch, then the admin port closes.
    pub async fn serve(self, server: GrpcServer) -> Result<Running, Error> {
        let grpc = server
            .bind()
            .await
            .map_err(|err| Error::internal(anyhow::anyhow!("{err}")))?;
        let admin = AdminServer::new(&self.config.admin, self.metrics.registry())
            // Ready means "can serve requests": the database answers and is migrated. The broker
            // is not a condition (writes queue in the outbox while it is away); its state shows
            // in the `nats_connected` and `outbox_oldest_unpublished_age_seconds` gauges.
            .readiness(ReadinessCheck::database(
                self.db.clone(),
                self.expected_migration_version,
            ))
            .dead_letters(
                self.db.clone(),
                OperatorAccess::new(
                    self.config.admin.operator_token.clone(),
                    self.verifier.clone(),
                ),
            )
            .routes(crate::admin_ops::outbox_routes(
                &self.config.service,
                self.db.clone(),
                OperatorAccess::new(
                    self.config.admin.operator_token.clone(),
                    self.verifier.clone(),
                ),
            ))
            .routes(self.admin_routes)
            .linger(Duration::from_millis(200))
            .bind()
            .await
            .map_err(|err| Error::internal(anyhow::anyhow!("{err}")))?;
        let (grpc_addr, admin_addr) = (grpc.local_addr, admin.local_addr);
        let jobs = JobRunner::new(
            self.db.clone(),
            self.clock.clone(),
            self.config.jobs.clone(),
            self.job_handlers,
        );
        let mut background = self.background;
        background.push(tokio::spawn(
            jobs.clone().run(self.background_shutdown.clone()),
        ));
        tracing::info!(%grpc_addr, %admin_addr, service = %self.config.service, "serving");

        let shutdown = CancellationToken::new();
        let admin_shutdown = CancellationToken::new();
        let admin_task = tokio::spawn(admin.serve(admin_shutdown.clone()));
        let grpc_shutdown = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = grpc.serve(grpc_shutdown).await;
            self.background_shutdown.cancel();
            let stop_by = tokio::time::Instant::now() + BACKGROUND_STOP_WAIT;
            for mut task in background {
                if tokio::time::timeout_at(stop_by, &mut task).await.is_err() {
                    tracing::warn!("a background task did not stop in time; aborting it");
                    task.abort();
                }
            }
            self.db.close().await;
            admin_shutdown.cancel();
            let _ = admin_task.await;
            served.map_err(|err| Error::internal(anyhow::anyhow!("{err}")))
        });
        Ok(Running {
            grpc_addr,
            admin_addr,
            jobs,
            shutdown,
            task,
        })
    }
}

/// A serving service.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The service's job worker, for tests to run due jobs now (`jobs.run_due()`).
    pub jobs: JobRunner,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
}

impl Running {
    /// Begin a graceful shutdown and wait for it to finish.
    pub async fn stop(self) -> Result<(), Error> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Serve until SIGTERM/SIGINT, then shut down gracefully. What `main` calls.
    pub async fn run_until_signal(self) -> Result<(), Error> {
        crate::server::shutdown_signal().await;
        tracing::info!("signal received, shutting down");
        self.stop().await
    }

    async fn wait(self) -> Result<(), Error> {
        self.task
            .await
            .map_err(|err| Error::internal(anyhow::anyhow!("service task failed: {err}")))?
    }
}

/// Keep the broker's state visible while readiness ignores it: `nats_connected` (1 or 0, shared
/// by the relay and the consumers, which use one client) and `outbox_oldest_unpublished_age_seconds`
/// (how long the oldest unpublished event has waited: grows while the broker is away, falls back
/// to 0 once the relay has drained the backlog; what an alert watches). The relay sets the age
/// too, but only on the replica holding the relay lease; this keeps it current on every replica.
async fn refresh_broker_gauges(
    db: PgPool,
    nats: async_nats::Client,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    use prometheus_client::metrics::gauge::Gauge;

    let registry = metrics.registry();
    let connected: Gauge = registry.register(
        "nats_connected",
        "1 while the service's NATS client (relay and consumers) is connected, else 0",
        Gauge::default(),
    );
    let mut tick = tokio::time::interval(BROKER_GAUGES_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let up = nats.connection_state() == async_nats::connection::State::Connected;
        connected.set(i64::from(up));
        // The unpublished rows are few and indexed (`outbox_unpublished`); a failed read (the
        // database away) leaves the last value rather than reporting a false 0.
        let age: Result<f64, sqlx::Error> = sqlx::query_scalar(
            "SELECT COALESCE((SELECT EXTRACT(EPOCH FROM now() - created_at)::float8 \
               FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1), 0)",
        )
        .fetch_one(&db)
        .await;
        if let Ok(age) = age {
            metrics.outbox_oldest_age.set(age.max(0.0));
        }
    }
}

/// How often the pool gauges are refreshed: finer than any scrape interval worth having.
const DB_POOL_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Keep the `keel_db_pool_*` gauges current until shutdown. Sampled, not pushed: sqlx reports
/// the pool's state on request only.
async fn sample_db_pool(db: PgPool, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let max = i64::from(db.options().get_max_connections());
    metrics.db_pool_max_connections.set(max);
    loop {
        metrics.db_pool_connections.set(i64::from(db.size()));
        metrics
            .db_pool_idle_connections
            .set(i64::try_from(db.num_idle()).unwrap_or(i64::MAX));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DB_POOL_SAMPLE_EVERY) => {}
        }
    }
}
