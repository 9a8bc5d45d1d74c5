//! Identity and tenancy together, on one Postgres and one JetStream: tenancy verifies identity's
//! tokens through its JWKS, identity learns tenants and memberships from tenancy's events, and
//! suspensions and removals made in tenancy revoke sessions in identity.

use crate::support::{TestApp, bearer, claims_of, code, eventually, unique_email};
use keel_kernel::app::Running;
use keel_kernel::config::AuthConfig;
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::tenancy::v1 as tenancy;
use keel_proto::tenancy::v1::membership_service_client::MembershipServiceClient;
use keel_proto::tenancy::v1::tenant_service_client::TenantServiceClient;
use keel_testkit::{assert_status, stack};
use tonic::transport::Channel;

/// Both services; `admin_email` is a platform admin in identity's config.
struct Mesh {
    identity: TestApp,
    _tenancy: Running,
    tenancy: Channel,
    admin_email: String,
}

impl Mesh {
    async fn start() -> Mesh {
        let admin_email = unique_email("root");
        let admins = vec![admin_email.clone()];
        let identity = TestApp::spawn_with(move |s| s.platform_admins = admins).await;
        let db_config = identity.db.provision("tenancy").await;
        let mut config = stack::config_with(
            "tenancy",
            db_config,
            stack::nats_config(&identity.nats.url()),
            keel_tenancy::Settings {
                auto_approve: true,
                ..keel_tenancy::Settings::default()
            },
        );
        config.auth = AuthConfig {
            jwks_url: format!("http://{}/.well-known/jwks.json", identity.admin_addr),
            issuer: crate::support::ISSUER.into(),
            audience: crate::support::AUDIENCE.into(),
            jwks_min_refetch_secs: 0,
            leeway_secs: 5,
        };
        let running = keel_tenancy::build(config).await.expect("tenancy starts");
        let tenancy = Channel::from_shared(format!("http://{}", running.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let admin = identity.register(&admin_email).await;
        identity.verify(admin).await;
        Mesh {
            identity,
            _tenancy: running,
            tenancy,
            admin_email,
        }
    }

    fn tenants(&self) -> TenantServiceClient<Channel> {
        TenantServiceClient::new(self.tenancy.clone())
    }

    fn members(&self) -> MembershipServiceClient<Channel> {
        MembershipServiceClient::new(self.tenancy.clone())
    }

    /// Create a tenant in tenancy as `token`'s user, and wait until identity lets them switch in.
    async fn create_tenant(
        &self,
        unscoped: &str,
        slug: &str,
    ) -> (TenantId, keel_proto::identity::v1::TokenPair) {
        let tenant = self
            .tenants()
            .create_tenant(bearer(
                tenancy::CreateTenantRequest {
                    tenant: Some(tenancy::Tenant {
                        name: slug.to_uppercase(),
                        slug: slug.into(),
                        ..Default::default()
                    }),
                },
                unscoped,
            ))
            .await
            .expect("create tenant")
            .into_inner();
        let id: TenantId = tenant.id.parse().unwrap();
        let scoped = self.identity.switch_eventually(unscoped, id).await;
        (id, scoped)
    }

    /// Invite `email` as `role` with the owner's scoped token, and accept with the invitee's.
    async fn join(
        &self,
        owner_scoped: &str,
        tenant: TenantId,
        email: &str,
        invitee_unscoped: &str,
        role: &str,
    ) {
        let invitation = self
            .members()
            .create_invitation(bearer(
                tenancy::CreateInvitationRequest {
                    tenant_id: tenant.to_string(),
                    email: email.into(),
                    role: role.into(),
                },
                owner_scoped,
            ))
            .await
            .expect("invite")
            .into_inner();
        self.members()
            .accept_invitation(bearer(
                tenancy::AcceptInvitationRequest {
                    token: invitation.token,
                },
                invitee_unscoped,
            ))
            .await
            .expect("accept");
    }

    async fn platform_admin_token(&self) -> String {
        self.identity.login(&self.admin_email).await.access_token
    }
}

#[tokio::test]
async fn an_owner_switches_into_the_tenant_they_created_in_tenancy_and_a_stranger_cannot() {
    let mesh = Mesh::start().await;
    let (owner, owner_pair) = mesh.identity.user(&unique_email("owner")).await;
    let (tenant, scoped) = mesh
        .create_tenant(&owner_pair.access_token, "acme-one")
        .await;
    let claims = claims_of(&scoped.access_token);
    assert_eq!(claims.sub, owner.to_string());
    assert_eq!(claims.tid, Some(tenant));
    assert_eq!(claims.roles, vec!["owner"]);

    // Tenancy accepts identity's scoped token for the tenant's own data.
    mesh.members()
        .list_members(bearer(
            tenancy::ListMembersRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &scoped.access_token,
        ))
        .await
        .expect("tenancy verifies identity's token through the JWKS");

    let (_, stranger) = mesh.identity.user(&unique_email("stranger")).await;
    // not a member
    assert_status(
        mesh.identity.switch(&stranger.access_token, tenant).await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn a_member_removed_in_tenancy_loses_their_sessions_for_the_tenant_and_cannot_refresh_or_switch()
 {
    let mesh = Mesh::start().await;
    let (_, owner_pair) = mesh.identity.user(&unique_email("owner")).await;
    let (tenant, owner_scoped) = mesh
        .create_tenant(&owner_pair.access_token, "acme-two")
        .await;
    let member_email = unique_email("member");
    let (member, _) = mesh.identity.user(&member_email).await;
    // Only the invitee, with their address verified, may accept the invitation.
    mesh.identity.verify(member).await;
    let member_pair = mesh.identity.login(&member_email).await;
    mesh.join(
        &owner_scoped.access_token,
        tenant,
        &member_email,
        &member_pair.access_token,
        "member",
    )
    .await;
    let member_scoped = mesh
        .identity
        .switch_eventually(&member_pair.access_token, tenant)
        .await;
    assert_eq!(claims_of(&member_scoped.access_token).roles, vec!["member"]);

    mesh.members()
        .remove_member(bearer(
            tenancy::RemoveMemberRequest {
                tenant_id: tenant.to_string(),
                user_id: member.to_string(),
            },
            &owner_scoped.access_token,
        ))
        .await
        .expect("remove");
    let refresh = eventually(|| async {
        mesh.identity
            .refresh(&member_scoped.refresh_token)
            .await
            .err()
    })
    .await;
    assert_eq!(code(&refresh), ErrorCode::Authn);
    let fresh = mesh.identity.login(&member_email).await;
    // no longer a member
    assert_status(
        mesh.identity.switch(&fresh.access_token, tenant).await,
        ErrorCode::Authz,
    );
    mesh.identity
        .refresh(&owner_scoped.refresh_token)
        .await
        .expect("the owner keeps their session");
}

#[tokio::test]
async fn suspending_a_tenant_in_tenancy_revokes_its_sessions_until_it_is_reactivated() {
    let mesh = Mesh::start().await;
    let owner_email = unique_email("owner");
    let (_, owner_pair) = mesh.identity.user(&owner_email).await;
    let (tenant, scoped) = mesh
        .create_tenant(&owner_pair.access_token, "acme-three")
        .await;

    let admin = mesh.platform_admin_token().await;
    mesh.tenants()
        .suspend_tenant(bearer(
            tenancy::SuspendTenantRequest {
                tenant_id: tenant.to_string(),
                reason: "unpaid".into(),
            },
            &admin,
        ))
        .await
        .expect("a platform admin suspends");
    let refresh =
        eventually(|| async { mesh.identity.refresh(&scoped.refresh_token).await.err() }).await;
    assert_eq!(code(&refresh), ErrorCode::Authn);
    let again = mesh.identity.login(&owner_email).await;
    // suspended
    assert_status(
        mesh.identity.switch(&again.access_token, tenant).await,
        ErrorCode::Authz,
    );

    mesh.tenants()
        .reactivate_tenant(bearer(
            tenancy::ReactivateTenantRequest {
                tenant_id: tenant.to_string(),
            },
            &admin,
        ))
        .await
        .expect("reactivate");
    mesh.identity
        .switch_eventually(&again.access_token, tenant)
        .await;
}
