//! `smtp-relay`: the SMTP submission front door.
//!
//! A client authenticates with the username `lettermint` and a project token as password
//! (`AUTH PLAIN` or `AUTH LOGIN`, only over TLS unless configured otherwise), then submits
//! messages. Every `MAIL FROM` authenticates the token again, so a revoked or regenerated token
//! stops an open session at its next transaction; every message is accepted only by the
//! conditional commit, and `250` is sent only after that commit.
//!
//! [`Relay::session`] runs one session over any `AsyncRead + AsyncWrite` stream, so tests drive it
//! over an in-memory pipe.

pub mod admin;
pub mod message;
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use lettermint_core::{
    Action, AuthFailure, Channel, Error, IdempotencyRecord, Message, MessageContent, MessageId,
    MessageStatus, Outcome, ProjectCaller, ProjectId, Services, Store, Submission,
    SubmissionOutcome, SystemClock, UsageRecord,
};
use lettermint_runtime::{Committer, UsageRecorder, Writers};
use smtp_proto::Request;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// The only username accepted by `AUTH`.
pub const USERNAME: &str = "lettermint";

/// Limits and behaviour of the relay.
#[derive(Debug, Clone)]
pub struct Config {
    /// Name announced in the greeting and in `EHLO`.
    pub hostname: String,
    /// Largest message accepted, in bytes (after dot-unstuffing).
    pub max_message_size: usize,
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Longest command line, in bytes, including CRLF.
    pub max_line_length: usize,
    /// Offer and accept `AUTH` without TLS (for local development only).
    pub allow_insecure_auth: bool,
    /// How long the relay waits for the next command (or TLS handshake) before closing the
    /// session with `421 4.4.2`.
    pub idle_timeout: Duration,
    /// How long the client may take to send a whole message after `354`.
    pub data_timeout: Duration,
    /// Longest session, from the greeting; then `421 4.4.2` and close.
    pub session_timeout: Duration,
    /// How long one reply may take to be written before the session is dropped.
    pub write_timeout: Duration,
    /// Most sessions at once; more are answered `421 4.7.0` and closed.
    pub max_connections: usize,
    /// Most sessions at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Failed `AUTH` attempts in a session; the last one is answered `421 4.7.0` and closes it.
    pub max_auth_failures: usize,
    /// Messages (completed `DATA`) per session; the next `MAIL` is answered `421 4.7.0` and
    /// closes the session.
    pub max_messages_per_session: usize,
    /// Writer tasks of the group commit.
    pub commit_writers: usize,
    /// Most messages per commit.
    pub commit_max_messages: usize,
    /// Capacity of the usage queue.
    pub usage_queue_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 50,
            max_line_length: 2048,
            allow_insecure_auth: false,
            idle_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            session_timeout: Duration::from_secs(3600),
            write_timeout: Duration::from_secs(60),
            max_connections: 1000,
            max_connections_per_ip: 20,
            max_auth_failures: 3,
            max_messages_per_session: 100,
            commit_writers: 2,
            commit_max_messages: 256,
            usage_queue_capacity: 65_536,
        }
    }
}

/// What a relay shares between its sessions.
pub struct Relay {
    services: Services,
    committer: Committer,
    usage: UsageRecorder,
    config: Config,
    /// Replaced in place when the certificate is reloaded (SIGHUP); sessions already in TLS
    /// keep the one they started with.
    tls: std::sync::RwLock<Option<TlsAcceptor>>,
    store: Arc<dyn Store>,
    connections: Mutex<Connections>,
    shutdown: watch::Sender<bool>,
}

/// Open sessions, in total and by peer address.
#[derive(Debug, Default)]
struct Connections {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One open session, counted until dropped.
struct Slot {
    relay: Arc<Relay>,
    peer: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut connections = self
            .relay
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        connections.total = connections.total.saturating_sub(1);
        if let Some(ip) = self.peer
            && let Some(count) = connections.by_ip.get_mut(&ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                connections.by_ip.remove(&ip);
            }
        }
        metrics::gauge!("lettermint_smtp_sessions_active").decrement(1);
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .field("tls", &self.acceptor().is_some())
            .finish_non_exhaustive()
    }
}

/// The relay's background tasks; they finish once every [`Relay`] handle is dropped.
#[derive(Debug)]
pub struct Background {
    writers: Writers,
    usage: JoinHandle<()>,
}

impl Background {
    /// Waits until pending commits and usage records are written.
    pub async fn finish(self) {
        self.writers.finish().await;
        let _ = self.usage.await;
    }
}

/// Starts the relay's group commit and usage queue over `store`.
pub fn start(
    store: Arc<dyn Store>,
    config: Config,
    tls: Option<TlsAcceptor>,
) -> (Arc<Relay>, Background) {
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let (committer, writers) = Committer::start(
        services.messages.clone(),
        config.commit_writers,
        config.commit_max_messages,
    );
    let (usage, usage_task) =
        UsageRecorder::start(services.usage.clone(), config.usage_queue_capacity);
    let relay = Arc::new(Relay {
        services,
        committer,
        usage,
        config,
        tls: std::sync::RwLock::new(tls),
        store,
        connections: Mutex::new(Connections::default()),
        shutdown: watch::Sender::new(false),
    });
    (
        relay,
        Background {
            writers,
            usage: usage_task,
        },
    )
}

/// A reply: code, enhanced status code (may be empty) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply(u16, &'static str, String);

impl Reply {
    fn new(code: u16, esc: &'static str, text: impl Into<String>) -> Self {
        Self(code, esc, text.into())
    }

    /// Renders the reply; a text with several lines (separated by `\n`) becomes a multiline
    /// reply. Replies can echo what the client sent (the `EHLO` host, a route): any other
    /// control character, CR included, is written as `?`, so that no reply line can be split
    /// or carry terminal controls.
    fn render(&self) -> Vec<u8> {
        let lines: Vec<String> = self
            .2
            .split('\n')
            .map(|line| {
                line.chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect()
            })
            .collect();
        let last = lines.len() - 1;
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            if self.1.is_empty() {
                out.push_str(&format!("{}{sep}{line}\r\n", self.0));
            } else {
                out.push_str(&format!("{}{sep}{} {line}\r\n", self.0, self.1));
            }
        }
        out.into_bytes()
    }
}

fn auth_invalid() -> Reply {
    Reply::new(535, "5.7.8", "Authentication credentials invalid")
}

fn auth_required() -> Reply {
    Reply::new(530, "5.7.0", "Authentication required")
}

fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, "5.5.1", text)
}

fn temporary_failure() -> Reply {
    Reply::new(451, "4.3.0", "Temporary failure, try again later")
}

/// How a session stopped reading a stream.
enum End<S> {
    /// The client quit, went away or timed out.
    Closed,
    /// The client asked for TLS; the stream is handed back for the handshake.
    StartTls(S),
}

/// One line read from the client.
enum Line {
    Complete(Vec<u8>),
    TooLong,
    Eof,
    /// A deadline passed; the reply says which.
    Timeout(Reply),
    /// The relay is shutting down and the session was waiting for a command.
    Shutdown,
}

/// What a read waits for: a command (interrupted by shutdown) or message content.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Command,
    Data,
}

struct Authenticated {
    /// The value presented, kept only in memory for this session, to authenticate again at
    /// every transaction.
    token: String,
    caller: ProjectCaller,
}

struct Transaction {
    from: String,
    recipients: Vec<String>,
}

struct Session {
    relay: Arc<Relay>,
    peer: Option<IpAddr>,
    secure: bool,
    greeted: bool,
    auth: Option<Authenticated>,
    /// Set once the token was refused during the session: nothing more is accepted.
    refused: bool,
    transaction: Option<Transaction>,
    buffer: Vec<u8>,
    /// Failed `AUTH` attempts.
    auth_failures: usize,
    /// Completed `DATA` phases.
    messages: usize,
    /// End of the session's lifetime.
    deadline: Instant,
    /// End of the current `DATA` phase.
    data_deadline: Option<Instant>,
    /// Close the session after the reply being sent.
    close: bool,
    shutdown: watch::Receiver<bool>,
}

impl Relay {
    /// The TLS acceptor new handshakes use, if TLS is configured.
    #[must_use]
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.tls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the certificate for new TLS handshakes (sessions already encrypted keep theirs).
    pub fn reload_tls(&self, acceptor: TlsAcceptor) {
        *self
            .tls
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(acceptor);
    }

    /// Runs one session on a plain stream (STARTTLS is offered when TLS is configured).
    pub async fn session<S>(
        self: &Arc<Self>,
        stream: S,
        peer: Option<IpAddr>,
    ) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut stream = stream;
        let Some(_slot) = self.acquire(peer) else {
            return self.too_many(&mut stream).await;
        };
        let mut session = Session::new(self.clone(), peer, false);
        session.greet(&mut stream).await?;
        match session.run(stream).await? {
            End::Closed => Ok(()),
            End::StartTls(stream) => {
                let Some(acceptor) = self.acceptor() else {
                    return Ok(());
                };
                let tls = handshake(&acceptor, stream, self.config.idle_timeout).await?;
                session.secure = true;
                session.greeted = false;
                session.auth = None;
                session.transaction = None;
                session.buffer.clear();
                match session.run(tls).await? {
                    End::Closed | End::StartTls(_) => Ok(()),
                }
            }
        }
    }

    /// Runs one session on a stream that starts with the TLS handshake (implicit TLS).
    pub async fn tls_session<S>(
        self: &Arc<Self>,
        stream: S,
        peer: Option<IpAddr>,
    ) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let Some(acceptor) = self.acceptor() else {
            return Ok(());
        };
        let slot = self.acquire(peer);
        let mut tls = handshake(&acceptor, stream, self.config.idle_timeout).await?;
        let Some(_slot) = slot else {
            return self.too_many(&mut tls).await;
        };
        let mut session = Session::new(self.clone(), peer, true);
        session.greet(&mut tls).await?;
        match session.run(tls).await? {
            End::Closed | End::StartTls(_) => Ok(()),
        }
    }
}

impl Relay {
    /// Counts a new session, unless the relay or the peer is at its limit.
    fn acquire(self: &Arc<Self>, peer: Option<IpAddr>) -> Option<Slot> {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if connections.total >= self.config.max_connections {
            return None;
        }
        if let Some(ip) = peer {
            let count = connections.by_ip.entry(ip).or_insert(0);
            if *count >= self.config.max_connections_per_ip {
                return None;
            }
            *count += 1;
        }
        connections.total += 1;
        metrics::counter!("lettermint_smtp_sessions_opened_total").increment(1);
        metrics::gauge!("lettermint_smtp_sessions_active").increment(1);
        Some(Slot {
            relay: self.clone(),
            peer,
        })
    }

    async fn too_many<S: AsyncWrite + Unpin>(&self, stream: &mut S) -> std::io::Result<()> {
        metrics::counter!("lettermint_smtp_sessions_refused_total").increment(1);
        let reply = Reply::new(
            421,
            "4.7.0",
            format!(
                "{} Too many connections, try again later",
                self.config.hostname
            ),
        );
        let _ = tokio::time::timeout(self.config.write_timeout, async {
            stream.write_all(&reply.render()).await?;
            stream.shutdown().await
        })
        .await;
        Ok(())
    }

    /// Starts the graceful shutdown: sessions waiting for a command are answered
    /// `421 4.3.2 Shutting down` and closed; a message being received is finished first.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Sessions open now.
    pub fn active_sessions(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .total
    }

    /// The store answers (for readiness).
    pub async fn ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }
}

impl Session {
    fn new(relay: Arc<Relay>, peer: Option<IpAddr>, secure: bool) -> Self {
        Self {
            peer,
            secure,
            greeted: false,
            auth: None,
            refused: false,
            transaction: None,
            buffer: Vec::new(),
            auth_failures: 0,
            messages: 0,
            deadline: Instant::now() + relay.config.session_timeout,
            data_deadline: None,
            close: false,
            shutdown: relay.shutdown.subscribe(),
            relay,
        }
    }

    fn config(&self) -> &Config {
        &self.relay.config
    }

    async fn greet<S: AsyncWrite + Unpin>(&self, stream: &mut S) -> std::io::Result<()> {
        let reply = Reply::new(
            220,
            "",
            format!("{} ESMTP Lettermint relay ready", self.config().hostname),
        );
        self.send(stream, &reply).await
    }

    /// Writes a reply, bounded by the write timeout, and counts it by code class.
    async fn send<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        reply: &Reply,
    ) -> std::io::Result<()> {
        let class = match reply.0 / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        metrics::counter!("lettermint_smtp_replies_total", "class" => class).increment(1);
        tokio::time::timeout(self.config().write_timeout, send(stream, reply))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    async fn run<S>(&mut self, mut stream: S) -> std::io::Result<End<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let max_line = self.config().max_line_length;
        loop {
            let line = match self.read_line(&mut stream, max_line, Wait::Command).await? {
                Line::Eof => return Ok(End::Closed),
                Line::TooLong => {
                    self.send(&mut stream, &Reply::new(500, "5.5.2", "Line too long"))
                        .await?;
                    continue;
                }
                Line::Timeout(reply) => {
                    self.send(&mut stream, &reply).await?;
                    let _ = stream.shutdown().await;
                    return Ok(End::Closed);
                }
                Line::Shutdown => {
                    self.send(&mut stream, &Reply::new(421, "4.3.2", "Shutting down"))
                        .await?;
                    let _ = stream.shutdown().await;
                    return Ok(End::Closed);
                }
                Line::Complete(line) => line,
            };
            let request = Request::parse(&mut line.iter()).map(Request::into_owned);
            let reply = match request {
                Err(e) => parse_error(&e),
                Ok(Request::Quit) => {
                    self.send(&mut stream, &Reply::new(221, "2.0.0", "Bye"))
                        .await?;
                    let _ = stream.shutdown().await;
                    return Ok(End::Closed);
                }
                Ok(Request::StartTls) => {
                    if self.secure {
                        bad_sequence("Already in TLS")
                    } else if self.relay.acceptor().is_none() {
                        Reply::new(454, "4.7.0", "TLS not available")
                    } else {
                        self.send(&mut stream, &Reply::new(220, "2.0.0", "Ready to start TLS"))
                            .await?;
                        // Anything the client sent before the handshake is discarded.
                        self.buffer.clear();
                        return Ok(End::StartTls(stream));
                    }
                }
                Ok(Request::Ehlo { host }) => self.ehlo(&host),
                Ok(Request::Helo { host: _ }) => {
                    self.greeted = true;
                    self.transaction = None;
                    Reply::new(250, "", self.config().hostname.clone())
                }
                Ok(Request::Auth {
                    mechanism,
                    initial_response,
                }) => {
                    let reply = self.auth(&mut stream, mechanism, initial_response).await?;
                    self.auth_outcome(reply)
                }
                Ok(Request::Mail { from }) => self.mail(&from.address, from.size).await,
                Ok(Request::Rcpt { to }) => self.rcpt(to.address),
                Ok(Request::Data) => self.data(&mut stream).await?,
                Ok(Request::Rset) => {
                    self.transaction = None;
                    Reply::new(250, "2.0.0", "Ok")
                }
                Ok(Request::Noop { .. }) => Reply::new(250, "2.0.0", "Ok"),
                Ok(Request::Vrfy { .. }) => Reply::new(
                    252,
                    "2.5.0",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                ),
                Ok(Request::Help { .. }) => Reply::new(
                    214,
                    "2.0.0",
                    "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
                ),
                Ok(_) => Reply::new(502, "5.5.1", "Command not implemented"),
            };
            self.send(&mut stream, &reply).await?;
            if self.close {
                let _ = stream.shutdown().await;
                return Ok(End::Closed);
            }
        }
    }

    fn ehlo(&mut self, host: &str) -> Reply {
        self.greeted = true;
        self.transaction = None;
        let config = self.config();
        let mut lines = vec![
            format!("{} greets {host}", config.hostname),
            "PIPELINING".to_owned(),
            "8BITMIME".to_owned(),
            "SMTPUTF8".to_owned(),
            format!("SIZE {}", config.max_message_size),
            "ENHANCEDSTATUSCODES".to_owned(),
        ];
        if !self.secure && self.relay.acceptor().is_some() {
            lines.push("STARTTLS".to_owned());
        }
        if self.secure || config.allow_insecure_auth {
            lines.push("AUTH PLAIN LOGIN".to_owned());
        }
        Reply::new(250, "", lines.join("\n"))
    }

    async fn auth<S>(
        &mut self,
        stream: &mut S,
        mechanism: u64,
        initial_response: String,
    ) -> std::io::Result<Reply>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if !self.secure && !self.config().allow_insecure_auth {
            return Ok(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ));
        }
        if self.refused {
            return Ok(auth_required());
        }
        if self.auth.is_some() {
            return Ok(bad_sequence("Already authenticated"));
        }
        if self.transaction.is_some() {
            return Ok(bad_sequence("AUTH not allowed during a mail transaction"));
        }
        let credentials = if mechanism == smtp_proto::AUTH_PLAIN {
            let response = match initial_response.as_str() {
                "" => match self.challenge(stream, "").await? {
                    Some(line) => line,
                    None => return Ok(auth_cancelled()),
                },
                "=" => String::new(),
                other => other.to_owned(),
            };
            decode(&response).and_then(|raw| parse_plain(&raw))
        } else if mechanism == smtp_proto::AUTH_LOGIN {
            let username = match initial_response.as_str() {
                "" => match self.challenge(stream, "VXNlcm5hbWU6").await? {
                    Some(line) => line,
                    None => return Ok(auth_cancelled()),
                },
                other => other.to_owned(),
            };
            let password = match self.challenge(stream, "UGFzc3dvcmQ6").await? {
                Some(line) => line,
                None => return Ok(auth_cancelled()),
            };
            match (decode(&username), decode(&password)) {
                (Some(u), Some(p)) => match (String::from_utf8(u), String::from_utf8(p)) {
                    (Ok(u), Ok(p)) => Some((u, p)),
                    _ => None,
                },
                _ => None,
            }
        } else {
            return Ok(Reply::new(
                504,
                "5.5.4",
                "Mechanism not supported; use PLAIN or LOGIN",
            ));
        };
        let Some((username, password)) = credentials else {
            auth_failure_metric("malformed");
            return Ok(auth_invalid());
        };
        if !username.eq_ignore_ascii_case(USERNAME) {
            auth_failure_metric("wrong_username");
            return Ok(auth_invalid());
        }
        let result = self
            .relay
            .services
            .auth
            .authenticate_project(Some(&password), Channel::Smtp, self.peer)
            .await;
        Ok(match result {
            Ok(caller) => {
                self.record(
                    caller.credential.token_id,
                    Action::SmtpAuth,
                    Outcome::Accepted,
                    235,
                    Vec::new(),
                    Some(caller.slot),
                );
                self.auth = Some(Authenticated {
                    token: password,
                    caller,
                });
                Reply::new(235, "2.7.0", "Authentication successful")
            }
            Err(Error::Unauthenticated(failure)) => {
                self.log_failure(failure, Action::SmtpAuth, 535);
                auth_invalid()
            }
            Err(e) => {
                tracing::error!(error = %e, "authentication failed for a store error");
                Reply::new(454, "4.7.0", "Temporary authentication failure")
            }
        })
    }

    /// Counts a failed `AUTH`; the last one allowed closes the session.
    fn auth_outcome(&mut self, reply: Reply) -> Reply {
        if reply.0 != 535 {
            return reply;
        }
        self.auth_failures += 1;
        if self.auth_failures >= self.config().max_auth_failures {
            self.close = true;
            return Reply::new(
                421,
                "4.7.0",
                format!(
                    "{} Too many failed authentication attempts",
                    self.config().hostname
                ),
            );
        }
        reply
    }

    /// Sends a `334` challenge and reads the answer; `None` when the client cancels with `*`.
    async fn challenge<S>(
        &mut self,
        stream: &mut S,
        prompt: &str,
    ) -> std::io::Result<Option<String>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        stream
            .write_all(format!("334 {prompt}\r\n").as_bytes())
            .await?;
        stream.flush().await?;
        let max_line = self.config().max_line_length;
        match self.read_line(stream, max_line, Wait::Data).await? {
            Line::Complete(line) => {
                let text = String::from_utf8_lossy(&line).trim().to_owned();
                Ok((text != "*").then_some(text))
            }
            Line::TooLong | Line::Shutdown => Ok(None),
            Line::Timeout(_) | Line::Eof => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    async fn mail(&mut self, from: &str, size: usize) -> Reply {
        if !self.greeted {
            return bad_sequence("Send EHLO or HELO first");
        }
        if self.refused {
            return auth_required();
        }
        let Some(auth) = &self.auth else {
            return auth_required();
        };
        if self.transaction.is_some() {
            return bad_sequence("Nested MAIL command");
        }
        if self.messages >= self.config().max_messages_per_session {
            self.close = true;
            return Reply::new(
                421,
                "4.7.0",
                format!(
                    "{} Too many messages in this session, reconnect",
                    self.config().hostname
                ),
            );
        }
        if size > self.config().max_message_size {
            return Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
        }
        // Authenticate again: a token revoked or regenerated since AUTH stops here.
        let result = self
            .relay
            .services
            .auth
            .authenticate_project(Some(&auth.token), Channel::Smtp, self.peer)
            .await;
        match result {
            Ok(caller) => {
                if let Some(auth) = &mut self.auth {
                    auth.caller = caller;
                }
            }
            Err(Error::Unauthenticated(failure)) => {
                self.log_failure(failure, Action::SmtpMessage, 530);
                self.refuse();
                return auth_required();
            }
            Err(e) => {
                tracing::error!(error = %e, "re-authentication failed for a store error");
                return temporary_failure();
            }
        }
        self.transaction = Some(Transaction {
            from: from.to_owned(),
            recipients: Vec::new(),
        });
        Reply::new(250, "2.1.0", "Ok")
    }

    fn rcpt(&mut self, to: String) -> Reply {
        let max = self.config().max_recipients;
        let Some(transaction) = &mut self.transaction else {
            return bad_sequence("Need MAIL before RCPT");
        };
        if to.is_empty() {
            return Reply::new(501, "5.1.3", "Bad recipient address syntax");
        }
        if transaction.recipients.len() >= max {
            return Reply::new(452, "4.5.3", "Too many recipients");
        }
        transaction.recipients.push(to);
        Reply::new(250, "2.1.5", "Ok")
    }

    async fn data<S>(&mut self, stream: &mut S) -> std::io::Result<Reply>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match &self.transaction {
            None => return Ok(bad_sequence("Need MAIL before DATA")),
            Some(t) if t.recipients.is_empty() => {
                return Ok(bad_sequence("Need RCPT before DATA"));
            }
            Some(_) => {}
        }
        self.send(
            stream,
            &Reply::new(354, "", "Start mail input; end with <CRLF>.<CRLF>"),
        )
        .await?;
        self.data_deadline = Some(Instant::now() + self.config().data_timeout);
        let max = self.config().max_message_size;
        let mut body = Vec::new();
        let mut too_big = false;
        // The end of data is only CRLF "." CRLF: a dot line after a bare LF is content, so that
        // no other reading of the message can see a different end.
        let mut after_crlf = true;
        loop {
            let line = match self
                .read_line(stream, max.saturating_add(2), Wait::Data)
                .await?
            {
                Line::Eof | Line::Shutdown => {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                Line::Timeout(reply) => {
                    self.data_deadline = None;
                    self.transaction = None;
                    self.close = true;
                    return Ok(reply);
                }
                Line::TooLong => {
                    too_big = true;
                    continue;
                }
                Line::Complete(line) => line,
            };
            if after_crlf && line == b".\r\n" {
                break;
            }
            after_crlf = line.ends_with(b"\r\n");
            let line = line.strip_prefix(b".").unwrap_or(&line);
            if body.len() + line.len() > max {
                too_big = true;
                body.clear();
            }
            if !too_big {
                body.extend_from_slice(line);
            }
        }
        self.data_deadline = None;
        self.messages += 1;
        let transaction = self.transaction.take();
        let reply = if too_big {
            Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            )
        } else {
            let Some(transaction) = transaction else {
                return Ok(bad_sequence("Need MAIL before DATA"));
            };
            self.accept(transaction, body).await
        };
        if matches!(reply.0, 550 | 552 | 554)
            && let Some(auth) = &self.auth
        {
            // Refused for its content: the token's log says so.
            self.record(
                auth.caller.credential.token_id,
                Action::SmtpMessage,
                Outcome::InvalidRequest,
                reply.0,
                Vec::new(),
                Some(auth.caller.slot),
            );
        }
        if reply.0 == 250 {
            metrics::counter!("lettermint_smtp_messages_accepted_total").increment(1);
        }
        Ok(reply)
    }

    async fn accept(&mut self, transaction: Transaction, body: Vec<u8>) -> Reply {
        let Some(auth) = &self.auth else {
            return auth_required();
        };
        let caller = auth.caller;
        let Some(parsed) = message::parse(body) else {
            return Reply::new(554, "5.6.0", "Message has no valid From header");
        };
        if let Err(invalid) = parsed.check() {
            return Reply::new(
                554,
                "5.6.0",
                format!("Invalid {} header: {}", invalid.header, invalid.problem),
            );
        }
        let route = match self
            .relay
            .services
            .messages
            .resolve_route(caller.project_id, parsed.route.as_deref())
            .await
        {
            Ok(route) => route,
            Err(Error::Storage(e)) => {
                tracing::error!(error = %e, "route lookup failed");
                return temporary_failure();
            }
            Err(_) => {
                return Reply::new(
                    550,
                    "5.7.1",
                    format!("Unknown route {}", parsed.route.as_deref().unwrap_or("")),
                );
            }
        };
        let key = parsed.idempotency_key.clone();
        let fingerprint = key.as_ref().map(|_| {
            IdempotencyRecord::fingerprint(&[
                b"smtp",
                route.slug.as_bytes(),
                transaction.from.as_bytes(),
                transaction.recipients.join("\n").as_bytes(),
                &parsed.raw,
            ])
        });
        if let (Some(key), Some(fingerprint)) = (&key, &fingerprint) {
            match self.replay(caller.project_id, key, fingerprint).await {
                Replay::None => {}
                Replay::Answer(reply) => return reply,
            }
        }
        let id = MessageId::new();
        let now = OffsetDateTime::now_utc();
        let queued = format!("Ok: queued as {id}");
        let message = Message {
            id,
            project_id: caller.project_id,
            route_id: route.id,
            token_id: caller.credential.token_id,
            via: Channel::Smtp,
            status: MessageStatus::Pending,
            envelope_from: transaction.from,
            envelope_to: transaction.recipients,
            subject: parsed.subject,
            tag: parsed.tag,
            metadata: parsed.metadata,
            idempotency_key: key.clone(),
            scheduled_at: None,
            created_at: now,
            content: MessageContent::Mime(parsed.raw),
            delivery: Default::default(),
        };
        let outcome = self
            .relay
            .committer
            .commit(Submission {
                client_ip: self.peer,
                credential: caller.credential,
                messages: vec![message],
                idempotency: key.clone().zip(fingerprint).map(|(key, request_hash)| {
                    IdempotencyRecord {
                        project_id: caller.project_id,
                        key,
                        request_hash,
                        status: 250,
                        response: queued.clone(),
                        created_at: now,
                    }
                }),
            })
            .await;
        match outcome {
            Ok(SubmissionOutcome::Accepted(slot)) => {
                self.record(
                    caller.credential.token_id,
                    Action::SmtpMessage,
                    Outcome::Accepted,
                    250,
                    vec![id],
                    Some(slot),
                );
                Reply::new(250, "2.0.0", queued)
            }
            Ok(SubmissionOutcome::TokenInactive) => {
                let token = self.auth.as_ref().map(|a| a.token.clone());
                if let Err(Error::Unauthenticated(failure)) = self
                    .relay
                    .services
                    .auth
                    .authenticate_project(token.as_deref(), Channel::Smtp, self.peer)
                    .await
                {
                    self.log_failure(failure, Action::SmtpMessage, 530);
                }
                self.refuse();
                auth_required()
            }
            Ok(SubmissionOutcome::DuplicateIdempotencyKey) => match (&key, &fingerprint) {
                (Some(key), Some(fingerprint)) => {
                    match self.replay(caller.project_id, key, fingerprint).await {
                        Replay::Answer(reply) => reply,
                        Replay::None => in_flight(),
                    }
                }
                _ => temporary_failure(),
            },
            Err(e) => {
                tracing::error!(error = %e, "commit failed");
                temporary_failure()
            }
        }
    }

    /// The answer remembered for `key`, if any. A replay is an answer that does not go through
    /// the conditional commit, so the token is authenticated again first.
    async fn replay(&mut self, project: ProjectId, key: &str, fingerprint: &[u8; 32]) -> Replay {
        let record = match self
            .relay
            .services
            .messages
            .idempotency_record(project, key)
            .await
        {
            Ok(Some(record)) => record,
            Ok(None) => return Replay::None,
            Err(e) => {
                tracing::error!(error = %e, "idempotency lookup failed");
                return Replay::Answer(temporary_failure());
            }
        };
        let token = self.auth.as_ref().map(|a| a.token.clone());
        match self
            .relay
            .services
            .auth
            .authenticate_project(token.as_deref(), Channel::Smtp, self.peer)
            .await
        {
            Ok(_) => {}
            Err(Error::Unauthenticated(failure)) => {
                self.log_failure(failure, Action::SmtpMessage, 530);
                self.refuse();
                return Replay::Answer(auth_required());
            }
            Err(e) => {
                tracing::error!(error = %e, "re-authentication failed for a store error");
                return Replay::Answer(temporary_failure());
            }
        }
        if &record.request_hash != fingerprint {
            return Replay::Answer(Reply::new(
                554,
                "5.6.0",
                "This Idempotency-Key was already used with a different message",
            ));
        }
        Replay::Answer(Reply::new(record.status, "2.0.0", record.response.clone()))
    }

    /// The token was refused: forget it, and accept nothing more in this session.
    fn refuse(&mut self) {
        self.auth = None;
        self.refused = true;
        self.transaction = None;
    }

    fn log_failure(&self, failure: AuthFailure, action: Action, status: u16) {
        tracing::info!(reason = failure.reason(), "smtp authentication refused");
        auth_failure_metric(failure.reason());
        if let Some((token_id, outcome)) = failure.loggable() {
            self.record(token_id, action, outcome, status, Vec::new(), None);
        }
    }

    fn record(
        &self,
        token_id: lettermint_core::TokenId,
        action: Action,
        outcome: Outcome,
        status: u16,
        message_ids: Vec<MessageId>,
        credential: Option<lettermint_core::CredentialSlot>,
    ) {
        self.relay.usage.record(UsageRecord {
            credential,
            token_id,
            at: OffsetDateTime::now_utc(),
            ip: self.peer,
            via: Channel::Smtp,
            action,
            outcome,
            status,
            message_ids,
            user_agent: None,
        });
    }

    /// Reads one line, ending with LF, of at most `limit` bytes. A longer line is read to its end
    /// and reported as [`Line::TooLong`].
    async fn read_line<S>(
        &mut self,
        stream: &mut S,
        limit: usize,
        wait: Wait,
    ) -> std::io::Result<Line>
    where
        S: AsyncRead + Unpin,
    {
        let idle = Instant::now() + self.config().idle_timeout;
        let mut too_long = false;
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buffer[scanned..].iter().position(|b| *b == b'\n') {
                let end = scanned + pos + 1;
                let line: Vec<u8> = self.buffer.drain(..end).collect();
                if too_long || line.len() > limit {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Complete(line));
            }
            if self.buffer.len() > limit {
                too_long = true;
                self.buffer.clear();
            }
            scanned = self.buffer.len();
            let (until, reply) = self.read_deadline(idle);
            if wait == Wait::Command && *self.shutdown.borrow() {
                return Ok(Line::Shutdown);
            }
            let mut chunk = [0u8; 8192];
            let shutdown = async {
                if wait == Wait::Command {
                    let _ = self.shutdown.wait_for(|stop| *stop).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let read = tokio::select! {
                read = stream.read(&mut chunk) => read?,
                () = tokio::time::sleep_until(until) => return Ok(Line::Timeout(reply)),
                () = shutdown => return Ok(Line::Shutdown),
            };
            if read == 0 {
                return Ok(Line::Eof);
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

impl Session {
    /// The first deadline to pass while waiting for the client, and the reply it gets.
    fn read_deadline(&self, idle: Instant) -> (Instant, Reply) {
        let host = &self.config().hostname;
        let mut until = (
            idle,
            format!("{host} Timeout waiting for the client, closing"),
        );
        if let Some(data) = self.data_deadline
            && data < until.0
        {
            until = (
                data,
                format!("{host} Timeout waiting for the message data, closing"),
            );
        }
        if self.deadline < until.0 {
            until = (
                self.deadline,
                format!("{host} Session time limit reached, closing"),
            );
        }
        (until.0, Reply::new(421, "4.4.2", until.1))
    }
}

/// The TLS handshake, bounded by `timeout`.
async fn handshake<S>(
    acceptor: &TlsAcceptor,
    stream: S,
    timeout: Duration,
) -> std::io::Result<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

fn in_flight() -> Reply {
    Reply::new(
        451,
        "4.3.0",
        "A message with this Idempotency-Key is still being processed",
    )
}

/// What an idempotency lookup decided.
enum Replay {
    /// The key is new: go on.
    None,
    /// Answer this (the remembered answer, or why not).
    Answer(Reply),
}

fn auth_failure_metric(reason: &'static str) {
    metrics::counter!("lettermint_smtp_auth_failures_total", "reason" => reason).increment(1);
}

fn auth_cancelled() -> Reply {
    Reply::new(501, "5.0.0", "Authentication cancelled")
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, reply: &Reply) -> std::io::Result<()> {
    stream.write_all(&reply.render()).await?;
    stream.flush().await
}

fn parse_error(e: &smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => Reply::new(500, "5.5.1", "Command unrecognized"),
        E::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        E::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        E::SyntaxError { syntax } => {
            Reply::new(501, "5.5.2", format!("Syntax error, expected: {syntax}"))
        }
        E::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid parameter {param}"))
        }
        E::UnsupportedParameter { param } => {
            Reply::new(504, "5.5.4", format!("Unsupported parameter {param}"))
        }
        _ => Reply::new(500, "5.5.2", "Syntax error"),
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// `authzid NUL authcid NUL passwd` (RFC 4616); the authorization identity must be empty or the
/// same as the username.
fn parse_plain(raw: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = text.split('\0');
    let (authzid, authcid, passwd) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !(authzid.is_empty() || authzid.eq_ignore_ascii_case(authcid)) {
        return None;
    }
    Some((authcid.to_owned(), passwd.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_never_carry_control_characters() {
        let reply = Reply::new(250, "", "host greets c\u{e}lient\r\u{7f}\nPIPELINING");
        assert_eq!(
            reply.render(),
            b"250-host greets c?lient??\r\n250 PIPELINING\r\n"
        );
        assert_eq!(
            Reply::new(550, "5.7.1", "Unknown route a\u{0}b").render(),
            b"550 5.7.1 Unknown route a?b\r\n"
        );
    }
}
