//! The SMTP relay against a real SMTP server on a loopback socket (the test sink).

use std::time::Duration;

use lettermint_core::FailureKind;
use lettermint_delivery::{Relay, SmarthostConfig, SmtpRelay};
use lettermint_testkit::smtp_sink::{SinkOptions, SmtpSink, Verdict};

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
    let relay = plain_relay(port);
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

fn relay_with(url: &str, connections: u32) -> SmtpRelay {
    let mut config = SmarthostConfig::from_url(url).unwrap();
    config.timeout = Duration::from_secs(5);
    config.max_connections = connections;
    SmtpRelay::new(config).unwrap()
}

#[tokio::test]
async fn servers_with_and_without_pipelining_get_the_same_transaction() {
    let data = b"From: sender@example.com\r\nSubject: hi\r\n\r\n..two dots\r\n.\r\nend";
    for pipelining in [true, false] {
        let sink = SmtpSink::with_options(
            SinkOptions {
                pipelining,
                ..SinkOptions::default()
            },
            |_, _| Verdict::Accept,
        )
        .await
        .unwrap();
        let relay = relay_with(&sink.url(), 1);
        for n in 0..3 {
            let to = format!("r{n}@example.net");
            relay
                .relay(&envelope(&[&to, "cc@example.org"]), data)
                .await
                .unwrap();
        }
        let got = sink.accepted();
        assert_eq!(got.len(), 3, "pipelining {pipelining}");
        for (n, message) in got.iter().enumerate() {
            assert_eq!(message.from, "sender@example.com");
            assert_eq!(
                message.to,
                [format!("r{n}@example.net"), "cc@example.org".into()]
            );
            // The data comes back unstuffed, ending with the CRLF the client had to add.
            assert_eq!(message.data, [&data[..], b"\r\n"].concat());
        }
        assert_eq!(
            sink.sessions(),
            1,
            "one session reused (pipelining {pipelining})"
        );
    }
}

#[tokio::test]
async fn a_session_the_server_closed_is_replaced_and_no_message_is_lost_or_repeated() {
    // The sink ends every session after one message, as a server that timed the idle client
    // out: each later message finds its pooled session dead and goes over a new one.
    let sink = SmtpSink::with_options(
        SinkOptions {
            messages_per_session: Some(1),
            ..SinkOptions::default()
        },
        |_, _| Verdict::Accept,
    )
    .await
    .unwrap();
    let relay = relay_with(&sink.url(), 1);
    for n in 0..5 {
        let to = format!("r{n}@example.net");
        let reply = relay
            .relay(&envelope(&[&to]), b"Subject: x\r\n\r\nx\r\n")
            .await
            .unwrap();
        assert_eq!(reply.code, Some(250));
    }
    let to: Vec<String> = sink
        .accepted()
        .into_iter()
        .map(|m| m.to[0].clone())
        .collect();
    assert_eq!(
        to,
        (0..5)
            .map(|n| format!("r{n}@example.net"))
            .collect::<Vec<_>>()
    );
    assert_eq!(sink.sessions(), 5);
}

#[tokio::test]
async fn a_refused_message_leaves_the_session_usable() {
    let sink = SmtpSink::with_script(|_, n| {
        if n == 0 {
            Verdict::Reply(550, "5.7.1 content refused".into())
        } else {
            Verdict::Accept
        }
    })
    .await
    .unwrap();
    let relay = relay_with(&sink.url(), 1);
    let refused = relay
        .relay(&envelope(&["a@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!(
        (
            refused.kind,
            refused.reply.code,
            refused.reply.text.as_str()
        ),
        (FailureKind::Permanent, Some(550), "5.7.1 content refused")
    );
    relay
        .relay(&envelope(&["b@example.net"]), b"Subject: y\r\n\r\ny\r\n")
        .await
        .unwrap();
    assert_eq!(sink.accepted().len(), 1);
    assert_eq!(sink.sessions(), 1);
}

#[tokio::test]
async fn credentials_are_never_sent_in_plain_text_unless_tls_none_says_so() {
    // The sink offers no STARTTLS; `tls=opportunistic` would go on in plain text, but not with
    // a password to send.
    let sink = SmtpSink::start().await.unwrap();
    let relay = relay(&format!(
        "smtp://user:secret@{}?tls=opportunistic",
        sink.addr()
    ));
    let err = relay
        .relay(&envelope(&["a@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.reply.code), (FailureKind::Transient, None));
    assert!(err.reply.text.contains("plain text"), "{:?}", err.reply);
    assert!(!err.reply.text.contains("secret"));
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn eight_bit_content_arrives_intact() {
    let sink = SmtpSink::start().await.unwrap();
    let relay = relay(&sink.url());
    let data = "Subject: caf\u{e9}\r\n\r\nCaf\u{e9} cr\u{e8}me\r\n".as_bytes();
    relay
        .relay(&envelope(&["a@example.net"]), data)
        .await
        .unwrap();
    assert_eq!(sink.accepted()[0].data, data);
}

#[tokio::test]
async fn auth_login_is_used_when_it_is_the_only_mechanism() {
    let sink = SmtpSink::with_options(
        SinkOptions {
            auth_login: Some(("relay-user", "p@ss:word")),
            ..SinkOptions::default()
        },
        |_, _| Verdict::Accept,
    )
    .await
    .unwrap();
    // `tls=none` is what allows a password without TLS.
    let good = relay(&format!(
        "smtp://relay-user:p%40ss%3Aword@{}?tls=none",
        sink.addr()
    ));
    good.relay(&envelope(&["a@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap();
    assert_eq!(sink.accepted().len(), 1);
    let bad = relay(&format!("smtp://relay-user:wrong@{}?tls=none", sink.addr()));
    let err = bad
        .relay(&envelope(&["a@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    // A refused password is the configuration's fault, not the message's: retried later.
    assert_eq!(
        (err.kind, err.reply.code),
        (FailureKind::Transient, Some(535))
    );
    assert_eq!(sink.accepted().len(), 1);
}

#[tokio::test]
async fn a_reply_injected_after_starttls_drops_the_session() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    // A server (or a man in the middle) that answers STARTTLS and appends a plain-text reply
    // in the same write, hoping it is read as if it came over TLS.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        write.write_all(b"220 mx.test ESMTP\r\n").await.unwrap();
        let mut line = String::new();
        while read.read_line(&mut line).await.unwrap() > 0 {
            let reply: &[u8] = if line.starts_with("EHLO") {
                b"250-mx.test\r\n250 STARTTLS\r\n"
            } else if line.starts_with("STARTTLS") {
                b"220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected\r\n"
            } else {
                b"502 5.5.2 no\r\n"
            };
            write.write_all(reply).await.unwrap();
            line.clear();
        }
    });
    let relay = relay(&format!("smtp://localhost:{}", addr.port()));
    let err = relay
        .relay(&envelope(&["a@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.reply.code), (FailureKind::Transient, None));
    assert!(
        err.reply.text.contains("after its STARTTLS reply"),
        "{:?}",
        err.reply
    );
}

#[tokio::test]
async fn a_421_after_the_data_is_a_deferral_not_a_second_upload() {
    // The second message's data is answered 421 on a reused session: the server had the whole
    // message, so sending it again at once could deliver it twice.
    let sink = SmtpSink::with_script(|_, n| {
        if n == 1 {
            Verdict::Reply(421, "4.3.0 shutting down".into())
        } else {
            Verdict::Accept
        }
    })
    .await
    .unwrap();
    let relay = relay_with(&sink.url(), 1);
    relay
        .relay(&envelope(&["a@example.net"]), b"Subject: 1\r\n\r\n1\r\n")
        .await
        .unwrap();
    let err = relay
        .relay(&envelope(&["b@example.net"]), b"Subject: 2\r\n\r\n2\r\n")
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.reply.code),
        (FailureKind::Transient, Some(421))
    );
    assert_eq!(sink.received().len(), 2, "the refused message went once");
    // The session that said 421 is not reused.
    relay
        .relay(&envelope(&["c@example.net"]), b"Subject: 3\r\n\r\n3\r\n")
        .await
        .unwrap();
    assert_eq!(sink.sessions(), 2);
}

#[tokio::test]
async fn a_slow_answer_to_the_end_of_the_data_is_waited_for() {
    // The server takes longer than a command's timeout to accept the data (a content scan):
    // giving up would defer a message the server then delivers, and send it again later.
    let sink = SmtpSink::with_script(|_, _| Verdict::Delay(Duration::from_secs(2)))
        .await
        .unwrap();
    let mut config = SmarthostConfig::from_url(&sink.url()).unwrap();
    config.timeout = Duration::from_secs(1);
    let relay = SmtpRelay::new(config).unwrap();
    let reply = relay
        .relay(&envelope(&["a@example.net"]), b"Subject: slow\r\n\r\nx\r\n")
        .await
        .unwrap();
    assert_eq!(reply.code, Some(250));
    assert_eq!(sink.accepted().len(), 1);
}

/// A hand-scripted server on a loopback port: `answer` gives the reply to each command line
/// (`None`: the usual positive one); every line it read is kept, in order.
async fn scripted_server(
    answer: impl Fn(&str) -> Option<&'static str> + Send + Sync + 'static,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, answer) = (log.clone(), answer.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                write.write_all(b"220 mx.test ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                let mut in_data = false;
                while read.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let command = line.trim_end().to_owned();
                    line.clear();
                    log.lock().unwrap().push(command.clone());
                    if in_data {
                        if command == "." {
                            in_data = false;
                            write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                        }
                        continue;
                    }
                    let verb = command.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply = answer(&command).unwrap_or(match verb.as_str() {
                        "EHLO" => "250-mx.test\r\n250 8BITMIME",
                        "DATA" => "354 go ahead",
                        "QUIT" => "221 bye",
                        _ => "250 ok",
                    });
                    in_data = verb == "DATA" && reply.starts_with("354");
                    write
                        .write_all(format!("{reply}\r\n").as_bytes())
                        .await
                        .unwrap();
                }
            });
        }
    });
    (port, seen)
}

/// A [`scripted_server`] (offering `PIPELINING` or not) that refuses the recipients whose
/// address starts with one of `refusals`' prefixes with its reply, and `DATA` when none of the
/// transaction's recipients was accepted. One session at a time.
async fn refusing_recipients(
    pipelining: bool,
    refusals: &'static [(&'static str, &'static str)],
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    limiting_recipients(pipelining, usize::MAX, refusals).await
}

/// A [`refusing_recipients`] server that also takes at most `limit` recipients per transaction,
/// answering the others `452 4.5.3 Error: too many recipients` as Postfix does.
async fn limiting_recipients(
    pipelining: bool,
    limit: usize,
    refusals: &'static [(&'static str, &'static str)],
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let accepted = AtomicUsize::new(0);
    scripted_server(move |command| {
        if command.starts_with("EHLO") && pipelining {
            return Some("250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME");
        }
        if command.starts_with("MAIL") {
            accepted.store(0, Ordering::SeqCst);
            return None;
        }
        if command.starts_with("DATA") {
            return (accepted.load(Ordering::SeqCst) == 0)
                .then_some("554 5.5.1 no valid recipients");
        }
        let address = command.strip_prefix("RCPT TO:<")?;
        let refusal = refusals
            .iter()
            .find(|(prefix, _)| address.starts_with(prefix))
            .map(|(_, reply)| *reply);
        if refusal.is_some() {
            return refusal;
        }
        if accepted.load(Ordering::SeqCst) >= limit {
            return Some("452 4.5.3 Error: too many recipients");
        }
        accepted.fetch_add(1, Ordering::SeqCst);
        None
    })
    .await
}

/// A [`scripted_server`] that answers the commands starting with `prefix` with `reply`.
async fn answering(
    prefix: &'static str,
    reply: &'static str,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    scripted_server(move |command| command.starts_with(prefix).then_some(reply)).await
}

/// A relay to a scripted server on `port`, in plain text.
fn plain_relay(port: u16) -> SmtpRelay {
    relay(&format!("smtp://127.0.0.1:{port}?tls=none"))
}

#[tokio::test]
async fn a_recipient_refused_for_good_fails_the_message_whatever_its_place() {
    for pipelining in [true, false] {
        let (port, seen) = refusing_recipients(
            pipelining,
            &[
                ("full@", "452 4.2.2 mailbox full"),
                ("gone@", "550 5.1.1 no such user"),
            ],
        )
        .await;
        let relay = relay_with(&format!("smtp://127.0.0.1:{port}?tls=none"), 1);
        // The temporary refusal comes first: retrying could never deliver the message.
        let err = relay
            .relay(
                &envelope(&["full@example.net", "gone@example.net"]),
                b"Subject: x\r\n\r\nx\r\n",
            )
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reply.code),
            (FailureKind::Permanent, Some(550)),
            "pipelining {pipelining}: {err:?}"
        );
        // Only temporary refusals: deferred.
        let err = relay
            .relay(&envelope(&["full@example.net"]), b"Subject: x\r\n\r\nx\r\n")
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reply.code),
            (FailureKind::Transient, Some(452)),
            "pipelining {pipelining}: {err:?}"
        );
        let seen = seen.lock().unwrap().clone();
        assert!(
            !seen.iter().any(|l| l == "x"),
            "no data may be sent (pipelining {pipelining}): {seen:?}"
        );
        assert_eq!(
            seen.iter().filter(|l| l.starts_with("RCPT")).count(),
            3,
            "every recipient is tried (pipelining {pipelining}): {seen:?}"
        );
    }
}

#[tokio::test]
async fn too_many_recipients_is_temporary_and_a_busy_ehlo_is_not_answered_with_helo() {
    // RFC 5321, 4.5.3.1.10: a 552 at RCPT is a recipient limit, to be treated as 452.
    for pipelining in [true, false] {
        let (port, _) =
            refusing_recipients(pipelining, &[("many@", "552 5.5.3 too many recipients")]).await;
        let err = plain_relay(port)
            .relay(&envelope(&["many@example.net"]), b"Subject: x\r\n\r\nx\r\n")
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reply.code),
            (FailureKind::Transient, Some(552)),
            "pipelining {pipelining}"
        );
    }

    // A server that does not know EHLO gets HELO, and the message goes (7-bit).
    let (port, seen) = answering("EHLO", "502 5.5.2 command not recognized").await;
    plain_relay(port)
        .relay(&envelope(&["a@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap();
    assert!(
        seen.lock().unwrap().iter().any(|l| l.starts_with("HELO")),
        "{seen:?}"
    );

    // A server that refuses EHLO for now must not get HELO: a session without 8BITMIME would
    // fail this 8-bit message for good.
    let (port, seen) = answering("EHLO", "421 4.3.2 busy, try later").await;
    let err = plain_relay(port)
        .relay(
            &envelope(&["a@example.net"]),
            "Subject: x\r\n\r\nd\u{e9}j\u{e0}\r\n".as_bytes(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.reply.code),
        (FailureKind::Transient, Some(421))
    );
    assert!(
        !seen.lock().unwrap().iter().any(|l| l.starts_with("HELO")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn utf8_headers_are_declared_with_smtputf8_where_offered() {
    let data = "From: sender@example.com\r\nSubject: r\u{e9}sum\u{e9}\r\n\r\nx\r\n".as_bytes();
    // 8BITMIME only: sent as before.
    let (port, seen) = scripted_server(|_| None).await;
    plain_relay(port)
        .relay(&envelope(&["a@example.net"]), data)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let mail = seen.iter().find(|l| l.starts_with("MAIL")).unwrap();
    assert_eq!(
        mail, "MAIL FROM:<sender@example.com> BODY=8BITMIME",
        "{seen:?}"
    );
    // Offered: MAIL FROM carries SMTPUTF8.
    let (port, seen) = answering("EHLO", "250-mx.test\r\n250-8BITMIME\r\n250 SMTPUTF8").await;
    plain_relay(port)
        .relay(&envelope(&["a@example.net"]), data)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let mail = seen.iter().find(|l| l.starts_with("MAIL")).unwrap();
    assert_eq!(
        mail, "MAIL FROM:<sender@example.com> BODY=8BITMIME SMTPUTF8",
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_reply_whose_lines_disagree_on_the_code_is_not_trusted() {
    let (port, seen) = answering("MAIL", "250-2.1.0 sender ok\r\n550 5.7.1 but no").await;
    let err = plain_relay(port)
        .relay(&envelope(&["a@example.net"]), b"Subject: x\r\n\r\nx\r\n")
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.reply.code), (FailureKind::Transient, None));
    assert!(err.reply.text.contains("disagree"), "{err:?}");
    assert!(!seen.lock().unwrap().iter().any(|l| l == "x"), "{seen:?}");
}

#[tokio::test]
async fn a_421_at_rcpt_ends_the_transaction_without_pipelining() {
    // The server is closing: no further command may follow (RFC 5321, 3.8).
    let (port, seen) = answering("RCPT TO:<first@", "421 4.3.2 shutting down").await;
    let err = plain_relay(port)
        .relay(
            &envelope(&["first@example.net", "second@example.net"]),
            b"Subject: x\r\n\r\nx\r\n",
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.reply.code),
        (FailureKind::Transient, Some(421))
    );
    let seen = seen.lock().unwrap().clone();
    let after = seen
        .iter()
        .skip_while(|l| !l.starts_with("RCPT TO:<first@"))
        .skip(1)
        .filter(|l| !l.starts_with("QUIT"))
        .count();
    assert_eq!(after, 0, "nothing but QUIT after the 421: {seen:?}");
}

#[tokio::test]
async fn a_server_that_takes_fewer_recipients_per_transaction_gets_the_rest_in_the_next() {
    let to = [
        "a@example.net",
        "b@example.net",
        "c@example.org",
        "d@example.org",
        "e@example.com",
    ];
    let data = b"From: sender@example.com\r\nSubject: many\r\n\r\nfor five\r\n";
    for pipelining in [true, false] {
        let sink = SmtpSink::with_options(
            SinkOptions {
                pipelining,
                max_recipients: Some(2),
                ..SinkOptions::default()
            },
            |_, _| Verdict::Accept,
        )
        .await
        .unwrap();
        let reply = relay(&sink.url())
            .relay(&envelope(&to), data)
            .await
            .unwrap();
        assert_eq!(reply.code, Some(250), "pipelining {pipelining}");
        let got = sink.accepted();
        let transactions: Vec<Vec<String>> = got.iter().map(|m| m.to.clone()).collect();
        assert_eq!(
            transactions,
            [&to[..2], &to[2..4], &to[4..]],
            "each recipient exactly once, in order (pipelining {pipelining})"
        );
        assert!(
            got.iter()
                .all(|m| m.data == data && m.from == "sender@example.com")
        );
        assert_eq!(sink.sessions(), 1, "one session (pipelining {pipelining})");
    }
}

/// Relays a one-line message to `to` through a [`limiting_recipients`] server: the error it
/// ends with, the recipients it noted as reached, and every line the server read.
async fn refused_by(
    pipelining: bool,
    limit: usize,
    refusals: &'static [(&'static str, &'static str)],
    to: &[&str],
) -> (lettermint_delivery::RelayError, Vec<String>, Vec<String>) {
    let (port, seen) = limiting_recipients(pipelining, limit, refusals).await;
    let reached = lettermint_delivery::Reached::default();
    let err = plain_relay(port)
        .relay_noting(&envelope(to), b"Subject: x\r\n\r\nx\r\n", &reached)
        .await
        .unwrap_err();
    let seen = seen.lock().unwrap().clone();
    (err, reached.to_vec(), seen)
}

/// How many times the one-line message's body went to the server.
fn bodies_sent(seen: &[String]) -> usize {
    seen.iter().filter(|l| *l == "x").count()
}

/// The `RCPT` commands the server read, by address, in order.
fn rcpts_of(seen: &[String]) -> Vec<&str> {
    seen.iter()
        .filter_map(|l| l.strip_prefix("RCPT TO:<")?.strip_suffix('>'))
        .collect()
}

#[tokio::test]
async fn recipients_refused_for_now_do_not_hold_the_message_back_from_the_others() {
    // A recipient refused for itself (a full mailbox) beside accepted ones: the message goes to
    // those, noted as reached, and the attempt is deferred, so that the next goes to the other
    // only.
    for pipelining in [true, false] {
        let (err, reached, seen) = refused_by(
            pipelining,
            usize::MAX,
            &[("full@", "452 4.2.2 mailbox full")],
            &["ok@example.net", "full@example.net", "also@example.net"],
        )
        .await;
        assert_eq!(
            (err.kind, err.reply.code),
            (FailureKind::Transient, Some(452)),
            "pipelining {pipelining}: {err:?}"
        );
        assert_eq!(reached, ["ok@example.net", "also@example.net"]);
        assert!(
            err.reply.text.contains("reached 2 other recipient(s)"),
            "{err:?}"
        );
        assert_eq!(bodies_sent(&seen), 1, "sent once: {seen:?}");
    }

    // A recipient refused for good: nothing is sent to anyone (the message cannot be delivered
    // whole, and fails).
    let (err, reached, seen) = refused_by(
        true,
        usize::MAX,
        &[("gone@", "550 5.1.1 no such user")],
        &["ok@example.net", "gone@example.net"],
    )
    .await;
    assert_eq!(
        (err.kind, err.reply.code, reached.len()),
        (FailureKind::Permanent, Some(550), 0)
    );
    assert_eq!(bodies_sent(&seen), 0, "{seen:?}");

    // A server that always answers one recipient "too many" while taking the others: it gets
    // the message for those once, then the lone recipient is refused with nothing to send,
    // and the attempt ends (deferred) having noted the recipients it reached.
    for pipelining in [true, false] {
        let (err, reached, seen) = refused_by(
            pipelining,
            usize::MAX,
            &[("late@", "452 4.5.3 Error: too many recipients")],
            &["a@example.net", "late@example.net", "b@example.net"],
        )
        .await;
        assert_eq!(
            (err.kind, err.reply.code),
            (FailureKind::Transient, Some(452)),
            "pipelining {pipelining}: {err:?}"
        );
        assert_eq!(reached, ["a@example.net", "b@example.net"]);
        assert_eq!(
            rcpts_of(&seen),
            [
                "a@example.net",
                "late@example.net",
                "b@example.net",
                "late@example.net"
            ],
            "pipelining {pipelining}: {seen:?}"
        );
        assert_eq!(bodies_sent(&seen), 1, "{seen:?}");
    }
}

#[tokio::test]
async fn the_limit_splits_the_rest_while_a_recipient_refused_for_itself_waits() {
    // Two recipients per transaction, and one mailbox full: the others all get the message in
    // this attempt, each once, the next transactions holding no more recipients than the
    // server took; the attempt is then deferred for the full mailbox alone.
    for pipelining in [true, false] {
        let (err, reached, seen) = refused_by(
            pipelining,
            2,
            &[("full@", "452 4.2.2 mailbox full")],
            &[
                "a@example.net",
                "full@example.net",
                "b@example.net",
                "c@example.net",
                "d@example.net",
                "e@example.net",
            ],
        )
        .await;
        assert_eq!(
            (err.kind, err.reply.code),
            (FailureKind::Transient, Some(452)),
            "pipelining {pipelining}: {err:?}"
        );
        assert!(err.reply.text.contains("mailbox full"), "{err:?}");
        assert_eq!(
            reached,
            [
                "a@example.net",
                "b@example.net",
                "c@example.net",
                "d@example.net",
                "e@example.net"
            ]
        );
        assert_eq!(
            rcpts_of(&seen),
            [
                "a@example.net",
                "full@example.net",
                "b@example.net",
                "c@example.net",
                "d@example.net",
                "e@example.net",
                "c@example.net",
                "d@example.net",
                "e@example.net",
            ],
            "pipelining {pipelining}: {seen:?}"
        );
        assert_eq!(bodies_sent(&seen), 3, "{seen:?}");
    }
}
