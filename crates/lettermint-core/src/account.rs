//! Accounts and team membership: the people who log in to the dashboard.
//!
//! An [`Account`] is a person (an email address and an argon2id password hash); a [`Member`] is
//! an account's place in one team, with a [`Role`]. Owners and admins manage tokens; members
//! read lists and logs. A team always keeps at least one owner.
//!
//! Passwords are hashed with argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) into PHC
//! strings. Hashing and checking cost tens of milliseconds of CPU by design, so the
//! [`PasswordHasher`] trait is async: front doors run it on a bounded blocking pool, and tests
//! or CLIs may run [`Argon2id`] inline.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::id::{AccountId, TeamId};
use crate::model::UnknownVariant;
use crate::name::Name;

/// What a member may do in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads projects, token lists and logs.
    Member,
    /// Also creates, regenerates and revokes tokens, and manages members below owner.
    Admin,
    /// Everything, including owners. A team always has at least one.
    Owner,
}

impl Role {
    /// Every role, least first.
    pub const ALL: &'static [Role] = &[Role::Member, Role::Admin, Role::Owner];

    /// Lower-case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Whether the role creates, regenerates, rotates and revokes tokens.
    #[must_use]
    pub const fn manages_tokens(self) -> bool {
        matches!(self, Role::Admin | Role::Owner)
    }

    /// Whether the role adds, removes and changes members (owners only manage owners).
    #[must_use]
    pub const fn manages_members(self) -> bool {
        matches!(self, Role::Admin | Role::Owner)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            other => Err(UnknownVariant(other.to_owned())),
        }
    }
}

/// A validated, lower-cased email address: an account's login.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

/// Longest email address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

impl Email {
    /// Validates `input` (trimmed, lower-cased) as `field`.
    pub fn parse(field: &str, input: &str) -> Result<Self> {
        let trimmed = input.trim().to_lowercase();
        let valid = trimmed.chars().count() <= MAX_EMAIL_CHARS
            && !trimmed.chars().any(|c| c.is_control() || c.is_whitespace())
            && match trimmed.rsplit_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.is_empty()
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                        && !domain.contains('@')
                }
                None => false,
            };
        if valid {
            Ok(Self(trimmed))
        } else {
            Err(Error::invalid(
                field,
                format!("The {field} field must be a valid email address."),
            ))
        }
    }

    /// Wraps a value read back from a store.
    #[must_use]
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person who logs in to the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Id.
    pub id: AccountId,
    /// Login, unique.
    pub email: Email,
    /// How the dashboard names them.
    pub display_name: Name,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When its password last changed.
    pub password_changed_at: OffsetDateTime,
}

/// An account's place in a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The team.
    pub team_id: TeamId,
    /// The account.
    pub account: Account,
    /// What it may do there.
    pub role: Role,
    /// When it joined.
    pub joined_at: OffsetDateTime,
}

/// A password as typed: never stored, logged or shown. `Debug` is redacted.
#[derive(Clone)]
pub struct Password(String);

/// Shortest password accepted, in characters (OWASP ASVS 2.1.1).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in characters (bounds the hashing work per request).
pub const MAX_PASSWORD_CHARS: usize = 256;

impl Password {
    /// Wraps a password typed to log in: any length up to [`MAX_PASSWORD_CHARS`] is checked
    /// (policies change; old passwords must still work).
    pub fn for_login(input: String) -> Result<Self> {
        if input.chars().count() > MAX_PASSWORD_CHARS {
            return Err(Error::invalid(
                "password",
                format!(
                    "The password field must not be greater than {MAX_PASSWORD_CHARS} characters."
                ),
            ));
        }
        Ok(Self(input))
    }

    /// Validates a new password as `field`: [`MIN_PASSWORD_CHARS`] to [`MAX_PASSWORD_CHARS`]
    /// characters, not only whitespace.
    pub fn new_password(field: &str, input: String) -> Result<Self> {
        let chars = input.chars().count();
        if chars < MIN_PASSWORD_CHARS || input.trim().is_empty() {
            return Err(Error::invalid(
                field,
                format!("The {field} field must be at least {MIN_PASSWORD_CHARS} characters."),
            ));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(Error::invalid(
                field,
                format!(
                    "The {field} field must not be greater than {MAX_PASSWORD_CHARS} characters."
                ),
            ));
        }
        Ok(Self(input))
    }

    /// A random password (24 base62 characters, ~142 bits) for a printed one-time login.
    pub fn generate() -> Result<Self> {
        let secret = crate::token::random_base62(24)?;
        Ok(Self(secret))
    }

    /// The password, for hashing or a one-time display.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password hash in PHC string format (`$argon2id$v=19$m=19456,t=2,p=1$…`). Not secret in
/// the way a token is, but never shown: `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string read back from a store.
    #[must_use]
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for storing.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// Hashes and checks passwords. Both cost real CPU time: front doors implement this over a
/// bounded blocking pool so a burst of logins never stalls request handling.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync + fmt::Debug {
    /// A new PHC hash of `password` with a fresh salt.
    async fn hash(&self, password: Password) -> Result<PasswordHash>;
    /// Whether `password` matches `hash`. A malformed hash is `false`, not an error.
    async fn verify(&self, password: Password, hash: PasswordHash) -> Result<bool>;
}

/// argon2id with OWASP's parameters (m = 19 MiB, t = 2, p = 1), run on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Argon2id;

impl Argon2id {
    /// The hash of a password that matches nothing, checked when a login names an unknown
    /// email so that the answer takes as long as for a known one.
    pub const DUMMY_HASH: &'static str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Oa2V8IIvd0tK9F2M0oZjvL9QZG0B0J4k9L2lGk1S0Zs";

    /// Hashes now, on this thread.
    pub fn hash_now(password: &Password) -> Result<PasswordHash> {
        use argon2::password_hash::PasswordHasher as _;
        let hash = argon2::Argon2::default()
            .hash_password(password.0.as_bytes())
            .map_err(|_| Error::Randomness(crate::token::RandomnessUnavailable))?;
        Ok(PasswordHash(hash.to_string()))
    }

    /// Checks now, on this thread.
    #[must_use]
    pub fn verify_now(password: &Password, hash: &PasswordHash) -> bool {
        use argon2::password_hash::PasswordVerifier as _;
        use argon2::password_hash::phc::PasswordHash as Phc;
        let Ok(parsed) = Phc::new(&hash.0) else {
            return false;
        };
        argon2::Argon2::default()
            .verify_password(password.0.as_bytes(), &parsed)
            .is_ok()
    }
}

#[async_trait]
impl PasswordHasher for Argon2id {
    async fn hash(&self, password: Password) -> Result<PasswordHash> {
        Self::hash_now(&password)
    }

    async fn verify(&self, password: Password, hash: PasswordHash) -> Result<bool> {
        Ok(Self::verify_now(&password, &hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(
            Email::parse("email", "  Ada@Example.COM ")
                .unwrap()
                .as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a da@example.com",
            "ada@.com",
            "a\n@b.c",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_passwords_have_a_length_policy_and_logins_do_not() {
        assert!(Password::new_password("password", "short".into()).is_err());
        assert!(Password::new_password("password", " ".repeat(20)).is_err());
        assert!(Password::new_password("password", "x".repeat(257)).is_err());
        assert!(Password::new_password("password", "correct horse".into()).is_ok());
        assert!(Password::for_login("short".into()).is_ok());
        assert!(Password::for_login("x".repeat(257)).is_err());
        assert_eq!(
            format!("{:?}", Password::generate().unwrap()),
            "Password(<redacted>)"
        );
        assert_eq!(Password::generate().unwrap().expose_secret().len(), 24);
    }

    #[test]
    fn argon2id_hashes_are_phc_strings_that_verify_only_their_password() {
        let password = Password::new_password("password", "correct horse battery".into()).unwrap();
        let hash = Argon2id::hash_now(&password).unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.as_str().contains("correct horse"));
        assert!(Argon2id::verify_now(&password, &hash));
        let wrong = Password::for_login("correct horse battery!".into()).unwrap();
        assert!(!Argon2id::verify_now(&wrong, &hash));
        assert!(!Argon2id::verify_now(
            &password,
            &PasswordHash::from_stored("garbage".into())
        ));
        assert!(!Argon2id::verify_now(
            &password,
            &PasswordHash::from_stored(Argon2id::DUMMY_HASH.into())
        ));
        assert_eq!(format!("{hash:?}"), "PasswordHash(<redacted>)");
    }

    #[test]
    fn roles_order_and_round_trip() {
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
        assert!(!Role::Member.manages_tokens());
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), *role);
        }
    }
}
