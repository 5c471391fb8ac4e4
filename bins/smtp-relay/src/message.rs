//! What the relay reads from a submitted message: the headers that instruct it (removed from the
//! stored copy) and the ones it records.

use std::collections::BTreeMap;

use lettermint_core::header;
use lettermint_core::message::{valid_idempotency_key, valid_tag};

/// Header selecting the route.
pub const ROUTE_HEADER: &str = "X-Lettermint-Route";
/// Header carrying the tag.
pub const TAG_HEADER: &str = "X-LM-Tag";
/// Prefix of metadata headers; the rest of the name is the key.
pub const METADATA_PREFIX: &str = "X-LM-Metadata-";
/// Header carrying the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Longest route slug, in characters.
pub const MAX_ROUTE_CHARS: usize = 255;
/// Longest header name echoed in a reply; a longer one is cut.
const MAX_ECHOED_NAME: usize = 64;

/// A submitted message, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The route slug, if the message names one.
    pub route: Option<String>,
    /// The tag.
    pub tag: Option<String>,
    /// The idempotency key.
    pub idempotency_key: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// The subject.
    pub subject: Option<String>,
    /// The message as received, without the instruction headers.
    pub raw: Vec<u8>,
}

/// Reads `body`; `None` when it is not a message with a `From` address.
#[must_use]
pub fn parse(body: Vec<u8>) -> Option<Parsed> {
    let (subject, has_from) = {
        let message = mail_parser::MessageParser::default().parse(&body)?;
        let has_from = message
            .from()
            .and_then(|from| from.first())
            .and_then(|addr| addr.address())
            .is_some_and(|a| !a.is_empty());
        (message.subject().map(str::to_owned), has_from)
    };
    if !has_from {
        return None;
    }
    let mut route = None;
    let mut tag = None;
    let mut idempotency_key = None;
    let mut metadata = BTreeMap::new();
    let mut raw = Vec::with_capacity(body.len());
    let header_end = header_section_end(&body);
    for field in fields(&body[..header_end]) {
        let Some(colon) = field.iter().position(|b| *b == b':') else {
            raw.extend_from_slice(field);
            continue;
        };
        let name = String::from_utf8_lossy(&field[..colon]).trim().to_owned();
        let value = || unfold(&field[colon + 1..]);
        if name.eq_ignore_ascii_case(ROUTE_HEADER) {
            route = Some(value());
        } else if name.eq_ignore_ascii_case(TAG_HEADER) {
            tag = Some(value());
        } else if name.eq_ignore_ascii_case(IDEMPOTENCY_HEADER) {
            idempotency_key = Some(value());
        } else if name.len() > METADATA_PREFIX.len()
            && name.is_char_boundary(METADATA_PREFIX.len())
            && name[..METADATA_PREFIX.len()].eq_ignore_ascii_case(METADATA_PREFIX)
        {
            metadata.insert(name[METADATA_PREFIX.len()..].to_owned(), value());
        } else {
            raw.extend_from_slice(field);
        }
    }
    raw.extend_from_slice(&body[header_end..]);
    Some(Parsed {
        route: route.filter(|r| !r.is_empty()),
        tag: tag.filter(|t| !t.is_empty()),
        idempotency_key,
        metadata,
        subject,
        raw,
    })
}

/// A header the relay refuses, and why: the reply names the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeader {
    /// The header's name (cut to 64 characters; never anything but printable ASCII).
    pub header: String,
    /// What is wrong with it: "must not contain …".
    pub problem: &'static str,
}

impl Parsed {
    /// Applies the Sending API's rules to what the message's headers ask for: the route, tag,
    /// metadata and idempotency key, and the (decoded) subject, may not hold anything that could
    /// break a header line ([`lettermint_core::header`]); the tag and key have their formats.
    pub fn check(&self) -> Result<(), InvalidHeader> {
        let refuse = |header: &str, problem: &'static str| InvalidHeader {
            header: header.to_owned(),
            problem,
        };
        let text = |name: &str, value: &str| {
            header::check_text(value).map_err(|problem| refuse(name, problem.problem()))
        };
        if let Some(route) = &self.route {
            text(ROUTE_HEADER, route)?;
            if route.chars().count() > MAX_ROUTE_CHARS {
                return Err(refuse(
                    ROUTE_HEADER,
                    "must not be longer than 255 characters",
                ));
            }
        }
        if let Some(tag) = &self.tag {
            text(TAG_HEADER, tag)?;
            if !valid_tag(tag) {
                return Err(refuse(
                    TAG_HEADER,
                    "must be words of letters, digits, `_` and `-` separated by single spaces \
                     (at most 255 characters)",
                ));
            }
        }
        for (key, value) in &self.metadata {
            let name = format!("{METADATA_PREFIX}{key}");
            if let Err(problem) = header::check_name(&name) {
                // The name itself is unprintable: name the prefix only.
                return Err(refuse(METADATA_PREFIX, problem.problem()));
            }
            let name: String = name.chars().take(MAX_ECHOED_NAME).collect();
            text(&name, value)?;
        }
        if let Some(key) = &self.idempotency_key {
            text(IDEMPOTENCY_HEADER, key)?;
            if !valid_idempotency_key(key) {
                return Err(refuse(
                    IDEMPOTENCY_HEADER,
                    "must be 1 to 255 characters without control characters",
                ));
            }
        }
        if let Some(subject) = &self.subject {
            // The subject as decoded: an encoded word (RFC 2047) can hide a line break.
            text("Subject", subject)?;
        }
        Ok(())
    }
}

/// Where the header section ends (the start of the blank line, or the end of the message).
fn header_section_end(body: &[u8]) -> usize {
    let mut start = 0;
    while start < body.len() {
        let end = body[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(body.len(), |p| start + p + 1);
        let line = &body[start..end];
        if line == b"\r\n" || line == b"\n" {
            return start;
        }
        start = end;
    }
    body.len()
}

/// Splits a header section into fields, each with its continuation lines and line endings.
fn fields(headers: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut field_start = 0;
    let mut start = 0;
    while start < headers.len() {
        let end = headers[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(headers.len(), |p| start + p + 1);
        let continuation = matches!(headers[start], b' ' | b'\t');
        if !continuation && start > field_start {
            out.push(&headers[field_start..start]);
            field_start = start;
        }
        start = end;
    }
    if field_start < headers.len() {
        out.push(&headers[field_start..]);
    }
    out
}

fn unfold(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_headers_are_read_and_removed() {
        let body = b"From: A <a@example.com>\r\nX-LM-Tag: welcome\r\nIdempotency-Key: k1\r\nSubject: Hi\r\nX-Lettermint-Route: broadcast\r\nx-lm-metadata-user: 42\r\n  and more\r\nTo: b@example.com\r\n\r\nX-LM-Tag: body stays\r\n";
        let parsed = parse(body.to_vec()).unwrap();
        assert_eq!(parsed.route.as_deref(), Some("broadcast"));
        assert_eq!(parsed.tag.as_deref(), Some("welcome"));
        assert_eq!(parsed.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(parsed.subject.as_deref(), Some("Hi"));
        assert_eq!(
            parsed.metadata.get("user").map(String::as_str),
            Some("42 and more")
        );
        assert_eq!(
            parsed.raw,
            b"From: A <a@example.com>\r\nSubject: Hi\r\nTo: b@example.com\r\n\r\nX-LM-Tag: body stays\r\n"
        );
    }

    #[test]
    fn tags_follow_the_sending_api_rules() {
        assert!(valid_tag("welcome"));
        assert!(valid_tag("new user_2-b"));
        assert!(!valid_tag("two  spaces"));
        assert!(!valid_tag(" leading"));
        assert!(!valid_tag("semi;colon"));
        assert!(!valid_tag(&"a".repeat(256)));
    }

    fn refusal(headers: &str) -> Option<(String, &'static str)> {
        let body = format!("From: a@example.com\r\n{headers}\r\nbody\r\n");
        let parsed = parse(body.into_bytes()).expect("a message");
        parsed.check().err().map(|e| (e.header, e.problem))
    }

    #[test]
    fn instruction_headers_and_the_subject_follow_the_header_rule() {
        assert_eq!(
            refusal("X-LM-Tag: ok\r\nX-LM-Metadata-k: v\r\nSubject: Hi\tthere\r\n"),
            None
        );
        for (headers, header) in [
            ("X-LM-Tag: a\0b\r\n", "X-LM-Tag"),
            ("X-LM-Tag: a;b\r\n", "X-LM-Tag"),
            ("X-Lettermint-Route: a\x07b\r\n", "X-Lettermint-Route"),
            ("X-LM-Metadata-user: 4\x002\r\n", "X-LM-Metadata-user"),
            ("X-LM-Metadata-us\x01er: 42\r\n", "X-LM-Metadata-"),
            ("X-LM-Metadata-a b: 42\r\n", "X-LM-Metadata-"),
            ("Idempotency-Key: k\0\r\n", "Idempotency-Key"),
            // "hi\r\nBcc: evil@example.com", as an encoded word.
            (
                "Subject: =?utf-8?b?aGkNCkJjYzogZXZpbEBleGFtcGxlLmNvbQ==?=\r\n",
                "Subject",
            ),
        ] {
            let (name, _) = refusal(headers).unwrap_or_else(|| panic!("{headers:?} accepted"));
            assert_eq!(name, header, "{headers:?}");
        }
    }

    #[test]
    fn a_message_without_from_is_refused() {
        assert_eq!(parse(b"Subject: Hi\r\n\r\nbody\r\n".to_vec()), None);
        assert_eq!(parse(Vec::new()), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn header_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("From: a@example.com\r\n".to_owned()),
            Just("X-LM-Tag: t\r\n".to_owned()),
            Just("x-lettermint-route: r\r\n".to_owned()),
            Just("X-LM-Metadata-k: v\r\n".to_owned()),
            Just("Idempotency-Key: k\r\n".to_owned()),
            Just(" folded\r\n".to_owned()),
            "[A-Za-z-]{1,12}: [ -~]{0,20}\r\n",
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(body);
        }

        #[test]
        fn instruction_headers_never_reach_the_stored_message(
            headers in proptest::collection::vec(header_line(), 0..12),
            text in "[ -~]{0,40}",
        ) {
            let body = format!("From: me@example.com\r\n{}\r\n{text}\r\n", headers.concat());
            if let Some(parsed) = parse(body.clone().into_bytes()) {
                let raw = String::from_utf8(parsed.raw).unwrap();
                let (head, tail) = raw.split_once("\r\n\r\n").unwrap();
                prop_assert_eq!(tail, format!("{text}\r\n"));
                for line in head.split("\r\n") {
                    let lower = line.to_ascii_lowercase();
                    prop_assert!(!lower.starts_with("x-lm-tag:"), "{}", line);
                    prop_assert!(!lower.starts_with("x-lm-metadata-"), "{}", line);
                    prop_assert!(!lower.starts_with("x-lettermint-route:"), "{}", line);
                    prop_assert!(!lower.starts_with("idempotency-key:"), "{}", line);
                }
            }
        }
    }
}
