//! Offers, tranches and reallocation as plain functions: what an offer must satisfy, and
//! which transfers accepting it, releasing a tranche or eliminating a team makes. The
//! store applies the transfers as one linked chain (all or nothing) and keeps the records.

use super::catalogue::{check_model_code, check_period, period_start};
use super::ledger::{Kind, TransferRequest};
use chrono::{DateTime, Utc};
use kaip_contracts::dto::gpu::OfferOption;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A refusal naming the field (`options[1].tranches[0].count`) and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub field: String,
    pub rule: String,
}

fn refuse(field: impl Into<String>, rule: impl Into<String>) -> Refusal {
    Refusal {
        field: field.into(),
        rule: rule.into(),
    }
}

pub const MAX_OPTIONS: usize = 4;
pub const MAX_TRANCHES: usize = 12;
/// More GPUs than any programme will hold: keeps every product with a factor in range.
pub const MAX_COUNT: i64 = 1_000_000;

/// A gate key: 1-64 of `a-z`, `0-9`, `-`.
pub fn valid_gate(g: &str) -> bool {
    !g.is_empty()
        && g.len() <= 64
        && g.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks an offer and returns what it is worth in H100-eq. Every option must be worth the
/// same: "512 B200 or 1,024 H100" is one offer of 1,024 H100-eq in two forms.
pub fn validate(
    options: &[OfferOption],
    factors: &HashMap<String, i64>,
    expires_at: DateTime<Utc>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<i64, Refusal> {
    if expires_at <= now {
        return Err(refuse("expires_at", "must be in the future"));
    }
    if reason.trim().is_empty() {
        return Err(refuse("reason", "an offer must say why"));
    }
    if options.is_empty() || options.len() > MAX_OPTIONS {
        return Err(refuse("options", format!("1 to {MAX_OPTIONS} options")));
    }
    let mut worth: Option<i64> = None;
    let mut models = HashSet::new();
    for (i, o) in options.iter().enumerate() {
        let at = format!("options[{i}]");
        check_model_code(&o.model).map_err(|e| refuse(format!("{at}.model"), e.rule))?;
        let factor = *factors.get(&o.model).ok_or_else(|| {
            refuse(
                format!("{at}.model"),
                format!("`{}` is not in the GPU catalogue", o.model),
            )
        })?;
        if !models.insert(o.model.as_str()) {
            return Err(refuse(
                format!("{at}.model"),
                "each option is another model",
            ));
        }
        if o.tranches.is_empty() || o.tranches.len() > MAX_TRANCHES {
            return Err(refuse(
                format!("{at}.tranches"),
                format!("1 to {MAX_TRANCHES} tranches"),
            ));
        }
        let mut periods = HashSet::new();
        let mut total: i64 = 0;
        for (j, t) in o.tranches.iter().enumerate() {
            let tat = format!("{at}.tranches[{j}]");
            check_period(&t.period).map_err(|e| refuse(format!("{tat}.period"), e.rule))?;
            if !periods.insert(t.period.as_str()) {
                return Err(refuse(format!("{tat}.period"), "one tranche per period"));
            }
            if !(1..=MAX_COUNT).contains(&t.count) {
                return Err(refuse(
                    format!("{tat}.count"),
                    format!("a whole number of GPUs from 1 to {MAX_COUNT}"),
                ));
            }
            if t.release_at.is_some() && t.release_gate.is_some() {
                return Err(refuse(
                    format!("{tat}.release_gate"),
                    "a tranche is released on a date or at a gate, not both",
                ));
            }
            if let Some(g) = &t.release_gate {
                if !valid_gate(g) {
                    return Err(refuse(
                        format!("{tat}.release_gate"),
                        "1-64 of a-z, 0-9 and `-` (e.g. gate-1)",
                    ));
                }
            }
            // Bounded by MAX_COUNT x MAX_FACTOR x MAX_TRANCHES: no overflow.
            total += t.count * factor;
        }
        match worth {
            None => worth = Some(total),
            Some(w) if w != total => {
                return Err(refuse(
                    at,
                    format!("is worth {total} H100-eq; every option must be worth the same as option 0 ({w} H100-eq)"),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(worth.unwrap_or(0))
}

/// A deterministic id for the `n`-th transfer an operation on `base` makes: retries of the
/// same operation choose the same ids (and so answer `exists`), distinct operations never
/// share one. FNV-1a over the base and the purpose.
pub fn derived_id(base: Uuid, purpose: &str, n: u64) -> Uuid {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    for b in base
        .as_bytes()
        .iter()
        .copied()
        .chain(purpose.bytes())
        .chain(n.to_le_bytes())
    {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    Uuid::from_u128(h)
}

/// One tranche of one option, reserved while the offer is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub option: usize,
    pub tranche: usize,
    pub transfer_id: Uuid,
    pub pool: Uuid,
    pub grant: Uuid,
    pub count: i64,
    pub release_at: Option<DateTime<Utc>>,
    pub release_gate: Option<String>,
}

/// Is a tranche due at acceptance? With no condition, or its date passed.
pub fn due(
    release_at: Option<DateTime<Utc>>,
    release_gate: Option<&str>,
    now: DateTime<Utc>,
) -> bool {
    release_gate.is_none() && release_at.is_none_or(|t| t <= now)
}

/// What accepting `chosen` does, as one chain: the other options' reservations are voided;
/// the chosen option's due tranches are posted; its later ones move from the offer's
/// (expiring) reservation to one without timeout, which is posted when they are released.
/// Returns the chain and, per chosen tranche, the transfer that now holds it and whether it
/// was released.
pub fn accept(
    reservations: &[Reservation],
    chosen: usize,
    offer: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> (Vec<TransferRequest>, Vec<(usize, Uuid, bool)>) {
    let mut chain = Vec::new();
    let mut held = Vec::new();
    let step = |kind: Kind,
                id: Uuid,
                pending: Option<Uuid>,
                debit: Uuid,
                credit: Uuid,
                amount: i64,
                code: &str| TransferRequest {
        id,
        debit_account: debit,
        credit_account: credit,
        amount,
        kind,
        pending_id: pending,
        timeout_at: None,
        linked: true,
        code: code.to_owned(),
        reason: reason.to_owned(),
    };
    let mut n = 0u64;
    let mut next = |purpose: &str| {
        n += 1;
        derived_id(offer, purpose, n)
    };
    for r in reservations.iter().filter(|r| r.option != chosen) {
        chain.push(step(
            Kind::Void,
            next("accept"),
            Some(r.transfer_id),
            Uuid::nil(),
            Uuid::nil(),
            0,
            "offer_declined",
        ));
    }
    let mut mine: Vec<&Reservation> = reservations.iter().filter(|r| r.option == chosen).collect();
    mine.sort_by_key(|r| r.tranche);
    for r in mine {
        if due(r.release_at, r.release_gate.as_deref(), now) {
            chain.push(step(
                Kind::Post,
                next("accept"),
                Some(r.transfer_id),
                Uuid::nil(),
                Uuid::nil(),
                0,
                "grant",
            ));
            held.push((r.tranche, r.transfer_id, true));
        } else {
            chain.push(step(
                Kind::Void,
                next("accept"),
                Some(r.transfer_id),
                Uuid::nil(),
                Uuid::nil(),
                0,
                "tranche_reserved",
            ));
            let reservation = next("accept");
            chain.push(step(
                Kind::Pending,
                reservation,
                None,
                r.pool,
                r.grant,
                r.count,
                "tranche",
            ));
            held.push((r.tranche, reservation, false));
        }
    }
    if let Some(last) = chain.last_mut() {
        last.linked = false;
    }
    (chain, held)
}

/// The post that releases a reserved tranche (its id fixed by the reservation).
pub fn release(reservation: Uuid, trigger: &str) -> TransferRequest {
    TransferRequest {
        id: derived_id(reservation, "release", 0),
        debit_account: Uuid::nil(),
        credit_account: Uuid::nil(),
        amount: 0,
        kind: Kind::Post,
        pending_id: Some(reservation),
        timeout_at: None,
        linked: false,
        code: "tranche_release".into(),
        reason: format!("tranche released ({trigger})"),
    }
}

/// An open reservation crediting the eliminated team.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReservation {
    pub transfer_id: Uuid,
    pub timeout_at: Option<DateTime<Utc>>,
}

/// One of the eliminated team's grant accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamGrant {
    pub account: Uuid,
    pub pool: Option<Uuid>,
    pub period: String,
    /// Posted and not reserved elsewhere: what can go back.
    pub available: i64,
}

/// One grant of the plan, with the accounts resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedGrant {
    pub pool: Uuid,
    pub grant: Uuid,
    pub count: i64,
}

/// What eliminating a team does, as one chain: every open reservation of its is voided
/// (recorded as expired if its timeout passed), its capacity for periods that start after
/// the decision goes back to the pools, and the plan's grants go to the survivors. What it
/// holds for periods already started (used, or in use) stays.
pub fn eliminate(
    reservations: &[OpenReservation],
    grants: &[TeamGrant],
    plan: &[PlannedGrant],
    key: Uuid,
    reason: &str,
    decided_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<TransferRequest> {
    let mut chain = Vec::new();
    let mut n = 0u64;
    let mut next = || {
        n += 1;
        derived_id(key, "eliminate", n)
    };
    for r in reservations {
        let expired = r.timeout_at.is_some_and(|t| t <= now);
        chain.push(TransferRequest {
            id: next(),
            debit_account: Uuid::nil(),
            credit_account: Uuid::nil(),
            amount: 0,
            kind: if expired { Kind::Expire } else { Kind::Void },
            pending_id: Some(r.transfer_id),
            timeout_at: None,
            linked: true,
            code: "reclaim".into(),
            reason: reason.to_owned(),
        });
    }
    for g in grants {
        let future = period_start(&g.period).is_some_and(|s| s > decided_at);
        if let (true, true, Some(pool)) = (future, g.available > 0, g.pool) {
            chain.push(TransferRequest {
                id: next(),
                debit_account: g.account,
                credit_account: pool,
                amount: g.available,
                kind: Kind::Single,
                pending_id: None,
                timeout_at: None,
                linked: true,
                code: "reclaim".into(),
                reason: reason.to_owned(),
            });
        }
    }
    for p in plan {
        chain.push(TransferRequest {
            id: next(),
            debit_account: p.pool,
            credit_account: p.grant,
            amount: p.count,
            kind: Kind::Single,
            pending_id: None,
            timeout_at: None,
            linked: true,
            code: "reallocate".into(),
            reason: reason.to_owned(),
        });
    }
    if let Some(last) = chain.last_mut() {
        last.linked = false;
    }
    chain
}

#[cfg(test)]
mod tests;
