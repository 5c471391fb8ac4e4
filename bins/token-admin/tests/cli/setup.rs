//! Common starting points, made through the binary itself.

use serde_json::Value;

use crate::harness::Db;

pub fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// Creates a team; its id.
pub fn team(db: &Db, name: &str) -> String {
    id(&db.json(&["team", "create", name]))
}

/// Creates a project in a team; its id.
pub fn project(db: &Db, team: &str, name: &str) -> String {
    id(&db.json(&["project", "create", name, "--team", team, "--smtp"]))
}

/// Creates a token; its JSON, with the value in `token`.
pub fn token(db: &Db, project: &str, name: &str) -> Value {
    db.json(&["token", "create", "--project", project, "--name", name])
}

/// The JSON object's keys, sorted.
pub fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Checks an RFC 3339 UTC instant with `Z`.
pub fn assert_instant(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    assert!(text.ends_with('Z'), "{text}");
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
}
