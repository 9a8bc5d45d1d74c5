//! Languages: a tenant's default language (at creation and through UpdateTenant), and the
//! languages an invitation's event carries for a notifier to write to a person without an account.

use keel_kernel::auth::roles;
use keel_kernel::{Error, ErrorCode, UserId};
use keel_proto::tenancy::v1 as pb;
use keel_testkit::assert_status;

use crate::support::TestApp;

fn with_language<T>(message: T, accept_language: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "accept-language",
        accept_language.parse().expect("an ASCII header"),
    );
    request
}

fn update(
    tenant: &str,
    name: &str,
    default_locale: &str,
    paths: &[&str],
) -> pb::UpdateTenantRequest {
    pb::UpdateTenantRequest {
        tenant_id: tenant.into(),
        tenant: Some(pb::Tenant {
            name: name.into(),
            default_locale: default_locale.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    }
}

fn field_of(status: &tonic::Status) -> String {
    Error::from_status(status).violations()[0].field.clone()
}

#[tokio::test]
async fn a_tenant_is_created_with_a_valid_default_locale_in_canonical_case_only() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let created = app
        .tenants(&app.user_token(owner))
        .create_tenant(pb::CreateTenantRequest {
            tenant: Some(pb::Tenant {
                name: "Souq".into(),
                slug: "souq".into(),
                default_locale: "AR-eg".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.default_locale, "ar-EG");
    let refused = assert_status(
        app.tenants(&app.user_token(owner))
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(pb::Tenant {
                    name: "Bad".into(),
                    slug: "bad-locale".into(),
                    default_locale: "arabic please".into(),
                    ..Default::default()
                }),
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(field_of(&refused), "tenant.default_locale");
    app.stop().await;
}

#[tokio::test]
async fn the_owner_updates_the_default_locale_and_name_and_the_change_is_announced() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "hanok").await;
    let owner_token = app.tenant_token(owner, &tenant.id, roles::OWNER);

    let updated = app
        .tenants(&owner_token)
        .update_tenant(update(&tenant.id, "ignored", "ko-kr", &["default_locale"]))
        .await
        .expect("update the default locale")
        .into_inner();
    assert_eq!(updated.default_locale, "ko-KR");
    assert_eq!(updated.name, tenant.name, "not in the mask: unchanged");
    let both = app
        .tenants(&owner_token)
        .update_tenant(update(&tenant.id, "Hanok House", "", &[]))
        .await
        .expect("an empty mask updates both")
        .into_inner();
    assert_eq!(both.name, "Hanok House");
    assert_eq!(both.default_locale, "", "empty clears the default");

    let events = app
        .events()
        .await
        .of_type("tenancy.tenant.updated", 2)
        .await;
    assert_eq!(events.len(), 2);
    let first: pb::TenantUpdated = keel_testkit::payload(&events[0]);
    assert_eq!(first.default_locale, "ko-KR");
    assert_eq!(first.tenant_id, tenant.id);
    assert!(events[1].aggregate_version > events[0].aggregate_version);

    let bad = assert_status(
        app.tenants(&owner_token)
            .update_tenant(update(&tenant.id, "", "zz-!!", &["default_locale"]))
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(field_of(&bad), "tenant.default_locale");
    let bad_mask = assert_status(
        app.tenants(&owner_token)
            .update_tenant(update(&tenant.id, "", "", &["slug"]))
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(field_of(&bad_mask), "update_mask");
    app.stop().await;
}

#[tokio::test]
async fn only_the_tenants_owner_may_update_it() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "guarded").await;
    let other = app.create_active_tenant(UserId::new(), "elsewhere").await;
    let admin = app.tenant_token(UserId::new(), &tenant.id, roles::ADMIN);
    assert_status(
        app.tenants(&admin)
            .update_tenant(update(&tenant.id, "", "en", &["default_locale"]))
            .await,
        ErrorCode::Authz,
    );
    // Another tenant's owner: the token's tenant is not the request's.
    let foreign = app.tenant_token(owner, &other.id, roles::OWNER);
    assert_status(
        app.tenants(&foreign)
            .update_tenant(update(&tenant.id, "", "en", &["default_locale"]))
            .await,
        ErrorCode::Authz,
    );
    let unchanged = app
        .tenants(&app.tenant_token(owner, &tenant.id, roles::OWNER))
        .get_tenant(pb::GetTenantRequest {
            tenant_id: tenant.id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(unchanged.default_locale, "");
    app.stop().await;
}

#[tokio::test]
async fn an_invitation_carries_the_inviters_language_and_the_tenants_default() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "duo").await;
    let owner_token = app.tenant_token(owner, &tenant.id, roles::OWNER);
    app.tenants(&owner_token)
        .update_tenant(update(&tenant.id, "", "ar", &["default_locale"]))
        .await
        .expect("set the default");
    app.members(&owner_token)
        .create_invitation(with_language(
            pb::CreateInvitationRequest {
                tenant_id: tenant.id.clone(),
                email: "li@example.com".into(),
                role: roles::MEMBER.into(),
            },
            "zh-cn,zh;q=0.9,en;q=0.8",
        ))
        .await
        .expect("invite");
    // Without Accept-Language the event says so with an empty locale.
    app.members(&owner_token)
        .create_invitation(pb::CreateInvitationRequest {
            tenant_id: tenant.id.clone(),
            email: "kim@example.com".into(),
            role: roles::MEMBER.into(),
        })
        .await
        .expect("invite");
    let events = app
        .events()
        .await
        .of_type("tenancy.invitation.created", 2)
        .await;
    let by_email = |email: &str| -> pb::InvitationCreated {
        events
            .iter()
            .map(keel_testkit::payload::<pb::InvitationCreated>)
            .find(|e| e.email == email)
            .expect("an invitation event for the email")
    };
    let li = by_email("li@example.com");
    assert_eq!(li.locale, "zh-CN");
    assert_eq!(li.tenant_default_locale, "ar");
    let kim = by_email("kim@example.com");
    assert_eq!(kim.locale, "");
    assert_eq!(kim.tenant_default_locale, "ar");
    app.stop().await;
}
