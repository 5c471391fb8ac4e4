//! Rebuilds the crate when a migration is added, changed or removed: `sqlx::migrate!` embeds
//! the files at compile time, and cargo does not otherwise watch that directory.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
