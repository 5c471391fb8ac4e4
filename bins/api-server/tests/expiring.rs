//! The gauge of tokens about to expire, from the compiled server: its maintenance task counts
//! active tokens expiring within seven days, per kind, and `/metrics` shows the counts.

mod common;

use std::time::Duration;

use common::{Backend, Process, client, services};
use lettermint_core::{Abilities, Channel, Scope};
use time::OffsetDateTime;

/// The value of `lettermint_tokens_expiring_7d{kind="<kind>"}` in a Prometheus text page.
fn gauge(page: &str, kind: &str) -> Option<f64> {
    let prefix = format!("lettermint_tokens_expiring_7d{{kind=\"{kind}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

async fn expiring_tokens_are_a_gauge(backend: Backend) {
    let (url, _dir) = common::database(backend).await;
    let server =
        Process::spawn_with_env(&url, &[], &[("LETTERMINT_MAINTENANCE_INTERVAL_SECS", "1")]);
    let services = services(&url).await;
    let caller = services
        .auth
        .authenticate_project(server.project_token.as_deref(), Channel::Api, None)
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let in_days = |d: i64| Some(now + time::Duration::days(d));
    for (name, expires_at) in [("in 3 days", in_days(3)), ("in 30 days", in_days(30))] {
        services
            .project_tokens
            .create(Scope::Operator, caller.project_id, name, (), expires_at)
            .await
            .unwrap();
    }
    let revoked = services
        .project_tokens
        .create(
            Scope::Operator,
            caller.project_id,
            "revoked",
            (),
            in_days(2),
        )
        .await
        .unwrap();
    services
        .project_tokens
        .revoke(Scope::Operator, None, revoked.token.id)
        .await
        .unwrap();
    services
        .team_tokens
        .create(
            Scope::Operator,
            caller.team_id,
            "deploy",
            Abilities::all(),
            in_days(6),
        )
        .await
        .unwrap();

    let http = client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (project, team) = (gauge(&page, "project"), gauge(&page, "team"));
        if project == Some(1.0) && team == Some(1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected 1 project and 1 team token expiring within 7 days, got {project:?} and \
             {team:?}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_tokens_are_a_gauge_on_sqlite() {
    expiring_tokens_are_a_gauge(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_tokens_are_a_gauge_on_postgres() {
    expiring_tokens_are_a_gauge(Backend::Postgres).await;
}
