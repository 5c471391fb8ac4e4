//! Validation of send requests, field by field, so that a 422 names every bad field.
//!
//! The body is read as a JSON value and walked by hand rather than deserialised into a struct:
//! a type error in one field must not hide the problems of the others.
//!
//! Every value that ends up in a header of the delivered message goes through the one header rule
//! of [`lettermint_core::header`] (no CR, LF, NUL or other control characters; header names
//! printable ASCII without `:`), so that no value can ever add a header line or a recipient.

use std::collections::BTreeMap;

use base64::Engine as _;
use lettermint_core::header::{self, UnsafeHeader};
use lettermint_core::message::valid_tag;
use lettermint_core::{Attachment, StructuredEmail, Tag, ValidationErrors};
use serde_json::{Map, Value};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// A send request that passed validation.
#[derive(Debug, Clone)]
pub struct ValidSend {
    /// The email.
    pub email: StructuredEmail,
    /// Route slug, if given.
    pub route: Option<String>,
    /// Tag.
    pub tag: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// When to send.
    pub scheduled_at: Option<OffsetDateTime>,
    /// Envelope recipients: to, cc and bcc addresses.
    pub recipients: Vec<String>,
}

const MAX_SUBJECT: usize = 998;
const MAX_TAGS: usize = 20;

/// Validates one send request; field paths are prefixed with `prefix` (`"0."` in a batch).
pub fn send_request(
    value: &Value,
    prefix: &str,
    errors: &mut ValidationErrors,
) -> Option<ValidSend> {
    let before = errors.fields().values().map(Vec::len).sum::<usize>();
    let Some(object) = value.as_object() else {
        let field = if prefix.is_empty() {
            "body".to_owned()
        } else {
            prefix.trim_end_matches('.').to_owned()
        };
        errors.add(field, "The request must be a JSON object.");
        return None;
    };
    let mut v = Walker {
        object,
        prefix,
        errors,
    };

    let from = v.address("from", true);
    let to = v.address_list("to", true);
    let cc = v.address_list("cc", false);
    let bcc = v.address_list("bcc", false);
    let reply_to = v.address_list("reply_to", false);
    let subject = v
        .string("subject", true, 1, MAX_SUBJECT)
        .and_then(|s| v.header_text("subject", s));
    let html = v.string("html", false, 3, usize::MAX);
    let text = v.string("text", false, 3, usize::MAX);
    if html.is_none()
        && text.is_none()
        && v.is_absent_or_null("html")
        && v.is_absent_or_null("text")
    {
        v.add(
            "html",
            "The html field is required when text is not present.",
        );
        v.add(
            "text",
            "The text field is required when html is not present.",
        );
    }
    let route = v
        .string("route", false, 1, 255)
        .and_then(|s| v.header_text("route", s));
    let headers = v.string_map("headers", true);
    let metadata = v.string_map("metadata", false);
    let tag = v.tag();
    let tags = v.tags();
    let attachments = v.attachments();
    let scheduled_at = v.scheduled_at();

    let after = v.errors.fields().values().map(Vec::len).sum::<usize>();
    if after > before {
        return None;
    }
    let mut headers = headers.unwrap_or_default();
    let preserve = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-lm-preserve-message-id"))
        .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true") || v == "1");
    headers.retain(|k, _| {
        !k.eq_ignore_ascii_case("x-lm-preserve-message-id")
            && (preserve || !k.eq_ignore_ascii_case("message-id"))
    });
    let (to, cc, bcc) = (
        to.unwrap_or_default(),
        cc.unwrap_or_default(),
        bcc.unwrap_or_default(),
    );
    let recipients = to
        .iter()
        .chain(&cc)
        .chain(&bcc)
        .map(|a| bare_address(a).to_owned())
        .collect();
    Some(ValidSend {
        email: StructuredEmail {
            from: from.unwrap_or_default(),
            to,
            cc,
            bcc,
            reply_to: reply_to.unwrap_or_default(),
            subject: subject.unwrap_or_default(),
            html,
            text,
            headers,
            tags: tags.unwrap_or_default(),
            attachments: attachments.unwrap_or_default(),
        },
        route,
        tag,
        metadata: metadata.unwrap_or_default(),
        scheduled_at,
        recipients,
    })
}

/// The address part of `addr` or `Name <addr>`.
pub fn bare_address(value: &str) -> &str {
    let value = value.trim();
    match (value.rfind('<'), value.ends_with('>')) {
        (Some(open), true) => value[open + 1..value.len() - 1].trim(),
        _ => value,
    }
}

fn valid_address(value: &str) -> bool {
    let value = value.trim();
    let addr = bare_address(value);
    if let (Some(open), true) = (value.rfind('<'), value.ends_with('>')) {
        let name = value[..open].trim();
        if name.contains(['<', '>']) {
            return false;
        }
    } else if value.contains(['<', '>']) {
        return false;
    }
    email_address::EmailAddress::is_valid(addr)
}

fn word(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct Walker<'a> {
    object: &'a Map<String, Value>,
    prefix: &'a str,
    errors: &'a mut ValidationErrors,
}

impl Walker<'_> {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.errors.add(format!("{}{field}", self.prefix), message);
    }

    fn is_absent_or_null(&self, field: &str) -> bool {
        self.object.get(field).is_none_or(Value::is_null)
    }

    fn label(field: &str) -> String {
        field.replace('_', " ")
    }

    /// Records why `field` cannot go into a header.
    fn unsafe_header(&mut self, field: &str, problem: UnsafeHeader) {
        let label = Self::label(field);
        self.add(field, format!("The {label} field {}.", problem.problem()));
    }

    /// `value`, if it is safe as header text (see [`header::check_text`]); else the field's error.
    fn header_text(&mut self, field: &str, value: String) -> Option<String> {
        match header::check_text(&value) {
            Ok(()) => Some(value),
            Err(problem) => {
                self.unsafe_header(field, problem);
                None
            }
        }
    }

    fn string(&mut self, field: &str, required: bool, min: usize, max: usize) -> Option<String> {
        match self.object.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.add(
                        field,
                        format!("The {} field is required.", Self::label(field)),
                    );
                }
                None
            }
            Some(Value::String(s)) => {
                let chars = s.chars().count();
                if required && s.trim().is_empty() {
                    self.add(
                        field,
                        format!("The {} field is required.", Self::label(field)),
                    );
                    None
                } else if chars < min {
                    self.add(
                        field,
                        format!(
                            "The {} field must be at least {min} characters.",
                            Self::label(field)
                        ),
                    );
                    None
                } else if chars > max {
                    self.add(
                        field,
                        format!(
                            "The {} field must not be greater than {max} characters.",
                            Self::label(field)
                        ),
                    );
                    None
                } else {
                    Some(s.clone())
                }
            }
            Some(_) => {
                self.add(
                    field,
                    format!("The {} field must be a string.", Self::label(field)),
                );
                None
            }
        }
    }

    fn address(&mut self, field: &str, required: bool) -> Option<String> {
        let value = self.string(field, required, 1, 998)?;
        let value = self.header_text(field, value)?;
        if valid_address(&value) {
            Some(value.trim().to_owned())
        } else {
            self.add(
                field,
                format!(
                    "The {} field must be a valid email address.",
                    Self::label(field)
                ),
            );
            None
        }
    }

    fn address_list(&mut self, field: &str, required: bool) -> Option<Vec<String>> {
        let items: Vec<Value> = match self.object.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.add(
                        field,
                        format!("The {} field is required.", Self::label(field)),
                    );
                }
                return None;
            }
            // A single address is accepted where a list is expected.
            Some(Value::String(s)) => vec![Value::String(s.clone())],
            Some(Value::Array(items)) => items.clone(),
            Some(_) => {
                self.add(
                    field,
                    format!(
                        "The {} field must be an array of email addresses.",
                        Self::label(field)
                    ),
                );
                return None;
            }
        };
        if required && items.is_empty() {
            self.add(
                field,
                format!(
                    "The {} field must have at least 1 item.",
                    Self::label(field)
                ),
            );
            return None;
        }
        if items.len() > 50 {
            self.add(
                field,
                format!(
                    "The {} field must not have more than 50 items.",
                    Self::label(field)
                ),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) if header::check_text(s).is_err() => {
                    ok = false;
                    if let Err(problem) = header::check_text(s) {
                        self.unsafe_header(&format!("{field}.{i}"), problem);
                    }
                }
                Some(s) if valid_address(s) => out.push(s.trim().to_owned()),
                _ => {
                    ok = false;
                    self.add(
                        &format!("{field}.{i}"),
                        format!("The {field}.{i} field must be a valid email address."),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    fn string_map(&mut self, field: &str, header_names: bool) -> Option<BTreeMap<String, String>> {
        let map = match self.object.get(field) {
            None | Some(Value::Null) => return None,
            Some(Value::Object(map)) => map,
            Some(_) => {
                self.add(
                    field,
                    format!("The {field} field must be an object of strings."),
                );
                return None;
            }
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in map {
            let path = format!("{field}.{key}");
            if header_names && let Err(problem) = header::check_name(key) {
                ok = false;
                self.add(&path, format!("Header names {}.", problem.problem()));
                continue;
            }
            if !header_names {
                if key.is_empty() || key.chars().count() > 255 {
                    ok = false;
                    self.add(&path, "Metadata keys must be 1 to 255 characters.");
                    continue;
                }
                if let Err(problem) = header::check_text(key) {
                    ok = false;
                    self.add(&path, format!("Metadata keys {}.", problem.problem()));
                    continue;
                }
            }
            let kind = if header_names { "Header" } else { "Metadata" };
            match value {
                Value::String(s) if header::check_text(s).is_err() => {
                    ok = false;
                    if let Err(problem) = header::check_text(s) {
                        self.add(&path, format!("{kind} values {}.", problem.problem()));
                    }
                }
                Value::String(s) => {
                    out.insert(key.clone(), s.clone());
                }
                _ => {
                    ok = false;
                    self.add(&path, format!("The {path} field must be a string."));
                }
            }
        }
        ok.then_some(out)
    }

    fn tag(&mut self) -> Option<String> {
        let tag = self.string("tag", false, 1, 255)?;
        let tag = self.header_text("tag", tag)?;
        if valid_tag(&tag) {
            Some(tag)
        } else {
            self.add("tag", "The tag field format is invalid: letters, digits, `_` and `-`, in words separated by single spaces.");
            None
        }
    }

    fn tags(&mut self) -> Option<Vec<Tag>> {
        let items = match self.object.get("tags") {
            None | Some(Value::Null) => return None,
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.add("tags", "The tags field must be an array.");
                return None;
            }
        };
        if items.len() > MAX_TAGS {
            self.add(
                "tags",
                format!("The tags field must not have more than {MAX_TAGS} items."),
            );
            return None;
        }
        let mut out: Vec<Tag> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let name = item.get("name").and_then(Value::as_str);
            let value = item.get("value").and_then(Value::as_str);
            if !name.is_some_and(|n| word(n, 32)) {
                ok = false;
                self.add(
                    &format!("tags.{i}.name"),
                    "Tag names are 1 to 32 letters, digits, `_` or `-`.",
                );
            }
            if !value.is_some_and(|v| word(v, 64)) {
                ok = false;
                self.add(
                    &format!("tags.{i}.value"),
                    "Tag values are 1 to 64 letters, digits, `_` or `-`.",
                );
            }
            if let (Some(name), Some(value)) = (name, value) {
                if out.iter().any(|t| t.name == name) {
                    ok = false;
                    self.add(&format!("tags.{i}.name"), "Tag names must be unique.");
                }
                out.push(Tag {
                    name: name.to_owned(),
                    value: value.to_owned(),
                });
            }
        }
        ok.then_some(out)
    }

    fn attachments(&mut self) -> Option<Vec<Attachment>> {
        let items = match self.object.get("attachments") {
            None | Some(Value::Null) => return None,
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.add("attachments", "The attachments field must be an array.");
                return None;
            }
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let path = |f: &str| format!("attachments.{i}.{f}");
            let Some(item) = item.as_object() else {
                ok = false;
                self.add(
                    &format!("attachments.{i}"),
                    "Each attachment must be an object.",
                );
                continue;
            };
            let filename = item
                .get("filename")
                .and_then(Value::as_str)
                .filter(|f| !f.trim().is_empty() && f.chars().count() <= 255);
            let filename = match filename.map(|f| (f, header::check_text(f))) {
                Some((f, Ok(()))) => Some(f),
                Some((_, Err(problem))) => {
                    ok = false;
                    self.add(
                        &path("filename"),
                        format!("The filename field {}.", problem.problem()),
                    );
                    None
                }
                None => {
                    ok = false;
                    self.add(
                        &path("filename"),
                        "The filename field is required (at most 255 characters).",
                    );
                    None
                }
            };
            let content = item.get("content").and_then(Value::as_str);
            let decodes = content.is_some_and(|c| {
                let compact: String = c.chars().filter(|ch| !ch.is_ascii_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact.as_bytes())
                    .is_ok()
            });
            if !decodes {
                ok = false;
                self.add(
                    &path("content"),
                    "The content field is required and must be base64.",
                );
            }
            let content_type = match item.get("content_type") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.chars().count() <= 255 => match header::check_text(s) {
                    Ok(()) => Some(s.clone()),
                    Err(problem) => {
                        ok = false;
                        self.add(
                            &path("content_type"),
                            format!("The content type {}.", problem.problem()),
                        );
                        None
                    }
                },
                Some(_) => {
                    ok = false;
                    self.add(
                        &path("content_type"),
                        "The content type must be a string of at most 255 characters.",
                    );
                    None
                }
            };
            let content_id = match item.get("content_id") {
                None | Some(Value::Null) => None,
                Some(Value::String(s))
                    if !s.is_empty()
                        && s.len() <= 255
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b)) =>
                {
                    Some(if s.contains('@') {
                        s.clone()
                    } else {
                        format!("{s}@lm")
                    })
                }
                Some(_) => {
                    ok = false;
                    self.add(&path("content_id"), "The content id may hold letters, digits, `.`, `_`, `@` and `-` (at most 255).");
                    None
                }
            };
            if let (Some(filename), Some(content)) = (filename, content) {
                out.push(Attachment {
                    filename: filename.to_owned(),
                    content: content.to_owned(),
                    content_type,
                    content_id,
                });
            }
        }
        ok.then_some(out)
    }

    fn scheduled_at(&mut self) -> Option<OffsetDateTime> {
        let text = match self.object.get("scheduled_at") {
            None | Some(Value::Null) => return None,
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                self.add(
                    "scheduled_at",
                    "The scheduled at field must be an ISO 8601 date.",
                );
                return None;
            }
        };
        match parse_instant(&text) {
            Some(at) => Some(at),
            None => {
                self.add(
                    "scheduled_at",
                    "The scheduled at field must be an ISO 8601 date (a time without zone is UTC).",
                );
                None
            }
        }
    }
}

/// Parses an ISO 8601 instant; without a zone it is UTC.
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .ok()
        .or_else(|| {
            PrimitiveDateTime::parse(text, &Iso8601::DEFAULT)
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|| {
            let format =
                time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
            PrimitiveDateTime::parse(text, format)
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_of(value: Value) -> Vec<String> {
        let mut errors = ValidationErrors::default();
        let result = send_request(&value, "", &mut errors);
        assert_eq!(result.is_none(), !errors.is_empty());
        errors.fields().keys().cloned().collect()
    }

    #[test]
    fn a_complete_request_passes_and_is_normalised() {
        let mut errors = ValidationErrors::default();
        let ok = send_request(
            &json!({
                "from": "Shop <shop@example.com>",
                "to": ["a@example.com"],
                "cc": "c@example.com",
                "subject": "Hello",
                "text": "Hi there",
                "headers": {"X-Campaign": "spring", "Message-ID": "<x@y>"},
                "metadata": {"order": "42"},
                "tag": "welcome mail",
                "tags": [{"name": "kind", "value": "welcome"}],
                "attachments": [{"filename": "a.txt", "content": "aGVsbG8=", "content_id": "logo"}],
                "scheduled_at": "2030-01-01T10:00:00"
            }),
            "",
            &mut errors,
        )
        .unwrap();
        assert!(errors.is_empty());
        assert_eq!(ok.recipients, vec!["a@example.com", "c@example.com"]);
        assert!(
            !ok.email.headers.contains_key("Message-ID"),
            "dropped without X-LM-Preserve-Message-ID"
        );
        assert_eq!(
            ok.email.attachments[0].content_id.as_deref(),
            Some("logo@lm")
        );
        assert_eq!(
            ok.scheduled_at,
            Some(time::macros::datetime!(2030-01-01 10:00 UTC))
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let fields = errors_of(json!({
            "from": "not an address",
            "to": ["ok@example.com", "bad"],
            "subject": "x".repeat(999),
            "html": "hi",
            "headers": {"Bad:Name": "v", "X-Inject": "a\r\nBcc: evil@example.com"},
            "tag": "two  spaces",
            "tags": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}, {"name": "b c", "value": "x"}],
            "attachments": [{"filename": "f", "content": "%%%"}, {"content": "aGk=", "content_id": "a b"}],
            "route": 5,
            "scheduled_at": "tomorrow",
            "metadata": {"k": 1}
        }));
        for expected in [
            "from",
            "to.1",
            "subject",
            "html",
            "headers.Bad:Name",
            "headers.X-Inject",
            "tag",
            "tags.1.name",
            "tags.2.name",
            "attachments.0.content",
            "attachments.1.filename",
            "attachments.1.content_id",
            "route",
            "scheduled_at",
            "metadata.k",
        ] {
            assert!(
                fields.contains(&expected.to_owned()),
                "{expected} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn required_fields_and_body_presence() {
        let fields = errors_of(json!({}));
        assert_eq!(fields, ["from", "html", "subject", "text", "to"]);
        assert_eq!(errors_of(json!([])), ["body"]);
        assert_eq!(
            errors_of(json!({"from": "a@example.com", "to": [], "subject": "s", "text": "abc"})),
            ["to"]
        );
        let mut errors = ValidationErrors::default();
        assert!(send_request(&json!("x"), "3.", &mut errors).is_none());
        assert!(errors.fields().contains_key("3"));
    }

    #[test]
    fn message_id_is_kept_when_asked() {
        let mut errors = ValidationErrors::default();
        let ok = send_request(
            &json!({"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "abc",
                    "headers": {"Message-ID": "<x@y>", "X-LM-Preserve-Message-ID": "true"}}),
            "",
            &mut errors,
        )
        .unwrap();
        assert_eq!(
            ok.email.headers.get("Message-ID").map(String::as_str),
            Some("<x@y>")
        );
        assert!(!ok.email.headers.contains_key("X-LM-Preserve-Message-ID"));
    }

    #[test]
    fn instants_without_zone_are_utc() {
        assert_eq!(
            parse_instant("2030-01-01T10:00:00Z"),
            parse_instant("2030-01-01T10:00:00")
        );
        assert_eq!(
            parse_instant("2030-01-01T12:00:00+02:00"),
            Some(time::macros::datetime!(2030-01-01 10:00 UTC))
        );
        assert!(parse_instant("soon").is_none());
    }
}
