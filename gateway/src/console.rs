//! The GraphQL console, served by the gateway itself. Everything it needs is compiled into
//! the binary: no CDN, no fonts, no network access beyond this gateway.

use actix_web::{web, HttpResponse};

const INDEX: &str = include_str!("../static/index.html");
const SCRIPT: &str = include_str!("../static/console.js");
const STYLE: &str = include_str!("../static/console.css");
/// The console's example operations (also validated by graphql-js in the e2e tests).
const EXAMPLES: &str = include_str!("../static/examples.json");

pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "content-security-policy",
            "default-src 'self'; connect-src 'self' ws: wss:",
        ))
        .body(INDEX)
}

pub async fn asset(path: web::Path<String>) -> HttpResponse {
    match path.as_str() {
        "console.js" => HttpResponse::Ok()
            .content_type("text/javascript; charset=utf-8")
            .body(SCRIPT),
        "console.css" => HttpResponse::Ok()
            .content_type("text/css; charset=utf-8")
            .body(STYLE),
        "examples.json" => HttpResponse::Ok()
            .content_type("application/json")
            .body(EXAMPLES),
        _ => HttpResponse::NotFound().finish(),
    }
}
