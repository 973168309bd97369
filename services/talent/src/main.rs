fn main() -> anyhow::Result<()> {
    kaip_service::main_for(kaip_talent::DEFAULTS, kaip_talent::definition)
}
