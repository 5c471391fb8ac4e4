"""The official Lettermint Python SDK (``lettermint`` on PyPI) against a running api-server.

Started by ``tests/interop/run.sh``, which exports:

- ``LETTERMINT_BASE_URL``: the server's origin, ``http://host:port`` (``/v1`` is added here,
  because the SDK's ``base_url`` includes the version prefix: its default is
  ``https://api.lettermint.co/v1`` and it appends ``/send``, ``/ping``, ``/projects``...).
- ``LETTERMINT_PROJECT_TOKEN``: a project token (``lm_...``).
- ``LETTERMINT_TEAM_TOKEN``: a team token (``lm_team_...``).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from lettermint import (
    APIError,
    AuthenticationError,
    ConflictError,
    Lettermint,
    ValidationError,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
PAGE_KEYS = {"data", "path", "per_page", "next_cursor", "next_page_url", "prev_cursor", "prev_page_url"}
TIMEOUT = 15.0


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set; start the tests with tests/interop/run.sh", pytrace=False)
    return value


def _api_base() -> str:
    origin = _env("LETTERMINT_BASE_URL").rstrip("/")
    return origin if origin.endswith("/v1") else f"{origin}/v1"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _message(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "from": "Interop Python <sender@example.com>",
        "to": ["recipient@example.com"],
        "subject": "Interop test from the Python SDK",
        "text": "Hello from the Python SDK.",
    }
    message.update(overrides)
    return message


def _assert_pending(result: Any) -> str:
    assert isinstance(result, dict), result
    assert result.get("status") == "pending", result
    message_id = result.get("message_id")
    assert isinstance(message_id, str) and UUID.match(message_id), result
    # A live send answers exactly these two keys.
    assert set(result) == {"message_id", "status"}, result
    return message_id


def _field_errors(errors: Any, field: str) -> list[str]:
    """The error keys for ``field`` itself or one of its elements (``to``, ``to.0``, ``to[0]``)."""
    assert isinstance(errors, dict), errors
    return [
        key
        for key in errors
        if key == field or key.startswith(f"{field}.") or key.startswith(f"{field}[")
    ]


@pytest.fixture(scope="module")
def project_token() -> str:
    token = _env("LETTERMINT_PROJECT_TOKEN")
    assert token.startswith("lm_") and not token.startswith("lm_team_")
    return token


@pytest.fixture(scope="module")
def team_token() -> str:
    token = _env("LETTERMINT_TEAM_TOKEN")
    assert token.startswith("lm_team_")
    return token


@pytest.fixture(scope="module")
def sending(project_token: str) -> Iterator[Lettermint]:
    with Lettermint(sending_token=project_token, base_url=_api_base(), timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def team(team_token: str) -> Iterator[Lettermint]:
    with Lettermint(team_token=team_token, base_url=_api_base(), timeout=TIMEOUT) as client:
        yield client


# --- Sending API -------------------------------------------------------------------------


def test_send_one(sending: Lettermint) -> None:
    _assert_pending(sending.emails.send(_message()))


def test_send_with_every_common_field(sending: Lettermint) -> None:
    builder = (
        sending.emails.compose()
        .from_("Interop Python <sender@example.com>")
        .to("one@example.com", "two@example.com")
        .cc("cc@example.com")
        .bcc("bcc@example.com")
        .reply_to("reply@example.com")
        .subject("Every field")
        .html("<p>Hello <b>there</b></p>")
        .text("Hello there")
        .headers({"X-Interop": "python"})
        .metadata({"order_id": "1234"})
        .tag("interop test")
        .tags([{"name": "campaign", "value": "welcome"}, {"name": "sdk", "value": "python"}])
        .attach("hello.txt", b"Hello, attachment", content_type="text/plain")
        .attach("logo.png", b"\x89PNG\r\n\x1a\n", content_type="image/png", content_id="logo")
    )
    wire = builder.build()
    assert wire["attachments"][0]["content"] == "SGVsbG8sIGF0dGFjaG1lbnQ="
    _assert_pending(builder.send())


def test_send_batch_of_two(sending: Lettermint) -> None:
    results = sending.emails.send_batch(
        [
            _message(to=["first@example.com"], subject="Batch 1"),
            sending.emails.compose(_message(to=["second@example.com"], subject="Batch 2")),
        ]
    )
    assert isinstance(results, list) and len(results) == 2, results
    ids = [_assert_pending(result) for result in results]
    assert ids[0] != ids[1]


def test_batch_replay_keeps_order(sending: Lettermint) -> None:
    key = _unique("py-batch")
    batch = [
        _message(to=["a@example.com"], subject="Ordered 1"),
        _message(to=["b@example.com"], subject="Ordered 2"),
    ]
    first = sending.emails.send_batch(batch, idempotency_key=key)
    again = sending.emails.send_batch(batch, idempotency_key=key)
    assert [r["message_id"] for r in again] == [r["message_id"] for r in first]


def test_ping_with_either_token(sending: Lettermint, team: Lettermint) -> None:
    assert sending.emails.ping() == "pong"
    assert sending.ping() == "pong"
    assert team.ping() == "pong"


def test_idempotent_replay(sending: Lettermint) -> None:
    key = _unique("py-idem")
    message = _message(subject="Idempotent send")
    first = sending.emails.send(message, idempotency_key=key)
    first_id = _assert_pending(first)
    replay = sending.emails.send(message, idempotency_key=key)
    assert replay["message_id"] == first_id
    assert replay == first
    # Another key is another email.
    other = sending.emails.send(message, idempotency_key=_unique("py-idem"))
    assert _assert_pending(other) != first_id


def test_idempotency_key_with_different_body_conflicts(sending: Lettermint) -> None:
    key = _unique("py-conflict")
    _assert_pending(sending.emails.send(_message(subject="Original"), idempotency_key=key))
    with pytest.raises(ConflictError) as caught:
        sending.emails.send(_message(subject="Changed"), idempotency_key=key)
    assert caught.value.status == 409
    assert caught.value.message


def test_invalid_from_is_a_validation_error(sending: Lettermint) -> None:
    with pytest.raises(ValidationError) as caught:
        sending.emails.send(_message(**{"from": "not an email address"}))
    error = caught.value
    assert error.status == 422
    assert isinstance(error.message, str) and error.message
    assert _field_errors(error.errors, "from"), error.errors
    assert all(isinstance(v, list) and v for v in error.errors.values()), error.errors


def test_missing_to_is_a_validation_error(sending: Lettermint) -> None:
    message = _message()
    del message["to"]
    with pytest.raises(ValidationError) as caught:
        sending.emails.send(message)  # type: ignore[arg-type]
    assert caught.value.status == 422
    assert _field_errors(caught.value.errors, "to"), caught.value.errors


def test_unknown_token_is_unauthenticated() -> None:
    with Lettermint(
        sending_token="lm_" + "x" * 32, base_url=_api_base(), timeout=TIMEOUT
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.emails.send(_message())
    assert caught.value.status == 401


def test_tokens_do_not_cross_surfaces(project_token: str, team_token: str) -> None:
    # A team token never sends mail ...
    with Lettermint(sending_token=team_token, base_url=_api_base(), timeout=TIMEOUT) as client:
        with pytest.raises(APIError) as caught:
            client.emails.send(_message())
    assert caught.value.status in (401, 403)
    # ... and a project token never reaches the Team API.
    with Lettermint(team_token=project_token, base_url=_api_base(), timeout=TIMEOUT) as client:
        with pytest.raises(APIError) as caught:
            client.projects.list()
    assert caught.value.status in (401, 403)


# --- Team API ----------------------------------------------------------------------------


def test_list_projects(team: Lettermint) -> None:
    page = team.projects.list()
    assert isinstance(page, dict)
    assert PAGE_KEYS <= set(page), page
    assert isinstance(page["data"], list) and page["data"], page
    for project in page["data"]:
        assert UUID.match(project["id"]), project
        assert isinstance(project["name"], str)


def test_create_project_and_use_its_token(team: Lettermint) -> None:
    name = _unique("Interop Python")
    created = team.projects.create({"name": name})
    assert isinstance(created.get("message"), str) and created["message"], created
    project = created["data"]
    assert project["name"] == name
    assert UUID.match(project["id"]), project
    token = created.get("api_token")
    assert isinstance(token, str) and token.startswith("lm_") and not token.startswith("lm_team_")

    assert team.projects.retrieve(project["id"])["name"] == name

    with Lettermint(sending_token=token, base_url=_api_base(), timeout=TIMEOUT) as client:
        _assert_pending(client.emails.send(_message(subject="From a new project")))


def test_iterate_projects_follows_next_cursor(team: Lettermint) -> None:
    names = {_unique("Interop Python page") for _ in range(2)}
    created_ids = {team.projects.create({"name": name})["data"]["id"] for name in names}

    first = team.projects.list({"page": {"size": 1}})
    assert len(first["data"]) == 1
    assert isinstance(first["next_cursor"], str) and first["next_cursor"], first

    seen = [project["id"] for project in team.projects.iterate({"page": {"size": 1}})]
    assert len(seen) == len(set(seen)), "a project was listed twice"
    assert created_ids <= set(seen)
    assert len(seen) >= 3  # the project the server started with, plus the two above


def test_create_project_without_name_is_a_validation_error(team: Lettermint) -> None:
    with pytest.raises(ValidationError) as caught:
        team.projects.create({"name": ""})
    assert _field_errors(caught.value.errors, "name"), caught.value.errors


def test_rotate_token_replaces_the_old_value(team: Lettermint) -> None:
    created = team.projects.create({"name": _unique("Interop Python rotate")})
    old = created["api_token"]
    rotated = team.projects.rotate_token(created["data"]["id"])
    new = rotated["new_token"]
    assert isinstance(rotated.get("message"), str)
    assert rotated["data"]["id"] == created["data"]["id"]
    assert new.startswith("lm_") and new != old

    with Lettermint(sending_token=old, base_url=_api_base(), timeout=TIMEOUT) as client:
        with pytest.raises(AuthenticationError):
            client.emails.send(_message())
    with Lettermint(sending_token=new, base_url=_api_base(), timeout=TIMEOUT) as client:
        _assert_pending(client.emails.send(_message(subject="After rotation")))
