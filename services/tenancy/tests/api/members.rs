//! Invitations and members: invite, accept, list, change roles, remove, and the last owner rule.

use keel_kernel::ErrorCode;
use keel_kernel::UserId;
use keel_kernel::auth::roles;
use keel_proto::tenancy::v1 as pb;
use keel_tenancy::domain::permissions;
use keel_testkit::tokens::TokenSpec;
use keel_testkit::{assert_status, violated_fields};

use crate::support::TestApp;

fn invite(tenant: &str, email: &str, role: &str) -> pb::CreateInvitationRequest {
    pb::CreateInvitationRequest {
        tenant_id: tenant.into(),
        email: email.into(),
        role: role.into(),
    }
}

fn role_change(tenant: &str, user: UserId, role: &str) -> pb::UpdateMemberRequest {
    pb::UpdateMemberRequest {
        tenant_id: tenant.into(),
        user_id: user.to_string(),
        member: Some(pb::Membership {
            role: role.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["role".into()],
        }),
    }
}

fn removal(tenant: &str, user: UserId) -> pb::RemoveMemberRequest {
    pb::RemoveMemberRequest {
        tenant_id: tenant.into(),
        user_id: user.to_string(),
    }
}

#[tokio::test]
async fn an_invited_user_accepts_and_becomes_a_member_with_the_invited_role() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let owner_token = app.tenant_token(owner, &tenant.id, roles::OWNER);

    let invitation = app
        .members(&owner_token)
        .create_invitation(invite(&tenant.id, " Ann@Example.com ", "admin"))
        .await
        .expect("invite")
        .into_inner();
    assert!(
        invitation.token.starts_with("kinv_"),
        "the token is returned once"
    );
    assert_eq!(invitation.email, "ann@example.com");
    assert_eq!(invitation.state, pb::InvitationState::Pending as i32);
    assert_eq!(invitation.invited_by, owner.to_string());
    assert!(
        invitation.expire_time.expect("expiry").seconds
            > invitation.create_time.expect("creation").seconds
    );

    let ann = UserId::new();
    let member = app
        .members(&app.verified_user_token(ann, "ann@example.com"))
        .accept_invitation(pb::AcceptInvitationRequest {
            token: invitation.token.clone(),
        })
        .await
        .expect("accept")
        .into_inner();
    assert_eq!(
        (member.user_id.as_str(), member.role.as_str()),
        (ann.to_string().as_str(), "admin")
    );
    assert_eq!(
        (member.tenant_id.as_str(), member.email.as_str()),
        (tenant.id.as_str(), "ann@example.com")
    );

    // The tenant is now among Ann's tenants, and she is among its members.
    let hers = app
        .tenants(&app.user_token(ann))
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("list");
    assert_eq!(
        hers.into_inner()
            .tenants
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        vec![tenant.id.clone()]
    );
    let got = app
        .members(&owner_token)
        .get_member(pb::GetMemberRequest {
            tenant_id: tenant.id.clone(),
            user_id: ann.to_string(),
        })
        .await
        .expect("get member");
    assert_eq!(got.into_inner().role, "admin");

    // The token is single-use, even for another account of the invited address.
    let status = assert_status(
        app.members(&app.verified_user_token(UserId::new(), "ann@example.com"))
            .accept_invitation(pb::AcceptInvitationRequest {
                token: invitation.token,
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("already been used"), "{status:?}");
    app.stop().await;
}

#[tokio::test]
async fn the_invitation_token_is_stored_only_as_a_hash() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = app
        .members(&app.tenant_token(owner, &tenant.id, roles::OWNER))
        .create_invitation(invite(&tenant.id, "ann@example.com", "member"))
        .await
        .expect("invite")
        .into_inner();

    let admin = app.db.admin_pool().await;
    let (stored,): (String,) =
        sqlx::query_as("SELECT row_to_json(i)::text FROM tenancy.invitations i")
            .fetch_one(&admin)
            .await
            .expect("invitation row");
    // `kinv_<tenant>_<secret>`: the secret (URL-safe base64) may itself contain `_`.
    let secret = invitation.token.splitn(3, '_').nth(2).expect("secret part");
    assert!(secret.len() >= 40, "{secret}");
    assert!(!stored.contains(secret), "{stored}");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_invitation_is_refused() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = app
        .members(&app.tenant_token(owner, &tenant.id, roles::OWNER))
        .create_invitation(invite(&tenant.id, "late@example.com", "member"))
        .await
        .expect("invite")
        .into_inner();
    let admin = app.db.admin_pool().await;
    sqlx::query("UPDATE tenancy.invitations SET expires_at = now() - interval '1 minute'")
        .execute(&admin)
        .await
        .expect("age the invitation");

    let late = UserId::new();
    let status = assert_status(
        app.members(&app.verified_user_token(late, "late@example.com"))
            .accept_invitation(pb::AcceptInvitationRequest {
                token: invitation.token,
            })
            .await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("expired"), "{status:?}");
    let theirs = app
        .tenants(&app.user_token(late))
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("list");
    assert!(theirs.into_inner().tenants.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_invitation_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = app
        .members(&app.tenant_token(owner, &tenant.id, roles::OWNER))
        .create_invitation(invite(&tenant.id, "ann@example.com", "member"))
        .await
        .expect("invite")
        .into_inner();
    let mut client = app.members(&app.user_token(UserId::new()));

    // Same shape, one character of the secret changed.
    let mut forged = invitation.token.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(forged.len() - 1.., last);
    assert_status(
        client
            .accept_invitation(pb::AcceptInvitationRequest { token: forged })
            .await,
        ErrorCode::NotFound,
    );
    // The right secret moved to another tenant.
    let other = uuid::Uuid::now_v7().simple().to_string();
    let moved = format!("kinv_{other}{}", &invitation.token[5 + 32..]);
    assert_status(
        client
            .accept_invitation(pb::AcceptInvitationRequest { token: moved })
            .await,
        ErrorCode::NotFound,
    );
    let status = assert_status(
        client
            .accept_invitation(pb::AcceptInvitationRequest {
                token: "hello".into(),
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["token"]);
    app.stop().await;
}

#[tokio::test]
async fn invitations_need_the_permission_a_valid_email_and_role_and_an_owner_to_invite_owners() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let admin = app.add_member(&tenant.id, owner, roles::ADMIN).await;
    let viewer = app.add_member(&tenant.id, owner, roles::VIEWER).await;

    let status = assert_status(
        app.members(&app.tenant_token(owner, &tenant.id, roles::OWNER))
            .create_invitation(invite(&tenant.id, "not-an-email", "emperor"))
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["email", "role"]);
    assert_status(
        app.members(&app.tenant_token(viewer, &tenant.id, roles::VIEWER))
            .create_invitation(invite(&tenant.id, "x@example.com", "member"))
            .await,
        ErrorCode::Authz,
    );
    let admin_token = app.tenant_token(admin, &tenant.id, roles::ADMIN);
    let status = assert_status(
        app.members(&admin_token)
            .create_invitation(invite(&tenant.id, "x@example.com", "owner"))
            .await,
        ErrorCode::Authz,
    );
    assert!(status.message().contains("owner"), "{status:?}");
    app.members(&admin_token)
        .create_invitation(invite(&tenant.id, "x@example.com", "member"))
        .await
        .expect("admins invite members");
    app.stop().await;
}

#[tokio::test]
async fn a_member_cannot_accept_a_second_invitation_to_the_same_tenant() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let invitation = app
        .members(&app.tenant_token(owner, &tenant.id, roles::OWNER))
        .create_invitation(invite(&tenant.id, "me@example.com", "member"))
        .await
        .expect("invite")
        .into_inner();
    let status = assert_status(
        app.members(&app.verified_user_token(owner, "me@example.com"))
            .accept_invitation(pb::AcceptInvitationRequest {
                token: invitation.token,
            })
            .await,
        ErrorCode::Conflict,
    );
    assert!(status.message().contains("already a member"), "{status:?}");
    app.stop().await;
}

#[tokio::test]
async fn members_are_listed_in_join_order_page_by_page() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let mut expected = vec![owner.to_string()];
    for _ in 0..6 {
        expected.push(
            app.add_member(&tenant.id, owner, roles::MEMBER)
                .await
                .to_string(),
        );
    }
    let mut client = app.members(&app.tenant_token(owner, &tenant.id, roles::VIEWER));

    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = client
            .list_members(pb::ListMembersRequest {
                tenant_id: tenant.id.clone(),
                page_size: 3,
                page_token: token,
            })
            .await
            .expect("list members")
            .into_inner();
        pages += 1;
        assert!(page.members.len() <= 3);
        seen.extend(page.members.into_iter().map(|m| m.user_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    assert_status(
        client
            .list_members(pb::ListMembersRequest {
                tenant_id: tenant.id.clone(),
                page_size: -1,
                ..Default::default()
            })
            .await,
        ErrorCode::Validation,
    );
    app.stop().await;
}

#[tokio::test]
async fn a_members_role_changes_and_only_role_can_be_updated() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let bob = app.add_member(&tenant.id, owner, roles::MEMBER).await;
    let mut owner_client = app.members(&app.tenant_token(owner, &tenant.id, roles::OWNER));

    let updated = owner_client
        .update_member(role_change(&tenant.id, bob, "admin"))
        .await
        .expect("update");
    assert_eq!(updated.into_inner().role, "admin");
    let mut bad_mask = role_change(&tenant.id, bob, "viewer");
    bad_mask.update_mask = Some(prost_types::FieldMask {
        paths: vec!["email".into()],
    });
    let status = assert_status(
        owner_client.update_member(bad_mask).await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["update_mask"]);
    assert_status(
        owner_client
            .update_member(role_change(&tenant.id, UserId::new(), "viewer"))
            .await,
        ErrorCode::NotFound,
    );
    // Without the permission: refused.
    let viewer = app.add_member(&tenant.id, owner, roles::VIEWER).await;
    assert_status(
        app.members(&app.tenant_token(viewer, &tenant.id, roles::VIEWER))
            .update_member(role_change(&tenant.id, bob, "viewer"))
            .await,
        ErrorCode::Authz,
    );
    // Admins cannot make owners; owners can.
    assert_status(
        app.members(&app.tenant_token(bob, &tenant.id, roles::ADMIN))
            .update_member(role_change(&tenant.id, viewer, "owner"))
            .await,
        ErrorCode::Authz,
    );
    owner_client
        .update_member(role_change(&tenant.id, viewer, "owner"))
        .await
        .expect("promote");
    app.stop().await;
}

#[tokio::test]
async fn the_last_owner_can_be_neither_removed_nor_demoted() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let mut client = app.members(&app.tenant_token(owner, &tenant.id, roles::OWNER));

    let status = assert_status(
        client.remove_member(removal(&tenant.id, owner)).await,
        ErrorCode::FailedPrecondition,
    );
    assert!(status.message().contains("last owner"), "{status:?}");
    // Nobody changes their own role, so the last owner cannot step down either (AUTHZ comes
    // first), and only an owner demotes an owner: two owners demoting each other at once leave
    // one (`two_owners_demoting_each_other_at_once_leave_one_owner`). The rule itself is
    // unit-tested in `domain::member`.
    assert_status(
        client
            .update_member(role_change(&tenant.id, owner, "admin"))
            .await,
        ErrorCode::Authz,
    );

    // With a second owner, the first can be demoted by the second and then removed.
    let second = app.add_member(&tenant.id, owner, roles::OWNER).await;
    let mut second_client = app.members(&app.tenant_token(second, &tenant.id, roles::OWNER));
    second_client
        .update_member(role_change(&tenant.id, owner, "admin"))
        .await
        .expect("demote");
    assert_status(
        second_client
            .remove_member(removal(&tenant.id, second))
            .await,
        ErrorCode::FailedPrecondition,
    );
    second_client
        .remove_member(removal(&tenant.id, owner))
        .await
        .expect("remove the former owner");
    app.stop().await;
}

#[tokio::test]
async fn a_removed_member_is_gone_and_members_may_leave_on_their_own() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let (bob, carol) = (
        app.add_member(&tenant.id, owner, roles::MEMBER).await,
        app.add_member(&tenant.id, owner, roles::VIEWER).await,
    );
    let mut owner_client = app.members(&app.tenant_token(owner, &tenant.id, roles::OWNER));

    owner_client
        .remove_member(removal(&tenant.id, bob))
        .await
        .expect("remove bob");
    assert_status(
        owner_client
            .get_member(pb::GetMemberRequest {
                tenant_id: tenant.id.clone(),
                user_id: bob.to_string(),
            })
            .await,
        ErrorCode::NotFound,
    );
    assert_status(
        owner_client.remove_member(removal(&tenant.id, bob)).await,
        ErrorCode::NotFound,
    );
    let bobs = app
        .tenants(&app.user_token(bob))
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("list");
    assert!(bobs.into_inner().tenants.is_empty());

    // Carol has no right to remove anyone, but she may leave.
    let mut carol_client = app.members(&app.tenant_token(carol, &tenant.id, roles::VIEWER));
    assert_status(
        carol_client.remove_member(removal(&tenant.id, owner)).await,
        ErrorCode::Authz,
    );
    carol_client
        .remove_member(removal(&tenant.id, carol))
        .await
        .expect("carol leaves");
    let left = owner_client
        .list_members(pb::ListMembersRequest {
            tenant_id: tenant.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .members;
    assert_eq!(
        left.into_iter().map(|m| m.user_id).collect::<Vec<_>>(),
        vec![owner.to_string()]
    );
    app.stop().await;
}

#[tokio::test]
async fn two_owners_removing_each_other_at_once_leave_one_owner() {
    let app = TestApp::spawn().await;
    let first = UserId::new();
    let tenant = app.create_active_tenant(first, "acme").await;
    let second = app.add_member(&tenant.id, first, roles::OWNER).await;
    let mut first_client = app.members(&app.tenant_token(first, &tenant.id, roles::OWNER));
    let mut second_client = app.members(&app.tenant_token(second, &tenant.id, roles::OWNER));

    let (a, b) = tokio::join!(
        first_client.remove_member(removal(&tenant.id, second)),
        second_client.remove_member(removal(&tenant.id, first)),
    );
    assert_eq!(
        a.is_ok() as u8 + b.is_ok() as u8,
        1,
        "exactly one removal wins: {a:?} {b:?}"
    );
    let left = app
        .members(&app.platform_admin_token())
        .list_members(pb::ListMembersRequest {
            tenant_id: tenant.id.clone(),
            ..Default::default()
        })
        .await;
    // A platform token is not the tenant's token: it cannot list members.
    assert_status(left, ErrorCode::Authz);
    let survivor = if a.is_ok() { first } else { second };
    let members = app
        .members(&app.tenant_token(survivor, &tenant.id, roles::OWNER))
        .list_members(pb::ListMembersRequest {
            tenant_id: tenant.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .members;
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].user_id.clone(), members[0].role.as_str()),
        (survivor.to_string(), "owner")
    );
    app.stop().await;
}

#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    let app = TestApp::spawn().await;
    let first = UserId::new();
    let tenant = app.create_active_tenant(first, "acme").await;
    let second = app.add_member(&tenant.id, first, roles::OWNER).await;
    let mut first_client = app.members(&app.tenant_token(first, &tenant.id, roles::OWNER));
    let mut second_client = app.members(&app.tenant_token(second, &tenant.id, roles::OWNER));

    let (a, b) = tokio::join!(
        first_client.update_member(role_change(&tenant.id, second, "admin")),
        second_client.update_member(role_change(&tenant.id, first, "admin")),
    );
    let loser = match (&a, &b) {
        (Ok(_), Err(status)) | (Err(status), Ok(_)) => status,
        _ => panic!("exactly one demotion wins: {a:?} {b:?}"),
    };
    // The loser was demoted first, so it is no longer an owner who may take the role away.
    assert_eq!(loser.code(), tonic::Code::PermissionDenied, "{loser:?}");
    assert!(loser.message().contains("only an owner"), "{loser:?}");
    let survivor = if a.is_ok() { first } else { second };
    let loser_id = if a.is_ok() { second } else { first };
    assert_eq!(app.role_of(&tenant.id, survivor, survivor).await, "owner");
    assert_eq!(app.role_of(&tenant.id, survivor, loser_id).await, "admin");
    app.stop().await;
}

// ---- Item 1 of issue 8: nobody grants or invites with rights they do not hold. ----

#[tokio::test]
async fn an_admin_cannot_promote_themselves_to_owner() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let admin = app.add_member(&tenant.id, owner, roles::ADMIN).await;
    let mut admin_client = app.members(&app.tenant_token(admin, &tenant.id, roles::ADMIN));

    for role in [roles::OWNER, &uuid::Uuid::now_v7().to_string()] {
        let status = assert_status(
            admin_client
                .update_member(role_change(&tenant.id, admin, role))
                .await,
            ErrorCode::Authz,
        );
        assert!(status.message().contains("own role"), "{role}: {status:?}");
    }
    assert_eq!(app.role_of(&tenant.id, owner, admin).await, "admin");
    app.stop().await;
}

#[tokio::test]
async fn a_member_cannot_change_their_own_role_even_with_the_update_permission() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let bob = app.add_member(&tenant.id, owner, roles::MEMBER).await;
    // A custom role may grant `tenancy.member.update` on top of a member's rights.
    let token = app.issuer.token(
        TokenSpec::user(bob)
            .tenant(tenant.id.parse().expect("tenant id"))
            .perms(roles::built_in(roles::MEMBER).expect("member"))
            .perm(permissions::MEMBER_UPDATE),
    );
    for role in [roles::VIEWER, roles::ADMIN] {
        assert_status(
            app.members(&token)
                .update_member(role_change(&tenant.id, bob, role))
                .await,
            ErrorCode::Authz,
        );
    }
    // Even an owner does not change their own role: another owner does.
    assert_status(
        app.members(&app.tenant_token(owner, &tenant.id, roles::OWNER))
            .update_member(role_change(&tenant.id, owner, roles::ADMIN))
            .await,
        ErrorCode::Authz,
    );
    assert_eq!(app.role_of(&tenant.id, owner, bob).await, "member");
    app.stop().await;
}

#[tokio::test]
async fn a_caller_with_the_update_permission_cannot_grant_a_role_with_more_rights_than_their_own() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let (manager, bob) = (
        app.add_member(&tenant.id, owner, roles::MEMBER).await,
        app.add_member(&tenant.id, owner, roles::VIEWER).await,
    );
    let token = app.issuer.token(
        TokenSpec::user(manager)
            .tenant(tenant.id.parse().expect("tenant id"))
            .perms(roles::built_in(roles::MEMBER).expect("member"))
            .perm(permissions::MEMBER_UPDATE),
    );
    let status = assert_status(
        app.members(&token)
            .update_member(role_change(&tenant.id, bob, roles::ADMIN))
            .await,
        ErrorCode::Authz,
    );
    assert!(status.message().contains("admin"), "{status:?}");
    // Within their own rights, they may.
    app.members(&token)
        .update_member(role_change(&tenant.id, bob, roles::MEMBER))
        .await
        .expect("a role the caller covers");
    app.stop().await;
}

#[tokio::test]
async fn an_admin_cannot_grant_or_invite_with_a_custom_role_whose_rights_tenancy_cannot_see() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let (admin, bob) = (
        app.add_member(&tenant.id, owner, roles::ADMIN).await,
        app.add_member(&tenant.id, owner, roles::MEMBER).await,
    );
    let custom = uuid::Uuid::now_v7().to_string();
    let mut admin_client = app.members(&app.tenant_token(admin, &tenant.id, roles::ADMIN));

    assert_status(
        admin_client
            .update_member(role_change(&tenant.id, bob, &custom))
            .await,
        ErrorCode::Authz,
    );
    assert_status(
        admin_client
            .create_invitation(invite(&tenant.id, "friend@example.com", &custom))
            .await,
        ErrorCode::Authz,
    );
    // Owners hold every right, so they may.
    let mut owner_client = app.members(&app.tenant_token(owner, &tenant.id, roles::OWNER));
    owner_client
        .update_member(role_change(&tenant.id, bob, &custom))
        .await
        .expect("owners grant custom roles");
    owner_client
        .create_invitation(invite(&tenant.id, "friend@example.com", &custom))
        .await
        .expect("owners invite with custom roles");
    app.stop().await;
}

#[tokio::test]
async fn an_inviter_cannot_invite_someone_as_admin_with_more_rights_than_their_own() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let recruiter = app.add_member(&tenant.id, owner, roles::MEMBER).await;
    let tenant_id: keel_kernel::TenantId = tenant.id.parse().expect("tenant id");
    // A member whose custom role adds only the right to invite.
    let recruiter_token = app.issuer.token(
        TokenSpec::user(recruiter)
            .tenant(tenant_id)
            .perms(roles::built_in(roles::MEMBER).expect("member"))
            .perm(permissions::INVITATION_CREATE),
    );
    // An API key of the owner whose scopes allow only inviting.
    let key = app.issuer.token(
        TokenSpec::api_key("key-1", tenant_id)
            .perm("*")
            .scopes([permissions::INVITATION_CREATE]),
    );
    let admin_token = app.tenant_token(
        app.add_member(&tenant.id, owner, roles::ADMIN).await,
        &tenant.id,
        roles::ADMIN,
    );
    for token in [&recruiter_token, &key] {
        for role in [roles::ADMIN, roles::OWNER] {
            assert_status(
                app.members(token)
                    .create_invitation(invite(&tenant.id, "x@example.com", role))
                    .await,
                ErrorCode::Authz,
            );
        }
    }
    assert_status(
        app.members(&admin_token)
            .create_invitation(invite(&tenant.id, "x@example.com", roles::OWNER))
            .await,
        ErrorCode::Authz,
    );
    // Each may invite with a role they cover.
    app.members(&recruiter_token)
        .create_invitation(invite(&tenant.id, "x@example.com", roles::VIEWER))
        .await
        .expect("a member invites a viewer");
    app.members(&admin_token)
        .create_invitation(invite(&tenant.id, "x@example.com", roles::ADMIN))
        .await
        .expect("an admin invites an admin");
    app.stop().await;
}

/// An owner being demoted fires promotions with the owner token it still holds. The checks read
/// tenancy's records under the tenant's lock, so each promotion either committed before the
/// demotion (legitimately, by an owner) or is refused: none lands after it.
#[tokio::test]
async fn a_demoted_owner_racing_to_promote_accomplices_gets_no_promotion_after_the_demotion() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let rogue = app.add_member(&tenant.id, owner, roles::OWNER).await;
    let mut accomplices = Vec::new();
    for _ in 0..6 {
        accomplices.push(app.add_member(&tenant.id, owner, roles::VIEWER).await);
    }
    let rogue_token = app.tenant_token(rogue, &tenant.id, roles::OWNER);
    let owner_token = app.tenant_token(owner, &tenant.id, roles::OWNER);

    let mut calls = Vec::new();
    for (i, accomplice) in accomplices.iter().enumerate() {
        let mut client = app.members(&rogue_token);
        let request = role_change(&tenant.id, *accomplice, roles::OWNER);
        calls.push(tokio::spawn(async move {
            (false, client.update_member(request).await)
        }));
        if i == 2 {
            let mut client = app.members(&owner_token);
            let request = role_change(&tenant.id, rogue, roles::VIEWER);
            calls.push(tokio::spawn(async move {
                (true, client.update_member(request).await)
            }));
        }
    }
    let results = futures::future::join_all(calls).await;
    let mut promoted = 0;
    for result in results {
        let (is_demotion, answer) = result.expect("task");
        match answer {
            Ok(_) => promoted += usize::from(!is_demotion),
            Err(status) => {
                assert!(!is_demotion, "the demotion succeeds: {status:?}");
                assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
            }
        }
    }

    // Commit order is the membership version order: every promotion precedes the demotion.
    let log = app.events().await;
    let changes = keel_testkit::eventually(|| async {
        let changes = log.of_type("tenancy.member.role_changed", 0).await;
        (changes.len() > promoted).then_some(changes)
    })
    .await;
    let demoted_at = changes
        .iter()
        .find(|e| e.aggregate_id.ends_with(&rogue.to_string()))
        .map(|e| e.aggregate_version)
        .expect("the demotion's event");
    for change in &changes {
        assert!(
            change.aggregate_version <= demoted_at,
            "a promotion committed after the demotion: {change:?}"
        );
    }
    assert_eq!(changes.len(), promoted + 1);
    assert_eq!(app.role_of(&tenant.id, owner, rogue).await, "viewer");
    app.stop().await;
}
