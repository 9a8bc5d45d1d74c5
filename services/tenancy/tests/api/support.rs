//! The test harness: the real tenancy service on port 0, against its own Postgres database and
//! its own NATS server, called through the generated gRPC clients with tokens from a test issuer
//! that stands in for identity. Assertions, event reading and the role catalogue come from the
//! kernel and the test kit; this file holds only what is tenancy's own.

use keel_kernel::UserId;
use keel_kernel::app::Running;
use keel_kernel::auth::roles;
use keel_kernel::config::DatabaseConfig;
use keel_proto::tenancy::v1 as pb;
use keel_proto::tenancy::v1::membership_service_client::MembershipServiceClient;
use keel_proto::tenancy::v1::module_service_client::ModuleServiceClient;
use keel_proto::tenancy::v1::tenant_service_client::TenantServiceClient;
use keel_tenancy::Settings;
use keel_testkit::EventLog;
use keel_testkit::stack::{self, TestDatabase, TestNats};
use keel_testkit::tokens::{TestIssuer, TokenSpec};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use keel_testkit::Bearer;

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

    /// A user's token not scoped to any tenant, for a user whose address `email` is verified
    /// (what identity issues once the user has confirmed it): what accepting an invitation needs.
    pub fn verified_user_token(&self, user: UserId, email: &str) -> String {
        self.issuer.token(TokenSpec::user(user).email(email, true))
    }

    /// A user's token for `tenant` with a built-in role (what switching tenants returns).
    pub fn tenant_token(&self, user: UserId, tenant: &str, role: &str) -> String {
        self.issuer.token(
            TokenSpec::user(user)
                .tenant(tenant.parse().expect("tenant id"))
                .role(role)
                .perms(roles::built_in(role).expect("a built-in role")),
        )
    }

    /// A platform administrator: platform permissions on a token scoped to no tenant.
    pub fn platform_admin_token(&self) -> String {
        self.issuer
            .token(TokenSpec::any_user().role(roles::PLATFORM_ADMIN).perms(
                roles::PLATFORM_PERMISSIONS.iter().copied().chain([
                    // Deleting any tenant: the platform's own catalogue leaves it to owners,
                    // but tenancy also honours it on a platform token.
                    "tenancy.tenant.delete",
                ]),
            ))
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
        let email = format!("{}@example.com", user.as_uuid().simple());
        let invitation = self
            .members(&self.tenant_token(owner, tenant, roles::OWNER))
            .create_invitation(pb::CreateInvitationRequest {
                tenant_id: tenant.into(),
                email: email.clone(),
                role: role.into(),
            })
            .await
            .expect("invite")
            .into_inner();
        self.members(&self.verified_user_token(user, &email))
            .accept_invitation(pb::AcceptInvitationRequest {
                token: invitation.token,
            })
            .await
            .expect("accept");
        user
    }

    /// `user`'s role in `tenant`, read with `owner`'s token.
    pub async fn role_of(&self, tenant: &str, owner: UserId, user: UserId) -> String {
        self.members(&self.tenant_token(owner, tenant, roles::OWNER))
            .get_member(pb::GetMemberRequest {
                tenant_id: tenant.into(),
                user_id: user.to_string(),
            })
            .await
            .expect("get member")
            .into_inner()
            .role
    }

    /// A reader of everything this app's NATS server holds in its `EVENTS` stream.
    pub async fn events(&self) -> EventLog {
        EventLog::connect(&self.nats.url()).await
    }
}
