//! The conformance suite on both backends, the schema-drift check, and the
//! connection guarantees of each store (pragmas, schema selection, fail-fast).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use latchkey_core::ports::{PoolOptions, Store, StoreError};
use latchkey_testkit::db::{self, PgSchema, PostgresGuard, SqliteGuard};
use sqlx::Row;

async fn sqlite() -> Option<SqliteGuard> {
    Some(db::fresh_sqlite().await)
}

async fn postgres() -> Option<PostgresGuard> {
    db::fresh_postgres().await
}

latchkey_testkit::store_conformance_tests!(sqlite_store, crate::store::sqlite);
latchkey_testkit::store_conformance_tests!(
    postgres_store,
    crate::store::postgres,
    #[cfg_attr(latchkey_postgres_unset, ignore = "needs LATCHKEY_TEST_POSTGRES_URL (unset when built)")]
);

/// A column: name, nullable, part of the primary key, has a default.
type Column = (String, bool, bool, bool);
/// An index: table, name, unique, partial, columns in order.
type Index = (String, String, bool, bool, Vec<String>);
/// A foreign key: table, columns, referenced table, referenced columns, ON DELETE.
type ForeignKey = (String, Vec<String>, String, Vec<String>, String);

/// What must be identical on both backends once migrated (types differ by design).
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    columns: BTreeMap<String, BTreeSet<Column>>,
    indexes: BTreeSet<Index>,
    foreign_keys: BTreeSet<ForeignKey>,
}

async fn sqlite_shape(store: &SqliteGuard) -> Shape {
    let pool = store.pool();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut shape = Shape {
        columns: BTreeMap::new(),
        indexes: BTreeSet::new(),
        foreign_keys: BTreeSet::new(),
    };
    for table in tables {
        let rows = sqlx::query(
            "SELECT name, \"notnull\", pk, dflt_value IS NOT NULL AS d FROM pragma_table_info(?)",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .unwrap();
        let cols = rows
            .iter()
            .map(|r| {
                let (not_null, pk): (i64, i64) = (r.get("notnull"), r.get("pk"));
                (r.get("name"), not_null == 0 && pk == 0, pk > 0, r.get("d"))
            })
            .collect();
        shape.columns.insert(table.clone(), cols);

        // Origin 'c' = CREATE INDEX; 'pk' and 'u' (inline UNIQUE) indexes have
        // generated names, so a named index must be created explicitly on both sides.
        let idx = sqlx::query(
            "SELECT name, \"unique\", partial FROM pragma_index_list(?) WHERE origin = 'c'",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .unwrap();
        for r in idx {
            let name: String = r.get("name");
            let cols: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let (unique, partial): (i64, i64) = (r.get("unique"), r.get("partial"));
            shape
                .indexes
                .insert((table.clone(), name, unique == 1, partial == 1, cols));
        }

        let fks = sqlx::query(
            "SELECT id, \"table\" AS t, \"from\" AS f, \"to\" AS c, on_delete \
             FROM pragma_foreign_key_list(?) ORDER BY id, seq",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for r in fks {
            let fk = by_id.entry(r.get("id")).or_insert_with(|| {
                (
                    table.clone(),
                    Vec::new(),
                    r.get("t"),
                    Vec::new(),
                    r.get("on_delete"),
                )
            });
            fk.1.push(r.get("f"));
            fk.3.push(r.get::<Option<String>, _>("c").unwrap_or_default());
        }
        shape.foreign_keys.extend(by_id.into_values());
    }
    shape
}

async fn postgres_shape(store: &PostgresGuard) -> Shape {
    let pool = store.pool();
    let rows = sqlx::query(
        "SELECT c.table_name::text AS t, c.column_name::text AS c, c.is_nullable::text AS n, \
                c.column_default IS NOT NULL AS d, \
                EXISTS (SELECT 1 FROM information_schema.table_constraints tc \
                        JOIN information_schema.key_column_usage k \
                          ON k.constraint_name = tc.constraint_name \
                         AND k.constraint_schema = tc.constraint_schema \
                        WHERE tc.constraint_type = 'PRIMARY KEY' \
                          AND tc.table_schema = c.table_schema AND tc.table_name = c.table_name \
                          AND k.column_name = c.column_name) AS pk \
         FROM information_schema.columns c \
         WHERE c.table_schema = current_schema() AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut columns: BTreeMap<String, BTreeSet<Column>> = BTreeMap::new();
    for r in rows {
        columns.entry(r.get("t")).or_default().insert((
            r.get("c"),
            r.get::<String, _>("n") == "YES",
            r.get("pk"),
            r.get("d"),
        ));
    }
    let rows = sqlx::query(
        "SELECT t.relname::text AS t, i.relname::text AS i, ix.indisunique AS u, \
                ix.indpred IS NOT NULL AS p, \
                ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY k(num, ord) \
                      JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.num \
                      ORDER BY k.ord) AS cols \
         FROM pg_index ix \
         JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() AND NOT ix.indisprimary \
           AND t.relname <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let indexes = rows
        .iter()
        .map(|r| {
            (
                r.get("t"),
                r.get("i"),
                r.get("u"),
                r.get("p"),
                r.get("cols"),
            )
        })
        .collect();
    let rows = sqlx::query(
        "SELECT t.relname::text AS t, r.relname::text AS r, \
                CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' \
                     WHEN 'd' THEN 'SET DEFAULT' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END AS del, \
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(num, ord) \
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num \
                      ORDER BY k.ord) AS f, \
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(num, ord) \
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num \
                      ORDER BY k.ord) AS c \
         FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE c.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let foreign_keys = rows
        .iter()
        .map(|r| (r.get("t"), r.get("f"), r.get("r"), r.get("c"), r.get("del")))
        .collect();
    Shape {
        columns,
        indexes,
        foreign_keys,
    }
}

#[tokio::test]
#[cfg_attr(
    latchkey_postgres_unset,
    ignore = "needs LATCHKEY_TEST_POSTGRES_URL (unset when built)"
)]
async fn sqlite_and_postgres_schemas_do_not_drift() {
    let Some(pg) = db::fresh_postgres().await else {
        return;
    };
    let lite = db::fresh_sqlite().await;
    let (a, b) = (sqlite_shape(&lite).await, postgres_shape(&pg).await);
    assert!(
        a.indexes
            .iter()
            .any(|i| i.1 == "users_email_normalized" && i.2),
        "{a:?}"
    );
    assert_eq!(a.columns, b.columns, "tables or columns differ");
    assert_eq!(a.indexes, b.indexes, "named indexes differ");
    assert_eq!(a.foreign_keys, b.foreign_keys, "foreign keys differ");
}

#[tokio::test]
async fn sqlite_open_sets_the_pragmas_and_does_not_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let pool = PoolOptions {
        max_connections: 3,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(5),
    };
    let store = latchkey_store_sqlite::open(&path, &pool, Duration::from_millis(1234))
        .await
        .unwrap();
    assert!(path.is_file(), "the file is created");
    assert_eq!(store.pool().options().get_max_connections(), 3);
    let mut conn = store.pool().acquire().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!((mode.as_str(), fk, sync, busy), ("wal", 1, 1, 1234));
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(tables, 0, "open does not migrate");
    drop(conn);
    store.migrate().await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for file in ["new.db", "new.db-wal", "new.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file} is private");
        }
    }
    store.close().await;
}

#[tokio::test]
async fn sqlite_open_does_not_create_directories() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let result = latchkey_store_sqlite::open(
        &missing.join("x.db"),
        &db::test_pool(),
        Duration::from_secs(1),
    )
    .await;
    assert!(result.is_err());
    assert!(!missing.exists());
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable_within_the_acquire_timeout() {
    let pool = PoolOptions {
        max_connections: 2,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(1),
    };
    let started = Instant::now();
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let result =
        latchkey_store_postgres::connect("postgres://latchkey@127.0.0.1:1/latchkey", &pool).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
#[cfg_attr(
    latchkey_postgres_unset,
    ignore = "needs LATCHKEY_TEST_POSTGRES_URL (unset when built)"
)]
async fn postgres_url_options_select_the_test_schema() {
    let Some(schema) = PgSchema::create_or_skip().await else {
        return;
    };
    let store = latchkey_store_postgres::connect(schema.url(), &db::test_pool())
        .await
        .unwrap();
    let current: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(current, schema.name());
    store.migrate().await.unwrap();
    let users: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(format!("{}.users", schema.name()))
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(users.is_some(), "the tables live in the test schema");
    store.close().await;
}

/// Cleanups never overlap in one process, and a cleanup cancelled half-way
/// (its future dropped) does not block the next one.
#[tokio::test]
async fn cleanups_never_overlap_and_a_cancelled_one_releases_the_next() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    let guard = db::fresh_sqlite().await;
    let store: &dyn Store = &*guard;
    let cleaner = latchkey_core::maintenance::Cleaner::default();
    let now = time::macros::datetime!(2026-11-28 10:00 UTC);

    // The first run is waiting on the database when the second one starts.
    let mut first = pin!(cleaner.run(store, now));
    let waker = futures::task::noop_waker();
    let pending = first.as_mut().poll(&mut Context::from_waker(&waker));
    assert!(
        matches!(pending, Poll::Pending),
        "the first run waits on the database"
    );
    assert!(cleaner.run(store, now).await.is_none(), "no overlap");
    let report = first.await.expect("the first run completes").unwrap();
    assert_eq!(report, latchkey_core::maintenance::CleanupReport::default());

    // Cancelled half-way: the next run still happens.
    {
        let mut cancelled = pin!(cleaner.run(store, now));
        let pending = cancelled.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(matches!(pending, Poll::Pending));
    }
    assert!(cleaner.run(store, now).await.is_some(), "released on drop");
}
