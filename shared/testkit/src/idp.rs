//! A stand-in identity provider for tests: it serves a JWKS over HTTP on loopback and signs
//! RS256 and ES256 tokens with the checked-in test keys (`shared/auth/testdata`), so tests
//! exercise key selection by `kid` and rotation without downloading anything.

use kaip_auth::{AuthSettings, DevTokenMinter};
use kaip_contracts::{ConsortiumId, Role};
use secrecy::SecretString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The issuer the test identity provider's tokens carry (not the development one).
pub const ISSUER: &str = "https://idp.test.kaip.example";

/// A test key file's contents (`rsa-1.key.pem`, `ec-1.pub.pem`, `jwks.json`, ...).
pub fn testdata(file: &str) -> String {
    let path = format!("{}/../auth/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The JWKS holding the public halves of the test keys named by `kids`.
pub fn jwks_of(kids: &[&str]) -> String {
    let all: serde_json::Value =
        serde_json::from_str(&testdata("jwks.json")).unwrap_or_else(|e| panic!("jwks.json: {e}"));
    let keys: Vec<serde_json::Value> = all["keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|k| k["kid"].as_str().is_some_and(|kid| kids.contains(&kid)))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({ "keys": keys }).to_string()
}

/// A running stand-in identity provider. Stops serving when dropped.
pub struct TestIdp {
    pub jwks_url: String,
    published: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl TestIdp {
    /// Serves a JWKS with the test keys `kids` (of `rsa-1`, `rsa-2`, `ec-1`).
    pub fn start(kids: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let published = Arc::new(Mutex::new(jwks_of(kids)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, f, s) = (published.clone(), fetches.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let body = p.lock().map(|b| b.clone()).unwrap_or_default();
                f.fetch_add(1, Ordering::SeqCst);
                serve(conn, &body);
            }
        });
        Self {
            jwks_url: format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
            published,
            fetches,
            stop,
            port,
        }
    }

    /// Publishes the keys `kids` from now on (a rotation).
    pub fn publish(&self, kids: &[&str]) {
        if let Ok(mut b) = self.published.lock() {
            *b = jwks_of(kids);
        }
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Verification settings a platform trusting this provider runs with: no development
    /// mode, RS256 and ES256 from the JWKS, unknown `kid`s re-fetched at most once a second.
    pub fn settings(&self) -> AuthSettings {
        AuthSettings {
            issuer: ISSUER.into(),
            audience: kaip_auth::dev::AUDIENCE.into(),
            algorithm: "RS256,ES256".into(),
            key: SecretString::from(""),
            jwks_file: None,
            jwks_url: Some(self.jwks_url.clone()),
            jwks_refresh_seconds: 300,
            jwks_min_refresh_seconds: 1,
            dev_mode: false,
            leeway_seconds: 30,
        }
    }

    /// A minter signing with the test key `kid` (`rsa-*` RS256, `ec-*` ES256).
    pub fn minter(&self, kid: &str) -> DevTokenMinter {
        let mut s = self.settings();
        s.algorithm = if kid.starts_with("ec") {
            "ES256"
        } else {
            "RS256"
        }
        .into();
        DevTokenMinter::new(&s, &testdata(&format!("{kid}.key.pem")))
            .unwrap_or_else(|e| panic!("test key {kid}: {e}"))
            .with_kid(kid)
    }

    /// `Authorization` value for `role`, signed with the test key `kid`.
    pub fn bearer(&self, kid: &str, role: Role, consortium: Option<ConsortiumId>) -> String {
        format!(
            "Bearer {}",
            self.minter(kid)
                .mint(&format!("idp-{role}"), role, consortium, 3600)
        )
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(200),
        );
    }
}

fn serve(mut conn: TcpStream, body: &str) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.len() > 64 * 1024 {
            break;
        }
    }
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}
