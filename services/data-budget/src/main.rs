fn main() -> anyhow::Result<()> {
    kaip_service::main_for(kaip_data_budget::DEFAULTS, kaip_data_budget::definition)
}
