//! Each service's own database: created if missing, pooled, migrated at start.

use crate::settings::DatabaseSettings;
use diesel::prelude::*;
use diesel::r2d2::Pool;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use kaip_bus::PgPool;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "cannot reach PostgreSQL at the configured database.url ({0}); is the server running? \
             Locally: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    )]
    Unreachable(String),
    #[error("database `{name}` does not exist and database.create_if_missing is false")]
    Missing { name: String },
    #[error("creating database `{name}`: {source}")]
    Create {
        name: String,
        source: diesel::result::Error,
    },
    #[error("connection pool: {0}")]
    Pool(String),
    #[error("migrations: {0}")]
    Migrate(String),
    #[error(
        "migration lock for database `{name}`: {source} (another replica holds it for longer \
         than {MIGRATION_LOCK_WAIT_SECS} s, or the server refused)"
    )]
    Lock {
        name: String,
        source: diesel::result::Error,
    },
}

/// How long a replica waits for another one's migrations before giving up.
pub const MIGRATION_LOCK_WAIT_SECS: u64 = 120;

/// Creates the service's database if needed, pools it and migrates it, under a
/// session-level advisory lock held on a separate connection: replicas that start together
/// take turns instead of racing on `CREATE DATABASE` and on the migrations table (which
/// made the loser crash and restart). The lock dies with its session, so a replica that
/// crashes mid-migration does not block the next one.
///
/// All of that runs as the migrating role (`database.migration_url`, or `url` when unset),
/// and so does `setup` (the audit trail's settings and lockdown), after the migrations; the
/// returned pool connects as the login role (`url`).
pub fn prepare(
    settings: &DatabaseSettings,
    migrations: EmbeddedMigrations,
    setup: impl FnOnce(&mut PgConnection) -> QueryResult<()>,
) -> Result<PgPool, DbError> {
    let runtime = settings;
    let settings = &settings.as_migrator();
    // The database may not exist yet: lock in the maintenance database then. Advisory locks
    // are per database, so every replica must take it in the same one. Without creation the
    // lock is taken in the service's database, so check first that it exists: connecting to
    // a missing one would fail with a generic "unreachable" instead of naming the cause.
    let lock_db = if settings.create_if_missing {
        "postgres"
    } else {
        ensure_database(settings)?;
        settings.name.as_str()
    };
    let mut lock_conn = PgConnection::establish(&settings.url_for(lock_db))
        .map_err(|e| DbError::Unreachable(e.to_string()))?;
    let key = migration_lock_key(&settings.name);
    let lock_err = |source| DbError::Lock {
        name: settings.name.clone(),
        source,
    };
    diesel::sql_query(format!("SET lock_timeout = '{MIGRATION_LOCK_WAIT_SECS}s'"))
        .execute(&mut lock_conn)
        .map_err(lock_err)?;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(key)
        .execute(&mut lock_conn)
        .map_err(lock_err)?;
    let result = ensure_database(settings).and_then(|()| {
        let owner = build_pool(settings)?;
        migrate(&owner, migrations)?;
        let mut conn = owner.get().map_err(|e| DbError::Pool(e.to_string()))?;
        setup(&mut conn)
            .map_err(|e| DbError::Migrate(format!("setting up the audit trail: {e}")))?;
        drop(conn);
        drop(owner);
        build_pool(runtime)
    });
    // Closing the session would release it too; unlock explicitly to hand over at once.
    let _ = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(key)
        .execute(&mut lock_conn);
    result
}

/// A stable 64-bit key per database name (FNV-1a), so services on one server do not wait
/// for each other.
fn migration_lock_key(database: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "kaip-migrations:".bytes().chain(database.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// Creates the service's database if it does not exist (and creation is allowed).
pub fn ensure_database(settings: &DatabaseSettings) -> Result<(), DbError> {
    let mut admin = PgConnection::establish(&settings.url_for("postgres"))
        .map_err(|e| DbError::Unreachable(e.to_string()))?;
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<Text, _>(&settings.name)
            .get_result(&mut admin)
            .map_err(|e| DbError::Unreachable(e.to_string()))?;
    if found.exists {
        return Ok(());
    }
    if !settings.create_if_missing {
        return Err(DbError::Missing {
            name: settings.name.clone(),
        });
    }
    // The name was validated (letters, digits, underscores), so quoting it is safe.
    match diesel::sql_query(format!("CREATE DATABASE \"{}\"", settings.name)).execute(&mut admin) {
        Ok(_) => Ok(()),
        // Another replica created it between our check and our CREATE.
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("already exists") =>
        {
            Ok(())
        }
        Err(source) => Err(DbError::Create {
            name: settings.name.clone(),
            source,
        }),
    }
}

/// Drops a database (tests clean up with this). Terminates its connections first.
pub fn drop_database(settings: &DatabaseSettings, name: &str) -> Result<(), DbError> {
    let mut admin = PgConnection::establish(&settings.url_for("postgres"))
        .map_err(|e| DbError::Unreachable(e.to_string()))?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .map_err(|source| DbError::Create {
            name: name.into(),
            source,
        })?;
    Ok(())
}

pub fn build_pool(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    Pool::builder()
        .max_size(settings.pool_size)
        .connection_timeout(Duration::from_secs(10))
        .build(kaip_bus::AuditedManager::new(settings.service_url()))
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Runs the backbone's migrations, then the service's own.
pub fn migrate(pool: &PgPool, service: EmbeddedMigrations) -> Result<(), DbError> {
    let mut conn = pool.get().map_err(|e| DbError::Pool(e.to_string()))?;
    for source in [kaip_bus::MIGRATIONS, service] {
        conn.run_pending_migrations(source)
            .map_err(|e| DbError::Migrate(e.to_string()))?;
    }
    Ok(())
}
