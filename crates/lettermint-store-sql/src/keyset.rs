//! SQL for keyset pagination. Column expressions come only from the fixed tables below, never
//! from input; values are always bound.

use lettermint_core::page::{
    Direction, Keyset, LogSortKey, MessageSortKey, ProjectSortKey, TokenSortKey,
};

/// A sort key's column.
pub trait SortColumn: Copy {
    /// The column.
    fn column(self) -> &'static str;
    /// Whether the column can be NULL (NULLs sort as the lowest value).
    fn nullable(self) -> bool {
        false
    }
}

impl SortColumn for ProjectSortKey {
    fn column(self) -> &'static str {
        match self {
            ProjectSortKey::Name => "name",
            ProjectSortKey::CreatedAt => "created_at",
        }
    }
}

impl SortColumn for TokenSortKey {
    fn column(self) -> &'static str {
        match self {
            TokenSortKey::Name => "name",
            TokenSortKey::CreatedAt => "created_at",
            TokenSortKey::UpdatedAt => "updated_at",
            TokenSortKey::LastUsedAt => "last_used_at",
        }
    }

    fn nullable(self) -> bool {
        matches!(self, TokenSortKey::LastUsedAt)
    }
}

impl SortColumn for LogSortKey {
    fn column(self) -> &'static str {
        match self {
            LogSortKey::At => "at",
        }
    }
}

impl SortColumn for MessageSortKey {
    fn column(self) -> &'static str {
        match self {
            MessageSortKey::CreatedAt => "created_at",
        }
    }
}

/// Appends the keyset condition and ordering to `select` (a `SELECT … FROM table WHERE …`).
/// `anchor` and `limit` are the placeholders bound to the anchor id and the row limit;
/// `lowest_instant` is the dialect's literal for an instant before every other (what a NULL
/// sorts as).
pub fn paginate<K: SortColumn>(
    select: &str,
    table: &str,
    keyset: &Keyset<K>,
    anchor: &str,
    limit: &str,
    lowest_instant: &str,
) -> String {
    let column = if keyset.key.nullable() {
        format!("COALESCE({}, {lowest_instant})", keyset.key.column())
    } else {
        keyset.key.column().to_owned()
    };
    let (op, dir) = match keyset.direction {
        Direction::Ascending => (">", "ASC"),
        Direction::Descending => ("<", "DESC"),
    };
    let mut sql = String::from(select);
    if keyset.anchor.is_some() {
        sql.push_str(&format!(
            " AND ({column}, id) {op} ((SELECT {column} FROM {table} WHERE id = {anchor}), {anchor})"
        ));
    }
    sql.push_str(&format!(" ORDER BY {column} {dir}, id {dir} LIMIT {limit}"));
    sql
}
