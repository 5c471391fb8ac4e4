//! The audit log: who did what in a team (logins, members, tokens), kept apart from the
//! per-token logs so it survives a token's deletion with its project and can be read per team.

use std::net::IpAddr;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::id::{AccountId, AuditEntryId, TeamId};
use crate::model::UnknownVariant;

macro_rules! audit_actions {
    ($($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)?) => {
        /// What was done.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$vdoc])* $variant),+
        }

        impl AuditAction {
            /// The stored name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $text),+ }
            }

            /// Every action.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant),+];
        }

        impl FromStr for AuditAction {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(AuditAction::$variant),)+
                    other => Err(UnknownVariant(other.to_owned())),
                }
            }
        }

        impl std::fmt::Display for AuditAction {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

audit_actions!(
    /// A member logged in.
    Login => "login",
    /// A login was refused (wrong password or throttled); the actor is the account, if known.
    LoginFailed => "login_failed",
    /// A member logged out (this session).
    Logout => "logout",
    /// A member ended every one of their sessions.
    LogoutEverywhere => "logout_everywhere",
    /// A member changed their password (every other session ended).
    PasswordChanged => "password_changed",
    /// An account became a member of the team.
    MemberAdded => "member_added",
    /// A member's role changed.
    MemberRoleChanged => "member_role_changed",
    /// A member left or was removed.
    MemberRemoved => "member_removed",
    /// A project token or team token was created.
    TokenCreated => "token_created",
    /// A token's value was regenerated.
    TokenRegenerated => "token_regenerated",
    /// A token was revoked.
    TokenRevoked => "token_revoked",
);

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Id (time-ordered).
    pub id: AuditEntryId,
    /// The team it concerns; `None` for account-wide events (login, password change).
    pub team_id: Option<TeamId>,
    /// Who did it, when known.
    pub actor_id: Option<AccountId>,
    /// Their email as it was at the time (kept when the account goes).
    pub actor_email: Option<String>,
    /// What.
    pub action: AuditAction,
    /// What it was done to (`token:<id>`, `member:<account id>`, `project:<id>`).
    pub target: Option<String>,
    /// A short, non-secret description (a token's name, a role change `member → admin`).
    pub detail: Option<String>,
    /// From where.
    pub ip: Option<IpAddr>,
    /// When.
    pub at: OffsetDateTime,
}
