//! Service bootstrap shared by the six K-AIP services: layered configuration, the
//! database (created, pooled, migrated), the HTTP server with tracing, auth, health and
//! readiness, and the event backbone's tasks, with graceful shutdown.

pub mod app;
pub mod audit;
pub mod caller;
pub mod db;
pub mod error;
pub mod pagination;
pub mod retry;
pub mod settings;
pub mod valid;

pub use app::{AppState, Application, BackgroundTask, ServiceDefinition, StopHandle};
pub use caller::Caller;
pub use error::CommonError;
pub use settings::{Defaults, Settings};
pub use valid::ValidJson;

/// The allocator of every process that links this crate: the six services, the gateway,
/// and the tests and benches that run them in-process. Under load a request allocates
/// thousands of small, short-lived buffers on several threads (HTTP, JSON, GraphQL, diesel
/// rows); with glibc's malloc that was about a quarter of the platform's CPU in a profile
/// of `make bench`'s 64 officers (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`,
/// `_int_free`). mimalloc's per-thread free lists make it a small fraction. (Its one cost
/// here, freed large buffers staying committed for a moment, is why the gateway reads a
/// body as a list of chunks rather than a buffer that doubles: see `read_body`.)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs a service binary: telemetry, settings, build, serve. `main.rs` is one call to this.
pub fn main_for(defaults: Defaults, definition: fn() -> ServiceDefinition) -> anyhow::Result<()> {
    let def = definition();
    let _telemetry = kaip_telemetry::init(
        &format!("kaip-{}", def.name),
        kaip_telemetry::LogOutput::Stdout,
    );
    let settings = Settings::load(defaults)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let app = Application::build(def, settings).await?;
        tracing::info!(port = app.port(), "listening");
        app.run_until_stopped().await
    });
    // Do not wait forever on a blocking task (a Kafka client close) that outlived shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}
