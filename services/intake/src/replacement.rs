//! Who may apply to a replacement call. Its places are freed for others: a consortium
//! eliminated at any gate (this one or an earlier one) may not come back through it, and a
//! survivor (selected in the programme and not eliminated) already holds a place. Both are
//! matched by consortium id and by the members' business registration numbers, so a
//! consortium registered again under a new id with a member it shares is caught too.

use crate::error::IntakeError;
use crate::schema::{calls, consortium_versions, decided_gates, selected_teams};
use crate::store::{decode, CallRow};
use diesel::prelude::*;
use kaip_contracts::dto::intake::Member;
use kaip_contracts::ConsortiumId;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Why an applicant is barred from a replacement call.
#[derive(Debug, PartialEq, Eq)]
pub enum Bar {
    /// Eliminated at `gate`; `via` is `Some((consortium, why))` when matched as a
    /// re-registration of that eliminated consortium.
    Eliminated {
        gate: String,
        via: Option<(Uuid, &'static str)>,
    },
    /// Selected by `call` and not eliminated.
    Survivor {
        call: Uuid,
        via: Option<(Uuid, &'static str)>,
    },
}

/// A consortium's identity in one profile version: its lead's BRN and all members' BRNs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub lead: Option<String>,
    pub all: BTreeSet<String>,
}

/// A business registration number compared by its digits (`123-45-67890` = `1234567890`).
pub fn brn_key(brn: &str) -> String {
    brn.chars().filter(char::is_ascii_digit).collect()
}

/// Whether `own` is the consortium `other` registered again: the same lead, or most of its
/// members (more than half of `other`'s BRNs). Sharing a partner (a university or a GPU
/// supplier in several consortia) is not enough.
pub fn same_consortium(own: &Identity, other: &Identity) -> Option<&'static str> {
    if own.lead.is_some() && own.lead == other.lead {
        return Some("the same lead");
    }
    let shared = own.all.intersection(&other.all).count();
    (!other.all.is_empty() && shared * 2 > other.all.len()).then_some("most of the same members")
}

/// The rule, as a plain function: `applicant` with identity `own`; `eliminated` gives each
/// gate (the call's own gate first, then earlier ones) with the consortia it eliminated;
/// `selected` every (call, consortium) the programme selected; `identities` each profile
/// version of those consortia.
pub fn bar(
    applicant: Uuid,
    own: &Identity,
    eliminated: &[(String, Vec<Uuid>)],
    selected: &[(Uuid, Uuid)],
    identities: &BTreeMap<Uuid, Vec<Identity>>,
) -> Option<Bar> {
    let same = |other: Uuid| -> Option<(Uuid, &'static str)> {
        identities
            .get(&other)?
            .iter()
            .find_map(|v| same_consortium(own, v))
            .map(|why| (other, why))
    };
    let mut out: BTreeSet<Uuid> = BTreeSet::new();
    for (gate, ids) in eliminated {
        if ids.contains(&applicant) {
            return Some(Bar::Eliminated {
                gate: gate.clone(),
                via: None,
            });
        }
        out.extend(ids.iter().copied());
    }
    for (gate, ids) in eliminated {
        if let Some(via) = ids.iter().find_map(|&o| same(o)) {
            return Some(Bar::Eliminated {
                gate: gate.clone(),
                via: Some(via),
            });
        }
    }
    let survivors: Vec<&(Uuid, Uuid)> = selected.iter().filter(|(_, t)| !out.contains(t)).collect();
    if let Some((call, _)) = survivors.iter().find(|(_, t)| *t == applicant) {
        return Some(Bar::Survivor {
            call: *call,
            via: None,
        });
    }
    survivors.iter().find_map(|(call, t)| {
        same(*t).map(|via| Bar::Survivor {
            call: *call,
            via: Some(via),
        })
    })
}

fn identity_of(members: &[Member]) -> Identity {
    Identity {
        lead: members
            .iter()
            .find(|m| m.role == kaip_contracts::dto::intake::MemberRole::Lead)
            .map(|m| brn_key(&m.business_registration_number))
            .filter(|b| !b.is_empty()),
        all: members
            .iter()
            .map(|m| brn_key(&m.business_registration_number))
            .filter(|b| !b.is_empty())
            .collect(),
    }
}

/// Refuses while intake does not know whom every decided call of `programme` (every call
/// when `None`) selected: a call decided (`decided_at`) whose selected teams it has not
/// recorded (fewer `selected_teams` rows than it `filled`, or `filled` unknown), such as a
/// selection published before intake recorded them. Without them a survivor would pass for
/// a newcomer (`SELECTIONS_UNKNOWN`).
pub fn selections_known(c: &mut PgConnection, programme: Option<Uuid>) -> Result<(), IntakeError> {
    let mut q = calls::table
        .filter(calls::decided_at.is_not_null())
        .select((calls::id, calls::filled))
        .into_boxed();
    if let Some(p) = programme {
        q = q.filter(calls::programme_id.eq(p));
    }
    let decided: Vec<(Uuid, Option<i32>)> = q.load(c)?;
    let ids: Vec<Uuid> = decided.iter().map(|(id, _)| *id).collect();
    let known: Vec<Uuid> = selected_teams::table
        .filter(selected_teams::call_id.eq_any(&ids))
        .select(selected_teams::call_id)
        .load(c)?;
    let mut counts: BTreeMap<Uuid, i64> = BTreeMap::new();
    for id in known {
        *counts.entry(id).or_default() += 1;
    }
    let unknown: Vec<Uuid> = decided
        .iter()
        .filter(|(id, filled)| match filled {
            None => true,
            Some(f) => i64::from(*f) > counts.get(id).copied().unwrap_or(0),
        })
        .map(|(id, _)| *id)
        .collect();
    match unknown.first() {
        None => Ok(()),
        Some(&example) => Err(IntakeError::SelectionsUnknown {
            count: unknown.len(),
            example,
        }),
    }
}

/// Refuses `consortium` applying to `call` if it is a replacement call that bars it (see
/// [`bar`]), or while intake does not know the programme's selections
/// ([`selections_known`]). Checked at draft creation and again at submission.
pub fn may_apply(
    c: &mut PgConnection,
    call: &CallRow,
    consortium: ConsortiumId,
    members: Option<&[Member]>,
) -> Result<(), IntakeError> {
    let Some(r) = call.replacement()? else {
        return Ok(());
    };
    selections_known(c, call.programme_id)?;
    // The members checked are the very ones the caller goes on with (loaded once).
    let own = members.map(identity_of).unwrap_or_default();
    let gates: Vec<(String, serde_json::Value)> = decided_gates::table
        .order(decided_gates::decided_at.asc())
        .select((decided_gates::gate, decided_gates::eliminated))
        .load(c)?;
    let mut eliminated = Vec::with_capacity(gates.len());
    for (gate, v) in gates {
        let ids: Vec<ConsortiumId> = decode(&format!("gate `{gate}`: eliminated"), v)?;
        eliminated.push((gate, ids.into_iter().map(|i| i.0).collect::<Vec<_>>()));
    }
    // The call's own gate first: its verdict is the one named.
    eliminated.sort_by_key(|(g, _)| *g != r.gate);
    let mut q = selected_teams::table
        .inner_join(calls::table.on(calls::id.eq(selected_teams::call_id)))
        .select((selected_teams::call_id, selected_teams::consortium_id))
        .into_boxed();
    if let Some(programme) = call.programme_id {
        q = q.filter(calls::programme_id.eq(programme));
    }
    let selected: Vec<(Uuid, Uuid)> = q.load(c)?;
    // Another gate's eliminations count only within the call's programme (a team it
    // selected): a consortium eliminated in another programme may apply here.
    if call.programme_id.is_some() {
        let ours: BTreeSet<Uuid> = selected.iter().map(|(_, t)| *t).collect();
        for (gate, ids) in eliminated.iter_mut() {
            if *gate != r.gate {
                ids.retain(|t| ours.contains(t));
            }
        }
    }
    let mut brns: BTreeMap<Uuid, Vec<Identity>> = BTreeMap::new();
    if !own.all.is_empty() {
        let others: Vec<Uuid> = eliminated
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .chain(selected.iter().map(|(_, t)| *t))
            .filter(|&t| t != consortium.0)
            .collect();
        let rows: Vec<(Uuid, serde_json::Value)> = consortium_versions::table
            .filter(consortium_versions::consortium_id.eq_any(&others))
            .select((
                consortium_versions::consortium_id,
                consortium_versions::members,
            ))
            .load(c)?;
        for (id, members) in rows {
            let members: Vec<Member> = decode(&format!("consortium {id}: members"), members)?;
            brns.entry(id).or_default().push(identity_of(&members));
        }
    }
    // The other consortium is not named: the applicant learns only why it matched.
    let via = |v: Option<(Uuid, &'static str)>| match v {
        Some((_, why)) => format!(" (registered again: {why} as that consortium)"),
        None => String::new(),
    };
    match bar(consortium.0, &own, &eliminated, &selected, &brns) {
        None => Ok(()),
        Some(Bar::Eliminated { gate, via: v }) => {
            Err(IntakeError::EliminatedAtGate(consortium, gate, via(v)))
        }
        Some(Bar::Survivor { call, via: v }) => Err(IntakeError::HoldsPlace {
            consortium,
            call,
            matched: via(v),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(lead: &str, rest: &[&str]) -> Identity {
        Identity {
            lead: Some(lead.into()),
            all: std::iter::once(lead)
                .chain(rest.iter().copied())
                .map(String::from)
                .collect(),
        }
    }

    #[test]
    fn an_applicant_eliminated_at_any_gate_or_surviving_or_registered_again_is_barred() {
        let (me, x, y, s) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let call = Uuid::now_v7();
        let gates = vec![
            ("gate-2".to_string(), vec![x]),
            ("gate-1".to_string(), vec![y, me]),
        ];
        let none = BTreeMap::new();
        // Eliminated at an earlier gate: named by that gate.
        assert_eq!(
            bar(me, &Identity::default(), &gates, &[], &none),
            Some(Bar::Eliminated {
                gate: "gate-1".into(),
                via: None
            })
        );
        // A new id with the eliminated consortium's lead.
        let ids = BTreeMap::from([
            (x, vec![id("1111111111", &["3333333333", "4444444444"])]),
            (s, vec![id("2222222222", &["5555555555", "6666666666"])]),
        ]);
        assert_eq!(
            bar(Uuid::now_v7(), &id("1111111111", &[]), &gates, &[], &ids),
            Some(Bar::Eliminated {
                gate: "gate-2".into(),
                via: Some((x, "the same lead"))
            })
        );
        // A survivor holds a place, by id or registered again with most of its members;
        // an eliminated team that was once selected is no survivor.
        let selected = vec![(call, s), (call, x)];
        assert_eq!(
            bar(s, &Identity::default(), &gates, &selected, &ids),
            Some(Bar::Survivor { call, via: None })
        );
        assert_eq!(
            bar(
                Uuid::now_v7(),
                &id("9999999999", &["5555555555", "6666666666"]),
                &gates,
                &selected,
                &ids
            ),
            Some(Bar::Survivor {
                call,
                via: Some((s, "most of the same members"))
            })
        );
        // Sharing one partner with a survivor (a university in several consortia) is not
        // a re-registration: the applicant may apply.
        assert_eq!(
            bar(
                Uuid::now_v7(),
                &id("9999999999", &["5555555555", "7777777777", "8888888888"]),
                &gates,
                &selected,
                &ids
            ),
            None
        );
    }

    #[test]
    fn brns_compare_by_digits() {
        assert_eq!(brn_key("123-45-67890"), "1234567890");
    }
}
