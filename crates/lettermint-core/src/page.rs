//! Cursor pagination.
//!
//! A cursor is the id of the row a page ends (or starts) at; stores compare `(sort key, id)`
//! tuples against that row's values, so pages stay stable while rows are added.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::{Error, Result};

/// Default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 30;
/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A page size between 1 and [`MAX_PAGE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// Clamps any requested size into range (0 becomes 1, more than 100 becomes 100).
    #[must_use]
    pub fn clamped(requested: u32) -> Self {
        Self(requested.clamp(1, MAX_PAGE_SIZE))
    }

    /// The size.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageSize {
    fn default() -> Self {
        Self(DEFAULT_PAGE_SIZE)
    }
}

/// Where a page starts: after or before the row with this id, in the page's sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The page after this row (`next_cursor`).
    After(Uuid),
    /// The page before this row (`prev_cursor`).
    Before(Uuid),
}

impl fmt::Display for Cursor {
    /// The opaque text form clients pass back as `page[cursor]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::After(id) => write!(f, "n{}", id.simple()),
            Cursor::Before(id) => write!(f, "p{}", id.simple()),
        }
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("page.cursor", "The page cursor is invalid.");
        let (direction, id) = (s.get(..1).ok_or_else(bad)?, s.get(1..).ok_or_else(bad)?);
        let id = Uuid::try_parse(id).map_err(|_| bad())?;
        match direction {
            "n" => Ok(Cursor::After(id)),
            "p" => Ok(Cursor::Before(id)),
            _ => Err(bad()),
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Smallest first.
    Ascending,
    /// Largest first.
    #[default]
    Descending,
}

/// A sort key and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<K> {
    /// The key.
    pub key: K,
    /// The direction.
    pub direction: Direction,
}

impl<K: FromStr> Sort<K> {
    /// Parses `name` or `-name` (descending).
    pub fn parse(input: &str) -> Result<Self> {
        let (direction, key) = match input.strip_prefix('-') {
            Some(key) => (Direction::Descending, key),
            None => (Direction::Ascending, input),
        };
        let key = key
            .parse()
            .map_err(|_| Error::invalid("sort", format!("Sorting by `{key}` is not supported.")))?;
        Ok(Self { key, direction })
    }
}

/// What a list asks for: size, cursor and order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<K> {
    /// How many rows.
    pub size: PageSize,
    /// Where to start.
    pub cursor: Option<Cursor>,
    /// Order.
    pub sort: Sort<K>,
}

/// What a store is asked to fetch for a [`PageRequest`]: up to `limit` rows (one more than the
/// page size, to know whether more follow), ordered by the sort key then id in `direction`, and
/// strictly beyond `anchor` in that order when it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset<K> {
    /// Sort key.
    pub key: K,
    /// Order of the fetch (reversed from the page's order when paging backwards).
    pub direction: Direction,
    /// Row to start after.
    pub anchor: Option<Uuid>,
    /// Maximum number of rows to fetch.
    pub limit: u32,
}

impl<K: Copy> PageRequest<K> {
    /// The fetch a store must perform for this request.
    #[must_use]
    pub fn keyset(&self) -> Keyset<K> {
        let (direction, anchor) = match self.cursor {
            None => (self.sort.direction, None),
            Some(Cursor::After(id)) => (self.sort.direction, Some(id)),
            Some(Cursor::Before(id)) => (reverse(self.sort.direction), Some(id)),
        };
        Keyset {
            key: self.sort.key,
            direction,
            anchor,
            limit: self.size.get() + 1,
        }
    }

    /// Turns the rows a store fetched for [`Self::keyset`] into a page.
    pub fn page<T>(&self, mut rows: Vec<T>, id_of: impl Fn(&T) -> Uuid) -> Page<T> {
        let size = self.size.get() as usize;
        let more = rows.len() > size;
        rows.truncate(size);
        let backwards = matches!(self.cursor, Some(Cursor::Before(_)));
        if backwards {
            rows.reverse();
        }
        let first = rows.first().map(&id_of);
        let last = rows.last().map(&id_of);
        let (has_next, has_prev) = if backwards {
            (true, more)
        } else {
            (more, self.cursor.is_some())
        };
        Page {
            next_cursor: if has_next {
                last.map(Cursor::After)
            } else {
                None
            },
            prev_cursor: if has_prev {
                first.map(Cursor::Before)
            } else {
                None
            },
            items: rows,
        }
    }
}

fn reverse(direction: Direction) -> Direction {
    match direction {
        Direction::Ascending => Direction::Descending,
        Direction::Descending => Direction::Ascending,
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows, in the requested order.
    pub items: Vec<T>,
    /// Cursor of the next page, `None` on the last.
    pub next_cursor: Option<Cursor>,
    /// Cursor of the previous page, `None` on the first.
    pub prev_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// Maps the rows, keeping the cursors.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
            prev_cursor: self.prev_cursor,
        }
    }
}

/// Sort keys of project lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectSortKey {
    /// By name.
    Name,
    /// By creation time.
    CreatedAt,
}

impl FromStr for ProjectSortKey {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "name" => Ok(Self::Name),
            "created_at" => Ok(Self::CreatedAt),
            _ => Err(()),
        }
    }
}

/// Sort keys of token lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSortKey {
    /// By name.
    Name,
    /// By creation time.
    CreatedAt,
    /// By last change.
    UpdatedAt,
    /// By last use (never-used tokens count as oldest).
    LastUsedAt,
}

impl FromStr for TokenSortKey {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "name" => Ok(Self::Name),
            "created_at" => Ok(Self::CreatedAt),
            "updated_at" => Ok(Self::UpdatedAt),
            "last_used_at" => Ok(Self::LastUsedAt),
            _ => Err(()),
        }
    }
}

/// Log entries sort by time only; the key exists to share the keyset machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSortKey {
    /// By time.
    At,
}

impl FromStr for LogSortKey {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "at" | "created_at" => Ok(Self::At),
            _ => Err(()),
        }
    }
}

/// Messages sort by acceptance time only; the key exists to share the keyset machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSortKey {
    /// By acceptance time.
    CreatedAt,
}

impl FromStr for MessageSortKey {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "created_at" => Ok(Self::CreatedAt),
            _ => Err(()),
        }
    }
}

impl<K> PageRequest<K> {
    /// The first page of `size` rows in `sort` order.
    #[must_use]
    pub fn first(size: u32, sort: Sort<K>) -> Self {
        Self {
            size: PageSize::clamped(size),
            cursor: None,
            sort,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<Uuid> {
        (1..=n).map(|i| Uuid::from_u128(u128::from(i))).collect()
    }

    /// A reference "store": sorts ascending ids and applies a keyset.
    fn fetch(all: &[Uuid], keyset: Keyset<()>) -> Vec<Uuid> {
        let mut rows = all.to_vec();
        if keyset.direction == Direction::Descending {
            rows.reverse();
        }
        let start = keyset
            .anchor
            .map_or(0, |a| rows.iter().position(|r| *r == a).unwrap() + 1);
        rows.into_iter()
            .skip(start)
            .take(keyset.limit as usize)
            .collect()
    }

    #[test]
    fn walking_forward_then_back_visits_every_row_once() {
        let all = ids(7);
        let sort = Sort {
            key: (),
            direction: Direction::Descending,
        };
        let mut request = PageRequest::first(3, sort);
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        loop {
            let page = request.page(fetch(&all, request.keyset()), |id| *id);
            seen.extend(page.items.clone());
            pages.push(page.clone());
            match page.next_cursor {
                Some(c) => request.cursor = Some(c),
                None => break,
            }
        }
        let mut expected = all.clone();
        expected.reverse();
        assert_eq!(seen, expected);
        assert_eq!(pages.len(), 3);
        assert!(pages[0].prev_cursor.is_none());
        // Back from the last page lands on the middle page.
        request.cursor = pages[2].prev_cursor;
        let back = request.page(fetch(&all, request.keyset()), |id| *id);
        assert_eq!(back.items, pages[1].items);
        assert_eq!(back.next_cursor, pages[1].next_cursor);
        // And back again: the first page, which has no previous one.
        request.cursor = back.prev_cursor;
        let first = request.page(fetch(&all, request.keyset()), |id| *id);
        assert_eq!(first.items, pages[0].items);
        assert!(first.prev_cursor.is_none());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor::After(Uuid::now_v7());
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        for bad in ["", "n", "x0190", "n' OR 1=1 --", "é"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_are_capped() {
        assert_eq!(PageSize::clamped(1000).get(), 100);
        assert_eq!(PageSize::clamped(0).get(), 1);
        assert_eq!(PageSize::default().get(), 30);
    }

    #[test]
    fn sorts_parse_with_direction() {
        let s = Sort::<ProjectSortKey>::parse("-name").unwrap();
        assert_eq!(
            (s.key, s.direction),
            (ProjectSortKey::Name, Direction::Descending)
        );
        assert!(Sort::<ProjectSortKey>::parse("password").is_err());
    }
}
