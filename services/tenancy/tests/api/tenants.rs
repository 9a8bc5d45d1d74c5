//! Creating tenants, finding them, and their lifecycle.

use keel_kernel::ErrorCode;
use keel_kernel::UserId;
use keel_kernel::auth::roles;
use keel_proto::tenancy::v1 as pb;
use keel_testkit::{assert_status, violated_fields};

use crate::support::TestApp;

fn new_tenant(name: &str, slug: &str) -> pb::CreateTenantRequest {
    pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            name: name.into(),
            slug: slug.into(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn creating_a_tenant_makes_the_creator_its_owner() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();

    let tenant = app.create_tenant(owner, "Acme Corp", "acme").await;

    assert_eq!(
        (tenant.name.as_str(), tenant.slug.as_str()),
        ("Acme Corp", "acme")
    );
    assert_eq!(tenant.state, pb::TenantState::PendingApproval as i32);
    assert_eq!(tenant.created_by, owner.to_string());
    assert_eq!(tenant.plan, "free");
    let members = app
        .members(&app.tenant_token(owner, &tenant.id, roles::OWNER))
        .list_members(pb::ListMembersRequest {
            tenant_id: tenant.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list members")
        .into_inner()
        .members;
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].user_id.clone(), members[0].role.as_str()),
        (owner.to_string(), "owner")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_taken_slug_is_a_conflict_that_names_the_slug() {
    let app = TestApp::spawn().await;
    app.create_tenant(UserId::new(), "Acme", "acme").await;

    let status = assert_status(
        app.tenants(&app.user_token(UserId::new()))
            .create_tenant(new_tenant("Acme again", "acme"))
            .await,
        ErrorCode::Conflict,
    );
    assert!(status.message().contains("acme"), "{status:?}");
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_name_and_slug_are_reported_together() {
    let app = TestApp::spawn().await;
    let mut tenants = app.tenants(&app.user_token(UserId::new()));

    let status = assert_status(
        tenants.create_tenant(new_tenant("  ", "Not A Slug")).await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["tenant.name", "tenant.slug"]);
    let status = assert_status(
        tenants
            .create_tenant(pb::CreateTenantRequest { tenant: None })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["tenant"]);
    app.stop().await;
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let app = TestApp::spawn().await;
    assert_status(
        app.anonymous_tenants()
            .create_tenant(new_tenant("Acme", "acme"))
            .await,
        ErrorCode::Authn,
    );
    let forged = app
        .issuer
        .unknown_kid_token(keel_testkit::tokens::TokenSpec::any_user());
    assert_status(
        app.tenants(&forged)
            .list_tenants(pb::ListTenantsRequest::default())
            .await,
        ErrorCode::Authn,
    );
    app.stop().await;
}

#[tokio::test]
async fn list_tenants_returns_the_callers_tenants_page_by_page() {
    let app = TestApp::spawn().await;
    let (me, someone_else) = (UserId::new(), UserId::new());
    let mut mine = Vec::new();
    for n in 0..5 {
        mine.push(
            app.create_tenant(me, &format!("Mine {n}"), &format!("mine-{n}"))
                .await
                .id,
        );
    }
    app.create_tenant(someone_else, "Theirs", "theirs").await;

    let mut client = app.tenants(&app.user_token(me));
    let (mut seen, mut token) = (Vec::new(), String::new());
    loop {
        let page = client
            .list_tenants(pb::ListTenantsRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list tenants")
            .into_inner();
        assert!(page.tenants.len() <= 2);
        seen.extend(page.tenants.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, mine, "all mine, oldest first, nobody else's");
    let status = assert_status(
        client
            .list_tenants(pb::ListTenantsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["page_token"]);
    app.stop().await;
}

#[tokio::test]
async fn only_platform_admins_list_every_tenant() {
    let app = TestApp::spawn().await;
    let a = app.create_tenant(UserId::new(), "A", "tenant-a").await;
    let b = app.create_tenant(UserId::new(), "B", "tenant-b").await;
    let all = pb::ListTenantsRequest {
        all_tenants: true,
        state: pb::TenantState::PendingApproval as i32,
        ..Default::default()
    };

    let listed = app
        .tenants(&app.platform_admin_token())
        .list_tenants(all.clone())
        .await
        .expect("list all")
        .into_inner()
        .tenants;
    assert_eq!(
        listed.into_iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![a.id.clone(), b.id]
    );
    assert_status(
        app.tenants(&app.user_token(UserId::new()))
            .list_tenants(all.clone())
            .await,
        ErrorCode::Authz,
    );
    // An owner's `*` counts inside its tenant only, never as a platform right.
    let owner_token = app.tenant_token(a.created_by.parse().expect("user id"), &a.id, roles::OWNER);
    assert_status(
        app.tenants(&owner_token).list_tenants(all).await,
        ErrorCode::Authz,
    );
    app.stop().await;
}

#[tokio::test]
async fn get_tenant_needs_membership_or_the_tenants_own_token() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_tenant(owner, "Acme", "acme").await;
    let other = app.create_tenant(UserId::new(), "Other", "other").await;
    let get = |id: &str| pb::GetTenantRequest {
        tenant_id: id.into(),
    };

    // The owner sees the pending tenant with a token not yet scoped to it.
    let got = app
        .tenants(&app.user_token(owner))
        .get_tenant(get(&tenant.id))
        .await
        .expect("get");
    assert_eq!(got.into_inner().slug, "acme");
    // A stranger does not learn that it exists.
    assert_status(
        app.tenants(&app.user_token(UserId::new()))
            .get_tenant(get(&tenant.id))
            .await,
        ErrorCode::NotFound,
    );
    // A token for one tenant cannot read another.
    let token = app.tenant_token(owner, &tenant.id, roles::VIEWER);
    assert_status(
        app.tenants(&token).get_tenant(get(&other.id)).await,
        ErrorCode::Authz,
    );
    assert_eq!(
        app.tenants(&token)
            .get_tenant(get(&tenant.id))
            .await
            .expect("own")
            .into_inner()
            .id,
        tenant.id
    );
    assert_status(
        app.tenants(&token).get_tenant(get("not-a-uuid")).await,
        ErrorCode::Validation,
    );
    // Platform admins read any tenant.
    app.tenants(&app.platform_admin_token())
        .get_tenant(get(&other.id))
        .await
        .expect("admin reads");
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_goes_from_pending_to_active_to_suspended_and_back_then_deleted() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_tenant(owner, "Acme", "acme").await;
    let mut admin = app.tenants(&app.platform_admin_token());
    let id = || tenant.id.clone();

    let approved = admin
        .approve_tenant(pb::ApproveTenantRequest { tenant_id: id() })
        .await
        .expect("approve");
    assert_eq!(approved.into_inner().state, pb::TenantState::Active as i32);
    let suspended = admin
        .suspend_tenant(pb::SuspendTenantRequest {
            tenant_id: id(),
            reason: "unpaid invoices".into(),
        })
        .await
        .expect("suspend");
    assert_eq!(
        suspended.into_inner().state,
        pb::TenantState::Suspended as i32
    );
    let reactivated = admin
        .reactivate_tenant(pb::ReactivateTenantRequest { tenant_id: id() })
        .await
        .expect("reactivate");
    assert_eq!(
        reactivated.into_inner().state,
        pb::TenantState::Active as i32
    );

    // The owner deletes it with the tenant's token; the tenant is soft-deleted.
    let deleted = app
        .tenants(&app.tenant_token(owner, &tenant.id, roles::OWNER))
        .delete_tenant(pb::DeleteTenantRequest { tenant_id: id() })
        .await
        .expect("delete");
    assert_eq!(deleted.into_inner().state, pb::TenantState::Deleted as i32);
    let listed = app
        .tenants(&app.user_token(owner))
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        listed.tenants.is_empty(),
        "deleted tenants are not listed by default"
    );
    app.stop().await;
}

#[tokio::test]
async fn illegal_lifecycle_transitions_are_refused_as_failed_preconditions() {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant(UserId::new(), "Acme", "acme").await;
    let mut admin = app.tenants(&app.platform_admin_token());
    let id = || tenant.id.clone();

    let status = assert_status(
        admin
            .suspend_tenant(pb::SuspendTenantRequest {
                tenant_id: id(),
                reason: String::new(),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("pending approval"), "{status:?}");
    assert_status(
        admin
            .reactivate_tenant(pb::ReactivateTenantRequest { tenant_id: id() })
            .await,
        ErrorCode::FailedPrecondition,
    );
    admin
        .approve_tenant(pb::ApproveTenantRequest { tenant_id: id() })
        .await
        .expect("approve");
    assert_status(
        admin
            .approve_tenant(pb::ApproveTenantRequest { tenant_id: id() })
            .await,
        ErrorCode::FailedPrecondition,
    );
    admin
        .delete_tenant(pb::DeleteTenantRequest { tenant_id: id() })
        .await
        .expect("delete");
    assert_status(
        admin
            .delete_tenant(pb::DeleteTenantRequest { tenant_id: id() })
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert_status(
        admin
            .approve_tenant(pb::ApproveTenantRequest { tenant_id: id() })
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert_status(
        admin
            .approve_tenant(pb::ApproveTenantRequest {
                tenant_id: uuid::Uuid::now_v7().to_string(),
            })
            .await,
        ErrorCode::NotFound,
    );
    app.stop().await;
}

#[tokio::test]
async fn only_platform_admins_approve_suspend_and_reactivate() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let pending = app.create_tenant(owner, "Pending", "pending").await;
    let active = app.create_active_tenant(owner, "active").await;
    let owner_of_active = app.tenant_token(owner, &active.id, roles::OWNER);

    for token in [app.user_token(owner), owner_of_active.clone()] {
        let mut client = app.tenants(&token);
        assert_status(
            client
                .approve_tenant(pb::ApproveTenantRequest {
                    tenant_id: pending.id.clone(),
                })
                .await,
            ErrorCode::Authz,
        );
        assert_status(
            client
                .suspend_tenant(pb::SuspendTenantRequest {
                    tenant_id: active.id.clone(),
                    reason: String::new(),
                })
                .await,
            ErrorCode::Authz,
        );
    }
    // An owner may delete its own tenant, never another.
    assert_status(
        app.tenants(&owner_of_active)
            .delete_tenant(pb::DeleteTenantRequest {
                tenant_id: pending.id.clone(),
            })
            .await,
        ErrorCode::Authz,
    );
    let admin_of_active = app.tenant_token(UserId::new(), &active.id, roles::ADMIN);
    assert_status(
        app.tenants(&admin_of_active)
            .delete_tenant(pb::DeleteTenantRequest {
                tenant_id: active.id.clone(),
            })
            .await,
        ErrorCode::Authz,
    );
    app.stop().await;
}

#[tokio::test]
async fn with_auto_approval_a_new_tenant_is_active_at_once() {
    let app = TestApp::spawn_auto_approving().await;
    let tenant = app.create_tenant(UserId::new(), "Acme", "acme").await;
    assert_eq!(tenant.state, pb::TenantState::Active as i32);
    app.stop().await;
}

#[tokio::test]
async fn a_suspended_tenant_refuses_changes_to_its_members_and_modules() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let token = app.tenant_token(owner, &tenant.id, roles::OWNER);
    let before_suspension = app
        .members(&token)
        .create_invitation(pb::CreateInvitationRequest {
            tenant_id: tenant.id.clone(),
            email: "early@example.com".into(),
            role: "member".into(),
        })
        .await
        .expect("invite while active")
        .into_inner();
    app.tenants(&app.platform_admin_token())
        .suspend_tenant(pb::SuspendTenantRequest {
            tenant_id: tenant.id.clone(),
            reason: "abuse".into(),
        })
        .await
        .expect("suspend");

    let status = assert_status(
        app.members(&token)
            .create_invitation(pb::CreateInvitationRequest {
                tenant_id: tenant.id.clone(),
                email: "new@example.com".into(),
                role: "member".into(),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("suspended"), "{status:?}");
    assert_status(
        app.modules(&token)
            .enable_module(pb::EnableModuleRequest {
                tenant_id: tenant.id.clone(),
                module: "ai".into(),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    // An invitation made while the tenant was active cannot be redeemed while it is suspended.
    let status = assert_status(
        app.members(&app.verified_user_token(UserId::new(), "early@example.com"))
            .accept_invitation(pb::AcceptInvitationRequest {
                token: before_suspension.token,
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("suspended"), "{status:?}");
    app.stop().await;
}

fn with_idempotency_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("idempotency-key", key.parse().expect("ascii"));
    request
}

#[tokio::test]
async fn concurrent_retries_of_a_creation_with_one_idempotency_key_create_one_tenant() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let token = app.user_token(owner);
    let attempts = (0..10).map(|_| {
        let mut tenants = app.tenants(&token);
        tokio::spawn(async move {
            tenants
                .create_tenant(with_idempotency_key(
                    new_tenant("Acme", "acme"),
                    "create-acme-1",
                ))
                .await
                .map(tonic::Response::into_inner)
        })
    });
    let created: Vec<pb::Tenant> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.expect("joined").expect("every retry answers"))
        .collect();
    assert!(created.iter().all(|t| t.id == created[0].id), "one tenant");
    let mine = app
        .tenants(&token)
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(mine.tenants.len(), 1);

    // The same key with another body is refused, naming the header; another key is a new call.
    let status = app
        .tenants(&token)
        .create_tenant(with_idempotency_key(
            new_tenant("Other", "other"),
            "create-acme-1",
        ))
        .await
        .expect_err("a reused key");
    assert_eq!(violated_fields(&status), ["Idempotency-Key"]);
    // Keys belong to their user: another user's identical key is theirs alone.
    let stranger = app
        .tenants(&app.user_token(UserId::new()))
        .create_tenant(with_idempotency_key(
            new_tenant("Beta", "beta"),
            "create-acme-1",
        ))
        .await
        .expect("another user's key")
        .into_inner();
    assert_ne!(stranger.id, created[0].id);
}
