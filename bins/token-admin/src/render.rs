//! Output: JSON objects with the Team API's field names, aligned tables and times.

use lettermint_core::{
    Abilities, Account, ForProject, ForTeam, Member, Owner, Project, ProjectId, Role, Team, TeamId,
    Token, TokenLogEntry, TokenStatus, service::TeamSummary,
};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// An instant as RFC 3339 in UTC with `Z`.
#[must_use]
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// An instant as RFC 3339 without sub-second digits, for tables.
#[must_use]
pub fn absolute(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    rfc3339(at.replace_nanosecond(0).unwrap_or(at))
}

/// "3 minutes ago", "in 2 days", "just now".
#[must_use]
pub fn relative(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let delta = now - at;
    let future = delta.is_negative();
    let secs = delta.whole_seconds().unsigned_abs();
    if secs < 60 {
        return "just now".to_owned();
    }
    let (n, unit) = match secs {
        s if s < 3_600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3_600, "hour"),
        s if s < 30 * 86_400 => (s / 86_400, "day"),
        s if s < 365 * 86_400 => (s / (30 * 86_400), "month"),
        s => (s / (365 * 86_400), "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// How times are shown in text output.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// The instant relative times are measured from.
    pub now: OffsetDateTime,
    /// RFC 3339 instead of relative.
    pub absolute: bool,
}

impl Times {
    /// One instant, relative or absolute.
    #[must_use]
    pub fn show(&self, at: OffsetDateTime) -> String {
        if self.absolute {
            absolute(at)
        } else {
            relative(at, self.now)
        }
    }

    /// An optional instant; `none` when absent.
    #[must_use]
    pub fn show_opt(&self, at: Option<OffsetDateTime>, none: &str) -> String {
        at.map_or_else(|| none.to_owned(), |at| self.show(at))
    }

    /// Both forms: `2026-01-01T10:00:00Z (3 minutes ago)`, for detail views.
    #[must_use]
    pub fn both(&self, at: Option<OffsetDateTime>, none: &str) -> String {
        match at {
            None => none.to_owned(),
            Some(at) => format!("{} ({})", absolute(at), relative(at, self.now)),
        }
    }
}

/// A table with a header row; columns are separated by two spaces and padded to the widest
/// cell (counting characters).
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    #[must_use]
    pub fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each ending with a newline.
    #[must_use]
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < columns {
                    let pad = widths[i] - cell.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Key/value lines for detail views, keys padded to the longest.
#[must_use]
pub fn details(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        out.push_str(&format!("{label:<width$}  {value}\n"));
    }
    out
}

/// A team in JSON.
#[derive(Debug, Serialize)]
pub struct TeamJson {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Number of projects.
    pub projects_count: u64,
}

impl TeamJson {
    /// From a team and its project count.
    #[must_use]
    pub fn new(team: &Team, projects_count: u64) -> Self {
        Self {
            id: team.id.to_string(),
            name: team.name.to_string(),
            created_at: rfc3339(team.created_at),
            updated_at: rfc3339(team.updated_at),
            projects_count,
        }
    }

    /// From a team summary.
    #[must_use]
    pub fn from_summary(summary: &TeamSummary) -> Self {
        Self::new(&summary.team, summary.projects_count)
    }
}

/// A project in JSON.
#[derive(Debug, Serialize)]
pub struct ProjectJson {
    /// Id.
    pub id: String,
    /// Owning team (the operator sees every team).
    pub team_id: String,
    /// Name.
    pub name: String,
    /// Whether SMTP is allowed.
    pub smtp_enabled: bool,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

impl From<&Project> for ProjectJson {
    fn from(p: &Project) -> Self {
        Self {
            id: p.id.to_string(),
            team_id: p.team_id.to_string(),
            name: p.name.to_string(),
            smtp_enabled: p.smtp_enabled,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// A token of either kind in JSON (the Team API's field names), with its value when it was
/// just issued.
#[derive(Debug, Serialize)]
pub struct TokenJson {
    /// Id.
    pub id: String,
    /// `project_id` or `team_id`.
    #[serde(flatten)]
    pub owner: OwnerJson,
    /// Name.
    pub name: String,
    /// Non-secret fragment.
    pub hint: String,
    /// Ability names (team tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abilities: Option<Vec<String>>,
    /// active, revoked or expired.
    pub status: &'static str,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
    /// Last used.
    pub last_used_at: Option<String>,
    /// Last client address.
    pub last_used_ip: Option<String>,
    /// api or smtp.
    pub last_used_via: Option<&'static str>,
    /// Expiry.
    pub expires_at: Option<String>,
    /// Revocation.
    pub revoked_at: Option<String>,
    /// While a rotation's overlap runs: when the previous value stops working.
    pub previous_expires_at: Option<String>,
    /// Networks its clients may connect from (empty: any).
    pub allowed_ips: Vec<String>,
    /// The full value, only right after creation or regeneration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The owner of a token, named by its field.
#[derive(Debug, Serialize)]
pub enum OwnerJson {
    /// A project token's project.
    #[serde(rename = "project_id")]
    Project(String),
    /// A team token's team.
    #[serde(rename = "team_id")]
    Team(String),
}

/// How each kind of token shows in JSON.
pub trait TokenKindJson: Owner {
    /// Its owner field.
    fn owner(id: Self::Id) -> OwnerJson;
    /// Its ability names, if the kind has abilities.
    fn abilities(abilities: &Self::Abilities) -> Option<Vec<String>>;
}

impl TokenKindJson for ForProject {
    fn owner(id: ProjectId) -> OwnerJson {
        OwnerJson::Project(id.to_string())
    }

    fn abilities((): &()) -> Option<Vec<String>> {
        None
    }
}

impl TokenKindJson for ForTeam {
    fn owner(id: TeamId) -> OwnerJson {
        OwnerJson::Team(id.to_string())
    }

    fn abilities(abilities: &Abilities) -> Option<Vec<String>> {
        Some(abilities.to_strings())
    }
}

impl TokenJson {
    /// A token's JSON at `now` (for its status).
    #[must_use]
    pub fn new<K: TokenKindJson>(t: &Token<K>, now: OffsetDateTime) -> Self {
        Self {
            id: t.id.to_string(),
            owner: K::owner(t.owner),
            name: t.name.to_string(),
            hint: t.hint.to_string(),
            abilities: K::abilities(&t.abilities),
            status: t.status(now).as_str(),
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            last_used_at: t.last_use.at.map(rfc3339),
            last_used_ip: t.last_use.ip.map(|ip| ip.to_string()),
            last_used_via: t.last_use.via.map(|v| v.as_str()),
            expires_at: t.expires_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
            previous_expires_at: t.overlap_until(now).map(rfc3339),
            allowed_ips: t.allowed_ips.to_strings(),
            token: None,
        }
    }
}

/// A log entry in JSON.
#[derive(Debug, Serialize)]
pub struct LogEntryJson {
    /// Id.
    pub id: String,
    /// Token.
    pub token_id: String,
    /// When.
    pub at: String,
    /// Client address.
    pub ip: Option<String>,
    /// api, smtp or dashboard.
    pub via: &'static str,
    /// What for.
    pub action: &'static str,
    /// How it ended.
    pub outcome: &'static str,
    /// HTTP status or SMTP reply code.
    pub status: u16,
    /// Accepted messages.
    pub message_ids: Vec<String>,
    /// HTTP User-Agent.
    pub user_agent: Option<String>,
    /// Which of the token's values was used: `current`, or `previous` during a rotation.
    pub credential: Option<&'static str>,
    /// Where the token's value was found, when a leak report revoked it.
    pub leak_url: Option<String>,
    /// Who made the change, for a change made in the dashboard (their email).
    pub actor: Option<String>,
}

impl From<&TokenLogEntry> for LogEntryJson {
    fn from(e: &TokenLogEntry) -> Self {
        Self {
            id: e.id.to_string(),
            token_id: e.token_id.to_string(),
            at: rfc3339(e.at),
            ip: e.ip.map(|ip| ip.to_string()),
            via: e.via.as_str(),
            action: e.action.as_str(),
            outcome: e.outcome.as_str(),
            status: e.status,
            message_ids: e.message_ids.iter().map(ToString::to_string).collect(),
            user_agent: e.user_agent.clone(),
            credential: e.credential.map(|c| c.as_str()),
            leak_url: e.leak_url.clone(),
            actor: e.actor.clone(),
        }
    }
}

/// An account in JSON, with its teams and, when it was just generated, its password.
#[derive(Debug, Serialize)]
pub struct AccountJson {
    /// Id.
    pub id: String,
    /// Login.
    pub email: String,
    /// The name the dashboard shows.
    pub display_name: String,
    /// Created.
    pub created_at: String,
    /// When its password last changed.
    pub password_changed_at: String,
    /// Its teams, by name, with its role in each.
    pub teams: Vec<MembershipJson>,
    /// The generated password, only when this command generated it (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl AccountJson {
    /// From an account and its memberships.
    #[must_use]
    pub fn new(account: &Account, teams: &[(Team, Role)]) -> Self {
        Self {
            id: account.id.to_string(),
            email: account.email.to_string(),
            display_name: account.display_name.to_string(),
            created_at: rfc3339(account.created_at),
            password_changed_at: rfc3339(account.password_changed_at),
            teams: teams
                .iter()
                .map(|(team, role)| MembershipJson {
                    team_id: team.id.to_string(),
                    name: team.name.to_string(),
                    role: role.as_str(),
                })
                .collect(),
            password: None,
        }
    }
}

/// An account's place in a team, in JSON.
#[derive(Debug, Serialize)]
pub struct MembershipJson {
    /// The team's id.
    pub team_id: String,
    /// The team's name.
    pub name: String,
    /// owner, admin or member.
    pub role: &'static str,
}

/// A team member in JSON and, when its account was just created with a generated password,
/// that password.
#[derive(Debug, Serialize)]
pub struct MemberJson {
    /// The team.
    pub team_id: String,
    /// The account.
    pub account_id: String,
    /// The account's login.
    pub email: String,
    /// The account's name.
    pub display_name: String,
    /// owner, admin or member.
    pub role: &'static str,
    /// When it joined the team.
    pub joined_at: String,
    /// The generated password of the account, only when this command created it (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl From<&Member> for MemberJson {
    fn from(m: &Member) -> Self {
        Self {
            team_id: m.team_id.to_string(),
            account_id: m.account.id.to_string(),
            email: m.account.email.to_string(),
            display_name: m.account.display_name.to_string(),
            role: m.role.as_str(),
            joined_at: rfc3339(m.joined_at),
            password: None,
        }
    }
}

/// Serialises for output: pretty, with a trailing newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    text.push('\n');
    text
}

/// Serialises on one line (for streams).
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> String {
    let mut text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    text.push('\n');
    text
}

/// The status word for text output.
#[must_use]
pub fn status(status: TokenStatus) -> &'static str {
    status.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn relative_times_read_naturally() {
        let now = datetime!(2026-01-10 12:00 UTC);
        let cases = [
            (datetime!(2026-01-10 11:59:30 UTC), "just now"),
            (datetime!(2026-01-10 11:59 UTC), "1 minute ago"),
            (datetime!(2026-01-10 11:57 UTC), "3 minutes ago"),
            (datetime!(2026-01-10 09:00 UTC), "3 hours ago"),
            (datetime!(2026-01-08 12:00 UTC), "2 days ago"),
            (datetime!(2025-11-01 12:00 UTC), "2 months ago"),
            (datetime!(2024-01-01 12:00 UTC), "2 years ago"),
            (datetime!(2026-02-09 12:00 UTC), "in 1 month"),
            (datetime!(2026-01-11 12:00 UTC), "in 1 day"),
        ];
        for (at, expected) in cases {
            assert_eq!(relative(at, now), expected);
        }
    }

    #[test]
    fn instants_are_utc_with_z() {
        let at = datetime!(2026-01-10 12:00:01.5 +02:00);
        assert_eq!(rfc3339(at), "2026-01-10T10:00:01.5Z");
        assert_eq!(absolute(at), "2026-01-10T10:00:01Z");
    }

    #[test]
    fn tables_align_on_characters() {
        let mut t = Table::new(vec!["NAME", "HINT"]);
        t.row(vec!["é".into(), "lm_a…b".into()]);
        t.row(vec!["longer".into(), "-".into()]);
        assert_eq!(t.render(), "NAME    HINT\né       lm_a…b\nlonger  -\n");
    }
}
