//! Leak reports: token values a secret scanner found in public, reported by a party the front
//! door has already verified (for example GitHub's secret scanning, whose signature the
//! api-server checks). Every listed value that is a live token is revoked at once, with the same
//! linearizable revoke as the Team API; every other value is a false positive.

use std::net::IpAddr;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::Result;
use crate::id::{LogEntryId, TokenId};
use crate::kind::{ForProject, ForTeam};
use crate::model::Channel;
use crate::repo::{TokenRepository, UsageRepository};
use crate::rotation::CredentialSlot;
use crate::token::{PlainToken, TokenKind};
use crate::usage::{Action, Outcome, TokenLogEntry, UsageBatch};

/// Longest leak URL kept in a token's log, in characters.
pub const MAX_LEAK_URL_CHARS: usize = 2048;

/// One value a scanner reported, as sent. The value may be anything: it is never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct LeakedValue {
    /// The value found.
    pub value: String,
    /// Where it was found, if the reporter said.
    pub url: Option<String>,
}

impl std::fmt::Debug for LeakedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakedValue")
            .field("value", &"[redacted]")
            .field("url", &self.url)
            .finish()
    }
}

/// Who sent a verified report, for the token log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakReporter {
    /// Client address.
    pub ip: Option<IpAddr>,
    /// HTTP `User-Agent`.
    pub user_agent: Option<String>,
}

/// What a reported value turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakVerdict {
    /// The value is (or was, until this report or an earlier revocation) a token's current
    /// value; it is revoked now.
    TruePositive,
    /// Not a well-formed token, or no token has this value.
    FalsePositive,
}

/// Handles verified leak reports.
#[derive(Debug, Clone)]
pub struct LeakService {
    project_tokens: Arc<dyn TokenRepository<ForProject>>,
    team_tokens: Arc<dyn TokenRepository<ForTeam>>,
    usage: Arc<dyn UsageRepository>,
    clock: Arc<dyn Clock>,
}

impl LeakService {
    /// Wires the service.
    pub fn new(
        project_tokens: Arc<dyn TokenRepository<ForProject>>,
        team_tokens: Arc<dyn TokenRepository<ForTeam>>,
        usage: Arc<dyn UsageRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            project_tokens,
            team_tokens,
            usage,
            clock,
        }
    }

    /// Revokes every reported value that is a token's current value and not yet revoked, each
    /// before this returns, and logs each revocation made here (`leak_report`,
    /// `revoked_leaked`, with the leak's URL) against its token. The verdicts are in the order
    /// of `values`. Malformed values never reach the store.
    pub async fn report(
        &self,
        values: &[LeakedValue],
        reporter: &LeakReporter,
    ) -> Result<Vec<LeakVerdict>> {
        let mut verdicts = Vec::with_capacity(values.len());
        for leaked in values {
            let Ok(token) = PlainToken::parse(leaked.value.trim()) else {
                verdicts.push(LeakVerdict::FalsePositive);
                continue;
            };
            let digest = token.digest();
            // A value is live if it is the token's current value, or the value a rotation
            // replaced while its overlap runs; a value past its overlap matches nothing.
            let now = self.clock.now();
            let found = match token.kind() {
                TokenKind::Project => self
                    .project_tokens
                    .find_token_by_digest(&digest)
                    .await?
                    .filter(|grant| value_is_live(grant.slot, grant.token.previous_expires_at, now))
                    .map(|grant| (grant.token.id, grant.token.revoked_at)),
                TokenKind::Team => self
                    .team_tokens
                    .find_token_by_digest(&digest)
                    .await?
                    .filter(|grant| value_is_live(grant.slot, grant.token.previous_expires_at, now))
                    .map(|grant| (grant.token.id, grant.token.revoked_at)),
            };
            let Some((id, revoked_at)) = found else {
                verdicts.push(LeakVerdict::FalsePositive);
                continue;
            };
            if revoked_at.is_none() {
                let revoked = match token.kind() {
                    TokenKind::Project => self.project_tokens.revoke_token(id, now).await?,
                    TokenKind::Team => self.team_tokens.revoke_token(id, now).await?,
                };
                // False: a concurrent revoke won; that one is logged (or not) by whoever made it.
                if revoked {
                    self.log(id, now, leaked.url.as_deref(), reporter).await?;
                }
            }
            verdicts.push(LeakVerdict::TruePositive);
        }
        Ok(verdicts)
    }

    /// Logs a revocation at once (not behind, like usage): it is rare and it matters.
    async fn log(
        &self,
        token_id: TokenId,
        at: OffsetDateTime,
        url: Option<&str>,
        reporter: &LeakReporter,
    ) -> Result<()> {
        let clean = |s: &str, max: usize| -> String {
            s.chars().filter(|c| !c.is_control()).take(max).collect()
        };
        let entry = TokenLogEntry {
            id: LogEntryId::new(),
            token_id,
            at,
            ip: reporter.ip,
            via: Channel::Api,
            action: Action::LeakReport,
            outcome: Outcome::RevokedLeaked,
            status: 200,
            message_ids: Vec::new(),
            user_agent: reporter
                .user_agent
                .as_deref()
                .map(|ua| clean(ua, crate::usage::MAX_USER_AGENT_CHARS)),
            credential: None,
            leak_url: url.map(|u| clean(u, MAX_LEAK_URL_CHARS)),
            actor: None,
        };
        self.usage
            .record_usage(&UsageBatch {
                entries: vec![entry],
                last_use: Vec::new(),
            })
            .await
    }
}

/// Whether the value a lookup matched still works: the current value, or the previous one
/// before its overlap ends.
fn value_is_live(
    slot: CredentialSlot,
    previous_expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> bool {
    slot == CredentialSlot::Current || previous_expires_at.is_some_and(|end| now < end)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use time::macros::datetime;

    use super::*;
    use crate::IpAllowlist;
    use crate::clock::FixedClock;
    use crate::id::ProjectId;
    use crate::model::{ProjectToken, TeamToken};
    use crate::name::Name;
    use crate::repo::{
        MockTokenRepository, MockUsageRepository, ProjectTokenGrant, TeamTokenGrant,
    };
    use crate::{Abilities, TeamId};

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn project_token(id: u128, secret: &PlainToken) -> ProjectToken {
        ProjectToken {
            id: TokenId::from_uuid(uuid::Uuid::from_u128(id)),
            owner: ProjectId::from_uuid(uuid::Uuid::from_u128(10)),
            name: Name::from_stored("main".into()),
            hint: secret.hint(),
            abilities: (),
            created_at: NOW,
            updated_at: NOW,
            last_use: Default::default(),
            expires_at: None,
            revoked_at: None,
            previous_expires_at: None,
            allowed_ips: IpAllowlist::any(),
        }
    }

    fn grant(token: ProjectToken) -> ProjectTokenGrant {
        ProjectTokenGrant {
            token,
            team_id: TeamId::from_uuid(uuid::Uuid::from_u128(1)),
            smtp_enabled: true,
            slot: CredentialSlot::Current,
        }
    }

    fn leaked(value: &str) -> LeakedValue {
        LeakedValue {
            value: value.to_owned(),
            url: Some("https://github.com/octo/repo/blob/abc/.env\n".to_owned()),
        }
    }

    fn service(
        projects: MockTokenRepository<ForProject>,
        teams: MockTokenRepository<ForTeam>,
        usage: MockUsageRepository,
    ) -> LeakService {
        LeakService::new(
            Arc::new(projects),
            Arc::new(teams),
            Arc::new(usage),
            Arc::new(FixedClock(NOW)),
        )
    }

    #[tokio::test]
    async fn a_live_token_is_revoked_logged_with_the_url_and_a_true_positive() {
        let secret = PlainToken::mint(TokenKind::Project).unwrap();
        let token = project_token(100, &secret);
        let id = token.id;
        let digest = secret.digest();
        let mut projects = MockTokenRepository::<ForProject>::new();
        projects
            .expect_find_token_by_digest()
            .withf(move |d| *d == digest)
            .returning(move |_| Ok(Some(grant(token.clone()))));
        projects
            .expect_revoke_token()
            .withf(move |t, at| *t == id && *at == NOW)
            .times(1)
            .returning(|_, _| Ok(true));
        let logged = Arc::new(Mutex::new(Vec::new()));
        let mut usage = MockUsageRepository::new();
        let sink = logged.clone();
        usage.expect_record_usage().times(1).returning(move |b| {
            sink.lock().unwrap().extend(b.entries.clone());
            Ok(())
        });
        let reporter = LeakReporter {
            ip: Some("192.0.2.1".parse().unwrap()),
            user_agent: Some("GitHub-Secret-Scanning".into()),
        };
        let verdicts = service(projects, MockTokenRepository::new(), usage)
            .report(&[leaked(secret.expose_secret())], &reporter)
            .await
            .unwrap();
        assert_eq!(verdicts, vec![LeakVerdict::TruePositive]);
        let logged = logged.lock().unwrap();
        assert_eq!(logged.len(), 1);
        let entry = &logged[0];
        assert_eq!(entry.token_id, id);
        assert_eq!(entry.action, Action::LeakReport);
        assert_eq!(entry.outcome, Outcome::RevokedLeaked);
        assert_eq!(
            entry.leak_url.as_deref(),
            Some("https://github.com/octo/repo/blob/abc/.env"),
            "control characters are dropped"
        );
        assert_eq!(entry.ip, reporter.ip);
    }

    #[tokio::test]
    async fn a_value_a_rotation_replaced_is_live_only_during_its_overlap() {
        for (overlap_end, live) in [
            (Some(NOW + time::Duration::hours(1)), true),
            (Some(NOW - time::Duration::seconds(1)), false),
            (None, false),
        ] {
            let secret = PlainToken::mint(TokenKind::Project).unwrap();
            let mut token = project_token(300, &secret);
            token.previous_expires_at = overlap_end;
            let id = token.id;
            let mut projects = MockTokenRepository::<ForProject>::new();
            projects.expect_find_token_by_digest().returning(move |_| {
                Ok(Some(ProjectTokenGrant {
                    slot: CredentialSlot::Previous,
                    ..grant(token.clone())
                }))
            });
            projects
                .expect_revoke_token()
                .withf(move |t, _| *t == id)
                .times(usize::from(live))
                .returning(|_, _| Ok(true));
            let mut usage = MockUsageRepository::new();
            usage
                .expect_record_usage()
                .times(usize::from(live))
                .returning(|_| Ok(()));
            let verdicts = service(projects, MockTokenRepository::new(), usage)
                .report(&[leaked(secret.expose_secret())], &LeakReporter::default())
                .await
                .unwrap();
            let expected = if live {
                LeakVerdict::TruePositive
            } else {
                LeakVerdict::FalsePositive
            };
            assert_eq!(verdicts, vec![expected], "overlap until {overlap_end:?}");
        }
    }

    #[tokio::test]
    async fn a_team_token_is_revoked_too() {
        let secret = PlainToken::mint(TokenKind::Team).unwrap();
        let token = TeamToken {
            id: TokenId::from_uuid(uuid::Uuid::from_u128(200)),
            owner: TeamId::from_uuid(uuid::Uuid::from_u128(1)),
            name: Name::from_stored("ci".into()),
            hint: secret.hint(),
            abilities: Abilities::all(),
            created_at: NOW,
            updated_at: NOW,
            last_use: Default::default(),
            expires_at: None,
            revoked_at: None,
            previous_expires_at: None,
            allowed_ips: IpAllowlist::any(),
        };
        let id = token.id;
        let mut teams = MockTokenRepository::<ForTeam>::new();
        teams.expect_find_token_by_digest().returning(move |_| {
            Ok(Some(TeamTokenGrant {
                token: token.clone(),
                slot: CredentialSlot::Current,
            }))
        });
        teams
            .expect_revoke_token()
            .withf(move |t, _| *t == id)
            .times(1)
            .returning(|_, _| Ok(true));
        let mut usage = MockUsageRepository::new();
        usage.expect_record_usage().times(1).returning(|_| Ok(()));
        let verdicts = service(MockTokenRepository::new(), teams, usage)
            .report(&[leaked(secret.expose_secret())], &LeakReporter::default())
            .await
            .unwrap();
        assert_eq!(verdicts, vec![LeakVerdict::TruePositive]);
    }

    #[tokio::test]
    async fn malformed_values_are_false_positives_without_touching_the_store() {
        let valid = PlainToken::mint(TokenKind::Project).unwrap();
        let mut mistyped = valid.expose_secret().to_owned();
        let last = mistyped.pop().unwrap();
        mistyped.push(if last == 'a' { 'b' } else { 'a' });
        // Mocks without expectations panic when called.
        let verdicts = service(
            MockTokenRepository::new(),
            MockTokenRepository::new(),
            MockUsageRepository::new(),
        )
        .report(
            &[
                leaked(""),
                leaked("NMIfyYncKcRALEXAMPLE"),
                leaked(&mistyped),
            ],
            &LeakReporter::default(),
        )
        .await
        .unwrap();
        assert_eq!(verdicts, vec![LeakVerdict::FalsePositive; 3]);
    }

    #[tokio::test]
    async fn unknown_tokens_are_false_positives_and_revoked_ones_are_not_revoked_again() {
        let unknown = PlainToken::mint(TokenKind::Project).unwrap();
        let revoked_secret = PlainToken::mint(TokenKind::Project).unwrap();
        let mut revoked = project_token(101, &revoked_secret);
        revoked.revoked_at = Some(NOW);
        let revoked_digest = revoked_secret.digest();
        let mut projects = MockTokenRepository::<ForProject>::new();
        projects
            .expect_find_token_by_digest()
            .returning(move |d| Ok((*d == revoked_digest).then(|| grant(revoked.clone()))));
        // No revoke_token and no record_usage expectation: calling either panics.
        let verdicts = service(
            projects,
            MockTokenRepository::new(),
            MockUsageRepository::new(),
        )
        .report(
            &[
                leaked(unknown.expose_secret()),
                leaked(revoked_secret.expose_secret()),
            ],
            &LeakReporter::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            verdicts,
            vec![LeakVerdict::FalsePositive, LeakVerdict::TruePositive]
        );
    }

    #[tokio::test]
    async fn a_revoke_lost_to_a_concurrent_one_is_not_logged() {
        let secret = PlainToken::mint(TokenKind::Project).unwrap();
        let token = project_token(102, &secret);
        let mut projects = MockTokenRepository::<ForProject>::new();
        projects
            .expect_find_token_by_digest()
            .returning(move |_| Ok(Some(grant(token.clone()))));
        projects
            .expect_revoke_token()
            .times(1)
            .returning(|_, _| Ok(false));
        let verdicts = service(
            projects,
            MockTokenRepository::new(),
            MockUsageRepository::new(),
        )
        .report(&[leaked(secret.expose_secret())], &LeakReporter::default())
        .await
        .unwrap();
        assert_eq!(verdicts, vec![LeakVerdict::TruePositive]);
    }

    #[test]
    fn debug_never_shows_the_value() {
        let secret = PlainToken::mint(TokenKind::Project).unwrap();
        let printed = format!("{:?}", leaked(secret.expose_secret()));
        assert!(!printed.contains(secret.expose_secret()));
    }
}
