//! The published event schemas and AsyncAPI document match the Rust types. A change to an
//! event shows up here first: `make snapshots` accepts a deliberate one.

use kaip_contracts::catalogue;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(path: PathBuf, current: &serde_json::Value) {
    let text = serde_json::to_string_pretty(current).expect("json") + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        // Written beside it and renamed over it: the other tests of this binary read the
        // published schemas at the same time, and must never see a half-written file.
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, &text).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == text,
        "{} is out of date: review the change and run `make snapshots`",
        path.display()
    );
}

#[test]
fn event_schemas_match_the_snapshots() {
    let specs = catalogue::events();
    for spec in &specs {
        check(dir().join("schemas").join(spec.file_name()), &spec.schema());
    }
    // No stale schema files for events that no longer exist.
    let names: Vec<String> = specs.iter().map(|s| s.file_name()).collect();
    for entry in std::fs::read_dir(dir().join("schemas")).expect("schemas dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            names.contains(&name),
            "schemas/{name} describes no published event"
        );
    }
}

#[test]
fn the_asyncapi_document_matches_its_snapshot() {
    check(dir().join("asyncapi.json"), &catalogue::asyncapi());
}

/// The published (checked-in) schema of `event_type`, compiled as the draft-7 validator an
/// integrator would build from it, with formats asserted: draft 7's own (`date-time`), and
/// `uuid`, which draft 7 leaves undefined (later drafts define it as RFC 4122).
fn published_validator(event_type: &str) -> jsonschema::Validator {
    let spec = catalogue::events()
        .into_iter()
        .find(|s| s.event_type == event_type)
        .unwrap_or_else(|| panic!("{event_type} is not in the catalogue"));
    let path = dir().join("schemas").join(spec.file_name());
    let text = std::fs::read_to_string(&path).expect("published schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .with_format("uuid", |s| uuid::Uuid::try_parse(s).is_ok())
        .build(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
}

/// Every error the validator reports, with where it is, for assertion messages.
fn errors(v: &jsonschema::Validator, event: &serde_json::Value) -> Vec<String> {
    v.iter_errors(event)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// One envelope per published event type (two for the selection: a portfolio with a
/// departure and an override, and "select nobody"), each built the way the producing
/// service's outbox builds it, `EventEnvelope::wrap(producer, actor, &event)` serialised
/// to JSON, with every optional part present somewhere.
fn real_events() -> Vec<serde_json::Value> {
    use kaip_contracts::dto::intake::{
        GpuRequest, Member, MemberRole, OrgType, ResourceRequest, TalentPosition,
    };
    use kaip_contracts::dto::scoring::Departure;
    use kaip_contracts::events::{
        AppealAnswered, AppealFiled, CallOpened, EvaluationCaseOpened, ProposalSubmitted,
        ProposalWithdrawn, SelectedTeam, SelectionPublished, WithdrawalRefused,
    };
    use kaip_contracts::{
        Actor, CallId, ConsortiumId, EvaluationCaseId, EventEnvelope, Krw, ProposalId, Role,
    };
    let now = chrono::Utc::now();
    let (call, consortium, proposal) = (CallId::new(), ConsortiumId::new(), ProposalId::new());
    let person = |subject: &str, role| Actor {
        subject: subject.into(),
        role,
    };
    let officer = person("officer-1", Role::Officer);
    let lead = person("lead-1", Role::Consortium);
    let resources = ResourceRequest {
        gpus: vec![GpuRequest {
            model: "B200".into(),
            count: 256,
        }],
        data_budget_krw: Krw(15_000_000_000),
        talent_funding_krw: Krw(2_000_000_000),
        talent_positions: vec![TalentPosition {
            title: "Pre-training lead".into(),
            field: "LLM".into(),
            seniority: "principal".into(),
            count: 2,
        }],
    };
    let members = vec![
        Member {
            name: "LG AI Research".into(),
            org_type: OrgType::LargeEnterprise,
            business_registration_number: "123-45-67891".into(),
            role: MemberRole::Lead,
        },
        Member {
            name: "KAIST".into(),
            org_type: OrgType::University,
            business_registration_number: "314-82-00017".into(),
            role: MemberRole::Partner,
        },
    ];
    let team = SelectedTeam {
        proposal_id: proposal,
        consortium_id: consortium,
        consortium_name: "K-Team".into(),
        title: "Sovereign LLM".into(),
        rank: 1,
        score_centi: 8_733,
        resources: resources.clone(),
    };
    let appeal = uuid::Uuid::now_v7();
    let json = |env: Result<EventEnvelope, serde_json::Error>| {
        serde_json::to_value(env.expect("wrap")).expect("json")
    };
    let mut out = vec![
        json(EventEnvelope::wrap(
            "intake",
            officer.clone(),
            &CallOpened {
                call_id: call,
                title: "Sovereign AI Foundation Model 2026".into(),
                opens_at: now,
                closes_at: now + chrono::Duration::days(30),
                replaces: None,
                team_maxima: Some(kaip_contracts::events::CallMaxima {
                    data_budget_krw: kaip_contracts::Krw(15_000_000_000),
                    talent_funding_krw: kaip_contracts::Krw(2_000_000_000),
                }),
            },
        )),
        json(EventEnvelope::wrap(
            "intake",
            officer.clone(),
            &kaip_contracts::events::ReplacementCallCancelled {
                call_id: CallId::new(),
                gate: "gate-1".into(),
                reason: "no applicant by the deadline".into(),
                cancelled_by: "officer-kim".into(),
                cancelled_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "intake",
            lead.clone(),
            &ProposalSubmitted {
                proposal_id: proposal,
                call_id: call,
                consortium_id: consortium,
                consortium_name: "K-Team".into(),
                title: "Sovereign LLM".into(),
                version: 2,
                content_hash: "ab".repeat(32),
                members,
                resources: resources.clone(),
                portfolio: Some(kaip_contracts::dto::intake::Portfolio {
                    track: kaip_contracts::dto::intake::Track {
                        kind: kaip_contracts::dto::intake::TrackKind::IndustrySpecialised,
                        industry: Some("bio".into()),
                    },
                    openness: kaip_contracts::dto::intake::Openness {
                        releases: vec![kaip_contracts::dto::intake::Artefact::Weights],
                        licence: Some("Apache-2.0".into()),
                    },
                    independence: kaip_contracts::dto::intake::Independence {
                        from_scratch: false,
                        builds_on: vec!["EXAONE 3.5 weights".into()],
                    },
                }),
                submitted_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "intake",
            lead.clone(),
            &ProposalWithdrawn {
                proposal_id: proposal,
                call_id: call,
                consortium_id: consortium,
                reason: "merged with another team".into(),
                withdrawn_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "scoring",
            Actor::system("scoring"),
            &EvaluationCaseOpened {
                case_id: EvaluationCaseId::new(),
                proposal_id: proposal,
                call_id: call,
                consortium_id: consortium,
                opened_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "scoring",
            officer.clone(),
            &SelectionPublished {
                call_id: call,
                selected: vec![team],
                departure: Some(Departure {
                    promoted: vec![proposal],
                    displaced: vec![ProposalId::new()],
                    reasons: vec!["the top 5 by rank would break \"at least 1 sme\"".into()],
                }),
                override_reason: Some("the panel's recommendation".into()),
                published_at: now,
                replaces: None,
                team_maxima: Some(kaip_contracts::events::CallMaxima {
                    data_budget_krw: kaip_contracts::Krw(15_000_000_000),
                    talent_funding_krw: kaip_contracts::Krw(2_000_000_000),
                }),
            },
        )),
        json(EventEnvelope::wrap(
            "scoring",
            officer.clone(),
            &SelectionPublished {
                call_id: call,
                selected: Vec::new(),
                departure: None,
                override_reason: None,
                published_at: now,
                replaces: None,
                team_maxima: None,
            },
        )),
        json(EventEnvelope::wrap(
            "scoring",
            lead,
            &AppealFiled {
                appeal_id: appeal,
                call_id: call,
                proposal_id: proposal,
                consortium_id: consortium,
                filed_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "scoring",
            Actor::system("scoring"),
            &WithdrawalRefused {
                proposal_id: proposal,
                call_id: call,
                consortium_id: consortium,
                reason: "the decision was published before the withdrawal reached scoring".into(),
                case_status: "selected".into(),
                refused_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "scoring",
            Actor::system("scoring"),
            &kaip_contracts::events::ReplacementCallCancellationDecided {
                call_id: CallId::new(),
                gate: "gate-1".into(),
                cancelled: false,
                refusal: Some("the selection was published first".into()),
                decided_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "scoring",
            officer.clone(),
            &kaip_contracts::audit::AuditRecorded {
                operation_id: appeal,
                service: "scoring".into(),
                at: now,
                actor_subject: "officer-1".into(),
                actor_role: "officer".into(),
                trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
                operation: "POST /appeals/{id}/answer".into(),
                input: serde_json::json!({ "path": "/appeals/x/answer", "body": { "answer": "upheld" } }),
                changes: vec![kaip_contracts::audit::AuditChange {
                    table: "appeals".into(),
                    key: serde_json::json!({ "id": appeal }),
                    action: "update".into(),
                    before: Some(serde_json::json!({ "id": appeal, "answer": null })),
                    after: Some(serde_json::json!({ "id": appeal, "answer": "upheld" })),
                }],
                changes_truncated: false,
                sequence: Some(41),
                part: 1,
                parts: 1,
            },
        )),
        json(EventEnvelope::wrap(
            "intake",
            Actor::system("intake"),
            &kaip_contracts::audit::AuditRecorded {
                operation_id: appeal,
                service: "intake".into(),
                at: now,
                actor_subject: "db:postgres".into(),
                actor_role: "unknown".into(),
                trace_id: None,
                operation: "sql".into(),
                input: serde_json::json!({}),
                changes: vec![kaip_contracts::audit::AuditChange {
                    table: "proposals".into(),
                    key: serde_json::json!({ "id": proposal }),
                    action: "delete".into(),
                    before: Some(serde_json::json!({ "id": proposal })),
                    after: None,
                }],
                changes_truncated: true,
                sequence: Some(42),
                part: 2,
                parts: 3,
            },
        )),
        json(EventEnvelope::wrap(
            "scoring",
            officer.clone(),
            &AppealAnswered {
                appeal_id: appeal,
                call_id: call,
                proposal_id: proposal,
                consortium_id: consortium,
                answered_at: now,
            },
        )),
    ];
    out.extend(gpu_events(officer.clone(), consortium, now));
    out.extend(budget_events(officer.clone(), consortium, now));
    out.extend(talent_events(officer, consortium, now));
    out
}

/// The data budget's events, as its outbox builds them.
fn budget_events(
    officer: kaip_contracts::Actor,
    consortium: kaip_contracts::ConsortiumId,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<serde_json::Value> {
    use kaip_contracts::dto::budget::Category;
    use kaip_contracts::events::{
        DataBudgetCapAdjusted, DataBudgetOpened, DataCommitmentCancelled, DataCommitmentMade,
        DataInvoiceRecorded, DataPaymentConfirmed, DataProgrammeConfigured, DatasetRegistered,
        JointPurchaseSplit, SplitShare,
    };
    use kaip_contracts::{Actor, CallId, EventEnvelope, Krw, Role};
    let json = |env: Result<EventEnvelope, serde_json::Error>| {
        serde_json::to_value(env.expect("wrap")).expect("json")
    };
    let system = Actor::system("data-budget");
    let finance = Actor {
        subject: "finance-1".into(),
        role: Role::Integration,
    };
    let (commitment, invoice, dataset, joint) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    vec![
        json(EventEnvelope::wrap(
            "data-budget",
            officer.clone(),
            &DataProgrammeConfigured {
                version: 2,
                settings: kaip_contracts::dto::budget::ProgrammeSettings {
                    max_cap_krw: Krw(12_000_000_000),
                    joint_purchase_limit_krw: Krw(8_000_000_000),
                    building_processing_limit_krw: Krw(4_000_000_000),
                    carry_over: false,
                    first_year: 2026,
                    last_year: 2030,
                },
                set_by: "officer-1".into(),
                reason: "the ministry's 2027 budget law".into(),
                caps_lowered: 5,
                set_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "data-budget",
            system,
            &DataBudgetOpened {
                consortium_id: consortium,
                call_id: CallId::new(),
                fiscal_year: 2026,
                cap_krw: Krw(15_000_000_000),
                joint_purchase_limit_krw: Krw(10_000_000_000),
                building_processing_limit_krw: Krw(5_000_000_000),
                opened_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "data-budget",
            officer.clone(),
            &DataBudgetCapAdjusted {
                consortium_id: consortium,
                fiscal_year: 2026,
                seq: 7,
                cap_krw: Krw(12_000_000_000),
                joint_purchase_limit_krw: Krw(9_000_000_000),
                building_processing_limit_krw: Krw(3_000_000_000),
                reason: "scope reduced at gate 1".into(),
                adjusted_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "data-budget",
            officer.clone(),
            &DatasetRegistered {
                dataset_id: dataset,
                name: "Korean web corpus".into(),
                provider: "NIA".into(),
                licence_terms: "research use by licensee teams".into(),
                registered_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "data-budget",
            officer.clone(),
            &DataCommitmentMade {
                commitment_id: commitment,
                consortium_id: consortium,
                fiscal_year: 2026,
                category: Category::JointPurchase,
                amount_krw: Krw(333_333_334),
                dataset_id: Some(dataset),
                joint_purchase_id: Some(joint),
                made_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "data-budget",
            officer.clone(),
            &JointPurchaseSplit {
                joint_purchase_id: joint,
                dataset_id: dataset,
                fiscal_year: 2026,
                total_krw: Krw(1_000_000_001),
                split_rule: "equal".into(),
                shares: vec![SplitShare {
                    consortium_id: consortium,
                    weight: 1,
                    amount_krw: Krw(333_333_334),
                    commitment_id: commitment,
                }],
                made_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "data-budget",
            officer.clone(),
            &DataCommitmentCancelled {
                commitment_id: commitment,
                consortium_id: consortium,
                fiscal_year: 2026,
                released_krw: Krw(33_333_334),
                reason: "supplier discount".into(),
                cancelled_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "data-budget",
            finance.clone(),
            &DataInvoiceRecorded {
                invoice_id: invoice,
                commitment_id: commitment,
                consortium_id: consortium,
                fiscal_year: 2026,
                amount_krw: Krw(300_000_000),
                invoice_no: "INV-2026-001".into(),
                recorded_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "data-budget",
            finance,
            &DataPaymentConfirmed {
                external_key: "FIN-2026-77".into(),
                invoice_id: invoice,
                consortium_id: consortium,
                amount_krw: Krw(300_000_000),
                paid_at: now,
            },
        )),
    ]
}

/// The talent service's events, as its outbox builds them.
fn talent_events(
    officer: kaip_contracts::Actor,
    consortium: kaip_contracts::ConsortiumId,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<serde_json::Value> {
    use kaip_contracts::events::{
        TalentFundingStopped, TalentFundsClaimed, TalentFundsPaid, TalentHireEnded, TalentHired,
        TalentMatchDeclined, TalentMatchProposed, TalentPositionOpened, TalentResearcherErased,
    };
    use kaip_contracts::{EventEnvelope, Krw};
    let json = |env: Result<EventEnvelope, serde_json::Error>| {
        serde_json::to_value(env.expect("wrap")).expect("json")
    };
    let id = uuid::Uuid::now_v7;
    let (position, researcher, hire, claim, m) = (id(), id(), id(), id(), id());
    let date = |m: u32, d: u32| chrono::NaiveDate::from_ymd_opt(2027, m, d).expect("date");
    let team = kaip_contracts::Actor {
        subject: "team-lead".into(),
        role: kaip_contracts::Role::Consortium,
    };
    vec![
        json(EventEnvelope::wrap(
            "talent",
            team.clone(),
            &TalentPositionOpened {
                position_id: position,
                consortium_id: consortium,
                title: "Research scientist, pre-training".into(),
                field: "nlp".into(),
                required_skills: vec!["pytorch".into(), "cuda".into()],
                seniority: "senior".into(),
                count: 2,
                opened_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "talent",
            officer.clone(),
            &TalentMatchProposed {
                match_id: m,
                round_id: id(),
                researcher_id: researcher,
                position_id: position,
                consortium_id: consortium,
                fit_skills: 20,
                fit_field: 20,
                fit_seniority: 15,
                fit_total: 55,
                researcher_rank: 1,
                position_rank: 2,
                proposed_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "talent",
            team.clone(),
            &TalentMatchDeclined {
                match_id: id(),
                consortium_id: consortium,
                reason: String::new(),
                declined_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "talent",
            team.clone(),
            &TalentHired {
                hire_id: hire,
                researcher_id: researcher,
                position_id: position,
                consortium_id: consortium,
                match_id: Some(m),
                start_date: date(7, 16),
                end_date: date(12, 31),
                ratio_bp: 5_000,
                hired_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "talent",
            team.clone(),
            &TalentFundsClaimed {
                claim_id: claim,
                hire_id: hire,
                researcher_id: researcher,
                consortium_id: consortium,
                month: "2027-07".into(),
                fiscal_year: 2027,
                days_covered: 16,
                days_in_month: 31,
                ratio_bp: 5_000,
                claimed_krw: Krw(3_870_967),
                claimed_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "talent",
            team,
            &TalentFundsPaid {
                claim_id: claim,
                hire_id: hire,
                consortium_id: consortium,
                fiscal_year: 2027,
                claimed_krw: Krw(3_870_967),
                paid_krw: Krw(3_870_967),
                cap_reason: None,
                year_paid_krw: Krw(3_870_967),
                year_cap_krw: Krw(2_000_000_000),
                paid_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "talent",
            kaip_contracts::Actor::system("talent"),
            &TalentFundingStopped {
                consortium_id: consortium,
                gate: "gate-1".into(),
                eliminated_at: now,
                last_funded_month: "2027-06".into(),
                stopped_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "talent",
            officer.clone(),
            &TalentHireEnded {
                hire_id: hire,
                researcher_id: researcher,
                position_id: position,
                consortium_id: consortium,
                ended_on: date(6, 30),
                cause: "elimination".into(),
                ended_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "talent",
            officer,
            &TalentResearcherErased {
                researcher_id: researcher,
                erased_at: now,
            },
        )),
    ]
}

/// The GPU ledger's events, as its outbox builds them.
fn gpu_events(
    officer: kaip_contracts::Actor,
    consortium: kaip_contracts::ConsortiumId,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<serde_json::Value> {
    use kaip_contracts::dto::gpu::{AccountKind, TransferKind};
    use kaip_contracts::events::{
        AnnouncedTranche, GateDecided, GateDefined, GpuAccountOpened, GpuGrantClosed, GpuGranted,
        GpuModelFactorSet, GpuOfferExpired, GpuOfferMade, GpuSupplierRecorded,
        GpuSupplyEndRecorded, GpuTrancheReleased, GpuTransfersRecorded, GpuUsageRecorded,
        GpuUsageReported, MilestoneOverdue, MovedCapacity, Reallocation, RecordedTransfer,
        ReturnedReservation, TeamEliminated,
    };
    let tranche = |model: &str, count: i64, gate: Option<&str>| AnnouncedTranche {
        model: model.into(),
        period: "2026H2".into(),
        count,
        release_at: gate.is_none().then_some(now),
        release_gate: gate.map(str::to_owned),
    };
    let moved = |count: i64| MovedCapacity {
        consortium_id: consortium,
        model: "B200".into(),
        period: "2026H2".into(),
        count,
    };
    let gate = uuid::Uuid::now_v7();
    use kaip_contracts::EventEnvelope;
    let json = |env: Result<EventEnvelope, serde_json::Error>| {
        serde_json::to_value(env.expect("wrap")).expect("json")
    };
    let (pool, grant, offer) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    vec![
        json(EventEnvelope::wrap(
            "gpu-ledger",
            officer.clone(),
            &GpuAccountOpened {
                account_id: grant,
                model: "B200".into(),
                period: "2026H1".into(),
                kind: AccountKind::Grant,
                consortium_id: Some(consortium),
                name: "K-Team B200 2026H1".into(),
                reason: "selected in the 2026 call".into(),
                opened_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            officer.clone(),
            &GpuTransfersRecorded {
                batch_id: uuid::Uuid::now_v7(),
                ledger_key: kaip_contracts::events::ledger_key("B200", "2026H1"),
                part: 1,
                parts: 1,
                transfers: vec![
                    RecordedTransfer {
                        id: offer,
                        kind: TransferKind::Pending,
                        debit_account: pool,
                        credit_account: grant,
                        amount: 256,
                        model: "B200".into(),
                        period: "2026H1".into(),
                        pending_id: None,
                        code: "offer".into(),
                    },
                    RecordedTransfer {
                        id: uuid::Uuid::now_v7(),
                        kind: TransferKind::Post,
                        debit_account: pool,
                        credit_account: grant,
                        amount: 256,
                        model: "B200".into(),
                        period: "2026H1".into(),
                        pending_id: Some(offer),
                        code: "grant".into(),
                    },
                ],
                recorded_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            officer.clone(),
            &GpuSupplierRecorded {
                consortium_id: consortium,
                supplying: true,
                reason: "leases 128 H100 to the programme".into(),
                recorded_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            officer.clone(),
            &GpuSupplyEndRecorded {
                consortium_id: consortium,
                ends_at: now + chrono::Duration::days(90),
                reason: "the lease of 128 H100 ends with the quarter".into(),
                recorded_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            officer.clone(),
            &GpuOfferMade {
                offer_id: offer,
                consortium_id: consortium,
                call_id: kaip_contracts::CallId::new(),
                h100_eq: 1024,
                options: vec![
                    vec![tranche("B200", 512, None)],
                    vec![tranche("H100", 1024, Some("gate-1"))],
                ],
                expires_at: now,
                reason: "selected in the 2026 call".into(),
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            kaip_contracts::Actor::system("gpu-ledger"),
            &GpuOfferExpired {
                offer_id: offer,
                consortium_id: consortium,
                call_id: kaip_contracts::CallId::new(),
                h100_eq: 1024,
                returned: vec![
                    ReturnedReservation {
                        option: 0,
                        tranche: 0,
                        model: "B200".into(),
                        period: "2026H2".into(),
                        count: 512,
                        transfer_id: uuid::Uuid::now_v7(),
                    },
                    ReturnedReservation {
                        option: 1,
                        tranche: 0,
                        model: "H100".into(),
                        period: "2026H2".into(),
                        count: 1024,
                        transfer_id: uuid::Uuid::now_v7(),
                    },
                ],
                expires_at: now,
                expired_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            officer.clone(),
            &GpuGranted {
                offer_id: offer,
                consortium_id: consortium,
                option: 0,
                released: vec![tranche("B200", 448, None)],
                reserved: vec![tranche("B200", 64, Some("gate-1"))],
                accepted_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            kaip_contracts::Actor::system("gpu-ledger"),
            &GpuTrancheReleased {
                offer_id: offer,
                consortium_id: consortium,
                tranche: tranche("B200", 64, Some("gate-1")),
                trigger: "gate:gate-1".into(),
                released_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            kaip_contracts::Actor::system("gpu-ledger"),
            &GpuGrantClosed {
                consortium_id: consortium,
                gate_id: gate,
                voided: vec![moved(64)],
                returned: vec![moved(128)],
                reallocated: vec![moved(192)],
                closed_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            kaip_contracts::Actor {
                subject: "operator-kisti".into(),
                role: kaip_contracts::Role::Integration,
            },
            &GpuUsageRecorded {
                report_id: uuid::Uuid::now_v7(),
                consortium_id: consortium,
                model: "B200".into(),
                period: "2026H2".into(),
                gpu_hours: 12_000,
                used_hours: 1_200_000,
                granted_hours: 1_130_496,
                overrun: true,
                reported_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            kaip_contracts::topics::OPERATORS_PRODUCER,
            kaip_contracts::Actor {
                subject: "operator-kisti".into(),
                role: kaip_contracts::Role::Integration,
            },
            &GpuUsageReported {
                report_id: uuid::Uuid::now_v7(),
                consortium_id: consortium,
                model: "B200".into(),
                period: "2026H2".into(),
                gpu_hours: 12_000,
                note: "nurion-2 partition b, week 31".into(),
            },
        )),
        json(EventEnvelope::wrap(
            "scoring",
            officer.clone(),
            &kaip_contracts::events::GatePanelScored {
                gate: "gate-1".into(),
                consortium_id: consortium,
                panel_id: uuid::Uuid::now_v7(),
                score: "83.3333".into(),
                reviewers: 3,
                scored_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            kaip_contracts::topics::BENCHMARKS_PRODUCER,
            kaip_contracts::Actor {
                subject: "bench-runner".into(),
                role: kaip_contracts::Role::Integration,
            },
            &kaip_contracts::events::BenchmarkResultReported {
                gate: "gate-1".into(),
                consortium_id: consortium,
                component: "benchmark-global".into(),
                value: "71.25".into(),
                run_id: "run-2027-0042".into(),
                benchmark: "KMMLU 5-shot".into(),
                details: "harness 0.4.2".into(),
                measured_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "milestones",
            officer.clone(),
            &GateDecided {
                gate_id: gate,
                gate: "gate-1".into(),
                passed: vec![kaip_contracts::ConsortiumId::new()],
                eliminated: vec![consortium],
                decided_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "milestones",
            officer.clone(),
            &GateDefined {
                gate_id: gate,
                gate: "gate-1".into(),
                phase: 1,
                gate_date: chrono::NaiveDate::from_ymd_opt(2027, 6, 30).expect("date"),
                defined_at: now,
                expert_panel: true,
            },
        )),
        json(EventEnvelope::wrap(
            "milestones",
            officer.clone(),
            &TeamEliminated {
                gate_id: gate,
                gate: "gate-1".into(),
                consortium_id: consortium,
                reason: "ineligible: not built from scratch".into(),
                reallocation: vec![Reallocation {
                    consortium_id: kaip_contracts::ConsortiumId::new(),
                    model: "B200".into(),
                    period: "2026H2".into(),
                    count: 192,
                }],
                decided_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "milestones",
            kaip_contracts::Actor::system("milestones"),
            &MilestoneOverdue {
                deliverable_id: uuid::Uuid::now_v7(),
                consortium_id: consortium,
                phase: 1,
                title: "Pre-training report".into(),
                due_date: chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(),
                flagged_at: now,
            },
        )),
        json(EventEnvelope::wrap(
            "gpu-ledger",
            officer,
            &GpuModelFactorSet {
                model: "B200".into(),
                name: "NVIDIA B200".into(),
                h100_factor: 2,
                reason: "programme rule".into(),
                recorded_at: now,
            },
        )),
    ]
}

#[test]
fn real_events_validate_against_their_published_schema_and_no_other() {
    let events = real_events();
    let specs = catalogue::events();
    for spec in &specs {
        let validator = published_validator(spec.event_type);
        let mine: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e["type"] == spec.event_type)
            .collect();
        assert!(
            !mine.is_empty(),
            "no real {} here: add one to real_events()",
            spec.event_type
        );
        for event in mine {
            if spec.producer != catalogue::ANY_SERVICE {
                assert_eq!(event["producer"], spec.producer, "{event}");
            }
            let errs = errors(&validator, event);
            assert!(errs.is_empty(), "{}: {errs:#?}\n{event:#}", spec.event_type);
        }
        // A schema names its type: another event's envelope does not pass for this one.
        for other in events.iter().filter(|e| e["type"] != spec.event_type) {
            assert!(
                !validator.is_valid(other),
                "{} accepts a {}",
                spec.event_type,
                other["type"]
            );
        }
    }
}

#[test]
fn broken_events_are_rejected_naming_the_place() {
    let events = real_events();
    let submitted = events
        .iter()
        .find(|e| e["type"] == "ProposalSubmitted")
        .expect("a submission");
    let validator = published_validator("ProposalSubmitted");
    type Break = fn(&mut serde_json::Value);
    let cases: [(&str, Break, &str); 10] = [
        (
            "wrong type of field",
            |e| e["data"]["title"] = 42.into(),
            "/data/title",
        ),
        (
            "number as a string",
            |e| e["data"]["version"] = "2".into(),
            "/data/version",
        ),
        (
            "required field missing",
            |e| {
                e["data"].as_object_mut().expect("data").remove("call_id");
            },
            "/data",
        ),
        (
            "unknown field in data",
            |e| e["data"]["surprise"] = 1.into(),
            "/data",
        ),
        ("unknown envelope field", |e| e["surprise"] = 1.into(), ""),
        (
            "unknown org type",
            |e| e["data"]["members"][0]["org_type"] = "megacorp".into(),
            "/data/members/0/org_type",
        ),
        (
            "unknown role",
            |e| e["actor"]["role"] = "superuser".into(),
            "/actor/role",
        ),
        ("another version", |e| e["version"] = 2.into(), "/version"),
        ("id not a UUID", |e| e["id"] = "evt-1".into(), "/id"),
        (
            "time not RFC 3339",
            |e| e["occurred_at"] = "yesterday".into(),
            "/occurred_at",
        ),
    ];
    for (what, break_it, at) in cases {
        let mut event = submitted.clone();
        break_it(&mut event);
        let errs = errors(&validator, &event);
        assert!(
            errs.iter().any(|e| e.starts_with(&format!("{at}: "))),
            "{what}: expected an error at `{at}`, got {errs:#?}"
        );
    }
    // Scores are whole hundredths of a point: a fraction is refused.
    let mut selection = events
        .iter()
        .find(|e| e["type"] == "SelectionPublished" && e["data"]["departure"].is_object())
        .expect("a selection")
        .clone();
    selection["data"]["selected"][0]["score_centi"] = serde_json::json!(87.5);
    let errs = errors(&published_validator("SelectionPublished"), &selection);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("/data/selected/0/score_centi: ")),
        "{errs:#?}"
    );
}
