"""Relay rate against a plain publish_async loop, on one nats-server and one database, one run:

  write   --events events through bare app.save, the shape bookings write: Patient registrations,
          then bookings (new Appointment, ConfirmationCode, IdempotentRequest, +1 event on a
          ProviderDay and on a Patient, a new ProviderDay when one is full)
  plain   the same messages (the relay's own bytes, subjects under ``plain.``, the same
          Nats-Msg-Id headers) published with ``js.publish_async`` in a loop into a stream
          configured like the relay's (file storage, same duplicate window), then every ack awaited
  relay   fanout.relay.Relay from position 0 into a fresh BOOKING stream: read the log in
          batches, decrypt and decode each event, build its allowlisted payload, publish with
          publish_async and the ordering header, await the acks, move the tracking row; timed
          from start() until the tracking row reaches the end of the log

Each is run --repeat times (alternating) and the medians are compared: relay / plain, target
>= 50%. Without --database-url/--admin-database-url an embedded PostgreSQL is started, without
--nats-url a nats-server from the wheel; both in temporary directories. From the repo root:
    /tmp/venv-relay/bin/python benchmarks/relay_rate.py --events 20000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
import psycopg  # noqa: E402
from nats.js.errors import NotFoundError  # noqa: E402

from booking import embedded  # noqa: E402
from booking.appointments import Appointment  # noqa: E402
from booking.codes import new_code  # noqa: E402
from booking.days import ProviderDay  # noqa: E402
from booking.indexes import ConfirmationCode, IdempotentRequest  # noqa: E402
from booking.patients import Patient  # noqa: E402
from booking.schema import prepare_database  # noqa: E402
from booking.store import SchedulingApp, open_store  # noqa: E402
from fanout import stream as streams  # noqa: E402
from fanout import tracking  # noqa: E402
from fanout.messages import MSG_ID, Outgoing, outgoing  # noqa: E402
from fanout.nats_server import NatsServer  # noqa: E402
from fanout.relay import Relay  # noqa: E402

TARGET_RATIO = 0.5
BOOKINGS_PER_SAVE = 20  # one transaction per 20 bookings: the log fills fast, the events are real
SLOTS_A_DAY = 40


def write_log(store: SchedulingApp, events: int) -> int:
    tenant, written, started = f"bench-{uuid4().hex[:6]}", 0, time.perf_counter()
    patients = [
        Patient(
            tenant_id=tenant,
            patient_ref=f"pat-{j}",
            name=f"Patient {j}",
            phone="+15550100",
            birth_date="1980-01-01",
            language="en",
        )
        for j in range(50)
    ]
    written += len(store.save(*patients))
    day: ProviderDay | None = None
    slot = day_number = k = 0
    while written < events:
        batch: dict[Any, Any] = {}
        for _ in range(BOOKINGS_PER_SAVE):
            if day is None or slot == SLOTS_A_DAY:
                day_number, slot = day_number + 1, 0
                on = datetime(2031, 1, 1, 8, tzinfo=UTC) + timedelta(days=day_number)
                day = ProviderDay(
                    tenant_id=tenant, provider_id="dr-a", date=on.date().isoformat(), timezone="UTC"
                )
            start = datetime.fromisoformat(day.date).replace(hour=8, tzinfo=UTC)
            start += timedelta(minutes=15 * slot)
            end, code, patient = start + timedelta(minutes=15), new_code(), patients[k % 50]
            slot, k = slot + 1, k + 1
            appointment = Appointment(
                tenant_id=tenant,
                patient_ref=patient.patient_ref,
                provider_id="dr-a",
                type_id="bench",
                start=start,
                end=end,
                timezone="UTC",
                day_id=day.id,
                confirmation_code=code,
                call_id=None,
                hold_id=None,
            )
            day.book(appointment_id=str(appointment.id), start=start, end=end, hold_id=None)
            patient.add_appointment(appointment_id=str(appointment.id))
            request = IdempotentRequest(
                tenant_id=tenant,
                scope="bench",
                key=str(uuid4()),
                fingerprint=hashlib.sha256(b"body").hexdigest(),
                status_code=201,
                kind="appointment",
                stream_id=appointment.id,
                version=appointment.version,
                ref=None,
            )
            index = ConfirmationCode(tenant_id=tenant, code=code, appointment_id=appointment.id)
            for aggregate in (appointment, day, patient, index, request):
                batch[aggregate.id] = aggregate
        written += len(store.save(*batch.values()))
    seconds = time.perf_counter() - started
    print(f"[write] {written} events in {seconds:.1f} s", flush=True)
    return written


def messages(store: SchedulingApp) -> list[Outgoing]:
    found: list[Outgoing] = []
    position = 0
    while batch := store.recorder.select_notifications(position, 1000, inclusive_of_start=False):
        found += [outgoing(n.topic, store.mapper.to_domain_event(n), n.id) for n in batch]
        position = batch[-1].id
    return found


async def plain(url: str, out: list[Outgoing], name: str) -> float:
    """events/s of a publish_async loop over ``out`` into a fresh stream like the relay's."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        config = streams.config(name)
        config.subjects = ["plain.>"]
        await js.add_stream(config)
        started = time.perf_counter()
        futures = [
            await js.publish_async("plain." + o.subject, o.data, headers={MSG_ID: o.msg_id})
            for o in out
        ]
        await asyncio.gather(*futures)
        seconds = time.perf_counter() - started
        assert (await js.stream_info(name)).state.messages == len(out)
        await js.delete_stream(name)
        return len(out) / seconds
    finally:
        await nc.close()


async def drop_stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(streams.STREAM)
    except NotFoundError:
        pass
    finally:
        await nc.close()


def relay_once(store: SchedulingApp, runtime_url: str, admin_url: str, nats_url: str) -> float:
    asyncio.run(drop_stream(nats_url))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {tracking.TRACKING_TABLE}")
    end = int(store.recorder.max_notification_id() or 0)
    total = len(store.recorder.select_notifications(0, 10**9, inclusive_of_start=False))
    relay = Relay(store, runtime_url, nats_url)
    started = time.perf_counter()
    relay.start()
    try:
        while relay.health.published < total:
            if relay.health.failures:
                raise SystemExit(f"the relay failed: {relay.health.last_error}")
            time.sleep(0.002)
        seconds = time.perf_counter() - started
    finally:
        relay.stop()
    assert tracking.position(store) == end, (tracking.position(store), end)
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url")
    parser.add_argument("--admin-database-url")
    parser.add_argument("--nats-url")
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.database_url and args.admin_database_url:
            runtime_url, admin_url = args.database_url, args.admin_database_url
        else:
            home = Path(tempfile.mkdtemp(prefix="booking-relay-"))
            stack.callback(shutil.rmtree, home, ignore_errors=True)
            server = embedded.start(home, delete_on_stop=True)
            stack.callback(server.stop)
            runtime_url, admin_url = embedded.ensure_roles_and_database(server)
        nats_url = args.nats_url
        if not nats_url:
            nats_home = Path(tempfile.mkdtemp(prefix="booking-nats-"))
            stack.callback(shutil.rmtree, nats_home, ignore_errors=True)
            nats_url = stack.enter_context(NatsServer(nats_home)).url
        key = base64.b64encode(os.urandom(32)).decode()
        prepare_database(admin_url, runtime_url, key)
        store = open_store(runtime_url, key)
        stack.callback(store.close)
        write_log(store, args.events)
        out = messages(store)
        print(f"[setup] {len(out)} messages, {sum(len(o.data) for o in out) / len(out):.0f} B each")
        plains, relays = [], []
        for r in range(args.repeat):
            plains.append(asyncio.run(plain(nats_url, out, f"PLAIN{r}")))
            relays.append(relay_once(store, runtime_url, admin_url, nats_url))
            print(f"[run {r + 1}] plain {plains[-1]:,.0f} ev/s, relay {relays[-1]:,.0f} ev/s")
        p, q = statistics.median(plains), statistics.median(relays)
        ratio = q / p
        print(f"plain publish_async loop: {p:,.0f} events/s (median of {args.repeat})")
        print(f"relay (read, decode, publish, ack, track): {q:,.0f} events/s")
        verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
        print(f"ratio relay / plain: {ratio:.0%} ({verdict} the {TARGET_RATIO:.0%} target)")


if __name__ == "__main__":
    main()
