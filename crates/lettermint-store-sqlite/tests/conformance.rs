//! The conformance suite on SQLite: a database file in a temporary directory per test.

use std::sync::Arc;

use async_trait::async_trait;
use lettermint_core::{MessageId, Store, TeamId};
use lettermint_store_sqlite::{SqliteConfig, SqliteStore};
use lettermint_testkit::conformance::{Fixture, collect_values};

struct SqliteFixture {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Fixture for SqliteFixture {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    async fn dump_all_values(&self) -> Vec<Vec<u8>> {
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(self.store.pool())
                .await
                .unwrap();
        let mut selects = Vec::new();
        for table in tables {
            let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{table}')"
            )))
            .fetch_all(self.store.pool())
            .await
            .unwrap();
            selects.extend(columns.into_iter().map(|column| {
                format!(
                    "SELECT CAST(\"{column}\" AS BLOB) AS v FROM \"{table}\" \
                     WHERE typeof(\"{column}\") IN ('text', 'blob')"
                )
            }));
        }
        collect_values(self.store.pool(), selects).await
    }

    async fn delete_team(&self, team: TeamId) {
        sqlx::query("DELETE FROM teams WHERE id = $1")
            .bind(team.as_uuid())
            .execute(self.store.pool())
            .await
            .unwrap();
    }

    async fn corrupt_message(&self, message: MessageId) {
        sqlx::query("UPDATE messages SET metadata = 'not json' WHERE id = $1")
            .bind(message.as_uuid())
            .execute(self.store.pool())
            .await
            .unwrap();
    }

    async fn corrupt_message_beyond_decoding(&self, message: MessageId) {
        sqlx::query("UPDATE messages SET scheduled_at = 'not a time' WHERE id = $1")
            .bind(message.as_uuid())
            .execute(self.store.pool())
            .await
            .unwrap();
    }
}

async fn fixture() -> SqliteFixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteConfig::file(dir.path().join("test.sqlite")))
        .await
        .unwrap();
    SqliteFixture { store, _dir: dir }
}

lettermint_testkit::conformance_suite!(fixture);

#[tokio::test]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::file(dir.path().join("db.sqlite"));
    let store = SqliteStore::open(&config).await.unwrap();
    let services = lettermint_core::Services::new(
        Arc::new(store.clone()),
        Arc::new(lettermint_core::SystemClock),
    );
    let team = services
        .teams
        .create(lettermint_core::Scope::Operator, "Acme")
        .await
        .unwrap();
    store.close().await;
    let again = SqliteStore::open(&config).await.unwrap();
    again.migrate().await.unwrap();
    let services =
        lettermint_core::Services::new(Arc::new(again), Arc::new(lettermint_core::SystemClock));
    assert_eq!(
        services
            .teams
            .get(lettermint_core::Scope::Operator, team.id)
            .await
            .unwrap(),
        team
    );
}

#[tokio::test]
async fn the_in_memory_store_works_through_the_url() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    lettermint_core::repo::StoreHealth::ping(&store)
        .await
        .unwrap();
    assert!(SqliteStore::connect("postgres://x").await.is_err());
}
