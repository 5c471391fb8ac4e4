//! The command line: `token-admin <noun> <verb>`, with help on every level.

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::io::Read;

use lettermint_core::{MessageStatus, Outcome, Role, TokenStatusFilter};
use lettermint_store::DEFAULT_DATABASE_URL;
use time::OffsetDateTime;

use crate::when::{Since, parse_duration, parse_instant};

const AFTER_HELP: &str = "\
TEAM, PROJECT and TOKEN arguments take an id or a name; EMAIL names an account. Names are looked up within the team (for \
projects) or the project (for tokens); when a name matches several, the error lists the \
candidates and their ids.

Exit codes: 0 success, 1 operational failure (not found, ambiguous name, conflict, database \
unreachable), 2 usage error (bad arguments, durations, abilities or names).";

/// The operator's tool for Lettermint tokens: teams, projects, project tokens and team tokens,
/// straight against the store the servers use.
#[derive(Debug, Parser)]
#[command(
    name = "token-admin",
    version,
    propagate_version = true,
    after_help = AFTER_HELP,
    arg_required_else_help = true
)]
pub struct Cli {
    /// The store: sqlite://path/to/file.sqlite (the servers' default) or
    /// postgres://user@host/db.
    #[arg(
        long,
        global = true,
        env = "LETTERMINT_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Print JSON (stable field names, the Team API's) instead of text, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to manage.
    #[command(subcommand)]
    pub command: Noun,
}

/// The nouns.
#[derive(Debug, Subcommand)]
pub enum Noun {
    /// Teams: the owners of projects and team tokens.
    #[command(subcommand, arg_required_else_help = true)]
    Team(TeamCommand),
    /// Projects: the units that send mail, each with its own tokens.
    #[command(subcommand, arg_required_else_help = true)]
    Project(ProjectCommand),
    /// Project tokens (`lm_…`): send mail for one project through the API and SMTP.
    #[command(subcommand, arg_required_else_help = true)]
    Token(TokenCommand),
    /// Messages: what a project sent, and how delivery went.
    #[command(subcommand, arg_required_else_help = true)]
    Message(MessageCommand),
    /// Team tokens (`lm_team_…`): manage a team through the Team API, with abilities.
    #[command(name = "team-token", subcommand, arg_required_else_help = true)]
    TeamToken(TeamTokenCommand),
    /// Accounts: the people who log in to the dashboard.
    #[command(subcommand, arg_required_else_help = true)]
    Account(AccountCommand),
    /// Team members: the accounts of a team, each with a role (owner, admin or member).
    #[command(subcommand, arg_required_else_help = true)]
    Member(MemberCommand),
}

/// `token-admin team …`
#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team (and, on a fresh setup, the SQLite database file).
    Create {
        /// The team's name (1–100 characters).
        name: String,
    },
    /// List every team, by name, with its number of projects.
    List,
    /// Show one team.
    Show {
        /// The team: its id or its name.
        team: String,
    },
    /// Rename a team.
    Rename {
        /// The team: its id or its name.
        team: String,
        /// The new name.
        new_name: String,
    },
}

/// `--team` for commands that find a project or a team by name.
#[derive(Debug, Args)]
pub struct TeamOpt {
    /// The team (id or name) to look project names up in; needed only when several teams have
    /// a project of that name.
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
}

/// `--smtp` / `--no-smtp`.
#[derive(Debug, Args)]
pub struct SmtpOpt {
    /// Allow the project's tokens to authenticate the SMTP relay.
    #[arg(long, conflicts_with = "no_smtp")]
    pub smtp: bool,
    /// Do not allow SMTP for the project's tokens.
    #[arg(long)]
    pub no_smtp: bool,
}

impl SmtpOpt {
    /// `Some(true)`, `Some(false)` or `None` when neither flag was given.
    #[must_use]
    pub fn value(&self) -> Option<bool> {
        match (self.smtp, self.no_smtp) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

/// `--yes`.
#[derive(Debug, Args)]
pub struct YesOpt {
    /// Do not ask for confirmation (required when not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `token-admin project …`
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project with its default route and, with --with-token, a first token.
    Create {
        /// The project's name (1–100 characters).
        name: String,
        /// The team (id or name) that owns it; may be left out when there is only one team.
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// SMTP setting.
        #[command(flatten)]
        smtp: SmtpOpt,
        /// Also create a first project token with this name and print it once.
        #[arg(long, value_name = "NAME")]
        with_token: Option<String>,
    },
    /// List projects, by name: of one team, or of every team.
    List {
        /// Only this team's projects (id or name).
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// Only projects whose name contains this text (case-insensitive).
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
    },
    /// Show one project.
    Show {
        /// The project: its id or its name.
        project: String,
        /// Where to look project names up.
        #[command(flatten)]
        team: TeamOpt,
    },
    /// Change a project's name or SMTP setting.
    Update {
        /// The project: its id or its name.
        project: String,
        /// Where to look project names up.
        #[command(flatten)]
        team: TeamOpt,
        /// The new name.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// SMTP setting.
        #[command(flatten)]
        smtp: SmtpOpt,
    },
    /// Delete a project with its routes, tokens, logs and messages. Its tokens stop working at
    /// once. Asks for confirmation on a terminal; needs --yes otherwise.
    Delete {
        /// The project: its id or its name.
        project: String,
        /// Where to look project names up.
        #[command(flatten)]
        team: TeamOpt,
        /// Confirmation.
        #[command(flatten)]
        yes: YesOpt,
    },
}

/// `token-admin message …`
#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// List a project's messages, newest first, with their delivery status.
    List {
        /// The project: its id or its name.
        #[arg(long, short = 'p', value_name = "PROJECT")]
        project: String,
        /// Where to look project names up.
        #[command(flatten)]
        team: TeamOpt,
        /// Only messages with this status.
        #[arg(
            long,
            value_name = "STATUS",
            value_parser = PossibleValuesParser::new(MessageStatus::ALL.iter().map(|s| s.as_str()))
                .try_map(|s| s.parse::<MessageStatus>())
        )]
        status: Option<MessageStatus>,
        /// How many messages to show at most.
        #[arg(long, short = 'n', value_name = "N", default_value_t = 50,
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// How times are shown.
        #[command(flatten)]
        time: TimeOpt,
    },
    /// Show one message: envelope, status, attempts and the smarthost's last reply.
    Show {
        /// The message's id (the `message_id` of the send).
        id: String,
        /// The project: its id or its name.
        #[arg(long, short = 'p', value_name = "PROJECT")]
        project: String,
        /// Where to look project names up.
        #[command(flatten)]
        team: TeamOpt,
        /// How times are shown.
        #[command(flatten)]
        time: TimeOpt,
    },
}

/// Which tokens a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum StatusArg {
    /// Usable tokens.
    #[default]
    Active,
    /// Revoked tokens.
    Revoked,
    /// Tokens past their expiry.
    Expired,
    /// Every token.
    All,
}

impl StatusArg {
    /// The core's filter.
    #[must_use]
    pub fn filter(self) -> TokenStatusFilter {
        match self {
            StatusArg::Active => TokenStatusFilter::Active,
            StatusArg::Revoked => TokenStatusFilter::Revoked,
            StatusArg::Expired => TokenStatusFilter::Expired,
            StatusArg::All => TokenStatusFilter::All,
        }
    }

    /// The word shown in messages.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StatusArg::Active => "active",
            StatusArg::Revoked => "revoked",
            StatusArg::Expired => "expired",
            StatusArg::All => "all",
        }
    }
}

/// `--project` for commands that find a token by name.
#[derive(Debug, Args)]
pub struct ProjectOpt {
    /// The project (id or name) to look the token name up in; not needed when TOKEN is an id.
    #[arg(long, short = 'p', value_name = "PROJECT")]
    pub project: Option<String>,
    /// The team (id or name) to look the project name up in, when several teams have a
    /// project of that name.
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
}

/// `--expires-in` / `--expires-at`.
#[derive(Debug, Args)]
pub struct ExpiryOpt {
    /// Expire after this long: a number and a unit (s, m, h, d, w), e.g. 30d, 12h, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expires_at")]
    pub expires_in: Option<time::Duration>,
    /// Expire at this instant: RFC 3339 (2026-12-31T23:59:59Z) or a date (2026-12-31, midnight
    /// UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_instant)]
    pub expires_at: Option<OffsetDateTime>,
}

/// `--absolute`.
#[derive(Debug, Args, Clone, Copy)]
pub struct TimeOpt {
    /// Show times as RFC 3339 instants instead of "3 minutes ago".
    #[arg(long)]
    pub absolute: bool,
}

/// `token-admin token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a project token. Prints the full token once, alone on stdout, so that
    /// `TOKEN=$(token-admin token create …)` works; it cannot be shown again.
    Create {
        /// The project (id or name) the token sends mail for.
        #[arg(long, short = 'p', value_name = "PROJECT")]
        project: String,
        /// The team (id or name) to look the project name up in, when several teams have a
        /// project of that name.
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// The token's name, unique among the project's tokens that are not revoked.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Expiry.
        #[command(flatten)]
        expiry: ExpiryOpt,
        /// Only allow clients from this network (IPv4 or IPv6 CIDR, or an address). Repeat
        /// for several; without it, any address.
        #[arg(long = "allow-ip", value_name = "CIDR")]
        allow_ip: Vec<String>,
    },
    /// List a project's tokens by name: hint, status, expiry, last changed, last used, last IP,
    /// via. With --expiring, only the active tokens that expire within that time, soonest
    /// first: of --project, or of every project of every team when --project is left out.
    List {
        /// The project (id or name); may be left out with --expiring (every project).
        #[arg(
            long,
            short = 'p',
            value_name = "PROJECT",
            required_unless_present = "expiring"
        )]
        project: Option<String>,
        /// The team (id or name) to look the project name up in.
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// Which tokens to show.
        #[arg(long, value_enum, default_value_t = StatusArg::Active, conflicts_with = "expiring")]
        status: StatusArg,
        /// Only active tokens that expire within this time from now (7d, 12h, 2w), soonest
        /// first.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expiring: Option<time::Duration>,
        /// How times are shown.
        #[command(flatten)]
        time: TimeOpt,
    },
    /// Show one token.
    Show {
        /// The token: its id, or its name within --project.
        token: String,
        /// Where to look token names up.
        #[command(flatten)]
        project: ProjectOpt,
        /// How times are shown.
        #[command(flatten)]
        time: TimeOpt,
    },
    /// Rename a token (the name must stay unique among the project's tokens).
    Rename {
        /// The token: its id, or its name within --project.
        token: String,
        /// The new name.
        new_name: String,
        /// Where to look token names up.
        #[command(flatten)]
        project: ProjectOpt,
    },
    /// Replace a token's value, keeping its id and name. The old value stops working at once;
    /// the new one is printed once, alone on stdout. Asks for confirmation on a terminal; needs
    /// --yes otherwise.
    Regenerate {
        /// The token: its id, or its name within --project.
        token: String,
        /// Where to look token names up.
        #[command(flatten)]
        project: ProjectOpt,
        /// Confirmation.
        #[command(flatten)]
        yes: YesOpt,
    },
    /// Rotate a token: a new value works at once and the current one keeps working until
    /// --overlap has passed (then it fails like a regenerated value). The new value is printed
    /// once, alone on stdout. Regenerate or revoke end the overlap at once.
    Rotate {
        /// The token: its id, or its name within --project.
        token: String,
        /// How long the current value keeps working: 30m, 24h, 7d (s, m, h, d; at most 7d).
        #[arg(long, value_name = "DURATION")]
        overlap: String,
        /// Where to look token names up.
        #[command(flatten)]
        project: ProjectOpt,
    },
    /// Replace a token's IP allowlist: the networks its clients may connect from. Applies to
    /// every front door at once.
    Allow {
        /// The token: its id, or its name within --project.
        token: String,
        /// A network (IPv4 or IPv6 CIDR, or an address); repeat for several.
        #[arg(
            long = "allow-ip",
            value_name = "CIDR",
            required_unless_present = "any"
        )]
        allow_ip: Vec<String>,
        /// Clear the list: any address may use the token.
        #[arg(long, conflicts_with = "allow_ip")]
        any: bool,
        /// Where to look token names up.
        #[command(flatten)]
        project: ProjectOpt,
    },
    /// Revoke a token for good; it is refused from the next request on. Asks for confirmation
    /// on a terminal; needs --yes otherwise.
    Revoke {
        /// The token: its id, or its name within --project.
        token: String,
        /// Where to look token names up.
        #[command(flatten)]
        project: ProjectOpt,
        /// Confirmation.
        #[command(flatten)]
        yes: YesOpt,
    },
    /// Show a token's log, newest first: each use with its outcome, action, IP and channel.
    Logs(LogsArgs),
}

/// `token-admin token logs …`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The token: its id, or its name within --project.
    pub token: String,
    /// Where to look token names up.
    #[command(flatten)]
    pub project: ProjectOpt,
    /// Only entries from this long ago on (1h, 30m, 7d) or since an RFC 3339 instant.
    #[arg(long, value_name = "WHEN", value_parser = Since::parse)]
    pub since: Option<Since>,
    /// Only entries with this outcome.
    #[arg(
        long,
        value_name = "OUTCOME",
        value_parser = PossibleValuesParser::new(Outcome::ALL.iter().map(|o| o.as_str()))
            .try_map(|s| s.parse::<Outcome>())
    )]
    pub outcome: Option<Outcome>,
    /// How many entries to show at most (before --follow streams new ones).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// After the newest entries, keep printing new ones as they arrive until interrupted
    /// (Ctrl-C). With --json, prints one JSON object per line.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How often --follow polls the store, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000, hide = true)]
    pub poll_ms: u64,
    /// How times are shown.
    #[command(flatten)]
    pub time: TimeOpt,
}

/// `--team` for team tokens.
#[derive(Debug, Args)]
pub struct TeamOfTokenOpt {
    /// The team (id or name) to look the token name up in; not needed when TOKEN is an id or
    /// when only one team has a token of that name.
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
}

/// `token-admin team-token …`
#[derive(Debug, Subcommand)]
pub enum TeamTokenCommand {
    /// Create a team token with abilities. Prints the full token once, alone on stdout.
    Create {
        /// The team (id or name) the token manages; may be left out when there is only one team.
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// The token's name, unique among the team's tokens that are not revoked.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// An ability, such as read:projects or write:tokens (write implies read). Repeat the
        /// option or separate with commas.
        #[arg(
            long = "ability",
            value_name = "ABILITY",
            required = true,
            value_delimiter = ',',
            num_args = 1
        )]
        abilities: Vec<String>,
        /// Expiry.
        #[command(flatten)]
        expiry: ExpiryOpt,
    },
    /// List a team's tokens by name, with their abilities and expiry. With --expiring, only the
    /// active tokens that expire within that time, soonest first: of --team, or of every team
    /// when --team is left out.
    List {
        /// The team (id or name); may be left out when there is only one team, or with
        /// --expiring (every team).
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// Which tokens to show.
        #[arg(long, value_enum, default_value_t = StatusArg::Active, conflicts_with = "expiring")]
        status: StatusArg,
        /// Only active tokens that expire within this time from now (7d, 12h, 2w), soonest
        /// first.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expiring: Option<time::Duration>,
        /// How times are shown.
        #[command(flatten)]
        time: TimeOpt,
    },
    /// Show one team token.
    Show {
        /// The token: its id or its name.
        token: String,
        /// Where to look token names up.
        #[command(flatten)]
        team: TeamOfTokenOpt,
        /// How times are shown.
        #[command(flatten)]
        time: TimeOpt,
    },
    /// Replace a team token's value, keeping id, name and abilities; prints the new value once.
    /// Asks for confirmation on a terminal; needs --yes otherwise.
    Regenerate {
        /// The token: its id or its name.
        token: String,
        /// Where to look token names up.
        #[command(flatten)]
        team: TeamOfTokenOpt,
        /// Confirmation.
        #[command(flatten)]
        yes: YesOpt,
    },
    /// Rotate a team token: a new value works at once and the current one keeps working until
    /// --overlap has passed. The new value is printed once, alone on stdout.
    Rotate {
        /// The token: its id or its name.
        token: String,
        /// How long the current value keeps working: 30m, 24h, 7d (at most 7d).
        #[arg(long, value_name = "DURATION")]
        overlap: String,
        /// Where to look token names up.
        #[command(flatten)]
        team: TeamOfTokenOpt,
    },
    /// Replace a team token's IP allowlist.
    Allow {
        /// The token: its id or its name.
        token: String,
        /// A network (IPv4 or IPv6 CIDR, or an address); repeat for several.
        #[arg(
            long = "allow-ip",
            value_name = "CIDR",
            required_unless_present = "any"
        )]
        allow_ip: Vec<String>,
        /// Clear the list: any address may use the token.
        #[arg(long, conflicts_with = "allow_ip")]
        any: bool,
        /// Where to look token names up.
        #[command(flatten)]
        team: TeamOfTokenOpt,
    },
    /// Revoke a team token for good. Asks for confirmation on a terminal; needs --yes
    /// otherwise.
    Revoke {
        /// The token: its id or its name.
        token: String,
        /// Where to look token names up.
        #[command(flatten)]
        team: TeamOfTokenOpt,
        /// Confirmation.
        #[command(flatten)]
        yes: YesOpt,
    },
}

/// `token-admin account …`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create a dashboard account. Unless --password-stdin, a password is generated and printed
    /// once, alone on stdout: hand it over privately and have it changed at the first login.
    Create {
        /// The email the account logs in with (unique, whatever its case).
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// The name the dashboard shows (1–100 characters).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Where the password comes from.
        #[command(flatten)]
        password: PasswordOpt,
    },
    /// List every account by email, with its teams and roles.
    List {
        /// How times are shown.
        #[command(flatten)]
        time: TimeOpt,
    },
    /// Set a new password for an account and end every one of its sessions. Unless
    /// --password-stdin, the password is generated and printed once, alone on stdout.
    ResetPassword {
        /// The account's email.
        email: String,
        /// Where the password comes from.
        #[command(flatten)]
        password: PasswordOpt,
    },
}

/// `token-admin member …`
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add an account to a team with a role. When no account has this email yet, it is
    /// created with --name, and its password is generated and printed once, alone on stdout
    /// (unless --password-stdin).
    Add {
        /// The team (id or name).
        #[arg(long, value_name = "TEAM")]
        team: String,
        /// The account's email.
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// The role: owner (everything), admin (tokens and members below owner) or member
        /// (reads).
        #[arg(long, value_name = "ROLE", value_parser = role_parser())]
        role: Role,
        /// The name of the account to create, when no account has this email yet.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Where the password of a created account comes from.
        #[command(flatten)]
        password: PasswordOpt,
    },
    /// List a team's members: owners first, then by email.
    List {
        /// The team (id or name).
        #[arg(long, value_name = "TEAM")]
        team: String,
        /// How times are shown.
        #[command(flatten)]
        time: TimeOpt,
    },
    /// Change a member's role. A team always keeps at least one owner.
    Role {
        /// The team (id or name).
        #[arg(long, value_name = "TEAM")]
        team: String,
        /// The member's email.
        email: String,
        /// The new role: owner, admin or member.
        #[arg(value_name = "ROLE", value_parser = role_parser())]
        role: Role,
    },
    /// Remove a member from a team; the account stays. A team always keeps at least one owner.
    Remove {
        /// The team (id or name).
        #[arg(long, value_name = "TEAM")]
        team: String,
        /// The member's email.
        email: String,
    },
}

fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.iter().rev().map(|r| r.as_str()))
        .try_map(|s| s.parse::<Role>())
}

/// `--password-stdin`.
#[derive(Debug, Args)]
pub struct PasswordOpt {
    /// Read the password from standard input (a pipe or a file: one line, 12 to 256
    /// characters) instead of generating one.
    #[arg(long)]
    pub password_stdin: bool,
    /// The password read from standard input: filled in by the binary, never by the command
    /// line.
    #[arg(skip)]
    pub password: Option<PasswordInput>,
}

/// A password read from standard input. `Debug` is redacted.
#[derive(Clone, Default)]
pub struct PasswordInput(String);

impl PasswordInput {
    /// Wraps a password.
    #[must_use]
    pub fn new(password: String) -> Self {
        Self(password)
    }

    /// The password, to hand to the service.
    #[must_use]
    pub fn into_secret(self) -> String {
        self.0
    }
}

impl fmt::Debug for PasswordInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordInput(<redacted>)")
    }
}

/// The most bytes `--password-stdin` reads: well above the longest password accepted (256
/// characters of up to 4 bytes), so that anything longer is refused, not cut.
const MAX_PASSWORD_INPUT: u64 = 2048;

/// Reads a password for `--password-stdin`: the whole input, one line, without its line
/// break.
pub fn read_password(input: impl Read) -> Result<PasswordInput, crate::Failure> {
    let mut bytes = Vec::new();
    input
        .take(MAX_PASSWORD_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            crate::Failure::operational(format!(
                "cannot read the password from standard input: {e}"
            ))
        })?;
    if bytes.len() as u64 > MAX_PASSWORD_INPUT {
        return Err(crate::Failure::usage(
            "the password on standard input is too long (at most 256 characters)",
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| crate::Failure::usage("the password on standard input is not UTF-8"))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.contains(['\n', '\r']) {
        return Err(crate::Failure::usage(
            "the password on standard input must be one line",
        ));
    }
    Ok(PasswordInput(line.to_owned()))
}

impl Cli {
    /// Where the password goes when the command reads one from standard input
    /// (`--password-stdin`); `None` when it does not.
    pub fn password_from_stdin(&mut self) -> Option<&mut Option<PasswordInput>> {
        let opt = match &mut self.command {
            Noun::Account(
                AccountCommand::Create { password, .. }
                | AccountCommand::ResetPassword { password, .. },
            )
            | Noun::Member(MemberCommand::Add { password, .. }) => password,
            _ => return None,
        };
        opt.password_stdin.then_some(&mut opt.password)
    }

    /// Whether this command may create the SQLite database file when it does not exist: only
    /// `team create` can do anything useful on an empty database.
    #[must_use]
    pub fn may_create_database(&self) -> bool {
        matches!(self.command, Noun::Team(TeamCommand::Create { .. }))
    }
}
