//! Intake's HTTP API (called by the gateway, with the caller's token).

mod calls;
mod consortia;
mod proposals;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/programmes", web::post().to(calls::create_programme))
        .route("/programmes", web::get().to(calls::list_programmes))
        .route("/calls", web::post().to(calls::open_call))
        .route("/calls", web::get().to(calls::list_calls))
        .route("/calls/{id}", web::get().to(calls::get_call))
        .route("/calls/{id}/cancel", web::post().to(calls::cancel_call))
        .route("/consortia", web::get().to(consortia::list))
        .route("/consortia/{id}", web::put().to(consortia::register))
        .route("/consortia/{id}", web::get().to(consortia::get))
        .route(
            "/consortia/{id}/versions",
            web::get().to(consortia::versions),
        )
        .route("/proposals", web::post().to(proposals::create_draft))
        .route("/proposals", web::get().to(proposals::list))
        // Before `/proposals/{id}`, which would otherwise take `versions` for an id.
        .route(
            "/proposals/versions",
            web::get().to(proposals::versions_many),
        )
        .route("/proposals/{id}", web::get().to(proposals::get))
        .route("/proposals/{id}", web::put().to(proposals::update_draft))
        .route(
            "/proposals/{id}/documents/{kind}",
            web::put().to(proposals::upload_document),
        )
        .route(
            "/proposals/{id}/documents/{kind}",
            web::get().to(proposals::download_document),
        )
        .route(
            "/proposals/{id}/versions",
            web::get().to(proposals::versions),
        )
        .route("/proposals/{id}/submit", web::post().to(proposals::submit))
        .route(
            "/proposals/{id}/withdraw",
            web::post().to(proposals::withdraw),
        );
}
