//! The token parser (`PlainToken::parse` and `parse_kind`) on arbitrary text.

use lettermint_core::{PlainToken, TokenFormatError, TokenKind};

use super::{Outcome, Target};

/// `cargo xtask fuzz token`.
#[derive(Debug)]
pub struct TokenTarget;

impl Target for TokenTarget {
    fn name(&self) -> &'static str {
        "token"
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        &[
            b"lm_",
            b"lm_team_",
            b"lm_team",
            b"_",
            b"0",
            b"z",
            b"Z",
            b"\xc3\xa9",
            b"\xf0\x9f\x9a\x80",
        ]
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let text = String::from_utf8_lossy(input);
        let parsed = PlainToken::parse(&text);
        let signature = match &parsed {
            Ok(token) => {
                // A parsed token is the input, of the kind its prefix says, of the kind's exact
                // length, and never prints its secret.
                if token.expose_secret() != text {
                    return Err("the parsed token differs from the input".into());
                }
                let kind = if text.starts_with("lm_team_") {
                    TokenKind::Team
                } else {
                    TokenKind::Project
                };
                if token.kind() != kind {
                    return Err(format!("{text:?} parsed as {:?}", token.kind()));
                }
                if text.len() != kind.prefix().len() + 40 {
                    return Err(format!("{text:?} parsed with length {}", text.len()));
                }
                let shown = format!("{token:?} {token} {}", token.hint().as_str());
                if shown.contains(&text[kind.prefix().len()..]) {
                    return Err("a token printed its secret".into());
                }
                // Both kind-specific parsers agree with the general one.
                let other = match kind {
                    TokenKind::Team => TokenKind::Project,
                    TokenKind::Project => TokenKind::Team,
                };
                if PlainToken::parse_kind(&text, kind).as_ref() != Ok(token) {
                    return Err("parse_kind refused a token parse accepted".into());
                }
                if !matches!(
                    PlainToken::parse_kind(&text, other),
                    Err(TokenFormatError::WrongKind { .. })
                ) {
                    return Err("parse_kind accepted a token of the other kind".into());
                }
                100 + kind as u64
            }
            Err(e) => {
                // The error never carries the input (short inputs can match its fixed words).
                if text.len() >= 12 && e.to_string().contains(&*text) {
                    return Err("a parse error contains the input".into());
                }
                match e {
                    TokenFormatError::MissingPrefix => 1,
                    TokenFormatError::WrongLength => 2,
                    TokenFormatError::InvalidCharacter => 3,
                    TokenFormatError::ChecksumMismatch => 4,
                    TokenFormatError::WrongKind { .. } => 5,
                }
            }
        };
        Ok(signature * 64 + (input.len() as u64).min(63))
    }
}
