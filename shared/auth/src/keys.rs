//! Where verification keys come from: one configured key, or a JWKS (a file or an URL)
//! whose keys are selected by the token's `kid` and re-read so that the identity provider
//! can rotate them.
//!
//! A JWKS is re-read when it is older than `jwks_refresh_seconds` (in the background, the
//! request goes on with the keys in hand) and when a token names a `kid` it does not hold
//! (inline, at most once per `jwks_min_refresh_seconds`, so that tokens with made-up `kid`s
//! cannot turn the verifier into a flood of requests to the identity provider). A failed
//! refresh keeps the keys in hand. While no key was ever loaded (the provider was away at
//! start), a fetch is retried at most once per `NEVER_LOADED_RETRY`, so that the platform
//! recovers within about a second of the provider's return rather than after
//! `jwks_min_refresh_seconds`.

use crate::{AuthConfigError, AuthError};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A key and the one algorithm it verifies.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub key: DecodingKey,
    pub alg: Algorithm,
}

pub(crate) enum Source {
    Static(VerifyKey),
    File(String),
    Url { url: String, http: reqwest::Client },
}

#[derive(Default)]
struct Loaded {
    by_kid: HashMap<String, VerifyKey>,
    /// Keys without a `kid` (usable only by a token without one, when it is the only key).
    anonymous: Vec<VerifyKey>,
    fetched_at: Option<Instant>,
}

struct State {
    loaded: RwLock<Arc<Loaded>>,
    /// When a fetch was last attempted (successful or not): the rate limit.
    last_attempt: Mutex<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    /// A background refresh is in flight: stale keys spawn no other (which would only
    /// queue on `fetching`, one task per request).
    refreshing: Arc<AtomicBool>,
}

pub(crate) struct KeyStore {
    source: Source,
    allowed: Vec<Algorithm>,
    refresh: Duration,
    min_refresh: Duration,
    state: State,
}

/// While no key was ever loaded, how often a fetch may be retried (instead of
/// `min_refresh`: every request fails until the keys load).
const NEVER_LOADED_RETRY: Duration = Duration::from_secs(1);

/// Most an identity provider's JWKS may weigh; anything larger is refused, not read whole.
const MAX_JWKS_BYTES: usize = 256 * 1024;

impl KeyStore {
    pub fn new(
        source: Source,
        allowed: Vec<Algorithm>,
        refresh: Duration,
        min_refresh: Duration,
    ) -> Result<Self, AuthConfigError> {
        let store = Self {
            source,
            allowed,
            refresh,
            min_refresh,
            state: State {
                loaded: RwLock::new(Arc::new(Loaded::default())),
                last_attempt: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
                refreshing: Arc::new(AtomicBool::new(false)),
            },
        };
        // A file is read now, so a bad one stops the process at start. An URL is fetched on
        // first use: an identity provider that is briefly away must not crash-loop the
        // platform.
        if let Source::File(path) = &store.source {
            let text = std::fs::read_to_string(path).map_err(|e| AuthConfigError {
                key: "jwks_file",
                message: format!("cannot read `{path}`: {e}"),
            })?;
            let loaded = parse_jwks(&text, &store.allowed).map_err(|message| AuthConfigError {
                key: "jwks_file",
                message,
            })?;
            store.install(loaded);
            if let Ok(mut last) = store.state.last_attempt.lock() {
                *last = Some(Instant::now());
            }
        }
        Ok(store)
    }

    fn current(&self) -> Arc<Loaded> {
        match self.state.loaded.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn install(&self, mut loaded: Loaded) {
        loaded.fetched_at = Some(Instant::now());
        let loaded = Arc::new(loaded);
        match self.state.loaded.write() {
            Ok(mut g) => *g = loaded,
            Err(p) => *p.into_inner() = loaded,
        }
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Result<Option<VerifyKey>, AuthError> {
        if let Source::Static(k) = &self.source {
            return Ok(Some(k.clone()));
        }
        let loaded = self.current();
        let found = match kid {
            Some(kid) => loaded.by_kid.get(kid).cloned(),
            None => match (loaded.by_kid.len(), loaded.anonymous.len()) {
                (0, 1) => loaded.anonymous.first().cloned(),
                (1, 0) => loaded.by_kid.values().next().cloned(),
                (0, 0) => None,
                _ => {
                    return Err(AuthError::Malformed(
                        "the token has no `kid` and the identity provider has several keys".into(),
                    ))
                }
            },
        };
        match found {
            Some(k) if k.alg != alg => Err(AuthError::AlgorithmNotAllowed(format!(
                "{:?} (the key `{}` is for {:?})",
                k.alg,
                kid.unwrap_or("-"),
                k.alg
            ))),
            other => Ok(other),
        }
    }

    /// The key to verify a token with `kid` and `alg` by, fetching the JWKS if need be.
    pub async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<VerifyKey, AuthError> {
        if matches!(self.source, Source::Static(_)) {
            return self.key_now(kid, alg);
        }
        let loaded = self.current();
        match loaded.fetched_at {
            None => {
                self.fetch_limited().await;
            }
            Some(at) if at.elapsed() >= self.refresh => {
                // Stale: refresh in the background, unless a refresh is already under way,
                // and go on with the keys in hand.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    if let Some(flag) = InFlight::claim(&self.state.refreshing) {
                        let me = Arc::clone(self);
                        rt.spawn(async move {
                            let _flag = flag;
                            me.fetch_limited().await;
                        });
                    }
                }
            }
            Some(_) => {}
        }
        if let Some(k) = self.lookup(kid, alg)? {
            return Ok(k);
        }
        // An unknown `kid`: perhaps the provider rotated its keys.
        self.fetch_limited().await;
        match self.lookup(kid, alg)? {
            Some(k) => Ok(k),
            None if self.current().fetched_at.is_none() => Err(AuthError::KeysUnavailable),
            None => Err(AuthError::UnknownKey(kid.unwrap_or("").to_owned())),
        }
    }

    /// Without fetching: the keys in hand.
    pub fn key_now(&self, kid: Option<&str>, alg: Algorithm) -> Result<VerifyKey, AuthError> {
        match self.lookup(kid, alg)? {
            Some(k) => Ok(k),
            None if self.current().fetched_at.is_none() => Err(AuthError::KeysUnavailable),
            None => Err(AuthError::UnknownKey(kid.unwrap_or("").to_owned())),
        }
    }

    /// Fetches the JWKS unless one was attempted less than `min_refresh` ago (or, while no
    /// key was ever loaded, less than `NEVER_LOADED_RETRY` ago).
    async fn fetch_limited(&self) {
        let _one = self.state.fetching.lock().await;
        {
            let limit = if self.current().fetched_at.is_none() {
                self.min_refresh.min(NEVER_LOADED_RETRY)
            } else {
                self.min_refresh
            };
            let mut last = match self.state.last_attempt.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if last.is_some_and(|t| t.elapsed() < limit) {
                return;
            }
            *last = Some(Instant::now());
        }
        match self.fetch().await {
            Ok(loaded) => {
                tracing::info!(keys = loaded.by_kid.len(), "identity provider keys loaded");
                self.install(loaded);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh the identity provider's keys; keeping the keys in hand")
            }
        }
    }

    async fn fetch(&self) -> Result<Loaded, String> {
        let text = match &self.source {
            Source::Static(_) => return Err("a single configured key is not fetched".into()),
            // A JWKS file is a few kilobytes: reading it inline is cheaper than a thread hop.
            Source::File(path) => {
                std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?
            }
            Source::Url { url, http } => {
                let mut res = http
                    .get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("fetching {url}: {e}"))?;
                let mut body = Vec::new();
                while let Some(chunk) = res
                    .chunk()
                    .await
                    .map_err(|e| format!("reading {url}: {e}"))?
                {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(format!(
                            "{url}: the JWKS is larger than {MAX_JWKS_BYTES} bytes"
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                String::from_utf8(body).map_err(|_| format!("{url}: the JWKS is not UTF-8"))?
            }
        };
        parse_jwks(&text, &self.allowed)
    }
}

/// The claim on the one background refresh: released when dropped, so that a refresh that
/// ends (or panics, or is cancelled with its runtime) lets the next one start.
struct InFlight(Arc<AtomicBool>);

impl InFlight {
    fn claim(flag: &Arc<AtomicBool>) -> Option<Self> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Self(Arc::clone(flag)))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The algorithm a JWK verifies: its `alg`, else what its key type implies.
fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(a) = jwk.common.key_algorithm {
        return match a {
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            KeyAlgorithm::HS256 => Some(Algorithm::HS256),
            _ => None,
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// Reads a JWKS, keeping the signing keys of the allowed algorithms. Keys of other
/// algorithms and encryption keys are skipped, and so is, with a warning, a key that cannot
/// be used (one jsonwebtoken cannot read, such as an ES512 or X25519 key, or an RSA key
/// shorter than 2048 bits): an identity provider publishes keys for other relying parties
/// too, and one of them must not hide the keys this verifier needs. A set with no usable key
/// is an error.
fn parse_jwks(text: &str, allowed: &[Algorithm]) -> Result<Loaded, String> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet =
        serde_json::from_str(text).map_err(|e| format!("not a JWKS (RFC 7517): {e}"))?;
    let mut loaded = Loaded::default();
    let mut skipped = Vec::new();
    for raw in set.keys {
        let kid = raw.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        match (usable_key(raw, allowed), kid) {
            (Ok(Some(vk)), Some(kid)) => {
                loaded.by_kid.insert(kid, vk);
            }
            (Ok(Some(vk)), None) => loaded.anonymous.push(vk),
            (Ok(None), _) => {}
            (Err(why), kid) => {
                let kid = kid.as_deref().unwrap_or("-");
                tracing::warn!(kid, reason = %why, "skipping an unusable key of the identity provider's JWKS");
                skipped.push(format!("key `{kid}`: {why}"));
            }
        }
    }
    if loaded.by_kid.is_empty() && loaded.anonymous.is_empty() {
        let mut message =
            format!("the JWKS has no signing key for the allowed algorithms ({allowed:?})");
        if !skipped.is_empty() {
            message.push_str(&format!(" (skipped: {})", skipped.join("; ")));
        }
        return Err(message);
    }
    Ok(loaded)
}

/// One JWK as a verification key: `Ok(None)` for a key this verifier does not use (an
/// encryption key, another algorithm), `Err` for one it cannot use.
fn usable_key(raw: serde_json::Value, allowed: &[Algorithm]) -> Result<Option<VerifyKey>, String> {
    if raw.get("use").and_then(|u| u.as_str()) == Some("enc") {
        return Ok(None);
    }
    let jwk: Jwk =
        serde_json::from_value(raw).map_err(|e| format!("not a key jsonwebtoken reads: {e}"))?;
    if matches!(
        jwk.common.public_key_use,
        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
    ) {
        return Ok(None);
    }
    let Some(alg) = jwk_algorithm(&jwk).filter(|a| allowed.contains(a)) else {
        return Ok(None);
    };
    if let AlgorithmParameters::RSA(p) = &jwk.algorithm {
        // 2048 bits of modulus are 342 base64url characters.
        if p.n.trim_end_matches('=').len() < 342 {
            return Err("RSA keys shorter than 2048 bits are refused".into());
        }
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    Ok(Some(VerifyKey { key, alg }))
}
