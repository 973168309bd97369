//! `make verify-decision CALL=<id>`: recomputes a published selection from its recorded
//! inputs and reports agreement or every difference (exit code 0, 1 when they differ, 2
//! when it cannot verify). See `kaip_scoring::verify`.

fn main() -> std::process::ExitCode {
    let code = kaip_scoring::verify::run(std::env::args().skip(1), &mut std::io::stdout());
    std::process::ExitCode::from(code as u8)
}
