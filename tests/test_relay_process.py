"""``booking relay`` as a real process beside the API: killed with SIGKILL mid-stream and started
again, it leaves no event out and none twice in the stream; a second relay only stands by until
the first is gone; SIGTERM stops it cleanly. And the resync: a stream that lost the end of what it
had acknowledged gets it again, a stream of another installation is refused."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from booking.ids import event_id
from booking.store import SchedulingApp, open_store
from fanout import stream as streams
from fanout import tracking
from fanout.messages import MSG_ID, event_id_text, outgoing
from fanout.nats_server import NatsServer, free_port
from fanout.relay import Relay
from tests.support import burst
from tests.support.nats import (
    NATS_URL,
    assert_stream_is_the_log,
    consume,
    delete_stream,
    log_events,
    stream_messages,
    wait_for_relay,
    wait_until,
)
from tests.support.server import LiveServer


@pytest.fixture(scope="module")
def server(nats_server: NatsServer) -> Iterator[None]:
    delete_stream()
    yield


@pytest.fixture(scope="module")
def app(server: None, live_server: LiveServer) -> LiveServer:
    assert live_server.settings.nats_url is None  # the API runs no relay of its own here
    return live_server


@pytest.fixture(scope="module")
def store(app: LiveServer) -> Iterator[SchedulingApp]:
    s = open_store(app.settings.database_url or "", app.settings.cipher_key or "")
    try:
        yield s
    finally:
        s.close()


def grown_to(count: int) -> bool:
    return stream_messages() >= count


class RelayProcess:
    """``python -m booking.cli relay`` with the module's database and the session's NATS."""

    def __init__(self, app: LiveServer, home: Path, name: str) -> None:
        self.log = home / f"{name}.log"
        env = {
            **os.environ,
            "BOOKING_DATABASE_URL": app.settings.database_url or "",
            "BOOKING_ADMIN_DATABASE_URL": app.settings.admin_database_url or "",
            "BOOKING_CIPHER_KEY": app.settings.cipher_key or "",
            "BOOKING_NATS_URL": NATS_URL,
            "BOOKING_HOME": str(home),
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "booking.cli", "relay"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)


@pytest.fixture
def relays(app: LiveServer, tmp_path: Path) -> Iterator[list[RelayProcess]]:
    started: list[RelayProcess] = []
    yield started
    for relay in started:
        if relay.process.poll() is None:
            relay.kill()


def test_a_relay_killed_mid_stream_and_restarted_leaves_no_event_out_and_none_twice(
    app: LiveServer, store: SchedulingApp, relays: list[RelayProcess], tmp_path: Path
) -> None:
    clinic = burst.open_clinic(app, "kill-clinic", providers=2, patients=8)
    relays.append(RelayProcess(app, tmp_path, "first"))
    wait_for_relay(store)
    work = burst.jobs(clinic, 240)
    runner = threading.Thread(target=burst.book_in_process, args=(app, work, 3))
    runner.start()
    kills = []  # (stream messages, the relay's tracking position) at each SIGKILL
    for number, after in enumerate((150, 450), start=1):
        at_least = stream_messages() + after
        wait_until(functools.partial(grown_to, at_least), 30, "the relay publishes")
        if not runner.is_alive():
            break  # the burst is over: any later kill would not be mid-stream
        relays[-1].kill()
        kills.append((stream_messages(), tracking.position(store)))
        time.sleep(0.3)  # events pile up meanwhile
        relays.append(RelayProcess(app, tmp_path, f"restart-{number}"))
    runner.join(120)
    assert kills, "the burst was over before the first kill"
    wait_for_relay(store)
    counts = assert_stream_is_the_log(store, consume("after-kills"))
    assert counts["unique"] == len(log_events(store)) == stream_messages(), counts
    assert relays[-1].terminate() == 0, relays[-1].output()
    for relay in relays:
        assert "Traceback" not in relay.output(), relay.output()


def test_a_second_relay_stands_by_until_the_first_is_gone(
    app: LiveServer, store: SchedulingApp, relays: list[RelayProcess], tmp_path: Path
) -> None:
    clinic = burst.open_clinic(app, "standby-clinic", providers=1, patients=2)
    relays.append(RelayProcess(app, tmp_path, "active"))
    wait_for_relay(store)
    relays.append(RelayProcess(app, tmp_path, "standby"))
    wait_until(lambda: "standing by" in relays[1].output(), 30, "the second relay stands by")
    relays[0].kill()
    burst.book_in_process(app, burst.jobs(clinic, 20, first_day=40), threads=1)
    wait_for_relay(store, timeout=30)  # the standby took over
    assert_stream_is_the_log(store, consume("after-takeover"))
    assert relays[1].terminate() == 0, relays[1].output()


def republish_first(count: int, store: SchedulingApp) -> None:
    """A fresh stream holding only the first ``count`` events: what is left of a stream that
    lost the end of what it had acknowledged."""
    import nats

    async def run() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            await streams.ensure_stream(js)
            for position, topic, event in log_events(store)[:count]:
                out = outgoing(topic, event, position)
                await js.publish(out.subject, out.data, headers={MSG_ID: out.msg_id})
        finally:
            await nc.close()

    delete_stream()
    asyncio.run(run())


def test_a_stream_that_lost_its_tail_gets_it_again_and_a_foreign_one_is_refused(
    app: LiveServer, store: SchedulingApp
) -> None:
    total = len(log_events(store))
    assert tracking.position(store) == int(store.recorder.max_notification_id() or 0)
    republish_first(50, store)
    relay = Relay(store, app.settings.database_url or "", NATS_URL)
    relay.start()
    try:
        wait_until(lambda: stream_messages() == total, 30, "the relay filled the gap")
    finally:
        relay.stop()
    assert_stream_is_the_log(store, consume("after-loss"))

    delete_stream()
    asyncio.run(publish_foreign())
    relay = Relay(store, app.settings.database_url or "", NATS_URL)
    relay.start()
    try:
        wait_until(lambda: relay.health.failures > 0, 30, "the relay gave up on the stream")
    finally:
        relay.stop()
    assert "ForeignStream" in (relay.health.last_error or ""), relay.health
    assert stream_messages() == 1


async def publish_foreign() -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        await streams.ensure_stream(js)
        await js.publish("booking.elsewhere.Thing.Happened", b'{"hello": "world"}')
    finally:
        await nc.close()


def test_the_message_id_is_the_evidence_event_id(store: SchedulingApp) -> None:
    for _, _, event in log_events(store)[:500]:
        assert event_id_text(event.originator_id, event.originator_version) == str(
            event_id(event.originator_id, event.originator_version)
        )


def test_an_unreachable_nats_only_makes_the_relay_retry(
    app: LiveServer, store: SchedulingApp, caplog: pytest.LogCaptureFixture
) -> None:
    """What a wrong BOOKING_NATS_URL does to `booking serve`: the relay thread retries with
    backoff and says why; nothing else notices, and it stops promptly."""
    relay = Relay(store, app.settings.database_url or "", f"nats://127.0.0.1:{free_port()}")
    relay.start()
    try:
        wait_until(lambda: relay.health.failures >= 3, 30, "three attempts")
        assert relay.health.state == "retrying" and relay.health.published == 0
        assert "NoServersError" in (relay.health.last_error or ""), relay.health
    finally:
        started = time.monotonic()
        relay.stop()
    assert time.monotonic() - started < 3 and relay.health.state == "stopped"
    assert "retrying in" in caplog.text
