//! An SMTP server for tests and benchmarks: it accepts mail on a loopback port, keeps what it
//! received, and answers `DATA` as a script says (accept, defer with 4xx, refuse with 5xx, or
//! hold the reply back to simulate a slow upstream). Commands are parsed with `smtp-proto`.
//! Like a real server it takes pipelined commands (RFC 2920), answering a group of them in one
//! write; [`SinkOptions`] can turn that off, or make it end sessions after some messages.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smtp_proto::Request;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A message the sink accepted (or answered with a non-2xx reply: see [`Received::accepted`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// The message, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
    /// Whether the sink answered 250.
    pub accepted: bool,
}

/// How to answer the end of one message's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `250 2.0.0 Ok: queued`.
    Accept,
    /// Reply with this code and text (4xx defers, 5xx refuses).
    Reply(u16, String),
    /// Send no reply for this long, then accept (a slow upstream).
    Delay(Duration),
}

type Script = dyn Fn(&Received, usize) -> Verdict + Send + Sync;

/// How the sink behaves as a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkOptions {
    /// Offer `PIPELINING` in the `EHLO` reply. Without it, a client that sends a command
    /// before the reply to the previous one gets `503` and the session ends.
    pub pipelining: bool,
    /// End each session with a `421` when the client starts another transaction after this many
    /// messages, as a server does that timed an idle client out.
    pub messages_per_session: Option<usize>,
    /// Offer `AUTH LOGIN` (only) and require it, with this user and password, before `MAIL`.
    pub auth_login: Option<(&'static str, &'static str)>,
    /// Take at most this many recipients per transaction, answering the others
    /// `452 4.5.3 Error: too many recipients` (as Postfix's `smtpd_recipient_limit` does).
    pub max_recipients: Option<usize>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            pipelining: true,
            messages_per_session: None,
            auth_login: None,
            max_recipients: None,
        }
    }
}

/// The running sink. Dropping it stops accepting connections.
pub struct SmtpSink {
    addr: SocketAddr,
    sessions: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    accepted: Arc<Accepted>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// A sink that accepts everything.
    pub async fn start() -> std::io::Result<Self> {
        Self::with_script(|_, _| Verdict::Accept).await
    }

    /// A sink that answers each message's data with `script(message, n)`, where `n` counts the
    /// messages received before this one (0-based, over all connections).
    pub async fn with_script(
        script: impl Fn(&Received, usize) -> Verdict + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Self::with_options(SinkOptions::default(), script).await
    }

    /// A sink with `options`, answering as [`SmtpSink::with_script`] does.
    pub async fn with_options(
        options: SinkOptions,
        script: impl Fn(&Received, usize) -> Verdict + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Accepted::default());
        let script: Arc<Script> = Arc::new(script);
        let sessions = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            received: received.clone(),
            numbered: AtomicUsize::new(0),
            accepted: accepted.clone(),
            script,
            options,
        });
        let task = {
            let sessions = sessions.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    sessions.fetch_add(1, Ordering::Relaxed);
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let _ = session(stream, shared).await;
                    });
                }
            })
        };
        Ok(Self {
            addr,
            sessions,
            received,
            accepted,
            task,
        })
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An `smtp://` URL for it, without TLS.
    #[must_use]
    pub fn url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    /// Connections accepted so far.
    #[must_use]
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Everything received so far, in order.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("sink lock").clone()
    }

    /// The messages answered with 250.
    #[must_use]
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }

    /// How many messages were answered with 250 so far.
    #[must_use]
    pub fn accepted_count(&self) -> usize {
        self.accepted.count.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages were accepted, or `timeout` passes; what was accepted.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_for_count(n, timeout).await;
        self.accepted()
    }

    /// Waits until at least `n` messages were accepted, or `timeout` passes; how many were.
    /// Counts without copying anything, and is woken once the count reaches `n`, not at every
    /// message: a benchmark waits for many thousands.
    pub async fn wait_for_count(&self, n: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.accepted.notify.notified();
            // Registered before the count is read: a message accepted after the read sees it.
            self.accepted.wanted.fetch_min(n, Ordering::SeqCst);
            let count = self.accepted_count();
            if count >= n {
                return count;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.accepted_count();
            }
        }
    }
}

/// The count of accepted messages, and the wake-up of those waiting for it to reach theirs.
#[derive(Debug)]
struct Accepted {
    count: AtomicUsize,
    notify: Notify,
    /// The smallest count someone waits for (`usize::MAX`: none).
    wanted: AtomicUsize,
}

impl Default for Accepted {
    fn default() -> Self {
        Self {
            count: AtomicUsize::new(0),
            notify: Notify::new(),
            wanted: AtomicUsize::new(usize::MAX),
        }
    }
}

impl Accepted {
    /// Counts one more accepted message, and wakes every waiter once the smallest count waited
    /// for is reached (each waits again for its own).
    fn one_more(&self) {
        let count = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if count >= self.wanted.load(Ordering::SeqCst) {
            self.wanted.store(usize::MAX, Ordering::SeqCst);
            self.notify.notify_waiters();
        }
    }
}

/// What every session of one sink shares.
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    numbered: AtomicUsize,
    accepted: Arc<Accepted>,
    script: Arc<Script>,
    options: SinkOptions,
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let Shared {
        received,
        numbered,
        accepted: tally,
        script,
        options,
    } = &*shared;
    let options = *options;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    // Replies not yet written: they go out together once no pipelined command is waiting.
    let mut out: Vec<u8> = Vec::new();
    let mut messages = 0;
    let mut authenticated = options.auth_login.is_none();
    loop {
        if read.buffer().is_empty() && !out.is_empty() {
            write.write_all(&out).await?;
            out.clear();
        }
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let reply: Vec<u8> = match Request::parse(&mut line.iter()) {
            Ok(Request::Ehlo { .. }) => {
                let mut reply = b"250-sink.test\r\n".to_vec();
                if options.pipelining {
                    reply.extend_from_slice(b"250-PIPELINING\r\n");
                }
                if options.auth_login.is_some() {
                    reply.extend_from_slice(b"250-AUTH LOGIN\r\n");
                }
                reply.extend_from_slice(b"250-8BITMIME\r\n250 SMTPUTF8\r\n");
                reply
            }
            Ok(Request::Auth { mechanism, .. })
                if mechanism == smtp_proto::AUTH_LOGIN && options.auth_login.is_some() =>
            {
                let (user, password) = options.auth_login.unwrap_or_default();
                let mut answers = Vec::new();
                for prompt in ["334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n"] {
                    out.extend_from_slice(prompt.as_bytes());
                    write.write_all(&out).await?;
                    out.clear();
                    line.clear();
                    if read.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    answers.push(String::from_utf8_lossy(&line).trim_end().to_owned());
                }
                authenticated = answers == [base64(user), base64(password)];
                if authenticated {
                    b"235 2.7.0 Authentication successful\r\n".to_vec()
                } else {
                    b"535 5.7.8 Authentication credentials invalid\r\n".to_vec()
                }
            }
            Ok(Request::Mail { .. }) if !authenticated => {
                b"530 5.7.0 Authentication required\r\n".to_vec()
            }
            Ok(Request::Helo { .. }) => b"250 sink.test\r\n".to_vec(),
            Ok(Request::Mail { .. })
                if options.messages_per_session.is_some_and(|n| messages >= n) =>
            {
                out.extend_from_slice(b"421 4.4.2 sink.test closing the session\r\n");
                write.write_all(&out).await?;
                return Ok(());
            }
            // A client that pipelines commands the server did not offer PIPELINING for.
            _ if !options.pipelining && !read.buffer().is_empty() => {
                out.extend_from_slice(b"503 5.5.0 improper command pipelining\r\n");
                write.write_all(&out).await?;
                return Ok(());
            }
            Ok(Request::Mail { from: f }) => {
                from = Some(f.address.to_string());
                to.clear();
                b"250 2.1.0 Ok\r\n".to_vec()
            }
            Ok(Request::Rcpt { .. })
                if from.is_some() && options.max_recipients.is_some_and(|n| to.len() >= n) =>
            {
                b"452 4.5.3 Error: too many recipients\r\n".to_vec()
            }
            Ok(Request::Rcpt { to: t }) if from.is_some() => {
                to.push(t.address.to_string());
                b"250 2.1.5 Ok\r\n".to_vec()
            }
            Ok(Request::Data) if from.is_some() && !to.is_empty() => {
                out.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
                write.write_all(&out).await?;
                out.clear();
                messages += 1;
                let data = read_data(&mut read).await?;
                let mut message = Received {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                    accepted: false,
                };
                // Numbered as they arrive, over all sessions at once.
                let n = numbered.fetch_add(1, Ordering::AcqRel);
                let verdict = script(&message, n);
                let reply = match verdict {
                    Verdict::Accept => "250 2.0.0 Ok: queued".to_owned(),
                    Verdict::Reply(code, text) => format!("{code} {text}"),
                    Verdict::Delay(pause) => {
                        tokio::time::sleep(pause).await;
                        "250 2.0.0 Ok: queued".to_owned()
                    }
                };
                message.accepted = reply.starts_with('2');
                let accepted = message.accepted;
                received.lock().expect("sink lock").push(message);
                if accepted {
                    tally.one_more();
                }
                format!("{reply}\r\n").into_bytes()
            }
            Ok(Request::Rset) => {
                from = None;
                to.clear();
                b"250 2.0.0 Ok\r\n".to_vec()
            }
            Ok(Request::Noop { .. }) => b"250 2.0.0 Ok\r\n".to_vec(),
            Ok(Request::Quit) => {
                out.extend_from_slice(b"221 2.0.0 Bye\r\n");
                write.write_all(&out).await?;
                return Ok(());
            }
            Ok(_) => b"503 5.5.1 Bad sequence of commands\r\n".to_vec(),
            Err(_) => b"500 5.5.2 Syntax error\r\n".to_vec(),
        };
        out.extend_from_slice(&reply);
    }
}

/// Standard base64, as `AUTH LOGIN` exchanges user and password.
fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn read_data(read: &mut (impl AsyncBufReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let unstuffed = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(unstuffed);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    /// Sends `command` and reads its reply (every line of it); the last line.
    async fn say(stream: &mut BufReader<TcpStream>, command: &str) -> String {
        stream
            .get_mut()
            .write_all(command.as_bytes())
            .await
            .unwrap();
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    #[tokio::test]
    async fn waiters_for_different_counts_each_wake_once_theirs_is_reached() {
        let sink = SmtpSink::start().await.unwrap();
        let sink = Arc::new(sink);
        let waiter = |n: usize| {
            let sink = sink.clone();
            tokio::spawn(async move { sink.wait_for_count(n, Duration::from_secs(10)).await })
        };
        let (two, four) = (waiter(2), waiter(4));
        let mut stream = BufReader::new(TcpStream::connect(sink.addr()).await.unwrap());
        let mut greeting = String::new();
        stream.read_line(&mut greeting).await.unwrap();
        assert!(say(&mut stream, "EHLO test\r\n").await.starts_with("250 "));
        let mut send = async |i: usize| {
            say(&mut stream, "MAIL FROM:<a@example.com>\r\n").await;
            say(&mut stream, "RCPT TO:<b@example.net>\r\n").await;
            assert!(say(&mut stream, "DATA\r\n").await.starts_with("354"));
            let reply = say(&mut stream, &format!("Subject: {i}\r\n\r\nHi\r\n.\r\n")).await;
            assert!(reply.starts_with("250"), "{reply}");
        };
        send(0).await;
        send(1).await;
        // The first waiter is woken by the second message, the other not yet.
        let woken = |task| tokio::time::timeout(Duration::from_secs(2), task);
        assert_eq!(woken(two).await.expect("woken once reached").unwrap(), 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!four.is_finished());
        send(2).await;
        send(3).await;
        assert_eq!(woken(four).await.expect("woken once reached").unwrap(), 4);
        // A count not reached: the wait ends at its timeout with what there is.
        assert_eq!(sink.wait_for_count(5, Duration::from_millis(50)).await, 4);
        assert_eq!(sink.accepted_count(), 4);
    }
}
