//! Mints development tokens from the local key.
//!
//! ```text
//! kaip-dev-token officer
//! kaip-dev-token consortium --consortium-id 0193... [--subject alice] [--ttl 86400]
//! kaip-dev-token integration --scope read:calls --scope events:gpu-ledger
//! kaip-dev-token officer --algorithm RS256 --signing-key-file idp.key.pem --kid idp-1
//! kaip-dev-token --all            # one token per role, as `make run` prints them
//! kaip-dev-token --scopes         # the integration scopes and what each grants
//! ```
//! Uses `KAIP_AUTH__ISSUER`, `KAIP_AUTH__AUDIENCE` and `KAIP_AUTH__KEY` when set, else the
//! development defaults (the development secret, HS256), which only a process in
//! development mode (`KAIP_AUTH__DEV_MODE=true`, as `make run` sets) accepts. With
//! `--signing-key-file` it signs with a private key instead, for a deployment that verifies
//! with the matching public key or JWKS (a test IdP). This is the only program that holds a
//! signing key: services and the gateway verify only.

use kaip_auth::{dev, scopes, DevTokenMinter, Scopes};
use kaip_contracts::{ConsortiumId, Role};
use secrecy::{ExposeSecret, SecretString};
use std::process::ExitCode;

const USAGE: &str = "usage: kaip-dev-token <admin|officer|reviewer|consortium|integration> \
[--consortium-id UUID] [--subject NAME] [--ttl SECONDS] [--scope SCOPE]... \
[--algorithm RS256|ES256|EdDSA --signing-key-file PEM [--kid KID]]\n       kaip-dev-token --all\n       kaip-dev-token --scopes";

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

    let mut role: Option<Role> = None;
    let mut consortium: Option<ConsortiumId> = None;
    let mut subject: Option<String> = None;
    let mut ttl: i64 = 7 * 24 * 3600;
    let mut all = false;
    let mut granted: Vec<String> = Vec::new();
    let mut signing_key_file: Option<String> = None;
    let mut algorithm: Option<String> = None;
    let mut kid: Option<String> = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--all" => all = true,
            "--scopes" => {
                return Ok(scopes::all()
                    .into_iter()
                    .map(|(s, what)| format!("{s:<20} {what}"))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
            "--consortium-id" => {
                let v = it.next().ok_or("--consortium-id needs a UUID")?;
                consortium = Some(v.parse().map_err(|e| format!("--consortium-id: {e}"))?);
            }
            "--subject" => subject = Some(it.next().ok_or("--subject needs a value")?),
            "--scope" => {
                let v = it.next().ok_or("--scope needs a scope name")?;
                for s in v.split([' ', ',']).filter(|s| !s.is_empty()) {
                    if !scopes::is_known(s) {
                        return Err(format!(
                            "--scope: `{s}` is not a scope; `kaip-dev-token --scopes` lists them"
                        ));
                    }
                    granted.push(s.to_owned());
                }
            }
            "--signing-key-file" => {
                signing_key_file = Some(it.next().ok_or("--signing-key-file needs a path")?)
            }
            "--algorithm" => algorithm = Some(it.next().ok_or("--algorithm needs a name")?),
            "--kid" => kid = Some(it.next().ok_or("--kid needs a key id")?),
            "--ttl" => {
                let v = it.next().ok_or("--ttl needs seconds")?;
                ttl = v
                    .parse()
                    .map_err(|_| format!("--ttl: `{v}` is not a whole number of seconds"))?;
                if !(1..=366 * 24 * 3600).contains(&ttl) {
                    return Err(format!("--ttl: {ttl} must be 1 s to 366 days"));
                }
            }
            "-h" | "--help" => return Ok(USAGE.into()),
            other => role = Some(other.parse()?),
        }
    }
    let secret = match &signing_key_file {
        Some(path) => {
            settings.algorithm = algorithm
                .clone()
                .ok_or("--signing-key-file needs --algorithm (RS256, ES256 or EdDSA)")?;
            std::fs::read_to_string(path).map_err(|e| format!("--signing-key-file {path}: {e}"))?
        }
        None if algorithm.is_some() => {
            return Err("--algorithm needs --signing-key-file".into());
        }
        None => settings.key.expose_secret().to_owned(),
    };
    let mut minter = DevTokenMinter::new(&settings, &secret).map_err(|e| e.to_string())?;
    if let Some(kid) = kid {
        minter = minter.with_kid(kid);
    }
    let mint = |subject: &str, role: Role, c: Option<ConsortiumId>, scopes: &[String]| {
        let mut claims = minter.claims(subject, role, c, ttl);
        claims.scope = Scopes(scopes.to_vec());
        minter.sign(&claims)
    };
    if all {
        // The development integration token holds every scope, so the console shows all.
        let every: Vec<String> = scopes::all().into_iter().map(|(s, _)| s).collect();
        let mut lines = Vec::new();
        for r in Role::TOKEN_ROLES {
            let c = (r == Role::Consortium).then(|| consortium.unwrap_or_default());
            let granted: &[String] = if r == Role::Integration { &every } else { &[] };
            let token = mint(&format!("dev-{r}"), r, c, granted);
            match c {
                Some(c) => lines.push(format!("{r:<12} (consortium {c}) {token}")),
                None if r == Role::Integration => {
                    lines.push(format!("{r:<12} (every scope) {token}"))
                }
                None => lines.push(format!("{r:<12} {token}")),
            }
        }
        return Ok(lines.join("\n"));
    }
    let role = role.ok_or("name a role")?;
    if role == Role::Consortium && consortium.is_none() {
        return Err("a consortium token needs --consortium-id".into());
    }
    if !granted.is_empty() && role != Role::Integration {
        return Err("--scope applies to integration tokens only".into());
    }
    let subject = subject.unwrap_or_else(|| format!("dev-{role}"));
    Ok(mint(&subject, role, consortium, &granted))
}
