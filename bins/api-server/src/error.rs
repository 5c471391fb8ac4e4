//! One error type for every handler, rendered in the contract's shapes.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lettermint_core::{Error, ValidationErrors};
use serde_json::Value;

use crate::wire::{ErrorBody, ErrorCode, ErrorDetail, ValidationErrorBody, to_value};

/// What a handler can answer instead of its result.
#[derive(Debug)]
pub enum ApiError {
    /// 401: any authentication failure, one body whatever the reason.
    Unauthenticated,
    /// 403: the team token lacks an ability.
    Forbidden,
    /// 404.
    NotFound(&'static str),
    /// 409.
    Conflict(String),
    /// 422 with every bad field.
    Validation(ValidationErrors),
    /// 400: the body is not JSON.
    MalformedJson(String),
    /// 415: the body is not declared as JSON.
    UnsupportedMediaType,
    /// 413.
    PayloadTooLarge,
    /// 429.
    RateLimited {
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// 503: the store is unreachable or overloaded.
    Unavailable,
    /// 500: never echoes internals.
    Internal,
}

impl ApiError {
    /// A 422 about one field.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        let mut errors = ValidationErrors::default();
        errors.add(field, problem);
        ApiError::Validation(errors)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::Validation(v) => ApiError::Validation(v),
            Error::NotFound { entity } => ApiError::NotFound(entity),
            Error::Conflict { message } => ApiError::Conflict(message),
            Error::Unauthenticated(_) => ApiError::Unauthenticated,
            Error::Forbidden { .. } => ApiError::Forbidden,
            Error::Storage(e) => {
                tracing::error!(error = %e, "storage failure");
                ApiError::Unavailable
            }
            Error::Randomness(e) => {
                tracing::error!(error = %e, "randomness unavailable");
                ApiError::Internal
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::JsonSyntaxError(e) => ApiError::MalformedJson(e.body_text()),
            JsonRejection::JsonDataError(e) => ApiError::MalformedJson(e.body_text()),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            other => ApiError::MalformedJson(other.body_text()),
        }
    }
}

impl ApiError {
    /// The HTTP status this error is answered with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthenticated => 401,
            ApiError::Forbidden => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::Validation(_) => 422,
            ApiError::MalformedJson(_) => 400,
            ApiError::UnsupportedMediaType => 415,
            ApiError::PayloadTooLarge => 413,
            ApiError::RateLimited { .. } => 429,
            ApiError::Unavailable => 503,
            ApiError::Internal => 500,
        }
    }
}

fn capitalized(entity: &str) -> String {
    let mut chars = entity.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

fn coded(message: impl Into<String>, code: ErrorCode, detail: impl Into<String>) -> Value {
    to_value(ErrorBody {
        message: message.into(),
        error: Some(ErrorDetail {
            code,
            message: detail.into(),
        }),
    })
}

fn plain(message: impl Into<String>) -> Value {
    to_value(ErrorBody {
        message: message.into(),
        error: None,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body): (StatusCode, Value) = match &self {
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                coded(
                    "Unauthenticated.",
                    ErrorCode::Unauthenticated,
                    "Unauthenticated.",
                ),
            ),
            ApiError::Forbidden => {
                let message =
                    "This token does not have the required abilities to perform this action.";
                (
                    StatusCode::FORBIDDEN,
                    coded(message, ErrorCode::Forbidden, message),
                )
            }
            ApiError::NotFound(entity) => {
                let message = format!("{} not found.", capitalized(entity));
                (
                    StatusCode::NOT_FOUND,
                    coded(message.clone(), ErrorCode::NotFound, message),
                )
            }
            ApiError::Conflict(message) => (StatusCode::CONFLICT, plain(message.clone())),
            ApiError::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                to_value(ValidationErrorBody {
                    message: errors.to_string(),
                    errors: errors.fields().clone(),
                }),
            ),
            ApiError::MalformedJson(detail) => (
                StatusCode::BAD_REQUEST,
                coded(
                    format!("The request body is not valid JSON: {detail}"),
                    ErrorCode::MalformedJson,
                    detail.clone(),
                ),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                coded(
                    "Send the request body as JSON with `Content-Type: application/json`.",
                    ErrorCode::UnsupportedMediaType,
                    "Expected application/json.",
                ),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                coded(
                    "The request body is too large.",
                    ErrorCode::PayloadTooLarge,
                    "The request body is too large.",
                ),
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                plain("Too many requests. Retry after the time in the Retry-After header."),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                coded(
                    "The service is temporarily unavailable. Retry later.",
                    ErrorCode::ServiceUnavailable,
                    "Retry later.",
                ),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                coded("Server error.", ErrorCode::Internal, "Server error."),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if let ApiError::Unavailable = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Handlers' result.
pub type ApiResult<T> = Result<T, ApiError>;
