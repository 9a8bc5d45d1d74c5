//! The module catalogue, per-tenant modules and flags, and entitlements.

use std::collections::HashMap;

use keel_kernel::ErrorCode;
use keel_kernel::UserId;
use keel_kernel::auth::roles;
use keel_proto::tenancy::v1 as pb;
use keel_tenancy::Settings;
use keel_testkit::tokens::TokenSpec;
use keel_testkit::{assert_status, violated_fields};

use crate::support::TestApp;

fn entitlements(tenant: &str) -> pb::GetEntitlementsRequest {
    pb::GetEntitlementsRequest {
        tenant_id: tenant.into(),
    }
}

#[tokio::test]
async fn the_catalogue_offers_delivery_billing_marketplace_and_ai() {
    let app = TestApp::spawn().await;
    let mut client = app.modules(&app.user_token(UserId::new()));

    let all = client
        .list_modules(pb::ListModulesRequest::default())
        .await
        .expect("catalogue")
        .into_inner();
    let names: Vec<_> = all.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["delivery", "billing", "marketplace", "ai"]);
    assert!(all.next_page_token.is_empty());
    let first = client
        .list_modules(pb::ListModulesRequest {
            page_size: 3,
            ..Default::default()
        })
        .await
        .expect("first page")
        .into_inner();
    let rest = client
        .list_modules(pb::ListModulesRequest {
            page_size: 3,
            page_token: first.next_page_token,
        })
        .await
        .expect("second page")
        .into_inner();
    assert_eq!((first.modules.len(), rest.modules.len()), (3, 1));
    assert_eq!(rest.modules[0].name, "ai");
    app.stop().await;
}

#[tokio::test]
async fn a_new_tenant_starts_with_the_default_modules_and_can_change_them() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let token = app.tenant_token(owner, &tenant.id, roles::ADMIN);
    let mut client = app.modules(&token);

    let before = client
        .get_entitlements(entitlements(&tenant.id))
        .await
        .expect("entitlements")
        .into_inner();
    assert_eq!(before.enabled_modules, ["delivery", "billing"]);

    let ai = client
        .enable_module(pb::EnableModuleRequest {
            tenant_id: tenant.id.clone(),
            module: "ai".into(),
        })
        .await
        .expect("enable")
        .into_inner();
    assert!(ai.enabled);
    let again = client
        .enable_module(pb::EnableModuleRequest {
            tenant_id: tenant.id.clone(),
            module: "ai".into(),
        })
        .await
        .expect("enabling twice is fine");
    assert!(again.into_inner().enabled);
    client
        .disable_module(pb::DisableModuleRequest {
            tenant_id: tenant.id.clone(),
            module: "billing".into(),
        })
        .await
        .expect("disable");

    let after = client
        .get_entitlements(entitlements(&tenant.id))
        .await
        .expect("entitlements")
        .into_inner();
    assert_eq!(after.enabled_modules, ["delivery", "ai"]);
    assert!(after.version > before.version);
    app.stop().await;
}

#[tokio::test]
async fn unknown_modules_and_missing_rights_are_refused() {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;

    let mut admin = app.modules(&app.tenant_token(owner, &tenant.id, roles::ADMIN));
    assert_status(
        admin
            .enable_module(pb::EnableModuleRequest {
                tenant_id: tenant.id.clone(),
                module: "crypto".into(),
            })
            .await,
        ErrorCode::NotFound,
    );
    let status = assert_status(
        admin
            .enable_module(pb::EnableModuleRequest {
                tenant_id: "x".into(),
                module: "Not Valid".into(),
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["tenant_id", "module"]);
    let mut viewer = app.modules(&app.tenant_token(owner, &tenant.id, roles::VIEWER));
    assert_status(
        viewer
            .enable_module(pb::EnableModuleRequest {
                tenant_id: tenant.id.clone(),
                module: "ai".into(),
            })
            .await,
        ErrorCode::Authz,
    );
    assert_status(
        viewer
            .set_feature_flag(pb::SetFeatureFlagRequest {
                tenant_id: tenant.id.clone(),
                flag: "beta".into(),
                enabled: true,
            })
            .await,
        ErrorCode::Authz,
    );
    app.stop().await;
}

#[tokio::test]
async fn entitlements_combine_state_plan_modules_and_flags_with_defaults() {
    let mut settings = Settings::default();
    settings
        .flag_defaults
        .insert("delivery.bulk_import".into(), false);
    settings.flag_defaults.insert("ai.streaming".into(), true);
    let app = TestApp::spawn_with(settings).await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let mut client = app.modules(&app.tenant_token(owner, &tenant.id, roles::OWNER));

    let flag = client
        .set_feature_flag(pb::SetFeatureFlagRequest {
            tenant_id: tenant.id.clone(),
            flag: "delivery.bulk_import".into(),
            enabled: true,
        })
        .await
        .expect("set flag")
        .into_inner();
    assert!(flag.enabled);
    client
        .set_feature_flag(pb::SetFeatureFlagRequest {
            tenant_id: tenant.id.clone(),
            flag: "beta.search".into(),
            enabled: false,
        })
        .await
        .expect("set another flag");
    let status = assert_status(
        client
            .set_feature_flag(pb::SetFeatureFlagRequest {
                tenant_id: tenant.id.clone(),
                flag: "Bad Flag".into(),
                enabled: true,
            })
            .await,
        ErrorCode::Validation,
    );
    assert_eq!(violated_fields(&status), vec!["flag"]);

    let got = client
        .get_entitlements(entitlements(&tenant.id))
        .await
        .expect("entitlements")
        .into_inner();
    assert_eq!(got.tenant_id, tenant.id);
    assert_eq!(got.state, pb::TenantState::Active as i32);
    assert_eq!(got.plan, "free");
    let expected: HashMap<String, bool> = [
        ("delivery.bulk_import", true),
        ("ai.streaming", true),
        ("beta.search", false),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(got.flags, expected);

    // Suspension shows in the entitlements, with a new version.
    app.tenants(&app.platform_admin_token())
        .suspend_tenant(pb::SuspendTenantRequest {
            tenant_id: tenant.id.clone(),
            reason: String::new(),
        })
        .await
        .expect("suspend");
    let suspended = client
        .get_entitlements(entitlements(&tenant.id))
        .await
        .expect("entitlements")
        .into_inner();
    assert_eq!(suspended.state, pb::TenantState::Suspended as i32);
    assert!(suspended.version > got.version);
    app.stop().await;
}

#[tokio::test]
async fn the_gateway_reads_any_tenants_entitlements_with_a_platform_token_but_tenants_only_their_own()
 {
    let app = TestApp::spawn().await;
    let owner = UserId::new();
    let (a, b) = (
        app.create_active_tenant(owner, "tenant-a").await,
        app.create_active_tenant(owner, "tenant-b").await,
    );

    let gateway = app
        .issuer
        .token(TokenSpec::service("edge-gateway").perm("tenancy.tenant.read"));
    let got = app
        .modules(&gateway)
        .get_entitlements(entitlements(&b.id))
        .await
        .expect("gateway reads");
    assert_eq!(got.into_inner().tenant_id, b.id);
    let a_token = app.tenant_token(owner, &a.id, roles::OWNER);
    assert_status(
        app.modules(&a_token)
            .get_entitlements(entitlements(&b.id))
            .await,
        ErrorCode::Authz,
    );
    let unscoped = app.user_token(owner);
    assert_status(
        app.modules(&unscoped)
            .get_entitlements(entitlements(&a.id))
            .await,
        ErrorCode::Authz,
    );
    app.stop().await;
}
