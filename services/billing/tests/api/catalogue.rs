//! The catalogue: seeded from config idempotently, read by tenants, extended by platform admins.

use keel_kernel::auth::roles;
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::billing::v1 as pb;
use keel_testkit::{assert_status, violated_fields};

use crate::support::TestApp;

/// Every catalogue row as text, with its system columns, so that any write shows.
async fn catalogue_rows(app: &TestApp) -> Vec<String> {
    let admin = app.admin_pool().await;
    let mut rows = Vec::new();
    for table in ["meters", "plans", "prices"] {
        let mut these: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT xmin::text || ' ' || row_to_json(x)::text FROM billing.{table} x ORDER BY 1"
        ))
        .fetch_all(&admin)
        .await
        .expect("catalogue rows");
        rows.extend(these.drain(..).map(|(row,)| row));
    }
    rows
}

#[tokio::test]
async fn seeding_the_catalogue_again_at_a_restart_changes_nothing() {
    let mut app = TestApp::spawn().await;
    let before = catalogue_rows(&app).await;
    assert!(before.len() >= 3 + 3 + 7, "meters, plans and prices seeded");
    app.stop_service().await;
    app.start().await;
    assert_eq!(catalogue_rows(&app).await, before, "no row rewritten");
}

#[tokio::test]
async fn a_changed_price_in_config_updates_the_seeded_row_and_keeps_its_id() {
    let mut app = TestApp::spawn().await;
    let before = app.flat_price("pro").await;
    app.stop_service().await;
    app.settings.plans[1].prices[0].unit_amount = 3_900;
    app.start().await;
    let plan = app
        .owner(TenantId::new())
        .get_plan(pb::GetPlanRequest {
            plan_id: "pro".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let flat = plan.prices.iter().find(|p| p.meter_id.is_empty()).unwrap();
    assert_eq!((flat.id.clone(), flat.unit_amount), (before, 3_900));
}

#[tokio::test]
async fn plans_are_listed_in_pages_with_their_prices_limits_and_modules() {
    let app = TestApp::spawn().await;
    let viewer = app.billing(&app.token(TenantId::new(), roles::VIEWER));
    let first = viewer
        .clone()
        .list_plans(pb::ListPlansRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.plans.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let rest = viewer
        .clone()
        .list_plans(pb::ListPlansRequest {
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.plans.len(), 1);
    assert!(rest.next_page_token.is_empty());
    let free = &first.plans[0];
    assert_eq!(free.id, "free");
    assert_eq!(free.limits.get("seats"), Some(&3));
    assert_eq!(free.limits.get("ai.tokens.monthly"), Some(&100_000));
    assert_eq!(free.modules, vec!["delivery", "ai"]);
    assert_eq!(free.prices[0].currency, "EUR");
    let pro = &first.plans[1];
    let tokens = pro
        .prices
        .iter()
        .find(|p| p.meter_id == "ai.tokens")
        .unwrap();
    assert_eq!(tokens.included_units, 1_000_000);

    let status = assert_status(
        viewer
            .clone()
            .get_plan(pb::GetPlanRequest {
                plan_id: "gold".into(),
            })
            .await,
        ErrorCode::NotFound,
    );
    assert!(status.message().contains("gold"));
    assert_status(
        viewer
            .clone()
            .list_plans(pb::ListPlansRequest {
                page_size: -1,
                ..Default::default()
            })
            .await,
        ErrorCode::Validation,
    );
}

#[tokio::test]
async fn the_meters_are_listed_with_their_aggregations() {
    let app = TestApp::spawn().await;
    let meters = app
        .owner(TenantId::new())
        .list_meters(pb::ListMetersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .meters;
    let by_id: Vec<(String, i32)> = meters
        .iter()
        .map(|m| (m.id.clone(), m.aggregation))
        .collect();
    assert_eq!(
        by_id,
        vec![
            ("ai.tokens".into(), pb::MeterAggregation::Sum as i32),
            (
                "marketplace.orders".into(),
                pb::MeterAggregation::Count as i32
            ),
            ("seats".into(), pb::MeterAggregation::Max as i32),
        ]
    );
}

fn team_plan(id: &str) -> pb::Plan {
    pb::Plan {
        id: id.into(),
        display_name: "Team".into(),
        prices: vec![
            pb::Price {
                currency: "KWD".into(),
                unit_amount: 12_500,
                interval: pb::BillingInterval::Month as i32,
                ..Default::default()
            },
            pb::Price {
                currency: "KWD".into(),
                unit_amount: 2,
                interval: pb::BillingInterval::Month as i32,
                meter_id: "ai.tokens".into(),
                included_units: 10,
                ..Default::default()
            },
        ],
        limits: [("seats".to_owned(), 10)].into_iter().collect(),
        modules: vec!["ai".into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_platform_admin_creates_a_plan_once_and_a_second_with_its_id_is_a_conflict() {
    let app = TestApp::spawn().await;
    let created = app
        .platform_admin()
        .create_plan(pb::CreatePlanRequest {
            plan: Some(team_plan("team")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.prices.len(), 2);
    assert!(created.prices.iter().all(|p| !p.id.is_empty()));
    assert_eq!(created.prices[0].currency, "KWD");
    let status = assert_status(
        app.platform_admin()
            .create_plan(pb::CreatePlanRequest {
                plan: Some(team_plan("team")),
            })
            .await,
        ErrorCode::Conflict,
    );
    assert!(status.message().contains("team"), "{status:?}");
}

#[tokio::test]
async fn a_tenant_owner_cannot_create_plans() {
    let app = TestApp::spawn().await;
    assert_status(
        app.owner(TenantId::new())
            .create_plan(pb::CreatePlanRequest {
                plan: Some(team_plan("team")),
            })
            .await,
        ErrorCode::Authz,
    );
}

#[tokio::test]
async fn an_invalid_plan_is_refused_naming_every_bad_field() {
    let app = TestApp::spawn().await;
    let mut plan = team_plan("Team!");
    plan.prices[0].currency = "EURO".into();
    plan.prices[1].meter_id = "ai.nothing".into();
    plan.prices[1].interval = 0;
    let status = assert_status(
        app.platform_admin()
            .create_plan(pb::CreatePlanRequest { plan: Some(plan) })
            .await,
        ErrorCode::Validation,
    );
    let fields = violated_fields(&status);
    assert!(fields.contains(&"plan.id".to_owned()), "{fields:?}");
    assert!(
        fields.contains(&"plan.prices[0].currency".to_owned()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"plan.prices[1].interval".to_owned()),
        "{fields:?}"
    );

    let mut no_flat = team_plan("usage-only");
    no_flat.prices.remove(0);
    no_flat.prices[0].meter_id = "ai.unknown".into();
    let status = assert_status(
        app.platform_admin()
            .create_plan(pb::CreatePlanRequest {
                plan: Some(no_flat),
            })
            .await,
        ErrorCode::Validation,
    );
    let fields = violated_fields(&status);
    assert!(fields.contains(&"plan.prices".to_owned()), "{fields:?}");
    assert!(
        fields.contains(&"plan.prices[0].meter_id".to_owned()),
        "{fields:?}"
    );
}

#[test]
fn the_shipped_config_is_valid_and_seeds_the_standard_catalogue() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/billing.yaml");
    let text = std::fs::read_to_string(path).expect("config/billing.yaml");
    let config = keel_kernel::config::Config::<keel_billing::Settings>::from_yaml(
        &text,
        std::path::Path::new(path),
        std::iter::empty(),
    )
    .expect("a valid config");
    let (meters, plans) = keel_billing::Settings::standard_catalogue();
    let ids = |plans: &[keel_billing::settings::PlanSettings]| {
        plans.iter().map(|p| p.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&config.app.plans), ids(&plans));
    assert_eq!(config.app.meters.len(), meters.len());
    assert_eq!(config.app.default_plan, "free");
    assert_eq!(config.app.invoice_number_prefix, "KEEL");
    // The rotation secret list can come from the environment.
    let overridden = keel_kernel::config::Config::<keel_billing::Settings>::from_yaml(
        &text,
        std::path::Path::new(path),
        [(
            "KEEL__APP__WEBHOOK_PROVIDERS__STRIPE__SIGNING_SECRETS".to_owned(),
            "whsec_new,whsec_old".to_owned(),
        )],
    )
    .expect("a valid config");
    assert_eq!(
        overridden.app.webhook_providers["stripe"].secrets(),
        vec!["whsec_new", "whsec_old"]
    );
}
