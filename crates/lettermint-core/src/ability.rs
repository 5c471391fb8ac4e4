//! Abilities of team tokens: `read:<resource>` and `write:<resource>`, where write implies read.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Read or write access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// List and show.
    Read,
    /// Create, change and delete; implies [`Access::Read`].
    Write,
}

/// What an ability applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// The team itself.
    Team,
    /// Projects of the team.
    Projects,
    /// Project tokens (this project's addition to the upstream set).
    Tokens,
    /// Sending domains.
    Domains,
    /// Webhooks.
    Webhooks,
    /// Team members.
    Members,
    /// Routes of projects.
    Routes,
    /// Messages.
    Messages,
}

impl Resource {
    /// Every resource, in a stable order.
    pub const ALL: [Resource; 8] = [
        Resource::Team,
        Resource::Projects,
        Resource::Tokens,
        Resource::Domains,
        Resource::Webhooks,
        Resource::Members,
        Resource::Routes,
        Resource::Messages,
    ];

    /// The name used in ability strings.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Resource::Team => "team",
            Resource::Projects => "projects",
            Resource::Tokens => "tokens",
            Resource::Domains => "domains",
            Resource::Webhooks => "webhooks",
            Resource::Members => "members",
            Resource::Routes => "routes",
            Resource::Messages => "messages",
        }
    }
}

/// One ability, such as `write:tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ability {
    /// Read or write.
    pub access: Access,
    /// On what.
    pub resource: Resource,
}

impl Ability {
    /// `read:<resource>`.
    #[must_use]
    pub const fn read(resource: Resource) -> Self {
        Self {
            access: Access::Read,
            resource,
        }
    }

    /// `write:<resource>`.
    #[must_use]
    pub const fn write(resource: Resource) -> Self {
        Self {
            access: Access::Write,
            resource,
        }
    }

    /// Every valid ability string, for error messages and help texts.
    #[must_use]
    pub fn all_names() -> Vec<String> {
        Resource::ALL
            .iter()
            .flat_map(|r| {
                [
                    Ability::read(*r).to_string(),
                    Ability::write(*r).to_string(),
                ]
            })
            .collect()
    }
}

impl fmt::Display for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match self.access {
            Access::Read => "read",
            Access::Write => "write",
        };
        write!(f, "{access}:{}", self.resource.as_str())
    }
}

/// The string is not a known ability.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ability `{0}`")]
pub struct UnknownAbility(pub String);

impl FromStr for Ability {
    type Err = UnknownAbility;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownAbility(s.to_owned());
        let (access, resource) = s.split_once(':').ok_or_else(unknown)?;
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            _ => return Err(unknown()),
        };
        let resource = Resource::ALL
            .into_iter()
            .find(|r| r.as_str() == resource)
            .ok_or_else(unknown)?;
        Ok(Ability { access, resource })
    }
}

/// The set of abilities a team token holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Abilities(BTreeSet<Ability>);

impl Abilities {
    /// Every ability there is.
    #[must_use]
    pub fn all() -> Self {
        Self(
            Resource::ALL
                .iter()
                .flat_map(|r| [Ability::read(*r), Ability::write(*r)])
                .collect(),
        )
    }

    /// Parses ability names; the error (on field `field`) lists the valid names.
    pub fn parse<S: AsRef<str>>(field: &str, names: &[S]) -> Result<Self> {
        let mut set = BTreeSet::new();
        let mut unknown = Vec::new();
        for name in names {
            match name.as_ref().trim().parse::<Ability>() {
                Ok(ability) => {
                    set.insert(ability);
                }
                Err(UnknownAbility(n)) => unknown.push(n),
            }
        }
        if !unknown.is_empty() {
            return Err(Error::invalid(
                field,
                format!(
                    "Unknown abilities: {}. Valid abilities: {}.",
                    unknown.join(", "),
                    Ability::all_names().join(", ")
                ),
            ));
        }
        Ok(Self(set))
    }

    /// Whether these abilities allow `required`. `write:x` allows `read:x`.
    #[must_use]
    pub fn allows(&self, required: Ability) -> bool {
        self.0.contains(&required)
            || (required.access == Access::Read
                && self.0.contains(&Ability::write(required.resource)))
    }

    /// The abilities, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = Ability> + '_ {
        self.0.iter().copied()
    }

    /// The ability names, in a stable order.
    #[must_use]
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// True when the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Ability> for Abilities {
    fn from_iter<T: IntoIterator<Item = Ability>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_implies_read_but_not_the_reverse() {
        let abilities: Abilities = [Ability::write(Resource::Tokens)].into_iter().collect();
        assert!(abilities.allows(Ability::read(Resource::Tokens)));
        assert!(abilities.allows(Ability::write(Resource::Tokens)));
        assert!(!abilities.allows(Ability::read(Resource::Projects)));
        let read_only: Abilities = [Ability::read(Resource::Projects)].into_iter().collect();
        assert!(!read_only.allows(Ability::write(Resource::Projects)));
    }

    #[test]
    fn ability_names_round_trip() {
        for name in Ability::all_names() {
            assert_eq!(name.parse::<Ability>().unwrap().to_string(), name);
        }
        assert!(Ability::all_names().contains(&"write:webhooks".to_owned()));
    }

    #[test]
    fn unknown_abilities_are_listed_with_the_valid_ones() {
        let err = Abilities::parse("abilities", &["read:projects", "delete:everything", "read"])
            .unwrap_err();
        let Error::Validation(v) = err else {
            panic!("expected validation error")
        };
        let msg = &v.fields()["abilities"][0];
        assert!(
            msg.starts_with("Unknown abilities: delete:everything, read. Valid abilities: read:team, write:team,"),
            "{msg}"
        );
        assert!(msg.contains("write:tokens"), "{msg}");
    }
}
