fn main() -> anyhow::Result<()> {
    kaip_service::main_for(kaip_scoring::DEFAULTS, kaip_scoring::definition)
}
