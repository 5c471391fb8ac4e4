//! A revoke or regenerate done with `token-admin` is refused by an already-running smtp-relay:
//! on the next transaction of a session that authenticated before, and on new sessions.

mod common;

use clap::Parser;
use common::{Backend, Client, Relay, world};

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

async fn operator_changes_reach_a_running_relay(backend: Backend) {
    let world = world(backend).await;
    let relay = Relay::spawn(&world.url);
    let url = world.url.as_str();

    let mut open = Client::connect(&relay.addr).await;
    assert_eq!(open.auth(&world.token).await, 235);
    assert!(open.send("before").await.is_ok());

    let new = token_admin(&[
        "--database-url",
        url,
        "token",
        "regenerate",
        "smtp",
        "--project",
        "Mail",
        "--yes",
    ])
    .await
    .trim()
    .to_owned();
    assert!(new.starts_with("lm_"));
    // The open session's next transaction is refused, and so is a new session with the old value.
    assert_eq!(open.send("after regenerate").await, Err(530));
    let mut fresh = Client::connect(&relay.addr).await;
    assert_eq!(fresh.auth(&world.token).await, 535);
    let mut renewed = Client::connect(&relay.addr).await;
    assert_eq!(renewed.auth(&new).await, 235);
    assert!(renewed.send("with the new value").await.is_ok());

    token_admin(&[
        "--database-url",
        url,
        "token",
        "revoke",
        "smtp",
        "--project",
        "Mail",
        "--yes",
    ])
    .await;
    assert_eq!(renewed.send("after revoke").await, Err(530));
    let mut again = Client::connect(&relay.addr).await;
    assert_eq!(again.auth(&new).await, 535);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_changes_reach_a_running_relay_on_sqlite() {
    operator_changes_reach_a_running_relay(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_changes_reach_a_running_relay_on_postgres() {
    operator_changes_reach_a_running_relay(Backend::Postgres).await;
}
