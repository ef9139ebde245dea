"""The JetStream stream the relay publishes to, and what its last message says.

The stream is created if missing: file storage, subjects ``booking.>``, a duplicate window of five
minutes (JetStream drops a second message with a ``Nats-Msg-Id`` it stored within the window).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import msgspec
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig, StreamInfo
from nats.js.errors import BadRequestError, NotFoundError

from fanout.messages import MSG_ID, SUBJECT_ROOT, stamp

log = logging.getLogger(__name__)

STREAM = "BOOKING"
DUPLICATE_WINDOW_SECONDS = 300.0
MIN_DUPLICATE_WINDOW_SECONDS = 120.0
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"


def config(name: str = STREAM) -> StreamConfig:
    return StreamConfig(
        name=name,
        description="booking events, PHI-minimised (docs/events.md)",
        subjects=[f"{SUBJECT_ROOT}.>"],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def ensure_stream(js: JetStreamContext, name: str = STREAM) -> StreamInfo:
    """The stream's info, after creating it if it does not exist."""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        try:
            info = await js.add_stream(config(name))
            log.info("created JetStream stream %s for %s.>", name, SUBJECT_ROOT)
        except BadRequestError:  # created meanwhile by someone else
            info = await js.stream_info(name)
    window = info.config.duplicate_window or 0.0
    if window < MIN_DUPLICATE_WINDOW_SECONDS:
        log.warning(
            "stream %s drops duplicates within %.0f s only; consumers must dedupe on %s",
            name,
            window,
            MSG_ID,
        )
    return info


class Tail(NamedTuple):
    """The stream's last sequence and, if its last message is one of ours, that message's event."""

    last_seq: int
    event_id: str | None = None
    position: int | None = None
    foreign: bool = False  # the last message was not published by a relay


async def tail(js: JetStreamContext, name: str = STREAM) -> Tail:
    info = await js.stream_info(name)
    last_seq = int(info.state.last_seq or 0)
    if not info.state.messages:
        return Tail(last_seq)
    try:
        msg = await js.get_msg(name, last_seq)
    except NotFoundError:  # removed between the two requests
        return Tail(last_seq)
    try:
        found = stamp(msg.data or b"")
    except msgspec.DecodeError:
        return Tail(last_seq, (msg.headers or {}).get(MSG_ID), None, foreign=True)
    return Tail(last_seq, str(found.event_id), found.position)
