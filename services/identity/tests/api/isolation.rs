//! Tenant isolation: with a hundred tenants' roles, keys and audit logs in one database, no
//! tenant-scoped call made with one tenant's token returns or changes another tenant's rows; and
//! every tenant table follows the row-level security convention, so even a query that forgot its
//! `WHERE tenant_id` could not leak.

use crate::support::{TestApp, bearer, code, unique_email};
use keel_kernel::{ErrorCode, TenantId};
use keel_proto::identity::v1 as pb;
use keel_testkit::assert_status;

const TENANTS: usize = 100;

struct Fixture {
    tenant: TenantId,
    token: String,
    role_id: String,
    key_id: String,
    key_secret: String,
}

async fn populate(app: &TestApp, i: usize) -> Fixture {
    let (_, tenant, scoped) = app
        .owner_of_new_tenant(&unique_email(&format!("owner{i}")))
        .await;
    let token = scoped.access_token;
    let role = app
        .access()
        .create_role(bearer(
            pb::CreateRoleRequest {
                tenant_id: tenant.to_string(),
                role: Some(pb::Role {
                    name: format!("role-{i}"),
                    permissions: vec!["delivery.task.read".into()],
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("role")
        .into_inner();
    let key = app
        .access()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                tenant_id: tenant.to_string(),
                api_key: Some(pb::ApiKey {
                    name: format!("key-{i}"),
                    scopes: vec!["delivery.task.read".into()],
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("key")
        .into_inner();
    Fixture {
        tenant,
        token,
        role_id: role.id,
        key_id: key.id,
        key_secret: key.secret,
    }
}

#[tokio::test]
async fn every_tenant_table_has_row_level_security_led_by_tenant_id() {
    let app = TestApp::spawn().await;
    let pool = app.service_pool().await;
    let violations = keel_kernel::db::check_tenant_tables(&pool, "identity")
        .await
        .expect("check");
    assert!(violations.is_empty(), "{violations:?}");
    let admin = app.admin_pool().await;
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'identity' AND c.relrowsecurity AND c.relforcerowsecurity",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(
        tables, 5,
        "role_bindings, roles, api_keys, audit_log and the kernel's idempotency_keys"
    );
}

#[tokio::test]
async fn no_call_with_one_tenants_token_reads_or_changes_another_tenants_rows() {
    let app = TestApp::spawn().await;
    let mut fixtures = Vec::with_capacity(TENANTS);
    for i in 0..TENANTS {
        fixtures.push(populate(&app, i).await);
    }

    for (i, mine) in fixtures.iter().enumerate() {
        let theirs = &fixtures[(i + 1) % TENANTS];
        let own = mine.tenant.to_string();
        let other = theirs.tenant.to_string();
        let token = &mine.token;

        // Reads of my own tenant return only my rows.
        let roles = app
            .access()
            .list_roles(bearer(
                pb::ListRolesRequest {
                    tenant_id: own.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("own roles")
            .into_inner();
        let custom: Vec<&str> = roles
            .roles
            .iter()
            .filter(|r| !r.built_in)
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(custom, vec![mine.role_id.as_str()]);
        let keys = app
            .access()
            .list_api_keys(bearer(
                pb::ListApiKeysRequest {
                    tenant_id: own.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("own keys")
            .into_inner();
        assert_eq!(
            keys.api_keys
                .iter()
                .map(|k| k.id.as_str())
                .collect::<Vec<_>>(),
            vec![mine.key_id.as_str()]
        );
        let audit = app
            .access()
            .list_audit_events(bearer(
                pb::ListAuditEventsRequest {
                    tenant_id: own.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("own audit")
            .into_inner();
        assert_eq!(audit.audit_events.len(), 2);
        assert!(audit.audit_events.iter().all(|e| e.tenant_id == own));

        // Naming another tenant is refused outright, for reads and writes alike.
        let refusals = [
            app.access()
                .list_roles(bearer(
                    pb::ListRolesRequest {
                        tenant_id: other.clone(),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            app.access()
                .create_role(bearer(
                    pb::CreateRoleRequest {
                        tenant_id: other.clone(),
                        role: Some(pb::Role {
                            name: "intruder".into(),
                            permissions: vec!["delivery.task.read".into()],
                            ..Default::default()
                        }),
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            app.access()
                .list_api_keys(bearer(
                    pb::ListApiKeysRequest {
                        tenant_id: other.clone(),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            app.access()
                .create_api_key(bearer(
                    pb::CreateApiKeyRequest {
                        tenant_id: other.clone(),
                        api_key: Some(pb::ApiKey {
                            name: "intruder".into(),
                            scopes: vec!["delivery.task.read".into()],
                            ..Default::default()
                        }),
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            app.access()
                .delete_api_key(bearer(
                    pb::DeleteApiKeyRequest {
                        tenant_id: other.clone(),
                        key_id: theirs.key_id.clone(),
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            app.access()
                .list_audit_events(bearer(
                    pb::ListAuditEventsRequest {
                        tenant_id: other.clone(),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
        ];
        for refusal in refusals {
            let err = refusal.expect_err("another tenant");
            assert_eq!(code(&err), ErrorCode::Authz, "{}", err.message());
        }

        // Another tenant's key id under my own tenant is simply not there.
        // not in my tenant
        assert_status(
            app.access()
                .delete_api_key(bearer(
                    pb::DeleteApiKeyRequest {
                        tenant_id: own.clone(),
                        key_id: theirs.key_id.clone(),
                    },
                    token,
                ))
                .await,
            ErrorCode::NotFound,
        );
    }

    // Nothing of anyone else's was changed: every key still works, every tenant has one role.
    for fixture in &fixtures {
        app.auth()
            .exchange_api_key(pb::ExchangeApiKeyRequest {
                secret: fixture.key_secret.clone(),
            })
            .await
            .expect("untouched key");
    }
    let admin = app.admin_pool().await;
    let (roles, keys, revoked): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM identity.roles), (SELECT count(*) FROM identity.api_keys), \
                (SELECT count(*) FROM identity.api_keys WHERE revoked_at IS NOT NULL)",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!((roles, keys, revoked), (TENANTS as i64, TENANTS as i64, 0));

    // And at the database: a query without any tenant filter sees one tenant's rows, or none.
    let pool = app.service_pool().await;
    for fixture in fixtures.iter().take(10) {
        let mut tx = keel_kernel::db::tenant_tx(&pool, fixture.tenant)
            .await
            .unwrap();
        for table in ["roles", "api_keys", "role_bindings", "audit_log"] {
            let (others,): (i64,) = sqlx::query_as(&format!(
                "SELECT count(*) FROM {table} WHERE tenant_id <> $1"
            ))
            .bind(fixture.tenant.as_uuid())
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            assert_eq!(others, 0, "{table} leaks other tenants' rows");
        }
        tx.rollback().await.unwrap();
    }
    let mut unscoped = keel_kernel::db::unscoped_tx(&pool).await.unwrap();
    let (visible,): (i64,) = sqlx::query_as("SELECT count(*) FROM api_keys")
        .fetch_one(&mut *unscoped)
        .await
        .unwrap();
    assert_eq!(visible, 0, "no tenant, no rows");
}
