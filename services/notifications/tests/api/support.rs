//! The harness: identity, tenancy and notifications, each the real service built by its own
//! `build` on port 0, on one private NATS server (so events flow between them as in production)
//! and one database (a schema and a role per service), with a test SMTP server as the relay.
//! Notifications gets its service token from identity's client-credentials grant, as in
//! production; users register and log in through identity and hold real tokens.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use keel_identity::settings::{
    HashingSettings, IdentitySettings, LockoutSettings, ServiceClientSettings, SigningKeyFile,
    SigningSettings,
};
use keel_kernel::app::Running;
use keel_kernel::config::{AuthConfig, DatabaseConfig};
use keel_kernel::service_client::ServiceClientConfig;
use keel_kernel::{TenantId, UserId};
use keel_notifications::Settings;
use keel_proto::identity::v1 as identity;
use keel_proto::identity::v1::auth_service_client::AuthServiceClient;
use keel_proto::notifications::v1::notification_service_client::NotificationServiceClient;
use keel_proto::tenancy::v1 as tenancy;
use keel_proto::tenancy::v1::membership_service_client::MembershipServiceClient;
use keel_proto::tenancy::v1::tenant_service_client::TenantServiceClient;
use keel_testkit::smtp::{StoredMessage, TestSmtp};
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::{Bearer, EventLog, eventually};
use sha2::Digest;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub const ISSUER: &str = "keel-test";
pub const AUDIENCE: &str = "keel";
pub const PASSWORD: &str = "Correct horse 42";
const CLIENT_SECRET: &str = "notifications-test-secret-0123456789";

pub type Client = NotificationServiceClient<InterceptedService<Channel, Bearer>>;

pub struct TestApp {
    pub nats: TestNats,
    pub db: TestDatabase,
    /// Notifications' own role (no BYPASSRLS), for RLS assertions.
    pub db_config: DatabaseConfig,
    pub smtp: TestSmtp,
    pub log: EventLog,
    pub identity: Running,
    pub tenancy: Running,
    pub notifications: Running,
    identity_channel: Channel,
    tenancy_channel: Channel,
    channel: Channel,
    keys_dir: std::path::PathBuf,
}

/// A user who registered and logged in.
pub struct Person {
    pub id: UserId,
    pub email: String,
    pub access_token: String,
}

async fn connect(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", uuid::Uuid::new_v4().simple())
}

fn identity_settings(keys_dir: &std::path::Path) -> IdentitySettings {
    let kid = "test-key-1";
    let path = keys_dir.join(format!("{kid}.pem"));
    keel_testkit::tokens::write_ed25519_pem(&path);
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
            account_threshold: 50,
            account_delay_threshold: 1_000,
            ip_threshold: 1_000,
            lock_secs: 600,
        },
        service_clients: vec![ServiceClientSettings {
            client_id: "notifications".into(),
            secret_sha256: Some(hex::encode(sha2::Sha256::digest(CLIENT_SECRET.as_bytes()))),
            secret_file: None,
            permissions: vec![
                "identity.verification.issue".into(),
                "identity.password_reset.issue".into(),
                "identity.user.read".into(),
                "tenancy.invitation_token.issue".into(),
            ],
        }],
        ..IdentitySettings::default()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_on(keel_kernel::clock::system()).await
    }

    /// Notifications on `clock` (identity and tenancy keep the system clock: tokens are real).
    pub async fn spawn_on(clock: keel_kernel::clock::SharedClock) -> TestApp {
        let keys_dir = std::env::temp_dir().join(format!(
            "keel-notifications-keys-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&keys_dir).unwrap();
        let nats = TestNats::start().await;
        let db = TestDatabase::create().await;
        let smtp = TestSmtp::start().await;
        let log = EventLog::connect(&nats.url()).await;

        let mut config = stack::config_with(
            "identity",
            db.provision("identity").await,
            stack::nats_config(&nats.url()),
            identity_settings(&keys_dir),
        );
        config.auth = AuthConfig {
            jwks_url: String::new(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            jwks_min_refetch_secs: 0,
            leeway_secs: 5,
        };
        let identity = keel_identity::build(config).await.expect("identity starts");
        let auth = AuthConfig {
            jwks_url: format!("http://{}/.well-known/jwks.json", identity.admin_addr),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            jwks_min_refetch_secs: 0,
            leeway_secs: 5,
        };

        let mut config = stack::config_with(
            "tenancy",
            db.provision("tenancy").await,
            stack::nats_config(&nats.url()),
            keel_tenancy::Settings {
                auto_approve: true,
                ..keel_tenancy::Settings::default()
            },
        );
        config.auth = auth.clone();
        let tenancy = keel_tenancy::build(config).await.expect("tenancy starts");

        let db_config = db.provision("notifications").await;
        let settings = Settings {
            smtp: keel_notifications::settings::SmtpSettings {
                host: smtp.host(),
                port: smtp.port(),
                ..Default::default()
            },
            web_url: "http://app.test".into(),
            identity_client: ServiceClientConfig {
                identity_url: format!("http://{}", identity.grpc_addr),
                client_id: "notifications".into(),
                client_secret: Some(CLIENT_SECRET.to_owned().into()),
                client_secret_file: None,
                permissions: Vec::new(),
                connect_timeout_ms: 2_000,
                request_timeout_ms: 5_000,
            },
            tenancy_url: format!("http://{}", tenancy.grpc_addr),
            ..Settings::default()
        };
        let mut config = stack::config_with(
            "notifications",
            db_config.clone(),
            stack::nats_config(&nats.url()),
            settings,
        );
        config.auth = auth;
        let notifications = keel_notifications::build_with_clock(config, clock)
            .await
            .expect("notifications starts");

        TestApp {
            identity_channel: connect(identity.grpc_addr).await,
            tenancy_channel: connect(tenancy.grpc_addr).await,
            channel: connect(notifications.grpc_addr).await,
            nats,
            db,
            db_config,
            smtp,
            log,
            identity,
            tenancy,
            notifications,
            keys_dir,
        }
    }

    pub fn tenancy_channel(&self) -> Channel {
        self.tenancy_channel.clone()
    }

    pub fn identity_channel(&self) -> Channel {
        self.identity_channel.clone()
    }

    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.identity_channel.clone())
    }

    pub fn client(&self, token: &str) -> Client {
        NotificationServiceClient::with_interceptor(self.channel.clone(), Bearer::token(token))
    }

    /// Register `email` (display name `name`) and log in.
    pub async fn register(&self, email: &str, name: &str) -> Person {
        let user = self
            .auth()
            .register(identity::RegisterRequest {
                email: email.to_owned(),
                password: PASSWORD.to_owned(),
                display_name: name.to_owned(),
            })
            .await
            .expect("register")
            .into_inner();
        let pair = self.login(email).await;
        Person {
            id: UserId::parse_field("id", &user.id).unwrap(),
            email: email.to_owned(),
            access_token: pair.access_token,
        }
    }

    pub async fn login(&self, email: &str) -> identity::TokenPair {
        self.auth()
            .login(identity::LoginRequest {
                email: email.to_owned(),
                password: PASSWORD.to_owned(),
            })
            .await
            .expect("login")
            .into_inner()
    }

    /// A token of `person` scoped to `tenant`, once identity knows the membership.
    pub async fn tenant_token(&self, person: &Person, tenant: TenantId) -> String {
        eventually(|| async {
            self.auth()
                .switch_tenant(bearer(
                    identity::SwitchTenantRequest {
                        tenant_id: tenant.to_string(),
                    },
                    &person.access_token,
                ))
                .await
                .ok()
                .map(|pair| pair.into_inner().access_token)
        })
        .await
    }

    /// `owner` creates a tenant (approved at once); returns it with the owner's scoped token.
    pub async fn create_tenant(&self, owner: &Person, name: &str) -> (TenantId, String) {
        let slug = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let tenant = TenantServiceClient::new(self.tenancy_channel.clone())
            .create_tenant(bearer(
                tenancy::CreateTenantRequest {
                    tenant: Some(tenancy::Tenant {
                        name: name.to_owned(),
                        slug,
                        ..Default::default()
                    }),
                },
                &owner.access_token,
            ))
            .await
            .expect("create tenant")
            .into_inner();
        let tenant = TenantId::parse_field("id", &tenant.id).unwrap();
        let token = self.tenant_token(owner, tenant).await;
        (tenant, token)
    }

    pub async fn invite(&self, token: &str, tenant: TenantId, email: &str, role: &str) {
        MembershipServiceClient::new(self.tenancy_channel.clone())
            .create_invitation(bearer(
                tenancy::CreateInvitationRequest {
                    tenant_id: tenant.to_string(),
                    email: email.to_owned(),
                    role: role.to_owned(),
                },
                token,
            ))
            .await
            .expect("invite");
    }

    pub async fn accept(&self, token: &str, invitation_token: &str) -> tenancy::Membership {
        MembershipServiceClient::new(self.tenancy_channel.clone())
            .accept_invitation(bearer(
                tenancy::AcceptInvitationRequest {
                    token: invitation_token.to_owned(),
                },
                token,
            ))
            .await
            .expect("accept the invitation")
            .into_inner()
    }

    /// The verification mail to `email`, once it arrived.
    pub async fn mail_to(&self, email: &str) -> StoredMessage {
        self.smtp.wait_for_mail_to(email).await
    }

    pub fn mails_to(&self, email: &str) -> Vec<StoredMessage> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| {
                m.envelope_to
                    .iter()
                    .any(|to| to.eq_ignore_ascii_case(email))
            })
            .collect()
    }

    /// Register and verify `email` by the link of its verification mail.
    pub async fn verified(&self, email: &str, name: &str) -> Person {
        let person = self.register(email, name).await;
        let mail = self.mail_to(email).await;
        let token = link_token(&mail, "/verify-email?token=");
        self.auth()
            .verify_email(identity::VerifyEmailRequest { token })
            .await
            .expect("the link verifies the email");
        // A fresh token carries `email_verified`.
        let pair = self.login(email).await;
        Person {
            access_token: pair.access_token,
            ..person
        }
    }
}

/// The token of the first link containing `marker` in the mail's text body.
pub fn link_token(mail: &StoredMessage, marker: &str) -> String {
    let text = mail.text.as_deref().expect("a text body");
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("no link with {marker} in:\n{text}"))
        + marker.len();
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

impl TestApp {
    /// A pool as notifications' own role (no BYPASSRLS), for RLS assertions.
    pub async fn service_pool(&self) -> sqlx::PgPool {
        let options = keel_kernel::db::connect_options("notifications", &self.db_config).unwrap();
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap()
    }

    /// Run notifications' due jobs now.
    pub async fn run_jobs(&self) -> usize {
        self.notifications.jobs.run_due().await.expect("jobs run")
    }

    /// Delivery says a task was created and assigned (as delivery's relay publishes it).
    pub async fn task_assigned(
        &self,
        tenant: TenantId,
        title: &str,
        creator: UserId,
        assignee: UserId,
    ) -> keel_proto::events::v1::EventEnvelope {
        let task = uuid::Uuid::now_v7().to_string();
        self.log
            .publish(
                "delivery",
                "delivery.task.created",
                &tenant.to_string(),
                1,
                &keel_proto::delivery::v1::TaskCreated {
                    task_id: task.clone(),
                    project_id: uuid::Uuid::now_v7().to_string(),
                    title: title.to_owned(),
                    state: 2,
                    assignee_id: assignee.to_string(),
                    created_by: creator.to_string(),
                    due_time: None,
                },
            )
            .await
    }

    /// `person`'s notifications in `tenant`, waiting until at least `at_least` are there.
    pub async fn inbox(
        &self,
        token: &str,
        tenant: TenantId,
        at_least: usize,
    ) -> keel_proto::notifications::v1::ListNotificationsResponse {
        eventually(|| async {
            let listed = self
                .client(token)
                .list_notifications(keel_proto::notifications::v1::ListNotificationsRequest {
                    tenant_id: tenant.to_string(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            (listed.notifications.len() >= at_least).then_some(listed)
        })
        .await
    }
}
