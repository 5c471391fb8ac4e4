//! No value of a send request can become a header line: every header-bound field refuses CR, LF,
//! NUL and other control characters with a 422 naming the field, and whatever is accepted is
//! stored without them (read back through the SQLite store).

mod common;

use std::cell::Cell;

use common::{Backend, TestServer, client, json, mail};
use lettermint_core::header::line_breaking_field;
use lettermint_core::{Channel, MessageId, ProjectId};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// Sets `value` at `field` of a valid request.
fn with(field: &str, value: &str) -> Value {
    let mut body = mail("Hello");
    body["attachments"] =
        json!([{"filename": "a.txt", "content": "aGVsbG8=", "content_type": "text/plain"}]);
    body["headers"] = json!({"X-Campaign": "spring"});
    match field {
        "subject" => body["subject"] = json!(value),
        "from" => body["from"] = json!(format!("{value} <shop@example.com>")),
        "to" | "cc" | "bcc" | "reply_to" => {
            body[field] = json!([format!("{value} <someone@example.com>")]);
        }
        "tag" => body["tag"] = json!(value),
        "route" => body["route"] = json!(value),
        "header-name" => body["headers"] = json!({ value: "v" }),
        "header-value" => body["headers"] = json!({"X-Campaign": value}),
        "metadata-key" => body["metadata"] = json!({ value: "v" }),
        "metadata-value" => body["metadata"] = json!({"order": value}),
        "tags-value" => body["tags"] = json!([{"name": "kind", "value": value}]),
        "filename" => body["attachments"][0]["filename"] = json!(value),
        "content_type" => body["attachments"][0]["content_type"] = json!(value),
        other => panic!("unknown field {other}"),
    }
    body
}

const FIELDS: [&str; 15] = [
    "subject",
    "from",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "tag",
    "route",
    "header-name",
    "header-value",
    "metadata-key",
    "metadata-value",
    "tags-value",
    "filename",
    "content_type",
];

async fn send(server: &TestServer, body: &Value) -> (u16, Value) {
    json(
        client()
            .post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", &server.project_token)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn project_of(server: &TestServer) -> ProjectId {
    server
        .services
        .auth
        .authenticate_project(Some(&server.project_token), Channel::Api, None)
        .await
        .unwrap()
        .project_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_header_bound_field_refuses_line_breaks_naming_the_field() {
    let server = TestServer::start(Backend::Sqlite).await;
    let inject = "hi\r\nBcc: evil@x.com";
    // One case per field: the field set, the path the 422 names, and a word of its message.
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        ("subject", inject, "subject", "line breaks"),
        ("subject", "hi\0", "subject", "NUL"),
        ("subject", "hi\u{7}there", "subject", "control characters"),
        ("from", "Evil\r\nBcc: evil@x.com", "from", "line breaks"),
        ("to", "Name\n", "to.0", "line breaks"),
        ("cc", "Name\r", "cc.0", "line breaks"),
        ("bcc", "Na\0me", "bcc.0", "NUL"),
        ("reply_to", inject, "reply_to.0", "line breaks"),
        ("tag", "a\r\nb", "tag", "line breaks"),
        (
            "route",
            "default\r\nBcc: evil@x.com",
            "route",
            "line breaks",
        ),
        (
            "header-name",
            "X-A\r\nBcc",
            "headers.X-A\r\nBcc",
            "line breaks",
        ),
        ("header-name", "X A", "headers.X A", "printable ASCII"),
        ("header-value", inject, "headers.X-Campaign", "line breaks"),
        ("header-value", "a\0b", "headers.X-Campaign", "NUL"),
        ("metadata-key", "k\n", "metadata.k\n", "line breaks"),
        ("metadata-value", inject, "metadata.order", "line breaks"),
        ("tags-value", "v\n", "tags.0.value", "Tag values"),
        (
            "filename",
            "a\r\n.pdf",
            "attachments.0.filename",
            "line breaks",
        ),
        (
            "content_type",
            "text/plain\r\nBcc: evil@x.com",
            "attachments.0.content_type",
            "line breaks",
        ),
    ];
    for field in FIELDS {
        assert!(
            cases.iter().any(|c| c.0 == field),
            "no case for the field {field}"
        );
    }
    for (field, value, path, words) in cases {
        let (status, body) = send(&server, &with(field, value)).await;
        assert_eq!(status, 422, "{field} = {value:?} was not refused: {body}");
        let problems = &body["errors"][path];
        assert!(
            problems
                .as_array()
                .is_some_and(|p| p.iter().any(|m| m.as_str().unwrap().contains(words))),
            "{field} = {value:?}: no `{words}` at {path:?} in {body}"
        );
    }
    // The same values without the control characters pass: the refusals above are about them.
    let (status, body) = send(&server, &with("subject", "hi Bcc: evil@x.com")).await;
    assert_eq!(status, 202, "{body}");

    // Idempotency-Key: an HTTP header cannot carry CR, LF or NUL, but can carry a tab.
    let (status, body) = json(
        client()
            .post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", &server.project_token)
            .header("idempotency-key", "a\tb")
            .json(&mail("Hello"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"]["Idempotency-Key"].is_array(), "{body}");
}

/// Strings made to hit the rule: line breaks, NUL, other controls, tabs, Unicode, and the
/// characters of addresses and headers.
fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\r\n".to_owned()),
        Just("\r".to_owned()),
        Just("\n".to_owned()),
        Just("\0".to_owned()),
        Just("\t".to_owned()),
        Just("Bcc: evil@x.com".to_owned()),
        Just(" ".to_owned()),
        "[a-zA-Z0-9_-]{1,8}",
        "[<>@:;,\"]",
        any::<char>().prop_map(String::from),
        "\\PC{1,4}",
    ];
    prop_oneof![
        proptest::collection::vec(pieces, 1..6).prop_map(|p| p.concat()),
        any::<String>(),
    ]
}

#[test]
fn random_values_are_refused_or_stored_without_line_breaks() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestServer::start(Backend::Sqlite));
    let project = runtime.block_on(project_of(&server));
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let accepted = Cell::new(0);
    let refused = Cell::new(0);
    runner
        .run(
            &(proptest::sample::select(FIELDS.to_vec()), hostile()),
            |(field, value)| {
                let (status, body) = runtime.block_on(send(&server, &with(field, &value)));
                match status {
                    422 => {
                        refused.set(refused.get() + 1);
                        Ok(())
                    }
                    202 => {
                        accepted.set(accepted.get() + 1);
                        let id: MessageId = body["message_id"].as_str().unwrap().parse().unwrap();
                        let stored = runtime
                            .block_on(server.services.messages.get(project, id))
                            .unwrap();
                        match line_breaking_field(&stored) {
                            None => Ok(()),
                            Some(bad) => Err(TestCaseError::fail(format!(
                                "{field} = {value:?} was stored with a line break in {bad}"
                            ))),
                        }
                    }
                    other => Err(TestCaseError::fail(format!(
                        "{field} = {value:?} answered {other}: {body}"
                    ))),
                }
            },
        )
        .unwrap();
    // Both outcomes happen, so the property is not vacuous.
    let (accepted, refused) = (accepted.get(), refused.get());
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}
