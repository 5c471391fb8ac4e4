//! Sessions and CSRF: the `lm_session` cookie, the logged-in [`Viewer`], and the guard that
//! refuses every state-changing form without the right `_csrf` field.
//!
//! - Session cookie: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` under TLS; its value is a
//!   random 256-bit string, stored only as a SHA-256 digest; a new one at every login.
//! - CSRF: logged-in forms carry [`lettermint_core::SessionSecret::csrf_token`] (derived from
//!   the cookie value, which script on another site cannot read); the login form carries the
//!   value of a separate random `lm_csrf` cookie (double submit). A request whose `Origin`
//!   names another host is refused as well.

use std::net::IpAddr;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use lettermint_core::{Account, Session, SessionSecret};
use subtle::ConstantTimeEq;

use super::DashError;
use crate::AppState;
use crate::client::Client;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "lm_session";
/// Name of the login form's CSRF cookie.
pub const CSRF_COOKIE: &str = "lm_csrf";
/// Largest form body the guard reads.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The logged-in person of a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Their session.
    pub session: Session,
    /// The cookie value (for the CSRF token of the page's forms).
    pub secret: SessionSecret,
    /// Their account.
    pub account: Account,
    /// Their address.
    pub ip: Option<IpAddr>,
}

impl Viewer {
    /// The header of their pages.
    #[must_use]
    pub fn chrome(&self) -> super::Chrome {
        super::Chrome {
            display_name: self.account.display_name.as_str().to_owned(),
            email: self.account.email.as_str().to_owned(),
            csrf: self.secret.csrf_token(),
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, DashError> {
        let next = if parts.method == Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
        } else {
            "/".to_owned()
        };
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(secret) = jar
            .get(SESSION_COOKIE)
            .and_then(|c| SessionSecret::parse(c.value()))
        else {
            return Err(DashError::LoginRequired { next });
        };
        match state.services.accounts.resume(&secret).await? {
            Some((session, account)) => Ok(Viewer {
                session,
                secret,
                account,
                ip: client_ip(parts, state),
            }),
            None => Err(DashError::LoginRequired { next }),
        }
    }
}

/// The client address of a request (honouring trusted proxies).
pub fn client_ip(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    Client::from_parts(parts, &state.config.trusted_proxies).ip
}

/// Whether cookies of this request must be `Secure`: configured so, or a trusted proxy says
/// the client used HTTPS.
pub fn is_secure(parts: &Parts, state: &AppState) -> bool {
    if state.config.secure_cookies {
        return true;
    }
    let from_trusted = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|c| crate::client::is_trusted_proxy(c.0.ip(), &state.config.trusted_proxies));
    from_trusted
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A cookie with the dashboard's attributes.
pub fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .build()
}

/// A cookie that removes `name`.
pub fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = cookie(name, String::new(), secure);
    c.make_removal();
    c
}

/// Refuses POSTs without a valid `_csrf` field (403, nothing runs), and cross-origin POSTs.
pub async fn csrf_guard(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    if cross_origin(&parts.headers) {
        return DashError::Csrf.into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return DashError::Invalid("The form is too large.".into()).into_response();
    };
    let presented = form_field(&bytes, "_csrf").unwrap_or_default();
    let jar = CookieJar::from_headers(&parts.headers);
    let valid = if parts.uri.path() == "/login" {
        jar.get(CSRF_COOKIE)
            .is_some_and(|c| !c.value().is_empty() && constant_time_eq(c.value(), &presented))
    } else {
        jar.get(SESSION_COOKIE)
            .and_then(|c| SessionSecret::parse(c.value()))
            .is_some_and(|secret| secret.csrf_matches(&presented))
    };
    if !valid {
        tracing::info!(path = %parts.uri.path(), "refused a form without a valid CSRF token");
        return DashError::Csrf.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Whether `Origin` (when sent) names another host than `Host`.
fn cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

/// The first value of `name` in a URL-encoded form.
fn form_field(body: &Bytes, name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Compares two strings in time independent of where they differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_origin_posts_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(!cross_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(!cross_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(cross_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(cross_origin(&h));
    }

    #[test]
    fn form_fields_are_read_from_urlencoded_bodies() {
        let body = Bytes::from_static(b"name=a+b&_csrf=x%2By&_csrf=second");
        assert_eq!(form_field(&body, "_csrf").as_deref(), Some("x+y"));
        assert_eq!(form_field(&body, "name").as_deref(), Some("a b"));
        assert_eq!(form_field(&body, "missing"), None);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
