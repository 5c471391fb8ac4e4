//! Runs the compiled `token-admin` against a fresh database of either backend.

use std::process::Output;
use std::sync::Arc;

use assert_cmd::Command;
use lettermint_core::{
    Action, Channel, Clock, Outcome, Services, Store, SystemClock, TokenId, UsageRecord,
};
use lettermint_store::OpenOptions;
use lettermint_testkit::process::{Binary, Running};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// A fresh, empty database and the way to run the binary against it.
pub struct Db {
    pub url: String,
    pub backend: &'static str,
    /// For SQLite: the directory holding the file. Also the binary's working directory, so a
    /// stray default `lettermint.sqlite` would land in a temporary directory.
    pub dir: tempfile::TempDir,
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

impl From<Output> for Ran {
    fn from(o: Output) -> Self {
        Self {
            stdout: String::from_utf8(o.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(o.stderr).expect("utf-8 stderr"),
            code: o.status.code(),
        }
    }
}

impl Db {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/lettermint.sqlite", dir.path().display());
        Self {
            url,
            backend: "sqlite",
            dir,
        }
    }

    pub async fn postgres() -> Self {
        let url = lettermint_testkit::pg::shared().create_database().await;
        Self {
            url,
            backend: "postgres",
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The binary with this database in `LETTERMINT_DATABASE_URL`, off a terminal.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_token-admin"));
        cmd.current_dir(self.dir.path())
            .env("LETTERMINT_DATABASE_URL", &self.url)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .args(args);
        cmd
    }

    /// The binary started in the background like [`Db::cmd`], for commands that keep running
    /// (`token logs --follow`); its stdout is read line by line.
    pub fn spawn(&self, args: &[&str]) -> Running {
        Binary::new(env!("CARGO_BIN_EXE_token-admin"))
            .current_dir(self.dir.path())
            .env("LETTERMINT_DATABASE_URL", &self.url)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .args(args)
            .start()
    }

    /// Runs a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Ran {
        self.succeeded(
            args,
            self.cmd(args).output().expect("run token-admin").into(),
        )
    }

    /// Runs a command that must succeed, with `input` on its standard input.
    pub fn ok_with_input(&self, args: &[&str], input: &str) -> Ran {
        let output = self
            .cmd(args)
            .write_stdin(input)
            .output()
            .expect("run token-admin");
        self.succeeded(args, output.into())
    }

    /// `ran`, once it is checked to have exited 0.
    fn succeeded(&self, args: &[&str], ran: Ran) -> Ran {
        assert_eq!(
            ran.code,
            Some(0),
            "`token-admin {}` failed on {}:\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.backend,
            ran.stdout,
            ran.stderr
        );
        ran
    }

    /// Runs a command that must fail with `code`; returns its one-line error.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        self.fails_with_input(args, "", code)
    }

    /// Runs a command with `input` on its standard input that must fail with `code`; returns
    /// its one-line error.
    pub fn fails_with_input(&self, args: &[&str], input: &str, code: i32) -> String {
        let ran: Ran = self
            .cmd(args)
            .write_stdin(input)
            .output()
            .expect("run token-admin")
            .into();
        assert_eq!(
            ran.code,
            Some(code),
            "`token-admin {}` on {}: expected exit code {code}:\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.backend,
            ran.stdout,
            ran.stderr
        );
        assert_eq!(ran.stdout, "", "a failure prints nothing on stdout");
        let stderr = ran.stderr.trim_end().to_owned();
        assert!(
            stderr.starts_with("error: ") && !stderr.contains('\n'),
            "errors are one line starting with `error: `, got:\n{stderr}"
        );
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
        stderr
    }

    /// Runs a command with `--json` that must succeed, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let ran = self.ok(&with_json);
        serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", ran.stdout))
    }

    /// The store, opened in this process (to record usage as the front doors would).
    pub async fn store(&self) -> Arc<dyn Store> {
        lettermint_store::open(&self.url, OpenOptions { max_connections: 2 })
            .await
            .expect("open the store in-process")
            .into_dyn()
    }

    pub async fn services(&self) -> Services {
        Services::new(self.store().await, Arc::new(SystemClock))
    }
}

/// A use of a token `ago` before now.
pub fn used(
    token: &str,
    ago: Duration,
    via: Channel,
    action: Action,
    outcome: Outcome,
    status: u16,
    ip: &str,
) -> UsageRecord {
    UsageRecord {
        credential: None,
        token_id: token.parse::<TokenId>().expect("token id"),
        at: now() - ago,
        ip: Some(ip.parse().expect("ip")),
        via,
        action,
        outcome,
        status,
        message_ids: Vec::new(),
        user_agent: (via == Channel::Api).then(|| "lettermint-php/1.0".to_owned()),
    }
}

pub fn now() -> OffsetDateTime {
    SystemClock.now()
}

/// Replaces what changes from run to run with fixed text of the same width where alignment
/// matters: RFC 3339 instants, token values and hints, UUIDs.
pub fn redact(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(len) = uuid_at(&chars[i..]) {
            out.push_str("[id]");
            i += len;
        } else if let Some(len) = instant_at(&chars[i..]) {
            out.push_str("YYYY-MM-DDTHH:MM:SSZ");
            i += len;
        } else if let Some((len, replacement)) = token_at(&chars[i..]) {
            out.push_str(&replacement);
            i += len;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn uuid_at(s: &[char]) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (g, len) in GROUPS.iter().enumerate() {
        for _ in 0..*len {
            if !s.get(i)?.is_ascii_hexdigit() {
                return None;
            }
            i += 1;
        }
        if g < 4 {
            if *s.get(i)? != '-' {
                return None;
            }
            i += 1;
        }
    }
    Some(i)
}

fn instant_at(s: &[char]) -> Option<usize> {
    // 2026-01-01T10:00:00(.123456)?Z
    let pattern = "dddd-dd-ddTdd:dd:dd";
    for (i, p) in pattern.chars().enumerate() {
        let c = *s.get(i)?;
        let fits = if p == 'd' { c.is_ascii_digit() } else { c == p };
        if !fits {
            return None;
        }
    }
    let mut i = pattern.len();
    if s.get(i) == Some(&'.') {
        i += 1;
        while s.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
    }
    (s.get(i) == Some(&'Z')).then_some(i + 1)
}

fn token_at(s: &[char]) -> Option<(usize, String)> {
    let starts = |p: &str| p.chars().enumerate().all(|(i, c)| s.get(i) == Some(&c));
    if !starts("lm_") {
        return None;
    }
    let prefix = if starts("lm_team_") {
        "lm_team_"
    } else {
        "lm_"
    };
    let mut i = prefix.len();
    let body_start = i;
    while s.get(i).is_some_and(char::is_ascii_alphanumeric) {
        i += 1;
    }
    if i - body_start == 4 && s.get(i) == Some(&'…') {
        // A hint: lm_Ab3x…9Qz1
        let mut j = i + 1;
        while s.get(j).is_some_and(char::is_ascii_alphanumeric) {
            j += 1;
        }
        return Some((j, format!("{prefix}xxxx…xxxx")));
    }
    (i - body_start >= 20).then(|| (i, format!("{prefix}[token]")))
}

#[test]
fn redaction_keeps_the_rest() {
    let text = "lm_Ab3x…9Qz1  2026-01-01T10:00:00.5Z 01a21eed-2886-75ca-b9da-cd572c5410b4 lm_team_abcdefghijklmnopqrstuvwxyz0123 lm_ x";
    assert_eq!(
        redact(text),
        "lm_xxxx…xxxx  YYYY-MM-DDTHH:MM:SSZ [id] lm_team_[token] lm_ x"
    );
}
