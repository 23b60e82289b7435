//! The conformance suite on both backends, and the schema-drift check.

use std::collections::{BTreeMap, BTreeSet};

use latchkey_testkit::db::{self, PostgresGuard, SqliteGuard};

async fn sqlite() -> Option<SqliteGuard> {
    Some(db::fresh_sqlite().await)
}

async fn postgres() -> Option<PostgresGuard> {
    db::fresh_postgres().await
}

latchkey_testkit::store_conformance_tests!(sqlite_store, crate::store::sqlite);
latchkey_testkit::store_conformance_tests!(postgres_store, crate::store::postgres);

/// Tables → columns (with nullability), and the named indexes.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    columns: BTreeMap<String, BTreeSet<(String, bool)>>,
    indexes: BTreeSet<(String, String, bool)>,
}

async fn sqlite_shape(store: &SqliteGuard) -> Shape {
    use sqlx::Row;
    let pool = store.pool();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut columns = BTreeMap::new();
    let mut indexes = BTreeSet::new();
    for table in tables {
        let rows = sqlx::query(&format!(
            "SELECT name, \"notnull\", pk FROM pragma_table_info('{table}')"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        let cols = rows
            .iter()
            .map(|r| {
                let not_null: i64 = r.get("notnull");
                let pk: i64 = r.get("pk");
                (r.get::<String, _>("name"), not_null == 0 && pk == 0)
            })
            .collect();
        let idx = sqlx::query(&format!(
            "SELECT name, \"unique\" FROM pragma_index_list('{table}') WHERE origin = 'c'"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        for r in idx {
            let unique: i64 = r.get("unique");
            indexes.insert((table.clone(), r.get::<String, _>("name"), unique == 1));
        }
        columns.insert(table, cols);
    }
    Shape { columns, indexes }
}

async fn postgres_shape(store: &PostgresGuard) -> Shape {
    use sqlx::Row;
    let pool = store.pool();
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable::text AS n FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut columns: BTreeMap<String, BTreeSet<(String, bool)>> = BTreeMap::new();
    for r in rows {
        columns
            .entry(r.get("t"))
            .or_default()
            .insert((r.get("c"), r.get::<String, _>("n") == "YES"));
    }
    let rows = sqlx::query(
        "SELECT t.relname::text AS t, i.relname::text AS i, ix.indisunique AS u FROM pg_index ix \
         JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() AND NOT ix.indisprimary AND t.relname <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let indexes = rows
        .iter()
        .map(|r| (r.get("t"), r.get("i"), r.get("u")))
        .collect();
    Shape { columns, indexes }
}

#[tokio::test]
async fn sqlite_and_postgres_schemas_do_not_drift() {
    let Some(pg) = db::fresh_postgres().await else {
        return;
    };
    let lite = db::fresh_sqlite().await;
    let (a, b) = (sqlite_shape(&lite).await, postgres_shape(&pg).await);
    assert!(a.columns.contains_key("users"), "{a:?}");
    assert_eq!(a, b, "the two migrated schemas differ");
}
