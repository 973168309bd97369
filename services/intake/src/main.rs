fn main() -> anyhow::Result<()> {
    kaip_service::main_for(kaip_intake::DEFAULTS, kaip_intake::definition)
}
