//! Memory: tenant isolation (by the service and by row-level security), `required_permission`
//! on search and on retrieval into a completion, and search in the platform's four languages.

use keel_kernel::{ErrorCode, TenantId};
use keel_proto::ai::v1 as pb;
use keel_testkit::assert_status;
use sqlx::Connection;

use crate::support::{TestApp, ask, models, remember, search};

#[tokio::test]
async fn english_arabic_chinese_and_korean_queries_find_their_memory() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let memories = [
        (
            "refunds-en",
            "Refunds are issued within 30 days of the purchase.",
        ),
        (
            "refunds-ar",
            "تُصدر المبالغ المستردة خلال ثلاثين يومًا من الشراء.",
        ),
        ("refunds-zh", "退款将在购买后三十天内发放。"),
        ("refunds-ko", "환불은 구매 후 30일 이내에 처리됩니다."),
        (
            "shipping-en",
            "Shipping is free for orders above fifty euros.",
        ),
        ("shipping-zh", "订单满五十欧元免运费。"),
    ];
    for (id, content) in memories {
        remember(&mut client, tenant, id, "", content, "").await;
    }
    for (query, expected) in [
        ("how long do refunds take", "refunds-en"),
        ("المبالغ المستردة", "refunds-ar"),
        ("退款多久", "refunds-zh"),
        ("환불 처리", "refunds-ko"),
        ("免运费", "shipping-zh"),
    ] {
        let found = search(&mut client, tenant, query).await;
        assert_eq!(
            found.first().map(|(id, _)| id.as_str()),
            Some(expected),
            "{query}: {found:?}"
        );
        for (_, score) in &found {
            assert!((-1.0..=1.0).contains(score), "{score}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn put_replaces_a_memory_and_delete_removes_it() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    let first = remember(
        &mut client,
        tenant,
        "policy",
        "kb",
        "Returns take a week.",
        "",
    )
    .await;
    let second = remember(
        &mut client,
        tenant,
        "policy",
        "kb",
        "Returns take two weeks.",
        "",
    )
    .await;
    assert_eq!(first.create_time, second.create_time);
    assert_eq!(second.content, "Returns take two weeks.");
    assert_eq!(search(&mut client, tenant, "returns").await.len(), 1);
    client
        .delete_memory(pb::DeleteMemoryRequest {
            tenant_id: tenant.to_string(),
            memory_id: "policy".into(),
        })
        .await
        .expect("delete");
    assert!(search(&mut client, tenant, "returns").await.is_empty());
    assert_status(
        client
            .delete_memory(pb::DeleteMemoryRequest {
                tenant_id: tenant.to_string(),
                memory_id: "policy".into(),
            })
            .await,
        ErrorCode::NotFound,
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_memories_name_every_field_at_fault() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let status = assert_status(
        app.member(tenant)
            .put_memory(pb::PutMemoryRequest {
                tenant_id: tenant.to_string(),
                memory_id: "Not Valid!".into(),
                memory: Some(pb::Memory {
                    namespace: "Bad Space".into(),
                    content: String::new(),
                    required_permission: "not a permission".into(),
                    ..Default::default()
                }),
            })
            .await,
        ErrorCode::Validation,
    );
    let fields = keel_testkit::violated_fields(&status);
    for field in [
        "memory_id",
        "memory.namespace",
        "memory.content",
        "memory.required_permission",
    ] {
        assert!(fields.contains(&field.to_owned()), "{field} in {fields:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn another_tenants_memories_are_invisible_to_the_service_and_to_row_level_security() {
    let app = TestApp::spawn().await;
    let (acme, globex) = (TenantId::new(), TenantId::new());
    remember(
        &mut app.member(acme),
        acme,
        "plan",
        "",
        "The launch plan is confidential.",
        "",
    )
    .await;
    assert!(
        search(&mut app.member(globex), globex, "launch plan")
            .await
            .is_empty()
    );
    // A token of globex naming acme is refused outright.
    assert_status(
        app.member(globex)
            .search_memories(pb::SearchMemoriesRequest {
                tenant_id: acme.to_string(),
                query: "launch plan".into(),
                ..Default::default()
            })
            .await,
        ErrorCode::Authz,
    );
    // The service's own role, scoped to globex, reads no row of acme's.
    let url = secrecy::ExposeSecret::expose_secret(&app.db_config.url).to_owned();
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect as the service");
    let mut tx = conn.begin().await.expect("tx");
    sqlx::query("SELECT set_config('app.current_tenant', $1, true)")
        .bind(globex.to_string())
        .execute(&mut *tx)
        .await
        .expect("scope");
    let (visible,): (i64,) = sqlx::query_as("SELECT count(*) FROM ai_gateway.memories")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(visible, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_memory_needing_a_permission_is_found_only_by_callers_holding_it() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut writer = app.member(tenant);
    remember(
        &mut writer,
        tenant,
        "salaries",
        "hr",
        "Salary bands are reviewed in March.",
        "hr.salary.read",
    )
    .await;
    remember(
        &mut writer,
        tenant,
        "holidays",
        "hr",
        "Holidays are planned in March.",
        "",
    )
    .await;
    let mut plain = app.member(tenant);
    let found: Vec<String> = search(&mut plain, tenant, "march")
        .await
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(found, vec!["holidays"]);
    let mut hr = app.member_with(tenant, &["hr.salary.read"]);
    let mut found: Vec<String> = search(&mut hr, tenant, "march")
        .await
        .into_iter()
        .map(|m| m.0)
        .collect();
    found.sort();
    assert_eq!(found, vec!["holidays", "salaries"]);
    app.stop().await;
}

#[tokio::test]
async fn a_memory_the_caller_may_not_read_never_reaches_the_prompt() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut writer = app.member(tenant);
    remember(
        &mut writer,
        tenant,
        "bands",
        "hr",
        "Salary bands: engineers earn 90k in March.",
        "hr.salary.read",
    )
    .await;
    remember(
        &mut writer,
        tenant,
        "review",
        "hr",
        "Salary reviews happen every March.",
        "",
    )
    .await;
    let request = pb::CompleteRequest {
        memory_namespace: "hr".into(),
        ..ask(tenant, models::FAKE, "When are salary reviews?")
    };
    app.member(tenant)
        .complete(request.clone())
        .await
        .expect("answer");
    let seen = app.fake.requests()[0].prompt_text();
    assert!(
        seen.contains("Salary reviews happen every March."),
        "{seen}"
    );
    assert!(
        !seen.contains("90k"),
        "a restricted memory reached the provider: {seen}"
    );
    app.member_with(tenant, &["hr.salary.read"])
        .complete(request)
        .await
        .expect("answer");
    let seen = app.fake.requests()[1].prompt_text();
    assert!(
        seen.contains("90k"),
        "the permitted caller's prompt has it: {seen}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_local_provider_answers_from_retrieved_memories() {
    let app = TestApp::spawn().await;
    let tenant = TenantId::new();
    let mut client = app.member(tenant);
    remember(
        &mut client,
        tenant,
        "refunds",
        "support",
        "Refunds are issued within 30 days.",
        "",
    )
    .await;
    let completion = client
        .complete(pb::CompleteRequest {
            memory_namespace: "support".into(),
            ..ask(tenant, models::LOCAL, "How long do refunds take?")
        })
        .await
        .expect("answer")
        .into_inner();
    let text = completion.message.expect("message").content;
    assert!(
        text.contains("Refunds are issued within 30 days."),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_tenant_table_follows_the_row_level_security_convention() {
    let app = TestApp::spawn().await;
    let admin = app.db.admin_pool().await;
    let violations = keel_kernel::db::check_tenant_tables(&admin, "ai_gateway")
        .await
        .expect("check");
    assert!(violations.is_empty(), "{violations:?}");
    let (checked,): (i64,) = sqlx::query_as(
        "SELECT count(DISTINCT c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
          WHERE n.nspname = 'ai_gateway' AND c.relkind = 'r' \
            AND c.relname IN ('quotas', 'reservations', 'usage_records', 'memories')",
    )
    .fetch_one(&admin)
    .await
    .expect("count");
    assert_eq!(checked, 4);
    admin.close().await;
    app.stop().await;
}
