//! The relay over real sockets with TLS: STARTTLS and implicit TLS, driven by `lettre` and by
//! `tokio-rustls`.

use std::net::SocketAddr;
use std::sync::Arc;

use lettermint_core::{MessageContent, NewProject, ProjectId, Scope, Services, SystemClock};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls_pki_types::{CertificateDer, ServerName};
use smtp_relay::tls::Identity;
use smtp_relay::{Config, Relay};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

struct World {
    _dir: tempfile::TempDir,
    services: Services,
    project: ProjectId,
    token: String,
    cert: CertificateDer<'static>,
    starttls: SocketAddr,
    implicit: SocketAddr,
}

async fn serve(listener: TcpListener, relay: Arc<Relay>, implicit: bool) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            return;
        };
        let relay = relay.clone();
        tokio::spawn(async move {
            let _ = if implicit {
                relay.tls_session(stream, Some(peer.ip())).await
            } else {
                relay.session(stream, Some(peer.ip())).await
            };
        });
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let store = lettermint_store::open(&url, lettermint_store::OpenOptions::default())
        .await
        .unwrap()
        .into_dyn();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let team = services
        .teams
        .create(Scope::Operator, "Acme")
        .await
        .unwrap();
    let (project, issued) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: team.id,
                name: "Shop".into(),
                smtp_enabled: true,
                first_token_name: Some("smtp".into()),
            },
        )
        .await
        .unwrap();
    let identity = Identity::self_signed(vec!["localhost".into()]).unwrap();
    let cert = identity.chain[0].clone();
    let (relay, _background) =
        smtp_relay::start(store, Config::default(), Some(identity.acceptor().unwrap()));
    let starttls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let implicit = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (starttls_addr, implicit_addr) = (
        starttls.local_addr().unwrap(),
        implicit.local_addr().unwrap(),
    );
    tokio::spawn(serve(starttls, relay.clone(), false));
    tokio::spawn(serve(implicit, relay, true));
    World {
        _dir: dir,
        services,
        project: project.id,
        token: issued.unwrap().secret.expose_secret().to_owned(),
        cert,
        starttls: starttls_addr,
        implicit: implicit_addr,
    }
}

fn email() -> lettre::Message {
    lettre::Message::builder()
        .from("Me <me@example.com>".parse().unwrap())
        .to("You <you@example.com>".parse().unwrap())
        .subject("Over TLS")
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body("It works.\r\n".to_owned())
        .unwrap()
}

fn transport(
    w: &World,
    port: u16,
    implicit: bool,
    mechanism: Mechanism,
) -> AsyncSmtpTransport<Tokio1Executor> {
    let tls = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_der(w.cert.to_vec()).unwrap())
        .build_rustls()
        .unwrap();
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(if implicit {
            Tls::Wrapper(tls)
        } else {
            Tls::Required(tls)
        })
        .credentials(Credentials::new("lettermint".into(), w.token.clone()))
        .authentication(vec![mechanism])
        .build()
}

async fn delivered(w: &World, response: &lettre::transport::smtp::response::Response) {
    queued(w, &response.message().collect::<Vec<_>>().join(" ")).await;
}

/// The message the relay's reply `text` names is in the store, as sent.
async fn queued(w: &World, text: &str) {
    let id = text
        .strip_prefix("2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not queued: {text}"));
    let stored = w
        .services
        .messages
        .get(w.project, id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(stored.envelope_from, "me@example.com");
    assert_eq!(stored.subject.as_deref(), Some("Over TLS"));
    let MessageContent::Mime(raw) = stored.content else {
        panic!("not MIME");
    };
    assert!(String::from_utf8_lossy(&raw).contains("It works."));
}

#[tokio::test]
async fn lettre_delivers_over_starttls_with_plain() {
    let w = world().await;
    let response = transport(&w, w.starttls.port(), false, Mechanism::Plain)
        .send(email())
        .await
        .unwrap();
    delivered(&w, &response).await;
}

#[tokio::test]
async fn lettre_delivers_over_implicit_tls_with_login() {
    let w = world().await;
    let response = transport(&w, w.implicit.port(), true, Mechanism::Login)
        .send(email())
        .await
        .unwrap();
    delivered(&w, &response).await;
}

/// Commands pipelined after STARTTLS, before the handshake, are discarded (CVE-2011-0411).
#[tokio::test]
async fn commands_sent_before_the_handshake_are_discarded() {
    let w = world().await;
    let stream = TcpStream::connect(w.starttls).await.unwrap();
    let mut plain = BufReader::new(stream);
    let mut line = String::new();
    plain.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 "), "{line}");
    plain
        .get_mut()
        .write_all(b"EHLO x\r\nSTARTTLS\r\nNOOP injected\r\n")
        .await
        .unwrap();
    let mut replies = String::new();
    loop {
        line.clear();
        plain.read_line(&mut line).await.unwrap();
        replies.push_str(&line);
        if line.starts_with("220 ") {
            break;
        }
    }
    assert!(replies.contains("250 STARTTLS\r\n"), "{replies}");
    assert!(!replies.contains("AUTH"), "{replies}");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(w.cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector
        .connect(
            ServerName::try_from("localhost").unwrap(),
            plain.into_inner(),
        )
        .await
        .unwrap();
    let mut tls = BufReader::new(tls);
    tls.get_mut().write_all(b"EHLO x\r\n").await.unwrap();
    let mut replies = String::new();
    loop {
        line.clear();
        tls.read_line(&mut line).await.unwrap();
        replies.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    // The first reply after the handshake answers EHLO, not the injected NOOP.
    assert!(
        replies.starts_with("250-localhost greets x\r\n"),
        "{replies}"
    );
    assert!(replies.ends_with("250 AUTH PLAIN LOGIN\r\n"), "{replies}");
    assert!(!replies.contains("STARTTLS"), "{replies}");
}

/// A reloaded certificate (what SIGHUP does) is used by the next handshake.
#[tokio::test]
async fn a_reloaded_certificate_serves_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let store = lettermint_store::open(&url, lettermint_store::OpenOptions::default())
        .await
        .unwrap()
        .into_dyn();
    let first = Identity::self_signed(vec!["localhost".into()]).unwrap();
    let first_der = first.certificate().clone();
    let (relay, _background) =
        smtp_relay::start(store, Config::default(), Some(first.acceptor().unwrap()));
    let second = Identity::self_signed(vec!["localhost".into()]).unwrap();
    let second_der = second.certificate().clone();

    // Implicit TLS over an in-memory pipe, trusting only `trusted`: does the handshake succeed?
    let handshake_with = |trusted: CertificateDer<'static>| {
        let relay = relay.clone();
        async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let _ = relay.tls_session(server, None).await;
            });
            let mut roots = rustls::RootCertStore::empty();
            roots.add(trusted).unwrap();
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(ServerName::try_from("localhost").unwrap(), client)
                .await
                .is_ok()
        }
    };
    assert!(handshake_with(first_der.clone()).await);
    assert!(!handshake_with(second_der.clone()).await);
    relay.reload_tls(second.acceptor().unwrap());
    assert!(handshake_with(second_der).await);
    assert!(!handshake_with(first_der).await);
}

/// The mail-worker's SMTP client (`lettermint_delivery::SmtpRelay`) with this relay as its
/// smarthost: `url` names it, and the relay's certificate is trusted when `trust` says so.
fn smarthost(w: &World, url: &str, trust: bool) -> lettermint_delivery::SmtpRelay {
    let mut config = lettermint_delivery::SmarthostConfig::from_url(url).unwrap();
    config.timeout = std::time::Duration::from_secs(5);
    if trust {
        use base64::Engine as _;
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(&w.cert)
        );
        let path = w._dir.path().join("relay-ca.pem");
        std::fs::write(&path, pem).unwrap();
        config.ca_file = Some(path);
    }
    lettermint_delivery::SmtpRelay::new(config).unwrap()
}

fn worker_envelope() -> lettre::address::Envelope {
    lettre::address::Envelope::new(
        Some("me@example.com".parse().unwrap()),
        vec!["you@example.com".parse().unwrap()],
    )
    .unwrap()
}

const WORKER_MESSAGE: &[u8] = b"From: Me <me@example.com>\r\nTo: You <you@example.com>\r\n\
Subject: Over TLS\r\nContent-Type: text/plain\r\n\r\nIt works.\r\n";

#[tokio::test]
async fn the_delivery_client_relays_over_starttls_and_implicit_tls_with_auth() {
    use lettermint_delivery::Relay as _;
    let w = world().await;
    for url in [
        format!(
            "smtp://lettermint:{}@localhost:{}",
            w.token,
            w.starttls.port()
        ),
        format!(
            "smtps://lettermint:{}@localhost:{}",
            w.token,
            w.implicit.port()
        ),
    ] {
        let client = smarthost(&w, &url, true);
        // Twice: the second message goes over the same, already authenticated session.
        for _ in 0..2 {
            let reply = client
                .relay(&worker_envelope(), WORKER_MESSAGE)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e:?}"));
            assert_eq!(reply.code, Some(250));
            queued(&w, &reply.text).await;
        }
    }
}

#[tokio::test]
async fn the_delivery_client_defers_on_a_refused_password_or_an_untrusted_certificate() {
    use lettermint_delivery::Relay as _;
    let w = world().await;
    let port = w.starttls.port();
    let wrong = smarthost(
        &w,
        &format!("smtp://lettermint:lm_wrong@localhost:{port}"),
        true,
    );
    let err = wrong
        .relay(&worker_envelope(), WORKER_MESSAGE)
        .await
        .unwrap_err();
    assert_eq!(err.kind, lettermint_core::FailureKind::Transient, "{err:?}");
    assert_eq!(err.reply.code, Some(535), "{err:?}");
    let untrusted = smarthost(
        &w,
        &format!("smtp://lettermint:{}@localhost:{port}", w.token),
        false,
    );
    let err = untrusted
        .relay(&worker_envelope(), WORKER_MESSAGE)
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.reply.code),
        (lettermint_core::FailureKind::Transient, None)
    );
    assert!(err.reply.text.contains("certificate"), "{err:?}");
    assert!(!err.reply.text.contains(&w.token));
}
