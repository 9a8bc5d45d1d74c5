//! Reading what a service published: every envelope in the `EVENTS` stream, in order, straight
//! from JetStream (not through the platform's own consumer, so a consumer bug cannot hide).

use std::time::Duration;

use async_nats::jetstream;
use keel_kernel::consumer::Event;
use keel_proto::events::v1::EventEnvelope;
use prost::Message;

/// The stream every service publishes to.
const STREAM: &str = "EVENTS";
/// How long a test waits for events before it looks at what arrived.
const WAIT: Duration = Duration::from_secs(10);

/// A reader of one NATS server's `EVENTS` stream.
pub struct EventLog {
    js: jetstream::Context,
}

impl EventLog {
    pub async fn connect(nats_url: &str) -> EventLog {
        let config = crate::stack::nats_config(nats_url);
        let client = keel_kernel::nats::connect("keel-testkit", &config)
            .await
            .expect("connect to NATS");
        EventLog {
            js: jetstream::new(client),
        }
    }

    /// Every event in the stream once at least `at_least` have arrived (or after 10 s), in
    /// order. Each message's subject must be `events.<event_type>`.
    pub async fn read(&self, at_least: u64) -> Vec<EventEnvelope> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut stream = loop {
            match self.js.get_stream(STREAM).await {
                Ok(stream) => break stream,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("no {STREAM} stream: {err}"),
            }
        };
        let count = loop {
            let count = stream.info().await.expect("stream info").state.messages;
            if count >= at_least || tokio::time::Instant::now() >= deadline {
                break count;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut events = Vec::new();
        for sequence in 1..=count {
            let message = stream
                .get_raw_message(sequence)
                .await
                .expect("stream message");
            let envelope = EventEnvelope::decode(message.payload).expect("an event envelope");
            assert_eq!(
                message.subject.as_str(),
                format!("events.{}", envelope.event_type),
                "subject of {}",
                envelope.event_type
            );
            events.push(envelope);
        }
        events
    }

    /// The events of one type, once at least `at_least` of that type have arrived (or after
    /// 10 s, with however many there are).
    pub async fn of_type(&self, event_type: &str, at_least: usize) -> Vec<EventEnvelope> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let matching: Vec<EventEnvelope> = self
                .read(0)
                .await
                .into_iter()
                .filter(|event| event.event_type == event_type)
                .collect();
            if matching.len() >= at_least || tokio::time::Instant::now() >= deadline {
                return matching;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publish an event as another context's outbox relay would (`source` is that context), so a
    /// consumer under test receives exactly what production sends. Returns the envelope, whose
    /// `event_id` is also the JetStream message id; publish it again with
    /// [`EventLog::publish_envelope`] to test a redelivery.
    pub async fn publish<M: prost::Name>(
        &self,
        source: &str,
        event_type: &str,
        tenant: &str,
        version: i64,
        payload: &M,
    ) -> EventEnvelope {
        let event_id = uuid::Uuid::now_v7().to_string();
        let now = chrono::Utc::now();
        let envelope = EventEnvelope {
            event_id: event_id.clone(),
            event_type: event_type.into(),
            tenant_id: tenant.into(),
            aggregate_type: event_type.split('.').nth(1).unwrap_or_default().into(),
            aggregate_id: tenant.into(),
            aggregate_version: version,
            occurred_at: Some(prost_types::Timestamp {
                seconds: now.timestamp(),
                nanos: now.timestamp_subsec_nanos() as i32,
            }),
            actor: Some(keel_proto::events::v1::Actor {
                kind: keel_proto::events::v1::actor::Kind::System as i32,
                id: source.into(),
            }),
            correlation_id: event_id.clone(),
            causation_id: String::new(),
            trace_context: Default::default(),
            payload: Some(prost_types::Any::from_msg(payload).expect("payload encodes")),
            source: source.into(),
        };
        self.publish_envelope(&envelope).await;
        envelope
    }

    /// Publish `envelope` on `events.<event_type>`. A second publish of one envelope within the
    /// stream's duplicate window is dropped by JetStream (message id = event id), as a relay's
    /// retry would be; a consumer's own dedupe is tested by redelivery, not by this.
    pub async fn publish_envelope(&self, envelope: &EventEnvelope) {
        let message = jetstream::message::PublishMessage::build()
            .payload(envelope.encode_to_vec().into())
            .message_id(envelope.event_id.clone());
        self.js
            .send_publish(format!("events.{}", envelope.event_type), message)
            .await
            .expect("publish")
            .await
            .expect("publish acknowledged");
    }

    /// How many messages the stream holds now (0 if it does not exist yet).
    pub async fn count(&self) -> u64 {
        match self.js.get_stream(STREAM).await {
            Ok(mut stream) => stream.info().await.expect("stream info").state.messages,
            Err(_) => 0,
        }
    }
}

/// The payload of an event, decoded as `M` (panics naming the type when it is something else).
pub fn payload<M: prost::Name + Default>(envelope: &EventEnvelope) -> M {
    let event = Event {
        subject: format!("events.{}", envelope.event_type),
        envelope: envelope.clone(),
    };
    event
        .payload::<M>()
        .unwrap_or_else(|err| panic!("payload of {}: {err}", envelope.event_type))
}
