//! Where messages go: an upstream smarthost over SMTP, or a local maildir for development.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use lettermint_core::{FailureKind, Reply};

use crate::smtp::Client;

/// Why a relay attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayError {
    /// Whether retrying may help.
    pub kind: FailureKind,
    /// What the server answered, or what went wrong.
    pub reply: Reply,
}

impl RelayError {
    /// A failure no server answered (`code` is `None`) that a later attempt may get past.
    #[must_use]
    pub fn transient(text: impl Into<String>) -> Self {
        Self::unanswered(FailureKind::Transient, text.into())
    }

    /// A failure no server answered that no later attempt can get past.
    #[must_use]
    pub fn permanent(text: impl Into<String>) -> Self {
        Self::unanswered(FailureKind::Permanent, text.into())
    }

    fn unanswered(kind: FailureKind, text: String) -> Self {
        Self {
            kind,
            reply: Reply { code: None, text },
        }
    }
}

/// The recipients an attempt reached so far, noted by the relay as soon as a server took the
/// message for them and read by whoever started the attempt, even when it was cut off, failed
/// or panicked after some of them (see [`Relay::relay_noting`]).
#[derive(Debug, Clone, Default)]
pub struct Reached(Arc<std::sync::Mutex<Vec<String>>>);

impl Reached {
    /// Notes recipients the message reached.
    pub fn extend(&self, recipients: impl IntoIterator<Item = String>) {
        self.lock().extend(recipients);
    }

    /// How many were noted.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none was.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The recipients noted, in the order they were reached.
    #[must_use]
    pub fn to_vec(&self) -> Vec<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Hands a message to the next hop.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Relay: Send + Sync + fmt::Debug {
    /// Relays `data` to the envelope's recipients; the reply of the accepting server.
    async fn relay(
        &self,
        envelope: &lettre::address::Envelope,
        data: &[u8],
    ) -> Result<Reply, RelayError>;

    /// As [`Relay::relay`], noting in `reached` each recipient the message reached as soon as
    /// the server took it for them, so that an attempt that fails (or is cut off) after some
    /// recipients knows which. A relay that reaches all recipients or none at once (the
    /// default) notes nothing.
    async fn relay_noting(
        &self,
        envelope: &lettre::address::Envelope,
        data: &[u8],
        reached: &Reached,
    ) -> Result<Reply, RelayError> {
        let _ = reached;
        self.relay(envelope, data).await
    }
}

/// How to reach the smarthost's TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Implicit TLS from the first byte (`smtps://`, port 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS; a server that does not offer it is refused.
    StartTlsRequired,
    /// STARTTLS when offered, plain otherwise (open to a man in the middle).
    StartTlsOpportunistic,
    /// Plain text only (a trusted local relay, or tests).
    None,
}

/// Why a smarthost URL or setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The URL did not parse or names no host.
    #[error("smarthost URL `{0}`: {1}")]
    Url(String, String),
    /// The CA file could not be read or parsed.
    #[error("smarthost CA file `{0}`: {1}")]
    CaFile(String, String),
    /// The TLS parameters were refused.
    #[error("smarthost TLS: {0}")]
    Tls(String),
}

/// An upstream smarthost, as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct SmarthostConfig {
    /// Host name (also the name its certificate must carry).
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS mode.
    pub tls: TlsMode,
    /// `AUTH` user and password.
    pub credentials: Option<(String, String)>,
    /// Extra trusted CA certificates (PEM), beyond the system's.
    pub ca_file: Option<PathBuf>,
    /// Most connections kept open to the smarthost.
    pub max_connections: u32,
    /// Timeout of each SMTP command.
    pub timeout: Duration,
    /// Name sent in `EHLO` (the machine's host name when unset).
    pub hello_name: Option<String>,
}

impl fmt::Debug for SmarthostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmarthostConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("ca_file", &self.ca_file)
            .field("max_connections", &self.max_connections)
            .field("timeout", &self.timeout)
            .field("hello_name", &self.hello_name)
            .finish()
    }
}

impl SmarthostConfig {
    /// Parses `smtp://[user:password@]host[:port][?tls=required|opportunistic|none]` (STARTTLS
    /// required unless told otherwise; port 587) or `smtps://[user:password@]host[:port]`
    /// (implicit TLS; port 465). User and password are percent-decoded.
    pub fn from_url(input: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::Url(redact(input), why.to_owned());
        let url = url::Url::parse(input).map_err(|e| bad(&e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let mut tls_param = None;
        for (key, value) in url.query_pairs() {
            match &*key {
                "tls" => tls_param = Some(value.into_owned()),
                other => return Err(bad(&format!("unknown parameter `{other}`"))),
            }
        }
        let (tls, default_port) = match (url.scheme(), tls_param.as_deref()) {
            ("smtps", None) => (TlsMode::Implicit, 465),
            ("smtp", None | Some("required")) => (TlsMode::StartTlsRequired, 587),
            ("smtp", Some("opportunistic")) => (TlsMode::StartTlsOpportunistic, 587),
            ("smtp", Some("none")) => (TlsMode::None, 587),
            ("smtps", Some(_)) => return Err(bad("smtps:// takes no `tls` parameter")),
            ("smtp", Some(other)) => {
                return Err(bad(&format!(
                    "`tls={other}`: use required, opportunistic or none"
                )));
            }
            (other, _) => return Err(bad(&format!("scheme `{other}`: use smtp or smtps"))),
        };
        // Percent-decoding only: `+` and `&` stand for themselves in a URL's user part (form
        // decoding would turn them into a space and a cut).
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = if url.username().is_empty() {
            None
        } else {
            Some((
                decode(url.username()),
                decode(url.password().unwrap_or_default()),
            ))
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            credentials,
            ca_file: None,
            max_connections: 8,
            timeout: Duration::from_secs(60),
            hello_name: None,
        })
    }
}

/// A URL with its password replaced, for error messages and logs.
#[must_use]
pub fn redact(input: &str) -> String {
    match url::Url::parse(input) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Relays through an upstream SMTP server over a pool of reused sessions (see [`crate::smtp`]:
/// `PIPELINING` when offered, `STARTTLS` or implicit TLS, `AUTH PLAIN`/`LOGIN`).
#[derive(Debug, Clone)]
pub struct SmtpRelay {
    client: Arc<Client>,
}

impl SmtpRelay {
    /// A relay for `config` (no connection is made until the first message). Fails when the
    /// TLS settings or the CA file are unusable.
    pub fn new(config: SmarthostConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            client: Arc::new(Client::new(config)?),
        })
    }
}

#[async_trait]
impl Relay for SmtpRelay {
    async fn relay(
        &self,
        envelope: &lettre::address::Envelope,
        data: &[u8],
    ) -> Result<Reply, RelayError> {
        self.relay_noting(envelope, data, &Reached::default()).await
    }

    async fn relay_noting(
        &self,
        envelope: &lettre::address::Envelope,
        data: &[u8],
        reached: &Reached,
    ) -> Result<Reply, RelayError> {
        self.client.send(envelope, data, reached).await
    }
}

/// The development sink: every message is written to `<dir>/new/` as one file (maildir style:
/// written under `tmp/`, synced, then renamed), with `Return-Path` and one `Delivered-To` per
/// recipient prepended, as a local delivery agent would.
#[derive(Debug, Clone)]
pub struct MaildirRelay {
    dir: PathBuf,
}

impl MaildirRelay {
    /// A sink writing below `dir` (created with `tmp/`, `new/` and `cur/` when missing).
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        Ok(Self { dir })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Relay for MaildirRelay {
    async fn relay(
        &self,
        envelope: &lettre::address::Envelope,
        data: &[u8],
    ) -> Result<Reply, RelayError> {
        let mut file = Vec::with_capacity(data.len() + 128);
        let from = envelope.from().map(ToString::to_string).unwrap_or_default();
        file.extend_from_slice(format!("Return-Path: <{from}>\r\n").as_bytes());
        for to in envelope.to() {
            file.extend_from_slice(format!("Delivered-To: {to}\r\n").as_bytes());
        }
        file.extend_from_slice(data);
        let name = format!("{}.lettermint.eml", uuid::Uuid::now_v7());
        let tmp = self.dir.join("tmp").join(&name);
        let new_dir = self.dir.join("new");
        let new = new_dir.join(&name);
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            let write = || -> std::io::Result<()> {
                let mut out = std::fs::File::create(&tmp)?;
                out.write_all(&file)?;
                out.sync_all()?;
                std::fs::rename(&tmp, &new)
            };
            let result = write();
            // A half-written file (a full disk) is not left to fill it further at each retry.
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
                return result;
            }
            // The rename is durable only once the directory is: without this, a crash could
            // lose a file whose message is already recorded delivered. The file is in `new/`
            // by now, so a failure here is logged rather than retried (a retry would write a
            // second copy).
            if let Err(error) = std::fs::File::open(&new_dir).and_then(|d| d.sync_all()) {
                tracing::warn!(%error, dir = %new_dir.display(), "cannot sync the maildir");
            }
            Ok(())
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(Reply {
                code: Some(250),
                text: format!("2.0.0 written to maildir as {name}"),
            }),
            Ok(Err(e)) => Err(RelayError::transient(format!("maildir write failed: {e}"))),
            Err(e) => Err(RelayError::transient(format!(
                "maildir writer stopped: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_require_starttls_unless_told_otherwise() {
        let c = SmarthostConfig::from_url("smtp://relay.example.com").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("relay.example.com", 587, TlsMode::StartTlsRequired)
        );
        assert_eq!(c.credentials, None);
        let c = SmarthostConfig::from_url("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((c.port, c.tls), (2525, TlsMode::None));
        let c = SmarthostConfig::from_url("smtp://h?tls=opportunistic").unwrap();
        assert_eq!(c.tls, TlsMode::StartTlsOpportunistic);
        let c = SmarthostConfig::from_url("smtps://u%40x:p%3Aw@h").unwrap();
        assert_eq!((c.port, c.tls), (465, TlsMode::Implicit));
        assert_eq!(c.credentials, Some(("u@x".to_owned(), "p:w".to_owned())));
        // `+` and `&` are themselves in the user part; `%2B` is a plus too.
        let c = SmarthostConfig::from_url("smtp://a+b:pa+ss&x%2B@h").unwrap();
        assert_eq!(
            c.credentials,
            Some(("a+b".to_owned(), "pa+ss&x+".to_owned()))
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for url in [
            "http://h",
            "smtp://h?tls=maybe",
            "smtps://h?tls=none",
            "smtp://h?port=1",
            "smtp://",
            "not a url",
        ] {
            assert!(SmarthostConfig::from_url(url).is_err(), "{url}");
        }
        let err = SmarthostConfig::from_url("smtp://user:secret@h?tls=maybe").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        let config = SmarthostConfig::from_url("smtp://user:secret@h").unwrap();
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[tokio::test]
    async fn the_maildir_sink_writes_one_complete_file_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let sink = MaildirRelay::new(dir.path().join("mail")).unwrap();
        let envelope = lettre::address::Envelope::new(
            Some("a@example.com".parse().unwrap()),
            vec![
                "b@example.com".parse().unwrap(),
                "c@example.com".parse().unwrap(),
            ],
        )
        .unwrap();
        let reply = sink
            .relay(&envelope, b"Subject: hi\r\n\r\nbody\r\n")
            .await
            .unwrap();
        assert_eq!(reply.code, Some(250));
        let files: Vec<_> = std::fs::read_dir(sink.dir().join("new")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(
            text,
            "Return-Path: <a@example.com>\r\nDelivered-To: b@example.com\r\n\
             Delivered-To: c@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
        );
        assert_eq!(
            std::fs::read_dir(sink.dir().join("tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn a_failed_maildir_write_defers_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let sink = MaildirRelay::new(dir.path().join("mail")).unwrap();
        // The file is written to tmp/, then cannot be moved: as a write that fails midway.
        std::fs::remove_dir(sink.dir().join("new")).unwrap();
        let envelope = lettre::address::Envelope::new(
            Some("a@example.com".parse().unwrap()),
            vec!["b@example.com".parse().unwrap()],
        )
        .unwrap();
        let err = sink
            .relay(&envelope, b"Subject: hi\r\n\r\nbody\r\n")
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::Transient);
        assert!(err.reply.text.contains("maildir write failed"), "{err:?}");
        assert_eq!(
            std::fs::read_dir(sink.dir().join("tmp")).unwrap().count(),
            0
        );
    }
}
