//! Events: every change is published to JetStream exactly once, with its type, tenant, aggregate
//! version and payload, and a refused change publishes nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use keel_kernel::auth::roles;
use keel_kernel::{ErrorCode, UserId};
use keel_proto::events::v1::{EventEnvelope, actor};
use keel_proto::tenancy::v1 as pb;
use keel_tenancy::domain::permissions;
use keel_testkit::tokens::TokenSpec;
use keel_testkit::{assert_status, payload};

use crate::support::TestApp;

fn of_type<'a>(events: &'a [EventEnvelope], event_type: &str) -> Vec<&'a EventEnvelope> {
    events
        .iter()
        .filter(|e| e.event_type == event_type)
        .collect()
}

#[tokio::test]
async fn every_change_is_published_once_with_its_type_tenant_and_version() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let bob = app.add_member(&tenant.id, owner, roles::MEMBER).await;
    let owner_token = app.tenant_token(owner, &tenant.id, roles::OWNER);
    let mut members = app.members(&owner_token);
    members
        .update_member(pb::UpdateMemberRequest {
            tenant_id: tenant.id.clone(),
            user_id: bob.to_string(),
            member: Some(pb::Membership {
                role: "admin".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .expect("promote bob");
    members
        .remove_member(pb::RemoveMemberRequest {
            tenant_id: tenant.id.clone(),
            user_id: bob.to_string(),
        })
        .await
        .expect("remove bob");
    let mut modules = app.modules(&owner_token);
    modules
        .enable_module(pb::EnableModuleRequest {
            tenant_id: tenant.id.clone(),
            module: "ai".into(),
        })
        .await
        .expect("enable");
    modules
        .enable_module(pb::EnableModuleRequest {
            tenant_id: tenant.id.clone(),
            module: "ai".into(),
        })
        .await
        .expect("enable again: no change, no event");
    modules
        .disable_module(pb::DisableModuleRequest {
            tenant_id: tenant.id.clone(),
            module: "ai".into(),
        })
        .await
        .expect("disable");
    let mut admin = app.tenants(&app.platform_admin_token());
    admin
        .suspend_tenant(pb::SuspendTenantRequest {
            tenant_id: tenant.id.clone(),
            reason: "unpaid".into(),
        })
        .await
        .expect("suspend");
    admin
        .reactivate_tenant(pb::ReactivateTenantRequest {
            tenant_id: tenant.id.clone(),
        })
        .await
        .expect("reactivate");
    admin
        .delete_tenant(pb::DeleteTenantRequest {
            tenant_id: tenant.id.clone(),
        })
        .await
        .expect("delete");

    let expected = [
        ("tenancy.tenant.created", 1),
        ("tenancy.member.added", 2),
        ("tenancy.tenant.approved", 1),
        ("tenancy.invitation.created", 1),
        ("tenancy.member.role_changed", 1),
        ("tenancy.member.removed", 1),
        ("tenancy.module.enabled", 1),
        ("tenancy.module.disabled", 1),
        ("tenancy.tenant.suspended", 1),
        ("tenancy.tenant.reactivated", 1),
        ("tenancy.tenant.deleted", 1),
    ];
    let total: u64 = expected.iter().map(|(_, n)| n).sum();
    let events = app.events().await.read(total).await;
    // Nothing more arrives: no duplicates from the relay.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(app.events().await.count().await, total);

    let mut counts: HashMap<&str, u64> = HashMap::new();
    for event in &events {
        *counts.entry(event.event_type.as_str()).or_default() += 1;
        assert_eq!(event.tenant_id, tenant.id, "{}", event.event_type);
        assert_eq!(event.source, "tenancy");
        assert!(event.occurred_at.is_some());
    }
    assert_eq!(counts, expected.iter().copied().collect::<HashMap<_, _>>());
    let ids: HashSet<_> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "every event id is unique");

    // Tenant events: one aggregate, versions in order.
    let tenant_versions: Vec<i64> = events
        .iter()
        .filter(|e| e.event_type.starts_with("tenancy.tenant."))
        .map(|e| {
            assert_eq!(e.aggregate_id, tenant.id);
            e.aggregate_version
        })
        .collect();
    assert_eq!(tenant_versions, [1, 2, 3, 4, 5]);

    // Member events carry tenant, user and role, and versions that keep increasing.
    let added = of_type(&events, "tenancy.member.added");
    let first: pb::MemberAdded = payload(added[0]);
    assert_eq!(
        (
            first.tenant_id.as_str(),
            first.user_id.clone(),
            first.role.as_str()
        ),
        (tenant.id.as_str(), owner.to_string(), "owner")
    );
    let second: pb::MemberAdded = payload(added[1]);
    assert_eq!(
        (second.user_id.clone(), second.role.as_str()),
        (bob.to_string(), "member")
    );
    assert_eq!(added[1].aggregate_id, format!("{}/{bob}", tenant.id));
    let changed: pb::MemberRoleChanged =
        payload(of_type(&events, "tenancy.member.role_changed")[0]);
    assert_eq!(
        (changed.old_role.as_str(), changed.new_role.as_str()),
        ("member", "admin")
    );
    let removed_event = of_type(&events, "tenancy.member.removed")[0];
    let removed: pb::MemberRemoved = payload(removed_event);
    assert_eq!(
        (removed.tenant_id.as_str(), removed.user_id.clone()),
        (tenant.id.as_str(), bob.to_string())
    );
    let bob_versions: Vec<i64> = events
        .iter()
        .filter(|e| e.aggregate_id == format!("{}/{bob}", tenant.id))
        .map(|e| e.aggregate_version)
        .collect();
    assert_eq!(bob_versions.len(), 3);
    assert!(
        bob_versions.windows(2).all(|w| w[0] < w[1]),
        "{bob_versions:?}"
    );
    assert!(added[0].aggregate_version < added[1].aggregate_version);

    let suspended: pb::TenantSuspended = payload(of_type(&events, "tenancy.tenant.suspended")[0]);
    assert_eq!(suspended.reason, "unpaid");
    let actor = removed_event.actor.as_ref().expect("an actor");
    assert_eq!(
        (actor.kind, actor.id.clone()),
        (actor::Kind::User as i32, owner.to_string())
    );
    app.stop().await;
}

#[tokio::test]
async fn auto_approval_publishes_created_member_added_and_approved() {
    let app = TestApp::spawn_auto_approving().await;
    let owner = UserId::new();
    let tenant = app.create_tenant(owner, "Acme", "acme").await;

    let events = app.events().await.read(3).await;
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "tenancy.tenant.created",
            "tenancy.member.added",
            "tenancy.tenant.approved"
        ]
    );
    let created: pb::TenantCreated = payload(&events[0]);
    assert_eq!(created.state, pb::TenantState::Active as i32);
    assert_eq!(
        (created.slug.as_str(), created.created_by.clone()),
        ("acme", owner.to_string())
    );
    let approved: pb::TenantApproved = payload(&events[2]);
    assert_eq!(
        (approved.tenant_id.as_str(), approved.approved_by.as_str()),
        (tenant.id.as_str(), "")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refused_change_publishes_nothing() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_tenant(owner, "Acme", "acme").await;
    let before = app.events().await.read(2).await.len() as u64;

    assert_status(
        app.tenants(&app.user_token(UserId::new()))
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: "Copy".into(),
                    slug: "acme".into(),
                    ..Default::default()
                }),
            })
            .await,
        ErrorCode::Conflict,
    );
    let mut owner_members = app.members(&app.tenant_token(owner, &tenant.id, roles::OWNER));
    assert_status(
        owner_members
            .remove_member(pb::RemoveMemberRequest {
                tenant_id: tenant.id.clone(),
                user_id: owner.to_string(),
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(app.events().await.count().await, before);
    app.stop().await;
}

#[tokio::test]
async fn an_api_key_inviter_stays_an_api_key_from_the_request_to_the_row_and_the_event() {
    let app = TestApp::spawn().await;
    let tenant = app.create_active_tenant(UserId::new(), "acme").await;
    let mut member_and_invite = roles::built_in(roles::MEMBER).expect("member");
    member_and_invite.push(permissions::INVITATION_CREATE);
    let key = app.issuer.token(
        // Inviting as a member needs a member's rights besides the right to invite (issue 8).
        TokenSpec::api_key("key-7", tenant.id.parse().expect("tenant id"))
            .perms(member_and_invite.clone())
            .scopes(member_and_invite),
    );
    let invitation = app
        .members(&key)
        .create_invitation(pb::CreateInvitationRequest {
            tenant_id: tenant.id.clone(),
            email: "Mixed.Case@Example.com".into(),
            role: "member".into(),
        })
        .await
        .expect("invite with an API key")
        .into_inner();
    assert_eq!(invitation.invited_by, "key-7");
    // Stored and answered in the normalised form, as before the kernel's `Email`.
    assert_eq!(invitation.email, "mixed.case@example.com");

    let admin = app.db.admin_pool().await;
    let (kind,): (String,) =
        sqlx::query_as("SELECT invited_by_kind FROM tenancy.invitations WHERE id = $1::uuid")
            .bind(&invitation.id)
            .fetch_one(&admin)
            .await
            .expect("the invitation row");
    assert_eq!(kind, "api_key");

    let created = app
        .events()
        .await
        .of_type("tenancy.invitation.created", 1)
        .await;
    let [event] = created.as_slice() else {
        panic!("one invitation event, got {created:?}");
    };
    let actor = event.actor.as_ref().expect("an actor");
    assert_eq!(
        (actor.kind, actor.id.as_str()),
        (actor::Kind::ApiKey as i32, "key-7")
    );
    let payload: pb::InvitationCreated = payload(event);
    assert_eq!(payload.invited_by, "key-7");
    app.stop().await;
}
