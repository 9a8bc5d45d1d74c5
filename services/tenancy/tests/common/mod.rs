//! The test harness: the real tenancy service on port 0, against its own Postgres database and
//! its own NATS server, called through the generated gRPC clients with tokens from a test issuer
//! that stands in for identity.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::time::Duration;

use async_nats::jetstream;
use keel_kernel::app::Running;
use keel_kernel::auth::roles;
use keel_kernel::config::DatabaseConfig;
use keel_kernel::{ErrorCode, TenantId, UserId};
use keel_proto::events::v1::EventEnvelope;
use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::membership_service_client::MembershipServiceClient;
use keel_proto::tenancy::v1::module_service_client::ModuleServiceClient;
use keel_proto::tenancy::v1::tenant_service_client::TenantServiceClient;
use keel_tenancy::Settings;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use prost::Message;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Puts `authorization: Bearer <token>` on every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

pub struct TestApp {
    pub issuer: TestIssuer,
    pub nats: TestNats,
    pub db: TestDatabase,
    /// The service role's database settings (no BYPASSRLS), for RLS assertions.
    pub db_config: DatabaseConfig,
    pub channel: Channel,
    running: Option<Running>,
}

/// What identity would put in a token for each built-in role of a tenant.
pub fn role_perms(role: &str) -> Vec<&'static str> {
    match role {
        roles::OWNER => vec!["*"],
        roles::ADMIN => vec![
            "tenancy.invitation.create",
            "tenancy.member.read",
            "tenancy.member.update",
            "tenancy.member.remove",
            "tenancy.module.manage",
            "tenancy.flag.manage",
        ],
        _ => vec!["tenancy.member.read"],
    }
}

impl TestApp {
    /// Tenancy with approval by a platform admin (the production default).
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Settings::default()).await
    }

    /// Tenancy approving new tenants automatically (the `make run` default).
    pub async fn spawn_auto_approving() -> TestApp {
        TestApp::spawn_with(Settings {
            auto_approve: true,
            ..Settings::default()
        })
        .await
    }

    pub async fn spawn_with(settings: Settings) -> TestApp {
        let issuer = TestIssuer::start().await;
        let nats = TestNats::start().await;
        let db = TestDatabase::create().await;
        let db_config = db.provision("tenancy").await;
        let mut config = stack::config_with(
            "tenancy",
            db_config.clone(),
            stack::nats_config(&nats.url()),
            settings,
        );
        config.auth = issuer.auth_config();
        let running = keel_tenancy::build(config).await.expect("tenancy starts");
        let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to tenancy");
        TestApp {
            issuer,
            nats,
            db,
            db_config,
            channel,
            running: Some(running),
        }
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
    }

    fn bearer(token: &str) -> Bearer {
        Bearer(Some(
            format!("Bearer {token}").parse().expect("ascii token"),
        ))
    }

    pub fn tenants(&self, token: &str) -> TenantServiceClient<Authed> {
        TenantServiceClient::with_interceptor(self.channel.clone(), Self::bearer(token))
    }

    pub fn members(&self, token: &str) -> MembershipServiceClient<Authed> {
        MembershipServiceClient::with_interceptor(self.channel.clone(), Self::bearer(token))
    }

    pub fn modules(&self, token: &str) -> ModuleServiceClient<Authed> {
        ModuleServiceClient::with_interceptor(self.channel.clone(), Self::bearer(token))
    }

    pub fn anonymous_tenants(&self) -> TenantServiceClient<Authed> {
        TenantServiceClient::with_interceptor(self.channel.clone(), Bearer(None))
    }

    /// A user's token not scoped to any tenant (what login returns).
    pub fn user_token(&self, user: UserId) -> String {
        self.issuer.token(TokenSpec::user(user))
    }

    /// A user's token for `tenant` with a built-in role (what switching tenants returns).
    pub fn tenant_token(&self, user: UserId, tenant: &str, role: &str) -> String {
        self.issuer.token(
            TokenSpec::user(user)
                .tenant(tenant.parse().expect("tenant id"))
                .role(role)
                .perms(role_perms(role)),
        )
    }

    /// A platform administrator: platform permissions on a token scoped to no tenant.
    pub fn platform_admin_token(&self) -> String {
        self.issuer
            .token(TokenSpec::any_user().role("platform_admin").perms([
                "tenancy.tenant.approve",
                "tenancy.tenant.suspend",
                "tenancy.tenant.reactivate",
                "tenancy.tenant.read",
                "tenancy.tenant.delete",
            ]))
    }

    /// Create a tenant owned by `owner`.
    pub async fn create_tenant(&self, owner: UserId, name: &str, slug: &str) -> pb::Tenant {
        self.tenants(&self.user_token(owner))
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: name.into(),
                    slug: slug.into(),
                    ..Default::default()
                }),
            })
            .await
            .expect("create tenant")
            .into_inner()
    }

    /// Create a tenant and approve it as a platform admin would.
    pub async fn create_active_tenant(&self, owner: UserId, slug: &str) -> pb::Tenant {
        let tenant = self
            .create_tenant(owner, &format!("Tenant {slug}"), slug)
            .await;
        if tenant.state == pb::TenantState::Active as i32 {
            return tenant;
        }
        self.tenants(&self.platform_admin_token())
            .approve_tenant(pb::ApproveTenantRequest {
                tenant_id: tenant.id.clone(),
            })
            .await
            .expect("approve tenant")
            .into_inner()
    }

    /// Invite a fresh user with `role` (as the owner) and accept as them; returns the user.
    pub async fn add_member(&self, tenant: &str, owner: UserId, role: &str) -> UserId {
        let user = UserId::new();
        let invitation = self
            .members(&self.tenant_token(owner, tenant, roles::OWNER))
            .create_invitation(pb::CreateInvitationRequest {
                tenant_id: tenant.into(),
                email: format!("{}@example.com", user.as_uuid().simple()),
                role: role.into(),
            })
            .await
            .expect("invite")
            .into_inner();
        self.members(&self.user_token(user))
            .accept_invitation(pb::AcceptInvitationRequest {
                token: invitation.token,
            })
            .await
            .expect("accept");
        user
    }

    /// Every event in the stream once at least `at_least` have arrived (or after 10 s), in order.
    pub async fn events(&self, at_least: u64) -> Vec<EventEnvelope> {
        let client = async_nats::connect(self.nats.url())
            .await
            .expect("connect to NATS");
        let js = jetstream::new(client);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match js.get_stream("EVENTS").await {
                Ok(stream) => break stream,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("no EVENTS stream: {err}"),
            }
        };
        let mut count;
        loop {
            count = stream.info().await.expect("stream info").state.messages;
            if count >= at_least || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut events = Vec::new();
        for sequence in 1..=count {
            let message = stream
                .get_raw_message(sequence)
                .await
                .expect("stream message");
            let envelope = EventEnvelope::decode(message.payload).expect("an event envelope");
            assert_eq!(
                message.subject.as_str(),
                format!("events.{}", envelope.event_type)
            );
            events.push(envelope);
        }
        events
    }

    /// How many messages the stream holds now.
    pub async fn event_count(&self) -> u64 {
        let client = async_nats::connect(self.nats.url())
            .await
            .expect("connect to NATS");
        let js = jetstream::new(client);
        match js.get_stream("EVENTS").await {
            Ok(mut stream) => stream.info().await.expect("stream info").state.messages,
            Err(_) => 0,
        }
    }
}

/// The payload of an event, decoded as `M`.
pub fn payload<M: Message + Default + prost::Name>(event: &EventEnvelope) -> M {
    event
        .payload
        .as_ref()
        .expect("event has a payload")
        .to_msg::<M>()
        .expect("payload of the expected type")
}

pub fn tenant_id(tenant: &pb::Tenant) -> TenantId {
    tenant.id.parse().expect("tenant id")
}

/// Assert a refusal's gRPC code.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
) -> tonic::Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status
        }
    }
}

/// Assert a refusal that the platform calls CONFLICT (the kernel maps it to ALREADY_EXISTS; a
/// precondition failure may come as FAILED_PRECONDITION once the kernel offers it).
#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> tonic::Status {
    match result {
        Ok(value) => panic!("expected a conflict, got {value:?}"),
        Err(status) => {
            assert!(
                matches!(
                    status.code(),
                    tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition
                ),
                "{status:?}"
            );
            assert_eq!(
                keel_kernel::Error::from_status(&status).code(),
                ErrorCode::Conflict,
                "{status:?}"
            );
            status
        }
    }
}

/// The fields named by a VALIDATION status.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    keel_kernel::Error::from_status(status)
        .violations()
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

/// A slug unique to this run.
pub fn slug(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
