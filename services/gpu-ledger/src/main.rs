fn main() -> anyhow::Result<()> {
    kaip_service::main_for(kaip_gpu_ledger::DEFAULTS, kaip_gpu_ledger::definition)
}
