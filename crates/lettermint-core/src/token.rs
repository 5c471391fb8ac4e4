//! The token format.
//!
//! A token is a prefix (`lm_` for project tokens, `lm_team_` for team tokens), a body of 34
//! base62 characters drawn from the operating system's CSPRNG (≈ 202 bits), and a 6-character
//! base62 encoding of the CRC32 of everything before it. Base62 has no `_`, so a project token can
//! never be read as a team token. The checksum lets a malformed or mistyped token be refused
//! without touching a store, and detects every single-character change.
//!
//! Only the SHA-256 [`TokenDigest`] of the whole value and a short [`TokenHint`] are kept. The
//! [`PlainToken`] itself is shown once to the person who created or regenerated it; its `Debug`
//! and `Display` print only the hint.

use std::fmt;

use rand::TryRng;
use rand::rngs::SysRng;
use sha2::{Digest as _, Sha256};

/// The kind of a token, told by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A project token (`lm_…`): sends mail for one project.
    Project,
    /// A team token (`lm_team_…`): manages a team's resources through the Team API.
    Team,
}

impl TokenKind {
    /// The prefix every token of this kind starts with.
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Project => "lm_",
            TokenKind::Team => "lm_team_",
        }
    }

    /// Lower-case name, as used in logs and JSON (`project`, `team`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenKind::Project => "project",
            TokenKind::Team => "team",
        }
    }
}

/// Number of random base62 characters in a token body.
pub const BODY_LEN: usize = 34;
/// Number of base62 characters of the checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Longest token of any kind, in bytes. Anything longer is refused before any other work.
pub const MAX_TOKEN_LEN: usize = "lm_team_".len() + BODY_LEN + CHECKSUM_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed token. Never contains any part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    /// It does not start with `lm_`.
    #[error("the token does not start with `lm_`")]
    MissingPrefix,
    /// It has the wrong number of characters for its kind.
    #[error("the token has the wrong length")]
    WrongLength,
    /// It contains a character outside `0-9A-Za-z` after its prefix.
    #[error("the token contains a character outside 0-9, A-Z and a-z")]
    InvalidCharacter,
    /// Its checksum does not match: the value was mistyped or truncated.
    #[error("the token's checksum does not match")]
    ChecksumMismatch,
    /// It is a well-formed token of the other kind.
    #[error("expected a {expected} token, found a {found} token")]
    WrongKind {
        /// The kind the caller asked for.
        expected: &'static str,
        /// The kind the value has.
        found: &'static str,
    },
}

/// The operating system's random source failed; no token can be minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator is unavailable")]
pub struct RandomnessUnavailable;

/// A complete, well-formed token value: prefix, body and valid checksum.
///
/// This is the secret. It is only ever built by [`PlainToken::mint`] or [`PlainToken::parse`],
/// and it prints as its hint.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken {
    kind: TokenKind,
    value: String,
}

impl PlainToken {
    /// Mints a new token of `kind` from the operating system's CSPRNG.
    pub fn mint(kind: TokenKind) -> Result<Self, RandomnessUnavailable> {
        let mut value = String::with_capacity(kind.prefix().len() + BODY_LEN + CHECKSUM_LEN);
        value.push_str(kind.prefix());
        push_random_base62(&mut value, BODY_LEN)?;
        let checksum = encode_checksum(crc32fast::hash(value.as_bytes()));
        value.push_str(&checksum);
        Ok(Self { kind, value })
    }

    /// Parses a token of either kind. Checks prefix, length, alphabet and checksum; never panics
    /// and never looks anything up.
    pub fn parse(input: &str) -> Result<Self, TokenFormatError> {
        if input.len() > MAX_TOKEN_LEN {
            return Err(TokenFormatError::WrongLength);
        }
        // Team tokens also start with `lm_`: test the longer prefix first.
        let (kind, rest) = if let Some(rest) = input.strip_prefix(TokenKind::Team.prefix()) {
            (TokenKind::Team, rest)
        } else if let Some(rest) = input.strip_prefix(TokenKind::Project.prefix()) {
            (TokenKind::Project, rest)
        } else {
            return Err(TokenFormatError::MissingPrefix);
        };
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TokenFormatError::InvalidCharacter);
        }
        if rest.len() != BODY_LEN + CHECKSUM_LEN {
            return Err(TokenFormatError::WrongLength);
        }
        // Everything is ASCII from here, so byte offsets are character boundaries.
        let (payload, checksum) = input.split_at(input.len() - CHECKSUM_LEN);
        if encode_checksum(crc32fast::hash(payload.as_bytes())).as_bytes() != checksum.as_bytes() {
            return Err(TokenFormatError::ChecksumMismatch);
        }
        Ok(Self {
            kind,
            value: input.to_owned(),
        })
    }

    /// Parses a token and requires it to be of `kind`.
    pub fn parse_kind(input: &str, kind: TokenKind) -> Result<Self, TokenFormatError> {
        let token = Self::parse(input)?;
        if token.kind == kind {
            Ok(token)
        } else {
            Err(TokenFormatError::WrongKind {
                expected: kind.as_str(),
                found: token.kind.as_str(),
            })
        }
    }

    /// The kind of this token.
    #[must_use]
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The SHA-256 digest under which the token is stored and looked up.
    #[must_use]
    pub fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(self.value.as_bytes()).into())
    }

    /// The non-secret hint that lets a person recognise this token in a list.
    #[must_use]
    pub fn hint(&self) -> TokenHint {
        let prefix = self.kind.prefix();
        let body = &self.value[prefix.len()..];
        TokenHint(format!(
            "{prefix}{}…{}",
            &body[..4],
            &body[body.len() - 4..]
        ))
    }

    /// The full secret value. Show it once to the person who asked for it; never log it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainToken({} [redacted])", self.hint().as_str())
    }
}

impl fmt::Display for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [redacted]", self.hint().as_str())
    }
}

/// The SHA-256 digest of a whole token. Not secret on its own, but it identifies the token: it is
/// what stores index and what authentication looks up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Wraps 32 bytes read back from a store.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Wraps a slice read back from a store; `None` unless it is exactly 32 bytes.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The 32 digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A short, non-secret fragment of a token (`lm_Ab3x…9Qz1`) shown in lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHint(String);

impl TokenHint {
    /// Wraps a hint read back from a store.
    #[must_use]
    pub fn from_stored(hint: String) -> Self {
        Self(hint)
    }

    /// The hint text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Appends `len` base62 characters drawn uniformly from the operating system's CSPRNG.
fn push_random_base62(out: &mut String, len: usize) -> Result<(), RandomnessUnavailable> {
    let mut filled = 0;
    let mut buf = [0u8; 64];
    while filled < len {
        SysRng
            .try_fill_bytes(&mut buf)
            .map_err(|_| RandomnessUnavailable)?;
        for &byte in &buf {
            // 248 = 4 × 62: rejecting the top 8 values keeps every character equally likely.
            if byte < 248 && filled < len {
                out.push(char::from(ALPHABET[usize::from(byte % 62)]));
                filled += 1;
            }
        }
    }
    Ok(())
}

/// `len` base62 characters from the operating system's CSPRNG (session ids, one-time
/// passwords): `len × 5.95` bits of entropy.
pub(crate) fn random_base62(len: usize) -> Result<String, RandomnessUnavailable> {
    let mut out = String::with_capacity(len);
    push_random_base62(&mut out, len)?;
    Ok(out)
}

/// Fixed-width, most-significant-first base62 encoding of a CRC32 (62⁶ > 2³²).
fn encode_checksum(mut crc: u32) -> String {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind_strategy() -> impl Strategy<Value = TokenKind> {
        prop_oneof![Just(TokenKind::Project), Just(TokenKind::Team)]
    }

    #[test]
    fn minted_tokens_have_the_documented_shape() {
        let project = PlainToken::mint(TokenKind::Project).unwrap();
        assert!(project.expose_secret().starts_with("lm_"));
        assert_eq!(project.expose_secret().len(), 3 + 40);
        let team = PlainToken::mint(TokenKind::Team).unwrap();
        assert!(team.expose_secret().starts_with("lm_team_"));
        // Upstream: `lm_team_` followed by 40 letters and digits.
        assert_eq!(team.expose_secret().len(), 8 + 40);
        assert_ne!(
            project.expose_secret(),
            PlainToken::mint(TokenKind::Project)
                .unwrap()
                .expose_secret()
        );
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let token = PlainToken::mint(TokenKind::Project).unwrap();
        let secret = token.expose_secret();
        let body = &secret[3..];
        for shown in [format!("{token:?}"), format!("{token}")] {
            assert!(!shown.contains(body), "{shown}");
            assert!(shown.contains("redacted"));
        }
    }

    #[test]
    fn hint_shows_prefix_and_four_characters_each_side() {
        let token = PlainToken::mint(TokenKind::Team).unwrap();
        let hint = token.hint();
        let s = token.expose_secret();
        assert_eq!(
            hint.as_str(),
            format!("lm_team_{}…{}", &s[8..12], &s[s.len() - 4..])
        );
    }

    #[test]
    fn the_checksum_is_fixed_width() {
        assert_eq!(encode_checksum(0), "000000");
        assert_eq!(encode_checksum(u32::MAX).len(), 6);
    }

    #[test]
    fn wrong_kind_is_reported() {
        let team = PlainToken::mint(TokenKind::Team).unwrap();
        assert_eq!(
            PlainToken::parse_kind(team.expose_secret(), TokenKind::Project),
            Err(TokenFormatError::WrongKind {
                expected: "project",
                found: "team"
            })
        );
    }

    #[test]
    fn known_malformed_inputs_are_rejected_with_a_reason() {
        let good = PlainToken::mint(TokenKind::Project).unwrap();
        let s = good.expose_secret();
        assert_eq!(PlainToken::parse(""), Err(TokenFormatError::MissingPrefix));
        assert_eq!(
            PlainToken::parse("Bearer lm_x"),
            Err(TokenFormatError::MissingPrefix)
        );
        assert_eq!(
            PlainToken::parse(&s[..s.len() - 1]),
            Err(TokenFormatError::WrongLength)
        );
        assert_eq!(
            PlainToken::parse(&format!("{s}0")),
            Err(TokenFormatError::WrongLength)
        );
        assert_eq!(
            PlainToken::parse(&format!("{}-", &s[..s.len() - 1])),
            Err(TokenFormatError::InvalidCharacter)
        );
        assert_eq!(
            PlainToken::parse(&"x".repeat(10_000)),
            Err(TokenFormatError::WrongLength)
        );
    }

    proptest! {
        #[test]
        fn minted_tokens_parse_back_to_the_same_kind(kind in kind_strategy()) {
            let token = PlainToken::mint(kind).unwrap();
            let parsed = PlainToken::parse(token.expose_secret()).unwrap();
            prop_assert_eq!(parsed.kind(), kind);
            prop_assert_eq!(parsed.digest(), token.digest());
        }

        #[test]
        fn every_single_character_change_is_rejected(
            kind in kind_strategy(),
            position in any::<prop::sample::Index>(),
            replacement in any::<char>(),
        ) {
            let token = PlainToken::mint(kind).unwrap();
            let original: Vec<char> = token.expose_secret().chars().collect();
            let at = position.index(original.len());
            prop_assume!(original[at] != replacement);
            let mut changed = original.clone();
            changed[at] = replacement;
            let changed: String = changed.into_iter().collect();
            prop_assert!(PlainToken::parse(&changed).is_err(), "accepted {changed:?}");
        }

        #[test]
        fn every_single_alphanumeric_change_is_caught_by_the_checksum(
            kind in kind_strategy(),
            position in any::<prop::sample::Index>(),
            replacement in prop::sample::select(ALPHABET.to_vec()),
        ) {
            let token = PlainToken::mint(kind).unwrap();
            let prefix = kind.prefix().len();
            let mut bytes = token.expose_secret().as_bytes().to_vec();
            let at = prefix + position.index(bytes.len() - prefix);
            prop_assume!(bytes[at] != replacement);
            bytes[at] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(PlainToken::parse(&changed), Err(TokenFormatError::ChecksumMismatch));
        }

        #[test]
        fn project_tokens_never_parse_as_team_tokens_and_back(kind in kind_strategy()) {
            let token = PlainToken::mint(kind).unwrap();
            let other = match kind { TokenKind::Project => TokenKind::Team, TokenKind::Team => TokenKind::Project };
            prop_assert!(PlainToken::parse_kind(token.expose_secret(), other).is_err());
            // Re-prefixing the body as the other kind breaks the checksum or the alphabet.
            let body = &token.expose_secret()[kind.prefix().len()..];
            let swapped = format!("{}{}", other.prefix(), body);
            prop_assert!(PlainToken::parse_kind(&swapped, other).is_err());
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = PlainToken::parse(&text);
            let prefixed = format!("lm_team_{text}");
            let _ = PlainToken::parse(&prefixed);
            let prefixed = format!("lm_{text}");
            let _ = PlainToken::parse(&prefixed);
        }

        #[test]
        fn arbitrary_strings_with_a_prefix_are_almost_never_accepted(body in "[0-9A-Za-z]{40}") {
            // A random 40-character body passes only if its last six characters happen to be
            // the checksum of the rest: 1 in 2^32. The generator cannot find one by chance.
            let candidate = format!("lm_{body}");
            prop_assert_eq!(PlainToken::parse(&candidate), Err(TokenFormatError::ChecksumMismatch));
        }
    }
}
