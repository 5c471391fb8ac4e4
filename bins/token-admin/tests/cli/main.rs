//! `token-admin` end to end: the compiled binary against SQLite (a file in a temporary
//! directory per test) and against a throwaway PostgreSQL (a database per test). Every scenario
//! runs on both backends and pins the same snapshots, so the output cannot differ between them.

mod harness;
mod scenarios;
mod setup;

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::harness::Db::sqlite().await;
                    crate::scenarios::$name(&db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::harness::Db::postgres().await;
                    crate::scenarios::$name(&db).await;
                }
            )+
        }
    };
}

on_both_backends!(
    tokens_rotate_with_an_overlap_and_carry_an_allowlist,
    teams_are_created_listed_shown_and_renamed,
    team_names_that_are_ambiguous_list_the_candidates,
    projects_are_created_with_a_default_route_and_an_optional_first_token,
    projects_are_listed_shown_updated_and_deleted,
    project_names_resolve_across_teams_or_fail_listing_candidates,
    a_token_is_printed_once_alone_on_stdout,
    token_list_shows_use_status_and_empty_states,
    tokens_are_shown_renamed_regenerated_and_revoked,
    token_names_shared_with_revoked_tokens_resolve_or_fail_listing_candidates,
    expiry_options_are_checked,
    token_logs_are_newest_first_and_filtered,
    token_logs_show_where_a_leaked_token_was_found,
    tokens_expiring_soon_are_listed_across_projects,
    token_logs_follow_streams_new_entries,
    team_tokens_carry_abilities,
    unknown_abilities_are_rejected_with_the_valid_list,
    errors_are_one_line_with_an_exit_code,
    accounts_are_created_listed_and_their_passwords_reset,
    members_are_added_listed_changed_and_removed_keeping_an_owner,
    messages_are_listed_and_shown_with_their_delivery_state,
);

mod sqlite_only {
    use crate::harness::Db;

    /// Read commands never create an empty database; `team create` does.
    #[tokio::test]
    async fn a_missing_database_file_says_how_to_create_one() {
        let db = Db::sqlite().await;
        let file = db.dir.path().join("lettermint.sqlite");
        for args in [
            &["team", "list"][..],
            &["project", "list"],
            &["token", "list", "--project", "Shop"],
            &["project", "create", "Shop"],
            &["team-token", "list"],
        ] {
            let err = db.fails(args, 1);
            assert_eq!(
                err,
                format!(
                    "error: no database at {}; create one with `token-admin team create NAME` \
                     (or `cargo xtask migrate`), or point --database-url / \
                     LETTERMINT_DATABASE_URL at an existing one",
                    file.display()
                )
            );
            assert!(!file.exists(), "{args:?} created the database file");
        }
        // A bad command line fails before any database is opened, let alone created.
        db.fails(
            &["team-token", "create", "--name", "x", "--ability", "nope"],
            2,
        );
        assert!(!file.exists());

        db.ok(&["team", "create", "Acme"]);
        assert!(file.exists());
        assert!(db.ok(&["team", "list"]).stdout.contains("Acme"));
    }

    /// The default database is `lettermint.sqlite` in the working directory, like the servers'.
    #[tokio::test]
    async fn the_default_database_is_the_servers_sqlite_file() {
        let db = Db::sqlite().await;
        let run = |args: &[&str]| {
            let mut cmd = db.cmd(args);
            cmd.env_remove("LETTERMINT_DATABASE_URL");
            cmd.output().expect("run")
        };
        assert!(run(&["team", "create", "Acme"]).status.success());
        assert!(db.dir.path().join("lettermint.sqlite").exists());
        let listed = run(&["--database-url", &db.url, "team", "list"]);
        assert!(String::from_utf8_lossy(&listed.stdout).contains("Acme"));
    }
}

mod help {
    use crate::harness::Db;

    const PATHS: &[&[&str]] = &[
        &[],
        &["team"],
        &["team", "create"],
        &["team", "list"],
        &["team", "show"],
        &["team", "rename"],
        &["project"],
        &["project", "create"],
        &["project", "list"],
        &["project", "show"],
        &["project", "update"],
        &["project", "delete"],
        &["token"],
        &["token", "create"],
        &["token", "list"],
        &["token", "show"],
        &["token", "rename"],
        &["token", "regenerate"],
        &["token", "revoke"],
        &["token", "logs"],
        &["team-token"],
        &["team-token", "create"],
        &["team-token", "list"],
        &["team-token", "show"],
        &["team-token", "regenerate"],
        &["team-token", "revoke"],
        &["account"],
        &["account", "create"],
        &["account", "list"],
        &["account", "reset-password"],
        &["member"],
        &["member", "add"],
        &["member", "list"],
        &["member", "role"],
        &["member", "remove"],
        &["message"],
        &["message", "list"],
        &["message", "show"],
    ];

    /// Every level has a help text that explains each argument.
    #[tokio::test]
    async fn every_level_has_help() {
        let db = Db::sqlite().await;
        for path in PATHS {
            let mut args = path.to_vec();
            args.push("--help");
            let ran = db.ok(&args);
            assert!(ran.stdout.contains("Usage: token-admin"), "{path:?}");
            // Every option and argument carries an explanation, on its line or (long help)
            // on the next.
            let lines: Vec<&str> = ran.stdout.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let line = line.trim_start();
                if line.starts_with('-') || line.starts_with('<') {
                    let same_line = line
                        .split_once("  ")
                        .is_some_and(|(_, rest)| !rest.trim().is_empty());
                    let next_line = lines.get(i + 1).is_some_and(|next| {
                        next.starts_with("          ") && !next.trim().is_empty()
                    });
                    assert!(
                        same_line || next_line,
                        "{path:?}: `{line}` has no explanation"
                    );
                }
            }
        }
        assert!(!db.dir.path().join("lettermint.sqlite").exists());
    }

    #[tokio::test]
    async fn token_create_help_is_pinned() {
        let db = Db::sqlite().await;
        insta::assert_snapshot!(
            "help_token_create",
            db.ok(&["token", "create", "--help"]).stdout
        );
    }

    /// A noun without a verb shows its help (and fails, as there was nothing to do).
    #[tokio::test]
    async fn a_noun_alone_shows_its_verbs() {
        let db = Db::sqlite().await;
        let ran: crate::harness::Ran = db.cmd(&["token"]).output().expect("run").into();
        assert_eq!(ran.code, Some(2));
        assert!(ran.stderr.contains("regenerate"), "{}", ran.stderr);
    }
}
