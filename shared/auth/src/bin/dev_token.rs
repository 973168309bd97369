//! Mints development tokens from the local key.
//!
//! ```text
//! kaip-dev-token officer
//! kaip-dev-token consortium --consortium-id 0193... [--subject alice] [--ttl 86400]
//! kaip-dev-token --all            # one token per role, as `make run` prints them
//! ```
//! Uses `KAIP_AUTH__ISSUER`, `KAIP_AUTH__AUDIENCE` and `KAIP_AUTH__KEY` when set, else the
//! development defaults. Refuses to run without a key only if one of those is half-set.

use kaip_auth::{dev, AuthSettings, DevTokenMinter};
use kaip_contracts::{ConsortiumId, Role};
use secrecy::{ExposeSecret, SecretString};
use std::process::ExitCode;

const USAGE: &str = "usage: kaip-dev-token <admin|officer|reviewer|consortium|integration> \
[--consortium-id UUID] [--subject NAME] [--ttl SECONDS]\n       kaip-dev-token --all";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kaip-dev-token: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<String, String> {
    let mut settings = dev::settings();
    if let Ok(v) = std::env::var("KAIP_AUTH__ISSUER") {
        settings.issuer = v;
    }
    if let Ok(v) = std::env::var("KAIP_AUTH__AUDIENCE") {
        settings.audience = v;
    }
    if let Ok(v) = std::env::var("KAIP_AUTH__KEY") {
        settings.key = SecretString::from(v);
    }
    let secret = settings.key.expose_secret().to_owned();
    let settings: AuthSettings = settings;
    let minter = DevTokenMinter::new(&settings, &secret).map_err(|e| e.to_string())?;

    let mut role: Option<Role> = None;
    let mut consortium: Option<ConsortiumId> = None;
    let mut subject: Option<String> = None;
    let mut ttl: i64 = 7 * 24 * 3600;
    let mut all = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--all" => all = true,
            "--consortium-id" => {
                let v = it.next().ok_or("--consortium-id needs a UUID")?;
                consortium = Some(v.parse().map_err(|e| format!("--consortium-id: {e}"))?);
            }
            "--subject" => subject = Some(it.next().ok_or("--subject needs a value")?),
            "--ttl" => {
                let v = it.next().ok_or("--ttl needs seconds")?;
                ttl = v
                    .parse()
                    .map_err(|_| format!("--ttl: `{v}` is not a whole number of seconds"))?;
            }
            "-h" | "--help" => return Ok(USAGE.into()),
            other => role = Some(other.parse()?),
        }
    }
    if all {
        let mut lines = Vec::new();
        for r in Role::TOKEN_ROLES {
            let c = (r == Role::Consortium).then(|| consortium.unwrap_or_default());
            let token = minter.mint(&format!("dev-{r}"), r, c, ttl);
            match c {
                Some(c) => lines.push(format!("{r:<12} (consortium {c}) {token}")),
                None => lines.push(format!("{r:<12} {token}")),
            }
        }
        return Ok(lines.join("\n"));
    }
    let role = role.ok_or("name a role")?;
    if role == Role::Consortium && consortium.is_none() {
        return Err("a consortium token needs --consortium-id".into());
    }
    let subject = subject.unwrap_or_else(|| format!("dev-{role}"));
    Ok(minter.mint(&subject, role, consortium, ttl))
}
