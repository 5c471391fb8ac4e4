//! The one rule for values that end up in a message header.
//!
//! A message is delivered as a header section of lines ended by CRLF. A value that carries a line
//! break (or a NUL, which many mail programs read as the end of a string) could end its header
//! early and start another one: `"subject": "hi\r\nBcc: evil@example.com"` would add a recipient.
//! So every value that a front door accepts for a header (subject, addresses and their display
//! names, custom headers, tag, route, metadata, idempotency key, attachment file names and content
//! types) is checked here, by the Sending API and by the SMTP relay alike.
//!
//! - [`check_text`]: unstructured header text (RFC 5322 §2.2.1 and §3.2.5, with RFC 6532 UTF-8):
//!   no CR, LF or NUL, and no other control character except the horizontal tab.
//! - [`check_name`]: a header field name (RFC 5322 §2.2 and §3.6.8): one or more printable ASCII
//!   characters (33 to 126) other than `:`.

use std::fmt;

use crate::message::{Message, MessageContent};

/// Why a value cannot go into a header. The messages read as the end of "The `field` field …".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeHeader {
    /// It contains CR or LF.
    LineBreak,
    /// It contains NUL.
    Nul,
    /// It contains another control character (C0 other than tab, DEL, or C1).
    Control,
    /// A header name that is empty.
    EmptyName,
    /// A header name with a character outside printable ASCII, or a `:`.
    NameCharacter,
}

impl UnsafeHeader {
    /// What is wrong, as a sentence fragment: "must not contain line breaks (CR or LF)".
    #[must_use]
    pub const fn problem(self) -> &'static str {
        match self {
            UnsafeHeader::LineBreak => "must not contain line breaks (CR or LF)",
            UnsafeHeader::Nul => "must not contain NUL characters",
            UnsafeHeader::Control => "must not contain control characters (a tab is allowed)",
            UnsafeHeader::EmptyName => "must not be empty",
            UnsafeHeader::NameCharacter => {
                "must be printable ASCII (33 to 126) without spaces or `:`"
            }
        }
    }
}

impl fmt::Display for UnsafeHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.problem())
    }
}

impl std::error::Error for UnsafeHeader {}

/// Checks unstructured header text: no CR, LF or NUL, and no other control character except the
/// horizontal tab. Any other Unicode character is allowed (RFC 6532).
pub fn check_text(value: &str) -> Result<(), UnsafeHeader> {
    // The worst problem found wins, so that a value with both a control character and a line
    // break is reported as a line break.
    let mut found = None;
    for c in value.chars() {
        match c {
            '\r' | '\n' => return Err(UnsafeHeader::LineBreak),
            '\0' => found = Some(UnsafeHeader::Nul),
            '\t' => {}
            c if c.is_control() && found.is_none() => found = Some(UnsafeHeader::Control),
            _ => {}
        }
    }
    found.map_or(Ok(()), Err)
}

/// Checks a header field name: printable ASCII (33 to 126) other than `:`, at least one
/// character.
pub fn check_name(name: &str) -> Result<(), UnsafeHeader> {
    if name.is_empty() {
        return Err(UnsafeHeader::EmptyName);
    }
    check_text(name)?;
    if name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        Ok(())
    } else {
        Err(UnsafeHeader::NameCharacter)
    }
}

/// Whether `value` may appear anywhere in a header without starting a new line: no CR, LF or NUL.
/// This is the invariant every accepted message keeps; [`check_text`] is stricter.
#[must_use]
pub fn cannot_break_a_line(value: &str) -> bool {
    !value.contains(['\r', '\n', '\0'])
}

/// The first header-bound value of an accepted message that could start a new header line (CR,
/// LF or NUL), by field path; `None` when there is none. Front doors refuse such values before a
/// message exists: this is the invariant their tests and fuzz targets check on what was stored.
#[must_use]
pub fn line_breaking_field(message: &Message) -> Option<String> {
    let mut bad = None;
    let mut check = |field: &dyn Fn() -> String, value: &str| {
        if bad.is_none() && !cannot_break_a_line(value) {
            bad = Some(field());
        }
    };
    check(&|| "envelope_from".into(), &message.envelope_from);
    for (i, to) in message.envelope_to.iter().enumerate() {
        check(&|| format!("envelope_to.{i}"), to);
    }
    check(
        &|| "subject".into(),
        message.subject.as_deref().unwrap_or(""),
    );
    check(&|| "tag".into(), message.tag.as_deref().unwrap_or(""));
    check(
        &|| "idempotency_key".into(),
        message.idempotency_key.as_deref().unwrap_or(""),
    );
    for (key, value) in &message.metadata {
        check(&|| format!("metadata.{key:?}"), key);
        check(&|| format!("metadata.{key:?}"), value);
    }
    if let MessageContent::Structured(email) = &message.content {
        check(&|| "from".into(), &email.from);
        for (name, list) in [
            ("to", &email.to),
            ("cc", &email.cc),
            ("bcc", &email.bcc),
            ("reply_to", &email.reply_to),
        ] {
            for (i, address) in list.iter().enumerate() {
                check(&|| format!("{name}.{i}"), address);
            }
        }
        check(&|| "email.subject".into(), &email.subject);
        for (name, value) in &email.headers {
            check(&|| format!("headers.{name:?}"), name);
            check(&|| format!("headers.{name:?}"), value);
        }
        for (i, tag) in email.tags.iter().enumerate() {
            check(&|| format!("tags.{i}.name"), &tag.name);
            check(&|| format!("tags.{i}.value"), &tag.value);
        }
        for (i, attachment) in email.attachments.iter().enumerate() {
            check(
                &|| format!("attachments.{i}.filename"),
                &attachment.filename,
            );
            check(
                &|| format!("attachments.{i}.content_type"),
                attachment.content_type.as_deref().unwrap_or(""),
            );
            check(
                &|| format!("attachments.{i}.content_id"),
                attachment.content_id.as_deref().unwrap_or(""),
            );
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_line_breaks_nul_and_controls() {
        assert_eq!(check_text("Hello, wörld 🚀\tagain"), Ok(()));
        assert_eq!(check_text(""), Ok(()));
        assert_eq!(check_text("hi\r\nBcc: x@y"), Err(UnsafeHeader::LineBreak));
        assert_eq!(check_text("hi\rthere"), Err(UnsafeHeader::LineBreak));
        assert_eq!(check_text("hi\nthere"), Err(UnsafeHeader::LineBreak));
        assert_eq!(check_text("a\0b"), Err(UnsafeHeader::Nul));
        assert_eq!(check_text("a\u{7}b"), Err(UnsafeHeader::Control));
        assert_eq!(check_text("a\u{7f}b"), Err(UnsafeHeader::Control));
        assert_eq!(check_text("a\u{85}b"), Err(UnsafeHeader::Control));
        // The worst problem is reported whatever comes first.
        assert_eq!(check_text("\u{1}\0\n"), Err(UnsafeHeader::LineBreak));
        assert_eq!(check_text("\u{1}\0"), Err(UnsafeHeader::Nul));
    }

    #[test]
    fn names_are_printable_ascii_without_colon() {
        assert_eq!(check_name("X-Campaign"), Ok(()));
        assert_eq!(check_name("!#$%&'*+-.^_`|~"), Ok(()));
        assert_eq!(check_name(""), Err(UnsafeHeader::EmptyName));
        assert_eq!(check_name("Bad:Name"), Err(UnsafeHeader::NameCharacter));
        assert_eq!(check_name("Two Words"), Err(UnsafeHeader::NameCharacter));
        assert_eq!(check_name("Ünicode"), Err(UnsafeHeader::NameCharacter));
        assert_eq!(check_name("X-A\r\nBcc"), Err(UnsafeHeader::LineBreak));
        assert_eq!(check_name("X\0"), Err(UnsafeHeader::Nul));
        assert_eq!(check_name("X\u{7f}"), Err(UnsafeHeader::Control));
    }

    proptest::proptest! {
        #[test]
        fn whatever_passes_cannot_break_a_line(value in proptest::prelude::any::<String>()) {
            if check_text(&value).is_ok() {
                proptest::prop_assert!(cannot_break_a_line(&value));
            }
            if check_name(&value).is_ok() {
                proptest::prop_assert!(value.bytes().all(|b| b.is_ascii_graphic() && b != b':'));
            }
        }
    }
}
