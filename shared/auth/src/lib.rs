//! Authentication for every K-AIP process.
//!
//! Tokens are JWTs issued by the ministry's identity provider in production and minted by
//! `kaip-dev-token` locally. The verifier pins the algorithm, the issuer and the audience and
//! requires `exp`; a token signed with `alg: none`, another algorithm, or another key is
//! refused with a stable code. The gateway and each service run the same check on the same
//! token, so the gateway is not the only line of defence.

use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kaip_contracts::{ConsortiumId, Role};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// What a token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub role: Role,
    /// Required for `consortium` tokens; the only consortium such a caller may act for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consortium_id: Option<ConsortiumId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Claims {
    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role)
    }

    /// May this caller act for or read data of `consortium`? Ministry staff and integrations
    /// may; a consortium user only for its own consortium.
    pub fn may_access_consortium(&self, consortium: ConsortiumId) -> bool {
        match self.role {
            Role::Admin | Role::Officer | Role::Integration => true,
            Role::Consortium => self.consortium_id == Some(consortium),
            Role::Reviewer | Role::System => false,
        }
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
    #[error("the token's issuer (`iss`) is not the one this platform trusts")]
    InvalidIssuer,
    #[error("the token's audience (`aud`) is not this platform")]
    InvalidAudience,
    #[error("the token's signature does not verify with the configured key")]
    InvalidSignature,
    #[error("the token's algorithm is not allowed: only {0} is accepted")]
    AlgorithmNotAllowed(String),
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
            AuthError::InvalidIssuer => "TOKEN_INVALID_ISSUER",
            AuthError::InvalidAudience => "TOKEN_INVALID_AUDIENCE",
            AuthError::InvalidSignature => "TOKEN_INVALID_SIGNATURE",
            AuthError::AlgorithmNotAllowed(_) => "TOKEN_ALGORITHM_NOT_ALLOWED",
            AuthError::InvalidClaims(_) => "TOKEN_INVALID_CLAIMS",
            AuthError::Forbidden { .. } => "FORBIDDEN",
        }
    }

    /// 401 for who-are-you problems, 403 for you-may-not.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::Forbidden { .. })
    }
}

/// The verification half of the auth configuration (every process has it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    /// `HS256`, `RS256`, `ES256` or `EdDSA`. Pinned: tokens with any other `alg` are refused.
    pub algorithm: String,
    /// HS256: the shared secret. RS256/ES256/EdDSA: the identity provider's public key (PEM).
    pub key: SecretString,
    /// Allowed clock skew in seconds for `exp`.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_leeway() -> u64 {
    30
}

/// Checks bearer tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    algorithm: Algorithm,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("auth.{key}: {message}")]
pub struct AuthConfigError {
    pub key: &'static str,
    pub message: String,
}

fn parse_algorithm(name: &str) -> Result<Algorithm, AuthConfigError> {
    let alg = Algorithm::from_str(name).map_err(|_| AuthConfigError {
        key: "algorithm",
        message: format!("`{name}` is not a JWT algorithm; use HS256, RS256, ES256 or EdDSA"),
    })?;
    match alg {
        Algorithm::HS256 | Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA => Ok(alg),
        _ => Err(AuthConfigError {
            key: "algorithm",
            message: format!("`{name}` is not supported; use HS256, RS256, ES256 or EdDSA"),
        }),
    }
}

impl TokenVerifier {
    pub fn new(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        let algorithm = parse_algorithm(&settings.algorithm)?;
        let secret = settings.key.expose_secret();
        let bad_key = |e: jsonwebtoken::errors::Error| AuthConfigError {
            key: "key",
            message: format!("not a valid PEM public key for {}: {e}", settings.algorithm),
        };
        let key = match algorithm {
            Algorithm::HS256 => {
                if secret.len() < 32 {
                    return Err(AuthConfigError {
                        key: "key",
                        message: "an HS256 secret must be at least 32 bytes".into(),
                    });
                }
                DecodingKey::from_secret(secret.as_bytes())
            }
            Algorithm::RS256 => DecodingKey::from_rsa_pem(secret.as_bytes()).map_err(bad_key)?,
            Algorithm::ES256 => DecodingKey::from_ec_pem(secret.as_bytes()).map_err(bad_key)?,
            _ => DecodingKey::from_ed_pem(secret.as_bytes()).map_err(bad_key)?,
        };
        if settings.issuer.trim().is_empty() {
            return Err(AuthConfigError {
                key: "issuer",
                message: "must not be empty".into(),
            });
        }
        if settings.audience.trim().is_empty() {
            return Err(AuthConfigError {
                key: "audience",
                message: "must not be empty".into(),
            });
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = settings.leeway_seconds;
        validation.validate_exp = true;
        Ok(Self {
            key,
            validation,
            algorithm,
        })
    }

    /// Verifies an `Authorization` header value (`Bearer <jwt>`); `None` means no header.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Claims, AuthError> {
        let header = header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(AuthError::MissingToken)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                AuthError::Malformed("the Authorization header must be `Bearer <jwt>`".into())
            })?;
        self.verify(token.trim())
    }

    /// Verifies a raw JWT.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        // Read the header ourselves first: jsonwebtoken cannot even parse `alg: none`, and
        // we want that case to say "algorithm not allowed" rather than "malformed".
        let alg = header_alg(token)?;
        if alg != format!("{:?}", self.algorithm) {
            return Err(AuthError::AlgorithmNotAllowed(format!(
                "{:?}",
                self.algorithm
            )));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidIssuer => AuthError::InvalidIssuer,
                ErrorKind::InvalidAudience => AuthError::InvalidAudience,
                ErrorKind::InvalidSignature => AuthError::InvalidSignature,
                ErrorKind::InvalidAlgorithm => {
                    AuthError::AlgorithmNotAllowed(format!("{:?}", self.algorithm))
                }
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::InvalidClaims(format!("`{c}` is required"))
                }
                ErrorKind::Json(err) => AuthError::InvalidClaims(err.to_string()),
                _ => AuthError::Malformed(e.to_string()),
            },
        )?;
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

fn header_alg(token: &str) -> Result<String, AuthError> {
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
    value
        .get("alg")
        .and_then(|a| a.as_str())
        .map(str::to_owned)
        .ok_or_else(|| AuthError::Malformed("the header has no `alg`".into()))
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
}

impl DevTokenMinter {
    /// `signing_key` is the HS256 secret, or a PEM private key for the asymmetric algorithms.
    pub fn new(settings: &AuthSettings, signing_key: &str) -> Result<Self, AuthConfigError> {
        let algorithm = parse_algorithm(&settings.algorithm)?;
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
        })
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
            aud: self.audience.clone(),
            iat: now,
            exp: now + ttl_seconds,
            role,
            consortium_id,
            name: None,
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key).unwrap_or_else(|e| {
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
}

/// The development defaults shared by `make run`, the tests and `kaip-dev-token`.
pub mod dev {
    use super::AuthSettings;
    use secrecy::SecretString;

    pub const ISSUER: &str = "https://idp.kaip.local";
    pub const AUDIENCE: &str = "kaip";
    /// Only for local runs and tests; a deployment must set `KAIP_AUTH__KEY`.
    pub const SECRET: &str = "kaip-local-development-secret-change-me-in-production";

    pub fn settings() -> AuthSettings {
        AuthSettings {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            algorithm: "HS256".into(),
            key: SecretString::from(SECRET),
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
}
