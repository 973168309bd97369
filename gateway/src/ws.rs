//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`, and the legacy
//! `graphql-ws`), with the bounds a public socket needs. async-graphql speaks the protocol;
//! this module stands between it and the socket and enforces:
//!
//! * **`connection_init` in time**: a socket that has not sent it within
//!   `limits.ws_init_timeout_ms` is closed with **4408** `Connection initialisation timeout`
//!   (the code graphql-transport-ws gives it);
//! * **the token's lifetime**: at the token's `exp` every active subscription gets an
//!   `error` with `extensions.code = "TOKEN_EXPIRED"` and the socket is closed with **4401**
//!   `TOKEN_EXPIRED`; the client reconnects with a fresh token;
//! * **a cap on subscriptions**: a `subscribe` beyond `limits.ws_max_subscriptions` active
//!   ones is answered with an `error` (code `TOO_MANY_SUBSCRIPTIONS`) for that id, and the
//!   others carry on;
//! * **liveness**: the server pings every 5 s and drops a peer silent for 30 s;
//! * **no stalls**: a message the client does not take within 5 s closes the socket (1008),
//!   and a client more than 16 messages ahead of the server is closed with **4429**
//!   `too many messages`, so that no socket holds its task (and its timers) forever;
//! * **subscriptions only**: a `subscribe` whose selected operation is a query or a
//!   mutation is answered with an `error` (code `SUBSCRIPTIONS_ONLY`) for that id. Queries
//!   and mutations go through `POST /graphql`, where each request gets its call budget, its
//!   deadline and its loaders; async-graphql would run them here with none of these.

use crate::schema::{GatewaySchema, RequestAuth};
use crate::settings::GatewayLimits;
use actix_web::http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use async_graphql::http::{WebSocket, WebSocketProtocols, WsMessage};
use futures::StreamExt;
use kaip_auth::TokenVerifier;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;

/// Close code for a token that expired while the socket was open.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4401;
/// Close code for a socket that did not send `connection_init` in time.
pub const CLOSE_INIT_TIMEOUT: u16 = 4408;

/// Close code for a client that sent more messages than the server had yet taken in.
pub const CLOSE_TOO_MANY_MESSAGES: u16 = 4429;
/// Close code for a client that did not take a message within [`SEND_TIMEOUT`].
pub const CLOSE_NOT_READING: u16 = 1008;

/// How long one message to the client may wait for the client to read.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Client messages queued for async-graphql; more than this closes with 4429.
const INBOX_MESSAGES: usize = 16;
const PING_EVERY: Duration = Duration::from_secs(5);
const SILENT_FOR: Duration = Duration::from_secs(30);
/// Largest client message (a subscribe with its query); larger frames close the socket.
const MAX_MESSAGE_BYTES: usize = 256 << 10;

/// Upgrades the request and serves the connection on the current worker.
pub fn start(
    schema: GatewaySchema,
    verifier: TokenVerifier,
    limits: GatewayLimits,
    req: &HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let protocol = req
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| {
            list.split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
        .ok_or_else(|| {
            actix_web::error::ErrorBadRequest(
                "Sec-WebSocket-Protocol must be graphql-transport-ws (or graphql-ws)",
            )
        })?;
    let (mut response, session, stream) = actix_ws::handle(req, payload)?;
    response.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol.sec_websocket_protocol()),
    );
    let stream = stream
        .max_frame_size(MAX_MESSAGE_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE_BYTES);
    actix_web::rt::spawn(serve(schema, verifier, limits, protocol, session, stream));
    Ok(response)
}

fn close_reason(code: u16, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::Other(code),
        description: Some(description.to_owned()),
    })
}

/// An `error` message for one operation, in the protocol's shape.
fn operation_error(protocol: WebSocketProtocols, id: &str, code: &str, message: &str) -> String {
    let error = json!({ "message": message, "extensions": { "code": code } });
    match protocol {
        WebSocketProtocols::GraphQLWS => json!({ "type": "error", "id": id, "payload": [error] }),
        WebSocketProtocols::SubscriptionsTransportWS => {
            json!({ "type": "error", "id": id, "payload": error })
        }
    }
    .to_string()
}

/// Checks that a `subscribe` (or legacy `start`) payload selects a subscription, the way
/// async-graphql selects the operation to run: by `operationName`, or the document's only
/// operation. Anything else (a query, a mutation, a document that does not parse or has no
/// such operation) is refused with an error code and message.
fn subscription_only(payload: &Value) -> Result<(), (&'static str, String)> {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let query = payload["query"].as_str().unwrap_or_default();
    let doc = async_graphql::parser::parse_query(query)
        .map_err(|e| ("BAD_USER_INPUT", format!("the query does not parse: {e}")))?;
    let name = payload["operationName"].as_str();
    let operation = match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => Some(op),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => {
            return Err((
                "BAD_USER_INPUT",
                "the document has several operations: give operationName".into(),
            ))
        }
    };
    let Some(operation) = operation else {
        return Err((
            "BAD_USER_INPUT",
            format!(
                "the document has no operation named {:?}",
                name.unwrap_or("")
            ),
        ));
    };
    match operation.node.ty {
        OperationType::Subscription => Ok(()),
        OperationType::Query | OperationType::Mutation => Err((
            "SUBSCRIPTIONS_ONLY",
            format!(
                "this socket carries subscriptions only; send the {} with POST /graphql",
                operation.node.ty
            ),
        )),
    }
}

/// When a token with `exp` (seconds since the epoch) runs out, as a timer deadline. An `exp`
/// already past (a token accepted within the verifier's leeway) is now; one absurdly far
/// away is capped at a year rather than overflowing the clock.
fn expiry(exp: i64) -> Instant {
    let left = exp.saturating_sub(chrono::Utc::now().timestamp());
    let left = u64::try_from(left).unwrap_or(0).min(365 * 24 * 3600);
    Instant::now() + Duration::from_secs(left)
}

async fn serve(
    schema: GatewaySchema,
    verifier: TokenVerifier,
    limits: GatewayLimits,
    protocol: WebSocketProtocols,
    mut session: Session,
    mut client: actix_ws::AggregatedMessageStream,
) {
    // Client messages reach async-graphql through this channel, after the checks below.
    let (to_inner, from_client) = tokio::sync::mpsc::channel::<Vec<u8>>(INBOX_MESSAGES);
    let incoming = futures::stream::unfold(from_client, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    });
    let init_verifier = verifier.clone();
    let inner = WebSocket::new(schema, incoming, protocol).on_connection_init(move |value| {
        let init_verifier = init_verifier.clone();
        async move {
            let header = crate::connection_token(&value);
            match crate::authenticate(&init_verifier, header.as_deref()).await {
                RequestAuth(Ok(authed)) => {
                    let mut data = async_graphql::Data::default();
                    data.insert(RequestAuth(Ok(authed)));
                    Ok(data)
                }
                RequestAuth(Err(e)) => Err(crate::schema::auth_error(&e)),
            }
        }
    });
    let mut inner = std::pin::pin!(inner);

    let init_deadline = Instant::now() + Duration::from_millis(limits.ws_init_timeout_ms);
    // Set once a valid token arrived in `connection_init`.
    let mut expires_at: Option<Instant> = None;
    let mut active: HashSet<String> = HashSet::new();
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;

    // Every send to the client is bounded by SEND_TIMEOUT: a client that stops reading
    // while keeping TCP open would otherwise stop this loop (and its timers) for good.
    macro_rules! send {
        ($label:lifetime, $send:expr) => {
            match tokio::time::timeout(SEND_TIMEOUT, $send).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => break $label close_reason(CLOSE_NOT_READING, "the client does not read"),
            }
        };
    }

    let close = 'serve: loop {
        let exp_timer = async {
            match expires_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let init_timer = async {
            if expires_at.is_none() {
                tokio::time::sleep_until(init_deadline).await
            } else {
                std::future::pending().await
            }
        };
        // Biased: the deadlines come first, so that nothing is delivered after the token's
        // expiry and a busy socket cannot put them off.
        tokio::select! {
            biased;
            _ = init_timer => {
                break close_reason(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout");
            }
            _ = exp_timer => {
                let message = "the token expired: reconnect with a fresh one";
                for id in active.drain() {
                    let error = operation_error(protocol, &id, "TOKEN_EXPIRED", message);
                    send!('serve, session.text(error));
                }
                break close_reason(CLOSE_TOKEN_EXPIRED, "TOKEN_EXPIRED");
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENT_FOR {
                    break close_reason(1001, "no answer to pings");
                }
                send!('serve, session.ping(b""));
            }
            msg = client.recv() => {
                last_heard = Instant::now();
                let bytes: Vec<u8> = match msg {
                    Some(Ok(AggregatedMessage::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(AggregatedMessage::Binary(b))) => b.to_vec(),
                    Some(Ok(AggregatedMessage::Ping(p))) => {
                        send!('serve, session.pong(&p));
                        continue;
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => continue,
                    Some(Ok(AggregatedMessage::Close(_))) => break None,
                    // A protocol error (an oversized frame) or the peer went away.
                    Some(Err(e)) => break close_reason(1009, &format!("bad frame: {e}")),
                    None => return,
                };
                let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
                let kind = parsed.as_ref().and_then(|v| v["type"].as_str()).unwrap_or("");
                let id = parsed
                    .as_ref()
                    .and_then(|v| v["id"].as_str())
                    .map(str::to_owned);
                match (kind, id) {
                    ("connection_init", _) if expires_at.is_none() => {
                        let payload = parsed.as_ref().map_or(Value::Null, |v| v["payload"].clone());
                        let header = crate::connection_token(&payload);
                        if let RequestAuth(Ok(authed)) =
                            crate::authenticate(&verifier, header.as_deref()).await
                        {
                            expires_at = Some(expiry(authed.claims.exp));
                        }
                        // async-graphql answers (ack, or a close for a bad token).
                    }
                    ("subscribe" | "start", Some(id)) if expires_at.is_some() => {
                        let payload = parsed.as_ref().map_or(Value::Null, |v| v["payload"].clone());
                        if let Err((code, message)) = subscription_only(&payload) {
                            let refusal = operation_error(protocol, &id, code, &message);
                            send!('serve, session.text(refusal));
                            continue;
                        }
                        if !active.contains(&id) && active.len() >= limits.ws_max_subscriptions {
                            let message = format!(
                                "at most {} subscriptions may be active on one connection \
                                 (limits.ws_max_subscriptions); complete one first",
                                limits.ws_max_subscriptions
                            );
                            let refusal =
                                operation_error(protocol, &id, "TOO_MANY_SUBSCRIPTIONS", &message);
                            send!('serve, session.text(refusal));
                            continue;
                        }
                        active.insert(id);
                    }
                    ("complete" | "stop", Some(id)) => {
                        active.remove(&id);
                    }
                    _ => {}
                }
                // Never wait here: async-graphql does not read its queue while it handles
                // `connection_init` (or a ping), and waiting would stop the timers above. A
                // client that gets INBOX_MESSAGES ahead of it is closed.
                match to_inner.try_send(bytes) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        break close_reason(CLOSE_TOO_MANY_MESSAGES, "too many messages");
                    }
                    Err(TrySendError::Closed(_)) => break None,
                }
            }
            out = inner.next() => match out {
                Some(WsMessage::Text(text)) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&text) {
                        if matches!(v["type"].as_str(), Some("complete" | "error")) {
                            if let Some(id) = v["id"].as_str() {
                                active.remove(id);
                            }
                        }
                    }
                    send!('serve, session.text(text));
                }
                Some(WsMessage::Close(code, reason)) => break close_reason(code, &reason),
                None => break None,
            },
        }
    };
    // The close is bounded too: a client that does not read would hold it up as well.
    let _ = tokio::time::timeout(SEND_TIMEOUT, session.close(close)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_bounded_at_both_ends() {
        let now = Instant::now();
        assert!(expiry(i64::MIN) <= Instant::now());
        assert!(expiry(0) <= Instant::now());
        assert!(expiry(i64::MAX) <= now + Duration::from_secs(366 * 24 * 3600));
        let in_a_minute = expiry(chrono::Utc::now().timestamp() + 60);
        assert!(in_a_minute > now + Duration::from_secs(58));
    }
}
