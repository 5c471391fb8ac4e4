//! Every service rule, against mocked repositories: a mock with no expectation set panics when
//! called, so these tests also prove which rules are enforced before the store is touched.

use std::sync::{Arc, Mutex};

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::IpAllowlist;
use crate::auth::{AuthFailure, AuthService};
use crate::clock::FixedClock;
use crate::error::Error;
use crate::id::{MessageId, ProjectId, TeamId, TokenId};
use crate::kind::{ForProject, ForTeam};
use crate::message::{Message, MessageContent, MessageStatus, Submission, TokenCredential};
use crate::model::{Channel, Project, ProjectToken, Route, Team, TeamToken};
use crate::name::Name;
use crate::repo::{
    MockMessageRepository, MockProjectRepository, MockRouteRepository, MockTeamRepository,
    MockTokenRepository, MockUsageRepository, ProjectTokenGrant, TeamTokenGrant,
};
use crate::rotation::{CredentialSlot, Overlap};
use crate::scope::Scope;
use crate::token::{PlainToken, TokenKind};
use crate::usage::{Action, Outcome, UsageRecord};
use crate::{Abilities, Ability, Resource};

use super::*;

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock(NOW))
}

fn team_id() -> TeamId {
    TeamId::from_uuid(uuid::Uuid::from_u128(1))
}

fn project_of(team: TeamId) -> Project {
    Project {
        id: ProjectId::from_uuid(uuid::Uuid::from_u128(10)),
        team_id: team,
        name: Name::from_stored("Shop".into()),
        smtp_enabled: true,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn token_of(project: ProjectId) -> ProjectToken {
    let secret = PlainToken::mint(TokenKind::Project).unwrap();
    ProjectToken {
        id: TokenId::from_uuid(uuid::Uuid::from_u128(100)),
        owner: project,
        name: Name::from_stored("main".into()),
        hint: secret.hint(),
        abilities: (),
        created_at: NOW,
        updated_at: NOW,
        last_use: Default::default(),
        expires_at: None,
        revoked_at: None,
        previous_expires_at: None,
        allowed_ips: crate::IpAllowlist::any(),
    }
}

/// `tokens`, which now also knows `project` as the only token owner there is.
fn owned_by(
    project: &Project,
    mut tokens: MockTokenRepository<ForProject>,
) -> MockTokenRepository<ForProject> {
    let (id, team) = (project.id, project.team_id);
    tokens
        .expect_owner_team()
        .returning(move |owner| Ok((owner == id).then_some(team)));
    tokens
}

fn token_service(tokens: MockTokenRepository<ForProject>) -> ProjectTokenService {
    TokenService::new(
        Arc::new(tokens),
        Arc::new(MockUsageRepository::new()),
        clock(),
    )
}

fn validation_fields(err: Error) -> Vec<String> {
    match err {
        Error::Validation(v) => v.fields().keys().cloned().collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

// --- project tokens -------------------------------------------------------------------------

#[tokio::test]
async fn create_stores_the_digest_of_the_secret_it_returns() {
    let project = project_of(team_id());
    let stored = Arc::new(Mutex::new(None));
    let mut tokens = MockTokenRepository::<ForProject>::new();
    let sink = stored.clone();
    tokens
        .expect_insert_token()
        .times(1)
        .returning(move |token, digest| {
            *sink.lock().unwrap() = Some((token.clone(), *digest));
            Ok(())
        });
    let service = token_service(owned_by(&project, tokens));
    let issued = service
        .create(
            Scope::Team(team_id()),
            project.id,
            "  checkout ",
            (),
            Some(NOW + Duration::days(1)),
        )
        .await
        .unwrap();
    let (token, digest) = stored.lock().unwrap().clone().unwrap();
    assert_eq!(digest, issued.secret.digest());
    assert_eq!(token, issued.token);
    assert_eq!(token.name.as_str(), "checkout");
    assert_eq!(token.hint, issued.secret.hint());
    assert_eq!((token.created_at, token.updated_at), (NOW, NOW));
    assert_eq!(issued.secret.kind(), TokenKind::Project);
}

#[tokio::test]
async fn create_validates_before_touching_the_store() {
    // No expectations: any repository call would panic.
    let service = token_service(MockTokenRepository::new());
    let scope = Scope::Team(team_id());
    let id = ProjectId::new();
    assert_eq!(
        validation_fields(service.create(scope, id, "", (), None).await.unwrap_err()),
        ["name"]
    );
    assert_eq!(
        validation_fields(
            service
                .create(scope, id, "ok", (), Some(NOW))
                .await
                .unwrap_err()
        ),
        ["expires_at"]
    );
    assert_eq!(
        validation_fields(
            service
                .create(scope, id, "ok", (), Some(NOW - Duration::seconds(1)))
                .await
                .unwrap_err()
        ),
        ["expires_at"]
    );
}

#[tokio::test]
async fn another_teams_project_is_not_found() {
    let project = project_of(TeamId::new());
    let service = token_service(owned_by(&project, MockTokenRepository::<ForProject>::new()));
    let err = service
        .create(Scope::Team(team_id()), project.id, "x", (), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "project" }),
        "{err:?}"
    );
}

fn tokens_returning(token: ProjectToken) -> MockTokenRepository<ForProject> {
    let mut tokens = MockTokenRepository::<ForProject>::new();
    tokens
        .expect_get_token()
        .returning(move |id| Ok((id == token.id).then(|| token.clone())));
    tokens
}

#[tokio::test]
async fn a_token_addressed_through_another_project_is_not_found() {
    let project = project_of(team_id());
    let token = token_of(project.id);
    let service = token_service(owned_by(&project, tokens_returning(token.clone())));
    let err = service
        .get(Scope::Operator, Some(ProjectId::new()), token.id)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "token" }),
        "{err:?}"
    );
}

#[tokio::test]
async fn revoked_tokens_cannot_be_renamed_or_regenerated() {
    let project = project_of(team_id());
    let mut token = token_of(project.id);
    token.revoked_at = Some(NOW);
    // No rename or replace expectation: calling them would panic.
    let service = token_service(owned_by(&project, tokens_returning(token.clone())));
    let err = service
        .rename(Scope::Operator, Some(project.id), token.id, "x")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let err = service
        .regenerate(Scope::Operator, Some(project.id), token.id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn revoking_a_revoked_token_changes_nothing() {
    let project = project_of(team_id());
    let mut token = token_of(project.id);
    token.revoked_at = Some(NOW - Duration::days(1));
    let service = token_service(owned_by(&project, tokens_returning(token.clone())));
    let again = service
        .revoke(Scope::Operator, None, token.id)
        .await
        .unwrap();
    assert_eq!(again.revoked_at, token.revoked_at);
}

#[tokio::test]
async fn revoke_and_regenerate_hit_the_store_once_each() {
    let project = project_of(team_id());
    let token = token_of(project.id);
    let mut tokens = tokens_returning(token.clone());
    let replaced = Arc::new(Mutex::new(None));
    let sink = replaced.clone();
    tokens
        .expect_replace_token_secret()
        .times(1)
        .returning(move |id, digest, _hint, at| {
            *sink.lock().unwrap() = Some((id, *digest, at));
            Ok(true)
        });
    tokens
        .expect_revoke_token()
        .withf(|_, at| *at == NOW)
        .times(1)
        .returning(|_, _| Ok(true));
    let service = token_service(owned_by(&project, tokens));
    let issued = service
        .regenerate(Scope::Operator, Some(project.id), token.id)
        .await
        .unwrap();
    let (id, digest, at) = replaced.lock().unwrap().unwrap();
    assert_eq!((id, digest, at), (token.id, issued.secret.digest(), NOW));
    service
        .revoke(Scope::Operator, Some(project.id), token.id)
        .await
        .unwrap();
}

#[tokio::test]
async fn regenerate_loses_a_race_with_revoke_as_a_conflict() {
    let project = project_of(team_id());
    let token = token_of(project.id);
    let mut tokens = tokens_returning(token.clone());
    tokens
        .expect_replace_token_secret()
        .returning(|_, _, _, _| Ok(false));
    let service = token_service(owned_by(&project, tokens));
    let err = service
        .regenerate(Scope::Operator, None, token.id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
}

// --- authentication -------------------------------------------------------------------------

fn auth(
    tokens: MockTokenRepository<ForProject>,
    team_tokens: MockTokenRepository<ForTeam>,
) -> AuthService {
    AuthService::new(Arc::new(tokens), Arc::new(team_tokens), clock())
}

fn failure<T: std::fmt::Debug>(r: crate::Result<T>) -> AuthFailure {
    match r {
        Err(Error::Unauthenticated(f)) => f,
        other => panic!("expected an authentication failure, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_tokens_are_refused_without_a_lookup() {
    let service = auth(
        MockTokenRepository::<ForProject>::new(),
        MockTokenRepository::<ForTeam>::new(),
    );
    let good = PlainToken::mint(TokenKind::Project).unwrap();
    let typo = format!(
        "{}x",
        &good.expose_secret()[..good.expose_secret().len() - 1]
    );
    for bad in ["", "   ", "Bearer abc", "lm_", "lm_short", typo.as_str()] {
        let f = failure(
            service
                .authenticate_project(Some(bad), Channel::Api, None)
                .await,
        );
        assert!(
            matches!(f, AuthFailure::Malformed(_) | AuthFailure::Missing),
            "{bad:?}: {f:?}"
        );
    }
    assert_eq!(
        failure(service.authenticate_project(None, Channel::Api, None).await),
        AuthFailure::Missing
    );
    assert_eq!(
        failure(service.authenticate_team(Some(""), None).await),
        AuthFailure::Missing
    );
}

fn grant(token: ProjectToken, smtp_enabled: bool) -> MockTokenRepository<ForProject> {
    let mut tokens = MockTokenRepository::<ForProject>::new();
    tokens.expect_find_token_by_digest().returning(move |_| {
        Ok(Some(ProjectTokenGrant {
            token: token.clone(),
            team_id: team_id(),
            smtp_enabled,
            slot: CredentialSlot::Current,
        }))
    });
    tokens
}

#[tokio::test]
async fn each_refusal_names_its_reason_and_token() {
    let secret = PlainToken::mint(TokenKind::Project).unwrap();
    let presented = Some(secret.expose_secret());
    let project = project_of(team_id());
    let token = token_of(project.id);

    let mut revoked = token.clone();
    revoked.revoked_at = Some(NOW - Duration::seconds(1));
    let service = auth(grant(revoked, true), MockTokenRepository::<ForTeam>::new());
    assert_eq!(
        failure(
            service
                .authenticate_project(presented, Channel::Api, None)
                .await
        ),
        AuthFailure::Revoked { token_id: token.id }
    );

    let mut expired = token.clone();
    expired.expires_at = Some(NOW);
    let service = auth(grant(expired, true), MockTokenRepository::<ForTeam>::new());
    assert_eq!(
        failure(
            service
                .authenticate_project(presented, Channel::Api, None)
                .await
        ),
        AuthFailure::Expired { token_id: token.id }
    );

    let service = auth(
        grant(token.clone(), false),
        MockTokenRepository::<ForTeam>::new(),
    );
    assert_eq!(
        failure(
            service
                .authenticate_project(presented, Channel::Smtp, None)
                .await
        ),
        AuthFailure::SmtpDisabled { token_id: token.id }
    );
    // The same token is fine on the API, and the caller carries the presented digest.
    let caller = service
        .authenticate_project(presented, Channel::Api, None)
        .await
        .unwrap();
    assert_eq!(
        caller.credential,
        TokenCredential {
            token_id: token.id,
            digest: secret.digest()
        }
    );
    assert_eq!((caller.team_id, caller.project_id), (team_id(), project.id));

    let mut unknown = MockTokenRepository::<ForProject>::new();
    unknown
        .expect_find_token_by_digest()
        .returning(|_| Ok(None));
    let service = auth(unknown, MockTokenRepository::<ForTeam>::new());
    assert_eq!(
        failure(
            service
                .authenticate_project(presented, Channel::Api, None)
                .await
        ),
        AuthFailure::Unknown
    );
}

fn team_grant(token: TeamToken) -> TeamTokenGrant {
    TeamTokenGrant {
        token,
        slot: CredentialSlot::Current,
    }
}

fn team_token(abilities: Abilities) -> TeamToken {
    let secret = PlainToken::mint(TokenKind::Team).unwrap();
    TeamToken {
        id: TokenId::new(),
        owner: team_id(),
        name: Name::from_stored("admin".into()),
        hint: secret.hint(),
        abilities,
        created_at: NOW,
        updated_at: NOW,
        last_use: Default::default(),
        expires_at: None,
        revoked_at: None,
        previous_expires_at: None,
        allowed_ips: crate::IpAllowlist::any(),
    }
}

#[tokio::test]
async fn tokens_of_the_wrong_kind_are_refused_and_attributed() {
    let team = team_token(Abilities::all());
    let team_secret = PlainToken::mint(TokenKind::Team).unwrap();
    let mut team_tokens = MockTokenRepository::<ForTeam>::new();
    let found = team.clone();
    team_tokens
        .expect_find_token_by_digest()
        .returning(move |_| Ok(Some(team_grant(found.clone()))));
    let service = auth(MockTokenRepository::<ForProject>::new(), team_tokens);
    assert_eq!(
        failure(
            service
                .authenticate_project(Some(team_secret.expose_secret()), Channel::Api, None)
                .await
        ),
        AuthFailure::WrongKind {
            token_id: Some(team.id)
        }
    );
    let caller = service
        .authenticate_team(Some(team_secret.expose_secret()), None)
        .await
        .unwrap();
    assert_eq!(caller.token_id, team.id);

    let project_secret = PlainToken::mint(TokenKind::Project).unwrap();
    let mut tokens = MockTokenRepository::<ForProject>::new();
    tokens.expect_find_token_by_digest().returning(|_| Ok(None));
    let service = auth(tokens, MockTokenRepository::<ForTeam>::new());
    assert_eq!(
        failure(
            service
                .authenticate_team(Some(project_secret.expose_secret()), None)
                .await
        ),
        AuthFailure::WrongKind { token_id: None }
    );
}

#[tokio::test]
async fn team_callers_need_the_ability_and_write_implies_read() {
    let abilities: Abilities = [Ability::write(Resource::Tokens)].into_iter().collect();
    let mut team_tokens = MockTokenRepository::<ForTeam>::new();
    let token = team_token(abilities);
    team_tokens
        .expect_find_token_by_digest()
        .returning(move |_| Ok(Some(team_grant(token.clone()))));
    let service = auth(MockTokenRepository::<ForProject>::new(), team_tokens);
    let secret = PlainToken::mint(TokenKind::Team).unwrap();
    let caller = service
        .authenticate_team(Some(secret.expose_secret()), None)
        .await
        .unwrap();
    assert!(caller.require(Ability::read(Resource::Tokens)).is_ok());
    assert!(caller.require(Ability::write(Resource::Tokens)).is_ok());
    let err = caller
        .require(Ability::read(Resource::Projects))
        .unwrap_err();
    assert!(
        matches!(err, Error::Forbidden { ref required } if required == "read:projects"),
        "{err:?}"
    );
}

// --- rotation and allowlists ----------------------------------------------------------------

fn grant_in(token: ProjectToken, slot: CredentialSlot) -> MockTokenRepository<ForProject> {
    let mut tokens = MockTokenRepository::<ForProject>::new();
    tokens.expect_find_token_by_digest().returning(move |_| {
        Ok(Some(ProjectTokenGrant {
            token: token.clone(),
            team_id: team_id(),
            smtp_enabled: true,
            slot,
        }))
    });
    tokens
}

#[tokio::test]
async fn rotate_keeps_the_old_value_for_the_overlap_and_refuses_revoked_tokens() {
    let project = project_of(team_id());
    let token = token_of(project.id);
    let seen = Arc::new(Mutex::new(None));
    let mut tokens = owned_by(&project, MockTokenRepository::<ForProject>::new());
    let found = token.clone();
    tokens
        .expect_get_token()
        .returning(move |_| Ok(Some(found.clone())));
    let sink = seen.clone();
    tokens
        .expect_rotate_token_secret()
        .times(1)
        .returning(move |id, digest, _, at, until| {
            *sink.lock().unwrap() = Some((id, *digest, at, until));
            Ok(true)
        });
    let service = token_service(tokens);
    let overlap = Overlap::parse("overlap", "24h").unwrap();
    let issued = service
        .rotate(Scope::Team(team_id()), Some(project.id), token.id, overlap)
        .await
        .unwrap();
    let (id, digest, at, until) = seen.lock().unwrap().unwrap();
    assert_eq!((id, at, until), (token.id, NOW, NOW + Duration::hours(24)));
    assert_eq!(digest, issued.secret.digest());

    // Overlaps are bounded: more than zero, at most seven days.
    assert!(Overlap::parse("overlap", "7d").is_ok());
    assert_eq!(
        validation_fields(Overlap::parse("overlap", "8d").unwrap_err()),
        ["overlap"]
    );
    assert_eq!(
        validation_fields(Overlap::new(Duration::days(7) + Duration::seconds(1)).unwrap_err()),
        ["overlap"]
    );
    assert!(Overlap::new(Duration::ZERO).is_err());

    // A revoked token cannot be rotated, and the store is not asked to.
    let mut revoked = token.clone();
    revoked.revoked_at = Some(NOW);
    let mut tokens = owned_by(&project, MockTokenRepository::<ForProject>::new());
    tokens
        .expect_get_token()
        .returning(move |_| Ok(Some(revoked.clone())));
    let err = token_service(tokens)
        .rotate(Scope::Operator, None, token.id, overlap)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn the_previous_value_works_until_its_overlap_ends_then_is_unknown() {
    let secret = PlainToken::mint(TokenKind::Project).unwrap();
    let presented = Some(secret.expose_secret());
    let mut token = token_of(project_of(team_id()).id);
    token.previous_expires_at = Some(NOW + Duration::seconds(1));
    let service = auth(
        grant_in(token.clone(), CredentialSlot::Previous),
        MockTokenRepository::<ForTeam>::new(),
    );
    let caller = service
        .authenticate_project(presented, Channel::Api, None)
        .await
        .unwrap();
    assert_eq!(caller.slot, CredentialSlot::Previous);

    // At the instant the overlap ends, the previous value is like a regenerated one.
    token.previous_expires_at = Some(NOW);
    let service = auth(
        grant_in(token.clone(), CredentialSlot::Previous),
        MockTokenRepository::<ForTeam>::new(),
    );
    assert_eq!(
        failure(
            service
                .authenticate_project(presented, Channel::Api, None)
                .await
        ),
        AuthFailure::Unknown
    );
    // Regenerated since (no overlap recorded): unknown too.
    token.previous_expires_at = None;
    let service = auth(
        grant_in(token.clone(), CredentialSlot::Previous),
        MockTokenRepository::<ForTeam>::new(),
    );
    assert_eq!(
        failure(
            service
                .authenticate_project(presented, Channel::Api, None)
                .await
        ),
        AuthFailure::Unknown
    );
    // Revoked during the overlap: both values are refused as revoked.
    token.previous_expires_at = Some(NOW + Duration::hours(1));
    token.revoked_at = Some(NOW);
    for slot in [CredentialSlot::Current, CredentialSlot::Previous] {
        let service = auth(
            grant_in(token.clone(), slot),
            MockTokenRepository::<ForTeam>::new(),
        );
        assert_eq!(
            failure(
                service
                    .authenticate_project(presented, Channel::Api, None)
                    .await
            ),
            AuthFailure::Revoked { token_id: token.id }
        );
    }
}

#[tokio::test]
async fn allowlists_admit_v4_v6_and_mapped_addresses_and_refuse_the_rest() {
    let secret = PlainToken::mint(TokenKind::Project).unwrap();
    let presented = Some(secret.expose_secret());
    let mut token = token_of(project_of(team_id()).id);
    let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());

    // Empty list: any address, even an unknown one.
    let service = auth(
        grant_in(token.clone(), CredentialSlot::Current),
        MockTokenRepository::<ForTeam>::new(),
    );
    for client in [ip("192.0.2.1"), ip("2001:db8::1"), None] {
        assert!(
            service
                .authenticate_project(presented, Channel::Api, client)
                .await
                .is_ok()
        );
    }

    token.allowed_ips =
        IpAllowlist::parse("allowed_ips", &["203.0.113.0/24", "2001:db8::/32"]).unwrap();
    let service = auth(
        grant_in(token.clone(), CredentialSlot::Current),
        MockTokenRepository::<ForTeam>::new(),
    );
    for allowed in ["203.0.113.5", "2001:db8:ffff::1", "::ffff:203.0.113.77"] {
        assert!(
            service
                .authenticate_project(presented, Channel::Smtp, ip(allowed))
                .await
                .is_ok(),
            "{allowed}"
        );
    }
    for refused in [
        ip("203.0.114.5"),
        ip("2001:db9::1"),
        ip("::ffff:198.51.100.1"),
        None,
    ] {
        let f = failure(
            service
                .authenticate_project(presented, Channel::Api, refused)
                .await,
        );
        assert_eq!(
            f,
            AuthFailure::IpNotAllowed { token_id: token.id },
            "{refused:?}"
        );
        assert_eq!(f.loggable(), Some((token.id, Outcome::RejectedIp)));
    }

    // Team tokens too.
    let mut team = team_token(Abilities::all());
    team.allowed_ips = IpAllowlist::parse("allowed_ips", &["10.0.0.0/8"]).unwrap();
    let mut team_tokens = MockTokenRepository::<ForTeam>::new();
    let found = team.clone();
    team_tokens
        .expect_find_token_by_digest()
        .returning(move |_| Ok(Some(team_grant(found.clone()))));
    let service = auth(MockTokenRepository::<ForProject>::new(), team_tokens);
    let team_secret = PlainToken::mint(TokenKind::Team).unwrap();
    let presented = Some(team_secret.expose_secret());
    assert!(
        service
            .authenticate_team(presented, ip("10.1.2.3"))
            .await
            .is_ok()
    );
    assert_eq!(
        failure(service.authenticate_team(presented, ip("11.1.2.3")).await),
        AuthFailure::IpNotAllowed { token_id: team.id }
    );
}

// --- teams, projects, team tokens -----------------------------------------------------------

#[tokio::test]
async fn only_operators_create_teams() {
    let service = TeamService::new(Arc::new(MockTeamRepository::new()), clock());
    let err = service
        .create(Scope::Team(team_id()), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    let mut teams = MockTeamRepository::new();
    teams.expect_insert_team().times(1).returning(|_| Ok(()));
    let service = TeamService::new(Arc::new(teams), clock());
    let team: Team = service.create(Scope::Operator, " Acme ").await.unwrap();
    assert_eq!(team.name.as_str(), "Acme");
}

#[tokio::test]
async fn projects_are_created_with_a_default_route_and_an_optional_first_token() {
    let mut teams = MockTeamRepository::new();
    teams.expect_get_team().returning(|id| {
        Ok(Some(Team {
            id,
            name: Name::from_stored("Acme".into()),
            created_at: NOW,
            updated_at: NOW,
        }))
    });
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let mut projects = MockProjectRepository::new();
    projects
        .expect_insert_project()
        .times(1)
        .returning(move |project, route, first| {
            *sink.lock().unwrap() = Some((project.clone(), route.clone(), first));
            Ok(())
        });
    let service = ProjectService::new(Arc::new(teams), Arc::new(projects), clock());
    let (project, issued) = service
        .create(
            Scope::Team(team_id()),
            NewProject {
                team_id: team_id(),
                name: "Shop".into(),
                smtp_enabled: true,
                first_token_name: Some("first".into()),
            },
        )
        .await
        .unwrap();
    let issued = issued.unwrap();
    let (stored, route, first) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(stored, project);
    assert_eq!(
        (route.slug.as_str(), route.is_default, route.project_id),
        ("default", true, project.id)
    );
    let first = first.unwrap();
    assert_eq!(first.digest, issued.secret.digest());
    assert_eq!(first.token.owner, project.id);
}

#[tokio::test]
async fn projects_of_missing_teams_and_bad_names_are_refused() {
    let service = ProjectService::new(
        Arc::new(MockTeamRepository::new()),
        Arc::new(MockProjectRepository::new()),
        clock(),
    );
    let err = service
        .create(
            Scope::Operator,
            NewProject {
                team_id: team_id(),
                name: " ".into(),
                smtp_enabled: true,
                first_token_name: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(validation_fields(err), ["name"]);
    let err = service
        .create(
            Scope::Team(TeamId::new()),
            NewProject {
                team_id: team_id(),
                name: "x".into(),
                smtp_enabled: true,
                first_token_name: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let mut teams = MockTeamRepository::new();
    teams.expect_get_team().returning(|_| Ok(None));
    let service = ProjectService::new(
        Arc::new(teams),
        Arc::new(MockProjectRepository::new()),
        clock(),
    );
    let err = service
        .create(
            Scope::Operator,
            NewProject {
                team_id: team_id(),
                name: "x".into(),
                smtp_enabled: true,
                first_token_name: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "team" }), "{err:?}");
}

#[test]
fn unknown_abilities_are_a_validation_error_on_abilities() {
    // Team token services take parsed `Abilities`, so an unknown name never reaches them.
    let err = Abilities::parse("abilities", &["read:projects", "admin:all"]).unwrap_err();
    assert_eq!(validation_fields(err), ["abilities"]);
}

fn team_token_service(tokens: MockTokenRepository<ForTeam>) -> TeamTokenService {
    TokenService::new(
        Arc::new(tokens),
        Arc::new(MockUsageRepository::new()),
        clock(),
    )
}

#[tokio::test]
async fn team_tokens_carry_their_abilities_and_stay_in_their_team() {
    let mine = team_id();
    let stored = Arc::new(Mutex::new(None));
    let sink = stored.clone();
    let mut tokens = MockTokenRepository::<ForTeam>::new();
    // The team is its own owner; any other id is an unknown team.
    tokens
        .expect_owner_team()
        .returning(move |team| Ok((team == mine).then_some(mine)));
    tokens
        .expect_insert_token()
        .times(1)
        .returning(move |token, _| {
            *sink.lock().unwrap() = Some(token.clone());
            Ok(())
        });
    let service = team_token_service(tokens);
    let abilities: Abilities = [Ability::read(Resource::Projects)].into_iter().collect();
    let issued = service
        .create(Scope::Team(mine), mine, "ci", abilities.clone(), None)
        .await
        .unwrap();
    assert_eq!(issued.secret.kind(), TokenKind::Team);
    assert_eq!(issued.token.abilities, abilities);
    assert_eq!(stored.lock().unwrap().clone(), Some(issued.token.clone()));

    // Another team's scope sees no such team, and nothing is inserted (times(1) above).
    let err = service
        .create(
            Scope::Team(TeamId::new()),
            mine,
            "ci",
            abilities.clone(),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "team" }), "{err:?}");
    let err = service
        .list(
            Scope::Operator,
            TeamId::new(),
            crate::model::TokenStatusFilter::Active,
            &crate::page::PageRequest::first(
                10,
                crate::page::Sort {
                    key: crate::page::TokenSortKey::CreatedAt,
                    direction: crate::page::Direction::Descending,
                },
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "team" }), "{err:?}");
}

// --- messages and usage ---------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_route_is_a_validation_error_on_route() {
    let mut routes = MockRouteRepository::new();
    routes.expect_get_route_by_slug().returning(|_, _| Ok(None));
    let service = MessageService::new(
        Arc::new(routes),
        Arc::new(MockMessageRepository::new()),
        clock(),
    );
    let err = service
        .resolve_route(ProjectId::new(), Some("newsletter"))
        .await
        .unwrap_err();
    assert_eq!(validation_fields(err), ["route"]);
}

#[tokio::test]
async fn submissions_must_name_their_own_token() {
    let service = MessageService::new(
        Arc::new(MockRouteRepository::new()),
        Arc::new(MockMessageRepository::new()),
        clock(),
    );
    let project = project_of(team_id());
    let credential = TokenCredential {
        token_id: TokenId::new(),
        digest: PlainToken::mint(TokenKind::Project).unwrap().digest(),
    };
    let message = Message {
        id: MessageId::new(),
        project_id: project.id,
        route_id: Route::default_for(project.id, NOW).id,
        token_id: TokenId::new(),
        via: Channel::Api,
        status: MessageStatus::Pending,
        envelope_from: "a@example.com".into(),
        envelope_to: vec!["b@example.com".into()],
        subject: None,
        tag: None,
        metadata: Default::default(),
        idempotency_key: None,
        scheduled_at: None,
        created_at: NOW,
        content: MessageContent::Mime(b"x".to_vec()),
        delivery: Default::default(),
    };
    let err = service
        .enqueue(&[Submission {
            client_ip: None,
            credential,
            messages: vec![message],
            idempotency: None,
        }])
        .await
        .unwrap_err();
    assert_eq!(validation_fields(err), ["messages"]);
    let err = service
        .enqueue(&[Submission {
            client_ip: None,
            credential,
            messages: vec![],
            idempotency: None,
        }])
        .await
        .unwrap_err();
    assert_eq!(validation_fields(err), ["messages"]);
}

#[tokio::test]
async fn usage_flushes_one_batch_and_skips_empty_ones() {
    let service = UsageService::new(Arc::new(MockUsageRepository::new()), clock());
    service.flush(Vec::new()).await.unwrap();

    let token = TokenId::new();
    let mut usage = MockUsageRepository::new();
    usage
        .expect_record_usage()
        .withf(move |batch| {
            batch.entries.len() == 2
                && batch.last_use.len() == 1
                && batch.last_use[0].token_id == token
        })
        .times(1)
        .returning(|_| Ok(()));
    usage
        .expect_prune_token_logs()
        .withf(|before| *before == NOW - Duration::days(30))
        .times(1)
        .returning(|_| Ok(7));
    let service = UsageService::new(Arc::new(usage), clock());
    let record = |at| UsageRecord {
        credential: None,
        token_id: token,
        at,
        ip: None,
        via: Channel::Smtp,
        action: Action::SmtpMessage,
        outcome: Outcome::Accepted,
        status: 250,
        message_ids: vec![],
        user_agent: None,
    };
    service
        .flush(vec![record(NOW), record(NOW + Duration::seconds(1))])
        .await
        .unwrap();
    assert_eq!(service.prune_logs(Duration::days(30)).await.unwrap(), 7);
}

#[tokio::test]
async fn expiring_tokens_are_asked_for_the_window_and_scoped() {
    let team = team_id();
    let project = project_of(team);
    let token = token_of(project.id);
    let mut tokens = owned_by(&project, MockTokenRepository::new());
    let (pid, listed) = (project.id, token.clone());
    tokens
        .expect_list_expiring_tokens()
        .withf(move |owner, now, until| {
            *owner == Some(pid) && *now == NOW && *until == NOW + Duration::days(7)
        })
        .times(1)
        .returning(move |_, _, _| Ok(vec![listed.clone()]));
    tokens
        .expect_list_expiring_tokens()
        .withf(|owner, _, until| owner.is_none() && *until == NOW + Duration::days(30))
        .times(1)
        .returning(|_, _, _| Ok(Vec::new()));
    tokens
        .expect_count_expiring_tokens()
        .withf(|now, until| *now == NOW && *until == NOW + Duration::days(7))
        .times(1)
        .returning(|_, _| Ok(3));
    let service = token_service(tokens);
    let found = service
        .expiring(Scope::Team(team), Some(project.id), Duration::days(7))
        .await
        .unwrap();
    assert_eq!(found, vec![token]);
    assert!(
        service
            .expiring(Scope::Operator, None, Duration::days(30))
            .await
            .unwrap()
            .is_empty()
    );
    // Another team's project is not found; a team scope across every owner sees nothing, and
    // neither asks the store for tokens (only one call of each expectation above).
    let other = Scope::Team(TeamId::from_uuid(uuid::Uuid::from_u128(2)));
    assert!(matches!(
        service
            .expiring(other, Some(project.id), Duration::days(7))
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        service
            .expiring(other, None, Duration::days(7))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(service.count_expiring(Duration::days(7)).await.unwrap(), 3);
}
