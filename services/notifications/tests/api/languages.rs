//! Languages: the user's own, else the tenant's default, else the request's `Accept-Language`,
//! else English; Arabic HTML is right to left.

use keel_proto::identity::v1 as identity;
use keel_proto::tenancy::v1 as tenancy;
use keel_proto::tenancy::v1::tenant_service_client::TenantServiceClient;
use keel_testkit::eventually;

use crate::support::{PASSWORD, TestApp, link_token, unique_email};

#[tokio::test]
async fn the_verification_mail_is_in_the_language_the_user_registered_in() {
    let app = TestApp::spawn().await;
    let email = unique_email("layla");
    let mut request = tonic::Request::new(identity::RegisterRequest {
        email: email.clone(),
        password: PASSWORD.into(),
        display_name: "Layla".into(),
    });
    request.metadata_mut().insert(
        "accept-language",
        "ar-EG,ar;q=0.9,en;q=0.5".parse().unwrap(),
    );
    app.auth().register(request).await.expect("register");
    let mail = app.mail_to(&email).await;
    assert_eq!(mail.subject.as_deref(), Some("أكِّد عنوان بريدك الإلكتروني"));
    let html = mail.html.as_deref().unwrap();
    assert!(
        html.contains("dir=\"rtl\"") && html.contains("lang=\"ar\""),
        "{html}"
    );
    assert_eq!(mail.header("Content-Language").as_deref(), Some("ar"));
    // Arabic's plural form for 24 (CLDR "many"); the number is isolated (FSI ... PDI) so that it
    // keeps its place in the right-to-left sentence.
    let text = mail.text.as_deref().unwrap();
    assert!(text.contains("\u{2068}24\u{2069} ساعة"), "{text}");
    let token = link_token(&mail, "/verify-email?token=");
    let user = app
        .auth()
        .verify_email(identity::VerifyEmailRequest { token })
        .await
        .expect("the Arabic mail's link verifies too")
        .into_inner();
    assert!(user.email_verified);
}

#[tokio::test]
async fn the_tenants_default_language_applies_until_a_user_chooses_their_own() {
    let app = TestApp::spawn().await;
    let owner = app.register(&unique_email("owner"), "Owner").await;
    let other = app.register(&unique_email("other"), "Other").await;
    let (tenant, token) = app.create_tenant(&owner, "Acme").await;
    let mut update = tonic::Request::new(tenancy::UpdateTenantRequest {
        tenant_id: tenant.to_string(),
        tenant: Some(tenancy::Tenant {
            default_locale: "zh".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["default_locale".into()],
        }),
    });
    update
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    TenantServiceClient::new(app.tenancy_channel())
        .update_tenant(update)
        .await
        .expect("update the tenant");
    let pool = app.service_pool().await;
    eventually(|| async {
        let mut tx = keel_kernel::db::tenant_tx(&pool, tenant).await.ok()?;
        let (locale,): (String,) = sqlx::query_as("SELECT default_locale FROM tenants")
            .fetch_one(&mut *tx)
            .await
            .ok()?;
        (locale == "zh").then_some(())
    })
    .await;
    app.task_assigned(tenant, "Fence", other.id, owner.id).await;
    let mail = app
        .smtp
        .wait_for(|m| m.subject.as_deref() == Some("分配给您的任务：Fence"))
        .await;
    assert!(mail.html.as_deref().unwrap().contains("lang=\"zh\""));
    let inbox = app.inbox(&token, tenant, 2).await;
    assert_eq!(inbox.notifications[0].title, "分配给您的任务：Fence");

    // The owner chooses Korean: their own choice wins over the tenant's.
    let mut me = tonic::Request::new(identity::UpdateMeRequest {
        user: Some(identity::User {
            locale: "ko".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["locale".into()],
        }),
    });
    me.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", owner.access_token).parse().unwrap(),
    );
    keel_proto::identity::v1::user_service_client::UserServiceClient::new(app.identity_channel())
        .update_me(me)
        .await
        .expect("choose Korean");
    app.task_assigned(tenant, "Gate", other.id, owner.id).await;
    app.smtp
        .wait_for(|m| m.subject.as_deref() == Some("할당된 작업: Gate"))
        .await;
}
