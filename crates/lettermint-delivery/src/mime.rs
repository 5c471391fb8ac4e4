//! The bytes a message goes out as: API messages built into MIME, SMTP messages as received.

use std::time::SystemTime;

use base64::Engine as _;
use lettermint_core::{Message, MessageContent, StructuredEmail};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

/// Header naming the message's id, so that a delivered copy can be traced back to it.
pub const MESSAGE_ID_HEADER: &str = "X-LM-Message-Id";
/// Header carrying the message's tag.
pub const TAG_HEADER: &str = "X-LM-Tag";

/// Why a message could not be built. Permanent: the same message would fail again.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// An address did not parse.
    #[error("`{field}` is not a valid address: {value}")]
    Address {
        /// Which field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// A header name or value could become more than one header line.
    #[error("header `{0}` contains a line break, NUL or an invalid name")]
    Header(String),
    /// An attachment's content is not base64.
    #[error("attachment `{0}` is not valid base64")]
    Attachment(String),
    /// The builder refused the message.
    #[error("cannot build the message: {0}")]
    Builder(String),
}

/// The message as it goes out: SMTP-submitted messages byte for byte, API messages built.
pub fn render(message: &Message) -> Result<Vec<u8>, BuildError> {
    match &message.content {
        MessageContent::Mime(raw) => Ok(raw.clone()),
        MessageContent::Structured(email) => build(message, email),
    }
}

/// Builds the MIME of an API message: headers from the request, the text and HTML bodies as
/// alternatives, inline attachments (those with a content id) related to the HTML, the other
/// attachments mixed in. Bcc recipients are in the envelope only, never in a header. Metadata
/// is never added as a header; the tag is, as `X-LM-Tag`, with the message id as
/// `X-LM-Message-Id`.
pub fn build(message: &Message, email: &StructuredEmail) -> Result<Vec<u8>, BuildError> {
    let mut builder = lettre::Message::builder()
        .from(mailbox("from", &email.from)?)
        .subject(header_text("Subject", &email.subject)?)
        .date(SystemTime::from(message.created_at));
    for to in &email.to {
        builder = builder.to(mailbox("to", to)?);
    }
    for cc in &email.cc {
        builder = builder.cc(mailbox("cc", cc)?);
    }
    for reply_to in &email.reply_to {
        builder = builder.reply_to(mailbox("reply_to", reply_to)?);
    }
    let mut callers_message_id = None;
    for (name, value) in &email.headers {
        if name.eq_ignore_ascii_case("message-id") {
            callers_message_id = Some(header_text(name, value)?);
            continue;
        }
        builder = builder.raw_header(raw_header(name, value)?);
    }
    let message_id = callers_message_id.unwrap_or_else(|| {
        let domain = email
            .from
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>'))
            .filter(|d| !d.is_empty())
            .unwrap_or("lettermint.invalid");
        format!("<{}@{domain}>", message.id)
    });
    builder = builder.message_id(Some(message_id));
    builder = builder.raw_header(raw_header(MESSAGE_ID_HEADER, &message.id.to_string())?);
    if let Some(tag) = &message.tag {
        builder = builder.raw_header(raw_header(TAG_HEADER, tag)?);
    }
    let envelope = envelope(message).map_err(|e| BuildError::Builder(e.to_string()))?;
    builder = builder.envelope(envelope);

    let body = body(email)?;
    let built = builder
        .multipart(body)
        .map_err(|e| BuildError::Builder(e.to_string()))?;
    Ok(built.formatted())
}

/// The SMTP envelope of a message: its envelope sender and every recipient (to, cc and bcc).
pub fn envelope(message: &Message) -> Result<lettre::address::Envelope, BuildError> {
    let from = if message.envelope_from.is_empty() {
        None
    } else {
        Some(
            message
                .envelope_from
                .parse()
                .map_err(|_| BuildError::Address {
                    field: "envelope_from",
                    value: message.envelope_from.clone(),
                })?,
        )
    };
    let to = message
        .envelope_to
        .iter()
        .map(|a| {
            a.parse().map_err(|_| BuildError::Address {
                field: "envelope_to",
                value: a.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    lettre::address::Envelope::new(from, to).map_err(|e| BuildError::Builder(e.to_string()))
}

/// The envelope of the next attempt: [`envelope`] less the recipients earlier attempts already
/// reached ([`lettermint_core::DeliveryState::delivered_to`]); `None` when none is left.
pub fn pending_envelope(
    message: &Message,
) -> Result<Option<lettre::address::Envelope>, BuildError> {
    let full = envelope(message)?;
    let done = &message.delivery.delivered_to;
    if done.is_empty() {
        return Ok(Some(full));
    }
    let to: Vec<_> = full
        .to()
        .iter()
        .filter(|a| !done.contains(&a.to_string()))
        .cloned()
        .collect();
    if to.is_empty() {
        return Ok(None);
    }
    lettre::address::Envelope::new(full.from().cloned(), to)
        .map(Some)
        .map_err(|e| BuildError::Builder(e.to_string()))
}

fn body(email: &StructuredEmail) -> Result<MultiPart, BuildError> {
    let alternative = match (&email.text, &email.html) {
        (Some(text), Some(html)) => MultiPart::alternative_plain_html(text.clone(), html.clone()),
        (Some(text), None) => MultiPart::mixed().singlepart(SinglePart::plain(text.clone())),
        (None, Some(html)) => MultiPart::mixed().singlepart(SinglePart::html(html.clone())),
        (None, None) => MultiPart::mixed().singlepart(SinglePart::plain(String::new())),
    };
    let (inline, attached): (Vec<_>, Vec<_>) = email
        .attachments
        .iter()
        .partition(|a| a.content_id.is_some());
    let mut content = alternative;
    if !inline.is_empty() {
        let mut related = MultiPart::related().multipart(content);
        for attachment in inline {
            related = related.singlepart(attachment_part(attachment)?);
        }
        content = related;
    }
    if attached.is_empty() {
        return Ok(content);
    }
    let mut mixed = MultiPart::mixed().multipart(content);
    for attachment in attached {
        mixed = mixed.singlepart(attachment_part(attachment)?);
    }
    Ok(mixed)
}

fn attachment_part(attachment: &lettermint_core::Attachment) -> Result<SinglePart, BuildError> {
    let filename = header_text("attachment filename", &attachment.filename)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(attachment.content.as_bytes())
        .map_err(|_| BuildError::Attachment(filename.clone()))?;
    let content_type = attachment
        .content_type
        .as_deref()
        .map(|t| header_text("attachment content_type", t))
        .transpose()?
        .and_then(|t| ContentType::parse(&t).ok())
        .unwrap_or_else(|| {
            ContentType::parse("application/octet-stream").expect("a valid content type")
        });
    let part = match &attachment.content_id {
        Some(id) => Attachment::new_inline_with_name(
            header_text("attachment content_id", id)?
                .trim_matches(['<', '>'])
                .to_owned(),
            filename,
        ),
        None => Attachment::new(filename),
    };
    Ok(part.body(bytes, content_type))
}

/// `Name <addr>` or `addr` as a mailbox. The display name is taken whole, as the request gave
/// it, and quoted on output where it needs to be, so that a comma or an `@` in a name
/// (`Doe, John <j@example.com>`) can never read as a second address.
fn mailbox(field: &'static str, value: &str) -> Result<Mailbox, BuildError> {
    let bad = || BuildError::Address {
        field,
        value: value.to_owned(),
    };
    let value = header_text(field, value)?;
    let value = value.trim();
    let (name, address) = match (value.rfind('<'), value.ends_with('>')) {
        (Some(open), true) => (
            Some(value[..open].trim().trim_matches('"').trim()),
            value[open + 1..value.len() - 1].trim(),
        ),
        _ => (None, value),
    };
    let address = address.parse().map_err(|_| bad())?;
    let name = name.filter(|n| !n.is_empty()).map(str::to_owned);
    Ok(Mailbox::new(name, address))
}

/// A header value that cannot become a second header line: no CR, LF or NUL.
fn header_text(name: &str, value: &str) -> Result<String, BuildError> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(BuildError::Header(name.to_owned()));
    }
    Ok(value.to_owned())
}

fn raw_header(name: &str, value: &str) -> Result<HeaderValue, BuildError> {
    // RFC 5322 field names: printable US-ASCII except the colon.
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(BuildError::Header(name.to_owned()));
    }
    let header_name = HeaderName::new_from_ascii(name.to_owned())
        .map_err(|_| BuildError::Header(name.to_owned()))?;
    Ok(HeaderValue::new(header_name, header_text(name, value)?))
}

#[cfg(test)]
mod tests;
