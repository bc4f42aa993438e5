"""The event bus against a real nats-server with JetStream.

The server gets the users and permissions exactly as the dev stack's program hands them to the NATS
chart (taken from the recorded Helm release values, rendered with ``render_conf`` the way the chart
renders its config, passwords resolved from the server's environment). The streams and consumers
are created from the same definitions through the JetStream API with the JetStream controller's
credentials, as NACK does: the dev stack's, with a one-second ack wait so redelivery is quick.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import string
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from infra import events
from infra.config import parse_platform_config, stack_file
from infra.events import EventBus
from tests import natsd
from tests.conftest import PROJECT, rendered

T = TypeVar("T")
#: The bound on every wait for something that must happen: generous, so a loaded machine (the suite
#: runs beside others) does not fail the test; a passing run returns as soon as it happened.
WAIT = 10
USER_CREATED = events.subject("user.created")
STREAM = events.stream_name("user")


def _password() -> str:
    # The alphabet of the program's generated passwords (letters only; see the Kubernetes target).
    return "".join(secrets.choice(string.ascii_letters) for _ in range(32))


def dev_bus() -> EventBus:
    """The dev stack's event bus, with a one-second ack wait."""
    raw = PROJECT.stack_config("dev").values["vinylhound:platform"]
    cfg = parse_platform_config(json.loads(raw), stack_file("dev"))
    settings = cfg.events.model_copy(update={"ack_wait": "1s"})
    return events.event_bus(settings, cfg.event_cluster_size(), [w.name for w, _ in cfg.enabled()])


def rendered_authorization() -> dict[str, Any]:
    """The ``authorization`` block the dev stack's program put into the NATS chart's values."""
    (release,) = [
        r
        for r in rendered("dev").registrations
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["name"] == "nats"
    ]
    authorization: dict[str, Any] = release.inputs["values"]["config"]["merge"]["authorization"]
    return authorization


def test_the_rendered_chart_users_are_the_definitions_users() -> None:
    rendered_users = {u["user"]: u["permissions"] for u in rendered_authorization()["users"]}
    assert rendered_users == {
        u.name: {"publish": {"allow": list(u.publish)}, "subscribe": {"allow": list(u.subscribe)}}
        for u in dev_bus().users
    }


@dataclass
class Server:
    """A running nats-server and the credentials of every user the program declares."""

    url: str
    bus: EventBus
    passwords: dict[str, str]
    log: Path

    async def connect(self, user: str, errors: list[Exception] | None = None) -> Client:
        async def on_error(err: Exception) -> None:
            if errors is not None:
                errors.append(err)

        return await nats.connect(
            self.url,
            user=user,
            password=self.passwords[user],
            allow_reconnect=False,
            connect_timeout=WAIT,
            error_cb=on_error,
        )


def _violation(error: str) -> bool:
    return "permissions violation for publish" in error.lower()


def _violations(errors: list[Exception]) -> int:
    return sum(_violation(str(e)) for e in errors)


async def _until(done: Callable[[], bool]) -> None:
    """Return as soon as ``done()`` holds, at the latest after ``WAIT`` seconds (the test's
    assertion then says what did not arrive). The server's ``-ERR`` reaches the error callback
    asynchronously, after ``flush`` has returned."""
    deadline = time.monotonic() + WAIT
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def run(coro: Callable[[], Awaitable[T]]) -> T:
    """Run one async test body on a fresh event loop."""
    return asyncio.run(coro())  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One JetStream server for the session, configured from the generated definitions."""
    binary = natsd.binary()
    root = tmp_path_factory.mktemp("nats")
    bus = dev_bus()
    passwords = {u.name: _password() for u in bus.users}
    port, http_port = natsd.free_port(), natsd.free_port()
    config = events.server_config(
        bus, store_dir=str(root / "js"), host="127.0.0.1", port=port, http_port=http_port
    )
    # The users and permissions exactly as the dev stack hands them to the NATS chart.
    config["authorization"] = rendered_authorization()
    conf = root / "nats.conf"
    conf.write_text(events.render_conf(config))
    log = root / "server.log"
    env = {**os.environ, **events.server_environment(bus, passwords)}
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{http_port}/healthz?js-enabled-only=true", timeout=1
                ):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nats-server did not start:\n{log.read_text()}")
                time.sleep(0.05)
        yield Server(url=f"nats://127.0.0.1:{port}", bus=bus, passwords=passwords, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _api(nc: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = await nc.request(subject, json.dumps(body).encode() if body is not None else b"", timeout=WAIT)
    result: dict[str, Any] = json.loads(reply.data)
    return result


@pytest.fixture
def bus(server: Server) -> EventBus:
    """Fresh streams and consumers for each test, created from the definitions as NACK would."""

    async def reset() -> None:
        nc = await server.connect(events.CONTROLLER_USER)
        try:
            for stream in server.bus.streams:
                await _api(nc, f"$JS.API.STREAM.DELETE.{stream.name}")
                created = await _api(nc, f"$JS.API.STREAM.CREATE.{stream.name}", stream.api_config())
                assert "error" not in created, created
            for consumer in server.bus.consumers:
                created = await _api(
                    nc,
                    f"$JS.API.CONSUMER.DURABLE.CREATE.{consumer.stream}.{consumer.durable}",
                    consumer.api_config(),
                )
                assert "error" not in created, created
        finally:
            await nc.close()

    run(reset)
    return server.bus


async def _publish_user_created(server: Server, user_id: int, msg_id: str | None = None) -> Any:
    nc = await server.connect("user-service")
    try:
        headers = {"Nats-Msg-Id": msg_id or f"user.created:{user_id}"}
        payload = json.dumps({"id": user_id}).encode()
        return await nc.jetstream().publish(USER_CREATED, payload, headers=headers, timeout=WAIT)
    finally:
        await nc.close()


async def _fetch_or_nothing(sub: JetStreamContext.PullSubscription, timeout: float) -> list[Msg]:
    """Whatever the pull consumer delivers within ``timeout``; nothing is the expected answer.

    nats-py ends an empty fetch with its own ``TimeoutError`` or, when the server's "request
    expired" status and the client's deadline arrive together (a loaded machine), with the
    builtin one it derives from: both mean that nothing came.
    """
    try:
        return await sub.fetch(10, timeout=timeout)
    except TimeoutError:
        return []


async def _consumer_info(server: Server, durable: str) -> dict[str, Any]:
    """The server's state of a durable consumer, read with the controller's credentials."""
    nc = await server.connect(events.CONTROLLER_USER)
    try:
        return await _api(nc, f"$JS.API.CONSUMER.INFO.{STREAM}.{durable}")
    finally:
        await nc.close()


def test_playlist_consumer_receives_user_created_exactly_once(server: Server, bus: EventBus) -> None:
    async def body() -> tuple[list[bytes], list[bytes], dict[str, Any]]:
        await _publish_user_created(server, 42)  # returns once the stream has stored it
        nc = await server.connect("playlist-service")
        try:
            sub = await nc.jetstream().pull_subscribe_bind(durable="playlist-service", stream=STREAM)
            first = await sub.fetch(10, timeout=WAIT)
            for msg in first:
                await msg.ack_sync(timeout=WAIT)
            again = await _fetch_or_nothing(sub, timeout=1.5)  # beyond the one-second ack wait
        finally:
            await nc.close()
        return (
            [m.data for m in first],
            [m.data for m in again],
            await _consumer_info(server, "playlist-service"),
        )

    first, again, info = run(body)
    assert [json.loads(d) for d in first] == [{"id": 42}] and again == []
    # The server's own account: delivered once, acknowledged, nothing left to redeliver.
    assert (info["num_redelivered"], info["num_ack_pending"], info["num_pending"]) == (0, 0, 0)
    assert info["delivered"]["stream_seq"] == info["ack_floor"]["stream_seq"] == 1


def test_an_unacknowledged_event_is_delivered_again(server: Server, bus: EventBus) -> None:
    async def body() -> tuple[int, int, int]:
        await _publish_user_created(server, 7)
        nc = await server.connect("playlist-service")
        try:
            sub = await nc.jetstream().pull_subscribe_bind(durable="playlist-service", stream=STREAM)
            (first,) = await sub.fetch(1, timeout=WAIT)  # not acknowledged: the handler "crashed"
            (second,) = await sub.fetch(1, timeout=WAIT)  # arrives once the one-second ack wait is over
            await second.ack_sync(timeout=WAIT)
        finally:
            await nc.close()
        return first.metadata.sequence.stream, second.metadata.sequence.stream, second.metadata.num_delivered

    first_seq, second_seq, deliveries = run(body)
    assert first_seq == second_seq and deliveries == 2


def test_a_duplicate_publish_within_the_window_is_dropped(server: Server, bus: EventBus) -> None:
    async def body() -> tuple[bool, bool, int]:
        first = await _publish_user_created(server, 9, msg_id="user.created:9")
        second = await _publish_user_created(server, 9, msg_id="user.created:9")
        nc = await server.connect(events.CONTROLLER_USER)
        info = await _api(nc, f"$JS.API.STREAM.INFO.{STREAM}")
        await nc.close()
        return bool(first.duplicate), bool(second.duplicate), int(info["state"]["messages"])

    first_dup, second_dup, stored = run(body)
    assert (first_dup, second_dup, stored) == (False, True, 1)


def test_a_consumer_cannot_publish_the_events_it_consumes(server: Server, bus: EventBus) -> None:
    async def body() -> tuple[list[str], int]:
        errors: list[Exception] = []
        nc = await server.connect("playlist-service", errors)
        await nc.publish(USER_CREATED, b'{"id": 1}')
        await nc.flush(timeout=WAIT)
        await _until(lambda: _violations(errors) >= 1)
        await nc.close()
        admin = await server.connect(events.CONTROLLER_USER)
        info = await _api(admin, f"$JS.API.STREAM.INFO.{STREAM}")
        await admin.close()
        return [str(e) for e in errors], int(info["state"]["messages"])

    errors, stored = run(body)
    assert any(_violation(e) for e in errors) and stored == 0


def test_a_publisher_cannot_publish_outside_its_own_subjects(server: Server, bus: EventBus) -> None:
    async def body() -> list[str]:
        errors: list[Exception] = []
        nc = await server.connect("user-service", errors)
        await nc.publish(events.subject("playlist.created"), b"{}")
        await nc.publish(f"$JS.API.STREAM.DELETE.{STREAM}", b"")
        await nc.flush(timeout=WAIT)
        await _until(lambda: _violations(errors) >= 2)
        await nc.close()
        return [str(e) for e in errors]

    errors = run(body)
    assert sum(_violation(e) for e in errors) == 2


def test_a_publisher_cannot_read_another_workloads_consumer(server: Server, bus: EventBus) -> None:
    async def body() -> list[str]:
        errors: list[Exception] = []
        nc = await server.connect("user-service", errors)
        await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.playlist-service", b"1")
        await nc.flush(timeout=WAIT)
        await _until(lambda: _violations(errors) >= 1)
        await nc.close()
        return [str(e) for e in errors]

    assert any(_violation(e) for e in run(body))


def test_a_wrong_password_is_refused(server: Server, bus: EventBus) -> None:
    async def body() -> None:
        nc = Client()
        try:
            await nc.connect(
                server.url, user="user-service", password="wrong", allow_reconnect=False, connect_timeout=2
            )
        finally:
            # Close inside the loop so no half-open transport outlives it.
            await nc.close()

    with pytest.raises(Exception, match=r"(?i)authorization"):
        run(body)
