//! RBAC: the permission catalogue, built-in roles, custom roles per tenant, and role bindings
//! expanded into the token's permissions.

use crate::support::{TestApp, bearer, claims_of, unique_email};
use keel_kernel::ErrorCode;
use keel_proto::identity::v1 as pb;
use keel_testkit::assert_status;

fn role(tenant: &str, name: &str, permissions: &[&str]) -> pb::CreateRoleRequest {
    pb::CreateRoleRequest {
        tenant_id: tenant.into(),
        role: Some(pb::Role {
            name: name.into(),
            description: "Ships releases".into(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn the_catalogue_lists_context_resource_action_permissions() {
    let app = TestApp::spawn().await;
    let (_, pair) = app.user(&unique_email("catalogue")).await;
    let first = app
        .access()
        .list_permissions(bearer(
            pb::ListPermissionsRequest {
                page_size: 10,
                page_token: String::new(),
            },
            &pair.access_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(first.permissions.len(), 10);
    assert!(!first.next_page_token.is_empty());
    let all = app
        .access()
        .list_permissions(bearer(
            pb::ListPermissionsRequest {
                page_size: 500,
                page_token: String::new(),
            },
            &pair.access_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(
        all.permissions
            .iter()
            .all(|p| p.name.split('.').count() == 3 && !p.description.is_empty())
    );
    assert!(
        all.permissions
            .iter()
            .any(|p| p.name == "identity.api_key.create")
    );
    assert!(all.next_page_token.is_empty());
}

#[tokio::test]
async fn built_in_roles_come_first_then_the_tenants_custom_roles() {
    let app = TestApp::spawn().await;
    let (_, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let created = app
        .access()
        .create_role(bearer(
            role(
                &tenant.to_string(),
                "release-manager",
                &["delivery.task.approve", "delivery.task.read"],
            ),
            &scoped.access_token,
        ))
        .await
        .expect("create")
        .into_inner();
    assert!(!created.built_in);
    assert_eq!(created.tenant_id, tenant.to_string());

    let listed = app
        .access()
        .list_roles(bearer(
            pb::ListRolesRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &scoped.access_token,
        ))
        .await
        .expect("list")
        .into_inner();
    let names: Vec<&str> = listed.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["owner", "admin", "member", "viewer", "release-manager"]
    );
    assert!(listed.roles[..4].iter().all(|r| r.built_in));
    let viewer = &listed.roles[3];
    assert!(
        viewer
            .permissions
            .contains(&"delivery.task.read".to_owned())
    );
    assert!(
        !viewer
            .permissions
            .contains(&"delivery.task.create".to_owned())
    );

    // taken: said in domain words, never with the constraint's name
    let taken = assert_status(
        app.access()
            .create_role(bearer(
                role(
                    &tenant.to_string(),
                    "release-manager",
                    &["delivery.task.read"],
                ),
                &scoped.access_token,
            ))
            .await,
        ErrorCode::Conflict,
    );
    assert!(
        taken
            .message()
            .contains("already has a role named release-manager"),
        "{}",
        taken.message()
    );
    assert!(
        !taken.message().contains("roles_name_key"),
        "{}",
        taken.message()
    );
    // reserved
    assert_status(
        app.access()
            .create_role(bearer(
                role(&tenant.to_string(), "owner", &["delivery.task.read"]),
                &scoped.access_token,
            ))
            .await,
        ErrorCode::Validation,
    );
    // not in the catalogue
    assert_status(
        app.access()
            .create_role(bearer(
                role(&tenant.to_string(), "wizard", &["magic.spell.cast"]),
                &scoped.access_token,
            ))
            .await,
        ErrorCode::Validation,
    );
    app.published_eventually("identity.role.created", |e| e.aggregate_id == created.id)
        .await;
}

#[tokio::test]
async fn a_member_bound_to_a_custom_role_gets_its_permissions_in_the_token() {
    let app = TestApp::spawn().await;
    let (_, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let created = app
        .access()
        .create_role(bearer(
            role(&tenant.to_string(), "approver", &["delivery.task.approve"]),
            &scoped.access_token,
        ))
        .await
        .expect("create")
        .into_inner();
    let (user, pair) = app.user(&unique_email("approver")).await;
    app.member_added(tenant, user, &created.id).await;
    let bound = app.switch_eventually(&pair.access_token, tenant).await;
    let claims = claims_of(&bound.access_token);
    assert_eq!(claims.roles, vec!["approver"]);
    assert_eq!(claims.perms, vec!["delivery.task.approve"]);
    assert!(claims.has_permission("delivery.task.approve"));
    assert!(!claims.has_permission("delivery.task.create"));
}

#[tokio::test]
async fn only_holders_of_the_permission_manage_roles() {
    let app = TestApp::spawn().await;
    let (_, tenant, _) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let (member, pair) = app.user(&unique_email("member")).await;
    app.member_added(tenant, member, "member").await;
    let scoped = app.switch_eventually(&pair.access_token, tenant).await;
    app.access()
        .list_roles(bearer(
            pb::ListRolesRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &scoped.access_token,
        ))
        .await
        .expect("members may list roles");
    // members may not create them
    assert_status(
        app.access()
            .create_role(bearer(
                role(&tenant.to_string(), "sneaky", &["delivery.task.read"]),
                &scoped.access_token,
            ))
            .await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn platform_admins_named_in_the_config_get_platform_rights_on_unscoped_tokens_only() {
    let email = unique_email("root");
    let admin_email = email.clone();
    let app =
        TestApp::spawn_with(move |s| s.platform_admins = vec![admin_email.to_uppercase()]).await;
    let user = app.register(&email).await;
    app.verify(user).await;
    let pair = app.login(&email).await;
    let claims = claims_of(&pair.access_token);
    assert_eq!(claims.tid, None);
    assert_eq!(claims.roles, vec!["platform_admin"]);
    assert!(claims.has_permission("tenancy.tenant.approve"));
    let refreshed = app.refresh(&pair.refresh_token).await.expect("refresh");
    assert!(claims_of(&refreshed.access_token).has_permission("tenancy.tenant.suspend"));

    let (_, ordinary) = app.user(&unique_email("ordinary")).await;
    assert!(claims_of(&ordinary.access_token).perms.is_empty());
}
