//! The Sending API's request validator on arbitrary JSON.
//!
//! An input that parses as JSON is validated as it is; any other input is read as a recipe for
//! a send request (field names the validator knows, values built from hostile fragments), so
//! that most inputs reach the field checks. Invariants: no panic; a request is refused exactly
//! when errors were recorded; an accepted request has no header-bound value that fails the
//! header rule, so its stored message can never gain a header line; and the message delivery
//! builds from it, parsed back, has no header or recipient the request did not name.

use api_server::validate::{ValidSend, send_request};
use lettermint_core::header::{self, line_breaking_field};
use lettermint_core::{
    Channel, Message, MessageContent, MessageId, MessageStatus, ProjectId, RouteId, TokenId,
    ValidationErrors,
};
use serde_json::{Map, Value};

use super::{Outcome, Rng, Target, hash};

/// `cargo xtask fuzz send`.
#[derive(Debug)]
pub struct SendTarget;

impl Target for SendTarget {
    fn name(&self) -> &'static str {
        "send"
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        &[
            b"\\r\\n",
            b"\\u0000",
            b"\\n",
            b"\\t",
            b"\\u0085",
            b"\"subject\":",
            b"\"from\":",
            b"\"to\":",
            b"\"headers\":{",
            b"\"metadata\":{",
            b"\"attachments\":[{",
            b"\"filename\":",
            b"\"content_type\":",
            b"\"tag\":",
            b"\"route\":",
            b"\"reply_to\":",
            b"Bcc: evil@x.com",
            b" <a@example.com>",
            b"null",
            b"[]",
            b"{}",
            b",",
        ]
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let value = serde_json::from_slice::<Value>(input).unwrap_or_else(|_| recipe(input));
        // A batch is validated item by item, as the handler does.
        let items: Vec<(String, &Value)> = match &value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{i}."), v))
                .collect(),
            other => vec![(String::new(), other)],
        };
        let mut signature = Vec::new();
        for (prefix, item) in items {
            let mut errors = ValidationErrors::default();
            let result = send_request(item, &prefix, &mut errors);
            if result.is_some() != errors.is_empty() {
                return Err(format!(
                    "accepted = {}, but errors = {:?}",
                    result.is_some(),
                    errors.fields()
                ));
            }
            match result {
                Some(valid) => {
                    check_accepted(&valid)?;
                    signature.push("ok".to_owned());
                }
                None => signature.extend(errors.fields().keys().map(|k| {
                    // The kind of field, without indexes or user-chosen keys.
                    let k = k.strip_prefix(&prefix).unwrap_or(k);
                    k.split('.').next().unwrap_or_default().to_owned()
                })),
            }
        }
        signature.sort();
        signature.dedup();
        Ok(hash(signature.join(",").as_bytes()))
    }
}

/// Every header-bound value of an accepted request passes the header rule, and the message the
/// handler would store from it has no value that could start a header line.
fn check_accepted(valid: &ValidSend) -> Result<(), String> {
    let email = &valid.email;
    let mut texts: Vec<(String, &str)> = vec![
        ("from".into(), &email.from),
        ("subject".into(), &email.subject),
    ];
    for (name, list) in [
        ("to", &email.to),
        ("cc", &email.cc),
        ("bcc", &email.bcc),
        ("reply_to", &email.reply_to),
    ] {
        texts.extend(list.iter().map(|a| (name.to_owned(), a.as_str())));
    }
    for (name, value) in &email.headers {
        header::check_name(name).map_err(|e| format!("header name {name:?}: {e}"))?;
        texts.push((format!("headers.{name}"), value));
    }
    for (key, value) in &valid.metadata {
        texts.push((format!("metadata key {key:?}"), key));
        texts.push((format!("metadata.{key}"), value));
    }
    for a in &email.attachments {
        texts.push(("attachment filename".into(), &a.filename));
        if let Some(t) = &a.content_type {
            texts.push(("attachment content type".into(), t));
        }
    }
    if let Some(tag) = &valid.tag {
        texts.push(("tag".into(), tag));
    }
    if let Some(route) = &valid.route {
        texts.push(("route".into(), route));
    }
    for (field, value) in texts {
        header::check_text(value).map_err(|e| format!("accepted {field} = {value:?}: {e}"))?;
    }
    let message = Message {
        id: MessageId::new(),
        project_id: ProjectId::new(),
        route_id: RouteId::new(),
        token_id: TokenId::new(),
        via: Channel::Api,
        status: MessageStatus::Pending,
        envelope_from: api_server::validate::bare_address(&email.from).to_owned(),
        envelope_to: valid.recipients.clone(),
        subject: Some(email.subject.clone()),
        tag: valid.tag.clone(),
        metadata: valid.metadata.clone(),
        idempotency_key: None,
        scheduled_at: valid.scheduled_at,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        content: MessageContent::Structured(Box::new(email.clone())),
        delivery: Default::default(),
    };
    if let Some(field) = line_breaking_field(&message) {
        return Err(format!("the stored message would break a line in {field}"));
    }
    check_built(&message, email)
}

/// The message as delivery builds it, read back with mail-parser: it parses, every header is
/// one the builder adds or the request named, its To and Cc addresses are the request's, and
/// its envelope is the stored recipients. A message the builder refuses fails at delivery
/// instead of going out, which is safe; a panic is not.
fn check_built(message: &Message, email: &lettermint_core::StructuredEmail) -> Result<(), String> {
    let Ok(bytes) = lettermint_delivery::mime::render(message) else {
        return Ok(());
    };
    let parsed = mail_parser::MessageParser::default()
        .parse(&bytes)
        .ok_or("a built message does not parse")?;
    let mut allowed: Vec<String> = [
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
    allowed.extend(email.headers.keys().map(|k| k.to_ascii_lowercase()));
    for h in parsed.headers() {
        let name = h.name().to_ascii_lowercase();
        if !allowed.contains(&name) {
            return Err(format!("the built message gained a header: {name}"));
        }
    }
    let named: Vec<String> = email
        .to
        .iter()
        .chain(&email.cc)
        .map(|a| api_server::validate::bare_address(a).to_ascii_lowercase())
        .collect();
    for addr in parsed
        .to()
        .into_iter()
        .chain(parsed.cc())
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address())
    {
        if !named.contains(&addr.to_ascii_lowercase()) {
            return Err(format!("the built message gained a recipient: {addr}"));
        }
    }
    if parsed.bcc().is_some() {
        return Err("the built message has a Bcc header".into());
    }
    let envelope = lettermint_delivery::mime::envelope(message)
        .map_err(|e| format!("no envelope for an accepted message: {e}"))?;
    if envelope.to().len() != message.envelope_to.len() {
        return Err("the envelope lost or gained a recipient".into());
    }
    Ok(())
}

const FIELDS: [&str; 17] = [
    "from",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "html",
    "text",
    "route",
    "headers",
    "metadata",
    "tag",
    "tags",
    "attachments",
    "scheduled_at",
    "name",
    "X-LM-Preserve-Message-ID",
];

const FRAGMENTS: [&str; 24] = [
    "a@example.com",
    "Shop <shop@example.com>",
    "Name\r\n <x@example.com>",
    "\r\n",
    "\r",
    "\n",
    "\0",
    "\t",
    "\u{7}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "Bcc: evil@x.com",
    "é🚀",
    " ",
    ":",
    "<",
    ">",
    "@",
    "hello",
    "aGVsbG8=",
    "text/plain",
    "welcome mail",
    "2030-01-01T10:00:00",
];

/// A send request built from `input` as a stream of choices.
fn recipe(input: &[u8]) -> Value {
    let mut choices = Choices::new(input);
    let mut object = Map::new();
    let fields = 1 + choices.below(8);
    for _ in 0..fields {
        let name = FIELDS[choices.below(FIELDS.len())];
        object.insert(name.to_owned(), value(&mut choices, 2));
    }
    // Mostly a complete request, so that the field under test is not the only error.
    if choices.below(4) != 0 {
        for (k, v) in [
            ("from", "a@example.com"),
            ("to", "b@example.com"),
            ("subject", "Hi"),
            ("text", "Hello there"),
        ] {
            object
                .entry(k)
                .or_insert_with(|| Value::String(v.to_owned()));
        }
    }
    Value::Object(object)
}

fn value(choices: &mut Choices<'_>, depth: usize) -> Value {
    match choices.below(if depth == 0 { 4 } else { 7 }) {
        0 | 1 => Value::String(text(choices)),
        2 => Value::Null,
        3 => Value::from(choices.below(1000) as i64 - 10),
        4 => Value::Array(
            (0..choices.below(4))
                .map(|_| value(choices, depth - 1))
                .collect(),
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..choices.below(4) {
                let key = if choices.below(2) == 0 {
                    [
                        "filename",
                        "content",
                        "content_type",
                        "content_id",
                        "name",
                        "value",
                        "X-Campaign",
                    ][choices.below(7)]
                    .to_owned()
                } else {
                    text(choices)
                };
                map.insert(key, value(choices, depth - 1));
            }
            Value::Object(map)
        }
    }
}

fn text(choices: &mut Choices<'_>) -> String {
    let mut out = String::new();
    for _ in 0..choices.below(5) {
        if choices.below(5) == 0 {
            out.push(char::from_u32(choices.below(0x11_0000) as u32).unwrap_or('\u{fffd}'));
        } else {
            out.push_str(FRAGMENTS[choices.below(FRAGMENTS.len())]);
        }
    }
    out
}

/// The input's bytes as choices; once they run out, a generator seeded by the input.
struct Choices<'a> {
    bytes: &'a [u8],
    rng: Rng,
}

impl<'a> Choices<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            rng: Rng(hash(bytes)),
        }
    }

    fn below(&mut self, n: usize) -> usize {
        match self.bytes.split_first() {
            Some((first, rest)) if n <= 256 => {
                self.bytes = rest;
                usize::from(*first) % n.max(1)
            }
            _ => self.rng.below(n),
        }
    }
}
