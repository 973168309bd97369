fn main() -> anyhow::Result<()> {
    let _telemetry = kaip_telemetry::init("kaip-gateway", kaip_telemetry::LogOutput::Stdout);
    let settings = kaip_gateway::settings::GatewaySettings::load()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let app = kaip_gateway::Application::build(settings).await?;
        tracing::info!(port = app.port(), "gateway listening; console at /");
        app.run_until_stopped().await
    });
    // Do not wait forever on a blocking task (a Kafka client close) that outlived shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}
