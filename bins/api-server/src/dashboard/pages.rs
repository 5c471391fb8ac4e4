//! The page handlers.

use std::collections::HashMap;
use std::net::IpAddr;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use lettermint_core::page::{Direction, LogSortKey, ProjectSortKey, Sort, TokenSortKey};
use lettermint_core::{
    Abilities, AccountId, Action, Actor, Cursor, Error, ForProject, ForTeam, LogFilter, LoginError,
    Member, PageRequest, Project, ProjectId, Role, Scope, SessionSecret, Team, TeamId, Token,
    TokenId, TokenService, TokenStatus, TokenStatusFilter, kind::Owner,
};
use serde::Deserialize;
use time::OffsetDateTime;

use super::session::{self, CSRF_COOKIE, SESSION_COOKIE, Viewer};
use super::view::{absolute, iso, local_path, relative};
use super::{DashError, Frame, render};
use crate::AppState;

type Page = Result<Response, DashError>;

/// Client address and whether cookies must be `Secure`.
pub struct Ctx {
    ip: Option<IpAddr>,
    secure: bool,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Ctx {
            ip: session::client_ip(parts, state),
            secure: session::is_secure(parts, state),
        })
    }
}

/// The fields of a URL-encoded form (repeated names kept).
pub struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &Bytes) -> Self {
        Self(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T, DashError> {
    text.parse().map_err(|_| DashError::NotFound)
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The viewer's membership of the team in the URL, and the team (404 for non-members).
async fn membership(
    state: &AppState,
    viewer: &Viewer,
    team: &str,
) -> Result<(Member, Team), DashError> {
    let team_id: TeamId = parse_id(team)?;
    let member = state
        .services
        .accounts
        .member_of(viewer.account.id, team_id)
        .await?;
    let team = state
        .services
        .teams
        .get(Scope::Team(team_id), team_id)
        .await?;
    Ok((member, team))
}

fn frame(viewer: &Viewer, title: impl Into<String>, crumbs: Vec<(String, String)>) -> Frame {
    Frame {
        title: title.into(),
        chrome: Some(viewer.chrome()),
        crumbs,
    }
}

fn team_crumbs(team: &Team) -> Vec<(String, String)> {
    vec![
        ("/".to_owned(), "Teams".to_owned()),
        (format!("/teams/{}", team.id), team.name.as_str().to_owned()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Login and sessions

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    f: Frame,
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginQuery {
    next: String,
    ended: String,
}

/// The login form's CSRF cookie value: the one the browser has, or a new one.
fn login_csrf(jar: &CookieJar) -> Result<String, DashError> {
    match jar
        .get(CSRF_COOKIE)
        .and_then(|c| SessionSecret::parse(c.value()))
    {
        Some(existing) => Ok(existing.expose_secret().to_owned()),
        None => Ok(SessionSecret::mint()?.expose_secret().to_owned()),
    }
}

#[allow(clippy::too_many_arguments)]
fn login_page(
    status: StatusCode,
    jar: CookieJar,
    ctx: &Ctx,
    next: &str,
    email: &str,
    error: Option<String>,
    notice: Option<String>,
    retry_after: Option<i64>,
) -> Page {
    let csrf = login_csrf(&jar)?;
    let jar = jar.add(session::cookie(CSRF_COOKIE, csrf.clone(), ctx.secure));
    let mut response = (
        jar,
        render(
            status,
            &LoginPage {
                f: Frame {
                    title: "Log in".into(),
                    ..Frame::default()
                },
                csrf,
                next: local_path(next).to_owned(),
                email: email.to_owned(),
                error,
                notice,
            },
        ),
    )
        .into_response();
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Ok(response)
}

/// `GET /login`.
pub async fn login_form(
    State(state): State<AppState>,
    ctx: Ctx,
    jar: CookieJar,
    Query(query): Query<LoginQuery>,
) -> Page {
    if let Some(secret) = jar
        .get(SESSION_COOKIE)
        .and_then(|c| SessionSecret::parse(c.value()))
        && state.services.accounts.resume(&secret).await?.is_some()
    {
        return Ok(see_other(local_path(&query.next)));
    }
    let notice = match query.ended.as_str() {
        "logout" => Some("You have logged out.".to_owned()),
        "everywhere" => Some("Every session of your account has ended.".to_owned()),
        _ => None,
    };
    login_page(
        StatusCode::OK,
        jar,
        &ctx,
        &query.next,
        "",
        None,
        notice,
        None,
    )
}

/// `POST /login`: a new session (a new cookie value: the one before, if any, is ended).
pub async fn login(State(state): State<AppState>, ctx: Ctx, jar: CookieJar, body: Bytes) -> Page {
    let form = Fields::parse(&body);
    let (email, next) = (form.get("email"), form.get("next"));
    match state
        .services
        .accounts
        .login(&email, form.get("password"), ctx.ip)
        .await
    {
        Ok(started) => {
            if let Some(old) = jar
                .get(SESSION_COOKIE)
                .and_then(|c| SessionSecret::parse(c.value()))
                && let Some((session, _)) = state.services.accounts.resume(&old).await?
            {
                state.services.accounts.logout(&session, ctx.ip).await?;
            }
            let jar = jar
                .add(session::cookie(
                    SESSION_COOKIE,
                    started.secret.expose_secret().to_owned(),
                    ctx.secure,
                ))
                .add(session::removal(CSRF_COOKIE, ctx.secure));
            Ok((jar, see_other(local_path(&next))).into_response())
        }
        Err(LoginError::InvalidCredentials) => login_page(
            StatusCode::UNAUTHORIZED,
            jar,
            &ctx,
            &next,
            &email,
            Some(LoginError::InvalidCredentials.to_string()),
            None,
            None,
        ),
        Err(e @ LoginError::Throttled { retry_after }) => login_page(
            StatusCode::TOO_MANY_REQUESTS,
            jar,
            &ctx,
            &next,
            &email,
            Some(e.to_string()),
            None,
            Some(retry_after.whole_seconds().max(1)),
        ),
        Err(LoginError::Other(e)) => Err(e.into()),
    }
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    ctx: Ctx,
    jar: CookieJar,
) -> Page {
    state
        .services
        .accounts
        .logout(&viewer.session, ctx.ip)
        .await?;
    let jar = jar.add(session::removal(SESSION_COOKIE, ctx.secure));
    Ok((jar, see_other("/login?ended=logout")).into_response())
}

/// `POST /account/logout-everywhere`.
pub async fn logout_everywhere(
    State(state): State<AppState>,
    viewer: Viewer,
    ctx: Ctx,
    jar: CookieJar,
) -> Page {
    state
        .services
        .accounts
        .logout_everywhere(&viewer.session, ctx.ip)
        .await?;
    let jar = jar.add(session::removal(SESSION_COOKIE, ctx.secure));
    Ok((jar, see_other("/login?ended=everywhere")).into_response())
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    f: Frame,
    email: String,
    password_changed: String,
    session_started: String,
    flash: Option<String>,
    current_error: Option<String>,
    new_error: Option<String>,
    confirm_error: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DoneQuery {
    done: String,
    cursor: String,
    kind: String,
}

fn account_view(viewer: &Viewer, flash: Option<String>) -> AccountPage {
    let now = OffsetDateTime::now_utc();
    AccountPage {
        f: frame(viewer, "Account", vec![("/".into(), "Teams".into())]),
        email: viewer.account.email.as_str().to_owned(),
        password_changed: relative(now, viewer.account.password_changed_at),
        session_started: relative(now, viewer.session.created_at),
        flash,
        current_error: None,
        new_error: None,
        confirm_error: None,
    }
}

/// `GET /account`.
pub async fn account(viewer: Viewer, Query(query): Query<DoneQuery>) -> Page {
    let flash = (query.done == "password")
        .then(|| "Password changed. Every other session of this account has ended.".to_owned());
    Ok(render(StatusCode::OK, &account_view(&viewer, flash)))
}

/// `POST /account/password`.
pub async fn change_password(
    State(state): State<AppState>,
    viewer: Viewer,
    ctx: Ctx,
    body: Bytes,
) -> Page {
    let form = Fields::parse(&body);
    let (current, new, confirm) = (
        form.get("current_password"),
        form.get("new_password"),
        form.get("confirm_password"),
    );
    let mut page = account_view(&viewer, None);
    if new != confirm {
        page.confirm_error = Some("The new password confirmation does not match.".into());
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    match state
        .services
        .accounts
        .change_password(&viewer.session, current, new, ctx.ip)
        .await
    {
        Ok(()) => Ok(see_other("/account?done=password")),
        Err(Error::Validation(errors)) => {
            for (field, problems) in errors.fields() {
                let message = problems.join(" ");
                match field.as_str() {
                    "current_password" | "password" => page.current_error = Some(message),
                    _ => page.new_error = Some(message),
                }
            }
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Teams and projects

struct TeamRow {
    id: TeamId,
    name: String,
    role: Role,
}

#[derive(Template)]
#[template(path = "teams.html")]
struct TeamsPage {
    f: Frame,
    teams: Vec<TeamRow>,
}

/// `GET /`: the viewer's teams (straight to the team when there is one).
pub async fn home(State(state): State<AppState>, viewer: Viewer) -> Page {
    let teams = state.services.accounts.teams_of(viewer.account.id).await?;
    if let [(team, _)] = teams.as_slice() {
        return Ok(see_other(&format!("/teams/{}", team.id)));
    }
    Ok(render(
        StatusCode::OK,
        &TeamsPage {
            f: frame(&viewer, "Teams", Vec::new()),
            teams: teams
                .into_iter()
                .map(|(t, role)| TeamRow {
                    id: t.id,
                    name: t.name.as_str().to_owned(),
                    role,
                })
                .collect(),
        },
    ))
}

struct ProjectRow {
    id: ProjectId,
    name: String,
    smtp: &'static str,
    created: String,
    created_iso: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    f: Frame,
    team_id: TeamId,
    team_name: String,
    role: Role,
    tab: &'static str,
    projects: Vec<ProjectRow>,
}

/// `GET /teams/{team}`: the team's projects.
pub async fn projects(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(team): Path<String>,
) -> Page {
    let (member, team) = membership(&state, &viewer, &team).await?;
    let request = PageRequest::first(
        100,
        Sort {
            key: ProjectSortKey::Name,
            direction: Direction::Ascending,
        },
    );
    let now = OffsetDateTime::now_utc();
    let page = state
        .services
        .projects
        .list(Scope::Team(team.id), team.id, None, &request)
        .await?;
    Ok(render(
        StatusCode::OK,
        &ProjectsPage {
            f: frame(
                &viewer,
                format!("Projects · {}", team.name.as_str()),
                team_crumbs(&team),
            ),
            team_id: team.id,
            team_name: team.name.as_str().to_owned(),
            role: member.role,
            tab: "projects",
            projects: page
                .items
                .into_iter()
                .map(|p| ProjectRow {
                    id: p.id,
                    name: p.name.as_str().to_owned(),
                    smtp: if p.smtp_enabled { "Enabled" } else { "Off" },
                    created: relative(now, p.created_at),
                    created_iso: iso(p.created_at),
                })
                .collect(),
        },
    ))
}

async fn project_of(
    state: &AppState,
    viewer: &Viewer,
    team: &str,
    project: &str,
) -> Result<(Member, Team, Project), DashError> {
    let (member, team) = membership(state, viewer, team).await?;
    let project_id: ProjectId = parse_id(project)?;
    let project = state
        .services
        .projects
        .get(Scope::Team(team.id), project_id)
        .await?;
    Ok((member, team, project))
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    f: Frame,
    team_id: TeamId,
    team_name: String,
    project_id: ProjectId,
    project_name: String,
    smtp: &'static str,
    active_tokens: String,
    created: String,
}

/// `GET /teams/{team}/projects/{project}`.
pub async fn project(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((team, project)): Path<(String, String)>,
) -> Page {
    let (_, team, project) = project_of(&state, &viewer, &team, &project).await?;
    let request = PageRequest::first(
        100,
        Sort {
            key: TokenSortKey::CreatedAt,
            direction: Direction::Descending,
        },
    );
    let active = state
        .services
        .project_tokens
        .list(
            Scope::Team(team.id),
            project.id,
            TokenStatusFilter::Active,
            &request,
        )
        .await?;
    let mut crumbs = team_crumbs(&team);
    crumbs.push((
        format!("/teams/{}/projects/{}", team.id, project.id),
        project.name.as_str().to_owned(),
    ));
    Ok(render(
        StatusCode::OK,
        &ProjectPage {
            f: frame(&viewer, project.name.as_str(), crumbs),
            team_id: team.id,
            team_name: team.name.as_str().to_owned(),
            project_id: project.id,
            project_name: project.name.as_str().to_owned(),
            smtp: if project.smtp_enabled {
                "Enabled: tokens also authenticate the SMTP relay"
            } else {
                "Off"
            },
            active_tokens: if active.next_cursor.is_some() {
                "100+".into()
            } else {
                active.items.len().to_string()
            },
            created: absolute(project.created_at),
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Tokens of either kind

/// Whose tokens a page shows, read from the URL (`/teams/{team}/projects/{project}/tokens/…`
/// or `/teams/{team}/team-tokens/…`) for the logged-in viewer: extracting it checks the
/// viewer's membership (404 otherwise).
pub struct Place<K: Owner> {
    viewer: Viewer,
    /// The `{token}` of the URL, on a token's own pages.
    token: Option<String>,
    owner: K::Id,
    member: Member,
    team: Team,
    /// `/teams/{t}/projects/{p}/tokens` or `/teams/{t}/team-tokens`.
    base: String,
    /// "Team · Project" or "Team".
    owner_label: String,
    heading: &'static str,
    crumbs: Vec<(String, String)>,
    team_tab: bool,
}

pub trait DashKind: Owner {
    /// Whether its tokens carry abilities (team tokens).
    const SHOWS_ABILITIES: bool;
    /// The place named by the URL's parameters.
    fn place(
        state: &AppState,
        viewer: Viewer,
        params: &HashMap<String, String>,
    ) -> impl Future<Output = Result<Place<Self>, DashError>> + Send;
    fn service(state: &AppState) -> &TokenService<Self>;
    fn abilities_text(abilities: &Self::Abilities) -> Option<String>;
    fn abilities_from(form: &Fields) -> Result<Self::Abilities, Error>;
    fn ability_choices(checked: &[String]) -> Vec<(String, bool)>;
}

impl DashKind for ForProject {
    const SHOWS_ABILITIES: bool = false;
    async fn place(
        state: &AppState,
        viewer: Viewer,
        params: &HashMap<String, String>,
    ) -> Result<Place<Self>, DashError> {
        let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
        project_place(state, viewer, param("team"), param("project")).await
    }
    fn service(state: &AppState) -> &TokenService<Self> {
        &state.services.project_tokens
    }
    fn abilities_text(_: &()) -> Option<String> {
        None
    }
    fn abilities_from(_: &Fields) -> Result<(), Error> {
        Ok(())
    }
    fn ability_choices(_: &[String]) -> Vec<(String, bool)> {
        Vec::new()
    }
}

impl DashKind for ForTeam {
    const SHOWS_ABILITIES: bool = true;
    async fn place(
        state: &AppState,
        viewer: Viewer,
        params: &HashMap<String, String>,
    ) -> Result<Place<Self>, DashError> {
        team_place(
            state,
            viewer,
            params.get("team").map(String::as_str).unwrap_or_default(),
        )
        .await
    }
    fn service(state: &AppState) -> &TokenService<Self> {
        &state.services.team_tokens
    }
    fn abilities_text(abilities: &Abilities) -> Option<String> {
        Some(abilities.to_strings().join(", "))
    }
    fn abilities_from(form: &Fields) -> Result<Abilities, Error> {
        let names = form.all("abilities");
        if names.is_empty() {
            return Err(Error::invalid("abilities", "Choose at least one ability."));
        }
        Abilities::parse("abilities", &names)
    }
    fn ability_choices(checked: &[String]) -> Vec<(String, bool)> {
        lettermint_core::Ability::all_names()
            .into_iter()
            .map(|name| {
                let on = checked.contains(&name);
                (name, on)
            })
            .collect()
    }
}

async fn project_place(
    state: &AppState,
    viewer: Viewer,
    team: &str,
    project: &str,
) -> Result<Place<ForProject>, DashError> {
    let (member, team, project) = project_of(state, &viewer, team, project).await?;
    let mut crumbs = team_crumbs(&team);
    let project_url = format!("/teams/{}/projects/{}", team.id, project.id);
    crumbs.push((project_url.clone(), project.name.as_str().to_owned()));
    crumbs.push((format!("{project_url}/tokens"), "API tokens".to_owned()));
    Ok(Place {
        viewer,
        token: None,
        owner: project.id,
        base: format!("{project_url}/tokens"),
        owner_label: format!("{} · {}", team.name.as_str(), project.name.as_str()),
        heading: "API tokens",
        crumbs,
        team_tab: false,
        member,
        team,
    })
}

async fn team_place(
    state: &AppState,
    viewer: Viewer,
    team: &str,
) -> Result<Place<ForTeam>, DashError> {
    let (member, team) = membership(state, &viewer, team).await?;
    let mut crumbs = team_crumbs(&team);
    let base = format!("/teams/{}/team-tokens", team.id);
    crumbs.push((base.clone(), "Team tokens".to_owned()));
    Ok(Place {
        viewer,
        token: None,
        owner: team.id,
        base,
        owner_label: team.name.as_str().to_owned(),
        heading: "Team tokens",
        crumbs,
        team_tab: true,
        member,
        team,
    })
}

impl<K: DashKind> FromRequestParts<AppState> for Place<K> {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, DashError> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| DashError::NotFound)?;
        let mut place = K::place(state, viewer, &params).await?;
        place.token = params.get("token").cloned();
        Ok(place)
    }
}

impl<K: Owner> Place<K> {
    /// The `{token}` of the URL.
    fn token(&self) -> Result<String, DashError> {
        self.token.clone().ok_or(DashError::NotFound)
    }
}

struct TokenRow {
    id: TokenId,
    name: String,
    hint: String,
    abilities: String,
    status: &'static str,
    status_label: String,
    active: bool,
    expires: Option<String>,
    changed: String,
    changed_iso: String,
    changed_abs: String,
    used: Option<String>,
    used_iso: String,
    used_abs: String,
    used_via: Option<&'static str>,
    last_ip: Option<String>,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    f: Frame,
    team_id: TeamId,
    tab: &'static str,
    team_tab: bool,
    owner_label: String,
    heading: &'static str,
    base: String,
    can_manage: bool,
    show_abilities: bool,
    flash: Option<String>,
    rows: Vec<TokenRow>,
}

fn token_row<K: DashKind>(token: &Token<K>, now: OffsetDateTime) -> TokenRow {
    let status = token.status(now);
    let (status_key, status_label) = match status {
        TokenStatus::Active => ("active", "Active".to_owned()),
        TokenStatus::Revoked => ("revoked", "Revoked".to_owned()),
        TokenStatus::Expired => ("expired", "Expired".to_owned()),
    };
    let expires = match (status, token.expires_at) {
        (TokenStatus::Active, Some(at)) => Some(format!("expires {}", relative(now, at))),
        _ => token
            .overlap_until(now)
            .map(|until| format!("previous value works until {}", absolute(until))),
    };
    TokenRow {
        id: token.id,
        name: token.name.as_str().to_owned(),
        hint: token.hint.as_str().to_owned(),
        abilities: K::abilities_text(&token.abilities).unwrap_or_default(),
        status: status_key,
        status_label,
        active: status == TokenStatus::Active,
        expires,
        changed: relative(now, token.updated_at),
        changed_iso: iso(token.updated_at),
        changed_abs: absolute(token.updated_at),
        used: token.last_use.at.map(|at| relative(now, at)),
        used_iso: token.last_use.at.map(iso).unwrap_or_default(),
        used_abs: token.last_use.at.map(absolute).unwrap_or_default(),
        used_via: token.last_use.via.map(|v| match v {
            lettermint_core::Channel::Api => "API",
            lettermint_core::Channel::Smtp => "SMTP",
            lettermint_core::Channel::Dashboard => "Dashboard",
        }),
        last_ip: token.last_use.ip.map(|ip| ip.to_string()),
    }
}

async fn list_tokens<K: DashKind>(state: &AppState, place: &Place<K>, query: &DoneQuery) -> Page {
    let viewer = &place.viewer;
    let request = PageRequest::first(
        100,
        Sort {
            key: TokenSortKey::CreatedAt,
            direction: Direction::Descending,
        },
    );
    let page = K::service(state)
        .list(
            Scope::Team(place.team.id),
            place.owner,
            TokenStatusFilter::All,
            &request,
        )
        .await?;
    let now = OffsetDateTime::now_utc();
    let flash = match query.done.split_once(':') {
        Some(("revoked", id)) => page
            .items
            .iter()
            .find(|t| t.id.to_string() == id)
            .map(|t| format!("Token {} revoked.", t.name.as_str())),
        _ => None,
    };
    Ok(render(
        StatusCode::OK,
        &TokensPage {
            f: frame(
                viewer,
                format!("{} · {}", place.heading, place.owner_label),
                place.crumbs.clone(),
            ),
            team_id: place.team.id,
            tab: "team-tokens",
            team_tab: place.team_tab,
            owner_label: place.owner_label.clone(),
            heading: place.heading,
            base: place.base.clone(),
            can_manage: place.member.role.manages_tokens(),
            show_abilities: K::SHOWS_ABILITIES,
            flash,
            rows: page.items.iter().map(|t| token_row(t, now)).collect(),
        },
    ))
}

#[derive(Template)]
#[template(path = "token_new.html")]
struct NewTokenPage {
    f: Frame,
    owner_label: String,
    base: String,
    name: String,
    expires_at: String,
    name_error: Option<String>,
    expires_error: Option<String>,
    abilities_error: Option<String>,
    form_error: Option<String>,
    abilities: Vec<(String, bool)>,
}

fn new_token_page<K: DashKind>(place: &Place<K>, form: Option<&Fields>) -> NewTokenPage {
    let viewer = &place.viewer;
    let mut crumbs = place.crumbs.clone();
    crumbs.push((format!("{}/new", place.base), "Create token".to_owned()));
    let checked = form.map(|f| f.all("abilities")).unwrap_or_default();
    NewTokenPage {
        f: frame(viewer, "Create token", crumbs),
        owner_label: place.owner_label.clone(),
        base: place.base.clone(),
        name: form.map(|f| f.get("name")).unwrap_or_default(),
        expires_at: form.map(|f| f.get("expires_at")).unwrap_or_default(),
        name_error: None,
        expires_error: None,
        abilities_error: None,
        form_error: None,
        abilities: K::ability_choices(&checked),
    }
}

async fn new_token<K: DashKind>(place: &Place<K>) -> Page {
    lettermint_core::service::require_token_manager(&place.member)?;
    Ok(render(StatusCode::OK, &new_token_page(place, None)))
}

/// A date field (`YYYY-MM-DD`): the token works through that day (UTC).
fn parse_expiry(text: &str) -> Result<Option<OffsetDateTime>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let date = time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| "The expires field must be a date (YYYY-MM-DD).".to_owned())?;
    let next_day = date
        .next_day()
        .ok_or_else(|| "The expires field is too far in the future.".to_owned())?;
    Ok(Some(next_day.midnight().assume_utc()))
}

#[derive(Template)]
#[template(path = "token_secret.html")]
struct SecretPage {
    f: Frame,
    owner_label: String,
    heading: &'static str,
    name: String,
    secret: String,
    regenerated: bool,
    base: String,
    back_label: &'static str,
}

async fn create_token<K: DashKind>(state: &AppState, place: &Place<K>, body: &Bytes) -> Page {
    let viewer = &place.viewer;
    lettermint_core::service::require_token_manager(&place.member)?;
    let form = Fields::parse(body);
    let mut page = new_token_page(place, Some(&form));
    let expires = parse_expiry(&form.get("expires_at"));
    let abilities = K::abilities_from(&form);
    let mut invalid = false;
    if let Err(message) = &expires {
        page.expires_error = Some(message.clone());
        invalid = true;
    }
    if let Err(Error::Validation(v)) = &abilities {
        page.abilities_error = v.fields().values().flatten().next().cloned();
        invalid = true;
    }
    if form.get("name").trim().is_empty() {
        page.name_error = Some("The name field is required.".into());
        invalid = true;
    }
    if invalid {
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let (Ok(expires), Ok(abilities)) = (expires, abilities) else {
        return Err(DashError::Internal);
    };
    let actor = Actor {
        member: &place.member,
        ip: viewer.ip,
    };
    let issued = state
        .services
        .console
        .create(
            K::service(state),
            actor,
            place.owner,
            &form.get("name"),
            abilities,
            expires,
        )
        .await;
    match issued {
        Ok(issued) => Ok(secret_page(
            place,
            "Token created",
            issued.token.name.as_str(),
            issued.secret.expose_secret(),
            false,
        )),
        Err(Error::Validation(v)) => {
            for (field, problems) in v.fields() {
                let message = problems.join(" ");
                match field.as_str() {
                    "name" => page.name_error = Some(message),
                    "expires_at" => page.expires_error = Some(message),
                    _ => page.form_error = Some(message),
                }
            }
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Error::Conflict { message }) => {
            page.name_error = Some(message);
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(e) => Err(e.into()),
    }
}

fn secret_page<K: DashKind>(
    place: &Place<K>,
    heading: &'static str,
    name: &str,
    secret: &str,
    regenerated: bool,
) -> Response {
    let viewer = &place.viewer;
    render(
        StatusCode::OK,
        &SecretPage {
            f: frame(viewer, heading, place.crumbs.clone()),
            owner_label: place.owner_label.clone(),
            heading,
            name: name.to_owned(),
            secret: secret.to_owned(),
            regenerated,
            base: place.base.clone(),
            back_label: place.heading,
        },
    )
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    f: Frame,
    owner_label: String,
    heading: &'static str,
    explanation: &'static str,
    button: &'static str,
    name: String,
    hint: String,
    action: String,
    base: String,
}

#[derive(Clone, Copy)]
enum Change {
    Regenerate,
    Revoke,
}

async fn confirm<K: DashKind>(
    state: &AppState,
    place: &Place<K>,
    token: &str,
    change: Change,
) -> Page {
    let viewer = &place.viewer;
    lettermint_core::service::require_token_manager(&place.member)?;
    let token_id: TokenId = parse_id(token)?;
    let token = K::service(state)
        .get(Scope::Team(place.team.id), Some(place.owner), token_id)
        .await?;
    let (heading, explanation, button, verb) = match change {
        Change::Regenerate => (
            "Regenerate token?",
            "A new value replaces the current one. The current value stops working immediately, for the API and SMTP alike: update every application that uses it.",
            "Regenerate token",
            "regenerate",
        ),
        Change::Revoke => (
            "Revoke token?",
            "The token stops working immediately, for the API and SMTP alike, and cannot be used again. Its logs are kept.",
            "Revoke token",
            "revoke",
        ),
    };
    Ok(render(
        StatusCode::OK,
        &ConfirmPage {
            f: frame(viewer, heading, place.crumbs.clone()),
            owner_label: place.owner_label.clone(),
            heading,
            explanation,
            button,
            name: token.name.as_str().to_owned(),
            hint: token.hint.as_str().to_owned(),
            action: format!("{}/{}/{verb}", place.base, token.id),
            base: place.base.clone(),
        },
    ))
}

async fn apply<K: DashKind>(
    state: &AppState,
    place: &Place<K>,
    token: &str,
    change: Change,
) -> Page {
    let viewer = &place.viewer;
    lettermint_core::service::require_token_manager(&place.member)?;
    let token_id: TokenId = parse_id(token)?;
    let actor = Actor {
        member: &place.member,
        ip: viewer.ip,
    };
    let console = &state.services.console;
    match change {
        Change::Regenerate => {
            let issued = console
                .regenerate(K::service(state), actor, place.owner, token_id)
                .await?;
            Ok(secret_page(
                place,
                "Token regenerated",
                issued.token.name.as_str(),
                issued.secret.expose_secret(),
                true,
            ))
        }
        Change::Revoke => {
            let token = console
                .revoke(K::service(state), actor, place.owner, token_id)
                .await?;
            Ok(see_other(&format!(
                "{}?done=revoked:{}",
                place.base, token.id
            )))
        }
    }
}

struct LogRow {
    at: String,
    at_iso: String,
    at_abs: String,
    via: &'static str,
    action: &'static str,
    outcome: &'static str,
    status: u16,
    ip: String,
    by: String,
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    f: Frame,
    owner_label: String,
    name: String,
    hint: String,
    action: String,
    kinds: Vec<(&'static str, bool, &'static str)>,
    filtered: bool,
    rows: Vec<LogRow>,
    older: Option<String>,
    base: String,
    back_label: &'static str,
}

async fn logs<K: DashKind>(
    state: &AppState,
    place: &Place<K>,
    token: &str,
    query: &DoneQuery,
) -> Page {
    let viewer = &place.viewer;
    let token_id: TokenId = parse_id(token)?;
    let scope = Scope::Team(place.team.id);
    let service = K::service(state);
    let token = service.get(scope, Some(place.owner), token_id).await?;
    let action = if query.kind.is_empty() {
        None
    } else {
        Some(
            query
                .kind
                .parse::<Action>()
                .map_err(|_| DashError::Invalid("Unknown kind of log entry.".into()))?,
        )
    };
    let cursor = if query.cursor.is_empty() {
        None
    } else {
        Some(
            query
                .cursor
                .parse::<Cursor>()
                .map_err(|_| DashError::Invalid("The page cursor is invalid.".into()))?,
        )
    };
    let mut request = PageRequest::first(
        50,
        Sort {
            key: LogSortKey::At,
            direction: Direction::Descending,
        },
    );
    request.cursor = cursor;
    let filter = LogFilter {
        action,
        ..LogFilter::default()
    };
    let page = service
        .logs(scope, Some(place.owner), token.id, &filter, &request)
        .await?;
    let now = OffsetDateTime::now_utc();
    let url = format!("{}/{}/logs", place.base, token.id);
    let older = page
        .next_cursor
        .map(|c| format!("{url}?kind={}&cursor={c}", query.kind));
    let mut kinds = vec![("", action.is_none(), "All")];
    kinds.extend(
        Action::ALL
            .iter()
            .map(|a| (a.as_str(), Some(*a) == action, a.as_str())),
    );
    let mut crumbs = place.crumbs.clone();
    crumbs.push((url.clone(), format!("Log of {}", token.name.as_str())));
    Ok(render(
        StatusCode::OK,
        &LogsPage {
            f: frame(
                viewer,
                format!("Token log · {}", token.name.as_str()),
                crumbs,
            ),
            owner_label: place.owner_label.clone(),
            name: token.name.as_str().to_owned(),
            hint: token.hint.as_str().to_owned(),
            action: url,
            kinds,
            filtered: action.is_some(),
            rows: page
                .items
                .into_iter()
                .map(|e| LogRow {
                    at: relative(now, e.at),
                    at_iso: iso(e.at),
                    at_abs: absolute(e.at),
                    via: e.via.as_str(),
                    action: e.action.as_str(),
                    outcome: e.outcome.as_str(),
                    status: e.status,
                    ip: e.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "—".into()),
                    by: e.actor.unwrap_or_else(|| "—".into()),
                })
                .collect(),
            older,
            base: place.base.clone(),
            back_label: place.heading,
        },
    ))
}

// The handlers of both token pages, registered once per kind (`list::<ForProject>`, …).

/// `GET …/tokens` (or `…/team-tokens`): the list.
pub async fn list<K: DashKind>(
    State(state): State<AppState>,
    place: Place<K>,
    Query(query): Query<DoneQuery>,
) -> Page {
    list_tokens(&state, &place, &query).await
}

/// `GET …/new`: the creation form.
pub async fn new<K: DashKind>(place: Place<K>) -> Page {
    new_token(&place).await
}

/// `POST …/tokens` (or `…/team-tokens`): create, show the value once.
pub async fn create<K: DashKind>(
    State(state): State<AppState>,
    place: Place<K>,
    body: Bytes,
) -> Page {
    create_token(&state, &place, &body).await
}

/// `GET …/{token}/regenerate`: the confirmation.
pub async fn confirm_regenerate<K: DashKind>(
    State(state): State<AppState>,
    place: Place<K>,
) -> Page {
    let token = place.token()?;
    confirm(&state, &place, &token, Change::Regenerate).await
}

/// `POST …/{token}/regenerate`: a new value, shown once.
pub async fn regenerate<K: DashKind>(State(state): State<AppState>, place: Place<K>) -> Page {
    let token = place.token()?;
    apply(&state, &place, &token, Change::Regenerate).await
}

/// `GET …/{token}/revoke`: the confirmation.
pub async fn confirm_revoke<K: DashKind>(State(state): State<AppState>, place: Place<K>) -> Page {
    let token = place.token()?;
    confirm(&state, &place, &token, Change::Revoke).await
}

/// `POST …/{token}/revoke`.
pub async fn revoke<K: DashKind>(State(state): State<AppState>, place: Place<K>) -> Page {
    let token = place.token()?;
    apply(&state, &place, &token, Change::Revoke).await
}

/// `GET …/{token}/logs`: the token's log, paged and filtered by kind.
pub async fn token_logs<K: DashKind>(
    State(state): State<AppState>,
    place: Place<K>,
    Query(query): Query<DoneQuery>,
) -> Page {
    let token = place.token()?;
    logs(&state, &place, &token, &query).await
}

// ---------------------------------------------------------------------------------------------
// Members and the audit log

struct MemberRow {
    account_id: AccountId,
    name: String,
    email: String,
    role: Role,
    joined: String,
    removable: bool,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    f: Frame,
    team_id: TeamId,
    team_name: String,
    role: Role,
    tab: &'static str,
    can_manage: bool,
    flash: Option<String>,
    form_error: Option<String>,
    members: Vec<MemberRow>,
    email: String,
    display_name: String,
    email_error: Option<String>,
    name_error: Option<String>,
    roles: Vec<&'static str>,
    one_time_password: Option<(String, String)>,
}

async fn members_page(
    state: &AppState,
    viewer: &Viewer,
    member: &Member,
    team: &Team,
) -> Result<MembersPage, DashError> {
    let now = OffsetDateTime::now_utc();
    let list = state.services.accounts.members(member).await?;
    let can_manage = member.role.manages_members();
    Ok(MembersPage {
        f: frame(
            viewer,
            format!("Members · {}", team.name.as_str()),
            team_crumbs(team),
        ),
        team_id: team.id,
        team_name: team.name.as_str().to_owned(),
        role: member.role,
        tab: "members",
        can_manage,
        flash: None,
        form_error: None,
        members: list
            .into_iter()
            .map(|m| MemberRow {
                removable: can_manage
                    && m.account.id != viewer.account.id
                    && (m.role != Role::Owner || member.role == Role::Owner),
                account_id: m.account.id,
                name: m.account.display_name.as_str().to_owned(),
                email: m.account.email.as_str().to_owned(),
                role: m.role,
                joined: relative(now, m.joined_at),
            })
            .collect(),
        email: String::new(),
        display_name: String::new(),
        email_error: None,
        name_error: None,
        roles: Role::ALL
            .iter()
            .filter(|r| member.role == Role::Owner || **r != Role::Owner)
            .map(|r| r.as_str())
            .collect(),
        one_time_password: None,
    })
}

/// `GET /teams/{team}/members`.
pub async fn members(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(team): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Page {
    let (member, team) = membership(&state, &viewer, &team).await?;
    let mut page = members_page(&state, &viewer, &member, &team).await?;
    page.flash = match query.done.as_str() {
        "added" => Some("Member added.".into()),
        "removed" => Some("Member removed.".into()),
        _ => None,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /teams/{team}/members`: adds an existing account, or creates one with a one-time
/// password shown on the next page only.
pub async fn add_member(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(team): Path<String>,
    body: Bytes,
) -> Page {
    let (member, team) = membership(&state, &viewer, &team).await?;
    if !member.role.manages_members() {
        return Err(DashError::Forbidden);
    }
    let form = Fields::parse(&body);
    let role: Role = form
        .get("role")
        .parse()
        .map_err(|_| DashError::Invalid("Unknown role.".into()))?;
    if role == Role::Owner && member.role != Role::Owner {
        return Err(DashError::Forbidden);
    }
    let accounts = &state.services.accounts;
    let (email, display_name) = (form.get("email"), form.get("display_name"));
    let mut one_time = None;
    let account = match accounts.find_by_email(&email).await {
        Ok(account) => account,
        Err(Error::NotFound { .. }) => {
            // Owners and admins may bring new people in; the account is created here.
            match accounts
                .create_account(Scope::Operator, &email, &display_name, None)
                .await
            {
                Ok(created) => {
                    one_time = created.generated_password.map(|p| {
                        (
                            created.account.email.as_str().to_owned(),
                            p.expose_secret().to_owned(),
                        )
                    });
                    created.account
                }
                Err(Error::Validation(v)) => {
                    let mut page = members_page(&state, &viewer, &member, &team).await?;
                    page.email = email;
                    page.display_name = display_name;
                    for (field, problems) in v.fields() {
                        let message = problems.join(" ");
                        match field.as_str() {
                            "email" => page.email_error = Some(message),
                            _ => page.name_error = Some(message),
                        }
                    }
                    return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Validation(v)) => {
            let mut page = members_page(&state, &viewer, &member, &team).await?;
            page.email = email;
            page.display_name = display_name;
            page.email_error = v.fields().values().flatten().next().cloned();
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(e) => return Err(e.into()),
    };
    match accounts
        .add_member(Some(&member), team.id, account.id, role, viewer.ip)
        .await
    {
        Ok(()) => {}
        Err(Error::Conflict { .. }) => {
            let mut page = members_page(&state, &viewer, &member, &team).await?;
            page.form_error = Some(format!(
                "{} is already a member of this team.",
                account.email
            ));
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(e) => return Err(e.into()),
    }
    if one_time.is_none() {
        return Ok(see_other(&format!("/teams/{}/members?done=added", team.id)));
    }
    let mut page = members_page(&state, &viewer, &member, &team).await?;
    page.flash = Some(format!(
        "Member added: {} can log in with the password below.",
        account.email
    ));
    page.one_time_password = one_time;
    Ok(render(StatusCode::OK, &page))
}

/// `POST /teams/{team}/members/{account}/remove`.
pub async fn remove_member(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((team, account)): Path<(String, String)>,
) -> Page {
    let (member, team) = membership(&state, &viewer, &team).await?;
    let account: AccountId = parse_id(&account)?;
    match state
        .services
        .accounts
        .remove_member(Some(&member), team.id, account, viewer.ip)
        .await
    {
        Ok(()) => Ok(see_other(&format!(
            "/teams/{}/members?done=removed",
            team.id
        ))),
        Err(Error::Conflict { message }) => {
            let mut page = members_page(&state, &viewer, &member, &team).await?;
            page.form_error = Some(message);
            Ok(render(StatusCode::CONFLICT, &page))
        }
        Err(e) => Err(e.into()),
    }
}

struct AuditRow {
    at: String,
    at_iso: String,
    at_abs: String,
    who: String,
    action: &'static str,
    target: String,
    detail: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    f: Frame,
    team_id: TeamId,
    team_name: String,
    tab: &'static str,
    rows: Vec<AuditRow>,
    older: Option<String>,
}

/// `GET /teams/{team}/audit`.
pub async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(team): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Page {
    let (member, team) = membership(&state, &viewer, &team).await?;
    let before = if query.cursor.is_empty() {
        None
    } else {
        Some(parse_id(&query.cursor)?)
    };
    const PAGE: u32 = 50;
    let entries = state
        .services
        .accounts
        .audit_log(&member, before, PAGE)
        .await?;
    let now = OffsetDateTime::now_utc();
    let older = (entries.len() == PAGE as usize)
        .then(|| {
            entries
                .last()
                .map(|e| format!("/teams/{}/audit?cursor={}", team.id, e.id))
        })
        .flatten();
    Ok(render(
        StatusCode::OK,
        &AuditPage {
            f: frame(
                &viewer,
                format!("Audit log · {}", team.name.as_str()),
                team_crumbs(&team),
            ),
            team_id: team.id,
            team_name: team.name.as_str().to_owned(),
            tab: "audit",
            rows: entries
                .into_iter()
                .map(|e| AuditRow {
                    at: relative(now, e.at),
                    at_iso: iso(e.at),
                    at_abs: absolute(e.at),
                    who: e.actor_email.unwrap_or_else(|| "operator".into()),
                    action: e.action.as_str(),
                    target: e.target.unwrap_or_default(),
                    detail: e.detail.unwrap_or_default(),
                    ip: e.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "—".into()),
                })
                .collect(),
            older,
        },
    ))
}
