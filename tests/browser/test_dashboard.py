"""The dashboard in a real browser: logins, roles, the API tokens pages, CSRF, throttling,
sessions and basic accessibility.

Locators are accessible ones (role and name, label, text), so a page that passes is also one a
screen reader can find its way through. Screenshots of the main pages go to docs/img.
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from conftest import (
    A11Y_LOG,
    Account,
    BAD_CREDENTIALS,
    CSRF_MESSAGE,
    SESSION_COOKIE,
    World,
    assert_accessible,
    click_link,
    column_headers,
    csrf_of,
    follow,
    goto,
    login,
    login_ok,
    open_actions,
    path_of,
    post_form,
    random_base62,
    screenshot,
    send_mail,
    session_cookie,
    submit,
    table_rows,
    token_row,
)

TOKEN_COLUMNS = ["Name", "Token", "Status", "Last changed", "Last used", "Last IP", "Actions"]
LOG_COLUMNS = ["Time", "Via", "Action", "Outcome", "Status", "IP", "By"]


def assert_protective_headers(response, what: str) -> None:
    """docs/dashboard.md: no caching, no framing, no referrer to other sites, a CSP."""
    headers = response.headers  # lower-case names
    assert "no-store" in headers.get("cache-control", ""), f"{what}: {headers}"
    assert headers.get("x-frame-options", "").upper() == "DENY", f"{what}: {headers}"
    assert headers.get("referrer-policy", "") == "same-origin", f"{what}: {headers}"
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), f"{what}: {headers}"


def expect_heading(page: Page, name: str) -> None:
    expect(page.get_by_role("heading", level=1, name=name, exact=True)).to_be_visible()


def expect_logged_in_header(page: Page, email: str) -> None:
    header = page.get_by_role("banner")
    expect(header).to_contain_text(email)
    expect(header.get_by_role("button", name="Log out")).to_be_visible()
    expect(header.get_by_role("link", name="Account")).to_be_visible()


def token_value(page: Page) -> str:
    field = page.get_by_label("Token value")
    expect(field).to_have_attribute("readonly", "")
    value = field.input_value()
    assert value.startswith("lm_"), f"unexpected token value shape: {value[:6]}…"
    return value


def log_actions(page: Page) -> list[dict[str, str]]:
    return table_rows(page, "Token log")


def wait_for_log(page: Page, wanted: set[str], timeout: float = 20.0) -> list[dict[str, str]]:
    """Reloads the token log until every action in `wanted` has a row (usage is written
    behind the request that caused it)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = []
        if page.get_by_role("table", name="Token log").count():
            rows = log_actions(page)
        seen = {r.get("Action", "").strip().lower() for r in rows}
        accepted_send = any(
            r.get("Action", "").strip().lower() == "send"
            and r.get("Outcome", "").strip().lower() == "accepted"
            for r in rows
        )
        if wanted <= seen and ("send" not in wanted or accepted_send):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"token log lacks {wanted - seen or {'accepted send'}}: {rows}")
        time.sleep(0.5)
        page.reload()


# --- 1. The owner's token lifecycle -------------------------------------------------------------


def test_owner_token_lifecycle(world: World, new_context):
    server = world.server
    team = world.bootstrap
    [project] = team.projects.values()
    page = new_context(clipboard=True).new_page()

    # Log in with the banner's password.
    assert_protective_headers(goto(page, "/login"), "the login page")
    expect_heading(page, "Log in")
    expect(page.get_by_label("Email")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_attribute("type", "password")
    screenshot(page, "login")
    response = login(page, world.admin)
    assert response.status == 303
    expect(page).to_have_url(re.compile(re.escape(team.path) + r"/?$"))
    expect_heading(page, "Projects")
    expect_logged_in_header(page, world.admin.email)

    # Team → project → API tokens.
    click_link(page, project.name)
    assert path_of(page).rstrip("/") == team.project_path(project.name)
    click_link(page, "API tokens")
    assert path_of(page).rstrip("/") == team.tokens_path(project.name)
    expect_heading(page, "API tokens")
    if page.get_by_text("No tokens yet").count():
        screenshot(page, "tokens-empty")
    else:
        assert column_headers(page, "API tokens") == TOKEN_COLUMNS
        screenshot(page, "tokens")

    # Create: an empty name is refused next to the field, then "checkout" is created.
    click_link(page, "Create token")
    expect_heading(page, "Create token")
    expect(page.get_by_label("Expires (optional)")).to_have_attribute("type", "date")
    response = submit(page, lambda: page.get_by_role("button", name="Create token").click())
    assert response.status == 422
    expect(page.get_by_text("The name field is required.")).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_have_accessible_description(
        re.compile("The name field is required.")
    )
    page.get_by_label("Name", exact=True).fill("checkout")
    response = submit(page, lambda: page.get_by_role("button", name="Create token").click())
    assert response.status < 400, response.status
    assert_protective_headers(response, "the page showing a token value")
    expect_heading(page, "Token created")
    expect(page.get_by_text("This token won't be shown again")).to_be_visible()
    first = token_value(page)
    screenshot(page, "token-created")

    # Copy puts exactly the value on the clipboard.
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied", exact=True)).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == first

    assert send_mail(server, first) == 202

    # Regenerate: the old value stops working, the new one works.
    click_link(page, "Back to API tokens")
    expect_heading(page, "API tokens")
    follow(page, open_actions(page, "checkout").get_by_role("link", name="Regenerate"))
    expect_heading(page, "Regenerate token?")
    assert_accessible(page)
    screenshot(page, "regenerate-confirm")
    submit(page, lambda: page.get_by_role("button", name="Regenerate token").click())
    expect_heading(page, "Token regenerated")
    second = token_value(page)
    assert second != first
    assert send_mail(server, first) == 401
    assert send_mail(server, second) == 202

    # Revoke: back on the list with a status message, the row says Revoked.
    click_link(page, "Back to API tokens")
    follow(page, open_actions(page, "checkout").get_by_role("link", name="Revoke"))
    expect_heading(page, "Revoke token?")
    assert_accessible(page)
    response = submit(page, lambda: page.get_by_role("button", name="Revoke token").click())
    assert response.status == 303
    assert path_of(page).rstrip("/") == team.tokens_path(project.name)
    expect(page.get_by_role("status")).to_contain_text("Token checkout revoked.")
    row = token_row(page, "checkout")
    status_cell = row.get_by_role("cell").nth(TOKEN_COLUMNS.index("Status"))
    expect(status_cell).to_contain_text("Revoked")
    assert send_mail(server, second) == 401

    html = page.content()
    for value in (first, second):
        assert value not in html, "a token value is in the tokens page"

    # The token's log: create, send (accepted), regenerate, revoke.
    follow(page, open_actions(page, "checkout").get_by_role("link", name="View logs"))
    expect_heading(page, "Token log")
    assert_accessible(page)
    rows = wait_for_log(page, {"create", "send", "regenerate", "revoke"})
    assert column_headers(page, "Token log") == LOG_COLUMNS
    assert any(
        r["Action"].lower() == "send" and r["Outcome"].lower() == "accepted" for r in rows
    ), rows
    expect(page.get_by_role("link", name="Older")).to_have_count(0)  # a handful of entries
    screenshot(page, "token-log")
    html = page.content()
    for value in (first, second):
        assert value not in html, "a token value is in the log page"

    # Filter by kind: only send rows.
    kind = page.get_by_label("Kind")
    expect(kind.get_by_role("option", name="All", exact=True)).to_have_count(1)
    kind.select_option(label="send")
    follow(page, page.get_by_role("button", name="Filter"))
    expect(page.get_by_label("Kind").locator("option:checked")).to_have_text("send")
    rows = log_actions(page)
    assert rows, "no send rows after filtering by send"
    assert all(r["Action"].lower() == "send" for r in rows), rows
    assert any(r["Outcome"].lower() == "accepted" for r in rows), rows


# --- 2. A member sees and cannot change ---------------------------------------------------------


def test_member_cannot_manage_tokens(world: World, new_context):
    server = world.server
    team = world.bootstrap
    [project] = team.projects.values()
    tokens_path = team.tokens_path(project.name)
    active = [t for t in server.tokens(project) if t["status"] == "active"]
    assert active, "the bootstrap project has no active token"
    target = active[0]

    # The owner's forms tell where create, regenerate and revoke post to.
    owner = new_context().new_page()
    login_ok(owner, world.admin, team)
    goto(owner, tokens_path + "/new")
    create_action = owner.get_by_label("Name", exact=True).evaluate("el => el.form.action")
    goto(owner, tokens_path)
    follow(owner, open_actions(owner, target["name"]).get_by_role("link", name="Regenerate"))
    expect_heading(owner, "Regenerate token?")
    regenerate_action = owner.get_by_role("button", name="Regenerate token").evaluate(
        "el => el.form.action"
    )
    goto(owner, tokens_path)
    follow(owner, open_actions(owner, target["name"]).get_by_role("link", name="Revoke"))
    expect_heading(owner, "Revoke token?")
    revoke_action = owner.get_by_role("button", name="Revoke token").evaluate(
        "el => el.form.action"
    )

    page = new_context().new_page()
    login_ok(page, world.member, team)
    expect_logged_in_header(page, world.member.email)
    goto(page, tokens_path)
    expect_heading(page, "API tokens")
    expect(page.get_by_role("table", name="API tokens")).to_be_visible()
    expect(page.get_by_role("link", name="Create token")).to_have_count(0)
    summaries = page.get_by_text(re.compile(r"^Actions for "))
    assert summaries.count() >= 1
    for i in range(summaries.count()):
        summaries.nth(i).click()
    expect(page.get_by_role("link", name="View logs").first).to_be_visible()
    expect(page.get_by_role("link", name="Regenerate", include_hidden=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Revoke", include_hidden=True)).to_have_count(0)
    screenshot(page, "tokens-member")

    # The forms posted anyway, with the member's own valid CSRF token: 403 Forbidden.
    csrf = csrf_of(page)
    for action, fields in (
        (create_action, {"_csrf": csrf, "name": "member-probe", "expires_at": ""}),
        (regenerate_action, {"_csrf": csrf}),
        (revoke_action, {"_csrf": csrf}),
    ):
        goto(page, tokens_path)
        response = post_form(page, action, fields)
        assert response.status == 403, f"POST {action} answered {response.status}"
        expect_heading(page, "Forbidden")

    after = {t["id"]: t for t in server.tokens(project)}
    assert after[target["id"]]["status"] == "active"
    assert after[target["id"]]["hint"] == target["hint"], "the token was regenerated"
    assert not any(t["name"] == "member-probe" for t in after.values())


# --- 3. Another team's pages do not exist -------------------------------------------------------


def test_other_teams_pages_are_not_found(world: World, page: Page):
    server = world.server
    acme, globex = world.acme, world.globex
    portal = globex.project("Portal")
    [portal_token] = [t for t in server.tokens(portal) if t["name"] == "backend"]
    login_ok(page, world.alice, acme)

    response = goto(page, acme.path)
    assert response.status == 200
    for path in (
        globex.path,
        globex.project_path("Portal"),
        globex.tokens_path("Portal"),
        f"{globex.tokens_path('Portal')}/{portal_token['id']}/logs",
        f"{globex.path}/team-tokens",
        # Globex's project under Acme's id, and Acme's project under Globex's id.
        f"{acme.path}/projects/{portal.id}/tokens",
        f"{globex.path}/projects/{acme.project('Shop').id}/tokens",
    ):
        response = goto(page, path)
        assert response.status == 404, f"{path} answered {response.status}"
        expect_heading(page, "Page not found")
    screenshot(page, "not-found")


# --- 4. Forms need their CSRF token -------------------------------------------------------------


def test_create_without_valid_csrf_is_refused(world: World, page: Page):
    server = world.server
    acme = world.acme
    shop = acme.project("Shop")
    before = server.tokens(shop)
    login_ok(page, world.alice, acme)

    goto(page, acme.tokens_path("Shop"))
    expect_heading(page, "API tokens")
    if not before:
        expect(page.get_by_text("No tokens yet")).to_be_visible()
        screenshot(page, "tokens-empty")

    tamperings = {
        "altered": "el => { const c = el.form.elements['_csrf']; "
        "c.value = c.value.slice(0, -1) + (c.value.endsWith('0') ? '1' : '0'); }",
        "made up": "el => { el.form.elements['_csrf'].value = 'f'.repeat(64); }",
        "empty": "el => { el.form.elements['_csrf'].value = ''; }",
        "removed": "el => { el.form.elements['_csrf'].remove(); }",
    }
    for how, script in tamperings.items():
        goto(page, acme.tokens_path("Shop") + "/new")
        expect_heading(page, "Create token")
        name = page.get_by_label("Name", exact=True)
        name.fill("csrf-probe")
        name.evaluate(script)
        response = submit(page, lambda: page.get_by_role("button", name="Create token").click())
        assert response.status == 403, f"CSRF {how}: answered {response.status}"
        expect(page.get_by_text(CSRF_MESSAGE)).to_be_visible()
        assert "lm_" not in page.content()

    # The right token from another site's page: refused on its Origin.
    goto(page, acme.tokens_path("Shop") + "/new")
    action = page.get_by_label("Name", exact=True).evaluate("el => el.form.action")
    response = page.request.post(
        action,
        form={"_csrf": csrf_of(page), "name": "csrf-probe", "expires_at": ""},
        headers={"Origin": "http://attacker.example"},
        max_redirects=0,
    )
    assert response.status == 403, f"a POST from another origin answered {response.status}"
    assert CSRF_MESSAGE in response.text()

    after = server.tokens(shop)
    assert not any(t["name"] == "csrf-probe" for t in after), after
    assert len(after) == len(before)
    goto(page, acme.tokens_path("Shop"))
    expect(page.get_by_role("cell", name="csrf-probe", exact=True)).to_have_count(0)


# --- 5. Login throttling ------------------------------------------------------------------------


def test_login_is_throttled_after_five_failures(world: World, page: Page):
    account = world.throttled
    wrong = Account(account.email, account.name, account.password + "x", account.role)
    for attempt in range(5):
        response = login(page, wrong)
        assert response.status == 401, f"wrong password #{attempt + 1}: {response.status}"
        expect(page.get_by_role("alert")).to_contain_text(BAD_CREDENTIALS)
        if attempt == 0:
            expect_heading(page, "Log in")
            screenshot(page, "login-failed")
    # An unknown email gets the same answer as a wrong password.
    response = login(page, Account("nobody@example.com", "", account.password))
    assert response.status == 401
    expect(page.get_by_role("alert")).to_contain_text(BAD_CREDENTIALS)

    response = login(page, account)
    assert response.status == 429, f"the right password after 5 failures: {response.status}"
    expect(page.get_by_role("alert")).to_have_text(re.compile(r"^\s*Too many login attempts"))
    screenshot(page, "login-throttled")
    goto(page, world.acme.path)
    assert path_of(page) == "/login", "a throttled login opened a session"


# --- 6. Sessions --------------------------------------------------------------------------------


def test_session_value_changes_at_login(world: World, new_context):
    server = world.server
    team = world.acme
    ctx = new_context()
    planted = random_base62(43)  # the shape of a real session value, known to an attacker
    ctx.add_cookies([{"name": SESSION_COOKIE, "value": planted, "url": server.base}])
    page = ctx.new_page()
    goto(page, "/login")
    before = session_cookie(ctx)
    login_ok(page, world.sessions, team)

    cookie = session_cookie(ctx)
    assert cookie is not None, "no session cookie after login"
    assert cookie["value"] != planted
    assert before is None or cookie["value"] != before["value"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain HTTP here
    assert cookie["path"] == "/"
    assert not page.evaluate("document.cookie").count(SESSION_COOKIE)

    # Neither the planted value nor the one held before login opens a page.
    stale = {planted}
    if before is not None:
        stale.add(before["value"])
    for value in stale:
        other = new_context()
        other.add_cookies([{"name": SESSION_COOKIE, "value": value, "url": server.base}])
        p = other.new_page()
        goto(p, team.path)
        assert path_of(p) == "/login", f"a pre-login cookie value opened {p.url}"


def test_logout_ends_the_session_on_the_server(world: World, new_context):
    server = world.server
    team = world.acme
    ctx = new_context()
    page = ctx.new_page()
    login_ok(page, world.sessions, team)
    value = session_cookie(ctx)["value"]

    submit(page, lambda: page.get_by_role("banner").get_by_role("button", name="Log out").click())
    assert path_of(page) == "/login"
    goto(page, team.path)
    assert path_of(page) == "/login"

    replay = new_context()
    replay.add_cookies([{"name": SESSION_COOKIE, "value": value, "url": server.base}])
    p = replay.new_page()
    goto(p, team.path)
    assert path_of(p) == "/login", "the logged-out session still opens pages"


def test_log_out_everywhere_ends_other_sessions(world: World, new_context):
    team = world.acme
    first = new_context().new_page()
    login_ok(first, world.sessions, team)
    second = new_context().new_page()
    login_ok(second, world.sessions, team)

    click_link(second, "Account", within="banner")
    assert path_of(second) == "/account"
    expect(second.get_by_label("Current password")).to_have_attribute("type", "password")
    expect(second.get_by_label("New password", exact=True)).to_have_attribute("type", "password")
    expect(second.get_by_label("Confirm new password")).to_have_attribute("type", "password")
    expect(second.get_by_role("button", name="Change password")).to_be_visible()
    screenshot(second, "account")
    submit(second, lambda: second.get_by_role("button", name="Log out everywhere").click())

    goto(first, team.path)
    assert path_of(first) == "/login", "the other browser's session survived"
    goto(second, team.path)
    assert path_of(second) == "/login", "the session that logged out everywhere survived"


def test_password_change_ends_other_sessions(world: World, new_context):
    team = world.acme
    account = world.changer
    other = new_context().new_page()
    login_ok(other, account, team)
    page = new_context().new_page()
    login_ok(page, account, team)

    new = "changed-" + random_base62(16)
    goto(page, "/account")
    page.get_by_label("Current password").fill(account.password)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("Confirm new password").fill(new)
    response = submit(page, lambda: page.get_by_role("button", name="Change password").click())
    assert response.status < 400, f"changing the password answered {response.status}"
    old = account.password
    account.password = new

    goto(page, team.path)
    assert path_of(page).rstrip("/") == team.path, "the session that changed the password ended"
    goto(other, team.path)
    assert path_of(other) == "/login", "another session survived the password change"

    fresh = new_context().new_page()
    response = login(fresh, Account(account.email, account.name, old, account.role))
    assert response.status == 401, "the old password still works"
    login_ok(fresh, account, team)


# --- Team tokens --------------------------------------------------------------------------------


def test_team_tokens_page(world: World, page: Page):
    team = world.acme
    login_ok(page, world.alice, team)
    click_link(page, "Team tokens")
    assert path_of(page).rstrip("/") == f"{team.path}/team-tokens"
    expect_heading(page, "Team tokens")
    click_link(page, "Create token")
    expect_heading(page, "Create token")
    abilities = page.get_by_role("checkbox")
    assert abilities.count() >= 1, "no ability checkboxes"
    page.get_by_label("Name", exact=True).fill("deploy")
    if not abilities.first.is_checked():
        abilities.first.check()
    screenshot(page, "team-token-new")
    submit(page, lambda: page.get_by_role("button", name="Create token").click())
    expect_heading(page, "Token created")
    value = page.get_by_label("Token value").input_value()
    assert value.startswith("lm_team_"), value[:8]
    click_link(page, re.compile(r"^Back to "))
    expect_heading(page, "Team tokens")
    expect(token_row(page, "deploy")).to_have_count(1)
    assert value not in page.content()
    screenshot(page, "team-tokens")


# --- 7. Accessibility smoke ---------------------------------------------------------------------


def test_pages_are_accessible(world: World, new_context):
    """One h1, labelled inputs and a lang attribute on every page: a walk through the pages of
    a project with a token, then every page the other tests opened before this one."""
    team = world.globex
    page = new_context().new_page()
    goto(page, "/login")
    assert_accessible(page)
    login_ok(page, world.bob, team)
    assert_accessible(page)

    for path in (
        team.path,
        team.project_path("Portal"),
        team.tokens_path("Portal"),
        team.tokens_path("Portal") + "/new",
        "/account",
        world.acme.path,  # not Bob's team: the 404 page
    ):
        goto(page, path)
        assert_accessible(page)

    for link in ("Regenerate", "Revoke", "View logs"):
        goto(page, team.tokens_path("Portal"))
        follow(page, open_actions(page, "backend").get_by_role("link", name=link))
        assert_accessible(page)

    goto(page, team.path)
    click_link(page, "Team tokens")
    assert_accessible(page)
    click_link(page, "Create token")
    assert_accessible(page)

    goto(page, team.tokens_path("Portal") + "/new")
    submit(page, lambda: page.get_by_role("button", name="Create token").click())
    assert_accessible(page)  # the form with its error
    page.get_by_label("Name", exact=True).fill("a11y")
    submit(page, lambda: page.get_by_role("button", name="Create token").click())
    expect_heading(page, "Token created")
    assert_accessible(page)

    bad = [c for c in A11Y_LOG if c.problems]
    assert not bad, "\n".join(f"{c.url} ({c.status}): {'; '.join(c.problems)}" for c in bad)
