//! The dashboard over a real socket, as a browser without JavaScript would use it: cookies,
//! forms, redirects. On SQLite and PostgreSQL. (The same flows in a real Chromium are in
//! `tests/browser/`.)

mod common;

use std::collections::BTreeMap;

use common::{Backend, TestServer};
use lettermint_core::{NewProject, Role, Scope, TeamId};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// A cookie-keeping client that does not follow redirects.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The `_csrf` value of the first form on the page.
    fn csrf(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let start = self.body.find(marker).expect("a form with _csrf") + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: common::client(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Reply {
            status,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(fields).unwrap())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    async fn login(&mut self, email: &str, password: &str) -> Reply {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("_csrf", &csrf),
                ("email", email),
                ("password", password),
                ("next", "/"),
            ],
        )
        .await
    }
}

async fn team_and_project(server: &TestServer) -> (TeamId, String) {
    let team = server.services.teams.list(Scope::Operator).await.unwrap()[0].id;
    let project = server
        .services
        .projects
        .list(
            Scope::Operator,
            team,
            None,
            &lettermint_core::PageRequest::first(
                10,
                lettermint_core::Sort {
                    key: lettermint_core::page::ProjectSortKey::Name,
                    direction: lettermint_core::Direction::Ascending,
                },
            ),
        )
        .await
        .unwrap()
        .items[0]
        .id;
    (team, format!("/teams/{team}/projects/{project}/tokens"))
}

async fn send(server: &TestServer, token: &str) -> u16 {
    common::client()
        .post(format!("{}/v1/send", server.base))
        .header("x-lettermint-token", token)
        .json(&common::mail("Dashboard"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The value shown once on a "Token created/regenerated" page.
fn shown_value(page: &Reply) -> String {
    let marker = "id=\"token-value\" readonly value=\"";
    let start = page.body.find(marker).expect("the token value") + marker.len();
    page.body[start..].split('"').next().unwrap().to_owned()
}

async fn owner_manages_a_token_end_to_end(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (team, tokens) = team_and_project(&server).await;
    let mut owner = Browser::new(&server.base);

    // Not logged in: every page sends to the login form, remembering where to go.
    let page = owner.get(&tokens).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.location().starts_with("/login?next=%2Fteams%2F")
            || page.location().starts_with("/login?next=/teams/"),
        "{}",
        page.location()
    );

    let pre_login = owner.get("/login").await;
    assert!(pre_login.body.contains("<h1>Log in</h1>"));
    let login = owner
        .login(&server.owner_email, &server.owner_password)
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let cookie = login
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("lm_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "no TLS here: {cookie}");

    // One team: / goes straight to it.
    let home = owner.get("/").await;
    assert_eq!(home.location(), format!("/teams/{team}"));
    let projects = owner.get(&format!("/teams/{team}")).await;
    assert_eq!(projects.status, StatusCode::OK);
    assert!(projects.body.contains("<h1>Projects</h1>"));

    let list = owner.get(&tokens).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Create token"));
    let csrf = list.csrf();

    // Validation errors are shown next to the field.
    let invalid = owner
        .post(&tokens, &[("_csrf", &csrf), ("name", "  ")])
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.body.contains("id=\"name-error\""));
    assert!(invalid.body.contains("The name field is required."));
    let past = owner
        .post(
            &tokens,
            &[
                ("_csrf", &csrf),
                ("name", "old"),
                ("expires_at", "2001-01-01"),
            ],
        )
        .await;
    assert_eq!(past.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(past.body.contains("id=\"expires-error\""), "{}", past.body);

    let created = owner
        .post(
            &tokens,
            &[("_csrf", &csrf), ("name", "checkout"), ("expires_at", "")],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(
        created.body.contains("won&#39;t be shown again")
            || created.body.contains("won't be shown again")
    );
    let first = shown_value(&created);
    assert!(first.starts_with("lm_"));
    assert_eq!(send(&server, &first).await, 202);

    // The list shows the token without its value.
    let list = owner.get(&tokens).await;
    assert!(list.body.contains("checkout"));
    assert!(!list.body.contains(&first));
    let token_id = list
        .body
        .split("data-token-id=\"")
        .skip(1)
        .find(|row| row.contains("checkout"))
        .map(|row| row.split('"').next().unwrap().to_owned())
        .expect("the row of checkout");

    let confirm = owner.get(&format!("{tokens}/{token_id}/regenerate")).await;
    assert!(confirm.body.contains("Regenerate token?"));
    let regenerated = owner
        .post(
            &format!("{tokens}/{token_id}/regenerate"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(regenerated.status, StatusCode::OK);
    let second = shown_value(&regenerated);
    assert_ne!(first, second);
    assert_eq!(send(&server, &first).await, 401);
    assert_eq!(send(&server, &second).await, 202);

    let revoked = owner
        .post(&format!("{tokens}/{token_id}/revoke"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(send(&server, &second).await, 401);
    let list = owner.get(revoked.location()).await;
    assert!(list.body.contains("Token checkout revoked."));
    assert!(list.body.contains("Revoked"));

    // Usage is written behind requests; wait for the send entries to land.
    let logs_url = format!("{tokens}/{token_id}/logs");
    let mut logs = owner.get(&logs_url).await;
    for _ in 0..50 {
        if logs.body.matches("<td>send</td>").count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        logs = owner.get(&logs_url).await;
    }
    for action in ["create", "regenerate", "revoke", "send"] {
        assert!(
            logs.body.contains(&format!("<td>{action}</td>")),
            "{action}: {}",
            logs.body
        );
    }
    assert!(
        logs.body.contains(&server.owner_email),
        "the member is named"
    );
    assert!(!logs.body.contains(&first) && !logs.body.contains(&second));
    let only_sends = owner.get(&format!("{logs_url}?kind=send")).await;
    assert!(only_sends.body.contains("<td>send</td>"));
    assert!(!only_sends.body.contains("<td>create</td>"));

    // The Team API shows the same entries, with who made them.
    let project_id = tokens.split('/').nth(4).unwrap();
    let api_logs: serde_json::Value = common::client()
        .get(format!(
            "{}/v1/projects/{project_id}/tokens/{token_id}/logs?filter[action]=regenerate",
            server.base
        ))
        .bearer_auth(&server.team_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = api_logs["data"].as_array().expect("a page of entries");
    assert_eq!(entries.len(), 1, "{api_logs}");
    assert_eq!(entries[0]["via"], "dashboard");
    assert_eq!(entries[0]["action"], "regenerate");
    assert_eq!(entries[0]["actor"], server.owner_email.as_str());

    // The audit log names the member for each change.
    let audit = owner.get(&format!("/teams/{team}/audit")).await;
    for action in ["token_created", "token_regenerated", "token_revoked"] {
        assert!(audit.body.contains(action), "{action}");
    }

    // Logout ends the session on the server: the same cookie no longer works.
    let session = owner.cookies.get("lm_session").unwrap().clone();
    let out = owner.post("/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    owner.cookies.insert("lm_session".into(), session);
    let after = owner.get(&tokens).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.location().starts_with("/login"));
}

#[tokio::test]
async fn owner_manages_a_token_end_to_end_on_sqlite() {
    owner_manages_a_token_end_to_end(Backend::Sqlite).await;
}

#[tokio::test]
async fn owner_manages_a_token_end_to_end_on_postgres() {
    owner_manages_a_token_end_to_end(Backend::Postgres).await;
}

const PASSWORD: &str = "a long enough password";

async fn account_with_role(server: &TestServer, team: TeamId, email: &str, role: Role) {
    let created = server
        .services
        .accounts
        .create_account(Scope::Operator, email, "Someone", Some(PASSWORD.into()))
        .await
        .unwrap();
    server
        .services
        .accounts
        .add_member(None, team, created.account.id, role, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn members_read_but_cannot_change_tokens_and_other_teams_are_not_found() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (team, tokens) = team_and_project(&server).await;
    account_with_role(&server, team, "reader@example.com", Role::Member).await;
    let mut reader = Browser::new(&server.base);
    assert_eq!(
        reader.login("reader@example.com", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );

    let list = reader.get(&tokens).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.body.contains("Create token"));
    assert!(!list.body.contains(">Regenerate<") && !list.body.contains(">Revoke<"));
    assert!(list.body.contains("View logs"));
    let csrf = list.csrf();
    let token = server.services.project_tokens.clone();
    let project_id = tokens.split('/').nth(4).unwrap().parse().unwrap();
    let existing = token
        .first_active(Scope::Operator, project_id)
        .await
        .unwrap()
        .unwrap();

    // Posting the forms anyway: 403, and nothing changes.
    let create = reader
        .post(&tokens, &[("_csrf", &csrf), ("name", "sneaky")])
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    assert!(create.body.contains("<h1>Forbidden</h1>"));
    for verb in ["regenerate", "revoke"] {
        let reply = reader
            .post(
                &format!("{tokens}/{}/{verb}", existing.id),
                &[("_csrf", &csrf)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{verb}");
    }
    assert_eq!(
        reader.get(&format!("{tokens}/new")).await.status,
        StatusCode::FORBIDDEN
    );
    let still = token.get(Scope::Operator, None, existing.id).await.unwrap();
    assert_eq!(still.revoked_at, None);
    assert_eq!(still.hint, existing.hint);

    // Another team's pages look like pages that do not exist.
    let other = server
        .services
        .teams
        .create(Scope::Operator, "Other")
        .await
        .unwrap();
    let (other_project, _) = server
        .services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: other.id,
                name: "Theirs".into(),
                smtp_enabled: false,
                first_token_name: Some("theirs".into()),
            },
        )
        .await
        .unwrap();
    for path in [
        format!("/teams/{}", other.id),
        format!("/teams/{}/projects/{}/tokens", other.id, other_project.id),
        format!("/teams/{team}/projects/{}/tokens", other_project.id),
        "/teams/not-a-uuid".to_owned(),
        "/no/such/page".to_owned(),
    ] {
        let reply = reader.get(&path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(reply.body.contains("Page not found"), "{path}");
    }
    // The API keeps its JSON 404.
    let api = reader.get("/v1/nothing").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.body.starts_with('{'));
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (_, tokens) = team_and_project(&server).await;
    let mut owner = Browser::new(&server.base);
    owner
        .login(&server.owner_email, &server.owner_password)
        .await;
    let csrf = owner.get(&tokens).await.csrf();

    for fields in [
        vec![("name", "no-csrf")],
        vec![("_csrf", "0000"), ("name", "wrong-csrf")],
        vec![("_csrf", ""), ("name", "empty-csrf")],
    ] {
        let reply = owner.post(&tokens, &fields).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert!(
            reply
                .body
                .contains("This form has expired or did not come from this site.")
        );
    }
    // The right token from another site is refused too.
    let cross = owner
        .http
        .post(format!("{}{tokens}", server.base))
        .header("cookie", owner.cookie_header())
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={csrf}&name=cross-site"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let list = owner.get(&tokens).await;
    for name in ["no-csrf", "wrong-csrf", "empty-csrf", "cross-site"] {
        assert!(!list.body.contains(name), "{name} was created");
    }
    // The login form has its own token.
    let mut stranger = Browser::new(&server.base);
    let reply = stranger
        .post(
            "/login",
            &[
                ("email", server.owner_email.as_str()),
                ("password", server.owner_password.as_str()),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn wrong_passwords_are_throttled_per_account_and_sessions_are_not_fixed() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (team, _) = team_and_project(&server).await;
    account_with_role(&server, team, "target@example.com", Role::Admin).await;
    let mut attacker = Browser::new(&server.base);
    for _ in 0..5 {
        let reply = attacker
            .login("target@example.com", "not the password")
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(
            reply
                .body
                .contains("These credentials do not match our records.")
        );
    }
    let throttled = attacker.login("target@example.com", PASSWORD).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.body.contains("Too many login attempts"));
    let retry: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60);
    // An unknown email is answered the same way as a wrong password.
    let unknown = attacker.login("nobody@example.com", "whatever it is").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(
        unknown
            .body
            .contains("These credentials do not match our records.")
    );

    // Session fixation: a session value planted before login is not the one after it.
    let mut victim = Browser::new(&server.base);
    victim.cookies.insert("lm_session".into(), "A".repeat(43));
    let login = victim
        .login(&server.owner_email, &server.owner_password)
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_ne!(victim.cookies["lm_session"], "A".repeat(43));
    let mut replay = Browser::new(&server.base);
    replay.cookies.insert("lm_session".into(), "A".repeat(43));
    assert_eq!(replay.get("/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn password_change_and_logout_everywhere_end_other_sessions() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (team, _) = team_and_project(&server).await;
    account_with_role(&server, team, "ada@example.com", Role::Owner).await;
    let mut laptop = Browser::new(&server.base);
    let mut phone = Browser::new(&server.base);
    laptop.login("ada@example.com", PASSWORD).await;
    phone.login("ada@example.com", PASSWORD).await;
    let account = laptop.get("/account").await;
    let csrf = account.csrf();

    let wrong = laptop
        .post(
            "/account/password",
            &[
                ("_csrf", &csrf),
                ("current_password", "nope"),
                ("new_password", "another long password"),
                ("confirm_password", "another long password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("id=\"current-error\""));
    let short = laptop
        .post(
            "/account/password",
            &[
                ("_csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "short"),
                ("confirm_password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.body.contains("id=\"new-error\""));
    let changed = laptop
        .post(
            "/account/password",
            &[
                ("_csrf", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "another long password"),
                ("confirm_password", "another long password"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER);
    // This session goes on, the other one ended, and the old password no longer works.
    assert_eq!(laptop.get("/account").await.status, StatusCode::OK);
    assert_eq!(phone.get("/account").await.status, StatusCode::SEE_OTHER);
    let mut again = Browser::new(&server.base);
    assert_eq!(
        again.login("ada@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        again
            .login("ada@example.com", "another long password")
            .await
            .status,
        StatusCode::SEE_OTHER
    );

    let out = laptop
        .post("/account/logout-everywhere", &[("_csrf", &csrf)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(again.get("/account").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn without_the_dashboard_only_the_api_answers() {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.dashboard = false).await;
    let mut browser = Browser::new(&server.base);
    for path in ["/", "/login", "/assets/dashboard.css"] {
        let reply = browser.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(reply.body.starts_with('{'), "{path}: JSON");
    }
    assert_eq!(send(&server, &server.project_token).await, 202);
}

#[tokio::test]
async fn no_password_session_or_token_value_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/lettermint.sqlite", dir.path().display());
    let mut process = common::Process::spawn_with_env(&url, &[], &[("LETTERMINT_LOG", "debug")]);
    let (email, password) = process.owner.clone().expect("the bootstrap owner");
    let mut owner = Browser::new(&process.base);
    let mut typo = Browser::new(&process.base);
    let refused = typo
        .login(&email, "a wrong password typed by mistake")
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let login = owner.login(&email, &password).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let session = owner.cookies["lm_session"].clone();
    let team = owner.get("/").await.location().to_owned();
    let projects = owner.get(&team).await;
    let project = projects
        .body
        .split("href=\"")
        .find(|s| s.contains("/projects/"))
        .map(|s| s.split('"').next().unwrap().to_owned())
        .unwrap();
    let tokens = format!("{project}/tokens");
    let csrf = owner.get(&tokens).await.csrf();
    let created = owner
        .post(&tokens, &[("_csrf", &csrf), ("name", "secret-check")])
        .await;
    let value = shown_value(&created);
    let status = process.terminate();
    assert!(status.success());
    let logs = process.stderr();
    assert!(
        logs.contains("DEBUG") || logs.contains("INFO"),
        "debug logs were written"
    );
    for (what, secret) in [
        ("password", password.as_str()),
        ("wrong password", "a wrong password typed by mistake"),
        ("session", session.as_str()),
        ("token", value.as_str()),
        ("csrf", csrf.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} is in the logs");
    }
}
