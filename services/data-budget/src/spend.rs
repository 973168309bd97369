//! Spending: commitments, joint purchases, cancellations, invoices, payments, cap
//! adjustments and the data catalogue. Each operation checks what it can without the
//! database first, then locks the budgets it touches (see [`crate::store`]), decides with
//! [`crate::domain`] and writes its records and events in one transaction: a refusal rolls
//! everything back, so nothing is written.

use crate::domain::{self, Cap, Invalid};
use crate::error::BudgetError;
use crate::schema::{
    budget_cancellations, budget_caps, budget_commitments, budget_invoices, budget_joint_purchases,
    budget_payments, budget_teams, datasets,
};
use crate::store::{self, CommitmentRow};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use kaip_bus::OutboxTx;
use kaip_contracts::dto::budget::{self as dto, Category};
use kaip_contracts::events::{
    DataBudgetCapAdjusted, DataCommitmentCancelled, DataCommitmentMade, DataInvoiceRecorded,
    DataPaymentConfirmed, DatasetRegistered, JointPurchaseSplit, SplitShare,
};
use kaip_contracts::{Actor, ConsortiumId, Krw};
use uuid::Uuid;

fn commitment(conn: &mut PgConnection, id: Uuid) -> Result<CommitmentRow, BudgetError> {
    store::commitments(conn, None, None, Some(id), None)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            BudgetError::not_found(
                "COMMITMENT_NOT_FOUND",
                format!("commitment {id} does not exist"),
            )
        })
}

pub fn commitment_view(
    conn: &mut PgConnection,
    id: Uuid,
    only: store::OnlyTeam,
) -> Result<dto::Commitment, BudgetError> {
    let c = commitment(conn, id)?;
    if only.is_some_and(|t| t != c.consortium_id) {
        return Err(BudgetError::not_found(
            "COMMITMENT_NOT_FOUND",
            format!("commitment {id} does not exist"),
        ));
    }
    Ok(c.dto())
}

fn dataset_exists(conn: &mut PgConnection, field: &str, id: Uuid) -> Result<(), BudgetError> {
    let n: i64 = datasets::table.find(id).count().get_result(conn)?;
    if n == 0 {
        return Err(BudgetError::invalid(
            "DATASET_UNKNOWN",
            field,
            format!("dataset {id} is not in the catalogue; register it first"),
        ));
    }
    Ok(())
}

/// After [`store::lock_budgets`]: the team's years, or why it may not commit in `year`.
fn committable_years(
    conn: &mut PgConnection,
    field: &str,
    team: Uuid,
    year: i32,
) -> Result<Vec<domain::Year>, BudgetError> {
    let known: i64 = budget_teams::table.find(team).count().get_result(conn)?;
    if known == 0 {
        return Err(BudgetError::UnknownTeam(field.to_owned(), team));
    }
    if let Some(gate) = store::eliminated_at(conn, team)? {
        return Err(BudgetError::TeamEliminated(field.to_owned(), team, gate));
    }
    let years = store::years_of(conn, team)?;
    if !years.iter().any(|y| y.year == year) {
        return Err(BudgetError::BudgetNotFound(field.to_owned(), team, year));
    }
    Ok(years)
}

struct NewCommitment<'a> {
    id: Uuid,
    team: Uuid,
    year: i32,
    category: Category,
    amount: i64,
    dataset: Option<Uuid>,
    joint: Option<(Uuid, i64)>,
    reason: &'a str,
}

fn insert_commitment(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    c: &NewCommitment<'_>,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Result<(), BudgetError> {
    diesel::insert_into(budget_commitments::table)
        .values((
            budget_commitments::id.eq(c.id),
            budget_commitments::consortium_id.eq(c.team),
            budget_commitments::fiscal_year.eq(c.year),
            budget_commitments::category.eq(c.category.as_str()),
            budget_commitments::amount_krw.eq(c.amount),
            budget_commitments::dataset_id.eq(c.dataset),
            budget_commitments::joint_purchase_id.eq(c.joint.map(|j| j.0)),
            budget_commitments::joint_weight.eq(c.joint.map(|j| j.1)),
            budget_commitments::made_by.eq(&actor.subject),
            budget_commitments::made_role.eq(actor.role.to_string()),
            budget_commitments::made_at.eq(at),
            budget_commitments::reason.eq(c.reason.trim()),
        ))
        .execute(conn)?;
    tx.publish(
        conn,
        actor.clone(),
        &DataCommitmentMade {
            commitment_id: c.id,
            consortium_id: ConsortiumId(c.team),
            fiscal_year: c.year,
            category: c.category,
            amount_krw: Krw(c.amount),
            dataset_id: c.dataset,
            joint_purchase_id: c.joint.map(|j| j.0),
            made_at: at,
        },
    )?;
    Ok(())
}

/// The stored answer to a repeat of `req` (same id), or the conflict if it differs.
fn commitment_replay(
    conn: &mut PgConnection,
    req: &dto::MakeCommitment,
) -> Result<Option<dto::Commitment>, BudgetError> {
    let existing = store::commitments(conn, None, None, Some(req.id), None)?
        .into_iter()
        .next();
    let Some(existing) = existing else {
        return Ok(None);
    };
    let same = existing.consortium_id == req.consortium_id.0
        && existing.fiscal_year == req.fiscal_year
        && existing.category() == req.category
        && existing.amount_krw == req.amount_krw.0
        && existing.dataset_id == req.dataset_id
        && existing.joint_purchase_id.is_none()
        && existing.reason == req.reason.trim();
    if same {
        Ok(Some(existing.dto()))
    } else {
        Err(BudgetError::ExistsWithDifferentFields("id"))
    }
}

/// A commitment reserves budget in one category of one team-year, if it fits the cap and
/// the sub-limit (every year from it on, with carry-over). A repeat answers the original.
pub fn make_commitment(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &dto::MakeCommitment,
    actor: &Actor,
) -> Result<dto::Commitment, BudgetError> {
    if let Some(done) = commitment_replay(conn, req)? {
        return Ok(done);
    }
    domain::positive_amount("amount_krw", req.amount_krw.0)?;
    domain::reason("reason", &req.reason)?;
    // Checked early for the clearer refusal; checked again under the locks below.
    domain::year_in_programme(
        "fiscal_year",
        req.fiscal_year,
        &store::programme(conn)?.settings,
    )?;
    domain::current_year("fiscal_year", req.fiscal_year, store::now())?;
    if let Some(d) = req.dataset_id {
        dataset_exists(conn, "dataset_id", d)?;
    }
    let team = req.consortium_id.0;
    store::lock_budgets(conn, &[team])?;
    // A retry that waited on the lock behind its original answers what the original did.
    if let Some(done) = commitment_replay(conn, req)? {
        return Ok(done);
    }
    // The programme is read under the team's locks: a programme change holds every budget
    // lock, so it is wholly before this commitment (and seen here) or waits for it.
    let p = store::programme(conn)?.settings;
    domain::year_in_programme("fiscal_year", req.fiscal_year, &p)?;
    let years = committable_years(conn, "consortium_id", team, req.fiscal_year)?;
    domain::fits(
        &years,
        p.carry_over,
        req.fiscal_year,
        req.category,
        req.amount_krw.0,
    )
    .map_err(|s| BudgetError::insufficient("amount_krw", team, &s))?;
    insert_commitment(
        conn,
        tx,
        &NewCommitment {
            id: req.id,
            team,
            year: req.fiscal_year,
            category: req.category,
            amount: req.amount_krw.0,
            dataset: req.dataset_id,
            joint: None,
            reason: &req.reason,
        },
        actor,
        store::now(),
    )?;
    Ok(commitment(conn, req.id)?.dto())
}

/// Renames `shares[i]` (an index in the sorted order) to the request's own index.
fn in_request_order(mut e: Invalid, order: &[usize]) -> Invalid {
    for (sorted, original) in order.iter().enumerate() {
        let from = format!("shares[{sorted}]");
        if e.field.starts_with(&from) {
            e.field = e.field.replacen(&from, &format!("shares[{original}]"), 1);
            break;
        }
    }
    e
}

/// A dataset bought by several teams: its cost split by the shares (see
/// [`domain::plan_shares`]; the stated order is by consortium id), committed for every
/// team or, if any team lacks room, for none; the refusal names the team and the shortfall.
pub fn make_joint_purchase(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &dto::MakeJointPurchase,
    actor: &Actor,
) -> Result<dto::JointPurchase, BudgetError> {
    let request = serde_json::to_value(req).unwrap_or_default();
    if let Some(done) = joint_replay(conn, req.id, &request)? {
        return Ok(done);
    }
    domain::positive_amount("total_krw", req.total_krw.0)?;
    domain::reason("reason", &req.reason)?;
    // Checked early for the clearer refusal; checked again under the locks below.
    domain::year_in_programme(
        "fiscal_year",
        req.fiscal_year,
        &store::programme(conn)?.settings,
    )?;
    domain::current_year("fiscal_year", req.fiscal_year, store::now())?;
    let mut order: Vec<usize> = (0..req.shares.len()).collect();
    order.sort_by_key(|i| req.shares[*i].consortium_id);
    let sorted: Vec<dto::ShareSpec> = order.iter().map(|i| req.shares[*i].clone()).collect();
    let (rule, parts) =
        domain::plan_shares(req.total_krw.0, &sorted).map_err(|e| in_request_order(e, &order))?;
    dataset_exists(conn, "dataset_id", req.dataset_id)?;
    let teams: Vec<Uuid> = sorted.iter().map(|s| s.consortium_id.0).collect();
    store::lock_budgets(conn, &teams)?;
    if let Some(done) = joint_replay(conn, req.id, &request)? {
        return Ok(done);
    }
    // Under the teams' locks, as in `make_commitment`.
    let p = store::programme(conn)?.settings;
    domain::year_in_programme("fiscal_year", req.fiscal_year, &p)?;
    for (k, (team, (_, amount))) in teams.iter().zip(&parts).enumerate() {
        let field = format!("shares[{}].consortium_id", order[k]);
        let years = committable_years(conn, &field, *team, req.fiscal_year)?;
        domain::fits(
            &years,
            p.carry_over,
            req.fiscal_year,
            Category::JointPurchase,
            *amount,
        )
        .map_err(|s| BudgetError::insufficient(format!("shares[{}]", order[k]), *team, &s))?;
    }
    let at = store::now();
    diesel::insert_into(budget_joint_purchases::table)
        .values((
            budget_joint_purchases::id.eq(req.id),
            budget_joint_purchases::dataset_id.eq(req.dataset_id),
            budget_joint_purchases::fiscal_year.eq(req.fiscal_year),
            budget_joint_purchases::total_krw.eq(req.total_krw.0),
            budget_joint_purchases::split_rule.eq(rule.as_str()),
            budget_joint_purchases::request.eq(&request),
            budget_joint_purchases::made_by.eq(&actor.subject),
            budget_joint_purchases::made_at.eq(at),
            budget_joint_purchases::reason.eq(req.reason.trim()),
        ))
        .execute(conn)?;
    let mut shares = Vec::new();
    for (team, (weight, amount)) in teams.iter().zip(&parts) {
        let id = Uuid::now_v7();
        insert_commitment(
            conn,
            tx,
            &NewCommitment {
                id,
                team: *team,
                year: req.fiscal_year,
                category: Category::JointPurchase,
                amount: *amount,
                dataset: Some(req.dataset_id),
                joint: Some((req.id, *weight)),
                reason: &req.reason,
            },
            actor,
            at,
        )?;
        shares.push(SplitShare {
            consortium_id: ConsortiumId(*team),
            weight: *weight,
            amount_krw: Krw(*amount),
            commitment_id: id,
        });
    }
    tx.publish(
        conn,
        actor.clone(),
        &JointPurchaseSplit {
            joint_purchase_id: req.id,
            dataset_id: req.dataset_id,
            fiscal_year: req.fiscal_year,
            total_krw: req.total_krw,
            split_rule: rule.as_str().to_owned(),
            shares,
            made_at: at,
        },
    )?;
    joint_view(conn, req.id)
}

/// The stored answer to a repeat of a joint purchase (same id), or the conflict.
fn joint_replay(
    conn: &mut PgConnection,
    id: Uuid,
    request: &serde_json::Value,
) -> Result<Option<dto::JointPurchase>, BudgetError> {
    let existing: Option<serde_json::Value> = budget_joint_purchases::table
        .find(id)
        .select(budget_joint_purchases::request)
        .first(conn)
        .optional()?;
    match existing {
        None => Ok(None),
        Some(e) if &e == request => joint_view(conn, id).map(Some),
        Some(_) => Err(BudgetError::ExistsWithDifferentFields("id")),
    }
}

pub fn joint_view(conn: &mut PgConnection, id: Uuid) -> Result<dto::JointPurchase, BudgetError> {
    #[allow(clippy::type_complexity)]
    let row: (Uuid, i32, i64, String, String, DateTime<Utc>, String) =
        budget_joint_purchases::table
            .find(id)
            .select((
                budget_joint_purchases::dataset_id,
                budget_joint_purchases::fiscal_year,
                budget_joint_purchases::total_krw,
                budget_joint_purchases::split_rule,
                budget_joint_purchases::made_by,
                budget_joint_purchases::made_at,
                budget_joint_purchases::reason,
            ))
            .first(conn)
            .optional()?
            .ok_or_else(|| {
                BudgetError::not_found(
                    "JOINT_PURCHASE_NOT_FOUND",
                    format!("joint purchase {id} does not exist"),
                )
            })?;
    let shares = store::commitments(conn, None, None, None, Some(id))?
        .into_iter()
        .map(|c| dto::Share {
            consortium_id: ConsortiumId(c.consortium_id),
            weight: c.joint_weight.unwrap_or(1),
            amount_krw: Krw(c.amount_krw),
            commitment_id: c.id,
        })
        .collect();
    Ok(dto::JointPurchase {
        id,
        dataset_id: row.0,
        fiscal_year: row.1,
        total_krw: Krw(row.2),
        split_rule: row.3,
        shares,
        made_by: row.4,
        made_at: row.5,
        reason: row.6,
    })
}

/// A joint purchase as a sharing team sees it: the dataset and its own share only; a team
/// without a share in it is told it does not exist.
pub fn own_joint_share(
    conn: &mut PgConnection,
    id: Uuid,
    team: Uuid,
) -> Result<dto::OwnJointShare, BudgetError> {
    let j = joint_view(conn, id)?;
    let share = j
        .shares
        .into_iter()
        .find(|s| s.consortium_id.0 == team)
        .ok_or_else(|| {
            BudgetError::not_found(
                "JOINT_PURCHASE_NOT_FOUND",
                format!("joint purchase {id} does not exist"),
            )
        })?;
    Ok(dto::OwnJointShare {
        joint_purchase_id: j.id,
        dataset_id: j.dataset_id,
        fiscal_year: j.fiscal_year,
        split_rule: j.split_rule,
        share,
        made_at: j.made_at,
    })
}

/// Releases what a commitment had not invoiced (once).
pub fn cancel(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    id: Uuid,
    req: &dto::CancelCommitment,
    actor: &Actor,
    only: store::OnlyTeam,
) -> Result<dto::Commitment, BudgetError> {
    let c = commitment_view(conn, id, only)?;
    domain::reason("reason", &req.reason)?;
    store::lock_budgets(conn, &[c.consortium_id.0])?;
    let c = commitment(conn, id)?;
    if let Some(joint) = c.joint_purchase_id {
        return Err(BudgetError::refused(
            "JOINT_PURCHASE_SHARE",
            format!("id: commitment {id} is one share of joint purchase {joint}: a joint purchase is all or nothing, so one share cannot be cancelled alone"),
        ));
    }
    if c.released > 0 {
        return Err(BudgetError::refused(
            "COMMITMENT_ALREADY_CANCELLED",
            format!("id: commitment {id} was already cancelled"),
        ));
    }
    let open = c.amount_krw - c.invoiced;
    if open <= 0 {
        return Err(BudgetError::refused(
            "COMMITMENT_FULLY_INVOICED",
            format!("id: commitment {id} is invoiced in full: nothing is left to release"),
        ));
    }
    let at = store::now();
    diesel::insert_into(budget_cancellations::table)
        .values((
            budget_cancellations::commitment_id.eq(id),
            budget_cancellations::released_krw.eq(open),
            budget_cancellations::cancelled_by.eq(&actor.subject),
            budget_cancellations::cancelled_at.eq(at),
            budget_cancellations::reason.eq(req.reason.trim()),
        ))
        .execute(conn)?;
    tx.publish(
        conn,
        actor.clone(),
        &DataCommitmentCancelled {
            commitment_id: id,
            consortium_id: ConsortiumId(c.consortium_id),
            fiscal_year: c.fiscal_year,
            released_krw: Krw(open),
            reason: req.reason.trim().to_owned(),
            cancelled_at: at,
        },
    )?;
    Ok(commitment(conn, id)?.dto())
}

type InvoiceRow = (Uuid, Uuid, i64, String, String, DateTime<Utc>);

fn invoice_row(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<InvoiceRow>> {
    budget_invoices::table
        .find(id)
        .select((
            budget_invoices::id,
            budget_invoices::commitment_id,
            budget_invoices::amount_krw,
            budget_invoices::invoice_no,
            budget_invoices::recorded_by,
            budget_invoices::recorded_at,
        ))
        .first(conn)
        .optional()
}

pub fn invoice_view(conn: &mut PgConnection, id: Uuid) -> Result<dto::Invoice, BudgetError> {
    let r = invoice_row(conn, id)?.ok_or_else(|| {
        BudgetError::not_found("INVOICE_NOT_FOUND", format!("invoice {id} does not exist"))
    })?;
    let c = commitment(conn, r.1)?;
    let paid = paid_of(conn, id)?;
    Ok(dto::Invoice {
        id: r.0,
        commitment_id: r.1,
        consortium_id: ConsortiumId(c.consortium_id),
        amount_krw: Krw(r.2),
        paid_krw: Krw(paid),
        invoice_no: r.3,
        recorded_by: r.4,
        recorded_at: r.5,
    })
}

fn paid_of(conn: &mut PgConnection, invoice: Uuid) -> QueryResult<i64> {
    let amounts: Vec<i64> = budget_payments::table
        .filter(budget_payments::invoice_id.eq(invoice))
        .select(budget_payments::amount_krw)
        .load(conn)?;
    Ok(amounts.iter().sum())
}

/// The stored answer to a repeat of an invoice (same id), or the conflict.
fn invoice_replay(
    conn: &mut PgConnection,
    req: &dto::RecordInvoice,
) -> Result<Option<dto::Invoice>, BudgetError> {
    match invoice_row(conn, req.id)? {
        None => Ok(None),
        Some(r)
            if r.1 == req.commitment_id
                && r.2 == req.amount_krw.0
                && r.3 == req.invoice_no.trim() =>
        {
            invoice_view(conn, req.id).map(Some)
        }
        Some(_) => Err(BudgetError::ExistsWithDifferentFields("id")),
    }
}

/// An invoice consumes (part of) a commitment: never more than it has open.
pub fn record_invoice(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &dto::RecordInvoice,
    actor: &Actor,
) -> Result<dto::Invoice, BudgetError> {
    if let Some(done) = invoice_replay(conn, req)? {
        return Ok(done);
    }
    domain::positive_amount("amount_krw", req.amount_krw.0)?;
    if req.invoice_no.trim().is_empty() {
        return Err(BudgetError::invalid(
            "VALIDATION_FAILED",
            "invoice_no",
            "must name the supplier's invoice",
        ));
    }
    let c = commitment(conn, req.commitment_id).map_err(|_| {
        BudgetError::invalid(
            "COMMITMENT_NOT_FOUND",
            "commitment_id",
            format!("commitment {} does not exist", req.commitment_id),
        )
    })?;
    store::lock_budgets(conn, &[c.consortium_id])?;
    if let Some(done) = invoice_replay(conn, req)? {
        return Ok(done);
    }
    let c = commitment(conn, req.commitment_id)?;
    if c.released > 0 {
        return Err(BudgetError::refused(
            "COMMITMENT_CANCELLED",
            format!("commitment_id: commitment {} was cancelled", c.id),
        ));
    }
    let open = c.amount_krw - c.invoiced;
    if req.amount_krw.0 > open {
        return Err(BudgetError::invalid(
            "INVOICE_EXCEEDS_COMMITMENT",
            "amount_krw",
            format!("the commitment has KRW {open} not yet invoiced"),
        ));
    }
    let at = store::now();
    diesel::insert_into(budget_invoices::table)
        .values((
            budget_invoices::id.eq(req.id),
            budget_invoices::commitment_id.eq(c.id),
            budget_invoices::amount_krw.eq(req.amount_krw.0),
            budget_invoices::invoice_no.eq(req.invoice_no.trim()),
            budget_invoices::recorded_by.eq(&actor.subject),
            budget_invoices::recorded_at.eq(at),
        ))
        .execute(conn)
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                ref info,
            ) if info.constraint_name() == Some("budget_invoices_commitment_invoice_no") => {
                BudgetError::invalid(
                    "INVOICE_ALREADY_RECORDED",
                    "invoice_no",
                    format!(
                        "the supplier's invoice {} is already recorded against this commitment",
                        req.invoice_no.trim()
                    ),
                )
            }
            e => e.into(),
        })?;
    tx.publish(
        conn,
        actor.clone(),
        &DataInvoiceRecorded {
            invoice_id: req.id,
            commitment_id: c.id,
            consortium_id: ConsortiumId(c.consortium_id),
            fiscal_year: c.fiscal_year,
            amount_krw: req.amount_krw,
            invoice_no: req.invoice_no.trim().to_owned(),
            recorded_at: at,
        },
    )?;
    invoice_view(conn, req.id)
}

type PaymentRow = (String, Uuid, i64, DateTime<Utc>, String, DateTime<Utc>);

fn payment_view(conn: &mut PgConnection, r: PaymentRow) -> Result<dto::Payment, BudgetError> {
    let inv = invoice_view(conn, r.1)?;
    Ok(dto::Payment {
        external_key: r.0,
        invoice_id: r.1,
        consortium_id: inv.consortium_id,
        amount_krw: Krw(r.2),
        paid_at: r.3,
        confirmed_by: r.4,
        recorded_at: r.5,
    })
}

/// The finance system confirms a payment, once per `external_key`: a repeat answers the
/// original (`Ok((payment, false))`), a repeat with other fields is refused.
pub fn confirm_payment(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &dto::ConfirmPayment,
    actor: &Actor,
) -> Result<(dto::Payment, bool), BudgetError> {
    let key = req.external_key.trim();
    let paid_at = req.paid_at.trunc_subsecs(6);
    let find = |c: &mut PgConnection| {
        budget_payments::table
            .find(key)
            .select((
                budget_payments::external_key,
                budget_payments::invoice_id,
                budget_payments::amount_krw,
                budget_payments::paid_at,
                budget_payments::confirmed_by,
                budget_payments::recorded_at,
            ))
            .first::<PaymentRow>(c)
            .optional()
    };
    let replay = |c: &mut PgConnection| -> Result<Option<(dto::Payment, bool)>, BudgetError> {
        match find(c)? {
            None => Ok(None),
            Some(r) if r.1 == req.invoice_id && r.2 == req.amount_krw.0 && r.3 == paid_at => {
                Ok(Some((payment_view(c, r)?, false)))
            }
            Some(_) => Err(BudgetError::ExistsWithDifferentFields("external_key")),
        }
    };
    if let Some(done) = replay(conn)? {
        return Ok(done);
    }
    if key.is_empty() {
        return Err(BudgetError::invalid(
            "VALIDATION_FAILED",
            "external_key",
            "must carry the finance system's own id of the payment",
        ));
    }
    domain::positive_amount("amount_krw", req.amount_krw.0)?;
    let inv = invoice_row(conn, req.invoice_id)?.ok_or_else(|| {
        BudgetError::invalid(
            "INVOICE_NOT_FOUND",
            "invoice_id",
            format!("invoice {} does not exist", req.invoice_id),
        )
    })?;
    let c = commitment(conn, inv.1)?;
    store::lock_budgets(conn, &[c.consortium_id])?;
    // A retry that waited on the lock behind its original answers what the original did.
    if let Some(done) = replay(conn)? {
        return Ok(done);
    }
    domain::validate_paid_at(paid_at, c.made_at, store::now())?;
    let unpaid = inv.2 - paid_of(conn, inv.0)?;
    if req.amount_krw.0 > unpaid {
        return Err(BudgetError::invalid(
            "PAYMENT_EXCEEDS_INVOICE",
            "amount_krw",
            format!("the invoice has KRW {unpaid} unpaid"),
        ));
    }
    let at = store::now();
    diesel::insert_into(budget_payments::table)
        .values((
            budget_payments::external_key.eq(key),
            budget_payments::invoice_id.eq(inv.0),
            budget_payments::amount_krw.eq(req.amount_krw.0),
            budget_payments::paid_at.eq(paid_at),
            budget_payments::confirmed_by.eq(&actor.subject),
            budget_payments::recorded_at.eq(at),
        ))
        .execute(conn)?;
    tx.publish(
        conn,
        actor.clone(),
        &DataPaymentConfirmed {
            external_key: key.to_owned(),
            invoice_id: inv.0,
            consortium_id: ConsortiumId(c.consortium_id),
            amount_krw: req.amount_krw,
            paid_at,
        },
    )?;
    let r = find(conn)?.ok_or_else(|| BudgetError::refused("CONFLICT", "payment vanished"))?;
    Ok((payment_view(conn, r)?, true))
}

/// An officer's adjustment of a team-year's cap: a new record, within the programme's
/// maximum and never below what is committed (in that year or, with carry-over, later).
pub fn adjust_cap(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    team: Uuid,
    year: i32,
    req: &dto::AdjustCap,
    actor: &Actor,
) -> Result<dto::Budget, BudgetError> {
    domain::reason("reason", &req.reason)?;
    store::lock_budgets(conn, &[team])?;
    // Under the team's locks: a programme change in flight is wholly before (and its new
    // maximum applies here) or waits.
    let p = store::programme(conn)?.settings;
    domain::year_in_programme("fiscal_year", year, &p)?;
    let known: i64 = budget_teams::table.find(team).count().get_result(conn)?;
    if known == 0 {
        return Err(BudgetError::UnknownTeam("consortium_id".into(), team));
    }
    let mut years = store::years_of(conn, team)?;
    let cap = Cap {
        total: req.cap_krw.0,
        joint_purchase: req.joint_purchase_limit_krw.0,
        building_processing: req.building_processing_limit_krw.0,
    };
    let Some(this) = years.iter_mut().find(|y| y.year == year) else {
        return Err(BudgetError::BudgetNotFound(
            "fiscal_year".into(),
            team,
            year,
        ));
    };
    domain::validate_adjustment(cap, p.max_cap_krw.0, &this.committed)?;
    this.cap = cap;
    for c in Category::ALL {
        domain::fits(&years, p.carry_over, year, c, 0).map_err(|s| {
            BudgetError::invalid(
                "CAP_BELOW_COMMITTED",
                "cap_krw",
                format!(
                    "fiscal year {} would be KRW {} over what it has committed (carried over)",
                    s.year, s.shortfall
                ),
            )
        })?;
    }
    let at = store::now();
    let seq = diesel::insert_into(budget_caps::table)
        .values((
            budget_caps::consortium_id.eq(team),
            budget_caps::fiscal_year.eq(year),
            budget_caps::cap_krw.eq(cap.total),
            budget_caps::joint_purchase_limit_krw.eq(cap.joint_purchase),
            budget_caps::building_processing_limit_krw.eq(cap.building_processing),
            budget_caps::set_by.eq(&actor.subject),
            budget_caps::set_role.eq(actor.role.to_string()),
            budget_caps::set_at.eq(at),
            budget_caps::reason.eq(req.reason.trim()),
        ))
        .returning(budget_caps::seq)
        .get_result::<i64>(conn)?;
    tx.publish(
        conn,
        actor.clone(),
        &DataBudgetCapAdjusted {
            consortium_id: ConsortiumId(team),
            fiscal_year: year,
            seq,
            cap_krw: req.cap_krw,
            joint_purchase_limit_krw: req.joint_purchase_limit_krw,
            building_processing_limit_krw: req.building_processing_limit_krw,
            reason: req.reason.trim().to_owned(),
            adjusted_at: at,
        },
    )?;
    store::budget_views(conn, Some(team), Some(year))?
        .into_iter()
        .next()
        .ok_or(BudgetError::BudgetNotFound(
            "fiscal_year".into(),
            team,
            year,
        ))
}

type DatasetRow = (Uuid, String, String, String, String, DateTime<Utc>);

fn dataset_dto(r: DatasetRow) -> dto::Dataset {
    dto::Dataset {
        id: r.0,
        name: r.1,
        provider: r.2,
        licence_terms: r.3,
        registered_by: r.4,
        registered_at: r.5,
    }
}

pub fn list_datasets(conn: &mut PgConnection) -> QueryResult<Vec<dto::Dataset>> {
    Ok(datasets::table
        .order((datasets::registered_at, datasets::id))
        .select((
            datasets::id,
            datasets::name,
            datasets::provider,
            datasets::licence_terms,
            datasets::registered_by,
            datasets::registered_at,
        ))
        .load::<DatasetRow>(conn)?
        .into_iter()
        .map(dataset_dto)
        .collect())
}

/// Enters a dataset in the catalogue. A repeat with the same fields answers the original.
pub fn register_dataset(
    conn: &mut PgConnection,
    tx: &mut OutboxTx<'_>,
    req: &dto::RegisterDataset,
    actor: &Actor,
) -> Result<dto::Dataset, BudgetError> {
    let existing = list_datasets(conn)?.into_iter().find(|d| d.id == req.id);
    if let Some(d) = existing {
        return if d.name == req.name.trim()
            && d.provider == req.provider.trim()
            && d.licence_terms == req.licence_terms.trim()
        {
            Ok(d)
        } else {
            Err(BudgetError::ExistsWithDifferentFields("id"))
        };
    }
    for (f, v) in [
        ("name", &req.name),
        ("provider", &req.provider),
        ("licence_terms", &req.licence_terms),
    ] {
        if v.trim().is_empty() {
            return Err(BudgetError::invalid(
                "VALIDATION_FAILED",
                f,
                "must not be empty",
            ));
        }
    }
    let at = store::now();
    diesel::insert_into(datasets::table)
        .values((
            datasets::id.eq(req.id),
            datasets::name.eq(req.name.trim()),
            datasets::provider.eq(req.provider.trim()),
            datasets::licence_terms.eq(req.licence_terms.trim()),
            datasets::registered_by.eq(&actor.subject),
            datasets::registered_at.eq(at),
        ))
        .execute(conn)?;
    tx.publish(
        conn,
        actor.clone(),
        &DatasetRegistered {
            dataset_id: req.id,
            name: req.name.trim().to_owned(),
            provider: req.provider.trim().to_owned(),
            licence_terms: req.licence_terms.trim().to_owned(),
            registered_at: at,
        },
    )?;
    list_datasets(conn)?
        .into_iter()
        .find(|d| d.id == req.id)
        .ok_or_else(|| BudgetError::refused("CONFLICT", "dataset vanished"))
}

/// The licences teams hold: one per commitment that bought a dataset and was not
/// cancelled before any of it was invoiced. Elimination does not take them away.
pub fn licences(
    conn: &mut PgConnection,
    team: Option<Uuid>,
) -> Result<Vec<dto::Licence>, BudgetError> {
    let sets = list_datasets(conn)?;
    Ok(store::commitments(conn, team, None, None, None)?
        .into_iter()
        .filter(|c| c.committed() > 0)
        .filter_map(|c| {
            let d = sets.iter().find(|d| Some(d.id) == c.dataset_id)?;
            Some(dto::Licence {
                dataset_id: d.id,
                dataset_name: d.name.clone(),
                licence_terms: d.licence_terms.clone(),
                consortium_id: ConsortiumId(c.consortium_id),
                commitment_id: c.id,
                granted_at: c.made_at,
            })
        })
        .collect())
}
