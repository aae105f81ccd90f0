//! Where the node's own spans and log lines go: lines to stderr (text or
//! JSON, `[log] format`), and, with the `otlp` cargo feature and
//! `log.otlp_endpoint` set, spans to an OpenTelemetry collector over
//! OTLP/HTTP. An order's spans (the request, the node call, each service's
//! step) carry its id, in the lines and in the exported spans alike.
//!
//! Used by the binary ([`crate::cli`]); an embedding application installs
//! its own subscriber and sees the same spans.

use crate::config::{LogFormat, LogSettings};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Keeps the exporter while the node runs; dropping it sends what is
/// still batched.
#[derive(Default)]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

/// Installs the process's subscriber; `RUST_LOG` filters (default `info`).
/// A second call (tests) leaves the first in place.
pub fn init(log: &LogSettings) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = match log.format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        // The spans' fields in each line: the order id a line is about.
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (spans, telemetry) = exporter(&log.otlp_endpoint);
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(spans)
        .with(filter)
        .with(tracing_subscriber::filter::filter_fn(holds_no_secret))
        .try_init();
    telemetry
}

/// Whether a line or span may be written at all. The NATS client writes
/// what it sends to the server at TRACE, its CONNECT with the password in
/// it (`stream.url`): those never get through, whatever `RUST_LOG` says.
/// (An embedding application that installs its own subscriber should cap
/// `async_nats` at DEBUG the same way.)
fn holds_no_secret(meta: &tracing::Metadata<'_>) -> bool {
    !(*meta.level() == tracing::Level::TRACE && meta.target().starts_with("async_nats"))
}

/// Without the `otlp` feature there is nothing to export to (the settings
/// refuse an endpoint: see `config::ranges`).
#[cfg(not(feature = "otlp"))]
fn exporter(_endpoint: &str) -> (Option<tracing_subscriber::layer::Identity>, Telemetry) {
    (None, Telemetry::default())
}

/// The OTLP span layer for `endpoint` (a collector's base URL, as
/// `OTEL_EXPORTER_OTLP_ENDPOINT`: spans go to `<endpoint>/v1/traces`).
#[cfg(feature = "otlp")]
fn exporter<S>(endpoint: &str) -> (Option<impl Layer<S>>, Telemetry)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    if endpoint.is_empty() {
        return (None, Telemetry::default());
    }
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    // The blocking HTTP client must not be made (nor dropped) on an async
    // runtime's thread: it runs one of its own.
    let built = off_runtime(move || {
        opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(url).build()
    });
    let exporter = match built {
        Some(Ok(exporter)) => exporter,
        Some(Err(e)) => {
            eprintln!("log.otlp_endpoint: the OTLP exporter could not start ({e}); spans are not exported");
            return (None, Telemetry::default());
        }
        None => {
            eprintln!("log.otlp_endpoint: the OTLP exporter failed while starting; spans are not exported");
            return (None, Telemetry::default());
        }
    };
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("fulfil").build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("fulfil"));
    (Some(layer), Telemetry { provider: Some(provider) })
}

/// Runs `work` on a thread of its own; `None` if it panicked.
#[cfg(feature = "otlp")]
fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    std::thread::spawn(work).join().ok()
}

#[cfg(feature = "otlp")]
impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Sends what is batched; waits at most the SDK's own timeout.
            let _ = off_runtime(move || provider.shutdown());
        }
    }
}
