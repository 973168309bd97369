fn main() -> anyhow::Result<()> {
    kaip_service::main_for(kaip_milestones::DEFAULTS, kaip_milestones::definition)
}
