use std::collections::{BTreeMap, BTreeSet};

use lettermint_core::{
    Attachment, Channel, Message, MessageContent, MessageId, MessageStatus, ProjectId, RouteId,
    StructuredEmail, TokenId,
};
use mail_parser::{MessageParser, MimeHeaders as _};
use proptest::prelude::*;
use time::macros::datetime;

use super::*;

fn email() -> StructuredEmail {
    StructuredEmail {
        from: "Shop <shop@example.com>".into(),
        to: vec!["Ann <ann@example.net>".into()],
        cc: vec!["cc@example.net".into()],
        bcc: vec!["hidden@example.org".into()],
        reply_to: vec!["help@example.com".into()],
        subject: "Your order — №42".into(),
        html: Some("<p>Thanks <img src=\"cid:logo@lm\"></p>".into()),
        text: Some("Thanks".into()),
        headers: BTreeMap::from([("X-Campaign".to_owned(), "spring".to_owned())]),
        tags: vec![],
        attachments: vec![
            Attachment {
                filename: "invoice.pdf".into(),
                content: "JVBERi0xLjQK".into(),
                content_type: Some("application/pdf".into()),
                content_id: None,
            },
            Attachment {
                filename: "logo.png".into(),
                content: "iVBORw0KGgo=".into(),
                content_type: Some("image/png".into()),
                content_id: Some("logo@lm".into()),
            },
        ],
    }
}

fn message(email: StructuredEmail) -> Message {
    let mut envelope_to: Vec<String> = Vec::new();
    for a in email.to.iter().chain(&email.cc).chain(&email.bcc) {
        let addr = a
            .rsplit_once('<')
            .map_or(a.as_str(), |(_, rest)| rest.trim_end_matches('>'));
        envelope_to.push(addr.to_owned());
    }
    Message {
        id: MessageId::new(),
        project_id: ProjectId::new(),
        route_id: RouteId::new(),
        token_id: TokenId::new(),
        via: Channel::Api,
        status: MessageStatus::Pending,
        envelope_from: "shop@example.com".into(),
        envelope_to,
        subject: Some(email.subject.clone()),
        tag: Some("orders".into()),
        metadata: BTreeMap::from([("user".to_owned(), "42".to_owned())]),
        idempotency_key: None,
        scheduled_at: None,
        created_at: datetime!(2026-12-03 08:00 UTC),
        content: MessageContent::Structured(Box::new(email)),
        delivery: Default::default(),
    }
}

fn built(message: &Message) -> Vec<u8> {
    render(message).expect("builds")
}

#[test]
fn an_api_message_is_built_with_its_headers_bodies_and_attachments() {
    let m = message(email());
    let bytes = built(&m);
    let parsed = MessageParser::default().parse(&bytes).expect("parses");
    assert_eq!(parsed.subject(), Some("Your order — №42"));
    let from = parsed.from().and_then(|a| a.first()).unwrap();
    assert_eq!(from.address(), Some("shop@example.com"));
    assert_eq!(from.name(), Some("Shop"));
    assert_eq!(
        parsed
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("ann@example.net")
    );
    assert_eq!(
        parsed
            .cc()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("cc@example.net")
    );
    assert_eq!(
        parsed
            .reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("help@example.com")
    );
    assert!(parsed.bcc().is_none(), "Bcc is envelope only");
    assert!(!String::from_utf8_lossy(&bytes).contains("hidden@example.org"));
    assert_eq!(
        parsed.header_raw("X-Campaign").map(str::trim),
        Some("spring")
    );
    assert_eq!(parsed.header_raw("X-LM-Tag").map(str::trim), Some("orders"));
    let id = m.id.to_string();
    assert_eq!(
        parsed.header_raw("X-LM-Message-Id").map(str::trim),
        Some(id.as_str())
    );
    assert_eq!(
        parsed.message_id(),
        Some(format!("{id}@example.com").as_str())
    );
    assert!(
        parsed.header_raw("X-LM-Metadata-user").is_none(),
        "metadata never becomes a header"
    );
    assert_eq!(parsed.body_text(0).as_deref(), Some("Thanks"));
    assert!(parsed.body_html(0).unwrap().contains("cid:logo@lm"));
    let names: BTreeSet<_> = parsed
        .attachments()
        .filter_map(|a| a.attachment_name())
        .collect();
    assert_eq!(names, BTreeSet::from(["invoice.pdf", "logo.png"]));
    let pdf = parsed
        .attachments()
        .find(|a| a.attachment_name() == Some("invoice.pdf"))
        .unwrap();
    assert_eq!(pdf.contents(), b"%PDF-1.4\n");
    let logo = parsed
        .attachments()
        .find(|a| a.attachment_name() == Some("logo.png"))
        .unwrap();
    assert_eq!(logo.content_id(), Some("logo@lm"));
    assert!(parsed.date().is_some());
}

#[test]
fn display_names_with_commas_or_at_signs_stay_one_recipient() {
    let mut e = email();
    e.to = vec![
        "Doe, John <john@example.net>".into(),
        "a, evil@x.com <b@example.net>".into(),
    ];
    e.from = "\"Shop, Inc.\" <shop@example.com>".into();
    let bytes = built(&message(e));
    let parsed = MessageParser::default().parse(&bytes).unwrap();
    let to: Vec<(Option<&str>, Option<&str>)> = parsed
        .to()
        .unwrap()
        .iter()
        .map(|a| (a.name(), a.address()))
        .collect();
    assert_eq!(
        to,
        [
            (Some("Doe, John"), Some("john@example.net")),
            (Some("a, evil@x.com"), Some("b@example.net"))
        ]
    );
    let from = parsed.from().and_then(|a| a.first()).unwrap();
    assert_eq!(
        (from.name(), from.address()),
        (Some("Shop, Inc."), Some("shop@example.com"))
    );
}

#[test]
fn the_envelope_names_every_recipient_including_bcc() {
    let m = message(email());
    let envelope = envelope(&m).unwrap();
    let to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
    assert_eq!(
        to,
        ["ann@example.net", "cc@example.net", "hidden@example.org"]
    );
    assert_eq!(envelope.from().unwrap().to_string(), "shop@example.com");
}

#[test]
fn a_callers_message_id_is_kept_and_no_second_one_is_added() {
    let mut e = email();
    e.headers
        .insert("Message-ID".into(), "<mine@example.com>".into());
    let bytes = built(&message(e));
    let parsed = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(parsed.message_id(), Some("mine@example.com"));
    let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
    assert_eq!(
        text.matches("\nmessage-id:").count() + usize::from(text.starts_with("message-id:")),
        1
    );
}

#[test]
fn smtp_messages_go_out_byte_for_byte() {
    let mut m = message(email());
    let raw =
        b"From: a@example.com\r\nSubject:  odd  spacing\r\n\r\n.leading dot\r\nbody\r\n".to_vec();
    m.content = MessageContent::Mime(raw.clone());
    assert_eq!(render(&m).unwrap(), raw);
}

#[test]
fn values_that_could_become_header_lines_are_refused() {
    for (field, mutate) in [
        (
            "subject",
            Box::new(|e: &mut StructuredEmail| e.subject = "hi\r\nBcc: evil@x.com".into())
                as Box<dyn Fn(&mut StructuredEmail)>,
        ),
        (
            "header value",
            Box::new(|e: &mut StructuredEmail| {
                e.headers.insert("X-A".into(), "v\nBcc: evil@x.com".into());
            }),
        ),
        (
            "header name",
            Box::new(|e: &mut StructuredEmail| {
                e.headers.insert("X-A\r\nBcc".into(), "v".into());
            }),
        ),
        (
            "from",
            Box::new(|e: &mut StructuredEmail| {
                e.from = "A\r\nBcc: evil@x.com <a@example.com>".into()
            }),
        ),
        (
            "filename",
            Box::new(|e: &mut StructuredEmail| e.attachments[0].filename = "a\0.pdf".into()),
        ),
    ] {
        let mut e = email();
        mutate(&mut e);
        assert!(render(&message(e)).is_err(), "{field}");
    }
}

#[test]
fn attachments_that_are_not_base64_fail_the_build() {
    let mut e = email();
    e.attachments[0].content = "not base64!".into();
    assert_eq!(
        render(&message(e)),
        Err(BuildError::Attachment("invoice.pdf".into()))
    );
}

/// Header names a built message may carry: those the builder adds, and those the request named.
fn allowed_headers(email: &StructuredEmail) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        "from",
        "to",
        "cc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "x-lm-tag",
        "x-lm-message-id",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    names.extend(email.headers.keys().map(|k| k.to_ascii_lowercase()));
    names
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "\\PC{0,20}",
        "[a-z]{0,5}(\r|\n|\r\n|\0)(Bcc|To|X-Evil): ?[a-z@.]{0,12}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the request carried, a built message has no header and no recipient that the
    /// request did not name: values that could start a new header line make the build fail.
    #[test]
    fn a_built_message_never_gains_a_header_or_recipient(
        subject in any_text(),
        name in any_text(),
        header_name in "[A-Za-z][A-Za-z0-9-]{0,12}",
        header_value in any_text(),
        filename in any_text(),
        text in any_text(),
    ) {
        let mut e = email();
        e.subject = subject;
        e.from = format!("{name} <shop@example.com>");
        e.headers = BTreeMap::from([(format!("X-{header_name}"), header_value)]);
        e.attachments[0].filename = filename;
        e.text = Some(text);
        let m = message(e.clone());
        let Ok(bytes) = render(&m) else { return Ok(()) };
        let parsed = MessageParser::default().parse(&bytes).expect("a built message parses");
        let allowed = allowed_headers(&e);
        for header in parsed.headers() {
            let header_name = header.name().to_ascii_lowercase();
            prop_assert!(allowed.contains(&header_name), "unexpected header {header_name}");
        }
        prop_assert!(parsed.bcc().is_none());
        let recipients: BTreeSet<String> = parsed
            .to()
            .into_iter()
            .chain(parsed.cc())
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address().map(str::to_owned))
            .collect();
        prop_assert_eq!(
            recipients,
            BTreeSet::from(["ann@example.net".to_owned(), "cc@example.net".to_owned()])
        );
        let envelope = envelope(&m).unwrap();
        prop_assert_eq!(envelope.to().len(), 3);
    }
}
