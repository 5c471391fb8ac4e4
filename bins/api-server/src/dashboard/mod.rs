//! The dashboard: server-rendered pages under `/` for the people of a team (the APIs stay
//! under `/v1`). Members log in with an email and an argon2id password; a session is a random
//! cookie value stored as its SHA-256 digest; every state-changing form carries a CSRF token
//! derived from the session ([`session`]). Pages are askama templates in `templates/`, styled
//! by one stylesheet; the only script is the "Copy" button.
//!
//! Authorisation is the core's: a URL names a team, the viewer's membership of it decides
//! (not a member: 404, as if it did not exist; a `member` posting a token form: 403), and token
//! changes go through [`lettermint_core::ConsoleService`], which writes the audit log and the
//! token's log.

mod pages;
pub mod session;
mod view;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use lettermint_core::{ForProject, ForTeam};

use crate::AppState;

pub use session::{CSRF_COOKIE, SESSION_COOKIE, Viewer};

/// The dashboard's routes, behind its CSRF guard and security headers.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/account", get(pages::account))
        .route("/account/password", post(pages::change_password))
        .route("/account/logout-everywhere", post(pages::logout_everywhere))
        .route("/teams/{team}", get(pages::projects))
        .route(
            "/teams/{team}/members",
            get(pages::members).post(pages::add_member),
        )
        .route(
            "/teams/{team}/members/{account}/remove",
            post(pages::remove_member),
        )
        .route("/teams/{team}/audit", get(pages::audit))
        .route("/teams/{team}/projects/{project}", get(pages::project))
        .route(
            "/teams/{team}/projects/{project}/tokens",
            get(pages::list::<ForProject>).post(pages::create::<ForProject>),
        )
        .route(
            "/teams/{team}/projects/{project}/tokens/new",
            get(pages::new::<ForProject>),
        )
        .route(
            "/teams/{team}/projects/{project}/tokens/{token}/regenerate",
            get(pages::confirm_regenerate::<ForProject>).post(pages::regenerate::<ForProject>),
        )
        .route(
            "/teams/{team}/projects/{project}/tokens/{token}/revoke",
            get(pages::confirm_revoke::<ForProject>).post(pages::revoke::<ForProject>),
        )
        .route(
            "/teams/{team}/projects/{project}/tokens/{token}/logs",
            get(pages::token_logs::<ForProject>),
        )
        .route(
            "/teams/{team}/team-tokens",
            get(pages::list::<ForTeam>).post(pages::create::<ForTeam>),
        )
        .route("/teams/{team}/team-tokens/new", get(pages::new::<ForTeam>))
        .route(
            "/teams/{team}/team-tokens/{token}/regenerate",
            get(pages::confirm_regenerate::<ForTeam>).post(pages::regenerate::<ForTeam>),
        )
        .route(
            "/teams/{team}/team-tokens/{token}/revoke",
            get(pages::confirm_revoke::<ForTeam>).post(pages::revoke::<ForTeam>),
        )
        .route(
            "/teams/{team}/team-tokens/{token}/logs",
            get(pages::token_logs::<ForTeam>),
        )
        .route_layer(axum::middleware::from_fn(session::csrf_guard))
        .route("/assets/dashboard.css", get(stylesheet))
        .route("/assets/dashboard.js", get(script))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The page a request for no known route gets when the dashboard is on.
pub async fn not_found() -> Response {
    DashError::NotFound.into_response()
}

async fn stylesheet() -> Response {
    asset(
        include_str!("../../assets/dashboard.css"),
        "text/css; charset=utf-8",
    )
}

async fn script() -> Response {
    asset(
        include_str!("../../assets/dashboard.js"),
        "text/javascript; charset=utf-8",
    )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Pages are never cached (some show a secret once), never framed, and run only this origin's
/// script.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(headers, header::CACHE_CONTROL, "no-store");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    response
}

/// The frame every page shares: its title, the logged-in header and breadcrumbs.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// `<title>` (before "· Lettermint").
    pub title: String,
    /// The header of a logged-in page.
    pub chrome: Option<Chrome>,
    /// Breadcrumbs: (href, label).
    pub crumbs: Vec<(String, String)>,
}

impl Frame {
    /// The CSRF token of the page's forms.
    #[must_use]
    pub fn chrome_csrf(&self) -> &str {
        self.chrome.as_ref().map_or("", |c| c.csrf.as_str())
    }
}

/// Who is logged in, for the header.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// Display name.
    pub display_name: String,
    /// Email.
    pub email: String,
    /// CSRF token of the session.
    pub csrf: String,
}

/// Renders a template with a status.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    f: Frame,
    heading: &'static str,
    message: String,
}

/// What a dashboard request can end with instead of its page.
#[derive(Debug)]
pub enum DashError {
    /// Not logged in (or the session ended): go to the login page, then back to `next`.
    LoginRequired {
        /// Where to return after logging in (a local path).
        next: String,
    },
    /// No such page, or a team the viewer is not a member of.
    NotFound,
    /// The viewer's role does not allow this.
    Forbidden,
    /// A state-changing form without a valid CSRF token.
    Csrf,
    /// Input the page cannot show next to a field.
    Invalid(String),
    /// Anything else; logged, never shown.
    Internal,
}

impl From<lettermint_core::Error> for DashError {
    fn from(e: lettermint_core::Error) -> Self {
        use lettermint_core::Error;
        match e {
            Error::NotFound { .. } => DashError::NotFound,
            Error::Forbidden { .. } => DashError::Forbidden,
            Error::Unauthenticated(_) => DashError::LoginRequired { next: "/".into() },
            Error::Validation(v) => DashError::Invalid(v.to_string()),
            Error::Conflict { message } => DashError::Invalid(message),
            other => {
                tracing::error!(error = %other, "dashboard request failed");
                DashError::Internal
            }
        }
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match self {
            DashError::LoginRequired { next } => {
                let target = if next == "/" || next.is_empty() {
                    "/login".to_owned()
                } else {
                    format!("/login?next={}", view::encode_component(&next))
                };
                return Redirect::to(&target).into_response();
            }
            DashError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing here, or it belongs to a team you are not a member of.".to_owned(),
            ),
            DashError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Your role in this team does not allow this. Ask an owner or an admin.".to_owned(),
            ),
            DashError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form has expired or did not come from this site. Go back, reload the page and try again.".to_owned(),
            ),
            DashError::Invalid(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "That did not work",
                message,
            ),
            DashError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not finish this request. It was logged; try again in a moment.".to_owned(),
            ),
        };
        render(
            status,
            &ErrorPage {
                f: Frame {
                    title: heading.to_owned(),
                    ..Frame::default()
                },
                heading,
                message,
            },
        )
    }
}
