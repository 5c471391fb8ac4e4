//! Both token kinds in SQL. `project_tokens` and `team_tokens` have the same columns but for
//! the owner (`project_id` / `team_id`) and the team tokens' `abilities`; [`StoredKind`] names
//! those differences, and the statements below are written once for both kinds and both
//! dialects (placeholders are `$n`, which SQLite accepts too).

use lettermint_core::kind::{ForProject, ForTeam, Owner};
use lettermint_core::repo::{ProjectTokenGrant, TeamTokenGrant};
use lettermint_core::{
    Abilities, CredentialSlot, Error, IpAllowlist, Name, TeamId, Token, TokenHint, TokenId,
    TokenStatusFilter,
};
use std::sync::LazyLock;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::decode::{corrupt, json, last_use, to_json};

/// How one kind of token is stored.
pub trait StoredKind: Owner {
    /// Its table.
    const TABLE: &'static str;
    /// The column holding the owner's id.
    const OWNER_COLUMN: &'static str;
    /// Selects the team of an owner (`$1`: the owner's id) as its only column.
    const OWNER_TEAM: &'static str;
    /// Whether the table has an `abilities` column.
    const HAS_ABILITIES: bool;
    /// What a lookup by digest selects besides the token's columns, and joins to get it.
    const GRANT_COLUMNS_AND_JOIN: &'static str;

    /// The stored form of what the token carries (`None`: no column).
    fn store_abilities(abilities: &Self::Abilities) -> Result<Option<String>, Error>;
    /// What the token carries, from its stored form.
    fn load_abilities(stored: Option<String>) -> Result<Self::Abilities, Error>;
    /// This kind's statements, built once.
    fn statements() -> &'static Statements;
    /// The grant of a token read by digest, with the extra columns of the lookup.
    fn grant(token: Token<Self>, extra: GrantColumns) -> Result<Self::Grant, Error>;
}

/// The columns a lookup by digest adds (see [`StoredKind::GRANT_COLUMNS_AND_JOIN`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrantColumns {
    /// Team of the token's project.
    pub team_id: Option<Uuid>,
    /// Whether its project allows SMTP.
    pub smtp_enabled: Option<bool>,
    /// Whether the digest looked up is the current one (else the previous one).
    pub current: Option<bool>,
}

impl GrantColumns {
    fn slot(&self) -> CredentialSlot {
        if self.current.unwrap_or(true) {
            CredentialSlot::Current
        } else {
            CredentialSlot::Previous
        }
    }
}

impl StoredKind for ForProject {
    const TABLE: &'static str = "project_tokens";
    const OWNER_COLUMN: &'static str = "project_id";
    const OWNER_TEAM: &'static str = "SELECT team_id FROM projects WHERE id = $1";
    const HAS_ABILITIES: bool = false;
    const GRANT_COLUMNS_AND_JOIN: &'static str = ", p.team_id AS grant_team_id, \
         p.smtp_enabled AS grant_smtp_enabled FROM project_tokens t \
         JOIN projects p ON p.id = t.project_id";

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> = LazyLock::new(Statements::build::<ForProject>);
        &STATEMENTS
    }

    fn store_abilities(_: &()) -> Result<Option<String>, Error> {
        Ok(None)
    }

    fn load_abilities(_: Option<String>) -> Result<(), Error> {
        Ok(())
    }

    fn grant(token: Token<Self>, extra: GrantColumns) -> Result<ProjectTokenGrant, Error> {
        Ok(ProjectTokenGrant {
            token,
            team_id: TeamId::from_uuid(
                extra
                    .team_id
                    .ok_or_else(|| corrupt("token", "project without a team"))?,
            ),
            smtp_enabled: extra.smtp_enabled.unwrap_or(false),
            slot: extra.slot(),
        })
    }
}

impl StoredKind for ForTeam {
    const TABLE: &'static str = "team_tokens";
    const OWNER_COLUMN: &'static str = "team_id";
    const OWNER_TEAM: &'static str = "SELECT id FROM teams WHERE id = $1";
    const HAS_ABILITIES: bool = true;
    const GRANT_COLUMNS_AND_JOIN: &'static str = " FROM team_tokens t";

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> = LazyLock::new(Statements::build::<ForTeam>);
        &STATEMENTS
    }

    fn store_abilities(abilities: &Abilities) -> Result<Option<String>, Error> {
        to_json(&abilities.to_strings()).map(Some)
    }

    fn load_abilities(stored: Option<String>) -> Result<Abilities, Error> {
        let stored = stored.ok_or_else(|| corrupt("abilities", "missing"))?;
        let names: Vec<String> = json("abilities", &stored)?;
        Abilities::parse("abilities", &names).map_err(|e| corrupt("abilities", e))
    }

    fn grant(token: Token<Self>, extra: GrantColumns) -> Result<TeamTokenGrant, Error> {
        Ok(TeamTokenGrant {
            token,
            slot: extra.slot(),
        })
    }
}

/// The statements of one kind that take no other parameter than their binds: built once per
/// kind, so that the hot lookup by digest formats nothing.
#[derive(Debug)]
pub struct Statements {
    by_id: String,
    by_digest: String,
    insert: String,
    rename: String,
}

impl Statements {
    fn build<K: StoredKind>() -> Self {
        Self {
            by_id: build_select_by_id::<K>(),
            by_digest: build_select_by_digest::<K>(),
            insert: build_insert::<K>(),
            rename: build_rename::<K>(),
        }
    }
}

/// A token by id (`$1`).
pub fn select_by_id<K: StoredKind>() -> &'static str {
    &K::statements().by_id
}

/// A token by current or previous digest (`$1`), with its grant columns.
pub fn select_by_digest<K: StoredKind>() -> &'static str {
    &K::statements().by_digest
}

/// Inserts a token: `$1` id, `$2` owner, `$3` name, `$4` digest, `$5` hint, `$6` created,
/// `$7` updated, `$8` expires, `$9` revoked, `$10` allowed IPs, and `$11` abilities when the
/// kind has them.
pub fn insert<K: StoredKind>() -> &'static str {
    &K::statements().insert
}

/// Renames a non-revoked token: `$1` id, `$2` name, `$3` at.
pub fn rename<K: StoredKind>() -> &'static str {
    &K::statements().rename
}

/// The token columns every query selects (never a digest), from the table aliased `t`.
pub fn columns<K: StoredKind>() -> String {
    format!(
        "t.id, t.{} AS owner_id, t.name, t.hint{}, t.created_at, t.updated_at, t.last_used_at, \
         t.last_used_ip, t.last_used_via, t.expires_at, t.revoked_at, t.previous_expires_at, \
         t.allowed_ips",
        K::OWNER_COLUMN,
        if K::HAS_ABILITIES {
            ", t.abilities"
        } else {
            ""
        }
    )
}

/// A token by id (`$1`).
fn build_select_by_id<K: StoredKind>() -> String {
    format!(
        "SELECT {} FROM {} t WHERE t.id = $1",
        columns::<K>(),
        K::TABLE
    )
}

/// A token by current or previous digest (`$1`), with its grant columns and which digest it
/// is: two probes of unique indexes joined with `UNION ALL … LIMIT 1`, so that the common case
/// (the current value) reads one index entry and stops; the previous digest is probed only when
/// the current one matched nothing. (An `OR` of the two made PostgreSQL plan a bitmap OR,
/// measurably slower per lookup.)
fn build_select_by_digest<K: StoredKind>() -> String {
    let columns = columns::<K>();
    let from = K::GRANT_COLUMNS_AND_JOIN;
    format!(
        "SELECT {columns}, TRUE AS grant_current{from} WHERE t.digest = $1 \
         UNION ALL \
         SELECT {columns}, FALSE AS grant_current{from} WHERE t.previous_digest = $1 \
         LIMIT 1"
    )
}

/// An owner's (`$1`) tokens with a status at "now" (`$2`); paginate it.
pub fn select_owned<K: StoredKind>(status: TokenStatusFilter) -> String {
    let condition = match status {
        TokenStatusFilter::Active => {
            " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
        }
        TokenStatusFilter::Revoked => " AND revoked_at IS NOT NULL",
        TokenStatusFilter::Expired => " AND revoked_at IS NULL AND expires_at <= $2",
        TokenStatusFilter::All => "",
    };
    format!(
        "SELECT {} FROM {} t WHERE {} = $1{condition}",
        columns::<K>(),
        K::TABLE,
        K::OWNER_COLUMN
    )
}

/// Tokens active at `$1` that expire at or before `$2` (and, `by_owner`, whose owner is `$3`),
/// soonest first.
pub fn select_expiring<K: StoredKind>(by_owner: bool) -> String {
    format!(
        "SELECT {} FROM {} t WHERE t.revoked_at IS NULL AND t.expires_at > $1 \
         AND t.expires_at <= $2{} ORDER BY t.expires_at, t.id",
        columns::<K>(),
        K::TABLE,
        if by_owner {
            format!(" AND t.{} = $3", K::OWNER_COLUMN)
        } else {
            String::new()
        }
    )
}

/// How many tokens are active at `$1` and expire at or before `$2`.
pub fn count_expiring<K: StoredKind>() -> String {
    format!(
        "SELECT COUNT(*) FROM {} WHERE revoked_at IS NULL AND expires_at > $1 \
         AND expires_at <= $2",
        K::TABLE
    )
}

/// Inserts a token: `$1` id, `$2` owner, `$3` name, `$4` digest, `$5` hint, `$6` created,
/// `$7` updated, `$8` expires, `$9` revoked, `$10` allowed IPs, and `$11` abilities when the
/// kind has them.
fn build_insert<K: StoredKind>() -> String {
    let (column, value) = if K::HAS_ABILITIES {
        (", abilities", ", $11")
    } else {
        ("", "")
    };
    format!(
        "INSERT INTO {} (id, {}, name, digest, hint, created_at, updated_at, expires_at, \
         revoked_at, allowed_ips{column}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10{value})",
        K::TABLE,
        K::OWNER_COLUMN
    )
}

/// Renames a non-revoked token: `$1` id, `$2` name, `$3` at.
fn build_rename<K: StoredKind>() -> String {
    format!(
        "UPDATE {} SET name = $2, updated_at = $3 WHERE id = $1 AND revoked_at IS NULL",
        K::TABLE
    )
}

/// A token row as selected by [`columns`], whatever the store's type `T` for instants.
#[derive(Debug, sqlx::FromRow)]
pub struct TokenRow<T> {
    pub(crate) id: Uuid,
    pub(crate) owner_id: Uuid,
    pub(crate) name: String,
    pub(crate) hint: String,
    #[sqlx(default)]
    pub(crate) abilities: Option<String>,
    pub(crate) created_at: T,
    pub(crate) updated_at: T,
    pub(crate) last_used_at: Option<T>,
    pub(crate) last_used_ip: Option<String>,
    pub(crate) last_used_via: Option<String>,
    pub(crate) expires_at: Option<T>,
    pub(crate) revoked_at: Option<T>,
    pub(crate) previous_expires_at: Option<T>,
    pub(crate) allowed_ips: String,
    #[sqlx(default)]
    pub(crate) grant_team_id: Option<Uuid>,
    #[sqlx(default)]
    pub(crate) grant_smtp_enabled: Option<bool>,
    #[sqlx(default)]
    pub(crate) grant_current: Option<bool>,
}

impl<T> TokenRow<T> {
    /// The token, reading instants with `instant`.
    pub fn into_token<K: StoredKind>(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<Token<K>, Error> {
        let opt = |v: Option<T>| v.map(&instant).transpose();
        Ok(Token {
            id: TokenId::from_uuid(self.id),
            owner: K::owner_id(self.owner_id),
            name: Name::from_stored(self.name),
            hint: TokenHint::from_stored(self.hint),
            abilities: K::load_abilities(self.abilities)?,
            created_at: instant(self.created_at)?,
            updated_at: instant(self.updated_at)?,
            last_use: last_use(
                opt(self.last_used_at)?,
                self.last_used_ip,
                self.last_used_via,
            )?,
            expires_at: opt(self.expires_at)?,
            revoked_at: opt(self.revoked_at)?,
            previous_expires_at: opt(self.previous_expires_at)?,
            allowed_ips: IpAllowlist::from_stored(&self.allowed_ips)?,
        })
    }

    /// The grant of a row read by [`select_by_digest`].
    pub fn into_grant<K: StoredKind>(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<K::Grant, Error> {
        let extra = GrantColumns {
            team_id: self.grant_team_id,
            smtp_enabled: self.grant_smtp_enabled,
            current: self.grant_current,
        };
        K::grant(self.into_token(instant)?, extra)
    }
}
