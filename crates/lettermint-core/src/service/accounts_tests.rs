//! The dashboard's rules (logins, sessions, passwords, member changes, token changes by
//! members) against mocked repositories and a mocked password hasher. A mock with no
//! expectation set panics when called, so each test also proves what is never touched.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::account::{Account, Argon2id, Email, Member, MockPasswordHasher, PasswordHash, Role};
use crate::audit::{AuditAction, AuditEntry};
use crate::clock::FixedClock;
use crate::error::Error;
use crate::id::{AccountId, ProjectId, SessionId, TeamId, TokenId};
use crate::kind::ForProject;
use crate::model::Channel;
use crate::name::Name;
use crate::repo::{
    MockAccountRepository, MockAuditRepository, MockLoginThrottleRepository, MockMemberRepository,
    MockSessionRepository, MockTokenRepository, MockUsageRepository,
};
use crate::scope::Scope;
use crate::session::Session;
use crate::token::TokenDigest;
use crate::usage::{Action, Outcome, TokenLogEntry};

use super::*;

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock(NOW))
}

fn team_a() -> TeamId {
    TeamId::from_uuid(uuid::Uuid::from_u128(1))
}

fn team_b() -> TeamId {
    TeamId::from_uuid(uuid::Uuid::from_u128(2))
}

fn account(n: u128, email: &str) -> Account {
    Account {
        id: AccountId::from_uuid(uuid::Uuid::from_u128(100 + n)),
        email: Email::from_stored(email.to_owned()),
        display_name: Name::from_stored(email.split('@').next().unwrap().to_owned()),
        created_at: NOW - Duration::days(10),
        password_changed_at: NOW - Duration::days(10),
    }
}

fn ada() -> Account {
    account(1, "ada@example.com")
}

fn member(team: TeamId, account: Account, role: Role) -> Member {
    Member {
        team_id: team,
        account,
        role,
        joined_at: NOW - Duration::days(1),
    }
}

fn stored_hash() -> PasswordHash {
    PasswordHash::from_stored("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into())
}

fn client_ip() -> Option<IpAddr> {
    Some("192.0.2.1".parse().unwrap())
}

fn session_of(account: &Account, last_seen_at: OffsetDateTime) -> Session {
    Session {
        id: SessionId::from_uuid(uuid::Uuid::from_u128(500)),
        account_id: account.id,
        created_at: NOW - Duration::hours(1),
        last_seen_at,
        idle_expires_at: last_seen_at + Duration::minutes(30),
        expires_at: NOW + Duration::hours(11),
    }
}

/// What the audit log was given: each entry with its token log entry, if any.
type Audited = Arc<Mutex<Vec<(AuditEntry, Option<TokenLogEntry>)>>>;

fn validation_fields(err: Error) -> Vec<String> {
    match err {
        Error::Validation(v) => v.fields().keys().cloned().collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// The repositories and hasher of an [`AccountService`], each a mock that panics on any call
/// not expected.
#[derive(Default)]
struct Mocks {
    accounts: MockAccountRepository,
    members: MockMemberRepository,
    sessions: MockSessionRepository,
    throttle: MockLoginThrottleRepository,
    audit: MockAuditRepository,
    hasher: MockPasswordHasher,
}

impl Mocks {
    fn service(self) -> AccountService {
        AccountService::new(
            AccountRepos {
                accounts: Arc::new(self.accounts),
                members: Arc::new(self.members),
                sessions: Arc::new(self.sessions),
                throttle: Arc::new(self.throttle),
                audit: Arc::new(self.audit),
            },
            clock(),
        )
        .with_hasher(Arc::new(self.hasher))
    }

    /// Login failures: `email_count` for every `email:` key, `ip_count` for every `ip:` key.
    fn failures(
        &mut self,
        email_count: (u64, Option<OffsetDateTime>),
        ip_count: (u64, Option<OffsetDateTime>),
    ) {
        let since = NOW - LoginThrottle::default().window;
        self.throttle
            .expect_count_login_failures()
            .withf(move |_, at| *at == since)
            .times(2)
            .returning(move |key, _| {
                Ok(if key.starts_with("email:") {
                    email_count
                } else {
                    ip_count
                })
            });
    }

    /// `account` is found by email (with [`stored_hash`]) and by id (for audit entries).
    fn knows(&mut self, account: Account) {
        let email = account.email.clone();
        let found = account.clone();
        self.accounts
            .expect_find_account_by_email()
            .withf(move |e| *e == email)
            .returning(move |_| Ok(Some((found.clone(), stored_hash()))));
        self.accounts
            .expect_get_account()
            .returning(move |id| Ok((id == account.id).then(|| account.clone())));
    }

    /// The audit log takes one entry per call, kept in the returned list.
    fn audit_sink(&mut self) -> Audited {
        let sink = Arc::new(Mutex::new(Vec::new()));
        let kept = sink.clone();
        self.audit
            .expect_append_audit()
            .returning(move |entry, log| {
                kept.lock().unwrap().push((entry.clone(), log));
                Ok(())
            });
        sink
    }

    /// Failures are recorded once; the keys are kept in the returned list.
    fn record_sink(&mut self) -> Arc<Mutex<Vec<String>>> {
        let sink = Arc::new(Mutex::new(Vec::new()));
        let kept = sink.clone();
        self.throttle
            .expect_record_login_failures()
            .withf(|_, at| *at == NOW)
            .times(1)
            .returning(move |keys, _| {
                kept.lock().unwrap().extend(keys.iter().cloned());
                Ok(())
            });
        sink
    }
}

fn actions(sink: &Audited) -> Vec<AuditAction> {
    sink.lock().unwrap().iter().map(|(e, _)| e.action).collect()
}

// --- login ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_password_records_failures_under_email_and_ip_and_is_invalid_credentials() {
    let mut mocks = Mocks::default();
    mocks.failures((0, None), (0, None));
    mocks.knows(ada());
    mocks
        .hasher
        .expect_verify()
        .withf(|password, hash| {
            password.expose_secret() == "not the password" && *hash == stored_hash()
        })
        .times(1)
        .returning(|_, _| Ok(false));
    let recorded = mocks.record_sink();
    let audited = mocks.audit_sink();
    let err = mocks
        .service()
        .login(" Ada@Example.com ", "not the password".into(), client_ip())
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
    assert_eq!(
        *recorded.lock().unwrap(),
        vec!["email:ada@example.com", "ip:192.0.2.1"]
    );
    let audited = audited.lock().unwrap();
    assert_eq!(audited.len(), 1);
    let (entry, log) = &audited[0];
    assert_eq!(
        (entry.action, entry.actor_id, entry.ip, entry.team_id),
        (AuditAction::LoginFailed, Some(ada().id), client_ip(), None)
    );
    assert!(log.is_none());
}

#[tokio::test]
async fn an_unknown_email_still_checks_one_password_and_records_failures() {
    let mut mocks = Mocks::default();
    mocks.failures((0, None), (0, None));
    mocks
        .accounts
        .expect_find_account_by_email()
        .times(1)
        .returning(|_| Ok(None));
    // The same work as for a known account: one check, against a hash that matches nothing.
    mocks
        .hasher
        .expect_verify()
        .withf(|_, hash| hash.as_str() == Argon2id::DUMMY_HASH)
        .times(1)
        .returning(|_, _| Ok(false));
    let recorded = mocks.record_sink();
    let audited = mocks.audit_sink();
    let err = mocks
        .service()
        .login("nobody@example.com", "whatever it is".into(), client_ip())
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
    assert_eq!(
        *recorded.lock().unwrap(),
        vec!["email:nobody@example.com", "ip:192.0.2.1"]
    );
    let audited = audited.lock().unwrap();
    assert_eq!(
        (audited[0].0.action, audited[0].0.actor_id),
        (AuditAction::LoginFailed, None)
    );
}

#[tokio::test]
async fn too_many_failures_of_an_email_are_throttled_without_checking_the_password() {
    let mut mocks = Mocks::default();
    // Five failures, the oldest five minutes ago: free again when it leaves the 15-minute
    // window, in ten minutes.
    mocks.failures((5, Some(NOW - Duration::minutes(5))), (0, None));
    mocks.knows(ada());
    // No expectation on the hasher, on recording failures or on sessions: any call panics.
    let audited = mocks.audit_sink();
    let err = mocks
        .service()
        .login("ada@example.com", "the right password".into(), client_ip())
        .await
        .unwrap_err();
    match err {
        LoginError::Throttled { retry_after } => assert_eq!(retry_after, Duration::minutes(10)),
        other => panic!("expected throttling, got {other:?}"),
    }
    let audited = audited.lock().unwrap();
    assert_eq!(
        (
            audited[0].0.action,
            audited[0].0.actor_id,
            audited[0].0.detail.as_deref()
        ),
        (AuditAction::LoginFailed, Some(ada().id), Some("throttled"))
    );
}

#[tokio::test]
async fn too_many_failures_from_an_address_are_throttled_too() {
    let mut mocks = Mocks::default();
    mocks.failures((0, None), (20, Some(NOW - Duration::minutes(14))));
    mocks
        .accounts
        .expect_find_account_by_email()
        .returning(|_| Ok(None));
    let audited = mocks.audit_sink();
    let err = mocks
        .service()
        .login("someone@example.com", "a guess".into(), client_ip())
        .await
        .unwrap_err();
    match err {
        LoginError::Throttled { retry_after } => assert_eq!(retry_after, Duration::minutes(1)),
        other => panic!("expected throttling, got {other:?}"),
    }
    assert_eq!(actions(&audited), vec![AuditAction::LoginFailed]);
}

#[tokio::test]
async fn a_good_password_clears_the_email_count_and_starts_a_session_stored_by_digest() {
    let mut mocks = Mocks::default();
    mocks.failures((2, Some(NOW - Duration::minutes(3))), (0, None));
    mocks.knows(ada());
    mocks
        .hasher
        .expect_verify()
        .times(1)
        .returning(|_, _| Ok(true));
    mocks
        .throttle
        .expect_clear_login_failures()
        .withf(|key| key == "email:ada@example.com")
        .times(1)
        .returning(|_| Ok(()));
    let stored: Arc<Mutex<Option<(Session, TokenDigest)>>> = Arc::new(Mutex::new(None));
    let sink = stored.clone();
    mocks
        .sessions
        .expect_insert_session()
        .times(1)
        .returning(move |session, digest| {
            *sink.lock().unwrap() = Some((session.clone(), *digest));
            Ok(())
        });
    let audited = mocks.audit_sink();
    let started = mocks
        .service()
        .login("ada@example.com", "the right password".into(), client_ip())
        .await
        .unwrap();
    let (session, digest) = stored.lock().unwrap().clone().unwrap();
    assert_eq!(digest, started.secret.digest());
    assert_eq!(session, started.session);
    assert_eq!(
        (
            session.account_id,
            session.created_at,
            session.idle_expires_at,
            session.expires_at
        ),
        (
            ada().id,
            NOW,
            NOW + Duration::minutes(30),
            NOW + Duration::hours(12)
        )
    );
    let audited = audited.lock().unwrap();
    assert_eq!(
        (audited[0].0.action, audited[0].0.actor_id, audited[0].0.ip),
        (AuditAction::Login, Some(ada().id), client_ip())
    );
}

// --- sessions -------------------------------------------------------------------------------

#[tokio::test]
async fn resume_deletes_a_session_past_its_idle_or_absolute_expiry() {
    let idle = session_of(&ada(), NOW - Duration::minutes(30));
    let absolute = Session {
        last_seen_at: NOW - Duration::minutes(1),
        idle_expires_at: NOW + Duration::minutes(29),
        expires_at: NOW,
        ..session_of(&ada(), NOW)
    };
    for expired in [idle, absolute] {
        let mut mocks = Mocks::default();
        let found = expired.clone();
        mocks
            .sessions
            .expect_find_session()
            .times(1)
            .returning(move |_| Ok(Some(found.clone())));
        let id = expired.id;
        mocks
            .sessions
            .expect_delete_session()
            .withf(move |s| *s == id)
            .times(1)
            .returning(|_| Ok(true));
        // Neither touched nor its account read.
        let secret = crate::session::SessionSecret::mint().unwrap();
        assert_eq!(mocks.service().resume(&secret).await.unwrap(), None);
    }
}

#[tokio::test]
async fn resume_moves_a_live_session_forward_up_to_its_absolute_expiry() {
    for (expires_at, idle_expected) in [
        (NOW + Duration::hours(11), NOW + Duration::minutes(30)),
        (NOW + Duration::minutes(10), NOW + Duration::minutes(10)),
    ] {
        let mut mocks = Mocks::default();
        let live = Session {
            expires_at,
            ..session_of(&ada(), NOW - Duration::minutes(2))
        };
        let found = live.clone();
        mocks
            .sessions
            .expect_find_session()
            .returning(move |_| Ok(Some(found.clone())));
        mocks
            .sessions
            .expect_touch_session()
            .withf(move |id, seen, idle| *id == live.id && *seen == NOW && *idle == idle_expected)
            .times(1)
            .returning(|_, _, _| Ok(()));
        mocks
            .accounts
            .expect_get_account()
            .returning(|_| Ok(Some(ada())));
        let secret = crate::session::SessionSecret::mint().unwrap();
        let (session, account) = mocks.service().resume(&secret).await.unwrap().unwrap();
        assert_eq!(
            (session.last_seen_at, session.idle_expires_at, account),
            (NOW, idle_expected, ada())
        );
    }
}

#[tokio::test]
async fn a_wrong_current_password_is_a_validation_error_and_keeps_every_session() {
    let mut mocks = Mocks::default();
    mocks
        .accounts
        .expect_get_password_hash()
        .times(1)
        .returning(|_| Ok(Some(stored_hash())));
    mocks
        .hasher
        .expect_verify()
        .times(1)
        .returning(|_, _| Ok(false));
    // No hash of the new password, no set_password (which would end the other sessions), no
    // session deleted, nothing audited.
    let session = session_of(&ada(), NOW);
    let err = mocks
        .service()
        .change_password(
            &session,
            "a wrong guess".into(),
            "correct horse battery staple".into(),
            client_ip(),
        )
        .await
        .unwrap_err();
    assert_eq!(validation_fields(err), vec!["current_password"]);
}

// --- members --------------------------------------------------------------------------------

#[tokio::test]
async fn admins_cannot_add_promote_demote_or_remove_owners() {
    let admin = member(team_a(), ada(), Role::Admin);
    let bob = account(2, "bob@example.com");
    let service = Mocks::default().service();
    for result in [
        service
            .add_member(Some(&admin), team_a(), bob.id, Role::Owner, None)
            .await,
        service
            .set_role(Some(&admin), team_a(), bob.id, Role::Owner, None)
            .await,
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::Forbidden { required } if required == "owner"),
            "{err:?}"
        );
    }
    // An owner is out of an admin's reach, to demote as to remove.
    let mut mocks = Mocks::default();
    let owner = member(team_a(), bob.clone(), Role::Owner);
    mocks
        .members
        .expect_get_member()
        .times(2)
        .returning(move |_, _| Ok(Some(owner.clone())));
    let service = mocks.service();
    for result in [
        service
            .set_role(Some(&admin), team_a(), bob.id, Role::Member, None)
            .await,
        service
            .remove_member(Some(&admin), team_a(), bob.id, None)
            .await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn admins_manage_members_and_admins() {
    let admin = member(team_a(), ada(), Role::Admin);
    let bob = account(2, "bob@example.com");
    let mut mocks = Mocks::default();
    mocks
        .members
        .expect_insert_member()
        .withf(move |team, account, role, at| {
            (*team, *account, *role, *at) == (team_a(), bob.id, Role::Admin, NOW)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    mocks
        .accounts
        .expect_get_account()
        .returning(|_| Ok(Some(ada())));
    let audited = mocks.audit_sink();
    mocks
        .service()
        .add_member(Some(&admin), team_a(), bob.id, Role::Admin, client_ip())
        .await
        .unwrap();
    let audited = audited.lock().unwrap();
    let entry = &audited[0].0;
    assert_eq!(
        (
            entry.action,
            entry.team_id,
            entry.actor_email.as_deref(),
            entry.target.clone()
        ),
        (
            AuditAction::MemberAdded,
            Some(team_a()),
            Some("ada@example.com"),
            Some(format!("member:{}", bob.id))
        )
    );
}

#[tokio::test]
async fn members_manage_nobody() {
    let plain = member(team_a(), ada(), Role::Member);
    let bob = account(2, "bob@example.com");
    let mut mocks = Mocks::default();
    let target = member(team_a(), bob.clone(), Role::Member);
    mocks
        .members
        .expect_get_member()
        .times(1)
        .returning(move |_, _| Ok(Some(target.clone())));
    let service = mocks.service();
    for result in [
        service
            .add_member(Some(&plain), team_a(), bob.id, Role::Member, None)
            .await,
        service
            .set_role(Some(&plain), team_a(), bob.id, Role::Member, None)
            .await,
        service
            .remove_member(Some(&plain), team_a(), bob.id, None)
            .await,
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::Forbidden { required } if required == "admin"),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_member_of_another_team_finds_nothing_to_change() {
    let owner_elsewhere = member(team_b(), ada(), Role::Owner);
    let bob = account(2, "bob@example.com");
    let mut mocks = Mocks::default();
    let target = member(team_a(), bob.clone(), Role::Member);
    mocks
        .members
        .expect_get_member()
        .returning(move |_, _| Ok(Some(target.clone())));
    let service = mocks.service();
    for result in [
        service
            .add_member(Some(&owner_elsewhere), team_a(), bob.id, Role::Member, None)
            .await,
        service
            .set_role(Some(&owner_elsewhere), team_a(), bob.id, Role::Admin, None)
            .await,
        service
            .remove_member(Some(&owner_elsewhere), team_a(), bob.id, None)
            .await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }
}

// --- token changes by members ---------------------------------------------------------------

fn project_id() -> ProjectId {
    ProjectId::from_uuid(uuid::Uuid::from_u128(10))
}

fn token_service(tokens: MockTokenRepository<ForProject>) -> crate::ProjectTokenService {
    TokenService::new(
        Arc::new(tokens),
        Arc::new(MockUsageRepository::new()),
        clock(),
    )
}

#[tokio::test]
async fn a_member_cannot_change_tokens_and_nothing_is_read_or_written() {
    let plain = member(team_a(), ada(), Role::Member);
    let console = ConsoleService::new(Arc::new(MockAuditRepository::new()), clock());
    let tokens = token_service(MockTokenRepository::new());
    let actor = Actor {
        member: &plain,
        ip: client_ip(),
    };
    let token = TokenId::from_uuid(uuid::Uuid::from_u128(100));
    let errors = [
        console
            .create(&tokens, actor, project_id(), "web", (), None)
            .await
            .map(|_| ())
            .unwrap_err(),
        console
            .regenerate(&tokens, actor, project_id(), token)
            .await
            .map(|_| ())
            .unwrap_err(),
        console
            .revoke(&tokens, actor, project_id(), token)
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    for err in errors {
        assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn an_admins_new_token_is_audited_with_its_token_log_entry() {
    let admin = member(team_a(), ada(), Role::Admin);
    let mut tokens = MockTokenRepository::<ForProject>::new();
    tokens
        .expect_owner_team()
        .returning(|owner| Ok((owner == project_id()).then(team_a)));
    tokens
        .expect_insert_token()
        .times(1)
        .returning(|_, _| Ok(()));
    let mut audit = MockAuditRepository::new();
    let kept: Audited = Arc::new(Mutex::new(Vec::new()));
    let sink = kept.clone();
    audit
        .expect_append_audit()
        .times(1)
        .returning(move |entry, log| {
            sink.lock().unwrap().push((entry.clone(), log));
            Ok(())
        });
    let console = ConsoleService::new(Arc::new(audit), clock());
    let issued = console
        .create(
            &token_service(tokens),
            Actor {
                member: &admin,
                ip: client_ip(),
            },
            project_id(),
            "web",
            (),
            None,
        )
        .await
        .unwrap();
    let kept = kept.lock().unwrap();
    let (entry, log) = &kept[0];
    assert_eq!(
        (
            entry.action,
            entry.team_id,
            entry.actor_id,
            entry.actor_email.as_deref(),
            entry.target.clone(),
            entry.ip,
            entry.at
        ),
        (
            AuditAction::TokenCreated,
            Some(team_a()),
            Some(ada().id),
            Some("ada@example.com"),
            Some(format!("token:{}", issued.token.id)),
            client_ip(),
            NOW
        )
    );
    let detail = entry.detail.as_deref().unwrap();
    assert!(
        !detail.contains(issued.secret.expose_secret()),
        "the audit log never holds a token's value"
    );
    let log = log.as_ref().expect("a token log entry");
    assert_eq!(
        (
            log.token_id,
            log.via,
            log.action,
            log.outcome,
            log.status,
            log.actor.as_deref(),
            log.ip,
            log.at
        ),
        (
            issued.token.id,
            Channel::Dashboard,
            Action::Create,
            Outcome::Accepted,
            201,
            Some("ada@example.com"),
            client_ip(),
            NOW
        )
    );
}

#[tokio::test]
async fn a_teams_members_are_listed_for_the_operator_and_hidden_from_other_teams() {
    let mut mocks = Mocks::default();
    let listed = vec![member(team_a(), ada(), Role::Owner)];
    let returned = listed.clone();
    mocks
        .members
        .expect_list_members()
        .withf(|team| *team == team_a())
        .times(1)
        .returning(move |_| Ok(returned.clone()));
    let service = mocks.service();
    assert_eq!(
        service
            .team_members(Scope::Operator, team_a())
            .await
            .unwrap(),
        listed
    );
    let err = service
        .team_members(Scope::Team(team_b()), team_a())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
