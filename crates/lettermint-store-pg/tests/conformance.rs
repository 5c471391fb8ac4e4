//! The conformance suite on PostgreSQL: a throwaway server started from the local binaries,
//! one fresh database per test.

use std::sync::Arc;

use async_trait::async_trait;
use lettermint_core::{MessageId, Store, TeamId};
use lettermint_store_pg::{PgConfig, PgStore};
use lettermint_testkit::conformance::{Fixture, collect_values};
use sqlx::Row;

struct PgFixture {
    store: PgStore,
}

#[async_trait]
impl Fixture for PgFixture {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    async fn dump_all_values(&self) -> Vec<Vec<u8>> {
        let columns = sqlx::query(
            "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS d \
             FROM information_schema.columns WHERE table_schema = 'public' \
             AND data_type IN ('text', 'bytea', 'character varying', 'jsonb', 'json')",
        )
        .fetch_all(self.store.pool())
        .await
        .unwrap();
        assert!(columns.len() > 20, "expected the schema's text columns");
        let selects = columns.into_iter().map(|column| {
            let (table, name, kind): (String, String, String) =
                (column.get("t"), column.get("c"), column.get("d"));
            let expr = if kind == "bytea" {
                format!("\"{name}\"")
            } else {
                format!("convert_to(\"{name}\"::text, 'UTF8')")
            };
            format!("SELECT {expr} AS v FROM \"{table}\" WHERE \"{name}\" IS NOT NULL")
        });
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
        sqlx::query("UPDATE messages SET scheduled_at = 'infinity' WHERE id = $1")
            .bind(message.as_uuid())
            .execute(self.store.pool())
            .await
            .unwrap();
    }
}

async fn fixture() -> PgFixture {
    let url = lettermint_testkit::pg::shared().create_database().await;
    PgFixture {
        store: PgStore::connect(&PgConfig::new(url)).await.unwrap(),
    }
}

lettermint_testkit::conformance_suite!(fixture);

#[tokio::test]
async fn migrations_are_idempotent_and_safe_to_run_concurrently() {
    let url = lettermint_testkit::pg::shared().create_database().await;
    let config = PgConfig::new(url);
    let (a, b) = tokio::join!(PgStore::connect(&config), PgStore::connect(&config));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.migrate().await.unwrap();
    b.migrate().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_a_storage_error_not_a_panic() {
    let mut config = PgConfig::new("postgres://postgres@127.0.0.1:1/none");
    config.acquire_timeout = std::time::Duration::from_millis(500);
    let err = PgStore::connect(&config).await.unwrap_err();
    assert!(matches!(err, lettermint_core::Error::Storage(_)), "{err:?}");
}
