//! The audit trail's hardening (issue #7's review): it cannot be forged, disabled or edited
//! by the service's login role under the production role layout; pages follow commit order
//! so a late commit is never skipped; an operation of any size is exported in parts that
//! each fit a Kafka message; and a write made while serving a read names its caller.

use crate::audit::rows;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use kaip_contracts::Role;
use kaip_e2e::eventually;
use kaip_service::{AppState, Caller, CommonError, ServiceDefinition};
use kaip_testkit::TestContext;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// `url` (a server URL) connecting as `user` (the test server trusts local roles).
fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

fn admin(database: &str) -> PgConnection {
    PgConnection::establish(&format!("{}/{database}", kaip_testkit::database_url()))
        .expect("the test server")
}

/// Runs `sql`, which must succeed (also used by `audit`'s tests).
pub(crate) fn exec(conn: &mut PgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `sql` and returns the error it must fail with.
pub(crate) fn refused(conn: &mut PgConnection, sql: &str) -> String {
    match diesel::sql_query(sql).execute(conn) {
        Ok(n) => panic!("{sql}: must be refused, but it changed {n} rows"),
        Err(e) => e.to_string(),
    }
}

async fn create_programme(ctx: &TestContext, url: String, subject: &str, name: &str) {
    let res = reqwest::Client::new()
        .post(url)
        .header(
            "authorization",
            ctx.bearer_for(subject, Role::Officer, None),
        )
        .json(&json!({ "name": name, "fiscal_year": 2026, "description": "" }))
        .send()
        .await
        .expect("intake answers");
    assert_eq!(res.status().as_u16(), 201, "{:?}", res.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_cannot_be_forged_or_disabled_by_the_login_role() {
    let ctx = TestContext::new();
    let (owner, login) = (format!("{}_owner", ctx.id), format!("{}_login", ctx.id));
    let mut settings = ctx.settings(kaip_intake::DEFAULTS);
    let db = settings.database.name.clone();
    ctx.track_database(&db);
    // The production layout (README "The audit trail"), as a DBA sets it up once.
    let server = kaip_testkit::database_url();
    let mut dba = admin("postgres");
    exec(&mut dba, &format!("CREATE ROLE {owner} LOGIN"));
    exec(&mut dba, &format!("CREATE ROLE {login} LOGIN"));
    exec(&mut dba, &format!("CREATE DATABASE \"{db}\" OWNER {owner}"));
    let mut dba_db = admin(&db);
    exec(&mut dba_db, &format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {login}"));
    exec(&mut dba_db, &format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {login}"));
    settings.database.url = SecretString::from(with_user(&server, &login));
    settings.database.migration_url = Some(SecretString::from(with_user(&server, &owner)));
    settings.database.create_if_missing = false;

    let intake = ctx
        .spawn_with(kaip_intake::definition(), settings.clone())
        .await;
    // The service works as the login role, and its requests are recorded.
    create_programme(
        &ctx,
        intake.url("/programmes"),
        "officer-prod",
        "Made by a request",
    )
    .await;
    let mut as_login = PgConnection::establish(&format!("{}/{db}", with_user(&server, &login)))
        .expect("the login role connects");
    let ops = rows(&mut as_login, "SELECT id, actor_sub FROM audit_operations");
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["actor_sub"], "officer-prod");
    let op = ops[0]["id"].as_str().expect("id").to_owned();

    for sql in [
        "INSERT INTO audit_operations (id, at, service, actor_sub, actor_role, operation) \
         VALUES (gen_random_uuid(), now(), 'intake', 'forged', 'admin', 'POST /calls')"
            .to_owned(),
        format!(
            "INSERT INTO audit_changes (operation_id, table_name, row_key, entity_ids, action) \
             VALUES ('{op}', 'programmes', '{{}}', '{{}}', 'insert')"
        ),
        format!("INSERT INTO audit_commits (sequence, operation_id) VALUES (999, '{op}')"),
        "SELECT kaip_audit_operation()".to_owned(),
        "UPDATE audit_operations SET actor_sub = 'someone else'".to_owned(),
        "DELETE FROM audit_changes".to_owned(),
        "TRUNCATE audit_operations CASCADE".to_owned(),
        "UPDATE kaip_audit_settings SET topic = 'elsewhere'".to_owned(),
        "DROP TABLE audit_changes".to_owned(),
        "ALTER TABLE audit_operations DISABLE TRIGGER audit_operations_append_only".to_owned(),
        "DROP TRIGGER kaip_audit ON programmes".to_owned(),
        "ALTER TABLE programmes DISABLE TRIGGER kaip_audit".to_owned(),
        "SET session_replication_role = replica".to_owned(),
    ] {
        let err = refused(&mut as_login, &sql);
        assert!(
            err.contains("permission denied") || err.contains("must be owner"),
            "{sql}: {err}"
        );
    }
    // Nor can it forge the export (by column, by payload type, on any audit topic, even with
    // a temporary table shadowing the trail's name), truncate the outbox, edit any event once
    // written, record changes through a trigger of its own, or export an operation before
    // its changes are written.
    exec(
        &mut as_login,
        "CREATE TEMP TABLE audit_operations (id uuid)",
    );
    for (sql, rule) in [
        (
            "INSERT INTO kaip_outbox (event_id, topic, event_key, event_type, payload) \
             VALUES (gen_random_uuid(), 'anywhere', 'k', 'AuditRecorded', '{}')",
            "only the audit trail writes its export",
        ),
        (
            "INSERT INTO kaip_outbox (event_id, topic, event_key, event_type, payload) \
             VALUES (gen_random_uuid(), 'kaip.intake.events', 'k', 'ProgrammeCreated', \
                     '{\"type\": \"AuditRecorded\"}')",
            "only the audit trail writes its export",
        ),
        (
            "INSERT INTO kaip_outbox (event_id, topic, event_key, event_type, payload) \
             VALUES (gen_random_uuid(), 'x.kaip.scoring.audit', 'k', 'Other', '{}')",
            "only the audit trail writes its export",
        ),
        ("TRUNCATE kaip_outbox", "permission denied"),
        (
            "UPDATE kaip_outbox SET payload = '{}'",
            "cannot be changed once written",
        ),
    ] {
        let err = refused(&mut as_login, sql);
        assert!(err.contains(rule), "{sql}: {err}");
    }
    exec(&mut as_login, "DROP TABLE pg_temp.audit_operations");
    exec(
        &mut as_login,
        "CREATE TEMP TABLE proposals (id uuid PRIMARY KEY, decision text)",
    );
    let err = refused(
        &mut as_login,
        "CREATE TRIGGER fake AFTER INSERT ON proposals FOR EACH ROW \
         EXECUTE FUNCTION public.kaip_audit_row('id', '')",
    );
    assert!(err.contains("permission denied"), "{err}");
    // Nor the per-statement trigger, nor the opt-in that creates it.
    let err = refused(
        &mut as_login,
        "CREATE TRIGGER fake AFTER INSERT ON proposals REFERENCING NEW TABLE AS kaip_audit_new_rows \
         FOR EACH STATEMENT EXECUTE FUNCTION public.kaip_audit_statement('id', '', '')",
    );
    assert!(err.contains("permission denied"), "{err}");
    let err = refused(
        &mut as_login,
        "SELECT public.kaip_audit_table('proposals', per_statement => true)",
    );
    assert!(err.contains("permission denied"), "{err}");
    exec(&mut as_login, "BEGIN");
    exec(&mut as_login, "SET CONSTRAINTS ALL IMMEDIATE");
    let err = refused(
        &mut as_login,
        "INSERT INTO programmes (id, name, fiscal_year, description, created_by) \
         VALUES (gen_random_uuid(), 'Exported early', 2026, '', 'svc')",
    );
    assert!(err.contains("exported at commit"), "{err}");
    exec(&mut as_login, "ROLLBACK");
    // A session naming someone else's operation as its own gets a new one instead.
    exec(&mut as_login, "BEGIN");
    exec(
        &mut as_login,
        &format!("SELECT set_config('kaip.audit_op', '{op}', true)"),
    );
    exec(
        &mut as_login,
        "INSERT INTO programmes (id, name, fiscal_year, description, created_by) \
         VALUES (gen_random_uuid(), 'Slipped in', 2026, '', 'svc')",
    );
    exec(&mut as_login, "COMMIT");
    let ops = rows(
        &mut as_login,
        "SELECT o.id, o.actor_sub, (SELECT count(*) FROM audit_changes c \
                WHERE c.operation_id = o.id) AS changes FROM audit_operations o ORDER BY o.at",
    );
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert_eq!(ops[0]["id"], op.as_str());
    assert_eq!(ops[0]["changes"], 1, "the officer's record is untouched");
    assert_eq!(ops[1]["actor_sub"], format!("db:{login}"));

    // Careless grants, to the table or to its columns, are taken back at the next start.
    exec(
        &mut dba_db,
        &format!("GRANT ALL ON audit_operations, audit_changes, audit_commits TO {login}"),
    );
    exec(
        &mut dba_db,
        &format!("GRANT INSERT (id, at, service, actor_sub, actor_role, operation) ON audit_operations TO {login}"),
    );
    intake.shutdown().await;
    let intake = ctx
        .spawn_with(kaip_intake::definition(), settings.clone())
        .await;
    for sql in [
        "DELETE FROM audit_changes WHERE operation_id IS NOT NULL",
        "INSERT INTO audit_operations (id, at, service, actor_sub, actor_role, operation) \
         VALUES (gen_random_uuid(), now() - interval '30 days', 'intake', 'backdated', 'admin', 'x')",
    ] {
        let err = refused(&mut as_login, sql);
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    intake.shutdown().await;

    // With no relay running, an export waits in the outbox: it cannot be deleted unsent.
    exec(
        &mut as_login,
        "INSERT INTO programmes (id, name, fiscal_year, description, created_by) \
         VALUES (gen_random_uuid(), 'Waiting export', 2026, '', 'svc')",
    );
    let err = refused(
        &mut as_login,
        "DELETE FROM kaip_outbox WHERE event_type = 'AuditRecorded' AND sent_at IS NULL",
    );
    assert!(err.contains("cannot be deleted before it is sent"), "{err}");

    drop(as_login);
    drop(dba_db);
    exec(&mut dba, &format!("DROP DATABASE \"{db}\" WITH (FORCE)"));
    exec(&mut dba, &format!("DROP ROLE {owner}"));
    exec(&mut dba, &format!("DROP ROLE {login}"));
}

async fn audit_page(ctx: &TestContext, url: String) -> Value {
    let res = reqwest::Client::new()
        .get(url)
        .header(
            "authorization",
            ctx.bearer_for("auditor", Role::Officer, None),
        )
        .send()
        .await
        .expect("intake answers");
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.expect("json")
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["changes"][0]["after"]["name"]
                .as_str()
                .expect("name")
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_that_commits_late_is_not_skipped_by_pages_already_read() {
    let ctx = TestContext::new();
    let intake = ctx
        .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
        .await;
    create_programme(&ctx, intake.url("/programmes"), "officer-1", "First").await;
    // A slow transaction: its first change (so its `at`) comes before `Fast`'s, its
    // commit after.
    let mut slow = intake.conn();
    exec(&mut slow, "BEGIN");
    exec(
        &mut slow,
        "INSERT INTO programmes (id, name, fiscal_year, description, created_by) \
         VALUES (gen_random_uuid(), 'Slow', 2026, '', 'dba')",
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    create_programme(&ctx, intake.url("/programmes"), "officer-1", "Fast").await;
    create_programme(&ctx, intake.url("/programmes"), "officer-1", "Last").await;

    // A reader is not held up by the open transaction, and does not see it.
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        audit_page(&ctx, intake.url("/audit?entity=programmes&limit=2")),
    )
    .await
    .expect("the trail answers while a transaction is open");
    assert_eq!(names(&first), ["First", "Fast"], "{first:#}");
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();

    exec(&mut slow, "COMMIT");
    let second = audit_page(
        &ctx,
        intake.url(&format!("/audit?entity=programmes&limit=10&after={cursor}")),
    )
    .await;
    // Paged by first-change time, `Slow` (earlier than `Fast`) would never be seen again.
    assert_eq!(names(&second), ["Last", "Slow"], "{second:#}");
    assert!(second["next_cursor"].is_null());
    let sequences: Vec<i64> = [&first, &second]
        .iter()
        .flat_map(|p| p["items"].as_array().expect("items").clone())
        .map(|i| i["sequence"].as_i64().expect("sequence"))
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    drop(slow);
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_too_large_for_one_message_is_exported_whole_in_parts() {
    let ctx = TestContext::new();
    let intake = ctx
        .spawn(kaip_intake::definition(), kaip_intake::DEFAULTS)
        .await;
    const ROWS: usize = 3000;
    let mut conn = intake.conn();
    exec(
        &mut conn,
        &format!(
            "INSERT INTO programmes (id, name, fiscal_year, description, created_by) \
             SELECT gen_random_uuid(), 'Bulk ' || g, 2026, repeat('d', 600), 'dba' \
             FROM generate_series(1, {ROWS}) g"
        ),
    );
    let ops = rows(&mut conn, "SELECT id FROM audit_operations");
    assert_eq!(ops.len(), 1);
    let op = ops[0]["id"].as_str().expect("id").to_owned();
    drop(conn);

    let topic = ctx.topic("kaip.intake.audit");
    let parts = eventually(WAIT, || {
        let (ctx, topic, op) = (&ctx, topic.clone(), op.clone());
        async move {
            let parts: Vec<(usize, Value)> = ctx
                .read_topic(&topic)
                .await
                .into_iter()
                .filter_map(|m| {
                    let size = m.payload.as_ref().map_or(0, Vec::len);
                    m.json().map(|v| (size, v))
                })
                .filter(|(_, v)| v["data"]["operation_id"] == op.as_str())
                .collect();
            let expected = parts.first().and_then(|(_, v)| v["data"]["parts"].as_u64());
            (expected == Some(parts.len() as u64)).then_some(parts)
        }
    })
    .await
    .expect("every part of the export reaches the audit topic");
    assert!(parts.len() >= 2, "{} parts", parts.len());
    let mut numbers: Vec<u64> = parts
        .iter()
        .map(|(_, v)| v["data"]["part"].as_u64().expect("part"))
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=parts.len() as u64).collect::<Vec<_>>());
    let mut names = std::collections::BTreeSet::new();
    for (size, event) in &parts {
        assert!(*size < 1_000_000, "a part of {size} bytes");
        assert_eq!(event["data"]["changes_truncated"], false);
        for change in event["data"]["changes"].as_array().expect("changes") {
            assert_eq!(
                change["after"]["description"].as_str().map(str::len),
                Some(600)
            );
            names.insert(change["after"]["name"].as_str().expect("name").to_owned());
        }
    }
    assert_eq!(names.len(), ROWS, "every change exported exactly once");
    intake.shutdown().await;
}

/// A handler that writes while serving a GET (no route does today; one might).
async fn touch(_caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, CommonError> {
    state
        .db(|c, _| {
            diesel::sql_query(
                "INSERT INTO programmes (id, name, fiscal_year, description, created_by) \
                 VALUES (gen_random_uuid(), 'Touched', 2026, '', 'reader')",
            )
            .execute(c)
            .map_err(CommonError::from)
        })
        .await?;
    Ok(HttpResponse::Ok().finish())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_made_while_serving_a_read_names_its_caller() {
    let ctx = TestContext::new();
    let def = ServiceDefinition {
        routes: |cfg| {
            cfg.route("/touch", web::get().to(touch));
        },
        ..kaip_intake::definition()
    };
    let intake = ctx.spawn(def, kaip_intake::DEFAULTS).await;
    let res = reqwest::Client::new()
        .get(intake.url("/touch"))
        .header(
            "authorization",
            ctx.bearer_for("reader-7", Role::Officer, None),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status().as_u16(), 200);
    let mut conn = intake.conn();
    let ops = rows(
        &mut conn,
        "SELECT actor_sub, actor_role, operation FROM audit_operations",
    );
    assert_eq!(
        ops,
        vec![
            json!({ "actor_sub": "reader-7", "actor_role": "officer", "operation": "GET /touch" })
        ]
    );
    drop(conn);
    intake.shutdown().await;
}
