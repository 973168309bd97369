//! The order of records (`recorded_seq`): the migration that introduced it numbers the rows
//! already on record in their timestamp order (an input at the same instant as the close
//! or the decision that read it before it, as the old `<=` comparison had it), and every
//! row written afterwards comes after them, whatever its clock says.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::MigrationHarness;
use kaip_testkit::{database_url, TestContext};

#[derive(QueryableByName)]
struct Numbered {
    #[diesel(sql_type = Text)]
    what: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

const ORDER: &str = "SELECT what, seq FROM ( \
       SELECT 'tie ' || reason AS what, recorded_seq AS seq FROM tie_decisions \
       UNION ALL SELECT 'version ' || version, recorded_seq FROM decision_versions \
       UNION ALL SELECT 'closure ' || stage, recorded_seq FROM stage_closures \
       UNION ALL SELECT 'conflict ' || reason, recorded_seq FROM conflicts) r ORDER BY seq";

/// A database of its own with the bus's migrations.
fn database(ctx: &TestContext, suffix: &str) -> PgConnection {
    let name = format!("{}_{suffix}", ctx.id);
    ctx.track_database(&name);
    let mut admin =
        PgConnection::establish(&format!("{}/postgres", database_url())).expect("the server");
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .expect("a database");
    let mut c = PgConnection::establish(&format!("{}/{name}", database_url())).expect("it");
    c.run_pending_migrations(kaip_bus::MIGRATIONS)
        .expect("the bus's migrations");
    c
}

#[test]
fn rows_on_record_before_the_order_of_records_keep_their_order() {
    let ctx = TestContext::new();
    let mut c = database(&ctx, "scoring_record_order");
    // Scoring's migrations up to (not including) the order of records.
    for m in c
        .pending_migrations(kaip_scoring::MIGRATIONS)
        .expect("scoring's migrations")
    {
        if m.name().to_string().ends_with("_record_order") {
            break;
        }
        c.run_migration(&m).expect("a migration");
    }
    // Written in another order than their clocks say, as concurrent writers would.
    c.batch_execute(
        "INSERT INTO calls (id, title, closes_at) VALUES ('00000000-0000-7000-8000-000000000001', 'c', '2026-01-01Z'); \
         INSERT INTO reviewers (id, name, organisation) VALUES ('r1', 'r1', 'o'); \
         INSERT INTO decision_versions (call_id, version, kind, selected, total_centi, decided_by, decided_at) \
           VALUES ('00000000-0000-7000-8000-000000000001', 2, 'proposed', '[]', 0, 'o', '2026-02-01 10:02Z'); \
         INSERT INTO tie_decisions (id, call_id, stage, proposals, reason, decided_by, decided_at) \
           VALUES ('00000000-0000-7000-8000-0000000000b2', '00000000-0000-7000-8000-000000000001', 0, '[]', 'T2', 'o', '2026-02-01 10:02Z'); \
         INSERT INTO conflicts (reviewer_id, consortium_id, reason, declared_by, recorded_at) \
           VALUES ('r1', '00000000-0000-7000-8000-0000000000c1', 'K', 'o', '2026-02-01 10:01:30Z'); \
         INSERT INTO stage_closures (call_id, stage, closed_by, closed_at) \
           VALUES ('00000000-0000-7000-8000-000000000001', 0, 'o', '2026-02-01 10:00Z'); \
         INSERT INTO tie_decisions (id, call_id, stage, proposals, reason, decided_by, decided_at) \
           VALUES ('00000000-0000-7000-8000-0000000000b1', '00000000-0000-7000-8000-000000000001', 0, '[]', 'T1', 'o', '2026-02-01 10:00Z'); \
         INSERT INTO decision_versions (call_id, version, kind, selected, total_centi, decided_by, decided_at) \
           VALUES ('00000000-0000-7000-8000-000000000001', 1, 'proposed', '[]', 0, 'o', '2026-02-01 10:01Z'); \
         INSERT INTO calls (id, title, closes_at, published_at) VALUES ('00000000-0000-7000-8000-000000000002', 'p', '2026-01-01Z', '2026-02-01 10:01:50Z'); \
         INSERT INTO decision_versions (call_id, version, kind, selected, total_centi, decided_by, decided_at) \
           VALUES ('00000000-0000-7000-8000-000000000002', 7, 'proposed', '[]', 0, 'o', '2026-02-01 10:01:45Z');",
    )
    .expect("rows from before");
    c.run_pending_migrations(kaip_scoring::MIGRATIONS)
        .expect("the order of records");

    let order: Vec<(String, i64)> = diesel::sql_query(ORDER)
        .load::<Numbered>(&mut c)
        .expect("numbered")
        .into_iter()
        .map(|n| (n.what, n.seq))
        .collect();
    let names: Vec<&str> = order.iter().map(|(w, _)| w.as_str()).collect();
    // The proposals of the call not yet published come before every input (they must be
    // proposed again: their clocks cannot say what they read); the published call's keep
    // their place by timestamp.
    assert_eq!(
        names,
        [
            "version 1",
            "version 2",
            "tie T1",
            "closure 0",
            "conflict K",
            "version 7",
            "tie T2"
        ]
    );
    // Every row numbered by the backfill is below the first number the database hands out.
    #[derive(QueryableByName)]
    struct Since {
        #[diesel(sql_type = BigInt)]
        since: i64,
    }
    let since = diesel::sql_query("SELECT scoring_numbered_since() AS since")
        .get_result::<Since>(&mut c)
        .expect("the first number")
        .since;
    assert!(
        order.iter().all(|(_, seq)| *seq < since),
        "{order:?} {since}"
    );
    // A row written now comes after them all, though its clock says years before, and a
    // number the writer sends is not the one kept.
    diesel::sql_query(
        "INSERT INTO tie_decisions (id, call_id, stage, proposals, reason, decided_by, decided_at, recorded_seq) \
           VALUES ('00000000-0000-7000-8000-0000000000b3', '00000000-0000-7000-8000-000000000001', 0, '[]', 'T3', 'o', '2000-01-01Z', 1)",
    )
    .execute(&mut c)
    .expect("a new row");
    let order: Vec<(String, i64)> = diesel::sql_query(ORDER)
        .load::<Numbered>(&mut c)
        .expect("numbered")
        .into_iter()
        .map(|n| (n.what, n.seq))
        .collect();
    assert_eq!(order.last().map(|(w, _)| w.as_str()), Some("tie T3"));
    assert!(order[order.len() - 1].1 > order[order.len() - 2].1);
    assert!(order[order.len() - 1].1 >= since);

    // A number once given stands: no UPDATE may set it, the closures are append-only, and a
    // no-op UPDATE of a conflict does not move it.
    for refused in [
        "UPDATE stage_closures SET recorded_seq = 1000000",
        "UPDATE stage_closures SET closed_by = 'someone else'",
        "DELETE FROM stage_closures",
        "UPDATE conflicts SET recorded_seq = 1000000",
        "UPDATE tie_decisions SET recorded_seq = 1000000",
    ] {
        let e = diesel::sql_query(refused)
            .execute(&mut c)
            .expect_err(refused);
        assert!(
            e.to_string().contains("recorded_seq") || e.to_string().contains("append-only"),
            "{refused}: {e}"
        );
    }
    let before: Vec<(String, i64)> = diesel::sql_query(ORDER)
        .load::<Numbered>(&mut c)
        .expect("numbered")
        .into_iter()
        .map(|n| (n.what, n.seq))
        .collect();
    diesel::sql_query("UPDATE conflicts SET reason = reason, declared_by = declared_by")
        .execute(&mut c)
        .expect("a no-op update");
    let after: Vec<(String, i64)> = diesel::sql_query(ORDER)
        .load::<Numbered>(&mut c)
        .expect("numbered")
        .into_iter()
        .map(|n| (n.what, n.seq))
        .collect();
    assert_eq!(before, after);
}

/// The sequence hands out numbers in the order they are asked for across sessions only
/// with CACHE 1 (a cache gives each session its own block).
#[test]
fn the_order_of_records_is_one_uncached_sequence() {
    #[derive(QueryableByName)]
    struct Cache {
        #[diesel(sql_type = BigInt)]
        cache_size: i64,
    }
    let ctx = TestContext::new();
    let mut c = database(&ctx, "scoring_record_cache");
    c.run_pending_migrations(kaip_scoring::MIGRATIONS)
        .expect("scoring's migrations");
    let cache = diesel::sql_query(
        "SELECT cache_size FROM pg_sequences WHERE sequencename = 'scoring_record_seq'",
    )
    .get_result::<Cache>(&mut c)
    .expect("the sequence");
    assert_eq!(cache.cache_size, 1);
}
