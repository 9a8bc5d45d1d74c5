//! The webhooks' harness: notifications alone (its webhooks need no peer) on a test clock, its
//! own NATS and database, tokens from a test issuer, loopback allowed as a webhook destination,
//! and a local HTTP endpoint that records what it receives and fails when told to.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use keel_kernel::app::Running;
use keel_kernel::auth::roles;
use keel_kernel::clock::{Clock, TestClock};
use keel_kernel::config::DatabaseConfig;
use keel_kernel::service_client::ServiceClientConfig;
use keel_kernel::{TenantId, UserId};
use keel_notifications::Settings;
use keel_notifications::webhooks::WebhookSettings;
use keel_proto::notifications::v1 as pb;
use keel_proto::notifications::v1::webhook_service_client::WebhookServiceClient;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use keel_testkit::{Bearer, EventLog};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type WebhookClient = WebhookServiceClient<InterceptedService<Channel, Bearer>>;

pub struct WebhookApp {
    pub issuer: TestIssuer,
    pub nats: TestNats,
    pub db: TestDatabase,
    pub db_config: DatabaseConfig,
    pub clock: TestClock,
    pub log: EventLog,
    pub running: Running,
    channel: Channel,
}

pub fn webhook_settings() -> WebhookSettings {
    WebhookSettings {
        allowed_networks: vec!["127.0.0.0/8".into()],
        timeout_ms: 2_000,
        ..WebhookSettings::default()
    }
}

impl WebhookApp {
    pub async fn spawn() -> WebhookApp {
        WebhookApp::spawn_with(webhook_settings()).await
    }

    pub async fn spawn_with(webhooks: WebhookSettings) -> WebhookApp {
        let issuer = TestIssuer::start().await;
        let nats = TestNats::start().await;
        let db = TestDatabase::create().await;
        let db_config = db.provision("notifications").await;
        let clock = TestClock::new("2027-03-15T09:00:00Z".parse().unwrap());
        let log = EventLog::connect(&nats.url()).await;
        let settings = Settings {
            webhooks,
            // Never reached by webhooks; the people-facing consumers may try and fail.
            identity_client: ServiceClientConfig {
                identity_url: "http://127.0.0.1:9".into(),
                client_id: "notifications".into(),
                client_secret: Some("unused-in-webhook-tests-0123456789".to_owned().into()),
                client_secret_file: None,
                permissions: Vec::new(),
                connect_timeout_ms: 200,
                request_timeout_ms: 500,
            },
            tenancy_url: "http://127.0.0.1:9".into(),
            ..Settings::default()
        };
        let mut config = stack::config_with(
            "notifications",
            db_config.clone(),
            stack::nats_config(&nats.url()),
            settings,
        );
        config.auth = issuer.auth_config();
        let running = keel_notifications::build_with_clock(config, clock.shared())
            .await
            .expect("notifications starts");
        let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        WebhookApp {
            issuer,
            nats,
            db,
            db_config,
            clock,
            log,
            running,
            channel,
        }
    }

    pub fn client(&self, token: &str) -> WebhookClient {
        WebhookServiceClient::with_interceptor(self.channel.clone(), Bearer::token(token))
    }

    /// A user's token in `tenant` with a built-in role.
    pub fn token(&self, tenant: TenantId, role: &str) -> String {
        self.issuer.token(
            TokenSpec::user(UserId::new())
                .tenant(tenant)
                .role(role)
                .perms(roles::built_in(role).expect("a built-in role")),
        )
    }

    pub fn owner(&self, tenant: TenantId) -> WebhookClient {
        self.client(&self.token(tenant, roles::OWNER))
    }

    /// Run every attempt due at the test clock's time, until none is left undone.
    pub async fn run_jobs(&self) {
        let admin = self.db.admin_pool().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            self.running.jobs.run_due().await.expect("jobs run");
            let (pending,): (i64,) = sqlx::query_as(&format!(
                "SELECT count(*) FROM {}.jobs WHERE done_at IS NULL AND given_up_at IS NULL \
                   AND run_at <= $1 AND kind = 'notifications.webhook.attempt'",
                self.db_config.schema
            ))
            .bind(self.clock.now())
            .fetch_one(&admin)
            .await
            .unwrap();
            if pending == 0 {
                admin.close().await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pending} attempts undone"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Move the clock by `by` and run what fell due.
    pub async fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
        self.run_jobs().await;
    }

    /// A delivery event of `tenant`, as delivery's relay publishes it.
    pub async fn task_created(&self, tenant: TenantId) -> keel_proto::events::v1::EventEnvelope {
        self.log
            .publish(
                "delivery",
                "delivery.task.created",
                &tenant.to_string(),
                1,
                &keel_proto::delivery::v1::TaskCreated {
                    task_id: uuid::Uuid::now_v7().to_string(),
                    project_id: uuid::Uuid::now_v7().to_string(),
                    title: "Pour the foundations".to_owned(),
                    state: 2,
                    assignee_id: UserId::new().to_string(),
                    created_by: UserId::new().to_string(),
                    due_time: None,
                },
            )
            .await
    }

    pub async fn create_endpoint(
        &self,
        tenant: TenantId,
        url: &str,
        event_types: &[&str],
    ) -> pb::CreateWebhookEndpointResponse {
        self.owner(tenant)
            .create_webhook_endpoint(pb::CreateWebhookEndpointRequest {
                tenant_id: tenant.to_string(),
                endpoint: Some(pb::WebhookEndpointInput {
                    kind: pb::WebhookChannelKind::Webhook as i32,
                    url: url.to_owned(),
                    description: "test receiver".into(),
                    event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
                    ..Default::default()
                }),
            })
            .await
            .expect("create endpoint")
            .into_inner()
    }

    pub async fn attempts(&self, tenant: TenantId, endpoint: &str) -> Vec<pb::WebhookAttempt> {
        let mut attempts = self
            .owner(tenant)
            .list_webhook_attempts(pb::ListWebhookAttemptsRequest {
                tenant_id: tenant.to_string(),
                endpoint_id: endpoint.to_owned(),
                ..Default::default()
            })
            .await
            .expect("attempts")
            .into_inner()
            .attempts;
        attempts.reverse(); // oldest first
        attempts
    }
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: DateTime<Utc>,
}

/// A local webhook receiver: answers with the queued statuses first, then 200.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    always: Arc<Mutex<Option<u16>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let always = Arc::new(Mutex::new(None));
        let (log, queue, fixed) = (received.clone(), script.clone(), always.clone());
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let (log, queue, fixed) = (log.clone(), queue.clone(), fixed.clone());
            async move {
                log.lock().unwrap().push(Received {
                    headers,
                    body,
                    at: Utc::now(),
                });
                let scripted = queue.lock().unwrap().pop_front();
                let status = scripted.or(*fixed.lock().unwrap()).unwrap_or(200);
                (
                    StatusCode::from_u16(status).unwrap(),
                    format!("receiver says {status}"),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            addr,
            received,
            script,
            always,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/keel", self.addr)
    }

    /// The next requests get these statuses, in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    /// Every request gets `status` (after the scripted ones).
    pub fn always_answer(&self, status: u16) {
        *self.always.lock().unwrap() = Some(status);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} requests arrived",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
