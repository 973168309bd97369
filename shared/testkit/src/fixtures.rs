//! Valid domain values for tests.

use kaip_contracts::dto::intake::{Member, MemberRole, OrgType, ResourceRequest};
use kaip_contracts::events::ProposalSubmitted;
use kaip_contracts::{CallId, ConsortiumId, ProposalId};

/// A valid business registration number (correct check digit) derived from `seed`.
pub fn brn(seed: u32) -> String {
    let body = format!("{:09}", seed % 1_000_000_000);
    let d: Vec<u32> = body.chars().filter_map(|c| c.to_digit(10)).collect();
    const W: [u32; 9] = [1, 3, 7, 1, 3, 7, 1, 3, 5];
    let sum: u32 = d.iter().zip(W).map(|(a, b)| a * b).sum::<u32>() + d[8] * 5 / 10;
    let check = (10 - sum % 10) % 10;
    format!("{}-{}-{}{}", &body[..3], &body[3..5], &body[5..], check)
}

/// A lead of `lead` type plus a university partner: eligible under the default rules.
pub fn members(seed: u32, lead: OrgType) -> Vec<Member> {
    vec![
        Member {
            name: format!("Lead {seed}"),
            org_type: lead,
            business_registration_number: brn(seed * 2),
            role: MemberRole::Lead,
        },
        Member {
            name: format!("University {seed}"),
            org_type: OrgType::University,
            business_registration_number: brn(seed * 2 + 1),
            role: MemberRole::Partner,
        },
    ]
}

/// A `ProposalSubmitted` as intake would publish it.
pub fn proposal_submitted(title: &str) -> ProposalSubmitted {
    ProposalSubmitted {
        proposal_id: ProposalId::new(),
        call_id: CallId::new(),
        consortium_id: ConsortiumId::new(),
        consortium_name: format!("{title} consortium"),
        title: title.into(),
        version: 1,
        content_hash: "0".repeat(64),
        members: members(7, OrgType::LargeEnterprise),
        resources: ResourceRequest::default(),
        portfolio: Some(portfolio()),
        submitted_at: chrono::Utc::now(),
    }
}

/// A general-track proposal releasing weights and code under Apache-2.0, trained from scratch.
pub fn portfolio() -> kaip_contracts::dto::intake::Portfolio {
    use kaip_contracts::dto::intake::{
        Artefact, Independence, Openness, Portfolio, Track, TrackKind,
    };
    Portfolio {
        track: Track {
            kind: TrackKind::General,
            industry: None,
        },
        openness: Openness {
            releases: vec![Artefact::Weights, Artefact::Code],
            licence: Some("Apache-2.0".into()),
        },
        independence: Independence {
            from_scratch: true,
            builds_on: vec![],
        },
    }
}
