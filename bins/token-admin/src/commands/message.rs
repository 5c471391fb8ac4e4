//! `token-admin message`: a project's messages and their delivery status.

use lettermint_core::page::MessageSortKey;
use lettermint_core::{Direction, Message, MessageContent, MessageId, PageRequest, Sort};
use serde::Serialize;

use crate::cli::MessageCommand;
use crate::error::{CmdResult, Failure};
use crate::render::{self, Table, Times, details, rfc3339};
use crate::{Console, Ctx, resolve};

/// A message in JSON: its envelope and delivery state (never its content).
#[derive(Debug, Serialize)]
struct MessageJson {
    id: String,
    project_id: String,
    token_id: String,
    via: &'static str,
    status: &'static str,
    envelope_from: String,
    envelope_to: Vec<String>,
    subject: Option<String>,
    tag: Option<String>,
    created_at: String,
    scheduled_at: Option<String>,
    attempts: u32,
    /// Attempts in a row whose worker stopped before recording how they ended.
    interrupted: u32,
    /// Of those, attempts made with nothing else in flight in their worker.
    interrupted_alone: u32,
    /// Recipients earlier attempts reached while others were refused for now (later attempts
    /// go to the others only).
    delivered_to: Vec<String>,
    last_reply: Option<String>,
    status_changed_at: Option<String>,
    next_attempt_at: Option<String>,
    size: usize,
}

impl From<&Message> for MessageJson {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.to_string(),
            project_id: m.project_id.to_string(),
            token_id: m.token_id.to_string(),
            via: m.via.as_str(),
            status: m.status.as_str(),
            envelope_from: m.envelope_from.clone(),
            envelope_to: m.envelope_to.clone(),
            subject: m.subject.clone(),
            tag: m.tag.clone(),
            created_at: rfc3339(m.created_at),
            scheduled_at: m.scheduled_at.map(rfc3339),
            attempts: m.delivery.attempts,
            interrupted: m.delivery.interrupted,
            interrupted_alone: m.delivery.interrupted_alone,
            delivered_to: m.delivery.delivered_to.clone(),
            last_reply: m.delivery.last_reply.clone(),
            status_changed_at: m.delivery.status_changed_at.map(rfc3339),
            next_attempt_at: m.delivery.next_attempt_at.map(rfc3339),
            size: match &m.content {
                MessageContent::Mime(raw) => raw.len(),
                MessageContent::Structured(e) => {
                    e.text.as_ref().map_or(0, String::len) + e.html.as_ref().map_or(0, String::len)
                }
            },
        }
    }
}

pub(crate) async fn run(cmd: MessageCommand, ctx: &Ctx, con: &mut Console<'_>) -> CmdResult {
    match cmd {
        MessageCommand::List {
            project,
            team,
            status,
            limit,
            time,
        } => {
            let project = resolve::project(&ctx.services, &project, team.team.as_deref()).await?;
            let sort = Sort {
                key: MessageSortKey::CreatedAt,
                direction: Direction::Descending,
            };
            let mut request = PageRequest::first(limit, sort);
            let mut all: Vec<Message> = Vec::new();
            while all.len() < limit as usize {
                let page = ctx
                    .services
                    .messages
                    .list(project.id, status, request)
                    .await?;
                all.extend(page.items);
                match page.next_cursor {
                    Some(cursor) => request.cursor = Some(cursor),
                    None => break,
                }
            }
            all.truncate(limit as usize);
            if ctx.json {
                let json: Vec<MessageJson> = all.iter().map(MessageJson::from).collect();
                con.out.write_all(render::json(&json).as_bytes())?;
                return Ok(());
            }
            if all.is_empty() {
                writeln!(
                    con.out,
                    "No messages{} in project {}.",
                    status
                        .map(|s| format!(" with status {}", s.as_str()))
                        .unwrap_or_default(),
                    project.name
                )?;
                return Ok(());
            }
            let times = Times {
                now: ctx.now,
                absolute: time.absolute,
            };
            let mut table = Table::new(vec![
                "ID",
                "CREATED",
                "STATUS",
                "ATTEMPTS",
                "VIA",
                "FROM",
                "TO",
                "LAST REPLY",
            ]);
            for m in &all {
                table.row(vec![
                    m.id.to_string(),
                    times.show(m.created_at),
                    m.status.as_str().to_owned(),
                    m.delivery.attempts.to_string(),
                    m.via.as_str().to_owned(),
                    m.envelope_from.clone(),
                    recipients(m),
                    m.delivery
                        .last_reply
                        .clone()
                        .unwrap_or_else(|| "-".to_owned()),
                ]);
            }
            con.out.write_all(table.render().as_bytes())?;
            Ok(())
        }
        MessageCommand::Show {
            id,
            project,
            team,
            time,
        } => {
            let project = resolve::project(&ctx.services, &project, team.team.as_deref()).await?;
            let id: MessageId = id
                .parse()
                .map_err(|_| Failure::usage(format!("`{id}` is not a message id")))?;
            let m = ctx.services.messages.get(project.id, id).await?;
            if ctx.json {
                con.out
                    .write_all(render::json(&MessageJson::from(&m)).as_bytes())?;
                return Ok(());
            }
            let times = Times {
                now: ctx.now,
                absolute: time.absolute,
            };
            con.out.write_all(
                details(&[
                    ("id", m.id.to_string()),
                    ("project", format!("{} ({})", project.name, project.id)),
                    ("token", m.token_id.to_string()),
                    ("via", m.via.as_str().to_owned()),
                    ("status", m.status.as_str().to_owned()),
                    ("from", m.envelope_from.clone()),
                    ("to", m.envelope_to.join(", ")),
                    (
                        "already reached",
                        if m.delivery.delivered_to.is_empty() {
                            "-".to_owned()
                        } else {
                            m.delivery.delivered_to.join(", ")
                        },
                    ),
                    (
                        "subject",
                        m.subject.clone().unwrap_or_else(|| "-".to_owned()),
                    ),
                    ("created", times.both(Some(m.created_at), "-")),
                    ("attempts", m.delivery.attempts.to_string()),
                    (
                        "interrupted",
                        format!(
                            "{} in a row, {} of them alone",
                            m.delivery.interrupted, m.delivery.interrupted_alone
                        ),
                    ),
                    (
                        "last reply",
                        m.delivery
                            .last_reply
                            .clone()
                            .unwrap_or_else(|| "-".to_owned()),
                    ),
                    (
                        "status changed",
                        times.both(m.delivery.status_changed_at, "-"),
                    ),
                    ("next attempt", times.both(m.delivery.next_attempt_at, "-")),
                ])
                .as_bytes(),
            )?;
            Ok(())
        }
    }
}

fn recipients(m: &Message) -> String {
    match m.envelope_to.as_slice() {
        [] => "-".to_owned(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{})", rest.len()),
    }
}
