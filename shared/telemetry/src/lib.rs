//! Telemetry for every K-AIP process: `tracing` for spans and logs, bridged to
//! OpenTelemetry so that one trace runs from a GraphQL request through the service, the
//! outbox, Kafka and the consuming service.
//!
//! Spans always get real W3C trace and span ids (an SDK tracer provider is installed even
//! without an exporter), because trace context is propagated in HTTP and Kafka headers and
//! recorded beside processed events. Export over OTLP/HTTP starts only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::sync::OnceLock;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the tracer provider alive; dropping it flushes spans still buffered for export.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Where log lines go. Tests use `Sink` unless `TEST_LOG` is set, so they are silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOutput {
    Stdout,
    Sink,
}

/// Installs the global subscriber for a process named `service`. Call once, from `main`.
///
/// `RUST_LOG` filters (default `info`); `KAIP_LOG_FORMAT=json` switches to JSON lines.
pub fn init(service: &str, output: LogOutput) -> TelemetryGuard {
    let provider = tracer_provider(service);
    let tracer = provider.tracer(service.to_owned());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    let json = std::env::var("KAIP_LOG_FORMAT").is_ok_and(|v| v == "json");
    let fmt_layer = match (output, json) {
        (LogOutput::Sink, _) => tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .boxed(),
        (LogOutput::Stdout, true) => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .boxed(),
        (LogOutput::Stdout, false) => tracing_subscriber::fmt::layer().with_target(true).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                // Each of these costs work on every span of every request (a thread name
                // copied, source-location strings, a clock read on every enter and exit),
                // and the gateway's p99 under load is CPU-bound: traces keep their names,
                // fields, parents and start and end times, which is what is read.
                .with_threads(false)
                .with_location(false)
                .with_tracked_inactivity(false),
        )
        .try_init();
    TelemetryGuard { provider }
}

/// For tests: installs the subscriber once per test binary (several in-process services
/// share it), quiet unless `TEST_LOG` is set.
pub fn init_for_tests() {
    static GUARD: OnceLock<TelemetryGuard> = OnceLock::new();
    GUARD.get_or_init(|| {
        let output = if std::env::var_os("TEST_LOG").is_some() {
            LogOutput::Stdout
        } else {
            LogOutput::Sink
        };
        init("kaip-test", output)
    });
}

fn tracer_provider(service: &str) -> SdkTracerProvider {
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let endpoint_set =
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.trim().is_empty());
    if !endpoint_set {
        return builder.build();
    }
    match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => builder.with_batch_exporter(exporter).build(),
        Err(e) => {
            eprintln!("telemetry: OTLP exporter not started ({e}); spans are not exported");
            builder.build()
        }
    }
}

/// The W3C headers (`traceparent`, and `tracestate` when present) for the current span.
pub fn current_trace_headers() -> HashMap<String, String> {
    let cx = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier
}

/// Makes `span` a child of the trace described by `headers` (if they carry one).
pub fn set_parent_from_headers(span: &tracing::Span, headers: &HashMap<String, String>) {
    let cx: Context = TraceContextPropagator::new().extract(headers);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The trace id of `span` as 32 hex digits, if it is part of a trace.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// The trace id of the current span.
pub fn current_trace_id() -> Option<String> {
    trace_id_of(&tracing::Span::current())
}
