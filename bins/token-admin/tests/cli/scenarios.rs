//! What the operator does, each run on both backends.

use std::time::Duration as StdDuration;

use lettermint_core::{Ability, Action, Channel, MessageId, Outcome, PlainToken, ProjectId};
use serde_json::Value;
use time::Duration;

use crate::harness::{Db, now, redact, used};
use crate::setup::{self, assert_instant, id, keys};

const TEAM_KEYS: &[&str] = &["created_at", "id", "name", "projects_count", "updated_at"];
const PROJECT_KEYS: &[&str] = &[
    "created_at",
    "id",
    "name",
    "smtp_enabled",
    "team_id",
    "updated_at",
];
const TOKEN_KEYS: &[&str] = &[
    "allowed_ips",
    "created_at",
    "expires_at",
    "hint",
    "id",
    "last_used_at",
    "last_used_ip",
    "last_used_via",
    "name",
    "previous_expires_at",
    "project_id",
    "revoked_at",
    "status",
    "updated_at",
];
const TEAM_TOKEN_KEYS: &[&str] = &[
    "abilities",
    "allowed_ips",
    "created_at",
    "expires_at",
    "hint",
    "id",
    "last_used_at",
    "last_used_ip",
    "last_used_via",
    "name",
    "previous_expires_at",
    "revoked_at",
    "status",
    "team_id",
    "updated_at",
];
const LOG_KEYS: &[&str] = &[
    "action",
    "actor",
    "at",
    "credential",
    "id",
    "ip",
    "leak_url",
    "message_ids",
    "outcome",
    "status",
    "token_id",
    "user_agent",
    "via",
];
const ACCOUNT_KEYS: &[&str] = &[
    "created_at",
    "display_name",
    "email",
    "id",
    "password_changed_at",
    "teams",
];
const MEMBER_KEYS: &[&str] = &[
    "account_id",
    "display_name",
    "email",
    "joined_at",
    "role",
    "team_id",
];
const WARNING: &str =
    "warning: this token is shown only once and cannot be shown again; store it now.\n";

fn with(keys: &[&str], extra: &str) -> Vec<String> {
    let mut all: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    all.push(extra.to_owned());
    all.sort();
    all
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| v["name"].as_str().expect("a name"))
        .collect()
}

/// The one line a secret-printing command writes on stdout.
fn secret_of(stdout: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the token on stdout, got:\n{stdout}");
    PlainToken::parse(lines[0]).expect("a well-formed token");
    lines[0].to_owned()
}

async fn authenticates(db: &Db, secret: &str) -> bool {
    db.services()
        .await
        .auth
        .authenticate_project(Some(secret), Channel::Api, None)
        .await
        .is_ok()
}

async fn authenticates_team(db: &Db, secret: &str) -> bool {
    db.services()
        .await
        .auth
        .authenticate_team(Some(secret), None)
        .await
        .is_ok()
}

pub async fn teams_are_created_listed_shown_and_renamed(db: &Db) {
    let acme = db.json(&["team", "create", "Acme"]);
    assert_eq!(keys(&acme), TEAM_KEYS);
    assert_eq!(acme["name"], "Acme");
    assert_eq!(acme["projects_count"], 0);
    assert_instant(&acme["created_at"]);
    assert_instant(&acme["updated_at"]);

    let created = db.ok(&["team", "create", "Beta"]);
    insta::assert_snapshot!("team_create", redact(&created.stdout));
    assert!(
        created
            .stderr
            .contains("Next: token-admin project create NAME --team"),
        "{}",
        created.stderr
    );
    setup::project(db, "Acme", "Shop");

    insta::assert_snapshot!("team_list", redact(&db.ok(&["team", "list"]).stdout));
    let list = db.json(&["team", "list"]);
    assert_eq!(names(&list), ["Acme", "Beta"]);
    assert_eq!(list[0]["projects_count"], 1);
    assert_eq!(list[1]["projects_count"], 0);
    assert_eq!(keys(&list[1]), TEAM_KEYS);

    assert_eq!(db.json(&["team", "show", "Acme"])["id"], acme["id"]);
    insta::assert_snapshot!(
        "team_show",
        redact(&db.ok(&["team", "show", &id(&acme)]).stdout)
    );

    let renamed = db.json(&["team", "rename", "Beta", "Gamma"]);
    assert_eq!(renamed["name"], "Gamma");
    assert_eq!(
        db.fails(&["team", "show", "Beta"], 1),
        "error: no team named `Beta`; `token-admin team list` shows the teams"
    );
    assert_eq!(db.json(&["team", "show", "Gamma"])["id"], renamed["id"]);
    assert_eq!(
        db.fails(&["team", "rename", "Gamma", "  "], 2),
        "error: The name field is required."
    );
}

pub async fn team_names_that_are_ambiguous_list_the_candidates(db: &Db) {
    let first = setup::team(db, "Acme");
    let second = setup::team(db, "Acme");
    let err = db.fails(&["team", "show", "Acme"], 1);
    assert_eq!(
        err,
        format!(
            "error: the team name `Acme` is ambiguous: 2 teams have it ({first}, {second}); use \
             the team id"
        )
    );
    assert_eq!(db.json(&["team", "show", &second])["id"], second.as_str());

    let err = db.fails(&["project", "create", "Shop"], 1);
    assert_eq!(
        err,
        format!(
            "error: there are several teams; pass --team with one of: Acme ({first}), Acme \
             ({second})"
        )
    );
    let unknown = "01900000-0000-7000-8000-000000000000";
    assert_eq!(
        db.fails(&["team", "show", unknown], 1),
        format!("error: no team with id {unknown}")
    );
}

pub async fn projects_are_created_with_a_default_route_and_an_optional_first_token(db: &Db) {
    let team = setup::team(db, "Acme");
    // With a single team, --team may be left out.
    let shop = db.json(&["project", "create", "Shop"]);
    assert_eq!(keys(&shop), PROJECT_KEYS);
    assert_eq!(shop["name"], "Shop");
    assert_eq!(shop["smtp_enabled"], false);
    assert_eq!(shop["team_id"], team.as_str());
    assert_instant(&shop["created_at"]);

    let store = db.store().await;
    let shop_id: ProjectId = id(&shop).parse().unwrap();
    let route = store.get_default_route(shop_id).await.unwrap().unwrap();
    assert_eq!(route.slug, "default");

    // --with-token: the value alone on stdout, what happened on stderr.
    let mail = db.ok(&[
        "project",
        "create",
        "Mail",
        "--team",
        "Acme",
        "--smtp",
        "--with-token",
        "checkout",
    ]);
    let secret = secret_of(&mail.stdout);
    assert!(
        mail.stderr.starts_with("Created project Mail ("),
        "{}",
        mail.stderr
    );
    assert!(mail.stderr.ends_with(WARNING), "{}", mail.stderr);
    let caller = db
        .services()
        .await
        .auth
        .authenticate_project(Some(&secret), Channel::Smtp, None)
        .await
        .expect("the first token sends mail, over SMTP too");
    let mail_project = db.json(&["project", "show", "Mail"]);
    assert_eq!(caller.project_id.to_string(), id(&mail_project));
    assert_eq!(mail_project["smtp_enabled"], true);
    assert_eq!(
        names(&db.json(&["token", "list", "--project", "Mail"])),
        ["checkout"]
    );

    // With --json, the value is in the object as `token`.
    let admin = db.json(&["project", "create", "Admin", "--with-token", "first"]);
    assert_eq!(
        keys(&admin),
        with(
            &with(PROJECT_KEYS, "first_token")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            "token"
        )
    );
    assert_eq!(keys(&admin["first_token"]), TOKEN_KEYS);
    assert_eq!(admin["first_token"]["name"], "first");
    assert_eq!(admin["first_token"]["project_id"], admin["id"]);
    let value = admin["token"].as_str().unwrap();
    assert!(authenticates(db, value).await);
    assert_eq!(
        db.fails(&["project", "create", "x".repeat(101).as_str()], 2),
        "error: The name field must not be greater than 100 characters."
    );
}

pub async fn projects_are_listed_shown_updated_and_deleted(db: &Db) {
    let acme = setup::team(db, "Acme");
    let beta = setup::team(db, "Beta");
    assert_eq!(
        db.ok(&["project", "list"]).stdout,
        "No projects yet. Create one with: token-admin project create NAME --team TEAM\n"
    );
    setup::project(db, &acme, "Shop");
    setup::project(db, &acme, "newsletter");
    setup::project(db, &beta, "Billing");
    insta::assert_snapshot!("project_list", redact(&db.ok(&["project", "list"]).stdout));
    let of_acme = db.json(&["project", "list", "--team", "Acme"]);
    assert_eq!(names(&of_acme), ["newsletter", "Shop"]);
    assert_eq!(keys(&of_acme[0]), PROJECT_KEYS);
    assert_eq!(
        names(&db.json(&["project", "list", "--search", "SHO"])),
        ["Shop"]
    );
    assert_eq!(
        db.ok(&["project", "list", "--search", "zzz"]).stdout,
        "No projects match. `token-admin project list` shows them all.\n"
    );
    insta::assert_snapshot!(
        "project_show",
        redact(&db.ok(&["project", "show", "Shop"]).stdout)
    );

    let before = db.json(&["project", "show", "Shop"]);
    let updated = db.json(&["project", "update", "Shop", "--name", "Store", "--no-smtp"]);
    assert_eq!(updated["id"], before["id"]);
    assert_eq!(updated["name"], "Store");
    assert_eq!(updated["smtp_enabled"], false);
    assert_eq!(
        db.json(&["project", "update", "Store", "--smtp"])["smtp_enabled"],
        true
    );
    assert_eq!(
        db.fails(&["project", "update", "Store"], 2),
        "error: nothing to change: pass --name NAME, --smtp or --no-smtp"
    );
    assert!(
        db.fails(&["project", "update", "Store", "--smtp", "--no-smtp"], 2)
            .contains("cannot be used with")
    );

    let token = setup::token(db, "Store", "web");
    let secret = token["token"].as_str().unwrap().to_owned();
    assert_eq!(
        db.fails(&["project", "delete", "Store"], 2),
        "error: deleting a project needs --yes when not run on a terminal"
    );
    assert!(authenticates(db, &secret).await);
    let deleted = db.ok(&["project", "delete", "Store", "--yes"]);
    assert_eq!(redact(&deleted.stdout), "Deleted project Store ([id]).\n");
    assert!(!authenticates(db, &secret).await, "its tokens die with it");
    assert_eq!(
        db.fails(&["project", "show", "Store"], 1),
        "error: no project named `Store`; `token-admin project list` shows the projects"
    );
    let gone = db.json(&["project", "delete", "Billing", "--yes"]);
    assert_eq!(gone["message"], "Project Billing deleted.");
}

pub async fn project_names_resolve_across_teams_or_fail_listing_candidates(db: &Db) {
    let acme = setup::team(db, "Acme");
    let beta = setup::team(db, "Beta");
    let shop_a = setup::project(db, &acme, "Shop");
    let shop_b = setup::project(db, &beta, "Shop");
    setup::project(db, &acme, "Solo");

    // A name only one team has needs no --team.
    assert_eq!(setup::token(db, "Solo", "web")["name"], "web");

    let err = db.fails(&["token", "list", "--project", "Shop"], 1);
    assert_eq!(
        err,
        format!(
            "error: the project name `Shop` is ambiguous: 2 projects have it ({shop_a} in team \
             Acme, {shop_b} in team Beta); pass --team or use the project id"
        )
    );
    assert_eq!(
        db.json(&["project", "show", "Shop", "--team", "Beta"])["id"],
        shop_b.as_str()
    );
    assert_eq!(
        db.json(&["token", "list", "--project", "Shop", "--team", &acme]),
        serde_json::json!([])
    );
    assert_eq!(
        db.json(&["project", "show", &shop_a])["id"],
        shop_a.as_str()
    );

    assert_eq!(
        db.fails(&["token", "list", "--project", "Nope"], 1),
        "error: no project named `Nope`; `token-admin project list` shows the projects"
    );
    assert_eq!(
        db.fails(&["project", "show", "Nope", "--team", "Beta"], 1),
        "error: no project named `Nope` in team `Beta`; `token-admin project list --team Beta` \
         shows its projects"
    );
    let unknown = "01900000-0000-7000-8000-000000000000";
    assert_eq!(
        db.fails(&["project", "show", unknown], 1),
        format!("error: no project with id {unknown}")
    );
    assert_eq!(
        db.fails(&["project", "show", &shop_b, "--team", "Acme"], 1),
        format!("error: project {shop_b} does not belong to team Acme")
    );
    assert_eq!(
        db.fails(&["project", "show", "Shop", "--team", "Nope"], 1),
        "error: no team named `Nope`; `token-admin team list` shows the teams"
    );
}

pub async fn a_token_is_printed_once_alone_on_stdout(db: &Db) {
    let team = setup::team(db, "Acme");
    setup::project(db, &team, "Shop");
    let ran = db.ok(&["token", "create", "--project", "Shop", "--name", "checkout"]);
    let secret = secret_of(&ran.stdout);
    assert!(secret.starts_with("lm_") && !secret.starts_with("lm_team_"));
    assert_eq!(ran.stderr, WARNING);
    assert!(authenticates(db, &secret).await);

    // Never again: not in a list, not in a show.
    for args in [
        &["token", "list", "-p", "Shop", "--status", "all"][..],
        &["token", "show", "checkout", "-p", "Shop"],
        &["--json", "token", "list", "-p", "Shop"],
        &["--json", "token", "show", "checkout", "-p", "Shop"],
    ] {
        let out = db.ok(args);
        assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret));
    }
    let listed = db.json(&["token", "list", "-p", "Shop"]);
    let hint = listed[0]["hint"].as_str().unwrap();
    let parsed = PlainToken::parse(&secret).unwrap();
    assert_eq!(hint, parsed.hint().as_str());

    let json = db.json(&["token", "create", "-p", "Shop", "--name", "smtp"]);
    assert_eq!(keys(&json), with(TOKEN_KEYS, "token"));
    assert_eq!(json["status"], "active");
    assert_eq!(json["last_used_at"], Value::Null);
    assert_eq!(json["expires_at"], Value::Null);
    assert_eq!(json["revoked_at"], Value::Null);
    assert!(authenticates(db, json["token"].as_str().unwrap()).await);

    assert_eq!(
        db.fails(&["token", "create", "-p", "Shop", "--name", "checkout"], 1),
        "error: A token with this name already exists in this project."
    );
}

pub async fn token_list_shows_use_status_and_empty_states(db: &Db) {
    let team = setup::team(db, "Acme");
    setup::project(db, &team, "Shop");
    assert_eq!(
        redact(&db.ok(&["token", "list", "-p", "Shop"]).stdout),
        "No active tokens in project Shop. Create one with: token-admin token create --project \
         [id] --name NAME\n"
    );
    assert!(
        db.ok(&["token", "list", "-p", "Shop", "--status", "revoked"])
            .stdout
            .starts_with("No revoked tokens in project Shop.")
    );
    assert_eq!(
        db.json(&["token", "list", "-p", "Shop"]),
        serde_json::json!([])
    );

    let zeta = id(&setup::token(db, "Shop", "zeta"));
    let alpha = id(&setup::token(db, "Shop", "alpha"));
    let mid = id(&setup::token(db, "Shop", "Mid"));
    let relay = id(&setup::token(db, "Shop", "smtp-relay"));
    db.ok(&["token", "revoke", &zeta, "--yes"]);
    let services = db.services().await;
    services
        .usage
        .flush(vec![
            used(
                &alpha,
                Duration::minutes(190),
                Channel::Api,
                Action::Send,
                Outcome::Accepted,
                202,
                "203.0.113.7",
            ),
            used(
                &relay,
                Duration::hours(49),
                Channel::Smtp,
                Action::SmtpMessage,
                Outcome::Accepted,
                250,
                "2001:db8::25",
            ),
            used(
                &mid,
                Duration::seconds(45 * 60 + 10),
                Channel::Api,
                Action::Ping,
                Outcome::Accepted,
                200,
                "198.51.100.4",
            ),
        ])
        .await
        .unwrap();

    insta::assert_snapshot!(
        "token_list",
        redact(&db.ok(&["token", "list", "--project", "Shop"]).stdout)
    );
    insta::assert_snapshot!(
        "token_list_all_absolute",
        redact(
            &db.ok(&[
                "token",
                "list",
                "-p",
                "Shop",
                "--status",
                "all",
                "--absolute"
            ])
            .stdout
        )
    );
    let all = db.json(&["token", "list", "-p", "Shop", "--status", "all"]);
    assert_eq!(names(&all), ["alpha", "Mid", "smtp-relay", "zeta"]);
    for token in all.as_array().unwrap() {
        assert_eq!(keys(token), TOKEN_KEYS);
        assert_instant(&token["created_at"]);
        assert_instant(&token["updated_at"]);
    }
    assert_eq!(all[0]["last_used_ip"], "203.0.113.7");
    assert_eq!(all[0]["last_used_via"], "api");
    assert_instant(&all[0]["last_used_at"]);
    assert_eq!(all[2]["last_used_via"], "smtp");
    assert_eq!(all[3]["status"], "revoked");
    assert_instant(&all[3]["revoked_at"]);
    assert_eq!(
        names(&db.json(&["token", "list", "-p", "Shop", "--status", "revoked"])),
        ["zeta"]
    );
    assert_eq!(
        db.fails(&["token", "list", "-p", "Shop", "--status", "gone"], 2),
        "error: invalid value 'gone' for '--status <STATUS>'; [possible values: active, revoked, \
         expired, all] (see --help)"
    );
}

pub async fn tokens_are_shown_renamed_regenerated_and_revoked(db: &Db) {
    let team = setup::team(db, "Acme");
    setup::project(db, &team, "Shop");
    let other = setup::project(db, &team, "Other");
    let created = setup::token(db, "Shop", "checkout");
    let token_id = id(&created);
    let first = created["token"].as_str().unwrap().to_owned();
    db.services()
        .await
        .usage
        .flush(vec![used(
            &token_id,
            Duration::minutes(190),
            Channel::Smtp,
            Action::SmtpAuth,
            Outcome::Accepted,
            235,
            "203.0.113.7",
        )])
        .await
        .unwrap();

    insta::assert_snapshot!(
        "token_show",
        redact(
            &db.ok(&["token", "show", "checkout", "--project", "Shop"])
                .stdout
        )
    );
    let shown = db.json(&["token", "show", &token_id]);
    assert_eq!(keys(&shown), TOKEN_KEYS);
    assert_eq!(shown["last_used_via"], "smtp");
    assert_eq!(
        db.fails(&["token", "show", "checkout"], 2),
        "error: `checkout` is not a token id; pass --project to look a token up by name"
    );
    assert_eq!(
        db.fails(&["token", "show", &token_id, "--project", &other], 1),
        format!("error: no token with id {token_id} in project Other")
    );

    let renamed = db.json(&["token", "rename", "checkout", "web", "-p", "Shop"]);
    assert_eq!(renamed["id"], token_id.as_str());
    assert_eq!(renamed["name"], "web");

    assert_eq!(
        db.fails(&["token", "regenerate", "web", "-p", "Shop"], 2),
        "error: regenerating a token needs --yes when not run on a terminal"
    );
    assert!(authenticates(db, &first).await);
    let regenerated = db.ok(&["token", "regenerate", "web", "-p", "Shop", "--yes"]);
    let second = secret_of(&regenerated.stdout);
    assert_eq!(regenerated.stderr, WARNING);
    assert_ne!(second, first);
    assert!(
        !authenticates(db, &first).await,
        "the old value dies at once"
    );
    assert!(authenticates(db, &second).await);
    let after = db.json(&["token", "show", &token_id]);
    assert_eq!(
        after["hint"],
        PlainToken::parse(&second).unwrap().hint().as_str()
    );

    let third = db.json(&["token", "regenerate", &token_id, "--yes"]);
    assert_eq!(keys(&third), with(TOKEN_KEYS, "token"));
    assert_eq!(third["id"], token_id.as_str());
    let third = third["token"].as_str().unwrap().to_owned();
    assert!(!authenticates(db, &second).await);

    assert_eq!(
        db.fails(&["token", "revoke", "web", "-p", "Shop"], 2),
        "error: revoking a token needs --yes when not run on a terminal"
    );
    assert!(authenticates(db, &third).await);
    let revoked = db.ok(&["token", "revoke", "web", "-p", "Shop", "--yes"]);
    assert_eq!(redact(&revoked.stdout), "Revoked token web ([id]).\n");
    assert!(
        !authenticates(db, &third).await,
        "refused from the next request on"
    );
    assert_eq!(
        redact(&db.ok(&["token", "revoke", &token_id, "--yes"]).stdout),
        "Token web ([id]) was already revoked.\n"
    );
    assert_eq!(
        db.fails(&["token", "regenerate", &token_id, "--yes"], 1),
        "error: A revoked token cannot be regenerated."
    );
    assert_eq!(
        db.fails(&["token", "rename", &token_id, "again"], 1),
        "error: A revoked token cannot be renamed."
    );
    let json = db.json(&[
        "token",
        "revoke",
        &id(&setup::token(db, "Shop", "ci")),
        "--yes",
    ]);
    assert_eq!(json["status"], "revoked");
    assert_instant(&json["revoked_at"]);
}

pub async fn token_names_shared_with_revoked_tokens_resolve_or_fail_listing_candidates(db: &Db) {
    let team = setup::team(db, "Acme");
    let shop = setup::project(db, &team, "Shop");
    let first = id(&setup::token(db, "Shop", "ci"));
    db.ok(&["token", "revoke", "ci", "-p", "Shop", "--yes"]);
    // A revoked token's name is free again.
    let second = id(&setup::token(db, "Shop", "ci"));
    assert_eq!(
        db.json(&["token", "show", "ci", "-p", "Shop"])["id"],
        second.as_str()
    );
    db.ok(&["token", "revoke", "ci", "-p", "Shop", "--yes"]);
    assert_eq!(
        db.fails(&["token", "show", "ci", "-p", "Shop"], 1),
        format!(
            "error: the token name `ci` is ambiguous in project Shop: 2 revoked tokens have it \
             ({first} (revoked), {second} (revoked)); use the token id"
        )
    );
    assert_eq!(db.json(&["token", "show", &first])["status"], "revoked");
    assert_eq!(
        db.fails(&["token", "show", "nope", "-p", "Shop"], 1),
        format!(
            "error: no token named `nope` in project Shop; `token-admin token list --project \
             {shop} --status all` shows its tokens"
        )
    );
}

pub async fn expiry_options_are_checked(db: &Db) {
    let team = setup::team(db, "Acme");
    setup::project(db, &team, "Shop");
    assert_eq!(
        db.fails(
            &[
                "token",
                "create",
                "-p",
                "Shop",
                "--name",
                "x",
                "--expires-in",
                "3x"
            ],
            2
        ),
        "error: invalid value '3x' for '--expires-in <DURATION>': invalid duration `3x`: unknown \
         unit `x`; use a number followed by s, m, h, d or w, e.g. 30d, 12h, 90m or 1h30m (see \
         --help)"
    );
    assert!(
        db.fails(
            &[
                "token",
                "create",
                "-p",
                "Shop",
                "--name",
                "x",
                "--expires-in",
                "30"
            ],
            2
        )
        .contains("the number has no unit")
    );
    assert!(
        db.fails(
            &[
                "token",
                "create",
                "-p",
                "Shop",
                "--name",
                "x",
                "--expires-in",
                "1d",
                "--expires-at",
                "2099-01-01"
            ],
            2
        )
        .contains("cannot be used with")
    );
    assert!(
        db.fails(
            &[
                "token",
                "create",
                "-p",
                "Shop",
                "--name",
                "x",
                "--expires-at",
                "soon"
            ],
            2
        )
        .contains("invalid time `soon`")
    );
    assert_eq!(
        db.fails(
            &[
                "token",
                "create",
                "-p",
                "Shop",
                "--name",
                "x",
                "--expires-at",
                "2020-01-01"
            ],
            2
        ),
        "error: The expires at field must be a date in the future."
    );

    let before = now();
    let month = db.json(&[
        "token",
        "create",
        "-p",
        "Shop",
        "--name",
        "month",
        "--expires-in",
        "30d",
    ]);
    let expires = time::OffsetDateTime::parse(
        month["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(expires >= before + Duration::days(30));
    assert!(expires <= now() + Duration::days(30));
    let dated = db.json(&[
        "token",
        "create",
        "-p",
        "Shop",
        "--name",
        "dated",
        "--expires-at",
        "2099-12-31",
    ]);
    assert_eq!(dated["expires_at"], "2099-12-31T00:00:00Z");

    db.json(&[
        "token",
        "create",
        "-p",
        "Shop",
        "--name",
        "brief",
        "--expires-in",
        "1s",
    ]);
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    let expired = db.json(&["token", "list", "-p", "Shop", "--status", "expired"]);
    assert_eq!(names(&expired), ["brief"]);
    assert_eq!(expired[0]["status"], "expired");
    assert_eq!(
        names(&db.json(&["token", "list", "-p", "Shop"])),
        ["dated", "month"]
    );
    assert!(
        db.fails(
            &[
                "team-token",
                "create",
                "--name",
                "x",
                "--ability",
                "read:team",
                "--expires-in",
                "1y"
            ],
            2
        )
        .contains("unknown unit `y`")
    );
}

pub async fn token_logs_are_newest_first_and_filtered(db: &Db) {
    let team = setup::team(db, "Acme");
    setup::project(db, &team, "Shop");
    let token = id(&setup::token(db, "Shop", "checkout"));
    assert_eq!(
        db.ok(&["token", "logs", "checkout", "-p", "Shop"]).stdout,
        "No log entries for token checkout. Entries appear once the token is used through the \
         Sending API or the SMTP relay; --follow waits for them.\n"
    );
    let mut sent = used(
        &token,
        Duration::minutes(130),
        Channel::Api,
        Action::Send,
        Outcome::Accepted,
        202,
        "203.0.113.7",
    );
    sent.message_ids = vec![MessageId::new(), MessageId::new()];
    db.services()
        .await
        .usage
        .flush(vec![
            sent,
            used(
                &token,
                Duration::seconds(30 * 60 + 20),
                Channel::Smtp,
                Action::SmtpAuth,
                Outcome::RejectedSmtpDisabled,
                535,
                "198.51.100.4",
            ),
            used(
                &token,
                Duration::seconds(5 * 60 + 20),
                Channel::Api,
                Action::Ping,
                Outcome::Accepted,
                200,
                "203.0.113.7",
            ),
        ])
        .await
        .unwrap();

    insta::assert_snapshot!(
        "token_logs",
        redact(&db.ok(&["token", "logs", "checkout", "-p", "Shop"]).stdout)
    );
    let absolute = db.ok(&["token", "logs", &token, "--absolute"]).stdout;
    assert_eq!(absolute.matches('Z').count(), 3, "{absolute}");

    let all = db.json(&["token", "logs", &token]);
    let entries = all.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for e in entries {
        assert_eq!(keys(e), LOG_KEYS);
        assert_eq!(e["token_id"], token.as_str());
        assert_instant(&e["at"]);
    }
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ping", "smtp_auth", "send"], "newest first");
    assert_eq!(entries[2]["message_ids"].as_array().unwrap().len(), 2);
    assert_eq!(entries[2]["user_agent"], "lettermint-php/1.0");
    assert_eq!(entries[1]["user_agent"], Value::Null);
    assert_eq!(entries[1]["via"], "smtp");
    assert_eq!(entries[1]["status"], 535);
    assert_eq!(entries[1]["ip"], "198.51.100.4");

    let recent = db.json(&["token", "logs", &token, "--since", "1h"]);
    assert_eq!(recent.as_array().unwrap().len(), 2);
    let rejected = db.json(&[
        "token",
        "logs",
        &token,
        "--outcome",
        "rejected_smtp_disabled",
    ]);
    assert_eq!(rejected.as_array().unwrap().len(), 1);
    assert_eq!(rejected[0]["outcome"], "rejected_smtp_disabled");
    assert_eq!(
        db.json(&["token", "logs", &token, "--outcome", "rejected_revoked"]),
        serde_json::json!([])
    );
    assert!(
        db.ok(&["token", "logs", &token, "--outcome", "rejected_revoked"])
            .stdout
            .starts_with("No log entries for token checkout matching these filters.")
    );
    let newest = db.json(&["token", "logs", &token, "--limit", "1"]);
    assert_eq!(newest.as_array().unwrap().len(), 1);
    assert_eq!(newest[0]["action"], "ping");
    let since_instant = (now() - Duration::minutes(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        db.json(&["token", "logs", &token, "--since", &since_instant])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let err = db.fails(&["token", "logs", &token, "--outcome", "nope"], 2);
    assert!(
        err.starts_with(
            "error: invalid value 'nope' for '--outcome <OUTCOME>'; [possible values: accepted, \
             rejected_revoked,"
        ),
        "{err}"
    );
    assert!(
        db.fails(&["token", "logs", &token, "--since", "yesterday"], 2)
            .contains("invalid duration `yesterday`")
    );
}

/// `--expiring`: active tokens that expire within the window, soonest first, of one project or
/// of every project (and the same for team tokens).
pub async fn tokens_expiring_soon_are_listed_across_projects(db: &Db) {
    let acme = setup::team(db, "Acme");
    let globex = setup::team(db, "Globex");
    setup::project(db, &acme, "Shop");
    setup::project(db, &globex, "Blog");
    let create = |project: &str, name: &str, expires_in: Option<&str>| {
        let mut args = vec!["token", "create", "--project", project, "--name", name];
        if let Some(d) = expires_in {
            args.extend(["--expires-in", d]);
        }
        setup::id(&db.json(&args))
    };
    let shop_soon = create("Shop", "shop-soon", Some("3d"));
    let blog_sooner = create("Blog", "blog-sooner", Some("1d"));
    create("Shop", "shop-later", Some("30d"));
    create("Shop", "shop-never", None);
    let revoked = create("Shop", "shop-revoked", Some("2d"));
    db.ok(&["token", "revoke", &revoked, "--yes"]);

    let across = db.ok(&["token", "list", "--expiring", "7d"]).stdout;
    let lines: Vec<&str> = across.lines().collect();
    assert_eq!(lines.len(), 3, "{across}");
    assert!(
        lines[0].starts_with("NAME         PROJECT  HINT"),
        "{across}"
    );
    assert!(lines[0].contains("EXPIRES"), "{across}");
    assert!(
        lines[1].starts_with("blog-sooner  Blog"),
        "soonest first: {across}"
    );
    assert!(
        lines[1].contains("in 23 hours") || lines[1].contains("in 1 day"),
        "{across}"
    );
    assert!(lines[2].starts_with("shop-soon    Shop"), "{across}");
    let json = db.json(&["token", "list", "--expiring", "7d"]);
    assert_eq!(names(&json), ["blog-sooner", "shop-soon"]);
    assert_eq!(json[1]["id"], shop_soon.as_str());
    assert_instant(&json[1]["expires_at"]);
    assert_eq!(json[0]["id"], blog_sooner.as_str());

    let shop = db.json(&["token", "list", "--expiring", "7d", "--project", "Shop"]);
    assert_eq!(names(&shop), ["shop-soon"]);
    let table = db
        .ok(&["token", "list", "--expiring", "7d", "--project", "Shop"])
        .stdout;
    assert!(
        !table.contains("PROJECT"),
        "one project needs no column: {table}"
    );
    let month = db.json(&["token", "list", "--expiring", "31d"]);
    assert_eq!(names(&month), ["blog-sooner", "shop-soon", "shop-later"]);
    assert_eq!(
        db.ok(&["token", "list", "--expiring", "1h"]).stdout,
        "No active tokens expire within 1h.\n"
    );
    // Without --expiring a project is needed, and --status does not mix with --expiring.
    let err = db.fails(&["token", "list"], 2);
    assert!(err.contains("--project"), "{err}");
    db.fails(&["token", "list", "--expiring", "7d", "--status", "all"], 2);
    db.fails(&["token", "list", "--expiring", "soon"], 2);

    // Team tokens.
    for (team, name, expires) in [("Acme", "deploy", "5d"), ("Globex", "ci", "60d")] {
        db.ok(&[
            "team-token",
            "create",
            "--team",
            team,
            "--name",
            name,
            "--ability",
            "read:team",
            "--expires-in",
            expires,
        ]);
    }
    let teams = db.ok(&["team-token", "list", "--expiring", "7d"]).stdout;
    let lines: Vec<&str> = teams.lines().collect();
    assert_eq!(lines.len(), 2, "{teams}");
    assert!(lines[0].starts_with("NAME    TEAM  HINT"), "{teams}");
    assert!(lines[1].starts_with("deploy  Acme"), "{teams}");
    let globex_only = db.json(&[
        "team-token",
        "list",
        "--expiring",
        "90d",
        "--team",
        "Globex",
    ]);
    assert_eq!(names(&globex_only), ["ci"]);
    assert_eq!(
        db.ok(&["team-token", "list", "--expiring", "1d", "--team", "Acme"])
            .stdout,
        "No active team tokens of team Acme expire within 1d.\n"
    );
}

/// A token revoked by a leak report shows the revocation and where the value was found.
pub async fn token_logs_show_where_a_leaked_token_was_found(db: &Db) {
    use lettermint_core::{LeakReporter, LeakVerdict, LeakedValue};
    let team = setup::team(db, "Acme");
    setup::project(db, &team, "Shop");
    let created = setup::token(db, "Shop", "checkout");
    let token = id(&created);
    let value = created["token"].as_str().unwrap().to_owned();
    let url = "https://github.com/octo/app/blob/0123abc/.env";
    let verdicts = db
        .services()
        .await
        .leaks
        .report(
            &[LeakedValue {
                value: value.clone(),
                url: Some(url.to_owned()),
            }],
            &LeakReporter {
                ip: Some("192.0.2.10".parse().unwrap()),
                user_agent: Some("GitHub-Secret-Scanning".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(verdicts, [LeakVerdict::TruePositive]);
    let table = db.ok(&["token", "logs", &token]).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].ends_with("LEAKED AT"), "{table}");
    assert!(lines[1].contains("revoked_leaked"), "{table}");
    assert!(lines[1].contains("leak_report"), "{table}");
    assert!(lines[1].ends_with(url), "{table}");
    let entries = db.json(&["token", "logs", &token]);
    assert_eq!(entries[0]["leak_url"], url);
    assert_eq!(entries[0]["outcome"], "revoked_leaked");
    let shown = db.json(&["token", "show", &token]);
    assert_eq!(shown["status"], "revoked");
}

pub async fn token_logs_follow_streams_new_entries(db: &Db) {
    let team = setup::team(db, "Acme");
    setup::project(db, &team, "Shop");
    let token = id(&setup::token(db, "Shop", "checkout"));
    let other = id(&setup::token(db, "Shop", "other"));
    let services = db.services().await;
    services
        .usage
        .flush(vec![used(
            &token,
            Duration::minutes(1),
            Channel::Api,
            Action::Ping,
            Outcome::Accepted,
            200,
            "203.0.113.7",
        )])
        .await
        .unwrap();

    let mut follower = db.spawn(&[
        "--json",
        "token",
        "logs",
        "checkout",
        "-p",
        "Shop",
        "--follow",
        "--poll-ms",
        "100",
    ]);
    let mut next = |what: &str| -> Value {
        let line = follower
            .next_line(StdDuration::from_secs(30))
            .unwrap_or_else(|| panic!("no {what} streamed within 30 s"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };

    let first = next("existing entry");
    assert_eq!(keys(&first), LOG_KEYS);
    assert_eq!(first["action"], "ping");

    services
        .usage
        .flush(vec![
            used(
                &other,
                Duration::ZERO,
                Channel::Api,
                Action::Send,
                Outcome::Accepted,
                202,
                "203.0.113.9",
            ),
            used(
                &token,
                Duration::ZERO,
                Channel::Smtp,
                Action::SmtpMessage,
                Outcome::Accepted,
                250,
                "198.51.100.4",
            ),
        ])
        .await
        .unwrap();
    let second = next("new entry");
    assert_eq!(second["action"], "smtp_message");
    assert_eq!(second["token_id"], token.as_str());

    services
        .usage
        .flush(vec![used(
            &token,
            Duration::ZERO,
            Channel::Api,
            Action::Send,
            Outcome::RateLimited,
            429,
            "203.0.113.7",
        )])
        .await
        .unwrap();
    let third = next("another new entry");
    assert_eq!(third["outcome"], "rate_limited");
    assert!(
        follower.next_line(StdDuration::from_millis(500)).is_none(),
        "each entry once"
    );

    let status = follower.kill();
    assert!(!status.success());
}

pub async fn team_tokens_carry_abilities(db: &Db) {
    let acme = setup::team(db, "Acme");
    assert_eq!(
        redact(&db.ok(&["team-token", "list"]).stdout),
        "No active team tokens in team Acme. Create one with: token-admin team-token create \
         --team [id] --name NAME --ability read:projects\n"
    );
    let ran = db.ok(&[
        "team-token",
        "create",
        "--name",
        "deploy",
        "--ability",
        "read:projects",
        "--ability",
        "write:tokens,read:team",
    ]);
    let first = ran.stdout.trim_end().to_owned();
    assert!(
        first.starts_with("lm_team_") && !first.contains('\n'),
        "{first}"
    );
    assert_eq!(ran.stderr, WARNING);
    let caller = db
        .services()
        .await
        .auth
        .authenticate_team(Some(&first), None)
        .await
        .unwrap();
    assert_eq!(caller.team_id.to_string(), acme);

    let ci = db.json(&[
        "team-token",
        "create",
        "--team",
        "Acme",
        "--name",
        "ci",
        "--ability",
        "read:tokens",
        "--expires-in",
        "7d",
    ]);
    assert_eq!(keys(&ci), with(TEAM_TOKEN_KEYS, "token"));
    assert_eq!(ci["abilities"], serde_json::json!(["read:tokens"]));
    assert_instant(&ci["expires_at"]);
    assert!(authenticates_team(db, ci["token"].as_str().unwrap()).await);

    insta::assert_snapshot!(
        "team_token_list",
        redact(&db.ok(&["team-token", "list", "--team", "Acme"]).stdout)
    );
    insta::assert_snapshot!(
        "team_token_show",
        redact(&db.ok(&["team-token", "show", "deploy"]).stdout)
    );
    let shown = db.json(&["team-token", "show", "deploy"]);
    assert_eq!(keys(&shown), TEAM_TOKEN_KEYS);
    let mut abilities: Vec<&str> = shown["abilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    abilities.sort_unstable();
    assert_eq!(abilities, ["read:projects", "read:team", "write:tokens"]);

    let beta = setup::team(db, "Beta");
    let other = db.json(&[
        "team-token",
        "create",
        "--team",
        &beta,
        "--name",
        "deploy",
        "--ability",
        "read:team",
    ]);
    let err = db.fails(&["team-token", "show", "deploy"], 1);
    assert!(
        err.starts_with("error: the team token name `deploy` is ambiguous: 2 tokens have it (")
            && err.contains(&format!("{} in team Beta (active)", id(&other)))
            && err.ends_with("pass --team or use the token id"),
        "{err}"
    );
    assert_eq!(
        db.json(&["team-token", "show", "deploy", "--team", "Acme"])["id"],
        shown["id"]
    );
    assert!(
        db.fails(&["team-token", "list"], 1)
            .starts_with("error: there are several teams; pass --team with one of: Acme (")
    );

    assert_eq!(
        db.fails(&["team-token", "regenerate", "deploy", "--team", "Acme"], 2),
        "error: regenerating a team token needs --yes when not run on a terminal"
    );
    let regenerated = db.ok(&[
        "team-token",
        "regenerate",
        "deploy",
        "--team",
        "Acme",
        "--yes",
    ]);
    let second = regenerated.stdout.trim_end().to_owned();
    assert!(second.starts_with("lm_team_") && second != first);
    assert!(!authenticates_team(db, &first).await);
    assert!(authenticates_team(db, &second).await);
    let json = db.json(&["team-token", "regenerate", &id(&shown), "--yes"]);
    assert_eq!(keys(&json), with(TEAM_TOKEN_KEYS, "token"));
    let third = json["token"].as_str().unwrap().to_owned();

    assert_eq!(
        db.fails(&["team-token", "revoke", "deploy", "--team", "Acme"], 2),
        "error: revoking a team token needs --yes when not run on a terminal"
    );
    let revoked = db.ok(&["team-token", "revoke", "deploy", "--team", "Acme", "--yes"]);
    assert_eq!(
        redact(&revoked.stdout),
        "Revoked team token deploy ([id]).\n"
    );
    assert!(!authenticates_team(db, &third).await);
    let revoked_list = db.json(&[
        "team-token",
        "list",
        "--team",
        "Acme",
        "--status",
        "revoked",
    ]);
    assert_eq!(names(&revoked_list), ["deploy"]);
    assert_eq!(
        names(&db.json(&["team-token", "list", "--team", "Acme"])),
        ["ci"]
    );
    // The other team's `deploy` is now the only live one of that name.
    assert_eq!(
        db.json(&["team-token", "show", "deploy"])["id"],
        other["id"]
    );
}

pub async fn unknown_abilities_are_rejected_with_the_valid_list(db: &Db) {
    setup::team(db, "Acme");
    let err = db.fails(
        &[
            "team-token",
            "create",
            "--name",
            "x",
            "--ability",
            "read:projects,delete:everything",
        ],
        2,
    );
    assert_eq!(
        err,
        format!(
            "error: Unknown abilities: delete:everything. Valid abilities: {}.",
            Ability::all_names().join(", ")
        )
    );
    assert_eq!(
        db.fails(&["team-token", "create", "--name", "x"], 2),
        "error: the following required arguments were not provided: --ability <ABILITY> (see \
         --help)"
    );
    assert_eq!(
        db.json(&["team-token", "list", "--status", "all"]),
        serde_json::json!([])
    );
}

pub async fn errors_are_one_line_with_an_exit_code(db: &Db) {
    let team = setup::team(db, "Acme");
    setup::project(db, &team, "Shop");
    // No backtrace, even when asked for one.
    let ran: crate::harness::Ran = db
        .cmd(&["token", "show", "nope", "-p", "Shop"])
        .env("RUST_BACKTRACE", "full")
        .output()
        .unwrap()
        .into();
    assert_eq!(ran.code, Some(1));
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(!ran.stderr.contains("Backtrace") && !ran.stderr.contains("panicked"));

    assert_eq!(
        db.fails(&["token", "frobnicate"], 2),
        "error: unrecognized subcommand 'frobnicate'; tip: a similar subcommand exists: 'rotate' (see --help)"
    );
    assert_eq!(
        db.fails(&["token", "list", "-p", "Shop", "--bogus"], 2),
        "error: unexpected argument '--bogus' found (see --help)"
    );
    let err = db.fails(
        &[
            "--database-url",
            "mysql://root:hunter2@db/x",
            "team",
            "list",
        ],
        2,
    );
    assert!(err.contains("unsupported database URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(
        db.fails(&["team", "create", ""], 2),
        "error: The name field is required."
    );
    assert_eq!(
        db.fails(&["token", "create", "-p", "Shop", "--name", "a\tb"], 2),
        "error: The name field must not contain control characters."
    );
}

/// `token rotate` prints the new value once; both values work during the overlap and `show`
/// says until when. `--allow-ip` and `token allow` set the allowlist that `show` lists.
pub async fn tokens_rotate_with_an_overlap_and_carry_an_allowlist(db: &Db) {
    let team = setup::team(db, "Acme");
    setup::project(db, &team, "Shop");
    let old = secret_of(
        &db.ok(&["token", "create", "-p", "Shop", "--name", "ci"])
            .stdout,
    );
    let ran = db.ok(&["token", "rotate", "ci", "-p", "Shop", "--overlap", "24h"]);
    let new = secret_of(&ran.stdout);
    assert_ne!(old, new);
    assert!(authenticates(db, &old).await);
    assert!(authenticates(db, &new).await);
    let shown = db.json(&["token", "show", "ci", "-p", "Shop"]);
    assert!(shown["previous_expires_at"].is_string(), "{shown}");
    assert!(
        db.ok(&["token", "show", "ci", "-p", "Shop"])
            .stdout
            .contains("previous value until:")
    );
    assert!(
        db.fails(
            &["token", "rotate", "ci", "-p", "Shop", "--overlap", "8d"],
            2
        )
        .contains("overlap")
    );
    db.ok(&["token", "regenerate", "ci", "-p", "Shop", "--yes"]);
    assert!(!authenticates(db, &old).await);
    assert!(!authenticates(db, &new).await);

    let json = db.json(&[
        "token",
        "create",
        "-p",
        "Shop",
        "--name",
        "office",
        "--allow-ip",
        "203.0.113.0/24",
        "--allow-ip",
        "2001:db8::/32",
    ]);
    assert_eq!(
        json["allowed_ips"],
        serde_json::json!(["203.0.113.0/24", "2001:db8::/32"])
    );
    assert!(!authenticates(db, json["token"].as_str().unwrap()).await);
    let shown = db.ok(&["token", "show", "office", "-p", "Shop"]).stdout;
    assert!(
        shown.contains("allowed IPs:   203.0.113.0/24, 2001:db8::/32"),
        "{shown}"
    );
    let cleared = db.json(&["token", "allow", "office", "-p", "Shop", "--any"]);
    assert_eq!(cleared["allowed_ips"], serde_json::json!([]));
    assert!(authenticates(db, json["token"].as_str().unwrap()).await);
    assert!(
        db.fails(
            &[
                "token",
                "allow",
                "office",
                "-p",
                "Shop",
                "--allow-ip",
                "nope"
            ],
            2
        )
        .contains("allow-ip.0")
    );
}

/// The one line a password-printing command writes on stdout: a generated password.
fn password_of(stdout: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "only the password on stdout, got:\n{stdout}"
    );
    assert!(
        lines[0].len() == 24 && lines[0].bytes().all(|b| b.is_ascii_alphanumeric()),
        "a generated password: {}",
        lines[0]
    );
    lines[0].to_owned()
}

/// Whether `email` logs in to the dashboard with `password`.
async fn logs_in(db: &Db, email: &str, password: &str) -> bool {
    db.services()
        .await
        .accounts
        .login(email, password.to_owned(), None)
        .await
        .is_ok()
}

/// `account create` prints a generated password once, alone on stdout, or takes one from
/// standard input; `account list` shows every account with its teams; `account
/// reset-password` replaces the password and ends every session.
pub async fn accounts_are_created_listed_and_their_passwords_reset(db: &Db) {
    setup::team(db, "Acme");
    assert_eq!(
        db.ok(&["account", "list"]).stdout,
        "No accounts yet. Create one with: token-admin account create --email EMAIL --name NAME\n"
    );
    assert_eq!(db.json(&["account", "list"]), serde_json::json!([]));

    let created = db.ok(&[
        "account",
        "create",
        "--email",
        "Ada@Example.com",
        "--name",
        "Ada Lovelace",
    ]);
    let ada_password = password_of(&created.stdout);
    assert!(
        created.stderr.contains("shown only once") && created.stderr.contains("ada@example.com"),
        "{}",
        created.stderr
    );
    assert!(!created.stderr.contains(&ada_password));
    assert!(logs_in(db, "ada@example.com", &ada_password).await);
    assert!(!logs_in(db, "ada@example.com", "not the password").await);

    // A password from standard input: the account's details on stdout, and no password.
    let bob = db.ok_with_input(
        &[
            "account",
            "create",
            "--email",
            "bob@example.com",
            "--name",
            "Bob",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(
        bob.stdout
            .starts_with("email:             bob@example.com\n"),
        "{}",
        bob.stdout
    );
    assert!(!bob.stdout.contains("correct horse") && !bob.stderr.contains("correct horse"));
    assert!(logs_in(db, "bob@example.com", "correct horse battery").await);
    let cat = db.json(&[
        "account",
        "create",
        "--email",
        "cat@example.com",
        "--name",
        "Cat",
    ]);
    assert_eq!(keys(&cat), with(ACCOUNT_KEYS, "password"));
    let cat_password = cat["password"].as_str().unwrap().to_owned();
    assert!(logs_in(db, "cat@example.com", &cat_password).await);

    // Refusals: a taken email (whatever its case), a bad email, a short or multi-line
    // password, and --password-stdin with nothing to read.
    assert_eq!(
        db.fails(
            &[
                "account",
                "create",
                "--email",
                "ADA@example.com",
                "--name",
                "Ada"
            ],
            1
        ),
        "error: An account with this email already exists."
    );
    assert_eq!(
        db.fails(&["account", "create", "--email", "ada", "--name", "Ada"], 2),
        "error: The email field must be a valid email address."
    );
    let new_account = [
        "account",
        "create",
        "--email",
        "dan@example.com",
        "--name",
        "Dan",
        "--password-stdin",
    ];
    assert_eq!(
        db.fails_with_input(&new_account, "short\n", 2),
        "error: The password field must be at least 12 characters."
    );
    assert_eq!(
        db.fails_with_input(&new_account, "correct horse\nbattery staple\n", 2),
        "error: the password on standard input must be one line"
    );
    assert_eq!(
        db.fails_with_input(&new_account, "", 2),
        "error: The password field must be at least 12 characters."
    );

    let list = db.json(&["account", "list"]);
    let emails: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["ada@example.com", "bob@example.com", "cat@example.com"]
    );
    assert_eq!(keys(&list[0]), ACCOUNT_KEYS);
    assert_eq!(list[0]["display_name"], "Ada Lovelace");
    assert_instant(&list[0]["password_changed_at"]);
    db.ok(&[
        "member",
        "add",
        "--team",
        "Acme",
        "--email",
        "ada@example.com",
        "--role",
        "owner",
    ]);
    let list = db.json(&["account", "list"]);
    assert_eq!(list[0]["teams"][0]["name"], "Acme");
    assert_eq!(list[0]["teams"][0]["role"], "owner");
    assert_eq!(list[1]["teams"], serde_json::json!([]));
    insta::assert_snapshot!("account_list", redact(&db.ok(&["account", "list"]).stdout));

    // A reset: a new generated password; the old one and every session end.
    let services = db.services().await;
    let session = services
        .accounts
        .login("ada@example.com", ada_password.clone(), None)
        .await
        .unwrap();
    let reset = db.ok(&["account", "reset-password", "ADA@example.com"]);
    let new_password = password_of(&reset.stdout);
    assert_ne!(new_password, ada_password);
    assert!(
        reset
            .stderr
            .contains("Every session of ada@example.com ended."),
        "{}",
        reset.stderr
    );
    assert_eq!(
        services.accounts.resume(&session.secret).await.unwrap(),
        None
    );
    assert!(!logs_in(db, "ada@example.com", &ada_password).await);
    assert!(logs_in(db, "ada@example.com", &new_password).await);
    let reset = db.ok_with_input(
        &[
            "account",
            "reset-password",
            "bob@example.com",
            "--password-stdin",
        ],
        "another long passphrase\r\n",
    );
    assert!(reset.stdout.contains("bob@example.com"), "{}", reset.stdout);
    assert!(logs_in(db, "bob@example.com", "another long passphrase").await);
    assert_eq!(
        db.fails(&["account", "reset-password", "nobody@example.com"], 1),
        "error: no account with email nobody@example.com; `token-admin account list` shows the \
         accounts"
    );
}

/// `member add` adds an account (creating it with --name, with a password printed once);
/// `member list` shows owners first; `member role` and `member remove` change and remove
/// members, except the last owner.
pub async fn members_are_added_listed_changed_and_removed_keeping_an_owner(db: &Db) {
    let team = setup::team(db, "Acme");
    setup::team(db, "Beta");
    assert!(
        db.ok(&["member", "list", "--team", "Acme"])
            .stdout
            .starts_with("No members in team Acme."),
    );
    let add = |email: &'static str, role: &'static str| {
        vec![
            "member", "add", "--team", "Acme", "--email", email, "--role", role,
        ]
    };

    assert_eq!(
        db.fails(&add("zoe@example.com", "owner"), 1),
        "error: no account with email zoe@example.com; pass --name NAME to create it"
    );
    let mut with_name = add("zoe@example.com", "owner");
    with_name.extend(["--name", "Zoe"]);
    let added = db.ok(&with_name);
    let zoe_password = password_of(&added.stdout);
    assert!(
        added
            .stderr
            .contains("zoe@example.com is now an owner of Acme."),
        "{}",
        added.stderr
    );
    assert!(logs_in(db, "zoe@example.com", &zoe_password).await);

    db.ok_with_input(
        &[
            "account",
            "create",
            "--email",
            "amy@example.com",
            "--name",
            "Amy",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    let amy = db.json(&add("amy@example.com", "member"));
    assert_eq!(keys(&amy), MEMBER_KEYS);
    assert_eq!(
        (amy["role"].as_str(), amy["team_id"].as_str()),
        (Some("member"), Some(team.as_str()))
    );
    let mut with_json_name = vec!["--json"];
    with_json_name.extend(add("bob@example.com", "admin"));
    with_json_name.extend(["--name", "Bob"]);
    let bob: Value = serde_json::from_str(&db.ok(&with_json_name).stdout).unwrap();
    assert_eq!(keys(&bob), with(MEMBER_KEYS, "password"));
    assert!(logs_in(db, "bob@example.com", bob["password"].as_str().unwrap()).await);

    assert_eq!(
        db.fails(&add("amy@example.com", "admin"), 1),
        "error: amy@example.com is already a member of Acme; change their role with \
         `token-admin member role`"
    );
    let stdin_for_existing = [
        "member",
        "add",
        "--team",
        "Beta",
        "--email",
        "bob@example.com",
        "--role",
        "admin",
        "--password-stdin",
    ];
    let err = db.fails_with_input(&stdin_for_existing, "a long enough password\n", 1);
    assert!(err.contains("already has an account"), "{err}");
    let err = db.fails(&add("amy@example.com", "boss"), 2);
    assert!(err.contains("invalid value 'boss'"), "{err}");

    // Owners first, then by email.
    let list = db.json(&["member", "list", "--team", "Acme"]);
    let listed: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            ("zoe@example.com", "owner"),
            ("amy@example.com", "member"),
            ("bob@example.com", "admin"),
        ]
    );
    insta::assert_snapshot!(
        "member_list",
        redact(&db.ok(&["member", "list", "--team", "Acme"]).stdout)
    );
    assert_eq!(
        db.json(&["member", "list", "--team", "Beta"]),
        serde_json::json!([])
    );

    // The last owner can be neither demoted nor removed.
    let last_owner =
        "error: A team must keep at least one owner: make another member an owner first.";
    assert_eq!(
        db.fails(
            &[
                "member",
                "role",
                "--team",
                "Acme",
                "zoe@example.com",
                "admin"
            ],
            1
        ),
        last_owner
    );
    assert_eq!(
        db.fails(
            &["member", "remove", "--team", "Acme", "zoe@example.com"],
            1
        ),
        last_owner
    );
    let promoted = db.json(&[
        "member",
        "role",
        "--team",
        "Acme",
        "bob@example.com",
        "owner",
    ]);
    assert_eq!(promoted["role"], "owner");
    let demoted = db.ok(&[
        "member",
        "role",
        "--team",
        &team,
        "zoe@example.com",
        "member",
    ]);
    assert!(
        demoted.stdout.contains("role:        member"),
        "{}",
        demoted.stdout
    );
    assert_eq!(
        db.ok(&["member", "remove", "--team", "Acme", "zoe@example.com"])
            .stdout,
        format!("Removed zoe@example.com from team Acme ({team}).\n")
    );
    assert_eq!(
        db.fails(
            &["member", "remove", "--team", "Acme", "bob@example.com"],
            1
        ),
        last_owner
    );
    assert_eq!(
        db.fails(
            &["member", "remove", "--team", "Acme", "zoe@example.com"],
            1
        ),
        format!(
            "error: zoe@example.com is not a member of team Acme; `token-admin member list \
             --team {team}` shows its members"
        )
    );
    assert_eq!(
        db.fails(
            &[
                "member",
                "role",
                "--team",
                "Acme",
                "nobody@example.com",
                "admin"
            ],
            1
        ),
        "error: no account with email nobody@example.com; `token-admin account list` shows the \
         accounts"
    );
    // The account stays when its membership goes.
    assert!(logs_in(db, "zoe@example.com", &zoe_password).await);
    let remaining: Vec<String> = db
        .json(&["member", "list", "--team", "Acme"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["email"].as_str().unwrap(),
                m["role"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        remaining,
        ["bob@example.com owner", "amy@example.com member"]
    );
}

pub async fn messages_are_listed_and_shown_with_their_delivery_state(db: &Db) {
    use lettermint_core::{
        CredentialSlot, Message, MessageContent, MessageStatus, Reply, Settle, Settlement,
        Submission, SubmissionOutcome, TokenCredential, TokenKind,
    };
    let team = setup::team(db, "Acme");
    let project = setup::project(db, &team, "Shop");
    let value = setup::token(db, &project, "main")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let services = db.services().await;
    let caller = services
        .auth
        .authenticate_project(Some(&value), Channel::Smtp, None)
        .await
        .unwrap();
    let route = services
        .messages
        .resolve_route(caller.project_id, None)
        .await
        .unwrap();
    let id = MessageId::new();
    let credential = TokenCredential {
        token_id: caller.credential.token_id,
        digest: PlainToken::parse_kind(&value, TokenKind::Project)
            .unwrap()
            .digest(),
    };
    let outcomes = services
        .messages
        .enqueue(&[Submission {
            client_ip: None,
            credential,
            messages: vec![Message {
                id,
                project_id: caller.project_id,
                route_id: route.id,
                token_id: credential.token_id,
                via: Channel::Smtp,
                status: MessageStatus::Pending,
                envelope_from: "shop@example.com".into(),
                envelope_to: vec!["a@example.net".into(), "b@example.net".into()],
                subject: Some("Two recipients".into()),
                tag: None,
                metadata: Default::default(),
                idempotency_key: None,
                scheduled_at: None,
                created_at: now(),
                content: MessageContent::Mime(b"Subject: Two recipients\r\n\r\nhi\r\n".to_vec()),
                delivery: Default::default(),
            }],
            idempotency: None,
        }])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [SubmissionOutcome::Accepted(CredentialSlot::Current)]
    );
    let id = id.to_string();

    let shown = db.json(&["message", "show", &id, "--project", &project]);
    assert_eq!(
        (&shown["status"], &shown["attempts"], &shown["delivered_to"]),
        (
            &Value::from("pending"),
            &Value::from(0),
            &serde_json::json!([])
        )
    );

    // An attempt reached a@ while b@ was refused for now, as a worker records it.
    let store = db.store().await;
    let claims = store
        .claim_due(now(), now() + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    let retry_at = now() + Duration::minutes(10);
    let done = store
        .settle(
            &[Settle {
                message: claims[0].message.id,
                lease: claims[0].lease,
                settlement: Settlement::Deferred {
                    reply: Reply {
                        code: Some(452),
                        text: "4.2.2 mailbox full".into(),
                    },
                    retry_at,
                },
                delivered_to: Some(vec!["a@example.net".into()]),
            }],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(done, [true]);

    let shown = db.json(&["message", "show", &id, "--project", "Shop"]);
    assert_eq!(shown["status"], "deferred");
    assert_eq!(shown["attempts"], 1);
    assert_eq!(
        shown["envelope_to"],
        serde_json::json!(["a@example.net", "b@example.net"])
    );
    assert_eq!(shown["delivered_to"], serde_json::json!(["a@example.net"]));
    assert_eq!(shown["last_reply"], "452 4.2.2 mailbox full");
    assert_instant(&shown["next_attempt_at"]);
    let text = db.ok(&["message", "show", &id, "--project", "Shop"]).stdout;
    let line = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{text}"))
            .to_owned()
    };
    assert!(line("already reached").ends_with("a@example.net"), "{text}");
    assert!(
        line("last reply").ends_with("452 4.2.2 mailbox full"),
        "{text}"
    );

    let listed = db.json(&[
        "message",
        "list",
        "--project",
        "Shop",
        "--status",
        "deferred",
    ]);
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    let none = db.json(&[
        "message",
        "list",
        "--project",
        "Shop",
        "--status",
        "delivered",
    ]);
    assert_eq!(none, serde_json::json!([]));
}
