"""The contract comparator against two stub HTTP servers on loopback that answer the way the real
monolith and services do (shared/reference/vinylhound-endpoints.yaml: catalog-service's snake_case
albums served as text/plain, user-service's user record at /users/profile, gorilla's 404/405, a 501
stub, playlist-service's ``songs: null``): each documented difference is reported, identical
shapes with different values pass; and ``vinylhound contract`` prints it as a table."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra import contract_check as contract
from ops.cli import app
from ops.contract import requests_for

JSON = "application/json"
#: What the services' Go handlers send when they set no Content-Type (net/http sniffs it).
SNIFFED = "text/plain; charset=utf-8"

MONOLITH_ALBUM = {
    "id": 1,
    "artist": "Miles Davis",
    "title": "Kind of Blue",
    "releaseYear": 1959,
    "trackList": ["So What"],
    "genreList": ["jazz"],
    "rating": 5,
}
CATALOG_ALBUM = {
    "id": 1,
    "title": "Kind of Blue",
    "artist": "Miles Davis",
    "release_year": 1959,
    "genre": "jazz",
    "cover_url": "https://img/1.jpg",
    "created_at": "2025-10-26T10:00:00Z",
    "updated_at": "2025-10-26T10:00:00Z",
}
PLAYLIST = {"id": 3, "title": "Favorites", "owner": "demo", "tags": [], "is_public": False}

Reply = tuple[int, str, bytes]


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


MONOLITH: dict[str, Reply] = {
    "/api/v1/albums": (200, JSON, body({"albums": [MONOLITH_ALBUM]})),
    "/api/v1/albums/1": (200, JSON, body(MONOLITH_ALBUM)),
    "/api/v1/users/profile": (200, JSON, body({"content": ["hello"]})),
    "/api/v1/me/albums": (200, JSON, body({"albums": [MONOLITH_ALBUM]})),
    "/api/v1/me/albums/1/preference": (200, JSON, body({})),
    "/api/v1/favorites": (200, JSON, body({"favorites": []})),
    "/api/v1/playlists/3": (200, JSON, body({**PLAYLIST, "songs": []})),
    "/api/v1/songs/1": (
        200,
        JSON,
        body({"id": 1, "title": "So What", "artist": "Miles Davis", "duration": 545}),
    ),
    "/api/v1/providers": (200, JSON, body({"providers": [{"id": "spotify", "name": "Spotify"}]})),
}
SERVICE: dict[str, Reply] = {
    "/api/v1/albums": (200, SNIFFED, body({"albums": [CATALOG_ALBUM]})),
    "/api/v1/albums/1": (200, JSON, body(CATALOG_ALBUM)),
    "/api/v1/users/profile": (
        200,
        JSON,
        body({"id": 7, "username": "demo", "created_at": "x", "updated_at": "y"}),
    ),
    "/api/v1/me/albums/1/preference": (405, SNIFFED, b"405 method not allowed\n"),
    "/api/v1/favorites": (501, SNIFFED, b"Not implemented\n"),
    "/api/v1/playlists/3": (200, JSON, body({**PLAYLIST, "songs": None})),
    # Same shape, other values (another song, another duration): passes.
    "/api/v1/songs/1": (
        200,
        JSON,
        body({"id": 2, "title": "Blue in Green", "artist": "Bill Evans", "duration": 337}),
    ),
    "/api/v1/providers": (200, JSON + "; charset=utf-8", body({"providers": []})),
}


def stub(replies: dict[str, Reply]) -> Iterator[str]:
    """An HTTP server on a free loopback port answering GETs from ``replies``; anything else is
    gorilla/mux's 404 text. Yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, media, payload = replies.get(self.path, (404, SNIFFED, b"404 page not found\n"))
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def monolith() -> Iterator[str]:
    yield from stub(MONOLITH)


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    yield from stub(SERVICE)


def differences(monolith: str, service: str, path: str) -> list[str]:
    (result,) = contract.check(monolith, service, [f"GET {path}"])
    return result.differences


def test_snake_case_keys_are_reported_as_casing_differences(monolith: str, service: str) -> None:
    found = differences(monolith, service, "/api/v1/albums/1")
    casing = "releaseYear (camelCase) at the monolith, release_year (snake_case) at the service"
    assert f"releaseYear: key casing, {casing}" in found


def test_keys_missing_at_the_service_and_keys_only_there_are_reported_with_their_path(
    monolith: str, service: str
) -> None:
    found = differences(monolith, service, "/api/v1/albums")
    assert "albums[].trackList: missing at the service" in found
    assert "albums[].genreList: missing at the service" in found
    assert "albums[].cover_url: only at the service" in found


def test_text_plain_instead_of_json_is_reported(monolith: str, service: str) -> None:
    found = differences(monolith, service, "/api/v1/albums")
    assert "content type application/json at the monolith, text/plain at the service" in found


def test_a_different_resource_at_the_same_path_is_reported(monolith: str, service: str) -> None:
    found = differences(monolith, service, "/api/v1/users/profile")
    assert "content: missing at the service" in found
    assert "username: only at the service" in found


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/v1/me/albums", 404), ("/api/v1/me/albums/1/preference", 405), ("/api/v1/favorites", 501)],
)
def test_an_error_status_at_the_service_is_reported(
    monolith: str, service: str, path: str, status: int
) -> None:
    found = differences(monolith, service, path)
    assert f"status 200 at the monolith, {status} at the service" in found
    assert "body: JSON at the monolith, not JSON at the service" in found


def test_a_null_list_where_the_monolith_sends_an_empty_one_is_reported(monolith: str, service: str) -> None:
    assert differences(monolith, service, "/api/v1/playlists/3") == [
        "songs: array at the monolith, null at the service"
    ]


def test_identical_shapes_with_different_values_pass(monolith: str, service: str) -> None:
    assert differences(monolith, service, "/api/v1/songs/1") == []


def test_the_charset_parameter_is_not_a_content_type_difference(monolith: str, service: str) -> None:
    assert differences(monolith, service, "/api/v1/providers") == []


def test_an_unreachable_service_fails_the_check(monolith: str) -> None:
    (result,) = contract.check(monolith, "http://127.0.0.1:9", ["GET /api/v1/providers"])
    assert not result.passed
    assert result.differences[0].startswith("the service could not be asked: ")


def test_writes_are_never_sent() -> None:
    with pytest.raises(ValueError, match="only GET is compared"):
        contract.parse_endpoint("POST /api/v1/auth/signup")


def test_the_script_exits_1_on_a_mismatch_and_names_the_endpoint_and_keys(
    monolith: str, service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = contract.main(
        ["--monolith", monolith, "--service", service, "GET /api/v1/songs/1", "GET /api/v1/albums/1"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "PASS GET /api/v1/songs/1" in out and "FAIL GET /api/v1/albums/1" in out
    assert "    trackList: missing at the service" in out


def test_the_script_exits_0_when_every_endpoint_answers_alike(monolith: str, service: str) -> None:
    assert contract.main(["--monolith", monolith, "--service", service, "GET /api/v1/songs/1"]) == 0


def test_the_script_sends_the_token_from_the_environment_and_never_prints_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str | None] = []

    class Recording(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Type", JSON)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("CONTRACT_TOKEN", "s3cr3t-session-token")
    try:
        assert contract.main(["--monolith", url, "--service", url, "GET /api/v1/users/profile"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["Bearer s3cr3t-session-token"] * 2
    assert "s3cr3t" not in capsys.readouterr().out


# --- vinylhound contract ----------------------------------------------------------------------


def test_the_command_prints_a_table_of_endpoints_and_exits_1_on_a_mismatch(
    monolith: str, service: str
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "contract",
            "--monolith",
            monolith,
            "--service",
            service,
            "GET /api/v1/songs/{id}",
            "GET /api/v1/albums",
        ],
    )
    assert result.exit_code == 1
    assert "GET /api/v1/songs/1" in result.output and "pass" in result.output
    assert "GET /api/v1/albums" in result.output and "FAIL" in result.output
    assert "albums[].trackList: missing at the service" in result.output


def test_the_command_exits_0_when_every_endpoint_answers_alike(monolith: str, service: str) -> None:
    result = CliRunner().invoke(
        app, ["contract", "--monolith", monolith, "--service", service, "GET /api/v1/songs/1"]
    )
    assert result.exit_code == 0, result.output


def test_without_endpoints_the_command_checks_the_public_reads_the_named_service_shares() -> None:
    assert requests_for([], "http://catalog-service.vinylhound.svc.cluster.local:8002") == [
        "GET /api/v1/albums",
        "GET /api/v1/albums/1",
        "GET /api/v1/artists",
        "GET /api/v1/songs",
        "GET /api/v1/songs/1",
    ]


def test_without_endpoints_a_url_that_names_no_service_is_an_error() -> None:
    with pytest.raises(ValueError, match="name the endpoints"):
        requests_for([], "http://127.0.0.1:8002")


def test_an_unknown_endpoint_is_one_error_line_and_exit_1(monolith: str, service: str) -> None:
    result = CliRunner().invoke(
        app, ["contract", "--monolith", monolith, "--service", service, "GET /api/v1/nothing/{id}"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "vinylhound contract: GET /api/v1/nothing/{id}: no such endpoint in the monolith's catalog entry"
    ]


def test_the_script_needs_nothing_but_the_standard_library(monolith: str, service: str) -> None:
    # -S: no site-packages, -I: no user site or environment; as in the Job's bare python image.
    script = Path(contract.__file__)
    run = subprocess.run(
        [
            sys.executable,
            "-S",
            "-I",
            str(script),
            "--monolith",
            monolith,
            "--service",
            service,
            "GET /api/v1/songs/1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "PASS GET /api/v1/songs/1" in run.stdout
