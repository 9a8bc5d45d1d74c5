//! Preferences per user and category, tenant defaults, and their effect on routing.

use keel_kernel::ErrorCode;
use keel_proto::notifications::v1 as pb;
use keel_testkit::{assert_status, eventually, violated_fields};

use crate::support::{TestApp, unique_email};

fn work(email: bool, in_app: bool) -> pb::Preference {
    pb::Preference {
        category: pb::Category::Work as i32,
        email,
        in_app,
        email_cadence: pb::EmailCadence::Immediate as i32,
    }
}

#[tokio::test]
async fn security_messages_cannot_be_turned_off() {
    let app = TestApp::spawn().await;
    let owner = app.register(&unique_email("owner"), "Owner").await;
    let (tenant, token) = app.create_tenant(&owner, "Acme").await;
    let refused = app
        .client(&token)
        .update_preference(pb::UpdatePreferenceRequest {
            tenant_id: tenant.to_string(),
            preference: Some(pb::Preference {
                category: pb::Category::Security as i32,
                email: false,
                in_app: true,
                email_cadence: pb::EmailCadence::DailyDigest as i32,
            }),
        })
        .await
        .expect_err("refused");
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(fields, vec!["preference.email", "preference.email_cadence"]);
    let refused = app
        .client(&token)
        .update_tenant_default(pb::UpdateTenantDefaultRequest {
            tenant_id: tenant.to_string(),
            preference: Some(pb::Preference {
                category: pb::Category::Security as i32,
                email: true,
                in_app: false,
                email_cadence: 0,
            }),
        })
        .await;
    assert_status(refused, ErrorCode::Validation);
}

#[tokio::test]
async fn a_users_choice_beats_the_tenant_default_which_beats_the_platforms() {
    let app = TestApp::spawn().await;
    let owner = app.register(&unique_email("owner"), "Owner").await;
    let (tenant, token) = app.create_tenant(&owner, "Acme").await;
    let client = app.client(&token);
    let all = client
        .clone()
        .get_preferences(pb::GetPreferencesRequest {
            tenant_id: tenant.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.preferences.len(), 5);
    assert!(all.preferences.iter().all(|p| p.email && p.in_app));

    let defaults = client
        .clone()
        .update_tenant_default(pb::UpdateTenantDefaultRequest {
            tenant_id: tenant.to_string(),
            preference: Some(work(false, true)),
        })
        .await
        .unwrap()
        .into_inner();
    let work_default = defaults
        .preferences
        .iter()
        .find(|p| p.category == pb::Category::Work as i32)
        .unwrap();
    assert!(!work_default.email);
    let mine = client
        .clone()
        .update_preference(pb::UpdatePreferenceRequest {
            tenant_id: tenant.to_string(),
            preference: Some(work(true, false)),
        })
        .await
        .unwrap()
        .into_inner();
    let my_work = mine
        .preferences
        .iter()
        .find(|p| p.category == pb::Category::Work as i32)
        .unwrap();
    assert!(my_work.email && !my_work.in_app);
    let billing = mine
        .preferences
        .iter()
        .find(|p| p.category == pb::Category::Billing as i32)
        .unwrap();
    assert!(billing.email && billing.in_app);
}

#[tokio::test]
async fn a_category_turned_off_in_app_still_mails_but_keeps_the_inbox_quiet() {
    let app = TestApp::spawn().await;
    let owner = app.register(&unique_email("owner"), "Owner").await;
    let other = app.register(&unique_email("other"), "Other").await;
    let (tenant, token) = app.create_tenant(&owner, "Acme").await;
    app.inbox(&token, tenant, 1).await;
    app.client(&token)
        .update_preference(pb::UpdatePreferenceRequest {
            tenant_id: tenant.to_string(),
            preference: Some(work(true, false)),
        })
        .await
        .unwrap();
    app.task_assigned(tenant, "Quiet task", other.id, owner.id)
        .await;
    eventually(|| async {
        app.mails_to(&owner.email)
            .iter()
            .any(|m| m.subject.as_deref() == Some("Task assigned to you: Quiet task"))
            .then_some(())
    })
    .await;
    let inbox = app.inbox(&token, tenant, 1).await;
    assert_eq!(
        inbox.notifications.len(),
        1,
        "only the news of the approval"
    );
}

#[tokio::test]
async fn a_member_cannot_change_the_tenants_defaults() {
    let app = TestApp::spawn().await;
    let owner = app.verified(&unique_email("owner"), "Owner").await;
    let (tenant, owner_token) = app.create_tenant(&owner, "Acme").await;
    let member = app.verified(&unique_email("member"), "Member").await;
    app.invite(&owner_token, tenant, &member.email, "member")
        .await;
    let mail = app
        .smtp
        .wait_for(|m| {
            m.envelope_to
                .iter()
                .any(|to| to.eq_ignore_ascii_case(&member.email))
                && m.subject.as_deref().is_some_and(|s| s.contains("invited"))
        })
        .await;
    let invitation = crate::support::link_token(&mail, "/invitations/accept?token=");
    app.accept(&member.access_token, &invitation).await;
    let token = app.tenant_token(&member, tenant).await;
    let refused = app
        .client(&token)
        .update_tenant_default(pb::UpdateTenantDefaultRequest {
            tenant_id: tenant.to_string(),
            preference: Some(work(false, false)),
        })
        .await;
    assert_status(refused, ErrorCode::Authz);
    // Their own choice is theirs to make.
    app.client(&token)
        .update_preference(pb::UpdatePreferenceRequest {
            tenant_id: tenant.to_string(),
            preference: Some(work(false, false)),
        })
        .await
        .expect("a member sets their own preference");
}

#[tokio::test]
async fn a_daily_digest_batches_a_categorys_mails_into_one_at_the_digest_hour() {
    let start = chrono::Utc::now();
    let clock = keel_kernel::clock::TestClock::new(start);
    let app = TestApp::spawn_on(clock.shared()).await;
    let owner = app.register(&unique_email("owner"), "Owner").await;
    let other = app.register(&unique_email("other"), "Other").await;
    let (tenant, token) = app.create_tenant(&owner, "Acme").await;
    app.inbox(&token, tenant, 1).await;
    app.client(&token)
        .update_preference(pb::UpdatePreferenceRequest {
            tenant_id: tenant.to_string(),
            preference: Some(pb::Preference {
                category: pb::Category::Work as i32,
                email: true,
                in_app: true,
                email_cadence: pb::EmailCadence::DailyDigest as i32,
            }),
        })
        .await
        .unwrap();
    app.task_assigned(tenant, "Alpha", other.id, owner.id).await;
    app.task_assigned(tenant, "Beta", other.id, owner.id).await;
    // Both are in the inbox at once; no mail of either went out on its own.
    app.inbox(&token, tenant, 3).await;
    app.run_jobs().await;
    assert!(
        app.mails_to(&owner.email).iter().all(|m| !m
            .subject
            .as_deref()
            .unwrap_or("")
            .starts_with("Task assigned")),
        "no immediate mail"
    );
    // At the digest hour, one mail lists both.
    let digest_at = keel_notifications::ops::route::next_digest_time(start, 8);
    clock.set(digest_at + chrono::Duration::minutes(1));
    app.run_jobs().await;
    let digest = app
        .smtp
        .wait_for(|m| m.subject.as_deref() == Some("Your daily summary: 2 notifications"))
        .await;
    let text = digest.text.as_deref().unwrap();
    assert!(
        text.contains("Task assigned to you: Alpha") && text.contains("Task assigned to you: Beta"),
        "{text}"
    );
    // Nothing is left for a second digest.
    clock.set(digest_at + chrono::Duration::days(1) + chrono::Duration::minutes(1));
    app.run_jobs().await;
    let digests = app
        .mails_to(&owner.email)
        .into_iter()
        .filter(|m| {
            m.subject
                .as_deref()
                .unwrap_or("")
                .starts_with("Your daily summary")
        })
        .count();
    assert_eq!(digests, 1);
}
