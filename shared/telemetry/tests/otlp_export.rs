//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported over OTLP/HTTP. A plain TCP
//! listener stands in for the collector and records what arrives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn spans_are_exported_over_otlp_http_when_an_endpoint_is_configured() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel::<(String, Vec<u8>)>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("request line");
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("header");
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            let _ = tx.send((request_line, body));
        }
    });

    // The only test in this binary: setting the variable cannot race another test.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    );
    let guard = kaip_telemetry::init("kaip-otlp-test", kaip_telemetry::LogOutput::Sink);
    let trace_id = {
        let span = tracing::info_span!("exported.span");
        let _entered = span.enter();
        kaip_telemetry::current_trace_id().expect("spans have trace ids")
    };
    drop(guard); // shutting the provider down flushes the batch

    let (request_line, body) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the collector received an export");
    assert!(
        request_line.starts_with("POST /v1/traces"),
        "{request_line}"
    );
    // The protobuf body carries the span name and the 16-byte trace id verbatim.
    let needle = b"exported.span";
    assert!(
        body.windows(needle.len()).any(|w| w == needle),
        "span name in the export"
    );
    let id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert!(
        body.windows(16).any(|w| w == id.as_slice()),
        "trace id in the export"
    );
}
