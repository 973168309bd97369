//! Authentication for every K-AIP process.
//!
//! Tokens are JWTs issued by the ministry's identity provider in production and minted by
//! `kaip-dev-token` locally. The verifier pins the algorithm, the issuer and the audience and
//! requires `exp`; a token signed with `alg: none`, another algorithm, or another key is
//! refused with a stable code. The gateway and each service run the same check on the same
//! token, so the gateway is not the only line of defence.

mod keys;
pub mod scopes;

use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kaip_contracts::{ConsortiumId, Role};
use keys::{KeyStore, Source, VerifyKey};
pub use scopes::Scopes;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The most clock skew a deployment may allow. More would let an expired token live on.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// The `aud` claim: one audience or several (RFC 7519 allows both).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(v) => v.iter().any(|a| a == audience),
        }
    }
}

/// What a token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: Audience,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
    /// Not before: the token is refused until then (less the leeway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub role: Role,
    /// Required for `consortium` tokens; the only consortium such a caller may act for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consortium_id: Option<ConsortiumId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What an `integration` token may read and receive (see [`scopes`]); `scp` is accepted
    /// as another name for it.
    #[serde(default, alias = "scp", skip_serializing_if = "Scopes::is_empty")]
    pub scope: Scopes,
}

impl Claims {
    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role)
    }

    /// May this caller act for or read data of `consortium`? Ministry staff and integrations
    /// may (an integration within its scopes); a consortium user only for its own consortium.
    pub fn may_access_consortium(&self, consortium: ConsortiumId) -> bool {
        match self.role {
            Role::Admin | Role::Officer | Role::Integration => true,
            Role::Consortium => self.consortium_id == Some(consortium),
            Role::Reviewer | Role::System => false,
        }
    }

    /// Does this caller's grant cover `scope`? Scopes narrow the `integration` role only:
    /// the other roles are governed by their role checks.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.role != Role::Integration || self.scope.contains(scope)
    }
}

/// Why a token was refused. Each variant has a stable code that callers branch on.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no bearer token: send `Authorization: Bearer <jwt>`")]
    MissingToken,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    #[error("the token's issuer (`iss`) is not the one this platform trusts")]
    InvalidIssuer,
    #[error("the token's audience (`aud`) is not this platform")]
    InvalidAudience,
    #[error("the token's signature does not verify with the configured key")]
    InvalidSignature,
    #[error("the token's algorithm is not allowed: only {0} is accepted")]
    AlgorithmNotAllowed(String),
    #[error("the token's key `{0}` is not one the identity provider publishes")]
    UnknownKey(String),
    #[error("the identity provider's keys could not be loaded; try again shortly")]
    KeysUnavailable,
    #[error("the token's claims are invalid: {0}")]
    InvalidClaims(String),
    #[error("role `{role}` may not {action}")]
    Forbidden { role: Role, action: String },
}

impl AuthError {
    /// The stable code, used as the HTTP error body's `code` and GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "UNAUTHENTICATED",
            AuthError::Malformed(_) => "TOKEN_MALFORMED",
            AuthError::Expired => "TOKEN_EXPIRED",
            AuthError::NotYetValid => "TOKEN_NOT_YET_VALID",
            AuthError::InvalidIssuer => "TOKEN_INVALID_ISSUER",
            AuthError::InvalidAudience => "TOKEN_INVALID_AUDIENCE",
            AuthError::InvalidSignature => "TOKEN_INVALID_SIGNATURE",
            AuthError::AlgorithmNotAllowed(_) => "TOKEN_ALGORITHM_NOT_ALLOWED",
            AuthError::UnknownKey(_) => "TOKEN_UNKNOWN_KEY",
            AuthError::KeysUnavailable => "AUTH_KEYS_UNAVAILABLE",
            AuthError::InvalidClaims(_) => "TOKEN_INVALID_CLAIMS",
            AuthError::Forbidden { .. } => "FORBIDDEN",
        }
    }

    /// 401 for who-are-you problems, 403 for you-may-not.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::Forbidden { .. })
    }

    /// The verifier, not the token, is at fault (503: try again).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable)
    }
}

/// The verification half of the auth configuration (every process has it). Production
/// verifies with the identity provider's public keys only: a JWKS (`jwks_url` or
/// `jwks_file`) or one PEM public key (`key`). A shared HS256 secret, which would let every
/// verifier sign tokens too, and the development secret are accepted only with `dev_mode`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    /// The accepted algorithms, comma-separated: `RS256`, `ES256`, `EdDSA`, and `HS256` in
    /// development mode only. Pinned: tokens with any other `alg` are refused. May be left
    /// empty in development mode (then `HS256`).
    #[serde(default)]
    pub algorithm: String,
    /// One verification key: the identity provider's public key (PEM), or in development
    /// mode an HS256 secret. Empty when the keys come from a JWKS.
    #[serde(default = "no_secret")]
    pub key: SecretString,
    /// The identity provider's JWKS as a local file (e.g. a mounted ConfigMap).
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// The identity provider's JWKS URL: `https://`, or `http://` on a loopback address.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Re-read the JWKS when it is older than this.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_seconds: u64,
    /// At most one JWKS read per this many seconds when tokens name an unknown `kid`.
    #[serde(default = "default_min_refresh")]
    pub jwks_min_refresh_seconds: u64,
    /// Development mode: allows HS256 and the public development secret, which is what a
    /// process uses when no key is configured. Never on in a deployment.
    #[serde(default)]
    pub dev_mode: bool,
    /// Allowed clock skew in seconds for `exp` and `nbf`, at most [`MAX_LEEWAY_SECONDS`].
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn no_secret() -> SecretString {
    SecretString::from("")
}

fn default_leeway() -> u64 {
    30
}

fn default_refresh() -> u64 {
    300
}

fn default_min_refresh() -> u64 {
    30
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("auth.{key}: {message}")]
pub struct AuthConfigError {
    pub key: &'static str,
    pub message: String,
}

fn parse_algorithm(name: &str) -> Result<Algorithm, AuthConfigError> {
    let name = name.trim();
    let alg = Algorithm::from_str(name).map_err(|_| AuthConfigError {
        key: "algorithm",
        message: format!("`{name}` is not a JWT algorithm; use RS256, ES256 or EdDSA"),
    })?;
    match alg {
        Algorithm::HS256 | Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA => Ok(alg),
        _ => Err(AuthConfigError {
            key: "algorithm",
            message: format!("`{name}` is not supported; use RS256, ES256 or EdDSA"),
        }),
    }
}

const WHAT_TO_SET: &str = "set KAIP_AUTH__JWKS_URL (the identity provider's JWKS, https://) or \
KAIP_AUTH__JWKS_FILE, or KAIP_AUTH__KEY (its PEM public key), with KAIP_AUTH__ALGORITHM \
(e.g. RS256); for a local development run only, set KAIP_AUTH__DEV_MODE=true";

/// How a verifier gets its keys, as the settings say.
enum KeyConfig {
    Static(String),
    File(String),
    Url(String),
}

impl AuthSettings {
    /// Checks the settings without reading keys; the error names the key and what to set.
    pub fn validate(&self) -> Result<(), AuthConfigError> {
        self.resolve().map(|_| ())
    }

    fn algorithms(&self) -> Result<Vec<Algorithm>, AuthConfigError> {
        let names: Vec<&str> = self
            .algorithm
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        names.into_iter().map(parse_algorithm).collect()
    }

    fn resolve(&self) -> Result<(Vec<Algorithm>, KeyConfig), AuthConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(AuthConfigError {
                key: "issuer",
                message: "must not be empty".into(),
            });
        }
        if self.audience.trim().is_empty() {
            return Err(AuthConfigError {
                key: "audience",
                message: "must not be empty".into(),
            });
        }
        if self.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(AuthConfigError {
                key: "leeway_seconds",
                message: format!(
                    "{} is more than the {MAX_LEEWAY_SECONDS} s allowed: a larger leeway lets expired tokens live on",
                    self.leeway_seconds
                ),
            });
        }
        if self.jwks_refresh_seconds == 0 {
            return Err(AuthConfigError {
                key: "jwks_refresh_seconds",
                message: "must be at least 1".into(),
            });
        }
        if self.jwks_min_refresh_seconds == 0 && !self.dev_mode {
            return Err(AuthConfigError {
                key: "jwks_min_refresh_seconds",
                message: "must be at least 1: tokens naming unknown keys would otherwise make every request fetch the JWKS".into(),
            });
        }
        let secret = self.key.expose_secret();
        let nonempty = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let sources: Vec<KeyConfig> = [
            (!secret.trim().is_empty()).then(|| KeyConfig::Static(secret.to_owned())),
            nonempty(&self.jwks_file).map(KeyConfig::File),
            nonempty(&self.jwks_url).map(KeyConfig::Url),
        ]
        .into_iter()
        .flatten()
        .collect();
        if sources.len() > 1 {
            return Err(AuthConfigError {
                key: "key",
                message: "set only one of auth.key, auth.jwks_file and auth.jwks_url".into(),
            });
        }
        let mut algorithms = self.algorithms()?;
        let source = match sources.into_iter().next() {
            Some(s) => s,
            None if self.dev_mode => KeyConfig::Static(dev::SECRET.to_owned()),
            None => {
                return Err(AuthConfigError {
                    key: "key",
                    message: format!("no key to verify tokens with: {WHAT_TO_SET}"),
                })
            }
        };
        if !self.dev_mode {
            if let KeyConfig::Static(k) = &source {
                if k == dev::SECRET {
                    return Err(AuthConfigError {
                        key: "key",
                        message: format!(
                            "is the public development secret, which anyone can sign tokens with: {WHAT_TO_SET}"
                        ),
                    });
                }
            }
        }
        if algorithms.is_empty() {
            if self.dev_mode {
                algorithms.push(Algorithm::HS256);
            } else {
                return Err(AuthConfigError {
                    key: "algorithm",
                    message: "required: the algorithms the identity provider signs with, e.g. RS256 or RS256,ES256".into(),
                });
            }
        }
        if algorithms.contains(&Algorithm::HS256) && !self.dev_mode {
            return Err(AuthConfigError {
                key: "algorithm",
                message: "HS256 is a shared secret that would let every process sign tokens; it is accepted only with KAIP_AUTH__DEV_MODE=true. Use RS256 or ES256 with the identity provider's public key or JWKS".into(),
            });
        }
        match &source {
            KeyConfig::Static(_) if algorithms.len() != 1 => {
                return Err(AuthConfigError {
                    key: "algorithm",
                    message:
                        "a single auth.key verifies one algorithm; list several only with a JWKS"
                            .into(),
                })
            }
            KeyConfig::Url(url) => check_jwks_url(url)?,
            _ => {}
        }
        Ok((algorithms, source))
    }
}

/// `https://`, or `http://` only to this machine (tests, a sidecar).
fn check_jwks_url(url: &str) -> Result<(), AuthConfigError> {
    let bad = |m: &str| AuthConfigError {
        key: "jwks_url",
        message: format!("`{url}`: {m}"),
    };
    if url.starts_with("https://") {
        return Ok(());
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("must be an https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(bad(
            "must be https:// (plain http:// only on a loopback address)",
        ))
    }
}

/// Checks bearer tokens. Cheap to clone; clones share the keys.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<KeyStore>,
    issuer: String,
    audience: String,
    leeway: u64,
    allowed: Vec<Algorithm>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds a verifier. A key or a JWKS file is read now; a JWKS URL on first use.
    pub fn new(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        let (allowed, config) = settings.resolve()?;
        let source = match config {
            KeyConfig::Static(secret) => {
                let alg = allowed[0];
                let bad_key = |e: jsonwebtoken::errors::Error| AuthConfigError {
                    key: "key",
                    message: format!("not a valid PEM public key for {alg:?}: {e}"),
                };
                let key = match alg {
                    Algorithm::HS256 => {
                        if secret.len() < 32 {
                            return Err(AuthConfigError {
                                key: "key",
                                message: "an HS256 secret must be at least 32 bytes".into(),
                            });
                        }
                        DecodingKey::from_secret(secret.as_bytes())
                    }
                    Algorithm::RS256 => {
                        DecodingKey::from_rsa_pem(secret.as_bytes()).map_err(bad_key)?
                    }
                    Algorithm::ES256 => {
                        DecodingKey::from_ec_pem(secret.as_bytes()).map_err(bad_key)?
                    }
                    _ => DecodingKey::from_ed_pem(secret.as_bytes()).map_err(bad_key)?,
                };
                Source::Static(VerifyKey { key, alg })
            }
            KeyConfig::File(path) => Source::File(path),
            KeyConfig::Url(url) => Source::Url {
                url,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .connect_timeout(Duration::from_secs(3))
                    .build()
                    .map_err(|e| AuthConfigError {
                        key: "jwks_url",
                        message: format!("cannot build an HTTP client: {e}"),
                    })?,
            },
        };
        let keys = KeyStore::new(
            source,
            allowed.clone(),
            Duration::from_secs(settings.jwks_refresh_seconds),
            Duration::from_secs(settings.jwks_min_refresh_seconds),
        )?;
        Ok(Self {
            keys: Arc::new(keys),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: settings.leeway_seconds,
            allowed,
        })
    }

    fn allowed_names(&self) -> String {
        self.allowed
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn token_of(header: Option<&str>) -> Result<&str, AuthError> {
        let header = header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(AuthError::MissingToken)?;
        header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                AuthError::Malformed("the Authorization header must be `Bearer <jwt>`".into())
            })
    }

    /// Verifies an `Authorization` header value (`Bearer <jwt>`); `None` means no header.
    /// Fetches the identity provider's keys when needed (a JWKS URL): what request handlers use.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Claims, AuthError> {
        let token = Self::token_of(header)?;
        let (alg, kid) = self.read_header(token)?;
        let key = self.keys.key_for(kid.as_deref(), alg).await?;
        self.decode(token, &key)
    }

    /// As [`authenticate`](Self::authenticate), with the keys in hand only (no fetch).
    pub fn verify_header(&self, header: Option<&str>) -> Result<Claims, AuthError> {
        self.verify(Self::token_of(header)?)
    }

    /// Verifies a raw JWT with the keys in hand (no fetch).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let (alg, kid) = self.read_header(token)?;
        let key = self.keys.key_now(kid.as_deref(), alg)?;
        self.decode(token, &key)
    }

    /// The token's `alg` (which must be allowed) and `kid`, read before trusting anything:
    /// jsonwebtoken cannot even parse `alg: none`, and that case should say "algorithm not
    /// allowed" rather than "malformed".
    fn read_header(&self, token: &str) -> Result<(Algorithm, Option<String>), AuthError> {
        let (alg, kid) = header_fields(token)?;
        let alg = Algorithm::from_str(&alg)
            .ok()
            .filter(|a| self.allowed.contains(a))
            .ok_or_else(|| AuthError::AlgorithmNotAllowed(self.allowed_names()))?;
        Ok((alg, kid))
    }

    fn decode(&self, token: &str, key: &VerifyKey) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    ErrorKind::InvalidIssuer => AuthError::InvalidIssuer,
                    ErrorKind::InvalidAudience => AuthError::InvalidAudience,
                    ErrorKind::InvalidSignature => AuthError::InvalidSignature,
                    ErrorKind::InvalidAlgorithm => {
                        AuthError::AlgorithmNotAllowed(self.allowed_names())
                    }
                    ErrorKind::MissingRequiredClaim(c) => {
                        AuthError::InvalidClaims(format!("`{c}` is required"))
                    }
                    ErrorKind::Json(err) => AuthError::InvalidClaims(err.to_string()),
                    _ => AuthError::Malformed(e.to_string()),
                }
            })?;
        let claims = data.claims;
        match (claims.role, claims.consortium_id) {
            (Role::Consortium, None) => {
                return Err(AuthError::InvalidClaims(
                    "a consortium token must carry `consortium_id`".into(),
                ))
            }
            (Role::System, _) => {
                return Err(AuthError::InvalidClaims(
                    "`system` is not a role a token can hold".into(),
                ))
            }
            _ => {}
        }
        Ok(claims)
    }
}

fn header_fields(token: &str) -> Result<(String, Option<String>), AuthError> {
    use base64_url_decode as decode;
    let head = token
        .split('.')
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| AuthError::Malformed("missing header segment".into()))?;
    let bytes =
        decode(head).ok_or_else(|| AuthError::Malformed("the header is not base64url".into()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("the header is not JSON".into()))?;
    let alg = value
        .get("alg")
        .and_then(|a| a.as_str())
        .map(str::to_owned)
        .ok_or_else(|| AuthError::Malformed("the header has no `alg`".into()))?;
    let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
    Ok((alg, kid))
}

/// Minimal base64url (no padding) decoder, to read a JWT header without trusting it.
fn base64_url_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Mints tokens from a local key. For development and tests only: production tokens come
/// from the ministry's identity provider.
#[derive(Clone)]
pub struct DevTokenMinter {
    key: EncodingKey,
    algorithm: Algorithm,
    issuer: String,
    audience: String,
    kid: Option<String>,
}

impl DevTokenMinter {
    /// `signing_key` is the HS256 secret, or a PEM private key for the asymmetric algorithms
    /// (the first of `settings.algorithm`; HS256 when that is empty).
    pub fn new(settings: &AuthSettings, signing_key: &str) -> Result<Self, AuthConfigError> {
        let first = settings.algorithm.split(',').next().unwrap_or("").trim();
        let algorithm = if first.is_empty() {
            Algorithm::HS256
        } else {
            parse_algorithm(first)?
        };
        let bad = |e: jsonwebtoken::errors::Error| AuthConfigError {
            key: "signing_key",
            message: format!("not a valid PEM private key: {e}"),
        };
        let key = match algorithm {
            Algorithm::HS256 => EncodingKey::from_secret(signing_key.as_bytes()),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(signing_key.as_bytes()).map_err(bad)?,
            Algorithm::ES256 => EncodingKey::from_ec_pem(signing_key.as_bytes()).map_err(bad)?,
            _ => EncodingKey::from_ed_pem(signing_key.as_bytes()).map_err(bad)?,
        };
        Ok(Self {
            key,
            algorithm,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            kid: None,
        })
    }

    /// Names the signing key in the tokens' `kid` header, as an identity provider does.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Claims for `role` valid for `ttl_seconds` from now.
    pub fn claims(
        &self,
        subject: &str,
        role: Role,
        consortium_id: Option<ConsortiumId>,
        ttl_seconds: i64,
    ) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            sub: subject.to_owned(),
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            iat: now,
            exp: now + ttl_seconds,
            nbf: None,
            role,
            consortium_id,
            name: None,
            scope: Scopes::default(),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key).unwrap_or_else(|e| {
            unreachable!("claims always serialise and the key was validated: {e}")
        })
    }

    pub fn mint(
        &self,
        subject: &str,
        role: Role,
        consortium_id: Option<ConsortiumId>,
        ttl_seconds: i64,
    ) -> String {
        self.sign(&self.claims(subject, role, consortium_id, ttl_seconds))
    }

    /// An `integration` token with `scopes`.
    pub fn mint_integration(&self, subject: &str, scopes: &[&str], ttl_seconds: i64) -> String {
        let mut claims = self.claims(subject, Role::Integration, None, ttl_seconds);
        claims.scope = Scopes(scopes.iter().map(|s| s.to_string()).collect());
        self.sign(&claims)
    }
}

/// The development defaults shared by `make run`, the tests and `kaip-dev-token`.
pub mod dev {
    use super::AuthSettings;
    use secrecy::SecretString;

    pub const ISSUER: &str = "https://idp.kaip.local";
    pub const AUDIENCE: &str = "kaip";
    /// Public (it is in the source): accepted only in development mode, see
    /// [`AuthSettings::dev_mode`]. A process without development mode refuses to start with it.
    pub const SECRET: &str = "kaip-local-development-secret-change-me-in-production";

    /// Development mode with the development secret (local runs and tests).
    pub fn settings() -> AuthSettings {
        AuthSettings {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            algorithm: "HS256".into(),
            key: SecretString::from(SECRET),
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_seconds: super::default_refresh(),
            jwks_min_refresh_seconds: super::default_min_refresh(),
            dev_mode: true,
            leeway_seconds: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(&dev::settings()).unwrap()
    }

    fn minter() -> DevTokenMinter {
        DevTokenMinter::new(&dev::settings(), dev::SECRET).unwrap()
    }

    #[test]
    fn a_fresh_token_verifies_with_its_role() {
        let c = ConsortiumId::new();
        let claims = verifier()
            .verify_header(Some(&format!(
                "Bearer {}",
                minter().mint("u1", Role::Consortium, Some(c), 60)
            )))
            .unwrap();
        assert_eq!(claims.role, Role::Consortium);
        assert!(claims.may_access_consortium(c));
        assert!(!claims.may_access_consortium(ConsortiumId::new()));
    }

    #[test]
    fn bad_tokens_are_refused_with_their_code() {
        let v = verifier();
        let m = minter();
        assert_eq!(v.verify_header(None).unwrap_err().code(), "UNAUTHENTICATED");
        assert_eq!(
            v.verify_header(Some("Basic abc")).unwrap_err().code(),
            "TOKEN_MALFORMED"
        );
        assert_eq!(v.verify("not.a.jwt").unwrap_err().code(), "TOKEN_MALFORMED");
        assert_eq!(
            v.verify(&m.mint("u", Role::Officer, None, -120))
                .unwrap_err()
                .code(),
            "TOKEN_EXPIRED"
        );

        let mut other = dev::settings();
        other.issuer = "https://evil.example".into();
        let token =
            DevTokenMinter::new(&other, dev::SECRET)
                .unwrap()
                .mint("u", Role::Officer, None, 60);
        assert_eq!(v.verify(&token).unwrap_err().code(), "TOKEN_INVALID_ISSUER");

        let mut other = dev::settings();
        other.audience = "someone-else".into();
        let token =
            DevTokenMinter::new(&other, dev::SECRET)
                .unwrap()
                .mint("u", Role::Officer, None, 60);
        assert_eq!(
            v.verify(&token).unwrap_err().code(),
            "TOKEN_INVALID_AUDIENCE"
        );

        let token = DevTokenMinter::new(
            &dev::settings(),
            "another-secret-that-is-long-enough-to-sign",
        )
        .unwrap()
        .mint("u", Role::Officer, None, 60);
        assert_eq!(
            v.verify(&token).unwrap_err().code(),
            "TOKEN_INVALID_SIGNATURE"
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let claims = minter().claims("u", Role::Admin, None, 60);
        let b64 = |s: &str| {
            // base64url without padding, enough for a test fixture
            const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let b = s.as_bytes();
            let mut out = String::new();
            for chunk in b.chunks(3) {
                let n =
                    chunk.iter().fold(0u32, |a, &x| (a << 8) | x as u32) << (8 * (3 - chunk.len()));
                for i in 0..=chunk.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        };
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&serde_json::to_string(&claims).unwrap())
        );
        assert_eq!(base64_url_decode(&b64("hello")).unwrap(), b"hello");
        assert_eq!(
            verifier().verify(&token).unwrap_err().code(),
            "TOKEN_ALGORITHM_NOT_ALLOWED"
        );
    }

    #[test]
    fn consortium_tokens_need_a_consortium() {
        let token = minter().mint("u", Role::Consortium, None, 60);
        assert_eq!(
            verifier().verify(&token).unwrap_err().code(),
            "TOKEN_INVALID_CLAIMS"
        );
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let mut s = dev::settings();
        s.algorithm = "none".into();
        assert_eq!(TokenVerifier::new(&s).unwrap_err().key, "algorithm");
        let mut s = dev::settings();
        s.key = SecretString::from("short");
        assert_eq!(TokenVerifier::new(&s).unwrap_err().key, "key");
    }

    fn testdata(file: &str) -> String {
        let path = format!("{}/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Production-like settings: no development mode, public keys only.
    fn prod(algorithm: &str) -> AuthSettings {
        AuthSettings {
            dev_mode: false,
            algorithm: algorithm.into(),
            key: SecretString::from(""),
            ..dev::settings()
        }
    }

    /// A JWKS holding only the test keys named by `kids`.
    fn jwks_of(kids: &[&str]) -> String {
        let all: serde_json::Value = serde_json::from_str(&testdata("jwks.json")).unwrap();
        let keys: Vec<_> = all["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| kids.contains(&k["kid"].as_str().unwrap()))
            .cloned()
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    fn signer(kid: &str) -> DevTokenMinter {
        let alg = if kid.starts_with("ec") {
            "ES256"
        } else {
            "RS256"
        };
        DevTokenMinter::new(&prod(alg), &testdata(&format!("{kid}.key.pem")))
            .unwrap()
            .with_kid(kid)
    }

    fn temp_file(contents: &str) -> String {
        let path = std::env::temp_dir().join(format!("kaip-jwks-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn the_development_secret_needs_development_mode() {
        // Forgetting the key (the default) and naming the public secret are both refused,
        // and the error says what to set.
        for key in ["", dev::SECRET] {
            let mut s = prod("HS256");
            s.key = SecretString::from(key);
            let err = TokenVerifier::new(&s).unwrap_err();
            assert_eq!(err.key, "key", "{err}");
            let text = err.to_string();
            assert!(
                text.contains("KAIP_AUTH__JWKS_URL") && text.contains("KAIP_AUTH__DEV_MODE=true"),
                "{text}"
            );
        }
        // No key at all in development mode: the development secret.
        let mut s = dev::settings();
        s.key = SecretString::from("");
        s.algorithm = String::new();
        let v = TokenVerifier::new(&s).unwrap();
        v.verify(&minter().mint("u", Role::Officer, None, 60))
            .unwrap();
    }

    #[test]
    fn a_shared_secret_needs_development_mode() {
        let mut s = prod("HS256");
        s.key = SecretString::from("another-secret-that-is-long-enough-to-sign");
        let err = TokenVerifier::new(&s).unwrap_err();
        assert_eq!(err.key, "algorithm", "{err}");
        let mut s = prod("RS256");
        s.key = SecretString::from(testdata("rsa-1.pub.pem"));
        assert!(TokenVerifier::new(&s).is_ok());
    }

    #[test]
    fn leeway_is_bounded() {
        let mut s = dev::settings();
        s.leeway_seconds = MAX_LEEWAY_SECONDS + 1;
        assert_eq!(TokenVerifier::new(&s).unwrap_err().key, "leeway_seconds");
        s.leeway_seconds = MAX_LEEWAY_SECONDS;
        assert!(TokenVerifier::new(&s).is_ok());
    }

    #[test]
    fn jwks_urls_must_be_https_or_loopback() {
        for (url, ok) in [
            ("https://idp.example.go.kr/jwks", true),
            ("http://127.0.0.1:8999/jwks", true),
            ("http://[::1]:8999/jwks", true),
            ("http://localhost/jwks", true),
            ("http://idp.example.go.kr/jwks", false),
            ("http://127.0.0.1.evil.example/jwks", false),
            ("ftp://idp/jwks", false),
        ] {
            let mut s = prod("RS256");
            s.jwks_url = Some(url.into());
            assert_eq!(TokenVerifier::new(&s).is_ok(), ok, "{url}");
        }
        let mut s = prod("RS256");
        s.jwks_url = Some("https://idp/jwks".into());
        s.key = SecretString::from(testdata("rsa-1.pub.pem"));
        assert_eq!(TokenVerifier::new(&s).unwrap_err().key, "key");
    }

    #[test]
    fn nbf_is_checked() {
        let m = minter();
        let mut claims = m.claims("u", Role::Officer, None, 600);
        claims.nbf = Some(Utc::now().timestamp() + 300);
        assert_eq!(
            verifier().verify(&m.sign(&claims)).unwrap_err().code(),
            "TOKEN_NOT_YET_VALID"
        );
        // Within the leeway, it is accepted.
        claims.nbf = Some(Utc::now().timestamp() + 10);
        assert!(verifier().verify(&m.sign(&claims)).is_ok());
    }

    #[test]
    fn aud_may_be_an_array() {
        let m = minter();
        let mut claims = m.claims("u", Role::Officer, None, 600);
        claims.aud = Audience::Many(vec!["finance".into(), dev::AUDIENCE.into()]);
        let got = verifier().verify(&m.sign(&claims)).unwrap();
        assert!(got.aud.contains(dev::AUDIENCE));
        claims.aud = Audience::Many(vec!["finance".into(), "hr".into()]);
        assert_eq!(
            verifier().verify(&m.sign(&claims)).unwrap_err().code(),
            "TOKEN_INVALID_AUDIENCE"
        );
    }

    #[tokio::test]
    async fn keys_are_selected_by_kid_from_a_jwks() {
        let mut s = prod("RS256,ES256");
        s.jwks_file = Some(temp_file(&jwks_of(&["rsa-1", "ec-1"])));
        let v = TokenVerifier::new(&s).unwrap();
        for kid in ["rsa-1", "ec-1"] {
            let t = signer(kid).mint("u", Role::Officer, None, 60);
            let claims = v.authenticate(Some(&format!("Bearer {t}"))).await.unwrap();
            assert_eq!(claims.role, Role::Officer, "{kid}");
        }
        // A token that claims the EC key but is signed by the RSA key is refused.
        let lying = DevTokenMinter::new(&prod("RS256"), &testdata("rsa-1.key.pem"))
            .unwrap()
            .with_kid("ec-1")
            .mint("u", Role::Admin, None, 60);
        assert_eq!(
            v.verify(&lying).unwrap_err().code(),
            "TOKEN_ALGORITHM_NOT_ALLOWED"
        );
        // HS256 with the public key as the secret (the classic confusion) is refused.
        assert_eq!(
            v.verify(&minter().mint("u", Role::Admin, None, 60))
                .unwrap_err()
                .code(),
            "TOKEN_ALGORITHM_NOT_ALLOWED"
        );
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_on_an_unknown_kid_at_a_bounded_rate() {
        let path = temp_file(&jwks_of(&["rsa-1"]));
        let mut s = prod("RS256");
        s.jwks_file = Some(path.clone());
        s.jwks_min_refresh_seconds = 3600;
        let limited = TokenVerifier::new(&s).unwrap();
        assert_eq!(
            TokenVerifier::new(&AuthSettings {
                jwks_min_refresh_seconds: 0,
                ..s.clone()
            })
            .unwrap_err()
            .key,
            "jwks_min_refresh_seconds"
        );
        // No rate limit at all is for development (and this test) only.
        s.jwks_min_refresh_seconds = 0;
        s.dev_mode = true;
        let eager = TokenVerifier::new(&s).unwrap();
        let new_token = format!(
            "Bearer {}",
            signer("rsa-2").mint("u", Role::Officer, None, 60)
        );
        assert_eq!(
            eager
                .authenticate(Some(&new_token))
                .await
                .unwrap_err()
                .code(),
            "TOKEN_UNKNOWN_KEY"
        );
        // The provider publishes its new key.
        std::fs::write(&path, jwks_of(&["rsa-1", "rsa-2"])).unwrap();
        eager.authenticate(Some(&new_token)).await.unwrap();
        // Still refused by a verifier whose rate limit has not passed since its first read.
        limited.authenticate(Some(&new_token)).await.unwrap_err();
        assert_eq!(
            limited
                .authenticate(Some(&new_token))
                .await
                .unwrap_err()
                .code(),
            "TOKEN_UNKNOWN_KEY"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_withdrawn_key_stops_verifying_after_the_periodic_refresh() {
        let path = temp_file(&jwks_of(&["rsa-1", "rsa-2"]));
        let mut s = prod("RS256");
        s.jwks_file = Some(path.clone());
        s.jwks_refresh_seconds = 1;
        s.jwks_min_refresh_seconds = 1;
        let v = TokenVerifier::new(&s).unwrap();
        let old = format!(
            "Bearer {}",
            signer("rsa-1").mint("u", Role::Officer, None, 60)
        );
        v.authenticate(Some(&old)).await.unwrap();
        // The provider withdraws rsa-1: a known kid triggers no fetch, only the periodic
        // refresh (in the background, once the keys are a second old) can notice.
        std::fs::write(&path, jwks_of(&["rsa-2"])).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match v.authenticate(Some(&old)).await {
                Err(e) => {
                    assert_eq!(e.code(), "TOKEN_UNKNOWN_KEY");
                    break;
                }
                Ok(_) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the withdrawn key still verifies after 10 s"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }

    /// Keys an identity provider may publish for other relying parties, which jsonwebtoken
    /// 9.3 cannot read or this verifier refuses, each with its `kid`.
    fn unusable_jwks_keys() -> Vec<serde_json::Value> {
        let b64 = |n: usize| "A".repeat(n);
        vec![
            // ES512 (P-521): no such algorithm in jsonwebtoken 9.3.
            serde_json::json!({"kty": "EC", "kid": "es512", "alg": "ES512", "use": "sig",
                "crv": "P-521", "x": b64(88), "y": b64(88)}),
            // A key-agreement key, with and without `use`.
            serde_json::json!({"kty": "EC", "kid": "ecdh", "alg": "ECDH-ES+A256KW",
                "crv": "P-256", "x": b64(43), "y": b64(43)}),
            serde_json::json!({"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": b64(43)}),
            serde_json::json!({"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP-256",
                "n": b64(342), "e": "AQAB"}),
            // A legacy 1024-bit RSA signing key.
            serde_json::json!({"kty": "RSA", "kid": "rsa-1024", "alg": "RS256", "use": "sig",
                "n": b64(171), "e": "AQAB"}),
        ]
    }

    /// A JWKS with the test keys `kids` among the unusable keys.
    fn jwks_with_unusable(kids: &[&str]) -> String {
        let good: serde_json::Value = serde_json::from_str(&jwks_of(kids)).unwrap();
        let mut keys = unusable_jwks_keys();
        keys.extend(good["keys"].as_array().unwrap().iter().cloned());
        serde_json::json!({ "keys": keys }).to_string()
    }

    #[tokio::test]
    async fn unusable_keys_in_a_jwks_are_skipped_not_fatal() {
        let token = |kid| format!("Bearer {}", signer(kid).mint("u", Role::Officer, None, 60));
        // At start: the usable keys load despite their neighbours.
        let path = temp_file(&jwks_with_unusable(&["rsa-1", "ec-1"]));
        let mut s = prod("RS256,ES256");
        s.jwks_file = Some(path.clone());
        s.jwks_min_refresh_seconds = 0;
        s.dev_mode = true;
        let v = TokenVerifier::new(&s).unwrap();
        for kid in ["rsa-1", "ec-1"] {
            v.authenticate(Some(&token(kid))).await.unwrap();
        }
        // On a refresh: a rotated key is picked up despite them.
        std::fs::write(&path, jwks_with_unusable(&["rsa-1", "rsa-2"])).unwrap();
        v.authenticate(Some(&token("rsa-2"))).await.unwrap();
        // The skipped 1024-bit key is not a key to verify by.
        let weak = DevTokenMinter::new(&prod("RS256"), &testdata("rsa-1.key.pem"))
            .unwrap()
            .with_kid("rsa-1024")
            .mint("u", Role::Officer, None, 60);
        assert_eq!(
            v.authenticate(Some(&format!("Bearer {weak}")))
                .await
                .unwrap_err()
                .code(),
            "TOKEN_UNKNOWN_KEY"
        );
        // Nothing usable at all is still an error, naming what was skipped and why.
        std::fs::write(&path, jwks_with_unusable(&[])).unwrap();
        let err = TokenVerifier::new(&s).unwrap_err();
        assert_eq!(err.key, "jwks_file");
        let text = err.to_string();
        for kid in ["es512", "x25519", "rsa-1024"] {
            assert!(text.contains(&format!("`{kid}`")), "{text}");
        }
        assert!(text.contains("2048 bits"), "{text}");
        let _ = std::fs::remove_file(&path);
    }

    /// A stand-in identity provider on `listener`: answers every request with `jwks`, or,
    /// while `hang` is set, takes the connection and never answers.
    fn stand_in_idp(
        listener: std::net::TcpListener,
        jwks: String,
        hang: Arc<std::sync::atomic::AtomicBool>,
    ) {
        use std::io::{Read, Write};
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if hang.load(std::sync::atomic::Ordering::SeqCst) {
                    held.push(conn);
                    continue;
                }
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                    jwks.len()
                );
            }
        });
    }

    #[tokio::test]
    async fn keys_load_within_seconds_once_an_absent_provider_comes_up() {
        // The provider is down at start: nothing listens on its port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = prod("RS256");
        s.jwks_url = Some(format!("http://127.0.0.1:{port}/jwks"));
        assert!(s.jwks_min_refresh_seconds >= 10, "the default rate limit");
        let v = TokenVerifier::new(&s).unwrap();
        let token = format!(
            "Bearer {}",
            signer("rsa-1").mint("u", Role::Officer, None, 60)
        );
        for _ in 0..3 {
            assert_eq!(
                v.authenticate(Some(&token)).await.unwrap_err().code(),
                "AUTH_KEYS_UNAVAILABLE"
            );
        }
        // It comes up: the token verifies within about two seconds, not after the rate
        // limit of successful fetches.
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let up = std::time::Instant::now();
        stand_in_idp(listener, jwks_of(&["rsa-1"]), Arc::default());
        loop {
            match v.authenticate(Some(&token)).await {
                Ok(_) => break,
                Err(e) => {
                    assert_eq!(e.code(), "AUTH_KEYS_UNAVAILABLE");
                    assert!(
                        up.elapsed() < Duration::from_secs(2),
                        "no keys {:?} after the provider came back",
                        up.elapsed()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    #[tokio::test]
    async fn stale_keys_start_one_background_refresh_at_a_time() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
        stand_in_idp(listener, jwks_of(&["rsa-1"]), hang.clone());
        let mut s = prod("RS256");
        s.jwks_url = Some(format!("http://127.0.0.1:{port}/jwks"));
        s.jwks_refresh_seconds = 1;
        s.jwks_min_refresh_seconds = 1;
        let v = TokenVerifier::new(&s).unwrap();
        let token = format!(
            "Bearer {}",
            signer("rsa-1").mint("u", Role::Officer, None, 60)
        );
        v.authenticate(Some(&token)).await.unwrap();
        // The provider stops answering (a refresh hangs until the client's timeout) and the
        // keys grow stale; requests go on with the keys in hand.
        hang.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        for _ in 0..50 {
            v.authenticate(Some(&token)).await.unwrap();
        }
        // Let every spawned task be polled.
        tokio::task::yield_now().await;
        let spawned = metrics.num_alive_tasks() - before;
        assert!(
            spawned <= 1,
            "{spawned} background refreshes for 50 requests"
        );
    }

    #[test]
    fn a_bad_jwks_file_stops_the_start() {
        let mut s = prod("RS256");
        s.jwks_file = Some(temp_file("{\"keys\": []}"));
        assert_eq!(TokenVerifier::new(&s).unwrap_err().key, "jwks_file");
        s.jwks_file = Some("/nonexistent/jwks.json".into());
        assert_eq!(TokenVerifier::new(&s).unwrap_err().key, "jwks_file");
    }

    #[test]
    fn integration_scopes_narrow_the_integration_role_only() {
        let m = minter();
        let t = m.mint_integration(
            "gpu-operator",
            &[scopes::events_scope("gpu-ledger").as_str()],
            60,
        );
        let c = verifier().verify(&t).unwrap();
        assert!(c.has_scope("events:gpu-ledger"));
        assert!(!c.has_scope(scopes::READ_CONSORTIA));
        let officer = verifier()
            .verify(&m.mint("o", Role::Officer, None, 60))
            .unwrap();
        assert!(officer.has_scope(scopes::READ_CONSORTIA));
    }
}
