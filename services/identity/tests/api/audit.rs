//! The audit log: every mutation is recorded with actor, tenant, action, target, request id and
//! address; the service's own database role can add entries but never change or remove them.

use crate::support::{TestApp, bearer, unique_email};
use keel_proto::identity::v1 as pb;

fn with_request_id<T>(mut request: tonic::Request<T>, id: &str, ip: &str) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request.metadata_mut().insert(
        keel_kernel::RequestMeta::CLIENT_IP_HEADER,
        ip.parse().unwrap(),
    );
    request
}

#[tokio::test]
async fn every_mutation_of_a_tenant_is_recorded_with_who_what_and_which_request() {
    let app = TestApp::spawn().await;
    let (owner, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let role = app
        .access()
        .create_role(with_request_id(
            bearer(
                pb::CreateRoleRequest {
                    tenant_id: tenant.to_string(),
                    role: Some(pb::Role {
                        name: "auditor".into(),
                        permissions: vec!["identity.audit_event.list".into()],
                        ..Default::default()
                    }),
                },
                &scoped.access_token,
            ),
            "req-role-1",
            "192.0.2.10",
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
                    name: "k".into(),
                    scopes: vec!["delivery.task.read".into()],
                    ..Default::default()
                }),
            },
            &scoped.access_token,
        ))
        .await
        .expect("key")
        .into_inner();
    app.access()
        .delete_api_key(bearer(
            pb::DeleteApiKeyRequest {
                tenant_id: tenant.to_string(),
                key_id: key.id.clone(),
            },
            &scoped.access_token,
        ))
        .await
        .expect("revoke");

    let log = app
        .access()
        .list_audit_events(bearer(
            pb::ListAuditEventsRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &scoped.access_token,
        ))
        .await
        .expect("audit")
        .into_inner();
    let actions: Vec<&str> = log.audit_events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "identity.api_key.delete",
            "identity.api_key.create",
            "identity.role.create"
        ],
        "newest first"
    );
    for event in &log.audit_events {
        assert_eq!(event.tenant_id, tenant.to_string());
        assert_eq!(event.actor_kind, pb::ActorKind::User as i32);
        assert_eq!(event.actor_id, owner.to_string());
        assert!(event.create_time.is_some());
    }
    let role_event = &log.audit_events[2];
    assert_eq!(role_event.target_type, "role");
    assert_eq!(role_event.target_id, role.id);
    assert_eq!(role_event.request_id, "req-role-1");
    assert_eq!(role_event.ip_address, "192.0.2.10");
    assert_eq!(log.audit_events[0].target_id, key.id);
    assert!(
        !log.audit_events[1]
            .metadata
            .values()
            .any(|v| v.contains(&key.secret)),
        "no secrets in the log"
    );

    let filtered = app
        .access()
        .list_audit_events(bearer(
            pb::ListAuditEventsRequest {
                tenant_id: tenant.to_string(),
                action: "identity.role.create".into(),
                page_size: 1,
                ..Default::default()
            },
            &scoped.access_token,
        ))
        .await
        .expect("filtered")
        .into_inner();
    assert_eq!(filtered.audit_events.len(), 1);
    assert!(filtered.next_page_token.is_empty());
}

#[tokio::test]
async fn account_actions_are_recorded_in_the_account_log() {
    let app = TestApp::spawn().await;
    let email = unique_email("acct");
    let (user, pair) = app.user(&email).await;
    app.auth()
        .logout(bearer(pb::LogoutRequest {}, &pair.access_token))
        .await
        .expect("logout");
    let admin = app.admin_pool().await;
    let actions: Vec<(String,)> = sqlx::query_as(
        "SELECT action FROM identity.account_audit_log WHERE user_id = $1 ORDER BY id",
    )
    .bind(user.as_uuid())
    .fetch_all(&admin)
    .await
    .unwrap();
    let actions: Vec<&str> = actions.iter().map(|(a,)| a.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "identity.user.register",
            "identity.session.create",
            "identity.session.revoke"
        ]
    );
}

#[tokio::test]
async fn the_service_role_can_append_to_the_audit_log_but_not_change_or_delete_it() {
    let app = TestApp::spawn().await;
    let (_, tenant, _) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let (user, _) = app.user(&unique_email("someone")).await;
    let pool = app.service_pool().await;

    let mut tx = keel_kernel::db::tenant_tx(&pool, tenant).await.unwrap();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, actor_kind, actor_id, action, target_type, target_id) \
         VALUES ($1, $2, 'system', 'test', 'test.thing.do', 'thing', 'x')",
    )
    .bind(tenant.as_uuid())
    .bind(uuid::Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .expect("the service may append");
    tx.commit().await.unwrap();

    for statement in [
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "UPDATE account_audit_log SET action = 'forged'",
        "DELETE FROM account_audit_log",
        "TRUNCATE account_audit_log",
    ] {
        let mut tx = keel_kernel::db::tenant_tx(&pool, tenant).await.unwrap();
        let result = sqlx::query(statement).execute(&mut *tx).await;
        let err = result.expect_err(statement);
        let db = err.as_database_error().expect("a database error");
        assert_eq!(db.code().as_deref(), Some("42501"), "{statement}: {db}");
        tx.rollback().await.unwrap();
    }

    // Not even a superuser can rewrite it: the trigger refuses.
    let admin = app.admin_pool().await;
    let err =
        sqlx::query("UPDATE identity.account_audit_log SET action = 'forged' WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&admin)
            .await
            .expect_err("append-only for everyone");
    assert!(err.to_string().contains("append-only"), "{err}");
}
