//! The SMTP client that talks to the smarthost: a pool of sessions, each set up once (greeting,
//! `EHLO`, `STARTTLS`, `AUTH`) and then reused for transaction after transaction.
//!
//! With a server that offers `PIPELINING` (RFC 2920) a transaction is two round trips:
//! `MAIL FROM`, every `RCPT TO` and `DATA` in one write, then the dot-stuffed message and its
//! end marker. A reused session is not probed with `NOOP` first: when one turns out closed by the
//! server (an idle timeout, a `421`) before the end of the message was sent — so the server
//! cannot have taken the message — the transaction is repeated once on a new session.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettermint_core::{FailureKind, Reply};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::relay::{ConfigError, Reached, RelayError, SmarthostConfig, TlsMode};

/// Longest reply line read from a server, and most lines in one reply: a server that sends
/// more is broken (or hostile), and the session is dropped.
const MAX_LINE: u64 = 4096;
const MAX_LINES: usize = 128;

/// A pooled session idle for longer than this is closed instead of reused: servers drop idle
/// clients after a while (Postfix after 300 s), and a fresh session costs less than a failed one.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// What the server said it can do, from its `EHLO` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    pub pipelining: bool,
    pub eight_bit_mime: bool,
    pub smtp_utf8: bool,
    pub starttls: bool,
    /// `AUTH` mechanisms, upper-cased.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads the keywords of an `EHLO` reply (every line after the first).
    pub(crate) fn parse(lines: &[String]) -> Self {
        let mut caps = Self::default();
        for line in lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtp_utf8 = true,
                "STARTTLS" => caps.starttls = true,
                "AUTH" => caps.auth = words.map(str::to_ascii_uppercase).collect(),
                // The pre-RFC 2554 spelling (`AUTH=PLAIN LOGIN`), which some servers still
                // send alone.
                upper if upper.starts_with("AUTH=") && caps.auth.is_empty() => {
                    caps.auth = std::iter::once(&keyword[5..])
                        .chain(words)
                        .filter(|w| !w.is_empty())
                        .map(str::to_ascii_uppercase)
                        .collect();
                }
                _ => {}
            }
        }
        caps
    }
}

/// One SMTP reply: its code and its lines' text (without the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Response {
    /// A 2xx reply: the command succeeded.
    fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    fn reply(&self) -> Reply {
        Reply {
            code: Some(self.code),
            text: self.lines.join(" "),
        }
    }

    /// Parses one reply line: its code, its text, and whether it is the last line.
    pub(crate) fn parse_line(line: &[u8]) -> Option<(u16, String, bool)> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let digits = line.get(..3)?;
        // RFC 5321, 4.2: the first digit is 2 to 5 (1yz is never sent), the others digits.
        if !(b'2'..=b'5').contains(&digits[0]) || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let code = digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        let (last, text) = match line.get(3) {
            None => (true, &[][..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return None,
        };
        Some((code, String::from_utf8_lossy(text).into_owned(), last))
    }
}

/// The byte stream of a session: plain TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a session step failed.
#[derive(Debug)]
enum Failure {
    /// The server answered with a negative reply.
    Refused(Response),
    /// The network, TLS or the protocol failed (no usable reply).
    Broken(String),
    /// No answer within the timeout.
    TimedOut(&'static str),
}

impl Failure {
    fn into_relay_error(self, setup: bool) -> RelayError {
        match self {
            // While setting a session up, nothing is wrong with the message: whatever the
            // server said (a 554 greeting, a refused AUTH), the next attempt may succeed once
            // the smarthost or the configuration is fixed.
            Failure::Refused(response) => RelayError {
                kind: if setup {
                    FailureKind::Transient
                } else {
                    kind_of(response.code)
                },
                reply: response.reply(),
            },
            Failure::Broken(text) => RelayError::transient(text),
            Failure::TimedOut(step) => {
                RelayError::transient(format!("timed out waiting for the smarthost ({step})"))
            }
        }
    }
}

fn broken(context: &str, error: &io::Error) -> Failure {
    Failure::Broken(format!("{context}: {error}"))
}

/// One open session with the smarthost.
struct Session {
    io: BufReader<Stream>,
    caps: Capabilities,
    idle_since: Instant,
    timeout: Duration,
}

impl Session {
    async fn read_response(&mut self, step: &'static str) -> Result<Response, Failure> {
        self.read_response_within(step, self.timeout).await
    }

    async fn read_response_within(
        &mut self,
        step: &'static str,
        wait: Duration,
    ) -> Result<Response, Failure> {
        let io = &mut self.io;
        tokio::time::timeout(wait, read_response(io))
            .await
            .unwrap_or(Err(Failure::TimedOut(step)))
    }

    async fn write(&mut self, step: &'static str, bytes: &[u8]) -> Result<(), Failure> {
        let timeout = self.timeout;
        let io = self.io.get_mut();
        tokio::time::timeout(timeout, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
        .map_err(|e| broken(step, &e))
    }

    /// Sends one command and reads its reply (positive or not).
    async fn command(&mut self, step: &'static str, line: &str) -> Result<Response, Failure> {
        self.write(step, line.as_bytes()).await?;
        self.read_response(step).await
    }

    /// Like [`Session::command`], but any reply other than `code` is a failure.
    async fn expect(
        &mut self,
        step: &'static str,
        line: &str,
        code: u16,
    ) -> Result<Response, Failure> {
        let response = self.command(step, line).await?;
        if response.code == code {
            Ok(response)
        } else {
            Err(Failure::Refused(response))
        }
    }

    /// `EHLO`, falling back to `HELO` when the server does not know it.
    async fn hello(&mut self, name: &str) -> Result<(), Failure> {
        let response = self.command("EHLO", &format!("EHLO {name}\r\n")).await?;
        if response.code == 250 {
            self.caps = Capabilities::parse(&response.lines);
            return Ok(());
        }
        // Only a server that does not know EHLO gets HELO: after any other refusal (a `4xx`
        // for now) a session without the extensions would fail 8-bit messages for good.
        if !matches!(response.code, 500 | 502 | 504) {
            return Err(Failure::Refused(response));
        }
        self.expect("HELO", &format!("HELO {name}\r\n"), 250)
            .await?;
        self.caps = Capabilities::default();
        Ok(())
    }

    /// Ends the session politely (best effort, within one timeout).
    async fn quit(mut self) {
        let timeout = self.timeout;
        let _ = tokio::time::timeout(timeout, async {
            let _ = self.command("QUIT", "QUIT\r\n").await;
            let _ = self.io.get_mut().shutdown().await;
        })
        .await;
    }
}

async fn read_response(io: &mut BufReader<Stream>) -> Result<Response, Failure> {
    let mut first_code = None;
    let mut lines = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut *io)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| broken("reading the reply", &e))?;
        if read == 0 {
            return Err(Failure::Broken(
                "the smarthost closed the connection".to_owned(),
            ));
        }
        if !line.ends_with(b"\n") {
            return Err(Failure::Broken(if read as u64 >= MAX_LINE {
                "the smarthost sent a reply line that is too long".to_owned()
            } else {
                "the smarthost closed the connection in the middle of a reply".to_owned()
            }));
        }
        let Some((code, text, last)) = Response::parse_line(&line) else {
            return Err(Failure::Broken(format!(
                "the smarthost sent a malformed reply: {:?}",
                String::from_utf8_lossy(&line).trim_end()
            )));
        };
        // Every line of a reply carries the same code (RFC 5321, 4.2.1).
        if *first_code.get_or_insert(code) != code {
            return Err(Failure::Broken(format!(
                "the smarthost sent a reply whose lines disagree on its code: {:?}",
                String::from_utf8_lossy(&line).trim_end()
            )));
        }
        lines.push(text);
        if last {
            return Ok(Response { code, lines });
        }
        if lines.len() >= MAX_LINES {
            return Err(Failure::Broken(
                "the smarthost sent a reply of too many lines".to_owned(),
            ));
        }
    }
}

/// Bytes of a message written (and timed) at once.
const BODY_CHUNK: usize = 64 * 1024;

/// How long the reply to the end of the data may take (RFC 5321, 4.5.3.2.6: ten minutes), when
/// `smarthost_timeout` is shorter. The worker still ends the attempt at half its lease.
const END_OF_DATA_WAIT: Duration = Duration::from_secs(600);

/// Where a refusal leaves the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Refused before the data; `RSET` brought the session back to a clean state.
    Reusable,
    /// Refused before the data, and the session cannot be trusted any more.
    Dropped,
    /// Refused at the end of the data; the session is clean.
    AfterData,
}

/// How one transaction ended.
enum Outcome {
    /// The server took the message, for every recipient or (with the refused ones) for some;
    /// the session can be reused.
    Accepted(Response, Option<Partial>),
    /// The server refused it, for now or for good.
    Refused(Response, FailureKind, Refusal),
    /// The session failed before the end of the message was sent: the server cannot have
    /// taken it, so it may be sent again on another session.
    BrokenBeforeData(Failure),
    /// The session failed after the end of the message was sent (or a reply timed out): the
    /// server may or may not have taken it.
    BrokenAfterData(Failure),
}

/// The message as it goes after `DATA`: every line ends with CRLF (a bare CR or a bare LF, which
/// RFC 5321 forbids a client to send, becomes CRLF: a server that took a bare CR or LF for a line
/// end could otherwise see an end of data inside the message and read the rest as commands),
/// lines starting with `.` get another one, the message ends with CRLF, then the end marker.
pub(crate) fn dot_stuffed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 5);
    let mut line_start = true;
    let mut bytes = data.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        match byte {
            b'\r' | b'\n' => {
                if byte == b'\r' && bytes.peek() == Some(&b'\n') {
                    bytes.next();
                }
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                if line_start && byte == b'.' {
                    out.push(b'.');
                }
                out.push(byte);
                line_start = false;
            }
        }
    }
    if !line_start || out.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Whether the header section holds UTF-8 beyond ASCII (not other 8-bit bytes, such as
/// Latin-1, which SMTPUTF8 does not describe).
fn utf8_headers(data: &[u8]) -> bool {
    let headers = header_section(data);
    !headers.is_ascii() && std::str::from_utf8(headers).is_ok()
}

/// The message's header section: everything before the first empty line.
fn header_section(data: &[u8]) -> &[u8] {
    let mut line_start = 0;
    while let Some(end) = data[line_start..].iter().position(|&b| b == b'\n') {
        let line = &data[line_start..line_start + end];
        if line.is_empty() || line == b"\r" {
            return &data[..line_start];
        }
        line_start += end + 1;
    }
    data
}

/// The `MAIL FROM` line for `envelope` with the parameters the message needs, or why the server
/// cannot take it.
fn mail_from(
    envelope: &lettre::address::Envelope,
    data: &[u8],
    caps: &Capabilities,
) -> Result<String, RelayError> {
    let from = envelope.from().map(ToString::to_string).unwrap_or_default();
    let mut line = format!("MAIL FROM:<{from}>");
    if !data.is_ascii() {
        if !caps.eight_bit_mime {
            return Err(RelayError::permanent(
                "the message has 8-bit content and the smarthost does not offer 8BITMIME",
            ));
        }
        line.push_str(" BODY=8BITMIME");
    }
    let non_ascii = envelope.from().is_some_and(|a| !a.to_string().is_ascii())
        || envelope.to().iter().any(|a| !a.to_string().is_ascii());
    if non_ascii {
        if !caps.smtp_utf8 {
            return Err(RelayError::permanent(
                "the envelope has non-ASCII addresses and the smarthost does not offer SMTPUTF8",
            ));
        }
        line.push_str(" SMTPUTF8");
    } else if caps.smtp_utf8 && utf8_headers(data) {
        // UTF-8 in the header section (RFC 6532, as an SMTP client may submit it) is declared
        // where the server understands it (RFC 6531, 3.2). Where it does not, the message
        // goes as before, with `8BITMIME`, as Postfix sends a message whose client did not
        // ask for SMTPUTF8: failing it would refuse mail such a smarthost takes today.
        line.push_str(" SMTPUTF8");
    }
    line.push_str("\r\n");
    Ok(line)
}

/// What a refusal makes of the message: `4xx` for now, `5xx` for good.
fn kind_of(code: u16) -> FailureKind {
    if code < 500 {
        FailureKind::Transient
    } else {
        FailureKind::Permanent
    }
}

/// Whether a refused recipient was refused only because the transaction already holds as many
/// recipients as the server takes: `452` (or `552`, which RFC 5321, 4.5.3.1.10, says to read
/// as `452` at `RCPT`) saying so with the enhanced status `X.5.3` (RFC 3463, "too many
/// recipients") or in words. Such a recipient goes in another transaction; any other refusal
/// is about the recipient itself.
fn over_recipient_limit(reply: &Response) -> bool {
    if reply.code != 452 && reply.code != 552 {
        return false;
    }
    let text = reply.lines.join(" ");
    let mut words = text.split_ascii_whitespace();
    words
        .next()
        .is_some_and(|first| first == "4.5.3" || first == "5.5.3")
        || text.to_ascii_lowercase().contains("too many recipients")
}

/// What the replies to a transaction's `RCPT`s decide.
#[derive(Debug, PartialEq, Eq)]
enum Recipients {
    /// Every recipient was accepted.
    All,
    /// Some were accepted, and the others refused for now: the message goes to the accepted.
    Some(Partial),
    /// The transaction cannot go on: the refusal that decides, with what it makes of the
    /// message. The first recipient refused for good (one is enough to make the message
    /// impossible: nothing is sent); else, with no recipient accepted, the first refused for
    /// now.
    Refused(Response, FailureKind),
}

/// The recipients of a transaction that the server refused for now while it took others.
#[derive(Debug, Default, PartialEq, Eq)]
struct Partial {
    /// Indices (among the transaction's recipients) of those refused only for the server's limit
    /// on recipients per transaction: they go in the next transaction of the same attempt.
    over_limit: Vec<usize>,
    /// Indices of those refused for themselves (a full mailbox, a greylist): they wait for a
    /// later attempt.
    deferred: Vec<usize>,
    /// The first refusal of a deferred recipient, if any.
    reply: Option<Response>,
}

/// The `RCPT` command for the address `to`.
fn rcpt_line(to: &str) -> String {
    format!("RCPT TO:<{to}>\r\n")
}

/// Reads the replies to `RCPT`, in the order the recipients were sent.
fn recipients_verdict(replies: impl IntoIterator<Item = Response>) -> Recipients {
    let mut over_limit = Vec::new();
    let mut deferred = Vec::new();
    let mut first_limit = None;
    let mut first_other = None;
    let mut accepted = 0usize;
    for (i, reply) in replies.into_iter().enumerate() {
        if reply.is_success() {
            accepted += 1;
        } else if reply.code >= 500 && reply.code != 552 {
            return Recipients::Refused(reply, FailureKind::Permanent);
        } else if over_recipient_limit(&reply) {
            over_limit.push(i);
            first_limit.get_or_insert(reply);
        } else {
            deferred.push(i);
            first_other.get_or_insert(reply);
        }
    }
    match (first_other, first_limit) {
        (None, None) => Recipients::All,
        (Some(reply), _) | (None, Some(reply)) if accepted == 0 => {
            Recipients::Refused(reply, FailureKind::Transient)
        }
        (reply, _) => Recipients::Some(Partial {
            over_limit,
            deferred,
            reply,
        }),
    }
}

impl Session {
    /// `RSET` after a refusal before the data; the session is kept if the server agrees.
    async fn reset(&mut self, refused: Response, kind: FailureKind) -> Outcome {
        let clean = matches!(self.command("RSET", "RSET\r\n").await, Ok(r) if r.code == 250);
        let refusal = if clean {
            Refusal::Reusable
        } else {
            Refusal::Dropped
        };
        Outcome::Refused(refused, kind, refusal)
    }

    /// One mail transaction to the addresses `rcpts`. A refusal before the message is sent is followed by `RSET`, so the
    /// session stays usable. When the server took some recipients and refused the others for
    /// now, the message goes to those it took, and the answer names the others.
    async fn transaction(&mut self, mail: &str, rcpts: &[String], body: &[u8]) -> Outcome {
        let before = |f: Failure| Outcome::BrokenBeforeData(f);
        let (refusal, partial) = if self.caps.pipelining {
            let mut batch = String::with_capacity(mail.len() + rcpts.len() * 48 + 6);
            batch.push_str(mail);
            for rcpt in rcpts {
                batch.push_str(&rcpt_line(rcpt));
            }
            batch.push_str("DATA\r\n");
            if let Err(f) = self.write("MAIL", batch.as_bytes()).await {
                return before(f);
            }
            // Every reply is read, in order, whatever the first ones said.
            let mut replies = Vec::with_capacity(rcpts.len() + 2);
            for step in std::iter::once("MAIL")
                .chain(rcpts.iter().map(|_| "RCPT"))
                .chain(std::iter::once("DATA"))
            {
                match self.read_response(step).await {
                    Ok(response) => replies.push(response),
                    Err(f) => return before(f),
                }
            }
            let data_reply = replies.pop().expect("DATA reply");
            let mut replies = replies.into_iter();
            let mail_reply = replies.next().expect("MAIL reply");
            // A refused `MAIL` decides (the recipients' `503`s follow from it).
            let verdict = if mail_reply.is_success() {
                recipients_verdict(replies)
            } else {
                let kind = kind_of(mail_reply.code);
                Recipients::Refused(mail_reply, kind)
            };
            match (verdict, data_reply.code) {
                (Recipients::All, 354) => (None, None),
                (Recipients::Some(partial), 354) => (None, Some(partial)),
                // A recipient was refused for good but others were not, so the server waits
                // for the message: it cannot be taken back, only abandoned with the session.
                (Recipients::Refused(refused, kind), 354) => {
                    return Outcome::Refused(refused, kind, Refusal::Dropped);
                }
                (Recipients::Refused(refused, kind), _) => (Some((refused, kind)), None),
                (Recipients::All | Recipients::Some(_), code) => {
                    (Some((data_reply, kind_of(code))), None)
                }
            }
        } else {
            match self.command("MAIL", mail).await {
                Ok(response) if response.is_success() => {}
                Ok(response) => {
                    let kind = kind_of(response.code);
                    return self.reset(response, kind).await;
                }
                Err(f) => return before(f),
            }
            // Every recipient is tried, as with pipelining, so that one refused for good is
            // found whatever its place.
            let mut replies = Vec::with_capacity(rcpts.len());
            for rcpt in rcpts {
                match self.command("RCPT", &rcpt_line(rcpt)).await {
                    // The server is closing the session: no more commands.
                    Ok(response) if response.code == 421 => {
                        return Outcome::Refused(
                            response,
                            FailureKind::Transient,
                            Refusal::Dropped,
                        );
                    }
                    Ok(response) => replies.push(response),
                    Err(f) => return before(f),
                }
            }
            let partial = match recipients_verdict(replies) {
                Recipients::Refused(refused, kind) => return self.reset(refused, kind).await,
                Recipients::All => None,
                Recipients::Some(partial) => Some(partial),
            };
            match self.command("DATA", "DATA\r\n").await {
                Ok(response) if response.code == 354 => (None, partial),
                Ok(response) => {
                    let kind = kind_of(response.code);
                    (Some((response, kind)), None)
                }
                Err(f) => return before(f),
            }
        };
        if let Some((refused, kind)) = refusal {
            return self.reset(refused, kind).await;
        }
        // In chunks, each within the timeout: a large message on a slow link needs more than
        // one command's time, but a stalled one is still noticed.
        for chunk in body.chunks(BODY_CHUNK) {
            if let Err(f) = self.write("DATA", chunk).await {
                // Part of the message may have gone, perhaps all of it with its end marker.
                return Outcome::BrokenAfterData(f);
            }
        }
        // The server may scan the message before it answers; giving up here is what makes a
        // duplicate (the server may accept it after all), so this waits longer than a command.
        let wait = self.timeout.max(END_OF_DATA_WAIT);
        match self.read_response_within("end of data", wait).await {
            Ok(response) if response.is_success() => Outcome::Accepted(response, partial),
            Ok(response) => {
                let kind = kind_of(response.code);
                Outcome::Refused(response, kind, Refusal::AfterData)
            }
            Err(f) => Outcome::BrokenAfterData(f),
        }
    }
}

/// A pooled SMTP client for one smarthost.
pub(crate) struct Client {
    config: SmarthostConfig,
    tls: Option<TlsConnector>,
    server_name: rustls_pki_types::ServerName<'static>,
    hello: String,
    idle: Mutex<Vec<Session>>,
    /// One permit per session in use: at most `max_connections` sessions exist.
    slots: Arc<Semaphore>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn new(config: SmarthostConfig) -> Result<Self, ConfigError> {
        let tls = match config.tls {
            TlsMode::None => None,
            _ => Some(tls_connector(&config)?),
        };
        let server_name = rustls_pki_types::ServerName::try_from(config.host.clone())
            .map_err(|e| ConfigError::Tls(format!("host `{}`: {e}", config.host)))?;
        let hello = match &config.hello_name {
            Some(name) => name.clone(),
            None => hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty() && h.is_ascii() && !h.contains(char::is_whitespace))
                .unwrap_or_else(|| "localhost".to_owned()),
        };
        Ok(Self {
            slots: Arc::new(Semaphore::new(
                usize::try_from(config.max_connections.max(1)).unwrap_or(1),
            )),
            config,
            tls,
            server_name,
            hello,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `data` to the envelope's recipients; the server's reply to the end of the data.
    /// Each recipient the server takes is noted in `reached` as soon as it has the message.
    pub(crate) async fn send(
        &self,
        envelope: &lettre::address::Envelope,
        data: &[u8],
        reached: &Reached,
    ) -> Result<Reply, RelayError> {
        // Nothing is sent while waiting for a session, so giving up here is always safe (and
        // keeps an attempt well inside its lease when the smarthost is slow).
        let _slot = tokio::time::timeout(self.config.timeout, self.slots.acquire())
            .await
            .map_err(|_| {
                RelayError::transient(format!(
                    "all {} sessions to the smarthost stayed busy for {} s",
                    self.config.max_connections.max(1),
                    self.config.timeout.as_secs()
                ))
            })?
            .map_err(|_| RelayError::transient("the SMTP client is shutting down"))?;
        // The recipients still to try in this attempt.
        let mut to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
        let body = dot_stuffed(data);
        // Most recipients per transaction: unknown until the server refuses some for its limit,
        // then as many as it took in that transaction.
        let mut per_transaction: Option<usize> = None;
        // The first refusal of a recipient refused for now (it waits for a later attempt).
        let mut deferral: Option<Response> = None;
        let failed = |kind: FailureKind, mut reply: Reply| {
            let count = reached.len();
            if count > 0 {
                reply.text.push_str(&match kind {
                    FailureKind::Transient => format!(
                        " (the message reached {count} other recipient(s) in this attempt; later \
                         attempts go only to those still without it)"
                    ),
                    FailureKind::Permanent => {
                        format!(" (the message had already reached {count} other recipient(s))")
                    }
                });
            }
            RelayError { kind, reply }
        };
        // A pooled session first; if it turns out dead before the data, once more on a new one
        // (the same holds for the session a transaction continues on).
        let mut pooled = self.take_idle();
        loop {
            let reused = pooled.is_some();
            let mut session = match pooled.take() {
                Some(session) => session,
                None => match self.connect().await {
                    Ok(session) => session,
                    Err(f) => {
                        let error = f.into_relay_error(true);
                        return Err(failed(error.kind, error.reply));
                    }
                },
            };
            let mail = match mail_from(envelope, data, &session.caps) {
                Ok(mail) => mail,
                Err(error) => {
                    self.put_back(session);
                    return Err(failed(error.kind, error.reply));
                }
            };
            let take = per_transaction.map_or(to.len(), |n| n.min(to.len()));
            match session.transaction(&mail, &to[..take], &body).await {
                Outcome::Accepted(response, partial) => {
                    let Partial {
                        over_limit,
                        deferred,
                        reply,
                    } = partial.unwrap_or_default();
                    if !over_limit.is_empty() {
                        per_transaction = Some(take - over_limit.len() - deferred.len());
                    }
                    if let Some(reply) = reply {
                        deferral.get_or_insert(reply);
                    }
                    // Recipients refused for their limit stay first, those not yet tried after
                    // them; the others have the message, or wait for a later attempt.
                    let mut still_to = Vec::new();
                    let mut now_reached = Vec::new();
                    for (i, address) in to.drain(..take).enumerate() {
                        if over_limit.binary_search(&i).is_ok() {
                            still_to.push(address);
                        } else if deferred.binary_search(&i).is_err() {
                            now_reached.push(address);
                        }
                    }
                    reached.extend(now_reached);
                    still_to.append(&mut to);
                    to = still_to;
                    if to.is_empty() {
                        self.put_back(session);
                        return match deferral {
                            None => Ok(response.reply()),
                            Some(refusal) => Err(failed(FailureKind::Transient, refusal.reply())),
                        };
                    }
                    // The rest go in the next transaction, on the same session (RFC 5321,
                    // 4.5.3.1.10). Each transaction takes at least one recipient, so this ends.
                    pooled = Some(session);
                }
                // 421 before the data: the server is closing this session (a reused one was
                // simply too old) and cannot have taken the message.
                Outcome::Refused(response, _, Refusal::Reusable | Refusal::Dropped)
                    if response.code == 421 && reused => {}
                Outcome::Refused(response, kind, refusal) => {
                    if refusal != Refusal::Dropped && response.code != 421 {
                        self.put_back(session);
                    }
                    return Err(failed(kind, response.reply()));
                }
                Outcome::BrokenBeforeData(_) if reused => {}
                Outcome::BrokenBeforeData(f) | Outcome::BrokenAfterData(f) => {
                    let error = f.into_relay_error(false);
                    return Err(failed(error.kind, error.reply));
                }
            }
        }
    }

    fn take_idle(&self) -> Option<Session> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Every session idle too long is closed, not only those on top: after a burst, the
        // ones underneath would otherwise stay open (and closed by the server) until the next.
        while let Some(stale) = idle
            .iter()
            .position(|session| session.idle_since.elapsed() >= IDLE_LIMIT)
        {
            tokio::spawn(idle.remove(stale).quit());
        }
        idle.pop()
    }

    fn put_back(&self, mut session: Session) {
        session.idle_since = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(session);
    }

    /// Opens and sets up a session: greeting, `EHLO`, TLS, `AUTH`.
    async fn connect(&self) -> Result<Session, Failure> {
        let address = (self.config.host.as_str(), self.config.port);
        let tcp = tokio::time::timeout(self.config.timeout, TcpStream::connect(address))
            .await
            .map_err(|_| Failure::TimedOut("connect"))?
            .map_err(|e| {
                broken(
                    &format!("connecting to {}:{}", self.config.host, self.config.port),
                    &e,
                )
            })?;
        // Commands go out whole, one write each: waiting for an ACK before sending the next
        // write (Nagle) would only add latency.
        let _ = tcp.set_nodelay(true);
        let stream = if self.config.tls == TlsMode::Implicit {
            Stream::Tls(Box::new(self.handshake(tcp).await?))
        } else {
            Stream::Plain(tcp)
        };
        let mut session = Session {
            io: BufReader::new(stream),
            caps: Capabilities::default(),
            idle_since: Instant::now(),
            timeout: self.config.timeout,
        };
        let greeting = session.read_response("greeting").await?;
        if greeting.code != 220 {
            return Err(Failure::Refused(greeting));
        }
        session.hello(&self.hello).await?;
        let upgrade = match self.config.tls {
            TlsMode::StartTlsRequired if !session.caps.starttls => {
                return Err(Failure::Broken(
                    "the smarthost does not offer STARTTLS, which this configuration requires \
                     (smtp://…?tls=opportunistic or tls=none to allow plain text)"
                        .to_owned(),
                ));
            }
            TlsMode::StartTlsRequired => true,
            TlsMode::StartTlsOpportunistic => session.caps.starttls,
            TlsMode::Implicit | TlsMode::None => false,
        };
        if upgrade {
            session.expect("STARTTLS", "STARTTLS\r\n", 220).await?;
            // Anything the server sent after its reply would be read as if it came over TLS
            // (a command-injection attack on STARTTLS): refuse the session instead.
            if !session.io.buffer().is_empty() {
                return Err(Failure::Broken(
                    "the smarthost sent data after its STARTTLS reply".to_owned(),
                ));
            }
            let Stream::Plain(tcp) = session.io.into_inner() else {
                unreachable!("STARTTLS on a plain stream only")
            };
            session.io = BufReader::new(Stream::Tls(Box::new(self.handshake(tcp).await?)));
            session.hello(&self.hello).await?;
        }
        if let Some((user, password)) = &self.config.credentials {
            let encrypted = matches!(session.io.get_ref(), Stream::Tls(_));
            if !encrypted && self.config.tls != TlsMode::None {
                return Err(Failure::Broken(
                    "the smarthost offered no STARTTLS: refusing to send the AUTH password in \
                     plain text (tls=none allows it)"
                        .to_owned(),
                ));
            }
            self.authenticate(&mut session, user, password).await?;
        }
        Ok(session)
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, Failure> {
        let connector = self
            .tls
            .as_ref()
            .ok_or_else(|| Failure::Broken("TLS is not configured".to_owned()))?;
        tokio::time::timeout(
            self.config.timeout,
            connector.connect(self.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| Failure::TimedOut("TLS handshake"))?
        .map_err(|e| broken("TLS handshake with the smarthost", &e))
    }

    async fn authenticate(
        &self,
        session: &mut Session,
        user: &str,
        password: &str,
    ) -> Result<(), Failure> {
        if session.caps.auth.iter().any(|m| m == "PLAIN") {
            let token = BASE64.encode(format!("\0{user}\0{password}"));
            session
                .expect("AUTH", &format!("AUTH PLAIN {token}\r\n"), 235)
                .await?;
            return Ok(());
        }
        if session.caps.auth.iter().any(|m| m == "LOGIN") {
            for line in [
                "AUTH LOGIN\r\n".to_owned(),
                format!("{}\r\n", BASE64.encode(user)),
            ] {
                let response = session.command("AUTH", &line).await?;
                if response.code != 334 {
                    return Err(Failure::Refused(response));
                }
            }
            session
                .expect("AUTH", &format!("{}\r\n", BASE64.encode(password)), 235)
                .await?;
            return Ok(());
        }
        Err(Failure::Broken(format!(
            "the smarthost offers no AUTH mechanism this client knows (PLAIN, LOGIN); it offers: {}",
            if session.caps.auth.is_empty() {
                "none".to_owned()
            } else {
                session.caps.auth.join(" ")
            }
        )))
    }
}

/// TLS settings for the smarthost: the system's trusted roots plus the configured CA file.
fn tls_connector(config: &SmarthostConfig) -> Result<TlsConnector, ConfigError> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = &config.ca_file {
        let shown = path.display().to_string();
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| ConfigError::CaFile(shown.clone(), e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::CaFile(shown.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(ConfigError::CaFile(
                shown,
                "no PEM certificate in it".to_owned(),
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ConfigError::CaFile(shown.clone(), e.to_string()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConfigError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(tls)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_parse() {
        assert_eq!(
            Response::parse_line(b"250-PIPELINING\r\n"),
            Some((250, "PIPELINING".to_owned(), false))
        );
        assert_eq!(
            Response::parse_line(b"550 5.1.1 no such user\r\n"),
            Some((550, "5.1.1 no such user".to_owned(), true))
        );
        assert_eq!(
            Response::parse_line(b"354\r\n"),
            Some((354, String::new(), true))
        );
        assert_eq!(Response::parse_line(b"25x ok\r\n"), None);
        assert_eq!(Response::parse_line(b"250:ok\r\n"), None);
        assert_eq!(Response::parse_line(b"\r\n"), None);
        // Only 2yz to 5yz are replies.
        assert_eq!(Response::parse_line(b"999 odd\r\n"), None);
        assert_eq!(Response::parse_line(b"100 odd\r\n"), None);
        assert_eq!(Response::parse_line(b"099 odd\r\n"), None);
    }

    #[test]
    fn the_header_section_ends_at_the_first_empty_line() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_section(b"A: 1\n\nbody\n\nmore"), b"A: 1\n");
        assert_eq!(header_section(b"\r\nbody"), b"");
        assert_eq!(header_section(b"A: 1\r\nB: 2"), b"A: 1\r\nB: 2");
    }

    #[test]
    fn ehlo_keywords_are_read_case_blind() {
        let lines: Vec<String> = [
            "mx.example.com greets you",
            "pipelining",
            "8BITMIME",
            "SIZE 10240000",
            "AUTH plain LOGIN",
            "STARTTLS",
        ]
        .map(str::to_owned)
        .to_vec();
        let caps = Capabilities::parse(&lines);
        assert!(caps.pipelining && caps.eight_bit_mime && caps.starttls);
        assert!(!caps.smtp_utf8);
        assert_eq!(caps.auth, ["PLAIN", "LOGIN"]);
        // The old `AUTH=` spelling, alone.
        let old = ["mx", "AUTH=PLAIN login"].map(str::to_owned);
        assert_eq!(Capabilities::parse(&old).auth, ["PLAIN", "LOGIN"]);
        // The greeting line is not a keyword.
        assert_eq!(
            Capabilities::parse(&["PIPELINING".to_owned()]),
            Capabilities::default()
        );
    }

    #[test]
    fn mail_from_asks_for_what_the_message_needs_and_refuses_what_the_server_lacks() {
        let envelope = |from: &str| {
            lettre::address::Envelope::new(
                Some(from.parse().unwrap()),
                vec!["to@example.net".parse().unwrap()],
            )
            .unwrap()
        };
        let all = Capabilities {
            eight_bit_mime: true,
            smtp_utf8: true,
            ..Capabilities::default()
        };
        let ascii = envelope("a@example.com");
        assert_eq!(
            mail_from(&ascii, b"plain", &Capabilities::default()).unwrap(),
            "MAIL FROM:<a@example.com>\r\n"
        );
        assert_eq!(
            mail_from(&ascii, "Subject: x\r\n\r\ncaf\u{e9}".as_bytes(), &all).unwrap(),
            "MAIL FROM:<a@example.com> BODY=8BITMIME\r\n"
        );
        let err = mail_from(
            &ascii,
            "Subject: x\r\n\r\ncaf\u{e9}".as_bytes(),
            &Capabilities::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent);
        assert!(err.reply.text.contains("8BITMIME"));
        // UTF-8 in a header (RFC 6532) is declared with SMTPUTF8 where the server offers it,
        // and goes with 8BITMIME alone where it does not; other 8-bit headers never claim it.
        let headers = "Subject: caf\u{e9}\n\nplain".as_bytes();
        assert_eq!(
            mail_from(&ascii, headers, &all).unwrap(),
            "MAIL FROM:<a@example.com> BODY=8BITMIME SMTPUTF8\r\n"
        );
        let eight_bit_only = Capabilities {
            eight_bit_mime: true,
            ..Capabilities::default()
        };
        assert_eq!(
            mail_from(&ascii, headers, &eight_bit_only).unwrap(),
            "MAIL FROM:<a@example.com> BODY=8BITMIME\r\n"
        );
        assert_eq!(
            mail_from(&ascii, b"Subject: caf\xe9\n\nplain", &all).unwrap(),
            "MAIL FROM:<a@example.com> BODY=8BITMIME\r\n"
        );
        let utf8 = envelope("j\u{f6}rg@example.com");
        assert_eq!(
            mail_from(&utf8, b"plain", &all).unwrap(),
            "MAIL FROM:<j\u{f6}rg@example.com> SMTPUTF8\r\n"
        );
        assert!(mail_from(&utf8, b"plain", &Capabilities::default()).is_err());
    }

    #[test]
    fn data_is_dot_stuffed_and_terminated() {
        assert_eq!(
            dot_stuffed(b"a\r\n.b\r\n..c\r\n"),
            b"a\r\n..b\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b".first"), b"..first\r\n.\r\n");
        assert_eq!(dot_stuffed(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(dot_stuffed(b"cr only\r"), b"cr only\r\n.\r\n");
        assert_eq!(dot_stuffed(b""), b"\r\n.\r\n");
        assert_eq!(dot_stuffed(b"x\r\n.\r\n"), b"x\r\n..\r\n.\r\n");
        // Bare CR and bare LF become CRLF, and a dot after them is stuffed: nothing inside a
        // message can end its data early on a server that takes them for line ends.
        assert_eq!(
            dot_stuffed(b"a\r.\rMAIL FROM:<x>\r\n"),
            b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b"a\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(dot_stuffed(b"a\n\r\nb"), b"a\r\n\r\nb\r\n.\r\n");
    }

    fn reply(code: u16, text: &str) -> Response {
        Response {
            code,
            lines: vec![text.to_owned()],
        }
    }

    #[test]
    fn recipients_refused_for_now_beside_accepted_ones_do_not_hold_the_message_back() {
        let ok = || reply(250, "2.1.5 Ok");
        let limit = || reply(452, "4.5.3 Error: too many recipients");
        assert!(over_recipient_limit(&limit()));
        assert!(over_recipient_limit(&reply(
            552,
            "5.5.3 Too many recipients"
        )));
        assert!(over_recipient_limit(&reply(452, "Too many recipients")));
        assert!(!over_recipient_limit(&reply(452, "4.2.2 mailbox full")));
        assert!(!over_recipient_limit(&reply(
            451,
            "4.5.3 too many recipients"
        )));

        assert_eq!(recipients_verdict([ok(), ok()]), Recipients::All);
        assert_eq!(
            recipients_verdict([ok(), ok(), limit(), limit()]),
            Recipients::Some(Partial {
                over_limit: vec![2, 3],
                deferred: vec![],
                reply: None,
            })
        );
        // Refused for itself: kept for a later attempt, while the limit's go on in this one.
        let full = reply(452, "4.2.2 mailbox full");
        assert_eq!(
            recipients_verdict([ok(), limit(), full.clone(), reply(450, "4.7.1 greylisted")]),
            Recipients::Some(Partial {
                over_limit: vec![1],
                deferred: vec![2, 3],
                reply: Some(full.clone()),
            })
        );
        // None taken: nothing to send now.
        assert_eq!(
            recipients_verdict([limit(), limit()]),
            Recipients::Refused(limit(), FailureKind::Transient)
        );
        assert_eq!(
            recipients_verdict([limit(), full.clone()]),
            Recipients::Refused(full, FailureKind::Transient)
        );
        // One refused for good: the message is impossible, nothing is sent.
        let gone = reply(550, "5.1.1 no such user");
        assert_eq!(
            recipients_verdict([ok(), limit(), gone.clone()]),
            Recipients::Refused(gone, FailureKind::Permanent)
        );
        // 552 at RCPT is read as 452 (RFC 5321, 4.5.3.1.10).
        let over = reply(552, "5.2.2 over quota");
        assert_eq!(
            recipients_verdict([over.clone()]),
            Recipients::Refused(over, FailureKind::Transient)
        );
    }
}
