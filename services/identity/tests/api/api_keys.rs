//! API keys: created with name, scopes and expiry, the secret shown once and stored hashed,
//! listed without it, exchanged by the gateway for a short-lived scoped token, and refused once
//! revoked or expired.

use crate::support::{TestApp, bearer, claims_of, code, eventually, unique_email};
use keel_kernel::ErrorCode;
use keel_kernel::auth::PrincipalKind;
use keel_proto::identity::v1 as pb;
use keel_testkit::{assert_status, payload};

fn new_key(tenant: &str, name: &str, scopes: &[&str]) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        tenant_id: tenant.into(),
        api_key: Some(pb::ApiKey {
            name: name.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn an_api_key_is_shown_once_listed_without_its_secret_and_exchanged_for_a_scoped_token() {
    let app = TestApp::spawn().await;
    let (owner, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let created = app
        .access()
        .create_api_key(bearer(
            new_key(
                &tenant.to_string(),
                "ci",
                &["delivery.task.read", "delivery.task.create"],
            ),
            &scoped.access_token,
        ))
        .await
        .expect("create")
        .into_inner();
    assert!(created.secret.starts_with("keel_ak_"));
    assert!(created.secret.starts_with(&created.prefix));
    assert_eq!(created.created_by, owner.to_string());
    assert_eq!(created.tenant_id, tenant.to_string());
    assert!(created.last_use_time.is_none());

    let listed = app
        .access()
        .list_api_keys(bearer(
            pb::ListApiKeysRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &scoped.access_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.api_keys.len(), 1);
    assert_eq!(listed.api_keys[0].id, created.id);
    assert!(
        listed.api_keys[0].secret.is_empty(),
        "the secret is never shown again"
    );

    let admin = app.admin_pool().await;
    let (hashed,): (bool,) = sqlx::query_as(
        "SELECT secret_hash = sha256($1::bytea) FROM identity.api_keys WHERE id = $2",
    )
    .bind(created.secret.as_bytes())
    .bind(uuid::Uuid::parse_str(&created.id).unwrap())
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(hashed, "stored as its SHA-256 only");

    let exchanged = app
        .auth()
        .exchange_api_key(pb::ExchangeApiKeyRequest {
            secret: created.secret.clone(),
        })
        .await
        .expect("exchange")
        .into_inner();
    assert_eq!(exchanged.key_id, created.id);
    assert_eq!(exchanged.tenant_id, tenant.to_string());
    assert_eq!(
        exchanged.scopes,
        vec!["delivery.task.read", "delivery.task.create"]
    );
    assert_eq!(exchanged.expires_in, 300);
    let claims = claims_of(&exchanged.access_token);
    assert_eq!(claims.kind, PrincipalKind::ApiKey);
    assert_eq!(claims.sub, format!("apikey:{}", created.id));
    assert_eq!(claims.tid, Some(tenant));
    assert!(claims.has_permission("delivery.task.read"));
    assert!(!claims.has_permission("delivery.task.approve"));
    assert!(!claims.has_permission("identity.api_key.create"));

    let used = app
        .access()
        .list_api_keys(bearer(
            pb::ListApiKeysRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &scoped.access_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(
        used.api_keys[0].last_use_time.is_some(),
        "last_use_time is recorded"
    );

    let event = app
        .published_eventually("identity.api_key.created", |e| e.aggregate_id == created.id)
        .await;
    let payload = payload::<pb::ApiKeyCreated>(&event);
    assert_eq!(payload.prefix, created.prefix);
    assert_eq!(event.tenant_id, tenant.to_string());
}

#[tokio::test]
async fn a_revoked_api_key_is_refused_and_no_longer_listed() {
    let app = TestApp::spawn().await;
    let (_, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let created = app
        .access()
        .create_api_key(bearer(
            new_key(&tenant.to_string(), "temp", &["delivery.task.read"]),
            &scoped.access_token,
        ))
        .await
        .expect("create")
        .into_inner();
    app.auth()
        .exchange_api_key(pb::ExchangeApiKeyRequest {
            secret: created.secret.clone(),
        })
        .await
        .expect("works before revocation");
    app.access()
        .delete_api_key(bearer(
            pb::DeleteApiKeyRequest {
                tenant_id: tenant.to_string(),
                key_id: created.id.clone(),
            },
            &scoped.access_token,
        ))
        .await
        .expect("revoke");
    // revoked
    assert_status(
        app.auth()
            .exchange_api_key(pb::ExchangeApiKeyRequest {
                secret: created.secret.clone(),
            })
            .await,
        ErrorCode::Authn,
    );
    let listed = app
        .access()
        .list_api_keys(bearer(
            pb::ListApiKeysRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &scoped.access_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.api_keys.is_empty());
    // already revoked
    assert_status(
        app.access()
            .delete_api_key(bearer(
                pb::DeleteApiKeyRequest {
                    tenant_id: tenant.to_string(),
                    key_id: created.id.clone(),
                },
                &scoped.access_token,
            ))
            .await,
        ErrorCode::NotFound,
    );
    app.published_eventually("identity.api_key.revoked", |e| e.aggregate_id == created.id)
        .await;
}

#[tokio::test]
async fn unknown_malformed_and_tampered_secrets_get_the_same_refusal() {
    let app = TestApp::spawn().await;
    let (_, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let created = app
        .access()
        .create_api_key(bearer(
            new_key(&tenant.to_string(), "k", &["delivery.task.read"]),
            &scoped.access_token,
        ))
        .await
        .expect("create")
        .into_inner();
    let mut tampered = created.secret.clone();
    tampered.pop();
    tampered.push(if created.secret.ends_with('A') {
        'B'
    } else {
        'A'
    });
    let unknown_id = format!(
        "keel_ak_{}_{}",
        uuid::Uuid::new_v4().simple(),
        "x".repeat(43)
    );
    for secret in [tampered, unknown_id, "garbage".to_owned(), String::new()] {
        let refused = app
            .auth()
            .exchange_api_key(pb::ExchangeApiKeyRequest {
                secret: secret.clone(),
            })
            .await
            .expect_err("refused");
        assert_eq!(code(&refused), ErrorCode::Authn, "{secret}");
        assert_eq!(refused.message(), "invalid API key");
    }
}

#[tokio::test]
async fn an_expired_api_key_is_refused() {
    let app = TestApp::spawn().await;
    let (_, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let mut request = new_key(&tenant.to_string(), "short", &["delivery.task.read"]);
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    request.api_key.as_mut().unwrap().expire_time = Some(prost_types::Timestamp {
        seconds: soon.timestamp(),
        nanos: 0,
    });
    let created = app
        .access()
        .create_api_key(bearer(request, &scoped.access_token))
        .await
        .expect("create")
        .into_inner();
    assert!(created.expire_time.is_some());
    eventually(|| async {
        app.auth()
            .exchange_api_key(pb::ExchangeApiKeyRequest {
                secret: created.secret.clone(),
            })
            .await
            .is_err()
            .then_some(())
    })
    .await;

    let mut past = new_key(&tenant.to_string(), "past", &["delivery.task.read"]);
    past.api_key.as_mut().unwrap().expire_time = Some(prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    });
    // in the past
    assert_status(
        app.access()
            .create_api_key(bearer(past, &scoped.access_token))
            .await,
        ErrorCode::Validation,
    );
}

#[tokio::test]
async fn scopes_must_be_catalogue_permissions_the_creator_holds() {
    let app = TestApp::spawn().await;
    let (owner, tenant, _) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let (admin_user, admin_pair) = app.user(&unique_email("admin")).await;
    app.member_added(tenant, admin_user, "admin").await;
    let admin_scoped = app
        .switch_eventually(&admin_pair.access_token, tenant)
        .await;
    let _ = owner;

    let unknown = app
        .access()
        .create_api_key(bearer(
            new_key(&tenant.to_string(), "k", &["delivery.rocket.launch"]),
            &admin_scoped.access_token,
        ))
        .await
        .expect_err("not in the catalogue");
    let error = keel_kernel::Error::from_status(&unknown);
    assert_eq!(error.code(), ErrorCode::Validation);
    assert_eq!(error.violations()[0].field, "api_key.scopes[0]");

    // an admin cannot grant what only owners hold
    assert_status(
        app.access()
            .create_api_key(bearer(
                new_key(&tenant.to_string(), "k", &["tenancy.tenant.delete"]),
                &admin_scoped.access_token,
            ))
            .await,
        ErrorCode::Authz,
    );

    let empty = app
        .access()
        .create_api_key(bearer(
            new_key(&tenant.to_string(), "", &[]),
            &admin_scoped.access_token,
        ))
        .await
        .expect_err("name and scopes are required");
    assert_eq!(
        keel_kernel::Error::from_status(&empty).violations().len(),
        2
    );
}

#[tokio::test]
async fn a_viewer_cannot_create_api_keys() {
    let app = TestApp::spawn().await;
    let (_, tenant, _) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let (viewer, viewer_pair) = app.user(&unique_email("viewer")).await;
    app.member_added(tenant, viewer, "viewer").await;
    let scoped = app
        .switch_eventually(&viewer_pair.access_token, tenant)
        .await;
    // viewers hold no identity.api_key.create
    let err = assert_status(
        app.access()
            .create_api_key(bearer(
                new_key(&tenant.to_string(), "k", &["delivery.task.read"]),
                &scoped.access_token,
            ))
            .await,
        ErrorCode::Authz,
    );
    assert!(
        err.message().contains("identity.api_key.create"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_suspended_tenants_api_keys_stop_working() {
    let app = TestApp::spawn().await;
    let (_, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let created = app
        .access()
        .create_api_key(bearer(
            new_key(&tenant.to_string(), "k", &["delivery.task.read"]),
            &scoped.access_token,
        ))
        .await
        .expect("create")
        .into_inner();
    app.tenant_suspended(tenant).await;
    eventually(|| async {
        app.auth()
            .exchange_api_key(pb::ExchangeApiKeyRequest {
                secret: created.secret.clone(),
            })
            .await
            .is_err()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn concurrent_retries_with_one_idempotency_key_create_one_key_and_never_replay_its_secret() {
    let app = TestApp::spawn().await;
    let (_, tenant, scoped) = app.owner_of_new_tenant(&unique_email("owner")).await;
    let attempts = (0..8).map(|_| {
        let mut access = app.access();
        let mut request = bearer(
            new_key(&tenant.to_string(), "deploys", &["delivery.task.read"]),
            &scoped.access_token,
        );
        request
            .metadata_mut()
            .insert("idempotency-key", "ci-key-1".parse().expect("ascii"));
        tokio::spawn(async move { access.create_api_key(request).await })
    });
    let answers: Vec<pb::ApiKey> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.expect("joined").expect("answered").into_inner())
        .collect();
    assert!(answers.iter().all(|key| key.id == answers[0].id), "one key");
    let with_secret = answers.iter().filter(|key| !key.secret.is_empty()).count();
    assert_eq!(
        with_secret, 1,
        "only the call that made the key shows its secret"
    );

    let listed = app
        .access()
        .list_api_keys(bearer(
            pb::ListApiKeysRequest {
                tenant_id: tenant.to_string(),
                ..Default::default()
            },
            &scoped.access_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.api_keys.len(), 1);
    let secret = answers
        .iter()
        .find(|key| !key.secret.is_empty())
        .map(|key| key.secret.clone())
        .unwrap_or_default();
    let admin = app.admin_pool().await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.idempotency_keys WHERE position($1::bytea in response) > 0",
    )
    .bind(secret.as_bytes())
    .fetch_one(&admin)
    .await
    .expect("count");
    assert_eq!(stored, 0, "no secret is stored with the answer");
}
