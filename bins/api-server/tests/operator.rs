//! A revoke or regenerate done with `token-admin` is refused on the very next request by an
//! api-server process that is already running on the same database.

mod common;

use clap::Parser;
use common::{Backend, Process, client, mail};

async fn token_admin(args: &[&str]) -> String {
    let cli = token_admin::Cli::try_parse_from(
        std::iter::once("token-admin").chain(args.iter().copied()),
    )
    .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut console = token_admin::Console {
        out: &mut out,
        err: &mut err,
        confirm: None,
    };
    token_admin::run(cli, &mut console)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "token-admin {args:?} failed: {e:?} {}",
                String::from_utf8_lossy(&err)
            )
        });
    String::from_utf8(out).unwrap()
}

async fn operator_changes_reach_a_running_server(backend: Backend) {
    let (url, _dir) = common::database(backend).await;
    let server = Process::spawn(&url, &[]);
    let http = client();
    let send = |token: String| {
        http.post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", token)
            .json(&mail("x"))
            .send()
    };
    let token = token_admin(&[
        "--database-url",
        &url,
        "token",
        "create",
        "--project",
        "Default project",
        "--name",
        "ops",
    ])
    .await
    .trim()
    .to_owned();
    assert!(token.starts_with("lm_"), "{token}");
    assert_eq!(send(token.clone()).await.unwrap().status(), 202);

    let regenerated = token_admin(&[
        "--database-url",
        &url,
        "token",
        "regenerate",
        "ops",
        "--project",
        "Default project",
        "--yes",
    ])
    .await
    .trim()
    .to_owned();
    assert!(regenerated.starts_with("lm_") && regenerated != token);
    assert_eq!(
        send(token).await.unwrap().status(),
        401,
        "the old value is refused at once"
    );
    assert_eq!(send(regenerated.clone()).await.unwrap().status(), 202);

    token_admin(&[
        "--database-url",
        &url,
        "token",
        "revoke",
        "ops",
        "--project",
        "Default project",
        "--yes",
    ])
    .await;
    assert_eq!(
        send(regenerated).await.unwrap().status(),
        401,
        "the revoked value is refused at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_changes_reach_a_running_server_on_sqlite() {
    operator_changes_reach_a_running_server(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_changes_reach_a_running_server_on_postgres() {
    operator_changes_reach_a_running_server(Backend::Postgres).await;
}
