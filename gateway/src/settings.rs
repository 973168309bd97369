//! Gateway configuration, layered like the services' (defaults, `KAIP_CONFIG_FILE`,
//! `KAIP_<SECTION>__<KEY>`).

use kaip_auth::AuthSettings;
use kaip_bus::KafkaSettings;
use kaip_service::settings::{common_default_pairs, load_layered, ConfigError};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    pub server: GatewayServer,
    pub services: ServiceUrls,
    pub kafka: KafkaSettings,
    pub auth: AuthSettings,
    /// What one client may ask of the gateway (`KAIP_LIMITS__*`); every key has a default.
    #[serde(default)]
    pub limits: GatewayLimits,
}

/// Bounds on one request or connection, so that one client cannot exhaust the gateway or
/// the services behind it. Each has a default; `0` is refused at start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayLimits {
    /// Largest `POST /graphql` body, checked from `Content-Length` and while streaming.
    pub max_body_bytes: usize,
    /// Service calls one GraphQL request may make (`BUDGET_EXCEEDED` beyond).
    pub max_service_calls: u32,
    /// Time one GraphQL request may take, end to end (`TIMEOUT` beyond); its body must also
    /// arrive within this time (408 `REQUEST_TIMEOUT` beyond).
    pub request_timeout_ms: u64,
    /// Fields at the root of an operation, aliases included (`TOO_MANY_ROOT_FIELDS`).
    pub max_root_fields: usize,
    /// Root fields of a mutation: each is a state change (`TOO_MANY_ROOT_MUTATIONS`).
    pub max_root_mutations: usize,
    /// Aliased fields in a document, at any depth (`TOO_MANY_ALIASES`).
    pub max_aliases: usize,
    /// Concurrent calls to one service; further calls wait for a free connection.
    pub max_in_flight_per_service: usize,
    /// A WebSocket must send `connection_init` within this time (closed with 4408).
    pub ws_init_timeout_ms: u64,
    /// Active subscriptions on one WebSocket (`TOO_MANY_SUBSCRIPTIONS` beyond).
    pub ws_max_subscriptions: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: kaip_service::app::MAX_BODY_BYTES,
            max_service_calls: 50,
            request_timeout_ms: 15_000,
            max_root_fields: 20,
            max_root_mutations: 5,
            max_aliases: 30,
            max_in_flight_per_service: 64,
            ws_init_timeout_ms: 10_000,
            ws_max_subscriptions: 10,
        }
    }
}

impl GatewayLimits {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_service_calls", u64::from(self.max_service_calls)),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_root_fields", self.max_root_fields as u64),
            ("max_root_mutations", self.max_root_mutations as u64),
            (
                "max_in_flight_per_service",
                self.max_in_flight_per_service as u64,
            ),
            ("ws_init_timeout_ms", self.ws_init_timeout_ms),
            ("ws_max_subscriptions", self.ws_max_subscriptions as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("limits.{key}: must be at least 1")));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayServer {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
    /// Timeout for each call to a service.
    pub upstream_timeout_ms: u64,
}

/// Base URLs of the services the gateway fronts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUrls {
    pub intake: String,
    pub scoring: String,
    pub gpu_ledger: String,
    pub data_budget: String,
    pub talent: String,
    pub milestones: String,
}

impl ServiceUrls {
    pub fn all(&self) -> [(&'static str, &str); 6] {
        [
            ("intake", &self.intake),
            ("scoring", &self.scoring),
            ("gpu-ledger", &self.gpu_ledger),
            ("data-budget", &self.data_budget),
            ("talent", &self.talent),
            ("milestones", &self.milestones),
        ]
    }
}

impl GatewaySettings {
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(&std::env::vars().collect())
    }

    pub fn load_from(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let defaults = vec![
            ("server.host", "127.0.0.1".into()),
            ("server.port", 8080i64.into()),
            ("server.workers", 2i64.into()),
            ("server.shutdown_timeout_secs", 30i64.into()),
            ("server.upstream_timeout_ms", 10_000i64.into()),
            ("services.intake", "http://127.0.0.1:8081".into()),
            ("services.scoring", "http://127.0.0.1:8082".into()),
            ("services.gpu_ledger", "http://127.0.0.1:8083".into()),
            ("services.data_budget", "http://127.0.0.1:8084".into()),
            ("services.talent", "http://127.0.0.1:8085".into()),
            ("services.milestones", "http://127.0.0.1:8086".into()),
        ];
        let settings: GatewaySettings = load_layered(
            defaults.into_iter().chain(common_default_pairs()).collect(),
            env,
        )?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.workers == 0 {
            return Err(ConfigError("server.workers: must be at least 1".into()));
        }
        for (name, url) in self.services.all() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "services.{}: `{url}` must be an http:// or https:// URL",
                    name.replace('-', "_")
                )));
            }
        }
        self.limits.validate()?;
        self.kafka.validate().map_err(ConfigError)?;
        kaip_auth::TokenVerifier::new(&self.auth).map_err(|e| ConfigError(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> HashMap<String, String> {
        [("KAIP_AUTH__DEV_MODE".to_string(), "true".to_string())]
            .into_iter()
            .collect()
    }

    #[test]
    fn the_gateway_refuses_the_development_secret_outside_development_mode() {
        let err = GatewaySettings::load_from(&HashMap::new()).unwrap_err();
        assert!(
            err.0.contains("auth.key") && err.0.contains("KAIP_AUTH__DEV_MODE=true"),
            "{err}"
        );
        assert!(GatewaySettings::load_from(&dev()).is_ok());
    }

    #[test]
    fn service_urls_are_validated_by_name() {
        let mut env = dev();
        env.insert(
            "KAIP_SERVICES__GPU_LEDGER".to_string(),
            "ftp://x".to_string(),
        );
        let err = GatewaySettings::load_from(&env).unwrap_err();
        assert!(err.0.contains("services.gpu_ledger"), "{err}");
        let mut env = dev();
        env.insert("KAIP_SERVICES__SCORNG".to_string(), "http://x".to_string());
        assert!(GatewaySettings::load_from(&env)
            .unwrap_err()
            .0
            .contains("scorng"));
        assert_eq!(
            GatewaySettings::load_from(&dev()).unwrap().server.port,
            8080
        );
    }

    #[test]
    fn limits_have_defaults_and_are_validated_by_name() {
        let s = GatewaySettings::load_from(&dev()).unwrap();
        assert_eq!(s.limits.max_body_bytes, 8 << 20);
        let env: HashMap<String, String> = [("KAIP_LIMITS__MAX_SERVICE_CALLS", "0")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(dev())
            .collect();
        let err = GatewaySettings::load_from(&env).unwrap_err();
        assert!(err.0.contains("limits.max_service_calls"), "{err}");
        let env: HashMap<String, String> = [
            ("KAIP_LIMITS__REQUEST_TIMEOUT_MS", "2500"),
            ("KAIP_LIMITS__WS_MAX_SUBSCRIPTIONS", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(dev())
        .collect();
        let err = GatewaySettings::load_from(&env).unwrap_err();
        assert!(err.0.contains("limits.ws_max_subscriptions"), "{err}");
        let env: HashMap<String, String> = [("KAIP_LIMITS__REQUEST_TIMEOUT_MS", "2500")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(dev())
            .collect();
        let s = GatewaySettings::load_from(&env).unwrap();
        assert_eq!(s.limits.request_timeout_ms, 2500);
        assert_eq!(
            s.limits.max_service_calls, 50,
            "the other keys keep their defaults"
        );
    }
}
