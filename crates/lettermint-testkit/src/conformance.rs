//! The behaviours every store must show. Each function takes a fresh, empty store; the
//! [`conformance_suite!`](crate::conformance_suite) macro turns each into a test for a given
//! store. Tests go through the repository traits directly where a store rule is at stake, and
//! through [`Services`] where the rule is the pair of service and store.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use lettermint_core::Abilities;
use lettermint_core::id::{
    AccountId, AuditEntryId, LeaseId, MessageId, ProjectId, SessionId, TeamId, TokenId,
};
use lettermint_core::kind::{ForProject, ForTeam};
use lettermint_core::page::{
    Cursor, Direction, LogSortKey, MessageSortKey, PageRequest, ProjectSortKey, Sort, TokenSortKey,
};
use lettermint_core::repo::{MemberChange, NewProjectToken, TokenRepository};
use lettermint_core::usage::UsageBatch;
use lettermint_core::{
    Account, AuditAction, AuditEntry, Email, Member, PasswordHash, Role, Session, SessionSecret,
    TokenLogEntry,
};
use lettermint_core::{
    Action, Channel, Claim, CredentialSlot, Error, IpAllowlist, LogFilter, Message, MessageContent,
    MessageStatus, Name, NewProject, Outcome, PlainToken, Project, ProjectToken, ProjectUpdate,
    Reply, Route, Scope, Services, Settle, Settlement, Store, StructuredEmail, Submission,
    SubmissionOutcome, SystemClock, Team, TokenCredential, TokenKind, TokenStatusFilter,
    UsageRecord,
};
use sqlx::{AssertSqlSafe, Database, Executor, FromRow, IntoArguments, Pool};
use time::{Duration, OffsetDateTime};

/// A submission accepted under the token's current value.
const ACCEPTED: SubmissionOutcome = SubmissionOutcome::Accepted(CredentialSlot::Current);

/// A store under test, plus what only its own crate can do.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The store, empty when the fixture is new.
    fn store(&self) -> Arc<dyn Store>;
    /// Every text and binary value held in every column of every table.
    async fn dump_all_values(&self) -> Vec<Vec<u8>>;
    /// Deletes a team's row (no service deletes teams; its cascades are part of the schema).
    async fn delete_team(&self, team: TeamId);
    /// Overwrites a message's metadata with text that is not JSON, as a hand edit might.
    async fn corrupt_message(&self, message: MessageId);
    /// Makes a column of a message's row undecodable as its type (a value out of range, or of
    /// another type), as a hand edit can.
    async fn corrupt_message_beyond_decoding(&self, message: MessageId);
}

/// Every value the statements `selects` return, for [`Fixture::dump_all_values`]: each
/// statement selects one column of bytes.
pub async fn collect_values<DB: Database>(
    pool: &Pool<DB>,
    selects: impl IntoIterator<Item = String>,
) -> Vec<Vec<u8>>
where
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> (Vec<u8>,): FromRow<'r, DB::Row>,
{
    let mut values = Vec::new();
    for sql in selects {
        let column: Vec<Vec<u8>> = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap();
        values.extend(column);
    }
    values
}

/// Generates one `#[tokio::test]` per conformance behaviour, each with a fresh fixture from
/// `$fixture` (an async fn returning a [`Fixture`]).
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:path) => {
        $crate::conformance_suite!(@tests $fixture;
            teams_round_trip,
            project_is_created_with_its_default_route_and_first_token,
            project_creation_is_all_or_nothing,
            projects_page_sort_and_search,
            projects_page_with_first_active_token,
            project_update_and_delete_cascade,
            project_tokens_round_trip_and_lookup_by_digest,
            token_names_are_unique_among_non_revoked_tokens,
            token_status_filters,
            token_lists_page_in_every_sort_order,
            regenerate_and_revoke_are_atomic_and_final,
            team_tokens_round_trip_with_abilities,
            usage_moves_last_use_forward_and_logs_filter_and_page,
            old_logs_are_pruned,
            accepted_messages_are_stored_complete,
            enqueue_refuses_inactive_credentials_and_stores_nothing_of_them,
            revocation_orders_against_concurrent_enqueues,
            idempotency_keys_are_claimed_with_the_messages,
            services_authenticate_and_refuse_after_revoke_and_regenerate,
            leak_reports_revoke_both_kinds_and_log_where_they_leaked,
            expiring_tokens_are_listed_and_counted_per_kind,
            tenant_scopes_hide_other_teams,
            hostile_input_is_stored_verbatim_or_refused_cleanly,
            the_database_never_contains_a_secret,
            due_messages_are_claimed_under_a_lease_oldest_first,
            concurrent_claims_take_disjoint_messages,
            claims_count_interrupted_attempts_and_attempts_alone,
            recipients_reached_are_kept_across_attempts,
            a_lease_ended_early_is_taken_over_at_once,
            settlements_need_the_current_lease_and_log_the_outcome,
            one_settlement_logs_an_entry_per_token_and_outcome,
            a_settlement_of_several_attempts_answers_each_on_its_own,
            a_settlement_of_hundreds_of_attempts_records_each,
            an_unreadable_message_fails_alone_and_its_batch_is_claimed,
            messages_page_newest_first_and_filter_by_status,
            rotation_keeps_both_values_during_the_overlap_only,
            regenerate_and_revoke_end_the_overlap_at_once,
            allowlists_round_trip_and_gate_the_send_path,
            accounts_round_trip_and_a_password_change_ends_other_sessions,
            members_round_trip_owners_first,
            the_last_owner_cannot_be_demoted_or_removed,
            concurrent_demotions_of_the_last_two_owners_leave_one,
            deleting_a_team_cascades_its_members,
            sessions_round_trip_touch_delete_and_prune,
            login_failures_count_within_a_window_clear_and_prune,
            audit_entries_page_newest_first_and_log_token_changes,
            console_changes_are_audited_and_logged_on_the_token,
        );
    };
    (@tests $fixture:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture().await;
                $crate::conformance::$name(&fixture).await;
            }
        )+
    };
}

fn now() -> OffsetDateTime {
    lettermint_core::clock::truncate_to_micros(OffsetDateTime::now_utc())
}

fn name(s: &str) -> Name {
    Name::parse("name", s).unwrap()
}

async fn team(store: &dyn Store, n: &str) -> Team {
    let at = now();
    let team = Team {
        id: TeamId::new(),
        name: name(n),
        created_at: at,
        updated_at: at,
    };
    store.insert_team(&team).await.unwrap();
    team
}

async fn project(store: &dyn Store, team: TeamId, n: &str) -> Project {
    let at = now();
    let project = Project {
        id: ProjectId::new(),
        team_id: team,
        name: name(n),
        smtp_enabled: true,
        created_at: at,
        updated_at: at,
    };
    store
        .insert_project(&project, &Route::default_for(project.id, at), None)
        .await
        .unwrap();
    project
}

fn new_token(project: ProjectId, n: &str, at: OffsetDateTime) -> (ProjectToken, PlainToken) {
    let secret = PlainToken::mint(TokenKind::Project).unwrap();
    let token = ProjectToken {
        id: TokenId::new(),
        owner: project,
        name: name(n),
        hint: secret.hint(),
        abilities: (),
        created_at: at,
        updated_at: at,
        last_use: Default::default(),
        expires_at: None,
        revoked_at: None,
        previous_expires_at: None,
        allowed_ips: IpAllowlist::any(),
    };
    (token, secret)
}

async fn token(store: &dyn Store, project: ProjectId, n: &str) -> (ProjectToken, PlainToken) {
    let (token, secret) = new_token(project, n, now());
    project_tokens(store)
        .insert_token(&token, &secret.digest())
        .await
        .unwrap();
    (token, secret)
}

/// Team token abilities from their names.
fn abilities(names: &[&str]) -> Abilities {
    Abilities::parse("abilities", names).unwrap()
}

/// The store as a repository of project tokens.
fn project_tokens(store: &dyn Store) -> &dyn TokenRepository<ForProject> {
    store
}

/// The store as a repository of team tokens.
fn team_tokens(store: &dyn Store) -> &dyn TokenRepository<ForTeam> {
    store
}

fn sort<K>(key: K, direction: Direction) -> Sort<K> {
    Sort { key, direction }
}

fn message(project: &Project, route: &Route, token: TokenId, content: MessageContent) -> Message {
    Message {
        id: MessageId::new(),
        project_id: project.id,
        route_id: route.id,
        token_id: token,
        via: Channel::Api,
        status: MessageStatus::Pending,
        envelope_from: "Shop <shop@example.com>".into(),
        envelope_to: vec!["a@example.com".into(), "b@example.com".into()],
        subject: Some("Hello".into()),
        tag: Some("welcome mail".into()),
        metadata: BTreeMap::from([("order".to_owned(), "42".to_owned())]),
        idempotency_key: Some("key-1".into()),
        scheduled_at: None,
        created_at: now(),
        content,
        delivery: Default::default(),
    }
}

fn structured() -> MessageContent {
    MessageContent::Structured(Box::new(StructuredEmail {
        from: "Shop <shop@example.com>".into(),
        to: vec!["a@example.com".into()],
        cc: vec!["b@example.com".into()],
        subject: "Hello".into(),
        html: Some("<p>Hi</p>".into()),
        text: Some("Hi there".into()),
        headers: BTreeMap::from([("X-Campaign".to_owned(), "spring".to_owned())]),
        ..Default::default()
    }))
}

fn credential(token: &ProjectToken, secret: &PlainToken) -> TokenCredential {
    TokenCredential {
        token_id: token.id,
        digest: secret.digest(),
    }
}

fn usage(token: TokenId, at: OffsetDateTime, outcome: Outcome, ip: &str) -> UsageRecord {
    UsageRecord {
        credential: None,
        token_id: token,
        at,
        ip: Some(ip.parse().unwrap()),
        via: Channel::Api,
        action: Action::Send,
        outcome,
        status: 202,
        message_ids: vec![MessageId::new()],
        user_agent: Some("lettermint-python/1.0".into()),
    }
}

/// Teams: insert, get, list by name, rename, count projects.
pub async fn teams_round_trip(f: &dyn Fixture) {
    let store = f.store();
    let b = team(&*store, "Beta").await;
    let a = team(&*store, "Alpha").await;
    assert_eq!(store.get_team(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_team(TeamId::new()).await.unwrap(), None);
    let names: Vec<_> = store
        .list_teams()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec![name("Alpha"), name("Beta")]);
    let later = now() + Duration::seconds(1);
    assert!(
        store
            .rename_team(a.id, &name("Aleph"), later)
            .await
            .unwrap()
    );
    let renamed = store.get_team(a.id).await.unwrap().unwrap();
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.updated_at,
            renamed.created_at
        ),
        ("Aleph", later, a.created_at)
    );
    assert!(
        !store
            .rename_team(TeamId::new(), &name("x"), later)
            .await
            .unwrap()
    );
    project(&*store, b.id, "one").await;
    project(&*store, b.id, "two").await;
    assert_eq!(store.count_projects(b.id).await.unwrap(), 2);
    assert_eq!(store.count_projects(a.id).await.unwrap(), 0);
}

/// A project comes with its default route and, if given, its first token.
pub async fn project_is_created_with_its_default_route_and_first_token(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let at = now();
    let p = Project {
        id: ProjectId::new(),
        team_id: t.id,
        name: name("Shop"),
        smtp_enabled: false,
        created_at: at,
        updated_at: at,
    };
    let route = Route::default_for(p.id, at);
    let (first, secret) = new_token(p.id, "first", at);
    store
        .insert_project(
            &p,
            &route,
            Some(NewProjectToken {
                token: first.clone(),
                digest: secret.digest(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(store.get_project(p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(
        store.get_default_route(p.id).await.unwrap(),
        Some(route.clone())
    );
    assert_eq!(
        store.get_route_by_slug(p.id, "default").await.unwrap(),
        Some(route.clone())
    );
    assert_eq!(
        store.get_route_by_slug(p.id, "missing").await.unwrap(),
        None
    );
    assert_eq!(store.list_routes(p.id).await.unwrap(), vec![route]);
    let grant = project_tokens(&*store)
        .find_token_by_digest(&secret.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.token, first);
    assert_eq!((grant.team_id, grant.smtp_enabled), (t.id, false));
}

/// If the first token cannot be stored, neither is the project.
pub async fn project_creation_is_all_or_nothing(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p1 = project(&*store, t.id, "one").await;
    let (_, secret) = token(&*store, p1.id, "taken").await;
    let at = now();
    let p2 = Project {
        id: ProjectId::new(),
        name: name("two"),
        ..p1.clone()
    };
    let (dup, _) = new_token(p2.id, "dup", at);
    let err = store
        .insert_project(
            &p2,
            &Route::default_for(p2.id, at),
            Some(NewProjectToken {
                token: dup,
                digest: secret.digest(),
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(store.get_project(p2.id).await.unwrap(), None);
    assert_eq!(store.get_default_route(p2.id).await.unwrap(), None);
    // A project of a team that does not exist is refused.
    let orphan = Project {
        id: ProjectId::new(),
        team_id: TeamId::new(),
        ..p1
    };
    let err = store
        .insert_project(&orphan, &Route::default_for(orphan.id, at), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// Project lists: keyset pages in both directions, by name and by time, with search.
pub async fn projects_page_sort_and_search(f: &dyn Fixture) {
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = team(&*store, "Acme").await;
    let other = team(&*store, "Other").await;
    project(&*store, other.id, "alpha elsewhere").await;
    let names = ["delta", "Alpha", "charlie", "bravo", "echo", "alphabet"];
    for n in names {
        project(&*store, t.id, n).await;
    }
    // By name ascending, two per page, forward to the end and back.
    let mut request = PageRequest::first(2, sort(ProjectSortKey::Name, Direction::Ascending));
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    loop {
        let page = services
            .projects
            .list(Scope::Team(t.id), t.id, None, &request)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|p| p.name.as_str().to_owned()));
        pages.push(page.clone());
        match page.next_cursor {
            Some(c) => request.cursor = Some(c),
            None => break,
        }
    }
    let mut expected: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(pages.len(), 3);
    request.cursor = pages[2].prev_cursor;
    let back = services
        .projects
        .list(Scope::Team(t.id), t.id, None, &request)
        .await
        .unwrap();
    assert_eq!(back.items, pages[1].items);

    // Newest first by default ordering of the API.
    let newest = PageRequest::first(100, sort(ProjectSortKey::CreatedAt, Direction::Descending));
    let page = services
        .projects
        .list(Scope::Team(t.id), t.id, None, &newest)
        .await
        .unwrap();
    let order: Vec<_> = page.items.iter().map(|p| p.name.as_str()).collect();
    let mut reversed = names.to_vec();
    reversed.reverse();
    assert_eq!(order, reversed);
    assert!(page.next_cursor.is_none() && page.prev_cursor.is_none());

    // Search is a case-insensitive substring match within the team.
    let found = services
        .projects
        .list(Scope::Team(t.id), t.id, Some("ALPHA"), &newest)
        .await
        .unwrap();
    let mut found: Vec<_> = found
        .items
        .iter()
        .map(|p| p.name.as_str().to_owned())
        .collect();
    found.sort();
    assert_eq!(found, vec!["Alpha", "alphabet"]);
    // Wildcard characters are literal.
    let none = services
        .projects
        .list(Scope::Team(t.id), t.id, Some("%"), &newest)
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

/// A page of projects, each with its first active token (oldest by creation, ties by id),
/// read in one query: revoked and expired tokens are skipped, pagination and search intact.
pub async fn projects_page_with_first_active_token(f: &dyn Fixture) {
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = team(&*store, "Acme").await;
    let other = team(&*store, "Other").await;
    let elsewhere = project(&*store, other.id, "alpha elsewhere").await;
    token(&*store, elsewhere.id, "Theirs").await;
    let at = now();
    let insert = |token: ProjectToken, secret: PlainToken| {
        let store = store.clone();
        async move {
            project_tokens(&*store)
                .insert_token(&token, &secret.digest())
                .await
                .unwrap();
            token
        }
    };

    // No token at all.
    let none = project(&*store, t.id, "alpha none").await;
    // One token.
    let one = project(&*store, t.id, "bravo one").await;
    let (only, secret) = new_token(one.id, "Only", at - Duration::hours(1));
    let only = insert(only, secret).await;
    // Several: the oldest is revoked, the next expired; two active ones share a creation
    // instant (the lower id wins), and a newer active one follows.
    let several = project(&*store, t.id, "charlie several").await;
    let (mut revoked, secret) = new_token(several.id, "Revoked", at - Duration::hours(5));
    revoked.revoked_at = Some(at - Duration::hours(4));
    insert(revoked, secret).await;
    let (mut expired, secret) = new_token(several.id, "Expired", at - Duration::hours(4));
    expired.expires_at = Some(at - Duration::minutes(1));
    insert(expired, secret).await;
    let (tied_a, secret_a) = new_token(several.id, "Tied A", at - Duration::hours(3));
    let (tied_b, secret_b) = new_token(several.id, "Tied B", at - Duration::hours(3));
    let (first, second) = if tied_a.id.as_uuid() < tied_b.id.as_uuid() {
        ((tied_a, secret_a), (tied_b, secret_b))
    } else {
        ((tied_b, secret_b), (tied_a, secret_a))
    };
    // Inserted in reverse id order, so that insertion order cannot pass for the tie-break.
    insert(second.0, second.1).await;
    let expected_first = insert(first.0, first.1).await;
    let (mut later, secret) = new_token(several.id, "Later", at - Duration::hours(2));
    later.expires_at = Some(at + Duration::days(1));
    insert(later, secret).await;
    // Only inactive tokens: a revoked and an expired one.
    let inactive = project(&*store, t.id, "delta inactive").await;
    let (mut gone, secret) = new_token(inactive.id, "Gone", at - Duration::hours(2));
    gone.revoked_at = Some(at - Duration::hours(1));
    insert(gone, secret).await;
    let (mut stale, secret) = new_token(inactive.id, "Stale", at - Duration::hours(1));
    stale.expires_at = Some(at - Duration::seconds(1));
    insert(stale, secret).await;
    let (mut tail, secret) = new_token(inactive.id, "Tail", at);
    tail.revoked_at = Some(at);
    insert(tail, secret).await;

    let expected: Vec<(Project, Option<ProjectToken>)> = vec![
        (none.clone(), None),
        (one.clone(), Some(only)),
        (several.clone(), Some(expected_first)),
        (inactive.clone(), None),
    ];

    // By name ascending, three per page, forward to the end and back: the same pages as the
    // plain project list, each project with the token `first_active` names.
    let mut request = PageRequest::first(3, sort(ProjectSortKey::Name, Direction::Ascending));
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    loop {
        let page = services
            .projects
            .list_with_first_token(Scope::Team(t.id), t.id, None, &request)
            .await
            .unwrap();
        let plain = services
            .projects
            .list(Scope::Team(t.id), t.id, None, &request)
            .await
            .unwrap();
        let projects: Vec<Project> = page.items.iter().map(|p| p.project.clone()).collect();
        assert_eq!(projects, plain.items);
        assert_eq!(page.next_cursor, plain.next_cursor);
        assert_eq!(page.prev_cursor, plain.prev_cursor);
        for item in &page.items {
            let first = services
                .project_tokens
                .first_active(Scope::Team(t.id), item.project.id)
                .await
                .unwrap();
            assert_eq!(item.first_token, first, "{}", item.project.name.as_str());
        }
        seen.extend(
            page.items
                .iter()
                .map(|p| (p.project.clone(), p.first_token.clone())),
        );
        pages.push(page.clone());
        match page.next_cursor {
            Some(c) => request.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages.len(), 2);
    request.cursor = pages[1].prev_cursor;
    let back = services
        .projects
        .list_with_first_token(Scope::Team(t.id), t.id, None, &request)
        .await
        .unwrap();
    assert_eq!(back.items, pages[0].items);

    // Newest first, and searched: the team's own projects only.
    let newest = PageRequest::first(100, sort(ProjectSortKey::CreatedAt, Direction::Descending));
    let page = services
        .projects
        .list_with_first_token(Scope::Team(t.id), t.id, None, &newest)
        .await
        .unwrap();
    let order: Vec<_> = page
        .items
        .iter()
        .map(|p| (p.project.clone(), p.first_token.clone()))
        .collect();
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(order, reversed);
    let found = services
        .projects
        .list_with_first_token(Scope::Team(t.id), t.id, Some("ALPHA"), &newest)
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].project, none);
    assert_eq!(found.items[0].first_token, None);

    // Another team's page is out of scope.
    let err = services
        .projects
        .list_with_first_token(Scope::Team(other.id), t.id, None, &newest)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// Updates change name and SMTP; deletes take routes, tokens, logs and messages (with their
/// delivery state) along.
pub async fn project_update_and_delete_cascade(f: &dyn Fixture) {
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let updated = services
        .projects
        .update(
            Scope::Operator,
            p.id,
            ProjectUpdate {
                name: Some(" Store ".into()),
                smtp_enabled: Some(false),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_project(p.id).await.unwrap(),
        Some(updated.clone())
    );
    assert_eq!(
        (updated.name.as_str(), updated.smtp_enabled),
        ("Store", false)
    );

    let (tok, secret) = token(&*store, p.id, "main").await;
    store
        .record_usage(&UsageBatch::from_records(vec![usage(
            tok.id,
            now(),
            Outcome::Accepted,
            "10.0.0.1",
        )]))
        .await
        .unwrap();
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let m = message(&updated, &route, tok.id, structured());
    let outcome = store
        .enqueue(
            &[Submission {
                client_ip: None,
                credential: credential(&tok, &secret),
                messages: vec![m.clone()],
                idempotency: None,
            }],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, vec![ACCEPTED]);
    // An attempt deferred with a reply found nowhere else, so that the dump below can tell
    // whether the message's delivery state outlived it.
    let claim = store
        .claim_due(now(), now() + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(claim.len(), 1);
    let orphan_mark = "4.7.0 deferred before the project went";
    let settled = store
        .settle(
            &[Settle {
                message: m.id,
                lease: claim[0].lease,
                settlement: Settlement::Deferred {
                    reply: Reply {
                        code: Some(451),
                        text: orphan_mark.into(),
                    },
                    retry_at: now(),
                },
                delivered_to: None,
            }],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(settled, vec![true]);

    services
        .projects
        .delete(Scope::Operator, p.id)
        .await
        .unwrap();
    assert!(
        !f.dump_all_values().await.iter().any(|v| v
            .windows(orphan_mark.len())
            .any(|w| w == orphan_mark.as_bytes())),
        "the deleted message's delivery state is still stored"
    );
    assert!(
        store
            .claim_due(now() + Duration::hours(1), now() + Duration::hours(2), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.get_project(p.id).await.unwrap(), None);
    assert_eq!(store.get_default_route(p.id).await.unwrap(), None);
    assert_eq!(
        project_tokens(&*store).get_token(tok.id).await.unwrap(),
        None
    );
    assert_eq!(
        project_tokens(&*store)
            .find_token_by_digest(&secret.digest())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_message(p.id, m.id).await.unwrap(), None);
    let logs = store
        .list_token_logs(
            tok.id,
            &LogFilter::default(),
            PageRequest::first(10, sort(LogSortKey::At, Direction::Descending)).keyset(),
        )
        .await
        .unwrap();
    assert!(logs.is_empty());
    assert!(!store.delete_project(p.id).await.unwrap());
    assert!(!store.update_project(&updated).await.unwrap());
}

/// Tokens read back exactly; the digest finds the token with its team and SMTP flag.
pub async fn project_tokens_round_trip_and_lookup_by_digest(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let (mut tok, secret) = new_token(p.id, "checkout", now());
    tok.expires_at = Some(now() + Duration::days(30));
    project_tokens(&*store)
        .insert_token(&tok, &secret.digest())
        .await
        .unwrap();
    assert_eq!(
        project_tokens(&*store).get_token(tok.id).await.unwrap(),
        Some(tok.clone())
    );
    let grant = project_tokens(&*store)
        .find_token_by_digest(&secret.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (grant.token, grant.team_id, grant.smtp_enabled),
        (tok.clone(), t.id, true)
    );
    let stranger = PlainToken::mint(TokenKind::Project).unwrap();
    assert_eq!(
        project_tokens(&*store)
            .find_token_by_digest(&stranger.digest())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        project_tokens(&*store)
            .get_token(TokenId::new())
            .await
            .unwrap(),
        None
    );
    // A project token's id is not a team token.
    assert_eq!(team_tokens(&*store).get_token(tok.id).await.unwrap(), None);
}

/// Names clash only with tokens that are not revoked; renames obey the same rule.
pub async fn token_names_are_unique_among_non_revoked_tokens(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let q = project(&*store, t.id, "Blog").await;
    let (first, _) = token(&*store, p.id, "main").await;
    let (dup, dup_secret) = new_token(p.id, "main", now());
    let err = project_tokens(&*store)
        .insert_token(&dup, &dup_secret.digest())
        .await
        .unwrap_err();
    let Error::Conflict { message } = err else {
        panic!("expected a conflict, got {err:?}")
    };
    assert!(message.contains("name"), "{message}");
    // Another project may use the name.
    token(&*store, q.id, "main").await;
    // A second token, then a rename onto the taken name.
    let (second, _) = token(&*store, p.id, "backup").await;
    let err = project_tokens(&*store)
        .rename_token(second.id, &name("main"), now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    // Once the first is revoked, the name is free again.
    assert!(
        project_tokens(&*store)
            .revoke_token(first.id, now())
            .await
            .unwrap()
    );
    assert!(
        project_tokens(&*store)
            .rename_token(second.id, &name("main"), now())
            .await
            .unwrap()
    );
    assert_eq!(
        project_tokens(&*store)
            .get_token(second.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        name("main")
    );
}

/// Status filters: active, revoked, expired, all, relative to "now".
pub async fn token_status_filters(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let at = now();
    token(&*store, p.id, "active").await;
    let (mut expiring, s) = new_token(p.id, "expiring", at);
    expiring.expires_at = Some(at + Duration::hours(1));
    project_tokens(&*store)
        .insert_token(&expiring, &s.digest())
        .await
        .unwrap();
    let (revoked, _) = token(&*store, p.id, "revoked").await;
    project_tokens(&*store)
        .revoke_token(revoked.id, at)
        .await
        .unwrap();
    let list = |status, at| {
        let store = store.clone();
        async move {
            let keyset =
                PageRequest::first(100, sort(TokenSortKey::Name, Direction::Ascending)).keyset();
            let rows = project_tokens(&*store)
                .list_tokens(p.id, status, at, keyset)
                .await
                .unwrap();
            rows.into_iter()
                .map(|t| t.name.as_str().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(TokenStatusFilter::Active, at).await,
        vec!["active", "expiring"]
    );
    assert_eq!(
        list(TokenStatusFilter::Expired, at).await,
        Vec::<String>::new()
    );
    assert_eq!(list(TokenStatusFilter::Revoked, at).await, vec!["revoked"]);
    assert_eq!(
        list(TokenStatusFilter::All, at).await,
        vec!["active", "expiring", "revoked"]
    );
    let later = at + Duration::hours(2);
    assert_eq!(list(TokenStatusFilter::Active, later).await, vec!["active"]);
    assert_eq!(
        list(TokenStatusFilter::Expired, later).await,
        vec!["expiring"]
    );
}

/// Token pages in every sort order visit every token once.
pub async fn token_lists_page_in_every_sort_order(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let mut ids = Vec::new();
    for (i, n) in ["e", "b", "d", "a", "c"].iter().enumerate() {
        let (tok, _) = token(&*store, p.id, n).await;
        if i % 2 == 0 {
            let at = now() + Duration::seconds(i as i64);
            store
                .record_usage(&UsageBatch::from_records(vec![usage(
                    tok.id,
                    at,
                    Outcome::Accepted,
                    "10.0.0.1",
                )]))
                .await
                .unwrap();
        }
        ids.push(tok.id);
    }
    for key in [
        TokenSortKey::Name,
        TokenSortKey::CreatedAt,
        TokenSortKey::UpdatedAt,
        TokenSortKey::LastUsedAt,
    ] {
        for direction in [Direction::Ascending, Direction::Descending] {
            let full = project_tokens(&*store)
                .list_tokens(
                    p.id,
                    TokenStatusFilter::All,
                    now(),
                    PageRequest::first(100, sort(key, direction)).keyset(),
                )
                .await
                .unwrap();
            assert_eq!(full.len(), 5);
            let mut request = PageRequest::first(2, sort(key, direction));
            let mut walked = Vec::new();
            loop {
                let rows = project_tokens(&*store)
                    .list_tokens(p.id, TokenStatusFilter::All, now(), request.keyset())
                    .await
                    .unwrap();
                let page = request.page(rows, |t| t.id.as_uuid());
                walked.extend(page.items.iter().map(|t| t.id));
                match page.next_cursor {
                    Some(c) => request.cursor = Some(c),
                    None => break,
                }
            }
            let expected: Vec<_> = full.iter().map(|t| t.id).collect();
            assert_eq!(walked, expected, "{key:?} {direction:?}");
        }
    }
    let by_name = project_tokens(&*store)
        .list_tokens(
            p.id,
            TokenStatusFilter::All,
            now(),
            PageRequest::first(100, sort(TokenSortKey::Name, Direction::Ascending)).keyset(),
        )
        .await
        .unwrap();
    let names: Vec<_> = by_name.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    // A cursor from another table matches nothing rather than failing.
    let stray = PageRequest {
        cursor: Some(Cursor::After(uuid::Uuid::now_v7())),
        ..PageRequest::first(2, sort(TokenSortKey::Name, Direction::Ascending))
    };
    assert!(
        project_tokens(&*store)
            .list_tokens(p.id, TokenStatusFilter::All, now(), stray.keyset())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Regenerating swaps the digest in one step; revoked tokens cannot be renamed, regenerated or
/// revoked again.
pub async fn regenerate_and_revoke_are_atomic_and_final(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let (tok, old) = token(&*store, p.id, "main").await;
    let new = PlainToken::mint(TokenKind::Project).unwrap();
    let later = now() + Duration::seconds(5);
    assert!(
        project_tokens(&*store)
            .replace_token_secret(tok.id, &new.digest(), &new.hint(), later)
            .await
            .unwrap()
    );
    assert_eq!(
        project_tokens(&*store)
            .find_token_by_digest(&old.digest())
            .await
            .unwrap(),
        None
    );
    let grant = project_tokens(&*store)
        .find_token_by_digest(&new.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            grant.token.id,
            grant.token.hint.clone(),
            grant.token.updated_at
        ),
        (tok.id, new.hint(), later)
    );
    assert_eq!(grant.token.created_at, tok.created_at);

    let revoked_at = now() + Duration::seconds(6);
    assert!(
        project_tokens(&*store)
            .revoke_token(tok.id, revoked_at)
            .await
            .unwrap()
    );
    assert!(
        !project_tokens(&*store)
            .revoke_token(tok.id, now())
            .await
            .unwrap()
    );
    let stored = project_tokens(&*store)
        .get_token(tok.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revoked_at, Some(revoked_at));
    let newer = PlainToken::mint(TokenKind::Project).unwrap();
    assert!(
        !project_tokens(&*store)
            .replace_token_secret(tok.id, &newer.digest(), &newer.hint(), now())
            .await
            .unwrap()
    );
    assert!(
        !project_tokens(&*store)
            .rename_token(tok.id, &name("other"), now())
            .await
            .unwrap()
    );
    assert_eq!(
        project_tokens(&*store)
            .find_token_by_digest(&newer.digest())
            .await
            .unwrap(),
        None
    );
    assert!(
        !project_tokens(&*store)
            .revoke_token(TokenId::new(), now())
            .await
            .unwrap()
    );
}

/// Team tokens: abilities, lookup, names, regenerate, revoke.
pub async fn team_tokens_round_trip_with_abilities(f: &dyn Fixture) {
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = team(&*store, "Acme").await;
    let issued = services
        .team_tokens
        .create(
            Scope::Operator,
            t.id,
            "deploy",
            abilities(&["read:projects", "write:tokens"]),
            None,
        )
        .await
        .unwrap();
    let stored = team_tokens(&*store)
        .get_token(issued.token.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, issued.token);
    assert_eq!(
        stored.abilities.to_strings(),
        vec!["read:projects", "write:tokens"]
    );
    let found = team_tokens(&*store)
        .find_token_by_digest(&issued.secret.digest())
        .await
        .unwrap();
    assert_eq!(
        found.map(|g| (g.token, g.slot)),
        Some((issued.token.clone(), CredentialSlot::Current))
    );
    let err = services
        .team_tokens
        .create(
            Scope::Operator,
            t.id,
            "deploy",
            abilities(&["read:team"]),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let renamed = services
        .team_tokens
        .rename(Scope::Operator, None, issued.token.id, "ci")
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "ci");
    let again = services
        .team_tokens
        .regenerate(Scope::Operator, None, issued.token.id)
        .await
        .unwrap();
    assert_eq!(
        team_tokens(&*store)
            .find_token_by_digest(&issued.secret.digest())
            .await
            .unwrap(),
        None
    );
    assert_eq!(again.token.abilities, issued.token.abilities);
    let page = services
        .team_tokens
        .list(
            Scope::Operator,
            t.id,
            TokenStatusFilter::Active,
            &PageRequest::first(10, sort(TokenSortKey::CreatedAt, Direction::Descending)),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    services
        .team_tokens
        .revoke(Scope::Operator, None, issued.token.id)
        .await
        .unwrap();
    let revoked = team_tokens(&*store)
        .list_tokens(
            t.id,
            TokenStatusFilter::Revoked,
            now(),
            PageRequest::first(10, sort(TokenSortKey::Name, Direction::Ascending)).keyset(),
        )
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].revoked_at.is_some());
}

/// Usage moves "last used" forward only; logs list newest first, filter and page.
pub async fn usage_moves_last_use_forward_and_logs_filter_and_page(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let (tok, _) = token(&*store, p.id, "main").await;
    let base = now();
    let batch = UsageBatch::from_records(vec![
        usage(
            tok.id,
            base + Duration::seconds(2),
            Outcome::Accepted,
            "192.0.2.2",
        ),
        usage(
            tok.id,
            base + Duration::seconds(1),
            Outcome::RejectedRevoked,
            "192.0.2.1",
        ),
        usage(
            tok.id,
            base + Duration::seconds(3),
            Outcome::Accepted,
            "2001:db8::3",
        ),
    ]);
    store.record_usage(&batch).await.unwrap();
    let stored = project_tokens(&*store)
        .get_token(tok.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_use.at, Some(base + Duration::seconds(3)));
    assert_eq!(stored.last_use.ip, Some("2001:db8::3".parse().unwrap()));
    assert_eq!(stored.last_use.via, Some(Channel::Api));
    assert_eq!(stored.updated_at, tok.updated_at, "use is not a change");
    // An older batch flushed late does not move it back.
    store
        .record_usage(&UsageBatch::from_records(vec![usage(
            tok.id,
            base,
            Outcome::Accepted,
            "192.0.2.9",
        )]))
        .await
        .unwrap();
    let stored = project_tokens(&*store)
        .get_token(tok.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_use.at, Some(base + Duration::seconds(3)));

    let newest = PageRequest::first(2, sort(LogSortKey::At, Direction::Descending));
    let rows = store
        .list_token_logs(tok.id, &LogFilter::default(), newest.keyset())
        .await
        .unwrap();
    let page = newest.page(rows, |e| e.id.as_uuid());
    let ats: Vec<_> = page.items.iter().map(|e| e.at).collect();
    assert_eq!(
        ats,
        vec![base + Duration::seconds(3), base + Duration::seconds(2)]
    );
    assert_eq!(page.items[0], batch.entries[2]);
    let next = PageRequest {
        cursor: page.next_cursor,
        ..newest
    };
    let rows = store
        .list_token_logs(tok.id, &LogFilter::default(), next.keyset())
        .await
        .unwrap();
    let page2 = next.page(rows, |e| e.id.as_uuid());
    assert_eq!(
        page2.items.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![base + Duration::seconds(1), base]
    );
    assert!(page2.next_cursor.is_none());

    let rejected = LogFilter {
        outcome: Some(Outcome::RejectedRevoked),
        ..Default::default()
    };
    let rows = store
        .list_token_logs(tok.id, &rejected, newest.keyset())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].ip, Some("192.0.2.1".parse().unwrap()));
    let window = LogFilter {
        from: Some(base + Duration::seconds(1)),
        to: Some(base + Duration::seconds(2)),
        outcome: None,
        action: None,
    };
    let rows = store
        .list_token_logs(
            tok.id,
            &window,
            PageRequest::first(10, sort(LogSortKey::At, Direction::Descending)).keyset(),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let none = store
        .list_token_logs(TokenId::new(), &LogFilter::default(), newest.keyset())
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// Pruning deletes entries older than the cut-off and nothing else.
pub async fn old_logs_are_pruned(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let (tok, _) = token(&*store, p.id, "main").await;
    let at = now();
    store
        .record_usage(&UsageBatch::from_records(vec![
            usage(
                tok.id,
                at - Duration::days(40),
                Outcome::Accepted,
                "10.0.0.1",
            ),
            usage(
                tok.id,
                at - Duration::days(31),
                Outcome::Accepted,
                "10.0.0.1",
            ),
            usage(
                tok.id,
                at - Duration::days(1),
                Outcome::Accepted,
                "10.0.0.1",
            ),
        ]))
        .await
        .unwrap();
    assert_eq!(
        store
            .prune_token_logs(at - Duration::days(30))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .prune_token_logs(at - Duration::days(30))
            .await
            .unwrap(),
        0
    );
    let keyset = PageRequest::first(10, sort(LogSortKey::At, Direction::Descending)).keyset();
    assert_eq!(
        store
            .list_token_logs(tok.id, &LogFilter::default(), keyset)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Accepted messages read back exactly, structured and raw MIME alike.
pub async fn accepted_messages_are_stored_complete(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let (tok, secret) = token(&*store, p.id, "main").await;
    let a = message(&p, &route, tok.id, structured());
    let mut b = message(
        &p,
        &route,
        tok.id,
        MessageContent::Mime(b"From: a@example.com\r\nSubject: x\r\n\r\nbody \xff\r\n".to_vec()),
    );
    b.via = Channel::Smtp;
    b.subject = None;
    b.tag = None;
    b.idempotency_key = None;
    b.metadata.clear();
    b.scheduled_at = Some(now() + Duration::hours(1));
    b.status = MessageStatus::Scheduled;
    let outcomes = store
        .enqueue(
            &[Submission {
                client_ip: None,
                credential: credential(&tok, &secret),
                messages: vec![a.clone(), b.clone()],
                idempotency: None,
            }],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, vec![ACCEPTED]);
    assert_eq!(
        store.get_message(p.id, a.id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.get_message(p.id, b.id).await.unwrap(), Some(b));
    // Another project cannot read it.
    let q = project(&*store, t.id, "Blog").await;
    assert_eq!(store.get_message(q.id, a.id).await.unwrap(), None);
    assert!(store.enqueue(&[], now()).await.unwrap().is_empty());
}

/// Revoked, regenerated, expired, unknown or foreign credentials store nothing; good ones in
/// the same group commit are unaffected.
pub async fn enqueue_refuses_inactive_credentials_and_stores_nothing_of_them(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let q = project(&*store, t.id, "Blog").await;
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let (good, good_secret) = token(&*store, p.id, "good").await;
    let (revoked, revoked_secret) = token(&*store, p.id, "revoked").await;
    project_tokens(&*store)
        .revoke_token(revoked.id, now())
        .await
        .unwrap();
    let (regenerated, old_secret) = token(&*store, p.id, "regenerated").await;
    let fresh = PlainToken::mint(TokenKind::Project).unwrap();
    project_tokens(&*store)
        .replace_token_secret(regenerated.id, &fresh.digest(), &fresh.hint(), now())
        .await
        .unwrap();
    let (mut expired, expired_secret) = new_token(p.id, "expired", now());
    expired.expires_at = Some(now() + Duration::milliseconds(1));
    project_tokens(&*store)
        .insert_token(&expired, &expired_secret.digest())
        .await
        .unwrap();
    let (foreign, foreign_secret) = token(&*store, q.id, "foreign").await;
    let unknown = PlainToken::mint(TokenKind::Project).unwrap();
    let unknown_id = TokenId::new();

    let one = |tok: TokenId| vec![message(&p, &route, tok, structured())];
    let submissions = vec![
        Submission {
            client_ip: None,
            credential: credential(&good, &good_secret),
            messages: one(good.id),
            idempotency: None,
        },
        Submission {
            client_ip: None,
            credential: credential(&revoked, &revoked_secret),
            messages: one(revoked.id),
            idempotency: None,
        },
        Submission {
            client_ip: None,
            credential: credential(&regenerated, &old_secret),
            messages: one(regenerated.id),
            idempotency: None,
        },
        Submission {
            client_ip: None,
            credential: credential(&expired, &expired_secret),
            messages: one(expired.id),
            idempotency: None,
        },
        // A token of project Blog submitting messages of project Shop.
        Submission {
            client_ip: None,
            credential: credential(&foreign, &foreign_secret),
            messages: one(foreign.id),
            idempotency: None,
        },
        Submission {
            client_ip: None,
            credential: TokenCredential {
                token_id: unknown_id,
                digest: unknown.digest(),
            },
            messages: one(unknown_id),
            idempotency: None,
        },
        Submission {
            client_ip: None,
            credential: credential(&good, &good_secret),
            messages: vec![
                message(&p, &route, good.id, structured()),
                message(&p, &route, good.id, structured()),
            ],
            idempotency: None,
        },
    ];
    let outcomes = store
        .enqueue(&submissions, now() + Duration::seconds(1))
        .await
        .unwrap();
    use SubmissionOutcome::TokenInactive;
    assert_eq!(
        outcomes,
        vec![
            ACCEPTED,
            TokenInactive,
            TokenInactive,
            TokenInactive,
            TokenInactive,
            TokenInactive,
            ACCEPTED
        ]
    );
    for (submission, outcome) in submissions.iter().zip(&outcomes) {
        for m in &submission.messages {
            let stored = store.get_message(p.id, m.id).await.unwrap();
            assert_eq!(
                stored.is_some(),
                *outcome == ACCEPTED,
                "{:?}",
                submission.credential
            );
        }
    }
    // With the new value the regenerated token sends again.
    let ok = store
        .enqueue(
            &[Submission {
                client_ip: None,
                credential: TokenCredential {
                    token_id: regenerated.id,
                    digest: fresh.digest(),
                },
                messages: one(regenerated.id),
                idempotency: None,
            }],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(ok, vec![ACCEPTED]);
}

/// Enqueues racing a revoke: after `revoke_project_token` returns, no enqueue is accepted, and
/// every accepted message is stored.
pub async fn revocation_orders_against_concurrent_enqueues(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let (tok, secret) = token(&*store, p.id, "main").await;
    let revoked = Arc::new(tokio::sync::RwLock::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let (p, route, tok, secret, revoked) = (
            p.clone(),
            route.clone(),
            tok.clone(),
            secret.clone(),
            revoked.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused_after = 0u32;
            for _ in 0..400 {
                // Read the flag before starting: if it was already set, the revoke had returned.
                let revoke_returned = *revoked.read().await;
                let m = message(&p, &route, tok.id, structured());
                let out = store
                    .enqueue(
                        &[Submission {
                            client_ip: None,
                            credential: credential(&tok, &secret),
                            messages: vec![m.clone()],
                            idempotency: None,
                        }],
                        now(),
                    )
                    .await
                    .unwrap();
                match out[0] {
                    SubmissionOutcome::Accepted(_) => {
                        assert!(
                            !revoke_returned,
                            "accepted a message after the revoke returned"
                        );
                        accepted.push(m.id);
                    }
                    SubmissionOutcome::DuplicateIdempotencyKey => {
                        panic!("no idempotency key was given")
                    }
                    SubmissionOutcome::TokenInactive => {
                        refused_after += 1;
                        if refused_after > 20 {
                            break;
                        }
                    }
                }
            }
            accepted
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    {
        let mut flag = revoked.write().await;
        assert!(
            project_tokens(&*store)
                .revoke_token(tok.id, now())
                .await
                .unwrap()
        );
        *flag = true;
    }
    let mut total = 0;
    for w in workers {
        for id in w.await.unwrap() {
            assert!(store.get_message(p.id, id).await.unwrap().is_some());
            total += 1;
        }
    }
    assert!(total > 0, "no message was accepted before the revoke");
}

/// Authentication through the services: each reason, and immediate effect of revoke and
/// regenerate.
pub async fn services_authenticate_and_refuse_after_revoke_and_regenerate(f: &dyn Fixture) {
    use lettermint_core::AuthFailure;
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = services
        .teams
        .create(Scope::Operator, "Acme")
        .await
        .unwrap();
    let (p, first) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: t.id,
                name: "Shop".into(),
                smtp_enabled: false,
                first_token_name: Some("first".into()),
            },
        )
        .await
        .unwrap();
    let first = first.unwrap();
    let secret = first.secret.expose_secret().to_owned();
    let caller = services
        .auth
        .authenticate_project(Some(&secret), Channel::Api, None)
        .await
        .unwrap();
    assert_eq!(
        (
            caller.project_id,
            caller.team_id,
            caller.credential.token_id
        ),
        (p.id, t.id, first.token.id)
    );
    assert_eq!(
        reason(
            services
                .auth
                .authenticate_project(Some(&secret), Channel::Smtp, None)
                .await
        ),
        AuthFailure::SmtpDisabled {
            token_id: first.token.id
        }
    );
    assert_eq!(
        reason(
            services
                .auth
                .authenticate_project(None, Channel::Api, None)
                .await
        ),
        AuthFailure::Missing
    );
    assert!(matches!(
        reason(
            services
                .auth
                .authenticate_project(Some("lm_nope"), Channel::Api, None)
                .await
        ),
        AuthFailure::Malformed(_)
    ));
    let stranger = PlainToken::mint(TokenKind::Project).unwrap();
    assert_eq!(
        reason(
            services
                .auth
                .authenticate_project(Some(stranger.expose_secret()), Channel::Api, None)
                .await
        ),
        AuthFailure::Unknown
    );

    let team_token = services
        .team_tokens
        .create(
            Scope::Operator,
            t.id,
            "admin",
            abilities(&["write:projects"]),
            None,
        )
        .await
        .unwrap();
    let team_secret = team_token.secret.expose_secret().to_owned();
    assert_eq!(
        reason(
            services
                .auth
                .authenticate_project(Some(&team_secret), Channel::Api, None)
                .await
        ),
        AuthFailure::WrongKind {
            token_id: Some(team_token.token.id)
        }
    );
    let team_caller = services
        .auth
        .authenticate_team(Some(&team_secret), None)
        .await
        .unwrap();
    assert_eq!(team_caller.team_id, t.id);
    assert!(
        team_caller
            .require(lettermint_core::Ability::read(
                lettermint_core::Resource::Projects
            ))
            .is_ok()
    );
    assert!(matches!(
        team_caller.require(lettermint_core::Ability::write(
            lettermint_core::Resource::Tokens
        )),
        Err(Error::Forbidden { .. })
    ));
    assert_eq!(
        reason(services.auth.authenticate_team(Some(&secret), None).await),
        AuthFailure::WrongKind {
            token_id: Some(first.token.id)
        }
    );

    let again = services
        .project_tokens
        .regenerate(Scope::Team(t.id), Some(p.id), first.token.id)
        .await
        .unwrap();
    assert_eq!(
        reason(
            services
                .auth
                .authenticate_project(Some(&secret), Channel::Api, None)
                .await
        ),
        AuthFailure::Unknown
    );
    let new_secret = again.secret.expose_secret().to_owned();
    assert!(
        services
            .auth
            .authenticate_project(Some(&new_secret), Channel::Api, None)
            .await
            .is_ok()
    );
    assert_eq!(again.token.name, first.token.name);
    assert_eq!(again.token.id, first.token.id);
    services
        .project_tokens
        .revoke(Scope::Team(t.id), Some(p.id), first.token.id)
        .await
        .unwrap();
    assert_eq!(
        reason(
            services
                .auth
                .authenticate_project(Some(&new_secret), Channel::Api, None)
                .await
        ),
        AuthFailure::Revoked {
            token_id: first.token.id
        }
    );
    services
        .team_tokens
        .revoke(Scope::Operator, None, team_token.token.id)
        .await
        .unwrap();
    assert_eq!(
        reason(
            services
                .auth
                .authenticate_team(Some(&team_secret), None)
                .await
        ),
        AuthFailure::Revoked {
            token_id: team_token.token.id
        }
    );

    let expiring = services
        .project_tokens
        .create(
            Scope::Operator,
            p.id,
            "short",
            (),
            Some(now() + Duration::milliseconds(50)),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    assert_eq!(
        reason(
            services
                .auth
                .authenticate_project(Some(expiring.secret.expose_secret()), Channel::Api, None)
                .await
        ),
        AuthFailure::Expired {
            token_id: expiring.token.id
        }
    );
}

fn reason<T: std::fmt::Debug>(result: Result<T, Error>) -> lettermint_core::AuthFailure {
    match result {
        Err(Error::Unauthenticated(failure)) => failure,
        other => panic!("expected an authentication failure, got {other:?}"),
    }
}

/// A team's scope sees nothing of another team: every lookup is "not found".
pub async fn tenant_scopes_hide_other_teams(f: &dyn Fixture) {
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let mine = services
        .teams
        .create(Scope::Operator, "Mine")
        .await
        .unwrap();
    let theirs = services
        .teams
        .create(Scope::Operator, "Theirs")
        .await
        .unwrap();
    let (their_project, their_token) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: theirs.id,
                name: "Secret".into(),
                smtp_enabled: true,
                first_token_name: Some("t".into()),
            },
        )
        .await
        .unwrap();
    let their_token = their_token.unwrap().token;
    let their_team_token = services
        .team_tokens
        .create(
            Scope::Operator,
            theirs.id,
            "x",
            abilities(&["read:team"]),
            None,
        )
        .await
        .unwrap();
    let me = Scope::Team(mine.id);
    let not_found =
        |r: Result<(), Error>| assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    let page = PageRequest::first(10, sort(TokenSortKey::Name, Direction::Ascending));
    not_found(services.teams.get(me, theirs.id).await.map(drop));
    not_found(services.teams.rename(me, theirs.id, "x").await.map(drop));
    not_found(services.projects.get(me, their_project.id).await.map(drop));
    not_found(
        services
            .projects
            .update(me, their_project.id, ProjectUpdate::default())
            .await
            .map(drop),
    );
    not_found(services.projects.delete(me, their_project.id).await);
    not_found(
        services
            .projects
            .list(
                me,
                theirs.id,
                None,
                &PageRequest::first(10, sort(ProjectSortKey::Name, Direction::Ascending)),
            )
            .await
            .map(drop),
    );
    not_found(
        services
            .projects
            .create(
                me,
                NewProject {
                    team_id: theirs.id,
                    name: "x".into(),
                    smtp_enabled: true,
                    first_token_name: None,
                },
            )
            .await
            .map(drop),
    );
    not_found(
        services
            .project_tokens
            .list(me, their_project.id, TokenStatusFilter::All, &page)
            .await
            .map(drop),
    );
    not_found(
        services
            .project_tokens
            .create(me, their_project.id, "x", (), None)
            .await
            .map(drop),
    );
    not_found(
        services
            .project_tokens
            .get(me, None, their_token.id)
            .await
            .map(drop),
    );
    not_found(
        services
            .project_tokens
            .rename(me, None, their_token.id, "x")
            .await
            .map(drop),
    );
    not_found(
        services
            .project_tokens
            .regenerate(me, None, their_token.id)
            .await
            .map(drop),
    );
    not_found(
        services
            .project_tokens
            .revoke(me, None, their_token.id)
            .await
            .map(drop),
    );
    not_found(
        services
            .project_tokens
            .logs(
                me,
                None,
                their_token.id,
                &LogFilter::default(),
                &PageRequest::first(10, sort(LogSortKey::At, Direction::Descending)),
            )
            .await
            .map(drop),
    );
    not_found(
        services
            .team_tokens
            .get(me, None, their_team_token.token.id)
            .await
            .map(drop),
    );
    not_found(
        services
            .team_tokens
            .revoke(me, None, their_team_token.token.id)
            .await
            .map(drop),
    );
    not_found(
        services
            .team_tokens
            .regenerate(me, None, their_team_token.token.id)
            .await
            .map(drop),
    );
    not_found(
        services
            .team_tokens
            .list(me, theirs.id, TokenStatusFilter::All, &page)
            .await
            .map(drop),
    );
    not_found(
        services
            .team_tokens
            .create(me, theirs.id, "x", abilities(&["read:team"]), None)
            .await
            .map(drop),
    );
    // And nothing changed.
    assert!(
        services
            .auth
            .authenticate_team(Some(their_team_token.secret.expose_secret()), None)
            .await
            .is_ok()
    );
    assert_eq!(
        services
            .projects
            .get(Scope::Operator, their_project.id)
            .await
            .unwrap()
            .name
            .as_str(),
        "Secret"
    );
    // A token addressed through the wrong project is not found either.
    let (my_project, _) = services
        .projects
        .create(
            me,
            NewProject {
                team_id: mine.id,
                name: "Mine".into(),
                smtp_enabled: true,
                first_token_name: None,
            },
        )
        .await
        .unwrap();
    not_found(
        services
            .project_tokens
            .get(Scope::Operator, Some(my_project.id), their_token.id)
            .await
            .map(drop),
    );
}

/// Quotes, SQL, emoji and long text are stored as given; NUL, control characters and
/// oversized names are refused with a validation error naming the field.
pub async fn hostile_input_is_stored_verbatim_or_refused_cleanly(f: &dyn Fixture) {
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = services
        .teams
        .create(Scope::Operator, "Acme")
        .await
        .unwrap();
    let hostile = [
        "Robert'); DROP TABLE project_tokens;--",
        "\"double\" 'single' `back` \\ back\\slash",
        "📬 Mail – ünïcödé ✓ 🚀",
        "%_ LIKE wildcards _%",
        "$1 ?1 :name @name",
    ];
    let (p, _) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: t.id,
                name: hostile[0].into(),
                smtp_enabled: true,
                first_token_name: None,
            },
        )
        .await
        .unwrap();
    for h in hostile {
        let issued = services
            .project_tokens
            .create(Scope::Operator, p.id, h, (), None)
            .await
            .unwrap();
        let back = services
            .project_tokens
            .get(Scope::Operator, Some(p.id), issued.token.id)
            .await
            .unwrap();
        assert_eq!(back.name.as_str(), h);
    }
    let search = services
        .projects
        .list(
            Scope::Operator,
            t.id,
            Some("'); DROP"),
            &PageRequest::first(10, sort(ProjectSortKey::Name, Direction::Ascending)),
        )
        .await
        .unwrap();
    assert_eq!(search.items.len(), 1);
    let all = services
        .project_tokens
        .list(
            Scope::Operator,
            p.id,
            TokenStatusFilter::All,
            &PageRequest::first(100, sort(TokenSortKey::Name, Direction::Ascending)),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), hostile.len(), "the tables are intact");

    let field_of = |e: Error| match e {
        Error::Validation(v) => v.fields().keys().cloned().collect::<Vec<_>>(),
        other => panic!("expected a validation error, got {other:?}"),
    };
    let long = "x".repeat(10 * 1024);
    for bad in ["nul\0byte", "line\nbreak", long.as_str(), "   "] {
        let err = services
            .project_tokens
            .create(Scope::Operator, p.id, bad, (), None)
            .await
            .unwrap_err();
        assert_eq!(field_of(err), vec!["name"]);
        let err = services
            .projects
            .create(
                Scope::Operator,
                NewProject {
                    team_id: t.id,
                    name: bad.into(),
                    smtp_enabled: true,
                    first_token_name: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(err), vec!["name"]);
    }
    let err = Abilities::parse("abilities", &["read:projects'--"]).unwrap_err();
    assert_eq!(field_of(err), vec!["abilities"]);
    // Store-level: a 10 KB emoji name goes in and out intact (the store itself has no limit).
    let big = "🚀".repeat(2560);
    let (mut tok, secret) = new_token(p.id, "x", now());
    tok.name = Name::from_stored(big.clone());
    project_tokens(&*store)
        .insert_token(&tok, &secret.digest())
        .await
        .unwrap();
    assert_eq!(
        project_tokens(&*store)
            .get_token(tok.id)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_str(),
        big
    );
    // Hostile log fields.
    let mut record = usage(tok.id, now(), Outcome::Accepted, "::1");
    record.user_agent = Some("'; DELETE FROM token_logs; -- \u{0}\u{7}".into());
    store
        .record_usage(&UsageBatch::from_records(vec![record]))
        .await
        .unwrap();
    let logs = store
        .list_token_logs(
            tok.id,
            &LogFilter::default(),
            PageRequest::first(10, sort(LogSortKey::At, Direction::Descending)).keyset(),
        )
        .await
        .unwrap();
    assert_eq!(
        logs[0].user_agent.as_deref(),
        Some("'; DELETE FROM token_logs; -- ")
    );
}

/// A verified leak report revokes the listed tokens of both kinds through the store's revoke,
/// and each revocation's log entry keeps the URL where the value was found.
pub async fn leak_reports_revoke_both_kinds_and_log_where_they_leaked(f: &dyn Fixture) {
    use lettermint_core::{LeakReporter, LeakVerdict, LeakedValue};
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = services
        .teams
        .create(Scope::Operator, "Acme")
        .await
        .unwrap();
    let (p, first) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: t.id,
                name: "Shop".into(),
                smtp_enabled: false,
                first_token_name: Some("first".into()),
            },
        )
        .await
        .unwrap();
    let first = first.unwrap();
    let team_token = services
        .team_tokens
        .create(Scope::Operator, t.id, "ci", abilities(&["read:team"]), None)
        .await
        .unwrap();
    let unknown = PlainToken::mint(TokenKind::Project).unwrap();
    let url = "https://github.com/octo/app/blob/0123abc/.env";
    let leaked = |value: &str| LeakedValue {
        value: value.to_owned(),
        url: Some(url.to_owned()),
    };
    let reporter = LeakReporter {
        ip: Some("192.0.2.7".parse().unwrap()),
        user_agent: Some("GitHub-Secret-Scanning".into()),
    };
    let verdicts = services
        .leaks
        .report(
            &[
                leaked(first.secret.expose_secret()),
                leaked(team_token.secret.expose_secret()),
                leaked(unknown.expose_secret()),
                leaked("not a token"),
            ],
            &reporter,
        )
        .await
        .unwrap();
    assert_eq!(
        verdicts,
        vec![
            LeakVerdict::TruePositive,
            LeakVerdict::TruePositive,
            LeakVerdict::FalsePositive,
            LeakVerdict::FalsePositive
        ]
    );
    assert!(
        services
            .auth
            .authenticate_project(Some(first.secret.expose_secret()), Channel::Api, None)
            .await
            .is_err()
    );
    assert!(
        services
            .auth
            .authenticate_team(Some(team_token.secret.expose_secret()), None)
            .await
            .is_err()
    );
    let request = PageRequest::first(10, sort(LogSortKey::At, Direction::Descending));
    let logs = services
        .project_tokens
        .logs(
            Scope::Operator,
            Some(p.id),
            first.token.id,
            &LogFilter::default(),
            &request,
        )
        .await
        .unwrap()
        .items;
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (logs[0].action, logs[0].outcome),
        (Action::LeakReport, Outcome::RevokedLeaked)
    );
    assert_eq!(logs[0].leak_url.as_deref(), Some(url));
    assert_eq!(logs[0].ip, reporter.ip);
    let team_logs = services
        .team_tokens
        .logs(
            Scope::Operator,
            Some(t.id),
            team_token.token.id,
            &LogFilter::default(),
            &request,
        )
        .await
        .unwrap()
        .items;
    assert_eq!(team_logs.len(), 1);
    assert_eq!(team_logs[0].leak_url.as_deref(), Some(url));
    // A second report of the same values finds them revoked: true positives, nothing new logged.
    let again = services
        .leaks
        .report(&[leaked(first.secret.expose_secret())], &reporter)
        .await
        .unwrap();
    assert_eq!(again, vec![LeakVerdict::TruePositive]);
    let logs = services
        .project_tokens
        .logs(
            Scope::Operator,
            Some(p.id),
            first.token.id,
            &LogFilter::default(),
            &request,
        )
        .await
        .unwrap()
        .items;
    assert_eq!(logs.len(), 1);
}

/// Tokens expiring within a window: only active ones whose expiry falls in it, of one owner or
/// of all, soonest first; counted per kind in one query.
pub async fn expiring_tokens_are_listed_and_counted_per_kind(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let (shop, blog) = (
        project(&*store, t.id, "Shop").await,
        project(&*store, t.id, "Blog").await,
    );
    let at = now();
    let insert = |project: ProjectId, n: &'static str, expires: Option<Duration>, revoked: bool| {
        let store = store.clone();
        async move {
            let (mut token, secret) = new_token(project, n, at);
            token.expires_at = expires.map(|d| at + d);
            token.revoked_at = revoked.then_some(at);
            project_tokens(&*store)
                .insert_token(&token, &secret.digest())
                .await
                .unwrap();
            token
        }
    };
    let soon = insert(shop.id, "soon", Some(Duration::days(3)), false).await;
    let sooner = insert(blog.id, "sooner", Some(Duration::days(1)), false).await;
    insert(shop.id, "later", Some(Duration::days(30)), false).await;
    insert(shop.id, "never", None, false).await;
    insert(shop.id, "gone", Some(Duration::days(2)), true).await;
    insert(shop.id, "past", Some(-Duration::days(1)), false).await;
    let until = at + Duration::days(7);

    let all = project_tokens(&*store)
        .list_expiring_tokens(None, at, until)
        .await
        .unwrap();
    let ids: Vec<TokenId> = all.iter().map(|t| t.id).collect();
    assert_eq!(ids, [sooner.id, soon.id], "soonest first, active only");
    assert_eq!(all[1], soon, "whole tokens");
    let of_shop = project_tokens(&*store)
        .list_expiring_tokens(Some(shop.id), at, until)
        .await
        .unwrap();
    assert_eq!(of_shop.iter().map(|t| t.id).collect::<Vec<_>>(), [soon.id]);
    assert_eq!(
        project_tokens(&*store)
            .count_expiring_tokens(at, until)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        project_tokens(&*store)
            .count_expiring_tokens(at, at + Duration::days(31))
            .await
            .unwrap(),
        3
    );

    // Team tokens are counted apart.
    let secret = PlainToken::mint(TokenKind::Team).unwrap();
    let team_token = lettermint_core::TeamToken {
        id: TokenId::new(),
        owner: t.id,
        name: name("deploy"),
        hint: secret.hint(),
        abilities: abilities(&["read:team"]),
        created_at: at,
        updated_at: at,
        last_use: Default::default(),
        expires_at: Some(at + Duration::days(5)),
        revoked_at: None,
        previous_expires_at: None,
        allowed_ips: IpAllowlist::any(),
    };
    team_tokens(&*store)
        .insert_token(&team_token, &secret.digest())
        .await
        .unwrap();
    assert_eq!(
        team_tokens(&*store)
            .count_expiring_tokens(at, until)
            .await
            .unwrap(),
        1
    );
    let listed = team_tokens(&*store)
        .list_expiring_tokens(Some(t.id), at, until)
        .await
        .unwrap();
    assert_eq!(listed, vec![team_token]);
    assert_eq!(
        project_tokens(&*store)
            .count_expiring_tokens(at, until)
            .await
            .unwrap(),
        2
    );
}

/// No table holds any token's secret, any password (chosen, generated, changed, or typed in a
/// failed login) or any session's value, in any column, after every way each comes to be.
pub async fn the_database_never_contains_a_secret(f: &dyn Fixture) {
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = services
        .teams
        .create(Scope::Operator, "Acme")
        .await
        .unwrap();
    let mut secrets = Vec::new();
    let (p, first) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: t.id,
                name: "Shop".into(),
                smtp_enabled: true,
                first_token_name: Some("first".into()),
            },
        )
        .await
        .unwrap();
    let first = first.unwrap();
    secrets.push(first.secret.expose_secret().to_owned());
    let created = services
        .project_tokens
        .create(Scope::Operator, p.id, "api", (), None)
        .await
        .unwrap();
    secrets.push(created.secret.expose_secret().to_owned());
    let regenerated = services
        .project_tokens
        .regenerate(Scope::Operator, None, created.token.id)
        .await
        .unwrap();
    secrets.push(regenerated.secret.expose_secret().to_owned());
    let team_token = services
        .team_tokens
        .create(
            Scope::Operator,
            t.id,
            "admin",
            abilities(&["write:tokens"]),
            None,
        )
        .await
        .unwrap();
    secrets.push(team_token.secret.expose_secret().to_owned());
    let team_again = services
        .team_tokens
        .regenerate(Scope::Operator, None, team_token.token.id)
        .await
        .unwrap();
    secrets.push(team_again.secret.expose_secret().to_owned());
    // Use them: authentication, usage logs, a message.
    let caller = services
        .auth
        .authenticate_project(Some(regenerated.secret.expose_secret()), Channel::Api, None)
        .await
        .unwrap();
    let route = services.messages.resolve_route(p.id, None).await.unwrap();
    let m = message(&p, &route, caller.credential.token_id, structured());
    services
        .messages
        .enqueue(&[Submission {
            client_ip: None,
            credential: caller.credential,
            messages: vec![m],
            idempotency: None,
        }])
        .await
        .unwrap();
    services
        .usage
        .flush(vec![usage(
            caller.credential.token_id,
            now(),
            Outcome::Accepted,
            "10.1.2.3",
        )])
        .await
        .unwrap();

    // Dashboard accounts: passwords chosen, generated, typed wrong, changed and reset; sessions
    // started, ended and kept; a token created by a member.
    let accounts = &services.accounts;
    let mut passwords = Vec::new();
    let mut session_values = Vec::new();
    let chosen = "correct horse battery staple".to_owned();
    passwords.push(chosen.clone());
    let ada = accounts
        .create_account(
            Scope::Operator,
            "ada@example.com",
            "Ada",
            Some(chosen.clone()),
        )
        .await
        .unwrap();
    assert!(ada.generated_password.is_none());
    let bob = accounts
        .create_account(Scope::Operator, "bob@example.com", "Bob", None)
        .await
        .unwrap();
    let generated = bob.generated_password.unwrap().expose_secret().to_owned();
    passwords.push(generated.clone());
    accounts
        .add_member(None, t.id, ada.account.id, Role::Owner, None)
        .await
        .unwrap();
    let typed_wrong = "Tr0ub4dor&3 typed wrong".to_owned();
    passwords.push(typed_wrong.clone());
    let ip = Some("198.51.100.4".parse().unwrap());
    assert!(
        accounts
            .login("ada@example.com", typed_wrong, ip)
            .await
            .is_err()
    );
    let ended = accounts
        .login("ada@example.com", chosen.clone(), ip)
        .await
        .unwrap();
    session_values.push(ended.secret.expose_secret().to_owned());
    let kept = accounts
        .login("ada@example.com", chosen.clone(), ip)
        .await
        .unwrap();
    session_values.push(kept.secret.expose_secret().to_owned());
    let changed = "another correct horse".to_owned();
    passwords.push(changed.clone());
    accounts
        .change_password(&kept.session, chosen, changed, ip)
        .await
        .unwrap();
    let bobs = accounts
        .login("bob@example.com", generated, None)
        .await
        .unwrap();
    session_values.push(bobs.secret.expose_secret().to_owned());
    let reset = accounts
        .reset_password(bob.account.id, None)
        .await
        .unwrap()
        .unwrap();
    passwords.push(reset.expose_secret().to_owned());
    let owner = accounts.member_of(ada.account.id, t.id).await.unwrap();
    let by_member = services
        .console
        .create(
            &services.project_tokens,
            lettermint_core::Actor { member: &owner, ip },
            p.id,
            "from the dashboard",
            (),
            None,
        )
        .await
        .unwrap();
    secrets.push(by_member.secret.expose_secret().to_owned());

    let values = f.dump_all_values().await;
    assert!(
        values.len() > 20,
        "the dump read too little to prove anything: {} values",
        values.len()
    );
    let contains = |value: &[u8], needle: &[u8]| value.windows(needle.len()).any(|w| w == needle);
    for secret in &secrets {
        let body = &secret.as_bytes()[secret.len() - 40..];
        for value in &values {
            assert!(
                !contains(value, body),
                "a stored value contains a token secret: {}",
                String::from_utf8_lossy(value)
            );
        }
    }
    for (what, needles) in [("password", &passwords), ("session value", &session_values)] {
        for needle in needles {
            for value in &values {
                assert!(
                    !contains(value, needle.as_bytes()),
                    "a stored value contains a {what}: {}",
                    String::from_utf8_lossy(value)
                );
            }
        }
    }
    // The digest and hint are there instead (so the dump did read the token tables), the
    // argon2id hashes and the kept session's digest (so it read the accounts and sessions).
    let hint = first.secret.hint();
    assert!(values.iter().any(|v| v == hint.as_str().as_bytes()));
    assert!(values.iter().any(|v| v == first.secret.digest().as_bytes()));
    assert_eq!(
        values
            .iter()
            .filter(|v| v.starts_with(b"$argon2id$v=19$"))
            .count(),
        2,
        "one password hash per account"
    );
    assert!(values.iter().any(|v| v == kept.secret.digest().as_bytes()));
    assert!(!values.iter().any(|v| v == ended.secret.digest().as_bytes()));
}

/// An idempotency key is stored with its messages; a second submission with a live key stores
/// nothing; an expired key is taken over; records prune after the TTL.
pub async fn idempotency_keys_are_claimed_with_the_messages(f: &dyn Fixture) {
    use lettermint_core::IdempotencyRecord;
    use lettermint_core::message::IDEMPOTENCY_TTL;
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let q = project(&*store, t.id, "Blog").await;
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let q_route = store.get_default_route(q.id).await.unwrap().unwrap();
    let (tok, secret) = token(&*store, p.id, "main").await;
    let (q_tok, q_secret) = token(&*store, q.id, "main").await;
    let at = now();
    let record = |project: ProjectId, body: &[u8], created_at| IdempotencyRecord {
        project_id: project,
        key: "order-42 'quoted' 🚀".into(),
        request_hash: IdempotencyRecord::fingerprint(&[b"/v1/send", body]),
        status: 202,
        response: format!("{{\"body\":\"{}\"}}", String::from_utf8_lossy(body)),
        created_at,
    };
    let first = message(&p, &route, tok.id, structured());
    let second = message(&p, &route, tok.id, structured());
    let other_project = message(&q, &q_route, q_tok.id, structured());
    let outcomes = store
        .enqueue(
            &[
                Submission {
                    client_ip: None,
                    credential: credential(&tok, &secret),
                    messages: vec![first.clone()],
                    idempotency: Some(record(p.id, b"a", at)),
                },
                // The same key again in the same group commit.
                Submission {
                    client_ip: None,
                    credential: credential(&tok, &secret),
                    messages: vec![second.clone()],
                    idempotency: Some(record(p.id, b"b", at)),
                },
                // The same key in another project is another key.
                Submission {
                    client_ip: None,
                    credential: credential(&q_tok, &q_secret),
                    messages: vec![other_project.clone()],
                    idempotency: Some(record(q.id, b"a", at)),
                },
            ],
            at,
        )
        .await
        .unwrap();
    use SubmissionOutcome::DuplicateIdempotencyKey;
    assert_eq!(outcomes, vec![ACCEPTED, DuplicateIdempotencyKey, ACCEPTED]);
    assert!(store.get_message(p.id, first.id).await.unwrap().is_some());
    assert!(store.get_message(p.id, second.id).await.unwrap().is_none());
    assert!(
        store
            .get_message(q.id, other_project.id)
            .await
            .unwrap()
            .is_some()
    );
    let stored = store
        .get_idempotency_record(p.id, "order-42 'quoted' 🚀", at - IDEMPOTENCY_TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, record(p.id, b"a", at));
    assert_eq!(
        store
            .get_idempotency_record(p.id, "other", at - IDEMPOTENCY_TTL)
            .await
            .unwrap(),
        None
    );
    // Too old to count for a reader asking from later on.
    let later = at + IDEMPOTENCY_TTL + Duration::seconds(1);
    assert_eq!(
        store
            .get_idempotency_record(p.id, "order-42 'quoted' 🚀", later - IDEMPOTENCY_TTL)
            .await
            .unwrap(),
        None
    );
    // A day later the key is free again and the new record replaces the old one.
    let third = message(&p, &route, tok.id, structured());
    let outcomes = store
        .enqueue(
            &[Submission {
                client_ip: None,
                credential: credential(&tok, &secret),
                messages: vec![third.clone()],
                idempotency: Some(record(p.id, b"c", later)),
            }],
            later,
        )
        .await
        .unwrap();
    assert_eq!(outcomes, vec![ACCEPTED]);
    let replaced = store
        .get_idempotency_record(p.id, "order-42 'quoted' 🚀", later - IDEMPOTENCY_TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.response, record(p.id, b"c", later).response);
    // Pruning removes what is older than the cut-off.
    assert_eq!(store.prune_idempotency_records(later).await.unwrap(), 1);
    assert_eq!(
        store
            .prune_idempotency_records(later + Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
}

/// Enqueues `count` messages of one new project with `content`; the project, its token and the
/// messages in acceptance order.
async fn accepted(
    store: &dyn Store,
    count: usize,
    at: OffsetDateTime,
) -> (Project, ProjectToken, Vec<Message>) {
    let t = team(store, "Acme").await;
    let p = project(store, t.id, "Shop").await;
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let (tok, secret) = token(store, p.id, "main").await;
    let mut messages = Vec::new();
    for i in 0..count {
        let mut m = message(&p, &route, tok.id, structured());
        m.idempotency_key = None;
        // Accepted just before `at`, one millisecond apart, in order.
        m.created_at = at - Duration::milliseconds((count - i) as i64);
        messages.push(m);
    }
    let outcomes = store
        .enqueue(
            &[Submission {
                client_ip: None,
                credential: credential(&tok, &secret),
                messages: messages.clone(),
                idempotency: None,
            }],
            at,
        )
        .await
        .unwrap();
    assert_eq!(outcomes, vec![ACCEPTED]);
    (p, tok, messages)
}

/// Settles one attempt; whether it was recorded.
async fn settle_one(
    store: &dyn Store,
    message: MessageId,
    lease: LeaseId,
    settlement: &Settlement,
    at: OffsetDateTime,
) -> bool {
    let settles = [Settle {
        message,
        lease,
        settlement: settlement.clone(),
        delivered_to: None,
    }];
    let done = store.settle(&settles, at).await.unwrap();
    assert_eq!(done.len(), 1);
    done[0]
}

fn ids_of(claims: &[Claim]) -> Vec<MessageId> {
    claims.iter().map(|c| c.message.id).collect()
}

/// A token's `delivery` log entries, oldest first.
async fn delivery_log(store: &dyn Store, token: TokenId) -> Vec<TokenLogEntry> {
    store
        .list_token_logs(
            token,
            &LogFilter::default(),
            PageRequest::first(50, sort(LogSortKey::At, Direction::Ascending)).keyset(),
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == Action::Delivery)
        .collect()
}

/// Delivery claims: due messages oldest first, up to the limit, each `processed` with one more
/// attempt under one lease; not claimable again while the lease runs; claimable again once it
/// has run out; a scheduled message only from its time on.
pub async fn due_messages_are_claimed_under_a_lease_oldest_first(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (p, _, mut messages) = accepted(&*store, 3, t0).await;
    // A fourth, scheduled an hour later.
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let (tok2, secret2) = token(&*store, p.id, "second").await;
    let mut later = message(&p, &route, tok2.id, structured());
    later.idempotency_key = None;
    later.status = MessageStatus::Scheduled;
    later.scheduled_at = Some(t0 + Duration::hours(1));
    store
        .enqueue(
            &[Submission {
                client_ip: None,
                credential: credential(&tok2, &secret2),
                messages: vec![later.clone()],
                idempotency: None,
            }],
            t0,
        )
        .await
        .unwrap();

    let lease_end = t0 + Duration::minutes(5);
    let first = store.claim_due(t0, lease_end, 2).await.unwrap();
    assert_eq!(ids_of(&first), vec![messages[0].id, messages[1].id]);
    assert!(first.iter().all(|c| c.lease == first[0].lease));
    for claim in &first {
        assert_eq!(claim.message.status, MessageStatus::Processed);
        assert_eq!(claim.message.delivery.attempts, 1);
        assert_eq!(claim.message.delivery.status_changed_at, Some(t0));
        assert_eq!(claim.message.content, messages[0].content);
    }
    let stored = store
        .get_message(p.id, messages[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, MessageStatus::Processed);
    assert_eq!(stored.delivery.attempts, 1);

    let rest = store.claim_due(t0, lease_end, 10).await.unwrap();
    assert_eq!(
        ids_of(&rest),
        vec![messages[2].id],
        "claimed ones are leased; the scheduled one is not due"
    );
    assert!(store.claim_due(t0, lease_end, 10).await.unwrap().is_empty());

    // The leases run out: all three come back, with a second attempt counted; the scheduled
    // message is not due yet.
    let after = lease_end + Duration::seconds(1);
    let again = store
        .claim_due(after, after + Duration::hours(2), 10)
        .await
        .unwrap();
    messages.sort_by_key(|m| m.id);
    let mut again_ids = ids_of(&again);
    again_ids.sort();
    assert_eq!(again_ids, messages.iter().map(|m| m.id).collect::<Vec<_>>());
    assert!(again.iter().all(|c| c.message.delivery.attempts == 2));
    assert_ne!(again[0].lease, first[0].lease);

    let at_schedule = t0 + Duration::hours(1);
    let scheduled = store
        .claim_due(at_schedule, at_schedule + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&scheduled), vec![later.id]);
    assert_eq!(scheduled[0].message.scheduled_at, later.scheduled_at);
    assert_eq!(store.claim_due(t0, lease_end, 0).await.unwrap(), vec![]);
}

/// `end_lease` hands a claimed message back under its current lease only: it stays
/// `processed`, and the next claim takes it over at once, as from an interrupted attempt.
pub async fn a_lease_ended_early_is_taken_over_at_once(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (p, _, messages) = accepted(&*store, 1, t0).await;
    let m = messages[0].id;
    let first = store
        .claim_due(t0, t0 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&first), vec![m]);
    let t1 = t0 + Duration::minutes(1);
    assert!(
        !store.end_lease(m, LeaseId::new(), t1).await.unwrap(),
        "another lease"
    );
    assert!(
        store
            .claim_due(t1, t1 + Duration::minutes(5), 10)
            .await
            .unwrap()
            .is_empty(),
        "the lease still runs"
    );
    assert!(store.end_lease(m, first[0].lease, t1).await.unwrap());
    let stored = store.get_message(p.id, m).await.unwrap().unwrap();
    assert_eq!(stored.status, MessageStatus::Processed);
    let second = store
        .claim_due(t1, t1 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&second), vec![m]);
    assert_eq!(
        (
            second[0].message.delivery.attempts,
            second[0].message.delivery.interrupted
        ),
        (2, 1)
    );
    assert!(
        !store.end_lease(m, first[0].lease, t1).await.unwrap(),
        "the first lease was taken over"
    );
    assert!(
        settle_one(
            &*store,
            m,
            second[0].lease,
            &Settlement::Delivered(Reply {
                code: Some(250),
                text: "2.0.0 queued".into(),
            }),
            t1
        )
        .await
    );
    assert!(
        !store.end_lease(m, second[0].lease, t1).await.unwrap(),
        "settled"
    );
}

/// The recipients an attempt reached are kept with the message (each settlement naming them,
/// or keeping what is stored), in a settlement of several attempts and in one that names a
/// message twice.
pub async fn recipients_reached_are_kept_across_attempts(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (p, _, messages) = accepted(&*store, 3, t0).await;
    let (m0, m1, m2) = (messages[0].id, messages[1].id, messages[2].id);
    assert!(messages[0].delivery.delivered_to.is_empty());
    let first = store
        .claim_due(t0, t0 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&first), vec![m0, m1, m2]);
    assert!(
        first
            .iter()
            .all(|c| c.message.delivery.delivered_to.is_empty())
    );
    let deferred = |reply_code: u16| Settlement::Deferred {
        reply: Reply {
            code: Some(reply_code),
            text: "4.2.2 mailbox full".into(),
        },
        retry_at: t0 + Duration::minutes(1),
    };
    let reached = |addresses: &[&str]| Some(addresses.iter().map(ToString::to_string).collect());
    let done = store
        .settle(
            &[
                Settle {
                    message: m0,
                    lease: first[0].lease,
                    settlement: deferred(452),
                    delivered_to: reached(&["a@example.net", "b@example.net"]),
                },
                Settle {
                    message: m1,
                    lease: first[1].lease,
                    settlement: deferred(451),
                    delivered_to: None,
                },
                Settle {
                    message: m2,
                    lease: first[2].lease,
                    settlement: Settlement::Failed(Reply {
                        code: Some(550),
                        text: "5.1.1 no such user".into(),
                    }),
                    delivered_to: reached(&["c@example.net"]),
                },
            ],
            t0,
        )
        .await
        .unwrap();
    assert_eq!(done, [true, true, true]);
    let delivered_to = |id| {
        let store = store.clone();
        let p = p.id;
        async move {
            store
                .get_message(p, id)
                .await
                .unwrap()
                .unwrap()
                .delivery
                .delivered_to
        }
    };
    assert_eq!(delivered_to(m0).await, ["a@example.net", "b@example.net"]);
    assert!(delivered_to(m1).await.is_empty());
    assert_eq!(delivered_to(m2).await, ["c@example.net"]);

    // The next claim hands them to the worker; a settlement of the same message twice (one
    // under a lease that moved on) records the current lease's only.
    let t2 = t0 + Duration::minutes(2);
    let second = store
        .claim_due(t2, t2 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&second), vec![m0, m1]);
    assert_eq!(
        second[0].message.delivery.delivered_to,
        ["a@example.net", "b@example.net"]
    );
    let done = store
        .settle(
            &[
                Settle {
                    message: m0,
                    lease: LeaseId::new(),
                    settlement: deferred(452),
                    delivered_to: reached(&["stale@example.net"]),
                },
                Settle {
                    message: m0,
                    lease: second[0].lease,
                    settlement: deferred(452),
                    delivered_to: reached(&["a@example.net", "b@example.net", "d@example.net"]),
                },
                Settle {
                    message: m1,
                    lease: second[1].lease,
                    settlement: Settlement::Delivered(Reply {
                        code: Some(250),
                        text: "2.0.0 queued".into(),
                    }),
                    delivered_to: None,
                },
            ],
            t2,
        )
        .await
        .unwrap();
    assert_eq!(done, [false, true, true]);
    assert_eq!(
        delivered_to(m0).await,
        ["a@example.net", "b@example.net", "d@example.net"]
    );
    assert!(delivered_to(m1).await.is_empty());

    // Delivered at last, in a call that names it twice again: what is stored stays.
    let t3 = t0 + Duration::minutes(3);
    let third = store
        .claim_due(t3, t3 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&third), vec![m0]);
    let delivered = Settlement::Delivered(Reply {
        code: Some(250),
        text: "2.0.0 queued".into(),
    });
    let done = store
        .settle(
            &[
                Settle {
                    message: m0,
                    lease: LeaseId::new(),
                    settlement: delivered.clone(),
                    delivered_to: reached(&["stale@example.net"]),
                },
                Settle {
                    message: m0,
                    lease: third[0].lease,
                    settlement: delivered,
                    delivered_to: None,
                },
            ],
            t3,
        )
        .await
        .unwrap();
    assert_eq!(done, [false, true]);
    assert_eq!(
        delivered_to(m0).await,
        ["a@example.net", "b@example.net", "d@example.net"]
    );
}

/// A claim that takes a message over from a lease that ran out counts one more interrupted
/// attempt; `begin_alone` counts an attempt alone and extends the lease, only under the current
/// lease; a recorded outcome starts both counts again at the next claim.
pub async fn claims_count_interrupted_attempts_and_attempts_alone(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (p, _, messages) = accepted(&*store, 2, t0).await;
    let (m0, m1) = (messages[0].id, messages[1].id);
    let counts = |c: &Claim| {
        (
            c.message.delivery.interrupted,
            c.message.delivery.interrupted_alone,
        )
    };
    let first = store
        .claim_due(t0, t0 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&first), vec![m0, m1]);
    assert!(first.iter().all(|c| counts(c) == (0, 0)));
    let lease = first[0].lease;
    assert!(
        !store
            .begin_alone(m0, LeaseId::new(), t0 + Duration::minutes(10))
            .await
            .unwrap(),
        "another lease"
    );
    assert!(
        store
            .begin_alone(m0, lease, t0 + Duration::minutes(10))
            .await
            .unwrap()
    );
    let stored = store.get_message(p.id, m0).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.status,
            stored.delivery.interrupted,
            stored.delivery.interrupted_alone
        ),
        (MessageStatus::Processed, 0, 1)
    );

    // Both leases would have ended at 5 min; m0's was extended to 10.
    let t6 = t0 + Duration::minutes(6);
    let second = store
        .claim_due(t6, t6 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&second), vec![m1]);
    assert_eq!(counts(&second[0]), (1, 0));
    assert_eq!(second[0].message.delivery.attempts, 2);

    // m0's lease ended at 10 min, m1's (second) ends at 11.
    let t10_30 = t0 + Duration::seconds(630);
    let third = store
        .claim_due(t10_30, t10_30 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&third), vec![m0]);
    assert_eq!(counts(&third[0]), (1, 1));
    assert!(
        store
            .begin_alone(m0, third[0].lease, t10_30 + Duration::minutes(5))
            .await
            .unwrap()
    );

    // m1's third claim finds it interrupted twice in a row.
    let t12 = t0 + Duration::minutes(12);
    let fourth = store
        .claim_due(t12, t12 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&fourth), vec![m1]);
    assert_eq!(counts(&fourth[0]), (2, 0));

    // An outcome recorded: the next claim starts both counts again.
    let retry_at = t12 + Duration::minutes(1);
    let deferred = Settlement::Deferred {
        reply: Reply {
            code: Some(451),
            text: "4.3.0 try later".into(),
        },
        retry_at,
    };
    assert!(settle_one(&*store, m0, third[0].lease, &deferred, t12).await);
    assert!(
        !store
            .begin_alone(m0, third[0].lease, t12 + Duration::minutes(5))
            .await
            .unwrap(),
        "a settled attempt cannot begin"
    );
    let fifth = store
        .claim_due(retry_at, retry_at + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&fifth), vec![m0]);
    assert_eq!(counts(&fifth[0]), (0, 0));
    assert_eq!(fifth[0].message.delivery.attempts, 3);
}

/// Two claims at the same time never return the same message.
pub async fn concurrent_claims_take_disjoint_messages(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (_, _, messages) = accepted(&*store, 40, t0).await;
    let lease_end = t0 + Duration::minutes(5);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claims = store.claim_due(t0, lease_end, 3).await.unwrap();
                if claims.is_empty() {
                    return mine;
                }
                mine.extend(ids_of(&claims));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    let mut expected: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    expected.sort();
    assert_eq!(all, expected, "every message claimed exactly once");
}

/// A settlement counts only under the message's current lease; delivered and failed messages
/// get an entry in their token's log in the same transaction, deferred ones are due again at
/// their retry instant.
pub async fn settlements_need_the_current_lease_and_log_the_outcome(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (p, tok, messages) = accepted(&*store, 3, t0).await;
    let lease_end = t0 + Duration::minutes(5);
    let claims = store.claim_due(t0, lease_end, 10).await.unwrap();
    assert_eq!(claims.len(), 3);
    let reply = |code: u16, text: &str| Reply {
        code: Some(code),
        text: text.into(),
    };
    let t1 = t0 + Duration::seconds(2);

    // A lease that is not the message's current one settles nothing.
    let stale = LeaseId::new();
    let delivered = Settlement::Delivered(reply(250, "2.0.0 Ok: queued as ABC"));
    assert!(!settle_one(&*store, messages[0].id, stale, &delivered, t1).await);
    assert_eq!(
        store
            .get_message(p.id, messages[0].id)
            .await
            .unwrap()
            .unwrap()
            .status,
        MessageStatus::Processed
    );

    assert!(settle_one(&*store, messages[0].id, claims[0].lease, &delivered, t1).await);
    let done = store
        .get_message(p.id, messages[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, MessageStatus::Delivered);
    assert_eq!(
        done.delivery.last_reply.as_deref(),
        Some("250 2.0.0 Ok: queued as ABC")
    );
    assert_eq!(done.delivery.status_changed_at, Some(t1));
    assert_eq!(done.delivery.next_attempt_at, None);
    assert_eq!(done.delivery.attempts, 1);
    // Settled once: the same lease cannot settle it again.
    assert!(!settle_one(&*store, messages[0].id, claims[0].lease, &delivered, t1).await);

    let retry_at = t0 + Duration::minutes(1);
    let deferred = Settlement::Deferred {
        reply: reply(451, "4.3.0 try later"),
        retry_at,
    };
    assert!(settle_one(&*store, messages[1].id, claims[1].lease, &deferred, t1).await);
    let waiting = store
        .get_message(p.id, messages[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiting.status, MessageStatus::Deferred);
    assert_eq!(waiting.delivery.next_attempt_at, Some(retry_at));
    assert_eq!(
        waiting.delivery.last_reply.as_deref(),
        Some("451 4.3.0 try later")
    );

    let failed = Settlement::Failed(Reply {
        code: None,
        text: "connection refused".into(),
    });
    assert!(settle_one(&*store, messages[2].id, claims[2].lease, &failed, t1).await);

    // Only the deferred message is due again, at its retry instant (before its lease end).
    assert!(
        store
            .claim_due(retry_at - Duration::seconds(1), lease_end, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store
        .claim_due(retry_at, retry_at + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&retried), vec![messages[1].id]);
    assert_eq!(retried[0].message.delivery.attempts, 2);
    // Several attempts in one call, each under its own lease: a stale one is refused alone.
    let both = store
        .settle(
            &[
                Settle {
                    message: messages[1].id,
                    lease: LeaseId::new(),
                    settlement: delivered.clone(),
                    delivered_to: None,
                },
                Settle {
                    message: messages[1].id,
                    lease: retried[0].lease,
                    settlement: delivered.clone(),
                    delivered_to: None,
                },
            ],
            retry_at,
        )
        .await
        .unwrap();
    assert_eq!(both, vec![false, true]);
    assert!(store.settle(&[], retry_at).await.unwrap().is_empty());

    assert!(
        store
            .claim_due(t0 + Duration::days(30), t0 + Duration::days(31), 10)
            .await
            .unwrap()
            .iter()
            .all(|c| c.message.id == messages[1].id),
        "delivered and failed messages are never due again"
    );

    let delivery: Vec<_> = delivery_log(&*store, tok.id)
        .await
        .into_iter()
        .map(|e| (e.outcome, e.status, e.message_ids, e.via, e.at, e.ip))
        .collect();
    assert_eq!(
        delivery,
        vec![
            (
                Outcome::Delivered,
                250,
                vec![messages[0].id],
                Channel::Api,
                t1,
                None
            ),
            (
                Outcome::Failed,
                0,
                vec![messages[2].id],
                Channel::Api,
                t1,
                None
            ),
            (
                Outcome::Delivered,
                250,
                vec![messages[1].id],
                Channel::Api,
                retry_at,
                None
            ),
        ]
    );
}

/// The attempts of one settlement are logged together: one entry per token, channel, outcome
/// and reply code, naming every message it covers in the order settled; deferrals and stale
/// leases log nothing.
pub async fn one_settlement_logs_an_entry_per_token_and_outcome(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (_, shop, ours) = accepted(&*store, 5, t0).await;
    let (_, blog, theirs) = accepted(&*store, 1, t0).await;
    let claims = store
        .claim_due(t0, t0 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(claims.len(), 6);
    let lease_of = |id: MessageId| claims.iter().find(|c| c.message.id == id).unwrap().lease;
    let reply = |code: u16| Reply {
        code: Some(code),
        text: "2.0.0 Ok".into(),
    };
    let settle = |id: MessageId, settlement: Settlement| Settle {
        message: id,
        lease: lease_of(id),
        settlement,
        delivered_to: None,
    };
    let t1 = t0 + Duration::seconds(1);
    let done = store
        .settle(
            &[
                settle(ours[3].id, Settlement::Delivered(reply(250))),
                settle(theirs[0].id, Settlement::Delivered(reply(250))),
                settle(ours[0].id, Settlement::Failed(reply(550))),
                settle(
                    ours[1].id,
                    Settlement::Deferred {
                        reply: reply(451),
                        retry_at: t1 + Duration::minutes(1),
                    },
                ),
                settle(ours[2].id, Settlement::Delivered(reply(250))),
                settle(ours[4].id, Settlement::Delivered(reply(251))),
                Settle {
                    message: ours[1].id,
                    lease: LeaseId::new(),
                    settlement: Settlement::Delivered(reply(250)),
                    delivered_to: None,
                },
            ],
            t1,
        )
        .await
        .unwrap();
    assert_eq!(done, vec![true, true, true, true, true, true, false]);
    let logged = |token: TokenId| {
        let store = store.clone();
        async move {
            let mut entries: Vec<_> = delivery_log(&*store, token)
                .await
                .into_iter()
                .map(|e| (e.outcome, e.status, e.message_ids, e.via, e.at))
                .collect();
            entries.sort_by_key(|e| e.1);
            entries
        }
    };
    assert_eq!(
        logged(shop.id).await,
        vec![
            (
                Outcome::Delivered,
                250,
                vec![ours[3].id, ours[2].id],
                Channel::Api,
                t1
            ),
            (Outcome::Delivered, 251, vec![ours[4].id], Channel::Api, t1),
            (Outcome::Failed, 550, vec![ours[0].id], Channel::Api, t1),
        ]
    );
    assert_eq!(
        logged(blog.id).await,
        vec![(
            Outcome::Delivered,
            250,
            vec![theirs[0].id],
            Channel::Api,
            t1
        )]
    );
}

/// One settlement of several attempts answers each on its own: an attempt under a stale lease
/// records nothing, whatever its neighbours; a message named twice (an old lease, then its
/// current one) is recorded once, by the settle that holds its lease.
pub async fn a_settlement_of_several_attempts_answers_each_on_its_own(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (p, _, messages) = accepted(&*store, 3, t0).await;
    let old = store
        .claim_due(t0, t0 + Duration::minutes(5), 10)
        .await
        .unwrap();
    // The leases run out; the messages are claimed again under a new one.
    let t1 = t0 + Duration::minutes(6);
    let new = store
        .claim_due(t1, t1 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&new), ids_of(&old));
    let (old, new) = (old[0].lease, new[0].lease);
    let reply = |code: u16| Reply {
        code: Some(code),
        text: format!("{code} reply"),
    };
    let settle = |message: MessageId, lease: LeaseId, settlement: Settlement| Settle {
        message,
        lease,
        settlement,
        delivered_to: None,
    };
    let t2 = t1 + Duration::seconds(1);
    let done = store
        .settle(
            &[
                settle(messages[0].id, new, Settlement::Delivered(reply(250))),
                settle(messages[1].id, old, Settlement::Delivered(reply(250))),
            ],
            t2,
        )
        .await
        .unwrap();
    assert_eq!(done, vec![true, false]);
    let retry_at = t2 + Duration::minutes(1);
    let done = store
        .settle(
            &[
                settle(messages[2].id, old, Settlement::Failed(reply(550))),
                settle(messages[2].id, new, Settlement::Delivered(reply(251))),
                settle(
                    messages[1].id,
                    new,
                    Settlement::Deferred {
                        reply: reply(451),
                        retry_at,
                    },
                ),
            ],
            t2,
        )
        .await
        .unwrap();
    assert_eq!(done, vec![false, true, true]);
    let mut seen = Vec::new();
    for m in &messages {
        let m = store.get_message(p.id, m.id).await.unwrap().unwrap();
        seen.push((m.status, m.delivery.last_reply, m.delivery.next_attempt_at));
    }
    assert_eq!(
        seen,
        vec![
            (MessageStatus::Delivered, Some("250 250 reply".into()), None),
            (
                MessageStatus::Deferred,
                Some("451 451 reply".into()),
                Some(retry_at)
            ),
            (MessageStatus::Delivered, Some("251 251 reply".into()), None),
        ]
    );
}

/// A settlement larger than a store may put in one statement records every attempt, and
/// answers each (a stale lease among them stays unrecorded).
pub async fn a_settlement_of_hundreds_of_attempts_records_each(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (p, _, _) = accepted(&*store, 301, t0).await;
    let claims = store
        .claim_due(t0, t0 + Duration::minutes(5), 400)
        .await
        .unwrap();
    assert_eq!(claims.len(), 301);
    let settles: Vec<Settle> = claims
        .iter()
        .enumerate()
        .map(|(n, c)| Settle {
            message: c.message.id,
            // One stale lease, in the second part of the batch.
            lease: if n == 290 { LeaseId::new() } else { c.lease },
            settlement: Settlement::Delivered(Reply {
                code: Some(250),
                text: format!("2.0.0 queued as {n}"),
            }),
            delivered_to: None,
        })
        .collect();
    let done = store
        .settle(&settles, t0 + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(done.len(), 301);
    assert_eq!(
        done.iter()
            .enumerate()
            .filter(|(_, d)| !**d)
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        vec![290]
    );
    for (n, c) in claims.iter().enumerate().step_by(37) {
        let m = store
            .get_message(p.id, c.message.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, MessageStatus::Delivered);
        assert_eq!(
            m.delivery.last_reply,
            Some(format!("250 2.0.0 queued as {n}"))
        );
    }
    let stale = store
        .get_message(p.id, claims[290].message.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.status, MessageStatus::Processed);
}

/// A claimed row that cannot be read fails on its own (a `failed` entry in its token's log, and
/// never due again); the rest of the batch is claimed as usual.
pub async fn an_unreadable_message_fails_alone_and_its_batch_is_claimed(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (_, tok, messages) = accepted(&*store, 4, t0).await;
    f.corrupt_message(messages[1].id).await;
    f.corrupt_message_beyond_decoding(messages[2].id).await;
    let claims = store
        .claim_due(t0, t0 + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&claims), vec![messages[0].id, messages[3].id]);
    let delivery: Vec<_> = delivery_log(&*store, tok.id)
        .await
        .into_iter()
        .map(|mut e| {
            e.message_ids.sort();
            (e.outcome, e.status, e.message_ids)
        })
        .collect();
    let mut failed = vec![messages[1].id, messages[2].id];
    failed.sort();
    assert_eq!(delivery, vec![(Outcome::Failed, 0, failed)]);
    // Never due again: the next claims see only the others, once their lease has run out.
    let later = store
        .claim_due(t0 + Duration::minutes(6), t0 + Duration::minutes(11), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&later), vec![messages[0].id, messages[3].id]);
}

/// A project's messages page newest first (or oldest first), filtered by status, and never
/// show another project's messages.
pub async fn messages_page_newest_first_and_filter_by_status(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let (p, _, messages) = accepted(&*store, 5, t0).await;
    let request = PageRequest::first(2, sort(MessageSortKey::CreatedAt, Direction::Descending));
    let mut seen = Vec::new();
    let mut page_request = request;
    loop {
        let rows = store
            .list_messages(p.id, None, page_request.keyset())
            .await
            .unwrap();
        let page = page_request.page(rows, |m| m.id.as_uuid());
        seen.extend(page.items.iter().map(|m| m.id));
        match page.next_cursor {
            Some(c) => page_request.cursor = Some(c),
            None => break,
        }
    }
    let newest_first: Vec<MessageId> = messages.iter().rev().map(|m| m.id).collect();
    assert_eq!(seen, newest_first);
    let oldest = store
        .list_messages(
            p.id,
            None,
            PageRequest::first(10, sort(MessageSortKey::CreatedAt, Direction::Ascending)).keyset(),
        )
        .await
        .unwrap();
    assert_eq!(
        oldest.iter().map(|m| m.id).collect::<Vec<_>>(),
        newest_first.iter().rev().copied().collect::<Vec<_>>()
    );

    let claims = store
        .claim_due(t0, t0 + Duration::minutes(5), 2)
        .await
        .unwrap();
    let processed = store
        .list_messages(p.id, Some(MessageStatus::Processed), request.keyset())
        .await
        .unwrap();
    let mut processed_ids: Vec<_> = processed.iter().map(|m| m.id).collect();
    processed_ids.sort();
    let mut claimed_ids = ids_of(&claims);
    claimed_ids.sort();
    assert_eq!(processed_ids, claimed_ids);
    assert_eq!(
        store
            .list_messages(
                p.id,
                Some(MessageStatus::Pending),
                PageRequest::first(10, sort(MessageSortKey::CreatedAt, Direction::Descending))
                    .keyset()
            )
            .await
            .unwrap()
            .len(),
        3
    );
    let t = store.get_team(p.team_id).await.unwrap().unwrap();
    let other = project(&*store, t.id, "Other").await;
    assert!(
        store
            .list_messages(other.id, None, request.keyset())
            .await
            .unwrap()
            .is_empty()
    );
}

/// One submission of a single message under `secret`, from `client_ip`.
fn submission_of(
    p: &Project,
    route: &Route,
    tok: &ProjectToken,
    secret: &PlainToken,
    client_ip: Option<std::net::IpAddr>,
) -> Submission {
    let mut m = message(p, route, tok.id, structured());
    m.idempotency_key = None;
    Submission {
        credential: credential(tok, secret),
        messages: vec![m],
        idempotency: None,
        client_ip,
    }
}

/// The slot a digest is found in, if any.
async fn slot_of(store: &dyn Store, secret: &PlainToken) -> Option<CredentialSlot> {
    project_tokens(store)
        .find_token_by_digest(&secret.digest())
        .await
        .unwrap()
        .map(|g| g.slot)
}

/// Rotation with an overlap: both values authenticate and enqueue until the overlap ends, then
/// only the new one does (the old one fails like a regenerated value); rotating again drops the
/// value that was previous; the log names which value was used.
pub async fn rotation_keeps_both_values_during_the_overlap_only(f: &dyn Fixture) {
    use lettermint_core::{AuthFailure, FixedClock};
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let (tok, old) = token(&*store, p.id, "main").await;
    let new = PlainToken::mint(TokenKind::Project).unwrap();
    let at = now();
    let until = at + Duration::hours(1);
    assert!(
        project_tokens(&*store)
            .rotate_token_secret(tok.id, &new.digest(), &new.hint(), at, until)
            .await
            .unwrap()
    );
    let stored = project_tokens(&*store)
        .get_token(tok.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.previous_expires_at, Some(until));
    assert_eq!((stored.hint.clone(), stored.updated_at), (new.hint(), at));
    assert_eq!(slot_of(&*store, &old).await, Some(CredentialSlot::Previous));
    assert_eq!(slot_of(&*store, &new).await, Some(CredentialSlot::Current));

    // During the overlap both values enqueue, each under its own slot.
    let outcomes = store
        .enqueue(
            &[
                submission_of(&p, &route, &tok, &old, None),
                submission_of(&p, &route, &tok, &new, None),
            ],
            until - Duration::seconds(1),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            SubmissionOutcome::Accepted(CredentialSlot::Previous),
            SubmissionOutcome::Accepted(CredentialSlot::Current)
        ]
    );
    // From the end of the overlap on, only the new value does.
    let outcomes = store
        .enqueue(
            &[
                submission_of(&p, &route, &tok, &old, None),
                submission_of(&p, &route, &tok, &new, None),
            ],
            until,
        )
        .await
        .unwrap();
    assert_eq!(outcomes, vec![SubmissionOutcome::TokenInactive, ACCEPTED]);

    // Authentication agrees, at either side of the end.
    let during = Services::new(
        store.clone(),
        Arc::new(FixedClock(until - Duration::seconds(1))),
    );
    let caller = during
        .auth
        .authenticate_project(Some(old.expose_secret()), Channel::Api, None)
        .await
        .unwrap();
    assert_eq!(caller.slot, CredentialSlot::Previous);
    let after = Services::new(store.clone(), Arc::new(FixedClock(until)));
    assert!(matches!(
        after
            .auth
            .authenticate_project(Some(old.expose_secret()), Channel::Api, None)
            .await,
        Err(Error::Unauthenticated(AuthFailure::Unknown))
    ));
    let caller = after
        .auth
        .authenticate_project(Some(new.expose_secret()), Channel::Api, None)
        .await
        .unwrap();
    assert_eq!(caller.slot, CredentialSlot::Current);

    // Rotating again: the value that was current becomes previous, the oldest is gone.
    let newer = PlainToken::mint(TokenKind::Project).unwrap();
    assert!(
        project_tokens(&*store)
            .rotate_token_secret(tok.id, &newer.digest(), &newer.hint(), at, until)
            .await
            .unwrap()
    );
    assert_eq!(slot_of(&*store, &old).await, None);
    assert_eq!(slot_of(&*store, &new).await, Some(CredentialSlot::Previous));
    assert_eq!(
        slot_of(&*store, &newer).await,
        Some(CredentialSlot::Current)
    );

    // The log keeps which value each use presented.
    let mut used = usage(tok.id, at, Outcome::Accepted, "192.0.2.1");
    used.credential = Some(CredentialSlot::Previous);
    store
        .record_usage(&UsageBatch::from_records(vec![used]))
        .await
        .unwrap();
    let request = PageRequest::first(10, sort(LogSortKey::At, Direction::Descending));
    let rows = store
        .list_token_logs(tok.id, &LogFilter::default(), request.keyset())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].credential, Some(CredentialSlot::Previous));

    // Team tokens rotate the same way.
    let services = Services::new(store.clone(), Arc::new(FixedClock(at)));
    let issued = services
        .team_tokens
        .create(
            Scope::Operator,
            t.id,
            "deploy",
            abilities(&["read:team"]),
            None,
        )
        .await
        .unwrap();
    let rotated = services
        .team_tokens
        .rotate(
            Scope::Operator,
            None,
            issued.token.id,
            lettermint_core::Overlap::parse("overlap", "30m").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        rotated.token.previous_expires_at,
        Some(at + Duration::minutes(30))
    );
    let caller = services
        .auth
        .authenticate_team(Some(issued.secret.expose_secret()), None)
        .await
        .unwrap();
    assert_eq!(caller.slot, CredentialSlot::Previous);
    assert!(
        services
            .auth
            .authenticate_team(Some(rotated.secret.expose_secret()), None)
            .await
            .is_ok()
    );
}

/// Regenerate and revoke end a rotation's overlap when they return: regenerate drops the
/// previous value, revoke refuses both.
pub async fn regenerate_and_revoke_end_the_overlap_at_once(f: &dyn Fixture) {
    use lettermint_core::AuthFailure;
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let until = now() + Duration::hours(1);

    let (tok, old) = token(&*store, p.id, "regenerated").await;
    let new = PlainToken::mint(TokenKind::Project).unwrap();
    let tokens = project_tokens(&*store);
    assert!(
        tokens
            .rotate_token_secret(tok.id, &new.digest(), &new.hint(), now(), until)
            .await
            .unwrap()
    );
    let newest = PlainToken::mint(TokenKind::Project).unwrap();
    assert!(
        tokens
            .replace_token_secret(tok.id, &newest.digest(), &newest.hint(), now())
            .await
            .unwrap()
    );
    assert_eq!(slot_of(&*store, &old).await, None);
    assert_eq!(slot_of(&*store, &new).await, None);
    assert_eq!(
        tokens
            .get_token(tok.id)
            .await
            .unwrap()
            .unwrap()
            .previous_expires_at,
        None
    );
    let outcomes = store
        .enqueue(
            &[
                submission_of(&p, &route, &tok, &old, None),
                submission_of(&p, &route, &tok, &new, None),
                submission_of(&p, &route, &tok, &newest, None),
            ],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            SubmissionOutcome::TokenInactive,
            SubmissionOutcome::TokenInactive,
            ACCEPTED
        ]
    );

    let (tok, old) = token(&*store, p.id, "revoked").await;
    let new = PlainToken::mint(TokenKind::Project).unwrap();
    assert!(
        tokens
            .rotate_token_secret(tok.id, &new.digest(), &new.hint(), now(), until)
            .await
            .unwrap()
    );
    assert!(tokens.revoke_token(tok.id, now()).await.unwrap());
    // A revoked token cannot be rotated.
    assert!(
        !tokens
            .rotate_token_secret(tok.id, &old.digest(), &old.hint(), now(), until)
            .await
            .unwrap()
    );
    let outcomes = store
        .enqueue(
            &[
                submission_of(&p, &route, &tok, &old, None),
                submission_of(&p, &route, &tok, &new, None),
            ],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            SubmissionOutcome::TokenInactive,
            SubmissionOutcome::TokenInactive
        ]
    );
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    for secret in [&old, &new] {
        assert!(matches!(
            services
                .auth
                .authenticate_project(Some(secret.expose_secret()), Channel::Api, None)
                .await,
            Err(Error::Unauthenticated(AuthFailure::Revoked { token_id })) if token_id == tok.id
        ));
    }
}

/// IP allowlists round-trip on both kinds (create, update, read by id, by digest, in lists),
/// and the send path's commit checks the client's address against the list it reads under its
/// lock.
pub async fn allowlists_round_trip_and_gate_the_send_path(f: &dyn Fixture) {
    use lettermint_core::AuthFailure;
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let route = store.get_default_route(p.id).await.unwrap().unwrap();
    let list = IpAllowlist::parse("allowed_ips", &["203.0.113.0/24", "2001:db8::/32"]).unwrap();
    let issued = services
        .project_tokens
        .create_with_allowlist(Scope::Operator, p.id, "office", (), None, list.clone())
        .await
        .unwrap();
    assert_eq!(issued.token.allowed_ips, list);
    let stored = project_tokens(&*store)
        .get_token(issued.token.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, issued.token);
    let grant = project_tokens(&*store)
        .find_token_by_digest(&issued.secret.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.token.allowed_ips, list);
    let request = PageRequest::first(10, sort(TokenSortKey::CreatedAt, Direction::Ascending));
    let page = services
        .project_tokens
        .list(Scope::Operator, p.id, TokenStatusFilter::Active, &request)
        .await
        .unwrap();
    assert_eq!(page.items[0].allowed_ips, list);

    let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
    let (tok, secret) = (issued.token.clone(), issued.secret.clone());
    let outcomes = store
        .enqueue(
            &[
                submission_of(&p, &route, &tok, &secret, ip("203.0.113.9")),
                submission_of(&p, &route, &tok, &secret, ip("::ffff:203.0.113.10")),
                submission_of(&p, &route, &tok, &secret, ip("2001:db8::7")),
                submission_of(&p, &route, &tok, &secret, ip("198.51.100.1")),
                submission_of(&p, &route, &tok, &secret, None),
            ],
            now(),
        )
        .await
        .unwrap();
    use SubmissionOutcome::TokenInactive;
    assert_eq!(
        outcomes,
        vec![ACCEPTED, ACCEPTED, ACCEPTED, TokenInactive, TokenInactive]
    );
    assert!(matches!(
        services
            .auth
            .authenticate_project(Some(secret.expose_secret()), Channel::Api, ip("198.51.100.1"))
            .await,
        Err(Error::Unauthenticated(AuthFailure::IpNotAllowed { token_id })) if token_id == tok.id
    ));

    // An update takes effect for the next commit; an empty list allows any address.
    let narrowed = IpAllowlist::parse("allowed_ips", &["198.51.100.1"]).unwrap();
    let updated = services
        .project_tokens
        .set_allowlist(Scope::Operator, Some(p.id), tok.id, &narrowed)
        .await
        .unwrap();
    assert_eq!(updated.allowed_ips, narrowed);
    let outcomes = store
        .enqueue(
            &[
                submission_of(&p, &route, &tok, &secret, ip("203.0.113.9")),
                submission_of(&p, &route, &tok, &secret, ip("198.51.100.1")),
            ],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, vec![TokenInactive, ACCEPTED]);
    let cleared = services
        .project_tokens
        .set_allowlist(Scope::Operator, None, tok.id, &IpAllowlist::any())
        .await
        .unwrap();
    assert!(cleared.allowed_ips.is_empty());
    let outcomes = store
        .enqueue(&[submission_of(&p, &route, &tok, &secret, None)], now())
        .await
        .unwrap();
    assert_eq!(outcomes, vec![ACCEPTED]);

    // Team tokens keep theirs too.
    let team_list = IpAllowlist::parse("allowed_ips", &["10.0.0.0/8"]).unwrap();
    let team_token = services
        .team_tokens
        .create_with_allowlist(
            Scope::Operator,
            t.id,
            "ci",
            abilities(&["read:team"]),
            None,
            team_list.clone(),
        )
        .await
        .unwrap();
    let grant = team_tokens(&*store)
        .find_token_by_digest(&team_token.secret.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.token.allowed_ips, team_list);
    assert!(
        services
            .auth
            .authenticate_team(Some(team_token.secret.expose_secret()), ip("10.9.9.9"))
            .await
            .is_ok()
    );
    assert!(
        services
            .auth
            .authenticate_team(Some(team_token.secret.expose_secret()), ip("11.0.0.1"))
            .await
            .is_err()
    );
    // A revoked token's list cannot change.
    services
        .project_tokens
        .revoke(Scope::Operator, None, tok.id)
        .await
        .unwrap();
    assert!(matches!(
        services
            .project_tokens
            .set_allowlist(Scope::Operator, None, tok.id, &narrowed)
            .await,
        Err(Error::Conflict { .. })
    ));
}

// The dashboard: accounts, members, sessions, failed logins and the audit log.

/// A stored account with a stand-in hash (the store keeps whatever PHC string it is given).
async fn account(store: &dyn Store, email: &str) -> Account {
    let at = now();
    let account = Account {
        id: AccountId::new(),
        email: Email::parse("email", email).unwrap(),
        display_name: name(email.split('@').next().unwrap()),
        created_at: at,
        password_changed_at: at,
    };
    store.insert_account(&account, &phc("first")).await.unwrap();
    account
}

fn phc(salt: &str) -> PasswordHash {
    PasswordHash::from_stored(format!("$argon2id$v=19$m=19456,t=2,p=1${salt}$c29tZWhhc2g"))
}

/// A session of `account` that started at `at`, idle for 30 minutes, at most 12 hours.
fn session_at(account: AccountId, at: OffsetDateTime) -> (Session, SessionSecret) {
    let session = Session {
        id: SessionId::new(),
        account_id: account,
        created_at: at,
        last_seen_at: at,
        idle_expires_at: at + Duration::minutes(30),
        expires_at: at + Duration::hours(12),
    };
    (session, SessionSecret::mint().unwrap())
}

async fn session(store: &dyn Store, account: AccountId) -> (Session, SessionSecret) {
    let (session, secret) = session_at(account, now());
    store
        .insert_session(&session, &secret.digest())
        .await
        .unwrap();
    (session, secret)
}

async fn owners(store: &dyn Store, team: TeamId) -> Vec<AccountId> {
    store
        .list_members(team)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == Role::Owner)
        .map(|m| m.account.id)
        .collect()
}

/// Accounts: insert, get, find by email with the hash, list by email; an email is unique; a
/// password change keeps the given session and ends the account's others, in one call.
pub async fn accounts_round_trip_and_a_password_change_ends_other_sessions(f: &dyn Fixture) {
    let store = f.store();
    let zed = account(&*store, "zed@example.com").await;
    let ada = account(&*store, "Ada@Example.com").await;
    assert_eq!(ada.email.as_str(), "ada@example.com");
    assert_eq!(store.get_account(ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(store.get_account(AccountId::new()).await.unwrap(), None);
    let (found, hash) = store
        .find_account_by_email(&Email::parse("email", "ADA@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found, hash), (ada.clone(), phc("first")));
    assert!(
        store
            .find_account_by_email(&Email::parse("email", "nobody@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.list_accounts().await.unwrap(),
        vec![ada.clone(), zed.clone()]
    );
    // The same email, whatever its case when typed, is a conflict.
    let twin = Account {
        id: AccountId::new(),
        ..ada.clone()
    };
    let err = store.insert_account(&twin, &phc("twin")).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(store.list_accounts().await.unwrap().len(), 2);

    let (here, here_secret) = session(&*store, ada.id).await;
    let (elsewhere, elsewhere_secret) = session(&*store, ada.id).await;
    let (zeds, zeds_secret) = session(&*store, zed.id).await;
    let later = now() + Duration::seconds(5);
    assert!(
        store
            .set_password(ada.id, &phc("second"), Some(here.id), later)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_password_hash(ada.id).await.unwrap(),
        Some(phc("second"))
    );
    let changed = store.get_account(ada.id).await.unwrap().unwrap();
    assert_eq!(
        (changed.password_changed_at, changed.created_at),
        (later, ada.created_at)
    );
    assert_eq!(
        store.find_session(&here_secret.digest()).await.unwrap(),
        Some(here)
    );
    assert_eq!(
        store
            .find_session(&elsewhere_secret.digest())
            .await
            .unwrap(),
        None,
        "the other session of {elsewhere:?} ended"
    );
    assert_eq!(
        store.find_session(&zeds_secret.digest()).await.unwrap(),
        Some(zeds),
        "another account's sessions stay"
    );
    // A reset keeps no session.
    assert!(
        store
            .set_password(ada.id, &phc("third"), None, later)
            .await
            .unwrap()
    );
    assert_eq!(
        store.find_session(&here_secret.digest()).await.unwrap(),
        None
    );
    assert!(
        !store
            .set_password(AccountId::new(), &phc("x"), None, later)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_password_hash(AccountId::new()).await.unwrap(),
        None
    );
}

/// Members: insert, get, list (owners first, then by email), an account's teams by name; a
/// second membership of the same account is a conflict, an unknown team or account not found.
pub async fn members_round_trip_owners_first(f: &dyn Fixture) {
    let store = f.store();
    let acme = team(&*store, "Acme").await;
    let beta = team(&*store, "Beta").await;
    let zed = account(&*store, "zed@example.com").await;
    let amy = account(&*store, "amy@example.com").await;
    let bob = account(&*store, "bob@example.com").await;
    let cat = account(&*store, "cat@example.com").await;
    let at = now();
    for (who, role) in [
        (&zed, Role::Owner),
        (&amy, Role::Member),
        (&bob, Role::Admin),
        (&cat, Role::Owner),
    ] {
        store
            .insert_member(acme.id, who.id, role, at)
            .await
            .unwrap();
    }
    store
        .insert_member(beta.id, amy.id, Role::Owner, at)
        .await
        .unwrap();
    let members = store.list_members(acme.id).await.unwrap();
    let listed: Vec<_> = members
        .iter()
        .map(|m| (m.account.email.as_str(), m.role))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("cat@example.com", Role::Owner),
            ("zed@example.com", Role::Owner),
            ("amy@example.com", Role::Member),
            ("bob@example.com", Role::Admin),
        ]
    );
    let bobs = store.get_member(acme.id, bob.id).await.unwrap().unwrap();
    assert_eq!(
        bobs,
        Member {
            team_id: acme.id,
            account: bob.clone(),
            role: Role::Admin,
            joined_at: at,
        }
    );
    assert_eq!(members[3], bobs);
    assert_eq!(store.get_member(beta.id, bob.id).await.unwrap(), None);
    assert_eq!(
        store.list_memberships(amy.id).await.unwrap(),
        vec![(acme.clone(), Role::Member), (beta.clone(), Role::Owner)]
    );
    assert_eq!(
        store.list_memberships(bob.id).await.unwrap(),
        vec![(acme.clone(), Role::Admin)]
    );
    assert!(
        store
            .list_memberships(AccountId::new())
            .await
            .unwrap()
            .is_empty()
    );

    let err = store
        .insert_member(acme.id, bob.id, Role::Owner, at)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(
        store
            .get_member(acme.id, bob.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Admin
    );
    let err = store
        .insert_member(TeamId::new(), bob.id, Role::Owner, at)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = store
        .insert_member(acme.id, AccountId::new(), Role::Owner, at)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    // Role changes and removals of members who are not owners.
    assert_eq!(
        store
            .set_member_role(acme.id, amy.id, Role::Admin, now())
            .await
            .unwrap(),
        MemberChange::Done
    );
    assert_eq!(
        store
            .get_member(acme.id, amy.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Admin
    );
    assert_eq!(
        store.delete_member(acme.id, bob.id).await.unwrap(),
        MemberChange::Done
    );
    assert_eq!(store.get_member(acme.id, bob.id).await.unwrap(), None);
    assert_eq!(
        store.delete_member(acme.id, bob.id).await.unwrap(),
        MemberChange::NotFound
    );
    assert_eq!(
        store
            .set_member_role(beta.id, bob.id, Role::Admin, now())
            .await
            .unwrap(),
        MemberChange::NotFound
    );
    assert_eq!(
        store
            .set_member_role(TeamId::new(), amy.id, Role::Admin, now())
            .await
            .unwrap(),
        MemberChange::NotFound
    );
    // The account stays when its membership goes.
    assert_eq!(store.get_account(bob.id).await.unwrap(), Some(bob));
}

/// A team's last owner can be neither demoted nor removed; once another owner exists, either
/// can go.
pub async fn the_last_owner_cannot_be_demoted_or_removed(f: &dyn Fixture) {
    let store = f.store();
    let t = team(&*store, "Acme").await;
    let ada = account(&*store, "ada@example.com").await;
    let bob = account(&*store, "bob@example.com").await;
    store
        .insert_member(t.id, ada.id, Role::Owner, now())
        .await
        .unwrap();
    store
        .insert_member(t.id, bob.id, Role::Member, now())
        .await
        .unwrap();
    for role in [Role::Admin, Role::Member] {
        assert_eq!(
            store
                .set_member_role(t.id, ada.id, role, now())
                .await
                .unwrap(),
            MemberChange::LastOwner
        );
    }
    assert_eq!(
        store.delete_member(t.id, ada.id).await.unwrap(),
        MemberChange::LastOwner
    );
    assert_eq!(owners(&*store, t.id).await, vec![ada.id]);
    // Staying an owner is no demotion.
    assert_eq!(
        store
            .set_member_role(t.id, ada.id, Role::Owner, now())
            .await
            .unwrap(),
        MemberChange::Done
    );
    // With a second owner, the first may step down, and then the second is the last.
    assert_eq!(
        store
            .set_member_role(t.id, bob.id, Role::Owner, now())
            .await
            .unwrap(),
        MemberChange::Done
    );
    assert_eq!(
        store
            .set_member_role(t.id, ada.id, Role::Member, now())
            .await
            .unwrap(),
        MemberChange::Done
    );
    assert_eq!(
        store.delete_member(t.id, bob.id).await.unwrap(),
        MemberChange::LastOwner
    );
    assert_eq!(
        store.delete_member(t.id, ada.id).await.unwrap(),
        MemberChange::Done
    );
    assert_eq!(owners(&*store, t.id).await, vec![bob.id]);
}

/// Two owners demoted (or removed) at the same time, each change on its own connection: one
/// succeeds and the other finds it would leave no owner. The team always keeps exactly one.
pub async fn concurrent_demotions_of_the_last_two_owners_leave_one(f: &dyn Fixture) {
    let store = f.store();
    for round in 0..12 {
        let t = team(&*store, &format!("Team {round}")).await;
        let ada = account(&*store, &format!("ada{round}@example.com")).await;
        let bob = account(&*store, &format!("bob{round}@example.com")).await;
        for who in [&ada, &bob] {
            store
                .insert_member(t.id, who.id, Role::Owner, now())
                .await
                .unwrap();
        }
        let (a, b) = if round % 2 == 0 {
            tokio::join!(
                store.set_member_role(t.id, ada.id, Role::Admin, now()),
                store.set_member_role(t.id, bob.id, Role::Member, now()),
            )
        } else {
            tokio::join!(
                store.delete_member(t.id, ada.id),
                store.set_member_role(t.id, bob.id, Role::Admin, now()),
            )
        };
        let mut outcomes = vec![a.unwrap(), b.unwrap()];
        outcomes.sort_by_key(|o| *o != MemberChange::Done);
        assert_eq!(
            outcomes,
            vec![MemberChange::Done, MemberChange::LastOwner],
            "round {round}"
        );
        assert_eq!(owners(&*store, t.id).await.len(), 1, "round {round}");
    }
}

/// Deleting a team deletes its memberships, not the accounts.
pub async fn deleting_a_team_cascades_its_members(f: &dyn Fixture) {
    let store = f.store();
    let acme = team(&*store, "Acme").await;
    let beta = team(&*store, "Beta").await;
    let ada = account(&*store, "ada@example.com").await;
    for t in [&acme, &beta] {
        store
            .insert_member(t.id, ada.id, Role::Owner, now())
            .await
            .unwrap();
    }
    f.delete_team(acme.id).await;
    assert!(store.list_members(acme.id).await.unwrap().is_empty());
    assert_eq!(
        store.list_memberships(ada.id).await.unwrap(),
        vec![(beta, Role::Owner)]
    );
    assert_eq!(store.get_account(ada.id).await.unwrap(), Some(ada));
}

/// Sessions: found by the digest of their value only; touched forward, never past their
/// absolute expiry; deleted one by one or per account; expired ones (idle or absolute) pruned.
pub async fn sessions_round_trip_touch_delete_and_prune(f: &dyn Fixture) {
    let store = f.store();
    let ada = account(&*store, "ada@example.com").await;
    let bob = account(&*store, "bob@example.com").await;
    let (s, secret) = session(&*store, ada.id).await;
    assert_eq!(
        store.find_session(&secret.digest()).await.unwrap(),
        Some(s.clone())
    );
    let other = SessionSecret::mint().unwrap();
    assert_eq!(store.find_session(&other.digest()).await.unwrap(), None);
    // A value is stored once; a session of no account is refused.
    let (twin, _) = session_at(bob.id, now());
    let err = store
        .insert_session(&twin, &secret.digest())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let (orphan, orphan_secret) = session_at(AccountId::new(), now());
    let err = store
        .insert_session(&orphan, &orphan_secret.digest())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    // Touch: forward.
    let seen = s.last_seen_at + Duration::minutes(5);
    store
        .touch_session(s.id, seen, seen + Duration::minutes(30))
        .await
        .unwrap();
    let touched = store.find_session(&secret.digest()).await.unwrap().unwrap();
    assert_eq!(
        (
            touched.last_seen_at,
            touched.idle_expires_at,
            touched.expires_at
        ),
        (seen, seen + Duration::minutes(30), s.expires_at)
    );
    // Not back.
    store
        .touch_session(s.id, s.last_seen_at, s.idle_expires_at)
        .await
        .unwrap();
    assert_eq!(
        store.find_session(&secret.digest()).await.unwrap(),
        Some(touched)
    );
    // Never past the absolute expiry.
    let late = s.expires_at - Duration::minutes(1);
    store
        .touch_session(s.id, late, late + Duration::minutes(30))
        .await
        .unwrap();
    let near_end = store.find_session(&secret.digest()).await.unwrap().unwrap();
    assert_eq!(
        (near_end.last_seen_at, near_end.idle_expires_at),
        (late, s.expires_at)
    );
    // Touching a session that is gone is no error.
    store
        .touch_session(SessionId::new(), late, late)
        .await
        .unwrap();

    // Delete one, then all of an account's but one.
    assert!(store.delete_session(s.id).await.unwrap());
    assert!(!store.delete_session(s.id).await.unwrap());
    assert_eq!(store.find_session(&secret.digest()).await.unwrap(), None);
    let (keep, keep_secret) = session(&*store, ada.id).await;
    let (gone, gone_secret) = session(&*store, ada.id).await;
    let (bobs, bobs_secret) = session(&*store, bob.id).await;
    assert_eq!(
        store
            .delete_account_sessions(ada.id, Some(keep.id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.find_session(&gone_secret.digest()).await.unwrap(),
        None,
        "{gone:?} ended"
    );
    assert_eq!(
        store.find_session(&keep_secret.digest()).await.unwrap(),
        Some(keep.clone())
    );
    assert_eq!(
        store.delete_account_sessions(ada.id, None).await.unwrap(),
        1
    );
    assert_eq!(
        store.find_session(&bobs_secret.digest()).await.unwrap(),
        Some(bobs.clone())
    );

    // Prune: idle-expired and absolutely-expired sessions go, live ones stay.
    let t0 = now();
    let (idle, idle_secret) = session_at(ada.id, t0 - Duration::hours(1));
    let absolute = Session {
        // Used a minute ago, but its twelve hours are over.
        last_seen_at: t0 - Duration::minutes(1),
        idle_expires_at: t0 + Duration::minutes(29),
        expires_at: t0 - Duration::seconds(1),
        ..session_at(ada.id, t0 - Duration::hours(12)).0
    };
    let absolute_secret = SessionSecret::mint().unwrap();
    let (live, live_secret) = session_at(ada.id, t0);
    for (s, secret) in [
        (&idle, &idle_secret),
        (&absolute, &absolute_secret),
        (&live, &live_secret),
    ] {
        store.insert_session(s, &secret.digest()).await.unwrap();
    }
    let stored = store
        .find_session(&absolute_secret.digest())
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.is_live(t0), "{stored:?}");
    assert_eq!(store.prune_sessions(t0).await.unwrap(), 2);
    assert_eq!(store.prune_sessions(t0).await.unwrap(), 0);
    assert_eq!(
        store.find_session(&idle_secret.digest()).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_session(&absolute_secret.digest()).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_session(&live_secret.digest()).await.unwrap(),
        Some(live)
    );
    assert_eq!(
        store.find_session(&bobs_secret.digest()).await.unwrap(),
        Some(bobs)
    );
}

/// Failed logins: recorded under each key, counted from an instant on with the oldest counted,
/// cleared per key, pruned by age.
pub async fn login_failures_count_within_a_window_clear_and_prune(f: &dyn Fixture) {
    let store = f.store();
    let t0 = now();
    let email = "email:ada@example.com".to_owned();
    let ip = "ip:192.0.2.7".to_owned();
    for minutes in [20, 10, 5, 1] {
        store
            .record_login_failures(
                &[email.clone(), ip.clone()],
                t0 - Duration::minutes(minutes),
            )
            .await
            .unwrap();
    }
    store
        .record_login_failures(std::slice::from_ref(&ip), t0)
        .await
        .unwrap();
    store.record_login_failures(&[], t0).await.unwrap();
    let since = t0 - Duration::minutes(15);
    assert_eq!(
        store.count_login_failures(&email, since).await.unwrap(),
        (3, Some(t0 - Duration::minutes(10)))
    );
    assert_eq!(
        store.count_login_failures(&ip, since).await.unwrap(),
        (4, Some(t0 - Duration::minutes(10)))
    );
    // The window's start is included.
    assert_eq!(
        store
            .count_login_failures(&email, t0 - Duration::minutes(5))
            .await
            .unwrap(),
        (2, Some(t0 - Duration::minutes(5)))
    );
    assert_eq!(
        store
            .count_login_failures("email:nobody@example.com", since)
            .await
            .unwrap(),
        (0, None)
    );
    store.clear_login_failures(&email).await.unwrap();
    assert_eq!(
        store.count_login_failures(&email, since).await.unwrap(),
        (0, None)
    );
    assert_eq!(
        store.count_login_failures(&ip, since).await.unwrap().0,
        4,
        "other keys keep their count"
    );
    assert_eq!(
        store
            .prune_login_failures(t0 - Duration::minutes(5))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count_login_failures(&ip, t0 - Duration::days(1))
            .await
            .unwrap(),
        (3, Some(t0 - Duration::minutes(5)))
    );
}

fn audit_entry(team: Option<TeamId>, actor: &Account, action: AuditAction) -> AuditEntry {
    AuditEntry {
        id: AuditEntryId::new(),
        team_id: team,
        actor_id: Some(actor.id),
        actor_email: Some(actor.email.as_str().to_owned()),
        action,
        target: Some(format!("member:{}", actor.id)),
        detail: Some("member → admin".to_owned()),
        ip: Some("2001:db8::7".parse().unwrap()),
        at: now(),
    }
}

/// The audit log: entries page newest first per team and per actor; an entry about a token
/// writes the token's log entry with it (via the dashboard, with its actor, filterable by
/// action, and no "last used" change), or neither when one fails.
pub async fn audit_entries_page_newest_first_and_log_token_changes(f: &dyn Fixture) {
    let store = f.store();
    let acme = team(&*store, "Acme").await;
    let beta = team(&*store, "Beta").await;
    let ada = account(&*store, "ada@example.com").await;
    let bob = account(&*store, "bob@example.com").await;
    let mut acme_entries = Vec::new();
    for action in [
        AuditAction::MemberAdded,
        AuditAction::MemberRoleChanged,
        AuditAction::MemberRemoved,
    ] {
        let entry = audit_entry(Some(acme.id), &ada, action);
        store.append_audit(&entry, None).await.unwrap();
        acme_entries.push(entry);
    }
    let login = AuditEntry {
        target: None,
        detail: None,
        ip: None,
        ..audit_entry(None, &ada, AuditAction::Login)
    };
    store.append_audit(&login, None).await.unwrap();
    let by_bob = audit_entry(Some(acme.id), &bob, AuditAction::MemberAdded);
    store.append_audit(&by_bob, None).await.unwrap();
    acme_entries.push(by_bob.clone());
    let anonymous = AuditEntry {
        actor_id: None,
        actor_email: None,
        ..audit_entry(None, &bob, AuditAction::LoginFailed)
    };
    store.append_audit(&anonymous, None).await.unwrap();
    store
        .append_audit(
            &audit_entry(Some(beta.id), &bob, AuditAction::MemberAdded),
            None,
        )
        .await
        .unwrap();

    let newest_first: Vec<_> = acme_entries.iter().rev().cloned().collect();
    assert_eq!(
        store.list_audit(acme.id, None, 10).await.unwrap(),
        newest_first
    );
    let first = store.list_audit(acme.id, None, 3).await.unwrap();
    assert_eq!(first, newest_first[..3]);
    let rest = store
        .list_audit(acme.id, Some(first[2].id), 3)
        .await
        .unwrap();
    assert_eq!(rest, newest_first[3..]);
    assert!(
        store
            .list_audit(acme.id, Some(rest[0].id), 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_audit(TeamId::new(), None, 3)
            .await
            .unwrap()
            .is_empty()
    );
    // An account's entries: account-wide and in any team, newest first.
    let adas = store.list_account_audit(ada.id, None, 10).await.unwrap();
    assert_eq!(
        adas,
        vec![
            login.clone(),
            acme_entries[2].clone(),
            acme_entries[1].clone(),
            acme_entries[0].clone()
        ]
    );
    assert_eq!(
        store
            .list_account_audit(ada.id, Some(login.id), 1)
            .await
            .unwrap(),
        vec![acme_entries[2].clone()]
    );
    assert_eq!(
        store
            .list_account_audit(bob.id, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );

    // An entry about a token, with the token's log entry.
    let p = project(&*store, acme.id, "Shop").await;
    let (tok, _) = token(&*store, p.id, "main").await;
    store
        .record_usage(&UsageBatch::from_records(vec![usage(
            tok.id,
            now() - Duration::seconds(1),
            Outcome::Accepted,
            "192.0.2.1",
        )]))
        .await
        .unwrap();
    let before = project_tokens(&*store)
        .get_token(tok.id)
        .await
        .unwrap()
        .unwrap();
    let entry = AuditEntry {
        target: Some(format!("token:{}", tok.id)),
        detail: Some("project token main".to_owned()),
        ..audit_entry(Some(acme.id), &ada, AuditAction::TokenRegenerated)
    };
    let log = TokenLogEntry {
        id: lettermint_core::LogEntryId::new(),
        token_id: tok.id,
        at: entry.at,
        ip: entry.ip,
        via: Channel::Dashboard,
        action: Action::Regenerate,
        outcome: Outcome::Accepted,
        status: 200,
        message_ids: Vec::new(),
        user_agent: None,
        credential: None,
        leak_url: None,
        actor: Some("ada@example.com".to_owned()),
    };
    store.append_audit(&entry, Some(log.clone())).await.unwrap();
    assert_eq!(
        store.list_audit(acme.id, None, 1).await.unwrap(),
        vec![entry.clone()]
    );
    let newest = PageRequest::first(10, sort(LogSortKey::At, Direction::Descending));
    let regenerations = LogFilter {
        action: Some(Action::Regenerate),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_token_logs(tok.id, &regenerations, newest.keyset())
            .await
            .unwrap(),
        vec![log.clone()]
    );
    let sends = LogFilter {
        action: Some(Action::Send),
        ..Default::default()
    };
    let sent = store
        .list_token_logs(tok.id, &sends, newest.keyset())
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].via, sent[0].actor.as_deref()),
        (Channel::Api, None)
    );
    assert_eq!(
        store
            .list_token_logs(tok.id, &LogFilter::default(), newest.keyset())
            .await
            .unwrap()
            .len(),
        2
    );
    let after = project_tokens(&*store)
        .get_token(tok.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.last_use, before.last_use, "a change is not a use");

    // One transaction: when the token's log entry cannot be written, the audit entry is not.
    let doomed = audit_entry(Some(acme.id), &ada, AuditAction::TokenRevoked);
    assert!(store.append_audit(&doomed, Some(log)).await.is_err());
    assert_eq!(
        store.list_audit(acme.id, None, 1).await.unwrap(),
        vec![entry]
    );
}

/// A dashboard member's token changes through the services: members may not make them;
/// an admin's creation and revocation are audited and logged on the token with its actor.
pub async fn console_changes_are_audited_and_logged_on_the_token(f: &dyn Fixture) {
    use lettermint_core::Actor;
    let store = f.store();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let t = team(&*store, "Acme").await;
    let p = project(&*store, t.id, "Shop").await;
    let ada = account(&*store, "ada@example.com").await;
    let bob = account(&*store, "bob@example.com").await;
    store
        .insert_member(t.id, ada.id, Role::Admin, now())
        .await
        .unwrap();
    store
        .insert_member(t.id, bob.id, Role::Member, now())
        .await
        .unwrap();
    let admin = store.get_member(t.id, ada.id).await.unwrap().unwrap();
    let member = store.get_member(t.id, bob.id).await.unwrap().unwrap();
    let ip = Some("192.0.2.9".parse().unwrap());

    let err = services
        .console
        .create(
            &services.project_tokens,
            Actor {
                member: &member,
                ip,
            },
            p.id,
            "nope",
            (),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    assert!(store.list_audit(t.id, None, 10).await.unwrap().is_empty());

    let admin_actor = Actor { member: &admin, ip };
    let issued = services
        .console
        .create(&services.project_tokens, admin_actor, p.id, "web", (), None)
        .await
        .unwrap();
    services
        .console
        .revoke(&services.project_tokens, admin_actor, p.id, issued.token.id)
        .await
        .unwrap();
    let audit = store.list_audit(t.id, None, 10).await.unwrap();
    let actions: Vec<_> = audit.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![AuditAction::TokenRevoked, AuditAction::TokenCreated]
    );
    assert_eq!(audit[1].actor_id, Some(ada.id));
    assert_eq!(audit[1].target, Some(format!("token:{}", issued.token.id)));
    let newest = PageRequest::first(10, sort(LogSortKey::At, Direction::Descending));
    let created = store
        .list_token_logs(
            issued.token.id,
            &LogFilter {
                action: Some(Action::Create),
                ..Default::default()
            },
            newest.keyset(),
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(
        (
            created[0].via,
            created[0].actor.as_deref(),
            created[0].ip,
            created[0].status
        ),
        (Channel::Dashboard, Some("ada@example.com"), ip, 201)
    );
    let all = store
        .list_token_logs(issued.token.id, &LogFilter::default(), newest.keyset())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.action).collect::<Vec<_>>(),
        vec![Action::Revoke, Action::Create]
    );
    let token = project_tokens(&*store)
        .get_token(issued.token.id)
        .await
        .unwrap()
        .unwrap();
    assert!(token.last_use.at.is_none(), "a change is not a use");
}
