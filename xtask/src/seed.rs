//! `cargo xtask seed`: demo data for trying the servers.

use anyhow::Result;
use lettermint_core::{Abilities, NewProject, Scope, Services, SystemClock};
use lettermint_store::OpenOptions;
use std::sync::Arc;

pub async fn run(database_url: &str) -> Result<()> {
    let store = lettermint_store::open(database_url, OpenOptions::default()).await?;
    let services = Services::new(store.into_dyn(), Arc::new(SystemClock));
    let team = services.teams.create(Scope::Operator, "Demo team").await?;
    let (project, first) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: team.id,
                name: "Demo project".into(),
                smtp_enabled: true,
                first_token_name: Some("Default".into()),
            },
        )
        .await?;
    let first = first.expect("a first token was asked for");
    let smtp = services
        .project_tokens
        .create(Scope::Operator, project.id, "SMTP", (), None)
        .await?;
    let team_token = services
        .team_tokens
        .create(
            Scope::Operator,
            team.id,
            "Demo admin",
            Abilities::all(),
            None,
        )
        .await?;
    println!("team           {} ({})", team.name, team.id);
    println!("project        {} ({})", project.name, project.id);
    println!();
    println!("These tokens are shown once; only their digests are stored.");
    println!(
        "project token  {}  (name: {})",
        first.secret.expose_secret(),
        first.token.name
    );
    println!(
        "project token  {}  (name: {})",
        smtp.secret.expose_secret(),
        smtp.token.name
    );
    println!(
        "team token     {}  (every ability)",
        team_token.secret.expose_secret()
    );
    Ok(())
}
