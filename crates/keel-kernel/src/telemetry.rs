//! Logs, traces and W3C trace context.
//!
//! [`init`] installs one global subscriber: JSON lines (or pretty text for local runs) filtered by
//! `telemetry.log_level` (an `EnvFilter` directive), and an OpenTelemetry layer for INFO spans. Each JSON line carries the service name,
//! the fields of every enclosing span flattened (so `request_id`, `tenant_id` and `user_id` recorded
//! on the gRPC request span appear on every line logged while handling it) and the trace id.
//!
//! The OpenTelemetry layer is always installed, even when nothing is exported: it is what gives
//! each span a trace context, so `traceparent` is propagated across gRPC calls and NATS events (and
//! logs of one request can be joined across services by `trace_id`) whether or not a collector is
//! configured. Spans are exported over OTLP/gRPC only when `telemetry.otlp_endpoint` is set.

use std::collections::HashMap;
use std::io::Write;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::{OpenTelemetrySpanExt, OtelData};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("config key `telemetry.log_level`: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("config key `telemetry.otlp_endpoint`: cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Keep it alive for the life of the process: dropping it flushes and stops the span exporter.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // The subscriber may already be gone at exit, so stderr is the only safe place.
            if let Err(err) = provider.shutdown() {
                eprintln!("telemetry: flushing spans failed: {err}");
            }
        }
    }
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("exporting", &self.provider.is_some())
            .finish()
    }
}

/// Install the global subscriber, tracer provider and W3C propagator.
///
/// Call once at start-up, inside the Tokio runtime (the OTLP exporter's channel needs it; use the
/// multi-threaded runtime, since the guard's flush blocks). A second call in the same process, or
/// one after another subscriber was installed (tests), does nothing and returns a no-op guard.
pub fn init(service: &str, config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    // A panic while holding this lock leaves nothing half-done that matters: retrying is fine.
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if *installed {
        return Ok(TelemetryGuard { provider: None });
    }
    // Parsed first so a bad directive stops start-up before anything global is touched.
    let filter = EnvFilter::try_new(&config.log_level)?;

    let provider = tracer_provider(service, config.otlp_endpoint.as_deref())?;
    // Traces have their own, fixed level: turning logs down to `warn` must not cut the trace
    // context that requests and events carry between services.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("keel"))
        .with_filter(LevelFilter::INFO);

    let (json, pretty) = match config.log_format {
        LogFormat::Json => (Some(JsonLogLayer::new(service, std::io::stdout)), None),
        LogFormat::Pretty => (None, Some(tracing_subscriber::fmt::layer().pretty())),
    };
    let already_set = tracing::dispatcher::has_been_set();
    // An error here is either another subscriber owning the process (checked below) or another
    // `log` logger, which only means `log` records bypass us: not worth failing start-up for.
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(json.with_filter(filter.clone()))
        .with(pretty.with_filter(filter))
        .try_init();
    let installed_now = !already_set && tracing::dispatcher::has_been_set();

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    *installed = true;
    if !installed_now {
        // Someone else's subscriber owns the process (a test harness): our spans go nowhere, so
        // there is nothing to flush.
        let _ = provider.shutdown();
        return Ok(TelemetryGuard { provider: None });
    }
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

/// Spans are always recorded (they carry the trace context) and exported only to an endpoint.
fn tracer_provider(
    service: &str,
    otlp_endpoint: Option<&str>,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let mut provider = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    Ok(provider.build())
}

// ---------------------------------------------------------------------------------------------
// JSON lines
// ---------------------------------------------------------------------------------------------

/// Writes one JSON object per event: fixed keys first (`timestamp`, `level`, `service`, `target`,
/// `message`), then span fields from the outermost span in, then the event's fields, then the
/// innermost span's name and the trace and span ids. Inner values win over outer ones.
pub(crate) struct JsonLogLayer<W> {
    service: String,
    writer: W,
}

impl<W> JsonLogLayer<W> {
    pub(crate) fn new(service: &str, writer: W) -> Self {
        JsonLogLayer {
            service: service.to_owned(),
            writer,
        }
    }
}

/// A span's fields as recorded so far, kept in the span's extensions.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
                values.record(&mut JsonVisitor(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut context = Map::new();
        let mut span_name = None;
        let mut ids = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(SpanFields(fields)) = extensions.get::<SpanFields>() {
                    context.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                if let Some(otel) = extensions.get::<OtelData>() {
                    ids = otel.trace_id().zip(otel.span_id()).or(ids);
                }
                span_name = Some(span.name());
            }
        }
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        let message = fields.remove("message").unwrap_or(Value::Null);
        context.extend(fields);

        let fixed = [
            ("timestamp", Value::from(now_rfc3339())),
            ("level", Value::from(meta.level().as_str())),
            ("service", Value::from(self.service.as_str())),
            ("target", Value::from(meta.target())),
            ("message", message),
        ];
        let mut line = String::with_capacity(256);
        line.push('{');
        for (key, value) in fixed {
            push_entry(&mut line, key, &value);
        }
        for (key, value) in &context {
            // `otel.*` fields steer the exporter (span name, kind); they repeat what logs show.
            let skip = key.starts_with("otel.")
                || matches!(
                    key.as_str(),
                    "timestamp" | "level" | "service" | "target" | "message"
                );
            if !skip {
                push_entry(&mut line, key, value);
            }
        }
        if let Some(name) = span_name {
            push_entry(&mut line, "span", &Value::from(name));
        }
        if let Some((trace_id, span_id)) = ids {
            push_entry(&mut line, "trace_id", &Value::from(trace_id.to_string()));
            push_entry(&mut line, "span_id", &Value::from(span_id.to_string()));
        }
        line.pop(); // the trailing comma
        line.push_str("}\n");
        // One write per line so concurrent events never interleave; a failed log write has
        // nowhere better to be reported.
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}

fn push_entry(line: &mut String, key: &str, value: &Value) {
    // Serialising a str or a Value into a String cannot fail.
    line.push_str(&Value::from(key).to_string());
    line.push(':');
    line.push_str(&value.to_string());
    line.push(',');
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

// ---------------------------------------------------------------------------------------------
// W3C trace context
// ---------------------------------------------------------------------------------------------

fn inject(injector: &mut dyn Injector) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, injector)
    });
}

fn extract(extractor: &dyn Extractor) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(extractor))
}

/// Whether `context` carries a remote or local span worth parenting to.
pub fn has_span(context: &opentelemetry::Context) -> bool {
    context.span().span_context().is_valid()
}

/// Make `context` the parent of `span` (when it carries one). Call before the span is first entered.
pub fn set_parent(span: &tracing::Span, context: opentelemetry::Context) {
    if has_span(&context) {
        // Fails only when no OpenTelemetry layer is installed (some tests): nothing to link then.
        let _ = span.set_parent(context);
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes());
        let value = tonic::metadata::MetadataValue::try_from(value.as_str());
        if let (Ok(key), Ok(value)) = (key, value) {
            self.0.insert(key, value);
        }
    }
}

struct HttpExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HttpExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Write the current span's `traceparent`/`tracestate` into outgoing gRPC metadata.
pub fn inject_grpc(metadata: &mut tonic::metadata::MetadataMap) {
    inject(&mut MetadataInjector(metadata));
}

/// A tonic client interceptor that propagates the caller's trace:
/// `FooClient::with_interceptor(channel, telemetry::propagate_grpc)`.
pub fn propagate_grpc(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    inject_grpc(request.metadata_mut());
    Ok(request)
}

/// The trace context of an incoming gRPC request (its HTTP/2 headers).
pub fn extract_grpc(headers: &http::HeaderMap) -> opentelemetry::Context {
    extract(&HttpExtractor(headers))
}

struct NatsInjector<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // `FromStr` validates; the `&str` conversions would panic on a bad name instead.
        let key = async_nats::header::HeaderName::from_str(key);
        let value = async_nats::header::HeaderValue::from_str(&value);
        if let (Ok(key), Ok(value)) = (key, value) {
            self.0.insert(key, value);
        }
    }
}

struct NatsExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let key = async_nats::header::HeaderName::from_str(key).ok()?;
        self.0.get(key).map(async_nats::header::HeaderValue::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0
            .iter()
            .map(|(name, _)| AsRef::<str>::as_ref(name))
            .collect()
    }
}

/// Write the current span's trace context into NATS message headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    inject(&mut NatsInjector(headers));
}

/// The trace context carried by a NATS message.
pub fn extract_nats(headers: &async_nats::HeaderMap) -> opentelemetry::Context {
    extract(&NatsExtractor(headers))
}

/// The current span's trace context as a map (`traceparent`, `tracestate`): stored with an outbox
/// row so the relay, running later in another task, publishes under the writer's trace.
pub fn current_context_map() -> HashMap<String, String> {
    let mut map = HashMap::new();
    inject(&mut map);
    map
}

/// The trace context stored by [`current_context_map`].
pub fn context_from_map(map: &HashMap<String, String>) -> opentelemetry::Context {
    extract(map)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    fn lines(sink: &Sink) -> Vec<Value> {
        let bytes = sink.0.lock().expect("sink lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8 logs")
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect()
    }

    #[test]
    fn log_lines_carry_the_service_and_the_request_span_fields() {
        let sink = Sink::default();
        let subscriber =
            tracing_subscriber::registry().with(JsonLogLayer::new("billing", sink.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!(
                "grpc.request",
                request_id = "req-1",
                tenant_id = tracing::field::Empty,
                user_id = tracing::field::Empty,
            );
            let _request = request.enter();
            request.record("tenant_id", "t-1");
            let handler = tracing::info_span!("create_invoice", user_id = "u-1");
            let _handler = handler.enter();
            tracing::info!(amount = 42, "invoice created");
        });
        let lines = lines(&sink);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["service"], "billing");
        assert_eq!(line["message"], "invoice created");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["tenant_id"], "t-1");
        assert_eq!(line["user_id"], "u-1");
        assert_eq!(line["amount"], 42);
        assert_eq!(line["span"], "create_invoice");
        assert_eq!(line["level"], "INFO");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_otlp_endpoint_builds_an_exporting_provider_and_a_bad_one_names_the_key() {
        let provider = tracer_provider("billing", Some("http://127.0.0.1:4317")).expect("provider");
        provider
            .shutdown()
            .expect("an idle exporter shuts down at once");
        let err = tracer_provider("billing", Some("not a uri")).expect_err("a bad endpoint");
        assert!(err.to_string().contains("telemetry.otlp_endpoint"), "{err}");
    }

    #[test]
    fn an_event_cannot_overwrite_the_fixed_keys() {
        let sink = Sink::default();
        let subscriber =
            tracing_subscriber::registry().with(JsonLogLayer::new("billing", sink.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(service = "spoofed", "hello");
        });
        let text =
            String::from_utf8(sink.0.lock().expect("sink lock").clone()).expect("utf-8 logs");
        assert_eq!(text.matches("\"service\"").count(), 1, "{text}");
        assert_eq!(lines(&sink)[0]["service"], "billing");
    }
}
