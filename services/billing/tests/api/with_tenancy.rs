//! Billing and tenancy together, on one Postgres and one JetStream: a tenant created in tenancy
//! is subscribed to the default plan by billing, and its members are counted as seats.

use keel_kernel::UserId;
use keel_kernel::auth::roles;
use keel_proto::billing::v1 as pb;
use keel_proto::tenancy::v1 as tenancy;
use keel_proto::tenancy::v1::tenant_service_client::TenantServiceClient;
use keel_testkit::eventually;
use keel_testkit::stack;
use keel_testkit::tokens::TokenSpec;
use tonic::transport::Channel;

use crate::support::TestApp;

#[tokio::test]
async fn a_tenant_created_in_tenancy_gets_the_default_subscription_and_its_owner_a_seat() {
    let app = TestApp::spawn().await;
    // Tenancy's events carry the real time; billing's clock follows it here.
    app.clock.set(chrono::Utc::now());
    let db_config = app.db.provision("tenancy").await;
    let mut config = stack::config_with(
        "tenancy",
        db_config,
        stack::nats_config(&app.nats.url()),
        keel_tenancy::Settings {
            auto_approve: true,
            ..keel_tenancy::Settings::default()
        },
    );
    config.auth = app.issuer.auth_config();
    let running = keel_tenancy::build(config).await.expect("tenancy starts");
    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let owner = UserId::new();
    let token = app.issuer.token(TokenSpec::user(owner));
    let mut request = tonic::Request::new(tenancy::CreateTenantRequest {
        tenant: Some(tenancy::Tenant {
            name: "Acme".into(),
            slug: "acme".into(),
            ..Default::default()
        }),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let tenant = TenantServiceClient::new(channel)
        .create_tenant(request)
        .await
        .expect("create tenant")
        .into_inner();
    let tenant_id = tenant.id.parse().unwrap();

    let subscription =
        eventually(|| async { app.subscriptions(tenant_id).await.into_iter().next() }).await;
    assert_eq!(subscription.plan_id, "free");
    assert_eq!(subscription.state, pb::SubscriptionState::Active as i32);
    let seats = eventually(|| async {
        let entitlements = app
            .billing(&app.token(tenant_id, roles::OWNER))
            .get_billing_entitlements(pb::GetBillingEntitlementsRequest {
                tenant_id: tenant.id.clone(),
            })
            .await
            .ok()?
            .into_inner();
        let seats = entitlements
            .entitlements
            .into_iter()
            .find(|e| e.feature == "seats")?;
        (seats.used == 1).then_some(seats)
    })
    .await;
    assert_eq!(seats.limit, 3);
    running.stop().await.expect("tenancy stops");
}
