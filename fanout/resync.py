"""Where the relay goes on from after it (re)connects: the stream's last message decides.

After a crash between a publish and its tracking update, the stream is ahead of the tracking row:
the relay moves the row up and goes on after the stream's last message (nothing is sent twice).
If JetStream lost acknowledged messages (it acknowledges before it syncs to disk), the stream is
behind: the relay goes back and publishes them again. A new or emptied stream gets events from
the tracking row on. A stream whose last message is not an event of this log belongs to another
installation: the relay refuses it rather than mix two logs in one stream.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from uuid import UUID

from nats.js import JetStreamContext

from booking.ids import event_id
from booking.store import SchedulingApp
from fanout import stream as streams
from fanout import tracking

log = logging.getLogger(__name__)


class ForeignStream(Exception):
    """The stream's last message is not an event of this log: another installation's stream."""


@dataclass
class Cursor:
    position: int  # the last log position known to be in the stream
    previous: str | None  # its event id; None right after a resync
    last_seq: int  # the stream's last sequence at the resync


async def resync(js: JetStreamContext, store: SchedulingApp, stream: str) -> Cursor:
    end = await streams.tail(js, stream)
    tracked = await asyncio.to_thread(tracking.position, store)
    if end.position is None and not end.foreign:  # a new or emptied stream
        return Cursor(tracked, None, end.last_seq)
    if end.position is None or not await asyncio.to_thread(
        is_ours, store, end.position, end.event_id
    ):
        raise ForeignStream(
            f"the last message in stream {stream} is not an event of this event log; "
            "delete that stream or give this installation a NATS server or account of its own"
        )
    if end.position > tracked:
        log.info("stream %s holds events up to %d already", stream, end.position)
        await asyncio.to_thread(tracking.advance, store, end.position)
    elif end.position < tracked:
        log.warning(
            "stream %s ends at position %d, before the relay's %d: JetStream lost "
            "acknowledged messages; publishing them again",
            stream,
            end.position,
            tracked,
        )
    return Cursor(end.position, None, end.last_seq)


def is_ours(store: SchedulingApp, position: int, found: str | None) -> bool:
    """The event at ``position`` in our log has the id ``found``."""
    rows = store.recorder.select_notifications(start=position, limit=1)
    if not rows or rows[0].id != position:
        return False
    return str(event_id(UUID(str(rows[0].originator_id)), rows[0].originator_version)) == found
