//! The JSON bodies of the API and their OpenAPI schemas (`ToSchema`).
//!
//! Responses are rendered through these types (`team.rs`, `send.rs`, `error.rs`), so the
//! document describes what is serialised. Request bodies are read as JSON values and validated
//! field by field (`validate.rs`, `team.rs`) so that a 422 names every bad field; their types
//! here describe what that validation accepts. `tests/openapi.rs` checks real requests and
//! responses of every operation against these schemas.

use std::collections::BTreeMap;

use lettermint_core::{Action, LogEntryId, MessageId, Outcome, ProjectId, TeamId, TokenId};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};

/// `serde_json::to_value` for the types of this module, which always serialise.
pub(crate) fn to_value(body: impl Serialize) -> serde_json::Value {
    serde_json::to_value(body).unwrap_or_default()
}

fn string_enum(
    values: impl IntoIterator<Item = &'static str>,
    nullable: bool,
    description: &str,
) -> Schema {
    let values: Vec<Option<&str>> = values.into_iter().map(Some).collect();
    let mut builder = ObjectBuilder::new().description(Some(description));
    if nullable {
        builder = builder
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .enum_values(Some(values.into_iter().chain([None])));
    } else {
        builder = builder
            .schema_type(Type::String)
            .enum_values(Some(values.into_iter().flatten()));
    }
    builder.build().into()
}

fn channel_schema() -> Schema {
    string_enum(
        ["api", "smtp", "dashboard"],
        false,
        "The front door: the HTTP API, the SMTP relay, or the dashboard (a member changing the token).",
    )
}

fn nullable_channel_schema() -> Schema {
    string_enum(
        ["api", "smtp"],
        true,
        "The front door it was last used through (null: never used).",
    )
}

fn nullable_credential_schema() -> Schema {
    string_enum(
        ["current", "previous"],
        true,
        "Which of the token's values was presented: `current`, or `previous` during a rotation's overlap (null: not a use of a value, such as a delivery, or refused before the value was matched).",
    )
}

fn token_status_schema() -> Schema {
    string_enum(
        ["active", "revoked", "expired"],
        false,
        "`active`, `revoked` or `expired`.",
    )
}

fn action_schema() -> Schema {
    string_enum(
        Action::ALL.iter().map(|a| a.as_str()),
        false,
        "What the token was used for.",
    )
}

fn outcome_schema() -> Schema {
    string_enum(
        Outcome::ALL.iter().map(|o| o.as_str()),
        false,
        "How the use ended.",
    )
}

// --- errors ------------------------------------------------------------------------------------

/// Machine-readable error codes (`error.code`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 401: missing, malformed, unknown, revoked, expired or wrong-kind token.
    Unauthenticated,
    /// 403: the team token lacks an ability.
    Forbidden,
    /// 404.
    NotFound,
    /// 400: the body is not JSON.
    MalformedJson,
    /// 415: the body is not declared as JSON.
    UnsupportedMediaType,
    /// 413.
    PayloadTooLarge,
    /// 503.
    ServiceUnavailable,
    /// 500.
    Internal,
}

/// The `error` member of an error body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

/// An error. `message` is always present; most errors also carry `error.code` (409 and 429
/// answer `message` only).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"message": "Unauthenticated.", "error": {"code": "UNAUTHENTICATED", "message": "Unauthenticated."}}))]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub message: String,
    /// What went wrong, for programs.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<ErrorDetail>,
}

/// A 422: a summary and every bad field (a dotted path such as `to.1` or `0.subject` in a
/// batch) with what is wrong with it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"message": "The subject field is required. (and 1 more error)", "errors": {"subject": ["The subject field is required."], "to": ["The to field is required."]}}))]
pub struct ValidationErrorBody {
    /// The first problem, and how many more there are.
    pub message: String,
    /// Every bad field with its problems.
    pub errors: BTreeMap<String, Vec<String>>,
}

/// A confirmation without data (deletes and revocations).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"message": "Token revoked successfully."}))]
pub struct MessageBody {
    /// The confirmation.
    pub message: String,
}

// --- sending -----------------------------------------------------------------------------------

/// `addr` or `Name <addr>` with an ASCII `addr` whose local part has at most one dot and 64
/// characters (the server also accepts rarer forms that email address validation allows, such
/// as more dots or quoted local parts). No lookahead: generators must be able to follow it.
const ADDRESS_PATTERN: &str = concat!(
    r"^[ \t]*(",
    r"[^<>\x00-\x08\x0A-\x1F\x7F-\x9F]*<",
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,31})?",
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
    r">|",
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,31})?",
    r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
    r")[ \t]*$"
);

fn address_schema(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(998))
        .pattern(Some(ADDRESS_PATTERN))
        .description(Some(description))
}

/// One address or a list of 0 to 50 (1 to 50 when `required`); optional lists may be null.
fn addresses(required: bool, description: &str) -> Schema {
    let item = || address_schema("`addr` or `Name <addr>`");
    let list = ArrayBuilder::new()
        .items(item())
        .min_items(Some(usize::from(required)))
        .max_items(Some(50));
    let mut one_of = OneOfBuilder::new()
        .description(Some(description))
        .item(item().description(Some("a single address")))
        .item(list);
    if !required {
        one_of = one_of.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    one_of.build().into()
}

fn sender_schema() -> Schema {
    address_schema("Sender: `addr` or `Name <addr>`.")
        .examples([serde_json::json!("Shop <shop@example.com>")])
        .build()
        .into()
}

fn recipients_schema() -> Schema {
    addresses(true, "Recipients: one address or a list of 1 to 50.")
}

fn copy_schema() -> Schema {
    addresses(false, "Carbon-copy recipients.")
}

fn blind_copy_schema() -> Schema {
    addresses(false, "Blind carbon-copy recipients.")
}

fn reply_to_schema() -> Schema {
    addresses(false, "Reply-to addresses.")
}

fn string_map(description: &str, names: ObjectBuilder, values: ObjectBuilder) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some(description))
        .property_names(Some(names.schema_type(Type::String)))
        .additional_properties(Some(values.schema_type(Type::String)))
        .build()
        .into()
}

fn headers_schema() -> Schema {
    string_map(
        "Extra headers: names are printable ASCII without `:`, values have no line breaks. A \
         `Message-ID` is kept only with `X-LM-Preserve-Message-ID: true` (or `1`).",
        ObjectBuilder::new().pattern(Some("^[!-9;-~]+$")),
        ObjectBuilder::new().pattern(Some(r"^[^\x00-\x08\x0A-\x1F\x7F-\x9F]*$")),
    )
}

fn metadata_schema() -> Schema {
    string_map(
        "Key-value data kept with the message (never added as headers).",
        ObjectBuilder::new()
            .min_length(Some(1))
            .max_length(Some(255)),
        ObjectBuilder::new(),
    )
}

/// The date-times the server reads (`validate::parse_instant`): RFC 3339, the same without a
/// zone (UTC), or with a space and whole seconds (UTC).
const INSTANT_PATTERN: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?| ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])$";

fn instant_input_schema(nullable: bool) -> Schema {
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .pattern(Some(INSTANT_PATTERN))
        .description(Some(
            "An ISO 8601 date and time; without a zone it is UTC (`2030-01-01T10:00:00Z`, \
             `2030-01-01T10:00:00.5+02:00`, `2030-01-01T10:00:00`, `2030-01-01 10:00:00`).",
        ))
        .examples([serde_json::json!("2030-01-01T10:00:00Z")])
        .build()
        .into()
}

fn nullable_instant_input_schema() -> Schema {
    instant_input_schema(true)
}

/// A tag of a message.
#[derive(Debug, Clone, ToSchema)]
pub struct SendTag {
    /// Tag name, unique within the message.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$", example = "kind")]
    pub name: String,
    /// Tag value.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", example = "welcome")]
    pub value: String,
}

/// A file attached to a message.
#[derive(Debug, Clone, ToSchema)]
pub struct SendAttachment {
    /// File name (1 to 255 characters, not blank).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"\S",
        example = "receipt.pdf"
    )]
    pub filename: String,
    /// The file's bytes in padded base64 (the server also ignores whitespace in it).
    #[schema(
        content_encoding = "base64",
        pattern = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$",
        example = "aGVsbG8="
    )]
    pub content: String,
    /// MIME type, on one line.
    #[schema(
        max_length = 255,
        pattern = r"^[^\x00-\x08\x0A-\x1F\x7F-\x9F]*$",
        example = "application/pdf"
    )]
    pub content_type: Option<String>,
    /// Content-ID for inline images; `@lm` is appended when it has no `@`.
    #[schema(pattern = "^[a-zA-Z0-9._@-]{1,255}$", example = "logo")]
    pub content_id: Option<String>,
}

/// The fields of a send request ([`SendRequest`] adds that `html` or `text` is required).
#[derive(Debug, Clone, ToSchema)]
#[schema(example = json!({
    "from": "Shop <shop@example.com>",
    "to": ["customer@example.com"],
    "subject": "Your receipt",
    "html": "<p>Thanks!</p>",
    "text": "Thanks!",
    "metadata": {"order": "42"},
    "tag": "receipt"
}))]
pub struct SendFields {
    /// Sender: `addr` or `Name <addr>`.
    #[schema(schema_with = sender_schema)]
    pub from: String,
    /// Recipients: one address or a list of 1 to 50.
    #[schema(schema_with = recipients_schema)]
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    #[schema(schema_with = copy_schema, required = false)]
    pub cc: Option<Vec<String>>,
    /// Blind carbon-copy recipients.
    #[schema(schema_with = blind_copy_schema, required = false)]
    pub bcc: Option<Vec<String>>,
    /// Reply-to addresses.
    #[schema(schema_with = reply_to_schema, required = false)]
    pub reply_to: Option<Vec<String>>,
    /// Subject, not blank.
    #[schema(
        min_length = 1,
        max_length = 998,
        pattern = r"\S",
        example = "Your receipt"
    )]
    pub subject: String,
    /// HTML body (at least 3 characters).
    #[schema(min_length = 3)]
    pub html: Option<String>,
    /// Plain-text body (at least 3 characters).
    #[schema(min_length = 3)]
    pub text: Option<String>,
    /// A route slug of the project; absent → the project's default route.
    #[schema(min_length = 1, max_length = 255, example = "default")]
    pub route: Option<String>,
    /// Extra headers: names are printable ASCII without `:`, values have no line breaks. A
    /// `Message-ID` is kept only with `X-LM-Preserve-Message-ID: true` (or `1`).
    #[schema(schema_with = headers_schema, required = false)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Key-value data kept with the message (never added as headers); keys of 1 to 255
    /// characters.
    #[schema(schema_with = metadata_schema, required = false)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// One tag: words of letters, digits, `_` and `-`, separated by single spaces.
    #[schema(
        max_length = 255,
        pattern = "^[a-zA-Z0-9_-]+( [a-zA-Z0-9_-]+)*$",
        example = "receipt"
    )]
    pub tag: Option<String>,
    /// Up to 20 tags with unique names.
    #[schema(max_items = 20)]
    pub tags: Option<Vec<SendTag>>,
    /// Attachments.
    pub attachments: Option<Vec<SendAttachment>>,
    /// When to send; in the future, the message is `scheduled`.
    #[schema(schema_with = nullable_instant_input_schema, required = false)]
    pub scheduled_at: Option<String>,
}

/// An email to send (also one item of a batch): [`SendFields`], at least one of `html` and
/// `text` being a string. Fields are validated one by one; a `422` names every bad field.
#[derive(Debug, Clone, Copy)]
pub struct SendRequest;

impl utoipa::PartialSchema for SendRequest {
    fn schema() -> RefOr<Schema> {
        let body = |field: &str| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(Type::String))
                .required(field)
        };
        AllOfBuilder::new()
            .item(<SendFields as utoipa::PartialSchema>::schema())
            .item(
                AnyOfBuilder::new()
                    .item(body("html"))
                    .item(body("text"))
                    .description(Some("At least one of `html` and `text` is a string.")),
            )
            .description(Some(
                "An email to send (also one item of a batch). Fields are validated one by one; \
                 a `422` names every bad field.",
            ))
            .into()
    }
}

impl ToSchema for SendRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <SendFields as ToSchema>::schemas(schemas);
    }
}

/// 1 to 500 send requests, sent atomically.
#[derive(Debug, Clone, Copy)]
pub struct SendBatch;

impl utoipa::PartialSchema for SendBatch {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("SendRequest"))
            .min_items(Some(1))
            .max_items(Some(crate::send::MAX_BATCH))
            .description(Some(
                "1 to 500 send requests, accepted or refused together.",
            ))
            .into()
    }
}

impl ToSchema for SendBatch {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            SendRequest::name().into_owned(),
            <SendRequest as utoipa::PartialSchema>::schema(),
        ));
        <SendRequest as ToSchema>::schemas(schemas);
    }
}

/// The answers to a batch, in the order of its requests.
#[derive(Debug, Clone, Copy)]
pub struct SendBatchResponse;

impl utoipa::PartialSchema for SendBatchResponse {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("SendResponse"))
            .min_items(Some(1))
            .max_items(Some(crate::send::MAX_BATCH))
            .description(Some("The answers, in the order of the batch's requests."))
            .into()
    }
}

impl ToSchema for SendBatchResponse {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            SendResponse::name().into_owned(),
            <SendResponse as utoipa::PartialSchema>::schema(),
        ));
        <SendResponse as ToSchema>::schemas(schemas);
    }
}

/// The status of an accepted message.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendStatus {
    /// Will be sent as soon as possible.
    Pending,
    /// Will be sent at `scheduled_at`.
    Scheduled,
}

/// An accepted message.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"message_id": "01a21eef-eab0-7036-919b-12129ac56ec4", "status": "pending"}))]
pub struct SendResponse {
    /// The message's id.
    #[schema(value_type = uuid::Uuid)]
    pub message_id: MessageId,
    /// `pending`, or `scheduled` for a send in the future.
    pub status: SendStatus,
    /// When a scheduled message will be sent (RFC 3339, UTC); only for `scheduled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub scheduled_at: Option<String>,
}

/// `pong` (text/plain).
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(example = "pong")]
pub enum Pong {
    /// The only answer.
    #[schema(rename = "pong")]
    Pong,
}

// --- team API: request bodies ------------------------------------------------------------------

// Names people give: 1 to 100 characters once trimmed, not blank, no control characters
// (the `pattern` of the `name` fields below).

/// A new name.
#[derive(Debug, Clone, ToSchema)]
#[schema(example = json!({"name": "Acme"}))]
pub struct NameBody {
    /// 1 to 100 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
}

/// A new project.
#[derive(Debug, Clone, ToSchema)]
#[schema(example = json!({"name": "Shop", "smtp_enabled": true}))]
pub struct NewProjectBody {
    /// 1 to 100 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// Whether the SMTP relay accepts the project's tokens (default false).
    pub smtp_enabled: Option<bool>,
}

/// Changes to a project; absent or null fields are kept.
#[derive(Debug, Clone, ToSchema)]
#[schema(example = json!({"smtp_enabled": false}))]
pub struct ProjectUpdateBody {
    /// 1 to 100 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: Option<String>,
    /// Whether the SMTP relay accepts the project's tokens.
    pub smtp_enabled: Option<bool>,
}

/// A new project token.
#[derive(Debug, Clone, ToSchema)]
#[schema(example = json!({"name": "CI", "expires_at": "2030-01-01T00:00:00Z"}))]
pub struct NewTokenBody {
    /// 1 to 100 characters, not blank, no control characters; unique among the project's
    /// non-revoked tokens.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// When the token stops working (absent or null: never).
    #[schema(schema_with = nullable_instant_input_schema, required = false)]
    pub expires_at: Option<String>,
    /// The client networks it may be used from: IPv4 or IPv6 CIDRs, or single addresses (at
    /// most 100; absent, null or empty: any address).
    #[schema(max_items = 100, required = false, nullable = true)]
    pub allowed_ips: Option<Vec<String>>,
}

/// Changes to a project token: its name, its IP allowlist, or both.
#[derive(Debug, Clone, ToSchema)]
#[schema(example = json!({"name": "CI", "allowed_ips": ["203.0.113.0/24"]}))]
pub struct TokenUpdateBody {
    /// A new name: 1 to 100 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: Option<String>,
    /// A new IP allowlist, replacing the old one (empty: any address; at most 100 entries).
    #[schema(max_items = 100)]
    pub allowed_ips: Option<Vec<String>>,
}

/// A rotation.
#[derive(Debug, Clone, ToSchema)]
#[schema(example = json!({"overlap": "24h"}))]
pub struct RotateBody {
    /// How long the current value keeps working beside the new one: a number and a unit
    /// (`s`, `m`, `h`, `d`), more than zero and at most 7 days.
    #[schema(pattern = r"^[0-9]+[smhd]$")]
    pub overlap: String,
}

/// Which tokens a list shows (empty: the default, `active`).
#[derive(Debug, Clone, Copy)]
pub struct TokenStatusFilter;

impl utoipa::PartialSchema for TokenStatusFilter {
    fn schema() -> RefOr<Schema> {
        string_enum(
            ["active", "revoked", "expired", "all", ""],
            false,
            "`active` (the default, also when empty), `revoked`, `expired` or `all`.",
        )
        .into()
    }
}

impl ToSchema for TokenStatusFilter {}

/// An outcome of a token's use (empty: any).
#[derive(Debug, Clone, Copy)]
pub struct OutcomeFilter;

impl utoipa::PartialSchema for OutcomeFilter {
    fn schema() -> RefOr<Schema> {
        string_enum(
            Outcome::ALL.iter().map(|o| o.as_str()).chain([""]),
            false,
            "Only entries with this outcome (empty: any).",
        )
        .into()
    }
}

impl ToSchema for OutcomeFilter {}

/// An action of a token's log (empty: any).
#[derive(Debug, Clone, Copy)]
pub struct ActionFilter;

impl utoipa::PartialSchema for ActionFilter {
    fn schema() -> RefOr<Schema> {
        string_enum(
            Action::ALL.iter().map(|a| a.as_str()).chain([""]),
            false,
            "Only entries of this action (empty: any).",
        )
        .into()
    }
}

impl ToSchema for ActionFilter {}

// --- team API: resources -----------------------------------------------------------------------

/// The team.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Team {
    /// Id.
    #[schema(value_type = uuid::Uuid)]
    pub id: TeamId,
    /// Name.
    pub name: String,
    /// Created (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last changed (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// How many projects the team has.
    pub projects_count: u64,
}

/// A project. The `token_*` fields describe its first active token (null without one).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Project {
    /// Id.
    #[schema(value_type = uuid::Uuid)]
    pub id: ProjectId,
    /// Name.
    pub name: String,
    /// Whether the SMTP relay accepts the project's tokens.
    pub smtp_enabled: bool,
    /// Created (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last changed (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// When the first token's value was generated.
    #[schema(format = DateTime, required = true)]
    pub token_generated_at: Option<String>,
    /// When the first token was last used.
    #[schema(format = DateTime, required = true)]
    pub token_last_used_at: Option<String>,
    /// The client address that last used the first token.
    #[schema(required = true)]
    pub token_last_used_ip: Option<String>,
}

/// A project token (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Token {
    /// Id.
    #[schema(value_type = uuid::Uuid)]
    pub id: TokenId,
    /// Its project.
    #[schema(value_type = uuid::Uuid)]
    pub project_id: ProjectId,
    /// Name.
    pub name: String,
    /// A non-secret fragment to recognise the token by.
    #[schema(example = "lm_Ab3x…9Qz1")]
    pub hint: String,
    /// `active`, `revoked` or `expired`.
    #[schema(schema_with = token_status_schema)]
    pub status: &'static str,
    /// Created (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last changed: creation, rename or regeneration.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Last used.
    #[schema(format = DateTime, required = true)]
    pub last_used_at: Option<String>,
    /// The client address that last used it.
    #[schema(required = true)]
    pub last_used_ip: Option<String>,
    /// The front door it was last used through.
    #[schema(schema_with = nullable_channel_schema, required = true)]
    pub last_used_via: Option<&'static str>,
    /// When it stops working.
    #[schema(format = DateTime, required = true)]
    pub expires_at: Option<String>,
    /// When it was revoked.
    #[schema(format = DateTime, required = true)]
    pub revoked_at: Option<String>,
    /// While a rotation's overlap runs: when the previous value stops working (null: only the
    /// current value works).
    #[schema(format = DateTime, required = true)]
    pub previous_expires_at: Option<String>,
    /// The client networks (CIDR) it may be used from; empty: any address.
    #[schema(example = json!(["203.0.113.0/24", "2001:db8::/32"]))]
    pub allowed_ips: Vec<String>,
}

/// One use of a token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogEntry {
    /// Id (time-ordered).
    #[schema(value_type = uuid::Uuid)]
    pub id: LogEntryId,
    /// The token.
    #[schema(value_type = uuid::Uuid)]
    pub token_id: TokenId,
    /// When (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub at: String,
    /// The client address.
    #[schema(required = true)]
    pub ip: Option<String>,
    /// Front door.
    #[schema(schema_with = channel_schema)]
    pub via: &'static str,
    /// What the token was used for.
    #[schema(schema_with = action_schema)]
    pub action: &'static str,
    /// How it ended.
    #[schema(schema_with = outcome_schema)]
    pub outcome: &'static str,
    /// HTTP status or SMTP reply code.
    pub status: u16,
    /// Messages accepted by the request.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub message_ids: Vec<MessageId>,
    /// HTTP `User-Agent`.
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// Which of the token's values was presented.
    #[schema(schema_with = nullable_credential_schema, required = true)]
    pub credential: Option<&'static str>,
    /// Where the token's value was found, on the entry of a revocation by a leak report
    /// (`leak_report`, `revoked_leaked`); `null` otherwise.
    #[schema(required = true)]
    pub leak_url: Option<String>,
    /// Who made the change, for an entry of a change made in the dashboard (the member's
    /// email); `null` otherwise.
    #[schema(required = true)]
    pub actor: Option<String>,
}

// --- secret scanning ---------------------------------------------------------------------------

/// One value a secret scanner found (GitHub's partner program format).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeakReportItem {
    /// The value found.
    pub token: String,
    /// The scanner's name for the kind of secret.
    #[serde(rename = "type")]
    pub token_type: String,
    /// Where it was found.
    pub url: Option<String>,
    /// What kind of place it was found in (`content`, `commit`, `npm`, ...).
    pub source: Option<String>,
}

/// Whether a reported value was a token.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeakLabel {
    /// A token's value (it is revoked now, if it was not already).
    TruePositive,
    /// Not a token's value.
    FalsePositive,
}

/// The answer about one reported value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeakReportResult {
    /// The value as reported.
    pub token_raw: String,
    /// The `type` as reported.
    pub token_type: String,
    /// The verdict.
    pub label: LeakLabel,
}

// --- team API: envelopes -----------------------------------------------------------------------

/// The team, after a change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamMutation {
    /// The team.
    pub data: Team,
    /// A confirmation.
    pub message: String,
}

/// A project, after a change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectMutation {
    /// The project.
    pub data: Project,
    /// A confirmation.
    pub message: String,
}

/// A new project and its first token's value, shown only here.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectCreated {
    /// The project.
    pub data: Project,
    /// A confirmation.
    pub message: String,
    /// The first project token (shown once).
    #[schema(example = "lm_…")]
    pub api_token: String,
}

/// A project whose first token was regenerated, with the new value (shown once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectRotated {
    /// The project.
    pub data: Project,
    /// A confirmation.
    pub message: String,
    /// The first token's new value (shown once).
    #[schema(example = "lm_…")]
    pub new_token: String,
}

/// A token, after a rename.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenMutation {
    /// The token.
    pub data: Token,
    /// A confirmation.
    pub message: String,
}

/// A created or regenerated token with its value, shown only here.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenIssued {
    /// The token.
    pub data: Token,
    /// A confirmation.
    pub message: String,
    /// The full token value (shown once).
    #[schema(example = "lm_…")]
    pub token: String,
}

/// The cursor pagination of a list (query parameters).
#[derive(Debug, Clone, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page: 30 by default, at most 100 (larger sizes are clamped).
    #[param(rename = "page[size]", format = Int64, minimum = 0, maximum = 4_294_967_295_u32)]
    pub size: Option<u32>,
    /// The `next_cursor` or `prev_cursor` of an earlier page.
    #[param(
        rename = "page[cursor]",
        pattern = r"^([np]([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}|urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}))?$"
    )]
    pub cursor: Option<String>,
}

// --- cursor pages ------------------------------------------------------------------------------

macro_rules! cursor_page {
    ($(#[$doc:meta])* $name:ident of $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize, ToSchema)]
        pub struct $name {
            /// The items, in the requested order.
            pub data: Vec<$item>,
            /// This list's URL without its query.
            pub path: String,
            /// The page size.
            pub per_page: u32,
            /// Cursor of the next page (`page[cursor]`); null on the last page.
            #[schema(required = true)]
            pub next_cursor: Option<String>,
            /// URL of the next page; null on the last page.
            #[schema(required = true)]
            pub next_page_url: Option<String>,
            /// Cursor of the previous page; null on the first page.
            #[schema(required = true)]
            pub prev_cursor: Option<String>,
            /// URL of the previous page; null on the first page.
            #[schema(required = true)]
            pub prev_page_url: Option<String>,
        }
    };
}

cursor_page!(
    /// A page of projects.
    ProjectPage of Project
);
cursor_page!(
    /// A page of project tokens.
    TokenPage of Token
);
cursor_page!(
    /// A page of a token's log, newest first.
    LogPage of LogEntry
);

// --- operations --------------------------------------------------------------------------------

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// Always `ok`.
    #[schema(schema_with = health_status_schema)]
    pub status: &'static str,
}

fn health_status_schema() -> Schema {
    string_enum(["ok"], false, "Always `ok`.")
}

/// `GET /readyz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready"}))]
pub struct Readiness {
    /// `ready`, or `unavailable` when the store does not answer.
    #[schema(schema_with = readiness_status_schema)]
    pub status: &'static str,
    /// Why it is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<String>,
}

fn readiness_status_schema() -> Schema {
    string_enum(
        ["ready", "unavailable"],
        false,
        "`ready`, or `unavailable` when the store does not answer.",
    )
}

// --- messages ----------------------------------------------------------------------------------

/// A recipient (or the sender) of a message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Recipient {
    /// Address.
    pub email: String,
    /// Display name.
    #[schema(required = true)]
    pub name: Option<String>,
    /// Always null (no sandbox projects here).
    #[schema(required = true, value_type = Option<String>)]
    pub sandbox_result: Option<()>,
}

/// An attachment of a message, without its content.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageAttachment {
    /// Size in bytes.
    pub size: u64,
    /// File name.
    pub filename: String,
    /// Content-ID for inline use.
    #[schema(required = true)]
    pub content_id: Option<String>,
    /// MIME type.
    pub content_type: String,
}

/// A tag with a value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageTag {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Statuses a message can have.
#[derive(Debug)]
pub struct MessageStatusFilter;

impl utoipa::PartialSchema for MessageStatusFilter {
    fn schema() -> RefOr<Schema> {
        string_enum(
            lettermint_core::MessageStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .chain([""]),
            false,
            "Only messages with this status (empty: any).",
        )
        .into()
    }
}

impl ToSchema for MessageStatusFilter {}

/// A message: the upstream fields, then the delivery fields this server adds (`via`,
/// `attempts`, `last_reply`, `next_attempt_at`, `delivered_to`). For messages submitted over SMTP the sender
/// and recipients are the envelope's (all recipients under `to`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageData {
    /// Id (the `message_id` of the send).
    #[schema(value_type = uuid::Uuid)]
    pub id: MessageId,
    /// Always `outbound`.
    #[schema(value_type = String, example = "outbound")]
    pub r#type: &'static str,
    /// `pending`, `scheduled`, `processed` (an attempt is under way), `deferred` (retried
    /// later), `delivered` or `failed`.
    #[schema(value_type = String, example = "delivered")]
    pub status: &'static str,
    /// Always `live`.
    #[schema(value_type = String, example = "live")]
    pub delivery_mode: &'static str,
    /// Always null.
    #[schema(required = true, value_type = Option<String>)]
    pub sandbox_result: Option<()>,
    /// When the status last changed after acceptance (RFC 3339, UTC).
    #[schema(required = true, format = DateTime)]
    pub status_changed_at: Option<String>,
    /// When a scheduled message is due (RFC 3339, UTC).
    #[schema(required = true, format = DateTime)]
    pub scheduled_at: Option<String>,
    /// Tag.
    #[schema(required = true)]
    pub tag: Option<String>,
    /// Tags with values.
    pub tags: Vec<MessageTag>,
    /// Sender address.
    pub from_email: String,
    /// Sender name.
    #[schema(required = true)]
    pub from_name: Option<String>,
    /// Reply-to addresses.
    #[schema(required = true)]
    pub reply_to: Option<Vec<String>>,
    /// Subject.
    #[schema(required = true)]
    pub subject: Option<String>,
    /// Recipients.
    #[schema(required = true)]
    pub to: Option<Vec<Recipient>>,
    /// Carbon copies.
    #[schema(required = true)]
    pub cc: Option<Vec<Recipient>>,
    /// Blind carbon copies.
    #[schema(required = true)]
    pub bcc: Option<Vec<Recipient>>,
    /// Attachments (null for SMTP messages).
    #[schema(required = true)]
    pub attachments: Option<Vec<MessageAttachment>>,
    /// Metadata.
    #[schema(required = true)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Route.
    pub route_id: uuid::Uuid,
    /// Accepted (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Front door it came through: `api` or `smtp`.
    #[schema(value_type = String, example = "api")]
    pub via: &'static str,
    /// Delivery attempts started.
    pub attempts: u32,
    /// The smarthost's last reply, or why it could not be reached.
    #[schema(required = true)]
    pub last_reply: Option<String>,
    /// When the next attempt is due (null once delivered or failed).
    #[schema(required = true, format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// Recipients earlier attempts already reached while others were refused for now (later
    /// attempts go to the others only); empty otherwise.
    #[schema(example = json!([]))]
    pub delivered_to: Vec<String>,
}

cursor_page!(
    /// A page of messages.
    MessagePage of MessageData
);
