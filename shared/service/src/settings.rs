//! Layered configuration: built-in defaults, then an optional TOML file named by
//! `KAIP_CONFIG_FILE`, then `KAIP_<SECTION>__<KEY>` environment variables. Unknown keys are
//! rejected and every value is validated at start, with an error that names the key.

use kaip_auth::AuthSettings;
use kaip_bus::{KafkaSettings, OutboxSettings};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;

/// Everything a service process is configured with.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub outbox: OutboxSettings,
    pub auth: AuthSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// HTTP worker threads.
    pub workers: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// The server, without a database name: `postgres://user:password@host:5432`, optionally
    /// with a query string (`?sslmode=require`).
    pub url: SecretString,
    /// This service's own database.
    pub name: String,
    /// Create the database at start if it does not exist (needs CREATEDB). Off in production
    /// where a DBA provisions databases.
    pub create_if_missing: bool,
    pub pool_size: u32,
    /// The server as the role that migrates the database and owns its tables, when that is
    /// not the login role of `url` (production: see README "The audit trail"). Migrations,
    /// creation and the audit trail's setup run over it; requests never do. Unset: `url`.
    #[serde(default)]
    pub migration_url: Option<SecretString>,
}

impl DatabaseSettings {
    /// The URL of `database` on the configured server.
    pub fn url_for(&self, database: &str) -> String {
        let url = self.url.expose_secret().trim_end_matches('/');
        match url.split_once('?') {
            Some((base, query)) => format!("{}/{database}?{query}", base.trim_end_matches('/')),
            None => format!("{url}/{database}"),
        }
    }

    pub fn service_url(&self) -> String {
        self.url_for(&self.name)
    }

    /// These settings as the migrating role sees them (`migration_url`, one connection).
    pub fn as_migrator(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self
                .migration_url
                .clone()
                .unwrap_or_else(|| self.url.clone()),
            migration_url: None,
            pool_size: 1,
            ..self.clone()
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Per-service defaults layered under everything else.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub port: u16,
    pub database: &'static str,
}

impl Settings {
    /// Loads settings for a process from the environment and the optional file.
    pub fn load(defaults: Defaults) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(defaults, &env)
    }

    /// Loads settings from an explicit environment (tests use this: no global state).
    pub fn load_from(
        defaults: Defaults,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let settings: Settings = load_layered(default_pairs(defaults), env)?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=256).contains(&self.server.workers) {
            return Err(ConfigError(format!(
                "server.workers: must be between 1 and 256 (got {})",
                self.server.workers
            )));
        }
        if self.server.shutdown_timeout_secs > 3600 {
            return Err(ConfigError(format!(
                "server.shutdown_timeout_secs: must be at most 3600 (got {})",
                self.server.shutdown_timeout_secs
            )));
        }
        if !(1..=1000).contains(&self.database.pool_size) {
            return Err(ConfigError(format!(
                "database.pool_size: must be between 1 and 1000 (got {})",
                self.database.pool_size
            )));
        }
        let name = &self.database.name;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError(format!(
                "database.name: `{name}` must be letters, digits and underscores"
            )));
        }
        if !self.database.url.expose_secret().starts_with("postgres") {
            return Err(ConfigError(
                "database.url: must start with postgres:// or postgresql://".into(),
            ));
        }
        if let Some(url) = &self.database.migration_url {
            if !url.expose_secret().starts_with("postgres") {
                return Err(ConfigError(
                    "database.migration_url: must start with postgres:// or postgresql://".into(),
                ));
            }
            if self.database.create_if_missing {
                // The login role's rights on the owner's tables come from the DBA's default
                // privileges, which are set per database: a database the service created
                // would leave the login role with none.
                return Err(ConfigError(
                    "database.create_if_missing: must be false with database.migration_url (a DBA \
                     creates the database and grants the login role its rights; see README)"
                        .into(),
                ));
            }
        }
        self.kafka.validate().map_err(ConfigError)?;
        self.outbox.validate().map_err(ConfigError)?;
        kaip_auth::TokenVerifier::new(&self.auth).map_err(|e| ConfigError(e.to_string()))?;
        Ok(())
    }
}

/// Defaults, then the file named by `KAIP_CONFIG_FILE`, then `KAIP_<SECTION>__<KEY>`
/// variables from `env`, deserialised into `T` (which should deny unknown fields).
pub fn load_layered<T: serde::de::DeserializeOwned>(
    defaults: Vec<(&'static str, config::Value)>,
    env: &HashMap<String, String>,
) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    for (key, value) in defaults {
        builder = builder
            .set_default(key, value)
            .map_err(|e| ConfigError(e.to_string()))?;
    }
    if let Some(path) = env.get("KAIP_CONFIG_FILE") {
        builder =
            builder.add_source(config::File::new(path, config::FileFormat::Toml).required(true));
    }
    // Only `KAIP_<SECTION>__<KEY>` variables are configuration; `KAIP_CONFIG_FILE` and
    // other single-underscore `KAIP_*` variables belong to tooling.
    let vars: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("KAIP_") && k["KAIP_".len()..].contains("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("KAIP")
            .prefix_separator("_")
            .separator("__")
            .source(Some(vars))
            .try_parsing(true),
    );
    builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError(e.to_string()))
}

/// The defaults every process shares (auth, broker, database server). There is no default
/// key: without `auth.jwks_url`, `auth.jwks_file` or `auth.key` a process starts only in
/// development mode (`KAIP_AUTH__DEV_MODE=true`), which uses the public development secret.
pub fn common_default_pairs() -> Vec<(&'static str, config::Value)> {
    vec![
        ("kafka.brokers", "127.0.0.1:9092".into()),
        ("auth.issuer", kaip_auth::dev::ISSUER.into()),
        ("auth.audience", kaip_auth::dev::AUDIENCE.into()),
    ]
}

fn default_pairs(d: Defaults) -> Vec<(&'static str, config::Value)> {
    vec![
        ("server.host", "127.0.0.1".into()),
        ("server.port", i64::from(d.port).into()),
        ("server.workers", 2i64.into()),
        ("server.shutdown_timeout_secs", 30i64.into()),
        ("database.url", "postgres://postgres@127.0.0.1:5432".into()),
        ("database.name", d.database.into()),
        ("database.create_if_missing", true.into()),
        ("database.pool_size", 10i64.into()),
    ]
    .into_iter()
    .chain(common_default_pairs())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Defaults = Defaults {
        port: 8081,
        database: "kaip_intake",
    };

    /// A development-mode environment with `pairs` (the tests of other sections need a
    /// process that starts; the auth tests below say otherwise when they mean it).
    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        std::iter::once(("KAIP_AUTH__DEV_MODE", "true"))
            .chain(pairs.iter().copied())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn without_a_key_a_process_starts_only_in_development_mode() {
        let mut bare = env(&[]);
        bare.remove("KAIP_AUTH__DEV_MODE");
        let err = Settings::load_from(D, &bare).unwrap_err();
        assert!(
            err.0.contains("auth.key") && err.0.contains("KAIP_AUTH__DEV_MODE=true"),
            "{err}"
        );
        // Naming the public development secret does not help.
        bare.insert("KAIP_AUTH__KEY".into(), kaip_auth::dev::SECRET.into());
        bare.insert("KAIP_AUTH__ALGORITHM".into(), "HS256".into());
        let err = Settings::load_from(D, &bare).unwrap_err();
        assert!(err.0.contains("development secret"), "{err}");
        bare.insert("KAIP_AUTH__DEV_MODE".into(), "true".into());
        assert!(Settings::load_from(D, &bare).unwrap().auth.dev_mode);
        // A deployment with its identity provider's JWKS starts without development mode.
        let prod: HashMap<String, String> = [
            ("KAIP_AUTH__JWKS_URL", "https://idp.example.go.kr/jwks"),
            ("KAIP_AUTH__ALGORITHM", "RS256,ES256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert!(!Settings::load_from(D, &prod).unwrap().auth.dev_mode);
    }

    #[test]
    fn defaults_then_environment() {
        let s = Settings::load_from(
            D,
            &env(&[("KAIP_SERVER__PORT", "9000"), ("KAIP_LOG_FORMAT", "json")]),
        )
        .unwrap();
        assert_eq!(s.server.port, 9000);
        assert_eq!(s.database.name, "kaip_intake");
        assert_eq!(s.kafka.session_timeout_ms, 6000);
        assert_eq!(
            s.database.service_url(),
            "postgres://postgres@127.0.0.1:5432/kaip_intake"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = Settings::load_from(D, &env(&[("KAIP_DATABASE__URLL", "x")])).unwrap_err();
        assert!(err.0.contains("urll"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = Settings::load_from(D, &env(&[("KAIP_SERVER__PORT", "eighty")])).unwrap_err();
        assert!(err.0.contains("port"), "{err}");
        let err = Settings::load_from(D, &env(&[("KAIP_DATABASE__NAME", "x; drop")])).unwrap_err();
        assert!(err.0.contains("database.name"), "{err}");
        let err = Settings::load_from(D, &env(&[("KAIP_AUTH__ALGORITHM", "none")])).unwrap_err();
        assert!(err.0.contains("auth.algorithm"), "{err}");
        let err = Settings::load_from(D, &env(&[("KAIP_KAFKA__PARTITIONS", "0")])).unwrap_err();
        assert!(err.0.contains("kafka.partitions"), "{err}");
    }

    #[test]
    fn outbox_and_server_numbers_are_checked_at_load_naming_the_key_and_rule() {
        for (var, value, expected) in [
            (
                "KAIP_OUTBOX__BATCH_SIZE",
                "0",
                "outbox.batch_size: must be at least 1",
            ),
            (
                "KAIP_OUTBOX__BATCH_SIZE",
                "-5",
                "outbox.batch_size: must be at least 1",
            ),
            (
                "KAIP_OUTBOX__BATCH_SIZE",
                "1000000",
                "outbox.batch_size: must be at most",
            ),
            (
                "KAIP_OUTBOX__RETENTION_HOURS",
                "0",
                "outbox.retention_hours: must be greater than 0",
            ),
            (
                "KAIP_OUTBOX__RETENTION_HOURS",
                "-1",
                "outbox.retention_hours: must be greater than 0",
            ),
            (
                "KAIP_OUTBOX__RETENTION_HOURS",
                "9223372036854775807",
                "outbox.retention_hours: must be greater than 0 and at most",
            ),
            (
                "KAIP_OUTBOX__POLL_INTERVAL_MS",
                "0",
                "outbox.poll_interval_ms: must be between",
            ),
            (
                "KAIP_OUTBOX__PURGE_INTERVAL_SECS",
                "0",
                "outbox.purge_interval_secs: must be between",
            ),
            (
                "KAIP_OUTBOX__STUCK_AFTER_ATTEMPTS",
                "0",
                "outbox.stuck_after_attempts: must be at least 1",
            ),
            (
                "KAIP_SERVER__SHUTDOWN_TIMEOUT_SECS",
                "100000",
                "server.shutdown_timeout_secs: must be at most",
            ),
            (
                "KAIP_SERVER__WORKERS",
                "100000",
                "server.workers: must be between",
            ),
            (
                "KAIP_DATABASE__POOL_SIZE",
                "0",
                "database.pool_size: must be between",
            ),
            (
                "KAIP_DATABASE__MIGRATION_URL",
                "mysql://owner@db",
                "database.migration_url: must start with postgres",
            ),
            (
                "KAIP_DATABASE__MIGRATION_URL",
                "postgres://owner@db",
                "database.create_if_missing: must be false with database.migration_url",
            ),
        ] {
            let err = Settings::load_from(D, &env(&[(var, value)]))
                .expect_err(&format!("{var}={value} is refused"));
            assert!(err.0.contains(expected), "{var}={value}: {err}");
        }
        // The defaults themselves pass.
        Settings::load_from(D, &env(&[])).expect("defaults are valid");
    }

    #[test]
    fn the_migrating_role_is_the_login_role_unless_configured() {
        let s = Settings::load_from(D, &env(&[])).unwrap();
        assert_eq!(
            s.database.as_migrator().url.expose_secret(),
            s.database.url.expose_secret()
        );
        let s = Settings::load_from(
            D,
            &env(&[
                ("KAIP_DATABASE__MIGRATION_URL", "postgres://owner@db:5432"),
                ("KAIP_DATABASE__CREATE_IF_MISSING", "false"),
            ]),
        )
        .unwrap();
        let m = s.database.as_migrator();
        assert_eq!(m.service_url(), "postgres://owner@db:5432/kaip_intake");
        assert_eq!(m.pool_size, 1);
        assert!(m.migration_url.is_none());
        assert!(
            !format!("{:?}", s.database).contains("owner@"),
            "a secret never prints"
        );
    }

    #[test]
    fn url_with_query_keeps_its_parameters() {
        let s = Settings::load_from(
            D,
            &env(&[(
                "KAIP_DATABASE__URL",
                "postgres://u:p@db:5432/?sslmode=require",
            )]),
        )
        .unwrap();
        assert_eq!(
            s.database.service_url(),
            "postgres://u:p@db:5432/kaip_intake?sslmode=require"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s =
            Settings::load_from(D, &env(&[("KAIP_AUTH__KEY", kaip_auth::dev::SECRET)])).unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains(kaip_auth::dev::SECRET));
    }
}
