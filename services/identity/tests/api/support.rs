//! The harness every identity test uses: a fresh database and a private NATS server per test,
//! identity built by the same `app::build` as `main`, on port 0, called through the generated
//! clients; and a stand-in for tenancy that publishes real event envelopes to the test's
//! JetStream, so identity's real consumer path is what runs.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use async_nats::jetstream;
use base64::Engine as _;
use keel_identity::settings::{
    HashingSettings, IdentitySettings, LockoutSettings, SigningKeyFile, SigningSettings,
};
use keel_kernel::app::Running;
use keel_kernel::auth::{Claims, PrincipalKind};
use keel_kernel::config::{AuthConfig, Config, DatabaseConfig};
use keel_kernel::{ErrorCode, TenantId, UserId};
use keel_proto::events::v1::{Actor, EventEnvelope, actor};
use keel_proto::identity::v1 as pb;
use keel_proto::identity::v1::access_service_client::AccessServiceClient;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use keel_proto::identity::v1::user_service_client::UserServiceClient;
use keel_proto::tenancy::v1 as tenancy;
use keel_testkit::EventLog;
pub use keel_testkit::eventually;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use prost::Message;
use tonic::transport::Channel;

pub const ISSUER: &str = "keel-test";
pub const AUDIENCE: &str = "keel";
pub const PASSWORD: &str = "Correct horse 42";

/// A running identity and what it runs on.
pub struct TestApp {
    running: Option<Running>,
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub channel: Channel,
    pub db: TestDatabase,
    pub db_config: DatabaseConfig,
    pub nats: TestNats,
    pub js: jetstream::Context,
    pub settings: IdentitySettings,
    pub keys_dir: PathBuf,
    versions: Mutex<HashMap<TenantId, (i64, i64)>>,
}

/// Cheap settings for tests: light argon2, no delays, a lockout after 5 failures.
pub fn test_settings(keys_dir: &std::path::Path) -> IdentitySettings {
    let kid = "test-key-1";
    let path = keys_dir.join(format!("{kid}.pem"));
    write_key(&path);
    IdentitySettings {
        signing: SigningSettings {
            active_kid: kid.into(),
            keys: vec![SigningKeyFile {
                kid: kid.into(),
                private_key_file: path,
            }],
        },
        password_hashing: HashingSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            ..HashingSettings::default()
        },
        lockout: LockoutSettings {
            window_secs: 600,
            free_attempts: 100,
            base_delay_ms: 0,
            max_delay_ms: 0,
            account_threshold: 5,
            account_delay_threshold: 1_000,
            ip_threshold: 1_000,
            lock_secs: 600,
        },
        ..IdentitySettings::default()
    }
}

/// A fresh Ed25519 key as a PKCS#8 PEM file, like `openssl genpkey -algorithm ed25519` writes.
pub fn write_key(path: &std::path::Path) {
    keel_testkit::tokens::write_ed25519_pem(path);
}

pub fn config(
    db: DatabaseConfig,
    nats_url: &str,
    settings: IdentitySettings,
) -> Config<IdentitySettings> {
    let mut config = stack::config_with("identity", db, stack::nats_config(nats_url), settings);
    config.auth = AuthConfig {
        jwks_url: String::new(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_min_refetch_secs: 0,
        leeway_secs: 5,
    };
    config
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Spawn with test settings changed by `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut IdentitySettings)) -> TestApp {
        let keys_dir = std::env::temp_dir().join(format!(
            "keel-identity-keys-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&keys_dir).unwrap();
        let mut settings = test_settings(&keys_dir);
        adjust(&mut settings);
        let db = TestDatabase::create().await;
        let db_config = db.provision("identity").await;
        let nats = TestNats::start().await;
        let running =
            keel_identity::build(config(db_config.clone(), &nats.url(), settings.clone()))
                .await
                .expect("identity starts");
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client);
        let channel = connect(running.grpc_addr).await;
        TestApp {
            grpc_addr: running.grpc_addr,
            admin_addr: running.admin_addr,
            running: Some(running),
            channel,
            db,
            db_config,
            nats,
            js,
            settings,
            keys_dir,
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// Stop identity and start it again on the same database and broker with new settings.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut IdentitySettings)) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("identity stops");
        }
        adjust(&mut self.settings);
        let running = keel_identity::build(config(
            self.db_config.clone(),
            &self.nats.url(),
            self.settings.clone(),
        ))
        .await
        .expect("identity restarts");
        self.grpc_addr = running.grpc_addr;
        self.admin_addr = running.admin_addr;
        self.channel = connect(running.grpc_addr).await;
        self.running = Some(running);
    }

    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    pub fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel.clone())
    }

    pub fn access(&self) -> AccessServiceClient<Channel> {
        AccessServiceClient::new(self.channel.clone())
    }

    /// Register an account with [`PASSWORD`] and return its id.
    pub async fn register(&self, email: &str) -> UserId {
        let user = self
            .auth()
            .register(pb::RegisterRequest {
                email: email.into(),
                password: PASSWORD.into(),
                display_name: "Test User".into(),
            })
            .await
            .expect("register")
            .into_inner();
        user.id.parse().unwrap()
    }

    pub async fn login(&self, email: &str) -> pb::TokenPair {
        self.login_with(email, PASSWORD).await.expect("login")
    }

    pub async fn login_with(
        &self,
        email: &str,
        password: &str,
    ) -> Result<pb::TokenPair, tonic::Status> {
        self.auth()
            .login(pb::LoginRequest {
                email: email.into(),
                password: password.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Register and log in: the user and an unscoped pair.
    pub async fn user(&self, email: &str) -> (UserId, pb::TokenPair) {
        let id = self.register(email).await;
        (id, self.login(email).await)
    }

    pub async fn switch(
        &self,
        access_token: &str,
        tenant: TenantId,
    ) -> Result<pb::TokenPair, tonic::Status> {
        self.auth()
            .switch_tenant(bearer(
                pb::SwitchTenantRequest {
                    tenant_id: tenant.to_string(),
                },
                access_token,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Switch, retrying while identity has not yet consumed the events that make it possible.
    pub async fn switch_eventually(&self, access_token: &str, tenant: TenantId) -> pb::TokenPair {
        eventually(|| async { self.switch(access_token, tenant).await.ok() }).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<pb::TokenPair, tonic::Status> {
        self.auth()
            .refresh(pb::RefreshRequest {
                refresh_token: refresh_token.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// A token of another service of the mesh (`kind: service`) holding `perms`, signed with
    /// identity's own key, as the notifier would present.
    pub fn service_token(&self, perms: &[&str]) -> String {
        let ring = keel_identity::keys::KeyRing::load(&self.settings.signing).unwrap();
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "notifier".into(),
            kind: PrincipalKind::Service,
            tid: None,
            roles: Vec::new(),
            perms: perms.iter().map(|p| (*p).to_owned()).collect(),
            sid: None,
            email: None,
            email_verified: false,
            scopes: Vec::new(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now + 300,
            iat: now,
            nbf: None,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        ring.sign(&claims).unwrap()
    }

    /// The `verification_id` of the user's latest verification request.
    pub async fn verification_id(&self, user: UserId) -> String {
        self.published_eventually("identity.user.verification_requested", |e| {
            e.aggregate_id == user.to_string()
        })
        .await;
        let events = self.published("identity.user.verification_requested").await;
        let latest = events
            .iter()
            .rev()
            .find(|e| e.aggregate_id == user.to_string())
            .unwrap();
        keel_testkit::payload::<pb::UserVerificationRequested>(latest).verification_id
    }

    /// What the notifier does to mail a verification link: ask identity for a fresh token.
    pub async fn verification_token(&self, user: UserId) -> String {
        let id = self.verification_id(user).await;
        self.auth()
            .issue_verification_token(bearer(
                pb::IssueVerificationTokenRequest {
                    verification_id: id,
                },
                &self.service_token(&["identity.verification.issue"]),
            ))
            .await
            .expect("issue a verification token")
            .into_inner()
            .token
    }

    /// Verify the user's email the way they would: with the token mailed to them.
    pub async fn verify(&self, user: UserId) {
        let token = self.verification_token(user).await;
        self.auth()
            .verify_email(pb::VerifyEmailRequest { token })
            .await
            .expect("verify");
    }

    /// A superuser pool on the test database (bypasses RLS: for assertions only).
    pub async fn admin_pool(&self) -> sqlx::PgPool {
        self.db.admin_pool().await
    }

    /// A pool connected as identity's own role, with its search path.
    pub async fn service_pool(&self) -> sqlx::PgPool {
        keel_kernel::db::connect(
            "identity-test",
            &self.db_config,
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("service pool")
    }

    // -----------------------------------------------------------------------------------------
    // Tenancy's events, published as tenancy's outbox relay would.

    fn next_version(&self, tenant: TenantId, member: bool) -> i64 {
        let mut versions = self.versions.lock().unwrap();
        let entry = versions.entry(tenant).or_insert((0, 0));
        if member {
            entry.1 += 1;
            entry.1
        } else {
            entry.0 += 1;
            entry.0
        }
    }

    /// Publish one tenancy event of `event_type` with an explicit aggregate version.
    pub async fn publish_versioned<M: prost::Name>(
        &self,
        event_type: &str,
        tenant: TenantId,
        aggregate_id: String,
        version: i64,
        payload: &M,
    ) {
        let event_id = uuid::Uuid::now_v7().to_string();
        let now = chrono::Utc::now();
        let envelope = EventEnvelope {
            event_id: event_id.clone(),
            event_type: event_type.into(),
            tenant_id: tenant.to_string(),
            aggregate_type: event_type.split('.').nth(1).unwrap().into(),
            aggregate_id,
            aggregate_version: version,
            occurred_at: Some(prost_types::Timestamp {
                seconds: now.timestamp(),
                nanos: 0,
            }),
            actor: Some(Actor {
                kind: actor::Kind::System as i32,
                id: "test".into(),
            }),
            correlation_id: event_id.clone(),
            causation_id: String::new(),
            trace_context: HashMap::new(),
            payload: Some(prost_types::Any::from_msg(payload).unwrap()),
            source: "tenancy".into(),
        };
        let message = jetstream::message::PublishMessage::build()
            .payload(envelope.encode_to_vec().into())
            .message_id(event_id);
        self.js
            .send_publish(format!("events.{event_type}"), message)
            .await
            .expect("publish")
            .await
            .expect("publish ack");
    }

    async fn tenant_event<M: prost::Name>(&self, event_type: &str, tenant: TenantId, payload: &M) {
        let version = self.next_version(tenant, false);
        self.publish_versioned(event_type, tenant, tenant.to_string(), version, payload)
            .await;
    }

    async fn member_event<M: prost::Name>(
        &self,
        event_type: &str,
        tenant: TenantId,
        user: UserId,
        payload: &M,
    ) {
        let version = self.next_version(tenant, true);
        self.publish_versioned(
            event_type,
            tenant,
            format!("{tenant}/{user}"),
            version,
            payload,
        )
        .await;
    }

    /// `tenancy.tenant.created` (active) and `tenancy.member.added` for its owner.
    pub async fn tenant_created(&self, owner: UserId) -> TenantId {
        let tenant = TenantId::new();
        let created = tenancy::TenantCreated {
            tenant_id: tenant.to_string(),
            name: "Acme".into(),
            slug: format!("acme-{}", &tenant.to_string()[..8]),
            state: tenancy::TenantState::Active as i32,
            created_by: owner.to_string(),
        };
        self.tenant_event("tenancy.tenant.created", tenant, &created)
            .await;
        self.member_added(tenant, owner, "owner").await;
        tenant
    }

    pub async fn member_added(&self, tenant: TenantId, user: UserId, role: &str) {
        let added = tenancy::MemberAdded {
            tenant_id: tenant.to_string(),
            user_id: user.to_string(),
            role: role.into(),
        };
        self.member_event("tenancy.member.added", tenant, user, &added)
            .await;
    }

    pub async fn member_removed(&self, tenant: TenantId, user: UserId) {
        let removed = tenancy::MemberRemoved {
            tenant_id: tenant.to_string(),
            user_id: user.to_string(),
        };
        self.member_event("tenancy.member.removed", tenant, user, &removed)
            .await;
    }

    pub async fn tenant_suspended(&self, tenant: TenantId) {
        let suspended = tenancy::TenantSuspended {
            tenant_id: tenant.to_string(),
            reason: "unpaid".into(),
        };
        self.tenant_event("tenancy.tenant.suspended", tenant, &suspended)
            .await;
    }

    pub async fn tenant_reactivated(&self, tenant: TenantId) {
        let reactivated = tenancy::TenantReactivated {
            tenant_id: tenant.to_string(),
        };
        self.tenant_event("tenancy.tenant.reactivated", tenant, &reactivated)
            .await;
    }

    /// A user with an active tenant of their own, and their owner-scoped pair in it.
    pub async fn owner_of_new_tenant(&self, email: &str) -> (UserId, TenantId, pb::TokenPair) {
        let (user, pair) = self.user(email).await;
        let tenant = self.tenant_created(user).await;
        let scoped = self.switch_eventually(&pair.access_token, tenant).await;
        (user, tenant, scoped)
    }

    /// Identity's own events of `event_type`, as published to the test's JetStream so far.
    pub async fn published(&self, event_type: &str) -> Vec<EventEnvelope> {
        EventLog::connect(&self.nats.url())
            .await
            .of_type(event_type, 0)
            .await
    }

    /// Wait until identity has published at least one `event_type` event matching `pred`.
    pub async fn published_eventually(
        &self,
        event_type: &str,
        pred: impl Fn(&EventEnvelope) -> bool,
    ) -> EventEnvelope {
        eventually(|| async {
            self.published(event_type)
                .await
                .into_iter()
                .find(|e| pred(e))
        })
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.keys_dir);
    }
}

async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to identity")
}

/// A request carrying `token` as its bearer credential.
pub fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A request as the gateway forwards it from client `ip`.
pub fn from_ip<T>(message: T, ip: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        keel_kernel::RequestMeta::CLIENT_IP_HEADER,
        ip.parse().unwrap(),
    );
    request
}

/// The claims inside a token, unverified (the tests check what identity put there).
pub fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The JOSE header of a token, unverified.
pub fn header_of(token: &str) -> serde_json::Value {
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The platform error code of a failed call.
pub fn code(status: &tonic::Status) -> ErrorCode {
    keel_kernel::Error::from_status(status).code()
}

pub fn unique_email(name: &str) -> String {
    format!(
        "{name}-{}@example.com",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
