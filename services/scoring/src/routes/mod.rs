//! Scoring's HTTP API (called by the gateway, with the caller's token).

mod cases;
mod committee;
pub mod decision;
mod evaluation;
mod feedback;
pub mod panels;
pub mod stages;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/cases", web::get().to(cases::list_cases))
        .route("/cases/{id}", web::get().to(cases::get_case))
        .route(
            "/proposals/{proposal_id}/case",
            web::get().to(cases::case_of_proposal),
        )
        .route(
            "/proposals/{proposal_id}/case/late-resolution",
            web::post().to(cases::resolve_late),
        )
        .route(
            "/calls/{id}/evaluation",
            web::put().to(evaluation::configure),
        )
        .route(
            "/calls/{id}/evaluation",
            web::get().to(evaluation::get_config),
        )
        .route(
            "/calls/{id}/evaluation/versions",
            web::get().to(evaluation::config_versions),
        )
        .route("/reviewers", web::post().to(evaluation::register_reviewer))
        .route(
            "/reviewers/{id}/versions",
            web::get().to(evaluation::reviewer_history),
        )
        .route(
            "/assignments/{id}/sheets",
            web::get().to(evaluation::sheet_versions),
        )
        .route("/reviewers", web::get().to(evaluation::list_reviewers))
        .route(
            "/reviewers/{id}/conflicts",
            web::post().to(evaluation::declare_conflict),
        )
        .route(
            "/calls/{id}/stages/{stage}/assignments",
            web::post().to(evaluation::assign),
        )
        .route(
            "/calls/{id}/shortfalls",
            web::get().to(evaluation::shortfalls),
        )
        .route("/assignments", web::get().to(evaluation::list_assignments))
        .route("/assignments/{id}/scores", web::put().to(evaluation::score))
        .route(
            "/calls/{id}/stages/{stage}/close",
            web::post().to(stages::close),
        )
        .route(
            "/calls/{id}/stages/{stage}/results",
            web::get().to(stages::results),
        )
        .route("/calls/{id}/selection", web::post().to(decision::propose))
        .route("/calls/{id}/selection", web::get().to(decision::get))
        .route(
            "/calls/{id}/selection/publish",
            web::post().to(decision::publish),
        )
        .route(
            "/calls/{id}/selection/votes",
            web::post().to(committee::vote),
        )
        .route(
            "/calls/{id}/selection/votes",
            web::get().to(committee::votes),
        )
        .route(
            "/calls/{id}/selection/history",
            web::get().to(decision::history),
        )
        .route("/calls/{id}/ties", web::post().to(decision::decide_tie))
        .route("/calls/{id}/ties", web::get().to(decision::ties))
        .route("/calls/{id}/feedback", web::get().to(feedback::feedback))
        .route("/calls/{id}/appeals", web::post().to(feedback::file_appeal))
        .route("/appeals", web::get().to(feedback::list_appeals))
        .route(
            "/appeals/{id}/answer",
            web::post().to(feedback::answer_appeal),
        )
        .route("/panels", web::post().to(panels::create))
        .route("/panels/{id}", web::get().to(panels::get))
        .route("/panels/{id}/assignments", web::post().to(panels::assign))
        .route("/panels/{id}/close", web::post().to(panels::close))
        .route("/panels/{id}/void", web::post().to(panels::void_panel))
        .route(
            "/panel-assignments",
            web::get().to(panels::list_assignments),
        )
        .route(
            "/panel-assignments/{id}/void",
            web::post().to(panels::void_assignment),
        )
        .route(
            "/panel-assignments/{id}/scores",
            web::put().to(panels::score),
        );
}

/// Ministry staff.
pub(crate) const STAFF: &[kaip_contracts::Role] =
    &[kaip_contracts::Role::Admin, kaip_contracts::Role::Officer];
