//! Per-service NATS users (config/nats/accounts.conf, the file `make run`'s broker loads): a
//! service publishes its own events and consumes anyone's, and can neither forge another
//! context's events nor change the stream.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use keel_kernel::nats;
use keel_testkit::{TestNats, stack};

/// Long enough for a permitted publish on a quiet broker; a refused one never gets an ack.
const ACK_WAIT: Duration = Duration::from_secs(2);

async fn jetstream_as(broker: &TestNats, user: &str) -> jetstream::Context {
    let config = stack::nats_config(&broker.url_as(user));
    jetstream::new(nats::connect(user, &config).await.unwrap())
}

/// Whether a publish on `subject` is acknowledged by the stream.
async fn publish_acked(js: &jetstream::Context, subject: &str) -> bool {
    let Ok(ack) = js.publish(subject.to_owned(), "{}".into()).await else {
        return false;
    };
    matches!(tokio::time::timeout(ACK_WAIT, ack).await, Ok(Ok(_)))
}

async fn broker_with_stream() -> TestNats {
    let broker = TestNats::start_with_accounts().await;
    let admin = jetstream_as(&broker, "admin").await;
    nats::ensure_stream(&admin, &stack::nats_config(&broker.url()))
        .await
        .unwrap();
    broker
}

#[tokio::test]
async fn a_service_publishes_its_own_events_and_cannot_forge_another_contexts() {
    let broker = broker_with_stream().await;
    let identity = jetstream_as(&broker, "identity").await;
    let tenancy = jetstream_as(&broker, "tenancy").await;

    assert!(publish_acked(&identity, "events.identity.user.registered").await);
    assert!(publish_acked(&tenancy, "events.tenancy.member.added").await);
    assert!(
        !publish_acked(&tenancy, "events.identity.user.registered").await,
        "tenancy must not publish identity's events"
    );
    assert!(
        !publish_acked(&identity, "events.tenancy.member.added").await,
        "identity must not publish tenancy's events (it would make itself owner of any tenant)"
    );
    let admin = jetstream_as(&broker, "admin").await;
    let mut stream = admin.get_stream("EVENTS").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn a_service_consumes_another_contexts_events_with_a_durable_consumer() {
    let broker = broker_with_stream().await;
    let tenancy = jetstream_as(&broker, "tenancy").await;
    assert!(publish_acked(&tenancy, "events.tenancy.member.removed").await);

    let identity = jetstream_as(&broker, "identity").await;
    let stream = identity.get_stream("EVENTS").await.unwrap();
    let consumer = stream
        .get_or_create_consumer(
            "identity-tenancy",
            pull::Config {
                durable_name: Some("identity-tenancy".into()),
                filter_subject: "events.tenancy.>".into(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(message.subject.as_str(), "events.tenancy.member.removed");
    message.double_ack().await.unwrap();
}

#[tokio::test]
async fn a_service_cannot_delete_or_reconfigure_the_stream_but_finds_it_ready() {
    let broker = broker_with_stream().await;
    let identity = jetstream_as(&broker, "identity").await;
    let deleted = tokio::time::timeout(ACK_WAIT, identity.delete_stream("EVENTS")).await;
    assert!(
        !matches!(deleted, Ok(Ok(_))),
        "a service deleted the stream"
    );
    // The stream is as configured, so a service's start-up check is a read, and passes.
    nats::ensure_stream(&identity, &stack::nats_config(&broker.url_as("identity")))
        .await
        .unwrap();
    let admin = jetstream_as(&broker, "admin").await;
    assert!(admin.get_stream("EVENTS").await.is_ok());
}
