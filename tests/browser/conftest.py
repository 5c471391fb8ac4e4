"""Fixtures of the dashboard's browser tests.

One api-server for the whole run, on a free loopback port and a fresh SQLite file in a
temporary directory. Its first start prints the bootstrap owner's login; the other accounts,
teams and projects are added with token-admin against the same file. Debian's Chromium
(/usr/bin/chromium) is driven by Playwright: no browser of Playwright's own is used.

Environment:
  BIN_DIR                 directory of api-server and token-admin (default target/debug)
  API_SERVER_BIN          the server binary (default $BIN_DIR/api-server)
  TOKEN_ADMIN_BIN         the operator CLI (default $BIN_DIR/token-admin)
  CHROMIUM                the browser (default /usr/bin/chromium)
  BROWSER_SCREENSHOT_DIR  where dashboard-<name>.png files go (default docs/img)
  BROWSER_START_TIMEOUT   seconds to wait for the server's startup lines (default 60)
  BROWSER_KEEP_TMP=1      keep the temporary directory (database, server output)

The accounts share one client address (127.0.0.1), which may fail 20 logins in 15 minutes:
the suite fails 7 on purpose (throttling, unknown email, an old password).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import string
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    Response,
    expect,
    sync_playwright,
)

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("BIN_DIR") or ROOT / "target" / "debug")
API_SERVER_BIN = Path(os.environ.get("API_SERVER_BIN") or BIN_DIR / "api-server")
TOKEN_ADMIN_BIN = Path(os.environ.get("TOKEN_ADMIN_BIN") or BIN_DIR / "token-admin")
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
SCREENSHOT_DIR = Path(os.environ.get("BROWSER_SCREENSHOT_DIR") or ROOT / "docs" / "img")
START_TIMEOUT = float(os.environ.get("BROWSER_START_TIMEOUT") or 60)

# Root has no user namespaces for Chromium's sandbox here (Playwright passes --no-sandbox by
# default as well). The rest keeps Chromium off the network: this machine reaches nothing but
# loopback, and Chromium's background requests would only be refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}

SESSION_COOKIE = "lm_session"
CSRF_MESSAGE = "This form has expired or did not come from this site."
BAD_CREDENTIALS = "These credentials do not match our records."

# Password hashing (argon2id) is slow in a debug build: give every wait room.
expect.set_options(timeout=15_000)
DEFAULT_TIMEOUT_MS = 30_000


def random_base62(n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_password() -> str:
    return "pw-" + random_base62(24)


# --- The server ---------------------------------------------------------------------------------


@dataclass
class Account:
    email: str
    name: str
    password: str
    role: str = "owner"


@dataclass
class Project:
    id: str
    name: str
    team_id: str


@dataclass
class Team:
    id: str
    name: str
    projects: dict[str, Project] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/teams/{self.id}"

    def project(self, name: str) -> Project:
        return self.projects[name]

    def project_path(self, name: str) -> str:
        return f"{self.path}/projects/{self.projects[name].id}"

    def tokens_path(self, name: str) -> str:
        return f"{self.project_path(name)}/tokens"


class Server:
    """A running api-server and token-admin against its database."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.database_url = f"sqlite://{tmp / 'db.sqlite'}"
        self.out_path = tmp / "server.out"
        self.err_path = tmp / "server.err"
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.dashboard_url = ""
        self.owner: Account | None = None

    # Startup -----------------------------------------------------------------------------------

    def start(self) -> None:
        env = dict(os.environ, NO_COLOR="1")
        # The test server's configuration comes from its flags alone.
        for key in list(env):
            if key.startswith("LETTERMINT_"):
                del env[key]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [
                    str(API_SERVER_BIN),
                    "--database-url",
                    self.database_url,
                    "--listen",
                    "127.0.0.1:0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=self.tmp,
            )
        banner = self._wait_for_banner()
        self.base = "http://" + banner["addr"]
        self.dashboard_url = banner["dashboard"]
        self.owner = Account(
            email=banner["login"], name="", password=banner["password"], role="owner"
        )
        self._wait_until_answering()

    def output(self) -> str:
        text = ""
        for path in (self.out_path, self.err_path):
            try:
                text += path.read_text(errors="replace")
            except FileNotFoundError:
                pass
        return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)

    def _wait_for_banner(self) -> dict[str, str]:
        # listening on http://127.0.0.1:41234
        #   dashboard: http://127.0.0.1:41234/
        #   dashboard login: admin@localhost
        #   dashboard password: <24 base62 characters>
        patterns = {
            "addr": re.compile(r"listening on http://(\S+?)/?(?:\s|$)", re.M),
            "dashboard": re.compile(r"^\s*dashboard: (http://\S+)", re.M),
            "login": re.compile(r"^\s*dashboard login: (\S+)", re.M),
            "password": re.compile(r"^\s*dashboard password: ([A-Za-z0-9]{24})\s*$", re.M),
        }
        deadline = time.monotonic() + START_TIMEOUT
        found: dict[str, str] = {}
        while True:
            text = self.output()
            found = {}
            for key, pattern in patterns.items():
                match = pattern.search(text)
                if match:
                    found[key] = match.group(1)
            if len(found) == len(patterns):
                return found
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"api-server exited (status {self.proc.returncode}) before printing its "
                    f"address and the dashboard login\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                missing = ", ".join(k for k in patterns if k not in found)
                raise RuntimeError(
                    f"api-server did not print {missing} within {START_TIMEOUT:.0f}s "
                    f"(an empty store must print the dashboard banner)\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"api-server does not answer /healthz\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        text = self.output().splitlines()
        return "----- api-server output (last lines) -----\n" + "\n".join(text[-lines:])

    # URLs --------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base + path

    # The operator CLI --------------------------------------------------------------------------

    def admin(self, *args: str, stdin: str | None = None) -> str:
        """Runs token-admin against the server's database and returns its stdout."""
        result = subprocess.run(
            [str(TOKEN_ADMIN_BIN), "--database-url", self.database_url, *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"token-admin {' '.join(args)} failed (status {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result.stdout

    def admin_json(self, *args: str, stdin: str | None = None):
        return json.loads(self.admin("--json", *args, stdin=stdin))

    def add_member(self, team: str, account: Account) -> None:
        self.admin(
            "member",
            "add",
            "--team",
            team,
            "--email",
            account.email,
            "--name",
            account.name,
            "--role",
            account.role,
            "--password-stdin",
            stdin=account.password + "\n",
        )

    def create_team(self, name: str) -> Team:
        data = self.admin_json("team", "create", name)
        return Team(id=data["id"], name=data["name"])

    def create_project(self, team: Team, name: str) -> Project:
        data = self.admin_json("project", "create", name, "--team", team.id)
        # With --with-token the answer may carry the token too; the project is what counts.
        data = data.get("project", data) if isinstance(data, dict) else data
        project = Project(id=data["id"], name=data["name"], team_id=team.id)
        team.projects[name] = project
        return project

    def create_token(self, project: Project, name: str) -> str:
        return self.admin(
            "token", "create", "--project", project.id, "--team", project.team_id, "--name", name
        ).strip()

    def tokens(self, project: Project) -> list[dict]:
        return self.admin_json(
            "token", "list", "--project", project.id, "--team", project.team_id, "--status", "all"
        )


@dataclass
class World:
    """Everything seeded: teams by name, accounts by role in the scenarios."""

    server: Server
    bootstrap: Team
    admin: Account  # the bootstrap owner, from the first start's banner
    member: Account  # role member of the bootstrap team
    acme: Team
    alice: Account  # owner of Acme
    globex: Team
    bob: Account  # owner of Globex
    throttled: Account  # only for the throttling scenario
    sessions: Account  # only for the session scenarios
    changer: Account  # only for the password change
    portal_token: str = ""


@pytest.fixture(scope="session")
def server():
    for binary in (API_SERVER_BIN, TOKEN_ADMIN_BIN):
        if not os.access(binary, os.X_OK):
            pytest.exit(
                f"{binary} is missing: cargo build -p api-server -p token-admin", returncode=2
            )
    tmp = Path(tempfile.mkdtemp(prefix="lettermint-browser."))
    srv = Server(tmp)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        if os.environ.get("BROWSER_KEEP_TMP") == "1":
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def world(server: Server) -> World:
    # Before anything is added, the store holds the bootstrap team and its one project.
    teams = server.admin_json("team", "list")
    assert len(teams) == 1, f"expected only the bootstrap team, got {teams}"
    bootstrap = Team(id=teams[0]["id"], name=teams[0]["name"])
    for p in server.admin_json("project", "list", "--team", bootstrap.id):
        bootstrap.projects[p["name"]] = Project(id=p["id"], name=p["name"], team_id=bootstrap.id)
    assert len(bootstrap.projects) == 1, f"expected one bootstrap project: {bootstrap.projects}"

    assert server.owner is not None
    admin = server.owner
    member = Account("mia.member@example.com", "Mia Member", new_password(), "member")
    server.add_member(bootstrap.id, member)

    acme = server.create_team("Acme")
    server.create_project(acme, "Shop")
    alice = Account("alice@example.com", "Alice Owner", new_password(), "owner")
    server.add_member(acme.id, alice)
    throttled = Account("throttled@example.com", "Theo Throttled", new_password(), "member")
    server.add_member(acme.id, throttled)
    sessions = Account("sessions@example.com", "Sam Sessions", new_password(), "owner")
    server.add_member(acme.id, sessions)
    changer = Account("pat.changer@example.com", "Pat Changer", new_password(), "admin")
    server.add_member(acme.id, changer)

    globex = server.create_team("Globex")
    portal = server.create_project(globex, "Portal")
    bob = Account("bob@example.com", "Bob Owner", new_password(), "owner")
    server.add_member(globex.id, bob)
    portal_token = server.create_token(portal, "backend")

    return World(
        server=server,
        bootstrap=bootstrap,
        admin=admin,
        member=member,
        acme=acme,
        alice=alice,
        globex=globex,
        bob=bob,
        throttled=throttled,
        sessions=sessions,
        changer=changer,
        portal_token=portal_token,
    )


# --- The browser --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_instance():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.exit(
            f"{CHROMIUM} is missing: apt-get install chromium (or run run.sh with CI=true)",
            returncode=2,
        )
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright):
    b = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield b
    b.close()


@pytest.fixture
def new_context(browser: Browser, server: Server) -> Callable[..., BrowserContext]:
    """Makes fresh browser contexts (separate cookie jars), closed after the test."""
    made: list[BrowserContext] = []

    def make(*, clipboard: bool = False) -> BrowserContext:
        ctx = browser.new_context(
            base_url=server.base,
            viewport=VIEWPORT,
            locale="en-US",
            timezone_id="UTC",
        )
        ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
        if clipboard:
            ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture
def page(new_context) -> Page:
    return new_context().new_page()


# --- Accessibility: checked on every page the helpers open --------------------------------------

A11Y_SCRIPT = """
() => {
  const problems = [];
  const lang = (document.documentElement.getAttribute('lang') || '').trim();
  if (!lang) problems.push('html has no lang attribute');
  const h1 = document.querySelectorAll('h1').length;
  if (h1 !== 1) problems.push(`${h1} h1 elements (want exactly 1)`);
  const named = (el) => {
    const aria = (el.getAttribute('aria-label') || '').trim();
    if (aria) return true;
    const by = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean);
    if (by.some((id) => (document.getElementById(id)?.textContent || '').trim())) return true;
    return false;
  };
  for (const el of document.querySelectorAll('input, select, textarea')) {
    const type = (el.getAttribute('type') || '').toLowerCase();
    if (type === 'hidden') continue;
    if (['submit', 'button', 'reset'].includes(type) && (el.value || '').trim()) continue;
    const labelled = Array.from(el.labels || []).some((l) => l.textContent.trim());
    if (!labelled && !named(el)) problems.push('unlabelled ' + el.outerHTML.slice(0, 120));
  }
  for (const el of document.querySelectorAll('button')) {
    if (!el.textContent.trim() && !named(el)) problems.push('button without a name ' + el.outerHTML.slice(0, 120));
  }
  for (const el of document.querySelectorAll('img:not([alt])')) {
    problems.push('img without alt ' + el.outerHTML.slice(0, 120));
  }
  return problems;
}
"""


@dataclass
class PageCheck:
    url: str
    status: int | None
    problems: list[str]


A11Y_LOG: list[PageCheck] = []


def check_accessibility(page: Page, status: int | None = None) -> list[str]:
    """Records (does not assert) the page's accessibility problems; returns them."""
    problems = page.evaluate(A11Y_SCRIPT)
    A11Y_LOG.append(PageCheck(url=page.url, status=status, problems=problems))
    return problems


def assert_accessible(page: Page, status: int | None = None) -> None:
    problems = check_accessibility(page, status)
    assert not problems, f"{page.url}: " + "; ".join(problems)


# --- Page helpers -------------------------------------------------------------------------------


def path_of(page: Page) -> str:
    return urlparse(page.url).path


def goto(page: Page, path: str) -> Response:
    response = page.goto(path)
    assert response is not None, f"no response for {path}"
    check_accessibility(page, response.status)
    return response


def _is_document_post(response: Response) -> bool:
    request = response.request
    return request.method == "POST" and request.resource_type == "document"


def submit(page: Page, action: Callable[[], None]) -> Response:
    """Runs `action` (a click that submits a form) and returns the POST's own response (a 303
    stays a 303), once the page it led to has loaded."""
    with page.expect_navigation(wait_until="load"):
        with page.expect_response(_is_document_post) as posted:
            action()
    check_accessibility(page, posted.value.status)
    return posted.value


def follow(page: Page, link: Locator) -> None:
    """Clicks a link (or anything that navigates) and waits for the next page."""
    with page.expect_navigation(wait_until="load"):
        link.click()
    check_accessibility(page)


def click_link(
    page: Page, name: str | re.Pattern, *, exact: bool = True, within: str = "main"
) -> None:
    """Follows the link of that accessible name inside a landmark ("main" or "banner")."""
    follow(page, page.get_by_role(within).get_by_role("link", name=name, exact=exact))


def post_form(page: Page, action: str, fields: dict[str, str]) -> Response:
    """Submits a form built in the page (as a forged or replayed form would be) and returns the
    response to the POST."""
    return submit(
        page,
        lambda: page.evaluate(
            """([action, fields]) => {
                const form = document.createElement('form');
                form.method = 'post';
                form.action = action;
                for (const [name, value] of Object.entries(fields)) {
                  const input = document.createElement('input');
                  input.type = 'hidden';
                  input.name = name;
                  input.value = value;
                  form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [action, fields],
        ),
    )


def login(page: Page, account: Account) -> Response:
    """Logs in through the form; returns the response to the POST."""
    goto(page, "/login")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    return submit(page, lambda: page.get_by_role("button", name="Log in").click())


def login_ok(page: Page, account: Account, team: Team | None = None) -> None:
    response = login(page, account)
    assert response.status == 303, f"login of {account.email} answered {response.status}"
    if team is not None:
        expect(page).to_have_url(re.compile(re.escape(team.path) + r"/?$"))
        expect(page.get_by_role("heading", level=1, name="Projects")).to_be_visible()


def session_cookie(ctx: BrowserContext) -> dict | None:
    for cookie in ctx.cookies():
        if cookie["name"] == SESSION_COOKIE:
            return cookie
    return None


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def csrf_of(page: Page) -> str:
    """The `_csrf` value of the page's forms (the Log out form is on every page)."""
    value = page.locator("input[name=_csrf]").first.input_value()
    assert value, "no _csrf input on the page"
    return value


def table_rows(page: Page, caption: str) -> list[dict[str, str]]:
    """The rows of the table with that caption, as {column header: cell text}."""
    table = page.get_by_role("table", name=caption)
    expect(table).to_be_visible()
    headers = [h.strip() for h in table.get_by_role("columnheader").all_inner_texts()]
    rows = []
    for row in table.locator("tbody").get_by_role("row").all():
        cells = [c.strip() for c in row.get_by_role("cell").all_inner_texts()]
        rows.append(dict(zip(headers, cells)))
    return rows


def column_headers(page: Page, caption: str) -> list[str]:
    table = page.get_by_role("table", name=caption)
    return [h.strip() for h in table.get_by_role("columnheader").all_inner_texts()]


def token_row(page: Page, name: str):
    """The row of the tokens table whose Name cell is `name`."""
    table = page.get_by_role("table", name=re.compile(r"tokens$", re.I))
    return table.get_by_role("row").filter(has=page.get_by_role("cell", name=name, exact=True))


def open_actions(page: Page, name: str):
    """Opens the row's <details> "Actions for NAME" and returns the row."""
    row = token_row(page, name)
    expect(row).to_have_count(1)
    summary = row.get_by_text(f"Actions for {name}", exact=True)
    details = row.locator("details")
    if details.get_attribute("open") is None:
        summary.click()
    expect(details).to_have_attribute("open", "")
    return row


def send_mail(server: Server, token: str) -> int:
    """POST /v1/send with that token; returns the status code."""
    body = json.dumps(
        {
            "from": "Me <me@example.com>",
            "to": ["you@example.com"],
            "subject": "Hi",
            "text": "Hello",
        }
    ).encode()
    request = urllib.request.Request(
        server.url("/v1/send"),
        data=body,
        method="POST",
        headers={"content-type": "application/json", "x-lettermint-token": token},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


# --- Reports ------------------------------------------------------------------------------------


def _server_of(item) -> Server | None:
    srv = item.funcargs.get("server")
    if srv is None and "world" in item.funcargs:
        srv = item.funcargs["world"].server
    return srv if isinstance(srv, Server) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        srv = _server_of(item)
        if srv is not None:
            report.sections.append(("api-server output", srv.log_tail()))


@pytest.fixture(autouse=True)
def _server_still_running(request):
    yield
    srv = _server_of(request.node)
    if srv is not None:
        assert srv.alive(), "api-server exited during the test\n" + srv.log_tail()
