//! A TCP proxy for outage tests: it can drop every live connection and refuse new ones,
//! then come back, so a test can take a dependency away from one service without touching
//! the shared server. In front of PostgreSQL it cuts everything. In front of a Kafka broker
//! it only governs the bootstrap connection: clients then connect to the address the
//! broker advertises, so it can keep a broker away from a client's start, not cut a live
//! client off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct TcpProxy {
    port: u16,
    up: Arc<AtomicBool>,
    /// Bumped by [`TcpProxy::cut`]: every connection opened before it closes.
    generation: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free local port and forwards to `target` (`host:port`), up or down.
    pub async fn start(target: &str, up: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(up));
        let (generation, _) = watch::channel(0u64);
        let accept = {
            let up = up.clone();
            let generation = generation.clone();
            let target = target.to_owned();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client); // refused: the client sees the connection close at once
                        continue;
                    }
                    let mut cut = generation.subscribe();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = cut.changed() => {}
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        }
                    });
                }
            })
        };
        Self {
            port,
            up,
            generation,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Drops every live connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}
