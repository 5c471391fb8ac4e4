//! Leak reports from secret scanning (GitHub's partner program format): a signed JSON array of
//! token values found in public. The signature is checked here; what happens to the values is
//! the core's [`LeakService`](lettermint_core::LeakService).
//!
//! GitHub signs the raw request body with ECDSA P-256 over SHA-256 and sends the ASN.1 DER
//! signature, base64-encoded, in `Github-Public-Key-Signature`, and the id of the key it used in
//! `Github-Public-Key-Identifier`. The keys are configured (`leak_report_keys`); with none the
//! endpoint answers 404, as if it did not exist.

use std::fmt;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use lettermint_core::{LeakReporter, LeakVerdict, LeakedValue};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;

use crate::AppState;
use crate::client::Client;
use crate::config::LeakReportKey;
use crate::error::ApiError;
use crate::openapi::LeakReportErrors;
use crate::wire::{LeakLabel, LeakReportItem, LeakReportResult};

/// Header naming the key that signed a report.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
/// Header carrying the base64 ASN.1 DER ECDSA signature of the body.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// The public keys that may sign leak reports, by id.
#[derive(Clone, Default)]
pub struct LeakReportKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl fmt::Debug for LeakReportKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(id, _)| id))
            .finish()
    }
}

impl LeakReportKeys {
    /// Parses configured keys; each needs its PEM text (a `pem_file` is read when the
    /// configuration is loaded). The error names the key, never its content.
    pub fn parse(configured: &[LeakReportKey]) -> Result<Self, String> {
        let mut keys = Vec::with_capacity(configured.len());
        for key in configured {
            if key.id.trim().is_empty() {
                return Err("a leak report key has an empty id".to_owned());
            }
            let pem = key.pem.as_deref().ok_or_else(|| {
                format!(
                    "leak report key {:?} has no PEM: set pem_file to a file holding its \
                     public key",
                    key.id
                )
            })?;
            let parsed = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
                format!(
                    "leak report key {:?} is not a PEM ECDSA P-256 public key: {e}",
                    key.id
                )
            })?;
            keys.push((key.id.clone(), parsed));
        }
        Ok(Self { keys })
    }

    /// No key: leak reports are turned off.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `signature` (base64 ASN.1 DER) is a valid signature of `body` by the key named
    /// `key_id`. Any missing, unknown or malformed part is simply `false`.
    #[must_use]
    pub fn verify(&self, key_id: Option<&str>, signature: Option<&str>, body: &[u8]) -> bool {
        let (Some(key_id), Some(signature)) = (key_id, signature) else {
            return false;
        };
        let Some((_, key)) = self.keys.iter().find(|(id, _)| id == key_id.trim()) else {
            return false;
        };
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(signature) = DerSignature::from_bytes(&der) else {
            return false;
        };
        key.verify(body, &signature).is_ok()
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[derive(Deserialize)]
struct ReportedValue {
    token: String,
    #[serde(rename = "type", default)]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
}

/// Report leaked tokens (secret scanning)
///
/// For GitHub's secret scanning partner program: a JSON array of values found in public, signed
/// by a configured key (`Github-Public-Key-Identifier`, and `Github-Public-Key-Signature`: the
/// base64 ASN.1 DER ECDSA P-256 / SHA-256 signature of the raw body). Every value that is a
/// live token (project or team) is revoked before the answer is sent, and the revocation is
/// logged against the token with the URL where it was found. The answer labels each value
/// `true_positive` (a token's value) or `false_positive` (anything else), in order. A request
/// that is unsigned or badly signed gets the same `401` whatever it holds, and changes
/// nothing. Answers `404` when no key is configured.
#[utoipa::path(
    post,
    path = "/v1/secret-scanning/report",
    tag = "Secret scanning",
    operation_id = "reportLeakedTokens",
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "Id of the configured key that signed the body."),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 ASN.1 DER ECDSA P-256 signature of the raw body (SHA-256)."),
    ),
    request_body(content = Vec<LeakReportItem>, description = "The values found, as the scanner sends them.", content_type = "application/json"),
    responses(
        (status = 200, description = "Each value's label, in order; true positives are revoked.", body = Vec<LeakReportResult>),
        LeakReportErrors,
    )
)]
pub async fn report(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    if state.leak_keys.is_empty() {
        return ApiError::NotFound("route").into_response();
    }
    let verified = state.leak_keys.verify(
        header(&parts.headers, KEY_ID_HEADER),
        header(&parts.headers, SIGNATURE_HEADER),
        &body,
    );
    if !verified {
        metrics::counter!("lettermint_leak_reports_total", "outcome" => "unverified").increment(1);
        return ApiError::Unauthenticated.into_response();
    }
    let values: Vec<ReportedValue> = match serde_json::from_slice(&body) {
        Ok(values) => values,
        Err(e) => {
            metrics::counter!("lettermint_leak_reports_total", "outcome" => "malformed")
                .increment(1);
            return ApiError::MalformedJson(e.to_string()).into_response();
        }
    };
    let client = Client::from_parts(&parts, &state.config.trusted_proxies);
    let leaked: Vec<LeakedValue> = values
        .iter()
        .map(|v| LeakedValue {
            value: v.token.clone(),
            url: v.url.clone(),
        })
        .collect();
    let reporter = LeakReporter {
        ip: client.ip,
        user_agent: client.user_agent,
    };
    let verdicts = match state.services.leaks.report(&leaked, &reporter).await {
        Ok(verdicts) => verdicts,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let revoked = verdicts
        .iter()
        .filter(|v| **v == LeakVerdict::TruePositive)
        .count();
    tracing::warn!(
        values = values.len(),
        true_positives = revoked,
        "verified leak report: listed live tokens revoked"
    );
    metrics::counter!("lettermint_leak_reports_total", "outcome" => "verified").increment(1);
    let results: Vec<LeakReportResult> = values
        .into_iter()
        .zip(verdicts)
        .map(|(value, verdict)| LeakReportResult {
            token_raw: value.token,
            token_type: value.token_type,
            label: match verdict {
                LeakVerdict::TruePositive => LeakLabel::TruePositive,
                LeakVerdict::FalsePositive => LeakLabel::FalsePositive,
            },
        })
        .collect();
    axum::Json(results).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pem: Option<&str>) -> Result<LeakReportKeys, String> {
        LeakReportKeys::parse(&[LeakReportKey {
            id: "k1".into(),
            pem_file: None,
            pem: pem.map(str::to_owned),
        }])
    }

    #[test]
    fn bad_configuration_is_refused_by_name_without_its_content() {
        let err = keys(Some(
            "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----",
        ))
        .unwrap_err();
        assert!(err.contains("\"k1\""), "{err}");
        assert!(!err.contains("not base64"), "{err}");
        assert!(keys(None).unwrap_err().contains("pem_file"));
    }

    #[test]
    fn missing_and_garbage_signatures_do_not_verify() {
        let keys = LeakReportKeys::default();
        assert!(!keys.verify(None, None, b"[]"));
        assert!(!keys.verify(Some("k1"), Some("%%%"), b"[]"));
    }
}
