//! An SMTP server for tests and benchmarks: it accepts mail on a loopback port, keeps what it
//! received, and answers `DATA` as a script says (accept, defer with 4xx, refuse with 5xx, or
//! hold the reply back to simulate a slow upstream). Commands are parsed with `smtp-proto`.

use std::net::SocketAddr;
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

/// The running sink. Dropping it stops accepting connections.
pub struct SmtpSink {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
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
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let script: Arc<Script> = Arc::new(script);
        let task = {
            let received = received.clone();
            let arrived = arrived.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let state = (received.clone(), arrived.clone(), script.clone());
                    tokio::spawn(async move {
                        let _ = session(stream, state).await;
                    });
                }
            })
        };
        Ok(Self {
            addr,
            received,
            arrived,
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

    /// Waits until at least `n` messages were accepted, or `timeout` passes; what was accepted.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.accepted();
            }
        }
    }
}

type State = (Arc<Mutex<Vec<Received>>>, Arc<Notify>, Arc<Script>);

async fn session(stream: TcpStream, (received, arrived, script): State) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let reply: Vec<u8> = match Request::parse(&mut line.iter()) {
            Ok(Request::Ehlo { .. }) => {
                b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".to_vec()
            }
            Ok(Request::Helo { .. }) => b"250 sink.test\r\n".to_vec(),
            Ok(Request::Mail { from: f }) => {
                from = Some(f.address.to_string());
                to.clear();
                b"250 2.1.0 Ok\r\n".to_vec()
            }
            Ok(Request::Rcpt { to: t }) if from.is_some() => {
                to.push(t.address.to_string());
                b"250 2.1.5 Ok\r\n".to_vec()
            }
            Ok(Request::Data) if from.is_some() && !to.is_empty() => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = read_data(&mut read).await?;
                let mut message = Received {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                    accepted: false,
                };
                let n = received.lock().expect("sink lock").len();
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
                received.lock().expect("sink lock").push(message);
                arrived.notify_waiters();
                format!("{reply}\r\n").into_bytes()
            }
            Ok(Request::Rset) => {
                from = None;
                to.clear();
                b"250 2.0.0 Ok\r\n".to_vec()
            }
            Ok(Request::Noop { .. }) => b"250 2.0.0 Ok\r\n".to_vec(),
            Ok(Request::Quit) => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            Ok(_) => b"503 5.5.1 Bad sequence of commands\r\n".to_vec(),
            Err(_) => b"500 5.5.2 Syntax error\r\n".to_vec(),
        };
        write.write_all(&reply).await?;
    }
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
