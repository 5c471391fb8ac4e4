//! What the two SQL dialects spell differently, named once per store.

/// One store's spelling of what the shared statements cannot write in common SQL.
pub trait Dialect {
    /// A literal instant before every other (what a NULL instant sorts as).
    const LOWEST_INSTANT: &'static str;
    /// The condition "`$2` is NULL, or `name` contains `$2` ignoring case", with `LIKE`
    /// wildcards taken literally.
    const NAME_CONTAINS_2: &'static str;
}
