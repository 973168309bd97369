//! Offers, tranches and reallocation on top of the ledger: each operation builds its chain
//! with the plain functions of [`crate::domain::offers`], applies it with
//! [`store::apply_batch`] (all or nothing), and keeps its records and events in the same
//! transaction. A refused chain is a coded error and rolls everything back.

use crate::domain::catalogue::h100_eq;
use crate::domain::ledger::{Kind, TransferError, TransferRequest};
use crate::domain::offers::{self, OpenReservation, PlannedGrant, Reservation, TeamGrant};
use crate::error::LedgerError;
use crate::schema::{
    gpu_award_refusals, gpu_eliminations, gpu_gate_passes, gpu_offer_acceptances,
    gpu_offer_reservations, gpu_offers, gpu_teams, gpu_tranches, ledger_accounts, ledger_transfers,
};
use crate::store::{self, AccountRow, TransferRow};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use kaip_bus::OutboxTx;
use kaip_contracts::dto::gpu::{self as dto, MakeOffer, OfferOption};
use kaip_contracts::events::{
    AnnouncedTranche, GateDecided, GpuAccountOpened, GpuGrantClosed, GpuGranted, GpuOfferExpired,
    GpuOfferMade, GpuTrancheReleased, MovedCapacity, ReturnedReservation, SelectionPublished,
    TeamEliminated,
};
use kaip_contracts::{Actor, CallId, ConsortiumId, H100Eq};
use std::collections::HashMap;
use uuid::Uuid;

/// Applies a chain that must apply whole; the first real refusal (not "another link
/// failed") becomes the error, its field prefixed by `field_of(index)`.
pub fn apply_all(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    chain: &[TransferRequest],
    actor: &Actor,
    field_of: impl Fn(usize) -> String,
) -> Result<(), LedgerError> {
    if chain.is_empty() {
        return Ok(());
    }
    let applied = store::apply_batch(conn, tx, chain, actor)?;
    let refusal = applied
        .results
        .iter()
        .enumerate()
        .find_map(|(i, r)| match r {
            Err(TransferError::LinkedEventFailed | TransferError::LinkedEventChainOpen) | Ok(_) => {
                None
            }
            Err(e) => Some((i, e.clone())),
        });
    match refusal {
        None => Ok(()),
        Some((i, e)) => Err(LedgerError::Transfer {
            code: e.code(),
            message: format!("{}: {e}", field_of(i)),
        }),
    }
}

pub fn pool_of(conn: &mut PgConnection, model: &str, period: &str) -> QueryResult<Option<Uuid>> {
    ledger_accounts::table
        .filter(ledger_accounts::kind.eq("pool"))
        .filter(ledger_accounts::model.eq(model))
        .filter(ledger_accounts::period.eq(period))
        .select(ledger_accounts::id)
        .first(conn)
        .optional()
}

/// The team's grant account for a model and period, opened (and announced) if missing.
pub fn grant_account(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    team: Uuid,
    model: &str,
    period: &str,
    actor: &Actor,
) -> Result<Uuid, LedgerError> {
    let find = |c: &mut PgConnection| {
        ledger_accounts::table
            .filter(ledger_accounts::kind.eq("grant"))
            .filter(ledger_accounts::consortium_id.eq(team))
            .filter(ledger_accounts::model.eq(model))
            .filter(ledger_accounts::period.eq(period))
            .select(ledger_accounts::id)
            .first::<Uuid>(c)
            .optional()
    };
    if let Some(id) = find(conn)? {
        return Ok(id);
    }
    let id = Uuid::now_v7();
    let now = Utc::now().trunc_subsecs(6);
    let name = format!("grant {model} {period} of {team}");
    let reason = "opened for the team's first grant of this model and period";
    let inserted = diesel::insert_into(ledger_accounts::table)
        .values((
            ledger_accounts::id.eq(id),
            ledger_accounts::model.eq(model),
            ledger_accounts::period.eq(period),
            ledger_accounts::kind.eq("grant"),
            ledger_accounts::consortium_id.eq(team),
            ledger_accounts::name.eq(&name),
            ledger_accounts::debits_must_not_exceed_credits.eq(true),
            ledger_accounts::credits_must_not_exceed_debits.eq(false),
            ledger_accounts::created_by.eq(&actor.subject),
            ledger_accounts::created_at.eq(now),
            ledger_accounts::reason.eq(reason),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    if inserted == 0 {
        // A concurrent writer opened it.
        return find(conn)?.ok_or_else(|| {
            LedgerError::AccountConflict("kind: the team's grant account vanished".into())
        });
    }
    tx.publish(
        conn,
        actor.clone(),
        &GpuAccountOpened {
            account_id: id,
            model: model.to_owned(),
            period: period.to_owned(),
            kind: dto::AccountKind::Grant,
            consortium_id: Some(ConsortiumId(team)),
            name,
            reason: reason.to_owned(),
            opened_at: now,
        },
    )?;
    Ok(id)
}

/// Learns the selected teams and what they asked for. A second delivery changes nothing.
pub fn record_selection(conn: &mut PgConnection, ev: &SelectionPublished) -> QueryResult<usize> {
    let mut n = 0;
    for t in &ev.selected {
        n += diesel::insert_into(gpu_teams::table)
            .values((
                gpu_teams::call_id.eq(ev.call_id.0),
                gpu_teams::consortium_id.eq(t.consortium_id.0),
                gpu_teams::proposal_id.eq(t.proposal_id.0),
                gpu_teams::consortium_name.eq(&t.consortium_name),
                gpu_teams::title.eq(&t.title),
                gpu_teams::requested
                    .eq(serde_json::to_value(&t.resources.gpus).unwrap_or_default()),
                gpu_teams::selected_at.eq(ev.published_at),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(n)
}

/// How long a replacement call's winner has to accept its award, from when the ledger
/// makes the offer (not from the publication: a late delivery still gets the full time).
pub const REPLACEMENT_OFFER_DAYS: i64 = 30;

/// Offers each winner of a replacement call with a GPU award that award: one option, one
/// tranche released at acceptance, through [`make_offer`] (so every rule of an officer's
/// offer holds: the pool, the team not eliminated, the pool never over-allocated). The
/// offer's id is derived from the call and the team, so a republished event answers the
/// same offer. Returns how many offers it made. A call that is not a replacement, has no
/// award or selected nobody makes none.
///
/// Each offer is made in its own savepoint: an award the ledger cannot honour (the pool
/// short, most likely, after the eliminated team's GPUs went to the survivors) is logged
/// with its code and leaves the winner recorded as selected, so an officer can make the
/// offer by hand (`POST /offers`, possibly smaller) instead of the whole selection being
/// dead-lettered.
pub fn offer_replacement_award(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    ev: &SelectionPublished,
) -> Result<usize, LedgerError> {
    let Some(r) = &ev.replaces else {
        return Ok(0);
    };
    let Some(award) = &r.award else {
        return Ok(0);
    };
    let actor = Actor::system(crate::NAME);
    let mut n = 0;
    for t in &ev.selected {
        let id = offers::derived_id(
            ev.call_id.0,
            &format!("replacement-award:{}", t.consortium_id.0),
            0,
        );
        // Made already (a redelivery): its expiry was set then, leave it be.
        if gpu_offers::table
            .find(id)
            .select(gpu_offers::id)
            .first::<Uuid>(conn)
            .optional()?
            .is_some()
        {
            continue;
        }
        let req = MakeOffer {
            id,
            consortium_id: t.consortium_id,
            call_id: ev.call_id,
            expires_at: Utc::now().trunc_subsecs(6)
                + chrono::Duration::days(REPLACEMENT_OFFER_DAYS),
            options: vec![OfferOption {
                model: award.model.clone(),
                tranches: vec![kaip_contracts::dto::gpu::TrancheSpec {
                    period: award.period.clone(),
                    count: award.count,
                    release_at: None,
                    release_gate: None,
                }],
            }],
            reason: format!(
                "replacement call for the places freed at gate `{}`: selected (rank {})",
                r.gate, t.rank
            ),
        };
        match conn.transaction(|c| make_offer(c, tx, &req, &actor)) {
            Ok(_) => n += 1,
            // The database failing is not a refusal: the whole event is retried.
            Err(e @ LedgerError::Common(kaip_service::CommonError::Internal(_))) => return Err(e),
            Err(e) => {
                tracing::warn!(
                    call = %ev.call_id.0,
                    consortium = %t.consortium_id.0,
                    code = e.code(),
                    error = %e,
                    "replacement award not offered: the team is selected; an officer makes the offer by hand"
                );
                // Kept as a row staff read (`GET /awards`): the award is still owed. The
                // first refusal stands; nothing retries it.
                diesel::insert_into(gpu_award_refusals::table)
                    .values((
                        gpu_award_refusals::call_id.eq(ev.call_id.0),
                        gpu_award_refusals::consortium_id.eq(t.consortium_id.0),
                        gpu_award_refusals::model.eq(&award.model),
                        gpu_award_refusals::period.eq(&award.period),
                        gpu_award_refusals::count.eq(award.count),
                        gpu_award_refusals::code.eq(e.code()),
                        gpu_award_refusals::message.eq(e.to_string()),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Replacement awards the ledger could not offer, newest first. An award stays `owed` until
/// offers for the call and team that the team *accepted* cover its count in the award's
/// model (the accepted option's tranches of that model): an offer made but not accepted, or
/// expired, or for fewer GPUs settles nothing. `offered` and `accepted` show how far it got.
pub fn award_refusals(
    conn: &mut PgConnection,
    only_owed: bool,
) -> Result<Vec<dto::AwardRefusal>, LedgerError> {
    type Row = (
        Uuid,
        Uuid,
        String,
        String,
        i64,
        String,
        String,
        DateTime<Utc>,
    );
    let rows: Vec<Row> = gpu_award_refusals::table
        .order((
            gpu_award_refusals::refused_at.desc(),
            gpu_award_refusals::call_id,
            gpu_award_refusals::consortium_id,
        ))
        .select((
            gpu_award_refusals::call_id,
            gpu_award_refusals::consortium_id,
            gpu_award_refusals::model,
            gpu_award_refusals::period,
            gpu_award_refusals::count,
            gpu_award_refusals::code,
            gpu_award_refusals::message,
            gpu_award_refusals::refused_at,
        ))
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (call, team, model, period, count, code, message, refused_at) in rows {
        let offers: Vec<(serde_json::Value, Option<i32>)> = gpu_offers::table
            .left_join(
                gpu_offer_acceptances::table.on(gpu_offer_acceptances::offer_id.eq(gpu_offers::id)),
            )
            .filter(gpu_offers::call_id.eq(call))
            .filter(gpu_offers::consortium_id.eq(team))
            .select((
                gpu_offers::options,
                gpu_offer_acceptances::option_index.nullable(),
            ))
            .load(conn)?;
        let (mut offered, mut accepted) = (0i64, 0i64);
        for (options, chosen) in offers {
            let options: Vec<serde_json::Value> = serde_json::from_value(options).map_err(|e| {
                kaip_service::CommonError::internal(anyhow::anyhow!(
                    "offer options of call {call}, team {team} do not decode: {e}"
                ))
            })?;
            let units = |o: &serde_json::Value| -> i64 {
                if o["model"].as_str() != Some(model.as_str()) {
                    return 0;
                }
                o["tranches"]
                    .as_array()
                    .map(|ts| ts.iter().filter_map(|t| t["count"].as_i64()).sum())
                    .unwrap_or(0)
            };
            offered += options.iter().map(&units).max().unwrap_or(0);
            if let Some(i) = chosen {
                accepted += options.get(i as usize).map(&units).unwrap_or(0);
            }
        }
        let owed = accepted < count;
        if only_owed && !owed {
            continue;
        }
        out.push(dto::AwardRefusal {
            call_id: call.into(),
            consortium_id: team.into(),
            model,
            period,
            count,
            code,
            message,
            refused_at,
            offered,
            accepted,
            owed,
        });
    }
    Ok(out)
}

type TeamRow = (Uuid, Uuid, String, String, serde_json::Value, DateTime<Utc>);

pub fn teams(
    conn: &mut PgConnection,
    only: Option<Uuid>,
) -> Result<Vec<dto::SelectedTeam>, LedgerError> {
    let mut q = gpu_teams::table
        .select((
            gpu_teams::call_id,
            gpu_teams::consortium_id,
            gpu_teams::consortium_name,
            gpu_teams::title,
            gpu_teams::requested,
            gpu_teams::selected_at,
        ))
        .order((gpu_teams::selected_at, gpu_teams::consortium_id))
        .into_boxed();
    if let Some(t) = only {
        q = q.filter(gpu_teams::consortium_id.eq(t));
    }
    let rows: Vec<TeamRow> = q.load(conn)?;
    let factors = store::factors(conn)?;
    Ok(rows
        .into_iter()
        .map(|(call, team, name, title, requested, at)| {
            let requested: Vec<kaip_contracts::dto::intake::GpuRequest> =
                serde_json::from_value(requested).unwrap_or_default();
            // H100-eq of the request, when every model is known.
            let eq = requested.iter().try_fold(0i64, |acc, g| {
                let f = factors.get(&g.model)?;
                acc.checked_add(h100_eq(g.count, *f)?.0)
            });
            dto::SelectedTeam {
                call_id: CallId(call),
                consortium_id: ConsortiumId(team),
                consortium_name: name,
                title,
                requested,
                requested_h100_eq: eq.map(H100Eq),
                selected_at: at,
            }
        })
        .collect())
}

/// Makes an offer: every tranche of every option reserved (pending until `expires_at`) in
/// one chain. A repeat with the same fields answers the offer.
/// The gate at which `team` was eliminated, if it was (an elimination is lasting).
fn eliminated_at(conn: &mut PgConnection, team: Uuid) -> QueryResult<Option<String>> {
    gpu_eliminations::table
        .filter(gpu_eliminations::consortium_id.eq(team))
        .select(gpu_eliminations::gate)
        .order(gpu_eliminations::applied_at)
        .first(conn)
        .optional()
}

pub fn make_offer(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &MakeOffer,
    actor: &Actor,
) -> Result<dto::Offer, LedgerError> {
    let now = Utc::now().trunc_subsecs(6);
    let expires_at = req.expires_at.trunc_subsecs(6);
    if let Some(existing) = gpu_offers::table
        .find(req.id)
        .select((
            gpu_offers::consortium_id,
            gpu_offers::call_id,
            gpu_offers::expires_at,
            gpu_offers::options,
            gpu_offers::reason,
        ))
        .first::<(Uuid, Uuid, DateTime<Utc>, serde_json::Value, String)>(conn)
        .optional()?
    {
        let same = existing.0 == req.consortium_id.0
            && existing.1 == req.call_id.0
            && existing.2 == expires_at
            && serde_json::from_value::<Vec<OfferOption>>(existing.3)
                .ok()
                .as_ref()
                == Some(&req.options)
            && existing.4 == req.reason.trim();
        return if same {
            offer_view(conn, req.id)
        } else {
            Err(LedgerError::OfferExistsWithDifferentFields)
        };
    }
    let factors = store::factors(conn)?;
    let worth = offers::validate(&req.options, &factors, expires_at, &req.reason, now)?;
    store::lock_team(conn, req.consortium_id.0)?;
    if let Some(gate) = eliminated_at(conn, req.consortium_id.0)? {
        return Err(LedgerError::TeamEliminated(req.consortium_id.0, gate));
    }
    let selected: i64 = gpu_teams::table
        .filter(gpu_teams::call_id.eq(req.call_id.0))
        .filter(gpu_teams::consortium_id.eq(req.consortium_id.0))
        .count()
        .get_result(conn)?;
    if selected == 0 {
        return Err(LedgerError::TeamNotSelected(
            req.consortium_id.0,
            req.call_id.0,
        ));
    }
    let mut chain = Vec::new();
    let mut fields = Vec::new();
    let mut rows = Vec::new();
    for (i, o) in req.options.iter().enumerate() {
        for (j, t) in o.tranches.iter().enumerate() {
            let field = format!("options[{i}].tranches[{j}]");
            let pool =
                pool_of(conn, &o.model, &t.period)?.ok_or_else(|| LedgerError::PoolNotFound {
                    field: field.clone(),
                    model: o.model.clone(),
                    period: t.period.clone(),
                })?;
            let grant = grant_account(conn, tx, req.consortium_id.0, &o.model, &t.period, actor)?;
            let id = offers::derived_id(req.id, "offer", (i * offers::MAX_TRANCHES + j) as u64);
            chain.push(TransferRequest {
                id,
                debit_account: pool,
                credit_account: grant,
                amount: t.count,
                kind: Kind::Pending,
                pending_id: None,
                timeout_at: Some(expires_at),
                linked: true,
                code: "offer".into(),
                reason: req.reason.trim().to_owned(),
            });
            fields.push(field);
            rows.push((
                gpu_offer_reservations::offer_id.eq(req.id),
                gpu_offer_reservations::option_index.eq(i as i32),
                gpu_offer_reservations::tranche_index.eq(j as i32),
                gpu_offer_reservations::model.eq(o.model.clone()),
                gpu_offer_reservations::period.eq(t.period.clone()),
                gpu_offer_reservations::count.eq(t.count),
                gpu_offer_reservations::release_at.eq(t.release_at.map(|d| d.trunc_subsecs(6))),
                gpu_offer_reservations::release_gate.eq(t.release_gate.clone()),
                gpu_offer_reservations::transfer_id.eq(id),
            ));
        }
    }
    if let Some(last) = chain.last_mut() {
        last.linked = false;
    }
    apply_all(conn, tx, &chain, actor, |i| fields[i].clone())?;
    diesel::insert_into(gpu_offers::table)
        .values((
            gpu_offers::id.eq(req.id),
            gpu_offers::consortium_id.eq(req.consortium_id.0),
            gpu_offers::call_id.eq(req.call_id.0),
            gpu_offers::expires_at.eq(expires_at),
            gpu_offers::h100_eq.eq(worth),
            gpu_offers::options.eq(serde_json::to_value(&req.options).unwrap_or_default()),
            gpu_offers::made_by.eq(&actor.subject),
            gpu_offers::made_at.eq(now),
            gpu_offers::reason.eq(req.reason.trim()),
        ))
        .execute(conn)?;
    diesel::insert_into(gpu_offer_reservations::table)
        .values(&rows)
        .execute(conn)?;
    tx.publish(
        conn,
        actor.clone(),
        &GpuOfferMade {
            offer_id: req.id,
            consortium_id: req.consortium_id,
            call_id: req.call_id,
            h100_eq: worth,
            options: req
                .options
                .iter()
                .map(|o| {
                    o.tranches
                        .iter()
                        .map(|t| AnnouncedTranche {
                            model: o.model.clone(),
                            period: t.period.clone(),
                            count: t.count,
                            release_at: t.release_at,
                            release_gate: t.release_gate.clone(),
                        })
                        .collect()
                })
                .collect(),
            expires_at,
            reason: req.reason.trim().to_owned(),
        },
    )?;
    offer_view(conn, req.id)
}

type ReservationRow = (
    i32,
    i32,
    String,
    String,
    i64,
    Option<DateTime<Utc>>,
    Option<String>,
    Uuid,
);

fn announced(
    model: &str,
    period: &str,
    count: i64,
    at: Option<DateTime<Utc>>,
    gate: Option<String>,
) -> AnnouncedTranche {
    AnnouncedTranche {
        model: model.to_owned(),
        period: period.to_owned(),
        count,
        release_at: at,
        release_gate: gate,
    }
}

/// The team accepts one option (see [`offers::accept`]). Only once, and only before the
/// offer expires; a consortium user only for its own team.
pub fn accept_offer(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    offer_id: Uuid,
    option: usize,
    reason: &str,
    actor: &Actor,
    only_team: Option<Uuid>,
) -> Result<dto::Offer, LedgerError> {
    let now = Utc::now().trunc_subsecs(6);
    // The team (never changes) first, to take its lock before any row lock.
    let team: Uuid = gpu_offers::table
        .find(offer_id)
        .select(gpu_offers::consortium_id)
        .first(conn)
        .optional()?
        .ok_or(LedgerError::OfferNotFound(offer_id))?;
    if only_team.is_some_and(|t| t != team) {
        return Err(LedgerError::OfferNotFound(offer_id));
    }
    store::lock_team(conn, team)?;
    // Lock the offer row: two acceptances of one offer are serialised here.
    let (team, expires_at): (Uuid, DateTime<Utc>) = gpu_offers::table
        .find(offer_id)
        .select((gpu_offers::consortium_id, gpu_offers::expires_at))
        .for_update()
        .first(conn)
        .optional()?
        .ok_or(LedgerError::OfferNotFound(offer_id))?;
    if only_team.is_some_and(|t| t != team) {
        return Err(LedgerError::OfferNotFound(offer_id));
    }
    if let Some(chosen) = gpu_offer_acceptances::table
        .find(offer_id)
        .select(gpu_offer_acceptances::option_index)
        .first::<i32>(conn)
        .optional()?
    {
        return Err(LedgerError::OfferAlreadyAccepted(offer_id, chosen));
    }
    if let Some(gate) = eliminated_at(conn, team)? {
        return Err(LedgerError::TeamEliminated(team, gate));
    }
    if expires_at <= now {
        return Err(LedgerError::OfferExpired(offer_id, expires_at));
    }
    let rows: Vec<ReservationRow> = gpu_offer_reservations::table
        .filter(gpu_offer_reservations::offer_id.eq(offer_id))
        .order((
            gpu_offer_reservations::option_index,
            gpu_offer_reservations::tranche_index,
        ))
        .select((
            gpu_offer_reservations::option_index,
            gpu_offer_reservations::tranche_index,
            gpu_offer_reservations::model,
            gpu_offer_reservations::period,
            gpu_offer_reservations::count,
            gpu_offer_reservations::release_at,
            gpu_offer_reservations::release_gate,
            gpu_offer_reservations::transfer_id,
        ))
        .load(conn)?;
    let options = rows.iter().map(|r| r.0).max().map_or(0, |m| m as usize + 1);
    if option >= options {
        return Err(LedgerError::validation(
            "option",
            format!("the offer has options 0 to {}", options.saturating_sub(1)),
        ));
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.7).collect();
    let transfers: HashMap<Uuid, (Uuid, Uuid)> = ledger_transfers::table
        .filter(ledger_transfers::id.eq_any(&ids))
        .select((
            ledger_transfers::id,
            ledger_transfers::debit_account_id,
            ledger_transfers::credit_account_id,
        ))
        .load::<(Uuid, Uuid, Uuid)>(conn)?
        .into_iter()
        .map(|(id, d, c)| (id, (d, c)))
        .collect();
    let reservations: Vec<Reservation> = rows
        .iter()
        .filter_map(|r| {
            let (pool, grant) = transfers.get(&r.7)?;
            Some(Reservation {
                option: r.0 as usize,
                tranche: r.1 as usize,
                transfer_id: r.7,
                pool: *pool,
                grant: *grant,
                count: r.4,
                release_at: r.5,
                release_gate: r.6.clone(),
            })
        })
        .collect();
    let reason = if reason.trim().is_empty() {
        format!("offer {offer_id} accepted (option {option})")
    } else {
        reason.trim().to_owned()
    };
    let (chain, held) = offers::accept(&reservations, option, offer_id, &reason, now);
    apply_all(conn, tx, &chain, actor, |i| {
        format!("option {option}, step {i}")
    })?;
    diesel::insert_into(gpu_offer_acceptances::table)
        .values((
            gpu_offer_acceptances::offer_id.eq(offer_id),
            gpu_offer_acceptances::option_index.eq(option as i32),
            gpu_offer_acceptances::accepted_by.eq(&actor.subject),
            gpu_offer_acceptances::accepted_role.eq(actor.role.as_str()),
            gpu_offer_acceptances::accepted_at.eq(now),
            gpu_offer_acceptances::reason.eq(&reason),
        ))
        .execute(conn)?;
    let mut released = Vec::new();
    let mut reserved = Vec::new();
    for (tranche, transfer, was_released) in &held {
        let Some(r) = rows
            .iter()
            .find(|r| r.0 as usize == option && r.1 as usize == *tranche)
        else {
            continue;
        };
        diesel::insert_into(gpu_tranches::table)
            .values((
                gpu_tranches::offer_id.eq(offer_id),
                gpu_tranches::tranche_index.eq(r.1),
                gpu_tranches::consortium_id.eq(team),
                gpu_tranches::model.eq(&r.2),
                gpu_tranches::period.eq(&r.3),
                gpu_tranches::count.eq(r.4),
                gpu_tranches::release_at.eq(r.5),
                gpu_tranches::release_gate.eq(&r.6),
                gpu_tranches::transfer_id.eq(transfer),
            ))
            .execute(conn)?;
        let a = announced(&r.2, &r.3, r.4, r.5, r.6.clone());
        if *was_released {
            released.push(a);
        } else {
            reserved.push(a);
        }
    }
    tx.publish(
        conn,
        actor.clone(),
        &GpuGranted {
            offer_id,
            consortium_id: ConsortiumId(team),
            option: option as u32,
            released,
            reserved,
            accepted_at: now,
        },
    )?;
    offer_view(conn, offer_id)
}

type TrancheRow = (
    Uuid,
    i32,
    Uuid,
    String,
    String,
    i64,
    Option<DateTime<Utc>>,
    Option<String>,
    Uuid,
);

fn tranche_rows<'a>(
    q: crate::schema::gpu_tranches::BoxedQuery<'a, diesel::pg::Pg>,
    conn: &mut PgConnection,
) -> QueryResult<Vec<TrancheRow>> {
    q.select((
        gpu_tranches::offer_id,
        gpu_tranches::tranche_index,
        gpu_tranches::consortium_id,
        gpu_tranches::model,
        gpu_tranches::period,
        gpu_tranches::count,
        gpu_tranches::release_at,
        gpu_tranches::release_gate,
        gpu_tranches::transfer_id,
    ))
    .load(conn)
}

/// How each transfer was resolved, if it was.
fn resolutions(conn: &mut PgConnection, ids: &[Uuid]) -> QueryResult<HashMap<Uuid, Kind>> {
    Ok(ledger_transfers::table
        .filter(ledger_transfers::pending_id.eq_any(ids))
        .select((ledger_transfers::pending_id, ledger_transfers::kind))
        .load::<(Option<Uuid>, String)>(conn)?
        .into_iter()
        .filter_map(|(p, k)| Some((p?, Kind::parse(&k)?)))
        .collect())
}

/// Releases tranches whose reservation is still open, announcing each; `trigger` says why.
fn release(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    rows: Vec<TrancheRow>,
) -> Result<usize, LedgerError> {
    let trigger = |r: &TrancheRow| {
        r.7.as_ref()
            .map_or_else(|| "date".to_owned(), |g| format!("gate:{g}"))
    };
    let ids: Vec<Uuid> = rows.iter().map(|r| r.8).collect();
    let resolved = resolutions(conn, &ids)?;
    let open: Vec<TrancheRow> = rows
        .into_iter()
        .filter(|r| !resolved.contains_key(&r.8))
        .collect();
    if open.is_empty() {
        return Ok(0);
    }
    let chain: Vec<TransferRequest> = open
        .iter()
        .map(|r| offers::release(r.8, &trigger(r)))
        .collect();
    let actor = Actor::system(crate::NAME);
    let applied = store::apply_batch(conn, tx, &chain, &actor)?;
    let now = Utc::now().trunc_subsecs(6);
    let mut n = 0;
    for (r, result) in open.iter().zip(&applied.results) {
        match result {
            Ok(crate::domain::ledger::Outcome::Created) => {
                n += 1;
                tx.publish(
                    conn,
                    actor.clone(),
                    &GpuTrancheReleased {
                        offer_id: r.0,
                        consortium_id: ConsortiumId(r.2),
                        tranche: announced(&r.3, &r.4, r.5, r.6, r.7.clone()),
                        trigger: trigger(r),
                        released_at: now,
                    },
                )?;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(offer = %r.0, tranche = r.1, code = e.code(), "tranche not released now; the sweeper retries it once the team may receive it")
            }
        }
    }
    Ok(n)
}

/// Releases the tranches that are due (the sweeper calls this): those whose date has come,
/// and those at a gate their team has passed (stored by [`gate_decided`]: so a tranche
/// accepted after its gate, or refused while the team supplied GPUs, is still released).
/// Tranches of a team that currently supplies GPUs are left out (they would be refused):
/// they neither fill the batch nor starve the others, and are released once supplying ends
/// (at the recorded end date, when the record carries one).
pub fn release_due(conn: &mut PgConnection, tx: &mut OutboxTx<'_>) -> Result<usize, LedgerError> {
    use diesel::dsl::sql;
    use diesel::sql_types::Bool;
    let rows = tranche_rows(
        gpu_tranches::table
            .filter(sql::<Bool>(
                "((gpu_tranches.release_gate IS NULL AND gpu_tranches.release_at <= now()) \
                 OR (gpu_tranches.release_gate IS NOT NULL AND EXISTS (SELECT 1 FROM gpu_gate_passes g \
                     WHERE g.gate = gpu_tranches.release_gate AND g.consortium_id = gpu_tranches.consortium_id)))",
            ))
            .filter(sql::<Bool>(
                "NOT COALESCE((SELECT s.supplying OR s.ends_at > now() FROM gpu_supplier_records s \
                 WHERE s.consortium_id = gpu_tranches.consortium_id ORDER BY s.seq DESC LIMIT 1), false)",
            ))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                ledger_transfers::table
                    .filter(ledger_transfers::pending_id.eq(gpu_tranches::transfer_id.nullable())),
            )))
            .order((gpu_tranches::release_at.asc().nulls_first(), gpu_tranches::offer_id))
            .limit(1000)
            .into_boxed(),
        conn,
    )?;
    release(conn, tx, rows)
}

/// A gate decided: the teams that passed are recorded (for tranches accepted later, and
/// releases refused now), and the tranches waiting for it are released to them.
pub fn gate_decided(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    ev: &GateDecided,
) -> Result<usize, LedgerError> {
    let passed: Vec<Uuid> = ev.passed.iter().map(|c| c.0).collect();
    let rows: Vec<_> = passed
        .iter()
        .map(|c| {
            (
                gpu_gate_passes::gate_id.eq(ev.gate_id),
                gpu_gate_passes::gate.eq(&ev.gate),
                gpu_gate_passes::consortium_id.eq(*c),
                gpu_gate_passes::decided_at.eq(ev.decided_at),
            )
        })
        .collect();
    diesel::insert_into(gpu_gate_passes::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(conn)?;
    let rows = tranche_rows(
        gpu_tranches::table
            .filter(gpu_tranches::release_gate.eq(&ev.gate))
            .filter(gpu_tranches::consortium_id.eq_any(&passed))
            .into_boxed(),
        conn,
    )?;
    release(conn, tx, rows)
}

/// Closes an eliminated team's grants and reallocates, in one chain (see
/// [`offers::eliminate`]). Applied once per gate and team; a plan the pools cannot honour
/// is refused whole (the event is dead-lettered with the reason, nothing moved).
pub fn eliminate(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    ev: &TeamEliminated,
) -> Result<bool, LedgerError> {
    let team = ev.consortium_id.0;
    // Before anything is read: no offer, acceptance or grant account of the team can
    // commit between what is read below and this chain.
    store::lock_team(conn, team)?;
    let done: i64 = gpu_eliminations::table
        .find((ev.gate_id, team))
        .count()
        .get_result(conn)?;
    if done > 0 {
        return Ok(false);
    }
    let actor = Actor::system(crate::NAME);
    // Resolve (and open where missing) every account first, then lock them all in id order:
    // what the plan reads below cannot change under it.
    let mut plan = Vec::new();
    for (i, r) in ev.reallocation.iter().enumerate() {
        let field = format!("reallocation[{i}]");
        if r.consortium_id == ev.consortium_id {
            return Err(LedgerError::validation(
                field,
                "the eliminated team cannot receive its own GPUs",
            ));
        }
        if !(1..=offers::MAX_COUNT).contains(&r.count) {
            return Err(LedgerError::validation(
                format!("{field}.count"),
                "a whole number of GPUs from 1 to 1000000",
            ));
        }
        let pool =
            pool_of(conn, &r.model, &r.period)?.ok_or_else(|| LedgerError::PoolNotFound {
                field: field.clone(),
                model: r.model.clone(),
                period: r.period.clone(),
            })?;
        let grant = grant_account(conn, tx, r.consortium_id.0, &r.model, &r.period, &actor)?;
        plan.push(PlannedGrant {
            pool,
            grant,
            count: r.count,
        });
    }
    let team_accounts: Vec<AccountRow> = ledger_accounts::table
        .filter(ledger_accounts::consortium_id.eq(team))
        .filter(ledger_accounts::kind.eq("grant"))
        .select(AccountRow::as_select())
        .load(conn)?;
    let mut pools = HashMap::new();
    for a in &team_accounts {
        if let Some(p) = pool_of(conn, &a.model, &a.period)? {
            pools.insert(a.id, p);
        }
    }
    let mut lock: Vec<Uuid> = team_accounts.iter().map(|a| a.id).collect();
    lock.extend(pools.values().copied());
    lock.extend(plan.iter().flat_map(|p| [p.pool, p.grant]));
    lock.sort();
    lock.dedup();
    let locked: Vec<AccountRow> = ledger_accounts::table
        .filter(ledger_accounts::id.eq_any(&lock))
        .order(ledger_accounts::id.asc())
        .for_update()
        .select(AccountRow::as_select())
        .load(conn)?;
    let grant_ids: Vec<Uuid> = team_accounts.iter().map(|a| a.id).collect();
    let pending: Vec<TransferRow> = ledger_transfers::table
        .filter(ledger_transfers::kind.eq("pending"))
        .filter(ledger_transfers::credit_account_id.eq_any(&grant_ids))
        .select(TransferRow::as_select())
        .load(conn)?;
    let pending_ids: Vec<Uuid> = pending.iter().map(|t| t.id).collect();
    let resolved = resolutions(conn, &pending_ids)?;
    let open: Vec<OpenReservation> = pending
        .iter()
        .filter(|t| !resolved.contains_key(&t.id))
        .map(|t| OpenReservation {
            transfer_id: t.id,
            timeout_at: t.timeout_at,
        })
        .collect();
    let grants: Vec<TeamGrant> = locked
        .iter()
        .filter(|a| grant_ids.contains(&a.id))
        .map(|a| TeamGrant {
            account: a.id,
            pool: pools.get(&a.id).copied(),
            period: a.period.clone(),
            available: a.credits_posted - a.debits_posted - a.debits_pending,
        })
        .collect();
    let now = Utc::now().trunc_subsecs(6);
    let reason = format!("eliminated at {} ({}): {}", ev.gate, ev.gate_id, ev.reason);
    let key = offers::derived_id(ev.gate_id, &team.to_string(), 0);
    let chain = offers::eliminate(&open, &grants, &plan, key, &reason, ev.decided_at, now);
    apply_all(conn, tx, &chain, &actor, |i| {
        format!("elimination step {i}")
    })?;
    let by_id: HashMap<Uuid, &AccountRow> = locked.iter().map(|a| (a.id, a)).collect();
    let moved = |account: Uuid, count: i64| {
        let a = by_id.get(&account);
        MovedCapacity {
            consortium_id: ConsortiumId(a.and_then(|a| a.consortium_id).unwrap_or(team)),
            model: a.map(|a| a.model.clone()).unwrap_or_default(),
            period: a.map(|a| a.period.clone()).unwrap_or_default(),
            count,
        }
    };
    let amounts: HashMap<Uuid, (Uuid, i64)> = pending
        .iter()
        .map(|t| (t.id, (t.credit_account_id, t.amount)))
        .collect();
    let mut voided = Vec::new();
    let mut returned = Vec::new();
    let mut reallocated = Vec::new();
    for t in &chain {
        match (t.kind, t.code.as_str()) {
            (Kind::Void | Kind::Expire, _) => {
                if let Some((acct, amount)) = t.pending_id.and_then(|p| amounts.get(&p)) {
                    voided.push(moved(*acct, *amount));
                }
            }
            (Kind::Single, "reclaim") => returned.push(moved(t.debit_account, t.amount)),
            (Kind::Single, _) => reallocated.push(moved(t.credit_account, t.amount)),
            _ => {}
        }
    }
    diesel::insert_into(gpu_eliminations::table)
        .values((
            gpu_eliminations::gate_id.eq(ev.gate_id),
            gpu_eliminations::consortium_id.eq(team),
            gpu_eliminations::gate.eq(&ev.gate),
            gpu_eliminations::reason.eq(&ev.reason),
            gpu_eliminations::plan.eq(serde_json::to_value(&ev.reallocation).unwrap_or_default()),
            gpu_eliminations::applied_at.eq(now),
        ))
        .execute(conn)?;
    tx.publish(
        conn,
        actor,
        &GpuGrantClosed {
            consortium_id: ev.consortium_id,
            gate_id: ev.gate_id,
            voided,
            returned,
            reallocated,
            closed_at: now,
        },
    )?;
    Ok(true)
}

type OfferRow = (
    Uuid,
    Uuid,
    Uuid,
    DateTime<Utc>,
    i64,
    serde_json::Value,
    String,
    DateTime<Utc>,
    String,
);

/// An offer as its team and the ministry see it, its state derived from the ledger.
pub fn offer_view(conn: &mut PgConnection, id: Uuid) -> Result<dto::Offer, LedgerError> {
    let (id, team, call, expires_at, worth, options, made_by, made_at, reason): OfferRow =
        gpu_offers::table
            .find(id)
            .select((
                gpu_offers::id,
                gpu_offers::consortium_id,
                gpu_offers::call_id,
                gpu_offers::expires_at,
                gpu_offers::h100_eq,
                gpu_offers::options,
                gpu_offers::made_by,
                gpu_offers::made_at,
                gpu_offers::reason,
            ))
            .first(conn)
            .optional()?
            .ok_or(LedgerError::OfferNotFound(id))?;
    let acceptance: Option<(i32, String, DateTime<Utc>)> = gpu_offer_acceptances::table
        .find(id)
        .select((
            gpu_offer_acceptances::option_index,
            gpu_offer_acceptances::accepted_by,
            gpu_offer_acceptances::accepted_at,
        ))
        .first(conn)
        .optional()?;
    let rows = tranche_rows(
        gpu_tranches::table
            .filter(gpu_tranches::offer_id.eq(id))
            .order(gpu_tranches::tranche_index)
            .into_boxed(),
        conn,
    )?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.8).collect();
    let resolved = resolutions(conn, &ids)?;
    let factors = store::factors(conn)?;
    let tranches = rows
        .iter()
        .map(|r| dto::Tranche {
            index: r.1,
            model: r.3.clone(),
            period: r.4.clone(),
            count: r.5,
            h100_eq: h100_eq(r.5, factors.get(&r.3).copied().unwrap_or(1))
                .unwrap_or(H100Eq(i64::MAX)),
            release_at: r.6,
            release_gate: r.7.clone(),
            transfer_id: r.8,
            status: match resolved.get(&r.8) {
                None => "reserved",
                Some(Kind::Post) => "released",
                Some(_) => "closed",
            }
            .to_owned(),
        })
        .collect();
    // An unaccepted offer whose reservations were voided (by the team's elimination) is
    // voided, not open.
    let reserved: Vec<Uuid> = gpu_offer_reservations::table
        .filter(gpu_offer_reservations::offer_id.eq(id))
        .select(gpu_offer_reservations::transfer_id)
        .load(conn)?;
    let voided = acceptance.is_none()
        && resolutions(conn, &reserved)?
            .values()
            .any(|k| *k == Kind::Void);
    let status = match (&acceptance, voided, expires_at <= Utc::now()) {
        (Some(_), _, _) => "accepted",
        (None, true, _) => "voided",
        (None, false, true) => "expired",
        (None, false, false) => "open",
    };
    Ok(dto::Offer {
        id,
        consortium_id: ConsortiumId(team),
        call_id: CallId(call),
        expires_at,
        h100_eq: H100Eq(worth),
        options: serde_json::from_value(options).unwrap_or_default(),
        status: status.to_owned(),
        accepted_option: acceptance.as_ref().map(|a| a.0 as usize),
        accepted_by: acceptance.as_ref().map(|a| a.1.clone()),
        accepted_at: acceptance.as_ref().map(|a| a.2),
        tranches,
        made_by,
        made_at,
        reason,
    })
}

/// Offers, newest first; only `team`'s when given.
pub fn offer_ids(conn: &mut PgConnection, team: Option<Uuid>) -> QueryResult<Vec<Uuid>> {
    let mut q = gpu_offers::table
        .select(gpu_offers::id)
        .order(gpu_offers::made_at.desc())
        .limit(100)
        .into_boxed();
    if let Some(t) = team {
        q = q.filter(gpu_offers::consortium_id.eq(t));
    }
    q.load(conn)
}

/// The offers holding any of `pendings` as a reservation, locked (`FOR UPDATE`, in id
/// order). The sweeper takes these locks before its batch locks the pools, in the same order
/// as an acceptance (offer row, then accounts), so an expiry and an acceptance of one offer
/// are serialised without a deadlock; taken again by [`announce_expired_offers`] it is a
/// no-op.
pub fn lock_offers_reserving(conn: &mut PgConnection, pendings: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    if pendings.is_empty() {
        return Ok(Vec::new());
    }
    let offers: Vec<Uuid> = gpu_offer_reservations::table
        .filter(gpu_offer_reservations::transfer_id.eq_any(pendings))
        .select(gpu_offer_reservations::offer_id)
        .distinct()
        .load(conn)?;
    if offers.is_empty() {
        return Ok(offers);
    }
    gpu_offers::table
        .filter(gpu_offers::id.eq_any(&offers))
        .order(gpu_offers::id.asc())
        .for_update()
        .select(gpu_offers::id)
        .load(conn)
}

type ExpiredOfferRow = (Uuid, Uuid, Uuid, i64, DateTime<Utc>);

/// Announces `GpuOfferExpired` for each unaccepted offer whose last open reservation is
/// among the expiries `created` in this transaction: once per offer, since exactly one
/// transaction records that last expiry (a pending transfer is resolved at most once) and,
/// with the offer's row locked, exactly that one finds every reservation resolved.
pub fn announce_expired_offers(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    created: &[crate::domain::ledger::Transfer],
    actor: &Actor,
) -> Result<usize, LedgerError> {
    let expired: Vec<Uuid> = created
        .iter()
        .filter(|t| t.kind == Kind::Expire)
        .filter_map(|t| t.pending_id)
        .collect();
    let offers = lock_offers_reserving(conn, &expired)?;
    let mut n = 0;
    for offer in offers {
        let accepted: i64 = gpu_offer_acceptances::table
            .find(offer)
            .count()
            .get_result(conn)?;
        if accepted > 0 {
            continue;
        }
        let rows: Vec<ReservationRow> = gpu_offer_reservations::table
            .filter(gpu_offer_reservations::offer_id.eq(offer))
            .order((
                gpu_offer_reservations::option_index,
                gpu_offer_reservations::tranche_index,
            ))
            .select((
                gpu_offer_reservations::option_index,
                gpu_offer_reservations::tranche_index,
                gpu_offer_reservations::model,
                gpu_offer_reservations::period,
                gpu_offer_reservations::count,
                gpu_offer_reservations::release_at,
                gpu_offer_reservations::release_gate,
                gpu_offer_reservations::transfer_id,
            ))
            .load(conn)?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.7).collect();
        let resolved = resolutions(conn, &ids)?;
        if ids.iter().any(|id| !resolved.contains_key(id)) {
            // Reservations still open: the pass that expires the last one announces it.
            continue;
        }
        let returned: Vec<ReturnedReservation> = rows
            .iter()
            .filter(|r| resolved.get(&r.7) == Some(&Kind::Expire))
            .map(|r| ReturnedReservation {
                option: u32::try_from(r.0).unwrap_or(0),
                tranche: u32::try_from(r.1).unwrap_or(0),
                model: r.2.clone(),
                period: r.3.clone(),
                count: r.4,
                transfer_id: r.7,
            })
            .collect();
        let (id, team, call, worth, expires_at): ExpiredOfferRow = gpu_offers::table
            .find(offer)
            .select((
                gpu_offers::id,
                gpu_offers::consortium_id,
                gpu_offers::call_id,
                gpu_offers::h100_eq,
                gpu_offers::expires_at,
            ))
            .first(conn)?;
        let expired_at = created
            .iter()
            .find(|t| t.kind == Kind::Expire && t.pending_id.is_some_and(|p| ids.contains(&p)))
            .map_or_else(|| Utc::now().trunc_subsecs(6), |t| t.created_at);
        tx.publish(
            conn,
            actor.clone(),
            &GpuOfferExpired {
                offer_id: id,
                consortium_id: ConsortiumId(team),
                call_id: CallId(call),
                h100_eq: worth,
                returned,
                expires_at,
                expired_at,
            },
        )?;
        n += 1;
    }
    Ok(n)
}
