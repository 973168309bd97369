//! Text hygiene and the money scalar (issue #6, "Gateway"): control characters are refused
//! by name everywhere and change nothing, document file names are stored as safe base
//! names, and money is a `Krw` string that the reference GraphQL implementation accepts.

use diesel::prelude::*;
use kaip_contracts::{ConsortiumId, Role};
use kaip_e2e::{draft, error_code, open_call, register, OrgType, Platform, CREATE};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("")
}

fn proposal_rows(p: &Platform) -> i64 {
    kaip_intake::schema::proposals::table
        .count()
        .get_result(&mut p.intake.conn())
        .expect("count")
}

fn reviewer_rows(p: &Platform) -> i64 {
    kaip_scoring::schema::reviewers::table
        .count()
        .get_result(&mut p.scoring.conn())
        .expect("count")
}

/// A request straight to a service (around the gateway), as another client could send it.
async fn direct(method: reqwest::Method, url: String, bearer: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .request(method, url)
        .header("authorization", bearer)
        .json(&body)
        .send()
        .await
        .expect("service answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_by_name_everywhere_and_change_nothing() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let consortium = ConsortiumId::new();
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    let call_id = open_call(&p, 24).await;
    register(&p, consortium, OrgType::Sme).await;
    let before = proposal_rows(&p);

    // A NUL in a title, through the gateway: a coded refusal naming the field, not INTERNAL.
    let input = json!({ "callId": call_id, "title": "Model\u{0}X", "summary": "s" });
    let body = p
        .graphql(Some(&lead), CREATE, json!({ "input": input }))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        message(&body).starts_with("title: must not contain control characters (found U+0000"),
        "{body}"
    );
    // The same body sent to intake directly.
    let (status, err) = direct(
        reqwest::Method::POST,
        p.intake.url("/proposals"),
        &lead,
        json!({ "call_id": call_id, "title": "Model\u{0}X", "summary": "s" }),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (422, Some("VALIDATION_FAILED")),
        "{err}"
    );
    assert!(
        err["message"].as_str().unwrap_or("").starts_with("title: "),
        "{err}"
    );

    // Single-line fields refuse line breaks and C1; multi-line ones allow \n \r \t only.
    for (title, summary, field) in [
        ("a\nb", "ok", "title"),
        ("a\u{85}b", "ok", "title"),
        ("ok", "line\u{1b}[31m", "summary"),
        ("ok", "del\u{7f}", "summary"),
    ] {
        let input = json!({ "callId": call_id, "title": title, "summary": summary });
        let body = p
            .graphql(Some(&lead), CREATE, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
        assert!(message(&body).starts_with(&format!("{field}: ")), "{body}");
    }
    // A nested field is named by its path.
    let input = json!({ "callId": call_id, "title": "ok", "summary": "ok",
        "resources": { "gpus": [{ "model": "H100", "count": 1 }, { "model": "B2\u{0}00", "count": 1 }] } });
    let body = p
        .graphql(Some(&lead), CREATE, json!({ "input": input }))
        .await;
    assert!(
        message(&body).starts_with("resources.gpus[1].model: "),
        "{body}"
    );
    assert_eq!(proposal_rows(&p), before, "nothing was written");

    // Multi-line text with line breaks and tabs is fine.
    let input = json!({ "callId": call_id, "title": "Lean model", "summary": "Plan:\r\n\t1. data\n\t2. train" });
    let body = p
        .graphql(Some(&lead), CREATE, json!({ "input": input }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let id = body["data"]["createProposal"]["id"].clone();

    // An edit with a control character keeps the saved version.
    let update = "mutation($id: UUID!, $t: String!) { updateProposal(id: $id, input: { title: $t, summary: \"s\" }) { version } }";
    let body = p
        .graphql(Some(&lead), update, json!({ "id": id, "t": "v2\u{9b}" }))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    let version: i32 = kaip_intake::schema::proposals::table
        .select(kaip_intake::schema::proposals::version)
        .first(&mut p.intake.conn())
        .expect("version");
    assert_eq!(version, 1);

    // A consortium member's name, and a withdrawal reason, directly at intake.
    let (status, err) = direct(
        reqwest::Method::PUT,
        p.intake.url(&format!("/consortia/{consortium}")),
        &lead,
        json!({ "name": "K", "members": [
            { "name": "Lead", "org_type": "sme", "business_registration_number": "123-45-67891", "role": "lead" },
            { "name": "Uni\u{0}", "org_type": "university", "business_registration_number": "314-82-00017", "role": "partner" },
        ] }),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("members[1].name: "),
        "{err}"
    );

    // Scoring: through the gateway and directly; no reviewer is registered.
    let reviewer = "mutation($i: ReviewerInput!) { registerReviewer(input: $i) { id } }";
    let body = p
        .graphql(
            Some(&officer),
            reviewer,
            json!({ "i": { "id": "r1", "name": "Dr.\u{0} Kim", "organisation": "SNU", "expertise": [] } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(message(&body).starts_with("name: "), "{body}");
    let (status, err) = direct(
        reqwest::Method::POST,
        p.scoring.url("/reviewers"),
        &officer,
        json!({ "id": "r1", "name": "Dr. Kim", "organisation": "SNU", "expertise": ["LLM", "vision\u{7f}"] }),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (422, Some("VALIDATION_FAILED")),
        "{err}"
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("expertise[1]: "),
        "{err}"
    );
    assert_eq!(reviewer_rows(&p), 0, "no reviewer was registered");
    let (status, err) = direct(
        reqwest::Method::POST,
        p.scoring.url("/reviewers/r%00x/conflicts"),
        &officer,
        json!({ "consortium_id": consortium, "reason": "ok" }),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (422, Some("VALIDATION_FAILED")),
        "{err}"
    );
}

/// Decodes RFC 5987 percent-encoding (`filename*=UTF-8''…`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_file_names_are_stored_as_base_names_and_served_with_a_safe_disposition() {
    let p = Platform::start().await;
    let consortium = ConsortiumId::new();
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    let call_id = open_call(&p, 24).await;
    register(&p, consortium, OrgType::Sme).await;
    let id = draft(&p, consortium, &call_id, "Files").await;
    let upload = "mutation($id: UUID!, $k: String!, $f: String!) { uploadDocument(proposalId: $id, kind: $k, filename: $f, contentBase64: \"YWJj\") { documents { kind filename } } }";
    let stored = |kind: &str| {
        let table = kaip_intake::schema::proposal_documents::table;
        table
            .filter(kaip_intake::schema::proposal_documents::kind.eq(kind.to_owned()))
            .select(kaip_intake::schema::proposal_documents::filename)
            .first::<String>(&mut p.intake.conn())
            .optional()
            .expect("query")
    };

    // A path is stored as its base name, whichever separator it used.
    for (kind, raw, base) in [
        ("proposal", "../../etc/passwd", "passwd"),
        ("budget", "..\\..\\Windows\\win.ini", "win.ini"),
        (
            "annex",
            "C:\\Users\\김\\제안서 \"최종\" 100%.pdf",
            "제안서 \"최종\" 100%.pdf",
        ),
    ] {
        let body = p
            .graphql(
                Some(&lead),
                upload,
                json!({ "id": id, "k": kind, "f": raw }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
        assert_eq!(stored(kind).as_deref(), Some(base), "{raw}");
    }

    // Served with an ASCII `filename` and, for anything else, the exact name in `filename*`.
    let download = |kind: &str| {
        reqwest::Client::new()
            .get(p.intake.url(&format!("/proposals/{id}/documents/{kind}")))
            .header("authorization", &lead)
            .send()
    };
    let res = download("proposal").await.expect("download");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"passwd\""
    );
    let res = download("annex").await.expect("download");
    let header = res.headers()["content-disposition"]
        .to_str()
        .expect("ascii header")
        .to_owned();
    let (plain, ext) = header
        .strip_prefix("attachment; filename=\"")
        .and_then(|rest| rest.split_once("\"; filename*=UTF-8''"))
        .unwrap_or_else(|| panic!("unexpected header {header}"));
    assert!(
        plain
            .chars()
            .all(|c| c == ' ' || (c.is_ascii_graphic() && !"\"\\%/".contains(c))),
        "{plain}"
    );
    assert!(plain.ends_with(".pdf"), "{plain}");
    assert_eq!(percent_decode(ext), "제안서 \"최종\" 100%.pdf");

    // Names that are no file, carry control characters or are too long are refused by name.
    for raw in ["..", "dir/", "a\\.", "plan\u{0}.pdf", &"x".repeat(256)] {
        let body = p
            .graphql(
                Some(&lead),
                upload,
                json!({ "id": id, "k": "extra", "f": raw }),
            )
            .await;
        assert_eq!(
            error_code(&body),
            Some("VALIDATION_FAILED"),
            "{raw:?}: {body}"
        );
        assert!(message(&body).starts_with("filename: "), "{body}");
    }
    assert_eq!(stored("extra"), None, "nothing was stored");
    // A control character in the document kind of a download is refused by name too.
    let res = download("pro%00posal").await.expect("download");
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.expect("json");
    assert_eq!(err["code"], "VALIDATION_FAILED", "{err}");

    // The proposal is still a draft: staff and integrations do not see its documents, and
    // another consortium cannot even learn which documents it has.
    let officer = p.ctx.bearer(Role::Officer, None);
    let other = p.ctx.bearer(Role::Consortium, Some(ConsortiumId::new()));
    for (who, bearer, kind) in [
        ("officer", &officer, "proposal"),
        ("another consortium", &other, "proposal"),
        ("another consortium", &other, "no_such_kind"),
    ] {
        let res = reqwest::Client::new()
            .get(p.intake.url(&format!("/proposals/{id}/documents/{kind}")))
            .header("authorization", bearer)
            .send()
            .await
            .expect("download");
        assert_eq!(res.status(), 404, "{who} {kind}");
        let err: Value = res.json().await.expect("json");
        assert_eq!(err["code"], "PROPOSAL_NOT_FOUND", "{who} {kind}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_is_a_krw_string_and_counts_fit_graphql_int() {
    let p = Platform::start().await;
    let officer = p.ctx.bearer(Role::Officer, None);
    let consortium = ConsortiumId::new();
    let lead = p.ctx.bearer(Role::Consortium, Some(consortium));
    register(&p, consortium, OrgType::Sme).await;
    let now = chrono::Utc::now();
    let open = "mutation($input: OpenCallInput!) { openCall(input: $input) { id eligibility { maxDataBudgetKrw maxTalentFundingKrw } } }";
    let body = p
        .graphql(
            Some(&officer),
            open,
            json!({ "input": {
                "title": "Money",
                "opensAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "closesAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
                "eligibility": { "maxDataBudgetKrw": "9223372036854775807" },
            }}),
        )
        .await;
    let call = &body["data"]["openCall"];
    assert_eq!(
        call["eligibility"],
        json!({ "maxDataBudgetKrw": "9223372036854775807", "maxTalentFundingKrw": "2000000000" }),
        "amounts beyond 32 bits round-trip as strings, defaults too: {body}"
    );
    let call_id = call["id"].as_str().expect("id").to_owned();

    let create = "mutation($input: ProposalInput!) { createProposal(input: $input) { id resources { dataBudgetKrw talentFundingKrw } } }";
    let input = |data: Value| {
        json!({ "input": { "callId": call_id, "title": "Money", "summary": "s",
            "resources": { "dataBudgetKrw": data, "talentFundingKrw": "0" } } })
    };
    for bad in [
        json!(10_000_000_000i64),
        json!(1),
        json!(1.5),
        json!("1e10"),
        json!("+1"),
        json!(" 1"),
        json!("1.0"),
        json!("1,000"),
        json!("007"),
        json!("9223372036854775808"),
        json!(""),
    ] {
        let body = p.graphql(Some(&lead), create, input(bad.clone())).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{bad}: {body}");
        assert!(
            message(&body).contains("dataBudgetKrw") && message(&body).contains("Krw"),
            "{bad}: the error names the field and the type: {body}"
        );
    }
    // A well-formed negative amount reaches intake, whose rule for this field refuses it.
    let body = p.graphql(Some(&lead), create, input(json!("-1"))).await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        message(&body).starts_with("resources.data_budget_krw: must not be negative"),
        "{body}"
    );
    assert_eq!(proposal_rows(&p), 0, "nothing was written");

    // Other integers are 32-bit GraphQL `Int`s, bounded by intake's rules: beyond 32 bits
    // GraphQL itself refuses them (naming the input type); within, intake's bound names the
    // field.
    let with_counts = |gpus: Value, positions: Value| {
        json!({ "input": { "callId": call_id, "title": "Counts", "summary": "s",
            "resources": { "gpus": [{ "model": "H100", "count": gpus }],
                "talentPositions": [{ "title": "Researcher", "field": "NLP", "seniority": "senior", "count": positions }] } } })
    };
    let body = p
        .graphql(
            Some(&lead),
            create,
            with_counts(json!(3_000_000_000i64), json!(1)),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert!(
        message(&body).contains("2147483647") && message(&body).contains("GpuRequestInput"),
        "{body}"
    );
    let body = p
        .graphql(Some(&lead), create, with_counts(json!(1), json!(20_000)))
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION_FAILED"), "{body}");
    assert!(
        message(&body)
            .starts_with("resources.talent_positions[0].count: must be between 1 and 10000"),
        "{body}"
    );
    assert_eq!(proposal_rows(&p), 0, "nothing was written");

    let body = p
        .graphql(Some(&lead), create, input(json!("10000000000")))
        .await;
    assert_eq!(
        body["data"]["createProposal"]["resources"],
        json!({ "dataBudgetKrw": "10000000000", "talentFundingKrw": "0" }),
        "{body}"
    );
}

/// The repository root (this crate lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The published schema and the console's example operations, loaded by graphql-js (the
/// reference implementation) with the machine's Node. Fails loudly, never skips, when Node
/// or the installed graphql package is missing: `.ci/run` installs both.
#[test]
fn the_published_schema_and_the_console_examples_pass_graphql_js() {
    let dir = root().join("gateway/tests/graphql-js");
    let node = std::env::var("KAIP_NODE").unwrap_or_else(|_| "node".to_owned());
    assert!(
        dir.join("node_modules/graphql/package.json").exists(),
        "graphql-js is not installed: run `npm ci` in {} (.ci/run and `make test` do)",
        dir.display()
    );
    let out = std::process::Command::new(&node)
        .current_dir(&dir)
        .arg("check.mjs")
        .arg(root().join("gateway/schema.graphql"))
        .arg(root().join("gateway/static/examples.json"))
        .output()
        .unwrap_or_else(|e| {
            panic!("this test runs graphql-js with Node ({node}: {e}): install nodejs or set KAIP_NODE")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "graphql-js refused the published schema or a console example:\n{stdout}{stderr}"
    );
    assert!(stdout.starts_with("ok: schema with"), "{stdout}{stderr}");
}
