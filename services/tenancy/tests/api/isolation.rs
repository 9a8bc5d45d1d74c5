//! Tenant isolation: with 100 tenants holding data, nothing done with one tenant's token reads or
//! changes another tenant's rows, in the service and in the database underneath it.

use std::collections::BTreeMap;

use futures::future::join_all;
use keel_kernel::ErrorCode;
use keel_kernel::auth::roles;
use keel_kernel::{TenantId, UserId, db};
use keel_proto::tenancy::v1 as pb;
use keel_testkit::assert_status;

use crate::support::TestApp;

const TENANTS: usize = 100;
const TENANT_TABLES: [&str; 4] = [
    "memberships",
    "invitations",
    "tenant_modules",
    "feature_flags",
];

/// One tenant and its people.
struct Seeded {
    id: String,
    owner: UserId,
    member: UserId,
}

/// A tenant with an owner, a member who joined by invitation, a pending invitation, a module
/// change and a flag of its own.
async fn seed(app: &TestApp, n: usize) -> Seeded {
    let owner = UserId::new();
    let tenant = app
        .create_active_tenant(owner, &format!("tenant-{n:03}"))
        .await;
    let member = app.add_member(&tenant.id, owner, roles::MEMBER).await;
    let token = app.tenant_token(owner, &tenant.id, roles::OWNER);
    app.members(&token)
        .create_invitation(pb::CreateInvitationRequest {
            tenant_id: tenant.id.clone(),
            email: format!("pending-{n}@example.com"),
            role: roles::VIEWER.into(),
        })
        .await
        .expect("invite");
    let mut modules = app.modules(&token);
    if n.is_multiple_of(2) {
        modules
            .enable_module(pb::EnableModuleRequest {
                tenant_id: tenant.id.clone(),
                module: "ai".into(),
            })
            .await
            .expect("enable");
    }
    modules
        .set_feature_flag(pb::SetFeatureFlagRequest {
            tenant_id: tenant.id.clone(),
            flag: format!("only.t{n}"),
            enabled: true,
        })
        .await
        .expect("flag");
    Seeded {
        id: tenant.id,
        owner,
        member,
    }
}

/// Every row of every tenant table and the tenant registry, as text, by tenant (superuser view).
async fn snapshot(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let admin = app.db.admin_pool().await;
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut queries: Vec<String> = TENANT_TABLES
        .iter()
        .map(|t| format!("SELECT tenant_id::text, row_to_json(x)::text FROM tenancy.{t} x"))
        .collect();
    queries.push("SELECT id::text, row_to_json(x)::text FROM tenancy.tenants x".into());
    for query in queries {
        let found: Vec<(String, String)> = sqlx::query_as(&query)
            .fetch_all(&admin)
            .await
            .expect("snapshot");
        for (tenant, row) in found {
            rows.entry(tenant).or_default().push(row);
        }
    }
    rows.values_mut().for_each(|v| v.sort());
    admin.close().await;
    rows
}

/// Every tenant-scoped RPC, aimed at `victim` with the attacker's owner token (which grants `*`
/// in the attacker's tenant), is refused as PERMISSION_DENIED; aimed at the victim's people through
/// the attacker's own tenant, it finds nothing.
async fn attack(app: &TestApp, attacker: &Seeded, victim: &Seeded) {
    let token = app.tenant_token(attacker.owner, &attacker.id, roles::OWNER);
    let (mut tenants, mut members, mut modules) = (
        app.tenants(&token),
        app.members(&token),
        app.modules(&token),
    );
    let v = || victim.id.clone();
    let denied = ErrorCode::Authz;

    assert_status(
        tenants
            .get_tenant(pb::GetTenantRequest { tenant_id: v() })
            .await,
        denied,
    );
    assert_status(
        tenants
            .delete_tenant(pb::DeleteTenantRequest { tenant_id: v() })
            .await,
        denied,
    );
    assert_status(
        tenants
            .suspend_tenant(pb::SuspendTenantRequest {
                tenant_id: v(),
                reason: String::new(),
            })
            .await,
        denied,
    );
    assert_status(
        members
            .list_members(pb::ListMembersRequest {
                tenant_id: v(),
                ..Default::default()
            })
            .await,
        denied,
    );
    assert_status(
        members
            .get_member(pb::GetMemberRequest {
                tenant_id: v(),
                user_id: victim.owner.to_string(),
            })
            .await,
        denied,
    );
    let demote = |tenant: String, user: UserId| pb::UpdateMemberRequest {
        tenant_id: tenant,
        user_id: user.to_string(),
        member: Some(pb::Membership {
            role: roles::VIEWER.into(),
            ..Default::default()
        }),
        update_mask: None,
    };
    assert_status(
        members.update_member(demote(v(), victim.member)).await,
        denied,
    );
    assert_status(
        members
            .remove_member(pb::RemoveMemberRequest {
                tenant_id: v(),
                user_id: victim.member.to_string(),
            })
            .await,
        denied,
    );
    assert_status(
        members
            .create_invitation(pb::CreateInvitationRequest {
                tenant_id: v(),
                email: "evil@example.com".into(),
                role: "owner".into(),
            })
            .await,
        denied,
    );
    assert_status(
        modules
            .enable_module(pb::EnableModuleRequest {
                tenant_id: v(),
                module: "marketplace".into(),
            })
            .await,
        denied,
    );
    assert_status(
        modules
            .disable_module(pb::DisableModuleRequest {
                tenant_id: v(),
                module: "delivery".into(),
            })
            .await,
        denied,
    );
    assert_status(
        modules
            .set_feature_flag(pb::SetFeatureFlagRequest {
                tenant_id: v(),
                flag: "evil".into(),
                enabled: true,
            })
            .await,
        denied,
    );
    assert_status(
        modules
            .get_entitlements(pb::GetEntitlementsRequest { tenant_id: v() })
            .await,
        denied,
    );

    // The victim's people, addressed through the attacker's own tenant: not there.
    let own = || attacker.id.clone();
    assert_status(
        members
            .get_member(pb::GetMemberRequest {
                tenant_id: own(),
                user_id: victim.owner.to_string(),
            })
            .await,
        ErrorCode::NotFound,
    );
    assert_status(
        members.update_member(demote(own(), victim.member)).await,
        ErrorCode::NotFound,
    );
    assert_status(
        members
            .remove_member(pb::RemoveMemberRequest {
                tenant_id: own(),
                user_id: victim.member.to_string(),
            })
            .await,
        ErrorCode::NotFound,
    );
}

/// Every list and query a tenant's token can make returns that tenant's data only.
async fn reads_stay_home(app: &TestApp, tenant: &Seeded, n: usize) {
    let token = app.tenant_token(tenant.owner, &tenant.id, roles::OWNER);
    let members = app
        .members(&token)
        .list_members(pb::ListMembersRequest {
            tenant_id: tenant.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list members")
        .into_inner()
        .members;
    let ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    assert_eq!(ids, [tenant.owner.to_string(), tenant.member.to_string()]);
    assert!(members.iter().all(|m| m.tenant_id == tenant.id));

    let entitlements = app
        .modules(&token)
        .get_entitlements(pb::GetEntitlementsRequest {
            tenant_id: tenant.id.clone(),
        })
        .await
        .expect("entitlements")
        .into_inner();
    assert_eq!(
        entitlements.flags.keys().collect::<Vec<_>>(),
        [&format!("only.t{n}")]
    );
    assert_eq!(
        entitlements.enabled_modules.contains(&"ai".to_owned()),
        n.is_multiple_of(2)
    );

    for user in [tenant.owner, tenant.member] {
        let theirs = app
            .tenants(&app.user_token(user))
            .list_tenants(pb::ListTenantsRequest::default())
            .await
            .expect("list tenants")
            .into_inner()
            .tenants;
        let ids: Vec<String> = theirs.into_iter().map(|t| t.id).collect();
        assert_eq!(ids, std::slice::from_ref(&tenant.id));
    }
}

#[tokio::test]
async fn no_call_made_with_one_tenants_token_reads_or_changes_another_tenants_rows() {
    let app = TestApp::spawn().await;
    let mut seeded = Vec::new();
    for chunk in (0..TENANTS).collect::<Vec<_>>().chunks(10) {
        seeded.extend(join_all(chunk.iter().map(|&n| seed(&app, n))).await);
    }
    let before = snapshot(&app).await;
    assert_eq!(before.len(), TENANTS);
    let events_before = app.events().await.count().await;

    // Tenant 0 attacks all 99 others; then each tenant attacks the next one.
    join_all(
        seeded[1..]
            .iter()
            .map(|victim| attack(&app, &seeded[0], victim)),
    )
    .await;
    join_all((1..TENANTS).map(|n| attack(&app, &seeded[n], &seeded[(n + 1) % TENANTS]))).await;
    join_all(
        seeded
            .iter()
            .enumerate()
            .map(|(n, tenant)| reads_stay_home(&app, tenant, n)),
    )
    .await;

    assert_eq!(snapshot(&app).await, before, "no tenant's rows changed");
    assert_eq!(
        app.events().await.count().await,
        events_before,
        "refused calls published nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_database_itself_shows_a_tenant_only_its_own_rows() {
    let app = TestApp::spawn().await;
    let mut seeded = Vec::new();
    for n in 0..5 {
        seeded.push(seed(&app, n).await);
    }
    // The service's own role: no BYPASSRLS, so the policies bind it.
    let pool = db::connect(
        "tenancy-test",
        &app.db_config,
        std::time::Duration::from_secs(5),
    )
    .await
    .expect("service pool");

    for tenant in &seeded {
        let id: TenantId = tenant.id.parse().expect("tenant id");
        for table in TENANT_TABLES {
            let mut tx = db::tenant_tx(&pool, id).await.expect("tenant tx");
            // Deliberately no WHERE clause: the policy is what filters.
            let seen: Vec<(TenantId,)> = sqlx::query_as(&format!("SELECT tenant_id FROM {table}"))
                .fetch_all(&mut *tx)
                .await
                .expect("select");
            assert!(!seen.is_empty(), "{table}");
            assert!(
                seen.iter().all(|(t,)| *t == id),
                "{table} leaked rows of other tenants"
            );
        }
        // Writing a row for another tenant is refused by the policy's WITH CHECK.
        let mut tx = db::tenant_tx(&pool, id).await.expect("tenant tx");
        let other: TenantId = seeded[0].id.parse().expect("tenant id");
        if other != id {
            let refused = sqlx::query(
                "INSERT INTO feature_flags (tenant_id, name, enabled) VALUES ($1, 'sneaky', true)",
            )
            .bind(other)
            .execute(&mut *tx)
            .await;
            assert!(refused.is_err(), "a row for another tenant was written");
        }
    }

    // Without a tenant, tenant tables are empty; a user sees only their own memberships.
    let mut tx = db::unscoped_tx(&pool).await.expect("tx");
    for table in TENANT_TABLES {
        let (count,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await
            .expect("count");
        assert_eq!(count, 0, "{table} without a tenant");
    }
    drop(tx);
    let mut tx = db::user_tx(&pool, seeded[1].member).await.expect("user tx");
    let mine: Vec<(TenantId, UserId)> =
        sqlx::query_as("SELECT tenant_id, user_id FROM memberships")
            .fetch_all(&mut *tx)
            .await
            .expect("memberships");
    assert_eq!(
        mine,
        [(seeded[1].id.parse().expect("tenant id"), seeded[1].member)]
    );
    let (invitations,): (i64,) = sqlx::query_as("SELECT count(*) FROM invitations")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(
        invitations, 0,
        "a user transaction opens no other tenant table"
    );
    drop(tx);
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn every_tenant_table_follows_the_row_level_security_convention() {
    let app = TestApp::spawn().await;
    let admin = app.db.admin_pool().await;

    let violations = db::check_tenant_tables(&admin, "tenancy")
        .await
        .expect("check");
    assert!(violations.is_empty(), "{violations:?}");
    // The check saw the tables it is meant to check.
    let (checked,): (i64,) = sqlx::query_as(
        "SELECT count(DISTINCT c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
          WHERE n.nspname = 'tenancy' AND c.relkind = 'r' AND c.relname NOT IN ('outbox', 'jobs', 'idempotency_keys')",
    )
    .fetch_one(&admin)
    .await
    .expect("count");
    assert_eq!(checked, TENANT_TABLES.len() as i64);
    admin.close().await;
    app.stop().await;
}
