//! Intake's rules as plain functions: values in, values (or a named violation) out.

use chrono::{DateTime, Utc};
use kaip_contracts::dto::intake::{
    Document, EligibilityRules, Member, MemberRole, OpenCall, OrgType, RegisterConsortium,
    ResourceRequest,
};
use kaip_contracts::events::Replacement;
use kaip_contracts::text::Lines;
use sha2::{Digest, Sha256};

/// A rule a request broke: which field, and what the rule is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub rule: String,
}

fn violation(field: impl Into<String>, rule: impl Into<String>) -> Violation {
    Violation {
        field: field.into(),
        rule: rule.into(),
    }
}

pub const MAX_TITLE: usize = 200;
pub const MAX_SUMMARY: usize = 20_000;
/// Largest document accepted, in bytes. Documents travel base64-encoded in JSON (4/3 of
/// their size), so the services' and the gateway's body limits (8 MiB) sit above this.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024 * 1024;
/// Largest single GPU request; guards against typos of an extra zero or three.
pub const MAX_GPUS_PER_MODEL: i64 = 100_000;
/// Most positions of one kind a proposal may open (and a bound that keeps the count a
/// 32-bit GraphQL `Int`).
pub const MAX_POSITIONS: i64 = 10_000;

fn check_text(field: &str, value: &str, max: usize) -> Result<(), Violation> {
    let len = value.trim().chars().count();
    if len == 0 {
        return Err(violation(field, "must not be empty"));
    }
    if len > max {
        return Err(violation(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

pub fn validate_programme(
    req: &kaip_contracts::dto::intake::CreateProgramme,
) -> Result<(), Violation> {
    check_text("name", &req.name, MAX_TITLE)?;
    if !(2000..=2100).contains(&req.fiscal_year) {
        return Err(violation(
            "fiscal_year",
            "must be a year between 2000 and 2100",
        ));
    }
    if req.description.chars().count() > MAX_SUMMARY {
        return Err(violation(
            "description",
            format!("must be at most {MAX_SUMMARY} characters"),
        ));
    }
    Ok(())
}

pub fn validate_open_call(req: &OpenCall, now: DateTime<Utc>) -> Result<(), Violation> {
    check_text("title", &req.title, MAX_TITLE)?;
    if req.closes_at <= req.opens_at {
        return Err(violation("closes_at", "must be after opens_at"));
    }
    if req.closes_at <= now {
        return Err(violation("closes_at", "must be in the future"));
    }
    let e = &req.eligibility;
    if e.max_data_budget_krw.0 < 0 {
        return Err(violation(
            "eligibility.max_data_budget_krw",
            "must not be negative",
        ));
    }
    if e.max_talent_funding_krw.0 < 0 {
        return Err(violation(
            "eligibility.max_talent_funding_krw",
            "must not be negative",
        ));
    }
    if req.required_documents.len() > MAX_REQUIRED_DOCUMENTS {
        return Err(violation(
            "required_documents",
            format!("at most {MAX_REQUIRED_DOCUMENTS} kinds"),
        ));
    }
    for (i, kind) in req.required_documents.iter().enumerate() {
        check_document_kind(&format!("required_documents[{i}]"), kind)?;
    }
    if let Some(r) = &req.replaces {
        validate_replacement(r)?;
    }
    Ok(())
}

/// The most GPUs one replacement award may name (a sanity bound far above any pool).
pub const MAX_AWARD_GPUS: i64 = 1_000_000;

/// A replacement call's shape: a gate key, at least one place, members named, an award of
/// a positive count. Whether the gate was decided and freed that many places, and whether
/// the committee is large enough, are checked against what intake knows (see
/// [`committee_members`] and [`free_places`]).
pub fn validate_replacement(r: &Replacement) -> Result<(), Violation> {
    check_text("replaces.gate", &r.gate, MAX_TITLE)?;
    if r.places < 1 {
        return Err(violation("replaces.places", "must be at least 1"));
    }
    for (i, m) in r.committee.iter().enumerate() {
        check_text(&format!("replaces.committee[{i}]"), m, MAX_TITLE)?;
    }
    if let Some(a) = &r.award {
        // The ledger's own rules for a model code and a period: a typo is refused here, at
        // once, not later as the ledger's refusal of the winner's offer.
        kaip_contracts::gpu_rules::check_model_code(&a.model)
            .map_err(|e| violation("replaces.award.model", e.rule))?;
        kaip_contracts::gpu_rules::check_period(&a.period)
            .map_err(|e| violation("replaces.award.period", e.rule))?;
        if a.count < 1 || a.count > MAX_AWARD_GPUS {
            return Err(violation(
                "replaces.award.count",
                format!("must be 1 to {MAX_AWARD_GPUS}"),
            ));
        }
    }
    Ok(())
}

/// The committee's distinct members (trimmed), in the order first named (linear: a set of
/// those seen).
pub fn committee_members(committee: &[String]) -> Vec<String> {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut out: Vec<String> = Vec::new();
    for m in committee {
        let m = m.trim();
        if !m.is_empty() && seen.insert(m) {
            out.push(m.to_owned());
        }
    }
    out
}

/// The most names a committee list may carry before de-duplication: repeats are forgiven,
/// a list of thousands is refused before any work is done on it.
pub const MAX_COMMITTEE_NAMED: usize = 4 * MAX_COMMITTEE;

/// The least committee a replacement call may have.
pub const MIN_COMMITTEE: usize = 3;

/// The largest committee a replacement call may have: a ministry selection committee is a
/// handful of officers; 15 leaves room for any real one and bounds the majority to count.
pub const MAX_COMMITTEE: usize = 15;

/// Places a gate freed that are still to fill: its eliminations less the teams earlier
/// replacement calls for it selected.
pub fn free_places(eliminated: usize, filled: i64) -> i64 {
    (eliminated as i64 - filled).max(0)
}

/// Most document kinds a call may require.
pub const MAX_REQUIRED_DOCUMENTS: usize = 20;

pub fn check_document_kind(field: &str, kind: &str) -> Result<(), Violation> {
    if kind.is_empty()
        || kind.len() > 40
        || !kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(violation(
            field,
            "must be 1 to 40 lower-case letters, digits or underscores",
        ));
    }
    Ok(())
}

/// Document kinds a proposal may carry besides its call's required documents: the usual
/// parts of an R&D application, a bounded set, so a proposal is a known list of documents
/// and not an open file store.
pub const OPTIONAL_DOCUMENT_KINDS: [&str; 7] = [
    "proposal",
    "budget",
    "plan",
    "annex",
    "cv",
    "letter_of_support",
    "data_management_plan",
];

/// Most bytes of documents one proposal may hold, all kinds together.
pub const MAX_PROPOSAL_DOCUMENT_BYTES: i64 = 20 * 1024 * 1024;

/// Whether a document of `kind` and `size` bytes may be stored on a proposal of a call that
/// requires `required`, when its other documents (every kind but this one, which the upload
/// replaces) already hold `others` bytes.
pub fn check_upload(
    kind: &str,
    required: &[String],
    size: i64,
    others: i64,
) -> Result<(), Violation> {
    if !required.iter().any(|k| k == kind) && !OPTIONAL_DOCUMENT_KINDS.contains(&kind) {
        let required = if required.is_empty() {
            "none".to_owned()
        } else {
            required.join(", ")
        };
        return Err(violation(
            "kind",
            format!(
                "`{kind}` is not a document this call takes: its required documents ({required}) or an optional one ({})",
                OPTIONAL_DOCUMENT_KINDS.join(", ")
            ),
        ));
    }
    let total = others.saturating_add(size);
    if total > MAX_PROPOSAL_DOCUMENT_BYTES {
        return Err(violation(
            "content_base64",
            format!(
                "the proposal's documents would total {total} bytes; the limit is {MAX_PROPOSAL_DOCUMENT_BYTES} bytes per proposal"
            ),
        ));
    }
    Ok(())
}

/// Longest stored document file name, in bytes of UTF-8 (what common file systems allow).
pub const MAX_FILENAME_BYTES: usize = 255;

/// A document's file name as it is stored and served: its base name only. Directories are
/// stripped whichever separator the uploader's system used (`/` or `\\`), so
/// `../../etc/passwd` is stored as `passwd`; what remains must be a real name (not empty,
/// `.` or `..`), free of control characters and at most [`MAX_FILENAME_BYTES`] long.
pub fn safe_filename(raw: &str) -> Result<String, Violation> {
    if let Err(v) = kaip_contracts::text::check("filename", raw, Lines::Single) {
        return Err(violation("filename", v.rule));
    }
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() || base == "." || base == ".." {
        return Err(violation(
            "filename",
            "must end in a file name (not empty, `.` or `..` after removing directories)",
        ));
    }
    if base.len() > MAX_FILENAME_BYTES {
        return Err(violation(
            "filename",
            format!("must be at most {MAX_FILENAME_BYTES} bytes long (UTF-8)"),
        ));
    }
    Ok(base.to_owned())
}

#[cfg(test)]
mod filename_tests {
    use super::*;

    #[test]
    fn uploads_take_the_calls_kinds_and_a_bounded_total() {
        let required = vec!["model_card".to_string(), "gpu_plan".to_string()];
        assert_eq!(check_upload("model_card", &required, 10, 0), Ok(()));
        assert_eq!(check_upload("annex", &required, 10, 0), Ok(()));
        assert_eq!(check_upload("proposal", &[], 10, 0), Ok(()));
        let v = check_upload("video", &required, 10, 0).unwrap_err();
        assert_eq!(v.field, "kind");
        assert!(v.rule.contains("model_card, gpu_plan"), "{}", v.rule);
        let v = check_upload("gpu_plan", &[], 1, 0).unwrap_err();
        assert_eq!(v.field, "kind");
        assert!(v.rule.contains("required documents (none)"), "{}", v.rule);
        let cap = MAX_PROPOSAL_DOCUMENT_BYTES;
        assert_eq!(check_upload("model_card", &required, 1, cap - 1), Ok(()));
        let v = check_upload("model_card", &required, 2, cap - 1).unwrap_err();
        assert_eq!(v.field, "content_base64");
        assert!(v.rule.contains(&format!("total {}", cap + 1)), "{}", v.rule);
        assert!(check_upload("cv", &required, i64::MAX, i64::MAX).is_err());
        let now = Utc::now();
        let mut many = OpenCall {
            programme_id: None,
            title: "Many documents".into(),
            opens_at: now,
            closes_at: now + chrono::Duration::hours(1),
            eligibility: Default::default(),
            required_documents: Vec::new(),
            replaces: None,
        };
        many.required_documents = (0..=MAX_REQUIRED_DOCUMENTS)
            .map(|i| format!("doc_{i}"))
            .collect();
        assert_eq!(
            validate_open_call(&many, Utc::now()).unwrap_err().field,
            "required_documents"
        );
        many.required_documents.pop();
        assert_eq!(validate_open_call(&many, Utc::now()), Ok(()));
    }

    #[test]
    fn file_names_are_stored_as_base_names() {
        for (raw, stored) in [
            ("plan.pdf", "plan.pdf"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\windows\\win.ini", "win.ini"),
            ("C:\\Users\\kim\\제안서 v2.pdf", "제안서 v2.pdf"),
            ("/abs/mixed\\sep/ name.txt ", "name.txt"),
            ("..file", "..file"),
        ] {
            assert_eq!(safe_filename(raw).as_deref(), Ok(stored), "{raw}");
        }
    }

    #[test]
    fn names_that_are_no_file_or_too_long_are_refused() {
        for raw in [
            "",
            "  ",
            ".",
            "..",
            "../",
            "a/..",
            "dir/",
            "a\\.",
            "x\0.pdf",
            "a\nb",
            "\u{85}",
            "invoice\u{202E}fdp.exe",
            "a\u{2028}b",
        ] {
            let v = safe_filename(raw).unwrap_err();
            assert_eq!(v.field, "filename", "{raw:?}");
        }
        let longest = "a".repeat(MAX_FILENAME_BYTES);
        assert_eq!(safe_filename(&longest).as_deref(), Ok(longest.as_str()));
        assert!(safe_filename(&format!("{longest}b")).is_err());
        // Bytes, not characters: 86 Hangul syllables are 258 bytes.
        assert!(safe_filename(&"가".repeat(86)).is_err());
        assert!(safe_filename(&"가".repeat(85)).is_ok());
    }
}

/// Checks a Korean business registration number (`123-45-67890`, dashes optional) and
/// returns it normalised with dashes. The rule lives in the contracts
/// ([`kaip_contracts::brn::normalise`]) so scoring compares reviewers' numbers by it too.
pub fn normalise_brn(raw: &str) -> Option<String> {
    kaip_contracts::brn::normalise(raw)
}

/// Validates a consortium profile and returns it with normalised registration numbers.
pub fn validate_consortium(req: &RegisterConsortium) -> Result<RegisterConsortium, Violation> {
    check_text("name", &req.name, MAX_TITLE)?;
    if req.members.is_empty() {
        return Err(violation("members", "a consortium has at least a lead"));
    }
    let leads = req
        .members
        .iter()
        .filter(|m| m.role == MemberRole::Lead)
        .count();
    if leads != 1 {
        return Err(violation(
            "members",
            format!("exactly one member must be the lead (found {leads})"),
        ));
    }
    let mut members = Vec::with_capacity(req.members.len());
    let mut seen = std::collections::BTreeSet::new();
    for (i, m) in req.members.iter().enumerate() {
        check_text(&format!("members[{i}].name"), &m.name, MAX_TITLE)?;
        let brn = normalise_brn(&m.business_registration_number).ok_or_else(|| {
            violation(
                format!("members[{i}].business_registration_number"),
                kaip_contracts::brn::RULE,
            )
        })?;
        if !seen.insert(brn.clone()) {
            return Err(violation(
                format!("members[{i}].business_registration_number"),
                "appears twice in this consortium",
            ));
        }
        members.push(Member {
            name: m.name.trim().to_owned(),
            business_registration_number: brn,
            ..m.clone()
        });
    }
    Ok(RegisterConsortium {
        name: req.name.trim().to_owned(),
        members,
    })
}

pub fn validate_draft(
    title: &str,
    summary: &str,
    resources: &ResourceRequest,
) -> Result<(), Violation> {
    check_text("title", title, MAX_TITLE)?;
    if summary.chars().count() > MAX_SUMMARY {
        return Err(violation(
            "summary",
            format!("must be at most {MAX_SUMMARY} characters"),
        ));
    }
    for (i, g) in resources.gpus.iter().enumerate() {
        check_text(&format!("resources.gpus[{i}].model"), &g.model, 40)?;
        if !(1..=MAX_GPUS_PER_MODEL).contains(&g.count) {
            return Err(violation(
                format!("resources.gpus[{i}].count"),
                format!("must be between 1 and {MAX_GPUS_PER_MODEL}"),
            ));
        }
    }
    if resources.data_budget_krw.0 < 0 {
        return Err(violation(
            "resources.data_budget_krw",
            "must not be negative",
        ));
    }
    if resources.talent_funding_krw.0 < 0 {
        return Err(violation(
            "resources.talent_funding_krw",
            "must not be negative",
        ));
    }
    for (i, p) in resources.talent_positions.iter().enumerate() {
        check_text(
            &format!("resources.talent_positions[{i}].title"),
            &p.title,
            MAX_TITLE,
        )?;
        if !(1..=MAX_POSITIONS).contains(&p.count) {
            return Err(violation(
                format!("resources.talent_positions[{i}].count"),
                format!("must be between 1 and {MAX_POSITIONS}"),
            ));
        }
    }
    Ok(())
}

/// Everything that makes a proposal ineligible for a call, in plain words (empty: eligible).
pub fn eligibility_failures(
    rules: &EligibilityRules,
    required_documents: &[String],
    members: &[Member],
    resources: &ResourceRequest,
    documents: &[Document],
) -> Vec<String> {
    let mut out = Vec::new();
    let universities = members
        .iter()
        .filter(|m| m.org_type == OrgType::University)
        .count();
    if (universities as u32) < rules.min_university_members {
        out.push(format!(
            "the consortium needs at least {} university member(s); it has {universities}",
            rules.min_university_members
        ));
    }
    match members.iter().find(|m| m.role == MemberRole::Lead) {
        None => out.push("the consortium has no lead organisation".to_owned()),
        Some(lead)
            if !rules.allowed_lead_types.is_empty()
                && !rules.allowed_lead_types.contains(&lead.org_type) =>
        {
            let allowed: Vec<&str> = rules
                .allowed_lead_types
                .iter()
                .map(OrgType::as_str)
                .collect();
            out.push(format!(
                "the lead is a {}; this call allows {} leads",
                lead.org_type.as_str(),
                allowed.join(", ")
            ));
        }
        Some(_) => {}
    }
    if resources.data_budget_krw > rules.max_data_budget_krw {
        out.push(format!(
            "the data budget requested (KRW {}) exceeds the call's cap of KRW {} per year",
            resources.data_budget_krw.0, rules.max_data_budget_krw.0
        ));
    }
    if resources.talent_funding_krw > rules.max_talent_funding_krw {
        out.push(format!(
            "the talent funding requested (KRW {}) exceeds the call's cap of KRW {} per year",
            resources.talent_funding_krw.0, rules.max_talent_funding_krw.0
        ));
    }
    for kind in required_documents {
        if !documents.iter().any(|d| &d.kind == kind) {
            out.push(format!("the required document `{kind}` is missing"));
        }
    }
    out
}

/// Where `now` falls relative to a call's submission window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    NotYetOpen,
    Open,
    Closed,
}

pub fn window(opens_at: DateTime<Utc>, closes_at: DateTime<Utc>, now: DateTime<Utc>) -> Window {
    if now < opens_at {
        Window::NotYetOpen
    } else if now < closes_at {
        Window::Open
    } else {
        Window::Closed
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hash a receipt carries: over the submitted version's content and its documents'
/// hashes (sorted by kind), so the consortium can later prove what it submitted.
pub fn content_hash(
    proposal: uuid::Uuid,
    version: i32,
    title: &str,
    summary: &str,
    resources: &ResourceRequest,
    portfolio: Option<&kaip_contracts::dto::intake::Portfolio>,
    documents: &[Document],
) -> String {
    let mut docs: Vec<(&str, &str)> = documents
        .iter()
        .map(|d| (d.kind.as_str(), d.sha256.as_str()))
        .collect();
    docs.sort();
    let mut canonical = serde_json::json!({
        "proposal_id": proposal,
        "version": version,
        "title": title,
        "summary": summary,
        "resources": resources,
        "documents": docs,
    });
    // Only when declared: the hashes of proposals from before declarations stay the same.
    if let Some(p) = portfolio {
        canonical["portfolio"] = serde_json::json!(p);
    }
    sha256_hex(canonical.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use kaip_contracts::dto::intake::GpuRequest;
    use kaip_contracts::Krw;

    fn call(title: &str, hours: i64) -> OpenCall {
        let now = Utc::now();
        OpenCall {
            programme_id: None,
            title: title.into(),
            opens_at: now,
            closes_at: now + Duration::hours(hours),
            eligibility: EligibilityRules::default(),
            required_documents: vec!["proposal".into()],
            replaces: None,
        }
    }

    fn member(name: &str, t: OrgType, brn: &str, role: MemberRole) -> Member {
        Member {
            name: name.into(),
            org_type: t,
            business_registration_number: brn.into(),
            role,
        }
    }

    #[test]
    fn calls_need_a_title_and_a_window() {
        let now = Utc::now();
        assert!(validate_open_call(&call("Sovereign AI 2026", 24), now).is_ok());
        assert_eq!(
            validate_open_call(&call("  ", 24), now).unwrap_err().field,
            "title"
        );
        assert_eq!(
            validate_open_call(&call(&"x".repeat(201), 24), now)
                .unwrap_err()
                .field,
            "title"
        );
        assert_eq!(
            validate_open_call(&call("ok", 0), now).unwrap_err().field,
            "closes_at"
        );
        let mut bad = call("ok", 1);
        bad.required_documents = vec!["Budget Sheet".into()];
        assert_eq!(
            validate_open_call(&bad, now).unwrap_err().field,
            "required_documents[0]"
        );
    }

    #[test]
    fn programmes_need_a_name_and_a_plausible_year() {
        use kaip_contracts::dto::intake::CreateProgramme;
        let p = |name: &str, year| CreateProgramme {
            name: name.into(),
            fiscal_year: year,
            description: String::new(),
        };
        assert!(validate_programme(&p("Sovereign AI", 2026)).is_ok());
        assert_eq!(validate_programme(&p("", 2026)).unwrap_err().field, "name");
        assert_eq!(
            validate_programme(&p("Sovereign AI", 26))
                .unwrap_err()
                .field,
            "fiscal_year"
        );
    }

    #[test]
    fn a_call_cannot_close_in_the_past() {
        let now = Utc::now();
        let mut past = call("t", 1);
        past.opens_at = now - Duration::hours(3);
        past.closes_at = now - Duration::hours(1);
        let v = validate_open_call(&past, now).unwrap_err();
        assert_eq!(
            (v.field.as_str(), v.rule.as_str()),
            ("closes_at", "must be in the future")
        );
    }

    #[test]
    fn business_registration_numbers_are_checksummed() {
        // Check digit: weighted sum 1·1+2·3+3·7+4·1+5·3+6·7+7·1+8·3+9·5 + (9·5)/10 = 169 → 1.
        assert_eq!(normalise_brn("1234567891").as_deref(), Some("123-45-67891"));
        assert_eq!(
            normalise_brn("123-45-67891").as_deref(),
            Some("123-45-67891")
        );
        assert_eq!(normalise_brn("123-45-67890"), None, "wrong check digit");
        assert_eq!(normalise_brn("123-45-6789"), None, "too short");
        assert_eq!(normalise_brn("123-45-6789a"), None);
    }

    #[test]
    fn a_consortium_has_one_lead_and_valid_numbers() {
        let ok = RegisterConsortium {
            name: " K-Team ".into(),
            members: vec![
                member(
                    "LG AI",
                    OrgType::LargeEnterprise,
                    "1234567891",
                    MemberRole::Lead,
                ),
                member(
                    "KAIST",
                    OrgType::University,
                    "314-82-00017",
                    MemberRole::Partner,
                ),
            ],
        };
        let valid = validate_consortium(&ok).unwrap();
        assert_eq!(valid.name, "K-Team");
        assert_eq!(
            valid.members[0].business_registration_number,
            "123-45-67891"
        );
        let mut two_leads = ok.clone();
        two_leads.members[1].role = MemberRole::Lead;
        assert_eq!(
            validate_consortium(&two_leads).unwrap_err().field,
            "members"
        );
        let mut bad_brn = ok.clone();
        bad_brn.members[1].business_registration_number = "314-82-00013".into();
        assert_eq!(
            validate_consortium(&bad_brn).unwrap_err().field,
            "members[1].business_registration_number"
        );
        let mut dup = ok;
        dup.members[1].business_registration_number = "123-45-67891".into();
        assert!(validate_consortium(&dup)
            .unwrap_err()
            .rule
            .contains("twice"));
    }

    #[test]
    fn eligibility_lists_every_failure() {
        let rules = EligibilityRules {
            allowed_lead_types: vec![OrgType::Sme, OrgType::University],
            ..Default::default()
        };
        let members = vec![member(
            "Big",
            OrgType::LargeEnterprise,
            "1234567891",
            MemberRole::Lead,
        )];
        let resources = ResourceRequest {
            data_budget_krw: Krw(15_000_000_001),
            ..Default::default()
        };
        let failures =
            eligibility_failures(&rules, &["proposal".into()], &members, &resources, &[]);
        assert_eq!(failures.len(), 4, "{failures:?}");
        assert!(failures[0].contains("at least 1 university"));
        assert!(failures[1]
            .contains("the lead is a large_enterprise; this call allows sme, university leads"));
        assert!(failures[2].contains("exceeds the call's cap of KRW 15000000000"));
        assert!(failures[3].contains("`proposal` is missing"));
    }

    #[test]
    fn drafts_are_checked() {
        let mut r = ResourceRequest {
            gpus: vec![GpuRequest {
                model: "H100".into(),
                count: 500,
            }],
            ..Default::default()
        };
        assert!(validate_draft("LLM", "s", &r).is_ok());
        r.gpus[0].count = 0;
        assert_eq!(
            validate_draft("LLM", "s", &r).unwrap_err().field,
            "resources.gpus[0].count"
        );
        assert_eq!(
            validate_draft(
                "LLM",
                &"x".repeat(MAX_SUMMARY + 1),
                &ResourceRequest::default()
            )
            .unwrap_err()
            .field,
            "summary"
        );
    }

    #[test]
    fn content_hashes_change_with_content_and_not_with_document_order() {
        let id = uuid::Uuid::now_v7();
        let d = |k: &str, h: &str| Document {
            kind: k.into(),
            filename: "f".into(),
            sha256: h.into(),
            size_bytes: 1,
            uploaded_at: Utc::now(),
        };
        let r = ResourceRequest::default();
        let a = content_hash(id, 1, "t", "s", &r, None, &[d("a", "1"), d("b", "2")]);
        assert_eq!(
            a,
            content_hash(id, 1, "t", "s", &r, None, &[d("b", "2"), d("a", "1")])
        );
        assert_ne!(
            a,
            content_hash(id, 2, "t", "s", &r, None, &[d("a", "1"), d("b", "2")])
        );
        assert_ne!(
            a,
            content_hash(id, 1, "t", "s", &r, None, &[d("a", "1"), d("b", "3")])
        );
        let declared = kaip_contracts::dto::intake::Portfolio {
            track: kaip_contracts::dto::intake::Track {
                kind: kaip_contracts::dto::intake::TrackKind::General,
                industry: None,
            },
            openness: kaip_contracts::dto::intake::Openness {
                releases: vec![],
                licence: None,
            },
            independence: kaip_contracts::dto::intake::Independence {
                from_scratch: true,
                builds_on: vec![],
            },
        };
        let with = content_hash(
            id,
            1,
            "t",
            "s",
            &r,
            Some(&declared),
            &[d("a", "1"), d("b", "2")],
        );
        assert_ne!(a, with, "the declaration is part of the content");
        let mut other = declared.clone();
        other.independence.from_scratch = false;
        assert_ne!(
            with,
            content_hash(
                id,
                1,
                "t",
                "s",
                &r,
                Some(&other),
                &[d("a", "1"), d("b", "2")]
            )
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_window_is_half_open() {
        let t = Utc::now();
        let h = Duration::hours(1);
        assert_eq!(window(t, t + h, t - h), Window::NotYetOpen);
        assert_eq!(window(t, t + h, t), Window::Open);
        assert_eq!(window(t, t + h, t + h), Window::Closed);
    }
}

#[cfg(test)]
#[path = "domain_tests.rs"]
mod edge_tests;
