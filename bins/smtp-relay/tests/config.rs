//! The binary's configuration end to end: a TOML file, the environment and flags reach the
//! sessions, each layer overriding the one before; a bad file stops the relay before it listens.

mod common;

use common::{Backend, Client, world};
use lettermint_testkit::process::Binary;

#[tokio::test]
async fn file_environment_and_flags_reach_the_sessions_in_that_order() {
    let world = world(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("smtp.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"{}\"\n\
             listen = \"127.0.0.1:0\"\n\
             tls_listen = \"127.0.0.1:0\"\n\
             admin_listen = \"127.0.0.1:0\"\n\
             allow_insecure_auth = true\n\
             hostname = \"file.example\"\n\
             max_recipients = 1\n",
            world.url
        ),
    )
    .unwrap();
    let relay = Binary::new(env!("CARGO_BIN_EXE_smtp-relay"))
        .env("LETTERMINT_SMTP_CONFIG", &file)
        // Not this relay's database: the file names it, and nothing above the file does.
        .env_remove("LETTERMINT_DATABASE_URL")
        .env("LETTERMINT_SMTP_MAX_RECIPIENTS", "2")
        .env("LETTERMINT_SMTP_HOSTNAME", "env.example")
        .args(["--hostname", "flag.example"])
        .env("LETTERMINT_LOG", "warn")
        .listeners(3)
        .start();
    let mut client = Client::connect(&relay.listener("smtp").addr.to_string()).await;
    // The flag beats the variable and the file.
    let (code, text) = client.command("EHLO again.example").await;
    assert_eq!(code, 250);
    assert!(text.starts_with("250-flag.example "), "{text}");
    // The file allowed AUTH without TLS, and its database holds the token.
    assert_eq!(client.auth(&world.token).await, 235);
    // The variable beats the file: two recipients, not one.
    assert_eq!(client.command("MAIL FROM:<me@example.com>").await.0, 250);
    assert_eq!(client.command("RCPT TO:<a@example.com>").await.0, 250);
    assert_eq!(client.command("RCPT TO:<b@example.com>").await.0, 250);
    let (code, text) = client.command("RCPT TO:<c@example.com>").await;
    assert_eq!(code, 452, "{text}");
}

#[test]
fn an_unknown_key_in_the_file_stops_the_relay_with_exit_status_2_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("smtp.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nmax_recipents = 10\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_smtp-relay"))
        .arg("--config")
        .arg(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "",
        "nothing listened"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: invalid configuration: unknown field: found `max_recipents`"),
        "{stderr}"
    );
    // figment shows the path relative to the working directory when it is below it.
    assert!(stderr.contains("in smtp.toml TOML file"), "{stderr}");
    assert!(
        !dir.path().join("lettermint.sqlite").exists(),
        "no database is opened"
    );
}
