//! The SMTP relay against a real SMTP server on a loopback socket (the test sink).

use std::time::Duration;

use lettermint_core::FailureKind;
use lettermint_delivery::{Relay, SmarthostConfig, SmtpRelay};
use lettermint_testkit::smtp_sink::{SmtpSink, Verdict};

fn envelope(to: &[&str]) -> lettre::address::Envelope {
    lettre::address::Envelope::new(
        Some("sender@example.com".parse().unwrap()),
        to.iter().map(|a| a.parse().unwrap()).collect(),
    )
    .unwrap()
}

fn relay(url: &str) -> SmtpRelay {
    let mut config = SmarthostConfig::from_url(url).unwrap();
    config.timeout = Duration::from_secs(5);
    SmtpRelay::new(config).unwrap()
}

#[tokio::test]
async fn a_message_arrives_with_its_envelope_and_bytes() {
    let sink = SmtpSink::start().await.unwrap();
    let relay = relay(&sink.url());
    let data = b"From: sender@example.com\r\nSubject: hi\r\n\r\n.starts with a dot\r\nend\r\n";
    let reply = relay
        .relay(&envelope(&["a@example.net", "b@example.org"]), data)
        .await
        .unwrap();
    assert_eq!(reply.code, Some(250));
    assert!(reply.text.contains("queued"), "{reply:?}");
    let got = sink.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, "sender@example.com");
    assert_eq!(got[0].to, ["a@example.net", "b@example.org"]);
    assert_eq!(got[0].data, data);
}

#[tokio::test]
async fn replies_are_classified_transient_or_permanent() {
    let sink = SmtpSink::with_script(|message, _| {
        if message.to[0].starts_with("soft") {
            Verdict::Reply(451, "4.3.0 try again later".into())
        } else {
            Verdict::Reply(550, "5.1.1 mailbox unavailable".into())
        }
    })
    .await
    .unwrap();
    let relay = relay(&sink.url());
    let soft = relay
        .relay(&envelope(&["soft@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!(
        (soft.kind, soft.reply.code),
        (FailureKind::Transient, Some(451))
    );
    assert!(
        soft.reply.text.contains("try again later"),
        "{:?}",
        soft.reply
    );
    let hard = relay
        .relay(&envelope(&["hard@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!(
        (hard.kind, hard.reply.code),
        (FailureKind::Permanent, Some(550))
    );
}

#[tokio::test]
async fn an_unreachable_smarthost_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let relay = relay(&format!("smtp://127.0.0.1:{port}?tls=none"));
    let err = relay
        .relay(&envelope(&["a@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.reply.code), (FailureKind::Transient, None));
}

#[tokio::test]
async fn starttls_is_required_unless_the_url_says_otherwise() {
    // The sink offers no STARTTLS: the default (`smtp://` = STARTTLS required) must not send
    // the message in plain text.
    let sink = SmtpSink::start().await.unwrap();
    let relay = relay(&format!("smtp://{}", sink.addr()));
    let err = relay
        .relay(&envelope(&["a@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Transient);
    assert!(
        sink.received().is_empty(),
        "nothing may be sent without TLS"
    );
}
