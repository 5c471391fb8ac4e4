//! `token-admin token logs`: a token's log, newest first, optionally followed.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use lettermint_core::page::LogSortKey;
use lettermint_core::{
    Clock, Direction, LogEntryId, LogFilter, PageRequest, ProjectToken, Scope, Sort, SystemClock,
    TokenLogEntry,
};
use time::{Duration, OffsetDateTime};

use crate::cli::LogsArgs;
use crate::error::CmdResult;
use crate::render::{self, LogEntryJson, Table, Times, absolute};
use crate::{Console, Ctx, resolve};

/// How far back each poll of `--follow` looks, so that entries written behind (with an `at`
/// slightly in the past) are not missed.
const FOLLOW_LOOKBACK: Duration = Duration::seconds(30);

pub(crate) async fn run(args: LogsArgs, ctx: &Ctx, con: &mut Console<'_>) -> CmdResult {
    let token = resolve::project_token(
        &ctx.services,
        &args.token,
        args.project.project.as_deref(),
        args.project.team.as_deref(),
    )
    .await?;
    let filter = LogFilter {
        outcome: args.outcome,
        action: None,
        from: args.since.map(|s| s.instant(ctx.now)),
        to: None,
    };
    if args.follow {
        return follow(&args, ctx, con, &token, filter).await;
    }
    let entries = fetch(
        ctx,
        &token,
        &filter,
        Direction::Descending,
        args.limit as usize,
    )
    .await?;
    if ctx.json {
        let json: Vec<LogEntryJson> = entries.iter().map(LogEntryJson::from).collect();
        con.out.write_all(render::json(&json).as_bytes())?;
        return Ok(());
    }
    if entries.is_empty() {
        let filtered = if filter.outcome.is_some() || filter.from.is_some() {
            " matching these filters"
        } else {
            ""
        };
        writeln!(
            con.out,
            "No log entries for token {}{filtered}. Entries appear once the token is used \
             through the Sending API or the SMTP relay; --follow waits for them.",
            token.name
        )?;
        return Ok(());
    }
    let times = Times {
        now: ctx.now,
        absolute: args.time.absolute,
    };
    let mut columns = vec![
        "AT",
        "OUTCOME",
        "ACTION",
        "VIA",
        "VALUE",
        "IP",
        "STATUS",
        "MESSAGES",
        "USER AGENT",
    ];
    // Only leak reports record a URL: the column is shown when one of the entries has it.
    let leaks = entries.iter().any(|e| e.leak_url.is_some());
    if leaks {
        columns.push("LEAKED AT");
    }
    // Only changes made in the dashboard name who made them.
    let actors = entries.iter().any(|e| e.actor.is_some());
    if actors {
        columns.push("BY");
    }
    let mut table = Table::new(columns);
    for e in &entries {
        let mut row = vec![
            times.show(e.at),
            e.outcome.as_str().to_owned(),
            e.action.as_str().to_owned(),
            e.via.as_str().to_owned(),
            e.credential.map_or("-", |c| c.as_str()).to_owned(),
            ip(e),
            e.status.to_string(),
            e.message_ids.len().to_string(),
            e.user_agent.clone().unwrap_or_else(|| "-".to_owned()),
        ];
        if leaks {
            row.push(e.leak_url.clone().unwrap_or_else(|| "-".to_owned()));
        }
        if actors {
            row.push(e.actor.clone().unwrap_or_else(|| "-".to_owned()));
        }
        table.row(row);
    }
    con.out.write_all(table.render().as_bytes())?;
    Ok(())
}

fn ip(e: &TokenLogEntry) -> String {
    e.ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())
}

/// Up to `max` entries matching `filter`, in `direction` of time.
async fn fetch(
    ctx: &Ctx,
    token: &ProjectToken,
    filter: &LogFilter,
    direction: Direction,
    max: usize,
) -> CmdResult<Vec<TokenLogEntry>> {
    let sort = Sort {
        key: LogSortKey::At,
        direction,
    };
    let size = u32::try_from(max).unwrap_or(u32::MAX);
    let mut request = PageRequest::first(size, sort);
    let mut all = Vec::new();
    while all.len() < max {
        let page = ctx
            .services
            .project_tokens
            .logs(Scope::Operator, None, token.id, filter, &request)
            .await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    all.truncate(max);
    Ok(all)
}

/// A line of the followed stream: fixed-width columns, absolute times (relative ones would go
/// stale on screen).
fn stream_line(e: &TokenLogEntry) -> String {
    let line = format!(
        "{:<20}  {:<22}  {:<12}  {:<4}  {:<8}  {:<15}  {:<6}  {:<8}  {}",
        absolute(e.at),
        e.outcome.as_str(),
        e.action.as_str(),
        e.via.as_str(),
        e.credential.map_or("-", |c| c.as_str()),
        ip(e),
        e.status,
        e.message_ids.len(),
        e.user_agent.as_deref().unwrap_or("-"),
    );
    let mut line = match &e.leak_url {
        Some(url) => format!("{line}  leaked at {url}"),
        None => line.trim_end().to_owned(),
    };
    if let Some(actor) = &e.actor {
        line.push_str(&format!("  by {actor}"));
    }
    line.push('\n');
    line
}

fn print(ctx: &Ctx, con: &mut Console<'_>, entries: &[TokenLogEntry]) -> CmdResult {
    for e in entries {
        let text = if ctx.json {
            render::json_line(&LogEntryJson::from(e))
        } else {
            stream_line(e)
        };
        con.out.write_all(text.as_bytes())?;
    }
    con.out.flush()?;
    Ok(())
}

/// Prints the latest `--limit` entries oldest first, then every new entry as it is written,
/// until the process is interrupted.
async fn follow(
    args: &LogsArgs,
    ctx: &Ctx,
    con: &mut Console<'_>,
    token: &ProjectToken,
    filter: LogFilter,
) -> CmdResult {
    let window = |high: OffsetDateTime| {
        let start = high - FOLLOW_LOOKBACK;
        LogFilter {
            from: Some(filter.from.map_or(start, |f| f.max(start))),
            ..filter.clone()
        }
    };
    let mut seen: HashMap<LogEntryId, OffsetDateTime> = HashMap::new();
    let mut high = ctx.now;
    for e in fetch(ctx, token, &window(high), Direction::Ascending, usize::MAX).await? {
        seen.insert(e.id, e.at);
    }
    let mut latest = fetch(
        ctx,
        token,
        &filter,
        Direction::Descending,
        args.limit as usize,
    )
    .await?;
    latest.reverse();
    if !ctx.json {
        let header = format!(
            "{:<20}  {:<22}  {:<12}  {:<4}  {:<8}  {:<15}  {:<6}  {:<8}  {}\n",
            "AT", "OUTCOME", "ACTION", "VIA", "VALUE", "IP", "STATUS", "MESSAGES", "USER AGENT"
        );
        con.out.write_all(header.as_bytes())?;
    }
    print(ctx, con, &latest)?;
    for e in &latest {
        seen.insert(e.id, e.at);
        high = high.max(e.at);
    }
    writeln!(
        con.err,
        "Following the log of token {} ({}); press Ctrl-C to stop.",
        token.name, token.id
    )?;
    let poll = StdDuration::from_millis(args.poll_ms.max(10));
    loop {
        tokio::time::sleep(poll).await;
        high = high.max(SystemClock.now());
        let mut fresh: Vec<TokenLogEntry> =
            fetch(ctx, token, &window(high), Direction::Ascending, usize::MAX)
                .await?
                .into_iter()
                .filter(|e| !seen.contains_key(&e.id))
                .collect();
        fresh.sort_by_key(|e| (e.at, e.id));
        print(ctx, con, &fresh)?;
        for e in &fresh {
            seen.insert(e.id, e.at);
            high = high.max(e.at);
        }
        let horizon = high - FOLLOW_LOOKBACK * 2;
        seen.retain(|_, at| *at >= horizon);
    }
}
