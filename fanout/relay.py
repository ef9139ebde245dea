"""The relay: every stored event, in log order, to JetStream, each exactly once in the stream.

It follows the event log from its tracking row (fanout/tracking.py) and publishes in batches;
the next batch is read and decoded while the current one goes out. Each message carries
``Nats-Msg-Id`` (the event id: JetStream drops a repeat) and ``Nats-Expected-Last-Msg-Id`` (the
previous event's id: JetStream refuses a message whose predecessor is not the stream's last), so
a message lost on a broken connection can never be overtaken by the ones sent after it, and the
stream holds the log's events in log order, without gaps. That chain also makes the ack of a
batch's last message an ack of the whole batch; the tracking row moves only after it.

On any failure (NATS or PostgreSQL unreachable, an ack late, a refusal) the relay drops its
connections, waits with backoff and starts over from what the stream's last message says: a
relay killed between a publish and its tracking update resumes after the last stored message, and
one whose messages JetStream lost (it acknowledges before it syncs to disk) publishes them again.
One relay is active per database (a session advisory lock); any other waits as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import psycopg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from booking.store import EVENTS_TABLE, SchedulingApp
from fanout import stream as streams
from fanout import tracking
from fanout.messages import MSG_ID, Outgoing, outgoing
from fanout.resync import Cursor, ForeignStream, resync

log = logging.getLogger(__name__)

BATCH = 1000
POLL_SECONDS = 1.0
ACK_TIMEOUT_SECONDS = 5.0
FIRST_BACKOFF_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 2.0
WARN_EVERY_SECONDS = 30.0


class RelayError(Exception):
    """A failure the relay describes itself, in words that quote no event data."""


class PublishFailed(RelayError):
    """A batch was not acknowledged in full; the relay reconnects and resynchronises."""


class EventUnreadable(RelayError):
    """An event cannot be decoded or fitted to its catalogue type: a bug to fix, not to skip
    (the relay retries, and /ready shows it falling behind)."""


@dataclass
class RelayHealth:
    state: str = "stopped"  # connecting | standby | publishing | retrying | stopped
    published: int = 0
    duplicates: int = 0
    failures: int = 0
    last_error: str | None = None


def describe(exc: BaseException) -> str:
    """Type and message of a connection or server error; only the type of anything else (its
    message could quote event data)."""
    if isinstance(exc, nats.errors.Error | psycopg.Error | OSError | RelayError | ForeignStream):
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return type(exc).__name__


class Relay:
    def __init__(
        self,
        store: SchedulingApp,
        listen_url: str,
        nats_url: str,
        *,
        stream: str = streams.STREAM,
        batch: int = BATCH,
        poll_seconds: float = POLL_SECONDS,
        ack_timeout: float = ACK_TIMEOUT_SECONDS,
        max_backoff: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        self.store = store
        self.listen_url = listen_url
        self.nats_url = nats_url
        self.stream = stream
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.ack_timeout = ack_timeout
        self.max_backoff = max_backoff
        self.health = RelayHealth()
        self._stop = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._progressed = False

    # -- running it ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a thread of its own, with its own event loop (the API's loop stays free)."""
        self._thread = threading.Thread(target=self.run_forever, name="nats-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run_forever(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        backoff, streak, warned = FIRST_BACKOFF_SECONDS, 0, 0.0
        while not self._stop.is_set():
            try:
                await self._session()
            except Exception as exc:
                if self._stop.is_set():  # a server going away during shutdown is no news
                    break
                self.health.state = "retrying"
                self.health.failures += 1
                self.health.last_error = describe(exc)
                if self._progressed:
                    backoff, streak, self._progressed = FIRST_BACKOFF_SECONDS, 0, False
                streak += 1
                # the first failure of a streak, then one line per WARN_EVERY_SECONDS
                if streak == 1 or time.monotonic() - warned >= WARN_EVERY_SECONDS:
                    warned = time.monotonic()
                    log.warning(
                        "relay: %s (failure %d in a row); retrying in %.2f s",
                        describe(exc),
                        streak,
                        backoff,
                    )
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        self.health.state = "stopped"

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    # -- one connected session -----------------------------------------------------------------

    async def _session(self) -> None:
        self.health.state = "connecting"
        async with await psycopg.AsyncConnection.connect(
            self.listen_url, autocommit=True
        ) as listener:
            await listener.execute(f"LISTEN {EVENTS_TABLE}")
            if not await self._become_active(listener):
                return
            nc = await nats.connect(
                self.nats_url,
                name="booking-relay",
                # one attempt, then our own backoff (the client's own loop would retry quietly)
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.05,
                connect_timeout=2,
                error_cb=_quiet,
                disconnected_cb=self._disconnected,
            )
            try:
                js = nc.jetstream()
                await streams.ensure_stream(js, self.stream)
                cursor = await resync(js, self.store, self.stream)
                self.health.state = "publishing"
                await self._pump(nc, js, listener, cursor)
            finally:
                await nc.close()

    async def _pump(
        self,
        nc: NATS,
        js: JetStreamContext,
        listener: psycopg.AsyncConnection[Any],
        cursor: Cursor,
    ) -> None:
        """Publish batch after batch; the next batch is read and decoded (in a thread) while this
        one goes out and its ack comes back."""
        batch = await asyncio.to_thread(self._read, cursor.position)
        while not self._stop.is_set():
            if not batch:
                await self._idle(listener)
                batch = await asyncio.to_thread(self._read, cursor.position)
                continue
            ahead = asyncio.ensure_future(asyncio.to_thread(self._read, batch[-1].position))
            try:
                await self._publish(nc, js, cursor, batch)
            except BaseException:
                ahead.add_done_callback(_discard)
                raise
            batch = await ahead

    async def _disconnected(self) -> None:
        if not self._stop.is_set():
            log.info("relay: NATS connection lost")

    async def _become_active(self, listener: psycopg.AsyncConnection[Any]) -> bool:
        """Hold the relay's advisory lock (for as long as ``listener`` lives), or stand by."""
        while not self._stop.is_set():
            cur = await listener.execute(
                "SELECT pg_try_advisory_lock(%s)", (tracking.lock_key(self.stream),)
            )
            row = await cur.fetchone()
            if row is not None and row[0]:
                return True
            if self.health.state != "standby":
                log.info("another relay is publishing to %s; standing by", self.stream)
            self.health.state = "standby"
            await self._sleep(self.poll_seconds)
        return False

    async def _idle(self, listener: psycopg.AsyncConnection[Any]) -> None:
        """Until a NOTIFY from a save, or the poll interval (a NOTIFY can be lost)."""
        async for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
            pass

    # -- one batch -----------------------------------------------------------------------------

    def _read(self, after: int) -> list[Outgoing]:
        notifications = self.store.recorder.select_notifications(
            start=after, limit=self.batch, inclusive_of_start=False
        )
        mapper, batch = self.store.mapper, []
        for n in notifications:
            try:
                batch.append(outgoing(n.topic, mapper.to_domain_event(n), n.id))
            except Exception as exc:  # named by position and topic: its text may quote the event
                raise EventUnreadable(
                    f"the event at position {n.id} ({n.topic}) cannot be published: "
                    f"{type(exc).__name__}"
                ) from None
        return batch

    async def _publish(
        self, nc: NATS, js: JetStreamContext, cursor: Cursor, batch: list[Outgoing]
    ) -> None:
        """Publish ``batch`` (it follows ``cursor``), then move the cursor and the tracking row to
        its end; raise PublishFailed unless its last message was acknowledged.

        Only the last message asks for an ack: JetStream stores a message only if its predecessor
        is the stream's last (the expectation header) and drops it otherwise, so once one message
        is refused or lost every later one is refused too, and the last one's ack says that every
        message of the batch was stored, in order. One ack per batch instead of one per message
        is what lets the relay keep up with a plain publish loop.
        """
        previous = cursor.previous
        try:
            for out in batch[:-1]:
                await nc.publish(
                    out.subject, out.data, headers=self._headers(out, previous, cursor)
                )
                previous = out.msg_id
            last = batch[-1]
            ack = await js.publish(
                last.subject,
                last.data,
                timeout=self.ack_timeout,
                headers=self._headers(last, previous, cursor),
            )
        except Exception as exc:  # refused, timed out or disconnected: the resync sorts it out
            raise PublishFailed(f"a batch of {len(batch)} was not stored; {describe(exc)}") from exc
        await asyncio.to_thread(tracking.advance, self.store, last.position)
        cursor.position, cursor.previous = last.position, last.msg_id
        self.health.published += len(batch)
        self.health.duplicates += bool(ack.duplicate)
        self._progressed = True

    @staticmethod
    def _headers(out: Outgoing, previous: str | None, cursor: Cursor) -> dict[str, str]:
        if previous is None:  # the first message after a resync
            return {MSG_ID: out.msg_id, streams.EXPECTED_LAST_SEQUENCE: str(cursor.last_seq)}
        return {MSG_ID: out.msg_id, streams.EXPECTED_LAST_MSG_ID: previous}


def _discard(future: asyncio.Future[Any]) -> None:
    """Retrieve a read-ahead nobody will use (its error is not worth a warning)."""
    if not future.cancelled():
        future.exception()


async def _quiet(exc: Exception) -> None:
    log.debug("nats: %s", describe(exc))
