//! The ledger's HTTP API (called by the gateway, with the caller's token checked again).

mod accounts;
mod catalogue;
mod offers;
mod transfers;
pub mod usage;

use actix_web::web;
use kaip_contracts::Role;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/models", web::get().to(catalogue::list_models))
        .route("/models/{code}", web::put().to(catalogue::set_model))
        .route("/pools", web::get().to(catalogue::pools))
        .route("/pools/sources", web::get().to(catalogue::pools_by_source))
        .route("/suppliers", web::post().to(catalogue::record_supplier))
        .route(
            "/suppliers/{consortium_id}",
            web::get().to(catalogue::supplier_history),
        )
        .route("/accounts", web::post().to(accounts::open))
        .route("/accounts", web::get().to(accounts::list))
        .route("/accounts/{id}", web::get().to(accounts::get))
        .route("/accounts/{id}/balance", web::get().to(accounts::balance))
        .route("/transfers", web::post().to(transfers::create))
        .route("/transfers", web::get().to(transfers::list))
        .route("/transfers/{id}", web::get().to(transfers::get))
        .route("/invariants", web::get().to(transfers::invariants))
        .route("/teams", web::get().to(offers::teams))
        .route("/awards", web::get().to(offers::awards))
        .route("/offers", web::post().to(offers::make))
        .route("/offers", web::get().to(offers::list))
        .route("/offers/{id}", web::get().to(offers::get))
        .route("/offers/{id}/accept", web::post().to(offers::accept))
        .route("/usage", web::post().to(usage::report))
        .route("/utilisation", web::get().to(usage::utilisation));
}

/// Ministry staff: they run the ledger.
pub(crate) const STAFF: &[Role] = &[Role::Admin, Role::Officer];
