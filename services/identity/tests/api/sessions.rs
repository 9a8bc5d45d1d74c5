//! Sessions: refresh rotation with reuse detection, logout, listing and revoking sessions.

use crate::support::{TestApp, bearer, claims_of, code, unique_email};
use keel_kernel::ErrorCode;
use keel_proto::identity::v1 as pb;
use keel_testkit::{assert_status, payload, violated_fields};

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_keeps_the_session() {
    let app = TestApp::spawn().await;
    let (_, first) = app.user(&unique_email("rotate")).await;
    let second = app.refresh(&first.refresh_token).await.expect("refresh");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(
        claims_of(&second.access_token).sid,
        claims_of(&first.access_token).sid
    );
    let third = app
        .refresh(&second.refresh_token)
        .await
        .expect("refresh the new one");
    assert_eq!(
        claims_of(&third.access_token).sid,
        claims_of(&first.access_token).sid
    );
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_session() {
    let app = TestApp::spawn().await;
    let (user, first) = app.user(&unique_email("reuse")).await;
    let second = app.refresh(&first.refresh_token).await.expect("refresh");

    // reuse is refused
    let reuse = assert_status(app.refresh(&first.refresh_token).await, ErrorCode::Authn);
    assert!(reuse.message().contains("revoked"), "{}", reuse.message());
    // The thief's reuse also ends the legitimate holder's newer token: the family is gone.
    // the family is revoked
    assert_status(app.refresh(&second.refresh_token).await, ErrorCode::Authn);

    let revoked = app
        .published_eventually("identity.session.revoked", |e| {
            e.aggregate_id == claims_of(&first.access_token).sid.clone().unwrap()
        })
        .await;
    let payload = payload::<pb::SessionRevoked>(&revoked);
    assert_eq!(payload.user_id, user.to_string());
    assert_eq!(
        payload.reason,
        pb::SessionRevokeReason::RefreshTokenReuse as i32
    );
}

#[tokio::test]
async fn an_unknown_refresh_token_is_refused() {
    let app = TestApp::spawn().await;
    let err = app.refresh("keel_rt_made-up").await.expect_err("unknown");
    assert_eq!(code(&err), ErrorCode::Authn);
}

#[tokio::test]
async fn logout_ends_the_session_and_its_refresh_token() {
    let app = TestApp::spawn().await;
    let email = unique_email("logout");
    app.register(&email).await;
    let pair = app.login(&email).await;
    let other = app.login(&email).await;
    app.auth()
        .logout(bearer(pb::LogoutRequest {}, &pair.access_token))
        .await
        .expect("logout");
    // the session is over
    assert_status(app.refresh(&pair.refresh_token).await, ErrorCode::Authn);
    app.refresh(&other.refresh_token)
        .await
        .expect("other sessions are untouched");
    // logout needs a token
    assert_status(
        app.auth().logout(pb::LogoutRequest {}).await,
        ErrorCode::Authn,
    );
}

#[tokio::test]
async fn users_list_their_live_sessions_newest_first_and_revoke_one() {
    let app = TestApp::spawn().await;
    let email = unique_email("list");
    app.register(&email).await;
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push(app.login(&email).await);
    }
    let current = pairs.last().unwrap().clone();
    let listed = app
        .users()
        .list_sessions(bearer(
            pb::ListSessionsRequest {
                page_size: 2,
                page_token: String::new(),
            },
            &current.access_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.sessions.len(), 2);
    assert!(!listed.next_page_token.is_empty());
    assert!(listed.sessions[0].current, "the newest is the caller's");
    assert_eq!(
        Some(listed.sessions[0].id.clone()),
        claims_of(&current.access_token).sid
    );
    let rest = app
        .users()
        .list_sessions(bearer(
            pb::ListSessionsRequest {
                page_size: 2,
                page_token: listed.next_page_token,
            },
            &current.access_token,
        ))
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(rest.sessions.len(), 1);
    assert!(rest.next_page_token.is_empty());

    let oldest = rest.sessions[0].id.clone();
    app.users()
        .revoke_session(bearer(
            pb::RevokeSessionRequest {
                session_id: oldest.clone(),
            },
            &current.access_token,
        ))
        .await
        .expect("revoke");
    // revoked
    assert_status(app.refresh(&pairs[0].refresh_token).await, ErrorCode::Authn);
    let after = app
        .users()
        .list_sessions(bearer(
            pb::ListSessionsRequest::default(),
            &current.access_token,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(after.sessions.len(), 2);
    assert!(after.sessions.iter().all(|s| s.id != oldest));
}

#[tokio::test]
async fn a_user_cannot_revoke_someone_elses_session() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.user(&unique_email("alice")).await;
    let (_, bob) = app.user(&unique_email("bob")).await;
    let bobs_session = claims_of(&bob.access_token).sid.unwrap();
    // not hers
    assert_status(
        app.users()
            .revoke_session(bearer(
                pb::RevokeSessionRequest {
                    session_id: bobs_session,
                },
                &alice.access_token,
            ))
            .await,
        ErrorCode::NotFound,
    );
    app.refresh(&bob.refresh_token)
        .await
        .expect("bob's session lives on");
}

#[tokio::test]
async fn a_negative_page_size_or_a_foreign_page_token_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let (_, pair) = app.user(&unique_email("pager")).await;
    let refusals = [(-1, "", "page_size"), (0, "bm90LWEtdG9rZW4", "page_token")];
    for (page_size, page_token, field) in refusals {
        let listed = app
            .users()
            .list_sessions(bearer(
                pb::ListSessionsRequest {
                    page_size,
                    page_token: page_token.into(),
                },
                &pair.access_token,
            ))
            .await;
        let refused = assert_status(listed, ErrorCode::Validation);
        assert_eq!(violated_fields(&refused), [field]);
    }
}
