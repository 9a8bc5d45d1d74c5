//! Billing's entitlements decide a tenant's plan and modules: `billing.entitlements.changed`
//! published on JetStream as billing's relay would, consumed by the running service.

use keel_kernel::UserId;
use keel_kernel::auth::roles;
use keel_proto::billing::v1 as billing;
use keel_proto::tenancy::v1 as pb;
use keel_testkit::{eventually, payload};

use crate::support::TestApp;

fn plan(tenant: &str, plan: &str, modules: &[&str], version: i64) -> billing::EntitlementsChanged {
    billing::EntitlementsChanged {
        tenant_id: tenant.into(),
        plan_id: plan.into(),
        modules: modules.iter().map(|m| (*m).to_owned()).collect(),
        version,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_plan_change_turns_the_plans_modules_on_and_the_others_off_and_a_stale_one_changes_nothing()
 {
    let app = TestApp::spawn_auto_approving().await;
    let owner = UserId::new();
    let tenant = app.create_active_tenant(owner, "acme").await;
    let token = app.tenant_token(owner, &tenant.id, roles::OWNER);
    let log = app.events().await;
    let entitlements = || async {
        app.modules(&token)
            .get_entitlements(pb::GetEntitlementsRequest {
                tenant_id: tenant.id.clone(),
            })
            .await
            .expect("entitlements")
            .into_inner()
    };
    let before = entitlements().await;
    assert!(!before.enabled_modules.contains(&"ai".to_owned()));

    log.publish(
        "billing",
        "billing.entitlements.changed",
        &tenant.id,
        2,
        &plan(&tenant.id, "pro", &["delivery", "billing", "ai"], 2),
    )
    .await;
    eventually(|| async {
        let now = entitlements().await;
        (now.plan == "pro" && now.enabled_modules.contains(&"ai".to_owned())).then_some(())
    })
    .await;
    let after = entitlements().await;
    assert!(after.version > before.version);
    let enabled = log.of_type("tenancy.module.enabled", 1).await;
    let module: pb::ModuleEnabled = payload(&enabled[0]);
    assert_eq!(module.module, "ai");
    assert_eq!(enabled[0].source, "tenancy");

    // An older change arriving late (version 1) must not undo the newer plan.
    log.publish(
        "billing",
        "billing.entitlements.changed",
        &tenant.id,
        1,
        &plan(&tenant.id, "free", &["billing"], 1),
    )
    .await;
    // A newer one after it is applied, which shows the stale one was consumed and ignored.
    log.publish(
        "billing",
        "billing.entitlements.changed",
        &tenant.id,
        3,
        &plan(
            &tenant.id,
            "pro",
            &["delivery", "billing", "ai", "marketplace"],
            3,
        ),
    )
    .await;
    eventually(|| async {
        entitlements()
            .await
            .enabled_modules
            .contains(&"marketplace".to_owned())
            .then_some(())
    })
    .await;
    let last = entitlements().await;
    assert_eq!(last.plan, "pro");
    assert!(last.enabled_modules.contains(&"ai".to_owned()), "{last:?}");
    // The relay publishes in commit order: once marketplace's event is out, a disable caused by
    // the stale change would be out too.
    log.of_type("tenancy.module.enabled", 2).await;
    assert!(log.of_type("tenancy.module.disabled", 0).await.is_empty());
    app.stop().await;
}
